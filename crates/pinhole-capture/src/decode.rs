//! From a captured frame down to transport payloads: link layers, tunnels,
//! IP (with fragment reassembly), then UDP, TCP or SCTP.

use std::fmt::Display;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use etherparse::{
    Ethernet2Slice, Ipv6ExtensionSlice, LaxIpSlice, LinuxSllProtocolType, LinuxSllSlice,
    SingleVlanSlice, TcpSlice, UdpSlice,
};

use crate::{Capture, Limits, Stats, Transport, Unit, defrag, sctp, tcp};

/// How deep tunnels and VLAN tags may nest before a frame is given up.
const MAX_DEPTH: u8 = 8;

/// The link layer of a frame: a pcap `LINKTYPE_` value, as decoded here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkType {
    /// BSD loopback (0): a 4-byte address family in the capturing host's
    /// byte order, then IP.
    Null,
    /// Ethernet (1), with 802.1Q / 802.1ad tags and PPPoE sessions.
    Ethernet,
    /// Raw IPv4 or IPv6 (101, and the old values 12 and 14).
    Raw,
    /// OpenBSD loopback (108): like [`LinkType::Null`] in network byte order.
    Loop,
    /// Linux cooked capture v1 (113).
    LinuxSll,
    /// Linux cooked capture v2 (276).
    LinuxSll2,
    /// Raw IPv4 (228).
    Ipv4,
    /// Raw IPv6 (229).
    Ipv6,
    /// Any other link type: its frames are skipped.
    Other(u32),
}

impl LinkType {
    /// The link type for a pcap / pcapng link-type field (the FCS bits
    /// pcap keeps above bit 26 are ignored).
    pub fn from_code(code: u32) -> Self {
        match code & 0x03FF_FFFF {
            0 => Self::Null,
            1 => Self::Ethernet,
            12 | 14 | 101 => Self::Raw,
            108 => Self::Loop,
            113 => Self::LinuxSll,
            276 => Self::LinuxSll2,
            228 => Self::Ipv4,
            229 => Self::Ipv6,
            other => Self::Other(other),
        }
    }

    /// The `LINKTYPE_` value (101 for every raw IP variant).
    pub fn code(self) -> u32 {
        match self {
            Self::Null => 0,
            Self::Ethernet => 1,
            Self::Raw => 101,
            Self::Loop => 108,
            Self::LinuxSll => 113,
            Self::LinuxSll2 => 276,
            Self::Ipv4 => 228,
            Self::Ipv6 => 229,
            Self::Other(code) => code,
        }
    }

    /// Whether frames of this link type are decoded.
    pub fn is_supported(self) -> bool {
        !matches!(self, Self::Other(_))
    }
}

/// Where in the capture a packet is being decoded.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ctx {
    pub(crate) frame: u64,
    pub(crate) time: Duration,
}

/// Shared output of the decoding stages: units, counters, bounds.
#[derive(Debug)]
pub(crate) struct Out {
    pub(crate) limits: Limits,
    pub(crate) stats: Stats,
    pub(crate) units: Vec<Unit>,
    /// The last frame counted in [`Stats::skipped`], so a frame counts once.
    skipped_frame: u64,
}

impl Out {
    /// Records a problem with a frame (bounded list, exact total).
    pub(crate) fn error(&mut self, frame: u64, what: impl Display) {
        self.stats.errors_total += 1;
        if self.stats.errors.len() < self.limits.max_errors {
            self.stats.errors.push((frame, what.to_string()));
        }
    }

    /// Counts a frame that yields nothing.
    pub(crate) fn skip(&mut self, frame: u64) {
        if self.skipped_frame != frame {
            self.skipped_frame = frame;
            self.stats.skipped += 1;
        }
    }

    /// A frame that yields nothing because it is damaged.
    pub(crate) fn fail(&mut self, frame: u64, what: impl Display) {
        self.skip(frame);
        self.error(frame, what);
    }

    pub(crate) fn unit(
        &mut self,
        ctx: Ctx,
        transport: Transport,
        src: SocketAddr,
        dst: SocketAddr,
        payload: Vec<u8>,
        after_gap: bool,
    ) {
        self.units.push(Unit {
            frame: ctx.frame,
            time: ctx.time,
            transport,
            src,
            dst,
            payload,
            after_gap,
        });
    }
}

/// Decodes frames one at a time, keeping the state that spans frames (IP
/// fragments, TCP streams, SCTP fragments). [`crate::read`] drives one over
/// a file; use one directly for frames from elsewhere.
///
/// ```
/// use std::time::Duration;
/// use pinhole_capture::{Decoder, LinkType, Transport};
///
/// // A raw IPv4 packet: UDP 10.0.0.1:2427 -> 10.0.0.2:2727, "hello".
/// let mut pkt = vec![0x45, 0, 0, 33, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
/// pkt.extend([0x09, 0x7b, 0x0a, 0xa7, 0, 13, 0, 0]);
/// pkt.extend(b"hello");
/// let mut decoder = Decoder::new();
/// decoder.packet(1, Duration::from_secs(7), LinkType::Raw, &pkt);
/// let capture = decoder.finish();
/// assert_eq!(capture.units[0].transport, Transport::Udp);
/// assert_eq!(capture.units[0].payload, b"hello");
/// ```
#[derive(Debug)]
pub struct Decoder {
    out: Out,
    frags: defrag::Table,
    tcp: tcp::Table,
    sctp: sctp::Table,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    /// A decoder with the default [`Limits`].
    pub fn new() -> Self {
        Self::with_limits(Limits::default())
    }

    /// A decoder with the given bounds.
    pub fn with_limits(limits: Limits) -> Self {
        Self {
            out: Out {
                limits,
                stats: Stats::default(),
                units: Vec::new(),
                skipped_frame: 0,
            },
            frags: defrag::Table::default(),
            tcp: tcp::Table::default(),
            sctp: sctp::Table::default(),
        }
    }

    /// Decodes one frame: `frame` is its 1-based number, `time` its
    /// capture timestamp, `data` the captured bytes from the link header on.
    pub fn packet(&mut self, frame: u64, time: Duration, link: LinkType, data: &[u8]) {
        self.out.stats.frames += 1;
        let ctx = Ctx { frame, time };
        match link {
            LinkType::Ethernet => self.ethernet(ctx, data, 0),
            LinkType::Raw | LinkType::Ipv4 | LinkType::Ipv6 => self.ip(ctx, data, 0),
            LinkType::Null => self.null(ctx, data, false),
            LinkType::Loop => self.null(ctx, data, true),
            LinkType::LinuxSll => self.sll(ctx, data),
            LinkType::LinuxSll2 => self.sll2(ctx, data),
            LinkType::Other(code) => self
                .out
                .fail(frame, format_args!("unsupported link type {code}")),
        }
    }

    /// Counts a frame the file reader could not hand over (a damaged
    /// packet block).
    pub(crate) fn bad_frame(&mut self, frame: u64, what: impl Display) {
        self.out.stats.frames += 1;
        self.out.fail(frame, what);
    }

    /// Records a problem found outside any frame (the file's structure).
    pub(crate) fn file_error(&mut self, frame: u64, what: impl Display) {
        self.out.error(frame, what);
    }

    /// The counters so far.
    pub fn stats(&self) -> &Stats {
        &self.out.stats
    }

    /// Takes the units completed so far, in the order they were completed.
    pub fn take_units(&mut self) -> Vec<Unit> {
        std::mem::take(&mut self.out.units)
    }

    /// Ends the capture: bytes still held for a missing TCP segment are
    /// delivered after their hole, an unanswered HTTP upgrade as plain TCP.
    /// Units are returned sorted by frame (stable).
    pub fn finish(mut self) -> Capture {
        self.tcp.finish(&mut self.out);
        self.sctp.finish(&mut self.out);
        self.frags.finish(&mut self.out);
        let mut units = self.out.units;
        units.sort_by_key(|u| u.frame);
        Capture {
            units,
            stats: self.out.stats,
        }
    }

    fn ethernet(&mut self, ctx: Ctx, data: &[u8], depth: u8) {
        match Ethernet2Slice::from_slice_without_fcs(data) {
            Ok(eth) => self.ether_type(ctx, eth.ether_type().0, eth.payload_slice(), depth),
            Err(e) => self.out.fail(ctx.frame, format_args!("Ethernet: {e}")),
        }
    }

    fn ether_type(&mut self, ctx: Ctx, ether_type: u16, data: &[u8], depth: u8) {
        if depth > MAX_DEPTH {
            return self.out.fail(ctx.frame, "too many nested headers");
        }
        match ether_type {
            0x0800 | 0x86DD => self.ip(ctx, data, depth),
            // 802.1Q, 802.1ad (QinQ outer), and the pre-standard QinQ value.
            0x8100 | 0x88A8 | 0x9100 => match SingleVlanSlice::from_slice(data) {
                Ok(vlan) => {
                    self.ether_type(ctx, vlan.ether_type().0, vlan.payload_slice(), depth + 1)
                }
                Err(e) => self.out.fail(ctx.frame, format_args!("VLAN tag: {e}")),
            },
            0x8864 => self.pppoe(ctx, data, depth + 1),
            _ => self.out.skip(ctx.frame),
        }
    }

    /// PPPoE session stage (RFC 2516): a 6-byte header, then PPP.
    fn pppoe(&mut self, ctx: Ctx, data: &[u8], depth: u8) {
        let Some(&[ver_type, code, _, _, len_hi, len_lo]) = data.first_chunk::<6>() else {
            return self.out.fail(ctx.frame, "PPPoE header truncated");
        };
        if ver_type != 0x11 || code != 0 {
            return self.out.fail(
                ctx.frame,
                format_args!("PPPoE: version/type {ver_type:#04x}, code {code:#04x} is no session"),
            );
        }
        let len = usize::from(u16::from_be_bytes([len_hi, len_lo]));
        // The length field cuts off Ethernet padding.
        let Some(ppp) = data.get(6..6 + len) else {
            return self.out.fail(ctx.frame, "PPPoE payload truncated");
        };
        self.ppp(ctx, ppp, depth)
    }

    /// A PPP frame without HDLC framing: protocol field, then the packet.
    fn ppp(&mut self, ctx: Ctx, data: &[u8], depth: u8) {
        // Address and control (0xFF 0x03) appear in PPP over GRE.
        let data = data.strip_prefix(&[0xFF, 0x03]).unwrap_or(data);
        // A protocol field may be compressed to one (odd) byte (RFC 1661).
        let (proto, rest) = match data {
            [b, rest @ ..] if b & 1 == 1 => (u16::from(*b), rest),
            [hi, lo, rest @ ..] => (u16::from_be_bytes([*hi, *lo]), rest),
            _ => return self.out.fail(ctx.frame, "PPP header truncated"),
        };
        match proto {
            0x0021 | 0x0057 => self.ip(ctx, rest, depth),
            _ => self.out.skip(ctx.frame),
        }
    }

    fn null(&mut self, ctx: Ctx, data: &[u8], network_order: bool) {
        let Some((family, rest)) = data.split_first_chunk::<4>() else {
            return self.out.fail(ctx.frame, "loopback header truncated");
        };
        let family = if network_order {
            u32::from_be_bytes(*family)
        } else {
            // The capturing host's byte order, unknown here: a family is
            // small, so the order that gives the small number is right.
            let le = u32::from_le_bytes(*family);
            let be = u32::from_be_bytes(*family);
            le.min(be)
        };
        // AF_INET, then AF_INET6 as Linux, FreeBSD, OpenBSD/NetBSD, macOS
        // and Windows number it.
        match family {
            2 | 10 | 23 | 24 | 28 | 30 => self.ip(ctx, rest, 0),
            _ => self.out.skip(ctx.frame),
        }
    }

    fn sll(&mut self, ctx: Ctx, data: &[u8]) {
        let sll = match LinuxSllSlice::from_slice(data) {
            Ok(s) => s,
            Err(e) => {
                return self
                    .out
                    .fail(ctx.frame, format_args!("Linux cooked header: {e}"));
            }
        };
        match sll.protocol_type() {
            LinuxSllProtocolType::EtherType(et) => {
                self.ether_type(ctx, et.0, sll.payload_slice(), 0)
            }
            // A GRE interface gives the GRE protocol type, an EtherType.
            LinuxSllProtocolType::GenericRoutingEncapsulationProtocolType(et) => {
                self.ether_type(ctx, et, sll.payload_slice(), 0)
            }
            _ => self.out.skip(ctx.frame),
        }
    }

    /// Linux cooked capture v2: protocol (2), reserved (2), interface
    /// index (4), ARPHRD type (2), packet type (1), address length (1),
    /// address (8).
    fn sll2(&mut self, ctx: Ctx, data: &[u8]) {
        let Some((head, rest)) = data.split_first_chunk::<20>() else {
            return self.out.fail(ctx.frame, "Linux cooked v2 header truncated");
        };
        self.ether_type(ctx, u16::from_be_bytes([head[0], head[1]]), rest, 0)
    }

    pub(crate) fn ip(&mut self, ctx: Ctx, data: &[u8], depth: u8) {
        if depth > MAX_DEPTH {
            return self.out.fail(ctx.frame, "too many nested headers");
        }
        let (ip, ext_err) = match LaxIpSlice::from_slice(data) {
            Ok(v) => v,
            Err(e) => return self.out.fail(ctx.frame, format_args!("IP header: {e}")),
        };
        if let Some((e, _)) = ext_err {
            return self
                .out
                .fail(ctx.frame, format_args!("IPv6 extension header: {e}"));
        }
        let (src, dst) = (ip.source_addr(), ip.destination_addr());
        let payload = ip.payload();
        if payload.incomplete {
            return self.out.fail(
                ctx.frame,
                "IP packet truncated (cut by the capture's snap length?)",
            );
        }
        let proto = payload.ip_number.0;
        if !payload.fragmented {
            return self.transport(ctx, src, dst, proto, payload.payload, depth);
        }
        let frag = match &ip {
            LaxIpSlice::Ipv4(v) => {
                let h = v.header();
                Some((
                    u32::from(h.identification()),
                    h.fragments_offset().byte_offset(),
                    h.more_fragments(),
                ))
            }
            LaxIpSlice::Ipv6(v) => v
                .extensions()
                .clone()
                .into_iter()
                .find_map(|ext| match ext {
                    Ipv6ExtensionSlice::Fragment(f) => Some((
                        f.identification(),
                        f.fragment_offset().byte_offset(),
                        f.more_fragments(),
                    )),
                    _ => None,
                }),
        };
        let Some((id, offset, more)) = frag else {
            return self
                .out
                .fail(ctx.frame, "IP fragment without fragment header");
        };
        let key = defrag::Key {
            src,
            dst,
            id,
            proto,
        };
        if let Some(whole) = self
            .frags
            .add(&mut self.out, ctx, key, offset, more, payload.payload)
        {
            self.out.stats.fragments_reassembled += 1;
            self.transport(ctx, src, dst, proto, &whole, depth);
        }
    }

    fn transport(&mut self, ctx: Ctx, src: IpAddr, dst: IpAddr, proto: u8, data: &[u8], depth: u8) {
        match proto {
            17 => match UdpSlice::from_slice(data) {
                Ok(udp) => {
                    let src = SocketAddr::new(src, udp.source_port());
                    let dst = SocketAddr::new(dst, udp.destination_port());
                    self.out
                        .unit(ctx, Transport::Udp, src, dst, udp.payload().to_vec(), false);
                }
                Err(e) => self.out.fail(ctx.frame, format_args!("UDP: {e}")),
            },
            6 => match TcpSlice::from_slice(data) {
                Ok(seg) => {
                    let src = SocketAddr::new(src, seg.source_port());
                    let dst = SocketAddr::new(dst, seg.destination_port());
                    self.tcp.segment(&mut self.out, ctx, src, dst, &seg);
                }
                Err(e) => self.out.fail(ctx.frame, format_args!("TCP: {e}")),
            },
            132 => self.sctp.packet(&mut self.out, ctx, src, dst, data),
            // IPv4 or IPv6 in IP.
            4 | 41 => self.ip(ctx, data, depth + 1),
            47 => self.gre(ctx, data, depth + 1),
            _ => self.out.skip(ctx.frame),
        }
    }

    /// GRE (RFC 2784 / 2890, and the PPTP variant of RFC 2637).
    fn gre(&mut self, ctx: Ctx, data: &[u8], depth: u8) {
        let Some(&[f0, f1, p0, p1]) = data.first_chunk::<4>() else {
            return self.out.fail(ctx.frame, "GRE header truncated");
        };
        let flags = u16::from_be_bytes([f0, f1]);
        let proto = u16::from_be_bytes([p0, p1]);
        let (checksum, routing, key, seq) = (
            flags & 0x8000 != 0,
            flags & 0x4000 != 0,
            flags & 0x2000 != 0,
            flags & 0x1000 != 0,
        );
        let mut len = 4;
        match flags & 7 {
            0 => {
                if routing {
                    // Source routing (RFC 1701) is long obsolete.
                    return self.out.fail(ctx.frame, "GRE with source routing");
                }
                len += 4 * (usize::from(checksum) + usize::from(key) + usize::from(seq));
            }
            // Enhanced GRE (PPTP): key always there, acknowledgement flag.
            1 => len += 4 * (1 + usize::from(seq) + usize::from(flags & 0x0080 != 0)),
            v => return self.out.fail(ctx.frame, format_args!("GRE version {v}")),
        }
        let Some(payload) = data.get(len..) else {
            return self.out.fail(ctx.frame, "GRE header truncated");
        };
        match proto {
            // Transparent Ethernet bridging.
            0x6558 => self.ethernet(ctx, payload, depth),
            // ERSPAN type II has an 8-byte header and the sequence number;
            // type I has neither.
            0x88BE if seq => match payload.get(8..) {
                Some(inner) => self.ethernet(ctx, inner, depth),
                None => self.out.fail(ctx.frame, "ERSPAN II header truncated"),
            },
            0x88BE => self.ethernet(ctx, payload, depth),
            0x22EB => self.erspan3(ctx, payload, depth),
            0x880B => self.ppp(ctx, payload, depth),
            other => self.ether_type(ctx, other, payload, depth),
        }
    }

    /// ERSPAN type III: 12-byte header, an 8-byte platform-specific
    /// sub-header when the O flag is set; the frame type says Ethernet (0)
    /// or IP (2).
    fn erspan3(&mut self, ctx: Ctx, data: &[u8], depth: u8) {
        let Some(head) = data.first_chunk::<12>() else {
            return self.out.fail(ctx.frame, "ERSPAN III header truncated");
        };
        let frame_type = (head[10] >> 2) & 0x1F;
        let len = if head[11] & 1 != 0 { 20 } else { 12 };
        let Some(inner) = data.get(len..) else {
            return self.out.fail(ctx.frame, "ERSPAN III header truncated");
        };
        match frame_type {
            0 => self.ethernet(ctx, inner, depth),
            2 => self.ip(ctx, inner, depth),
            t => self
                .out
                .fail(ctx.frame, format_args!("ERSPAN III frame type {t}")),
        }
    }
}
