//! RTP-like test media: the test, not sipp, sends packets from its own media
//! sockets to the address the far side's SDP names (as rewritten by whatever
//! is in between) and checks what arrives at the other socket.
//!
//! Each packet is a 12-byte RTP header (version 2, payload type 0, sequence
//! number, timestamp = 160 × sequence, a per-flow SSRC) and 160 payload
//! bytes derived from the SSRC and sequence number, so a packet that arrives
//! altered, or belongs to another flow, is told apart from a good one.
//!
//! ```
//! use std::net::UdpSocket;
//! use std::time::Duration;
//! use pinhole_tests::rtp::rtp_pair;
//!
//! let a = UdpSocket::bind("127.0.0.1:0")?;
//! let b = UdpSocket::bind("127.0.0.1:0")?;
//! let (a_to, b_to) = (b.local_addr()?, a.local_addr()?);
//! let report = rtp_pair(&a, &b, a_to, b_to, 10, Duration::from_millis(2))?;
//! assert!(report.a_to_b.is_complete() && report.b_to_a.is_complete());
//! assert_eq!(report.a_to_b.received, 10);
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// RTP header length.
pub const HEADER_LEN: usize = 12;
/// Payload length (20 ms of 8 kHz G.711).
pub const PAYLOAD_LEN: usize = 160;
/// Whole packet length.
pub const PACKET_LEN: usize = HEADER_LEN + PAYLOAD_LEN;
/// Payload type (PCMU), as the scenarios' SDP offers.
pub const PAYLOAD_TYPE: u8 = 0;
/// How long a receiver keeps listening after the last packet was due.
pub const RECEIVE_GRACE: Duration = Duration::from_millis(500);

/// What one direction saw.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct FlowStats {
    /// Packets handed to the socket.
    pub sent: u32,
    /// Sends the socket refused.
    pub send_errors: u32,
    /// Distinct good packets received.
    pub received: u32,
    /// Packets of this flow (its SSRC) with a wrong length, header field,
    /// sequence number or payload byte.
    pub payload_errors: u32,
    /// Good packets received more than once.
    pub duplicates: u32,
    /// Datagrams of some other flow, or too short to be RTP (e.g. late
    /// packets of an earlier phase).
    pub foreign: u32,
    /// The distinct addresses good packets came from (at most 4 kept), e.g.
    /// the relay's.
    pub sources: Vec<SocketAddr>,
}

impl FlowStats {
    /// Every packet sent arrived once, intact.
    pub fn is_complete(&self) -> bool {
        self.sent > 0
            && self.send_errors == 0
            && self.received == self.sent
            && self.payload_errors == 0
            && self.duplicates == 0
    }
}

/// Both directions of [`rtp_pair`].
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct PairReport {
    /// Sent from socket `a`, received at `b`.
    pub a_to_b: FlowStats,
    /// Sent from socket `b`, received at `a`.
    pub b_to_a: FlowStats,
}

/// A fresh SSRC, different for every flow of this process and unlikely to
/// repeat across processes.
fn next_ssrc() -> u32 {
    static N: AtomicU32 = AtomicU32::new(1);
    let n = N.fetch_add(1, Ordering::Relaxed);
    std::process::id().rotate_left(16) ^ n.wrapping_mul(0x9E37_79B9)
}

/// Payload byte `i` of packet `seq` of flow `ssrc`.
fn payload_byte(ssrc: u32, seq: u16, i: usize) -> u8 {
    let [s0, s1, s2, s3] = ssrc.to_be_bytes();
    let [q0, q1] = seq.to_be_bytes();
    // Truncation intended: the pattern repeats every 256 bytes.
    let i = i as u8;
    (s0 ^ s1 ^ s2 ^ s3 ^ q1).wrapping_add(i).wrapping_mul(3) ^ q0
}

/// Packet `seq` of flow `ssrc`.
pub fn packet(ssrc: u32, seq: u16) -> [u8; PACKET_LEN] {
    let [q0, q1] = seq.to_be_bytes();
    let [t0, t1, t2, t3] = u32::from(seq)
        .wrapping_mul(PAYLOAD_LEN as u32)
        .to_be_bytes();
    let [c0, c1, c2, c3] = ssrc.to_be_bytes();
    let header = [0x80, PAYLOAD_TYPE, q0, q1, t0, t1, t2, t3, c0, c1, c2, c3];
    let payload = (0..PAYLOAD_LEN).map(|i| payload_byte(ssrc, seq, i));
    let mut p = [0u8; PACKET_LEN];
    for (dst, src) in p.iter_mut().zip(header.into_iter().chain(payload)) {
        *dst = src;
    }
    p
}

/// How a received datagram looks against flow `ssrc` of `count` packets.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Verdict {
    /// Packet `seq` of the flow, intact.
    Good(u16),
    /// Carries the flow's SSRC but something is wrong.
    Corrupt,
    /// Not this flow's.
    Foreign,
}

/// Checks one datagram.
pub fn check(datagram: &[u8], ssrc: u32, count: u16) -> Verdict {
    let Some(got_ssrc) = datagram
        .get(8..12)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
    else {
        return Verdict::Foreign;
    };
    if u32::from_be_bytes(got_ssrc) != ssrc {
        return Verdict::Foreign;
    }
    let Some(seq) = datagram.get(2..4).and_then(|b| <[u8; 2]>::try_from(b).ok()) else {
        return Verdict::Corrupt;
    };
    let seq = u16::from_be_bytes(seq);
    if seq < count && datagram == packet(ssrc, seq) {
        Verdict::Good(seq)
    } else {
        Verdict::Corrupt
    }
}

/// Sends `count` packets from `tx` to `to`, one per `interval`, while
/// counting what arrives at `rx`; returns when all arrived or
/// [`RECEIVE_GRACE`] after the last was due.
pub fn rtp_flow(
    tx: &UdpSocket,
    to: SocketAddr,
    rx: &UdpSocket,
    count: u16,
    interval: Duration,
) -> io::Result<FlowStats> {
    let ssrc = next_ssrc();
    let start = Instant::now();
    std::thread::scope(|s| {
        let sender = s.spawn(|| send(tx, to, ssrc, count, interval, start));
        let received = receive(rx, ssrc, count, interval, start);
        let (sent, send_errors) = sender
            .join()
            .map_err(|_| io::Error::other("RTP sender thread panicked"))?;
        let mut stats = received?;
        stats.sent = sent;
        stats.send_errors = send_errors;
        Ok(stats)
    })
}

/// One datagram from `sock` into `buf` (its length and source), or `None`
/// when the socket's read timeout passed first.
pub fn recv_or_timeout(
    sock: &UdpSocket,
    buf: &mut [u8],
) -> io::Result<Option<(usize, SocketAddr)>> {
    match sock.recv_from(buf) {
        Ok(got) => Ok(Some(got)),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Media both ways at once: `a` sends to `a_to` (where the far side's SDP
/// says to send) and `b` to `b_to`; each socket also counts what the other
/// sent. See [`rtp_flow`].
pub fn rtp_pair(
    a: &UdpSocket,
    b: &UdpSocket,
    a_to: SocketAddr,
    b_to: SocketAddr,
    count: u16,
    interval: Duration,
) -> io::Result<PairReport> {
    std::thread::scope(|s| {
        let reverse = s.spawn(|| rtp_flow(b, b_to, a, count, interval));
        let a_to_b = rtp_flow(a, a_to, b, count, interval);
        let b_to_a = reverse
            .join()
            .map_err(|_| io::Error::other("RTP flow thread panicked"))?;
        Ok(PairReport {
            a_to_b: a_to_b?,
            b_to_a: b_to_a?,
        })
    })
}

/// Paces packets on an absolute schedule so sleeps do not add up.
fn send(
    tx: &UdpSocket,
    to: SocketAddr,
    ssrc: u32,
    count: u16,
    interval: Duration,
    start: Instant,
) -> (u32, u32) {
    let (mut sent, mut errors) = (0, 0);
    for seq in 0..count {
        let due = start + interval * u32::from(seq);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        match tx.send_to(&packet(ssrc, seq), to) {
            Ok(_) => sent += 1,
            Err(_) => errors += 1,
        }
    }
    (sent, errors)
}

fn receive(
    rx: &UdpSocket,
    ssrc: u32,
    count: u16,
    interval: Duration,
    start: Instant,
) -> io::Result<FlowStats> {
    let deadline = start + interval * u32::from(count) + RECEIVE_GRACE;
    let mut seen = vec![false; usize::from(count)];
    let mut stats = FlowStats::default();
    let mut buf = [0u8; 2048];
    while stats.received < u32::from(count) {
        let Some(left) = deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
        else {
            break;
        };
        rx.set_read_timeout(Some(left.min(Duration::from_millis(50))))?;
        let Some((n, from)) = recv_or_timeout(rx, &mut buf)? else {
            continue;
        };
        match check(buf.get(..n).unwrap_or_default(), ssrc, count) {
            Verdict::Good(seq) => {
                match seen.get_mut(usize::from(seq)) {
                    Some(s) if !*s => {
                        *s = true;
                        stats.received += 1;
                    }
                    _ => stats.duplicates += 1,
                }
                if stats.sources.len() < 4 && !stats.sources.contains(&from) {
                    stats.sources.push(from);
                }
            }
            Verdict::Corrupt => stats.payload_errors += 1,
            Verdict::Foreign => stats.foreign += 1,
        }
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn packet_layout() {
        let p = packet(0x0102_0304, 0x0506);
        assert_eq!(p.len(), 172);
        assert_eq!(&p[..12], &[0x80, 0, 5, 6, 0, 0x03, 0x23, 0xC0, 1, 2, 3, 4]);
        assert_eq!(check(&p, 0x0102_0304, 0x0507), Verdict::Good(0x0506));
        // Beyond the flow's count: not a packet this flow sent.
        assert_eq!(check(&p, 0x0102_0304, 0x0506), Verdict::Corrupt);
        assert_eq!(check(&p, 0x0102_0305, 0x0507), Verdict::Foreign);
        assert_eq!(check(&p[..11], 0x0102_0304, 9), Verdict::Foreign);
        assert_eq!(check(&p[..171], 0x0102_0304, 0x0507), Verdict::Corrupt);
        // Payloads differ between packets, so a swapped payload is caught.
        assert_ne!(packet(7, 1)[12..], packet(7, 2)[12..]);
        assert_ne!(packet(7, 1)[12..], packet(8, 1)[12..]);
    }

    #[test]
    fn flow_counts_good_corrupt_and_foreign_packets() {
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let noise = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = rx.local_addr().unwrap();
        // Junk queued before the flow starts: a stale packet of another
        // flow and a runt.
        noise.send_to(&packet(1, 0), to).unwrap();
        noise.send_to(b"xx", to).unwrap();
        let stats = rtp_flow(&tx, to, &rx, 20, Duration::from_millis(1)).unwrap();
        assert!(stats.is_complete(), "{stats:?}");
        assert_eq!((stats.sent, stats.received, stats.foreign), (20, 20, 2));
        assert_eq!(stats.sources, vec![tx.local_addr().unwrap()]);
    }

    #[test]
    fn nothing_arrives_when_sent_elsewhere() {
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
        let t0 = Instant::now();
        let stats = rtp_flow(
            &tx,
            sink.local_addr().unwrap(),
            &rx,
            5,
            Duration::from_millis(1),
        )
        .unwrap();
        assert_eq!((stats.sent, stats.received), (5, 0));
        assert!(!stats.is_complete());
        // Bounded by the grace period, not by a packet count that never comes.
        assert!(t0.elapsed() < RECEIVE_GRACE + Duration::from_secs(2));
    }

    #[test]
    fn pair_reports_each_direction() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
        // b's packets go astray: only a→b completes.
        let r = rtp_pair(
            &a,
            &b,
            b.local_addr().unwrap(),
            sink.local_addr().unwrap(),
            8,
            Duration::from_millis(1),
        )
        .unwrap();
        assert!(r.a_to_b.is_complete(), "{r:?}");
        assert_eq!(r.b_to_a.received, 0);
        assert_eq!(r.b_to_a.sent, 8);
    }

    proptest! {
        #[test]
        fn check_never_panics(d in proptest::collection::vec(any::<u8>(), 0..200), ssrc in any::<u32>(), count in any::<u16>()) {
            let _ = check(&d, ssrc, count);
        }

        #[test]
        fn any_flipped_byte_is_caught(ssrc in any::<u32>(), seq in 0u16..1000, at in 0usize..PACKET_LEN, flip in 1u8..=255) {
            let mut p = packet(ssrc, seq);
            p[at] ^= flip;
            let v = check(&p, ssrc, 1000);
            // Flipping an SSRC byte makes it someone else's; anything else is corruption.
            prop_assert_ne!(v, Verdict::Good(seq));
            if (8..12).contains(&at) {
                prop_assert_eq!(v, Verdict::Foreign);
            } else {
                prop_assert_eq!(v, Verdict::Corrupt);
            }
        }
    }
}
