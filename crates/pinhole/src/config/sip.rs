//! `[sip]` of both roles: the MPR's SIP proxy and the APS's, their
//! defaults and their checks.

use std::net::{IpAddr, SocketAddr};

use pinhole_sip::alg as sip_alg;
use serde::Deserialize;

use super::streams::TransportName;
use super::{Invalid, Ports, aps_media, default_aps_media_ports, invalid, peer, table_size};

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
    /// Public peers trusted like the outbound proxy (trunks, media
    /// servers): their calls are not held to `[limits]`. Default none.
    pub(crate) trusted: Vec<IpAddr>,
    /// Also listen for SIP over TCP on the SIP control address. Default true.
    pub(crate) tcp: bool,
    /// With `[tls]`: the port on `relay_ip` where SIP over TLS (and the
    /// APSs' signaling connections) are accepted. Default 5061.
    pub(crate) tls_port: u16,
}

impl Default for MprSipSection {
    fn default() -> Self {
        Self {
            enabled: true,
            outbound_proxy: None,
            registrar: None,
            max_dialogs: 100_000,
            trusted: Vec::new(),
            tcp: true,
            tls_port: 5061,
        }
    }
}

impl MprSipSection {
    /// Checks the section and builds the proxy serving `local` (the first
    /// control socket); `None` when it is disabled.
    pub(super) fn settings(
        &self,
        local: SocketAddr,
        seed: &[u8; 32],
    ) -> Result<Option<sip_alg::MprConfig>, Invalid> {
        if !self.enabled {
            return Ok(None);
        }
        table_size("sip.max_dialogs", self.max_dialogs)?;
        peer("sip.outbound_proxy", self.outbound_proxy)?;
        peer("sip.registrar", self.registrar)?;
        // Each ALG gets its own seed, derived from the daemon's.
        let mut seed = *seed;
        seed[0] ^= 0x21;
        let mut c = sip_alg::MprConfig::new(local, seed);
        c.outbound_proxy = self.outbound_proxy;
        c.registrar = self.registrar;
        c.max_dialogs = self.max_dialogs;
        for (i, ip) in self.trusted.iter().enumerate() {
            if ip.is_unspecified() || ip.is_multicast() {
                return Err(invalid(
                    format!("sip.trusted[{i}]"),
                    "must be a unicast address",
                ));
            }
        }
        c.trusted.clone_from(&self.trusted);
        Ok(Some(c))
    }
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
    /// How requests reach `inside_default`. Default "udp".
    pub(crate) inside_transport: TransportName,
    /// Phones may also use TCP to the APS's signaling address. Default true.
    pub(crate) tcp: bool,
}

impl Default for ApsSipSection {
    fn default() -> Self {
        Self {
            media_ip: None,
            media_ports: default_aps_media_ports(),
            inside_default: None,
            max_dialogs: 50_000,
            inside_transport: TransportName::Udp,
            tcp: true,
        }
    }
}

impl ApsSipSection {
    /// Checks the section and builds the proxy of the APS whose signaling
    /// socket is `signaling`.
    pub(super) fn settings(
        &self,
        signaling: SocketAddr,
        seed: [u8; 32],
    ) -> Result<sip_alg::ApsConfig, Invalid> {
        let (media_ip, range) =
            aps_media("sip", self.media_ip, self.media_ports, signaling, "phones")?;
        table_size("sip.max_dialogs", self.max_dialogs)?;
        let mut seed = seed;
        seed[0] ^= 0x5a;
        let mut c = sip_alg::ApsConfig::new(signaling, media_ip, range, seed);
        c.inside_default = self.inside_default;
        c.inside_transport = self.inside_transport.into();
        c.max_dialogs = self.max_dialogs;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::super::testing::{APS_MIN, MPR_MIN, aps_err, mpr_err};

    #[test]
    fn bad_mpr_values_name_the_key() {
        let cases = [
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
}
