//! The in-process deployment pieces every protocol's firewall-simulator
//! tests share: a [`FirewallSim`] per corporate network ([`firewall`]),
//! the router an APS uses behind it ([`Lan`]: through the simulator to
//! the outside, straight to the hosts of its own network), and bounded
//! waits on the drivers' state ([`wait_registered`], [`wait_legs`]).
//!
//! ```
//! use std::net::{IpAddr, SocketAddr};
//! use std::sync::Arc;
//! use pinhole_net::driver::Router;
//! use pinhole_tests::sim::{Lan, firewall};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let ip = |s: &str| s.parse::<IpAddr>().expect("literal");
//! let sim = firewall(ip("127.0.0.1"), ip("127.0.0.1")).await?;
//! let lan = Lan::new(Arc::clone(&sim), [ip("127.0.0.1")]);
//! let aps: SocketAddr = "127.0.0.1:40000".parse().expect("literal");
//! let mg: SocketAddr = "127.0.0.1:40001".parse().expect("literal");
//! // A host of the network is reached directly.
//! assert_eq!(lan.outbound(aps, mg)?, mg);
//! # Ok(())
//! # }
//! ```

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pinhole_net::driver::client::ClientHandle;
use pinhole_net::driver::mpr::MprHandle;
use pinhole_net::driver::{Router, SharedRouter, SimRouter};
use pinhole_net::firewall::{FirewallSim, SimConfig};

/// How often the waits below look again.
const POLL: Duration = Duration::from_millis(20);

/// The router of an APS (or any inside host) behind a firewall
/// simulator: datagrams to the network's own hosts go straight to them
/// on the LAN, everything else through the simulator's routes. An inside
/// gateway must see its media come from the port B its session
/// description names, and its signaling from the APS it was told is its
/// call agent or MGC, not from a firewall's public address.
pub struct Lan {
    sim: SimRouter,
    hosts: Vec<IpAddr>,
}

impl Lan {
    /// A router over `sim` for a network whose hosts are on `hosts`.
    pub fn new(sim: Arc<FirewallSim>, hosts: impl IntoIterator<Item = IpAddr>) -> Self {
        Self {
            sim: SimRouter::new(sim),
            hosts: hosts.into_iter().collect(),
        }
    }

    /// [`Lan::new`], shared as the drivers take it.
    pub fn shared(sim: Arc<FirewallSim>, hosts: impl IntoIterator<Item = IpAddr>) -> SharedRouter {
        Arc::new(Self::new(sim, hosts))
    }
}

impl Router for Lan {
    fn outbound(&self, local: SocketAddr, dst: SocketAddr) -> io::Result<SocketAddr> {
        if self.hosts.contains(&dst.ip()) {
            return Ok(dst);
        }
        self.sim.outbound(local, dst)
    }

    fn inbound(&self, local: SocketAddr, from: SocketAddr) -> SocketAddr {
        self.sim.inbound(local, from)
    }
}

/// Starts a firewall simulator with its routes on `inside` and its
/// mappings on `public`, the rest [`SimConfig::default`] (30 s idle
/// timeout, endpoint-independent mapping).
///
/// # Errors
///
/// As [`FirewallSim::start`]: an address that is not loopback or cannot
/// be bound.
pub async fn firewall(inside: IpAddr, public: IpAddr) -> io::Result<Arc<FirewallSim>> {
    Ok(Arc::new(
        FirewallSim::start(SimConfig {
            inside_ip: inside,
            public_ip: public,
            ..SimConfig::default()
        })
        .await?,
    ))
}

/// Waits until the client (an APS) has registered its signaling pinhole
/// with the MPR; its public address.
///
/// # Errors
///
/// `TimedOut` after `within`; the driver's error if it has stopped.
pub async fn wait_registered(client: &ClientHandle, within: Duration) -> io::Result<SocketAddr> {
    let until = Instant::now() + within;
    loop {
        if let Some(p) = client.registered_pinhole().await? {
            return Ok(p);
        }
        if Instant::now() > until {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("not registered within {within:?}"),
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until the MPR has exactly `n` relay legs open (0: every leg
/// freed).
///
/// # Errors
///
/// `TimedOut` after `within`, naming how many are open; the driver's
/// error if it has stopped.
pub async fn wait_legs(mpr: &MprHandle, n: u64, within: Duration) -> io::Result<()> {
    let until = Instant::now() + within;
    loop {
        let open = mpr.stats().await?.legs_open;
        if open == n {
            return Ok(());
        }
        if Instant::now() > until {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{open} relay legs open after {within:?}, not {n}"),
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}
