//! Property tests: stream framing is independent of how the bytes were chunked, and arbitrary
//! bytes never panic any decoder.

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used)]

use domain::UnixMicros;
use proptest::prelude::*;
use protocols::http::{App, HttpRequest};
use protocols::{StreamItem, StreamSession, gt06, h02, teltonika, watch};
use serde_json::Value;

const NOW: UnixMicros = UnixMicros(1_800_000_000_000_000);

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap_or(0))
        .collect()
}

fn cases(name: &str) -> Vec<Value> {
    let path = format!("{}/tests/vectors/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_default())
        .unwrap_or(Value::Null);
    doc["cases"].as_array().cloned().unwrap_or_default()
}

fn consistent(c: &Value) -> bool {
    c["derived_integrity"]["length_consistent"].as_bool() != Some(false)
}

/// A realistic stream per protocol: the frames of the vector files that a real device could
/// send back to back (identification first, well-delimited frames only).
fn gt06_stream() -> Vec<u8> {
    let mut s = unhex("78780d01086471700328358100093f040d0a");
    for c in cases("gt06") {
        let f = unhex(c["payload_hex"].as_str().unwrap_or(""));
        // Frames whose first CR LF is their end (see gt06::frame on embedded CR LF).
        let first_crlf = f.windows(2).position(|w| w == [0x0d, 0x0a]).map(|p| p + 2);
        if consistent(&c) && first_crlf == Some(f.len()) {
            s.extend_from_slice(&f);
        }
    }
    s
}

fn h02_stream() -> Vec<u8> {
    let mut s = Vec::new();
    for c in cases("h02") {
        if let Some(t) = c["payload_text"].as_str() {
            if t.starts_with('*') && t.matches('#').count() == 1 && t.ends_with('#') {
                s.extend_from_slice(t.as_bytes());
                s.extend_from_slice(b"\r\n");
            }
        } else if let Some(h) = c["payload_hex"].as_str() {
            // 32-byte binary reports only: a connection uses one binary length.
            if h.len() == 64 {
                s.extend_from_slice(&unhex(h));
            }
        }
    }
    s
}

fn watch_stream() -> Vec<u8> {
    let mut s = b"garbage before the first frame".to_vec();
    for c in cases("watch") {
        if let Some(t) = c["payload_text"].as_str() {
            s.extend_from_slice(t.as_bytes());
        }
    }
    s
}

fn teltonika_stream() -> Vec<u8> {
    let mut s = unhex("000f313233343536373839303132333435");
    for c in cases("teltonika") {
        let f = unhex(c["payload_hex"].as_str().unwrap_or(""));
        if c["derived_integrity"]["length_consistent"].as_bool() == Some(true)
            && c["test"] == "testDecode"
        {
            s.extend_from_slice(&f);
            s.push(0xff); // keep-alive between packets
        }
    }
    s
}

fn session(p: usize) -> Box<dyn StreamSession> {
    match p {
        0 => Box::new(gt06::Gt06Session::gt06()),
        1 => Box::new(h02::H02Session::h02()),
        2 => Box::new(watch::WatchSession::watch()),
        _ => Box::new(teltonika::TeltonikaSession::teltonika()),
    }
}

fn stream(p: usize) -> Vec<u8> {
    match p {
        0 => gt06_stream(),
        1 => h02_stream(),
        2 => watch_stream(),
        _ => teltonika_stream(),
    }
}

/// Feeds `bytes` split at `cuts` and collects every non-NeedMore item.
fn run(p: usize, bytes: &[u8], cuts: &[usize]) -> Vec<StreamItem> {
    let mut s = session(p);
    let mut out = Vec::new();
    let mut start = 0;
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.sort_unstable();
    points.push(bytes.len());
    for end in points {
        s.push(&bytes[start..end.max(start)]);
        start = end.max(start);
        loop {
            match s.poll(NOW) {
                StreamItem::NeedMore => break,
                item => out.push(item),
            }
        }
    }
    assert_eq!(s.buffered(), 0, "a complete stream leaves nothing buffered");
    out
}

/// Skipped garbage may be reported in more, smaller pieces when it arrives in pieces; compare
/// the total skipped bytes and everything else exactly.
fn normalise(items: Vec<StreamItem>) -> (Vec<StreamItem>, usize) {
    let mut skipped = 0;
    let kept = items
        .into_iter()
        .filter(|i| match i {
            StreamItem::Skipped {
                reason: protocols::SkipReason::Padding,
                ..
            } => false,
            StreamItem::Skipped { bytes, .. } => {
                skipped += bytes;
                false
            }
            _ => true,
        })
        .collect();
    (kept, skipped)
}

#[test]
fn streams_decode_whole() {
    for p in 0..4 {
        let bytes = stream(p);
        let items = run(p, &bytes, &[]);
        let messages = items
            .iter()
            .filter(|i| matches!(i, StreamItem::Message(_)))
            .count();
        assert!(
            messages >= 5,
            "protocol {p}: only {messages} messages from {} bytes: {items:?}",
            bytes.len()
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn chunking_does_not_change_messages(p in 0usize..4, cuts in proptest::collection::vec(any::<usize>(), 0..40)) {
        let bytes = stream(p);
        let whole = normalise(run(p, &bytes, &[]));
        let chunked = normalise(run(p, &bytes, &cuts));
        prop_assert_eq!(whole, chunked);
    }

    #[test]
    fn arbitrary_bytes_never_panic(p in 0usize..4, data in proptest::collection::vec(any::<u8>(), 0..2048), chunk in 1usize..64) {
        let mut s = session(p);
        for part in data.chunks(chunk) {
            s.push(part);
            for _ in 0..=data.len() + 1 {
                if s.poll(NOW) == StreamItem::NeedMore {
                    break;
                }
            }
        }
        let _ = gt06::Gt06Codec::new().decode_frame(&data, NOW);
        let _ = h02::H02Codec::new().decode_frame(&data, NOW);
        let _ = watch::WatchCodec::new().decode_frame(&data, NOW);
        let _ = teltonika::TeltonikaCodec::new().decode_frame(&data, NOW);
        let _ = teltonika::decode_udp(&data, NOW);
    }

    #[test]
    fn mutated_real_frames_never_panic(p in 0usize..4, flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        let mut bytes = stream(p);
        for (i, v) in flips {
            let n = bytes.len();
            if let Some(b) = bytes.get_mut(i % n) {
                *b = v;
            }
        }
        let mut s = session(p);
        s.push(&bytes);
        for _ in 0..=bytes.len() + 1 {
            if s.poll(NOW) == StreamItem::NeedMore {
                break;
            }
        }
    }

    #[test]
    fn http_never_panics(app in 0usize..4, uri in ".{0,200}", body in proptest::collection::vec(any::<u8>(), 0..512), json in any::<bool>()) {
        let app = [App::OsmAnd, App::OwnTracks, App::GpsLogger, App::Overland][app];
        let headers = vec![("Content-Type".to_string(), if json { "application/json" } else { "text/plain" }.to_string())];
        let req = HttpRequest { method: "POST", path_and_query: &uri, headers: &headers, body: &body, received: NOW };
        let _ = protocols::http::decode(app, &req);
    }
}
