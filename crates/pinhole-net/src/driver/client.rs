//! The client driver (APS or smart terminal): the signaling socket carries
//! Registration and the protocol's own signaling; media sockets live in the
//! relay, which delivers their control messages here and forwards media by
//! the engine's B ↔ A mappings (APS) or hands it to the application (smart
//! terminal, Fig. 8).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pinhole_core::alg::live::LiveClient;
use pinhole_core::alg::{AlgCounters, ClientContext, ClientSignaling};
use pinhole_core::client::{ClientError, Engine, Event, PinholeId, PinholeRequest, Stats};
use pinhole_core::relay::RelayCommand;
use std::collections::VecDeque;

use pinhole_core::types::{ConnId, Flow, Receive, Transmit, Transport};
use pinhole_core::wire;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::link::{LinkCounters, Links, Streaming, log_connection, next_event};
use super::mpr::{Signaling, close, sleep_until};
use super::{SharedRouter, ask, now};
use crate::relay::{Relay, RelayCounters, RelayEvent};
use crate::stream::{Listen, PING, StreamEvent, TPKT_KEEPALIVE};

enum Cmd {
    Open(
        PinholeRequest,
        oneshot::Sender<Result<PinholeId, ClientError>>,
    ),
    Close(PinholeId, oneshot::Sender<Result<(), ClientError>>),
    Stats(oneshot::Sender<Stats>),
    Registered(oneshot::Sender<Option<SocketAddr>>),
    RelayCounters(oneshot::Sender<RelayCounters>),
    AlgCounters(oneshot::Sender<AlgCounters>),
    LinkCounters(oneshot::Sender<LinkCounters>),
    DropUpstream(oneshot::Sender<bool>),
    Send(SocketAddr, Vec<u8>),
    SendMedia(Media, oneshot::Sender<io::Result<()>>),
    Shutdown(Duration, oneshot::Sender<Deregistration>),
}

/// A media datagram of a smart terminal's pinhole (Fig. 8): one that
/// arrived on, or is to leave from, a port the application owns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Media {
    /// The media port (port A, the pinhole's local port).
    pub local: SocketAddr,
    /// Where it came from (the MPR relay port), or goes to.
    pub remote: SocketAddr,
    /// Its bytes, unchanged.
    pub payload: Vec<u8>,
}

/// How a graceful [`ClientHandle::shutdown`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deregistration {
    /// The MPR confirmed: the route is gone now.
    Confirmed,
    /// No confirmation in time (or a refusal): the route expires at the
    /// MPR with its lifetime.
    Unconfirmed,
    /// There was no registration to remove.
    NotRegistered,
}

/// The application's handle on a running client.
#[derive(Clone)]
pub struct ClientHandle {
    cmds: mpsc::Sender<Cmd>,
}

/// What the driver hands the application besides the handle.
pub struct ClientOutputs {
    /// Engine events (registered, alarm, pinhole opened or failed).
    pub events: mpsc::Receiver<Event>,
    /// Non-control datagrams that arrived on the signaling socket.
    pub signaling: mpsc::Receiver<Signaling>,
    /// Media for the application: what arrived on a smart terminal's
    /// pinhole port from its MPR relay port (nothing for an APS, whose
    /// relay maps B ↔ A itself). Datagrams the application does not take
    /// in time are dropped when the queue is full.
    pub media: mpsc::Receiver<Media>,
    /// The driver task; it ends when every handle is dropped or after
    /// [`ClientHandle::shutdown`], having closed its sockets.
    pub task: JoinHandle<()>,
}

impl ClientHandle {
    /// Opens a media pinhole from `req.local`; the result comes as an event.
    pub async fn open_pinhole(
        &self,
        req: PinholeRequest,
    ) -> io::Result<Result<PinholeId, ClientError>> {
        ask(&self.cmds, "client", |tx| Cmd::Open(req, tx)).await
    }

    /// Closes a media pinhole.
    pub async fn close_pinhole(&self, id: PinholeId) -> io::Result<Result<(), ClientError>> {
        ask(&self.cmds, "client", |tx| Cmd::Close(id, tx)).await
    }

    /// The engine's counters.
    pub async fn stats(&self) -> io::Result<Stats> {
        ask(&self.cmds, "client", Cmd::Stats).await
    }

    /// The signaling pinhole while registered.
    pub async fn registered_pinhole(&self) -> io::Result<Option<SocketAddr>> {
        ask(&self.cmds, "client", Cmd::Registered).await
    }

    /// The media relay's counters (mapped and delivered datagrams, drops).
    pub async fn relay_counters(&self) -> io::Result<RelayCounters> {
        ask(&self.cmds, "client", Cmd::RelayCounters).await
    }

    /// The signaling ALG's counters by protocol (empty without one).
    pub async fn alg_counters(&self) -> io::Result<AlgCounters> {
        ask(&self.cmds, "client", Cmd::AlgCounters).await
    }

    /// The stream transports' counters (all zero without streams).
    pub async fn link_counters(&self) -> io::Result<LinkCounters> {
        ask(&self.cmds, "client", Cmd::LinkCounters).await
    }

    /// Closes the signaling connection to the MPR as a firewall that
    /// forgot it would (tests and operations: the driver reconnects after
    /// its back-off, and registers over the new connection). False when
    /// there is none open.
    pub async fn drop_upstream(&self) -> io::Result<bool> {
        ask(&self.cmds, "client", Cmd::DropUpstream).await
    }

    /// Sends signaling from the signaling socket, or up the connection to
    /// the MPR when `remote` is the MPR and the upstream is a stream (it
    /// counts as pinhole traffic).
    pub async fn send_signaling(&self, remote: SocketAddr, payload: Vec<u8>) -> io::Result<()> {
        self.cmds
            .send(Cmd::Send(remote, payload))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client driver has stopped"))
    }

    /// Sends the application's media from one of its pinhole ports (a
    /// smart terminal's port A, Fig. 8) to `media.remote`, normally the MPR
    /// relay port the pinhole was opened toward. It counts as traffic
    /// through that pinhole, so no keepalive is needed while media flows.
    /// `NotFound` if no media socket is bound at `media.local`.
    pub async fn send_media(&self, media: Media) -> io::Result<()> {
        ask(&self.cmds, "client", |tx| Cmd::SendMedia(media, tx)).await?
    }

    /// Stops gracefully: deregisters (REGISTER with LIFETIME 0, so the MPR
    /// drops the route at once instead of at expiry), waits at most `wait`
    /// for the answer, then closes every socket and ends the driver.
    pub async fn shutdown(&self, wait: Duration) -> io::Result<Deregistration> {
        ask(&self.cmds, "client", |tx| Cmd::Shutdown(wait, tx)).await
    }
}

/// Starts a client on its (bound) signaling socket, a relay for its media
/// sockets, and a router. Non-control datagrams on the signaling socket go
/// to the application ([`ClientOutputs::signaling`]).
pub fn spawn(
    engine: Engine,
    signaling: Arc<UdpSocket>,
    relay: Relay,
    relay_events: mpsc::Receiver<RelayEvent>,
    router: SharedRouter,
) -> io::Result<(ClientHandle, ClientOutputs)> {
    spawn_with(engine, signaling, relay, relay_events, router, None)
}

/// Like [`spawn`], with a signaling ALG that takes every non-control
/// datagram on the signaling socket and opens pinholes with the engine
/// directly, in the driver's own task. An ALG for another protocol than
/// the one the engine registers is `InvalidInput`.
pub fn spawn_with(
    engine: Engine,
    signaling: Arc<UdpSocket>,
    relay: Relay,
    relay_events: mpsc::Receiver<RelayEvent>,
    router: SharedRouter,
    alg: Option<Box<dyn ClientSignaling>>,
) -> io::Result<(ClientHandle, ClientOutputs)> {
    if engine.config().upstream.is_stream() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a stream upstream needs spawn_streaming",
        ));
    }
    start(engine, signaling, relay, relay_events, router, alg, None)
}

/// How the client keeps its signaling connection to the MPR (when the
/// engine's [`Config::upstream`](pinhole_core::client::Config::upstream)
/// is TCP or TLS).
#[derive(Clone, Copy, Debug)]
pub struct Upstream {
    /// A CRLF ping (RFC 5626 §3.5.1) goes up the connection this often,
    /// below the firewall's idle timeout for TCP (an empty TPKT instead
    /// when the ALG's framing is TPKT's, as H.323's); `None` leaves it to
    /// the registration refreshes.
    pub keepalive: Option<Duration>,
    /// First wait before reopening a closed connection; doubles.
    pub backoff_min: Duration,
    /// Longest wait.
    pub backoff_max: Duration,
    /// Messages held for the MPR while the connection is down; beyond,
    /// new ones are dropped and counted (signaling retransmits).
    pub max_pending: usize,
}

impl Default for Upstream {
    fn default() -> Self {
        Self {
            keepalive: Some(Duration::from_secs(25)),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
            max_pending: 256,
        }
    }
}

/// A client's stream transports: limits and TLS, its connection to the
/// MPR, and whether phones may use TCP.
#[derive(Clone, Debug, Default)]
pub struct ClientStreams {
    /// Limits and TLS trust (the MPR is verified by its IP address).
    pub streaming: Streaming,
    /// The signaling connection to the MPR.
    pub upstream: Upstream,
    /// Phones inside may reach the ALG over TCP at the signaling address.
    pub listen_tcp: bool,
    /// More TCP listeners whose frames go to the ALG like those of
    /// [`ClientStreams::listen_tcp`], with
    /// [`Receive::local`](pinhole_core::types::Receive::local) the
    /// listener's address; a connection the ALG opens from one of these
    /// addresses is framed the same way. (The H.323 APS: its inside
    /// call-signaling address when it is not the signaling socket's, and
    /// its inside H.245 listeners.) Each needs an ALG with stream framing;
    /// one that cannot be bound is an error naming it.
    pub listen_also: Vec<SocketAddr>,
    /// How the protocol's messages are framed when there is no ALG (a
    /// smart terminal whose application speaks the protocol through
    /// [`ClientOutputs::signaling`]); with an ALG, the ALG's framing.
    pub framer: Option<pinhole_core::framing::ProtocolFramer>,
}

/// Like [`spawn_with`], with stream transports (issue 13). When the
/// engine's upstream is TCP or TLS, the driver opens the one signaling
/// connection to the MPR from inside (TLS verified with
/// [`Streaming::client_tls`] against the MPR's IP address), sends the
/// Registration, the reserves and the ALG's messages for the MPR up it,
/// keeps it alive, and reopens it with back-off when it closes, then
/// registers again over it (the MPR's route follows; calls go on). With
/// [`ClientStreams::listen_tcp`], phones inside may also reach the ALG
/// over TCP at the signaling address, and with
/// [`ClientStreams::listen_also`] at more addresses.
pub async fn spawn_streaming(
    engine: Engine,
    signaling: Arc<UdpSocket>,
    relay: Relay,
    relay_events: mpsc::Receiver<RelayEvent>,
    router: SharedRouter,
    alg: Option<Box<dyn ClientSignaling>>,
    streams: &ClientStreams,
) -> io::Result<(ClientHandle, ClientOutputs)> {
    let (upstream, listen_tcp) = (streams.upstream, streams.listen_tcp);
    let local = signaling.local_addr()?;
    let framer = match &alg {
        Some(a) => a.framer(),
        None => streams.framer,
    };
    let (mut links, rx) = Links::new(&streams.streaming);
    links.frame(local, framer);
    if listen_tcp {
        if framer.is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a TCP listener for phones needs an ALG with stream framing",
            ));
        }
        let at = listen(&links, local, framer).await?;
        tracing::info!(listen = %at, "TCP listener for phones open");
    }
    for (i, &addr) in streams.listen_also.iter().enumerate() {
        if framer.is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("TCP listener {addr}: needs an ALG with stream framing"),
            ));
        }
        if (listen_tcp && addr == local) || streams.listen_also[..i].contains(&addr) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("TCP listener {addr}: listed twice"),
            ));
        }
        let at = listen(&links, addr, framer).await?;
        links.frame(at, framer);
        tracing::info!(listen = %at, "TCP listener open");
    }
    let up = engine.config().upstream.is_stream().then(|| UpstreamState {
        cfg: upstream,
        conn: None,
        opened_once: false,
        lost: false,
        retry_at: Some(tokio::time::Instant::now()),
        backoff: upstream.backoff_min,
        pending: VecDeque::new(),
        next_ping: None,
        ping: ping_for(framer),
    });
    start(
        engine,
        signaling,
        relay,
        relay_events,
        router,
        alg,
        Some((links, rx, up)),
    )
}

/// The keepalive the upstream connection pings with: the CRLF ping (RFC
/// 5626 §3.5.1), unless the protocol's framing refuses it and takes an
/// empty TPKT instead (H.323: the MPR, which accepted the connection,
/// answers one with one).
fn ping_for(framer: Option<pinhole_core::framing::ProtocolFramer>) -> &'static [u8] {
    use pinhole_core::framing::{Frame, next};
    let refused = |b: &[u8]| next(b, framer).is_err();
    let keepalive =
        |b: &[u8]| matches!(next(b, framer), Ok(Some(Frame::Keepalive(n))) if n == b.len());
    if refused(PING) && keepalive(&TPKT_KEEPALIVE) {
        &TPKT_KEEPALIVE
    } else {
        PING
    }
}

/// Opens a TCP listener at `addr` for the ALG; the error names it.
async fn listen(
    links: &Links,
    addr: SocketAddr,
    framer: Option<pinhole_core::framing::ProtocolFramer>,
) -> io::Result<SocketAddr> {
    links
        .streams
        .listen(Listen {
            addr,
            transport: Transport::Tcp,
            tls: None,
            framer,
        })
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen for TCP on {addr}: {e}")))
}

/// The signaling connection to the MPR.
struct UpstreamState {
    cfg: Upstream,
    /// The connection, open or opening.
    conn: Option<ConnId>,
    /// It was open before (so the next open is a reconnect).
    opened_once: bool,
    /// A connection closed with what was sent on it (one that never
    /// opened takes its messages along): the next open registers again.
    lost: bool,
    /// When to open it (again).
    retry_at: Option<tokio::time::Instant>,
    backoff: Duration,
    /// Messages for the MPR while there is no connection.
    pending: VecDeque<Vec<u8>>,
    next_ping: Option<tokio::time::Instant>,
    /// The keepalive's bytes ([`ping_for`]).
    ping: &'static [u8],
}

impl UpstreamState {
    /// Schedules the next attempt after the current back-off, doubles the
    /// back-off (up to its maximum), and returns the wait.
    fn retry_later(&mut self, now: tokio::time::Instant) -> Duration {
        let wait = self.backoff;
        self.retry_at = Some(now + wait);
        self.backoff = (self.backoff * 2).min(self.cfg.backoff_max);
        wait
    }
}

type StreamParts = (Links, mpsc::Receiver<StreamEvent>, Option<UpstreamState>);

fn start(
    engine: Engine,
    signaling: Arc<UdpSocket>,
    relay: Relay,
    relay_events: mpsc::Receiver<RelayEvent>,
    router: SharedRouter,
    alg: Option<Box<dyn ClientSignaling>>,
    streams: Option<StreamParts>,
) -> io::Result<(ClientHandle, ClientOutputs)> {
    let local = signaling.local_addr()?;
    if local != engine.config().signaling {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the signaling socket is not bound to the engine's configured signaling address",
        ));
    }
    if let Some(a) = &alg
        && a.protocol() != engine.config().protocol
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "a {} ALG on a client that registers {}",
                a.protocol().name(),
                engine.config().protocol.name()
            ),
        ));
    }
    let (cmd_tx, cmd_rx) = mpsc::channel(1024);
    let (ev_tx, ev_rx) = mpsc::channel(1024);
    let (sig_tx, sig_rx) = mpsc::channel(4096);
    let (media_tx, media_rx) = mpsc::channel(4096);
    let (rx_tx, rx_rx) = mpsc::channel(1024);
    let sock = Arc::clone(&signaling);
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 65_536];
        loop {
            match sock.recv_from(&mut buf).await {
                Ok((n, from)) => {
                    if rx_tx.send((from, buf[..n].to_vec())).await.is_err() {
                        return;
                    }
                }
                Err(e) => tracing::debug!(%local, error = %e, "signaling socket receive error"),
            }
        }
    });
    let (links, stream_rx, upstream) = match streams {
        Some((l, rx, up)) => (Some(l), Some(rx), up),
        None => (None, None, None),
    };
    let driver = Driver {
        engine,
        local,
        signaling,
        reader,
        relay,
        router,
        events: ev_tx,
        app: sig_tx,
        media: media_tx,
        deregistered: false,
        alg,
        links,
        upstream,
    };
    let task = tokio::spawn(driver.run(cmd_rx, rx_rx, relay_events, stream_rx));
    Ok((
        ClientHandle { cmds: cmd_tx },
        ClientOutputs {
            events: ev_rx,
            signaling: sig_rx,
            media: media_rx,
            task,
        },
    ))
}

struct Driver {
    engine: Engine,
    local: SocketAddr,
    signaling: Arc<UdpSocket>,
    /// The signaling socket's reader task (it holds the socket).
    reader: JoinHandle<()>,
    relay: Relay,
    router: SharedRouter,
    events: mpsc::Sender<Event>,
    app: mpsc::Sender<Signaling>,
    media: mpsc::Sender<Media>,
    /// The engine reported [`Event::Deregistered`].
    deregistered: bool,
    alg: Option<Box<dyn ClientSignaling>>,
    /// Stream transports, when started with [`spawn_streaming`].
    links: Option<Links>,
    /// The signaling connection to the MPR, when the upstream is a stream.
    upstream: Option<UpstreamState>,
}

/// A shutdown in progress: its deadline and who waits for it.
struct Stopping {
    deadline: tokio::time::Instant,
    reply: oneshot::Sender<Deregistration>,
}

impl Driver {
    async fn run(
        mut self,
        mut cmds: mpsc::Receiver<Cmd>,
        mut sig_rx: mpsc::Receiver<(SocketAddr, Vec<u8>)>,
        mut relay_events: mpsc::Receiver<RelayEvent>,
        mut stream_rx: Option<mpsc::Receiver<StreamEvent>>,
    ) {
        let mut stopping: Option<Stopping> = None;
        let outcome = loop {
            let up_due = self
                .upstream
                .as_ref()
                .and_then(|u| [u.retry_at, u.next_ping].into_iter().flatten().min());
            let deadline = [
                self.engine
                    .poll_timeout()
                    .map(tokio::time::Instant::from_std),
                self.alg
                    .as_ref()
                    .and_then(|a| a.poll_timeout())
                    .map(tokio::time::Instant::from_std),
                stopping.as_ref().map(|s| s.deadline),
                up_due,
            ]
            .into_iter()
            .flatten()
            .min();
            tokio::select! {
                cmd = cmds.recv() => match cmd {
                    Some(Cmd::Shutdown(wait, reply)) => {
                        if stopping.is_some() {
                            // Already stopping: the first caller gets the outcome.
                            let _ = reply.send(Deregistration::Unconfirmed);
                        } else if self.engine.deregister(now()) {
                            let deadline = tokio::time::Instant::now() + wait;
                            stopping = Some(Stopping { deadline, reply });
                        } else {
                            self.drain().await;
                            break Some((reply, Deregistration::NotRegistered));
                        }
                    }
                    Some(c) => self.command(c).await,
                    None => break None,
                },
                Some((from, payload)) = sig_rx.recv() => {
                    let remote = self.router.inbound(self.local, from);
                    self.engine.handle_traffic(now(), self.local);
                    if wire::is_control(&payload) {
                        let _ = self.engine.handle_datagram(now(), Receive { local: self.local, remote, bytes: &payload, flow: Flow::UDP });
                    } else if let Some(alg) = &mut self.alg {
                        let mut ctx = LiveClient::new(&mut self.engine, &mut self.relay);
                        alg.handle_datagram(now(), &mut ctx, Receive { local: self.local, remote, bytes: &payload, flow: Flow::UDP });
                    } else if self.app.try_send(Signaling { local: self.local, remote, payload }).is_err() {
                        tracing::warn!(%remote, "signaling queue full: datagram dropped");
                    }
                }
                Some(ev) = relay_events.recv() => self.relay_event(ev),
                Some(ev) = next_event(&mut stream_rx) => self.stream_event(ev),
                () = sleep_until(deadline) => {
                    self.upstream_timers();
                    let now = now();
                    self.engine.handle_timeout(now);
                    if let Some(alg) = &mut self.alg
                        && alg.poll_timeout().is_some_and(|t| t <= now)
                    {
                        let mut ctx = LiveClient::new(&mut self.engine, &mut self.relay);
                        alg.handle_timeout(now, &mut ctx);
                    }
                }
            }
            self.drain().await;
            if let Some(s) = &stopping
                && (!self.engine.deregistering() || tokio::time::Instant::now() >= s.deadline)
            {
                let outcome = if self.deregistered {
                    Deregistration::Confirmed
                } else {
                    Deregistration::Unconfirmed
                };
                break stopping.take().map(|s| (s.reply, outcome));
            }
        };
        if let Some(l) = &self.links {
            l.streams.shutdown().await;
        }
        close(vec![self.reader], self.relay).await;
        drop(self.signaling);
        if let Some((reply, outcome)) = outcome {
            tracing::info!(?outcome, "client driver stopped");
            let _ = reply.send(outcome);
        }
    }

    fn relay_event(&mut self, ev: RelayEvent) {
        match ev {
            RelayEvent::Control {
                local,
                remote,
                payload,
            } => {
                let remote = self.router.inbound(local, remote);
                let _ = self.engine.handle_datagram(
                    now(),
                    Receive {
                        local,
                        remote,
                        bytes: &payload,
                        flow: Flow::UDP,
                    },
                );
            }
            RelayEvent::Report(r) => self.engine.handle_relay(now(), r),
            RelayEvent::Media {
                local,
                remote,
                payload,
            } => {
                let remote = self.router.inbound(local, remote);
                let m = Media {
                    local,
                    remote,
                    payload,
                };
                if self.media.try_send(m).is_err() {
                    tracing::debug!(%local, "media queue full or closed: datagram dropped");
                }
            }
        }
    }

    async fn command(&mut self, c: Cmd) {
        match c {
            Cmd::Open(req, reply) => {
                let mut ctx = LiveClient::new(&mut self.engine, &mut self.relay);
                let _ = reply.send(ctx.open_pinhole(now(), req));
            }
            Cmd::Close(id, reply) => {
                let _ = reply.send(self.engine.close_pinhole(id));
            }
            Cmd::Stats(reply) => {
                let _ = reply.send(self.engine.stats());
            }
            Cmd::Registered(reply) => {
                let _ = reply.send(self.engine.registered_pinhole());
            }
            Cmd::RelayCounters(reply) => {
                let _ = reply.send(self.relay.counters());
            }
            Cmd::AlgCounters(reply) => {
                let _ = reply.send(
                    self.alg
                        .iter()
                        .map(|a| (a.protocol(), a.counters()))
                        .collect(),
                );
            }
            Cmd::LinkCounters(reply) => {
                let _ = reply.send(self.links.as_ref().map(Links::counters).unwrap_or_default());
            }
            Cmd::DropUpstream(reply) => {
                let conn = self.upstream.as_ref().and_then(|u| u.conn);
                if let (Some(c), Some(l)) = (conn, &self.links) {
                    l.streams.close(c);
                }
                let _ = reply.send(conn.is_some());
            }
            Cmd::Send(remote, payload) => {
                self.engine.handle_traffic(now(), self.local);
                // The application's signaling for the MPR goes the way
                // the engine's does: up the connection when there is one.
                let cfg = self.engine.config();
                let flow = if remote == cfg.mpr {
                    Flow::over(cfg.upstream)
                } else {
                    Flow::UDP
                };
                let t = Transmit {
                    local: self.local,
                    remote,
                    payload,
                    flow,
                };
                self.transmit(t).await;
            }
            Cmd::SendMedia(m, reply) => {
                let r = self.send_media(&m);
                if r.is_ok() {
                    self.engine.handle_traffic(now(), m.local);
                }
                let _ = reply.send(r);
            }
            // Handled by the loop.
            Cmd::Shutdown(..) => {}
        }
    }

    fn send_media(&self, m: &Media) -> io::Result<()> {
        if m.local == self.local {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "media cannot leave from the signaling socket",
            ));
        }
        let to = self.router.outbound(m.local, m.remote)?;
        self.relay.send_from(m.local, to, &m.payload)
    }

    async fn drain(&mut self) {
        // An ALG answering an event queues more engine output: go round
        // until a pass moves nothing.
        while self.drain_once().await > 0 {}
    }

    async fn drain_once(&mut self) -> usize {
        let mut moved = 0;
        while let Some(c) = self.engine.poll_command() {
            moved += 1;
            // Behind a firewall simulator the outside party is reached
            // through a route; the relay must match and send to that.
            let c = match c {
                RelayCommand::MapLocal {
                    local,
                    outside,
                    inside,
                } => self
                    .router
                    .outbound(local, outside)
                    .map(|outside| RelayCommand::MapLocal {
                        local,
                        outside,
                        inside,
                    }),
                RelayCommand::DeliverLocal { local, outside } => self
                    .router
                    .outbound(local, outside)
                    .map(|outside| RelayCommand::DeliverLocal { local, outside }),
                other => Ok(other),
            };
            let c = match c {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "no route for a media mapping");
                    continue;
                }
            };
            if let Err(e) = self.relay.apply(c) {
                tracing::error!(command = ?c, error = %e, "relay command failed");
            }
        }
        while let Some(t) = self.engine.poll_transmit() {
            moved += 1;
            self.transmit(t).await;
        }
        while let Some(e) = self.engine.poll_event() {
            moved += 1;
            self.deregistered |= e == Event::Deregistered;
            if let Some(alg) = &mut self.alg {
                let mut ctx = LiveClient::new(&mut self.engine, &mut self.relay);
                alg.handle_event(now(), &mut ctx, &e);
            }
            if self.events.try_send(e).is_err() {
                tracing::debug!("event queue full or closed: event dropped");
            }
        }
        while let Some(t) = self.alg.as_mut().and_then(|a| a.poll_transmit()) {
            moved += 1;
            self.engine.handle_traffic(now(), t.local);
            self.transmit(t).await;
        }
        moved
    }

    /// Sends what the engine or the ALG queued, by its flow: up the
    /// signaling connection to the MPR, over a phone's connection inside,
    /// or as a datagram.
    async fn transmit(&mut self, t: Transmit) {
        if !t.flow.transport.is_stream() {
            return self.send(t.local, t.remote, &t.payload).await;
        }
        let mpr = self.engine.config().mpr;
        if t.remote == mpr
            && let Some(up) = &mut self.upstream
        {
            let dropped = match (up.conn, &mut self.links) {
                (Some(c), Some(l)) => l.streams.send(c, t.payload).err().map(|e| e.kind()),
                // Between connections: held for the next one, bounded.
                _ if up.pending.len() < up.cfg.max_pending => {
                    up.pending.push_back(t.payload);
                    None
                }
                _ => Some("too many held while reconnecting"),
            };
            if let Some(why) = dropped {
                if let Some(l) = &mut self.links {
                    l.unroutable += 1;
                }
                tracing::warn!(why, "signaling for the MPR dropped");
            }
            return;
        }
        let via = match self.router.outbound_tcp(t.local, t.remote) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(remote = %t.remote, error = %e, "no TCP route");
                return;
            }
        };
        match &mut self.links {
            Some(l) => l.send(t, via),
            None => tracing::warn!(remote = %t.remote, "no stream transports: message dropped"),
        }
    }

    /// Opens the upstream connection when its back-off ended, and pings it.
    fn upstream_timers(&mut self) {
        let now = tokio::time::Instant::now();
        let (Some(up), Some(links)) = (&mut self.upstream, &mut self.links) else {
            return;
        };
        if up.retry_at.is_some_and(|t| t <= now) {
            up.retry_at = None;
            let cfg = self.engine.config();
            let (transport, mpr, local) = (cfg.upstream, cfg.mpr, cfg.signaling);
            let opened = self
                .router
                .outbound_tcp(local, mpr)
                .map_err(|e| e.to_string())
                .and_then(|via| {
                    // Pings every k and their pongs: 2.5 k without a frame
                    // means the path is gone (a firewall forgot the
                    // connection without a reset), long before the
                    // server's idle limit.
                    let idle = up.cfg.keepalive.map(|k| k * 5 / 2);
                    links
                        .connect(transport, mpr, via, local, idle)
                        .map_err(str::to_owned)
                });
            match opened {
                Ok(c) => {
                    tracing::info!(%transport, %mpr, conn = %c, "opening the signaling connection to the MPR");
                    up.conn = Some(c);
                    for p in std::mem::take(&mut up.pending) {
                        if let Err(e) = links.streams.send(c, p) {
                            tracing::warn!(error = %e, "held signaling for the MPR dropped");
                        }
                    }
                }
                Err(why) => {
                    let wait = up.retry_later(now);
                    tracing::warn!(%transport, %mpr, why, retry_in = ?wait, "cannot open the signaling connection to the MPR");
                }
            }
        }
        if up.next_ping.is_some_and(|t| t <= now) {
            up.next_ping = up.cfg.keepalive.map(|k| now + k);
            if let Some(c) = up.conn
                && let Err(e) = links.streams.send(c, up.ping.to_vec())
            {
                tracing::debug!(error = %e, "keepalive not sent");
            }
        }
    }

    fn stream_event(&mut self, ev: StreamEvent) {
        let upstream = self.upstream.as_ref().and_then(|u| u.conn);
        match ev {
            StreamEvent::Message {
                conn,
                transport,
                local,
                remote,
                bytes,
            } => {
                tracing::trace!(%conn, %transport, %remote, len = bytes.len(), "stream message");
                let flow = Flow::conn(transport, conn);
                let (local, remote) = if Some(conn) == upstream {
                    self.engine.handle_traffic(now(), self.local);
                    (self.local, self.engine.config().mpr)
                } else {
                    (local, remote)
                };
                let rx = Receive {
                    local,
                    remote,
                    bytes: &bytes,
                    flow,
                };
                if wire::is_control(&bytes) {
                    let _ = self.engine.handle_datagram(now(), rx);
                } else if let Some(alg) = &mut self.alg {
                    let mut ctx = LiveClient::new(&mut self.engine, &mut self.relay);
                    alg.handle_datagram(now(), &mut ctx, rx);
                } else if self
                    .app
                    .try_send(Signaling {
                        local,
                        remote,
                        payload: bytes,
                    })
                    .is_err()
                {
                    tracing::warn!(%remote, "signaling queue full: message dropped");
                }
            }
            StreamEvent::Opened { conn, .. } if Some(conn) == upstream => {
                let Some(up) = &mut self.upstream else {
                    return;
                };
                up.backoff = up.cfg.backoff_min;
                up.next_ping = up.cfg.keepalive.map(|k| tokio::time::Instant::now() + k);
                tracing::info!(%conn, "signaling connection to the MPR open");
                // Over a connection that is open again, or the first one
                // after attempts that failed (the Registration sent on them
                // is gone, and a stream is not retransmitted): register now.
                let reopened = std::mem::replace(&mut up.opened_once, true);
                if reopened || std::mem::take(&mut up.lost) {
                    self.engine.handle_reconnect(now());
                }
            }
            StreamEvent::Closed { conn, reason, .. } if Some(conn) == upstream => {
                let Some(up) = &mut self.upstream else {
                    return;
                };
                up.conn = None;
                up.next_ping = None;
                up.lost = true;
                let wait = up.retry_later(tokio::time::Instant::now());
                tracing::warn!(%conn, reason = reason.kind(), retry_in = ?wait, "signaling connection to the MPR closed; reopening");
            }
            other => log_connection(&other),
        }
    }

    async fn send(&self, local: SocketAddr, remote: SocketAddr, payload: &[u8]) {
        let to = match self.router.outbound(local, remote) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(%local, %remote, error = %e, "no route");
                return;
            }
        };
        let r = if local == self.local {
            self.signaling.send_to(payload, to).await.map(|_| ())
        } else {
            self.relay.send_from(local, to, payload)
        };
        if let Err(e) = r {
            tracing::warn!(%local, %to, error = %e, "send failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use pinhole_core::framing::{Frame, FrameError, tpkt};

    use super::{PING, TPKT_KEEPALIVE, ping_for};

    /// A framing that takes CRLF keepalives (as SIP's does).
    #[allow(clippy::unnecessary_wraps)]
    fn crlf(buf: &[u8]) -> Result<Option<Frame>, FrameError> {
        Ok(buf.starts_with(b"\r\n").then_some(Frame::Keepalive(2)))
    }

    #[test]
    fn the_upstream_pings_the_way_its_framing_reads() {
        assert_eq!(ping_for(Some(tpkt)), TPKT_KEEPALIVE);
        assert_eq!(ping_for(Some(crlf)), PING);
        // No framing (a smart terminal without an ALG): as ever.
        assert_eq!(ping_for(None), PING);
    }
}
