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
use pinhole_core::types::Receive;
use pinhole_core::wire;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::mpr::{Signaling, close, sleep_until};
use super::{SharedRouter, ask, now};
use crate::relay::{Relay, RelayCounters, RelayEvent};

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

    /// Sends signaling from the signaling socket (it counts as pinhole traffic).
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
    };
    let task = tokio::spawn(driver.run(cmd_rx, rx_rx, relay_events));
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
    ) {
        let mut stopping: Option<Stopping> = None;
        let outcome = loop {
            let deadline = [
                self.engine
                    .poll_timeout()
                    .map(tokio::time::Instant::from_std),
                self.alg
                    .as_ref()
                    .and_then(|a| a.poll_timeout())
                    .map(tokio::time::Instant::from_std),
                stopping.as_ref().map(|s| s.deadline),
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
                        let _ = self.engine.handle_datagram(now(), Receive { local: self.local, remote, bytes: &payload, flow: Default::default() });
                    } else if let Some(alg) = &mut self.alg {
                        let mut ctx = LiveClient::new(&mut self.engine, &mut self.relay);
                        alg.handle_datagram(now(), &mut ctx, Receive { local: self.local, remote, bytes: &payload, flow: Default::default() });
                    } else if self.app.try_send(Signaling { local: self.local, remote, payload }).is_err() {
                        tracing::warn!(%remote, "signaling queue full: datagram dropped");
                    }
                }
                Some(ev) = relay_events.recv() => self.relay_event(ev),
                () = sleep_until(deadline) => {
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
                        flow: Default::default(),
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
            Cmd::Send(remote, payload) => {
                self.engine.handle_traffic(now(), self.local);
                self.send(self.local, remote, &payload).await;
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
            self.send(t.local, t.remote, &t.payload).await;
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
            self.send(t.local, t.remote, &t.payload).await;
        }
        moved
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
