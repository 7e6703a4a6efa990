//! Signaling over TCP and TLS: connections with limits, delivering whole
//! frames to a driver over an mpsc channel.
//!
//! # Design
//!
//! * **One task per connection.** It connects (outbound) or accepts, runs
//!   the TLS handshake if any, then reads and writes until the connection
//!   closes. A listener has its own accept task. The driver sees only
//!   [`StreamEvent`]s: `Opened`, one `Message` per whole frame, `Closed`.
//! * **Frames, not bytes.** Reads go through
//!   [`pinhole_core::framing::next`]: a control message (STUN-framed) or a
//!   frame of the listener's or connection's [`ProtocolFramer`] (SIP by
//!   Content-Length, TPKT). Keepalives are consumed and counted, never
//!   delivered; a double-CRLF ping (RFC 5626 §3.5.1) gets a CRLF pong on
//!   the same connection. A framing error closes the connection.
//! * **Bounded reads.** The read buffer never holds more than
//!   [`MAX_BUFFERED`] plus one read; a peer that sends a frame slower than
//!   [`StreamLimits::message_timeout`] (counted from its first byte), or no
//!   whole frame for [`StreamLimits::idle_timeout`], is closed.
//! * **Bounded writes.** [`Streams::send`] never waits: it queues bytes and
//!   the connection's task writes them. Past
//!   [`StreamLimits::max_write_queue`] unsent bytes (a peer that never
//!   reads) the connection is closed, so memory stays bounded whatever the
//!   peers do.
//! * **Backpressure, not loss.** When the driver's event channel is full a
//!   connection waits to deliver its frame and stops reading meanwhile;
//!   nothing is dropped. Dropping the receiver ends every task.
//! * **Limits on connections**: [`StreamLimits::max_connections`] in all
//!   and [`StreamLimits::max_per_ip`] inbound per source address; over
//!   them an inbound connection is closed at once and counted, and
//!   [`Streams::connect`] fails.
//! * **Opened from the inside.** An APS's connection to its MPR is an
//!   ordinary outbound [`Streams::connect`] (through the firewall, which
//!   keeps it open because the APS sends keepalives on it); the MPR sees an
//!   inbound connection on its listener and answers on it
//!   ([`Streams::find`] by transport and peer address, RFC 3261 §18).
//!
//! TLS uses rustls with the ring provider; a listener asks its
//! [`ServerConfigSource`] for a config at every handshake, so a certificate
//! reload applies to new connections and leaves open ones alone.
//!
//! # Example
//!
//! ```
//! use pinhole_net::stream::{StreamLimits, Streams};
//!
//! let limits = StreamLimits::default();
//! assert_eq!((limits.max_connections, limits.max_write_queue), (1024, 256 * 1024));
//! let (tx, _events) = tokio::sync::mpsc::channel(1024);
//! let streams = Streams::new(limits, tx);
//! assert_eq!(streams.counters().open, 0);
//! ```
//!
//! A control-message echo server:
//!
//! ```no_run
//! use std::time::Duration;
//! use pinhole_core::types::Transport;
//! use pinhole_net::stream::{Listen, StreamEvent, StreamLimits, Streams};
//! use tokio::sync::mpsc;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let limits = StreamLimits { idle_timeout: Duration::from_secs(60), ..StreamLimits::default() };
//! let (tx, mut events) = mpsc::channel(1024);
//! let streams = Streams::new(limits, tx);
//! let addr = streams
//!     .listen(Listen {
//!         addr: "127.0.0.1:0".parse().unwrap(),
//!         transport: Transport::Tcp,
//!         tls: None,
//!         framer: None, // control messages only; Some(pinhole_sip::stream_frame) for SIP
//!     })
//!     .await?;
//! println!("listening on {addr}");
//! while let Some(event) = events.recv().await {
//!     if let StreamEvent::Message { conn, bytes, .. } = event {
//!         let _ = streams.send(conn, bytes); // echo
//!     }
//! }
//! streams.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod conn;
mod queue;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use pinhole_core::framing::ProtocolFramer;
use pinhole_core::types::{ConnId, Transport};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{Notify, mpsc, watch};
use tracing::{debug, warn};

use self::conn::{Conn, Start};
use self::queue::Queue;

/// A keepalive ping for clients (RFC 5626 §3.5.1): the peer answers with a
/// single CRLF, and both firewalls and the peer see traffic.
pub const PING: &[u8] = b"\r\n\r\n";

/// An empty TPKT frame (RFC 1006): the keepalive of TPKT-framed streams
/// (H.323). It is ping and pong at once, so only the side that accepted
/// the connection answers one.
pub const TPKT_KEEPALIVE: [u8; 4] = [3, 0, 0, 4];

/// The most bytes a connection buffers while a frame is incomplete: the
/// largest SIP message (64 KiB of headers and a 1 MiB body) and more than
/// any control or TPKT frame. A framer that still wants more is refused.
pub const MAX_BUFFERED: usize = 1024 * 1024 + 64 * 1024;

/// Pause after a failed `accept` (out of file descriptors, say), so that
/// the accept task does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);

/// Connection limits and timers.
#[derive(Clone, Debug)]
pub struct StreamLimits {
    /// Connections open at once, inbound and outbound (1024).
    pub max_connections: usize,
    /// Inbound connections per source IP address (64).
    pub max_per_ip: usize,
    /// TCP connect (outbound) and TLS handshake, together (10 s).
    pub handshake_timeout: Duration,
    /// Time without a whole frame received, keepalives included, before
    /// the connection is closed (120 s).
    pub idle_timeout: Duration,
    /// Time a frame may take from its first byte to its last (10 s): a
    /// peer that sends one byte a second cannot hold a connection.
    pub message_timeout: Duration,
    /// Unsent bytes queued per connection; beyond, it is closed (256 KiB).
    pub max_write_queue: usize,
}

impl Default for StreamLimits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            max_per_ip: 64,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            message_timeout: Duration::from_secs(10),
            max_write_queue: 256 * 1024,
        }
    }
}

/// What the connections tell the driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamEvent {
    /// A connection is up (after its TLS handshake, if any).
    Opened {
        /// The connection.
        conn: ConnId,
        /// TCP or TLS.
        transport: Transport,
        /// The listener's address (inbound) or [`Connect::local`].
        local: SocketAddr,
        /// The peer.
        remote: SocketAddr,
        /// Accepted by a listener, not opened by [`Streams::connect`].
        inbound: bool,
    },
    /// One whole frame: a control message or a protocol message.
    /// Keepalives are not delivered.
    Message {
        /// The connection.
        conn: ConnId,
        /// TCP or TLS.
        transport: Transport,
        /// As in `Opened`.
        local: SocketAddr,
        /// The peer.
        remote: SocketAddr,
        /// The frame's bytes.
        bytes: Vec<u8>,
    },
    /// A connection is closed. Every connection [`Streams::connect`] named
    /// ends with one; an inbound one only if it was `Opened` (a TLS
    /// handshake that fails or times out is counted, not reported).
    Closed {
        /// The connection.
        conn: ConnId,
        /// TCP or TLS.
        transport: Transport,
        /// As in `Opened`.
        local: SocketAddr,
        /// The peer.
        remote: SocketAddr,
        /// Why.
        reason: CloseReason,
    },
}

/// Why a connection closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The peer closed its side.
    PeerClosed,
    /// A read or write failed.
    Io,
    /// The stream could not be framed; the [`FrameError`] kind
    /// (`too_large`, `malformed`).
    ///
    /// [`FrameError`]: pinhole_core::framing::FrameError
    Framing(&'static str),
    /// No whole frame within [`StreamLimits::idle_timeout`].
    Idle,
    /// A frame took longer than [`StreamLimits::message_timeout`].
    SlowSender,
    /// More than [`StreamLimits::max_write_queue`] bytes unsent.
    WriteQueueFull,
    /// TCP connect or TLS handshake over [`StreamLimits::handshake_timeout`].
    HandshakeTimeout,
    /// The TLS handshake failed.
    HandshakeFailed,
    /// The TCP connect failed (refused, unreachable).
    ConnectFailed,
    /// [`Streams::shutdown`], or the driver dropped its event receiver.
    Shutdown,
    /// [`Streams::close`].
    Local,
}

impl CloseReason {
    /// A stable short label, for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::PeerClosed => "peer_closed",
            Self::Io => "io",
            Self::Framing(_) => "framing",
            Self::Idle => "idle",
            Self::SlowSender => "slow_sender",
            Self::WriteQueueFull => "write_queue_full",
            Self::HandshakeTimeout => "handshake_timeout",
            Self::HandshakeFailed => "handshake_failed",
            Self::ConnectFailed => "connect_failed",
            Self::Shutdown => "shutdown",
            Self::Local => "local",
        }
    }
}

/// Why [`Streams::send`] or [`Streams::connect`] did nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// No open connection has that id (never was, or closed or closing).
    #[error("no such connection")]
    NoSuchConnection,
    /// The write queue is full: the connection is being closed.
    #[error("write queue full; connection closed")]
    QueueFull,
    /// [`StreamLimits::max_connections`] are open.
    #[error("too many connections")]
    TooManyConnections,
    /// [`Streams::shutdown`] was called.
    #[error("streams shut down")]
    Shutdown,
}

impl SendError {
    /// A stable short label, for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NoSuchConnection => "no_such_connection",
            Self::QueueFull => "queue_full",
            Self::TooManyConnections => "too_many_connections",
            Self::Shutdown => "shutdown",
        }
    }
}

/// Where a TLS listener gets its config for each new handshake (so a
/// certificate reload applies to new connections only).
pub type ServerConfigSource = Arc<dyn Fn() -> Arc<rustls::ServerConfig> + Send + Sync>;

/// A listener to open with [`Streams::listen`].
#[derive(Clone)]
pub struct Listen {
    /// Where to bind (port 0: any free port).
    pub addr: SocketAddr,
    /// [`Transport::Tcp`] or [`Transport::Tls`].
    pub transport: Transport,
    /// The TLS config source: `Some` exactly when `transport` is TLS.
    pub tls: Option<ServerConfigSource>,
    /// The protocol's framing beside control messages; `None` for a
    /// control-only stream.
    pub framer: Option<ProtocolFramer>,
}

/// An outbound connection to open with [`Streams::connect`].
#[derive(Clone)]
pub struct Connect {
    /// [`Transport::Tcp`] or [`Transport::Tls`].
    pub transport: Transport,
    /// The peer's true address, reported in events and used by
    /// [`Streams::find`].
    pub remote: SocketAddr,
    /// Where to connect: `remote` on a real network, a firewall-simulator
    /// route in tests.
    pub via: SocketAddr,
    /// The logical local address reported in events (a listener's
    /// address). The connection is bound to its IP (any port) before it
    /// connects, so it leaves from the host's own address: a firewall
    /// lets out only its inside hosts.
    pub local: SocketAddr,
    /// The TLS client config and the name to verify: `Some` exactly when
    /// `transport` is TLS.
    pub tls: Option<(
        Arc<rustls::ClientConfig>,
        rustls::pki_types::ServerName<'static>,
    )>,
    /// As in [`Listen::framer`].
    pub framer: Option<ProtocolFramer>,
    /// This connection's idle timeout instead of
    /// [`StreamLimits::idle_timeout`]: a client that pings every `k`
    /// seconds and gets pongs can call its connection dead after about
    /// `2.5 k` without a frame, long before the server's limit.
    pub idle_timeout: Option<std::time::Duration>,
}

/// Plain counters, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamCounters {
    /// Inbound connections accepted (within the limits).
    pub accepted: u64,
    /// Outbound connections established (connected, and TLS done).
    pub connected: u64,
    /// Connections open or opening now (a gauge).
    pub open: u64,
    /// Inbound connections refused by `max_connections`.
    pub refused_total: u64,
    /// Inbound connections refused by `max_per_ip`.
    pub refused_per_ip: u64,
    /// Connects or handshakes over `handshake_timeout`.
    pub handshake_timeouts: u64,
    /// TLS handshakes that failed.
    pub handshake_failures: u64,
    /// TCP connects that failed.
    pub connect_failures: u64,
    /// Connections closed by `idle_timeout`.
    pub idle_closed: u64,
    /// Connections closed by `message_timeout`.
    pub slow_closed: u64,
    /// Connections closed by `max_write_queue`.
    pub write_queue_closed: u64,
    /// Connections closed because their stream could not be framed.
    pub framing_errors: u64,
    /// Connections the peer closed.
    pub peer_closed: u64,
    /// Frames delivered.
    pub messages_in: u64,
    /// Messages queued by [`Streams::send`].
    pub messages_out: u64,
    /// Bytes read.
    pub bytes_in: u64,
    /// Bytes written.
    pub bytes_out: u64,
    /// Keepalive frames received.
    pub keepalives_in: u64,
}

/// The live counters behind [`StreamCounters`].
#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    connected: AtomicU64,
    refused_total: AtomicU64,
    refused_per_ip: AtomicU64,
    handshake_timeouts: AtomicU64,
    handshake_failures: AtomicU64,
    connect_failures: AtomicU64,
    idle_closed: AtomicU64,
    slow_closed: AtomicU64,
    write_queue_closed: AtomicU64,
    framing_errors: AtomicU64,
    peer_closed: AtomicU64,
    messages_in: AtomicU64,
    messages_out: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    keepalives_in: AtomicU64,
}

fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// One connection in the table.
#[derive(Debug)]
struct Entry {
    transport: Transport,
    local: SocketAddr,
    remote: SocketAddr,
    /// Counted in `per_ip` under this address.
    inbound: Option<IpAddr>,
    queue: Arc<Queue>,
}

#[derive(Debug, Default)]
struct Table {
    conns: HashMap<ConnId, Entry>,
    per_ip: HashMap<IpAddr, usize>,
    stopped: bool,
}

/// Why an inbound connection was refused.
enum Refused {
    Total,
    PerIp,
}

struct Inner {
    limits: StreamLimits,
    events: mpsc::Sender<StreamEvent>,
    table: Mutex<Table>,
    next_id: AtomicU64,
    counters: Counters,
    stop: watch::Sender<bool>,
    /// Tasks running (accept loops and connections), for shutdown.
    live: AtomicUsize,
    all_done: Notify,
}

impl Inner {
    fn table(&self) -> MutexGuard<'_, Table> {
        // Every update of the table is complete before the lock is
        // released: a panic elsewhere cannot leave it inconsistent.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a connection within the limits (`inbound`: its source IP).
    fn admit(
        &self,
        transport: Transport,
        local: SocketAddr,
        remote: SocketAddr,
        inbound: Option<IpAddr>,
    ) -> Result<(ConnId, Arc<Queue>), Refused> {
        let mut t = self.table();
        if t.conns.len() >= self.limits.max_connections {
            return Err(Refused::Total);
        }
        if let Some(ip) = inbound {
            let n = t.per_ip.entry(ip).or_default();
            if *n >= self.limits.max_per_ip {
                return Err(Refused::PerIp);
            }
            *n += 1;
        }
        let id = ConnId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let queue = Arc::new(Queue::new(self.limits.max_write_queue));
        t.conns.insert(
            id,
            Entry {
                transport,
                local,
                remote,
                inbound,
                queue: Arc::clone(&queue),
            },
        );
        Ok((id, queue))
    }

    fn remove(&self, id: ConnId) {
        let mut t = self.table();
        let Some(entry) = t.conns.remove(&id) else {
            return;
        };
        if let Some(ip) = entry.inbound
            && let Some(n) = t.per_ip.get_mut(&ip)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                t.per_ip.remove(&ip);
            }
        }
    }

    fn queue(&self, id: ConnId) -> Option<Arc<Queue>> {
        self.table().conns.get(&id).map(|e| Arc::clone(&e.queue))
    }

    /// Spawns a task that [`Streams::shutdown`] waits for.
    fn spawn(self: &Arc<Self>, task: impl Future<Output = ()> + Send + 'static) {
        self.live.fetch_add(1, Ordering::AcqRel);
        let guard = TaskGuard(Arc::clone(self));
        tokio::spawn(async move {
            let _guard = guard;
            task.await;
        });
    }
}

/// Counts a task out when it ends, however it ends.
struct TaskGuard(Arc<Inner>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        if self.0.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.all_done.notify_waiters();
        }
    }
}

async fn stopped(rx: &mut watch::Receiver<bool>) {
    // An error means the sender was dropped: stop as well.
    let _ = rx.wait_for(|stop| *stop).await;
}

/// TCP and TLS connections of one driver. Cheap to clone: every clone
/// drives the same connections.
#[derive(Clone)]
pub struct Streams {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Streams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Streams")
            .field("limits", &self.inner.limits)
            .field("counters", &self.counters())
            .finish_non_exhaustive()
    }
}

impl Streams {
    /// Connections with `limits`, reporting to `events`.
    pub fn new(limits: StreamLimits, events: mpsc::Sender<StreamEvent>) -> Self {
        Self {
            inner: Arc::new(Inner {
                limits,
                events,
                table: Mutex::default(),
                next_id: AtomicU64::new(1),
                counters: Counters::default(),
                stop: watch::Sender::new(false),
                live: AtomicUsize::new(0),
                all_done: Notify::new(),
            }),
        }
    }

    /// Binds a listener and accepts connections on it until
    /// [`Self::shutdown`]; returns the bound address (port 0 → the real
    /// port). Connections over the limits are closed at once and counted.
    ///
    /// # Errors
    ///
    /// The bind's error; `InvalidInput` for UDP, for TLS without a config
    /// or TCP with one; `Other` after [`Self::shutdown`].
    pub async fn listen(&self, l: Listen) -> io::Result<SocketAddr> {
        check_tls(l.transport, l.tls.is_some())?;
        let sock = if l.addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        // A restarted daemon rebinds its port while old connections linger
        // in TIME_WAIT.
        sock.set_reuseaddr(true)?;
        sock.bind(l.addr)?;
        let listener = sock.listen(1024)?;
        let local = listener.local_addr()?;
        if self.inner.table().stopped {
            return Err(io::Error::other("streams shut down"));
        }
        debug!(%local, transport = %l.transport, "stream listener open");
        self.inner
            .spawn(accept_loop(Arc::clone(&self.inner), listener, local, l));
        Ok(local)
    }

    /// Opens an outbound connection; returns at once. Bytes sent before it
    /// is up are queued (within `max_write_queue`) and written in order.
    /// `Opened` follows on success, `Closed` (`ConnectFailed`,
    /// `HandshakeTimeout`, `HandshakeFailed`) otherwise.
    ///
    /// # Errors
    ///
    /// [`SendError::TooManyConnections`] at `max_connections`,
    /// [`SendError::Shutdown`] after [`Self::shutdown`],
    /// [`SendError::NoSuchConnection`] for a transport that is not a
    /// stream or a TLS setting that does not match it.
    pub fn connect(&self, c: Connect) -> Result<ConnId, SendError> {
        if check_tls(c.transport, c.tls.is_some()).is_err() {
            return Err(SendError::NoSuchConnection);
        }
        if self.inner.table().stopped {
            return Err(SendError::Shutdown);
        }
        let (id, queue) = self
            .inner
            .admit(c.transport, c.local, c.remote, None)
            .map_err(|_| SendError::TooManyConnections)?;
        let mut conn = Conn::new(id, c.transport, c.local, c.remote, false, c.framer, queue);
        conn.idle = c.idle_timeout;
        let start = Start::Connect {
            via: c.via,
            bind: Some(c.local.ip()),
            tls: c.tls,
        };
        self.inner
            .spawn(conn::run(Arc::clone(&self.inner), conn, start));
        Ok(id)
    }

    /// Queues `bytes` on a connection; never waits.
    ///
    /// # Errors
    ///
    /// [`SendError::NoSuchConnection`] if it is not open;
    /// [`SendError::QueueFull`] if the bytes would take the queue over
    /// `max_write_queue`: the connection is then closed (`WriteQueueFull`).
    pub fn send(&self, conn: ConnId, bytes: Vec<u8>) -> Result<(), SendError> {
        let queue = self.inner.queue(conn).ok_or(SendError::NoSuchConnection)?;
        queue.push(bytes)?;
        bump(&self.inner.counters.messages_out, 1);
        Ok(())
    }

    /// An open (or opening) connection to `remote` over `transport`, for
    /// reuse (RFC 3261 §18); the oldest if there are several.
    pub fn find(&self, transport: Transport, remote: SocketAddr) -> Option<ConnId> {
        self.inner
            .table()
            .conns
            .iter()
            .filter(|(_, e)| {
                e.transport == transport && e.remote == remote && !e.queue.is_closing()
            })
            .map(|(id, _)| *id)
            .min()
    }

    /// A connection's transport, local and remote address.
    pub fn info(&self, conn: ConnId) -> Option<(Transport, SocketAddr, SocketAddr)> {
        self.inner
            .table()
            .conns
            .get(&conn)
            .map(|e| (e.transport, e.local, e.remote))
    }

    /// Bytes queued on a connection and not yet written.
    pub fn queued(&self, conn: ConnId) -> Option<usize> {
        self.inner.queue(conn).map(|q| q.queued())
    }

    /// Closes a connection (`Closed { reason: Local }`); unsent bytes are
    /// dropped.
    pub fn close(&self, conn: ConnId) {
        if let Some(queue) = self.inner.queue(conn) {
            queue.close(CloseReason::Local);
        }
    }

    /// A snapshot of the counters.
    pub fn counters(&self) -> StreamCounters {
        let c = &self.inner.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StreamCounters {
            accepted: get(&c.accepted),
            connected: get(&c.connected),
            open: self.inner.table().conns.len() as u64,
            refused_total: get(&c.refused_total),
            refused_per_ip: get(&c.refused_per_ip),
            handshake_timeouts: get(&c.handshake_timeouts),
            handshake_failures: get(&c.handshake_failures),
            connect_failures: get(&c.connect_failures),
            idle_closed: get(&c.idle_closed),
            slow_closed: get(&c.slow_closed),
            write_queue_closed: get(&c.write_queue_closed),
            framing_errors: get(&c.framing_errors),
            peer_closed: get(&c.peer_closed),
            messages_in: get(&c.messages_in),
            messages_out: get(&c.messages_out),
            bytes_in: get(&c.bytes_in),
            bytes_out: get(&c.bytes_out),
            keepalives_in: get(&c.keepalives_in),
        }
    }

    /// Closes every listener and connection (`Closed { reason: Shutdown }`,
    /// not awaited if the event channel is full) and returns when their
    /// tasks ended: the listeners' ports are free again.
    pub async fn shutdown(&self) {
        self.inner.table().stopped = true;
        self.inner.stop.send_replace(true);
        loop {
            let done = self.inner.all_done.notified();
            tokio::pin!(done);
            done.as_mut().enable();
            if self.inner.live.load(Ordering::Acquire) == 0 {
                return;
            }
            done.await;
        }
    }
}

/// TLS exactly when the transport says so; no UDP here.
fn check_tls(transport: Transport, tls: bool) -> io::Result<()> {
    match (transport, tls) {
        (Transport::Tcp, false) | (Transport::Tls, true) => Ok(()),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a stream is TCP without a TLS config or TLS with one",
        )),
    }
}

/// Accepts connections until shutdown, within the limits.
async fn accept_loop(inner: Arc<Inner>, listener: TcpListener, local: SocketAddr, l: Listen) {
    let mut stop = inner.stop.subscribe();
    loop {
        let (tcp, peer) = tokio::select! {
            biased;
            () = stopped(&mut stop) => break,
            () = inner.events.closed() => break,
            r = listener.accept() => match r {
                Ok(got) => got,
                Err(e) => {
                    debug!(%local, error = %e, "stream accept failed");
                    tokio::select! {
                        () = stopped(&mut stop) => break,
                        () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                    }
                }
            },
        };
        // An IPv4 peer on a dual-stack socket counts as its IPv4 address.
        let ip = peer.ip().to_canonical();
        match inner.admit(l.transport, local, peer, Some(ip)) {
            Ok((id, queue)) => {
                bump(&inner.counters.accepted, 1);
                // Signaling is small messages each awaited by the peer:
                // Nagle would hold one back for the peer's delayed ACK
                // (40 ms on Linux) whenever an earlier one is unacked.
                if let Err(e) = tcp.set_nodelay(true) {
                    debug!(%peer, error = %e, "cannot set TCP_NODELAY");
                }
                let conn = Conn::new(id, l.transport, local, peer, true, l.framer, queue);
                let start = Start::Accepted {
                    tcp,
                    tls: l.tls.clone(),
                };
                inner.spawn(conn::run(Arc::clone(&inner), conn, start));
            }
            Err(refused) => {
                let (counter, limit) = match refused {
                    Refused::Total => (&inner.counters.refused_total, "max_connections"),
                    Refused::PerIp => (&inner.counters.refused_per_ip, "max_per_ip"),
                };
                bump(counter, 1);
                // One line per refusal; the daemon's log layer
                // (`crate::logs`) limits how many reach the output.
                warn!(%local, %peer, limit, "stream connection refused");
                drop(tcp);
            }
        }
    }
    debug!(%local, "stream listener closed");
}
