//! Wire frames a simulated device sends: the device side of each protocol, written from the
//! same documents as the decoders in `crates/protocols` and checked against them in the tests.

use jiff::Timestamp;
use jiff::tz::TimeZone;

/// One simulated position report.
#[derive(Debug, Clone, Copy)]
pub struct Report {
    pub time: Timestamp,
    pub lat: f64,
    pub lon: f64,
    pub speed_kmh: f64,
    pub course_deg: f64,
}

struct Civil {
    yy: u8,
    mo: u8,
    dd: u8,
    hh: u8,
    mi: u8,
    ss: u8,
}

fn civil(t: Timestamp) -> Civil {
    let z = t.to_zoned(TimeZone::UTC);
    Civil {
        yy: (z.year() - 2000).clamp(0, 99) as u8,
        mo: z.month() as u8,
        dd: z.day() as u8,
        hh: z.hour() as u8,
        mi: z.minute() as u8,
        ss: z.second() as u8,
    }
}

/// GT06 login (0x01): the IMEI as 8 BCD bytes.
pub fn gt06_login(imei: &str, serial: u16) -> Vec<u8> {
    let digits: Vec<u8> = format!("{imei:0>16}")
        .bytes()
        .map(|b| b.wrapping_sub(b'0') & 0x0F)
        .collect();
    let bcd: Vec<u8> = digits.chunks(2).map(|p| p[0] << 4 | p[1]).collect();
    protocols::gt06::encode_frame(false, 0x01, &bcd, serial)
}

/// GT06 GPS + LBS location (0x12).
pub fn gt06_location(r: &Report, serial: u16) -> Vec<u8> {
    let c = civil(r.time);
    let mut b = vec![c.yy, c.mo, c.dd, c.hh, c.mi, c.ss, 0xC9];
    b.extend_from_slice(&((r.lat.abs() * 1_800_000.0).round() as u32).to_be_bytes());
    b.extend_from_slice(&((r.lon.abs() * 1_800_000.0).round() as u32).to_be_bytes());
    b.push(r.speed_kmh.clamp(0.0, 255.0) as u8);
    let mut flags = (1u16 << 12) | (r.course_deg.rem_euclid(360.0) as u16 & 0x03FF);
    if r.lat >= 0.0 {
        flags |= 1 << 10;
    }
    if r.lon < 0.0 {
        flags |= 1 << 11;
    }
    b.extend_from_slice(&flags.to_be_bytes());
    b.extend_from_slice(&[0x01, 0xC2, 0x05, 0x12, 0x34, 0x00, 0x56, 0x78]);
    protocols::gt06::encode_frame(false, 0x12, &b, serial)
}

fn nmea(deg: f64, width: usize) -> String {
    let d = deg.abs().trunc();
    let m = (deg.abs() - d) * 60.0;
    format!("{:0width$}{:07.4}", d as u32, m, width = width)
}

/// H02 text report `*HQ,id,V1,...#`.
pub fn h02_location(id: &str, r: &Report) -> Vec<u8> {
    let c = civil(r.time);
    format!(
        "*HQ,{id},V1,{:02}{:02}{:02},A,{},{},{},{},{:.2},{:.0},{:02}{:02}{:02},FFFFFBFF#",
        c.hh,
        c.mi,
        c.ss,
        nmea(r.lat, 2),
        if r.lat >= 0.0 { 'N' } else { 'S' },
        nmea(r.lon, 3),
        if r.lon >= 0.0 { 'E' } else { 'W' },
        r.speed_kmh / protocols::KNOTS_TO_MPS / 3.6,
        r.course_deg,
        c.dd,
        c.mo,
        c.yy
    )
    .into_bytes()
}

/// Watch position (`UD`) followed by a link keep-alive (`LK`). The watch protocol does not
/// acknowledge `UD`; the server answers `LK` only after everything before it on the connection
/// is durable, so the `LK` reply stands in for the position's acknowledgement.
pub fn watch_location(id: &str, r: &Report) -> Vec<u8> {
    let c = civil(r.time);
    let content = format!(
        "UD,{:02}{:02}{:02},{:02}{:02}{:02},A,{:.6},{},{:.6},{},{:.2},{:.0},0,9,100,90,0,0,00000000,0",
        c.dd,
        c.mo,
        c.yy,
        c.hh,
        c.mi,
        c.ss,
        r.lat.abs(),
        if r.lat >= 0.0 { 'N' } else { 'S' },
        r.lon.abs(),
        if r.lon >= 0.0 { 'E' } else { 'W' },
        r.speed_kmh,
        r.course_deg
    );
    let mut v = protocols::watch::encode_frame("SG", id, None, &content);
    v.extend(protocols::watch::encode_frame("SG", id, None, "LK"));
    v
}

/// Teltonika IMEI packet.
pub fn teltonika_imei(imei: &str) -> Vec<u8> {
    let mut v = (imei.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(imei.as_bytes());
    v
}

/// Teltonika codec 8 AVL packet with one record and no IO elements.
pub fn teltonika_location(r: &Report) -> Vec<u8> {
    teltonika_record(r, 0)
}

/// [`teltonika_location`] with the record's priority: 0 low, 1 high, 2 panic (an SOS).
pub fn teltonika_record(r: &Report, priority: u8) -> Vec<u8> {
    codec8_packet(std::slice::from_ref(r), 1, priority)
}

/// One codec 8 packet carrying `reports` as consecutive records, as a tracker sends the
/// records it buffered (its "records per packet" setting); the server acknowledges their count.
/// A packet counts its records in one byte: more than 255 is an error, not a shorter packet.
pub fn teltonika_records(reports: &[Report], priority: u8) -> anyhow::Result<Vec<u8>> {
    let n = u8::try_from(reports.len())
        .map_err(|_| anyhow::anyhow!("{} records: a packet holds 255 at most", reports.len()))?;
    Ok(codec8_packet(reports, n, priority))
}

/// The packet of `n` records (`reports.len()`, checked by the callers).
fn codec8_packet(reports: &[Report], n: u8, priority: u8) -> Vec<u8> {
    let mut data = vec![0x08, n];
    for r in reports {
        data.extend_from_slice(&(r.time.as_millisecond() as u64).to_be_bytes());
        data.push(priority);
        data.extend_from_slice(&((r.lon * 1e7).round() as i32).to_be_bytes());
        data.extend_from_slice(&((r.lat * 1e7).round() as i32).to_be_bytes());
        data.extend_from_slice(&30i16.to_be_bytes()); // altitude m
        data.extend_from_slice(&(r.course_deg.rem_euclid(360.0) as u16).to_be_bytes());
        data.push(9); // satellites
        data.extend_from_slice(&(r.speed_kmh.clamp(0.0, 65_535.0) as u16).to_be_bytes());
        data.extend_from_slice(&[0, 0, 0, 0, 0, 0]); // event IO id, total, 1/2/4/8-byte counts
    }
    data.push(n);
    let mut v = vec![0, 0, 0, 0];
    v.extend_from_slice(&(data.len() as u32).to_be_bytes());
    v.extend_from_slice(&data);
    v.extend_from_slice(&u32::from(protocols::crc16_ibm(&data)).to_be_bytes());
    v
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use domain::UnixMicros;
    use protocols::{StreamItem, StreamSession};

    fn report() -> Report {
        Report {
            time: Timestamp::from_second(1_780_000_000).unwrap(),
            lat: 37.5665,
            lon: 126.978,
            speed_kmh: 36.0,
            course_deg: 90.0,
        }
    }

    fn decode(s: &mut dyn StreamSession, bytes: &[u8]) -> Vec<protocols::Message> {
        s.push(bytes);
        let mut v = Vec::new();
        loop {
            match s.poll(UnixMicros::from_secs(1_780_000_000)) {
                StreamItem::NeedMore => return v,
                StreamItem::Message(m) => v.push(*m),
                other => panic!("{other:?}"),
            }
        }
    }

    fn check(m: &[protocols::Message]) {
        let f = m.iter().flat_map(|m| &m.fixes).next().unwrap();
        assert_eq!(f.device_time, UnixMicros::from_secs(1_780_000_000));
        assert!((f.position.lat() - 37.5665).abs() < 1e-4, "{f:?}");
        assert!((f.position.lon() - 126.978).abs() < 1e-4, "{f:?}");
        assert!(f.gnss_valid);
        assert!(!f.integrity_suspect, "{f:?}");
        assert!(m.iter().any(|m| m.ack.is_some()), "acknowledged");
    }

    #[test]
    fn every_simulated_frame_decodes_with_the_servers_decoder() {
        let r = report();
        let mut s = protocols::gt06::Gt06Session::gt06();
        let login = decode(&mut s, &gt06_login("359710040000001", 1));
        assert_eq!(login[0].identity.as_deref(), Some("359710040000001"));
        check(&decode(&mut s, &gt06_location(&r, 2)));

        check(&decode(
            &mut protocols::h02::H02Session::h02(),
            &h02_location("4210000001", &r),
        ));
        let w = decode(
            &mut protocols::watch::WatchSession::watch(),
            &watch_location("8800000001", &r),
        );
        check(&w);
        assert_eq!(w.len(), 2);

        let mut s = protocols::teltonika::TeltonikaSession::teltonika();
        let imei = decode(&mut s, &teltonika_imei("352093081452251"));
        assert_eq!(imei[0].ack.as_deref(), Some(&[1u8][..]));
        let m = decode(&mut s, &teltonika_location(&r));
        check(&m);
        assert_eq!(m[0].ack.as_deref(), Some(&[0u8, 0, 0, 1][..]));
        let sos = decode(&mut s, &teltonika_record(&r, 2));
        let later = Report {
            time: r.time + jiff::SignedDuration::from_secs(1),
            ..r
        };
        let both = decode(&mut s, &teltonika_records(&[r, later], 0).unwrap());
        assert!(
            teltonika_records(&[r; 256], 0).is_err(),
            "256 records refused"
        );
        assert_eq!(both[0].ack.as_deref(), Some(&[0u8, 0, 0, 2][..]));
        let times: Vec<_> = both
            .iter()
            .flat_map(|m| &m.fixes)
            .map(|f| f.device_time)
            .collect();
        assert_eq!(
            times,
            [
                UnixMicros::from_secs(1_780_000_000),
                UnixMicros::from_secs(1_780_000_001)
            ],
            "one packet, two records"
        );
        assert!(
            sos.iter()
                .flat_map(|m| &m.events)
                .any(|e| matches!(e.kind, protocols::EventKind::Sos)),
            "{sos:?}"
        );
    }
}
