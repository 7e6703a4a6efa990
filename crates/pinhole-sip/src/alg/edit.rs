//! Header edits a proxy makes (RFC 3261 §16.6, RFC 3581), each recorded as
//! spans in a [`Patch`] so every other byte of the message stays as it was;
//! and the few messages a proxy writes itself: its error responses
//! ([`response`], [`instead_of`] a response it will not forward) and the
//! requests with which the APS ends a phone's dialog ([`request_in_dialog`]).

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;

use pinhole_core::alg::Rejection;
use pinhole_core::patch::Patch;
use pinhole_core::types::Transport;

use crate::{HeaderName, Message, ParseError, Scheme, Uri, Via, name_addrs};

/// `host` as written in a Via sent-by or a URI: IPv6 in brackets.
pub(crate) struct HostPort(pub(crate) SocketAddr);

impl std::fmt::Display for HostPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.ip() {
            IpAddr::V4(ip) => write!(f, "{ip}:{}", self.0.port()),
            IpAddr::V6(ip) => write!(f, "[{ip}]:{}", self.0.port()),
        }
    }
}

/// Where the first header line starts (our Via and Record-Route go there).
fn first_header(msg: &Message<'_>) -> usize {
    msg.headers()
        .first()
        .map_or(msg.headers_end(), |h| h.line.start)
}

/// Inserts our Via on top, right before the existing Via lines so they
/// stay together (RFC 3261 §16.6 step 8).
pub(crate) fn add_via(
    msg: &Message<'_>,
    patch: &mut Patch,
    me: SocketAddr,
    transport: Transport,
    branch: &str,
) {
    let eol = String::from_utf8_lossy(msg.line_ending()).into_owned();
    let mut line = String::with_capacity(80);
    let _ = write!(
        line,
        "Via: SIP/2.0/{transport} {};branch={branch};rport{eol}",
        HostPort(me)
    );
    let at = msg
        .header(HeaderName::Via)
        .map_or_else(|| first_header(msg), |h| h.line.start);
    patch.insert(at, line.as_bytes());
}

/// Inserts `Record-Route: <uri>` before the existing ones (or on top).
/// Call it before [`add_via`]: when both land on the first header, the
/// Record-Route goes first and the Via lines stay together.
pub(crate) fn add_record_route(msg: &Message<'_>, patch: &mut Patch, uri: &str) {
    add_record_routes(msg, patch, &[uri]);
}

/// Inserts one `Record-Route:` line with `uris` in order, before the
/// existing ones (RFC 5658's double record-routing writes two).
pub(crate) fn add_record_routes(msg: &Message<'_>, patch: &mut Patch, uris: &[&str]) {
    let eol = String::from_utf8_lossy(msg.line_ending()).into_owned();
    let at = msg
        .header(HeaderName::RecordRoute)
        .map_or_else(|| first_header(msg), |h| h.line.start);
    let list: Vec<String> = uris.iter().map(|u| format!("<{u}>")).collect();
    patch.insert(
        at,
        format!("Record-Route: {}{eol}", list.join(", ")).as_bytes(),
    );
}

/// RFC 3581: record where a request really came from in its top Via, so
/// the response goes back through the NAT binding it arrived by. Done
/// whether or not the client asked (`rport`): behind a firewall the sent-by
/// port is never the one that works.
pub(crate) fn mark_received(msg: &Message<'_>, patch: &mut Patch, top: &Via, src: SocketAddr) {
    let buf = msg.buf();
    match &top.received {
        Some(r) => patch.replace_fmt(r.clone(), format_args!("{}", src.ip())),
        None => patch.replace_fmt(
            top.params_end..top.params_end,
            format_args!(";received={}", src.ip()),
        ),
    }
    match top.rport {
        Some(Some(_)) | Some(None) => {
            // Replace the whole `rport[=n]` parameter.
            if let Some(span) = param_span(buf, top, b"rport") {
                patch.replace_fmt(span, format_args!("rport={}", src.port()));
            }
        }
        None => patch.replace_fmt(
            top.params_end..top.params_end,
            format_args!(";rport={}", src.port()),
        ),
    }
}

/// The span of `;name[=value]` inside a Via's parameters, without the `;`.
fn param_span(buf: &[u8], via: &Via, name: &[u8]) -> Option<Range<usize>> {
    let params = buf.get(via.span.start..via.params_end)?;
    let mut i = 0;
    while i < params.len() {
        if params[i] == b';' {
            let start = i + 1;
            let mut j = start;
            while j < params.len() && params[j] != b';' {
                j += 1;
            }
            let p = &params[start..j];
            let key = p.split(|&b| b == b'=').next().unwrap_or_default();
            if key.trim_ascii().eq_ignore_ascii_case(name) {
                return Some(via.span.start + start..via.span.start + j);
            }
            i = j;
        } else {
            i += 1;
        }
    }
    None
}

/// Removes the top via-parm: its whole header line when it is the only
/// one, else just it and the comma after it.
pub(crate) fn pop_via(msg: &Message<'_>, patch: &mut Patch, top: &Via) {
    let buf = msg.buf();
    for h in msg.headers_named(HeaderName::Via) {
        if h.value.start <= top.span.start && top.span.end <= h.value.end {
            let rest = buf.get(top.span.end..h.value.end).unwrap_or_default();
            match rest.iter().position(|&b| b == b',') {
                None => patch.delete(h.line.clone()),
                Some(comma) => {
                    // Skip the comma and the whitespace before the next via-parm.
                    let mut end = top.span.end + comma + 1;
                    while end < h.value.end && buf[end].is_ascii_whitespace() {
                        end += 1;
                    }
                    patch.delete(top.span.start..end);
                }
            }
            return;
        }
    }
}

/// The top Route entry, if the request has one: (its URI, the URI's span,
/// the span to delete to remove it).
pub(crate) fn top_route(msg: &Message<'_>) -> Option<(Uri, Range<usize>, Range<usize>)> {
    let buf = msg.buf();
    let h = msg.header(HeaderName::Route)?;
    let entries = name_addrs(buf, h.value.clone()).ok()?;
    let first = entries.first()?;
    let uri = Uri::parse(buf, first.uri.clone()).ok()?;
    let span = match entries.get(1) {
        None => h.line.clone(),
        Some(next) => first.span.start..next.span.start,
    };
    Some((uri, first.uri.clone(), span))
}

/// The value of URI parameter `name` (`;name=value`) inside `span`.
pub(crate) fn uri_param<'a>(buf: &'a [u8], span: Range<usize>, name: &[u8]) -> Option<&'a [u8]> {
    let text = buf.get(span)?;
    text.split(|&b| b == b';' || b == b'?' || b == b'>')
        .skip(1)
        .find_map(|p| {
            let mut kv = p.splitn(2, |&b| b == b'=');
            let k = kv.next()?;
            k.trim_ascii()
                .eq_ignore_ascii_case(name)
                .then(|| kv.next().unwrap_or_default())
        })
}

/// Byte ranges of a message.
pub(crate) type Spans = Vec<Range<usize>>;

/// The leading Route entries that `ours` accepts, in order across every
/// Route header line: their URIs' spans, and the spans to delete to remove
/// them (a whole line when every entry on it is ours). A proxy that
/// record-routed twice (RFC 5658) finds two of its own here.
pub(crate) fn leading_routes(msg: &Message<'_>, ours: impl Fn(&Uri) -> bool) -> (Spans, Spans) {
    let buf = msg.buf();
    let (mut found, mut delete) = (Vec::new(), Vec::new());
    for h in msg.headers_named(HeaderName::Route) {
        let Ok(entries) = name_addrs(buf, h.value.clone()) else {
            break;
        };
        let mut taken = 0;
        for e in &entries {
            match Uri::parse(buf, e.uri.clone()) {
                Ok(u) if ours(&u) => {
                    found.push(e.uri.clone());
                    taken += 1;
                }
                _ => break,
            }
        }
        match entries.get(taken) {
            None if taken > 0 => delete.push(h.line.clone()),
            None => {}
            Some(next) => {
                if let Some(first) = entries.first().filter(|_| taken > 0) {
                    delete.push(first.span.start..next.span.start);
                }
                break;
            }
        }
    }
    (found, delete)
}

/// The Route entry at position `i` across every Route header line (the
/// next hop once `i` entries of ours are removed).
pub(crate) fn route_at(msg: &Message<'_>, i: usize) -> Option<Uri> {
    let buf = msg.buf();
    let next = msg
        .headers_named(HeaderName::Route)
        .filter_map(|h| name_addrs(buf, h.value.clone()).ok())
        .flatten()
        .nth(i)?;
    Uri::parse(buf, next.uri).ok()
}

/// The Route entry after the top one (the next hop once ours is removed).
pub(crate) fn second_route(msg: &Message<'_>) -> Option<Uri> {
    let buf = msg.buf();
    let mut all = msg
        .headers_named(HeaderName::Route)
        .filter_map(|h| name_addrs(buf, h.value.clone()).ok())
        .flatten();
    all.next()?;
    let next = all.next()?;
    Uri::parse(buf, next.uri).ok()
}

/// Max-Forwards (RFC 3261 §16.6 step 3): decremented, or set to 70 when
/// missing. Refused with 483 when it is already zero.
pub(crate) fn max_forwards(msg: &Message<'_>, patch: &mut Patch) -> Result<(), Rejection> {
    let Some(h) = msg.header(HeaderName::MaxForwards) else {
        let eol = String::from_utf8_lossy(msg.line_ending()).into_owned();
        patch.insert(
            first_header(msg),
            format!("Max-Forwards: 70{eol}").as_bytes(),
        );
        return Ok(());
    };
    let v = msg.value(h).trim_ascii();
    let n: u32 = std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(70);
    if n == 0 {
        return Err(Rejection::new(483, "Too Many Hops"));
    }
    patch.replace_fmt(h.value.clone(), format_args!("{}", n.min(256) - 1));
    Ok(())
}

/// An IP literal host and port from a URI; names are not resolved here
/// (a proxy in the data path must not block on DNS).
pub(crate) fn uri_target(buf: &[u8], uri: &Uri) -> Option<SocketAddr> {
    let host = std::str::from_utf8(buf.get(uri.host.clone())?).ok()?;
    let ip: IpAddr = host.parse().ok()?;
    let port = if uri_transport(buf, uri) == Transport::Tls {
        5061
    } else {
        5060
    };
    Some(SocketAddr::new(ip, uri.port.unwrap_or(port)))
}

/// The transport a URI asks for (RFC 3263 §4.1 for a numeric target; no
/// NAPTR or SRV is looked up): its `transport` parameter, else TLS for
/// `sips:` and UDP for `sip:`. A `sips:` URI never goes in the clear.
pub(crate) fn uri_transport(buf: &[u8], uri: &Uri) -> Transport {
    let param = uri_param(buf, uri.span.clone(), b"transport").map(<[u8]>::trim_ascii);
    let named = match param {
        Some(t) if t.eq_ignore_ascii_case(b"tcp") => Some(Transport::Tcp),
        Some(t) if t.eq_ignore_ascii_case(b"tls") => Some(Transport::Tls),
        Some(t) if t.eq_ignore_ascii_case(b"udp") => Some(Transport::Udp),
        _ => None,
    };
    match (uri.scheme, named) {
        (Scheme::Sips, _) => Transport::Tls,
        (_, Some(t)) => t,
        _ => Transport::Udp,
    }
}

/// The transport a Via's sent-protocol names (UDP for one Pinhole does
/// not speak, such as SCTP or WS: the answer then goes as a datagram).
pub(crate) fn via_transport(buf: &[u8], via: &Via) -> Transport {
    let t = buf.get(via.transport.clone()).unwrap_or_default();
    if t.eq_ignore_ascii_case(b"TCP") {
        Transport::Tcp
    } else if t.eq_ignore_ascii_case(b"TLS") {
        Transport::Tls
    } else {
        Transport::Udp
    }
}

/// Where a response goes: the Via's `received` (else its host) and its
/// `rport` value (else its port, else 5060).
pub(crate) fn via_target(buf: &[u8], via: &Via) -> Option<SocketAddr> {
    let host_span = via.received.clone().unwrap_or(via.host.clone());
    let host = std::str::from_utf8(buf.get(host_span)?).ok()?;
    let ip: IpAddr = host.trim_matches(|c| c == '[' || c == ']').parse().ok()?;
    let port = match via.rport {
        Some(Some(p)) => p,
        _ => via.port.unwrap_or(5060),
    };
    Some(SocketAddr::new(ip, port))
}

/// True when a Via names `me` as its sent-by.
pub(crate) fn via_is(buf: &[u8], via: &Via, me: SocketAddr) -> bool {
    let Some(host) = buf
        .get(via.host.clone())
        .and_then(|h| std::str::from_utf8(h).ok())
    else {
        return false;
    };
    host.trim_matches(|c| c == '[' || c == ']')
        .parse::<IpAddr>()
        == Ok(me.ip())
        && via.port.unwrap_or(5060) == me.port()
}

/// A response to `req`, built by the proxy itself (483, 403, 404, 503...).
/// Copies Via, From, To, Call-ID and CSeq (RFC 3261 §8.2.6.2); adds a To
/// tag when there is none.
pub(crate) fn response(req: &Message<'_>, why: Rejection, tag: &str) -> Vec<u8> {
    answer(req, why, tag, 0)
}

/// The final error response a proxy sends upstream *instead of* `ok`, a
/// response it will not forward: `ok`'s Via set without the top (ours),
/// From, To (with its tag), Call-ID and CSeq; no body.
pub(crate) fn instead_of(ok: &Message<'_>, why: Rejection) -> Vec<u8> {
    answer(ok, why, "", 1)
}

/// A response to the transaction of `msg`, whose first `skip_vias`
/// via-parms are dropped (a response we take over from below us).
fn answer(msg: &Message<'_>, why: Rejection, tag: &str, skip_vias: usize) -> Vec<u8> {
    let buf = msg.buf();
    let mut out = Vec::with_capacity(512);
    let _ = write!(Vecw(&mut out), "SIP/2.0 {} {}\r\n", why.code, why.reason);
    let mut vias_written = false;
    for h in msg.headers() {
        match h.name {
            // One via-parm per line: the top ones may share a line with
            // the rest.
            HeaderName::Via if skip_vias > 0 => {
                if std::mem::replace(&mut vias_written, true) {
                    continue;
                }
                for v in msg.vias().iter().skip(skip_vias) {
                    out.extend_from_slice(b"Via: ");
                    out.extend_from_slice(buf.get(v.span.clone()).unwrap_or_default());
                    out.extend_from_slice(b"\r\n");
                }
            }
            HeaderName::Via | HeaderName::From | HeaderName::CallId | HeaderName::CSeq => {
                out.extend_from_slice(buf.get(h.name_span.clone()).unwrap_or_default());
                out.extend_from_slice(b": ");
                out.extend_from_slice(msg.value(h));
                out.extend_from_slice(b"\r\n");
            }
            HeaderName::To => {
                out.extend_from_slice(b"To: ");
                out.extend_from_slice(msg.value(h));
                if msg.to_tag().is_none() && !tag.is_empty() {
                    let _ = write!(Vecw(&mut out), ";tag={tag}");
                }
                out.extend_from_slice(b"\r\n");
            }
            _ => {}
        }
    }
    out.extend_from_slice(b"Server: pinhole\r\nContent-Length: 0\r\n\r\n");
    out
}

/// The 400 a request that fails the parse with `e` is refused with: the
/// reason phrase names what is broken.
pub(crate) fn bad_request_for(e: &ParseError) -> Rejection {
    let reason = match e {
        ParseError::StartLine { .. } => "Bad Request-Line",
        ParseError::CSeq { .. } => "Bad CSeq",
        ParseError::CSeqMethodMismatch { .. } => "CSeq Method Mismatch",
        ParseError::Via { .. } => "Bad Via",
        ParseError::ContentLength { .. } | ParseError::BodyTruncated { .. } => "Bad Content-Length",
        ParseError::NameAddr { .. } => "Bad Address",
        ParseError::Header { .. } => "Bad Header",
        _ => "Bad Request",
    };
    Rejection::new(400, reason)
}

/// Checks what a proxy passes on untouched but must not propagate broken
/// (RFC 4475 §3.1.2.11, 3.1.2.13–3.1.2.15): the Request-URI carries no
/// headers, and To, From and Contact (but `*`) are name-addr lists.
pub(crate) fn check_request(msg: &Message<'_>) -> Result<(), Rejection> {
    let buf = msg.buf();
    if let Some(span) = msg.request_uri()
        && Uri::parse(buf, span).is_ok_and(|u| u.headers.is_some())
    {
        return Err(Rejection::new(400, "Headers In Request-URI"));
    }
    for (name, why) in [
        (HeaderName::To, "Bad To"),
        (HeaderName::From, "Bad From"),
        (HeaderName::Contact, "Bad Contact"),
    ] {
        for h in msg.headers_named(name) {
            if name == HeaderName::Contact && msg.value(h).trim_ascii() == b"*" {
                continue;
            }
            if name_addrs(buf, h.value.clone()).is_err() {
                return Err(Rejection::new(400, why));
            }
        }
    }
    Ok(())
}

/// The answer to a request that failed the parse ([`Message::parse`]),
/// built from its raw lines, when it can be answered at all: its start
/// line is a request's (a method token and a space, not `SIP/`; not an
/// ACK, which gets no response) and it has a Via header line, along which
/// the answer goes back. The Via, From, To, Call-ID and CSeq lines (full
/// and compact names, folded lines kept) are copied as they came (RFC 3261
/// §8.2.6.2), `tag` is added to a To without one; nothing else of the
/// request is, and the answer is sent only when it is no larger than the
/// request (garbage from a forged source is not amplified). `None` when
/// it cannot be answered.
pub(crate) fn bad_request(bytes: &[u8], why: Rejection, tag: &str) -> Option<Vec<u8>> {
    let text = bytes.get(..bytes.len().min(crate::MAX_HEADER_BYTES))?;
    let mut lines = text
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let start = lines.next()?;
    let method_len = start.iter().position(|&b| b == b' ')?;
    let method = &start[..method_len];
    let is_token = |b: u8| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b);
    if method.is_empty()
        || !method.iter().all(|&b| is_token(b))
        || start.len() >= 4 && start[..4].eq_ignore_ascii_case(b"SIP/")
        || method.eq_ignore_ascii_case(b"ACK")
    {
        return None;
    }
    const COPIED: [(&[u8], &[u8]); 5] = [
        (b"via", b"v"),
        (b"from", b"f"),
        (b"to", b"t"),
        (b"call-id", b"i"),
        (b"cseq", b"cseq"),
    ];
    let mut copied: Vec<(usize, Vec<u8>)> = Vec::new();
    let mut keeping: Option<usize> = None;
    for line in lines {
        if line.is_empty() {
            break;
        }
        if line.iter().any(|&b| b < 0x20 && b != b'\t' || b == 0x7f) {
            return None;
        }
        if matches!(line.first(), Some(b' ' | b'\t')) {
            // A folded line continues the header above it.
            if let (Some(k), Some(last)) = (keeping, copied.last_mut())
                && last.0 == k
            {
                last.1.extend_from_slice(b"\r\n");
                last.1.extend_from_slice(line);
            }
            continue;
        }
        let name = line
            .iter()
            .position(|&b| b == b':')
            .map(|c| line[..c].trim_ascii());
        keeping = name.and_then(|n| {
            COPIED.iter().position(|(full, short)| {
                n.eq_ignore_ascii_case(full) || n.eq_ignore_ascii_case(short)
            })
        });
        if let Some(k) = keeping {
            copied.push((k, line.to_vec()));
        }
    }
    if !copied.iter().any(|(k, _)| *k == 0) {
        return None;
    }
    let mut out = Vec::with_capacity(256);
    let _ = write!(Vecw(&mut out), "SIP/2.0 {} {}\r\n", why.code, why.reason);
    for (k, line) in copied {
        out.extend_from_slice(&line);
        let lower = line.to_ascii_lowercase();
        if k == 2 && !tag.is_empty() && !lower.windows(5).any(|w| w == b";tag=") {
            let _ = write!(Vecw(&mut out), ";tag={tag}");
        }
        out.extend_from_slice(b"\r\n");
    }
    // Compact (RFC 3261 §7.3.3): the answer stays within the request's size.
    out.extend_from_slice(b"l: 0\r\n\r\n");
    // Whoever sent garbage gets no more bytes back than it sent.
    (out.len() <= bytes.len()).then_some(out)
}

/// A request of ours inside the dialog a 2xx to an INVITE created, as its
/// caller would send it (RFC 3261 §12.2.1.1): to the 2xx's Contact, with
/// its From, To, Call-ID, CSeq `cseq` `method`, and our own Via from `me`
/// with `branch`. No Route set: it goes straight to the phone the 2xx came
/// from. `None` when the 2xx has no usable Contact, or the request would
/// not parse.
pub(crate) fn request_in_dialog(
    ok: &Message<'_>,
    method: &str,
    cseq: u32,
    me: SocketAddr,
    branch: &str,
) -> Option<Vec<u8>> {
    let buf = ok.buf();
    let contact = ok.header(HeaderName::Contact)?;
    let target = name_addrs(buf, contact.value.clone())
        .ok()?
        .into_iter()
        .next()?;
    Uri::parse(buf, target.uri.clone()).ok()?;
    let uri = buf.get(target.uri)?;
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(uri);
    let _ = write!(
        Vecw(&mut out),
        " SIP/2.0\r\nVia: SIP/2.0/UDP {};branch={branch};rport\r\nMax-Forwards: 70\r\n",
        HostPort(me)
    );
    for name in [HeaderName::From, HeaderName::To, HeaderName::CallId] {
        let h = ok.header(name)?;
        out.extend_from_slice(buf.get(h.name_span.clone()).unwrap_or_default());
        out.extend_from_slice(b": ");
        out.extend_from_slice(ok.value(h));
        out.extend_from_slice(b"\r\n");
    }
    let _ = write!(
        Vecw(&mut out),
        "CSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n"
    );
    // Every byte but the Contact URI and the copied values is ours; check
    // that those did not make the request unreadable.
    Message::parse(&out).ok()?;
    Some(out)
}

struct Vecw<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Vecw<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A phone's 2xx to an INVITE that passed the MPR and then the APS
    /// (whose Via is on top, sharing a line with the MPR's).
    const OK: &[u8] = b"SIP/2.0 200 OK\r\n\
        Via: SIP/2.0/UDP 10.2.0.2:5060;branch=z9hG4bKaps1;received=10.2.0.2, \
        SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bKph1.2\r\n\
        v: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-a1;rport=5060\r\n\
        Record-Route: <sip:10.2.0.2:5060;lr>\r\n\
        f: <sip:alice@corp1.example>;tag=alice1\r\n\
        To: <sip:bob@corp2.example>;tag=bob1\r\n\
        Call-ID: c1@x\r\n\
        CSeq: 7 INVITE\r\n\
        Contact: \"Bob\" <sip:bob@10.2.0.10:5070;transport=udp>\r\n\
        Content-Type: application/sdp\r\n\
        Content-Length: 4\r\n\r\nv=0\n";

    fn text(b: &[u8]) -> String {
        String::from_utf8(b.to_vec()).unwrap()
    }

    #[test]
    fn a_response_instead_of_a_2xx_keeps_its_transaction_without_our_via() {
        let ok = Message::parse(OK).unwrap();
        let out = instead_of(&ok, Rejection::new(503, "Media Pinhole Failed"));
        let m = Message::parse(&out).unwrap();
        assert_eq!(m.status(), Some(503));
        assert_eq!(m.reason(), Some(&b"Media Pinhole Failed"[..]));
        let vias: Vec<&[u8]> = m.vias().iter().map(|v| &out[v.span.clone()]).collect();
        assert_eq!(
            vias,
            [
                &b"SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bKph1.2"[..],
                &b"SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-a1;rport=5060"[..],
            ],
            "ours popped, the rest in order"
        );
        assert_eq!(m.to_tag(), Some(&b"bob1"[..]), "the 2xx's To tag stays");
        assert_eq!(m.from_tag(), Some(&b"alice1"[..]));
        assert_eq!(m.call_id(), Some(&b"c1@x"[..]));
        assert_eq!(m.cseq(), Some((7, "INVITE")));
        assert_eq!(m.content_length(), Some(0));
        assert!(m.body().is_empty());
        assert!(m.header(HeaderName::RecordRoute).is_none());
        assert!(m.header(HeaderName::Contact).is_none());
    }

    #[test]
    fn ack_and_bye_end_the_dialog_a_2xx_created() {
        let ok = Message::parse(OK).unwrap();
        let me: SocketAddr = "10.2.0.2:5060".parse().unwrap();
        for (method, cseq) in [("ACK", 7), ("BYE", 8)] {
            let out = request_in_dialog(&ok, method, cseq, me, "z9hG4bKapsuac9").unwrap();
            let m = Message::parse(&out).unwrap();
            assert_eq!(m.method(), Some(method));
            let ruri = m.request_uri().unwrap();
            assert_eq!(
                &out[ruri], b"sip:bob@10.2.0.10:5070;transport=udp",
                "to the 2xx's Contact"
            );
            let vias = m.vias();
            assert_eq!(vias.len(), 1, "{}", text(&out));
            assert_eq!(via_target(&out, &vias[0]), Some(me));
            assert_eq!(&out[vias[0].branch.clone().unwrap()], b"z9hG4bKapsuac9");
            assert_eq!(m.max_forwards(), Ok(Some(70)));
            assert_eq!(m.from_tag(), Some(&b"alice1"[..]));
            assert_eq!(m.to_tag(), Some(&b"bob1"[..]));
            assert_eq!(m.call_id(), Some(&b"c1@x"[..]));
            assert_eq!(m.cseq(), Some((cseq, method)));
            assert_eq!(m.content_length(), Some(0));
        }
    }

    #[test]
    fn no_dialog_request_without_a_usable_contact() {
        let me: SocketAddr = "10.2.0.2:5060".parse().unwrap();
        let no_contact = text(OK).replace(
            "Contact: \"Bob\" <sip:bob@10.2.0.10:5070;transport=udp>\r\n",
            "",
        );
        let spaced = text(OK).replace(
            "\"Bob\" <sip:bob@10.2.0.10:5070;transport=udp>",
            "<sip:bob@10.2.0.10 bad>",
        );
        for bad in [no_contact, spaced] {
            let m = Message::parse(bad.as_bytes()).unwrap();
            assert_eq!(request_in_dialog(&m, "BYE", 8, me, "z9hG4bKx"), None);
        }
    }

    #[test]
    fn max_forwards_zero_is_refused_with_483() {
        let req = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bK1\r\n\
            Max-Forwards: 0\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
        let m = Message::parse(req).unwrap();
        assert_eq!(
            max_forwards(&m, &mut Patch::new()),
            Err(Rejection::new(483, "Too Many Hops"))
        );
    }
}
