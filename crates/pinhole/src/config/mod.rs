//! The TOML configuration of `pinhole mpr` and `pinhole aps`.
//!
//! Unknown keys are errors. Every default is documented on its field and in
//! `docs/operations.md`. [`MprFile::validate`] and [`ApsFile::validate`]
//! check every value before anything starts and name the offending key
//! (`networks[0].credential: must not be empty`).
//!
//! One file per role ([`mpr`], [`aps`]) and one per protocol ([`sip`],
//! [`mgcp`], [`h248`], [`h323`]: the `[sip]` / `[mgcp]` / `[h248]` /
//! `[h323]` sections of both roles and their checks), so a new protocol is one new file plus a field in each role's
//! file. This file holds what both roles share.

mod aps;
mod h248;
mod h323;
mod mgcp;
mod mpr;
mod sip;
mod streams;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use pinhole_core::ports::PortRange;
use pinhole_core::wire::Protocol;
use pinhole_net::relay::RelayConfig;
use serde::Deserialize;

pub(crate) use aps::ApsFile;
pub(crate) use mpr::MprFile;
pub(crate) use streams::MprTlsSection;

/// A configuration value that is wrong: the key and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Invalid {
    /// The key, as written in the file (`relay.ports`, `networks[1].id`).
    pub(crate) key: String,
    /// Why it is refused.
    pub(crate) why: String,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.why)
    }
}

impl std::error::Error for Invalid {}

fn invalid(key: impl Into<String>, why: impl Into<String>) -> Invalid {
    Invalid {
        key: key.into(),
        why: why.into(),
    }
}

/// A signaling protocol as written in the file.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ProtocolName {
    /// SIP.
    Sip,
    /// MGCP.
    Mgcp,
    /// H.248 / Megaco.
    H248,
    /// H.323.
    H323,
}

impl From<ProtocolName> for Protocol {
    fn from(p: ProtocolName) -> Self {
        match p {
            ProtocolName::Sip => Self::Sip,
            ProtocolName::Mgcp => Self::Mgcp,
            ProtocolName::H248 => Self::H248,
            ProtocolName::H323 => Self::H323,
        }
    }
}

/// A port range as written in the file.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct Ports {
    /// First port.
    pub(crate) first: u16,
    /// Last port (inclusive).
    pub(crate) last: u16,
}

/// `[relay]` of either daemon.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RelaySection {
    /// MPR only: relay port range. Default 20000–39999.
    pub(crate) ports: Ports,
    /// Relay worker threads. Default 2.
    pub(crate) workers: usize,
    /// Datagrams per batched system call, 1–1024. Default 32.
    pub(crate) batch: usize,
    /// Largest datagram relayed, bytes. Default 2048.
    pub(crate) max_packet: usize,
    /// `SO_RCVBUF` of each relay socket, bytes; 0: the system default.
    /// Default 65536.
    pub(crate) recv_buffer: usize,
    /// Under overload, media that waited longer is dropped; 0: never.
    /// Default 50.
    pub(crate) max_queue_delay_ms: u64,
    /// Microseconds a worker keeps polling after the last datagram before
    /// it sleeps; 0: off. Default 0.
    pub(crate) spin_us: u64,
}

impl Default for RelaySection {
    fn default() -> Self {
        let d = RelayConfig::default();
        Self {
            ports: Ports {
                first: 20_000,
                last: 39_999,
            },
            workers: d.workers,
            batch: d.batch,
            max_packet: d.max_packet,
            recv_buffer: d.recv_buffer,
            max_queue_delay_ms: u64::try_from(d.max_queue_delay.as_millis()).unwrap_or(u64::MAX),
            spin_us: u64::try_from(d.spin.as_micros()).unwrap_or(u64::MAX),
        }
    }
}

impl RelaySection {
    fn validate(&self, mpr: bool) -> Result<RelayConfig, Invalid> {
        if mpr {
            let Ports { first, last } = self.ports;
            if first > last {
                return Err(invalid("relay.ports", "first > last"));
            }
            if first == 0 {
                return Err(invalid("relay.ports", "first must not be 0"));
            }
            if PortRange::new(first, last).is_err() {
                return Err(invalid(
                    "relay.ports",
                    "must hold at least one (even, odd) port pair",
                ));
            }
        }
        if !(1..=64).contains(&self.workers) {
            return Err(invalid("relay.workers", "must be 1 to 64"));
        }
        if !(1..=1024).contains(&self.batch) {
            return Err(invalid("relay.batch", "must be 1 to 1024"));
        }
        if !(64..=65_535).contains(&self.max_packet) {
            return Err(invalid("relay.max_packet", "must be 64 to 65535"));
        }
        if self.recv_buffer > 1 << 30 {
            return Err(invalid("relay.recv_buffer", "must be at most 1073741824"));
        }
        if self.max_queue_delay_ms > 10_000 {
            return Err(invalid("relay.max_queue_delay_ms", "must be 0 to 10000"));
        }
        if self.spin_us > 10_000 {
            return Err(invalid("relay.spin_us", "must be 0 to 10000"));
        }
        Ok(RelayConfig {
            workers: self.workers,
            batch: self.batch,
            max_packet: self.max_packet,
            recv_buffer: self.recv_buffer,
            max_queue_delay: Duration::from_millis(self.max_queue_delay_ms),
            spin: Duration::from_micros(self.spin_us),
            ..RelayConfig::default()
        })
    }
}

/// A timer in whole seconds: 1 s to one week.
fn secs(key: &str, v: u64) -> Result<Duration, Invalid> {
    if v == 0 {
        return Err(invalid(key, "must be at least 1 second"));
    }
    if v > 86_400 * 7 {
        return Err(invalid(key, "must be at most a week (604800 s)"));
    }
    Ok(Duration::from_secs(v))
}

/// A table size of an ALG (dialogs, calls, transactions, connections).
fn table_size(key: &str, v: usize) -> Result<(), Invalid> {
    if !(1..=10_000_000).contains(&v) {
        return Err(invalid(key, "must be 1 to 10000000"));
    }
    Ok(())
}

/// An optional peer an ALG sends to (proxy, registrar, call agent): when
/// given, a real address and port.
fn peer(key: &str, v: Option<SocketAddr>) -> Result<(), Invalid> {
    if let Some(p) = v
        && (p.ip().is_unspecified() || p.port() == 0)
    {
        return Err(invalid(key, "must be an address and port"));
    }
    Ok(())
}

/// The media side of an APS ALG: `{section}.media_ip` (default: the
/// signaling socket's address) and `{section}.media_ports`. `senders` names
/// who sends media there, for the message.
fn aps_media(
    section: &str,
    media_ip: Option<IpAddr>,
    media_ports: Ports,
    signaling: SocketAddr,
    senders: &str,
) -> Result<(IpAddr, PortRange), Invalid> {
    let ip = media_ip.unwrap_or(signaling.ip());
    if ip.is_unspecified() || ip.is_multicast() {
        return Err(invalid(
            format!("{section}.media_ip"),
            format!("must be a unicast address of the APS ({senders} send media to it)"),
        ));
    }
    let key = format!("{section}.media_ports");
    let Ports { first, last } = media_ports;
    if first == 0 || first > last {
        return Err(invalid(key, "first must be 1..=last"));
    }
    let range = PortRange::new(first, last).map_err(|e| invalid(key, e.to_string()))?;
    Ok((ip, range))
}

/// The default media ports B of an APS ALG: 40000–40999.
fn default_aps_media_ports() -> Ports {
    Ports {
        first: 40_000,
        last: 40_999,
    }
}

/// Reads a file and names it in errors.
pub(crate) fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// What the tests of every config file share: minimal files and the error
/// a file gets.
#[cfg(test)]
mod testing {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::{ApsFile, MprFile};

    /// The smallest valid MPR file.
    pub(super) const MPR_MIN: &str =
        "relay_ip = \"127.0.0.3\"\n[[networks]]\nid = \"corp1\"\ncredential = \"s\"\n";
    /// The smallest valid APS file.
    pub(super) const APS_MIN: &str = "network = \"corp1\"\ncredential = \"s\"\nsignaling = \"127.0.0.1:5060\"\nmpr = \"127.0.0.3:5060\"\n";

    /// Why an MPR file is refused (parsing or validation).
    pub(super) fn mpr_err(text: &str) -> String {
        match MprFile::parse(text) {
            Err(e) => e.to_string(),
            Ok(f) => match f.validate([0; 32]) {
                Err(e) => e.to_string(),
                Ok(_) => panic!("accepted: {text}"),
            },
        }
    }

    /// Why an APS file is refused (parsing or validation).
    pub(super) fn aps_err(text: &str) -> String {
        match ApsFile::parse(text) {
            Err(e) => e.to_string(),
            Ok(f) => match f.validate([0; 32]) {
                Err(e) => e.to_string(),
                Ok(_) => panic!("accepted: {text}"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::testing::{APS_MIN, MPR_MIN, aps_err, mpr_err};
    use super::*;

    const MPR_EXAMPLE: &str = include_str!("../../examples/mpr.toml");
    const APS_EXAMPLE: &str = include_str!("../../examples/aps.toml");
    const APS_MGCP_EXAMPLE: &str = include_str!("../../examples/aps-mgcp.toml");
    const APS_H248_EXAMPLE: &str = include_str!("../../examples/aps-h248.toml");
    const APS_H323_EXAMPLE: &str = include_str!("../../examples/aps-h323.toml");

    #[test]
    fn examples_parse_and_validate() {
        let m = MprFile::parse(MPR_EXAMPLE)
            .unwrap()
            .validate([1; 32])
            .unwrap();
        assert_eq!(m.engine.networks.len(), 3);
        assert!(m.metrics.is_some());
        assert!(m.sip.is_some() && m.mgcp.is_some() && m.h248.is_some() && m.h323.is_some());
        let a = ApsFile::parse(APS_EXAMPLE)
            .unwrap()
            .validate([1; 32])
            .unwrap();
        assert_eq!(a.engine.network, "corp1");
        let a = ApsFile::parse(APS_MGCP_EXAMPLE)
            .unwrap()
            .validate([1; 32])
            .unwrap();
        assert_eq!(a.mgcp.unwrap().gateways.len(), 1);
        let a = ApsFile::parse(APS_H248_EXAMPLE)
            .unwrap()
            .validate([1; 32])
            .unwrap();
        assert_eq!(a.h248.unwrap().gateways.len(), 1);
        let a = ApsFile::parse(APS_H323_EXAMPLE)
            .unwrap()
            .validate([1; 32])
            .unwrap();
        assert_eq!(a.h323.unwrap().aliases.len(), 2);
        assert_eq!(a.engine.upstream, pinhole_core::types::Transport::Tcp);
    }

    #[test]
    fn every_example_aps_may_register_at_the_example_mpr() {
        let mpr = MprFile::parse(MPR_EXAMPLE).unwrap();
        for text in [
            APS_EXAMPLE,
            APS_MGCP_EXAMPLE,
            APS_H248_EXAMPLE,
            APS_H323_EXAMPLE,
        ] {
            let aps = ApsFile::parse(text).unwrap();
            let net = mpr
                .networks
                .iter()
                .find(|n| n.id == aps.network)
                .unwrap_or_else(|| panic!("no network {} in mpr.toml", aps.network));
            assert!(
                net.protocols.is_empty() || net.protocols.contains(&aps.protocol),
                "mpr.toml does not let {} register {:?}",
                aps.network,
                aps.protocol
            );
        }
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_named() {
        let got = mpr_err(&format!("{MPR_MIN}relay_port = 5\n"));
        assert!(got.contains("unknown field `relay_port`"), "{got}");
        let got = mpr_err(&MPR_MIN.replace("127.0.0.3", "not-an-ip"));
        assert!(got.contains("relay_ip"), "{got}");
        let got = aps_err(&format!("{APS_MIN}protocol = \"xmpp\"\n"));
        assert!(got.contains("protocol") && got.contains("xmpp"), "{got}");
        let got = mpr_err(&format!(
            "{MPR_MIN}[relay]\nports = {{ first = 70000, last = 80000 }}\n"
        ));
        assert!(got.contains("first") || got.contains("ports"), "{got}");
    }
}
