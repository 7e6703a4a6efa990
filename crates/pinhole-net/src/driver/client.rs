//! The client driver (APS or smart terminal): the signaling socket carries
//! Registration and the protocol's own signaling; media sockets live in the
//! relay, which delivers their control messages here and forwards media by
//! the engine's B ↔ A mappings.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use pinhole_core::client::{ClientError, Engine, Event, PinholeId, PinholeRequest, Stats};
use pinhole_core::relay::RelayCommand;
use pinhole_core::types::Receive;
use pinhole_core::wire::{self, RtcpMode};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::mpr::{Signaling, sleep_until};
use super::{SharedRouter, ask, now};
use crate::relay::{Relay, RelayEvent};

enum Cmd {
    Open(
        PinholeRequest,
        oneshot::Sender<Result<PinholeId, ClientError>>,
    ),
    Close(PinholeId, oneshot::Sender<Result<(), ClientError>>),
    Stats(oneshot::Sender<Stats>),
    Registered(oneshot::Sender<Option<SocketAddr>>),
    Send(SocketAddr, Vec<u8>),
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
    /// The driver task; it ends when every handle is dropped.
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

    /// Sends signaling from the signaling socket (it counts as pinhole traffic).
    pub async fn send_signaling(&self, remote: SocketAddr, payload: Vec<u8>) -> io::Result<()> {
        self.cmds
            .send(Cmd::Send(remote, payload))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client driver has stopped"))
    }
}

/// Starts a client on its (bound) signaling socket, a relay for its media
/// sockets, and a router.
pub fn spawn(
    engine: Engine,
    signaling: Arc<UdpSocket>,
    relay: Relay,
    relay_events: mpsc::Receiver<RelayEvent>,
    router: SharedRouter,
) -> io::Result<(ClientHandle, ClientOutputs)> {
    let local = signaling.local_addr()?;
    if local != engine.config().signaling {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the signaling socket is not bound to the engine's configured signaling address",
        ));
    }
    let (cmd_tx, cmd_rx) = mpsc::channel(1024);
    let (ev_tx, ev_rx) = mpsc::channel(1024);
    let (sig_tx, sig_rx) = mpsc::channel(4096);
    let (rx_tx, rx_rx) = mpsc::channel(1024);
    let sock = Arc::clone(&signaling);
    tokio::spawn(async move {
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
        relay,
        router,
        events: ev_tx,
        app: sig_tx,
    };
    let task = tokio::spawn(driver.run(cmd_rx, rx_rx, relay_events));
    Ok((
        ClientHandle { cmds: cmd_tx },
        ClientOutputs {
            events: ev_rx,
            signaling: sig_rx,
            task,
        },
    ))
}

struct Driver {
    engine: Engine,
    local: SocketAddr,
    signaling: Arc<UdpSocket>,
    relay: Relay,
    router: SharedRouter,
    events: mpsc::Sender<Event>,
    app: mpsc::Sender<Signaling>,
}

impl Driver {
    async fn run(
        mut self,
        mut cmds: mpsc::Receiver<Cmd>,
        mut sig_rx: mpsc::Receiver<(SocketAddr, Vec<u8>)>,
        mut relay_events: mpsc::Receiver<RelayEvent>,
    ) {
        loop {
            let deadline = self
                .engine
                .poll_timeout()
                .map(tokio::time::Instant::from_std);
            tokio::select! {
                cmd = cmds.recv() => match cmd {
                    Some(c) => self.command(c).await,
                    None => break,
                },
                Some((from, payload)) = sig_rx.recv() => {
                    let remote = self.router.inbound(self.local, from);
                    self.engine.handle_traffic(now(), self.local);
                    if wire::is_control(&payload) {
                        let _ = self.engine.handle_datagram(now(), Receive { local: self.local, remote, bytes: &payload });
                    } else if self.app.try_send(Signaling { local: self.local, remote, payload }).is_err() {
                        tracing::warn!(%remote, "signaling queue full: datagram dropped");
                    }
                }
                Some(ev) = relay_events.recv() => {
                    if let RelayEvent::Control { local, remote, payload } = ev {
                        let remote = self.router.inbound(local, remote);
                        let _ = self.engine.handle_datagram(now(), Receive { local, remote, bytes: &payload });
                    }
                }
                () = sleep_until(deadline) => self.engine.handle_timeout(now()),
            }
            self.drain().await;
        }
        self.relay.shutdown();
    }

    async fn command(&mut self, c: Cmd) {
        match c {
            Cmd::Open(req, reply) => {
                // The media socket must exist before the CMPH leaves from it.
                let mut r = self.relay.bind(req.local);
                if r.is_ok() && req.rtcp == RtcpMode::Pair {
                    let rtcp = SocketAddr::new(req.local.ip(), req.local.port().wrapping_add(1));
                    r = self.relay.bind(rtcp);
                }
                if let Err(e) = r {
                    tracing::error!(local = %req.local, error = %e, "cannot bind the media socket");
                }
                let _ = reply.send(self.engine.open_pinhole(now(), req));
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
            Cmd::Send(remote, payload) => {
                self.engine.handle_traffic(now(), self.local);
                self.send(self.local, remote, &payload).await;
            }
        }
    }

    async fn drain(&mut self) {
        while let Some(c) = self.engine.poll_command() {
            let c = match c {
                // Behind a firewall simulator the outside party is reached
                // through a route; the relay must match and send to that.
                RelayCommand::MapLocal {
                    local,
                    outside,
                    inside,
                } => match self.router.outbound(local, outside) {
                    Ok(outside) => RelayCommand::MapLocal {
                        local,
                        outside,
                        inside,
                    },
                    Err(e) => {
                        tracing::error!(%local, error = %e, "no route for a media mapping");
                        continue;
                    }
                },
                other => other,
            };
            if let Err(e) = self.relay.apply(c) {
                tracing::error!(command = ?c, error = %e, "relay command failed");
            }
        }
        while let Some(t) = self.engine.poll_transmit() {
            self.send(t.local, t.remote, &t.payload).await;
        }
        while let Some(e) = self.engine.poll_event() {
            if self.events.try_send(e).is_err() {
                tracing::debug!("event queue full or closed: event dropped");
            }
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
