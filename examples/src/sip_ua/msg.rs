//! The SIP text the user agent writes (RFC 3261 §8.1.1, §8.2.6, §12.2.1)
//! and the few things it reads back out of a parsed message (its SDP is
//! [`super::media`]'s).

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use pinhole_core::types::Transport;
use pinhole_sip::{HeaderName, Message, Via, name_addrs};

/// What the UA allows (the `Allow` header of its requests and answers).
pub(super) const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS";

/// `host:port` as a Via sent-by or URI host part: IPv6 in brackets.
pub(super) fn host_port(a: SocketAddr) -> String {
    match a.ip() {
        IpAddr::V4(ip) => format!("{ip}:{}", a.port()),
        IpAddr::V6(ip) => format!("[{ip}]:{}", a.port()),
    }
}

/// A request the UA sends.
pub(super) struct Request<'a> {
    pub(super) method: &'a str,
    pub(super) uri: &'a str,
    /// Our Via sent-by.
    /// Our sent-by and the transport the Via names.
    pub(super) via: (SocketAddr, Transport),
    pub(super) branch: &'a str,
    /// From and To header values, tags included.
    pub(super) from: &'a str,
    pub(super) to: &'a str,
    pub(super) call_id: &'a str,
    pub(super) cseq: u32,
    /// Route URIs, in order.
    pub(super) route: &'a [String],
    /// Our Contact URI (dialog-creating requests).
    pub(super) contact: Option<&'a str>,
    /// An SDP body.
    pub(super) sdp: Option<&'a str>,
}

impl Request<'_> {
    pub(super) fn build(&self) -> Vec<u8> {
        let mut s = String::with_capacity(800);
        let _ = write!(
            s,
            "{m} {uri} SIP/2.0\r\n\
             Via: SIP/2.0/{transport} {via};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n",
            m = self.method,
            uri = self.uri,
            transport = self.via.1,
            via = host_port(self.via.0),
            branch = self.branch,
        );
        if !self.route.is_empty() {
            let route: Vec<String> = self.route.iter().map(|r| format!("<{r}>")).collect();
            let _ = write!(s, "Route: {}\r\n", route.join(", "));
        }
        let _ = write!(
            s,
            "From: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {} {}\r\n",
            self.from, self.to, self.call_id, self.cseq, self.method
        );
        if let Some(c) = self.contact {
            let _ = write!(s, "Contact: <{c}>\r\nAllow: {ALLOW}\r\n");
        }
        s.push_str("User-Agent: pinhole-smart-ua\r\n");
        body(&mut s, self.sdp);
        s.into_bytes()
    }
}

fn body(s: &mut String, sdp: Option<&str>) {
    match sdp {
        Some(b) => {
            let _ = write!(
                s,
                "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{b}",
                b.len()
            );
        }
        None => s.push_str("Content-Length: 0\r\n\r\n"),
    }
}

/// A response to `req` (RFC 3261 §8.2.6.2): its Via, From, Call-ID and
/// CSeq copied byte for byte, To with `to_tag` added when it has none, and
/// its Record-Route copied when `record_route` (§12.1.1: 1xx and 2xx to a
/// dialog-creating request).
pub(super) struct Response<'a> {
    pub(super) code: u16,
    pub(super) reason: &'a str,
    pub(super) to_tag: &'a str,
    pub(super) record_route: bool,
    pub(super) contact: Option<&'a str>,
    pub(super) sdp: Option<&'a str>,
}

impl<'a> Response<'a> {
    /// An answer with no dialog behind it: no Record-Route, Contact or
    /// body.
    pub(super) fn bare(code: u16, reason: &'a str, to_tag: &'a str) -> Self {
        Self {
            code,
            reason,
            to_tag,
            record_route: false,
            contact: None,
            sdp: None,
        }
    }

    pub(super) fn build(&self, req: &Message<'_>) -> Vec<u8> {
        let buf = req.buf();
        let mut out = format!("SIP/2.0 {} {}\r\n", self.code, self.reason).into_bytes();
        for h in req.headers() {
            let copy = match h.name {
                HeaderName::Via | HeaderName::From | HeaderName::CallId | HeaderName::CSeq => true,
                HeaderName::RecordRoute => self.record_route,
                HeaderName::To => {
                    out.extend_from_slice(b"To: ");
                    out.extend_from_slice(req.value(h));
                    if req.to_tag().is_none() {
                        out.extend_from_slice(format!(";tag={}", self.to_tag).as_bytes());
                    }
                    out.extend_from_slice(b"\r\n");
                    false
                }
                _ => false,
            };
            if copy {
                out.extend_from_slice(buf.get(h.name_span.clone()).unwrap_or_default());
                out.extend_from_slice(b": ");
                out.extend_from_slice(req.value(h));
                out.extend_from_slice(b"\r\n");
            }
        }
        let mut s = String::new();
        if let Some(c) = self.contact {
            let _ = write!(s, "Contact: <{c}>\r\n");
        }
        if matches!(self.code, 200..=299 | 405) {
            let _ = write!(s, "Allow: {ALLOW}\r\n");
        }
        s.push_str("Server: pinhole-smart-ua\r\n");
        body(&mut s, self.sdp);
        out.extend_from_slice(s.as_bytes());
        out
    }
}

/// The text of a header's value, if it is UTF-8.
pub(super) fn text<'a>(msg: &Message<'a>, name: HeaderName) -> Option<&'a str> {
    msg.header(name)
        .and_then(|h| std::str::from_utf8(msg.value(h)).ok())
}

/// The first Contact URI.
pub(super) fn contact_uri(msg: &Message<'_>) -> Option<String> {
    let buf = msg.buf();
    let h = msg.header(HeaderName::Contact)?;
    let first = name_addrs(buf, h.value.clone()).ok()?.into_iter().next()?;
    let uri = usable_uri(buf, first.uri)?;
    (uri != "*").then(|| uri.to_owned())
}

/// A URI we may copy into a request line or a Route header: it parses, and
/// holds no control or blank byte that would break the message we build.
fn usable_uri(buf: &[u8], span: std::ops::Range<usize>) -> Option<&str> {
    let bytes = buf.get(span.clone())?;
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_graphic) {
        return None;
    }
    if bytes != b"*" {
        pinhole_sip::Uri::parse(buf, span).ok()?;
    }
    std::str::from_utf8(bytes).ok()
}

/// Every Record-Route URI, in order.
pub(super) fn record_route(msg: &Message<'_>) -> Vec<String> {
    let buf = msg.buf();
    msg.headers_named(HeaderName::RecordRoute)
        .filter_map(|h| name_addrs(buf, h.value.clone()).ok())
        .flatten()
        .filter_map(|na| usable_uri(buf, na.uri))
        .map(str::to_owned)
        .collect()
}

/// The top Via's branch.
pub(super) fn branch<'a>(msg: &Message<'a>) -> Option<&'a [u8]> {
    let via = msg.vias().into_iter().next()?;
    msg.buf().get(via.branch?)
}

/// Where a response to `msg` goes (RFC 3261 §18.2.2, RFC 3581): the top
/// Via's `received` and `rport`, else its sent-by; `source` when the Via
/// names a host we would have to resolve.
pub(super) fn response_target(msg: &Message<'_>, source: SocketAddr) -> SocketAddr {
    msg.vias()
        .first()
        .and_then(|v| via_target(msg.buf(), v))
        .unwrap_or(source)
}

fn via_target(buf: &[u8], via: &Via) -> Option<SocketAddr> {
    let host = buf.get(via.received.clone().unwrap_or(via.host.clone()))?;
    let host = std::str::from_utf8(host).ok()?;
    let ip: IpAddr = host.trim_matches(['[', ']']).parse().ok()?;
    let port = match via.rport {
        Some(Some(p)) => p,
        _ => via.port.unwrap_or(5060),
    };
    Some(SocketAddr::new(ip, port))
}

/// True when a URI's parameters include `lr` (a loose router).
pub(super) fn is_loose(uri: &str) -> bool {
    let b = uri.as_bytes();
    pinhole_sip::Uri::parse(b, 0..b.len()).is_ok_and(|u| u.lr)
}
