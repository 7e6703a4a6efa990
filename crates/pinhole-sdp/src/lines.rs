//! Splitting a body into lines and a value into tokens, by position only.

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
    /// End of the content: trailing blanks and CR excluded.
    pub(crate) end: usize,
    /// Where the line's LF is, or the end of the text for a last line
    /// without one.
    pub(crate) raw_end: usize,
    /// Start of the next line (past the LF).
    pub(crate) after: usize,
    /// True when the line ends with LF.
    pub(crate) terminated: bool,
}

/// The lines of `body[..limit]`, split at LF; a CR before the LF, leading and
/// trailing blanks are left out of the content, never out of the body.
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
        let (raw_end, after, terminated) = match memchr::memchr(b'\n', rest) {
            Some(i) => (raw_start + i, raw_start + i + 1, true),
            None => (self.limit, self.limit, false),
        };
        let line = self.body.get(raw_start..raw_end).unwrap_or_default();
        let lead = line
            .iter()
            .take_while(|&&b| b == b' ' || b == b'\t')
            .count();
        let trail = line
            .get(lead..)
            .unwrap_or_default()
            .iter()
            .rev()
            .take_while(|&&b| b == b' ' || b == b'\t' || b == b'\r')
            .count();
        self.pos = after;
        Some(Line {
            no: self.no,
            raw_start,
            start: raw_start + lead,
            end: raw_end - trail,
            raw_end,
            after,
            terminated,
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
        self.skip_blanks();
        self.pos..self.end.max(self.pos)
    }

    fn skip_blanks(&mut self) {
        while self.pos < self.end && matches!(self.body.get(self.pos), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }
}

impl Iterator for Tokens<'_> {
    type Item = Range<usize>;

    fn next(&mut self) -> Option<Range<usize>> {
        self.skip_blanks();
        if self.pos >= self.end {
            return None;
        }
        let start = self.pos;
        while self.pos < self.end && !matches!(self.body.get(self.pos), Some(b' ' | b'\t') | None) {
            self.pos += 1;
        }
        Some(start..self.pos)
    }
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
    fn tokens_skip_runs_of_blanks() {
        let b = b"m=audio  4000\tRTP/AVP 0 ";
        let t: Vec<&[u8]> = Tokens::new(b, 2..b.len()).map(|s| &b[s]).collect();
        assert_eq!(t, vec![&b"audio"[..], b"4000", b"RTP/AVP", b"0"]);
        let mut t = Tokens::new(b, 2..b.len());
        t.next();
        assert_eq!(&b[t.rest()], b"4000\tRTP/AVP 0 ");
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
