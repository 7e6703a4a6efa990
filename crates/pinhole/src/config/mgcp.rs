//! `[mgcp]` of both roles: the MPR's MGCP ALG and the APS's, their
//! defaults and their checks.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use pinhole_mgcp::alg as mgcp_alg;
use serde::Deserialize;

use super::{Invalid, Ports, aps_media, default_aps_media_ports, invalid, peer, table_size};

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

impl MprMgcpSection {
    /// Checks the section against the MPR's `relay_ip` and `control_ports`
    /// (`sip_on`: the SIP proxy holds the first) and builds the ALG; `None`
    /// when it is disabled.
    pub(super) fn settings(
        &self,
        relay_ip: IpAddr,
        control_ports: &[u16],
        sip_on: bool,
        seed: &[u8; 32],
    ) -> Result<Option<mgcp_alg::MprConfig>, Invalid> {
        if !self.enabled {
            return Ok(None);
        }
        if !control_ports.contains(&self.port) {
            return Err(invalid(
                "mgcp.port",
                format!("{} is not one of control_ports", self.port),
            ));
        }
        if sip_on && control_ports.first() == Some(&self.port) {
            return Err(invalid(
                "mgcp.port",
                "the SIP proxy serves the first control port; give MGCP another",
            ));
        }
        peer("mgcp.call_agent", self.call_agent)?;
        table_size("mgcp.max_calls", self.max_calls)?;
        table_size("mgcp.max_transactions", self.max_transactions)?;
        let mut c = mgcp_alg::MprConfig::new(SocketAddr::new(relay_ip, self.port));
        c.call_agent = self.call_agent;
        c.max_calls = self.max_calls;
        c.max_transactions = self.max_transactions;
        // A restarted MPR numbers the gateways' commands elsewhere, so the
        // call agent takes none for a retransmission of an old one.
        let r = u32::from_le_bytes([seed[8], seed[9], seed[10], seed[11]]);
        c.first_transaction_id = 1 + r % 900_000_000;
        Ok(Some(c))
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
    pub(crate) gateways: BTreeMap<String, SocketAddr>,
    /// Most connections tracked at once. Default 50000.
    pub(crate) max_connections: usize,
}

impl Default for ApsMgcpSection {
    fn default() -> Self {
        Self {
            media_ip: None,
            media_ports: default_aps_media_ports(),
            gateways: BTreeMap::new(),
            max_connections: 50_000,
        }
    }
}

impl ApsMgcpSection {
    /// Checks the section and builds the ALG of the APS whose signaling
    /// socket is `signaling`.
    pub(super) fn settings(
        &self,
        signaling: SocketAddr,
        seed: [u8; 32],
    ) -> Result<mgcp_alg::ApsConfig, Invalid> {
        let (media_ip, range) = aps_media(
            "mgcp",
            self.media_ip,
            self.media_ports,
            signaling,
            "gateways",
        )?;
        table_size("mgcp.max_connections", self.max_connections)?;
        let mut gateways = Vec::with_capacity(self.gateways.len());
        for (domain, addr) in &self.gateways {
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
        let mut c = mgcp_alg::ApsConfig::new(signaling, media_ip, range, seed);
        c.gateways = gateways;
        c.max_connections = self.max_connections;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use pinhole_core::wire::Protocol;

    use super::super::testing::{MPR_MIN, aps_err, mpr_err};
    use super::super::{ApsFile, MprFile};
    use super::*;

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
}
