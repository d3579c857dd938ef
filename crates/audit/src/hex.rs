//! Lower-case hexadecimal, the form hashes, keys and signatures take in text files.
//!
//! Written here rather than pulled in as a crate: it is twenty lines and the bundle format
//! must not change with a dependency's idea of formatting.

use thiserror::Error;

/// Text that is not lower- or upper-case hex of the expected length.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HexError {
    #[error("hex text has odd length {0}")]
    OddLength(usize),
    #[error("invalid hex digit at byte {0}")]
    BadDigit(usize),
    #[error("expected {expected} bytes of hex, got {got}")]
    WrongLength { expected: usize, got: usize },
}

/// Encodes bytes as lower-case hex.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    s
}

/// Decodes hex (either case) into bytes.
pub fn from_hex(text: &str) -> Result<Vec<u8>, HexError> {
    let b = text.as_bytes();
    if !b.len().is_multiple_of(2) {
        return Err(HexError::OddLength(b.len()));
    }
    let digit = |i: usize| -> Result<u8, HexError> {
        match b[i] {
            c @ b'0'..=b'9' => Ok(c - b'0'),
            c @ b'a'..=b'f' => Ok(c - b'a' + 10),
            c @ b'A'..=b'F' => Ok(c - b'A' + 10),
            _ => Err(HexError::BadDigit(i)),
        }
    };
    (0..b.len() / 2)
        .map(|i| Ok((digit(2 * i)? << 4) | digit(2 * i + 1)?))
        .collect()
}

/// Decodes exactly `N` bytes of hex.
pub(crate) fn from_hex_array<const N: usize>(text: &str) -> Result<[u8; N], HexError> {
    let v = from_hex(text)?;
    let got = v.len();
    v.try_into()
        .map_err(|_| HexError::WrongLength { expected: N, got })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        assert_eq!(to_hex(&[0x00, 0xab, 0xff]), "00abff");
        assert_eq!(from_hex("00ABff"), Ok(vec![0x00, 0xab, 0xff]));
        assert_eq!(from_hex("abc"), Err(HexError::OddLength(3)));
        assert_eq!(from_hex("zz"), Err(HexError::BadDigit(0)));
        assert_eq!(
            from_hex_array::<2>("aa"),
            Err(HexError::WrongLength {
                expected: 2,
                got: 1
            })
        );
    }
}
