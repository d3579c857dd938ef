//! Soak test: mutated real frames through every decoder (and every GT06 model with its own
//! layouts) for `SOAK_SECS` seconds per protocol. Ignored by default; a complement to the
//! cargo-fuzz targets where cargo-fuzz is not installed:
//! `SOAK_SECS=600 SOAK_PROTOCOLS=gt06 cargo test --release -p protocols --test soak -- --ignored --nocapture`

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used)]

use domain::UnixMicros;
use protocols::{StreamItem, StreamSession, gt06, h02, teltonika, watch};
use serde_json::Value;
use std::time::{Duration, Instant};

const NOW: UnixMicros = UnixMicros(1_800_000_000_000_000);
const GT06_LOGIN: [u8; 18] = [
    0x78, 0x78, 0x0d, 0x01, 0x01, 0x23, 0x45, 0x67, 0x89, 0x01, 0x23, 0x45, 0x00, 0x01, 0x8c, 0xdd,
    0x0d, 0x0a,
];
const MODELS: [Option<&str>; 9] = [
    None,
    Some("LW4G-4B"),
    Some("SEEWORLD"),
    Some("R11"),
    Some("NT20"),
    Some("XT40"),
    Some("G18"),
    Some("VL103"),
    Some("QH302R"),
];

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap_or(0))
        .collect()
}

fn frames(name: &str) -> Vec<Vec<u8>> {
    let path = format!("{}/tests/vectors/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    doc["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| match c["payload_hex"].as_str() {
            Some(h) => unhex(h),
            None => c["payload_text"].as_str().unwrap_or("").as_bytes().to_vec(),
        })
        .collect()
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, f: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(8) {
        let n = f.len();
        match rng.below(6) {
            0 if n > 0 => f[rng.below(n)] = rng.next() as u8,
            1 if n > 0 => f[rng.below(n)] ^= 1 << rng.below(8),
            2 => f.insert(rng.below(n + 1), rng.next() as u8),
            3 if n > 0 => {
                f.remove(rng.below(n));
            }
            4 => f.truncate(rng.below(n + 1)),
            // Interesting values in length and count fields.
            _ if n > 0 => f[rng.below(n)] = [0, 1, 0x7f, 0x80, 0xff][rng.below(5)],
            _ => {}
        }
    }
}

fn soak(name: &str, secs: u64, seed: u64) -> u64 {
    let corpus = frames(name);
    let mut rng = Rng(seed);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut runs = 0u64;
    while Instant::now() < deadline {
        for _ in 0..256 {
            let mut f = corpus[rng.below(corpus.len())].clone();
            mutate(&mut rng, &mut f);
            match name {
                "gt06" => {
                    let mut c = gt06::Gt06Codec::new();
                    c.set_model(MODELS[rng.below(MODELS.len())]);
                    let _ = c.decode_frame(&GT06_LOGIN, NOW);
                    let _ = c.decode_frame(&f, NOW);
                    let mut s = gt06::Gt06Session::gt06();
                    s.push(&GT06_LOGIN);
                    s.push(&f);
                    drain(&mut s, f.len());
                }
                "h02" => {
                    let _ = h02::H02Codec::new().decode_frame(&f, NOW);
                    let mut s = h02::H02Session::h02();
                    s.push(&f);
                    drain(&mut s, f.len());
                }
                "watch" => {
                    let _ = watch::WatchCodec::new().decode_frame(&f, NOW);
                    let mut s = watch::WatchSession::watch();
                    s.push(&f);
                    drain(&mut s, f.len());
                }
                _ => {
                    let mut c = teltonika::TeltonikaCodec::new();
                    let _ = c.decode_frame(&unhex("000f313233343536373839303132333435"), NOW);
                    let _ = c.decode_frame(&f, NOW);
                    let _ = teltonika::decode_udp(&f, NOW);
                }
            }
            runs += 1;
        }
    }
    runs
}

fn drain(s: &mut dyn StreamSession, n: usize) {
    for _ in 0..=n + 2 {
        if s.poll(NOW) == StreamItem::NeedMore {
            return;
        }
    }
    panic!("poll loop did not terminate");
}

#[test]
#[ignore = "long-running; run with --ignored and SOAK_SECS"]
fn mutated_real_frames_never_panic_for_a_while() {
    let secs = std::env::var("SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let which = std::env::var("SOAK_PROTOCOLS").unwrap_or("gt06,h02,watch,teltonika".into());
    for (i, name) in which.split(',').enumerate() {
        let started = Instant::now();
        let runs = soak(name.trim(), secs, 0x9E37_79B9_7F4A_7C15 ^ i as u64);
        println!(
            "{name}: {runs} mutated frames in {:.0} s, no panic",
            started.elapsed().as_secs_f64()
        );
    }
}
