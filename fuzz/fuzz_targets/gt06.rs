//! Fuzzes the gt06 framer and decoder: arbitrary bytes, pushed in arbitrary chunks, must never
//! panic, and every poll loop must terminate.
#![no_main]

use domain::UnixMicros;
use libfuzzer_sys::fuzz_target;
use protocols::{StreamItem, StreamSession};

fuzz_target!(|data: &[u8]| {
    // First byte: chunk size for the stream session (1..=256).
    let (chunk, bytes) = match data.split_first() {
        Some((c, rest)) => (usize::from(*c) + 1, rest),
        None => return,
    };
    let now = UnixMicros(1_800_000_000_000_000);
    let mut session = protocols::gt06::Gt06Session::gt06();
    for part in bytes.chunks(chunk) {
        session.push(part);
        // Each poll consumes at least one byte or answers NeedMore, so this terminates.
        for _ in 0..=bytes.len() + 1 {
            if session.poll(now) == StreamItem::NeedMore {
                break;
            }
        }
    }
    let mut codec = protocols::gt06::Gt06Codec::new();
    let _ = codec.decode_frame(bytes, now);
    // The same bytes as a frame of an identified connection, under each model whose firmware
    // has its own layouts.
    let login = [
        0x78, 0x78, 0x0d, 0x01, 0x01, 0x23, 0x45, 0x67, 0x89, 0x01, 0x23, 0x45, 0x00, 0x01, 0x8c,
        0xdd, 0x0d, 0x0a,
    ];
    for model in [
        None,
        Some("LW4G-4B"),
        Some("SEEWORLD"),
        Some("R11"),
        Some("NT20"),
        Some("G18"),
        Some("QH302R"),
    ] {
        let mut codec = protocols::gt06::Gt06Codec::new();
        codec.set_model(model);
        let _ = codec.decode_frame(&login, now);
        let _ = codec.decode_frame(bytes, now);
    }
});
