//! `pinhole mpr`: the file, its role-wide sections (`[timers]`,
//! `[[networks]]`) and its validation. The protocol sections are in
//! [`super::sip`], [`super::mgcp`], [`super::h248`] and [`super::h323`].

use std::net::{IpAddr, SocketAddr};

use pinhole_core::mpr;
use pinhole_core::ports::PortRange;
use pinhole_core::types::Transport;
use pinhole_core::wire::Protocol;
use pinhole_h248::alg as h248_alg;
use pinhole_h323::alg as h323_alg;
use pinhole_mgcp::alg as mgcp_alg;
use pinhole_net::relay::RelayConfig;
use pinhole_net::stream::StreamLimits;
use pinhole_sip::alg as sip_alg;
use serde::Deserialize;

use super::h248::{MprH248Section, MprPorts};
use super::h323::{MprH323At, MprH323Section};
use super::mgcp::MprMgcpSection;
use super::sip::MprSipSection;
use super::streams::{MprTlsSection, StreamsSection};
use super::{Invalid, ProtocolName, RelaySection, invalid, secs};

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
    /// A call a stranger offered goes when its called party neither
    /// answered nor rang for this long. Default 32 (SIP Timer B).
    pub(crate) unanswered_secs: u64,
    /// How long such a call may ring after its latest provisional
    /// response. Default 180 (SIP Timer C).
    pub(crate) ringing_secs: u64,
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
            unanswered_secs: t.unanswered.as_secs(),
            ringing_secs: t.ringing.as_secs(),
        }
    }
}

impl TimersSection {
    fn validate(&self) -> Result<mpr::Timers, Invalid> {
        let timers = mpr::Timers {
            registration_min: secs("timers.registration_min_secs", self.registration_min_secs)?,
            registration_max: secs("timers.registration_max_secs", self.registration_max_secs)?,
            registration_default: secs(
                "timers.registration_default_secs",
                self.registration_default_secs,
            )?,
            nonce_lifetime: secs("timers.nonce_lifetime_secs", self.nonce_lifetime_secs)?,
            leg_inactivity: secs("timers.leg_inactivity_secs", self.leg_inactivity_secs)?,
            latch_window: secs("timers.latch_window_secs", self.latch_window_secs)?,
            port_quarantine: secs("timers.port_quarantine_secs", self.port_quarantine_secs)?,
            unanswered: secs("timers.unanswered_secs", self.unanswered_secs)?,
            ringing: secs("timers.ringing_secs", self.ringing_secs)?,
        };
        if timers.ringing < timers.unanswered {
            return Err(invalid(
                "timers.ringing_secs",
                "must not be less than timers.unanswered_secs",
            ));
        }
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
        Ok(timers)
    }
}

/// `[limits]` of the MPR: what calls that strangers (public parties nobody
/// authenticated) offered and nobody answered yet may hold, in relay legs.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct LimitsSection {
    /// Legs one source IP may hold so. Default 32.
    pub(crate) unanswered_legs_per_source: usize,
    /// Legs such calls toward one network may hold. Default 1000.
    pub(crate) unanswered_legs_per_network: usize,
    /// Legs all such calls may hold; absent: half the relay port pairs.
    pub(crate) unanswered_legs_total: Option<usize>,
}

impl Default for LimitsSection {
    fn default() -> Self {
        let l = mpr::Limits::default();
        Self {
            unanswered_legs_per_source: l.per_source,
            unanswered_legs_per_network: l.per_network,
            unanswered_legs_total: l.total,
        }
    }
}

impl LimitsSection {
    fn validate(&self) -> Result<mpr::Limits, Invalid> {
        if self.unanswered_legs_per_source < 2 {
            return Err(invalid(
                "limits.unanswered_legs_per_source",
                "must be at least 2 (one stream)",
            ));
        }
        if self.unanswered_legs_per_network < 2 {
            return Err(invalid(
                "limits.unanswered_legs_per_network",
                "must be at least 2 (one stream)",
            ));
        }
        if self.unanswered_legs_total.is_some_and(|t| t < 2) {
            return Err(invalid(
                "limits.unanswered_legs_total",
                "must be at least 2 (one stream)",
            ));
        }
        Ok(mpr::Limits {
            per_source: self.unanswered_legs_per_source,
            per_network: self.unanswered_legs_per_network,
            total: self.unanswered_legs_total,
        })
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
    /// Limits on unanswered calls from strangers.
    #[serde(default)]
    pub(crate) limits: LimitsSection,
    /// The SIP proxy.
    #[serde(default)]
    pub(crate) sip: MprSipSection,
    /// The MGCP ALG.
    #[serde(default)]
    pub(crate) mgcp: MprMgcpSection,
    /// The H.248 ALG: on when the section is there.
    #[serde(default)]
    pub(crate) h248: Option<MprH248Section>,
    /// The H.323 ALG: on when the section is there.
    #[serde(default)]
    pub(crate) h323: Option<MprH323Section>,
    /// TLS for signaling (the APSs' connections); absent: no TLS listener.
    #[serde(default)]
    pub(crate) tls: Option<MprTlsSection>,
    /// Limits of TCP and TLS signaling connections.
    #[serde(default)]
    pub(crate) streams: StreamsSection,
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
    /// The H.248 ALG, when enabled.
    pub(crate) h248: Option<h248_alg::MprConfig>,
    /// The H.323 ALG, when enabled (TCP listeners: its control address and
    /// each address of its H.245 pool).
    pub(crate) h323: Option<h323_alg::MprConfig>,
    /// The SIP proxy's stream listeners (TCP on its control address, TLS
    /// on `[sip] tls_port` with `[tls]`).
    pub(crate) sip_listen: Vec<(SocketAddr, Transport)>,
    /// `[tls]`, checked (its files are read at start).
    pub(crate) tls: Option<MprTlsSection>,
    /// `[streams]`.
    pub(crate) streams: StreamLimits,
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
        self.validate_control_ports()?;
        if !(1..=64).contains(&self.max_streams) {
            return Err(invalid("max_streams", "must be 1 to 64"));
        }
        let relay = self.relay.validate(true)?;
        let timers = self.timers.validate()?;
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
        engine.limits = self.limits.validate()?;
        engine.max_streams = self.max_streams;
        for (i, n) in self.networks.iter().enumerate() {
            engine.networks.push(self.network(i, n)?);
        }
        // The engine's own checks, in case it knows more than we do.
        mpr::Engine::new(engine.clone(), std::time::Instant::now())
            .map_err(|e| invalid("(engine)", e.to_string()))?;
        let controls: Vec<SocketAddr> = self
            .control_ports
            .iter()
            .map(|p| SocketAddr::new(self.relay_ip, *p))
            .collect();
        // validate_control_ports refused an empty list, so there is a first.
        let mut sip = self.sip.settings(controls[0], &seed)?;
        if let Some(t) = &self.tls {
            t.validate()?;
        }
        let streams = self.streams.validate()?;
        let mut sip_listen = Vec::new();
        if let Some(c) = &mut sip {
            if self.sip.tcp {
                sip_listen.push((c.local, Transport::Tcp));
            }
            if self.tls.is_some() {
                let at = SocketAddr::new(self.relay_ip, self.sip.tls_port);
                if self.sip.tls_port == 0 {
                    return Err(invalid("sip.tls_port", "must not be 0"));
                }
                if self.sip.tcp && at == c.local {
                    return Err(invalid(
                        "sip.tls_port",
                        "is the SIP control port, where TCP listens",
                    ));
                }
                c.tls = Some(at);
                sip_listen.push((at, Transport::Tls));
            }
        }
        let mgcp = self
            .mgcp
            .settings(self.relay_ip, &self.control_ports, sip.is_some(), &seed)?;
        let h248 = match &self.h248 {
            Some(h) => h.settings(&MprPorts {
                relay_ip: self.relay_ip,
                control_ports: &self.control_ports,
                relay: self.relay.ports.first..=self.relay.ports.last,
                sip: sip.as_ref().map(|c| c.local.port()),
                mgcp: mgcp.as_ref().map(|c| c.local.port()),
            })?,
            None => None,
        };
        let h323 = match &self.h323 {
            Some(h) => {
                let mut served = Vec::new();
                served.extend(sip.as_ref().map(|c| (c.local.port(), "SIP proxy")));
                served.extend(mgcp.as_ref().map(|c| (c.local.port(), "MGCP ALG")));
                served.extend(h248.as_ref().map(|c| (c.local.port(), "H.248 ALG")));
                let tcp = sip
                    .as_ref()
                    .and_then(|c| c.tls)
                    .map(|t| (t.port(), "sip.tls_port"))
                    .into_iter()
                    .collect();
                h.settings(
                    &MprH323At {
                        relay_ip: self.relay_ip,
                        control_ports: &self.control_ports,
                        relay: self.relay.ports.first..=self.relay.ports.last,
                        served,
                        tcp,
                        networks: &self.networks,
                    },
                    &seed,
                )?
            }
            None => None,
        };
        Ok(MprSettings {
            engine,
            relay,
            controls,
            metrics: self.metrics,
            sip,
            mgcp,
            h248,
            h323,
            sip_listen,
            tls: self.tls.clone(),
            streams,
        })
    }

    fn validate_control_ports(&self) -> Result<(), Invalid> {
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
        Ok(())
    }

    /// `networks[i]`, checked against itself and the entries before it.
    fn network(&self, i: usize, n: &NetworkSection) -> Result<mpr::NetworkConfig, Invalid> {
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
        Ok(net)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::super::Ports;
    use super::super::testing::{MPR_MIN, mpr_err};
    use super::*;

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
        assert_eq!(s.engine.limits, mpr::Limits::default());
        assert_eq!(s.engine.timers.unanswered.as_secs(), 32);
        assert_eq!(s.engine.timers.ringing.as_secs(), 180);
    }

    #[test]
    fn limits_on_strangers_calls_reach_the_engine_and_the_sip_proxy() {
        let text = format!(
            "{MPR_MIN}[timers]\nunanswered_secs = 10\nringing_secs = 60\n\
             [limits]\nunanswered_legs_per_source = 4\nunanswered_legs_per_network = 8\n\
             unanswered_legs_total = 16\n[sip]\ntrusted = [\"192.0.2.9\"]\n"
        );
        let s = MprFile::parse(&text).unwrap().validate([0; 32]).unwrap();
        assert_eq!(
            s.engine.limits,
            mpr::Limits {
                per_source: 4,
                per_network: 8,
                total: Some(16)
            }
        );
        assert_eq!(s.engine.timers.unanswered.as_secs(), 10);
        assert_eq!(
            s.sip.unwrap().trusted,
            vec!["192.0.2.9".parse::<IpAddr>().unwrap()]
        );
        for (extra, want) in [
            (
                "[limits]\nunanswered_legs_per_source = 1\n",
                "limits.unanswered_legs_per_source: must be at least 2",
            ),
            (
                "[timers]\nunanswered_secs = 60\nringing_secs = 30\n",
                "timers.ringing_secs: must not be less than timers.unanswered_secs",
            ),
            (
                "[sip]\ntrusted = [\"0.0.0.0\"]\n",
                "sip.trusted[0]: must be a unicast address",
            ),
        ] {
            let got = mpr_err(&format!("{MPR_MIN}{extra}"));
            assert!(got.contains(want), "{got}");
        }
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
}
