//! Cutting a datagram into lines: CRLF, LF, or a bare CR (tolerated: some
//! old gateways send it) ends a line; the last line may have none.

/// One line of the datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Line {
    /// 1-based line number in the datagram.
    pub(crate) no: usize,
    /// First byte of the line.
    pub(crate) start: usize,
    /// End of its text (before the line end).
    pub(crate) end: usize,
    /// First byte after its line end.
    pub(crate) next: usize,
}

/// The lines of `buf[from..]`.
#[derive(Clone, Debug)]
pub(crate) struct Lines<'a> {
    buf: &'a [u8],
    at: usize,
    no: usize,
}

impl<'a> Lines<'a> {
    /// Lines from byte `at`, numbering the first one `no`.
    pub(crate) fn new(buf: &'a [u8], at: usize, no: usize) -> Self {
        Self { buf, at, no }
    }
}

impl Iterator for Lines<'_> {
    type Item = Line;

    fn next(&mut self) -> Option<Line> {
        let rest = self.buf.get(self.at..).filter(|r| !r.is_empty())?;
        let start = self.at;
        let (end, next) = match memchr::memchr2(b'\r', b'\n', rest) {
            None => (self.buf.len(), self.buf.len()),
            Some(i) => {
                let crlf = rest.get(i) == Some(&b'\r') && rest.get(i + 1) == Some(&b'\n');
                (start + i, start + i + 1 + usize::from(crlf))
            }
        };
        let line = Line {
            no: self.no,
            start,
            end,
            next,
        };
        self.at = next;
        self.no += 1;
        Some(line)
    }
}

/// True for the bytes of a blank line (RFC 3435 §3.1 separates the session
/// description by an empty line; spaces and tabs on it are tolerated).
pub(crate) fn is_blank(text: &[u8]) -> bool {
    text.iter().all(|b| matches!(b, b' ' | b'\t'))
}

/// True for the piggyback separator: a line holding one period (§3.6).
pub(crate) fn is_separator(text: &[u8]) -> bool {
    matches!(text.trim_ascii_end(), b".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_ending() {
        let buf = b"a\r\nb\nc\rd\r\r\ne";
        let got: Vec<_> = Lines::new(buf, 0, 1)
            .map(|l| (l.no, &buf[l.start..l.end], l.next))
            .collect();
        assert_eq!(
            got,
            [
                (1, &b"a"[..], 3),
                (2, b"b", 5),
                (3, b"c", 7),
                (4, b"d", 9),
                (5, b"", 11),
                (6, b"e", 12)
            ]
        );
        assert_eq!(Lines::new(b"", 0, 1).count(), 0);
        assert_eq!(Lines::new(b"x\n", 0, 1).count(), 1);
        assert!(is_separator(b". ") && !is_separator(b"..") && !is_separator(b""));
        assert!(is_blank(b" \t") && !is_blank(b"."));
    }
}
