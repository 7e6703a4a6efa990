//! `pinhole aps`: the file, its role-wide keys and its validation. The
//! protocol sections are in [`super::sip`], [`super::mgcp`],
//! [`super::h248`] and [`super::h323`]; which one is used follows
//! `protocol` (an APS registers and serves one protocol). `[sip]` and
//! `[mgcp]` are parsed but not checked under another protocol; `[h248]` and
//! `[h323]` under another protocol are errors. H.323 needs its connection
//! to the MPR: `upstream = "tcp"`, its default (TLS is not offered for
//! H.323 yet).

use std::net::SocketAddr;

use pinhole_core::client::{self, CmphMode};
use pinhole_h248::alg as h248_alg;
use pinhole_h323::alg as h323_alg;
use pinhole_mgcp::alg as mgcp_alg;
use std::time::Duration;

use pinhole_net::relay::RelayConfig;
use pinhole_net::stream::StreamLimits;
use pinhole_sip::alg as sip_alg;
use serde::Deserialize;

use super::h248::ApsH248Section;
use super::h323::ApsH323Section;
use super::mgcp::ApsMgcpSection;
use super::sip::ApsSipSection;
use super::streams::{ApsTlsSection, StreamsSection, TransportName, keepalive};
use super::{Invalid, ProtocolName, RelaySection, invalid, secs};

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
    /// The H.248 ALG (only with `protocol = "h248"`).
    #[serde(default)]
    pub(crate) h248: Option<ApsH248Section>,
    /// The H.323 ALG (only with `protocol = "h323"`).
    #[serde(default)]
    pub(crate) h323: Option<ApsH323Section>,
    /// How signaling goes to the MPR: "udp", "tcp" or "tls" (one
    /// connection opened from inside, kept alive, reopened when it drops;
    /// `mpr` is then the MPR's TCP or TLS address). Default "tls" with a
    /// `[tls]` section, else "tcp" for H.323 (which needs a connection)
    /// and "udp" for the others.
    #[serde(default)]
    pub(crate) upstream: Option<TransportName>,
    /// Ping on the connection to the MPR, below the firewall's TCP idle
    /// timeout: a CRLF (SIP), an empty TPKT (H.323). Default 25.
    #[serde(default = "default_keepalive")]
    pub(crate) upstream_keepalive_secs: u64,
    /// How the APS trusts the MPR over TLS.
    #[serde(default)]
    pub(crate) tls: Option<ApsTlsSection>,
    /// Limits of TCP and TLS signaling connections.
    #[serde(default)]
    pub(crate) streams: StreamsSection,
}

fn default_keepalive() -> u64 {
    25
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
    /// The H.248 ALG, for `protocol = "h248"`.
    pub(crate) h248: Option<h248_alg::ApsConfig>,
    /// The H.323 ALG, for `protocol = "h323"`.
    pub(crate) h323: Option<h323_alg::ClientConfig>,
    /// More TCP listeners for the ALG (H.323: its inside address when it
    /// is not `signaling`, and its H.245 pool).
    pub(crate) listen_also: Vec<std::net::SocketAddr>,
    /// `[tls]`, checked (its files are read at start).
    pub(crate) tls: Option<ApsTlsSection>,
    /// `[streams]`.
    pub(crate) streams: StreamLimits,
    /// The keepalive on the connection to the MPR.
    pub(crate) keepalive: Duration,
    /// Phones (terminals) may use TCP to the signaling address.
    pub(crate) phones_tcp: bool,
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
        if let Some(t) = &self.tls {
            t.validate()?;
        }
        let default_upstream = if self.tls.is_some() {
            TransportName::Tls
        } else if self.protocol == ProtocolName::H323 {
            TransportName::Tcp
        } else {
            TransportName::Udp
        };
        let upstream = self.upstream.unwrap_or(default_upstream);
        if upstream == TransportName::Tls && self.tls.is_none() {
            return Err(invalid(
                "upstream",
                "\"tls\" needs a [tls] section (the CA the MPR's certificate chains to)",
            ));
        }
        if upstream != TransportName::Tcp && self.protocol == ProtocolName::H323 {
            return Err(invalid(
                "upstream",
                "H.323 needs a TCP connection to the MPR (its call signaling is TCP; the MPR has no H.323 TLS listener yet): \"tcp\"",
            ));
        }
        if upstream != TransportName::Udp
            && !matches!(self.protocol, ProtocolName::Sip | ProtocolName::H323)
        {
            return Err(invalid(
                "upstream",
                "a TCP or TLS connection to the MPR carries SIP and H.323 only for now (MGCP is UDP by RFC 3435; H.248 over TCP needs its TPKT ALG)",
            ));
        }
        engine.upstream = upstream.into();
        let keepalive = keepalive("upstream_keepalive_secs", self.upstream_keepalive_secs)?;
        let streams = self.streams.validate()?;
        client::Engine::new(engine.clone(), std::time::Instant::now())
            .map_err(|e| invalid("(engine)", e.to_string()))?;
        // An APS serves one protocol: the other protocols' sections are
        // parsed (unknown keys still fail) but not checked.
        let sip = match self.protocol {
            ProtocolName::Sip => Some(self.sip.settings(self.signaling, seed)?),
            _ => None,
        };
        let mgcp = match self.protocol {
            ProtocolName::Mgcp => Some(self.mgcp.settings(self.signaling, seed)?),
            _ => None,
        };
        let h248 = match (self.protocol, &self.h248) {
            (ProtocolName::H248, h) => Some(
                h.clone()
                    .unwrap_or_default()
                    .settings(self.signaling, seed)?,
            ),
            (_, None) => None,
            (_, Some(_)) => {
                return Err(invalid(
                    "h248",
                    "needs protocol = \"h248\" (an APS registers and serves one protocol)",
                ));
            }
        };
        let h323 = match (self.protocol, &self.h323) {
            (ProtocolName::H323, h) => Some(
                h.clone()
                    .unwrap_or_default()
                    .settings(self.signaling, seed)?,
            ),
            (_, None) => None,
            (_, Some(_)) => {
                return Err(invalid(
                    "h323",
                    "needs protocol = \"h323\" (an APS registers and serves one protocol)",
                ));
            }
        };
        // H.323's terminals connect to its inside address (TCP on the
        // signaling address when it is that one) and its H.245 listeners.
        let (h323_on_signaling, listen_also) = match &h323 {
            Some(c) => {
                let on = c.inside == self.signaling;
                let mut also: Vec<_> = (!on).then_some(c.inside).into_iter().collect();
                also.extend(&c.h245_pool);
                (on, also)
            }
            None => (false, Vec::new()),
        };
        Ok(ApsSettings {
            engine,
            relay,
            metrics: self.metrics,
            sip,
            mgcp,
            h248,
            h323,
            listen_also,
            tls: self.tls.clone(),
            streams,
            keepalive,
            phones_tcp: (self.protocol == ProtocolName::Sip && self.sip.tcp) || h323_on_signaling,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::Duration;

    use super::super::testing::{APS_MIN, aps_err};
    use super::*;

    #[test]
    fn defaults_are_the_documented_ones() {
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
        ];
        for (text, want) in cases {
            let got = aps_err(&text);
            assert!(got.contains(want), "{want:?} not in {got:?}");
        }
    }
}
