//! The H.323 smart terminal of Fig. 16 on real sockets: no APS; the
//! terminal's host runs its own H.323 ALG (`pinhole_h323::alg::Client` in
//! terminal mode) on `pinhole-net`'s client driver beside the terminal.
//!
//! - The driver keeps one TCP connection to the MPR, opened from inside
//!   (kept alive with empty TPKTs within the firewall's TCP timeout), and
//!   registers the network (id, credential, domains) over it.
//! - The ALG listens on the host's ALG address ([`SmartConfig::alg`], also
//!   the engine's signaling socket) and on its H.245 pool
//!   ([`SmartConfig::h245_pool`]); the terminal (the runner of
//!   [`super::run`], over real loopback-internal TCP) sends its SETUP
//!   there as to a proxy and connects its H.245 to the pool addresses it
//!   is given. A SETUP from the MPR goes to the terminal's call-signalling
//!   address.
//! - **Media goes through the driver**: the ALG opens each media pinhole
//!   with CMPH from the terminal's own media port before its OLC, OLC Ack
//!   or fastStart leaves, so the driver's relay binds that port (and the
//!   next, RTCP). The terminal does not bind them: it sends its RTP and
//!   RTCP with `ClientHandle::send_media` to the MPR's relay addresses
//!   the ALG left in the messages, and counts what the relay port hands
//!   back on `ClientOutputs::media`.
//! - At the end the driver deregisters and stops.
//!
//! ```no_run
//! # async fn f() -> anyhow::Result<()> {
//! use pinhole_examples::h323::Config;
//! use pinhole_examples::h323::smart::{SmartConfig, run};
//! let bob = Config::callee("bob@corp2.example", "10.2.0.10:1720".parse()?, "10.2.0.10:6000".parse()?);
//! let cfg = SmartConfig::new(bob, "203.0.113.10:1720".parse()?, "corp2", b"corp2-secret");
//! println!("{}", run(cfg).await?.to_json());
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use pinhole_core::client::{self, Event};
use pinhole_core::types::Transport;
use pinhole_core::wire::Protocol;
use pinhole_h323::alg::{Client, ClientConfig};
use pinhole_net::driver::client::{self as driver, Deregistration};
use pinhole_net::driver::{Direct, Streaming};
use pinhole_net::relay::{Relay, RelayConfig};
use tokio::time::Instant;

use super::runner::{MediaPath, run_with};
use super::{Config, Report};

/// The ALG's default port on the terminal's IP.
pub const ALG_PORT: u16 = 1721;
/// The ALG's default H.245 listeners on the terminal's IP.
pub const H245_PORTS: (u16, u16) = (1741, 1748);

/// How long a stopping terminal waits for the MPR to confirm its
/// deregistration.
const DEREGISTER_WAIT: Duration = Duration::from_secs(2);

/// A smart terminal's configuration.
#[derive(Clone, Debug)]
pub struct SmartConfig {
    /// The terminal: alias, call-signalling and media addresses, call,
    /// mode, packets … (`via` is the ALG's address, set by [`run`]).
    pub terminal: Config,
    /// The MPR's H.323 address (its control port and TCP listener).
    pub mpr: SocketAddr,
    /// Our network's id at the MPR.
    pub network: String,
    /// Its shared secret.
    pub credential: Vec<u8>,
    /// Subscriber domains to claim (`corp1.example`).
    pub domains: Vec<String>,
    /// The ALG's address: the engine's signaling socket and the inside
    /// call-signalling listener the terminal sends its SETUP to.
    pub alg: SocketAddr,
    /// The ALG's H.245 listeners leased to the terminal.
    pub h245_pool: Vec<SocketAddr>,
    /// The firewall's UDP idle timeout (registration and pinholes are
    /// refreshed within it); `None`: the engine's default.
    pub firewall_idle: Option<Duration>,
    /// An empty TPKT goes up the connection to the MPR this often (below
    /// the firewall's TCP timeout).
    pub keepalive: Duration,
    /// How long to wait for the registration.
    pub register_within: Duration,
}

impl SmartConfig {
    /// The defaults: the ALG on the terminal's IP at [`ALG_PORT`], its
    /// H.245 pool at [`H245_PORTS`], no domains, a 25 s keepalive.
    pub fn new(terminal: Config, mpr: SocketAddr, network: &str, credential: &[u8]) -> Self {
        let ip = terminal.signal.ip();
        Self {
            mpr,
            network: network.into(),
            credential: credential.to_vec(),
            domains: Vec::new(),
            alg: SocketAddr::new(ip, ALG_PORT),
            h245_pool: (H245_PORTS.0..=H245_PORTS.1)
                .map(|p| SocketAddr::new(ip, p))
                .collect(),
            firewall_idle: None,
            keepalive: Duration::from_secs(25),
            register_within: Duration::from_secs(15),
            terminal,
        }
    }
}

fn seed32(seed: u64) -> [u8; 32] {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&seed.to_le_bytes());
    s[8..16].copy_from_slice(&(!seed).to_le_bytes());
    s
}

/// Starts the driver with the ALG, waits for the registration, runs the
/// terminal's one call with its media through the driver, deregisters,
/// and reports.
pub async fn run(cfg: SmartConfig) -> Result<Report> {
    let t = &cfg.terminal;
    if t.media.port() == 0 {
        bail!("the media address needs a fixed port");
    }
    if cfg.alg == t.signal {
        bail!("the ALG's address {} is the terminal's own", cfg.alg);
    }
    let sock = tokio::net::UdpSocket::bind(cfg.alg)
        .await
        .with_context(|| format!("binding the ALG's signaling socket {}", cfg.alg))?;
    let seed = seed32(t.seed ^ 0xa15_0000);
    let mut ccfg = client::Config::new(
        cfg.network.clone(),
        cfg.credential.clone(),
        Protocol::H323,
        cfg.alg,
        cfg.mpr,
        seed,
    );
    ccfg.domains.clone_from(&cfg.domains);
    // H.323's call signalling is TCP: it rides the connection to the MPR.
    ccfg.upstream = Transport::Tcp;
    if let Some(idle) = cfg.firewall_idle {
        ccfg.firewall_idle_timeout = idle;
    }
    let engine = client::Engine::new(ccfg, Instant::now().into_std())?;
    let (relay, relay_events) = Relay::start(RelayConfig {
        workers: 1,
        ..RelayConfig::default()
    })?;
    let mut alg = ClientConfig::terminal(cfg.alg, cfg.h245_pool.clone(), t.media.ip(), seed);
    alg.aliases = vec![(t.alias.clone(), t.signal)];
    alg.inside_default = Some(t.signal);
    let streams = driver::ClientStreams {
        streaming: Streaming::default(),
        upstream: driver::Upstream {
            keepalive: Some(cfg.keepalive),
            ..driver::Upstream::default()
        },
        // The terminal's SETUP comes to the signaling address over TCP.
        listen_tcp: true,
        listen_also: cfg.h245_pool.clone(),
        framer: None,
    };
    let (handle, mut out) = driver::spawn_streaming(
        engine,
        Arc::new(sock),
        relay,
        relay_events,
        Arc::new(Direct),
        Some(Box::new(Client::new(alg))),
        &streams,
    )
    .await
    .context("starting the client driver")?;

    // Registration first: the ALG has nowhere to send before it.
    let until = Instant::now() + cfg.register_within;
    let pinhole = loop {
        let ev = tokio::time::timeout_at(until, out.events.recv())
            .await
            .map_err(|_| {
                anyhow!(
                    "not registered with the MPR {} within {:?}",
                    cfg.mpr,
                    cfg.register_within
                )
            })?
            .ok_or_else(|| anyhow!("the client driver stopped"))?;
        match ev {
            Event::Registered { pinhole, .. } => break pinhole,
            Event::Alarm { failure, retry_in } => {
                tracing::warn!(?failure, ?retry_in, "registration failed");
            }
            other => tracing::debug!(event = ?other, "client event"),
        }
    };
    tracing::info!(network = %cfg.network, %pinhole, alg = %cfg.alg, "registered");

    // The driver's events and stray datagrams, logged while the call runs.
    let mut events = out.events;
    let mut signaling = out.signaling;
    let drain = tokio::spawn(async move {
        let mut open = true;
        loop {
            tokio::select! {
                e = events.recv(), if open => match e {
                    Some(Event::Alarm { failure, retry_in }) => {
                        tracing::warn!(?failure, ?retry_in, "registration alarm");
                    }
                    Some(Event::PinholeFailed { id, failure }) => {
                        tracing::warn!(?id, ?failure, "media pinhole failed");
                    }
                    Some(e) => tracing::debug!(event = ?e, "client event"),
                    None => open = false,
                },
                s = signaling.recv() => match s {
                    Some(s) => tracing::debug!(remote = %s.remote, len = s.payload.len(),
                        "datagram on the signaling socket: dropped"),
                    None => break,
                },
            }
        }
    });

    let mut terminal = cfg.terminal.clone();
    if terminal.call.is_some() {
        terminal.via = Some(cfg.alg);
    }
    let report = run_with(
        terminal,
        MediaPath::Driver {
            handle: handle.clone(),
            media: out.media,
        },
    )
    .await;

    match handle.shutdown(DEREGISTER_WAIT).await {
        Ok(Deregistration::Confirmed) => tracing::info!("deregistered"),
        Ok(d) => tracing::warn!(?d, "deregistration not confirmed"),
        Err(e) => tracing::warn!(error = %e, "graceful shutdown failed"),
    }
    drop(handle);
    let task = out.task;
    let abort = task.abort_handle();
    if tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .is_err()
    {
        abort.abort();
    }
    drain.abort();
    report
}
