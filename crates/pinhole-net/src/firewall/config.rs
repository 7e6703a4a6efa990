//! The simulator's configuration and the plain data it reports.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// How the simulator picks the public port of an outbound UDP flow
/// (RFC 4787 §4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum MappingBehavior {
    /// One public port per inside `(ip, port)`, whatever the remote
    /// ("endpoint-independent mapping", what most corporate NATs do).
    #[default]
    EndpointIndependent,
    /// One public port per inside `(ip, port)` *and* remote `(ip, port)`
    /// ("symmetric NAT").
    AddressAndPortDependent,
}

/// Configuration of a [`FirewallSim`](super::FirewallSim).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimConfig {
    /// Where the inside-facing sockets (the routes) are bound. Must be a
    /// loopback address.
    pub inside_ip: IpAddr,
    /// Where the public sockets (one per mapping) and the outbound TCP
    /// connections are bound. Must be a loopback address; use one distinct
    /// from the hosts' own (for example `127.0.0.2` while they use
    /// `127.0.0.1`) so the remotes' view of "the firewall" is unmistakable.
    pub public_ip: IpAddr,
    /// A UDP filter entry (one inside host ↔ one remote `(ip, port)`) with no
    /// traffic for this long is gone; a mapping whose entries are all gone is
    /// closed.
    pub udp_idle_timeout: Duration,
    /// Mapping behaviour; filtering is always address-and-port-dependent.
    pub mapping: MappingBehavior,
    /// Whether inbound packets that pass refresh their entry's idle timer
    /// (Linux conntrack does); when `false` only outbound traffic keeps a
    /// pinhole open.
    pub inbound_refreshes: bool,
    /// How long the public port of a closed mapping stays bound after the
    /// mapping expired. Datagrams that reach it meanwhile are dropped and
    /// counted (`dropped_expired` from a remote that had been allowed in,
    /// `dropped_no_mapping` from anyone else); the port is also kept out of
    /// reuse, so a new mapping surely gets a new port. After that the socket
    /// is closed and the kernel answers such datagrams itself.
    pub expired_linger: Duration,
    /// How long an outbound TCP connection attempt may take.
    pub tcp_connect_timeout: Duration,
}

impl Default for SimConfig {
    /// Inside `127.0.0.1`, public `127.0.0.2`, 30 s idle timeout (the
    /// wire-format §5 default), endpoint-independent mapping, inbound
    /// refreshes, 30 s linger, 5 s TCP connect timeout.
    fn default() -> Self {
        Self {
            inside_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            public_ip: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)),
            udp_idle_timeout: Duration::from_secs(30),
            mapping: MappingBehavior::EndpointIndependent,
            inbound_refreshes: true,
            expired_linger: Duration::from_secs(30),
            tcp_connect_timeout: Duration::from_secs(5),
        }
    }
}

impl SimConfig {
    /// Checks that both addresses are loopback and the idle timeout is not
    /// zero.
    pub(super) fn validate(&self) -> io::Result<()> {
        for (what, ip) in [("inside_ip", self.inside_ip), ("public_ip", self.public_ip)] {
            if !ip.is_loopback() {
                return Err(invalid(format!("{what} {ip} is not a loopback address")));
            }
        }
        if self.udp_idle_timeout.is_zero() {
            return Err(invalid("udp_idle_timeout is zero".to_owned()));
        }
        Ok(())
    }
}

/// An `InvalidInput` error.
pub(super) fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// Checks that `addr` is a usable loopback address of the same family as
/// `like`.
pub(super) fn check_loopback(what: &str, addr: SocketAddr, like: IpAddr) -> io::Result<()> {
    if !addr.ip().is_loopback() {
        return Err(invalid(format!("{what} {addr} is not a loopback address")));
    }
    if addr.is_ipv4() != like.is_ipv4() {
        return Err(invalid(format!(
            "{what} {addr} is not of the same address family as {like}"
        )));
    }
    Ok(())
}

/// What the simulator did, counted since it started.
///
/// "Inbound" is toward the inside hosts, "outbound" away from them. A
/// datagram is counted *before* it is forwarded, so a test that received it
/// already sees it counted; a drop is counted when the datagram arrives at
/// the simulator, so a test that expects a drop polls the counters for a
/// bounded time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// UDP datagrams from inside hosts forwarded to their remote (a send
    /// that then fails is also counted in `send_errors`).
    pub outbound: u64,
    /// UDP datagrams from a remote that matched a live filter entry and were
    /// delivered inside.
    pub inbound_passed: u64,
    /// UDP datagrams to a live mapping from a remote the inside host never
    /// sent to through it (address-and-port-dependent filtering).
    pub dropped_filtered: u64,
    /// UDP datagrams from a remote whose filter entry idled out (whether the
    /// mapping is still live or lingering after it closed).
    pub dropped_expired: u64,
    /// UDP datagrams to the lingering public port of a closed mapping from a
    /// remote that had never been allowed in.
    pub dropped_no_mapping: u64,
    /// UDP datagrams sent to a route by someone other than the route's
    /// inside host.
    pub dropped_foreign: u64,
    /// UDP datagrams that the operating system refused to send onward, and
    /// outbound datagrams dropped because no public socket could be bound.
    pub send_errors: u64,
    /// UDP mappings (public ports) created.
    pub mappings_created: u64,
    /// UDP mappings closed because all their filter entries idled out.
    pub mappings_expired: u64,
    /// TCP connections from inside hosts proxied to their remote.
    pub tcp_opened: u64,
    /// Proxied TCP connections that have finished.
    pub tcp_closed: u64,
    /// TCP connections from inside hosts whose outbound connect failed or
    /// timed out (the inside connection is reset).
    pub tcp_connect_failed: u64,
    /// TCP connections to a route from an address other than its inside
    /// host (reset at once).
    pub tcp_refused_foreign: u64,
}

impl Counters {
    /// All inbound UDP drops together.
    pub fn dropped_inbound(&self) -> u64 {
        self.dropped_filtered + self.dropped_expired + self.dropped_no_mapping
    }
}

/// A live UDP mapping, as listed by
/// [`FirewallSim::mappings`](super::FirewallSim::mappings).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MappingInfo {
    /// The inside host.
    pub inside: SocketAddr,
    /// The public address the remotes see.
    pub public: SocketAddr,
    /// Remotes allowed in (live filter entries), sorted.
    pub remotes: Vec<SocketAddr>,
}
