//! Batched datagram syscalls: `recvmmsg` and `sendmmsg` over buffers that
//! are allocated once per worker.
//!
//! With `recvmmsg`, each datagram also gets a small control buffer for the
//! two ancillary messages the relay asks for (see `sockopt.rs`): the
//! kernel's receive timestamp (`SO_TIMESTAMPNS`) and the socket's drop
//! count (`SO_RXQ_OVFL`). They are parsed in safe code ([`parse_cmsgs`]).
//!
//! This and `sockopt.rs` are the only unsafe code of the relay. Each unsafe
//! item is as small as the syscall or cast it wraps, and the pointers
//! handed to the kernel are refreshed from their owning vectors right
//! before every call, so no pointer outlives or aliases a reallocation.

use std::io;
use std::mem::size_of;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;
use std::time::Duration;

/// The kernel's limit on messages per call (`UIO_MAXIOV`).
pub(crate) const MAX_BATCH: usize = 1024;

/// Control buffer bytes per datagram: a timestamp (16-byte payload) and a
/// drop count (4 bytes), each behind a 16-byte header and padded to 8 on
/// 64-bit Linux (32 + 24), with room to spare.
const CTRL: usize = 64;

/// What the kernel said about one datagram besides its bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Meta {
    /// When the kernel received it (`CLOCK_REALTIME`, since the Unix
    /// epoch), if the socket has `SO_TIMESTAMPNS`.
    pub(crate) received: Option<Duration>,
    /// The socket's count of datagrams the kernel dropped (full receive
    /// buffer, mostly) when this one was queued, if the socket has
    /// `SO_RXQ_OVFL` and the count is not zero.
    pub(crate) drops: Option<u32>,
}

/// One datagram of the last [`RecvBatch::recv`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Received<'a> {
    /// A datagram that fit the buffer.
    Datagram(&'a [u8], SocketAddr),
    /// Larger than `max_packet`: the kernel cut it (`MSG_TRUNC`).
    Oversize,
    /// The source address is neither IPv4 nor IPv6.
    NoAddress,
}

/// Preallocated receive buffers and headers for `recvmmsg`.
pub(crate) struct RecvBatch {
    buf: Vec<u8>,
    max_packet: usize,
    addrs: Vec<libc::sockaddr_storage>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    /// [`CTRL`] bytes of control messages per datagram.
    ctrl: Vec<u8>,
    filled: usize,
}

impl RecvBatch {
    /// Room for `batch` datagrams (clamped to 1..=[`MAX_BATCH`]) of up to
    /// `max_packet` bytes each.
    pub(crate) fn new(batch: usize, max_packet: usize) -> Self {
        let batch = batch.clamp(1, MAX_BATCH);
        let max_packet = max_packet.max(1);
        Self {
            buf: vec![0; batch * max_packet],
            max_packet,
            addrs: (0..batch).map(|_| zeroed_storage()).collect(),
            iovs: (0..batch).map(|_| empty_iovec()).collect(),
            hdrs: (0..batch).map(|_| zeroed_hdr()).collect(),
            ctrl: vec![0; batch * CTRL],
            filled: 0,
        }
    }

    /// Datagrams one call can return.
    pub(crate) fn capacity(&self) -> usize {
        self.hdrs.len()
    }

    /// Reads up to [`capacity`](Self::capacity) datagrams from the
    /// non-blocking socket `fd` without waiting; `WouldBlock` when none
    /// is queued.
    #[allow(unsafe_code)]
    pub(crate) fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        self.filled = 0;
        let base = self.buf.as_mut_ptr();
        let ctrl = self.ctrl.as_mut_ptr();
        let mp = self.max_packet;
        for (i, ((hdr, iov), addr)) in self
            .hdrs
            .iter_mut()
            .zip(self.iovs.iter_mut())
            .zip(self.addrs.iter_mut())
            .enumerate()
        {
            iov.iov_base = base.wrapping_add(i * mp).cast();
            iov.iov_len = mp;
            let h = &mut hdr.msg_hdr;
            h.msg_name = std::ptr::from_mut(addr).cast();
            h.msg_namelen = storage_len();
            h.msg_iov = std::ptr::from_mut(iov);
            h.msg_iovlen = 1;
            h.msg_control = ctrl.wrapping_add(i * CTRL).cast();
            // `size_t` with glibc, `socklen_t` with musl; 64 fits both.
            h.msg_controllen = CTRL as _;
            h.msg_flags = 0;
            hdr.msg_len = 0;
        }
        let vlen = u32::try_from(self.hdrs.len()).unwrap_or(1);
        loop {
            // SAFETY: `hdrs` holds `vlen` initialised headers. Each points
            // at its own `sockaddr_storage` (with its true size as
            // `msg_namelen`), its own iovec and its own disjoint
            // `CTRL`-byte chunk of `ctrl` (`msg_controllen` = `CTRL`), and
            // each iovec at a disjoint `max_packet`-byte chunk of `buf`;
            // all were refreshed just above from `&mut self`, which also
            // keeps the vectors from being touched or reallocated until the
            // call returns. The kernel writes at most `msg_namelen`,
            // `msg_controllen` and `iov_len` bytes.
            let r = unsafe {
                libc::recvmmsg(
                    fd,
                    self.hdrs.as_mut_ptr(),
                    vlen,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if let Ok(n) = usize::try_from(r) {
                self.filled = n.min(self.hdrs.len());
                return Ok(self.filled);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// Datagram `i` of the last [`recv`](Self::recv).
    pub(crate) fn get(&self, i: usize) -> Received<'_> {
        let (Some(hdr), Some(addr)) = (self.hdrs.get(i), self.addrs.get(i)) else {
            return Received::NoAddress;
        };
        if i >= self.filled || hdr.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
            return Received::Oversize;
        }
        let Some(src) = to_std(addr, hdr.msg_hdr.msg_namelen) else {
            return Received::NoAddress;
        };
        let len = (hdr.msg_len as usize).min(self.max_packet);
        let start = i * self.max_packet;
        match self.buf.get(start..start + len) {
            Some(payload) => Received::Datagram(payload, src),
            None => Received::Oversize,
        }
    }
}

impl RecvBatch {
    /// The ancillary data of datagram `i` of the last [`recv`](Self::recv)
    /// (nothing beyond what was read).
    pub(crate) fn meta(&self, i: usize) -> Meta {
        let Some(hdr) = self.hdrs.get(i).filter(|_| i < self.filled) else {
            return Meta::default();
        };
        // The kernel sets `msg_controllen` to the bytes it wrote (a
        // `size_t` with glibc, a `socklen_t` with musl).
        #[allow(clippy::unnecessary_cast)]
        let len = (hdr.msg_hdr.msg_controllen as usize).min(CTRL);
        let start = i * CTRL;
        self.ctrl
            .get(start..start + len)
            .map(parse_cmsgs)
            .unwrap_or_default()
    }
}

/// Bytes of a word: the kernel aligns control messages to `long`.
const WORD: usize = size_of::<usize>();

/// `CMSG_ALIGN`.
const fn cmsg_align(n: usize) -> usize {
    (n + WORD - 1) & !(WORD - 1)
}

/// Header of a control message as the kernel writes it: `size_t len;
/// int level; int type;`, padded to a word.
const CMSG_HDR: usize = cmsg_align(WORD + 8);

/// Reads the control messages the kernel wrote into `ctrl` (the used part
/// of one datagram's control buffer): the receive timestamp and the drop
/// count, if present. Unknown messages are skipped; a malformed length
/// ends the walk. Never panics, whatever the bytes.
pub(crate) fn parse_cmsgs(mut ctrl: &[u8]) -> Meta {
    let mut meta = Meta::default();
    while let Some(hdr) = ctrl.get(..CMSG_HDR) {
        let word = |at: usize, n: usize| hdr.get(at..at + n);
        let (Some(len), Some(level), Some(kind)) = (
            word(0, WORD)
                .and_then(|b| b.try_into().ok())
                .map(usize::from_ne_bytes),
            word(WORD, 4)
                .and_then(|b| b.try_into().ok())
                .map(i32::from_ne_bytes),
            word(WORD + 4, 4)
                .and_then(|b| b.try_into().ok())
                .map(i32::from_ne_bytes),
        ) else {
            break;
        };
        let Some(data) = ctrl
            .get(CMSG_HDR..len.max(CMSG_HDR))
            .filter(|_| len >= CMSG_HDR)
        else {
            break;
        };
        match (level, kind) {
            (libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS) => meta.received = timespec(data),
            (libc::SOL_SOCKET, libc::SO_RXQ_OVFL) => {
                meta.drops = data
                    .get(..4)
                    .and_then(|b| b.try_into().ok())
                    .map(u32::from_ne_bytes);
            }
            _ => {}
        }
        ctrl = ctrl
            .get(cmsg_align(len).min(ctrl.len())..)
            .unwrap_or_default();
    }
    meta
}

/// A kernel `timespec`: two `long`s (16 bytes on 64-bit, 8 on 32-bit).
fn timespec(data: &[u8]) -> Option<Duration> {
    let (sec, nsec) = match data.len() {
        16 => (
            i64::from_ne_bytes(data.get(..8)?.try_into().ok()?),
            i64::from_ne_bytes(data.get(8..16)?.try_into().ok()?),
        ),
        8 => (
            i64::from(i32::from_ne_bytes(data.get(..4)?.try_into().ok()?)),
            i64::from(i32::from_ne_bytes(data.get(4..8)?.try_into().ok()?)),
        ),
        _ => return None,
    };
    let sec = u64::try_from(sec).ok()?;
    let nsec = u32::try_from(nsec).ok().filter(|&n| n < 1_000_000_000)?;
    Some(Duration::new(sec, nsec))
}

/// What one [`SendBatch::send`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Sent {
    /// Datagrams the kernel accepted.
    pub(crate) packets: u64,
    /// Their bytes.
    pub(crate) bytes: u64,
    /// Datagrams that failed (full buffer, unreachable, ...) and were dropped.
    pub(crate) failed: u64,
}

/// Preallocated headers for `sendmmsg`.
pub(crate) struct SendBatch {
    addrs: Vec<libc::sockaddr_storage>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
}

impl SendBatch {
    /// Room for `batch` datagrams per call (clamped to 1..=[`MAX_BATCH`]).
    pub(crate) fn new(batch: usize) -> Self {
        let batch = batch.clamp(1, MAX_BATCH);
        Self {
            addrs: (0..batch).map(|_| zeroed_storage()).collect(),
            iovs: (0..batch).map(|_| empty_iovec()).collect(),
            hdrs: (0..batch).map(|_| zeroed_hdr()).collect(),
        }
    }

    /// Sends datagram `i` of `recv` to `to`, for every `(i, to)` of `sel`
    /// (at most the batch size; the rest are ignored), from `fd`, without
    /// waiting. A datagram the kernel refuses is counted as failed and the
    /// ones after it are still sent.
    #[allow(unsafe_code)]
    pub(crate) fn send(
        &mut self,
        fd: RawFd,
        recv: &RecvBatch,
        sel: &[(usize, SocketAddr)],
    ) -> Sent {
        let mut out = Sent::default();
        let mut n = 0;
        for &(i, to) in sel {
            let (Some(hdr), Some(iov), Some(addr)) = (
                self.hdrs.get_mut(n),
                self.iovs.get_mut(n),
                self.addrs.get_mut(n),
            ) else {
                break;
            };
            let Received::Datagram(payload, _) = recv.get(i) else {
                out.failed += 1;
                continue;
            };
            // The kernel only reads through this pointer (send side).
            iov.iov_base = payload.as_ptr().cast_mut().cast();
            iov.iov_len = payload.len();
            let h = &mut hdr.msg_hdr;
            h.msg_namelen = write_sockaddr(addr, to);
            h.msg_name = std::ptr::from_mut(addr).cast();
            h.msg_iov = std::ptr::from_mut(iov);
            h.msg_iovlen = 1;
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
            h.msg_flags = 0;
            hdr.msg_len = 0;
            n += 1;
        }
        let mut start = 0;
        while start < n {
            let rest = u32::try_from(n - start).unwrap_or(1);
            // SAFETY: headers `start..n` were filled above in this call:
            // each points at its own `sockaddr_storage` holding a valid
            // address of `msg_namelen` bytes and at its own iovec, and each
            // iovec at a payload borrowed from `recv`, which outlives the
            // call. `&mut self` keeps the vectors unchanged meanwhile. The
            // kernel reads these and writes only `msg_len`.
            let r = unsafe {
                libc::sendmmsg(
                    fd,
                    self.hdrs[start..].as_mut_ptr(),
                    rest,
                    libc::MSG_DONTWAIT,
                )
            };
            match usize::try_from(r) {
                Ok(sent) if sent > 0 => {
                    for h in &self.hdrs[start..start + sent] {
                        out.packets += 1;
                        out.bytes += u64::from(h.msg_len);
                    }
                    start += sent;
                }
                _ => {
                    if r < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                        continue;
                    }
                    // The message at `start` failed; drop it, go on.
                    out.failed += 1;
                    start += 1;
                }
            }
        }
        out
    }
}

fn storage_len() -> libc::socklen_t {
    // 128 bytes: always fits.
    size_of::<libc::sockaddr_storage>() as libc::socklen_t
}

fn empty_iovec() -> libc::iovec {
    libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }
}

#[allow(unsafe_code)]
fn zeroed_storage() -> libc::sockaddr_storage {
    // SAFETY: a C struct of integers only; all zeroes is a valid value
    // (family AF_UNSPEC).
    unsafe { std::mem::zeroed() }
}

#[allow(unsafe_code)]
fn zeroed_hdr() -> libc::mmsghdr {
    // SAFETY: a C struct of integers and raw pointers; all zeroes means
    // null pointers and zero lengths, which is valid (and never passed to
    // the kernel before `recv`/`send` fill it).
    unsafe { std::mem::zeroed() }
}

/// The address the kernel wrote, if IPv4 or IPv6. IPv6 flow info is
/// cleared so that addresses compare equal to the ones the engine holds.
#[allow(unsafe_code)]
fn to_std(s: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    match i32::from(s.ss_family) {
        libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in, the
            // kernel wrote at least its size, and sockaddr_storage is large
            // and aligned enough for every socket address type.
            let a = unsafe { &*std::ptr::from_ref(s).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(a.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6.
            let a = unsafe { &*std::ptr::from_ref(s).cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(a.sin6_port),
                0,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Writes `a` into `dst`; returns its length.
#[allow(unsafe_code)]
fn write_sockaddr(dst: &mut libc::sockaddr_storage, a: SocketAddr) -> libc::socklen_t {
    match a {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is at least as large and as aligned
            // as sockaddr_in, and `dst` is an exclusive borrow.
            unsafe {
                std::ptr::from_mut(dst)
                    .cast::<libc::sockaddr_in>()
                    .write(sin)
            };
            size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: as above, for sockaddr_in6.
            unsafe {
                std::ptr::from_mut(dst)
                    .cast::<libc::sockaddr_in6>()
                    .write(sin6)
            };
            size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;
    use std::time::{Duration, Instant};

    fn pair(ip: &str) -> (UdpSocket, UdpSocket) {
        let a = UdpSocket::bind((ip, 0)).unwrap();
        let b = UdpSocket::bind((ip, 0)).unwrap();
        b.set_nonblocking(true).unwrap();
        (a, b)
    }

    /// Reads until `want` datagrams came in one call or a deadline passes
    /// (loopback delivery is immediate, but be generous).
    fn recv_n(batch: &mut RecvBatch, fd: RawFd, want: usize) -> usize {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match batch.recv(fd) {
                Ok(n) => return n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => panic!("recv {want}: {e}"),
            }
        }
    }

    #[test]
    fn partial_batch_and_truncation() {
        let (tx, rx) = pair("127.0.0.1");
        let mut batch = RecvBatch::new(8, 64);
        assert_eq!(
            batch.recv(rx.as_raw_fd()).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        let to = rx.local_addr().unwrap();
        tx.send_to(b"one", to).unwrap();
        tx.send_to(&[7u8; 100], to).unwrap(); // longer than max_packet
        tx.send_to(b"three", to).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let n = recv_n(&mut batch, rx.as_raw_fd(), 3);
        assert_eq!(n, 3, "a partial batch");
        let from = tx.local_addr().unwrap();
        assert_eq!(batch.get(0), Received::Datagram(b"one", from));
        assert_eq!(batch.get(1), Received::Oversize);
        assert_eq!(batch.get(2), Received::Datagram(b"three", from));
        assert_eq!(batch.get(3), Received::Oversize, "beyond what was read");
        assert_eq!(batch.get(99), Received::NoAddress);
    }

    #[test]
    fn full_batch_then_rest() {
        let (tx, rx) = pair("127.0.0.1");
        let to = rx.local_addr().unwrap();
        for i in 0..5u8 {
            tx.send_to(&[i; 10], to).unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
        let mut batch = RecvBatch::new(4, 32);
        assert_eq!(recv_n(&mut batch, rx.as_raw_fd(), 4), 4);
        assert_eq!(recv_n(&mut batch, rx.as_raw_fd(), 1), 1);
        assert!(matches!(batch.get(0), Received::Datagram(p, _) if p == [4u8; 10]));
    }

    #[test]
    fn sendmmsg_ipv6_and_ipv4_destinations() {
        for ip in ["::1", "127.0.0.1"] {
            let (tx, relay) = pair(ip);
            let sinks: Vec<UdpSocket> = (0..3).map(|_| UdpSocket::bind((ip, 0)).unwrap()).collect();
            for s in &sinks {
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            }
            let to = relay.local_addr().unwrap();
            for i in 0..3u8 {
                tx.send_to(&[0x80, i, i, i], to).unwrap();
            }
            std::thread::sleep(Duration::from_millis(20));
            let mut rb = RecvBatch::new(8, 2048);
            assert_eq!(recv_n(&mut rb, relay.as_raw_fd(), 3), 3);
            let from = tx.local_addr().unwrap();
            assert!(
                matches!(rb.get(0), Received::Datagram(_, a) if a == from),
                "{ip}"
            );
            let sel: Vec<(usize, SocketAddr)> = sinks
                .iter()
                .enumerate()
                .map(|(i, s)| (i, s.local_addr().unwrap()))
                .collect();
            let mut sb = SendBatch::new(8);
            let sent = sb.send(relay.as_raw_fd(), &rb, &sel);
            assert_eq!(
                sent,
                Sent {
                    packets: 3,
                    bytes: 12,
                    failed: 0
                }
            );
            for (i, s) in sinks.iter().enumerate() {
                let mut buf = [0u8; 16];
                let (n, src) = s.recv_from(&mut buf).unwrap();
                let i = i as u8;
                assert_eq!((&buf[..n], src), (&[0x80, i, i, i][..], to));
            }
        }
    }

    #[test]
    fn send_failure_is_counted_and_the_rest_goes_out() {
        let (tx, relay) = pair("127.0.0.1");
        let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
        sink.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let to = relay.local_addr().unwrap();
        tx.send_to(b"a", to).unwrap();
        tx.send_to(b"b", to).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let mut rb = RecvBatch::new(4, 64);
        assert_eq!(recv_n(&mut rb, relay.as_raw_fd(), 2), 2);
        // An IPv6 destination from an IPv4 socket fails; the next one passes.
        let bad: SocketAddr = "[::1]:9".parse().unwrap();
        let sel = [(0, bad), (1, sink.local_addr().unwrap())];
        let sent = SendBatch::new(4).send(relay.as_raw_fd(), &rb, &sel);
        assert_eq!(
            sent,
            Sent {
                packets: 1,
                bytes: 1,
                failed: 1
            }
        );
        let mut buf = [0u8; 4];
        assert_eq!(sink.recv_from(&mut buf).unwrap(), (1, to));
        assert_eq!(&buf[..1], b"b");
    }

    fn now_wall() -> Duration {
        std::time::SystemTime::now()
            .duration_since(std::time::SystemTime::UNIX_EPOCH)
            .unwrap()
    }

    #[test]
    fn kernel_timestamps_and_drop_counts_come_with_each_datagram() {
        let (tx, rx) = pair("127.0.0.1");
        let to = rx.local_addr().unwrap();
        let mut batch = RecvBatch::new(4, 64);
        // Without the options there is nothing besides the bytes.
        tx.send_to(b"plain", to).unwrap();
        assert_eq!(recv_n(&mut batch, rx.as_raw_fd(), 1), 1);
        assert_eq!(batch.meta(0), Meta::default());

        let opts = super::super::sockopt::SockOpts {
            recv_buffer: 2048, // the kernel's least: a few datagrams
            timestamps: true,
        };
        super::super::sockopt::configure(&rx, opts).unwrap();
        // The kernel turns its timestamping on in a work item (see
        // sockopt.rs); until then datagrams are stamped when read.
        std::thread::sleep(Duration::from_millis(100));
        let sent_at = now_wall();
        for i in 0..50u8 {
            tx.send_to(&[i; 8], to).unwrap();
        }
        std::thread::sleep(Duration::from_millis(100));
        let n = recv_n(&mut batch, rx.as_raw_fd(), 4);
        let read_at = now_wall();
        assert!((1..=4).contains(&n));
        for i in 0..n {
            let at = batch.meta(i).received.expect("a receive timestamp");
            assert!(at + Duration::from_millis(1) >= sent_at && at <= read_at);
            assert!(
                read_at - at >= Duration::from_millis(90),
                "queued for 100 ms"
            );
            // Queued before the buffer filled: no drops yet.
            assert_eq!(batch.meta(i).drops, None);
        }
        assert_eq!(batch.meta(n), Meta::default(), "beyond what was read");
        let mut queued = n;
        while let Ok(k) = batch.recv(rx.as_raw_fd()) {
            queued += k;
        }
        // The next datagram carries the count of the ones that did not fit.
        tx.send_to(b"next", to).unwrap();
        assert_eq!(recv_n(&mut batch, rx.as_raw_fd(), 1), 1);
        let drops = batch.meta(0).drops.expect("a drop count");
        assert_eq!(drops as usize + queued, 50);
    }

    /// A control message as the kernel lays it out.
    fn cmsg(level: i32, kind: i32, data: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&(CMSG_HDR + data.len()).to_ne_bytes());
        m.extend_from_slice(&level.to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.resize(CMSG_HDR, 0);
        m.extend_from_slice(data);
        m.resize(cmsg_align(m.len()), 0);
        m
    }

    fn timespec_bytes(sec: i64, nsec: i64) -> Vec<u8> {
        [sec.to_ne_bytes(), nsec.to_ne_bytes()].concat()
    }

    #[test]
    fn cmsgs_parse_skip_unknown_and_refuse_nonsense() {
        let ts = cmsg(
            libc::SOL_SOCKET,
            libc::SCM_TIMESTAMPNS,
            &timespec_bytes(1_700_000_000, 5),
        );
        let ovfl = cmsg(libc::SOL_SOCKET, libc::SO_RXQ_OVFL, &7u32.to_ne_bytes());
        let other = cmsg(libc::IPPROTO_IP, libc::IP_TOS, &[0x2e]);
        let all = [other, ts.clone(), ovfl].concat();
        assert_eq!(
            parse_cmsgs(&all),
            Meta {
                received: Some(Duration::new(1_700_000_000, 5)),
                drops: Some(7),
            }
        );
        assert_eq!(parse_cmsgs(&ts[..ts.len() - 1]).received, None, "truncated");
        for (sec, nsec) in [(-1, 0), (0, 1_000_000_000), (0, -1)] {
            let bad = cmsg(
                libc::SOL_SOCKET,
                libc::SCM_TIMESTAMPNS,
                &timespec_bytes(sec, nsec),
            );
            assert_eq!(parse_cmsgs(&bad).received, None, "{sec} {nsec}");
        }
        // A length shorter than the header ends the walk.
        let mut short = ts.clone();
        short[..WORD].copy_from_slice(&3usize.to_ne_bytes());
        assert_eq!(parse_cmsgs(&short), Meta::default());
        assert_eq!(parse_cmsgs(&[]), Meta::default());
    }

    proptest::proptest! {
        #[test]
        fn parse_cmsgs_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = parse_cmsgs(&bytes);
        }

        #[test]
        fn well_formed_cmsgs_round_trip(
            sec in 0i64..i64::MAX,
            nsec in 0i64..1_000_000_000,
            drops in proptest::num::u32::ANY,
            junk in proptest::collection::vec(proptest::num::u8::ANY, 0..16),
            drops_first in proptest::bool::ANY,
        ) {
            let ts = cmsg(libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS, &timespec_bytes(sec, nsec));
            let ovfl = cmsg(libc::SOL_SOCKET, libc::SO_RXQ_OVFL, &drops.to_ne_bytes());
            let other = cmsg(libc::SOL_IP, libc::IP_TTL, &junk);
            let all = if drops_first { [ovfl, other, ts].concat() } else { [ts, other, ovfl].concat() };
            let want = Meta {
                received: Some(Duration::new(sec as u64, nsec as u32)),
                drops: Some(drops),
            };
            proptest::prop_assert_eq!(parse_cmsgs(&all), want);
        }
    }

    #[test]
    fn sockaddr_round_trip() {
        for a in [
            "127.0.0.1:5004",
            "[::1]:6000",
            "[fe80::1%3]:7",
            "10.1.2.3:65535",
        ] {
            let a: SocketAddr = a.parse().unwrap();
            let mut s = zeroed_storage();
            let len = write_sockaddr(&mut s, a);
            assert_eq!(to_std(&s, len), Some(a));
            assert_eq!(to_std(&s, 2), None, "a short length is refused");
        }
        assert_eq!(to_std(&zeroed_storage(), storage_len()), None);
    }
}
