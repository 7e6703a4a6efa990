//! Plain SIP text for tests: requests, responses and SDP bodies written
//! byte for byte as the test says, and the few fields tests read back.
//!
//! Nothing here parses SIP the way `pinhole-sip` does: that crate tests
//! with this kit, so the kit cannot use it. The readers ([`header`],
//! [`status`], [`record_route`], [`media_of`]) understand the simple,
//! well-formed text tests exchange (one header per line, compact names,
//! `<uri>` name-addrs), not every message RFC 3261 allows.
//!
//! A caller's INVITE with an offer, the callee's 200 copying what it must,
//! and the caller's ACK routed by the 200's Record-Route set:
//!
//! ```
//! use pinhole_testkit::sip::{self, Request, Response};
//!
//! let media = "10.1.0.10:4000".parse().unwrap();
//! let offer = sip::audio_sdp(media, "0", &["sendrecv"]);
//! let invite = Request::new("INVITE", "sip:bob@corp2.example")
//!     .via("10.1.0.10:5060", "z9hG4bK-a1")
//!     .max_forwards(70)
//!     .from("<sip:alice@corp1.example>;tag=alice1")
//!     .to("<sip:bob@corp2.example>")
//!     .call_id("call-1")
//!     .cseq(1)
//!     .contact("sip:alice@10.1.0.10:5060")
//!     .sdp(&offer)
//!     .build();
//! assert_eq!(sip::media_of(&invite), Some(media));
//!
//! let ok = Response::to(&invite, 200, "OK")
//!     .tag("bob1")
//!     .header("Record-Route", "<sip:203.0.113.10:5060;lr>")
//!     .contact("sip:bob@10.2.0.10:5060")
//!     .build();
//! assert_eq!(sip::status(&ok), Some(200));
//! assert_eq!(
//!     sip::header(&ok, "To").as_deref(),
//!     Some("<sip:bob@corp2.example>;tag=bob1")
//! );
//!
//! let mut route = sip::record_route(&ok);
//! route.reverse(); // RFC 3261 §12.1.2: the caller's route set
//! let ack = Request::new("ACK", "sip:bob@10.2.0.10:5060")
//!     .via("10.1.0.10:5060", "z9hG4bK-a1ACK")
//!     .max_forwards(70)
//!     .route(&route)
//!     .from("<sip:alice@corp1.example>;tag=alice1")
//!     .to("<sip:bob@corp2.example>;tag=bob1")
//!     .call_id("call-1")
//!     .cseq(1)
//!     .build();
//! assert!(ack.starts_with(b"ACK sip:bob@10.2.0.10:5060 SIP/2.0\r\n"));
//! assert_eq!(
//!     sip::header(&ack, "Route").as_deref(),
//!     Some("<sip:203.0.113.10:5060;lr>")
//! );
//! ```

use std::fmt::{self, Display, Write as _};
use std::net::{IpAddr, SocketAddr};

/// A SIP request: its request line, then header lines in the order they
/// were added, then `Content-Type`/`Content-Length` and the body.
#[derive(Clone, Debug)]
pub struct Request {
    method: String,
    start: String,
    lines: String,
    body: Option<String>,
}

impl Request {
    /// `{method} {uri} SIP/2.0`, no headers yet.
    pub fn new(method: &str, uri: &str) -> Self {
        Self {
            method: method.to_owned(),
            start: format!("{method} {uri} SIP/2.0\r\n"),
            lines: String::new(),
            body: None,
        }
    }

    /// `Via: SIP/2.0/UDP {sent_by};branch={branch};rport`.
    pub fn via(self, sent_by: impl Display, branch: &str) -> Self {
        self.header(
            "Via",
            format_args!("SIP/2.0/UDP {sent_by};branch={branch};rport"),
        )
    }

    /// `Max-Forwards: {n}`.
    pub fn max_forwards(self, n: u8) -> Self {
        self.header("Max-Forwards", n)
    }

    /// `Route: <r1>, <r2>, …` in the order given; nothing when `uris` is
    /// empty.
    pub fn route<S: AsRef<str>>(self, uris: &[S]) -> Self {
        if uris.is_empty() {
            return self;
        }
        let route: Vec<String> = uris.iter().map(|u| format!("<{}>", u.as_ref())).collect();
        self.header("Route", route.join(", "))
    }

    /// `From: {value}` (a name-addr with its tag).
    pub fn from(self, value: &str) -> Self {
        self.header("From", value)
    }

    /// `To: {value}`.
    pub fn to(self, value: &str) -> Self {
        self.header("To", value)
    }

    /// `Call-ID: {id}`.
    pub fn call_id(self, id: &str) -> Self {
        self.header("Call-ID", id)
    }

    /// `CSeq: {n} {method}`, the method being this request's.
    pub fn cseq(self, n: u32) -> Self {
        let value = format!("{n} {}", self.method);
        self.header("CSeq", value)
    }
}

impl Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.start)?;
        f.write_str(&self.lines)?;
        write_body(f, self.body.as_deref())
    }
}

/// How a response treats the request's To.
#[derive(Clone, Debug)]
enum ToTag {
    /// Copied as it is.
    Keep,
    /// `;tag=…` added when the To has no tag (RFC 3261 §8.2.6.2).
    IfNone(String),
    /// `;tag=…` added even when the To has one (a sloppy peer).
    Always(String),
}

/// A SIP response: its status line, the lines copied from the request it
/// answers (if any), header lines in the order they were added, then
/// `Content-Type`/`Content-Length` and the body.
#[derive(Clone, Debug)]
pub struct Response {
    status: String,
    request: Vec<(String, String)>,
    to_tag: ToTag,
    record_route: bool,
    lines: String,
    body: Option<String>,
}

impl Response {
    /// `SIP/2.0 {code} {reason}` answering nothing: no copied lines.
    pub fn new(code: u16, reason: &str) -> Self {
        Self {
            status: format!("SIP/2.0 {code} {reason}\r\n"),
            request: Vec::new(),
            to_tag: ToTag::Keep,
            record_route: false,
            lines: String::new(),
            body: None,
        }
    }

    /// A response to `req` as a UAS writes it (RFC 3261 §8.2.6.2): the
    /// request's Via, From, To, Call-ID and CSeq lines copied in the
    /// request's order, each as `{name as written}: {value}`; the lines
    /// added later follow them.
    pub fn to(req: &[u8], code: u16, reason: &str) -> Self {
        Self {
            request: header_lines(req)
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .collect(),
            ..Self::new(code, reason)
        }
    }

    /// Adds `;tag={tag}` to the copied To when it has no tag.
    pub fn tag(mut self, tag: &str) -> Self {
        self.to_tag = ToTag::IfNone(tag.to_owned());
        self
    }

    /// Adds `;tag={tag}` to the copied To even when it has one already.
    pub fn always_tag(mut self, tag: &str) -> Self {
        self.to_tag = ToTag::Always(tag.to_owned());
        self
    }

    /// Copies the request's Record-Route lines too, in place (§12.1.1: a
    /// 1xx or 2xx to a dialog-creating request).
    pub fn record_route(mut self) -> Self {
        self.record_route = true;
        self
    }
}

impl Display for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.status)?;
        for (name, value) in &self.request {
            match canonical(name) {
                "Via" | "From" | "Call-ID" | "CSeq" => write!(f, "{name}: {value}\r\n")?,
                "Record-Route" if self.record_route => write!(f, "{name}: {value}\r\n")?,
                "To" => match &self.to_tag {
                    ToTag::IfNone(t) if !has_tag(value) => {
                        write!(f, "{name}: {value};tag={t}\r\n")?;
                    }
                    ToTag::Always(t) => write!(f, "{name}: {value};tag={t}\r\n")?,
                    _ => write!(f, "{name}: {value}\r\n")?,
                },
                _ => {}
            }
        }
        f.write_str(&self.lines)?;
        write_body(f, self.body.as_deref())
    }
}

/// The builder methods requests and responses share: header lines, the
/// body, the bytes. (A macro: the two types have different first lines
/// and nothing else to share a trait for.)
macro_rules! lines_and_body {
    ($t:ident) => {
        impl $t {
            /// Any header line, written as `{name}: {value}` (a Via with
            /// `received`, a Record-Route, an unknown header to see kept
            /// intact).
            pub fn header(mut self, name: &str, value: impl Display) -> Self {
                let _ = write!(self.lines, "{name}: {value}\r\n");
                self
            }

            /// Lines written verbatim (each ending in CRLF).
            pub fn raw(mut self, lines: &str) -> Self {
                self.lines.push_str(lines);
                self
            }

            /// `Contact: <{uri}>`.
            pub fn contact(self, uri: &str) -> Self {
                self.header("Contact", format_args!("<{uri}>"))
            }

            /// An SDP body (`Content-Type: application/sdp`); without one
            /// the message ends with `Content-Length: 0`.
            pub fn sdp(mut self, body: &str) -> Self {
                self.body = Some(body.to_owned());
                self
            }

            /// The SDP body `body`, or none.
            pub fn sdp_opt(mut self, body: Option<&str>) -> Self {
                self.body = body.map(str::to_owned);
                self
            }

            /// The message's bytes.
            pub fn build(&self) -> Vec<u8> {
                self.to_string().into_bytes()
            }
        }
    };
}

lines_and_body!(Request);
lines_and_body!(Response);

fn write_body(f: &mut fmt::Formatter<'_>, body: Option<&str>) -> fmt::Result {
    match body {
        Some(b) => write!(
            f,
            "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        ),
        None => f.write_str("Content-Length: 0\r\n\r\n"),
    }
}

/// A `REGISTER sip:{domain}` of `user@domain` from its phone at `from`,
/// the `n`-th of its series (branch `z9hG4bK-reg{n}`, From tag `r{n}`,
/// CSeq `n`), Contact `<sip:{user}@{from}>`, `Expires: 300`, no body.
pub fn register(from: &str, user: &str, domain: &str, n: u32) -> Vec<u8> {
    Request::new("REGISTER", &format!("sip:{domain}"))
        .via(from, &format!("z9hG4bK-reg{n}"))
        .max_forwards(70)
        .from(&format!("<sip:{user}@{domain}>;tag=r{n}"))
        .to(&format!("<sip:{user}@{domain}>"))
        .call_id(&format!("reg-{user}"))
        .cseq(n)
        .contact(&format!("sip:{user}@{from}"))
        .header("Expires", 300)
        .build()
}

/// A one-stream audio SDP naming `media`: `o=- 1 1`, `s=-`, `t=0 0`,
/// `m=audio {port} RTP/AVP {formats}`, then one `a=` line per attribute.
///
/// ```
/// let sdp = pinhole_testkit::sip::audio_sdp(
///     "10.1.0.10:4000".parse().unwrap(),
///     "0 8",
///     &["rtpmap:0 PCMU/8000", "sendrecv"],
/// );
/// assert_eq!(
///     sdp,
///     "v=0\r\no=- 1 1 IN IP4 10.1.0.10\r\ns=-\r\nc=IN IP4 10.1.0.10\r\nt=0 0\r\n\
///      m=audio 4000 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
/// );
/// ```
pub fn audio_sdp(media: SocketAddr, formats: &str, attributes: &[&str]) -> String {
    let family = match media.ip() {
        IpAddr::V4(_) => "IP4",
        IpAddr::V6(_) => "IP6",
    };
    let mut s = format!(
        "v=0\r\no=- 1 1 IN {family} {ip}\r\ns=-\r\nc=IN {family} {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP {formats}\r\n",
        ip = media.ip(),
        port = media.port()
    );
    for a in attributes {
        let _ = write!(s, "a={a}\r\n");
    }
    s
}

/// The header lines of a message, `(name as written, value)` with the
/// value's surrounding blanks trimmed; the start line and body left out.
fn header_lines(msg: &[u8]) -> impl Iterator<Item = (&str, &str)> {
    let text = std::str::from_utf8(msg).unwrap_or_default();
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    head.split("\r\n").skip(1).filter_map(|line| {
        let (name, value) = line.split_once(':')?;
        Some((name.trim_end(), value.trim()))
    })
}

/// The full name of a header, for the compact forms RFC 3261 §7.3.3
/// allows on the headers a response copies.
fn canonical(name: &str) -> &str {
    const NAMES: [(&str, &str); 6] = [
        ("Via", "v"),
        ("From", "f"),
        ("To", "t"),
        ("Call-ID", "i"),
        ("CSeq", ""),
        ("Record-Route", ""),
    ];
    NAMES
        .iter()
        .find(|(full, short)| {
            name.eq_ignore_ascii_case(full)
                || (!short.is_empty() && name.eq_ignore_ascii_case(short))
        })
        .map_or(name, |(full, _)| full)
}

/// Whether a To/From value has a `tag` parameter after its URI.
fn has_tag(value: &str) -> bool {
    let params = value.rsplit_once('>').map_or(value, |(_, p)| p);
    params
        .split(';')
        .skip(1)
        .any(|p| p.trim().to_ascii_lowercase().starts_with("tag="))
}

/// The values of every `name` header (compact forms match their full
/// names), in order.
pub fn headers(msg: &[u8], name: &str) -> Vec<String> {
    let want = canonical(name);
    header_lines(msg)
        .filter(|(n, _)| canonical(n).eq_ignore_ascii_case(want))
        .map(|(_, v)| v.to_owned())
        .collect()
}

/// The value of the first `name` header.
pub fn header(msg: &[u8], name: &str) -> Option<String> {
    headers(msg, name).into_iter().next()
}

/// A response's status code; `None` for a request or garbage.
pub fn status(msg: &[u8]) -> Option<u16> {
    let line = msg.split(|&b| b == b'\r').next()?;
    let rest = line.strip_prefix(b"SIP/2.0 ")?;
    std::str::from_utf8(rest.get(..3)?).ok()?.parse().ok()
}

/// Every Record-Route URI (what stands between `<` and `>`), in order.
pub fn record_route(msg: &[u8]) -> Vec<String> {
    headers(msg, "Record-Route")
        .iter()
        .flat_map(|v| v.split(','))
        .filter_map(|na| {
            let (_, rest) = na.split_once('<')?;
            let (uri, _) = rest.split_once('>')?;
            Some(uri.to_owned())
        })
        .collect()
}

/// The first stream's address in a message's SDP body: the stream's own
/// `c=` line, else the session's, with the `m=` line's port. `None`
/// without a body, a stream or a readable address.
pub fn media_of(msg: &[u8]) -> Option<SocketAddr> {
    let text = std::str::from_utf8(msg).ok()?;
    let (_, body) = text.split_once("\r\n\r\n")?;
    let mut session: Option<IpAddr> = None;
    let mut stream: Option<(u16, Option<IpAddr>)> = None;
    for line in body.lines() {
        if let Some(m) = line.strip_prefix("m=") {
            if stream.is_some() {
                break; // Only the first stream counts.
            }
            let port = m
                .split_whitespace()
                .nth(1)?
                .split('/')
                .next()?
                .parse()
                .ok()?;
            stream = Some((port, None));
        } else if let Some(c) = line.strip_prefix("c=") {
            let ip = c
                .split_whitespace()
                .nth(2)?
                .split('/')
                .next()?
                .parse()
                .ok()?;
            match stream.as_mut() {
                Some((_, own)) => *own = Some(ip),
                None => session = Some(ip),
            }
        }
    }
    let (port, own) = stream?;
    Some(SocketAddr::new(own.or(session)?, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:bob@corp2.example SIP/2.0\r\n\
        Via: SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bKm;rport\r\n\
        v: SIP/2.0/UDP 10.1.0.10:5060;branch=z9hG4bKa;rport=5060\r\n\
        Record-Route: <sip:203.0.113.10:5060;lr;ph=1>, <sip:10.1.0.2:5060;lr>\r\n\
        f: <sip:alice@corp1.example>;tag=a1\r\n\
        To:   <sip:bob@corp2.example>  \r\n\
        Call-ID: c1\r\n\
        CSeq: 1 INVITE\r\n\
        Contact: <sip:alice@10.1.0.10:5060>\r\n\
        Content-Type: application/sdp\r\n\
        Content-Length: 5\r\n\r\nv=0\r\n";

    #[test]
    fn a_request_is_written_in_the_order_given_with_its_body_counted() {
        let body = audio_sdp("10.1.0.10:4000".parse().unwrap(), "0", &["sendrecv"]);
        let got = Request::new("INVITE", "sip:bob@corp2.example")
            .via("10.1.0.10:5060", "z9hG4bK-a1")
            .max_forwards(70)
            .route(&["sip:203.0.113.10:5060;lr"])
            .from("<sip:alice@corp1.example>;tag=alice1")
            .to("<sip:bob@corp2.example>")
            .call_id("c1")
            .cseq(1)
            .contact("sip:alice@10.1.0.10:5060")
            .header("X-Unknown", "  kept  exactly ")
            .sdp(&body)
            .build();
        let want = format!(
            "INVITE sip:bob@corp2.example SIP/2.0\r\n\
             Via: SIP/2.0/UDP 10.1.0.10:5060;branch=z9hG4bK-a1;rport\r\n\
             Max-Forwards: 70\r\n\
             Route: <sip:203.0.113.10:5060;lr>\r\n\
             From: <sip:alice@corp1.example>;tag=alice1\r\n\
             To: <sip:bob@corp2.example>\r\n\
             Call-ID: c1\r\n\
             CSeq: 1 INVITE\r\n\
             Contact: <sip:alice@10.1.0.10:5060>\r\n\
             X-Unknown:   kept  exactly \r\n\
             Content-Type: application/sdp\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        assert_eq!(String::from_utf8(got).unwrap(), want);
        let bare = Request::new("BYE", "sip:b")
            .route::<&str>(&[])
            .sdp_opt(None);
        assert_eq!(
            bare.to_string(),
            "BYE sip:b SIP/2.0\r\nContent-Length: 0\r\n\r\n"
        );
    }

    #[test]
    fn a_response_copies_what_a_uas_must_in_the_request_order() {
        let got = Response::to(INVITE.as_bytes(), 180, "Ringing")
            .tag("b1")
            .contact("sip:bob@10.2.0.10:5060")
            .raw("Allow: INVITE, ACK\r\n")
            .to_string();
        assert_eq!(
            got,
            "SIP/2.0 180 Ringing\r\n\
             Via: SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bKm;rport\r\n\
             v: SIP/2.0/UDP 10.1.0.10:5060;branch=z9hG4bKa;rport=5060\r\n\
             f: <sip:alice@corp1.example>;tag=a1\r\n\
             To: <sip:bob@corp2.example>;tag=b1\r\n\
             Call-ID: c1\r\n\
             CSeq: 1 INVITE\r\n\
             Contact: <sip:bob@10.2.0.10:5060>\r\n\
             Allow: INVITE, ACK\r\n\
             Content-Length: 0\r\n\r\n"
        );
        let with_rr = Response::to(INVITE.as_bytes(), 200, "OK")
            .record_route()
            .sdp("v=0\r\n")
            .build();
        assert_eq!(
            record_route(&with_rr),
            ["sip:203.0.113.10:5060;lr;ph=1", "sip:10.1.0.2:5060;lr"]
        );
        assert_eq!(
            header(&with_rr, "To").as_deref(),
            Some("<sip:bob@corp2.example>"),
            "no tag asked for: To as it was"
        );
        assert!(with_rr.ends_with(b"Content-Length: 5\r\n\r\nv=0\r\n"));
    }

    #[test]
    fn the_to_tag_is_added_once_unless_always_is_asked_for() {
        let tagged = INVITE.replace("<sip:bob@corp2.example>  ", "<sip:bob@corp2.example>;tag=x");
        let once = Response::to(tagged.as_bytes(), 200, "OK").tag("y").build();
        assert_eq!(
            header(&once, "To").as_deref(),
            Some("<sip:bob@corp2.example>;tag=x")
        );
        let twice = Response::to(tagged.as_bytes(), 200, "OK")
            .always_tag("y")
            .build();
        assert_eq!(
            header(&twice, "t").as_deref(),
            Some("<sip:bob@corp2.example>;tag=x;tag=y")
        );
        assert!(!has_tag("<sip:bob@corp2.example;tag=uri-param>"));
        assert!(has_tag("sip:bob@corp2.example;TAG=z"));
    }

    #[test]
    fn readers_take_the_fields_tests_check() {
        let m = INVITE.as_bytes();
        assert_eq!(status(m), None);
        assert_eq!(status(b"SIP/2.0 486 Busy Here\r\n\r\n"), Some(486));
        assert_eq!(status(b"SIP/2.0 4"), None);
        assert_eq!(headers(m, "via").len(), 2, "the compact v: counts");
        assert_eq!(
            header(m, "From").as_deref(),
            Some("<sip:alice@corp1.example>;tag=a1")
        );
        assert_eq!(header(m, "Expires"), None);
        assert_eq!(header(b"\xff\r\n\r\n", "To"), None);
    }

    #[test]
    fn media_of_reads_the_first_stream() {
        let sdp = audio_sdp("10.1.0.10:4000".parse().unwrap(), "0", &[]);
        let m = Response::new(200, "OK").sdp(&sdp).build();
        assert_eq!(media_of(&m), Some("10.1.0.10:4000".parse().unwrap()));
        let own = "SIP/2.0 200 OK\r\n\r\nv=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 5000 RTP/AVP 0\r\n\
                   c=IN IP4 192.0.2.2\r\nm=video 6000 RTP/AVP 96\r\nc=IN IP4 192.0.2.3\r\n";
        assert_eq!(
            media_of(own.as_bytes()),
            Some("192.0.2.2:5000".parse().unwrap())
        );
        let v6 = audio_sdp("[2001:db8::1]:4000".parse().unwrap(), "0", &[]);
        assert!(v6.contains("c=IN IP6 2001:db8::1\r\n"));
        let m6 = Response::new(200, "OK").sdp(&v6).build();
        assert_eq!(media_of(&m6), Some("[2001:db8::1]:4000".parse().unwrap()));
        assert_eq!(
            media_of(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"),
            None
        );
        assert_eq!(
            media_of(b"SIP/2.0 200 OK\r\n\r\nv=0\r\nm=audio 1 RTP/AVP 0\r\n"),
            None
        );
    }

    #[test]
    fn register_is_the_phone_s_nth_refresh() {
        let r = String::from_utf8(register("10.1.0.20:5060", "alice", "corp1.example", 2)).unwrap();
        assert_eq!(
            r,
            "REGISTER sip:corp1.example SIP/2.0\r\n\
             Via: SIP/2.0/UDP 10.1.0.20:5060;branch=z9hG4bK-reg2;rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:alice@corp1.example>;tag=r2\r\n\
             To: <sip:alice@corp1.example>\r\n\
             Call-ID: reg-alice\r\n\
             CSeq: 2 REGISTER\r\n\
             Contact: <sip:alice@10.1.0.20:5060>\r\n\
             Expires: 300\r\n\
             Content-Length: 0\r\n\r\n"
        );
    }
}
