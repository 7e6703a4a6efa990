//! Header names (long and compact forms) and the header-line scanner shared
//! by [`crate::Message::parse`], [`crate::frame`] and multipart bodies.

use std::ops::Range;

use crate::error::ParseError;
use crate::scan::{at, eq_ic, is_wsp, line_end, skip_token, skip_wsp, trim};

/// A header field name, recognised case-insensitively in its long or
/// compact form (RFC 3261 §7.3.3 and the IANA SIP "Header Fields"
/// registry). Every name this crate does not list is [`HeaderName::Other`];
/// use [`crate::Message::headers_by_name`] for those.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HeaderName {
    /// `Via`, `v`.
    Via,
    /// `From`, `f`.
    From,
    /// `To`, `t`.
    To,
    /// `Call-ID`, `i`.
    CallId,
    /// `CSeq`.
    CSeq,
    /// `Contact`, `m`.
    Contact,
    /// `Content-Length`, `l`.
    ContentLength,
    /// `Content-Type`, `c`.
    ContentType,
    /// `Max-Forwards`.
    MaxForwards,
    /// `Route`.
    Route,
    /// `Record-Route`.
    RecordRoute,
    /// `Supported`, `k`.
    Supported,
    /// `Require`.
    Require,
    /// `Expires`.
    Expires,
    /// `Proxy-Require`.
    ProxyRequire,
    /// `Content-Encoding`, `e`.
    ContentEncoding,
    /// `Content-Disposition`.
    ContentDisposition,
    /// `Subject`, `s`.
    Subject,
    /// `Event`, `o` (RFC 6665).
    Event,
    /// `Allow-Events`, `u` (RFC 6665).
    AllowEvents,
    /// `Refer-To`, `r` (RFC 3515).
    ReferTo,
    /// `Referred-By`, `b` (RFC 3892).
    ReferredBy,
    /// `Session-Expires`, `x` (RFC 4028).
    SessionExpires,
    /// `Accept-Contact`, `a` (RFC 3841).
    AcceptContact,
    /// `Reject-Contact`, `j` (RFC 3841).
    RejectContact,
    /// `Request-Disposition`, `d` (RFC 3841).
    RequestDisposition,
    /// `Identity`, `y` (RFC 8224).
    Identity,
    /// `Identity-Info`, `n` (RFC 4474, obsolete).
    IdentityInfo,
    /// Any other name.
    Other,
}

/// Long name, compact letter, variant.
const NAMES: &[(&str, Option<u8>, HeaderName)] = &[
    ("Via", Some(b'v'), HeaderName::Via),
    ("From", Some(b'f'), HeaderName::From),
    ("To", Some(b't'), HeaderName::To),
    ("Call-ID", Some(b'i'), HeaderName::CallId),
    ("CSeq", None, HeaderName::CSeq),
    ("Contact", Some(b'm'), HeaderName::Contact),
    ("Content-Length", Some(b'l'), HeaderName::ContentLength),
    ("Content-Type", Some(b'c'), HeaderName::ContentType),
    ("Max-Forwards", None, HeaderName::MaxForwards),
    ("Route", None, HeaderName::Route),
    ("Record-Route", None, HeaderName::RecordRoute),
    ("Supported", Some(b'k'), HeaderName::Supported),
    ("Require", None, HeaderName::Require),
    ("Expires", None, HeaderName::Expires),
    ("Proxy-Require", None, HeaderName::ProxyRequire),
    ("Content-Encoding", Some(b'e'), HeaderName::ContentEncoding),
    ("Content-Disposition", None, HeaderName::ContentDisposition),
    ("Subject", Some(b's'), HeaderName::Subject),
    ("Event", Some(b'o'), HeaderName::Event),
    ("Allow-Events", Some(b'u'), HeaderName::AllowEvents),
    ("Refer-To", Some(b'r'), HeaderName::ReferTo),
    ("Referred-By", Some(b'b'), HeaderName::ReferredBy),
    ("Session-Expires", Some(b'x'), HeaderName::SessionExpires),
    ("Accept-Contact", Some(b'a'), HeaderName::AcceptContact),
    ("Reject-Contact", Some(b'j'), HeaderName::RejectContact),
    (
        "Request-Disposition",
        Some(b'd'),
        HeaderName::RequestDisposition,
    ),
    ("Identity", Some(b'y'), HeaderName::Identity),
    ("Identity-Info", Some(b'n'), HeaderName::IdentityInfo),
];

impl HeaderName {
    /// Classifies a header name as it appears on the wire (any case, long
    /// or compact form).
    ///
    /// ```
    /// use pinhole_sip::HeaderName;
    /// assert_eq!(HeaderName::from_bytes(b"l"), HeaderName::ContentLength);
    /// assert_eq!(HeaderName::from_bytes(b"MaX-fOrWaRdS"), HeaderName::MaxForwards);
    /// assert_eq!(HeaderName::from_bytes(b"X-Foo"), HeaderName::Other);
    /// ```
    pub fn from_bytes(name: &[u8]) -> Self {
        if let [c] = name {
            let c = c.to_ascii_lowercase();
            return NAMES
                .iter()
                .find(|(_, compact, _)| *compact == Some(c))
                .map_or(Self::Other, |&(_, _, n)| n);
        }
        // Every message has a dozen names: compare only those of the same
        // length (`compact_and_long_names_agree` checks that this finds
        // every entry of NAMES).
        let same_length: &[(&str, Self)] = match name.len() {
            2 => &[("To", Self::To)],
            3 => &[("Via", Self::Via)],
            4 => &[("From", Self::From), ("CSeq", Self::CSeq)],
            5 => &[("Route", Self::Route), ("Event", Self::Event)],
            7 => &[
                ("Call-ID", Self::CallId),
                ("Contact", Self::Contact),
                ("Require", Self::Require),
                ("Expires", Self::Expires),
                ("Subject", Self::Subject),
            ],
            8 => &[("Refer-To", Self::ReferTo), ("Identity", Self::Identity)],
            9 => &[("Supported", Self::Supported)],
            11 => &[("Referred-By", Self::ReferredBy)],
            12 => &[
                ("Content-Type", Self::ContentType),
                ("Max-Forwards", Self::MaxForwards),
                ("Record-Route", Self::RecordRoute),
                ("Allow-Events", Self::AllowEvents),
            ],
            13 => &[
                ("Proxy-Require", Self::ProxyRequire),
                ("Identity-Info", Self::IdentityInfo),
            ],
            14 => &[
                ("Content-Length", Self::ContentLength),
                ("Accept-Contact", Self::AcceptContact),
                ("Reject-Contact", Self::RejectContact),
            ],
            15 => &[("Session-Expires", Self::SessionExpires)],
            16 => &[("Content-Encoding", Self::ContentEncoding)],
            19 => &[
                ("Content-Disposition", Self::ContentDisposition),
                ("Request-Disposition", Self::RequestDisposition),
            ],
            _ => &[],
        };
        same_length
            .iter()
            .find(|(long, _)| eq_ic(long.as_bytes(), name))
            .map_or(Self::Other, |&(_, n)| n)
    }

    /// The canonical long name (`None` for [`HeaderName::Other`]).
    pub fn long_name(self) -> Option<&'static str> {
        NAMES
            .iter()
            .find(|&&(_, _, n)| n == self)
            .map(|&(long, _, _)| long)
    }

    /// The compact form's letter, if the name has one.
    pub fn compact(self) -> Option<char> {
        NAMES
            .iter()
            .find(|&&(_, _, n)| n == self)
            .and_then(|&(_, c, _)| c.map(char::from))
    }
}

/// One header field of a message. Spans are byte offsets into the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// The recognised name.
    pub name: HeaderName,
    /// The name as written (without the white space before `:`).
    pub name_span: Range<usize>,
    /// The value, trimmed of leading and trailing white space; folded line
    /// ends inside it are kept as they are. Empty (`v..v`) for an empty value.
    pub value: Range<usize>,
    /// The whole field: name start to after the line end of its last
    /// continuation line (to the end of the buffer if that line has none).
    pub line: Range<usize>,
}

/// What starts at a position of the header section.
pub(crate) enum Step {
    /// A header field, and where the next line starts.
    Header(Header),
    /// The empty line ending the header section.
    Blank {
        /// Where the empty line starts.
        headers_end: usize,
        /// Where the body starts (after the empty line).
        body_start: usize,
    },
    /// The buffer ends here (a datagram without the empty line).
    End,
}

/// Why the line at `p` (content up to `content_end`) does not start with
/// `name:`: the same reasons, in the same cases, as a search for the first
/// colon followed by a check of the name before it would give.
fn bad_name(buf: &[u8], p: usize, content_end: usize) -> ParseError {
    let line = buf.get(p..content_end).unwrap_or(&[]);
    let reason = if memchr::memchr(b':', line).is_none() {
        "no ':' after the header name"
    } else {
        "header name is not a token"
    };
    ParseError::Header { at: p, reason }
}

/// Reads the header field or empty line starting at `p`.
pub(crate) fn step(buf: &[u8], p: usize) -> Result<Step, ParseError> {
    match at(buf, p) {
        None => return Ok(Step::End),
        Some(b'\n') => {
            return Ok(Step::Blank {
                headers_end: p,
                body_start: p + 1,
            });
        }
        Some(b'\r') if at(buf, p + 1) == Some(b'\n') => {
            return Ok(Step::Blank {
                headers_end: p,
                body_start: p + 2,
            });
        }
        Some(b) if is_wsp(b) => {
            return Err(ParseError::Header {
                at: p,
                reason: "continuation line without a header before it",
            });
        }
        Some(_) => {}
    }
    let (mut content_end, mut next) = line_end(buf, p).unwrap_or((buf.len(), buf.len()));
    // A token, maybe SP/HTAB (HCOLON allows them), then ':'. Neither class
    // holds ':', so that colon is the line's first one; one pass over the
    // name instead of a search for ':' and a second pass to check it.
    let name_end = skip_token(buf, p, content_end);
    let colon = skip_wsp(buf, name_end, content_end);
    if name_end == p || at(buf, colon) != Some(b':') || colon >= content_end {
        return Err(bad_name(buf, p, content_end));
    }
    let name = buf.get(p..name_end).unwrap_or(&[]);
    // RFC 3261 §7.3.1: a line starting with SP or HTAB continues the field.
    while at(buf, next).is_some_and(is_wsp) {
        (content_end, next) = line_end(buf, next).unwrap_or((buf.len(), buf.len()));
    }
    Ok(Step::Header(Header {
        name: HeaderName::from_bytes(name),
        name_span: p..name_end,
        value: trim(buf, colon + 1..content_end),
        line: p..next,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(buf: &[u8]) -> Header {
        match step(buf, 0) {
            Ok(Step::Header(h)) => h,
            _ => panic!("not a header"),
        }
    }

    #[test]
    fn compact_and_long_names_agree() {
        for &(long, compact, n) in NAMES {
            assert_eq!(HeaderName::from_bytes(long.as_bytes()), n);
            assert_eq!(
                HeaderName::from_bytes(long.to_ascii_uppercase().as_bytes()),
                n
            );
            if let Some(c) = compact {
                assert_eq!(HeaderName::from_bytes(&[c]), n);
                assert_eq!(HeaderName::from_bytes(&[c.to_ascii_uppercase()]), n);
                assert_eq!(n.compact(), Some(char::from(c)));
            }
            assert_eq!(n.long_name(), Some(long));
        }
        assert_eq!(HeaderName::from_bytes(b"q"), HeaderName::Other);
        assert_eq!(HeaderName::from_bytes(b""), HeaderName::Other);
        assert_eq!(HeaderName::Other.long_name(), None);
    }

    #[test]
    fn folded_value_with_space_before_colon() {
        let b = b"cseq : 0009\r\n  INVITE\r\nX: y\r\n";
        let h = header(b);
        assert_eq!(h.name, HeaderName::CSeq);
        assert_eq!(&b[h.name_span.clone()], b"cseq");
        assert_eq!(&b[h.value.clone()], b"0009\r\n  INVITE");
        assert_eq!(h.line, 0..23);
    }

    #[test]
    fn empty_value_and_last_line_without_line_end() {
        let b = b"s :\r\n";
        let h = header(b);
        assert_eq!(h.value, 3..3);
        let b = b"l: 0";
        let h = header(b);
        assert_eq!(&b[h.value.clone()], b"0");
        assert_eq!(h.line, 0..4);
    }

    /// The name rule as first written: the first ':' of the line, white
    /// space before it dropped, the rest must be a non-empty token.
    fn reference_name(line: &[u8]) -> Result<(usize, usize), &'static str> {
        let colon = memchr::memchr(b':', line).ok_or("no ':' after the header name")?;
        let mut end = colon;
        while end > 0 && is_wsp(line[end - 1]) {
            end -= 1;
        }
        let name = &line[..end];
        if name.is_empty() || !name.iter().all(|&b| crate::scan::is_token(b)) {
            return Err("header name is not a token");
        }
        Ok((end, colon))
    }

    proptest::proptest! {
        #[test]
        fn name_scan_agrees_with_the_first_colon_rule(
            line in proptest::collection::vec(
                proptest::sample::select(b"aZ-.:; \t\"<x@".to_vec()), 0..12),
        ) {
            let mut buf = line.clone();
            buf.extend_from_slice(b"\r\n");
            // Lines starting with white space are continuations: not this rule.
            proptest::prop_assume!(!line.first().is_some_and(|&b| is_wsp(b)));
            let got = match step(&buf, 0) {
                Ok(Step::Header(h)) => Ok(h.name_span.end),
                Ok(_) => return Ok(()),
                Err(ParseError::Header { reason, .. }) => Err(reason),
                Err(e) => panic!("{e}"),
            };
            proptest::prop_assert_eq!(got, reference_name(&line).map(|(end, _)| end));
        }
    }

    #[test]
    fn malformed_lines_are_errors() {
        assert!(matches!(
            step(b"no colon\r\n", 0),
            Err(ParseError::Header { at: 0, .. })
        ));
        assert!(matches!(
            step(b": empty\r\n", 0),
            Err(ParseError::Header { .. })
        ));
        assert!(matches!(
            step(b"a b: c\r\n", 0),
            Err(ParseError::Header { .. })
        ));
        assert!(matches!(
            step(b" x: c\r\n", 0),
            Err(ParseError::Header { .. })
        ));
        assert!(matches!(
            step(b"\r\nbody", 0),
            Ok(Step::Blank {
                headers_end: 0,
                body_start: 2
            })
        ));
        assert!(matches!(
            step(b"\nbody", 0),
            Ok(Step::Blank {
                headers_end: 0,
                body_start: 1
            })
        ));
        assert!(matches!(step(b"", 0), Ok(Step::End)));
    }
}
