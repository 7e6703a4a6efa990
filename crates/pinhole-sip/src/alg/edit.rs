//! Header edits a proxy makes (RFC 3261 §16.6, RFC 3581), each recorded as
//! spans in a [`Patch`] so every other byte of the message stays as it was.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;

use pinhole_core::patch::Patch;

use crate::{HeaderName, Message, Uri, Via, name_addrs};

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
pub(crate) fn add_via(msg: &Message<'_>, patch: &mut Patch, me: SocketAddr, branch: &str) {
    let eol = String::from_utf8_lossy(msg.line_ending()).into_owned();
    let mut line = String::with_capacity(80);
    let _ = write!(
        line,
        "Via: SIP/2.0/UDP {};branch={branch};rport{eol}",
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
    let eol = String::from_utf8_lossy(msg.line_ending()).into_owned();
    let at = msg
        .header(HeaderName::RecordRoute)
        .map_or_else(|| first_header(msg), |h| h.line.start);
    patch.insert(at, format!("Record-Route: <{uri}>{eol}").as_bytes());
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
/// missing. `Err` when it is already zero (answer 483).
pub(crate) fn max_forwards(msg: &Message<'_>, patch: &mut Patch) -> Result<(), ()> {
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
        return Err(());
    }
    patch.replace_fmt(h.value.clone(), format_args!("{}", n.min(256) - 1));
    Ok(())
}

/// An IP literal host and port from a URI; names are not resolved here
/// (a proxy in the data path must not block on DNS).
pub(crate) fn uri_target(buf: &[u8], uri: &Uri) -> Option<SocketAddr> {
    let host = std::str::from_utf8(buf.get(uri.host.clone())?).ok()?;
    let ip: IpAddr = host.parse().ok()?;
    Some(SocketAddr::new(ip, uri.port.unwrap_or(5060)))
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
pub(crate) fn response(msg: &Message<'_>, code: u16, reason: &str, tag: &str) -> Vec<u8> {
    let buf = msg.buf();
    let mut out = Vec::with_capacity(512);
    let _ = write!(Vecw(&mut out), "SIP/2.0 {code} {reason}\r\n");
    for h in msg.headers() {
        let copy = matches!(
            h.name,
            HeaderName::Via | HeaderName::From | HeaderName::CallId | HeaderName::CSeq
        );
        if copy {
            out.extend_from_slice(buf.get(h.name_span.clone()).unwrap_or_default());
            out.extend_from_slice(b": ");
            out.extend_from_slice(msg.value(h));
            out.extend_from_slice(b"\r\n");
        } else if h.name == HeaderName::To {
            out.extend_from_slice(b"To: ");
            out.extend_from_slice(msg.value(h));
            if msg.to_tag().is_none() {
                let _ = write!(Vecw(&mut out), ";tag={tag}");
            }
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b"Server: pinhole\r\nContent-Length: 0\r\n\r\n");
    out
}

struct Vecw<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Vecw<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// A 64-bit keyed hash (FNV-1a then a murmur finaliser) for branch ids and
/// tags: unique enough for transaction ids, and keyed so an outsider cannot
/// steer two transactions onto one branch.
pub(crate) fn hash(key: u64, parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ key;
    for p in parts {
        for &b in *p {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}
