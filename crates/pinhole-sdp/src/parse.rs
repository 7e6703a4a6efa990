//! Locating the media-relevant spans of one SDP body (RFC 8866 §5): the
//! `o=`, `c=` and `m=` lines and the `a=rtcp`, `a=rtcp-mux` and direction
//! attributes. Everything else is skipped unread, so unknown lines and
//! attributes cost nothing and can break nothing.

use std::net::{IpAddr, SocketAddr};
use std::ops::Range;

use pinhole_core::intent::MediaEndpoint;
use pinhole_core::wire::RtcpMode;

use crate::error::SdpError;
use crate::lines::{Line, Lines, Tokens, parse_ip, parse_u16};

/// A byte range of the body.
pub type Span = Range<usize>;

/// How the body ends its lines.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum LineEnding {
    /// CR LF, as RFC 8866 writes it (and the answer for a one-line body).
    #[default]
    CrLf,
    /// A bare LF.
    Lf,
}

impl LineEnding {
    /// The bytes of the line ending.
    pub fn as_bytes(self) -> &'static [u8] {
        match self {
            Self::CrLf => b"\r\n",
            Self::Lf => b"\n",
        }
    }

    /// The line ending as text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CrLf => "\r\n",
            Self::Lf => "\n",
        }
    }
}

/// Which way media flows (RFC 8866 §6.7).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum Direction {
    /// `a=sendrecv`, the default.
    #[default]
    SendRecv,
    /// `a=sendonly`.
    SendOnly,
    /// `a=recvonly`.
    RecvOnly,
    /// `a=inactive`.
    Inactive,
}

impl Direction {
    /// The direction an attribute name sets (any letter case: `a=SendRecv`
    /// is seen in the wild).
    fn from_attribute(name: &[u8]) -> Option<Self> {
        [
            (&b"sendrecv"[..], Self::SendRecv),
            (b"sendonly", Self::SendOnly),
            (b"recvonly", Self::RecvOnly),
            (b"inactive", Self::Inactive),
        ]
        .into_iter()
        .find(|(n, _)| name.eq_ignore_ascii_case(n))
        .map(|(_, d)| d)
    }
}

/// The `<addrtype>` of a `c=`, `o=` or `a=rtcp:` line.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum AddrType {
    /// `IP4`.
    Ip4,
    /// `IP6`.
    Ip6,
}

impl AddrType {
    /// The address type that names `ip`'s family.
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => Self::Ip4,
            IpAddr::V6(_) => Self::Ip6,
        }
    }

    /// `"IP4"` or `"IP6"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ip4 => "IP4",
            Self::Ip6 => "IP6",
        }
    }
}

/// A connection address as written.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Host<'a> {
    /// An IPv4 or IPv6 literal.
    Ip(IpAddr),
    /// Anything else that looks like a host name. H.248's CHOOSE wildcard
    /// `$` lands here too (see [`Connection::is_choose`]).
    Fqdn(&'a str),
}

/// The `<nettype> <addrtype> <address>` part of a `c=` line, an `o=` line or
/// an `a=rtcp:` attribute.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Connection<'a> {
    /// The line it is on (1-based).
    pub line: usize,
    /// `IN` (any letter case).
    pub nettype: &'a str,
    /// `IP4` or `IP6`, as the line says (it may disagree with the address).
    pub addrtype: AddrType,
    /// Where the address type is.
    pub addrtype_span: Span,
    /// The address.
    pub host: Host<'a>,
    /// Where the address is: a multicast `/ttl/count` suffix is outside it.
    pub address_span: Span,
    /// The `/ttl/count` suffix with its first slash; empty (at the end of
    /// the address) when there is none.
    pub suffix_span: Span,
}

impl Connection<'_> {
    /// The address when it is an IP literal.
    pub fn ip(&self) -> Option<IpAddr> {
        match self.host {
            Host::Ip(ip) => Some(ip),
            Host::Fqdn(_) => None,
        }
    }

    /// True for H.248's CHOOSE wildcard `$` (the gateway picks the address).
    pub fn is_choose(&self) -> bool {
        self.host == Host::Fqdn("$")
    }
}

/// An `a=rtcp:<port> [<nettype> <addrtype> <address>]` attribute (RFC 3605).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct RtcpAttr<'a> {
    /// The line it is on (1-based).
    pub line: usize,
    /// The RTCP port.
    pub port: u16,
    /// Where the port is.
    pub port_span: Span,
    /// The explicit address, when the attribute has one.
    pub addr: Option<Connection<'a>>,
}

/// Where a media-level `c=` line goes when one must be added: after the
/// `m=` line and its `i=` line (RFC 8866's order is m, i, c).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) struct InsertPoint {
    /// The byte before which the new line goes.
    pub(crate) at: usize,
    /// True when that line has no line ending (the last line of the body):
    /// the new line then starts with one instead of ending with one.
    pub(crate) eol_first: bool,
}

/// One media description: an `m=` line and the lines up to the next.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Media<'a> {
    /// Position among the `m=` lines, from 0.
    pub index: u16,
    /// The `m=` line (1-based).
    pub line: usize,
    /// The section's bytes: from the `m=` line up to the next `m=` line or
    /// the end of the body.
    pub section: Span,
    /// `audio`, `video`, `image`, `application`, `text`, `message`, …
    pub kind: &'a str,
    /// Where the media type is.
    pub kind_span: Span,
    /// The port: 0 for a disabled stream (and for H.248's `$`).
    pub port: u16,
    /// Where the port is (the `/count` suffix is outside it).
    pub port_span: Span,
    /// The `/<number of ports>` of `m=audio 4000/2 ...`, when given.
    pub port_count: Option<u16>,
    /// True when the port is H.248's CHOOSE wildcard `$`: the stream is
    /// reported as disabled (port 0) and never rewritten.
    pub choose: bool,
    /// `RTP/AVP`, `udptl`, `UDP/TLS/RTP/SAVPF`, …
    pub proto: &'a str,
    /// Where the protocol is.
    pub proto_span: Span,
    /// The media-level `c=` line (the first, if several).
    pub connection: Option<Connection<'a>>,
    /// The first `a=rtcp:` attribute.
    pub rtcp: Option<RtcpAttr<'a>>,
    /// True when the section has `a=rtcp-mux` (RFC 5761).
    pub rtcp_mux: bool,
    /// The media-level direction attribute, else the session-level one,
    /// else send-receive.
    pub direction: Direction,
    /// The first media-level `c=` line that could not be read.
    pub(crate) connection_error: Option<SdpError>,
    /// The first `a=rtcp:` attribute that could not be read.
    pub(crate) rtcp_error: Option<SdpError>,
    pub(crate) insert: InsertPoint,
}

impl Media<'_> {
    /// True for a disabled stream (port 0, or H.248's `$`).
    pub fn is_disabled(&self) -> bool {
        self.port == 0
    }
}

/// A borrowed view of one SDP body: where every media-relevant value is.
///
/// Parsing is tolerant: LF, CRLF or mixed line ends, no final line end,
/// trailing blanks and NULs, unknown lines and attributes, `c=` anywhere in
/// a media section, host names in `c=`. A `c=`, `o=` or `a=rtcp:` line that
/// cannot be read is reported only by the calls that need it.
#[derive(Clone, Debug)]
pub struct Sdp<'a> {
    body: &'a [u8],
    line_ending: LineEnding,
    /// The first session-level `o=` line: its number and value. Read only
    /// on request (rewriting it is rare).
    origin: Option<(usize, Span)>,
    session_connection: Option<Connection<'a>>,
    session_connection_error: Option<SdpError>,
    session_direction: Option<Direction>,
    media: Vec<Media<'a>>,
}

type MakeError = fn(usize, &'static str) -> SdpError;

fn bad_connection(line: usize, reason: &'static str) -> SdpError {
    SdpError::BadConnection { line, reason }
}

fn bad_rtcp(line: usize, reason: &'static str) -> SdpError {
    SdpError::BadRtcp { line, reason }
}

fn bad_origin(line: usize, reason: &'static str) -> SdpError {
    SdpError::BadOrigin { line, reason }
}

fn bad_media(line: usize, reason: &'static str) -> SdpError {
    SdpError::BadMedia { line, reason }
}

fn not_sdp(line: usize, reason: &'static str) -> SdpError {
    SdpError::NotSdp { line, reason }
}

/// True for bytes that can make up a host name (letters, digits, `-`, `.`,
/// `_`), or the `$` wildcard alone.
fn is_host_name(b: &[u8]) -> bool {
    b == b"$"
        || (!b.is_empty()
            && b.iter()
                .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_')))
}

/// The span's bytes as text (tokens hold no blanks or control characters
/// already).
fn text<'b>(body: &'b [u8], span: &Span) -> Option<&'b str> {
    std::str::from_utf8(body.get(span.clone())?).ok()
}

/// Reads `<nettype> <addrtype> <address>[/suffix]` from the tokens.
fn parse_connection<'a>(
    body: &'a [u8],
    line: usize,
    tokens: &mut Tokens<'_>,
    err: MakeError,
) -> Result<Connection<'a>, SdpError> {
    const SHAPE: &str = "expected <nettype> <addrtype> <address>";
    let (Some(net), Some(at), Some(addr)) = (tokens.next(), tokens.next(), tokens.next()) else {
        return Err(err(line, SHAPE));
    };
    let nettype = text(body, &net).ok_or_else(|| err(line, SHAPE))?;
    if !nettype.eq_ignore_ascii_case("IN") {
        return Err(err(line, "network type is not IN"));
    }
    let addrtype = match body.get(at.clone()) {
        Some(t) if t.eq_ignore_ascii_case(b"IP4") => AddrType::Ip4,
        Some(t) if t.eq_ignore_ascii_case(b"IP6") => AddrType::Ip6,
        _ => return Err(err(line, "address type is neither IP4 nor IP6")),
    };
    let token = body.get(addr.clone()).unwrap_or_default();
    let cut = token
        .iter()
        .position(|&b| b == b'/')
        .map_or(addr.end, |i| addr.start + i);
    let address_span = addr.start..cut;
    let address = body.get(address_span.clone()).unwrap_or_default();
    let host = match parse_ip(address) {
        Some(ip) => Host::Ip(ip),
        None if is_host_name(address) => Host::Fqdn(text(body, &address_span).unwrap_or_default()),
        None => {
            return Err(err(
                line,
                "address is neither an IP literal nor a host name",
            ));
        }
    };
    Ok(Connection {
        line,
        nettype,
        addrtype,
        addrtype_span: at,
        host,
        address_span,
        suffix_span: cut..addr.end,
    })
}

/// Reads `<media> <port>[/<count>] <proto> ...`.
fn parse_media<'a>(
    body: &'a [u8],
    line: &Line,
    index: usize,
    session_direction: Option<Direction>,
) -> Result<Media<'a>, SdpError> {
    let no = line.no;
    let index = u16::try_from(index).map_err(|_| bad_media(no, "more than 65536 m= lines"))?;
    let mut t = Tokens::new(body, line.start + 2..line.end);
    let kind_span = t.next().ok_or_else(|| bad_media(no, "no media type"))?;
    let port_tok = t.next().ok_or_else(|| bad_media(no, "no port"))?;
    let proto_span = t
        .next()
        .ok_or_else(|| bad_media(no, "no transport protocol"))?;
    let kind = text(body, &kind_span).ok_or_else(|| bad_media(no, "media type is not UTF-8"))?;
    let proto =
        text(body, &proto_span).ok_or_else(|| bad_media(no, "transport protocol is not UTF-8"))?;
    let tok = body.get(port_tok.clone()).unwrap_or_default();
    let slash = tok.iter().position(|&b| b == b'/');
    let port_span = port_tok.start..slash.map_or(port_tok.end, |i| port_tok.start + i);
    let digits = body.get(port_span.clone()).unwrap_or_default();
    let choose = digits == b"$";
    let port = if choose {
        0
    } else {
        parse_u16(digits).ok_or_else(|| bad_media(no, "port is not a number from 0 to 65535"))?
    };
    let port_count = match slash {
        None => None,
        Some(i) => Some(
            tok.get(i + 1..)
                .and_then(parse_u16)
                .ok_or_else(|| bad_media(no, "number of ports is not a number"))?,
        ),
    };
    Ok(Media {
        index,
        line: no,
        section: line.raw_start..body.len(),
        kind,
        kind_span,
        port,
        port_span,
        port_count,
        choose,
        proto,
        proto_span,
        connection: None,
        rtcp: None,
        rtcp_mux: false,
        direction: session_direction.unwrap_or_default(),
        connection_error: None,
        rtcp_error: None,
        insert: insert_after(line),
    })
}

fn insert_after(line: &Line) -> InsertPoint {
    if line.terminated {
        InsertPoint {
            at: line.after,
            eol_first: false,
        }
    } else {
        InsertPoint {
            at: line.raw_end,
            eol_first: true,
        }
    }
}

/// Reads `<port> [<nettype> <addrtype> <address>]` after `a=rtcp:`.
fn parse_rtcp<'a>(body: &'a [u8], line: usize, value: Span) -> Result<RtcpAttr<'a>, SdpError> {
    let mut t = Tokens::new(body, value);
    let port_span = t.next().ok_or_else(|| bad_rtcp(line, "no port"))?;
    let port = body
        .get(port_span.clone())
        .and_then(parse_u16)
        .ok_or_else(|| bad_rtcp(line, "port is not a number from 0 to 65535"))?;
    let addr = if t.rest().is_empty() {
        None
    } else {
        Some(parse_connection(body, line, &mut t, bad_rtcp)?)
    };
    Ok(RtcpAttr {
        line,
        port,
        port_span,
        addr,
    })
}

/// Reads the address part of `o=<username> <sess-id> <sess-version>
/// <nettype> <addrtype> <address>`: the last three fields, so a user name
/// with blanks in it (seen in the wild) does not matter.
fn parse_origin<'a>(body: &'a [u8], line: usize, value: Span) -> Result<Connection<'a>, SdpError> {
    let mut last = [0usize; 3];
    let mut n = 0usize;
    for tok in Tokens::new(body, value.clone()) {
        last = [last[1], last[2], tok.start];
        n += 1;
    }
    if n < 4 {
        return Err(bad_origin(line, "expected six fields"));
    }
    parse_connection(
        body,
        line,
        &mut Tokens::new(body, last[0]..value.end),
        bad_origin,
    )
}

impl<'a> Sdp<'a> {
    /// Locates every media-relevant span of `body`.
    ///
    /// Fails only for bytes that are not SDP at all: no `v=` line first, a
    /// line that is not `<letter>=<value>` or holds control characters, a
    /// second `v=` line (several descriptions: see [`crate::descriptions`]),
    /// or an `m=` line whose media type, port or protocol cannot be read.
    pub fn parse(body: &'a [u8]) -> Result<Self, SdpError> {
        // Some captures end the body with NUL bytes: not part of any line.
        let limit = body.len() - body.iter().rev().take_while(|&&b| b == 0).count();
        let mut lines = Lines::new(body, limit);
        let mut sdp = Self {
            body,
            line_ending: LineEnding::CrLf,
            origin: None,
            session_connection: None,
            session_connection_error: None,
            session_direction: None,
            media: Vec::new(),
        };
        let mut ending_known = false;
        let mut seen_v = false;
        let mut current: Option<Media<'a>> = None;
        let mut after_m = false;
        for line in lines.by_ref() {
            if !ending_known && line.terminated {
                ending_known = true;
                let cr =
                    line.raw_end > line.raw_start && body.get(line.raw_end - 1) == Some(&b'\r');
                sdp.line_ending = if cr { LineEnding::CrLf } else { LineEnding::Lf };
            }
            let text = body.get(line.start..line.end).unwrap_or_default();
            if text.is_empty() {
                continue;
            }
            if line.control {
                return Err(not_sdp(line.no, "control character in a line"));
            }
            let (kind, rest) = match text {
                [k, b'=', rest @ ..] if k.is_ascii_alphabetic() => (*k, rest),
                _ => return Err(not_sdp(line.no, "not a <type>=<value> line")),
            };
            let value = line.start + 2..line.end;
            if !seen_v {
                if kind != b'v' {
                    return Err(not_sdp(line.no, "the first line is not v="));
                }
                seen_v = true;
                continue;
            }
            let was_after_m = std::mem::replace(&mut after_m, false);
            match kind {
                b'v' => {
                    return Err(not_sdp(
                        line.no,
                        "a second v= line: several descriptions in one body",
                    ));
                }
                b'm' => {
                    if let Some(mut m) = current.take() {
                        m.section.end = line.raw_start;
                        sdp.media.push(m);
                    }
                    let index = sdp.media.len();
                    current = Some(parse_media(body, &line, index, sdp.session_direction)?);
                    after_m = true;
                }
                b'i' => {
                    if let Some(m) = current.as_mut().filter(|_| was_after_m) {
                        m.insert = insert_after(&line);
                    }
                }
                b'c' => {
                    let parsed = parse_connection(
                        body,
                        line.no,
                        &mut Tokens::new(body, value),
                        bad_connection,
                    );
                    let (slot, error) = match current.as_mut() {
                        Some(m) => (&mut m.connection, &mut m.connection_error),
                        None => (
                            &mut sdp.session_connection,
                            &mut sdp.session_connection_error,
                        ),
                    };
                    // The first c= line counts, readable or not.
                    if slot.is_none() && error.is_none() {
                        match parsed {
                            Ok(c) => *slot = Some(c),
                            Err(e) => *error = Some(e),
                        }
                    }
                }
                b'o' if current.is_none() && sdp.origin.is_none() => {
                    sdp.origin = Some((line.no, value));
                }
                b'a' => {
                    // Only five attributes matter: recognise them by length
                    // and prefix rather than split every a= line.
                    let direction = match rest.len() {
                        8 => Direction::from_attribute(rest),
                        _ => None,
                    };
                    match current.as_mut() {
                        None => {
                            if direction.is_some() {
                                sdp.session_direction = direction;
                            }
                        }
                        Some(m) => {
                            if let Some(d) = direction {
                                m.direction = d;
                            } else if rest == b"rtcp-mux" {
                                m.rtcp_mux = true;
                            } else if rest.starts_with(b"rtcp:")
                                && m.rtcp.is_none()
                                && m.rtcp_error.is_none()
                            {
                                match parse_rtcp(body, line.no, value.start + 5..value.end) {
                                    Ok(r) => m.rtcp = Some(r),
                                    Err(e) => m.rtcp_error = Some(e),
                                }
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        if !seen_v {
            return Err(not_sdp(lines.count_so_far().max(1), "no v= line"));
        }
        if let Some(m) = current {
            sdp.media.push(m);
        }
        Ok(sdp)
    }

    /// The body this view reads.
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// One entry per `m=` line, in order.
    pub fn media(&self) -> &[Media<'a>] {
        &self.media
    }

    /// The session-level `c=` line, if there is one and it can be read.
    pub fn session_connection(&self) -> Option<&Connection<'a>> {
        self.session_connection.as_ref()
    }

    /// The session-level direction attribute, if there is one.
    pub fn session_direction(&self) -> Option<Direction> {
        self.session_direction
    }

    /// The address part of the `o=` line, if there is one and it can be read.
    pub fn origin(&self) -> Option<Connection<'a>> {
        self.origin_result().ok()
    }

    /// The line ending the body uses (that of its first line; CRLF for a
    /// body of one unterminated line). Added lines use it.
    pub fn line_ending(&self) -> LineEnding {
        self.line_ending
    }

    /// The address part of the `o=` line, or why there is none.
    pub(crate) fn origin_result(&self) -> Result<Connection<'a>, SdpError> {
        match &self.origin {
            Some((line, value)) => parse_origin(self.body, *line, value.clone()),
            None => Err(bad_origin(0, "the body has no o= line")),
        }
    }

    /// The `c=` line a stream uses: its own, else the session's. `Ok(None)`
    /// when there is neither; an error when the one it uses is unreadable.
    pub(crate) fn connection_of<'s>(
        &'s self,
        m: &'s Media<'a>,
    ) -> Result<Option<&'s Connection<'a>>, SdpError> {
        if let Some(e) = &m.connection_error {
            return Err(e.clone());
        }
        if let Some(c) = &m.connection {
            return Ok(Some(c));
        }
        if let Some(e) = &self.session_connection_error {
            return Err(e.clone());
        }
        Ok(self.session_connection.as_ref())
    }

    /// The streams as the MPR engine wants them, one per `m=` line (index =
    /// position).
    ///
    /// `addr` is the IP of the media-level `c=` (else the session-level one)
    /// and the `m=` port; a `c=` address that is a host name rather than an
    /// IP literal, and a missing `c=`, give `fqdn_fallback` (an ALG passes
    /// the sender's IP). `rtcp` is [`RtcpMode::Mux`] with `a=rtcp-mux`, else
    /// [`RtcpMode::Pair`]; `rtcp_addr` is set when the section has
    /// `a=rtcp:`, with its own address or else the connection IP. Disabled
    /// streams (port 0) are kept; `c=0.0.0.0` with a port is the old-style
    /// hold and stays so.
    ///
    /// Fails when an enabled stream's `c=` or `a=rtcp:` cannot be read.
    pub fn endpoints(&self, fqdn_fallback: IpAddr) -> Result<Vec<MediaEndpoint>, SdpError> {
        self.media
            .iter()
            .map(|m| self.endpoint(m, fqdn_fallback))
            .collect()
    }

    /// The endpoint of one stream (see [`Sdp::endpoints`]).
    pub fn endpoint(
        &self,
        m: &Media<'a>,
        fqdn_fallback: IpAddr,
    ) -> Result<MediaEndpoint, SdpError> {
        let ip = match self.connection_of(m) {
            Ok(c) => c.and_then(Connection::ip).unwrap_or(fqdn_fallback),
            // The address of a disabled stream means nothing: do not fail
            // a call over it.
            Err(_) if m.is_disabled() => fqdn_fallback,
            Err(e) => return Err(e),
        };
        let rtcp_addr = match (&m.rtcp, &m.rtcp_error) {
            (Some(r), _) => {
                let rip = match &r.addr {
                    Some(c) => c.ip().unwrap_or(fqdn_fallback),
                    None => ip,
                };
                Some(SocketAddr::new(rip, r.port))
            }
            (None, Some(e)) if !m.is_disabled() => return Err(e.clone()),
            (None, _) => None,
        };
        Ok(MediaEndpoint {
            index: m.index,
            addr: SocketAddr::new(ip, m.port),
            rtcp: if m.rtcp_mux {
                RtcpMode::Mux
            } else {
                RtcpMode::Pair
            },
            rtcp_addr,
        })
    }
}
