//! Time-based one-time passwords (RFC 6238 over RFC 4226 HOTP, HMAC-SHA-1), the form every
//! authenticator app speaks: 30-second steps, 6 digits, one step of clock skew either way.
//!
//! [`verify`] returns the matched step so that the server can store it and refuse the same
//! or an earlier step next time (a code seen over a shoulder cannot be replayed).

use domain::UnixMicros;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// Step length in seconds.
pub const STEP_S: i64 = 30;
pub const DIGITS: u32 = 6;

/// The HOTP value for `counter` with `digits` digits (RFC 4226 §5.3).
pub fn hotp(secret: &[u8], counter: u64, digits: u32) -> u32 {
    // HMAC accepts keys of any length, so this cannot fail; the fallback keeps it total.
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(secret) else {
        return 0;
    };
    mac.update(&counter.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let offset = usize::from(h[19] & 0x0f);
    let bin = (u32::from(h[offset]) & 0x7f) << 24
        | u32::from(h[offset + 1]) << 16
        | u32::from(h[offset + 2]) << 8
        | u32::from(h[offset + 3]);
    bin % 10u32.pow(digits.min(9))
}

/// The step containing `now`.
pub fn step_at(now: UnixMicros) -> i64 {
    now.0.div_euclid(STEP_S * UnixMicros::SECOND)
}

/// The code an app shows at `now`, zero-padded.
pub fn code_at(secret: &[u8], now: UnixMicros) -> String {
    let step = u64::try_from(step_at(now)).unwrap_or(0);
    format!(
        "{:0width$}",
        hotp(secret, step, DIGITS),
        width = DIGITS as usize
    )
}

/// Checks a user's code at `now` with ±1 step of skew. Returns the step that matched, which
/// must be greater than `last_used_step` (replay protection).
pub fn verify(
    secret: &[u8],
    code: &str,
    now: UnixMicros,
    last_used_step: Option<i64>,
) -> Option<i64> {
    let code = code.trim();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let want: u32 = code.parse().ok()?;
    let now_step = step_at(now);
    let mut matched = None;
    // Check all three steps regardless of where the match is, so timing does not tell
    // which step matched.
    for step in [now_step - 1, now_step, now_step + 1] {
        let Ok(counter) = u64::try_from(step) else {
            continue;
        };
        if hotp(secret, counter, DIGITS) == want && last_used_step.is_none_or(|l| step > l) {
            matched = matched.or(Some(step));
        }
    }
    matched
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn rfc6238_sha1_vectors() {
        // RFC 6238 Appendix B, SHA-1 column (8 digits).
        let vectors: &[(i64, u32)] = &[
            (59, 94_287_082),
            (1_111_111_109, 7_081_804),
            (1_111_111_111, 14_050_471),
            (1_234_567_890, 89_005_924),
            (2_000_000_000, 69_279_037),
            (20_000_000_000, 65_353_130),
        ];
        for &(t, expect) in vectors {
            let step = step_at(UnixMicros::from_secs(t)) as u64;
            assert_eq!(hotp(RFC_SECRET, step, 8), expect, "T = {t}");
        }
    }

    #[test]
    fn rfc4226_hotp_vectors() {
        let expect = [
            755_224, 287_082, 359_152, 969_429, 338_314, 254_676, 287_922, 162_583, 399_871,
            520_489,
        ];
        for (counter, e) in expect.iter().enumerate() {
            assert_eq!(hotp(RFC_SECRET, counter as u64, 6), *e);
        }
    }

    #[test]
    fn skew_window_and_replay() {
        let now = UnixMicros::from_secs(1_111_111_111);
        let step = step_at(now);
        let code = |s: i64| format!("{:06}", hotp(RFC_SECRET, s as u64, 6));
        assert_eq!(code_at(RFC_SECRET, now), code(step));
        assert_eq!(verify(RFC_SECRET, &code(step), now, None), Some(step));
        assert_eq!(
            verify(RFC_SECRET, &code(step - 1), now, None),
            Some(step - 1)
        );
        assert_eq!(
            verify(RFC_SECRET, &code(step + 1), now, None),
            Some(step + 1)
        );
        assert_eq!(verify(RFC_SECRET, &code(step - 2), now, None), None);
        assert_eq!(verify(RFC_SECRET, &code(step + 2), now, None), None);
        assert_eq!(
            verify(RFC_SECRET, &code(step), now, Some(step)),
            None,
            "replay"
        );
        for bad in ["", "12345", "1234567", "12a456"] {
            assert_eq!(verify(RFC_SECRET, bad, now, None), None);
        }
    }
}
