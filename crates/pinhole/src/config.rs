//! The TOML configuration of `pinhole mpr` and `pinhole aps`.
//!
//! Unknown keys are errors. Every default is documented on its field and in
//! `docs/operations.md`. [`MprFile::validate`] and [`ApsFile::validate`]
//! check every value before anything starts and name the offending key
//! (`networks[0].credential: must not be empty`).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use pinhole_core::client::{self, CmphMode};
use pinhole_core::mpr;
use pinhole_core::ports::PortRange;
use pinhole_core::wire::Protocol;
use pinhole_mgcp::alg as mgcp_alg;
use pinhole_net::relay::RelayConfig;
use pinhole_sip::alg as sip_alg;
use serde::Deserialize;

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
            max_queue_delay: std::time::Duration::from_millis(self.max_queue_delay_ms),
            spin: std::time::Duration::from_micros(self.spin_us),
            ..RelayConfig::default()
        })
    }
}

/// `[[networks]]` of the MPR.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct NetworkSection {
    /// Network id (the USERNAME its APS or terminals register with). Required.
    pub(crate) id: String,
    /// Shared secret. Required, non-empty.
    pub(crate) credential: String,
    /// Protocols it may register; default: all.
    #[serde(default)]
    pub(crate) protocols: Vec<ProtocolName>,
    /// Subscriber domains it may claim; default: any.
    #[serde(default)]
    pub(crate) domains: Vec<String>,
    /// Most relay legs at once. Default 10000.
    #[serde(default = "default_max_legs")]
    pub(crate) max_legs: usize,
}

fn default_max_legs() -> usize {
    10_000
}

/// `[timers]` of the MPR, in seconds.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct TimersSection {
    /// Shortest registration lifetime granted. Default 60.
    pub(crate) registration_min_secs: u64,
    /// Longest registration lifetime granted. Default 3600.
    pub(crate) registration_max_secs: u64,
    /// Lifetime when the request asks none. Default 600.
    pub(crate) registration_default_secs: u64,
    /// Nonce lifetime. Default 600.
    pub(crate) nonce_lifetime_secs: u64,
    /// A call or reserved leg idle this long is removed. Default 60.
    pub(crate) leg_inactivity_secs: u64,
    /// How long a plain terminal's leg waits for its first packet. Default 10.
    pub(crate) latch_window_secs: u64,
    /// How long a freed port pair rests before reuse. Default 30.
    pub(crate) port_quarantine_secs: u64,
}

impl Default for TimersSection {
    fn default() -> Self {
        let t = mpr::Timers::default();
        Self {
            registration_min_secs: t.registration_min.as_secs(),
            registration_max_secs: t.registration_max.as_secs(),
            registration_default_secs: t.registration_default.as_secs(),
            nonce_lifetime_secs: t.nonce_lifetime.as_secs(),
            leg_inactivity_secs: t.leg_inactivity.as_secs(),
            latch_window_secs: t.latch_window.as_secs(),
            port_quarantine_secs: t.port_quarantine.as_secs(),
        }
    }
}

/// `[sip]` of the MPR: its SIP proxy (Figs. 11 and 12).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct MprSipSection {
    /// Run the SIP proxy on the first control port. Default true.
    pub(crate) enabled: bool,
    /// Where requests from a network go when their domain is no network's
    /// (the soft-switch). Default none: such requests get 404.
    pub(crate) outbound_proxy: Option<SocketAddr>,
    /// The registrar of plain phones (the soft-switch, which authenticates
    /// them). With one, a REGISTER from the public side for a network's
    /// domain is forwarded to it and its 2xx binds the phone's NAT address
    /// to that network. Default none: plain phones are not served.
    pub(crate) registrar: Option<SocketAddr>,
    /// Most dialogs tracked at once. Default 100000.
    pub(crate) max_dialogs: usize,
}

impl Default for MprSipSection {
    fn default() -> Self {
        Self {
            enabled: true,
            outbound_proxy: None,
            registrar: None,
            max_dialogs: 100_000,
        }
    }
}

/// `[mgcp]` of the MPR: its MGCP ALG (Figs. 9 and 10).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct MprMgcpSection {
    /// Run the MGCP ALG. Default false.
    pub(crate) enabled: bool,
    /// The control port it serves: networks register their MGCP pinholes
    /// with it and the call agent sends its commands to it. One of
    /// `control_ports`, not the SIP proxy's (the first). Default 2727.
    pub(crate) port: u16,
    /// Where the gateways' own commands (NTFY, RSIP, ...) go. Default none:
    /// to the command's NotifiedEntity when it is an address, else the
    /// gateway is answered 510.
    pub(crate) call_agent: Option<SocketAddr>,
    /// Most calls tracked at once. Default 100000.
    pub(crate) max_calls: usize,
    /// Most transactions tracked at once. Default 100000.
    pub(crate) max_transactions: usize,
}

impl Default for MprMgcpSection {
    fn default() -> Self {
        Self {
            enabled: false,
            port: 2727,
            call_agent: None,
            max_calls: 100_000,
            max_transactions: 100_000,
        }
    }
}

/// The `pinhole mpr` configuration file.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct MprFile {
    /// The public address the relay legs and control sockets bind. Required.
    pub(crate) relay_ip: IpAddr,
    /// An IPv6 relay address, if any.
    #[serde(default)]
    pub(crate) relay_ip6: Option<IpAddr>,
    /// Control (Registration/CMPH) and signaling ports on `relay_ip`.
    /// Default `[5060]`.
    #[serde(default = "default_control_ports")]
    pub(crate) control_ports: Vec<u16>,
    /// Where `/metrics` is served (HTTP); absent: no metrics endpoint.
    #[serde(default)]
    pub(crate) metrics: Option<SocketAddr>,
    /// Most streams in one call. Default 16.
    #[serde(default = "default_max_streams")]
    pub(crate) max_streams: usize,
    /// The relay.
    #[serde(default)]
    pub(crate) relay: RelaySection,
    /// Timers.
    #[serde(default)]
    pub(crate) timers: TimersSection,
    /// The SIP proxy.
    #[serde(default)]
    pub(crate) sip: MprSipSection,
    /// The MGCP ALG.
    #[serde(default)]
    pub(crate) mgcp: MprMgcpSection,
    /// The corporate networks served. At least one.
    #[serde(default)]
    pub(crate) networks: Vec<NetworkSection>,
}

fn default_control_ports() -> Vec<u16> {
    vec![5060]
}

fn default_max_streams() -> usize {
    16
}

/// A validated MPR configuration.
pub(crate) struct MprSettings {
    /// The engine's configuration (seed still to set).
    pub(crate) engine: mpr::Config,
    /// The relay's.
    pub(crate) relay: RelayConfig,
    /// Control sockets to bind.
    pub(crate) controls: Vec<SocketAddr>,
    /// The metrics endpoint.
    pub(crate) metrics: Option<SocketAddr>,
    /// The SIP proxy, when enabled.
    pub(crate) sip: Option<sip_alg::MprConfig>,
    /// The MGCP ALG, when enabled.
    pub(crate) mgcp: Option<mgcp_alg::MprConfig>,
}

fn secs(key: &str, v: u64) -> Result<Duration, Invalid> {
    if v == 0 {
        return Err(invalid(key, "must be at least 1 second"));
    }
    if v > 86_400 * 7 {
        return Err(invalid(key, "must be at most a week (604800 s)"));
    }
    Ok(Duration::from_secs(v))
}

impl MprFile {
    /// Parses a file's text (syntax, types and unknown keys).
    pub(crate) fn parse(text: &str) -> anyhow::Result<Self> {
        Ok(toml::from_str(text)?)
    }

    /// Checks every value and builds the settings.
    pub(crate) fn validate(&self, seed: [u8; 32]) -> Result<MprSettings, Invalid> {
        if self.relay_ip.is_unspecified() || self.relay_ip.is_multicast() {
            return Err(invalid(
                "relay_ip",
                "must be a unicast address the MPR owns (it is written into signaling)",
            ));
        }
        if let Some(ip6) = self.relay_ip6
            && (!ip6.is_ipv6() || ip6.is_unspecified() || ip6.is_multicast())
        {
            return Err(invalid("relay_ip6", "must be a unicast IPv6 address"));
        }
        if self.control_ports.is_empty() {
            return Err(invalid("control_ports", "must name at least one port"));
        }
        for (i, p) in self.control_ports.iter().enumerate() {
            if *p == 0 {
                return Err(invalid(format!("control_ports[{i}]"), "must not be 0"));
            }
            if self.control_ports[..i].contains(p) {
                return Err(invalid(format!("control_ports[{i}]"), "is listed twice"));
            }
        }
        if !(1..=64).contains(&self.max_streams) {
            return Err(invalid("max_streams", "must be 1 to 64"));
        }
        let relay = self.relay.validate(true)?;
        let t = &self.timers;
        let timers = mpr::Timers {
            registration_min: secs("timers.registration_min_secs", t.registration_min_secs)?,
            registration_max: secs("timers.registration_max_secs", t.registration_max_secs)?,
            registration_default: secs(
                "timers.registration_default_secs",
                t.registration_default_secs,
            )?,
            nonce_lifetime: secs("timers.nonce_lifetime_secs", t.nonce_lifetime_secs)?,
            leg_inactivity: secs("timers.leg_inactivity_secs", t.leg_inactivity_secs)?,
            latch_window: secs("timers.latch_window_secs", t.latch_window_secs)?,
            port_quarantine: secs("timers.port_quarantine_secs", t.port_quarantine_secs)?,
        };
        if timers.registration_min > timers.registration_max {
            return Err(invalid(
                "timers.registration_min_secs",
                "must not exceed timers.registration_max_secs",
            ));
        }
        if !(timers.registration_min..=timers.registration_max)
            .contains(&timers.registration_default)
        {
            return Err(invalid(
                "timers.registration_default_secs",
                "must lie between registration_min_secs and registration_max_secs",
            ));
        }
        if self.networks.is_empty() {
            return Err(invalid(
                "networks",
                "at least one [[networks]] entry is required",
            ));
        }
        let mut engine = mpr::Config::new(self.relay_ip, seed);
        engine.relay_ip6 = self.relay_ip6;
        engine.ports = PortRange::new(self.relay.ports.first, self.relay.ports.last)
            .map_err(|e| invalid("relay.ports", e.to_string()))?;
        engine.control_ports.clone_from(&self.control_ports);
        engine.timers = timers;
        engine.max_streams = self.max_streams;
        for (i, n) in self.networks.iter().enumerate() {
            let key = |k: &str| format!("networks[{i}].{k}");
            if n.id.is_empty() || n.id.len() > 128 {
                return Err(invalid(key("id"), "must be 1 to 128 bytes"));
            }
            if self.networks[..i].iter().any(|m| m.id == n.id) {
                return Err(invalid(
                    key("id"),
                    format!("{:?} is configured twice", n.id),
                ));
            }
            if n.credential.is_empty() {
                return Err(invalid(key("credential"), "must not be empty"));
            }
            if n.max_legs == 0 {
                return Err(invalid(key("max_legs"), "must be at least 1"));
            }
            let mut net = mpr::NetworkConfig::new(n.id.clone(), n.credential.as_bytes().to_vec());
            net.protocols = n.protocols.iter().map(|p| Protocol::from(*p)).collect();
            net.domains.clone_from(&n.domains);
            net.max_legs = n.max_legs;
            engine.networks.push(net);
        }
        // The engine's own checks, in case it knows more than we do.
        mpr::Engine::new(engine.clone(), std::time::Instant::now())
            .map_err(|e| invalid("(engine)", e.to_string()))?;
        let controls: Vec<SocketAddr> = self
            .control_ports
            .iter()
            .map(|p| SocketAddr::new(self.relay_ip, *p))
            .collect();
        let sip = if self.sip.enabled {
            if !(1..=10_000_000).contains(&self.sip.max_dialogs) {
                return Err(invalid("sip.max_dialogs", "must be 1 to 10000000"));
            }
            if let Some(p) = self.sip.outbound_proxy
                && (p.ip().is_unspecified() || p.port() == 0)
            {
                return Err(invalid("sip.outbound_proxy", "must be an address and port"));
            }
            if let Some(p) = self.sip.registrar
                && (p.ip().is_unspecified() || p.port() == 0)
            {
                return Err(invalid("sip.registrar", "must be an address and port"));
            }
            let mut sip_seed = seed;
            sip_seed[0] ^= 0x21;
            let mut c = sip_alg::MprConfig::new(controls[0], sip_seed);
            c.outbound_proxy = self.sip.outbound_proxy;
            c.registrar = self.sip.registrar;
            c.max_dialogs = self.sip.max_dialogs;
            Some(c)
        } else {
            None
        };
        let mgcp = self.mgcp_settings(sip.is_some(), &seed)?;
        Ok(MprSettings {
            engine,
            relay,
            controls,
            metrics: self.metrics,
            sip,
            mgcp,
        })
    }

    fn mgcp_settings(
        &self,
        sip_on: bool,
        seed: &[u8; 32],
    ) -> Result<Option<mgcp_alg::MprConfig>, Invalid> {
        let m = &self.mgcp;
        if !m.enabled {
            return Ok(None);
        }
        if !self.control_ports.contains(&m.port) {
            return Err(invalid(
                "mgcp.port",
                format!("{} is not one of control_ports", m.port),
            ));
        }
        if sip_on && self.control_ports.first() == Some(&m.port) {
            return Err(invalid(
                "mgcp.port",
                "the SIP proxy serves the first control port; give MGCP another",
            ));
        }
        if let Some(p) = m.call_agent
            && (p.ip().is_unspecified() || p.port() == 0)
        {
            return Err(invalid("mgcp.call_agent", "must be an address and port"));
        }
        for (key, v) in [
            ("mgcp.max_calls", m.max_calls),
            ("mgcp.max_transactions", m.max_transactions),
        ] {
            if !(1..=10_000_000).contains(&v) {
                return Err(invalid(key, "must be 1 to 10000000"));
            }
        }
        let mut c = mgcp_alg::MprConfig::new(SocketAddr::new(self.relay_ip, m.port));
        c.call_agent = m.call_agent;
        c.max_calls = m.max_calls;
        c.max_transactions = m.max_transactions;
        // A restarted MPR numbers the gateways' commands elsewhere, so the
        // call agent takes none for a retransmission of an old one.
        let r = u32::from_le_bytes([seed[8], seed[9], seed[10], seed[11]]);
        c.first_transaction_id = 1 + r % 900_000_000;
        Ok(Some(c))
    }
}

/// How the APS sends CMPH binds, as written in the file.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub(crate) enum CmphModeName {
    /// Request, wait for the response (Figs. 7 and 8).
    #[default]
    Request,
    /// Indications, no response.
    Indication,
}

/// `[sip]` of the APS: its SIP proxy, used when `protocol = "sip"`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ApsSipSection {
    /// The inside address media ports B are bound on. Default: the
    /// signaling socket's address.
    pub(crate) media_ip: Option<IpAddr>,
    /// Media ports B. Default 40000–40999.
    pub(crate) media_ports: Ports,
    /// Where requests from the MPR go when no phone registered the
    /// Request-URI through the APS (an inside PBX or phone). Default none.
    pub(crate) inside_default: Option<SocketAddr>,
    /// Most dialogs tracked at once. Default 50000.
    pub(crate) max_dialogs: usize,
}

impl Default for ApsSipSection {
    fn default() -> Self {
        Self {
            media_ip: None,
            media_ports: Ports {
                first: 40_000,
                last: 40_999,
            },
            inside_default: None,
            max_dialogs: 50_000,
        }
    }
}

/// `[mgcp]` of the APS: its MGCP ALG, used when `protocol = "mgcp"`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ApsMgcpSection {
    /// The inside address media ports B are bound on. Default: the
    /// signaling socket's address.
    pub(crate) media_ip: Option<IpAddr>,
    /// Media ports B. Default 40000–40999.
    pub(crate) media_ports: Ports,
    /// The inside gateways: endpoint domain → MGCP address
    /// (`"gw1.corp1.example" = "10.1.0.20:2427"`); a domain's parents match
    /// too. Endpoints named `local@[ip]:port` need no entry. Default none.
    pub(crate) gateways: std::collections::BTreeMap<String, SocketAddr>,
    /// Most connections tracked at once. Default 50000.
    pub(crate) max_connections: usize,
}

impl Default for ApsMgcpSection {
    fn default() -> Self {
        Self {
            media_ip: None,
            media_ports: Ports {
                first: 40_000,
                last: 40_999,
            },
            gateways: std::collections::BTreeMap::new(),
            max_connections: 50_000,
        }
    }
}

/// The `pinhole aps` configuration file.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApsFile {
    /// Network id. Required.
    pub(crate) network: String,
    /// The network's shared secret. Required, non-empty.
    pub(crate) credential: String,
    /// The protocol whose signaling pinhole it registers. Default "sip".
    #[serde(default = "default_protocol")]
    pub(crate) protocol: ProtocolName,
    /// The APS's own signaling socket (inside the firewall). Required.
    pub(crate) signaling: SocketAddr,
    /// The MPR's control address. Required.
    pub(crate) mpr: SocketAddr,
    /// Subscriber domains claimed. Default none.
    #[serde(default)]
    pub(crate) domains: Vec<String>,
    /// The firewall's UDP idle timeout. Default 30.
    #[serde(default = "default_firewall_idle")]
    pub(crate) firewall_idle_timeout_secs: u64,
    /// Refresh interval; default 2/3 of the firewall idle timeout.
    #[serde(default)]
    pub(crate) refresh_interval_secs: Option<u64>,
    /// Registration lifetime asked for. Default 600.
    #[serde(default = "default_lifetime")]
    pub(crate) lifetime_secs: u64,
    /// "request" (default) or "indication".
    #[serde(default)]
    pub(crate) cmph_mode: CmphModeName,
    /// Where `/metrics` is served; absent: no metrics endpoint.
    #[serde(default)]
    pub(crate) metrics: Option<SocketAddr>,
    /// The relay for media ports B.
    #[serde(default)]
    pub(crate) relay: RelaySection,
    /// The SIP proxy.
    #[serde(default)]
    pub(crate) sip: ApsSipSection,
    /// The MGCP ALG.
    #[serde(default)]
    pub(crate) mgcp: ApsMgcpSection,
}

fn default_protocol() -> ProtocolName {
    ProtocolName::Sip
}

fn default_firewall_idle() -> u64 {
    30
}

fn default_lifetime() -> u64 {
    600
}

/// A validated APS configuration.
pub(crate) struct ApsSettings {
    /// The engine's configuration.
    pub(crate) engine: client::Config,
    /// The relay's.
    pub(crate) relay: RelayConfig,
    /// The metrics endpoint.
    pub(crate) metrics: Option<SocketAddr>,
    /// The SIP proxy, for `protocol = "sip"`.
    pub(crate) sip: Option<sip_alg::ApsConfig>,
    /// The MGCP ALG, for `protocol = "mgcp"`.
    pub(crate) mgcp: Option<mgcp_alg::ApsConfig>,
}

impl ApsFile {
    /// Parses a file's text (syntax, types and unknown keys).
    pub(crate) fn parse(text: &str) -> anyhow::Result<Self> {
        Ok(toml::from_str(text)?)
    }

    /// Checks every value and builds the settings.
    pub(crate) fn validate(&self, seed: [u8; 32]) -> Result<ApsSettings, Invalid> {
        if self.network.is_empty() || self.network.len() > 128 {
            return Err(invalid("network", "must be 1 to 128 bytes"));
        }
        if self.credential.is_empty() {
            return Err(invalid("credential", "must not be empty"));
        }
        if self.signaling.ip().is_multicast() {
            return Err(invalid("signaling", "must be a unicast address"));
        }
        if self.mpr.ip().is_unspecified() || self.mpr.port() == 0 {
            return Err(invalid("mpr", "must be the MPR's address and port"));
        }
        let timeout = secs(
            "firewall_idle_timeout_secs",
            self.firewall_idle_timeout_secs,
        )?;
        let lifetime = secs("lifetime_secs", self.lifetime_secs)?;
        let refresh = match self.refresh_interval_secs {
            Some(r) => {
                let r = secs("refresh_interval_secs", r)?;
                if r >= timeout {
                    return Err(invalid(
                        "refresh_interval_secs",
                        "must be shorter than firewall_idle_timeout_secs",
                    ));
                }
                Some(r)
            }
            None => None,
        };
        let relay = self.relay.validate(false)?;
        let mut engine = client::Config::new(
            self.network.clone(),
            self.credential.as_bytes().to_vec(),
            self.protocol.into(),
            self.signaling,
            self.mpr,
            seed,
        );
        engine.domains.clone_from(&self.domains);
        engine.firewall_idle_timeout = timeout;
        engine.refresh_interval = refresh;
        engine.lifetime = lifetime;
        engine.cmph_mode = match self.cmph_mode {
            CmphModeName::Request => CmphMode::Request,
            CmphModeName::Indication => CmphMode::Indication,
        };
        client::Engine::new(engine.clone(), std::time::Instant::now())
            .map_err(|e| invalid("(engine)", e.to_string()))?;
        let sip = match self.protocol {
            ProtocolName::Sip => Some(self.sip_settings(seed)?),
            _ => None,
        };
        let mgcp = match self.protocol {
            ProtocolName::Mgcp => Some(self.mgcp_settings(seed)?),
            _ => None,
        };
        Ok(ApsSettings {
            engine,
            relay,
            metrics: self.metrics,
            sip,
            mgcp,
        })
    }

    fn mgcp_settings(&self, seed: [u8; 32]) -> Result<mgcp_alg::ApsConfig, Invalid> {
        let m = &self.mgcp;
        let media_ip = m.media_ip.unwrap_or(self.signaling.ip());
        if media_ip.is_unspecified() || media_ip.is_multicast() {
            return Err(invalid(
                "mgcp.media_ip",
                "must be a unicast address of the APS (gateways send media to it)",
            ));
        }
        let Ports { first, last } = m.media_ports;
        if first == 0 || first > last {
            return Err(invalid("mgcp.media_ports", "first must be 1..=last"));
        }
        let range =
            PortRange::new(first, last).map_err(|e| invalid("mgcp.media_ports", e.to_string()))?;
        if !(1..=10_000_000).contains(&m.max_connections) {
            return Err(invalid("mgcp.max_connections", "must be 1 to 10000000"));
        }
        let mut gateways = Vec::with_capacity(m.gateways.len());
        for (domain, addr) in &m.gateways {
            if domain.is_empty() || domain.len() > 253 {
                return Err(invalid("mgcp.gateways", "a domain must be 1 to 253 bytes"));
            }
            if addr.ip().is_unspecified() || addr.port() == 0 {
                return Err(invalid(
                    format!("mgcp.gateways.{domain}"),
                    "must be the gateway's address and port",
                ));
            }
            gateways.push((domain.to_ascii_lowercase(), *addr));
        }
        let mut seed = seed;
        seed[0] ^= 0x3c;
        let mut c = mgcp_alg::ApsConfig::new(self.signaling, media_ip, range, seed);
        c.gateways = gateways;
        c.max_connections = m.max_connections;
        Ok(c)
    }

    fn sip_settings(&self, seed: [u8; 32]) -> Result<sip_alg::ApsConfig, Invalid> {
        let sip = &self.sip;
        let media_ip = sip.media_ip.unwrap_or(self.signaling.ip());
        if media_ip.is_unspecified() || media_ip.is_multicast() {
            return Err(invalid(
                "sip.media_ip",
                "must be a unicast address of the APS (phones send media to it)",
            ));
        }
        let Ports { first, last } = sip.media_ports;
        if first == 0 || first > last {
            return Err(invalid("sip.media_ports", "first must be 1..=last"));
        }
        let range =
            PortRange::new(first, last).map_err(|e| invalid("sip.media_ports", e.to_string()))?;
        if !(1..=10_000_000).contains(&sip.max_dialogs) {
            return Err(invalid("sip.max_dialogs", "must be 1 to 10000000"));
        }
        let mut seed = seed;
        seed[0] ^= 0x5a;
        let mut c = sip_alg::ApsConfig::new(self.signaling, media_ip, range, seed);
        c.inside_default = sip.inside_default;
        c.max_dialogs = sip.max_dialogs;
        Ok(c)
    }
}

/// Reads a file and names it in errors.
pub(crate) fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const MPR_EXAMPLE: &str = include_str!("../examples/mpr.toml");
    const APS_EXAMPLE: &str = include_str!("../examples/aps.toml");
    const APS_MGCP_EXAMPLE: &str = include_str!("../examples/aps-mgcp.toml");

    fn mpr_err(text: &str) -> String {
        match MprFile::parse(text) {
            Err(e) => e.to_string(),
            Ok(f) => match f.validate([0; 32]) {
                Err(e) => e.to_string(),
                Ok(_) => panic!("accepted: {text}"),
            },
        }
    }

    fn aps_err(text: &str) -> String {
        match ApsFile::parse(text) {
            Err(e) => e.to_string(),
            Ok(f) => match f.validate([0; 32]) {
                Err(e) => e.to_string(),
                Ok(_) => panic!("accepted: {text}"),
            },
        }
    }

    const MPR_MIN: &str =
        "relay_ip = \"127.0.0.3\"\n[[networks]]\nid = \"corp1\"\ncredential = \"s\"\n";
    const APS_MIN: &str = "network = \"corp1\"\ncredential = \"s\"\nsignaling = \"127.0.0.1:5060\"\nmpr = \"127.0.0.3:5060\"\n";

    #[test]
    fn examples_parse_and_validate() {
        let m = MprFile::parse(MPR_EXAMPLE)
            .unwrap()
            .validate([1; 32])
            .unwrap();
        assert_eq!(m.engine.networks.len(), 2);
        assert!(m.metrics.is_some());
        assert!(m.sip.is_some() && m.mgcp.is_some());
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
    }

    #[test]
    fn mgcp_sections_build_the_algs_and_name_bad_keys() {
        // MPR: off by default; on, on its own control port.
        let s = MprFile::parse(MPR_MIN).unwrap().validate([0; 32]).unwrap();
        assert!(s.mgcp.is_none());
        let on = format!(
            "control_ports = [5060, 2727]\n{MPR_MIN}[mgcp]\nenabled = true\ncall_agent = \"198.51.100.5:2727\"\n"
        );
        let s = MprFile::parse(&on).unwrap().validate([0; 32]).unwrap();
        let m = s.mgcp.expect("MGCP ALG on");
        assert_eq!(m.local, "127.0.0.3:2727".parse().unwrap());
        assert_eq!(m.call_agent, Some("198.51.100.5:2727".parse().unwrap()));
        assert!(s.sip.is_some(), "SIP stays on the first port");
        let got = mpr_err(&format!("{MPR_MIN}[mgcp]\nenabled = true\n"));
        assert!(
            got.contains("mgcp.port") && got.contains("control_ports"),
            "{got}"
        );
        let got = mpr_err(&format!(
            "control_ports = [2727]\n{MPR_MIN}[mgcp]\nenabled = true\n"
        ));
        assert!(got.contains("mgcp.port") && got.contains("SIP"), "{got}");
        let s = MprFile::parse(&format!(
            "control_ports = [2727]\n{MPR_MIN}[sip]\nenabled = false\n[mgcp]\nenabled = true\n"
        ))
        .unwrap()
        .validate([0; 32])
        .unwrap();
        assert!(
            s.sip.is_none() && s.mgcp.is_some(),
            "MGCP alone may take the first port"
        );
        let got = mpr_err(&format!(
            "control_ports = [5060, 2727]\n{MPR_MIN}[mgcp]\nenabled = true\nmax_calls = 0\n"
        ));
        assert!(got.contains("mgcp.max_calls"), "{got}");

        // APS: protocol = "mgcp" builds the MGCP ALG with its gateways.
        let aps = "network = \"corp1\"\ncredential = \"s\"\nprotocol = \"mgcp\"\n\
                   signaling = \"10.1.0.2:2727\"\nmpr = \"203.0.113.10:2727\"\n\
                   [mgcp]\nmedia_ports = { first = 41000, last = 41099 }\n\
                   [mgcp.gateways]\n\"GW1.corp1.example\" = \"10.1.0.20:2427\"\n";
        let s = ApsFile::parse(aps).unwrap().validate([0; 32]).unwrap();
        assert!(s.sip.is_none());
        let m = s.mgcp.expect("MGCP ALG on");
        assert_eq!(m.local, "10.1.0.2:2727".parse().unwrap());
        assert_eq!(m.media_ip, "10.1.0.2".parse::<IpAddr>().unwrap());
        assert_eq!(
            m.gateways,
            [(
                "gw1.corp1.example".to_string(),
                "10.1.0.20:2427".parse().unwrap()
            )]
        );
        assert_eq!(s.engine.protocol, Protocol::Mgcp);
        let got = aps_err(&aps.replace("10.1.0.20:2427", "0.0.0.0:2427"));
        assert!(got.contains("mgcp.gateways.GW1.corp1.example"), "{got}");
        let got = aps_err(&aps.replace("first = 41000", "first = 42000"));
        assert!(got.contains("mgcp.media_ports"), "{got}");
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let m = MprFile::parse(MPR_MIN).unwrap();
        assert_eq!(m.control_ports, vec![5060]);
        assert_eq!(
            m.relay.ports,
            Ports {
                first: 20_000,
                last: 39_999
            }
        );
        assert_eq!(m.relay.workers, 2);
        assert_eq!(
            (m.relay.recv_buffer, m.relay.max_queue_delay_ms),
            (65_536, 50)
        );
        assert_eq!(m.timers.registration_default_secs, 600);
        assert_eq!(m.networks[0].max_legs, 10_000);
        assert!(m.metrics.is_none());
        let s = m.validate([0; 32]).unwrap();
        assert_eq!(s.controls, vec!["127.0.0.3:5060".parse().unwrap()]);
        let a = ApsFile::parse(APS_MIN).unwrap();
        assert_eq!(a.protocol, ProtocolName::Sip);
        assert_eq!(a.firewall_idle_timeout_secs, 30);
        assert_eq!(a.lifetime_secs, 600);
        assert_eq!(a.cmph_mode, CmphModeName::Request);
        let s = a.validate([0; 32]).unwrap();
        assert_eq!(s.engine.effective_refresh(), Duration::from_secs(20));
    }

    #[test]
    fn bad_values_name_the_key() {
        let cases = [
            (
                format!("{MPR_MIN}[relay]\nports = {{ first = 30000, last = 20000 }}\n"),
                "relay.ports: first > last",
            ),
            (
                MPR_MIN.replace("credential = \"s\"", "credential = \"\""),
                "networks[0].credential: must not be empty",
            ),
            (
                format!("{MPR_MIN}[[networks]]\nid = \"corp1\"\ncredential = \"t\"\n"),
                "networks[1].id: \"corp1\" is configured twice",
            ),
            (
                format!("{MPR_MIN}[timers]\nregistration_min_secs = 0\n"),
                "timers.registration_min_secs: must be at least 1 second",
            ),
            (
                MPR_MIN.replace("127.0.0.3", "0.0.0.0"),
                "relay_ip: must be a unicast address",
            ),
            (
                "relay_ip = \"127.0.0.3\"\n".to_owned(),
                "networks: at least one",
            ),
            (
                format!("{MPR_MIN}[relay]\nworkers = 0\n"),
                "relay.workers: must be 1 to 64",
            ),
            (
                format!("{MPR_MIN}[sip]\nmax_dialogs = 0\n"),
                "sip.max_dialogs: must be 1 to 10000000",
            ),
            (
                format!("{MPR_MIN}[sip]\noutbound_proxy = \"0.0.0.0:5060\"\n"),
                "sip.outbound_proxy: must be an address and port",
            ),
            (
                format!("{MPR_MIN}[sip]\nregistrar = \"192.0.2.1:0\"\n"),
                "sip.registrar: must be an address and port",
            ),
            (
                format!("{MPR_MIN}[relay]\nmax_queue_delay_ms = 10001\n"),
                "relay.max_queue_delay_ms: must be 0 to 10000",
            ),
            (
                format!("{MPR_MIN}[relay]\nrecv_buffer = 2000000000\n"),
                "relay.recv_buffer: must be at most 1073741824",
            ),
            (
                format!("{MPR_MIN}[relay]\nspin_us = 20000\n"),
                "relay.spin_us: must be 0 to 10000",
            ),
        ];
        for (text, want) in cases {
            let got = mpr_err(&text);
            assert!(got.contains(want), "{want:?} not in {got:?}");
        }
    }

    #[test]
    fn bad_aps_values_name_the_key() {
        let cases = [
            (
                APS_MIN.replace("credential = \"s\"", "credential = \"\""),
                "credential: must not be empty",
            ),
            (
                format!("{APS_MIN}firewall_idle_timeout_secs = 10\nrefresh_interval_secs = 10\n"),
                "refresh_interval_secs: must be shorter than firewall_idle_timeout_secs",
            ),
            (
                format!("{APS_MIN}lifetime_secs = 0\n"),
                "lifetime_secs: must be at least 1 second",
            ),
            (
                format!("{APS_MIN}[sip]\nmedia_ports = {{ first = 0, last = 10 }}\n"),
                "sip.media_ports: first must be 1..=last",
            ),
            (
                format!("{APS_MIN}[sip]\nmedia_ip = \"0.0.0.0\"\n"),
                "sip.media_ip: must be a unicast address",
            ),
            (
                format!("{APS_MIN}[sip]\nmax_dialogs = 0\n"),
                "sip.max_dialogs: must be 1 to 10000000",
            ),
        ];
        for (text, want) in cases {
            let got = aps_err(&text);
            assert!(got.contains(want), "{want:?} not in {got:?}");
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
