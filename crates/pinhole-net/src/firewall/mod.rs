//! A userspace stateful NAT firewall on loopback sockets.
//!
//! [`FirewallSim`] stands for one corporate network's firewall. It lets
//! tests and the demo show a real pinhole, blocked and then open, with real
//! sockets and without root. The semantics are those of the simulated
//! firewall in `pinhole-testkit`, with sockets instead of a simulated
//! network:
//!
//! - **Mapping.** The first UDP datagram an inside host sends toward a
//!   remote creates a *mapping*: a public socket bound on
//!   [`SimConfig::public_ip`], one per mapping, as a real NAT allocates one
//!   public port per mapping. With
//!   [`MappingBehavior::EndpointIndependent`] (the default) an inside host
//!   has one mapping for all its remotes; with
//!   [`MappingBehavior::AddressAndPortDependent`] one per remote.
//! - **Filtering** is always address-and-port-dependent, like Linux
//!   conntrack: a datagram reaching a public socket passes inward only if
//!   the inside host has sent to exactly that remote `(ip, port)` through
//!   the mapping and that *filter entry* has not idled out. Everything else
//!   is dropped and counted by reason ([`Counters`]).
//! - **Idle timeout** per filter entry ([`SimConfig::udp_idle_timeout`]);
//!   outbound traffic refreshes it, inbound traffic too when
//!   [`SimConfig::inbound_refreshes`] is set. A mapping whose entries have
//!   all idled out is closed: its public port lingers for
//!   [`SimConfig::expired_linger`] (dropping and counting what arrives), and
//!   the inside host's next datagram creates a new mapping on a **new**
//!   public port.
//! - **TCP** ([`FirewallSim::route_tcp`]): connections from an inside host
//!   are proxied to the remote from a socket on the public IP; nothing ever
//!   listens on the public side, so an unsolicited inbound connection
//!   cannot reach the inside.
//!
//! # Addressing
//!
//! Everything is on loopback, so "inside" is a matter of addressing, not of
//! interfaces. An inside host `H` is a socket the test owns. It does not
//! send to a remote `R` directly but to its **route** to `R`,
//! `Ri = sim.route(H, R)`: an inside-facing socket on
//! [`SimConfig::inside_ip`], one per `(H, R)` (think of it as the default
//! gateway, with a port per destination because loopback has no routing).
//! Replies from `R` come back to `H` *from* `Ri`, so `H` sees each remote as
//! "its route to that remote":
//!
//! ```text
//!  inside host H          firewall simulator                         remote R
//!
//!  H ──to Ri──▶ Ri ──▶ mapping, filter entry (H, R) ──▶ P ──to R──▶ R   (R sees P)
//!  H ◀─from Ri─ Ri ◀── passes only for a live entry ◀── P ◀─from R─ R
//!
//!  Ri = sim.route(H, R)   on inside_ip, one per (H, R)
//!  P  = sim.public_addr(H) on public_ip, one per mapping
//! ```
//!
//! A remote that is itself an inside host of the same simulator (reached
//! through its public address) works too: that is hairpinning.
//!
//! # Tasks
//!
//! The simulator is a test tool, so it keeps the design simple: one task
//! per socket (each route, each public socket, each TCP listener, each
//! proxied TCP connection). A UDP task owns one receive buffer and
//! allocates nothing per datagram. All state sits in one table behind a
//! mutex that no task holds across an `await`. [`FirewallSim::shutdown`]
//! stops every task and waits for them; dropping the simulator aborts them.

mod config;
mod table;
mod tcp;
mod udp;

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

pub use config::{Counters, MappingBehavior, MappingInfo, SimConfig};

use config::check_loopback;
use table::Table;

/// How long [`FirewallSim::shutdown`] waits for its tasks before aborting
/// them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A running firewall simulator. See the [module docs](self).
///
/// Its methods other than [`start`](Self::start) and
/// [`shutdown`](Self::shutdown) are synchronous and may be called from any
/// thread: the tasks run on the runtime that started the simulator.
#[derive(Debug)]
pub struct FirewallSim {
    inner: Arc<Inner>,
    stop: watch::Sender<bool>,
}

/// What the tasks share.
#[derive(Debug)]
struct Inner {
    cfg: SimConfig,
    handle: Handle,
    table: Mutex<Table>,
    /// `(inside ip, remote)` → TCP route listener address.
    tcp_routes: Mutex<HashMap<(IpAddr, SocketAddr), SocketAddr>>,
    tasks: Mutex<JoinSet<()>>,
    /// Becomes `true` (or its sender is dropped) when the tasks must stop.
    stop: watch::Receiver<bool>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking task cannot leave the table half-updated in a way that
    // matters to a test tool; keep serving.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Inner {
    fn table(&self) -> MutexGuard<'_, Table> {
        lock(&self.table)
    }

    /// Spawns a task on the simulator's runtime, unless it is stopping.
    fn spawn(&self, fut: impl Future<Output = ()> + Send + 'static) {
        if *self.stop.borrow() {
            return;
        }
        let mut tasks = lock(&self.tasks);
        while tasks.try_join_next().is_some() {}
        tasks.spawn_on(fut, &self.handle);
    }

    /// A receiver that resolves [`stopped`] when the simulator stops.
    fn stop_signal(&self) -> watch::Receiver<bool> {
        self.stop.clone()
    }
}

/// Resolves once the simulator is stopping (or gone).
async fn stopped(rx: &mut watch::Receiver<bool>) {
    // An error means the sender was dropped: stop as well.
    let _ = rx.wait_for(|stop| *stop).await;
}

impl FirewallSim {
    /// Starts a simulator on the current tokio runtime.
    ///
    /// # Errors
    ///
    /// `InvalidInput` when an address in `cfg` is not loopback or the idle
    /// timeout is zero; the bind error when [`SimConfig::public_ip`] cannot
    /// be bound (for example `127.0.0.2` where only `127.0.0.1` exists).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub async fn start(cfg: SimConfig) -> io::Result<Self> {
        cfg.validate()?;
        // Fail now, not at the first datagram, if the public IP is unusable.
        drop(std::net::UdpSocket::bind((cfg.public_ip, 0))?);
        drop(std::net::UdpSocket::bind((cfg.inside_ip, 0))?);
        let (stop_tx, stop_rx) = watch::channel(false);
        let inner = Inner {
            table: Mutex::new(Table::new(
                cfg.udp_idle_timeout,
                cfg.mapping,
                cfg.inbound_refreshes,
            )),
            cfg,
            handle: Handle::current(),
            tcp_routes: Mutex::new(HashMap::new()),
            tasks: Mutex::new(JoinSet::new()),
            stop: stop_rx,
        };
        Ok(Self {
            inner: Arc::new(inner),
            stop: stop_tx,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SimConfig {
        &self.inner.cfg
    }

    /// The UDP route of inside host `inside` to `outside_dst`: the address
    /// `inside` sends to in order to reach `outside_dst` through the
    /// firewall, and from which it receives what `outside_dst` sends back
    /// (see [Addressing](self#addressing)). Created on first use; the same
    /// address afterwards. Only datagrams from `inside` itself are
    /// forwarded.
    ///
    /// # Errors
    ///
    /// `InvalidInput` when `inside` or `outside_dst` is not a loopback
    /// address of the family of [`SimConfig::inside_ip`] and
    /// [`SimConfig::public_ip`] respectively (the simulator never sends off
    /// the machine), or has port 0; the bind error otherwise.
    pub fn route(&self, inside: SocketAddr, outside_dst: SocketAddr) -> io::Result<SocketAddr> {
        self.check_route(inside, outside_dst)?;
        udp::route(&self.inner, inside, outside_dst)
    }

    /// The TCP route of inside host `inside` to `outside_dst`: a listening
    /// address; every connection to it from `inside` is proxied to
    /// `outside_dst` from a new socket on [`SimConfig::public_ip`] (which
    /// is what `outside_dst` sees as the peer). The bytes are copied both
    /// ways until each side has closed its direction. Connections from any
    /// other IP are reset and counted (`tcp_refused_foreign`). Created on
    /// first use; the same address afterwards.
    ///
    /// `inside` is an IP, not a socket address, because TCP clients
    /// usually connect from an ephemeral port.
    ///
    /// # Errors
    ///
    /// As for [`route`](Self::route).
    pub fn route_tcp(&self, inside: IpAddr, outside_dst: SocketAddr) -> io::Result<SocketAddr> {
        self.check_route(SocketAddr::new(inside, 1), outside_dst)?;
        tcp::route(&self.inner, inside, outside_dst)
    }

    fn check_route(&self, inside: SocketAddr, outside_dst: SocketAddr) -> io::Result<()> {
        check_loopback("inside", inside, self.inner.cfg.inside_ip)?;
        check_loopback("outside_dst", outside_dst, self.inner.cfg.public_ip)?;
        if inside.port() == 0 || outside_dst.port() == 0 {
            return Err(config::invalid(format!(
                "route {inside} → {outside_dst} has port 0"
            )));
        }
        Ok(())
    }

    /// A snapshot of the counters.
    pub fn counters(&self) -> Counters {
        self.inner.table().counters
    }

    /// The live UDP mappings with their live filter entries, sorted by
    /// inside host, then public address.
    pub fn mappings(&self) -> Vec<MappingInfo> {
        self.inner.table().mappings(Instant::now())
    }

    /// The public address of `inside`'s live UDP mapping (with
    /// address-and-port-dependent mapping, where it may have several, the
    /// oldest one).
    pub fn public_addr(&self, inside: SocketAddr) -> Option<SocketAddr> {
        self.inner.table().public_addr(Instant::now(), inside)
    }

    /// The public address through which `inside` reaches `remote`, if a
    /// live filter entry lets `remote` in.
    pub fn public_addr_for(&self, inside: SocketAddr, remote: SocketAddr) -> Option<SocketAddr> {
        self.inner
            .table()
            .public_addr_for(Instant::now(), inside, remote)
    }

    /// Stops every task and waits (a few seconds at most) until they have
    /// ended, so every socket of the simulator is closed when it returns.
    pub async fn shutdown(self) {
        self.stop.send_replace(true);
        let mut tasks = std::mem::take(&mut *lock(&self.inner.tasks));
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("firewall sim: tasks did not stop in time; aborting them");
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
    }
}

impl Drop for FirewallSim {
    fn drop(&mut self) {
        self.stop.send_replace(true);
        lock(&self.inner.tasks).abort_all();
    }
}
