//! `[h323]` of both roles: the MPR's H.323 ALG and the APS's, their
//! defaults and their checks.
//!
//! At the MPR the section turns the ALG on (`enabled = false` turns it off
//! again): it serves the control socket `relay_ip:port` (one of
//! `control_ports`, no other ALG's), where a TCP listener carries call
//! signaling (H.225.0 over TPKT) from public endpoints and the APSs'
//! connections, and leases the TCP listeners `h245_ports` on `relay_ip` to
//! call sides for their H.245 connections. At the APS it is used with
//! `protocol = "h323"` only (an APS registers one protocol); an `[h323]`
//! section with another `protocol` is an error. The APS's H.323 needs its
//! connection to the MPR (`upstream = "tcp"` or `"tls"`): that check is
//! the role's, in [`super::aps`]. H.323 over TLS is not served.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;

use pinhole_h323::alg as h323_alg;
use serde::Deserialize;

use super::h248::PortSpan;
use super::mpr::NetworkSection;
use super::{
    Invalid, Ports, ProtocolName, aps_media, default_aps_media_ports, invalid, peer, secs,
    table_size,
};

/// Most H.245 listeners of one pool (each is a TCP listener).
const MAX_POOL: usize = 1024;

/// What becomes of a message whose PER does not walk, as written in the
/// file.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub(crate) enum UnreadableName {
    /// Dropped (counted and logged).
    #[default]
    Drop,
    /// Forwarded as it came, but for the call reference.
    Pass,
}

impl From<UnreadableName> for h323_alg::Unreadable {
    fn from(u: UnreadableName) -> Self {
        match u {
            UnreadableName::Drop => Self::Drop,
            UnreadableName::Pass => Self::Pass,
        }
    }
}

/// `[h323]` of the MPR: its H.323 ALG (Figs. 15 and 16).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct MprH323Section {
    /// Run the H.323 ALG. Default true (the section is there).
    pub(crate) enabled: bool,
    /// Its control port on `relay_ip`, one of `control_ports` and no other
    /// ALG's: networks register their H.323 pinholes there, and a TCP
    /// listener on the same address takes call signaling. Default 1720.
    pub(crate) port: u16,
    /// TCP ports on `relay_ip` leased to call sides for their H.245
    /// connections (`"1730-1761"`): outside `control_ports` and
    /// `relay.ports`, at most 1024. Default 1730–1761.
    pub(crate) h245_ports: PortSpan,
    /// Number prefixes (`dialedDigits`, Called party number) and the
    /// network each routes to (`"+"`-less digits, `*`, `#`; longest wins):
    /// `{ "4930" = "corp1" }`. Each network must be in `[[networks]]`.
    /// Default none.
    pub(crate) numbers: BTreeMap<String, String>,
    /// Public peers whose calls are trusted (a gatekeeper, a gateway):
    /// not held to `[limits]`. Default none.
    pub(crate) trusted: Vec<IpAddr>,
    /// A message whose PER does not walk: "drop" (default) or "pass".
    pub(crate) unreadable: UnreadableName,
    /// A call not connected within this is released on both legs.
    /// Default 180.
    pub(crate) setup_timeout_secs: u64,
    /// Most calls at once. Default 10000.
    pub(crate) max_calls: usize,
}

impl Default for MprH323Section {
    fn default() -> Self {
        Self {
            enabled: true,
            port: 1720,
            h245_ports: PortSpan::Table(Ports {
                first: 1730,
                last: 1761,
            }),
            numbers: BTreeMap::new(),
            trusted: Vec::new(),
            unreadable: UnreadableName::Drop,
            setup_timeout_secs: 180,
            max_calls: 10_000,
        }
    }
}

/// What the MPR's H.323 section is checked against.
pub(super) struct MprH323At<'a> {
    pub(super) relay_ip: IpAddr,
    pub(super) control_ports: &'a [u16],
    /// The relay's port range.
    pub(super) relay: RangeInclusive<u16>,
    /// Control ports the other ALGs serve, and whose.
    pub(super) served: Vec<(u16, &'static str)>,
    /// Other TCP listeners' ports on `relay_ip` (SIP over TLS), and the
    /// key that names each.
    pub(super) tcp: Vec<(u16, &'static str)>,
    /// `[[networks]]`.
    pub(super) networks: &'a [NetworkSection],
}

impl MprH323Section {
    /// Checks the section and builds the ALG; `None` when it is disabled.
    pub(super) fn settings(
        &self,
        at: &MprH323At<'_>,
        seed: &[u8; 32],
    ) -> Result<Option<h323_alg::MprConfig>, Invalid> {
        if !self.enabled {
            return Ok(None);
        }
        let port = self.port;
        if !at.control_ports.contains(&port) {
            return Err(invalid(
                "h323.port",
                format!("{port} is not one of control_ports"),
            ));
        }
        if let Some((_, who)) = at.served.iter().find(|(p, _)| *p == port) {
            return Err(invalid(
                "h323.port",
                format!("the {who} serves that control port; give H.323 another"),
            ));
        }
        if let Some((_, who)) = at.tcp.iter().find(|(p, _)| *p == port) {
            return Err(invalid(
                "h323.port",
                format!("is {who}, another TCP listener's port; give H.323 another"),
            ));
        }
        let ports = self.h245_ports.range("h323.h245_ports")?;
        if ports.len() > MAX_POOL {
            return Err(invalid(
                "h323.h245_ports",
                format!("at most {MAX_POOL} ports (each is a TCP listener)"),
            ));
        }
        if let Some(p) = at.control_ports.iter().find(|p| ports.contains(p)) {
            return Err(invalid(
                "h323.h245_ports",
                format!("holds control port {p}"),
            ));
        }
        if let Some((p, who)) = at.tcp.iter().find(|(p, _)| ports.contains(p)) {
            return Err(invalid(
                "h323.h245_ports",
                format!("holds port {p} ({who})"),
            ));
        }
        if ports.start() <= at.relay.end() && at.relay.start() <= ports.end() {
            return Err(invalid(
                "h323.h245_ports",
                format!(
                    "overlaps relay.ports {}-{}",
                    at.relay.start(),
                    at.relay.end()
                ),
            ));
        }
        let mut numbers = Vec::with_capacity(self.numbers.len());
        for (prefix, network) in &self.numbers {
            let key = format!("h323.numbers.{prefix}");
            if prefix.is_empty()
                || prefix.len() > 32
                || !prefix
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b == b'*' || b == b'#')
            {
                return Err(invalid(
                    "h323.numbers",
                    format!("{prefix:?}: a prefix is 1 to 32 of 0-9, * and #"),
                ));
            }
            let Some(n) = at.networks.iter().find(|n| n.id == *network) else {
                return Err(invalid(
                    key,
                    format!("no network {network:?} in [[networks]]"),
                ));
            };
            if !n.protocols.is_empty() && !n.protocols.contains(&ProtocolName::H323) {
                return Err(invalid(
                    key,
                    format!("network {network:?} may not register h323 (its protocols)"),
                ));
            }
            numbers.push((prefix.clone(), network.clone()));
        }
        for (i, ip) in self.trusted.iter().enumerate() {
            if ip.is_unspecified() || ip.is_multicast() {
                return Err(invalid(
                    format!("h323.trusted[{i}]"),
                    "must be a unicast address",
                ));
            }
        }
        table_size("h323.max_calls", self.max_calls)?;
        let mut seed = *seed;
        seed[0] ^= 0x23;
        let pool = ports.map(|p| SocketAddr::new(at.relay_ip, p)).collect();
        let mut c = h323_alg::MprConfig::new(SocketAddr::new(at.relay_ip, port), pool, seed);
        c.numbers = numbers;
        c.trusted.clone_from(&self.trusted);
        c.unreadable = self.unreadable.into();
        c.setup_timeout = secs("h323.setup_timeout_secs", self.setup_timeout_secs)?;
        c.max_calls = self.max_calls;
        Ok(Some(c))
    }
}

/// `[h323]` of the APS: its H.323 ALG (Fig. 15), used when
/// `protocol = "h323"`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ApsH323Section {
    /// The inside call-signaling address (TCP) terminals send their Setups
    /// to; written as the call-signal address toward them. Default: the
    /// signaling address.
    pub(crate) inside: Option<SocketAddr>,
    /// TCP ports on `inside`'s address leased to terminals for their H.245
    /// connections: not `inside`'s port, at most 1024. Default 1740–1771.
    pub(crate) h245_ports: PortSpan,
    /// Aliases (`h323-ID`, `url-ID`, `email-ID`, `dialedDigits`; a bare
    /// user part matches `user@…`) and the terminal's call-signaling
    /// address each is at: `{ "alice" = "10.1.0.20:1720" }`. Default none.
    pub(crate) aliases: BTreeMap<String, SocketAddr>,
    /// The terminal a Setup from the MPR with no known alias goes to.
    /// Default none: such Setups are refused.
    pub(crate) inside_default: Option<SocketAddr>,
    /// The inside address media ports B are bound on. Default: the
    /// signaling socket's address.
    pub(crate) media_ip: Option<IpAddr>,
    /// Media ports B. Default 40000–40999.
    pub(crate) media_ports: Ports,
    /// A message whose PER does not walk: "drop" (default) or "pass".
    pub(crate) unreadable: UnreadableName,
    /// A call not connected within this is released. Default 180.
    pub(crate) setup_timeout_secs: u64,
    /// Most calls at once. Default 1000.
    pub(crate) max_calls: usize,
}

impl Default for ApsH323Section {
    fn default() -> Self {
        Self {
            inside: None,
            h245_ports: PortSpan::Table(Ports {
                first: 1740,
                last: 1771,
            }),
            aliases: BTreeMap::new(),
            inside_default: None,
            media_ip: None,
            media_ports: default_aps_media_ports(),
            unreadable: UnreadableName::Drop,
            setup_timeout_secs: 180,
            max_calls: 1000,
        }
    }
}

/// A terminal's call-signaling address: a unicast address and a port.
fn terminal(key: &str, a: SocketAddr) -> Result<(), Invalid> {
    if a.ip().is_unspecified() || a.ip().is_multicast() || a.port() == 0 {
        return Err(invalid(key, "must be the terminal's address and port"));
    }
    Ok(())
}

impl ApsH323Section {
    /// Checks the section and builds the ALG of the APS whose signaling
    /// socket is `signaling`.
    pub(super) fn settings(
        &self,
        signaling: SocketAddr,
        seed: [u8; 32],
    ) -> Result<h323_alg::ClientConfig, Invalid> {
        let inside = self.inside.unwrap_or(signaling);
        if inside.ip().is_unspecified() || inside.ip().is_multicast() || inside.port() == 0 {
            return Err(invalid(
                "h323.inside",
                format!(
                    "{inside} must be an address and port of the APS (terminals connect to it; default: signaling)"
                ),
            ));
        }
        let ports = self.h245_ports.range("h323.h245_ports")?;
        if ports.len() > MAX_POOL {
            return Err(invalid(
                "h323.h245_ports",
                format!("at most {MAX_POOL} ports (each is a TCP listener)"),
            ));
        }
        if ports.contains(&inside.port()) {
            return Err(invalid(
                "h323.h245_ports",
                format!("holds port {} of h323.inside", inside.port()),
            ));
        }
        let (media_ip, range) = aps_media(
            "h323",
            self.media_ip,
            self.media_ports,
            signaling,
            "terminals",
        )?;
        let mut aliases = Vec::with_capacity(self.aliases.len());
        for (alias, at) in &self.aliases {
            if alias.is_empty() || alias.len() > 256 {
                return Err(invalid("h323.aliases", "an alias must be 1 to 256 bytes"));
            }
            terminal(&format!("h323.aliases.{alias}"), *at)?;
            aliases.push((alias.clone(), *at));
        }
        peer("h323.inside_default", self.inside_default)?;
        table_size("h323.max_calls", self.max_calls)?;
        let mut seed = seed;
        seed[0] ^= 0x32;
        let pool = ports.map(|p| SocketAddr::new(inside.ip(), p)).collect();
        let mut c = h323_alg::ClientConfig::aps(inside, pool, media_ip, range, seed);
        c.aliases = aliases;
        c.inside_default = self.inside_default;
        c.unreadable = self.unreadable.into();
        c.setup_timeout = secs("h323.setup_timeout_secs", self.setup_timeout_secs)?;
        c.max_calls = self.max_calls;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::net::SocketAddr;

    use pinhole_core::wire::Protocol;
    use pinhole_h323::alg::{Mode, Unreadable};

    use super::super::testing::{MPR_MIN, aps_err, mpr_err};
    use super::super::{ApsFile, MprFile};

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// An MPR with SIP on 5060, MGCP on 2727, H.248 on 2944 and `[h323]`.
    fn mpr(h323: &str) -> String {
        format!(
            "control_ports = [5060, 2727, 2944, 1720]\n{MPR_MIN}[mgcp]\nenabled = true\n\
             [h248]\nlocal = \"127.0.0.3:2944\"\nmgc = \"198.51.100.7:2944\"\nmg_ports = \"2950-2999\"\n\
             [h323]\n{h323}"
        )
    }

    #[test]
    fn mpr_section_defaults() {
        let s = MprFile::parse(MPR_MIN).unwrap().validate([0; 32]).unwrap();
        assert!(s.h323.is_none(), "off without the section");
        let s = MprFile::parse(&mpr("")).unwrap().validate([0; 32]).unwrap();
        let h = s.h323.expect("H.323 ALG on with an empty section");
        assert_eq!(h.signaling, addr("127.0.0.3:1720"));
        assert_eq!(h.h245_pool.len(), 32);
        assert_eq!(h.h245_pool[0], addr("127.0.0.3:1730"));
        assert_eq!(h.h245_pool[31], addr("127.0.0.3:1761"));
        assert!(h.numbers.is_empty() && h.trusted.is_empty());
        assert_eq!(h.unreadable, Unreadable::Drop);
        assert_eq!(h.setup_timeout.as_secs(), 180);
        assert_eq!(h.max_calls, 10_000);
        assert!(
            s.sip.is_some() && s.mgcp.is_some() && s.h248.is_some(),
            "all four side by side"
        );
        let s = MprFile::parse(&mpr("enabled = false\n"))
            .unwrap()
            .validate([0; 32])
            .unwrap();
        assert!(s.h323.is_none());
    }

    #[test]
    fn mpr_full_section() {
        let text = format!(
            "control_ports = [5060, 1721]\n{MPR_MIN}[[networks]]\nid = \"corp2\"\ncredential = \"t\"\n\
             protocols = [\"h323\"]\n\
             [h323]\nport = 1721\nh245_ports = {{ first = 1800, last = 1803 }}\n\
             trusted = [\"198.51.100.9\"]\nunreadable = \"pass\"\nsetup_timeout_secs = 60\n\
             max_calls = 7\n[h323.numbers]\n\"4930\" = \"corp1\"\n\"4940*\" = \"corp2\"\n"
        );
        let h = MprFile::parse(&text)
            .unwrap()
            .validate([0; 32])
            .unwrap()
            .h323
            .unwrap();
        assert_eq!(h.signaling, addr("127.0.0.3:1721"));
        assert_eq!(
            h.h245_pool,
            (1800..=1803)
                .map(|p| SocketAddr::new(h.signaling.ip(), p))
                .collect::<Vec<_>>()
        );
        assert_eq!(
            h.numbers,
            [
                ("4930".to_owned(), "corp1".to_owned()),
                ("4940*".to_owned(), "corp2".to_owned())
            ]
        );
        assert_eq!(
            h.trusted,
            ["198.51.100.9".parse::<std::net::IpAddr>().unwrap()]
        );
        assert_eq!(h.unreadable, Unreadable::Pass);
        assert_eq!((h.setup_timeout.as_secs(), h.max_calls), (60, 7));
        // The text form of the range, and one port.
        let one = MprFile::parse(&mpr("h245_ports = \"1730\"\n"))
            .unwrap()
            .validate([0; 32])
            .unwrap();
        assert_eq!(one.h323.unwrap().h245_pool, [addr("127.0.0.3:1730")]);
    }

    #[test]
    fn bad_mpr_values_name_the_key() {
        let cases = [
            (
                "port = 1722\n",
                "h323.port: 1722 is not one of control_ports",
            ),
            (
                "port = 5060\n",
                "h323.port: the SIP proxy serves that control port",
            ),
            (
                "port = 2727\n",
                "h323.port: the MGCP ALG serves that control port",
            ),
            (
                "port = 2944\n",
                "h323.port: the H.248 ALG serves that control port",
            ),
            (
                "h245_ports = \"17x0-1761\"\n",
                "h323.h245_ports: \"17x0-1761\" is not a port range",
            ),
            (
                "h245_ports = \"1761-1730\"\n",
                "h323.h245_ports: first must be 1..=last",
            ),
            (
                "h245_ports = \"1700-1730\"\n",
                "h323.h245_ports: holds control port 1720",
            ),
            (
                "h245_ports = \"39990-40010\"\n",
                "h323.h245_ports: overlaps relay.ports 20000-39999",
            ),
            (
                "h245_ports = \"1000-3000\"\n",
                "h323.h245_ports: at most 1024 ports",
            ),
            (
                "[h323.numbers]\n\"49\" = \"corp9\"\n",
                "h323.numbers.49: no network \"corp9\" in [[networks]]",
            ),
            (
                "[h323.numbers]\n\"+49\" = \"corp1\"\n",
                "h323.numbers: \"+49\": a prefix is 1 to 32 of 0-9, * and #",
            ),
            (
                "trusted = [\"0.0.0.0\"]\n",
                "h323.trusted[0]: must be a unicast address",
            ),
            ("unreadable = \"keep\"\n", "unknown variant `keep`"),
            (
                "setup_timeout_secs = 0\n",
                "h323.setup_timeout_secs: must be at least 1 second",
            ),
            ("max_calls = 0\n", "h323.max_calls: must be 1 to 10000000"),
            ("ports = \"1-2\"\n", "unknown field `ports`"),
        ];
        for (h323, want) in cases {
            let got = mpr_err(&mpr(h323));
            assert!(got.contains(want), "{want:?} not in {got:?}");
        }
        // A network that may not register H.323 is no route for numbers.
        let got = mpr_err(&format!(
            "control_ports = [5060, 1720]\n{}protocols = [\"sip\"]\n[h323.numbers]\n\"49\" = \"corp1\"\n",
            MPR_MIN
        ));
        assert!(
            got.contains("h323.numbers.49: network \"corp1\" may not register h323"),
            "{got}"
        );
        // Not on SIP's TLS port either.
        let got = mpr_err(&format!(
            "control_ports = [5060, 5061]\n{MPR_MIN}[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n\
             [h323]\nport = 5061\n"
        ));
        assert!(
            got.contains("h323.port: is sip.tls_port, another TCP listener's port"),
            "{got}"
        );
    }

    const APS: &str = "network = \"corp1\"\ncredential = \"s\"\nprotocol = \"h323\"\n\
                       signaling = \"10.1.0.2:1720\"\nmpr = \"203.0.113.10:1720\"\nupstream = \"tcp\"\n";

    #[test]
    fn aps_section_defaults() {
        let s = ApsFile::parse(APS).unwrap().validate([0; 32]).unwrap();
        assert_eq!(s.engine.protocol, Protocol::H323);
        assert!(s.sip.is_none() && s.mgcp.is_none() && s.h248.is_none());
        let h = s.h323.expect("defaults without the section");
        assert_eq!(h.mode, Mode::Aps);
        assert_eq!(h.inside, addr("10.1.0.2:1720"));
        assert_eq!(h.h245_pool.len(), 32);
        assert_eq!(h.h245_pool[0], addr("10.1.0.2:1740"));
        assert_eq!(h.h245_pool[31], addr("10.1.0.2:1771"));
        assert_eq!(h.media_ip, "10.1.0.2".parse::<std::net::IpAddr>().unwrap());
        assert_eq!((h.ports.first, h.ports.last), (40_000, 40_999));
        assert!(h.aliases.is_empty() && h.inside_default.is_none());
        assert_eq!(h.unreadable, Unreadable::Drop);
        assert_eq!((h.setup_timeout.as_secs(), h.max_calls), (180, 1000));
        // The signaling address is the inside one: TCP there, and the pool.
        assert!(s.phones_tcp);
        assert_eq!(s.listen_also, h.h245_pool);
        // Without `upstream`, H.323 goes over TCP.
        let s = ApsFile::parse(&APS.replace("upstream = \"tcp\"\n", ""))
            .unwrap()
            .validate([0; 32])
            .unwrap();
        assert_eq!(s.engine.upstream, pinhole_core::types::Transport::Tcp);
    }

    #[test]
    fn aps_full_section() {
        let text = format!(
            "{APS}[h323]\ninside = \"10.1.0.3:1720\"\nh245_ports = \"1800-1801\"\n\
             inside_default = \"10.1.0.30:1720\"\nmedia_ip = \"10.1.0.4\"\n\
             media_ports = {{ first = 41000, last = 41099 }}\nunreadable = \"pass\"\n\
             setup_timeout_secs = 30\nmax_calls = 5\n\
             [h323.aliases]\n\"alice\" = \"10.1.0.20:1720\"\n\"bob@corp1.example\" = \"10.1.0.21:1720\"\n"
        );
        let s = ApsFile::parse(&text).unwrap().validate([0; 32]).unwrap();
        let h = s.h323.unwrap();
        assert_eq!(h.inside, addr("10.1.0.3:1720"));
        assert_eq!(h.h245_pool, [addr("10.1.0.3:1800"), addr("10.1.0.3:1801")]);
        assert_eq!(
            h.aliases,
            [
                ("alice".to_owned(), addr("10.1.0.20:1720")),
                ("bob@corp1.example".to_owned(), addr("10.1.0.21:1720")),
            ]
        );
        assert_eq!(h.inside_default, Some(addr("10.1.0.30:1720")));
        assert_eq!(h.media_ip, "10.1.0.4".parse::<std::net::IpAddr>().unwrap());
        assert_eq!((h.ports.first, h.ports.last), (41_000, 41_099));
        assert_eq!(h.unreadable, Unreadable::Pass);
        assert_eq!((h.setup_timeout.as_secs(), h.max_calls), (30, 5));
        // The inside address is not the signaling one: no TCP on the
        // signaling address; the inside one and the pool instead.
        assert!(!s.phones_tcp);
        assert_eq!(
            s.listen_also,
            [
                addr("10.1.0.3:1720"),
                addr("10.1.0.3:1800"),
                addr("10.1.0.3:1801")
            ]
        );
    }

    #[test]
    fn bad_aps_values_name_the_key() {
        let cases = [
            (
                "inside = \"0.0.0.0:1720\"\n",
                "h323.inside: 0.0.0.0:1720 must be an address and port of the APS",
            ),
            (
                "h245_ports = \"1700-1730\"\n",
                "h323.h245_ports: holds port 1720 of h323.inside",
            ),
            (
                "h245_ports = \"a-b\"\n",
                "h323.h245_ports: \"a-b\" is not a port range",
            ),
            (
                "h245_ports = { first = 0, last = 10 }\n",
                "h323.h245_ports: first must be 1..=last",
            ),
            (
                "h245_ports = \"2000-4000\"\n",
                "h323.h245_ports: at most 1024 ports",
            ),
            (
                "media_ports = { first = 41000, last = 40000 }\n",
                "h323.media_ports",
            ),
            (
                "media_ip = \"0.0.0.0\"\n",
                "h323.media_ip: must be a unicast address",
            ),
            (
                "inside_default = \"10.1.0.30:0\"\n",
                "h323.inside_default: must be an address and port",
            ),
            ("unreadable = \"keep\"\n", "unknown variant `keep`"),
            ("max_calls = 0\n", "h323.max_calls: must be 1 to 10000000"),
            (
                "setup_timeout_secs = 0\n",
                "h323.setup_timeout_secs: must be at least 1 second",
            ),
            (
                "[h323.aliases]\n\"alice\" = \"10.1.0.20:0\"\n",
                "h323.aliases.alice: must be the terminal's address and port",
            ),
            ("port = 1720\n", "unknown field `port`"),
        ];
        for (h323, want) in cases {
            let got = aps_err(&format!("{APS}[h323]\n{h323}"));
            assert!(got.contains(want), "{want:?} not in {got:?}");
        }
        // H.323 needs the TCP connection to the MPR (no TLS for it yet).
        for other in ["\"udp\"", "\"tls\""] {
            let got = aps_err(&APS.replace("\"tcp\"", other));
            assert!(
                got.contains("upstream: H.323 needs a TCP connection to the MPR")
                    || got.contains("[tls]"),
                "{other}: {got}"
            );
        }
        // The signaling address as inside one must be one terminals reach.
        let got = aps_err(&APS.replace("10.1.0.2:1720", "0.0.0.0:1720"));
        assert!(got.contains("h323.inside: 0.0.0.0:1720"), "{got}");
        // [h323] belongs to an APS that registers H.323.
        let got = aps_err(&format!(
            "{}[h323]\nmax_calls = 5\n",
            APS.replace("\"h323\"", "\"sip\"")
        ));
        assert!(got.contains("h323: needs protocol = \"h323\""), "{got}");
    }
}
