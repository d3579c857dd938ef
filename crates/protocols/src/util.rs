//! Small helpers shared by the decoders: checked big-endian reads, CRCs and calendar maths.
//!
//! Decoders read only through [`Reader`], whose every read is checked, so a short or hostile
//! frame yields a `DecodeError::Truncated` instead of an index panic.

use crate::DecodeError;
use domain::UnixMicros;

/// A cursor over a byte slice with checked big-endian reads.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or(DecodeError::Truncated("length overflow"))?;
        let s = self
            .buf
            .get(self.pos..end)
            .ok_or(DecodeError::Truncated("frame shorter than its fields"))?;
        self.pos = end;
        Ok(s)
    }

    pub(crate) fn skip(&mut self, n: usize) -> Result<(), DecodeError> {
        self.bytes(n).map(|_| ())
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.bytes(1)?.first().copied().unwrap_or(0))
    }

    pub(crate) fn uint(&mut self, n: usize) -> Result<u64, DecodeError> {
        Ok(self
            .bytes(n)?
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(self.uint(2)? as u16)
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(self.uint(4)? as u32)
    }

    pub(crate) fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(self.u32()? as i32)
    }

    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        self.uint(8)
    }

    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let s = self.buf.get(self.pos..).unwrap_or(&[]);
        self.pos = self.buf.len();
        s
    }
}

/// CRC-16/X-25 (CRC-ITU as GT06 documents it): reflected poly 0x1021, init 0xFFFF, final
/// XOR 0xFFFF. Check value for "123456789" is 0x906E.
const X25: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_IBM_SDLC);
/// CRC-16/ARC ("CRC-16/IBM" in Teltonika's documents): reflected poly 0x8005, init 0.
/// Check value for "123456789" is 0xBB3D.
const ARC: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_ARC);

/// The GT06 frame checksum (CRC-16/X-25).
pub(crate) fn crc16_x25(data: &[u8]) -> u16 {
    X25.checksum(data)
}

/// The Teltonika AVL packet checksum (CRC-16/ARC).
pub fn crc16_ibm(data: &[u8]) -> u16 {
    ARC.checksum(data)
}

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A UTC calendar time to microseconds; `None` when a field is out of range.
pub(crate) fn utc(
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    min: i64,
    sec: f64,
) -> Option<UnixMicros> {
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || !(0..=23).contains(&hour)
        || !(0..=59).contains(&min)
        || !(0.0..61.0).contains(&sec)
        || !(1970..=2200).contains(&year)
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3_600 + min * 60;
    Some(UnixMicros(
        secs * 1_000_000 + (sec * 1_000_000.0).round() as i64,
    ))
}

/// Microseconds to (year, month, day, hour, minute, second) in UTC.
pub(crate) fn civil(t: UnixMicros) -> (i64, i64, i64, i64, i64, i64) {
    let secs = t.0.div_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Inverse of days_from_civil (Hinnant).
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    (y, m, d, sod / 3600, (sod / 60) % 60, sod % 60)
}

/// Parses an ISO 8601 / RFC 3339 timestamp such as `2025-06-15T13:45:12.862Z` or
/// `2016-01-27T18:55:47+09:00` (also accepts a space for `T`, and no zone = UTC).
pub(crate) fn parse_iso8601(s: &str) -> Option<UnixMicros> {
    let s = s.trim();
    let num = |a: usize, b: usize| -> Option<i64> { s.get(a..b)?.parse().ok() };
    let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let sep = s.as_bytes().get(10).copied();
    if !matches!(sep, Some(b'T') | Some(b't') | Some(b' ')) {
        return None;
    }
    let (h, mi) = (num(11, 13)?, num(14, 16)?);
    let rest = s.get(16..)?;
    let (secs_str, zone) = match rest.find(['Z', 'z', '+', '-']) {
        Some(i) => (rest.get(..i)?, rest.get(i..)?),
        None => (rest, ""),
    };
    let sec: f64 = match secs_str.strip_prefix(':') {
        Some(x) if !x.is_empty() => x.parse().ok()?,
        _ => 0.0,
    };
    let offset_s: i64 = match zone.as_bytes().first() {
        None | Some(b'Z') | Some(b'z') => 0,
        Some(sign) => {
            let z = zone.get(1..)?.replace(':', "");
            let hh: i64 = z.get(0..2)?.parse().ok()?;
            let mm: i64 = z.get(2..4).map(str::parse).transpose().ok()?.unwrap_or(0);
            let o = hh * 3600 + mm * 60;
            if *sign == b'-' { -o } else { o }
        }
    };
    let t = utc(y, mo, d, h, mi, sec)?;
    Some(UnixMicros(t.0 - offset_s * 1_000_000))
}

/// Two-digit year used by trackers (YY) to a full year: 00..=99 -> 2000..=2099.
pub(crate) fn year2(yy: i64) -> i64 {
    2000 + yy
}

/// Hex encoding for diagnostics and a few text fields.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_check_values() {
        assert_eq!(crc16_x25(b"123456789"), 0x906E);
        assert_eq!(crc16_ibm(b"123456789"), 0xBB3D);
    }

    #[test]
    fn calendar_round_trip() {
        let t = utc(2015, 10, 20, 14, 21, 11.0).map(|t| t.0);
        assert_eq!(t, Some(1_445_350_871_000_000));
        assert_eq!(
            civil(UnixMicros(1_445_350_871_000_000)),
            (2015, 10, 20, 14, 21, 11)
        );
        assert_eq!(
            parse_iso8601("2016-01-27T18:55:47Z").map(|t| t.0 / 1_000_000),
            Some(1_453_920_947)
        );
        assert_eq!(
            parse_iso8601("2016-01-27T18:55:47.500+01:00").map(|t| t.0),
            Some(1_453_917_347_500_000)
        );
    }
}
