//! Splitting a body into lines and a value into tokens, by position only.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Range;

/// One line of the body.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Line {
    /// 1-based line number.
    pub(crate) no: usize,
    /// Where the line begins, leading blanks included.
    pub(crate) raw_start: usize,
    /// First byte of the content (leading blanks skipped).
    pub(crate) start: usize,
    /// End of the content: trailing blanks and CRs excluded.
    pub(crate) end: usize,
    /// Where the line's LF is, or the end of the text for a last line
    /// without one.
    pub(crate) raw_end: usize,
    /// Start of the next line (past the LF).
    pub(crate) after: usize,
    /// True when the line ends with LF.
    pub(crate) terminated: bool,
    /// True when the line holds a control character other than a tab (CRs
    /// and blanks just before its end are part of the line ending): not a
    /// text line.
    pub(crate) control: bool,
}

/// Eight copies of a byte.
const fn splat(b: u8) -> u64 {
    u64::from_ne_bytes([b; 8])
}

/// True when some byte of `x` is below 0x20 (a control character). The
/// classic test for "has a byte less than n" (n <= 128): no false
/// negatives, and a false positive only where a true positive exists too.
fn has_control(x: u64) -> bool {
    x.wrapping_sub(splat(0x20)) & !x & splat(0x80) != 0
}

/// Position of the first control character other than a tab in `b` (LF
/// and CR are control characters). Lines are mostly printable text, so
/// eight bytes are tested at a time.
fn find_control(b: &[u8]) -> Option<usize> {
    let is_control = |c: &u8| *c < 0x20 && *c != b'\t';
    let mut chunks = b.chunks_exact(8);
    let mut at = 0;
    for c in &mut chunks {
        let word = <[u8; 8]>::try_from(c).map_or(u64::MAX, u64::from_ne_bytes);
        if has_control(word)
            && let Some(i) = c.iter().position(is_control)
        {
            return Some(at + i);
        }
        at += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(is_control)
        .map(|i| at + i)
}

/// The lines of `body[..limit]`, split at LF; CRs before the LF, leading and
/// trailing blanks are left out of the content, never out of the body. One
/// scan per line finds both its end and any control character in it.
pub(crate) struct Lines<'a> {
    body: &'a [u8],
    limit: usize,
    pos: usize,
    no: usize,
}

impl<'a> Lines<'a> {
    pub(crate) fn new(body: &'a [u8], limit: usize) -> Self {
        Self {
            body,
            limit: limit.min(body.len()),
            pos: 0,
            no: 0,
        }
    }

    /// How many lines have been returned so far.
    pub(crate) fn count_so_far(&self) -> usize {
        self.no
    }
}

impl Iterator for Lines<'_> {
    type Item = Line;

    fn next(&mut self) -> Option<Line> {
        let rest = self.body.get(self.pos..self.limit)?;
        if rest.is_empty() {
            return None;
        }
        self.no += 1;
        let raw_start = self.pos;
        let mut control = false;
        let lf = match find_control(rest) {
            None => None,
            Some(i) => match (rest.get(i), rest.get(i + 1)) {
                (Some(b'\n'), _) => Some(i),
                (Some(b'\r'), Some(b'\n')) => Some(i + 1),
                _ => {
                    // A run of CRs and blanks just before the line end is
                    // part of the ending; anything else is a control
                    // character.
                    let tail = rest.get(i..).unwrap_or_default();
                    let run = tail
                        .iter()
                        .take_while(|&&b| matches!(b, b'\r' | b' ' | b'\t'))
                        .count();
                    match tail.get(run) {
                        None => None,
                        Some(b'\n') => Some(i + run),
                        Some(_) => {
                            control = true;
                            memchr::memchr(b'\n', tail).map(|j| i + j)
                        }
                    }
                }
            },
        };
        let (raw_end, after, terminated) = match lf {
            Some(i) => (raw_start + i, raw_start + i + 1, true),
            None => (self.limit, self.limit, false),
        };
        let (mut start, mut end) = (raw_start, raw_end);
        while start < end && matches!(self.body.get(start), Some(b' ' | b'\t')) {
            start += 1;
        }
        while end > start && matches!(self.body.get(end - 1), Some(b' ' | b'\t' | b'\r')) {
            end -= 1;
        }
        self.pos = after;
        Some(Line {
            no: self.no,
            raw_start,
            start,
            end,
            raw_end,
            after,
            terminated,
            control,
        })
    }
}

/// The blank-separated tokens of `body[span]`, as spans of the body.
pub(crate) struct Tokens<'a> {
    body: &'a [u8],
    pos: usize,
    end: usize,
}

impl<'a> Tokens<'a> {
    pub(crate) fn new(body: &'a [u8], span: Range<usize>) -> Self {
        Self {
            body,
            pos: span.start,
            end: span.end.min(body.len()),
        }
    }

    /// The unread rest, blanks before it skipped (empty at the end).
    pub(crate) fn rest(&mut self) -> Range<usize> {
        let rest = self.body.get(self.pos..self.end).unwrap_or_default();
        self.pos += rest.iter().take_while(|&&b| is_blank(b)).count();
        self.pos..self.end.max(self.pos)
    }
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

impl Iterator for Tokens<'_> {
    type Item = Range<usize>;

    fn next(&mut self) -> Option<Range<usize>> {
        let rest = self.body.get(self.pos..self.end)?;
        let skip = rest.iter().position(|&b| !is_blank(b))?;
        let word = rest.get(skip..).unwrap_or_default();
        let len = word.iter().position(|&b| is_blank(b)).unwrap_or(word.len());
        let start = self.pos + skip;
        self.pos = start + len;
        Some(start..self.pos)
    }
}

/// An IP literal: dotted-quad IPv4 read by hand (the common case, and
/// several times faster than `str::parse`), IPv6 by the standard library.
/// Accepts exactly what `IpAddr::from_str` accepts.
pub(crate) fn parse_ip(b: &[u8]) -> Option<IpAddr> {
    if let Some(v4) = parse_ipv4(b) {
        return Some(IpAddr::V4(v4));
    }
    if !b.contains(&b':') {
        return None;
    }
    std::str::from_utf8(b)
        .ok()?
        .parse::<Ipv6Addr>()
        .ok()
        .map(IpAddr::V6)
}

/// Four decimal octets (0..=255, no leading zeros) separated by dots.
fn parse_ipv4(b: &[u8]) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut n = 0;
    let mut value: u16 = 0;
    let mut digits = 0;
    for &c in b {
        if c == b'.' {
            *octets.get_mut(n)? = u8::try_from(value).ok().filter(|_| digits > 0)?;
            n += 1;
            (value, digits) = (0, 0);
        } else if c.is_ascii_digit() && digits < 3 && !(digits == 1 && value == 0) {
            value = value * 10 + u16::from(c - b'0');
            digits += 1;
        } else {
            return None;
        }
    }
    if n != 3 {
        return None;
    }
    *octets.get_mut(3)? = u8::try_from(value).ok().filter(|_| digits > 0)?;
    Some(Ipv4Addr::from(octets))
}

/// A decimal number from 0 to 65535 (at most five digits: no sign, no
/// blanks).
pub(crate) fn parse_u16(digits: &[u8]) -> Option<u16> {
    if digits.is_empty() || digits.len() > 5 {
        return None;
    }
    let mut v: u32 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(d - b'0');
    }
    u16::try_from(v).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contents(body: &[u8]) -> Vec<&[u8]> {
        Lines::new(body, body.len())
            .map(|l| &body[l.start..l.end])
            .collect()
    }

    #[test]
    fn lines_split_at_lf_and_trim_cr_and_blanks() {
        assert_eq!(
            contents(b"v=0\r\n  a=x \t\r\n\nm=audio"),
            vec![&b"v=0"[..], b"a=x", b"", b"m=audio"]
        );
        let l: Vec<Line> = Lines::new(b"a\r\nb", 4).collect();
        assert!(l[0].terminated && !l[1].terminated);
        assert_eq!((l[1].raw_start, l[1].after, l[1].no), (3, 4, 2));
        // A limit inside the body hides what follows (trailing NULs).
        assert_eq!(contents(&b"v=0\n\0\0"[..]).len(), 2);
        assert_eq!(Lines::new(b"v=0\n\0\0", 4).count(), 1);
    }

    #[test]
    fn control_characters_are_found_and_line_ends_are_not() {
        let lines = |b: &'static [u8]| -> Vec<(bool, &'static [u8])> {
            Lines::new(b, b.len())
                .map(|l| (l.control, &b[l.start..l.end]))
                .collect()
        };
        assert_eq!(
            lines(b"a=1\r\r\nb=2 \r\n"),
            vec![(false, &b"a=1"[..]), (false, b"b=2")]
        );
        assert_eq!(
            lines(b"a=1\r \nb=2\r"),
            vec![(false, &b"a=1"[..]), (false, b"b=2")]
        );
        assert_eq!(
            lines(b"a=\x01\nb=\rc\nd=\t16 bytes and more\x1f\n"),
            vec![
                (true, &b"a=\x01"[..]),
                (true, b"b=\rc"),
                (true, b"d=\t16 bytes and more\x1f")
            ]
        );
        // Every position of a control byte in and around the 8-byte words.
        for at in 0..20 {
            for (byte, found) in [
                (0x07u8, true),
                (0x1f, true),
                (b'\n', true),
                (b'\t', false),
                (0x20, false),
                (0x7f, false),
                (0x80, false),
                (0xff, false),
            ] {
                let mut b = vec![b'x'; 20];
                b[at] = byte;
                assert_eq!(find_control(&b), found.then_some(at), "{byte:#x} at {at}");
            }
        }
        for x in [
            0u64,
            u64::MAX,
            0x2020_2020_2020_2020,
            0x1f20_0a0d_0980_ff7f,
            0x8080_8080_8080_8080,
        ] {
            let want = x.to_ne_bytes().iter().any(|&b| b < 0x20);
            assert_eq!(has_control(x), want, "{x:#x}");
        }
    }

    #[test]
    fn tokens_skip_runs_of_blanks() {
        let b = b"m=audio  4000\tRTP/AVP 0 ";
        let t: Vec<&[u8]> = Tokens::new(b, 2..b.len()).map(|s| &b[s]).collect();
        assert_eq!(t, vec![&b"audio"[..], b"4000", b"RTP/AVP", b"0"]);
        let mut t = Tokens::new(b, 2..b.len());
        t.next();
        assert_eq!(&b[t.rest()], b"4000\tRTP/AVP 0 ");
    }

    #[test]
    fn ip_literals_parse_as_the_standard_library_does() {
        for t in [
            "0.0.0.0",
            "255.255.255.255",
            "10.0.0.1",
            "256.0.0.1",
            "1.2.3",
            "1.2.3.4.5",
            "01.2.3.4",
            "1..3.4",
            "1.2.3.4.",
            ".1.2.3",
            "1.2.3.04",
            "1.2.3.0",
            "::",
            "::1",
            "fe80:0:0:0:21a:a0ff:fe07:32e0",
            "::ffff:1.2.3.4",
            "1:2",
            "a.b.c.d",
            "",
            "1234.1.1.1",
        ] {
            assert_eq!(parse_ip(t.as_bytes()), t.parse::<IpAddr>().ok(), "{t:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn ipv4_parse_matches_std(t in "[0-9.]{0,18}") {
            proptest::prop_assert_eq!(parse_ip(t.as_bytes()), t.parse::<IpAddr>().ok());
        }
    }

    #[test]
    fn u16_numbers() {
        assert_eq!(parse_u16(b"0"), Some(0));
        assert_eq!(parse_u16(b"65535"), Some(65535));
        assert_eq!(parse_u16(b"65536"), None);
        assert_eq!(parse_u16(b"004000"), None);
        assert_eq!(parse_u16(b""), None);
        assert_eq!(parse_u16(b"-1"), None);
        assert_eq!(parse_u16(b"4e3"), None);
    }
}
