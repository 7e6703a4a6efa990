//! [`Message`]: one SIP message tokenized into spans of its buffer.

use std::ops::Range;

use crate::error::ParseError;
use crate::header::{self, Header, HeaderName, Step};
use crate::name_addr::name_addrs;
use crate::scan::{at, eq_ic, is_token, line_end, parse_digits, skip_lws, skip_token, slice, trim};
use crate::via::{self, Via};

/// The first line of a message. Spans are byte offsets into the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartLine {
    /// `Method SP Request-URI SP SIP-Version`.
    Request {
        /// The method token.
        method: Range<usize>,
        /// The Request-URI.
        uri: Range<usize>,
        /// The version, e.g. `SIP/2.0`.
        version: Range<usize>,
    },
    /// `SIP-Version SP Status-Code SP Reason-Phrase`.
    Response {
        /// The version, e.g. `SIP/2.0`.
        version: Range<usize>,
        /// The status code, 100..=699.
        code: u16,
        /// The reason phrase (may be empty).
        reason: Range<usize>,
    },
}

/// A SIP message borrowed from its buffer: the start line, every header
/// field in order, and the body, all as spans. Nothing is copied or
/// normalised, so edits recorded against these spans in a
/// [`pinhole_core::patch::Patch`] leave every other byte as it was.
#[derive(Clone, Debug)]
pub struct Message<'a> {
    buf: &'a [u8],
    start: StartLine,
    crlf: bool,
    headers: Vec<Header>,
    headers_end: usize,
    body: Range<usize>,
    /// Index into `headers` and the declared value.
    content_length: Option<(usize, usize)>,
    /// Number and method span of the first CSeq.
    cseq: Option<(u32, Range<usize>)>,
}

fn start_err(at: usize, reason: &'static str) -> ParseError {
    ParseError::StartLine { at, reason }
}

/// `SIP/1*DIGIT.1*DIGIT`, "SIP" in any case.
fn valid_version(v: &[u8]) -> bool {
    let Some((sip, num)) = v.split_at_checked(4) else {
        return false;
    };
    let mut parts = num.splitn(2, |&b| b == b'.');
    let (Some(major), Some(minor)) = (parts.next(), parts.next()) else {
        return false;
    };
    eq_ic(sip, b"SIP/")
        && !major.is_empty()
        && !minor.is_empty()
        && major.iter().chain(minor).all(u8::is_ascii_digit)
}

fn parse_start(buf: &[u8], end: usize) -> Result<StartLine, ParseError> {
    let line = slice(buf, 0..end);
    if line.len() >= 4 && eq_ic(slice(line, 0..4), b"SIP/") {
        let sp = memchr::memchr(b' ', line).ok_or_else(|| start_err(end, "no status code"))?;
        if !valid_version(slice(line, 0..sp)) {
            return Err(start_err(0, "bad SIP version"));
        }
        let code = slice(line, sp + 1..sp + 4);
        let ends = sp + 4 == end || at(line, sp + 4) == Some(b' ');
        let code = match parse_digits(code, 999) {
            Some(c) if code.len() == 3 && ends && (100..=699).contains(&c) => c as u16,
            _ => return Err(ParseError::StatusCode { at: sp + 1 }),
        };
        let reason = if sp + 4 < end { sp + 5..end } else { end..end };
        return Ok(StartLine::Response {
            version: 0..sp,
            code,
            reason,
        });
    }
    // RFC 3261 §7.1: exactly one SP between the three elements, none after
    // (RFC 4475 lwsruri, lwsstart, trws).
    let sp1 = memchr::memchr(b' ', line).ok_or_else(|| start_err(0, "no SP after the method"))?;
    let sp2 = memchr::memrchr(b' ', line).unwrap_or(sp1);
    if sp1 == 0 || !line.iter().take(sp1).all(|&b| is_token(b)) {
        return Err(start_err(0, "method is not a token"));
    }
    if sp2 == sp1 {
        return Err(start_err(sp1, "no SP between Request-URI and version"));
    }
    if !valid_version(slice(line, sp2 + 1..end)) {
        return Err(start_err(sp2 + 1, "bad SIP version"));
    }
    let uri = slice(line, sp1 + 1..sp2);
    if let Some(i) = uri.iter().position(|&b| b <= b' ' || b == 0x7f) {
        return Err(start_err(
            sp1 + 1 + i,
            "white space or control byte in the Request-URI",
        ));
    }
    // RFC 4475 ltgtruri: the Request-URI starts with a scheme, not '<'.
    let scheme_len = uri
        .iter()
        .position(|&b| !(b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')))
        .unwrap_or(uri.len());
    if scheme_len == 0
        || !uri.first().is_some_and(u8::is_ascii_alphabetic)
        || uri.get(scheme_len) != Some(&b':')
    {
        return Err(start_err(sp1 + 1, "Request-URI has no scheme"));
    }
    Ok(StartLine::Request {
        method: 0..sp1,
        uri: sp1 + 1..sp2,
        version: sp2 + 1..end,
    })
}

/// Content-Length's value, checked.
pub(crate) fn content_length_of(buf: &[u8], h: &Header) -> Result<usize, ParseError> {
    let v = slice(buf, h.value.clone());
    let at = h.value.start;
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return Err(ParseError::ContentLength {
            at,
            reason: "not a decimal number",
        });
    }
    parse_digits(v, u64::from(u32::MAX))
        .and_then(|n| usize::try_from(n).ok())
        .ok_or(ParseError::ContentLength {
            at,
            reason: "larger than 4294967295",
        })
}

/// CSeq's number and method span.
fn cseq_of(buf: &[u8], h: &Header) -> Result<(u32, Range<usize>), ParseError> {
    let v = h.value.clone();
    let e = |reason| ParseError::CSeq {
        at: v.start,
        reason,
    };
    let mut d = v.start;
    while d < v.end && at(buf, d).is_some_and(|b| b.is_ascii_digit()) {
        d += 1;
    }
    if d == v.start {
        return Err(e("no sequence number"));
    }
    // RFC 3261 §8.1.1.5: a 32-bit unsigned number (RFC 4475 scalar02).
    let n = parse_digits(slice(buf, v.start..d), u64::from(u32::MAX))
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| e("sequence number larger than 32 bits"))?;
    let m0 = skip_lws(buf, d, v.end);
    if m0 == d {
        return Err(e("no white space before the method"));
    }
    let m1 = skip_token(buf, m0, v.end);
    if m1 == m0 || m1 != v.end {
        return Err(e("method is not a single token"));
    }
    Ok((n, m0..m1))
}

impl<'a> Message<'a> {
    /// Parses one message (a UDP datagram, or one frame cut by
    /// [`crate::frame`]).
    ///
    /// Accepts CRLF, LF-only and mixed line ends, folded header lines
    /// (RFC 3261 §7.3.1), compact names, extension methods, any URI scheme
    /// in the request line, header names in any case, white space before
    /// `:`. The body is `Content-Length` bytes after the empty line; without
    /// Content-Length it runs to the end of the buffer (UDP). Bytes after
    /// the body are ignored and reported by [`Message::trailing`]. A buffer
    /// ending after a header line without the empty line is a message
    /// without body (RFC 4475 `baddn`).
    ///
    /// Checked here, because a proxy cannot route what fails them: the
    /// start line (RFC 4475 §3.1.2.7–3.1.2.10, 3.1.2.19), Content-Length
    /// (a number, given once, not past the end), every CSeq (32-bit number,
    /// one method, equal to a request's method) and every Via value.
    /// Everything else (From, To, Contact, Date, ...) is checked only when
    /// read.
    pub fn parse(buf: &'a [u8]) -> Result<Self, ParseError> {
        let Some((line_stop, mut p)) = line_end(buf, 0) else {
            return Err(ParseError::Truncated {
                at: buf.len(),
                reason: "no line end after the start line",
            });
        };
        if line_stop == 0 {
            return Err(start_err(0, "empty start line"));
        }
        let crlf = line_stop + 1 < p;
        let start = parse_start(buf, line_stop)?;
        let method = match &start {
            StartLine::Request { method, .. } => Some(slice(buf, method.clone())),
            StartLine::Response { .. } => None,
        };
        let mut headers = Vec::with_capacity(16);
        let mut content_length = None;
        let mut cseq = None;
        let (headers_end, body_start) = loop {
            let h = match header::step(buf, p)? {
                Step::Header(h) => h,
                Step::Blank {
                    headers_end,
                    body_start,
                } => break (headers_end, body_start),
                Step::End => break (buf.len(), buf.len()),
            };
            match h.name {
                HeaderName::ContentLength => {
                    // RFC 4475 §3.3.9 (mcl01): two values cannot both be right.
                    if content_length.is_some() {
                        return Err(ParseError::ContentLength {
                            at: h.value.start,
                            reason: "given more than once",
                        });
                    }
                    content_length = Some((headers.len(), content_length_of(buf, &h)?));
                }
                HeaderName::CSeq => {
                    let (n, m) = cseq_of(buf, &h)?;
                    if method.is_some_and(|rm| rm != slice(buf, m.clone())) {
                        return Err(ParseError::CSeqMethodMismatch { at: m.start });
                    }
                    cseq.get_or_insert((n, m));
                }
                HeaderName::Via => via::parse_list(buf, h.value.clone(), |_| {})?,
                _ => {}
            }
            p = h.line.end;
            headers.push(h);
        };
        let available = buf.len() - body_start;
        let body_len = match content_length {
            Some((i, n)) if n > available => {
                return Err(ParseError::BodyTruncated {
                    at: headers.get(i).map_or(0, |h| h.value.start),
                    declared: n as u64,
                    available,
                });
            }
            Some((_, n)) => n,
            None => available,
        };
        Ok(Self {
            buf,
            start,
            crlf,
            headers,
            headers_end,
            body: body_start..body_start + body_len,
            content_length,
            cseq,
        })
    }

    /// The whole buffer the message was parsed from.
    pub fn buf(&self) -> &'a [u8] {
        self.buf
    }

    /// The start line.
    pub fn start(&self) -> &StartLine {
        &self.start
    }

    /// True for a request.
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    /// A request's method.
    pub fn method(&self) -> Option<&'a str> {
        match &self.start {
            StartLine::Request { method, .. } => {
                std::str::from_utf8(slice(self.buf, method.clone())).ok()
            }
            StartLine::Response { .. } => None,
        }
    }

    /// A response's status code.
    pub fn status(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { code, .. } => Some(code),
            StartLine::Request { .. } => None,
        }
    }

    /// A response's reason phrase.
    pub fn reason(&self) -> Option<&'a [u8]> {
        match &self.start {
            StartLine::Response { reason, .. } => Some(slice(self.buf, reason.clone())),
            StartLine::Request { .. } => None,
        }
    }

    /// The SIP version of the start line as written (e.g. `SIP/2.0`;
    /// RFC 4475 `badvers` has `SIP/7.0`: answering 505 is the proxy's job).
    pub fn version(&self) -> &'a str {
        let v = match &self.start {
            StartLine::Request { version, .. } | StartLine::Response { version, .. } => version,
        };
        std::str::from_utf8(slice(self.buf, v.clone())).unwrap_or("")
    }

    /// The span of a request's Request-URI.
    pub fn request_uri(&self) -> Option<Range<usize>> {
        match &self.start {
            StartLine::Request { uri, .. } => Some(uri.clone()),
            StartLine::Response { .. } => None,
        }
    }

    /// Every header field, in message order.
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }

    /// The first header field called `name` (long or compact form).
    pub fn header(&self, name: HeaderName) -> Option<&Header> {
        self.headers.iter().find(|h| h.name == name)
    }

    /// Every header field called `name` (long or compact form), in order.
    pub fn headers_named(&self, name: HeaderName) -> impl Iterator<Item = &Header> + '_ {
        self.headers.iter().filter(move |h| h.name == name)
    }

    /// Every header field whose name, as written, equals `name`
    /// case-insensitively (for extension headers; no compact-form mapping).
    pub fn headers_by_name<'s>(&'s self, name: &'s [u8]) -> impl Iterator<Item = &'s Header> + 's {
        self.headers
            .iter()
            .filter(move |h| eq_ic(slice(self.buf, h.name_span.clone()), name))
    }

    /// A header's value bytes (trimmed; folded line ends kept as they are).
    pub fn value(&self, h: &Header) -> &'a [u8] {
        slice(self.buf, h.value.clone())
    }

    /// The first Call-ID's value (`None` if absent or empty).
    pub fn call_id(&self) -> Option<&'a [u8]> {
        self.header(HeaderName::CallId)
            .map(|h| self.value(h))
            .filter(|v| !v.is_empty())
    }

    /// The first CSeq's number and method.
    pub fn cseq(&self) -> Option<(u32, &'a str)> {
        let (n, m) = self.cseq.clone()?;
        Some((n, std::str::from_utf8(slice(self.buf, m)).ok()?))
    }

    fn tag_of(&self, name: HeaderName) -> Option<&'a [u8]> {
        let h = self.header(name)?;
        let first = name_addrs(self.buf, h.value.clone())
            .ok()?
            .into_iter()
            .next()?;
        first.tag(self.buf).map(|t| slice(self.buf, t))
    }

    /// The `tag` parameter of the first From (`None` if absent or the value
    /// does not parse).
    pub fn from_tag(&self) -> Option<&'a [u8]> {
        self.tag_of(HeaderName::From)
    }

    /// The `tag` parameter of the first To.
    pub fn to_tag(&self) -> Option<&'a [u8]> {
        self.tag_of(HeaderName::To)
    }

    /// The first Content-Type's media type without parameters, e.g.
    /// `b"application/sdp"` (as written: compare case-insensitively).
    pub fn content_type(&self) -> Option<&'a [u8]> {
        let h = self.header(HeaderName::ContentType)?;
        let v = h.value.clone();
        let semi = memchr::memchr(b';', slice(self.buf, v.clone())).map_or(v.end, |s| v.start + s);
        let t = slice(self.buf, trim(self.buf, v.start..semi));
        (!t.is_empty()).then_some(t)
    }

    /// The declared Content-Length, if the header is present.
    pub fn content_length(&self) -> Option<usize> {
        self.content_length.map(|(_, n)| n)
    }

    /// The Content-Length header field, if present.
    pub fn content_length_header(&self) -> Option<&Header> {
        self.content_length.and_then(|(i, _)| self.headers.get(i))
    }

    /// The first Max-Forwards value (RFC 3261 §20.22: 0..=255; leading
    /// zeros allowed).
    pub fn max_forwards(&self) -> Result<Option<u8>, ParseError> {
        let Some(h) = self.header(HeaderName::MaxForwards) else {
            return Ok(None);
        };
        parse_digits(self.value(h), 255)
            .and_then(|n| u8::try_from(n).ok())
            .map(Some)
            .ok_or(ParseError::Number {
                at: h.value.start,
                reason: "Max-Forwards is not a number in 0..=255",
            })
    }

    /// The body span.
    pub fn body(&self) -> Range<usize> {
        self.body.clone()
    }

    /// Where the empty line ending the header section starts (the end of
    /// the buffer if there is none). New header lines go here.
    pub fn headers_end(&self) -> usize {
        self.headers_end
    }

    /// `b"\r\n"` or `b"\n"`, as the start line ends: what to use for lines
    /// a rewriter adds.
    pub fn line_ending(&self) -> &'static [u8] {
        if self.crlf { b"\r\n" } else { b"\n" }
    }

    /// Every via-parm of every Via header, top first (comma lists split).
    pub fn vias(&self) -> Vec<Via> {
        let mut out = Vec::new();
        for h in self.headers_named(HeaderName::Via) {
            // Checked by `parse`, so this cannot fail.
            let _ = via::parse_list(self.buf, h.value.clone(), |v| out.push(v));
        }
        out
    }

    /// The SDP bodies to rewrite: the body if it is `application/sdp`, or
    /// the `application/sdp` parts of a `multipart/*` body (boundary from
    /// Content-Type; one level of nested multipart), as message offsets.
    /// Empty if there is none.
    pub fn sdp_bodies(&self) -> Result<Vec<Range<usize>>, ParseError> {
        crate::multipart::sdp_bodies(self)
    }

    /// Bytes after the body (normally empty; RFC 4475 `dblreq`).
    pub fn trailing(&self) -> Range<usize> {
        self.body.end..self.buf.len()
    }
}

/// True when `value` (a media type, maybe with LWS around `/`) is
/// `ty/sub`, case-insensitively.
pub(crate) fn media_type_is(value: &[u8], ty: &[u8], sub: &[u8]) -> bool {
    let Some(slash) = memchr::memchr(b'/', value) else {
        return false;
    };
    let t = trim(value, 0..slash);
    let s = trim(value, slash + 1..value.len());
    eq_ic(slice(value, t), ty) && (sub == b"*" || eq_ic(slice(value, s), sub))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_rule() {
        for ok in [&b"SIP/2.0"[..], b"sip/2.0", b"SIP/7.0", b"SIP/10.12"] {
            assert!(valid_version(ok));
        }
        for bad in [
            &b"SIP/2"[..],
            b"SIP/2.",
            b"SIP/.0",
            b"SIP2.0",
            b"HTTP/1.1",
            b"SIP/2.0 ",
            b"",
        ] {
            assert!(!valid_version(bad));
        }
    }

    #[test]
    fn media_types() {
        assert!(media_type_is(b"application/sdp", b"application", b"sdp"));
        assert!(media_type_is(b"Application / SDP", b"application", b"sdp"));
        assert!(media_type_is(b"multipart/mixed", b"multipart", b"*"));
        assert!(!media_type_is(b"application/sdpx", b"application", b"sdp"));
        assert!(!media_type_is(b"application", b"application", b"sdp"));
    }
}
