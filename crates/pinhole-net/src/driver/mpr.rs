//! The MPR driver: control sockets (Registration, CMPH reserve, Binding),
//! the relay (CMPH binds, keepalives and media on relay ports), media
//! intents from the application, and the engine's timers.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use pinhole_core::alg::live::{LiveMpr, apply_commands};
use pinhole_core::alg::{AlgCounters, MprContext, MprSignaling};
use pinhole_core::intent::IntentKind;
use pinhole_core::intent::{MediaEndpoint, MediaIntent, MediaPlan, Origin};
use pinhole_core::mpr::{Engine, Event, IntentError, Route, Stats};
use std::collections::HashMap;

use pinhole_core::types::{CallKey, Flow, Receive, Side, Transmit, Transport};
use pinhole_core::wire::{self, Protocol};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::link::{LinkCounters, Links, Streaming, log_connection, next_event};
use super::{ask, now};
use crate::relay::{Relay, RelayCounters, RelayEvent};
use crate::stream::{Listen, StreamEvent};

/// A media intent with owned fields, to cross a channel.
#[derive(Clone, Debug)]
pub struct Intent {
    /// Offer, answer, modify, teardown.
    pub kind: IntentKind,
    /// The sending party.
    pub from: Side,
    /// Network id the message came from, or `None` for the public side.
    pub origin: Option<String>,
    /// Network id the message goes to, or `None` for the public side.
    pub toward: Option<String>,
    /// Its streams.
    pub endpoints: Vec<MediaEndpoint>,
}

/// A non-control datagram that arrived on a control socket (the
/// protocol's own signaling, for the ALG).
#[derive(Clone, Debug)]
pub struct Signaling {
    /// The control socket it arrived on.
    pub local: SocketAddr,
    /// Its source.
    pub remote: SocketAddr,
    /// Its bytes.
    pub payload: Vec<u8>,
}

enum Cmd {
    Intent(
        CallKey,
        Intent,
        oneshot::Sender<Result<MediaPlan, IntentError>>,
    ),
    Route(String, Protocol, oneshot::Sender<Option<Route>>),
    Stats(oneshot::Sender<Stats>),
    RelayCounters(oneshot::Sender<RelayCounters>),
    AlgCounters(oneshot::Sender<AlgCounters>),
    LinkCounters(oneshot::Sender<LinkCounters>),
    Send(SocketAddr, SocketAddr, Vec<u8>),
    Stop(oneshot::Sender<()>),
}

/// The application's handle on a running MPR.
#[derive(Clone)]
pub struct MprHandle {
    cmds: mpsc::Sender<Cmd>,
}

/// What the driver hands the application besides the handle.
pub struct MprOutputs {
    /// Engine events (registrations, pinholes, expiries).
    pub events: mpsc::Receiver<Event>,
    /// Signaling that arrived on the control sockets.
    pub signaling: mpsc::Receiver<Signaling>,
    /// The driver task; it ends when every handle is dropped or on
    /// [`MprHandle::stop`], after closing its sockets.
    pub task: JoinHandle<()>,
}

impl MprHandle {
    /// Plans a media intent (the ALG's call).
    pub async fn intent(
        &self,
        call: CallKey,
        intent: Intent,
    ) -> io::Result<Result<MediaPlan, IntentError>> {
        ask(&self.cmds, "MPR", |tx| Cmd::Intent(call, intent, tx)).await
    }

    /// A network's signaling route, if registered.
    pub async fn route(&self, network: &str, protocol: Protocol) -> io::Result<Option<Route>> {
        ask(&self.cmds, "MPR", |tx| {
            Cmd::Route(network.to_string(), protocol, tx)
        })
        .await
    }

    /// The engine's counters.
    pub async fn stats(&self) -> io::Result<Stats> {
        ask(&self.cmds, "MPR", Cmd::Stats).await
    }

    /// The relay's counters (packets, bytes, drops by reason).
    pub async fn relay_counters(&self) -> io::Result<RelayCounters> {
        ask(&self.cmds, "MPR", Cmd::RelayCounters).await
    }

    /// Each signaling ALG's counters, by protocol (empty without one).
    pub async fn alg_counters(&self) -> io::Result<AlgCounters> {
        ask(&self.cmds, "MPR", Cmd::AlgCounters).await
    }

    /// The stream transports' counters (all zero without streams).
    pub async fn link_counters(&self) -> io::Result<LinkCounters> {
        ask(&self.cmds, "MPR", Cmd::LinkCounters).await
    }

    /// Stops the MPR and returns once it has closed every socket (control
    /// and relay), so that a new MPR can bind the same addresses. Routes,
    /// legs and nonces are lost: clients notice at their next request (438)
    /// and register again (flows.md, "MPR restart").
    pub async fn stop(&self) -> io::Result<()> {
        ask(&self.cmds, "MPR", Cmd::Stop).await
    }

    /// Sends signaling from one of the control sockets (into a route's pinhole).
    pub async fn send_signaling(
        &self,
        local: SocketAddr,
        remote: SocketAddr,
        payload: Vec<u8>,
    ) -> io::Result<()> {
        self.cmds
            .send(Cmd::Send(local, remote, payload))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the MPR driver has stopped"))
    }
}

/// Starts the MPR on the given control sockets (already bound) and relay.
/// Non-control datagrams on the control sockets go to the application
/// ([`MprOutputs::signaling`]).
pub fn spawn(
    engine: Engine,
    controls: Vec<Arc<UdpSocket>>,
    relay: Relay,
    relay_events: mpsc::Receiver<RelayEvent>,
) -> io::Result<(MprHandle, MprOutputs)> {
    spawn_with(engine, controls, relay, relay_events, Vec::new())
}

/// A signaling ALG and the control socket it serves: every non-control
/// datagram that arrives on `at` goes to it.
pub struct MprAlg {
    /// One of the control sockets' addresses.
    pub at: SocketAddr,
    /// The ALG.
    pub alg: Box<dyn MprSignaling>,
    /// Stream listeners whose messages go to this ALG (and whose control
    /// messages, a network's Registration and CMPH reserves, to the
    /// engine): TCP usually on `at`'s address and port, TLS on its own.
    pub listen: Vec<(SocketAddr, Transport)>,
}

impl MprAlg {
    /// An ALG on the control socket `at`.
    pub fn new(at: SocketAddr, alg: Box<dyn MprSignaling>) -> Self {
        Self {
            at,
            alg,
            listen: Vec::new(),
        }
    }

    /// Also listens for `transport` (TCP or TLS) at `addr`
    /// ([`spawn_streaming`] opens it).
    pub fn listen(mut self, addr: SocketAddr, transport: Transport) -> Self {
        self.listen.push((addr, transport));
        self
    }
}

/// Like [`spawn`], with signaling ALGs (SIP, MGCP, …), each on its own
/// control socket, which plan media with the engine directly, in the
/// driver's own task. An ALG on an address that is not a control socket,
/// or two on one socket, is `InvalidInput`.
///
/// The driver also binds every address of each ALG's
/// [`MprSignaling::extra_addresses`] (H.248's gateway ports), one UDP
/// socket each: whatever arrives there goes to that ALG (control messages
/// included: those sockets are no control sockets), and a `Transmit`
/// whose `local` is one of them leaves from it. An extra address that is
/// also a control socket or another ALG's is `InvalidInput`; one that
/// cannot be bound is an error naming it.
pub fn spawn_with(
    engine: Engine,
    controls: Vec<Arc<UdpSocket>>,
    relay: Relay,
    relay_events: mpsc::Receiver<RelayEvent>,
    algs: Vec<MprAlg>,
) -> io::Result<(MprHandle, MprOutputs)> {
    if let Some(a) = algs.iter().find(|a| !a.listen.is_empty()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} ALG: stream listeners need spawn_streaming",
                a.alg.protocol().name()
            ),
        ));
    }
    start(engine, controls, relay, relay_events, algs, None)
}

/// Like [`spawn_with`], with stream transports (issue 13): each ALG's
/// [`MprAlg::listen`] addresses are bound (TLS with
/// [`Streaming::server_tls`]) and what arrives there is framed by the
/// ALG's [`MprSignaling::framer`] beside Pinhole's control messages. A
/// network that registers over a connection has its route point at that
/// connection: everything for it goes down it, and none is ever opened
/// toward it. Toward public peers the MPR reuses or opens connections
/// as the ALG's [`Flow`] asks.
///
/// An ALG without stream framing, or TLS without a server config, is
/// `InvalidInput`; a listener that cannot be bound is an error naming it.
pub async fn spawn_streaming(
    engine: Engine,
    controls: Vec<Arc<UdpSocket>>,
    relay: Relay,
    relay_events: mpsc::Receiver<RelayEvent>,
    algs: Vec<MprAlg>,
    streaming: &Streaming,
) -> io::Result<(MprHandle, MprOutputs)> {
    let (mut links, rx) = Links::new(streaming);
    let mut by_listener = HashMap::new();
    for (i, a) in algs.iter().enumerate() {
        let name = a.alg.protocol().name();
        let framer = a.alg.framer();
        links.frame(a.at, framer);
        for &(addr, transport) in &a.listen {
            let invalid = |why: &str| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{name} ALG: {transport} listener {addr}: {why}"),
                )
            };
            if framer.is_none() {
                return Err(invalid("the protocol has no stream framing"));
            }
            let tls = match transport {
                Transport::Tls => Some(
                    streaming
                        .server_tls
                        .clone()
                        .ok_or_else(|| invalid("no TLS certificate configured"))?,
                ),
                Transport::Tcp => None,
                Transport::Udp => return Err(invalid("not a stream transport")),
            };
            let bound = links
                .streams
                .listen(Listen {
                    addr,
                    transport,
                    tls,
                    framer,
                })
                .await
                .map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("{name} ALG: cannot listen for {transport} on {addr}: {e}"),
                    )
                })?;
            tracing::info!(protocol = name, %transport, listen = %bound, "stream listener open");
            links.frame(bound, framer);
            by_listener.insert(bound, i);
        }
    }
    start(
        engine,
        controls,
        relay,
        relay_events,
        algs,
        Some((links, rx, by_listener)),
    )
}

/// Stream state for [`start`]: the links, their events, and which ALG
/// each listener feeds.
type StreamParts = (
    Links,
    mpsc::Receiver<StreamEvent>,
    HashMap<SocketAddr, usize>,
);

fn start(
    engine: Engine,
    controls: Vec<Arc<UdpSocket>>,
    relay: Relay,
    relay_events: mpsc::Receiver<RelayEvent>,
    algs: Vec<MprAlg>,
    streams: Option<StreamParts>,
) -> io::Result<(MprHandle, MprOutputs)> {
    let (cmd_tx, cmd_rx) = mpsc::channel(1024);
    let (ev_tx, ev_rx) = mpsc::channel(4096);
    let (sig_tx, sig_rx) = mpsc::channel(4096);
    let (rx_tx, rx_rx) = mpsc::channel(4096);
    let mut locals = Vec::with_capacity(controls.len());
    for s in &controls {
        locals.push(s.local_addr()?);
    }
    for (i, a) in algs.iter().enumerate() {
        if !locals.contains(&a.at) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} ALG on {}: not a control socket",
                    a.alg.protocol().name(),
                    a.at
                ),
            ));
        }
        if algs[..i].iter().any(|b| b.at == a.at) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("two signaling ALGs on {}", a.at),
            ));
        }
    }
    let extra = bind_extras(&algs, &locals)?;
    let mut controls = controls;
    let mut extras = std::collections::HashMap::with_capacity(extra.len());
    for (local, sock, alg) in extra {
        extras.insert(local, alg);
        locals.push(local);
        controls.push(sock);
    }
    let mut readers = Vec::with_capacity(controls.len());
    for (s, &local) in controls.iter().zip(&locals) {
        // One reader per control socket: control traffic is light, and a
        // channel keeps the driver loop a single select.
        let (sock, tx) = (Arc::clone(s), rx_tx.clone());
        readers.push(tokio::spawn(async move {
            let mut buf = vec![0u8; 65_536];
            loop {
                match sock.recv_from(&mut buf).await {
                    Ok((n, from)) => {
                        if tx.send((local, from, buf[..n].to_vec())).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => tracing::debug!(%local, error = %e, "control socket receive error"),
                }
            }
        }));
    }
    let (links, stream_rx, by_listener) = match streams {
        Some((l, rx, m)) => (Some(l), Some(rx), m),
        None => (None, None, HashMap::new()),
    };
    let driver = Driver {
        engine,
        controls: locals.into_iter().zip(controls).collect(),
        readers,
        relay,
        events: ev_tx,
        signaling: sig_tx,
        algs,
        extras,
        links,
        by_listener,
    };
    let task = tokio::spawn(driver.run(cmd_rx, rx_rx, relay_events, stream_rx));
    Ok((
        MprHandle { cmds: cmd_tx },
        MprOutputs {
            events: ev_rx,
            signaling: sig_rx,
            task,
        },
    ))
}

struct Driver {
    engine: Engine,
    controls: Vec<(SocketAddr, Arc<UdpSocket>)>,
    /// The control sockets' reader tasks (each holds its socket).
    readers: Vec<JoinHandle<()>>,
    relay: Relay,
    events: mpsc::Sender<Event>,
    signaling: mpsc::Sender<Signaling>,
    algs: Vec<MprAlg>,
    /// The ALGs' extra addresses (bound among `controls`) → the ALG's index.
    extras: std::collections::HashMap<SocketAddr, usize>,
    /// Stream transports, when started with [`spawn_streaming`].
    links: Option<Links>,
    /// Each stream listener's address → the ALG it feeds.
    by_listener: HashMap<SocketAddr, usize>,
}

/// Binds every ALG's extra addresses: (address, socket, ALG index).
fn bind_extras(
    algs: &[MprAlg],
    controls: &[SocketAddr],
) -> io::Result<Vec<(SocketAddr, Arc<UdpSocket>, usize)>> {
    let mut out: Vec<(SocketAddr, Arc<UdpSocket>, usize)> = Vec::new();
    for (i, a) in algs.iter().enumerate() {
        let name = a.alg.protocol().name();
        for addr in a.alg.extra_addresses() {
            if controls.contains(&addr) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{name} ALG: extra address {addr} is a control socket"),
                ));
            }
            if out.iter().any(|(b, _, _)| *b == addr) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{name} ALG: extra address {addr} is listed twice"),
                ));
            }
            let sock = std::net::UdpSocket::bind(addr)
                .and_then(|s| {
                    s.set_nonblocking(true)?;
                    UdpSocket::from_std(s)
                })
                .map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("{name} ALG: cannot bind extra address {addr}: {e}"),
                    )
                })?;
            out.push((addr, Arc::new(sock), i));
        }
    }
    Ok(out)
}

impl Driver {
    async fn run(
        mut self,
        mut cmds: mpsc::Receiver<Cmd>,
        mut control_rx: mpsc::Receiver<(SocketAddr, SocketAddr, Vec<u8>)>,
        mut relay_events: mpsc::Receiver<RelayEvent>,
        mut stream_rx: Option<mpsc::Receiver<StreamEvent>>,
    ) {
        let stopped = loop {
            let alg_due = self.algs.iter().filter_map(|a| a.alg.poll_timeout()).min();
            let deadline = [self.engine.poll_timeout(), alg_due]
                .into_iter()
                .flatten()
                .min()
                .map(tokio::time::Instant::from_std);
            tokio::select! {
                cmd = cmds.recv() => match cmd {
                    Some(Cmd::Stop(reply)) => break Some(reply),
                    Some(c) => self.command(c).await,
                    None => break None,
                },
                Some((local, remote, payload)) = control_rx.recv() => {
                    if let Some(a) = self.extras.get(&local).and_then(|&i| self.algs.get_mut(i)) {
                        let mut ctx = LiveMpr::new(&mut self.engine, &mut self.relay);
                        a.alg.handle_datagram(now(), &mut ctx, Receive { local, remote, bytes: &payload, flow: Flow::UDP });
                    } else if wire::is_control(&payload) {
                        let _ = self.engine.handle_datagram(now(), Receive { local, remote, bytes: &payload, flow: Flow::UDP });
                    } else if let Some(a) = self.algs.iter_mut().find(|a| a.at == local) {
                        let mut ctx = LiveMpr::new(&mut self.engine, &mut self.relay);
                        a.alg.handle_datagram(now(), &mut ctx, Receive { local, remote, bytes: &payload, flow: Flow::UDP });
                    } else if self.signaling.try_send(Signaling { local, remote, payload }).is_err() {
                        tracing::warn!(%local, %remote, "signaling queue full: datagram dropped");
                    }
                }
                Some(ev) = next_event(&mut stream_rx) => self.stream_event(ev),
                Some(ev) = relay_events.recv() => match ev {
                    RelayEvent::Control { local, remote, payload } => {
                        let _ = self.engine.handle_datagram(now(), Receive { local, remote, bytes: &payload, flow: Flow::UDP });
                    }
                    RelayEvent::Report(r) => self.engine.handle_relay(now(), r),
                    // The MPR never asks for delivery.
                    RelayEvent::Media { .. } => {}
                },
                () = sleep_until(deadline) => {
                    let now = now();
                    self.engine.handle_timeout(now);
                    for a in &mut self.algs {
                        if a.alg.poll_timeout().is_some_and(|t| t <= now) {
                            let mut ctx = LiveMpr::new(&mut self.engine, &mut self.relay);
                            a.alg.handle_timeout(now, &mut ctx);
                        }
                    }
                }
            }
            self.drain().await;
        };
        if let Some(l) = &self.links {
            l.streams.shutdown().await;
        }
        close(self.readers, self.relay).await;
        drop(self.controls);
        if let Some(reply) = stopped {
            let _ = reply.send(());
        }
        tracing::info!("MPR driver stopped; sockets closed");
    }

    async fn command(&mut self, c: Cmd) {
        match c {
            Cmd::Intent(call, i, reply) => {
                let origin = i.origin.as_deref().map_or(Origin::Public, Origin::Network);
                let toward = i.toward.as_deref().map_or(Origin::Public, Origin::Network);
                let intent = MediaIntent {
                    kind: i.kind,
                    from: i.from,
                    origin,
                    toward,
                    endpoints: &i.endpoints,
                    stranger: None,
                };
                let plan =
                    LiveMpr::new(&mut self.engine, &mut self.relay).plan(now(), &call, &intent);
                self.drain().await;
                let _ = reply.send(plan);
            }
            Cmd::Route(network, protocol, reply) => {
                let _ = reply.send(self.engine.route(&network, protocol));
            }
            Cmd::Stats(reply) => {
                let _ = reply.send(self.engine.stats());
            }
            Cmd::RelayCounters(reply) => {
                let _ = reply.send(self.relay.counters());
            }
            Cmd::AlgCounters(reply) => {
                let _ = reply.send(
                    self.algs
                        .iter()
                        .map(|a| (a.alg.protocol(), a.alg.counters()))
                        .collect(),
                );
            }
            Cmd::LinkCounters(reply) => {
                let _ = reply.send(self.links.as_ref().map(Links::counters).unwrap_or_default());
            }
            Cmd::Send(local, remote, payload) => self.send(local, remote, &payload).await,
            // Handled by the loop.
            Cmd::Stop(_) => {}
        }
    }

    async fn drain(&mut self) {
        // The CloseLeg an open failure produces is applied in the next round.
        while apply_commands(now(), &mut self.engine, &mut self.relay) > 0 {}
        while let Some(t) = self.engine.poll_transmit() {
            self.transmit(t).await;
        }
        for i in 0..self.algs.len() {
            while let Some(t) = self.algs[i].alg.poll_transmit() {
                self.transmit(t).await;
            }
        }
        while let Some(e) = self.engine.poll_event() {
            if let (Event::RouteMoved { from, to, .. }, Some(l)) = (&e, &self.links)
                && from != to
            {
                // A network registered over a new connection: its old one
                // (if it still looks open here) carries nothing any more.
                for t in [Transport::Tcp, Transport::Tls] {
                    if let Some(c) = l.streams.find(t, *from) {
                        tracing::info!(conn = %c, %from, %to, "closing a network's replaced signaling connection");
                        l.streams.close(c);
                    }
                }
            }
            if self.events.try_send(e).is_err() {
                tracing::debug!("event queue full or closed: event dropped");
            }
        }
    }

    /// A message from a stream connection: control messages to the
    /// engine (with the connection as their flow, so a network's route
    /// points at it), the rest to the listener's ALG.
    fn stream_event(&mut self, ev: StreamEvent) {
        match ev {
            StreamEvent::Message {
                conn,
                transport,
                local,
                remote,
                bytes,
            } => {
                tracing::trace!(%conn, %transport, %remote, len = bytes.len(), "stream message");
                let rx = Receive {
                    local,
                    remote,
                    bytes: &bytes,
                    flow: Flow::conn(transport, conn),
                };
                if wire::is_control(&bytes) {
                    let _ = self.engine.handle_datagram(now(), rx);
                } else if let Some(a) = self
                    .by_listener
                    .get(&local)
                    .and_then(|&i| self.algs.get_mut(i))
                {
                    let mut ctx = LiveMpr::new(&mut self.engine, &mut self.relay);
                    a.alg.handle_datagram(now(), &mut ctx, rx);
                }
            }
            other => log_connection(&other),
        }
    }

    /// Sends what an engine or ALG queued, by its flow.
    async fn transmit(&mut self, t: Transmit) {
        if !t.flow.transport.is_stream() {
            return self.send(t.local, t.remote, &t.payload).await;
        }
        match &mut self.links {
            // The MPR opens connections toward public peers only: a flow
            // naming a connection (a network's, a phone's) is never
            // replaced by one the MPR opens.
            Some(l) => {
                let via = t.remote;
                l.send(t, via);
            }
            None => {
                tracing::warn!(remote = %t.remote, transport = %t.flow.transport, "no stream transports: message dropped");
            }
        }
    }

    async fn send(&self, local: SocketAddr, remote: SocketAddr, payload: &[u8]) {
        let r = match self.controls.iter().find(|(a, _)| *a == local) {
            Some((_, sock)) => sock.send_to(payload, remote).await.map(|_| ()),
            None => self.relay.send_from(local, remote, payload),
        };
        if let Err(e) = r {
            tracing::warn!(%local, %remote, error = %e, "send failed");
        }
    }
}

/// Ends the socket reader tasks (dropping their sockets) and the relay
/// (closing its sockets), so the addresses are free when this returns.
pub(crate) async fn close(readers: Vec<JoinHandle<()>>, relay: Relay) {
    for r in readers {
        r.abort();
        // Cancelled, or ended on its own: either way its socket is dropped.
        let _ = r.await;
    }
    // Joining the worker threads blocks; keep it off the runtime's threads.
    match tokio::task::spawn_blocking(move || relay.shutdown()).await {
        Ok(()) => {}
        Err(e) if e.is_panic() => tracing::error!("relay shutdown panicked"),
        // The runtime is going away (the application did not stop the
        // driver first): the process's end takes the threads.
        Err(_) => tracing::debug!("relay shutdown cancelled: the runtime is stopping"),
    }
}

/// Sleeps until `deadline`, or forever without one.
pub(crate) async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
