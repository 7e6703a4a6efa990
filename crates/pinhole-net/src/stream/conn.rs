//! One connection's task: connect or accept, the TLS handshake, then the
//! read and write loops until one of them, a timer, a close request or
//! shutdown ends it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use pinhole_core::framing::{self, Frame, ProtocolFramer};
use pinhole_core::types::{ConnId, Transport};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{Instant, timeout, timeout_at};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tracing::debug;

use super::queue::Queue;
use super::{
    CloseReason, Inner, MAX_BUFFERED, PING, ServerConfigSource, StreamEvent, TPKT_KEEPALIVE, bump,
    stopped,
};

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 16 * 1024;

/// The CRLF that answers a [`PING`].
const PONG: &[u8] = b"\r\n";

/// A byte stream: TCP, or TLS over TCP.
trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// How a connection starts.
pub(super) enum Start {
    /// Accepted by a listener; TLS if the listener has a config source.
    Accepted {
        tcp: TcpStream,
        tls: Option<ServerConfigSource>,
    },
    /// Opened by `Streams::connect`.
    Connect {
        via: SocketAddr,
        /// The source address to bind (the logical local's IP), so the
        /// connection leaves from the host's own address (the firewall
        /// lets out only its inside hosts).
        bind: Option<std::net::IpAddr>,
        tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    },
}

/// What a connection's task knows of itself.
pub(super) struct Conn {
    id: ConnId,
    transport: Transport,
    local: SocketAddr,
    remote: SocketAddr,
    inbound: bool,
    framer: Option<ProtocolFramer>,
    queue: Arc<Queue>,
    /// `Opened` was delivered (so `Closed` is owed to the driver).
    opened: AtomicBool,
    /// This connection's idle timeout, when not the limits' one.
    pub(super) idle: Option<std::time::Duration>,
}

impl Conn {
    pub(super) fn new(
        id: ConnId,
        transport: Transport,
        local: SocketAddr,
        remote: SocketAddr,
        inbound: bool,
        framer: Option<ProtocolFramer>,
        queue: Arc<Queue>,
    ) -> Self {
        Self {
            id,
            transport,
            local,
            remote,
            inbound,
            framer,
            queue,
            opened: AtomicBool::new(false),
            idle: None,
        }
    }
}

/// The connection's whole life.
pub(super) async fn run(inner: Arc<Inner>, conn: Conn, start: Start) {
    let mut stop = inner.stop.subscribe();
    let reason = tokio::select! {
        biased;
        () = stopped(&mut stop) => CloseReason::Shutdown,
        () = inner.events.closed() => CloseReason::Shutdown,
        r = conn.queue.closed() => r,
        r = live(&inner, &conn, start) => r,
    };
    finish(&inner, &conn, reason).await;
}

/// Removes the connection, counts and logs the reason, tells the driver.
async fn finish(inner: &Inner, conn: &Conn, reason: CloseReason) {
    // Closing first, so that no `send` queues bytes nobody will write and
    // `find` no longer offers the connection.
    conn.queue.close(reason);
    inner.remove(conn.id);
    let c = &inner.counters;
    let counter = match reason {
        CloseReason::PeerClosed => Some(&c.peer_closed),
        CloseReason::Framing(_) => Some(&c.framing_errors),
        CloseReason::Idle => Some(&c.idle_closed),
        CloseReason::SlowSender => Some(&c.slow_closed),
        CloseReason::WriteQueueFull => Some(&c.write_queue_closed),
        CloseReason::HandshakeTimeout => Some(&c.handshake_timeouts),
        CloseReason::HandshakeFailed => Some(&c.handshake_failures),
        CloseReason::ConnectFailed => Some(&c.connect_failures),
        CloseReason::Io | CloseReason::Shutdown | CloseReason::Local => None,
    };
    if let Some(counter) = counter {
        bump(counter, 1);
    }
    debug!(
        conn = %conn.id, transport = %conn.transport, remote = %conn.remote,
        inbound = conn.inbound, reason = reason.kind(), detail = ?reason,
        "stream connection closed"
    );
    if conn.inbound && !conn.opened.load(Ordering::Acquire) {
        return; // the driver never heard of it
    }
    let event = StreamEvent::Closed {
        conn: conn.id,
        transport: conn.transport,
        local: conn.local,
        remote: conn.remote,
        reason,
    };
    let mut stop = inner.stop.subscribe();
    tokio::select! {
        biased;
        permit = inner.events.reserve() => {
            if let Ok(permit) = permit {
                permit.send(event);
            }
        }
        // Shutting down: a driver that does not drain its channel must not
        // hold shutdown up.
        () = stopped(&mut stop) => {
            let _ = inner.events.try_send(event);
        }
    }
}

/// Establishes the connection, announces it, then reads and writes.
async fn live(inner: &Inner, conn: &Conn, start: Start) -> CloseReason {
    let io = match establish(inner, start).await {
        Ok(io) => io,
        Err(reason) => return reason,
    };
    let counter = if conn.inbound {
        // Counted at accept: `accepted` includes handshakes that fail.
        None
    } else {
        Some(&inner.counters.connected)
    };
    if let Some(counter) = counter {
        bump(counter, 1);
    }
    let opened = StreamEvent::Opened {
        conn: conn.id,
        transport: conn.transport,
        local: conn.local,
        remote: conn.remote,
        inbound: conn.inbound,
    };
    if inner.events.send(opened).await.is_err() {
        return CloseReason::Shutdown;
    }
    conn.opened.store(true, Ordering::Release);
    debug!(conn = %conn.id, transport = %conn.transport, remote = %conn.remote, inbound = conn.inbound, "stream connection open");
    let (rd, wr) = tokio::io::split(io);
    tokio::select! {
        r = read_loop(inner, conn, rd) => r,
        r = write_loop(inner, conn, wr) => r,
    }
}

/// TCP connect (outbound) and TLS handshake, within `handshake_timeout`.
async fn establish(inner: &Inner, start: Start) -> Result<Box<dyn Io>, CloseReason> {
    let handshake = async {
        match start {
            Start::Accepted { tcp, tls: None } => Ok(Box::new(tcp) as Box<dyn Io>),
            Start::Accepted {
                tcp,
                tls: Some(source),
            } => match TlsAcceptor::from(source()).accept(tcp).await {
                Ok(tls) => Ok(Box::new(tls) as Box<dyn Io>),
                Err(e) => {
                    debug!(error = %e, "TLS handshake failed (inbound)");
                    Err(CloseReason::HandshakeFailed)
                }
            },
            Start::Connect { via, bind, tls } => {
                let tcp = match tcp_connect(via, bind).await {
                    Ok(tcp) => tcp,
                    Err(e) => {
                        debug!(%via, error = %e, "stream connect failed");
                        return Err(CloseReason::ConnectFailed);
                    }
                };
                let Some((config, name)) = tls else {
                    return Ok(Box::new(tcp) as Box<dyn Io>);
                };
                match TlsConnector::from(config).connect(name, tcp).await {
                    Ok(tls) => Ok(Box::new(tls) as Box<dyn Io>),
                    Err(e) => {
                        debug!(%via, error = %e, "TLS handshake failed (outbound)");
                        Err(CloseReason::HandshakeFailed)
                    }
                }
            }
        }
    };
    timeout(inner.limits.handshake_timeout, handshake)
        .await
        .unwrap_or(Err(CloseReason::HandshakeTimeout))
}

async fn tcp_connect(
    via: SocketAddr,
    bind: Option<std::net::IpAddr>,
) -> std::io::Result<TcpStream> {
    let sock = if via.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(ip) = bind.filter(|ip| !ip.is_unspecified() && ip.is_ipv4() == via.is_ipv4()) {
        sock.bind(SocketAddr::new(ip, 0))?;
    }
    let tcp = sock.connect(via).await?;
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

/// Reads, frames, delivers; ends with the reason to close.
async fn read_loop(inner: &Inner, conn: &Conn, mut rd: impl AsyncRead + Unpin) -> CloseReason {
    let limits = &inner.limits;
    let c = &inner.counters;
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; READ_CHUNK];
    let idle = conn.idle.unwrap_or(limits.idle_timeout);
    let mut idle_at = Instant::now() + idle;
    // When the frame being received must be complete.
    let mut partial_at: Option<Instant> = None;
    // The last keepalive bytes, so a ping split over reads is still seen.
    let mut ka_tail: Vec<u8> = Vec::new();
    loop {
        let mut took = false;
        loop {
            let frame = match framing::next(&buf, conn.framer) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    debug!(conn = %conn.id, error = %e, "stream framing failed");
                    return CloseReason::Framing(e.kind());
                }
            };
            let n = frame.len();
            if n == 0 || n > buf.len() {
                // framing::next never does this; a framer that did would
                // loop forever or panic on the drain.
                debug_assert!(false, "framer returned {frame:?} for {} bytes", buf.len());
                return CloseReason::Framing("malformed");
            }
            took = true;
            idle_at = Instant::now() + idle;
            match frame {
                Frame::Keepalive(_) => {
                    bump(&c.keepalives_in, 1);
                    if saw_ping(&mut ka_tail, &buf[..n]) {
                        // A full queue closes the connection by itself.
                        let _ = conn.queue.push(PONG.to_vec());
                    } else if conn.inbound && buf[..n] == TPKT_KEEPALIVE {
                        // TPKT has one keepalive for ping and pong: only
                        // the side that accepted the connection answers,
                        // so two peers never bounce it forever.
                        let _ = conn.queue.push(TPKT_KEEPALIVE.to_vec());
                    }
                    buf.drain(..n);
                }
                Frame::Message(_) => {
                    ka_tail.clear();
                    let bytes: Vec<u8> = buf.drain(..n).collect();
                    bump(&c.messages_in, 1);
                    let event = StreamEvent::Message {
                        conn: conn.id,
                        transport: conn.transport,
                        local: conn.local,
                        remote: conn.remote,
                        bytes,
                    };
                    // Waits while the driver is behind: no reads meanwhile.
                    if inner.events.send(event).await.is_err() {
                        return CloseReason::Shutdown;
                    }
                }
            }
        }
        if buf.len() > MAX_BUFFERED {
            return CloseReason::Framing("too_large");
        }
        partial_at = match partial_at {
            _ if buf.is_empty() => None,
            // A new frame started (or the first bytes of one arrived).
            Some(_) if took => Some(Instant::now() + limits.message_timeout),
            None => Some(Instant::now() + limits.message_timeout),
            Some(at) => Some(at),
        };
        let deadline = partial_at.map_or(idle_at, |p| p.min(idle_at));
        match timeout_at(deadline, rd.read(&mut chunk)).await {
            Ok(Ok(0)) => return CloseReason::PeerClosed,
            Ok(Ok(n)) => {
                bump(&c.bytes_in, n as u64);
                buf.extend_from_slice(&chunk[..n]);
            }
            Ok(Err(e)) => {
                debug!(conn = %conn.id, error = %e, "stream read failed");
                return CloseReason::Io;
            }
            Err(_) if partial_at.is_some_and(|p| p <= idle_at) => return CloseReason::SlowSender,
            Err(_) => return CloseReason::Idle,
        }
    }
}

/// True when `ka`, after the keepalive bytes before it, completes a
/// [`PING`]; keeps the last bytes in `tail` for the next keepalive.
fn saw_ping(tail: &mut Vec<u8>, ka: &[u8]) -> bool {
    tail.extend_from_slice(ka);
    let ping = tail.windows(PING.len()).any(|w| w == PING);
    if ping {
        tail.clear();
    } else {
        let keep_from = tail.len().saturating_sub(PING.len() - 1);
        tail.drain(..keep_from);
    }
    ping
}

/// Writes queued bytes in order; ends only on a write error.
async fn write_loop(inner: &Inner, conn: &Conn, mut wr: impl AsyncWrite + Unpin) -> CloseReason {
    loop {
        let chunk = conn.queue.next_chunk().await;
        if let Err(e) = wr.write_all(&chunk).await {
            debug!(conn = %conn.id, error = %e, "stream write failed");
            return CloseReason::Io;
        }
        conn.queue.written(chunk.len());
        bump(&inner.counters.bytes_out, chunk.len() as u64);
        // TLS buffers records: flush once the queue is drained.
        if conn.queue.is_empty()
            && let Err(e) = wr.flush().await
        {
            debug!(conn = %conn.id, error = %e, "stream flush failed");
            return CloseReason::Io;
        }
    }
}

#[cfg(test)]
mod ping_tests {
    use super::saw_ping;

    #[test]
    fn a_ping_split_over_keepalives_is_seen() {
        let mut tail = Vec::new();
        assert!(saw_ping(&mut tail, b"\r\n\r\n"));
        assert!(tail.is_empty());
        assert!(!saw_ping(&mut tail, b"\r\n"));
        assert!(saw_ping(&mut tail, b"\r\n"));
        for split in [&b"\r"[..], b"\n", b"\r"] {
            assert!(!saw_ping(&mut tail, split));
        }
        assert!(saw_ping(&mut tail, b"\n"));
        // A pong alone is no ping.
        let mut tail = Vec::new();
        assert!(!saw_ping(&mut tail, b"\r\n"));
        tail.clear();
        assert!(!saw_ping(&mut tail, b"\r\n"));
    }
}
