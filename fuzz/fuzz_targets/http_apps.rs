//! Fuzzes the phone-app HTTP decoders: arbitrary URI, headers and body must never panic.
#![no_main]

use domain::UnixMicros;
use libfuzzer_sys::fuzz_target;
use protocols::http::{App, HttpRequest, decode};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let app = match selector % 4 {
        0 => App::OsmAnd,
        1 => App::OwnTracks,
        2 => App::GpsLogger,
        _ => App::Overland,
    };
    // Layout: URI \n header-value \n body. The header value is used as Content-Type, as
    // X-Limit-U and as Authorization, so every identity and format branch is reachable.
    let mut parts = rest.splitn(3, |&b| b == b'\n');
    let uri = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let hv = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let body = parts.next().unwrap_or_default();
    let headers = vec![
        ("Content-Type".to_string(), if selector & 0x80 != 0 { "application/json".to_string() } else { hv.clone() }),
        ("X-Limit-U".to_string(), hv.clone()),
        ("Authorization".to_string(), hv),
    ];
    let req = HttpRequest { method: "POST", path_and_query: &uri, headers: &headers, body, received: UnixMicros(0) };
    let _ = decode(app, &req);
});
