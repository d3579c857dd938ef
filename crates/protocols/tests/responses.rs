//! Golden tests for what Bulwark sends to devices: acknowledgements (the `server_responses`
//! examples in the vector files) and commands.

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used)]

use domain::UnixMicros;
use protocols::http::{self, App, HttpRequest};
use protocols::{Codec, Framing, gt06, h02, teltonika, watch};

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap_or(0))
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// 2026-11-28 12:34:56 UTC.
const NOW: UnixMicros = UnixMicros(1_795_869_296_000_000);

#[test]
fn gt06_login_ack_matches_examples() {
    let mut c = gt06::Gt06Codec::new();
    let m = c
        .decode_frame(&unhex("78780d01086471700328358100093f040d0a"), NOW)
        .unwrap();
    assert_eq!(m.identity.as_deref(), Some("864717003283581"));
    assert_eq!(
        hex(m.ack.as_deref().unwrap_or_default()),
        "78780501000955940d0a"
    );
    // Pair observed in a public Traccar server log (traccar/traccar#3381).
    let m = c
        .decode_frame(&unhex("78780d0103588990521514070d5b42a40d0a"), NOW)
        .unwrap();
    assert_eq!(
        hex(m.ack.as_deref().unwrap_or_default()),
        "787805010d5b947b0d0a"
    );
    assert_eq!(
        hex(&gt06::encode_ack(false, 0x01, 0x0005)),
        "7878050100059ff80d0a"
    );
}

#[test]
fn gt06_location_ack_and_time_reply() {
    let mut c = gt06::Gt06Codec::new();
    c.decode_frame(&unhex("78780d01086471700328358100093f040d0a"), NOW)
        .unwrap();
    let frame = unhex("78781f120f0a140e150bc505e51e780293a9e800540000f601006e0055da0d0a");
    let m = c.decode_frame(&frame, NOW).unwrap();
    let serial = &frame[frame.len() - 6..frame.len() - 4];
    assert_eq!(
        m.ack,
        Some(gt06::encode_ack(
            false,
            0x12,
            u16::from_be_bytes([serial[0], serial[1]])
        ))
    );
    // Time request 0x8A: answered with the server's UTC time, serial 0.
    let m = c.decode_frame(&unhex("7878058a000688290d0a"), NOW).unwrap();
    assert_eq!(
        m.ack,
        Some(gt06::encode_frame(
            false,
            0x8A,
            &[26, 11, 28, 12, 34, 56],
            0
        ))
    );
}

#[test]
fn gt06_commands_are_well_formed() {
    for (frame, text) in [
        (gt06::encode_set_interval(60), "TIMER,60#"),
        (gt06::encode_request_position(), "WHERE#"),
    ] {
        assert_eq!(
            gt06::frame(&frame),
            Framing::Frame {
                len: frame.len(),
                consume: frame.len()
            }
        );
        assert_eq!(frame[3], 0x80);
        assert_eq!(usize::from(frame[4]), 4 + text.len());
        assert_eq!(&frame[9..9 + text.len()], text.as_bytes());
        // Decoding our own command through the envelope reports no integrity failure.
        let mut c = gt06::Gt06Codec::new();
        c.decode_frame(&unhex("78780d01086471700328358100093f040d0a"), NOW)
            .unwrap();
        let m = c.decode_frame(&frame, NOW).unwrap();
        assert_eq!(m.integrity, protocols::Integrity::Ok);
        assert_eq!(m.ack, None, "command frames are never acknowledged");
    }
    // Length 0x13, protocol 0x80, command length 13, flag 0, "TIMER,60#", serial 1, CRC-ITU
    // computed independently (Python, reflected 0x8408).
    assert_eq!(
        hex(&gt06::encode_set_interval(60)),
        "787813800d0000000054494d45522c36302300012c980d0a"
    );
}

#[test]
fn h02_binary_report_with_long_id() {
    // Vector h02.json line 49: a 42-byte binary report whose id is 8 bytes (15-digit IMEI).
    let mut c = h02::H02Codec::new();
    let frame = unhex(
        "2435248308419329301047591808172627335900074412294e024138feffffffff01120064ba73005ecc",
    );
    // The stream framer tells it from the 32- and 45-byte reports by where a time fits.
    assert_eq!(
        c.frame(&frame),
        Framing::Frame {
            len: 42,
            consume: 42
        }
    );
    let m = c.decode_frame(&frame, NOW).unwrap();
    assert_eq!(m.identity.as_deref(), Some("352483084193293"));
    let f = &m.fixes[0];
    // 2017-08-18 10:47:59 UTC, 26°27.3359' N, 74°41.2294' E, 24 knots, course 138.
    assert_eq!(f.device_time, UnixMicros(1_503_053_279_000_000));
    assert!((f.position.lat() - (26.0 + 27.3359 / 60.0)).abs() < 1e-6);
    assert!((f.position.lon() - (74.0 + 41.2294 / 60.0)).abs() < 1e-6);
    assert_eq!(f.course_deg, Some(138.0));
    assert!(f.gnss_valid);
}

#[test]
fn h02_responses() {
    let mut c = h02::H02Codec::new();
    let m = c
        .decode_frame(b"*HQ,135790246811220,HTBT,100#", NOW)
        .unwrap();
    assert_eq!(m.ack.as_deref(), Some(&b"*HQ,135790246811220,HTBT#"[..]));
    let m = c.decode_frame(b"*HQ,4210051415,V1,164549,A,0956.3869,N,08406.7068,W,000.00,000,221215,FFFFFBFF,712,01,0,0,6#", NOW).unwrap();
    assert_eq!(
        m.ack.as_deref(),
        Some(&b"*HQ,4210051415,V4,V1,20261128123456#"[..])
    );
    let m = c
        .decode_frame(
            b"*HQ,1600068812,NBR,141335,262,02,255,6,431,17003,26,151216,FFFFFBFF#",
            NOW,
        )
        .unwrap();
    assert_eq!(
        m.ack.as_deref(),
        Some(&b"*HQ,1600068812,V4,NBR,20261128123456#"[..])
    );
    assert_eq!(
        h02::encode_set_interval("4210051415", 30, NOW),
        b"*HQ,4210051415,S71,123456,22,30#".to_vec()
    );
    assert_eq!(
        h02::encode_request_position("4210051415", NOW),
        b"*HQ,4210051415,R1,123456#".to_vec()
    );
}

#[test]
fn watch_responses_and_commands() {
    let mut c = watch::WatchCodec::new();
    let m = c
        .decode_frame(b"[3G*4700186508*000B*LK,0,10,100]", NOW)
        .unwrap();
    assert_eq!(m.ack.as_deref(), Some(&b"[3G*4700186508*0002*LK]"[..]));
    let m = c
        .decode_frame(b"[ZJ*014111001332708*0075*0064*AL,040418,052156,A,22.536207,N,113.938673,E,0,0,0,5,100,82,1000,50,00100000,1,255,460,0,9340,3663,35]", NOW)
        .unwrap();
    assert_eq!(
        m.ack.as_deref(),
        Some(&b"[ZJ*014111001332708*0075*0002*AL]"[..])
    );
    assert!(
        m.events
            .iter()
            .any(|e| e.kind == protocols::EventKind::Removal)
    );
    assert_eq!(
        watch::encode_set_interval("SG", "8800000015", 60),
        b"[SG*8800000015*0009*UPLOAD,60]".to_vec()
    );
    assert_eq!(
        watch::encode_request_position("3G", "4700186508"),
        b"[3G*4700186508*0002*CR]".to_vec()
    );
}

#[test]
fn teltonika_responses_and_commands() {
    let mut c = teltonika::TeltonikaCodec::new();
    let m = c
        .decode_frame(&unhex("000f313233343536373839303132333435"), NOW)
        .unwrap();
    assert_eq!(m.ack, Some(vec![0x01]));
    assert_eq!(m.identity.as_deref(), Some("123456789012345"));
    // A one-record codec 8 packet is acknowledged with the record count, 4 bytes big-endian.
    // Vector teltonika.json line 123 (one codec 8 record, CRC correct).
    let avl = unhex(
        "000000000000002c08010000013eff8d6f9800173295002111f400008100ae0b0000000401010003090016432980422f7200000100007a5d",
    );
    let m = c.decode_frame(&avl, NOW).unwrap();
    assert_eq!(m.ack, Some(vec![0, 0, 0, 1]));
    assert_eq!(m.integrity, protocols::Integrity::Ok);
    assert_eq!(m.fixes.len(), 1);
    // IO 66 = 0x2f72 mV external, IO 67 = 0x2980 mV battery.
    assert_eq!(m.status.as_ref().and_then(|s| s.power_volts), Some(12.146));
    assert_eq!(
        m.status.as_ref().and_then(|s| s.battery_volts),
        Some(10.624)
    );
    // Codec 12 "getinfo" example from the Teltonika wiki (Codec 12 page).
    assert_eq!(
        hex(&teltonika::encode_command("getinfo")),
        "000000000000000f0c010500000007676574696e666f0100004312"
    );
    let cmd = teltonika::encode_request_position();
    assert_eq!(
        teltonika::frame(&cmd),
        Framing::Frame {
            len: cmd.len(),
            consume: cmd.len()
        }
    );
    assert!(
        String::from_utf8_lossy(&teltonika::encode_set_interval(60)).contains("setparam 10050:60")
    );
}

#[test]
fn teltonika_codec7_gh3000_positions_and_ack() {
    let mut c = teltonika::TeltonikaCodec::new();
    c.decode_frame(&unhex("000f313233343536373839303132333435"), NOW)
        .unwrap();
    // Vector teltonika.json line 129: two GH3000 records, location blocks with float latitude
    // and longitude, time counted from 2007-01-01.
    let avl = unhex(
        "000000000000003107024c61410b013f4231c2c141d0beb9003d000005006483ff4c6140eb013f4231c2c141d0beb9003d000005006483ff02000041df",
    );
    let m = c.decode_frame(&avl, NOW).unwrap();
    assert_eq!(m.ack, Some(vec![0, 0, 0, 2]));
    assert_eq!(m.integrity, protocols::Integrity::Ok);
    assert_eq!(m.fixes.len(), 2);
    let f = &m.fixes[0];
    // 2013-07-31 22:30:35 UTC.
    assert_eq!(f.device_time, UnixMicros(1_375_309_835_000_000));
    assert!((f.position.lat() - 44.440_19).abs() < 1e-4);
    assert!((f.position.lon() - 26.093_13).abs() < 1e-4);
    assert_eq!(f.altitude_m, Some(61.0));
    assert_eq!(f.satellites, Some(5));
    assert!(f.gnss_valid);
    // An SOS record (IO 222 = 1) with no location block raises an SOS event without a fix.
    let sos = unhex("000000000000000b0701000000010201de0101");
    let data = &sos[8..];
    let mut framed = sos.clone();
    framed.extend_from_slice(&[0, 0]);
    let crc = crc16_ibm(data);
    framed.extend_from_slice(&crc.to_be_bytes());
    let m = c.decode_frame(&framed, NOW).unwrap();
    assert_eq!(m.integrity, protocols::Integrity::Ok);
    assert!(m.fixes.is_empty());
    assert_eq!(m.events.len(), 1);
    assert_eq!(m.events[0].kind, protocols::EventKind::Sos);
    assert_eq!(m.ack, Some(vec![0, 0, 0, 1]));
}

fn crc16_ibm(data: &[u8]) -> u16 {
    let mut crc = 0u16;
    for b in data {
        crc ^= u16::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xA001
            } else {
                crc >> 1
            };
        }
    }
    crc
}

#[test]
fn teltonika_ping_and_imei_framing() {
    let mut c = teltonika::TeltonikaCodec::new();
    assert_eq!(
        c.frame(&unhex("ff000f31")),
        Framing::Frame { len: 1, consume: 1 }
    );
}

fn req<'a>(
    method: &'a str,
    uri: &'a str,
    headers: &'a [(String, String)],
    body: &'a [u8],
) -> HttpRequest<'a> {
    HttpRequest {
        method,
        path_and_query: uri,
        headers,
        body,
        received: NOW,
    }
}

#[test]
fn http_replies() {
    let none: Vec<(String, String)> = vec![];
    let r = http::decode(
        App::OsmAnd,
        &req(
            "GET",
            "/?id=1&lat=37.5&lon=127.0&timestamp=1700000000&speed=10",
            &none,
            b"",
        ),
    )
    .unwrap();
    assert_eq!((r.reply.status, r.reply.body.len()), (200, 0));
    let f = &r.messages[0].fixes[0];
    assert!((f.speed_mps.unwrap_or(0.0) - 10.0 * 1852.0 / 3600.0).abs() < 1e-9);
    assert_eq!(
        http::decode(App::OsmAnd, &req("GET", "/?lat=1&lon=2", &none, b""))
            .unwrap_err()
            .status(),
        400
    );

    let sos = http::decode(App::OsmAnd, &req("POST", "/?id=9&alarm=sos", &none, b"")).unwrap();
    assert_eq!(
        sos.messages[0].events[0].kind,
        protocols::EventKind::Sos,
        "an SOS without a position is still an SOS"
    );

    let headers = vec![
        ("X-Limit-U".to_string(), "alice".to_string()),
        ("X-Limit-D".to_string(), "phone".to_string()),
    ];
    let body = br#"{"_type":"location","tid":"al","tst":1700000000,"lat":37.5665,"lon":126.978,"acc":12,"vel":36,"cog":90,"batt":55,"bs":2}"#;
    let r = http::decode(App::OwnTracks, &req("POST", "/pub", &headers, body)).unwrap();
    assert_eq!(r.reply.body, b"[]".to_vec());
    let m = &r.messages[0];
    assert_eq!(m.identity.as_deref(), Some("alice/phone"));
    assert!(
        (m.fixes[0].speed_mps.unwrap_or(0.0) - 10.0).abs() < 1e-9,
        "vel is km/h"
    );
    assert_eq!(m.status.as_ref().and_then(|s| s.charging), Some(true));

    let basic = vec![(
        "Authorization".to_string(),
        "Basic Ym9iOnNlY3JldA==".to_string(),
    )];
    let r = http::decode(App::OwnTracks, &req("POST", "/pub", &basic, body)).unwrap();
    assert_eq!(r.messages[0].identity.as_deref(), Some("bob"));

    let r = http::decode(App::GpsLogger, &req("POST", "/log", &none, b"lat=37.5&longitude=127.01&time=2024-05-01T10:00:00Z&acc=8&spd=1.5&dir=180&batt=77&device=g1")).unwrap();
    let m = &r.messages[0];
    assert_eq!(m.identity.as_deref(), Some("g1"));
    assert_eq!(m.fixes[0].device_time, UnixMicros::from_secs(1_714_557_600));
    assert_eq!(m.fixes[0].accuracy_m, Some(8.0));

    let body = br#"{"locations":[{"type":"Feature","geometry":{"type":"Point","coordinates":[127.0,37.5]},"properties":{"timestamp":"2024-05-01T10:00:00Z","horizontal_accuracy":5,"speed":2,"course":45,"battery_level":0.8,"battery_state":"charging","device_id":"ov1"}},{"type":"Feature","geometry":{"type":"Point","coordinates":[127.001,37.501]},"properties":{"timestamp":"2024-05-01T10:00:05Z","device_id":"ov1"}}]}"#;
    let r = http::decode(App::Overland, &req("POST", "/overland", &none, body)).unwrap();
    assert_eq!(r.reply.body, br#"{"result":"ok"}"#.to_vec());
    assert_eq!(r.messages.len(), 2);
    assert_eq!(
        r.messages[0]
            .status
            .as_ref()
            .and_then(|s| s.battery_percent),
        Some(80.0)
    );
    assert_eq!(r.messages[0].fixes[0].position.lon(), 127.0);
}
