//! The smart H.248 media gateway of Fig. 14 on real sockets: a client
//! engine registers the ALG's H.248 socket with the MPR's H.248 control
//! address, and runs [`pinhole_h248::alg::Aps`] in its smart gateway mode
//! as the driver's ALG. The gateway ([`Gateway`]) sits beside it on a
//! socket of its own (the same IP, a port the OS picks) and uses the ALG
//! as its MGC: its ServiceChange goes through the ALG and the MPR to the
//! MGC, the MGC's requests come back the same way, and its Add reply
//! waits in the ALG until the media pinhole has been opened (CMPH) from
//! the gateway's RTP port, which the driver's relay binds. [`SmartMg`]
//! then sends test RTP from each termination's port to its `Remote` (the
//! MPR relay address) and counts what arrives.
//!
//! Nothing here decides about pinholes: that is the ALG's, in the
//! library; this file only wires it and the gateway to sockets.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use pinhole_core::alg::counter;
use pinhole_core::client::{self, Event};
use pinhole_core::ports::PortRange;
use pinhole_core::wire::Protocol;
use pinhole_h248::alg::{Aps, ApsConfig};
use pinhole_net::driver::SharedRouter;
use pinhole_net::driver::client::{self as driver, ClientHandle, ClientOutputs, Media};
use pinhole_net::relay::{Relay, RelayConfig};
use tokio::net::UdpSocket;
use tokio::time::Instant;

use super::mg::{Gateway, MgConfig, MgEvent, Termination};
use crate::rtp::{self, Tally};

/// How often the ServiceChange is sent again until the MGC answers.
const SC_EVERY: Duration = Duration::from_secs(1);
/// How often at most (the run's `--secs` bounds it too).
const SC_TRIES: u32 = 20;

/// What a smart gateway needs.
#[derive(Clone, Debug)]
pub struct SmartMgConfig {
    /// The ALG's H.248 socket, registered with the MPR (port 0 picks one).
    pub h248: SocketAddr,
    /// The MPR's H.248 control address (its `[h248] local`).
    pub mpr: SocketAddr,
    /// Its network's id at the MPR.
    pub network: String,
    /// The network's shared secret.
    pub credential: Vec<u8>,
    /// The gateway's `mId`.
    pub mid: String,
    /// The address its RTP ports are on.
    pub media_ip: IpAddr,
    /// Its RTP ports, one pair per termination.
    pub media_ports: PortRange,
    /// The firewall's UDP idle timeout, if known (the registration and
    /// the pinholes are refreshed within it).
    pub firewall_idle: Option<Duration>,
    /// RTP packets per termination at most (`None`: while it lives).
    pub packets: Option<u32>,
    /// Seeds the engine, the ALG, the transaction ids and the RTP SSRC.
    pub seed: u64,
}

/// A running smart gateway.
pub struct SmartMg {
    handle: ClientHandle,
    out: ClientOutputs,
    /// The gateway's own socket; it talks to the ALG only.
    sock: UdpSocket,
    /// The ALG's socket (the registered one).
    alg: SocketAddr,
    gw: Gateway,
    registered: Option<SocketAddr>,
    /// Relay addresses whose media pinholes opened: a termination sends
    /// once its `Remote` is one (nothing leaves before its CMPH).
    open: HashSet<SocketAddr>,
    packets: Option<u32>,
    sc_sent: u32,
    next_sc: Instant,
    ssrc: u32,
    seq: u16,
    /// Media for no termination of ours.
    stray: Tally,
    buf: Vec<u8>,
}

/// The tokio clock as the engines take it.
fn now() -> std::time::Instant {
    Instant::now().into_std()
}

impl SmartMg {
    /// Binds both H.248 sockets and starts the client engine (which
    /// registers at once) with the ALG.
    pub async fn start(cfg: SmartMgConfig, router: SharedRouter) -> Result<Self> {
        let alg_sock = UdpSocket::bind(cfg.h248)
            .await
            .with_context(|| format!("binding the H.248 socket {}", cfg.h248))?;
        let alg = alg_sock.local_addr()?;
        let sock = UdpSocket::bind(SocketAddr::new(alg.ip(), 0))
            .await
            .with_context(|| format!("binding the gateway's socket on {}", alg.ip()))?;
        let mg = sock.local_addr()?;
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&cfg.seed.to_le_bytes());
        let mut ccfg = client::Config::new(
            cfg.network.clone(),
            cfg.credential.clone(),
            Protocol::H248,
            alg,
            cfg.mpr,
            seed,
        );
        if let Some(idle) = cfg.firewall_idle {
            ccfg.firewall_idle_timeout = idle;
        }
        let engine = client::Engine::new(ccfg, now())?;
        // The ALG's own stream of keys, apart from the engine's.
        seed[31] ^= 0x48;
        let acfg = ApsConfig {
            // The gateway beside it, known from the start (it never
            // moves or expires).
            gateways: vec![(cfg.mid.clone(), mg)],
            ..ApsConfig::terminal(alg, cfg.media_ip, seed)
        };
        let (relay, relay_events) = Relay::start(RelayConfig {
            workers: 1,
            ..RelayConfig::default()
        })?;
        let (handle, out) = driver::spawn_with(
            engine,
            Arc::new(alg_sock),
            relay,
            relay_events,
            router,
            Some(Box::new(Aps::new(acfg))),
        )?;
        let gw = Gateway::new(MgConfig {
            mid: cfg.mid,
            media_ip: cfg.media_ip,
            media_ports: cfg.media_ports,
            first_transaction: 1 + (cfg.seed % 1_000_000) as u32,
        });
        Ok(Self {
            handle,
            out,
            sock,
            alg,
            gw,
            registered: None,
            open: HashSet::new(),
            packets: cfg.packets,
            sc_sent: 0,
            next_sc: Instant::now(),
            ssrc: 0x4832_0000 ^ (cfg.seed as u32 & 0xffff),
            seq: 0,
            stray: Tally::default(),
            buf: vec![0; 65_536],
        })
    }

    /// The ALG's H.248 socket (registered with the MPR).
    pub fn h248_addr(&self) -> SocketAddr {
        self.alg
    }

    /// The SSRC of the RTP we send.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The client driver's handle (counters, registration).
    pub fn client(&self) -> &ClientHandle {
        &self.handle
    }

    /// The gateway's terminations, subtracted ones too.
    pub fn terminations(&self) -> &[Termination] {
        self.gw.terminations()
    }

    /// The MGC answered the ServiceChange.
    pub fn announced(&self) -> bool {
        self.gw.registered()
    }

    /// The gateway's next event (ServiceChange answered, Add, Modify,
    /// Subtract).
    pub fn poll_event(&mut self) -> Option<MgEvent> {
        self.gw.poll_event()
    }

    /// All RTP sent.
    pub fn sent(&self) -> Tally {
        let mut t = Tally::default();
        for x in self.gw.terminations() {
            add(&mut t, &x.sent);
        }
        t
    }

    /// All media that arrived, for a termination or not.
    pub fn received(&self) -> Tally {
        let mut t = self.stray.clone();
        for x in self.gw.terminations() {
            add(&mut t, &x.received);
        }
        t
    }

    /// The ALG's media pinholes asked for and failed.
    pub async fn pinholes(&self) -> Result<(u64, u64)> {
        let c = self.handle.alg_counters().await?;
        Ok((
            counter(&c, Protocol::H248, "pinholes"),
            counter(&c, Protocol::H248, "pinhole_failures"),
        ))
    }

    /// Waits until the H.248 socket is registered; the signaling pinhole.
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

    /// Runs for `d` (or until `done` holds, looked at after every input):
    /// announces the gateway until the MGC answers, answers the MGC,
    /// sends a round of RTP every `interval` and takes what arrives.
    pub async fn run_for(
        &mut self,
        d: Duration,
        interval: Duration,
        done: impl Fn(&Self) -> bool,
    ) -> Result<()> {
        let until = Instant::now() + d;
        let mut next_rtp = Instant::now();
        while Instant::now() < until && !done(self) {
            let t = Instant::now();
            if self.registered.is_some()
                && !self.gw.registered()
                && t >= self.next_sc
                && self.sc_sent < SC_TRIES
            {
                self.sc_sent += 1;
                self.next_sc = t + SC_EVERY;
                let sc = self.gw.service_change().to_vec();
                self.sock.send_to(&sc, self.alg).await?;
            }
            if t >= next_rtp {
                self.send_round().await?;
                next_rtp += interval;
            }
            let mut wake = next_rtp.min(until);
            if !self.gw.registered() && self.sc_sent < SC_TRIES {
                wake = wake.min(self.next_sc);
            }
            self.step(wake).await?;
        }
        Ok(())
    }

    async fn send_round(&mut self) -> Result<()> {
        let limit = self.packets.unwrap_or(u32::MAX);
        for t in self.gw.sending() {
            let Some(remote) = t.remote else {
                continue;
            };
            if !self.open.contains(&remote) || t.sent.packets >= u64::from(limit) {
                continue;
            }
            let payload = rtp::packet(self.ssrc, self.seq);
            self.seq = self.seq.wrapping_add(1);
            let sent = self
                .handle
                .send_media(Media {
                    local: t.media,
                    remote,
                    payload: payload.clone(),
                })
                .await;
            match sent {
                Ok(()) => t.sent.add(&payload),
                // The ALG closes the termination's socket when it sees the
                // Subtract, a moment before the gateway does: not an error.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    tracing::debug!(media = %t.media, "media socket gone (subtracted)");
                }
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("sending RTP from {} to {remote}", t.media));
                }
            }
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
                    Event::PinholeOpened { relay, .. } => {
                        self.open.insert(relay);
                    }
                    Event::Alarm { failure, retry_in } => {
                        tracing::warn!(?failure, ?retry_in, "registration failed");
                    }
                    Event::PinholeFailed { id, failure } => {
                        tracing::warn!(?id, ?failure, "media pinhole failed");
                    }
                    _ => {}
                }
            }
            r = self.sock.recv_from(&mut self.buf) => {
                let (n, from) = r.context("receiving on the gateway's socket")?;
                // Only the ALG beside it is the gateway's MGC.
                if from == self.alg
                    && let Some(reply) = self.gw.handle(self.buf.get(..n).unwrap_or_default())
                {
                    self.sock.send_to(&reply, self.alg).await?;
                }
            }
            // The ALG takes every H.248 datagram; anything here is stray.
            Some(sig) = self.out.signaling.recv() => {
                tracing::debug!(remote = %sig.remote, "stray datagram on the H.248 socket");
            }
            Some(m) = self.out.media.recv() => match self.gw.termination_at(m.local) {
                Some(t) => t.receive(m.remote, &m.payload),
                None => self.stray.add(&m.payload),
            },
            () = tokio::time::sleep_until(until) => {}
        }
        Ok(())
    }
}

/// Adds tally `b` into `a`.
fn add(a: &mut Tally, b: &Tally) {
    a.packets += b.packets;
    a.bytes += b.bytes;
    a.intact += b.intact;
    for s in &b.ssrcs {
        if !a.ssrcs.contains(s) {
            a.ssrcs.push(*s);
        }
    }
}
