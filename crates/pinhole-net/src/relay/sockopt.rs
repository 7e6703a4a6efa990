//! Socket options of relay sockets, set once at bind.
//!
//! - `SO_RCVBUF` ([`RelayConfig::recv_buffer`](super::RelayConfig::recv_buffer)),
//!   through socket2: bounds how much the kernel queues for one socket
//!   when the worker falls behind; beyond it the kernel drops.
//! - `SO_TIMESTAMPNS` (when [`RelayConfig::max_queue_delay`](super::RelayConfig::max_queue_delay)
//!   is set): every datagram carries its kernel receive time, so the worker
//!   can drop what waited too long instead of relaying it late.
//! - `SO_RXQ_OVFL`: every datagram carries the socket's drop count, so the
//!   kernel's drops at a full buffer reach the relay's counters.
//!
//! Linux turns receive timestamping on system-wide when the first socket
//! asks (and off after the last one closes) in a deferred work item; a
//! datagram that arrives before that is stamped when it is read, i.e. looks
//! fresh. So the age check can only err towards relaying, for the first
//! moments after the relay's first socket opens.

use std::io;
use std::mem::size_of;
use std::net::UdpSocket;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use socket2::SockRef;

/// How relay sockets are set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SockOpts {
    /// `SO_RCVBUF` in bytes (the kernel doubles it for its bookkeeping);
    /// 0 keeps the system default.
    pub(crate) recv_buffer: usize,
    /// Ask for kernel receive timestamps.
    pub(crate) timestamps: bool,
}

/// Applies `opts` to a freshly bound relay socket.
pub(crate) fn configure(sock: &UdpSocket, opts: SockOpts) -> io::Result<()> {
    if opts.recv_buffer > 0 {
        SockRef::from(sock).set_recv_buffer_size(opts.recv_buffer)?;
    }
    if opts.timestamps {
        set_flag(sock.as_fd(), libc::SOL_SOCKET, libc::SO_TIMESTAMPNS)?;
    }
    set_flag(sock.as_fd(), libc::SOL_SOCKET, libc::SO_RXQ_OVFL)
}

/// Turns on the boolean socket option `level`/`name`.
#[allow(unsafe_code)]
fn set_flag(fd: BorrowedFd<'_>, level: libc::c_int, name: libc::c_int) -> io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: `fd` is an open socket, borrowed for the call. The option
    // value points at `one`, a live `c_int` whose exact size is passed as
    // the length; setsockopt only reads it.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            std::ptr::from_ref(&one).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receive_buffer_is_set_and_zero_keeps_the_default() {
        let default = UdpSocket::bind("127.0.0.1:0").unwrap();
        let before = SockRef::from(&default).recv_buffer_size().unwrap();
        let plain = SockOpts {
            recv_buffer: 0,
            timestamps: false,
        };
        configure(&default, plain).unwrap();
        assert_eq!(SockRef::from(&default).recv_buffer_size().unwrap(), before);

        let small = UdpSocket::bind("127.0.0.1:0").unwrap();
        let opts = SockOpts {
            recv_buffer: 16 * 1024,
            timestamps: true,
        };
        configure(&small, opts).unwrap();
        // Linux doubles the value for its bookkeeping.
        assert_eq!(SockRef::from(&small).recv_buffer_size().unwrap(), 32 * 1024);
    }

    #[test]
    fn an_unknown_option_is_an_error_not_a_panic() {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let err = set_flag(s.as_fd(), libc::SOL_SOCKET, -1).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOPROTOOPT));
    }
}
