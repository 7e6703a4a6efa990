//! Reads pcap and pcapng captures, as operators have them, and yields the
//! application payloads a signaling inspector needs: UDP datagrams, TCP
//! bytes in sequence order, SCTP DATA chunks and WebSocket messages, each
//! with the 1-based frame number Wireshark would show.
//!
//! | layer | handled |
//! | --- | --- |
//! | file | pcap (both byte orders, µs and ns), pcapng (any `if_tsresol`, several interfaces) |
//! | link | Ethernet (802.1Q, QinQ), Linux cooked SLL and SLL2, raw IP (101, 12, 14, 228, 229), BSD null / loop, PPPoE sessions |
//! | tunnels | IP-in-IP (4, 41), GRE (47) incl. transparent Ethernet and ERSPAN types I, II, III |
//! | network | IPv4, IPv6 with extension headers; fragments reassembled (bounded count, capture-time timeout) |
//! | transport | UDP; TCP per flow direction in sequence order (out-of-order held, retransmissions dropped); SCTP DATA and I-DATA (fragments joined) |
//! | application | WebSocket (RFC 6455) after an HTTP `Upgrade: websocket` answered `101` |
//!
//! Parsing of containers and headers is done by `pcap-file` and
//! `etherparse`; this crate adds what they lack (stream reassembly,
//! WebSocket, SCTP, SLL2, PPPoE, GRE/ERSPAN, bounded IP defragmentation).
//! Nothing here opens a socket or reads a clock: input is the capture's
//! bytes, time is the capture's own. Hostile input never panics, and every
//! buffer is bounded ([`Limits`]); what does not fit is dropped and counted
//! in [`Stats`].
//!
//! ```
//! use std::net::SocketAddr;
//! use pinhole_capture::{read, Transport};
//!
//! // A one-packet pcap (Ethernet, IPv4, UDP 5060) with a SIP OPTIONS.
//! let sip = b"OPTIONS sip:a@example.com SIP/2.0\r\n\r\n";
//! let udp_len = 8 + sip.len();
//! let ip_len = 20 + udp_len;
//! let mut frame = vec![0u8; 12];                      // MAC addresses
//! frame.extend([0x08, 0x00]);                         // EtherType IPv4
//! frame.extend([0x45, 0, (ip_len >> 8) as u8, ip_len as u8, 0, 0, 0, 0, 64, 17, 0, 0]);
//! frame.extend([192, 0, 2, 1, 192, 0, 2, 2]);         // src, dst
//! frame.extend([0x13, 0xc4, 0x13, 0xc4, (udp_len >> 8) as u8, udp_len as u8, 0, 0]);
//! frame.extend(sip);
//! let mut file = Vec::new();
//! file.extend(0xa1b2_c3d4u32.to_le_bytes());          // pcap, µs, little endian
//! file.extend([2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]);  // version 2.4, zone, sigfigs
//! file.extend(65535u32.to_le_bytes());                // snaplen
//! file.extend(1u32.to_le_bytes());                    // LINKTYPE_ETHERNET
//! file.extend(1_700_000_000u32.to_le_bytes());        // seconds
//! file.extend(250_000u32.to_le_bytes());              // microseconds
//! file.extend((frame.len() as u32).to_le_bytes());    // captured length
//! file.extend((frame.len() as u32).to_le_bytes());    // original length
//! file.extend(&frame);
//!
//! let capture = read(&file).unwrap();
//! assert_eq!(capture.stats.frames, 1);
//! let unit = &capture.units[0];
//! assert_eq!((unit.frame, unit.transport), (1, Transport::Udp));
//! assert_eq!(unit.src, "192.0.2.1:5060".parse::<SocketAddr>().unwrap());
//! assert_eq!(unit.time.as_millis(), 1_700_000_000_250);
//! assert_eq!(unit.payload, sip);
//! ```
//!
//! A stream transport yields the next in-order bytes of one flow direction
//! per unit; the caller frames messages itself with a buffer per
//! `(src, dst)`, and drops that buffer when [`Unit::after_gap`] says bytes
//! are missing.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod decode;
mod defrag;
mod error;
mod file;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod sctp;
mod tcp;
mod ws;

use std::net::SocketAddr;
use std::time::Duration;

pub use decode::{Decoder, LinkType};
pub use error::CaptureError;

/// Reads a whole pcap or pcapng file (detected by its magic number) and
/// decodes every packet.
///
/// A file cut short, or damaged after its header, still yields what came
/// before the damage; the damage is reported in [`Stats::errors`]. Only a
/// file that is no capture at all, or whose every interface has a link type
/// this crate cannot decode, is an error.
pub fn read(file: &[u8]) -> Result<Capture, CaptureError> {
    read_with(file, Limits::default())
}

/// [`read`] with other bounds than the defaults.
pub fn read_with(file: &[u8], limits: Limits) -> Result<Capture, CaptureError> {
    let mut decoder = Decoder::with_limits(limits);
    file::read_into(file, &mut decoder)?;
    Ok(decoder.finish())
}

/// [`read`] from a reader (a file, stdin): reads it to the end first.
pub fn read_from(mut reader: impl std::io::Read) -> Result<Capture, CaptureError> {
    let mut file = Vec::new();
    reader.read_to_end(&mut file)?;
    read(&file)
}

/// Everything decoded from one capture.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capture {
    /// Payloads in frame order (units completed by the same frame keep the
    /// order they were found in).
    pub units: Vec<Unit>,
    /// What was read, skipped, reassembled and dropped.
    pub stats: Stats,
}

/// One application payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unit {
    /// 1-based number of the frame that completed this unit, as Wireshark
    /// numbers frames.
    pub frame: u64,
    /// Capture timestamp of that frame, since the Unix epoch.
    pub time: Duration,
    /// What carried the payload.
    pub transport: Transport,
    /// Sender.
    pub src: SocketAddr,
    /// Receiver.
    pub dst: SocketAddr,
    /// UDP: one datagram (reassembled if IP-fragmented). TCP: the next
    /// in-order bytes of this flow direction. SCTP: one DATA chunk's user
    /// data (fragments joined). WebSocket: one text or binary message
    /// (continuation frames joined, unmasked).
    pub payload: Vec<u8>,
    /// Bytes of this flow direction are missing before this payload (the
    /// capture lost a TCP segment and reassembly gave up waiting for it): a
    /// caller framing messages should drop what it buffered for the flow.
    pub after_gap: bool,
}

/// What carried a [`Unit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// A UDP datagram.
    Udp,
    /// Bytes of a TCP stream.
    Tcp,
    /// An SCTP DATA or I-DATA chunk.
    Sctp,
    /// A WebSocket text or binary message, over TCP.
    WebSocket,
}

/// Counters of one capture.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Packets in the file.
    pub frames: u64,
    /// Frames that yielded nothing because they were not IP, had a link
    /// type this crate cannot decode, were truncated or malformed, or
    /// carried another transport than UDP, TCP or SCTP.
    pub skipped: u64,
    /// IP datagrams put together from fragments.
    pub fragments_reassembled: u64,
    /// Fragments dropped: too many datagrams pending, timed out, or
    /// inconsistent.
    pub fragments_dropped: u64,
    /// TCP segments that arrived ahead of a missing one and were held.
    pub tcp_out_of_order: u64,
    /// TCP segments whose bytes (all or some) had been seen already.
    pub tcp_retransmissions: u64,
    /// Times TCP reassembly gave up on missing bytes and went on after the
    /// hole (see [`Unit::after_gap`]).
    pub tcp_gaps: u64,
    /// TCP segments dropped because no flow could be tracked for them
    /// ([`Limits::max_flows`]).
    pub tcp_dropped: u64,
    /// SCTP DATA chunks seen before (same TSN in the same direction).
    pub sctp_retransmissions: u64,
    /// WebSocket messages that were not delivered: compressed
    /// (permessage-deflate) or too big.
    pub websocket_dropped: u64,
    /// The first [`Limits::max_errors`] problems found, each with its frame
    /// number.
    pub errors: Vec<(u64, String)>,
    /// All problems found, including those beyond [`Limits::max_errors`].
    pub errors_total: u64,
}

/// Bounds on the work and memory spent on one capture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// IP datagrams being reassembled at once; a fragment of a further one
    /// is dropped.
    pub max_fragment_datagrams: usize,
    /// Capture time after a datagram's first fragment when its pending
    /// fragments are dropped.
    pub fragment_timeout: Duration,
    /// Bytes held per flow direction: TCP segments waiting for a missing
    /// one, an HTTP upgrade head, a WebSocket message, SCTP fragments.
    pub max_flow_buffer: usize,
    /// Flow directions (TCP and SCTP each) tracked at once.
    pub max_flows: usize,
    /// Capture time a TCP segment waits for a missing earlier one before
    /// reassembly goes on after the hole.
    pub tcp_gap_timeout: Duration,
    /// Problems kept in [`Stats::errors`].
    pub max_errors: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_fragment_datagrams: 1024,
            // Linux's default ipfrag_time.
            fragment_timeout: Duration::from_secs(30),
            max_flow_buffer: 1 << 20,
            max_flows: 1 << 16,
            // Long enough for a few TCP retransmission timeouts.
            tcp_gap_timeout: Duration::from_secs(10),
            max_errors: 100,
        }
    }
}
