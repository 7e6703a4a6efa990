//! Drivers: thin loops that put the sans-IO engines of `pinhole-core` on
//! real sockets. Each waits on its sockets, the relay's events, its command
//! channel and the engine's next timeout; feeds exactly one input to the
//! engine; then drains every output queue (transmits to sockets, relay
//! commands to the relay, events to the application). No protocol decision
//! lives here.

pub mod client;
mod link;
pub mod mpr;

pub use link::{LinkCounters, ServerConfigSource, Streaming};

use std::net::SocketAddr;
use std::sync::Arc;

/// Where a datagram really goes, and where an arriving one really came from.
///
/// On a real network this is the identity. Behind the userspace firewall
/// simulator an inside host must send to its *route* toward a destination,
/// and replies arrive from that route; a [`Router`] translates both ways so
/// the engine sees true addresses.
pub trait Router: Send + Sync {
    /// The address to send to from `local` to reach `dst`.
    fn outbound(&self, local: SocketAddr, dst: SocketAddr) -> std::io::Result<SocketAddr>;
    /// The true source of a datagram that arrived at `local` from `from`.
    fn inbound(&self, local: SocketAddr, from: SocketAddr) -> SocketAddr;
    /// Where to connect from `local`'s address to reach `dst` over TCP.
    fn outbound_tcp(&self, local: SocketAddr, dst: SocketAddr) -> std::io::Result<SocketAddr> {
        let _ = local;
        Ok(dst)
    }
}

/// The identity router of a real network.
#[derive(Clone, Copy, Debug, Default)]
pub struct Direct;

impl Router for Direct {
    fn outbound(&self, _local: SocketAddr, dst: SocketAddr) -> std::io::Result<SocketAddr> {
        Ok(dst)
    }

    fn inbound(&self, _local: SocketAddr, from: SocketAddr) -> SocketAddr {
        from
    }
}

/// A shared router.
pub type SharedRouter = Arc<dyn Router>;

/// Sends a request to a driver task and waits for its answer.
pub(crate) async fn ask<C, T>(
    cmds: &tokio::sync::mpsc::Sender<C>,
    who: &'static str,
    make: impl FnOnce(tokio::sync::oneshot::Sender<T>) -> C,
) -> std::io::Result<T> {
    let gone = || {
        std::io::Error::new(
            std::io::ErrorKind::BrokenPipe,
            format!("the {who} driver has stopped"),
        )
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    cmds.send(make(tx)).await.map_err(|_| gone())?;
    rx.await.map_err(|_| gone())
}

/// Converts tokio's clock to the `std` instant the engines take.
pub(crate) fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// Routes through a [`crate::firewall::FirewallSim`]: inside hosts send to
/// their route toward each destination, and replies from a route are
/// reported as coming from the destination behind it.
pub struct SimRouter {
    sim: Arc<crate::firewall::FirewallSim>,
    reverse: std::sync::Mutex<std::collections::HashMap<(SocketAddr, SocketAddr), SocketAddr>>,
}

impl SimRouter {
    /// A router over a running simulator.
    pub fn new(sim: Arc<crate::firewall::FirewallSim>) -> Self {
        Self {
            sim,
            reverse: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }
}

impl Router for SimRouter {
    fn outbound(&self, local: SocketAddr, dst: SocketAddr) -> std::io::Result<SocketAddr> {
        let route = self.sim.route(local, dst)?;
        // A poisoned lock only means another thread panicked mid-insert;
        // the map itself is still usable.
        let mut map = self
            .reverse
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.insert((local, route), dst);
        Ok(route)
    }

    fn outbound_tcp(&self, local: SocketAddr, dst: SocketAddr) -> std::io::Result<SocketAddr> {
        self.sim.route_tcp(local.ip(), dst)
    }

    fn inbound(&self, local: SocketAddr, from: SocketAddr) -> SocketAddr {
        let map = self
            .reverse
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(&(local, from)).copied().unwrap_or(from)
    }
}
