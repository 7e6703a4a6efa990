//! Just enough SIP (RFC 3261) to tell which message carried an SDP body:
//! the start line, the headers as written, and the body.
//!
//! ```
//! use pinhole_tests::sipp::sip::{SipMessage, StartLine};
//!
//! let msg = SipMessage::parse(b"SIP/2.0 183 Session Progress\r\nCSeq: 1 INVITE\r\n\r\nv=0\r\n")?;
//! assert_eq!(msg.start, StartLine::Response { code: 183, reason: "Session Progress".into() });
//! assert_eq!(msg.cseq(), Some((1, "INVITE")));
//! assert_eq!(msg.body, b"v=0\r\n");
//! # Ok::<(), pinhole_tests::sipp::sip::SipError>(())
//! ```

use std::fmt;

/// Why a SIP message was rejected.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum SipError {
    /// The start line and headers are not UTF-8.
    #[error("SIP headers are not UTF-8 text")]
    NotText,
    /// No blank line ends the headers.
    #[error("SIP message has no end of headers")]
    NoHeaderEnd,
    /// The first line is neither a request line nor a status line.
    #[error("bad SIP start line {0:?}")]
    BadStartLine(String),
    /// A header line has no colon.
    #[error("bad SIP header line {0:?}")]
    BadHeader(String),
}

/// A request line or a status line.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum StartLine {
    /// `METHOD uri SIP/2.0`.
    Request {
        /// The method, e.g. `INVITE`.
        method: String,
        /// The Request-URI as written.
        uri: String,
    },
    /// `SIP/2.0 code reason`.
    Response {
        /// The status code.
        code: u16,
        /// The reason phrase.
        reason: String,
    },
}

impl fmt::Display for StartLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Request { method, uri } => write!(f, "{method} {uri}"),
            Self::Response { code, reason } => write!(f, "{code} {reason}"),
        }
    }
}

/// A parsed SIP message.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SipMessage {
    /// The first line.
    pub start: StartLine,
    /// Header names and values in order, folded lines joined, names as
    /// written.
    pub headers: Vec<(String, String)>,
    /// Everything after the blank line.
    pub body: Vec<u8>,
}

impl SipMessage {
    /// Parses one message (CRLF or bare LF line ends).
    pub fn parse(bytes: &[u8]) -> Result<Self, SipError> {
        let (head, body) = split_head(bytes).ok_or(SipError::NoHeaderEnd)?;
        let head = std::str::from_utf8(head).map_err(|_| SipError::NotText)?;
        let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
        let first = lines.next().unwrap_or_default();
        let start = parse_start(first).ok_or_else(|| SipError::BadStartLine(first.to_owned()))?;
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in lines {
            if line.starts_with([' ', '\t']) {
                // Folded continuation of the previous header.
                match headers.last_mut() {
                    Some((_, v)) => {
                        v.push(' ');
                        v.push_str(line.trim());
                    }
                    None => return Err(SipError::BadHeader(line.to_owned())),
                }
                continue;
            }
            let (name, value) = line
                .split_once(':')
                .filter(|(n, _)| !n.trim().is_empty())
                .ok_or_else(|| SipError::BadHeader(line.to_owned()))?;
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
        Ok(Self {
            start,
            headers,
            body: body.to_vec(),
        })
    }

    /// The first value of header `name` (case-insensitive; the compact
    /// forms `c`, `l`, `i`, `f`, `t`, `v` and `m` count too).
    pub fn header(&self, name: &str) -> Option<&str> {
        let compact = compact_form(name);
        self.headers
            .iter()
            .find(|(n, _)| {
                n.eq_ignore_ascii_case(name) || compact.is_some_and(|c| n.eq_ignore_ascii_case(c))
            })
            .map(|(_, v)| v.as_str())
    }

    /// The CSeq number and method.
    pub fn cseq(&self) -> Option<(u32, &str)> {
        let (n, method) = self.header("CSeq")?.split_once(' ')?;
        Some((n.trim().parse().ok()?, method.trim()))
    }

    /// The request method, or `None` for a response.
    pub fn method(&self) -> Option<&str> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The status code, or `None` for a request.
    pub fn status(&self) -> Option<u16> {
        match &self.start {
            StartLine::Response { code, .. } => Some(*code),
            StartLine::Request { .. } => None,
        }
    }

    /// True when the body is SDP: by Content-Type, or, when that header is
    /// missing, by a body starting with `v=`.
    pub fn has_sdp(&self) -> bool {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return false;
        }
        match self.header("Content-Type") {
            Some(ct) => ct
                .split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/sdp")),
            None => self.body.starts_with(b"v="),
        }
    }
}

impl fmt::Display for SipMessage {
    /// A short label: `INVITE sip:..` or `200 OK (INVITE)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.start)?;
        if let (StartLine::Response { .. }, Some((_, m))) = (&self.start, self.cseq()) {
            write!(f, " ({m})")?;
        }
        Ok(())
    }
}

/// Splits at the first blank line (CRLFCRLF or LFLF).
fn split_head(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let crlf = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, i + 4));
    let lf = bytes
        .windows(2)
        .position(|w| w == b"\n\n")
        .map(|i| (i, i + 2));
    let (end, body) = match (crlf, lf) {
        (Some(a), Some(b)) => {
            if a.0 < b.0 {
                a
            } else {
                b
            }
        }
        (Some(a), None) => a,
        (None, Some(b)) => b,
        (None, None) => return None,
    };
    Some((bytes.get(..end)?, bytes.get(body..)?))
}

fn parse_start(line: &str) -> Option<StartLine> {
    if let Some(rest) = line.strip_prefix("SIP/2.0 ") {
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        let code: u16 = code.parse().ok().filter(|c| (100..700).contains(c))?;
        return Some(StartLine::Response {
            code,
            reason: reason.to_owned(),
        });
    }
    let mut parts = line.split(' ');
    let (method, uri, version) = (parts.next()?, parts.next()?, parts.next()?);
    let token = !method.is_empty() && method.bytes().all(|b| b.is_ascii_alphabetic());
    if !token || uri.is_empty() || version != "SIP/2.0" || parts.next().is_some() {
        return None;
    }
    Some(StartLine::Request {
        method: method.to_owned(),
        uri: uri.to_owned(),
    })
}

fn compact_form(name: &str) -> Option<&'static str> {
    const PAIRS: [(&str, &str); 7] = [
        ("Content-Type", "c"),
        ("Content-Length", "l"),
        ("Call-ID", "i"),
        ("From", "f"),
        ("To", "t"),
        ("Via", "v"),
        ("Contact", "m"),
    ];
    PAIRS
        .iter()
        .find(|(long, _)| long.eq_ignore_ascii_case(name))
        .map(|&(_, short)| short)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_a_request_with_sdp() {
        let raw = b"INVITE sip:bob@corp2.example SIP/2.0\r\n\
            Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-1\r\n\
            Subject: a folded\r\n  header\r\n\
            CSeq: 7 INVITE\r\n\
            c: application/sdp\r\n\
            Content-Length: 9\r\n\r\nv=0\r\ns=-\r\n";
        let m = SipMessage::parse(raw).unwrap();
        assert_eq!(m.method(), Some("INVITE"));
        assert_eq!(m.status(), None);
        assert_eq!(m.header("subject"), Some("a folded header"));
        assert_eq!(m.header("Content-Type"), Some("application/sdp"));
        assert_eq!(m.cseq(), Some((7, "INVITE")));
        assert!(m.has_sdp());
        assert_eq!(m.body, b"v=0\r\ns=-\r\n");
        assert_eq!(m.to_string(), "INVITE sip:bob@corp2.example");
    }

    #[test]
    fn responses_and_bodiless_messages() {
        let m = SipMessage::parse(b"SIP/2.0 487 Request Terminated\nCSeq: 1 INVITE\n\n").unwrap();
        assert_eq!(m.status(), Some(487));
        assert!(!m.has_sdp());
        assert_eq!(m.to_string(), "487 Request Terminated (INVITE)");
        // A body without Content-Type counts as SDP only if it looks like it.
        let m = SipMessage::parse(b"SIP/2.0 200 OK\r\n\r\nv=0\r\n").unwrap();
        assert!(m.has_sdp());
        let m = SipMessage::parse(b"SIP/2.0 200 OK\r\nContent-Type: text/plain\r\n\r\nv=0\r\n")
            .unwrap();
        assert!(!m.has_sdp());
    }

    #[test]
    fn rejects_malformed_messages() {
        assert_eq!(
            SipMessage::parse(b"INVITE sip:a SIP/2.0\r\n"),
            Err(SipError::NoHeaderEnd)
        );
        assert!(matches!(
            SipMessage::parse(b"HELLO\r\n\r\n"),
            Err(SipError::BadStartLine(_))
        ));
        assert!(matches!(
            SipMessage::parse(b"SIP/2.0 99 Low\r\n\r\n"),
            Err(SipError::BadStartLine(_))
        ));
        assert!(matches!(
            SipMessage::parse(b"INVITE sip:a SIP/3.0\r\n\r\n"),
            Err(SipError::BadStartLine(_))
        ));
        assert!(matches!(
            SipMessage::parse(b"SIP/2.0 200 OK\r\nno colon\r\n\r\n"),
            Err(SipError::BadHeader(_))
        ));
        assert!(matches!(
            SipMessage::parse(b"SIP/2.0 200 OK\r\n folded\r\n\r\n"),
            Err(SipError::BadHeader(_))
        ));
        assert_eq!(
            SipMessage::parse(b"SIP/2.0 200 \xff\r\n\r\n"),
            Err(SipError::NotText)
        );
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = SipMessage::parse(&bytes);
        }

        #[test]
        fn reads_back_what_was_written(
            code in 100u16..700,
            cseq in any::<u32>(),
            method in "[A-Z]{3,9}",
            body in "[a-z=0-9 \r\n]{0,40}",
        ) {
            let raw = format!("SIP/2.0 {code} Reason Words\r\nCSeq: {cseq} {method}\r\n\r\n{body}");
            let m = SipMessage::parse(raw.as_bytes()).unwrap();
            prop_assert_eq!(m.status(), Some(code));
            prop_assert_eq!(m.cseq(), Some((cseq, method.as_str())));
            prop_assert_eq!(m.body, body.as_bytes());
        }
    }
}
