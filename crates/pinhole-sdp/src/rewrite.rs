//! Writing a media plan into a body as [`Patch`] edits of the located spans.

use std::net::{IpAddr, SocketAddr};

use pinhole_core::intent::PlannedEndpoint;
use pinhole_core::patch::Patch;

use crate::error::SdpError;
use crate::parse::{AddrType, Connection, Media, Sdp, Span};

/// What [`Sdp::rewrite`] does besides the planned streams.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RewriteOptions {
    /// Write this address into the `o=` line too (it is left alone when
    /// `None`: the origin names the session, not where media goes).
    pub rewrite_origin: Option<IpAddr>,
}

/// What happens to the session-level `c=` line.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum SessionPlan {
    /// Nothing: no stream that uses it changes address.
    Keep,
    /// Every stream that uses it gets this address: write it there.
    Shared(IpAddr),
    /// The streams that use it get different addresses: each planned one
    /// whose address changes gets a media-level `c=` line of its own.
    Split,
}

/// Plans for up to this many streams are checked without allocating.
const INLINE_STREAMS: usize = 16;

/// The RTCP address to write into `m`'s `a=rtcp:`, if it has one: the
/// planned one, else the RTP address with `a=rtcp-mux`, else the next port.
fn rtcp_for(m: &Media<'_>, p: &PlannedEndpoint) -> Result<Option<SocketAddr>, SdpError> {
    Ok(match (&m.rtcp, p.rtcp_addr) {
        (None, _) => None,
        (Some(_), Some(a)) => Some(a),
        (Some(_), None) if m.rtcp_mux => Some(p.addr),
        (Some(_), None) => {
            let port = p.addr.port().checked_add(1).ok_or(SdpError::BadPlan {
                index: p.index,
                line: m.line,
                reason: "RTP port 65535 leaves no port for RTCP",
            })?;
            Some(SocketAddr::new(p.addr.ip(), port))
        }
    })
}

impl<'a> Sdp<'a> {
    /// Records in `patch` the edits that write `plan` into this body.
    ///
    /// For each planned endpoint, matched to its `m=` line by index: the
    /// `m=` port; the `c=` address — the media-level line if there is one;
    /// else the session-level one if every enabled stream that uses it ends
    /// up with the same address; else a new media-level `c=` line after the
    /// `m=` line (and its `i=` line), in the body's own line ending; the
    /// address type when the family changes; and the `a=rtcp:` port, and its
    /// address when it has one. The RTCP address is the planned one, else
    /// the RTP address (with `a=rtcp-mux`) or the RTP port + 1. Disabled
    /// streams (port 0) are left untouched, and the `o=` line too unless
    /// `opts.rewrite_origin` says otherwise.
    ///
    /// Everything is checked before anything is recorded: on an error
    /// `patch` is as it was.
    pub fn rewrite(
        &self,
        plan: &[PlannedEndpoint],
        opts: &RewriteOptions,
        patch: &mut Patch,
    ) -> Result<(), SdpError> {
        let n = self.media().len();
        let mut inline = [None; INLINE_STREAMS];
        let mut heap = Vec::new();
        let planned: &mut [Option<IpAddr>] = match inline.get_mut(..n) {
            Some(slots) => slots,
            None => {
                heap.resize(n, None);
                &mut heap
            }
        };
        self.check(plan, opts, planned)?;
        let session = self.session_plan(planned);
        if let Some(ip) = opts.rewrite_origin
            && let Ok(o) = self.origin_result()
        {
            write_address(patch, &o, ip);
        }
        if let (SessionPlan::Shared(ip), Some(c)) = (session, self.session_connection()) {
            write_address(patch, c, ip);
        }
        for p in plan {
            // Checked: every index names a stream.
            let Some(m) = self.media().get(usize::from(p.index)) else {
                continue;
            };
            if m.is_disabled() {
                continue;
            }
            let ip = p.addr.ip();
            if p.addr.port() != m.port {
                write_port(patch, m.port_span.clone(), p.addr.port());
            }
            match &m.connection {
                Some(c) => write_address(patch, c, ip),
                None if session == SessionPlan::Split || self.session_connection().is_none() => {
                    let current = self.session_connection().and_then(Connection::ip);
                    if current != Some(ip) {
                        self.insert_connection(patch, m, ip);
                    }
                }
                None => {}
            }
            if let (Some(r), Ok(Some(to))) = (&m.rtcp, rtcp_for(m, p)) {
                if r.port != to.port() {
                    write_port(patch, r.port_span.clone(), to.port());
                }
                if let Some(c) = &r.addr {
                    write_address(patch, c, to.ip());
                }
            }
        }
        Ok(())
    }

    /// Validates the plan and the lines it needs, filling in the planned
    /// address of each stream by index (`planned` has one slot per stream).
    fn check(
        &self,
        plan: &[PlannedEndpoint],
        opts: &RewriteOptions,
        planned: &mut [Option<IpAddr>],
    ) -> Result<(), SdpError> {
        if opts.rewrite_origin.is_some() {
            self.origin_result()?;
        }
        for p in plan {
            let i = usize::from(p.index);
            let (Some(m), Some(slot)) = (self.media().get(i), planned.get_mut(i)) else {
                return Err(SdpError::BadPlan {
                    index: p.index,
                    line: 0,
                    reason: "the body has no such m= line",
                });
            };
            if slot.replace(p.addr.ip()).is_some() {
                return Err(SdpError::BadPlan {
                    index: p.index,
                    line: m.line,
                    reason: "planned twice",
                });
            }
            if m.is_disabled() {
                continue;
            }
            self.connection_of(m)?;
            if let Some(e) = &m.rtcp_error {
                return Err(e.clone());
            }
            rtcp_for(m, p)?;
        }
        Ok(())
    }

    /// Decides what happens to the session-level `c=` line, given the
    /// planned address of each stream (by index).
    fn session_plan(&self, planned: &[Option<IpAddr>]) -> SessionPlan {
        let Some(session) = self.session_connection() else {
            return SessionPlan::Keep;
        };
        let current = session.ip();
        // The address each enabled stream that uses the session c= ends up
        // with: the planned one, or (unplanned) the current one.
        let mut target: Option<Option<IpAddr>> = None;
        for m in self.media() {
            if m.is_disabled() || m.connection.is_some() || m.connection_error.is_some() {
                continue;
            }
            let ip = planned
                .get(usize::from(m.index))
                .copied()
                .flatten()
                .or(current);
            match target {
                None => target = Some(ip),
                Some(t) if t == ip => {}
                // Two different addresses: at least one is not the current.
                Some(_) => return SessionPlan::Split,
            }
        }
        match target {
            Some(Some(ip)) if Some(ip) != current => SessionPlan::Shared(ip),
            _ => SessionPlan::Keep,
        }
    }

    /// Adds a media-level `c=` line for `m`.
    fn insert_connection(&self, patch: &mut Patch, m: &Media<'a>, ip: IpAddr) {
        let eol = self.line_ending().as_str();
        let family = AddrType::of(ip).as_str();
        let at = m.insert.at..m.insert.at;
        if m.insert.eol_first {
            patch.replace_fmt(at, format_args!("{eol}c=IN {family} {ip}"));
        } else {
            patch.replace_fmt(at, format_args!("c=IN {family} {ip}{eol}"));
        }
    }
}

/// Writes `ip` over the address of `c` (and its address type if the family
/// changes); nothing when it is already there.
fn write_address(patch: &mut Patch, c: &Connection<'_>, ip: IpAddr) {
    if c.ip() != Some(ip) {
        match ip {
            IpAddr::V4(a) => {
                let mut text = Text::<15>::new();
                for (i, octet) in a.octets().into_iter().enumerate() {
                    if i > 0 {
                        text.push(b'.');
                    }
                    text.push_decimal(octet.into());
                }
                patch.replace(c.address_span.clone(), text.as_bytes());
            }
            IpAddr::V6(_) => patch.replace_fmt(c.address_span.clone(), format_args!("{ip}")),
        }
    }
    let family = AddrType::of(ip);
    if c.addrtype != family {
        patch.replace(c.addrtype_span.clone(), family.as_str().as_bytes());
    }
}

/// Writes a port in decimal.
fn write_port(patch: &mut Patch, span: Span, port: u16) {
    let mut text = Text::<5>::new();
    text.push_decimal(port);
    patch.replace(span, text.as_bytes());
}

/// A few bytes of text on the stack. Ports and IPv4 addresses are written
/// by hand, not through `core::fmt`: this runs for every stream of every
/// message, and formatting machinery costs more than the parse.
struct Text<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> Text<N> {
    fn new() -> Self {
        Self {
            bytes: [0; N],
            len: 0,
        }
    }

    /// Appends `b`; past the capacity, nothing (callers size it).
    fn push(&mut self, b: u8) {
        if let Some(slot) = self.bytes.get_mut(self.len) {
            *slot = b;
            self.len += 1;
        }
    }

    fn push_decimal(&mut self, mut v: u16) {
        let mut started = false;
        for div in [10_000, 1_000, 100, 10] {
            let digit = v / div;
            if digit > 0 || started {
                self.push(b'0' + digit as u8);
                started = true;
            }
            v %= div;
        }
        self.push(b'0' + v as u8);
    }

    fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }
}

/// Rewrites every enabled stream of `body` to `to`'s address with
/// consecutive even ports: the `n`-th enabled stream (from 0) gets RTP on
/// `to.port() + 2n` and RTCP on the port after it (its own port with
/// `a=rtcp-mux`). The `o=` line is left alone. For the operator's
/// `pinhole rewrite --to ADDR:PORT`.
pub fn rewrite_all(body: &[u8], to: SocketAddr) -> Result<Vec<u8>, SdpError> {
    let sdp = Sdp::parse(body)?;
    let mut next = u32::from(to.port());
    let plan = plan_consecutive(&sdp, to.ip(), &mut next).map_err(|index| {
        let line = sdp
            .media()
            .iter()
            .find(|m| m.index == index)
            .map_or(0, |m| m.line);
        SdpError::BadPlan {
            index,
            line,
            reason: "the ports run past 65535",
        }
    })?;
    let mut patch = Patch::new();
    sdp.rewrite(&plan, &RewriteOptions::default(), &mut patch)?;
    Ok(patch.apply(body)?)
}

/// The operator's consecutive-port plan for one description: its enabled
/// streams, in order, get RTP on `ip` at `*next`, `*next + 2`, ... and,
/// unless a stream uses `a=rtcp-mux`, RTCP on the port after; `*next`
/// moves past them, so several descriptions of one message continue the
/// count. Disabled streams (port 0) are left out. Fails with the index of
/// the first stream whose ports would run past 65535.
///
/// ```
/// let sdp = pinhole_sdp::Sdp::parse(b"v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 0\r\nm=video 0 RTP/AVP 96\r\nm=video 4002 RTP/AVP 96\r\na=rtcp-mux\r\n").unwrap();
/// let mut next = 30_000;
/// let plan = pinhole_sdp::plan_consecutive(&sdp, "203.0.113.10".parse().unwrap(), &mut next).unwrap();
/// assert_eq!(plan.len(), 2);
/// assert_eq!((plan[0].index, plan[0].addr.port(), plan[0].rtcp_addr.map(|a| a.port())), (0, 30_000, Some(30_001)));
/// assert_eq!((plan[1].index, plan[1].addr.port(), plan[1].rtcp_addr), (2, 30_002, None));
/// assert_eq!(next, 30_004);
/// ```
pub fn plan_consecutive(
    sdp: &Sdp<'_>,
    ip: IpAddr,
    next: &mut u32,
) -> Result<Vec<PlannedEndpoint>, u16> {
    let mut plan = Vec::new();
    for m in sdp.media().iter().filter(|m| !m.is_disabled()) {
        let (Ok(rtp), Ok(rtcp)) = (u16::try_from(*next), u16::try_from(*next + 1)) else {
            return Err(m.index);
        };
        plan.push(PlannedEndpoint {
            index: m.index,
            addr: SocketAddr::new(ip, rtp),
            rtcp_addr: (!m.rtcp_mux).then_some(SocketAddr::new(ip, rtcp)),
        });
        *next += 2;
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_written_numbers_match_display() {
        for v in [
            0u16, 1, 9, 10, 99, 100, 909, 1000, 4000, 10_000, 10_001, 65_535,
        ] {
            let mut t = Text::<5>::new();
            t.push_decimal(v);
            assert_eq!(t.as_bytes(), v.to_string().as_bytes());
        }
        let mut t = Text::<2>::new();
        t.push_decimal(123);
        assert_eq!(t.as_bytes(), b"12", "capacity is a hard limit");
        for ip in ["0.0.0.0", "255.255.255.255", "203.0.113.10", "10.0.100.1"] {
            let c = Connection {
                line: 1,
                nettype: "IN",
                addrtype: AddrType::Ip4,
                addrtype_span: 0..0,
                host: crate::Host::Fqdn("x"),
                address_span: 0..1,
                suffix_span: 1..1,
            };
            let mut p = Patch::new();
            write_address(&mut p, &c, ip.parse().unwrap());
            assert_eq!(p.apply(b"x").unwrap(), ip.as_bytes());
        }
    }
}
