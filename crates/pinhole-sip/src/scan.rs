//! Byte-level helpers shared by the parsers: character classes (RFC 3261
//! §25.1), whitespace skipping across folded lines, bounded integers.
//!
//! Every function takes a buffer and positions into it and never indexes
//! past the end: out-of-range positions read as "no byte".

use std::ops::Range;

/// `token` characters by byte value (a table: every header name and Via
/// element is scanned with it).
static TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            );
        i += 1;
    }
    t
};

/// `token` characters: alphanum and `-.!%*_+`'~`.
#[inline]
pub(crate) fn is_token(b: u8) -> bool {
    TOKEN[usize::from(b)]
}

/// SP or HTAB.
pub(crate) fn is_wsp(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Linear white space inside a (possibly folded) header value: SP, HTAB and
/// the CR/LF of a fold. Header lines are cut before this runs, so a CR or LF
/// inside a value span is always part of a continuation.
pub(crate) fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// The byte at `i`, if any.
pub(crate) fn at(buf: &[u8], i: usize) -> Option<u8> {
    buf.get(i).copied()
}

/// The first position in `i..end` (clamped to the buffer) where `class`
/// does not hold; `i` itself when that is past the end.
fn skip_while(buf: &[u8], i: usize, end: usize, class: impl Fn(u8) -> bool) -> usize {
    // One slice and a position: no bounds check per byte.
    match buf.get(i..end.min(buf.len())) {
        Some(s) => i + s.iter().position(|&b| !class(b)).unwrap_or(s.len()),
        None => i,
    }
}

/// The first position in `i..end` that is not LWS (`end` if none).
pub(crate) fn skip_lws(buf: &[u8], i: usize, end: usize) -> usize {
    skip_while(buf, i, end, is_lws)
}

/// The first position in `i..end` that is not SP or HTAB.
pub(crate) fn skip_wsp(buf: &[u8], i: usize, end: usize) -> usize {
    skip_while(buf, i, end, is_wsp)
}

/// The first position in `i..end` that is not a token character.
pub(crate) fn skip_token(buf: &[u8], i: usize, end: usize) -> usize {
    skip_while(buf, i, end, is_token)
}

/// `range` without leading and trailing LWS.
pub(crate) fn trim(buf: &[u8], range: Range<usize>) -> Range<usize> {
    let start = skip_lws(buf, range.start, range.end);
    let mut end = range.end;
    while end > start && at(buf, end - 1).is_some_and(is_lws) {
        end -= 1;
    }
    start..end
}

/// The bytes of `range`, or an empty slice if it does not fit `buf`.
pub(crate) fn slice(buf: &[u8], range: Range<usize>) -> &[u8] {
    buf.get(range).unwrap_or(&[])
}

/// Parses `1*DIGIT` (leading zeros allowed, as RFC 4475 `wsinv` has them)
/// into a value no larger than `max`. `None` for an empty span, a non-digit
/// or an overflow.
pub(crate) fn parse_digits(bytes: &[u8], max: u64) -> Option<u64> {
    if bytes.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &b in bytes {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
        if v > max {
            return None;
        }
    }
    Some(v)
}

/// Parses a port number (0..=65535).
pub(crate) fn parse_port(bytes: &[u8]) -> Option<u16> {
    parse_digits(bytes, u64::from(u16::MAX)).and_then(|v| u16::try_from(v).ok())
}

/// Skips a quoted string starting at `i` (which must hold `"`), honouring
/// `\` quoted pairs. Returns the position after the closing quote, or `None`
/// if the string is not closed before `end`.
pub(crate) fn skip_quoted(buf: &[u8], i: usize, end: usize) -> Option<usize> {
    let mut j = i + 1;
    while j < end {
        match at(buf, j)? {
            b'"' => return Some(j + 1),
            b'\\' => j += 2,
            _ => j += 1,
        }
    }
    None
}

/// Case-insensitive ASCII equality.
#[inline]
pub(crate) fn eq_ic(a: &[u8], b: &[u8]) -> bool {
    // Names are nearly always written as the RFC spells them: an exact
    // comparison settles most cases for a fraction of the caseless one.
    a == b || a.eq_ignore_ascii_case(b)
}

/// The end of the line starting at `i`: `(content_end, next_line_start)`,
/// where `content_end` excludes the CR of a CRLF. `None` if no LF follows.
pub(crate) fn line_end(buf: &[u8], i: usize) -> Option<(usize, usize)> {
    let rest = buf.get(i..)?;
    let lf = i + memchr::memchr(b'\n', rest)?;
    let content_end = if lf > i && at(buf, lf - 1) == Some(b'\r') {
        lf - 1
    } else {
        lf
    };
    Some((content_end, lf + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_table_is_the_rfc_3261_class() {
        for b in 0..=255u8 {
            let expected = b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b);
            assert_eq!(is_token(b), expected, "byte {b:#04x}");
        }
    }

    #[test]
    fn digits_with_leading_zeros_and_overflow() {
        assert_eq!(parse_digits(b"0068", 255), Some(68));
        assert_eq!(parse_digits(b"256", 255), None);
        assert_eq!(parse_digits(b"", 255), None);
        assert_eq!(parse_digits(b"1a", 255), None);
        assert_eq!(parse_digits(b"36893488147419103232", u64::MAX), None);
        assert_eq!(parse_port(b"65535"), Some(65535));
        assert_eq!(parse_port(b"65536"), None);
    }

    #[test]
    fn quoted_strings_with_escapes() {
        let s = br#""a \" b" x"#;
        assert_eq!(skip_quoted(s, 0, s.len()), Some(8));
        let open = br#""never closed \""#;
        assert_eq!(skip_quoted(open, 0, open.len()), None);
    }

    #[test]
    fn lines_and_trim() {
        let b = b"ab\r\ncd\nef";
        assert_eq!(line_end(b, 0), Some((2, 4)));
        assert_eq!(line_end(b, 4), Some((6, 7)));
        assert_eq!(line_end(b, 7), None);
        assert_eq!(line_end(b, 99), None);
        let v = b"x:  a b \r\n c  ";
        assert_eq!(trim(v, 2..v.len()), 4..12);
        assert_eq!(trim(v, 3..3), 3..3);
    }
}
