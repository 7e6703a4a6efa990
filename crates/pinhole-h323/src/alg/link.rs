//! What both H.323 ALGs keep of their connections: a leg's hop, and the
//! H.245 listeners leased to the side that must connect to one.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use pinhole_core::alg::Outbox;
use pinhole_core::types::{Flow, Receive, Side, Transmit};

/// One hop of a leg: where its frames go and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Hop {
    pub(crate) local: SocketAddr,
    pub(crate) remote: SocketAddr,
    pub(crate) flow: Flow,
}

impl Hop {
    /// Back the way `rx` came.
    pub(crate) fn of(rx: &Receive<'_>) -> Self {
        Self {
            local: rx.local,
            remote: rx.remote,
            flow: rx.flow,
        }
    }

    pub(crate) fn send(&self, out: &mut Outbox, payload: Vec<u8>) {
        out.send(Transmit {
            local: self.local,
            remote: self.remote,
            payload,
            flow: self.flow,
        });
    }

    /// The key a connection's frames are found by.
    pub(crate) fn conn_key(&self) -> ConnKey {
        (self.local, self.remote, self.flow.conn.map_or(0, |c| c.0))
    }
}

/// A connection: both ends and the driver's name for it (the ends tell
/// apart what a simulated network carries as datagrams).
pub(crate) type ConnKey = (SocketAddr, SocketAddr, u64);

/// The key of the connection `rx` came on.
pub(crate) fn conn_key(rx: &Receive<'_>) -> ConnKey {
    (rx.local, rx.remote, rx.flow.conn.map_or(0, |c| c.0))
}

/// Who a lease is for: a call and a side.
pub(crate) type Owner = (u64, Side);

/// A pool of H.245 listener addresses, each leased to one call side
/// until that side connects from the IP it is expected at.
#[derive(Debug)]
pub(crate) struct Leases {
    pool: Vec<SocketAddr>,
    leased: HashMap<SocketAddr, (Owner, Option<IpAddr>, Instant)>,
}

/// Why a connection on a listener is not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Nobody holds a lease of it.
    NotLeased,
    /// It came from another IP than the lease's side.
    WrongIp(IpAddr),
}

impl Leases {
    pub(crate) fn new(pool: Vec<SocketAddr>) -> Self {
        Self {
            pool,
            leased: HashMap::new(),
        }
    }

    /// True for one of the pool's listeners.
    pub(crate) fn is_listener(&self, local: SocketAddr) -> bool {
        self.pool.contains(&local)
    }

    /// Leases a free listener to `owner`, who must connect from `ip` (any
    /// IP when `None`) before `until`.
    pub(crate) fn lease(
        &mut self,
        owner: Owner,
        ip: Option<IpAddr>,
        until: Instant,
    ) -> Option<SocketAddr> {
        let free = self
            .pool
            .iter()
            .find(|a| !self.leased.contains_key(a))
            .copied()?;
        self.leased.insert(free, (owner, ip, until));
        Some(free)
    }

    /// A connection arrived on `local` from `remote`: its owner, and the
    /// lease is spent.
    pub(crate) fn accept(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Result<Owner, Refused> {
        let &(owner, ip, _) = self.leased.get(&local).ok_or(Refused::NotLeased)?;
        if let Some(ip) = ip
            && ip != remote.ip()
        {
            return Err(Refused::WrongIp(ip));
        }
        self.leased.remove(&local);
        Ok(owner)
    }

    /// Returns a lease.
    pub(crate) fn release(&mut self, at: SocketAddr) {
        self.leased.remove(&at);
    }

    /// True while `at` is leased.
    pub(crate) fn is_leased(&self, at: SocketAddr) -> bool {
        self.leased.contains_key(&at)
    }

    /// Returns the leases past their time.
    pub(crate) fn expire(&mut self, now: Instant) {
        self.leased.retain(|_, (_, _, until)| *until > now);
    }

    /// When the next lease runs out.
    pub(crate) fn next_expiry(&self) -> Option<Instant> {
        self.leased.values().map(|l| l.2).min()
    }

    /// Leases held now.
    pub(crate) fn len(&self) -> usize {
        self.leased.len()
    }

    /// Any listener (for a side that is connected already and will not
    /// connect again).
    pub(crate) fn any(&self) -> Option<SocketAddr> {
        self.pool.first().copied()
    }
}
