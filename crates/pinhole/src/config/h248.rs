//! `[h248]` of both roles: the MPR's H.248 ALG and the APS's, their
//! defaults and their checks.
//!
//! At the MPR the section turns the ALG on (`enabled = false` turns it off
//! again): it serves one of `control_ports` (`local`, not the SIP proxy's
//! nor the MGCP ALG's) and gives each media gateway a port of `mg_ports`
//! on `relay_ip` toward the MGC. At the APS it is used with
//! `protocol = "h248"` only (an APS registers one protocol); an `[h248]`
//! section with another `protocol` is an error.

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;

use pinhole_h248::alg as h248_alg;
use serde::Deserialize;

use super::{Invalid, Ports, aps_media, default_aps_media_ports, invalid, secs, table_size};

/// A port range as written in the file: `"2950-2999"`, `"2950"` or
/// `{ first = 2950, last = 2999 }`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub(crate) enum PortSpan {
    /// `"first-last"` or one port.
    Text(String),
    /// `{ first, last }`.
    Table(Ports),
}

impl PortSpan {
    /// The range, checked: `1 <= first <= last`.
    pub(super) fn range(&self, key: &str) -> Result<RangeInclusive<u16>, Invalid> {
        let (first, last) = match self {
            Self::Table(p) => (p.first, p.last),
            Self::Text(t) => {
                let bad = || invalid(key, format!("{t:?} is not a port range like \"2950-2999\""));
                let port = |s: &str| s.trim().parse::<u16>().map_err(|_| bad());
                match t.split_once('-') {
                    Some((a, b)) => (port(a)?, port(b)?),
                    None => {
                        let p = port(t)?;
                        (p, p)
                    }
                }
            }
        };
        if first == 0 || first > last {
            return Err(invalid(key, "first must be 1..=last"));
        }
        Ok(first..=last)
    }
}

/// `[h248]` of the MPR: its H.248 ALG (Figs. 13 and 14).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct MprH248Section {
    /// Run the H.248 ALG. Default true (the section is there).
    #[serde(default = "yes")]
    pub(crate) enabled: bool,
    /// The control socket it serves (`relay_ip` and one of
    /// `control_ports`): networks register their H.248 pinholes with it
    /// and the gateways' messages arrive on it. Required.
    pub(crate) local: SocketAddr,
    /// The media gateway controller. Required.
    pub(crate) mgc: SocketAddr,
    /// Ports on `relay_ip`, one per media gateway toward the MGC
    /// (`"2950-2999"`): outside `control_ports` and `relay.ports`. Required.
    pub(crate) mg_ports: PortSpan,
    /// The MPR's own `mId` in the error replies it writes. Default
    /// `[ip]:port` of `local`.
    #[serde(default)]
    pub(crate) mid: Option<String>,
    /// Most transactions tracked at once. Default 100000.
    #[serde(default = "hundred_thousand")]
    pub(crate) max_transactions: usize,
    /// Most calls tracked at once. Default 100000.
    #[serde(default = "hundred_thousand")]
    pub(crate) max_calls: usize,
    /// Most terminations tracked at once. Default 200000.
    #[serde(default = "two_hundred_thousand")]
    pub(crate) max_terminations: usize,
    /// How long a transaction is kept after its last message. Default 30.
    #[serde(default = "thirty")]
    pub(crate) transaction_timeout_secs: u64,
    /// A call whose terminations never got media is forgotten after this.
    /// Default 180.
    #[serde(default = "setup_default")]
    pub(crate) setup_timeout_secs: u64,
    /// A call with no H.248 message for this long is forgotten. Default
    /// 14400.
    #[serde(default = "four_hours")]
    pub(crate) call_idle_secs: u64,
    /// A gateway with no message and no termination for this long gives
    /// its port back. Default 86400.
    #[serde(default = "one_day")]
    pub(crate) gateway_idle_secs: u64,
}

fn yes() -> bool {
    true
}
fn hundred_thousand() -> usize {
    100_000
}
fn two_hundred_thousand() -> usize {
    200_000
}
fn thirty() -> u64 {
    30
}
fn setup_default() -> u64 {
    180
}
fn four_hours() -> u64 {
    4 * 3600
}
fn one_day() -> u64 {
    24 * 3600
}

/// An `mId` as written in the file: non-empty, no white space.
fn mid(key: &str, v: &str) -> Result<(), Invalid> {
    if v.is_empty() || v.len() > 253 || v.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return Err(invalid(key, "must be 1 to 253 bytes with no white space"));
    }
    Ok(())
}

/// What the MPR's H.248 section is checked against.
pub(super) struct MprPorts<'a> {
    pub(super) relay_ip: IpAddr,
    pub(super) control_ports: &'a [u16],
    /// The relay's port range.
    pub(super) relay: RangeInclusive<u16>,
    /// The SIP proxy's port, when on.
    pub(super) sip: Option<u16>,
    /// The MGCP ALG's port, when on.
    pub(super) mgcp: Option<u16>,
}

impl MprH248Section {
    /// Checks the section and builds the ALG; `None` when it is disabled.
    pub(super) fn settings(
        &self,
        at: &MprPorts<'_>,
    ) -> Result<Option<h248_alg::MprConfig>, Invalid> {
        if !self.enabled {
            return Ok(None);
        }
        let local = self.local;
        if local.ip() != at.relay_ip {
            return Err(invalid(
                "h248.local",
                format!("must be on relay_ip {} (a control socket)", at.relay_ip),
            ));
        }
        if !at.control_ports.contains(&local.port()) {
            return Err(invalid(
                "h248.local",
                format!("port {} is not one of control_ports", local.port()),
            ));
        }
        if at.sip == Some(local.port()) {
            return Err(invalid(
                "h248.local",
                "the SIP proxy serves that control port; give H.248 another",
            ));
        }
        if at.mgcp == Some(local.port()) {
            return Err(invalid(
                "h248.local",
                "the MGCP ALG serves that control port; give H.248 another",
            ));
        }
        if self.mgc.ip().is_unspecified() || self.mgc.ip().is_multicast() || self.mgc.port() == 0 {
            return Err(invalid("h248.mgc", "must be the MGC's address and port"));
        }
        let ports = self.mg_ports.range("h248.mg_ports")?;
        if let Some(p) = at.control_ports.iter().find(|p| ports.contains(p)) {
            return Err(invalid("h248.mg_ports", format!("holds control port {p}")));
        }
        if ports.start() <= at.relay.end() && at.relay.start() <= ports.end() {
            return Err(invalid(
                "h248.mg_ports",
                format!(
                    "overlaps relay.ports {}-{}",
                    at.relay.start(),
                    at.relay.end()
                ),
            ));
        }
        table_size("h248.max_transactions", self.max_transactions)?;
        table_size("h248.max_calls", self.max_calls)?;
        table_size("h248.max_terminations", self.max_terminations)?;
        let mut c = h248_alg::MprConfig::new(local, self.mgc, ports);
        if let Some(m) = &self.mid {
            mid("h248.mid", m)?;
            c.mid.clone_from(m);
        }
        c.max_transactions = self.max_transactions;
        c.max_calls = self.max_calls;
        c.max_terminations = self.max_terminations;
        c.transaction_timeout = secs(
            "h248.transaction_timeout_secs",
            self.transaction_timeout_secs,
        )?;
        c.setup_timeout = secs("h248.setup_timeout_secs", self.setup_timeout_secs)?;
        c.call_idle = secs("h248.call_idle_secs", self.call_idle_secs)?;
        c.gateway_idle = secs("h248.gateway_idle_secs", self.gateway_idle_secs)?;
        Ok(Some(c))
    }
}

/// A gateway of `[h248] gateways`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct GatewayEntry {
    /// Its `mId`, as it writes it (`"[10.1.0.20]:2944"`, `"<mg1.corp1>"`).
    pub(crate) mid: String,
    /// Its H.248 address.
    pub(crate) addr: SocketAddr,
}

/// `[h248]` of the APS: its H.248 ALG, used when `protocol = "h248"`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ApsH248Section {
    /// The APS's H.248 address (the inside gateways' MGC). It is the
    /// signaling socket (the APS has one); when given it must be equal to
    /// `signaling`. Default: `signaling`.
    pub(crate) local: Option<SocketAddr>,
    /// The APS's own `mId`, in its error replies and its own Subtracts.
    /// Default `[ip]:port` of `signaling`.
    pub(crate) mid: Option<String>,
    /// The inside address media ports B are bound on. Default: the
    /// signaling socket's address.
    pub(crate) media_ip: Option<IpAddr>,
    /// Media ports B. Default 40000–40999.
    pub(crate) media_ports: Ports,
    /// Inside gateways known from the start (`[{ mid = "...", addr =
    /// "ip:port" }]`); others are learned from their messages. Default
    /// none.
    pub(crate) gateways: Vec<GatewayEntry>,
    /// Most gateways known at once. Default 1000.
    pub(crate) max_gateways: usize,
    /// Most terminations tracked at once. Default 50000.
    pub(crate) max_terminations: usize,
    /// Most transactions tracked at once. Default 100000.
    pub(crate) max_transactions: usize,
    /// Most messages held per gateway while pinholes open, 1–1024.
    /// Default 16.
    pub(crate) max_parked: usize,
    /// How long a transaction is kept after its last message. Default 30.
    pub(crate) transaction_timeout_secs: u64,
    /// A termination (and a learned gateway) with no message for this long
    /// is forgotten. Default 14400.
    pub(crate) termination_idle_secs: u64,
}

impl Default for ApsH248Section {
    fn default() -> Self {
        Self {
            local: None,
            mid: None,
            media_ip: None,
            media_ports: default_aps_media_ports(),
            gateways: Vec::new(),
            max_gateways: 1000,
            max_terminations: 50_000,
            max_transactions: 100_000,
            max_parked: 16,
            transaction_timeout_secs: 30,
            termination_idle_secs: 4 * 3600,
        }
    }
}

impl ApsH248Section {
    /// Checks the section and builds the ALG of the APS whose signaling
    /// socket is `signaling`.
    pub(super) fn settings(
        &self,
        signaling: SocketAddr,
        seed: [u8; 32],
    ) -> Result<h248_alg::ApsConfig, Invalid> {
        if let Some(l) = self.local
            && l != signaling
        {
            return Err(invalid(
                "h248.local",
                format!("must be the APS's signaling address {signaling} (its one H.248 socket)"),
            ));
        }
        let (media_ip, range) = aps_media(
            "h248",
            self.media_ip,
            self.media_ports,
            signaling,
            "gateways",
        )?;
        table_size("h248.max_gateways", self.max_gateways)?;
        table_size("h248.max_terminations", self.max_terminations)?;
        table_size("h248.max_transactions", self.max_transactions)?;
        if !(1..=1024).contains(&self.max_parked) {
            return Err(invalid("h248.max_parked", "must be 1 to 1024"));
        }
        let mut gateways: Vec<(String, SocketAddr)> = Vec::with_capacity(self.gateways.len());
        for (i, g) in self.gateways.iter().enumerate() {
            mid(&format!("h248.gateways[{i}].mid"), &g.mid)?;
            if gateways.iter().any(|(m, _)| m.eq_ignore_ascii_case(&g.mid)) {
                return Err(invalid(
                    format!("h248.gateways[{i}].mid"),
                    format!("{:?} is configured twice", g.mid),
                ));
            }
            if g.addr.ip().is_unspecified() || g.addr.ip().is_multicast() || g.addr.port() == 0 {
                return Err(invalid(
                    format!("h248.gateways[{i}].addr"),
                    "must be the gateway's address and port",
                ));
            }
            gateways.push((g.mid.clone(), g.addr));
        }
        let mut seed = seed;
        seed[0] ^= 0x48;
        let mut c = h248_alg::ApsConfig::new(signaling, media_ip, range, seed);
        if let Some(m) = &self.mid {
            mid("h248.mid", m)?;
            c.mid.clone_from(m);
        }
        c.gateways = gateways;
        c.max_gateways = self.max_gateways;
        c.max_terminations = self.max_terminations;
        c.max_transactions = self.max_transactions;
        c.max_parked = self.max_parked;
        c.transaction_timeout = secs(
            "h248.transaction_timeout_secs",
            self.transaction_timeout_secs,
        )?;
        c.termination_idle = secs("h248.termination_idle_secs", self.termination_idle_secs)?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use pinhole_core::wire::Protocol;

    use super::super::testing::{MPR_MIN, aps_err, mpr_err};
    use super::super::{ApsFile, MprFile};

    /// An MPR with SIP on 5060, MGCP on 2727 and H.248 on 2944.
    fn mpr(h248: &str) -> String {
        format!(
            "control_ports = [5060, 2727, 2944]\n{MPR_MIN}[mgcp]\nenabled = true\n[h248]\n{h248}"
        )
    }

    const MPR_H248: &str =
        "local = \"127.0.0.3:2944\"\nmgc = \"198.51.100.7:2944\"\nmg_ports = \"2950-2999\"\n";

    #[test]
    fn mpr_section_builds_the_alg() {
        let s = MprFile::parse(MPR_MIN).unwrap().validate([0; 32]).unwrap();
        assert!(s.h248.is_none(), "off without the section");
        let s = MprFile::parse(&mpr(MPR_H248))
            .unwrap()
            .validate([0; 32])
            .unwrap();
        let h = s.h248.expect("H.248 ALG on");
        assert_eq!(h.local, "127.0.0.3:2944".parse().unwrap());
        assert_eq!(h.mgc, "198.51.100.7:2944".parse().unwrap());
        assert_eq!(h.mg_ports, 2950..=2999);
        assert_eq!(h.mid, "[127.0.0.3]:2944");
        assert_eq!(h.transaction_timeout.as_secs(), 30);
        assert!(
            s.sip.is_some() && s.mgcp.is_some(),
            "all three side by side"
        );
        let s = MprFile::parse(&mpr(&format!(
            "{}mid = \"<mpr.example>\"\nmax_calls = 7\ncall_idle_secs = 60\n",
            MPR_H248.replace("\"2950-2999\"", "{ first = 2950, last = 2951 }")
        )))
        .unwrap()
        .validate([0; 32])
        .unwrap();
        let h = s.h248.unwrap();
        assert_eq!(h.mg_ports, 2950..=2951);
        assert_eq!((h.mid.as_str(), h.max_calls), ("<mpr.example>", 7));
        assert_eq!(h.call_idle.as_secs(), 60);
        let s = MprFile::parse(&mpr(&format!("{MPR_H248}enabled = false\n")))
            .unwrap()
            .validate([0; 32])
            .unwrap();
        assert!(s.h248.is_none());
        let one = MprFile::parse(&mpr(&MPR_H248.replace("2950-2999", "2950")))
            .unwrap()
            .validate([0; 32])
            .unwrap();
        assert_eq!(one.h248.unwrap().mg_ports, 2950..=2950);
    }

    #[test]
    fn bad_mpr_values_name_the_key() {
        let cases = [
            (
                MPR_H248.replace("2950-2999", "29x0-2999"),
                "h248.mg_ports: \"29x0-2999\" is not a port range",
            ),
            (
                MPR_H248.replace("2950-2999", "2999-2950"),
                "h248.mg_ports: first must be 1..=last",
            ),
            (
                MPR_H248.replace("2950-2999", "0-10"),
                "h248.mg_ports: first must be 1..=last",
            ),
            (
                MPR_H248.replace("2950-2999", "2700-2800"),
                "h248.mg_ports: holds control port 2727",
            ),
            (
                MPR_H248.replace("2950-2999", "39990-40010"),
                "h248.mg_ports: overlaps relay.ports 20000-39999",
            ),
            (
                MPR_H248.replace("127.0.0.3:2944", "127.0.0.4:2944"),
                "h248.local: must be on relay_ip 127.0.0.3",
            ),
            (
                MPR_H248.replace("127.0.0.3:2944", "127.0.0.3:2945"),
                "h248.local: port 2945 is not one of control_ports",
            ),
            (
                MPR_H248.replace("127.0.0.3:2944", "127.0.0.3:5060"),
                "h248.local: the SIP proxy serves",
            ),
            (
                MPR_H248.replace("127.0.0.3:2944", "127.0.0.3:2727"),
                "h248.local: the MGCP ALG serves",
            ),
            (
                MPR_H248.replace("198.51.100.7:2944", "0.0.0.0:2944"),
                "h248.mgc: must be the MGC's address and port",
            ),
            (
                format!("{MPR_H248}max_calls = 0\n"),
                "h248.max_calls: must be 1 to 10000000",
            ),
            (
                format!("{MPR_H248}max_terminations = 0\n"),
                "h248.max_terminations: must be 1 to 10000000",
            ),
            (
                format!("{MPR_H248}transaction_timeout_secs = 0\n"),
                "h248.transaction_timeout_secs: must be at least 1 second",
            ),
            (
                format!("{MPR_H248}gateway_idle_secs = 99999999\n"),
                "h248.gateway_idle_secs: must be at most a week",
            ),
            (
                format!("{MPR_H248}mid = \"a b\"\n"),
                "h248.mid: must be 1 to 253 bytes with no white space",
            ),
            (
                MPR_H248.replace("mgc = \"198.51.100.7:2944\"\n", ""),
                "missing field `mgc`",
            ),
            (format!("{MPR_H248}mgcs = 1\n"), "unknown field `mgcs`"),
        ];
        for (h248, want) in cases {
            let got = mpr_err(&mpr(&h248));
            assert!(got.contains(want), "{want:?} not in {got:?}");
        }
    }

    const APS: &str = "network = \"corp1\"\ncredential = \"s\"\nprotocol = \"h248\"\n\
                       signaling = \"10.1.0.2:2944\"\nmpr = \"203.0.113.10:2944\"\n";

    #[test]
    fn aps_section_builds_the_alg() {
        let s = ApsFile::parse(APS).unwrap().validate([0; 32]).unwrap();
        assert_eq!(s.engine.protocol, Protocol::H248);
        assert!(s.sip.is_none() && s.mgcp.is_none());
        let h = s.h248.expect("defaults without the section");
        assert_eq!(h.local, "10.1.0.2:2944".parse().unwrap());
        assert_eq!(h.media_ports.first, 40_000);
        let text = format!(
            "{APS}[h248]\nlocal = \"10.1.0.2:2944\"\nmedia_ip = \"10.1.0.3\"\n\
             media_ports = {{ first = 41000, last = 41099 }}\nmid = \"<aps.corp1>\"\n\
             gateways = [{{ mid = \"[10.1.0.20]:2944\", addr = \"10.1.0.20:2944\" }}, \
                         {{ mid = \"<mg2>\", addr = \"10.1.0.21:2944\" }}]\nmax_parked = 4\n"
        );
        let h = ApsFile::parse(&text)
            .unwrap()
            .validate([0; 32])
            .unwrap()
            .h248
            .unwrap();
        assert_eq!(h.media_ip, "10.1.0.3".parse::<std::net::IpAddr>().unwrap());
        assert_eq!((h.media_ports.first, h.media_ports.last), (41_000, 41_099));
        assert_eq!(h.mid, "<aps.corp1>");
        assert_eq!(h.max_parked, 4);
        assert_eq!(
            h.gateways,
            [
                (
                    "[10.1.0.20]:2944".to_owned(),
                    "10.1.0.20:2944".parse().unwrap()
                ),
                ("<mg2>".to_owned(), "10.1.0.21:2944".parse().unwrap()),
            ]
        );
    }

    #[test]
    fn bad_aps_values_name_the_key() {
        let gw = |mid: &str, addr: &str| {
            format!("gateways = [{{ mid = \"{mid}\", addr = \"{addr}\" }}]\n")
        };
        let cases = [
            ("local = \"10.1.0.2:2945\"\n".to_owned(), "h248.local: must be the APS's signaling address 10.1.0.2:2944"),
            ("media_ports = { first = 41000, last = 40000 }\n".to_owned(), "h248.media_ports"),
            ("media_ip = \"0.0.0.0\"\n".to_owned(), "h248.media_ip"),
            ("max_gateways = 0\n".to_owned(), "h248.max_gateways: must be 1 to 10000000"),
            ("max_parked = 0\n".to_owned(), "h248.max_parked: must be 1 to 1024"),
            ("termination_idle_secs = 0\n".to_owned(), "h248.termination_idle_secs: must be at least 1 second"),
            (gw("", "10.1.0.20:2944"), "h248.gateways[0].mid: must be 1 to 253 bytes"),
            (gw("<mg1>", "10.1.0.20:0"), "h248.gateways[0].addr: must be the gateway's address and port"),
            (
                "gateways = [{ mid = \"<MG1>\", addr = \"10.1.0.20:2944\" }, { mid = \"<mg1>\", addr = \"10.1.0.21:2944\" }]\n".to_owned(),
                "h248.gateways[1].mid: \"<mg1>\" is configured twice",
            ),
            ("gateways = [{ mid = \"<mg1>\" }]\n".to_owned(), "missing field `addr`"),
        ];
        for (h248, want) in cases {
            let got = aps_err(&format!("{APS}[h248]\n{h248}"));
            assert!(got.contains(want), "{want:?} not in {got:?}");
        }
        // [h248] belongs to an APS that registers H.248.
        let got = aps_err(&format!(
            "{}[h248]\nmedia_ports = {{ first = 41000, last = 41099 }}\n",
            APS.replace("\"h248\"", "\"mgcp\"")
        ));
        assert!(got.contains("h248: needs protocol = \"h248\""), "{got}");
    }
}
