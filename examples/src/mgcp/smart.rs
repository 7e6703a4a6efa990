//! The smart MGCP gateway of Fig. 10 (no APS) on real sockets:
//! [`pinhole_mgcp::alg::SmartGateway`] as the signaling ALG of
//! `pinhole-net`'s client driver. The engine registers the MGCP socket with
//! the MPR's MGCP control port; the call agent's commands arrive through
//! that signaling pinhole and the gateway opens a media pinhole with CMPH
//! before it answers a CRCX. [`SmartGw`] sends test RTP from each
//! connection's port through its pinhole to the relay address the call
//! agent gave it, and counts what arrives.
//!
//! The ALG runs in the driver's task; the application reads its
//! connections through a shared handle (a short lock per look).

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use pinhole_core::client::{self, Event};
use pinhole_core::ports::PortRange;
use pinhole_core::wire::Protocol;
use pinhole_mgcp::alg::{Connection, SmartGateway, SmartGatewayConfig, Stats};
use pinhole_net::driver::SharedRouter;
use pinhole_net::driver::client::{self as driver, ClientHandle, ClientOutputs, Media};
use pinhole_net::relay::{Relay, RelayConfig};
use pinhole_testkit::shared::{Shared, lock};
use tokio::time::Instant;

use crate::rtp::{self, Tally};

/// What a smart gateway needs.
#[derive(Clone, Debug)]
pub struct SmartGwConfig {
    /// Its MGCP socket (port 0 picks one).
    pub mgcp: SocketAddr,
    /// The MPR's MGCP control address.
    pub mpr: SocketAddr,
    /// Its network's id at the MPR.
    pub network: String,
    /// The network's shared secret.
    pub credential: Vec<u8>,
    /// Its domain: the call agent names `aaln/1@DOMAIN`.
    pub domain: String,
    /// The address its RTP ports are on.
    pub media_ip: IpAddr,
    /// Its RTP ports, one pair per connection.
    pub media_ports: PortRange,
    /// The firewall's UDP idle timeout, if known (pinholes are refreshed
    /// within it).
    pub firewall_idle: Option<Duration>,
    /// Seeds the engine, the connection ids and the RTP SSRC.
    pub seed: u64,
}

/// A running smart gateway.
pub struct SmartGw {
    gw: Arc<Mutex<SmartGateway>>,
    handle: ClientHandle,
    out: ClientOutputs,
    mgcp: SocketAddr,
    endpoint: String,
    registered: Option<SocketAddr>,
    ssrc: u32,
    seq: u16,
    sent: Tally,
    received: Tally,
}

/// The tokio clock as the engines take it.
fn now() -> std::time::Instant {
    Instant::now().into_std()
}

impl SmartGw {
    /// Binds the MGCP socket and starts the client engine (which registers
    /// at once) with the gateway as its ALG.
    pub async fn start(cfg: SmartGwConfig, router: SharedRouter) -> Result<Self> {
        let sock = tokio::net::UdpSocket::bind(cfg.mgcp)
            .await
            .with_context(|| format!("binding the MGCP socket {}", cfg.mgcp))?;
        let mgcp = sock.local_addr()?;
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&cfg.seed.to_le_bytes());
        let mut ccfg = client::Config::new(
            cfg.network.clone(),
            cfg.credential.clone(),
            Protocol::Mgcp,
            mgcp,
            cfg.mpr,
            seed,
        );
        if let Some(idle) = cfg.firewall_idle {
            ccfg.firewall_idle_timeout = idle;
        }
        let engine = client::Engine::new(ccfg, now())?;
        // The gateway's own stream of ids and ports, apart from the engine's.
        seed[31] ^= 0x5a;
        // The driver runs the gateway; the application reads its
        // connections through the handle (a short lock per look).
        let (driven, gw) = Shared::new(SmartGateway::new(SmartGatewayConfig::new(
            mgcp,
            cfg.media_ip,
            cfg.media_ports,
            seed,
        )));
        let (relay, relay_events) = Relay::start(RelayConfig {
            workers: 1,
            ..RelayConfig::default()
        })?;
        let (handle, out) = driver::spawn_with(
            engine,
            Arc::new(sock),
            relay,
            relay_events,
            router,
            Some(Box::new(driven)),
        )?;
        Ok(Self {
            gw,
            handle,
            out,
            mgcp,
            endpoint: format!("aaln/1@{}", cfg.domain),
            registered: None,
            ssrc: 0x6d67_0000 ^ (cfg.seed as u32 & 0xffff),
            seq: 0,
            sent: Tally::default(),
            received: Tally::default(),
        })
    }

    /// Our MGCP socket.
    pub fn mgcp_addr(&self) -> SocketAddr {
        self.mgcp
    }

    /// The endpoint the call agent names: `aaln/1@DOMAIN`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The SSRC of the RTP we send.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The client driver's handle (counters, registration).
    pub fn client(&self) -> &ClientHandle {
        &self.handle
    }

    /// The gateway's connections now.
    pub fn connections(&self) -> Vec<Connection> {
        lock(&self.gw).connections().cloned().collect()
    }

    /// The gateway's counters.
    pub fn stats(&self) -> Stats {
        lock(&self.gw).stats()
    }

    /// The RTP we sent.
    pub fn sent(&self) -> &Tally {
        &self.sent
    }

    /// The RTP that arrived on our connections' ports.
    pub fn received(&self) -> &Tally {
        &self.received
    }

    /// Waits until the MGCP socket is registered; the signaling pinhole.
    pub async fn wait_registered(&mut self, within: Duration) -> Result<SocketAddr> {
        let until = Instant::now() + within;
        while self.registered.is_none() {
            if Instant::now() >= until {
                bail!("not registered with the MPR within {within:?}");
            }
            self.step(until).await?;
        }
        self.registered.ok_or_else(|| anyhow!("not registered"))
    }

    /// Waits until some connection has a pinhole and a remote address to
    /// send to.
    pub async fn wait_connected(&mut self, within: Duration) -> Result<Connection> {
        let until = Instant::now() + within;
        loop {
            if let Some(c) = self.ready().into_iter().next() {
                return Ok(c);
            }
            if Instant::now() >= until {
                bail!("no connection with a remote address within {within:?}");
            }
            // Connections change inside the driver's task: look again soon.
            self.step(until.min(Instant::now() + Duration::from_millis(10)))
                .await?;
        }
    }

    /// Connections that can send: a pinhole and a remote address.
    fn ready(&self) -> Vec<Connection> {
        lock(&self.gw)
            .connections()
            .filter(|c| c.pinhole.is_some() && c.remote.is_some())
            .cloned()
            .collect()
    }

    /// Sends up to `packets` RTP packets per connection, one round every
    /// `interval`, while taking what arrives; a round with no connection
    /// ready sends nothing but still counts (the call may be gone).
    /// Returns how many packets left.
    pub async fn talk(&mut self, packets: u32, interval: Duration) -> Result<u64> {
        let before = self.sent.packets;
        let mut next = Instant::now();
        for _ in 0..packets {
            self.send_round().await?;
            next += interval;
            while Instant::now() < next {
                self.step(next).await?;
            }
        }
        Ok(self.sent.packets - before)
    }

    /// Runs for `d`: sends a round of RTP every `interval` to each ready
    /// connection and takes what arrives.
    pub async fn run_for(&mut self, d: Duration, interval: Duration) -> Result<()> {
        let until = Instant::now() + d;
        let mut next = Instant::now();
        while Instant::now() < until {
            if Instant::now() >= next {
                self.send_round().await?;
                next += interval;
            }
            self.step(next.min(until)).await?;
        }
        Ok(())
    }

    /// Keeps taking what arrives for `d`.
    pub async fn listen(&mut self, d: Duration) -> Result<()> {
        let until = Instant::now() + d;
        while Instant::now() < until {
            self.step(until).await?;
        }
        Ok(())
    }

    async fn send_round(&mut self) -> Result<()> {
        for c in self.ready() {
            let Some(remote) = c.remote else {
                continue;
            };
            let payload = rtp::packet(self.ssrc, self.seq);
            self.seq = self.seq.wrapping_add(1);
            let sent = self
                .handle
                .send_media(Media {
                    local: c.media,
                    remote,
                    payload: payload.clone(),
                })
                .await;
            if let Err(e) = sent {
                // A DLCX handled in the driver's task meanwhile closes the
                // connection's socket: the call is gone, not an error.
                if !self.ready().iter().any(|r| r.media == c.media) {
                    continue;
                }
                return Err(e).with_context(|| format!("sending RTP from {} to {remote}", c.media));
            }
            self.sent.add(&payload);
        }
        Ok(())
    }

    /// Deregisters and stops the driver (its sockets are closed on return).
    pub async fn shutdown(self) -> Result<()> {
        self.handle.shutdown(Duration::from_secs(2)).await?;
        self.out.task.await?;
        Ok(())
    }

    /// Waits for one input (or `until`) and takes it.
    async fn step(&mut self, until: Instant) -> Result<()> {
        tokio::select! {
            ev = self.out.events.recv() => {
                match ev.ok_or_else(|| anyhow!("the client driver stopped"))? {
                    Event::Registered { pinhole, .. } => self.registered = Some(pinhole),
                    Event::Alarm { failure, retry_in } => {
                        tracing::warn!(?failure, ?retry_in, "registration failed");
                    }
                    Event::PinholeFailed { id, failure } => {
                        tracing::warn!(?id, ?failure, "media pinhole failed");
                    }
                    _ => {}
                }
            }
            // The ALG takes every MGCP datagram; anything here is stray.
            Some(sig) = self.out.signaling.recv() => {
                tracing::debug!(remote = %sig.remote, "stray datagram on the MGCP socket");
            }
            Some(m) = self.out.media.recv() => self.received.add(&m.payload),
            () = tokio::time::sleep_until(until) => {}
        }
        Ok(())
    }
}
