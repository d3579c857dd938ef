//! Stream-session behaviour the server relies on: partial reads, several frames per read,
//! garbage before a frame, oversize input, and data before identification.

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used)]

use domain::UnixMicros;
use protocols::{DecodeError, SkipReason, StreamItem, StreamSession, gt06, h02, teltonika, watch};

const NOW: UnixMicros = UnixMicros(1_800_000_000_000_000);

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

fn drain(s: &mut dyn StreamSession) -> Vec<StreamItem> {
    let mut out = Vec::new();
    loop {
        match s.poll(NOW) {
            StreamItem::NeedMore => return out,
            i => out.push(i),
        }
    }
}

const LOGIN: &str = "78780d01086471700328358100093f040d0a";
const GPS: &str = "78781f120f0a140e150bc505e51e780293a9e800540000f601006e0055da0d0a";

#[test]
fn gt06_data_before_login_is_rejected_not_panicking() {
    let mut s = gt06::Gt06Session::gt06();
    s.push(&unhex(GPS));
    let items = drain(&mut s);
    assert!(
        matches!(
            items.as_slice(),
            [StreamItem::Rejected {
                error: DecodeError::NotIdentified,
                ..
            }]
        ),
        "{items:?}"
    );
    assert_eq!(s.identity(), None);
}

#[test]
fn gt06_partial_reads_garbage_and_several_frames() {
    let mut s = gt06::Gt06Session::gt06();
    let mut bytes = b"\x00\x01junk".to_vec();
    bytes.extend(unhex(LOGIN));
    bytes.extend(unhex(GPS));
    bytes.extend(unhex(GPS));
    // First 10 bytes: garbage is skipped, the login is incomplete: NeedMore.
    s.push(&bytes[..10]);
    let first = drain(&mut s);
    assert_eq!(
        first,
        vec![StreamItem::Skipped {
            bytes: 6,
            reason: SkipReason::Garbage
        }]
    );
    s.push(&bytes[10..]);
    let rest = drain(&mut s);
    let msgs: Vec<_> = rest
        .iter()
        .filter_map(|i| {
            if let StreamItem::Message(m) = i {
                Some(m)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(msgs.len(), 3);
    assert_eq!(msgs[1].identity.as_deref(), Some("864717003283581"));
    assert_eq!(msgs[1].fixes.len(), 1);
    assert_eq!(s.identity(), Some("864717003283581"));
    assert_eq!(s.buffered(), 0);
}

#[test]
fn gt06_oversize_header_is_skipped() {
    let mut s = gt06::Gt06Session::gt06();
    s.push(&[0x79, 0x79, 0xff, 0xff, 0x01, 0x02]);
    let items = drain(&mut s);
    assert!(
        items.contains(&StreamItem::Skipped {
            bytes: 2,
            reason: SkipReason::Oversize
        }),
        "{items:?}"
    );
}

#[test]
fn teltonika_requires_imei_first_and_counts_records() {
    let avl = unhex(
        "000000000000002c08010000013eff8d6f9800173295002111f400008100ae0b0000000401010003090016432980422f7200000100007a5d",
    );
    let mut s = teltonika::TeltonikaSession::teltonika();
    s.push(&avl);
    assert!(matches!(
        drain(&mut s).as_slice(),
        [StreamItem::Rejected {
            error: DecodeError::NotIdentified,
            ..
        }]
    ));
    s.push(&unhex("000f313233343536373839303132333435"));
    s.push(&[0xff]);
    for b in &avl {
        s.push(&[*b]); // one byte per read
    }
    let items = drain(&mut s);
    let acks: Vec<_> = items
        .iter()
        .filter_map(|i| {
            if let StreamItem::Message(m) = i {
                m.ack.clone()
            } else {
                None
            }
        })
        .collect();
    assert_eq!(acks, vec![vec![0x01], vec![0, 0, 0, 1]]);
}

#[test]
fn h02_and_watch_never_buffer_without_bound() {
    let mut s = h02::H02Session::h02();
    s.push(&[b'*'; 5000]);
    let items = drain(&mut s);
    assert!(items.iter().any(|i| matches!(
        i,
        StreamItem::Skipped {
            reason: SkipReason::Oversize,
            ..
        }
    )));
    assert!(s.buffered() <= h02::MAX_FRAME);

    let mut w = watch::WatchSession::watch();
    w.push(b"noise[3G*4700186508*000B*LK,0,10,100][SG*8800000015*0002*LK]");
    let items = drain(&mut w);
    assert_eq!(
        items.first(),
        Some(&StreamItem::Skipped {
            bytes: 5,
            reason: SkipReason::Garbage
        })
    );
    assert_eq!(
        items
            .iter()
            .filter(|i| matches!(i, StreamItem::Message(_)))
            .count(),
        2
    );
}
