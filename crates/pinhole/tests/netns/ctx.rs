//! What a scenario works with: the bed, its report lines, and helpers to
//! deploy the daemons and phones on it and check media at the phones.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
pub(crate) use pinhole_tests::daemon::metric;
use pinhole_tests::daemon::scrape_metrics;
use pinhole_tests::rtp::{FlowStats, PairReport, rtp_pair};
use pinhole_tests::sipp::{Keys, Sipp, scenario};

use crate::bed::{APS_IP, Bed, FW_WAN, INBOUND_DROP, MPR_IP, Ns, PHONE_IP};

/// A corporate network as the MPR knows it.
pub(crate) struct Corp {
    /// Network id.
    pub(crate) id: &'static str,
    /// Shared secret.
    pub(crate) credential: &'static str,
    /// Its SIP domain.
    pub(crate) domain: &'static str,
}

/// corp1 and corp2.
pub(crate) const CORP: [Corp; 2] = [
    Corp {
        id: "corp1",
        credential: "corp1-secret",
        domain: "corp1.example",
    },
    Corp {
        id: "corp2",
        credential: "corp2-secret",
        domain: "corp2.example",
    },
];

/// SIP / control port of the MPR, the APSs and the phones.
pub(crate) const SIP_PORT: u16 = 5060;
/// The daemons' metrics port (on their own address, inside their namespace).
pub(crate) const METRICS_PORT: u16 = 9464;
/// The MPR's relay ports.
pub(crate) const RELAY_PORTS: (u16, u16) = (40000, 40099);
/// Each APS's media ports B.
pub(crate) const APS_MEDIA_PORTS: (u16, u16) = (41000, 41099);
/// The phones' media port.
pub(crate) const PHONE_MEDIA_PORT: u16 = 6000;
/// How long daemons get to come up and register.
pub(crate) const UP_WITHIN: Duration = Duration::from_secs(15);
/// How long a SIP step may take.
pub(crate) const SIP_WAIT: Duration = Duration::from_secs(15);

/// The MPR's control / SIP address.
pub(crate) fn mpr_addr() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(MPR_IP), SIP_PORT)
}

/// Phone `i`'s SIP address.
pub(crate) fn phone_sip(i: usize) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(PHONE_IP[i]), SIP_PORT)
}

/// Phone `i`'s media address.
pub(crate) fn phone_media(i: usize) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(PHONE_IP[i]), PHONE_MEDIA_PORT)
}

/// APS `i`'s SIP address.
pub(crate) fn aps_sip(i: usize) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(APS_IP[i]), SIP_PORT)
}

/// The `pinhole` binary.
pub(crate) fn pinhole_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_pinhole"))
}

/// An example binary built next to `pinhole` (`cargo build -p
/// pinhole-examples --bins`; `just netns` does it).
pub(crate) fn example_bin(name: &str) -> Result<PathBuf> {
    let p = pinhole_bin().with_file_name(name);
    ensure!(
        p.is_file(),
        "{} not built: run `cargo build -p pinhole-examples --bins` (just netns does)",
        p.display()
    );
    Ok(p)
}

/// The MGCP port of the MPR (its `[mgcp] port`, the second control port)
/// and of the APSs (their `signaling` port: the gateways' call agent).
pub(crate) const MGCP_CA_PORT: u16 = 2727;
/// The inside gateways' MGCP port.
pub(crate) const MGCP_GW_PORT: u16 = 2427;

/// The MPR's MGCP control address.
pub(crate) fn mpr_mgcp() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(MPR_IP), MGCP_CA_PORT)
}

/// APS `i`'s MGCP address (its signaling socket when it runs MGCP).
pub(crate) fn aps_mgcp(i: usize) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(APS_IP[i]), MGCP_CA_PORT)
}

/// The H.248 port of the MPR (its `[h248] local`, a control port), the
/// APSs (the gateways' MGC), the gateways and the MGC.
pub(crate) const H248_PORT: u16 = 2944;
/// The MPR's gateway ports (`[h248] mg_ports`): one per gateway toward the
/// MGC.
pub(crate) const H248_GATEWAY_PORTS: (u16, u16) = (2950, 2959);

/// The MPR's H.248 control address.
pub(crate) fn mpr_h248() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(MPR_IP), H248_PORT)
}

/// APS `i`'s H.248 address (its signaling socket when it runs H.248).
pub(crate) fn aps_h248(i: usize) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(APS_IP[i]), H248_PORT)
}

/// How an APS runs.
#[derive(Clone, Debug, Default)]
pub(crate) struct ApsOptions {
    /// Bind with CMPH indications (the "no CMPH response" variant).
    pub(crate) indication: bool,
    /// Signaling to the MPR over one TLS connection opened from inside
    /// (client certificate, CRLF keepalive every [`TLS_KEEPALIVE`]), and
    /// to the inside default phone over TCP (SIP only).
    pub(crate) tls: bool,
    /// The signaling protocol it registers and proxies.
    pub(crate) protocol: ApsProtocol,
}

/// An APS's protocol and what its section says.
#[derive(Clone, Debug, Default)]
pub(crate) enum ApsProtocol {
    /// SIP on `aps_sip(i)`, inside default: phone `i`.
    #[default]
    Sip,
    /// MGCP on `aps_mgcp(i)` toward the MPR's MGCP port, serving these
    /// inside gateways (endpoint domain, MGCP address).
    Mgcp {
        /// `[mgcp.gateways]`.
        gateways: Vec<(String, SocketAddr)>,
    },
    /// H.248 on `aps_h248(i)` toward the MPR's H.248 port, media ports B
    /// `APS_MEDIA_PORTS`, these inside gateways known from the start (mId,
    /// H.248 address; others are learned).
    H248 {
        /// `[h248] gateways`.
        gateways: Vec<(String, SocketAddr)>,
    },
    /// H.323 on `aps_h323(i)` (also the terminals' inside address) over a
    /// TCP connection to `mpr_h323()` with a keepalive below the firewall's
    /// TCP timeout, inside H.245 listeners `APS_H245_PORTS`, media ports B
    /// `APS_MEDIA_PORTS`, these terminals by alias.
    H323 {
        /// `[h323.aliases]`.
        aliases: Vec<(String, SocketAddr)>,
    },
}

/// The H.323 call-signaling port (the MPR's control port for it, the
/// APSs' inside address).
pub(crate) const H323_PORT: u16 = 1720;
/// The MPR's H.245 listeners.
pub(crate) const MPR_H245_PORTS: (u16, u16) = (1730, 1737);
/// An APS's inside H.245 listeners.
pub(crate) const APS_H245_PORTS: (u16, u16) = (1740, 1747);

/// The MPR's H.323 address.
pub(crate) fn mpr_h323() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(MPR_IP), H323_PORT)
}

/// APS `i`'s H.323 address (signaling socket and inside address).
pub(crate) fn aps_h323(i: usize) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(APS_IP[i]), H323_PORT)
}

/// How the MPR runs.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct MprOptions {
    /// Run the MGCP ALG on `mpr_mgcp()` (a second control port, next to
    /// SIP's), the gateways' own commands going to this call agent.
    pub(crate) mgcp_call_agent: Option<SocketAddr>,
    /// Run the H.248 ALG on `mpr_h248()` (another control port) toward
    /// this MGC, with gateway ports `H248_GATEWAY_PORTS`.
    pub(crate) h248_mgc: Option<SocketAddr>,
    /// Run the H.323 ALG on `mpr_h323()` (another control port, TCP too),
    /// H.245 listeners `MPR_H245_PORTS`.
    pub(crate) h323: bool,
    /// Accept SIP and the APSs' connections over TLS on `mpr_tls()`, with
    /// certificates `pinhole certs` makes.
    pub(crate) tls: bool,
    /// With `tls`: refuse TLS clients without a certificate from the test CA
    /// (the APSs have one; a public phone has none).
    pub(crate) require_client_cert: bool,
}

/// The MPR's SIP-over-TLS port.
pub(crate) const TLS_PORT: u16 = 5061;
/// The APSs' keepalive on their TLS connection, well below the firewalls'
/// TCP timeout.
pub(crate) const TLS_KEEPALIVE: Duration = Duration::from_secs(2);

pub(crate) fn mpr_tls() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(MPR_IP), TLS_PORT)
}

/// One scenario's world.
pub(crate) struct Ctx {
    /// The bed.
    pub(crate) bed: Bed,
    /// The report: what was sent, received, dropped where.
    pub(crate) notes: Vec<String>,
}

impl Ctx {
    pub(crate) fn new(bed: Bed) -> Self {
        Self {
            bed,
            notes: Vec::new(),
        }
    }

    /// Adds a report line.
    pub(crate) fn note(&mut self, line: impl Into<String>) {
        self.notes.push(line.into());
    }

    /// True when the filter rules are left out.
    pub(crate) fn open(&self) -> bool {
        self.bed.opts.open_firewall
    }

    /// The firewalls' UDP conntrack timeout.
    pub(crate) fn udp_timeout(&self) -> Duration {
        self.bed.opts.udp_timeout
    }

    /// A test CA and certificates for the MPR and the APSs, made by
    /// `pinhole certs` in this scenario's directory (once).
    pub(crate) fn certs(&self) -> Result<PathBuf> {
        let dir = self.bed.dir.join("certs");
        if !dir.join("ca.pem").is_file() {
            let out = std::process::Command::new(pinhole_bin())
                .args(["certs", "--out"])
                .arg(&dir)
                .args(["--name", &MPR_IP.to_string()])
                .output()
                .context("running pinhole certs")?;
            ensure!(
                out.status.success(),
                "pinhole certs: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(dir)
    }

    fn write(&self, name: &str, text: &str) -> Result<PathBuf> {
        let p = self.bed.dir.join(name);
        std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
        Ok(p)
    }

    /// Starts `pinhole mpr` in the internet namespace and waits for its
    /// metrics endpoint.
    pub(crate) fn start_mpr(&mut self) -> Result<()> {
        self.start_mpr_with(MprOptions::default())
    }

    /// [`Ctx::start_mpr`] with options (the MGCP ALG).
    pub(crate) fn start_mpr_with(&mut self, opts: MprOptions) -> Result<()> {
        let mut ports = SIP_PORT.to_string();
        if opts.mgcp_call_agent.is_some() {
            ports.push_str(&format!(", {MGCP_CA_PORT}"));
        }
        if opts.h248_mgc.is_some() {
            ports.push_str(&format!(", {H248_PORT}"));
        }
        if opts.h323 {
            ports.push_str(&format!(", {H323_PORT}"));
        }
        let mut cfg = format!(
            "relay_ip = \"{MPR_IP}\"\ncontrol_ports = [{ports}]\nmetrics = \"{MPR_IP}:{METRICS_PORT}\"\n\
             [relay]\nports = {{ first = {}, last = {} }}\nworkers = 1\n",
            RELAY_PORTS.0, RELAY_PORTS.1
        );
        if let Some(ca) = opts.mgcp_call_agent {
            cfg.push_str(&format!(
                "[mgcp]\nenabled = true\nport = {MGCP_CA_PORT}\ncall_agent = \"{ca}\"\n"
            ));
        }
        if let Some(mgc) = opts.h248_mgc {
            cfg.push_str(&format!(
                "[h248]\nlocal = \"{}\"\nmgc = \"{mgc}\"\nmg_ports = \"{}-{}\"\n",
                mpr_h248(),
                H248_GATEWAY_PORTS.0,
                H248_GATEWAY_PORTS.1
            ));
        }
        if opts.h323 {
            cfg.push_str(&format!(
                "[h323]\nport = {H323_PORT}\nh245_ports = \"{}-{}\"\n",
                MPR_H245_PORTS.0, MPR_H245_PORTS.1
            ));
        }
        if opts.tls {
            let d = self.certs()?;
            cfg.push_str(&format!(
                "[sip]\ntls_port = {TLS_PORT}\n[tls]\ncert = \"{0}/mpr.pem\"\nkey = \"{0}/mpr.key\"\n\
                 client_ca = \"{0}/ca.pem\"\nrequire_client_cert = {1}\n",
                d.display(),
                opts.require_client_cert
            ));
        }
        for c in &CORP {
            cfg.push_str(&format!(
                "[[networks]]\nid = \"{}\"\ncredential = \"{}\"\ndomains = [\"{}\"]\n",
                c.id, c.credential, c.domain
            ));
        }
        let path = self.write("mpr.toml", &cfg)?;
        self.bed.spawn(
            "mpr",
            Ns::Inet,
            &pinhole_bin(),
            &["mpr".into(), "--config".into(), path.display().to_string()],
        )?;
        self.wait_metric(Ns::Inet, mpr_metrics(), "pinhole_up", UP_WITHIN)?;
        Ok(())
    }

    /// The SIP deployment most scenarios start from: the MPR, then an APS
    /// with default options in each network, each registered.
    pub(crate) fn start_sip_daemons(&mut self) -> Result<()> {
        self.start_mpr()?;
        self.start_aps(0, ApsOptions::default())?;
        self.start_aps(1, ApsOptions::default())
    }

    /// Starts `pinhole aps` in corp `i`, with the firewall's UDP timeout as
    /// its idle timeout, and waits until it is registered. SIP: inside
    /// default phone `i`; MGCP: the given gateways.
    pub(crate) fn start_aps(&mut self, i: usize, opts: ApsOptions) -> Result<()> {
        let c = &CORP[i];
        let (protocol, signaling, mpr, section) = match &opts.protocol {
            ApsProtocol::Sip => (
                "sip",
                aps_sip(i),
                mpr_addr(),
                format!(
                    "[sip]\nmedia_ports = {{ first = {}, last = {} }}\ninside_default = \"{}\"\n",
                    APS_MEDIA_PORTS.0,
                    APS_MEDIA_PORTS.1,
                    phone_sip(i),
                ),
            ),
            ApsProtocol::Mgcp { gateways } => {
                let mut s = format!(
                    "[mgcp]\nmedia_ports = {{ first = {}, last = {} }}\n[mgcp.gateways]\n",
                    APS_MEDIA_PORTS.0, APS_MEDIA_PORTS.1,
                );
                for (domain, addr) in gateways {
                    s.push_str(&format!("\"{domain}\" = \"{addr}\"\n"));
                }
                ("mgcp", aps_mgcp(i), mpr_mgcp(), s)
            }
            ApsProtocol::H248 { gateways } => {
                let known: Vec<String> = gateways
                    .iter()
                    .map(|(mid, addr)| format!("{{ mid = \"{mid}\", addr = \"{addr}\" }}"))
                    .collect();
                let s = format!(
                    "[h248]\nmedia_ports = {{ first = {}, last = {} }}\ngateways = [{}]\n",
                    APS_MEDIA_PORTS.0,
                    APS_MEDIA_PORTS.1,
                    known.join(", "),
                );
                ("h248", aps_h248(i), mpr_h248(), s)
            }
            ApsProtocol::H323 { aliases } => {
                let mut s = format!(
                    "[h323]\nh245_ports = \"{}-{}\"\nmedia_ports = {{ first = {}, last = {} }}\n[h323.aliases]\n",
                    APS_H245_PORTS.0, APS_H245_PORTS.1, APS_MEDIA_PORTS.0, APS_MEDIA_PORTS.1,
                );
                for (alias, addr) in aliases {
                    s.push_str(&format!("\"{alias}\" = \"{addr}\"\n"));
                }
                ("h323", aps_h323(i), mpr_h323(), s)
            }
        };
        let (mpr, upstream, tls) = if opts.tls {
            let d = self.certs()?;
            (
                mpr_tls(),
                format!(
                    "upstream = \"tls\"\nupstream_keepalive_secs = {}\n",
                    TLS_KEEPALIVE.as_secs()
                ),
                format!(
                    "inside_transport = \"tcp\"\n[tls]\nca = \"{0}/ca.pem\"\ncert = \"{0}/aps.pem\"\nkey = \"{0}/aps.key\"\n",
                    d.display()
                ),
            )
        } else if protocol == "h323" {
            // H.323 rides the connection to the MPR; pinged well within the
            // firewall's TCP timeout.
            let up = format!(
                "upstream = \"tcp\"\nupstream_keepalive_secs = {}\n",
                TLS_KEEPALIVE.as_secs()
            );
            (mpr, up, String::new())
        } else {
            (mpr, String::new(), String::new())
        };
        let cfg = format!(
            "network = \"{}\"\ncredential = \"{}\"\nprotocol = \"{protocol}\"\nsignaling = \"{signaling}\"\n\
             mpr = \"{mpr}\"\nmetrics = \"{}:{METRICS_PORT}\"\nfirewall_idle_timeout_secs = {}\n\
             cmph_mode = \"{}\"\n{upstream}[relay]\nworkers = 1\n{section}{tls}",
            c.id,
            c.credential,
            APS_IP[i],
            self.udp_timeout().as_secs(),
            if opts.indication {
                "indication"
            } else {
                "request"
            },
        );
        let name = format!("aps{}", i + 1);
        let path = self.write(&format!("{name}.toml"), &cfg)?;
        self.bed.spawn(
            &name,
            Ns::Corp(i),
            &pinhole_bin(),
            &["aps".into(), "--config".into(), path.display().to_string()],
        )?;
        self.wait_metric(
            Ns::Corp(i),
            aps_metrics(i),
            "pinhole_client_registered 1",
            UP_WITHIN,
        )
        .with_context(|| format!("{name} did not register"))?;
        Ok(())
    }

    /// One scrape of a metrics endpoint inside namespace `n`.
    pub(crate) fn metrics(&self, n: Ns, addr: SocketAddr) -> Result<String> {
        self.bed
            .in_ns(n, || scrape_metrics(addr))?
            .with_context(|| format!("scraping {addr}"))
    }

    /// Polls a metrics endpoint until its text contains `needle`.
    pub(crate) fn wait_metric(
        &self,
        n: Ns,
        addr: SocketAddr,
        needle: &str,
        timeout: Duration,
    ) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(m) = self.metrics(n, addr)
                && m.contains(needle)
            {
                return Ok(m);
            }
            if Instant::now() >= deadline {
                bail!("no {needle:?} at {addr} within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The MPR's metrics now.
    pub(crate) fn mpr(&self) -> Result<String> {
        self.metrics(Ns::Inet, mpr_metrics())
    }

    /// Phone `i`'s media socket (bound inside corp `i`).
    pub(crate) fn media_socket(&self, i: usize) -> Result<UdpSocket> {
        self.bed.udp(Ns::Corp(i), phone_media(i))
    }

    /// A sipp callee as phone `i` (SIP on `phone_sip(i)`), announcing
    /// `media`.
    pub(crate) fn uas(&self, i: usize, xml: &str, media: SocketAddr, pause: Duration) -> Sipp {
        let uas = Sipp::uas(
            scenario(xml),
            phone_sip(i),
            Keys::new(media).domain(CORP[i].domain),
        );
        self.phone(uas, "uas", i, pause)
    }

    /// A sipp caller as phone `i`, calling into corp `to` through `proxy`.
    pub(crate) fn uac(
        &self,
        i: usize,
        xml: &str,
        proxy: SocketAddr,
        to: usize,
        media: SocketAddr,
        pause: Duration,
    ) -> Sipp {
        let uac = Sipp::uac(
            scenario(xml),
            phone_sip(i),
            proxy,
            Keys::new(media)
                .domain(CORP[to].domain)
                .from_domain(CORP[i].domain),
        );
        self.phone(uac, "uac", i, pause)
    }

    /// A sipp `role` (`uac`/`uas`) as phone `i`: in corp `i`'s namespace,
    /// its files in `sipp-{role}{i+1}`, pausing `pause`, bounded to 90 s.
    fn phone(&self, sipp: Sipp, role: &str, i: usize, pause: Duration) -> Sipp {
        sipp.netns(self.bed.ns(Ns::Corp(i)))
            .dir(self.bed.dir.join(format!("sipp-{role}{}", i + 1)))
            .pause(pause)
            .timeout(Duration::from_secs(90))
    }

    /// RTP both ways between two phones' sockets, reported; fails unless
    /// both directions arrived (at least 95 %, every packet intact, no
    /// stranger's datagram).
    pub(crate) fn two_way(
        &mut self,
        label: &str,
        a: &UdpSocket,
        b: &UdpSocket,
        a_to: SocketAddr,
        b_to: SocketAddr,
        count: u16,
    ) -> Result<PairReport> {
        let r = rtp_pair(a, b, a_to, b_to, count, Duration::from_millis(20)).context("RTP")?;
        self.note(format!("{label}: corp1→corp2 {}", flow(&r.a_to_b)));
        self.note(format!("{label}: corp2→corp1 {}", flow(&r.b_to_a)));
        for (dir, f) in [("corp1→corp2", &r.a_to_b), ("corp2→corp1", &r.b_to_a)] {
            ensure!(good(f), "{label}: media {dir} incomplete: {}", flow(f));
        }
        Ok(r)
    }

    /// Notes both firewalls' drop counters.
    pub(crate) fn note_drops(&mut self) -> Result<[u64; 2]> {
        let d = [
            self.bed.counter(0, INBOUND_DROP)?,
            self.bed.counter(1, INBOUND_DROP)?,
        ];
        self.note(format!(
            "firewalls dropped inbound: fw1 {} packets, fw2 {}",
            d[0], d[1]
        ));
        Ok(d)
    }

    /// Both firewalls' inbound drop counters now.
    pub(crate) fn drops(&self) -> Result<[u64; 2]> {
        Ok([
            self.bed.counter(0, INBOUND_DROP)?,
            self.bed.counter(1, INBOUND_DROP)?,
        ])
    }

    /// Notes the drop counters and checks that none changed since `before`:
    /// every packet of the call came in through a pinhole opened from
    /// inside.
    pub(crate) fn check_drops(&mut self, before: [u64; 2]) -> Result<()> {
        let after = self.note_drops()?;
        ensure!(
            after == before,
            "inbound drops changed during the call: {before:?} → {after:?}"
        );
        Ok(())
    }

    /// Checks and notes, in each firewall's conntrack table, the
    /// `protocol` signaling pinhole from `signaling[i]` to the MPR's `mpr`
    /// (masqueraded to the firewall's WAN address) and the media pinholes
    /// opened from inside: from `media_from[i]`'s address and port range
    /// to relay ports.
    pub(crate) fn check_pinholes(
        &mut self,
        protocol: &str,
        signaling: [SocketAddr; 2],
        mpr: SocketAddr,
        media_from: [(Ipv4Addr, (u16, u16)); 2],
    ) -> Result<()> {
        for i in 0..2 {
            let table = self.bed.conntrack(i)?;
            let sig = table
                .iter()
                .find(|e| e.src == signaling[i] && e.dst == mpr)
                .ok_or_else(|| {
                    anyhow!("fw{}: no signaling pinhole {} → {mpr}", i + 1, signaling[i])
                })?;
            self.note(format!(
                "fw{}: {protocol} signaling pinhole {} → {} as {}",
                i + 1,
                sig.src,
                sig.dst,
                sig.mapped
            ));
            ensure!(
                sig.mapped.ip() == IpAddr::V4(FW_WAN[i]),
                "fw{}: the signaling pinhole is not masqueraded: {}",
                i + 1,
                sig.line
            );
            let (ip, (first, last)) = media_from[i];
            let media: Vec<String> = table
                .iter()
                .filter(|e| {
                    e.src.ip() == IpAddr::V4(ip)
                        && (first..=last).contains(&e.src.port())
                        && e.dst.ip() == IpAddr::V4(MPR_IP)
                        && (RELAY_PORTS.0..=RELAY_PORTS.1).contains(&e.dst.port())
                })
                .map(|e| format!("{} → {} as {}", e.src, e.dst, e.mapped))
                .collect();
            self.note(format!(
                "fw{}: media pinholes opened from inside: {media:?}",
                i + 1
            ));
            ensure!(
                !media.is_empty(),
                "fw{}: no media pinhole from {ip}:{first}-{last} to a relay port",
                i + 1
            );
        }
        Ok(())
    }

    /// Notes the MPR's relay counters.
    pub(crate) fn note_relay(&mut self) -> Result<String> {
        let m = self.mpr()?;
        let get = |k: &str| metric(&m, k).unwrap_or(-1.0);
        self.note(format!(
            "MPR relay: {} packets in, {} out, {} dropped (wrong source), {} SDP rewritten",
            get("pinhole_relay_packets_total{direction=\"in\"}"),
            get("pinhole_relay_packets_total{direction=\"out\"}"),
            get("pinhole_relay_drops_total{reason=\"source\"}"),
            get("pinhole_signaling_total{protocol=\"sip\",event=\"sdp_rewritten\"}"),
        ));
        Ok(m)
    }
}

/// The MPR's metrics address.
pub(crate) fn mpr_metrics() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(MPR_IP), METRICS_PORT)
}

/// APS `i`'s metrics address.
pub(crate) fn aps_metrics(i: usize) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(APS_IP[i]), METRICS_PORT)
}

/// The `RTP sent …` summary line of an example binary's log (the smart
/// terminal's or gateway's), or `(no RTP line)`.
pub(crate) fn rtp_line(log: &str) -> String {
    log.lines()
        .find(|l| l.starts_with("RTP sent"))
        .unwrap_or("(no RTP line)")
        .to_owned()
}

/// A flow in a few words.
pub(crate) fn flow(f: &FlowStats) -> String {
    format!(
        "sent {} received {} intact (payload errors {}, duplicates {}, foreign {}) from {:?}",
        f.sent, f.received, f.payload_errors, f.duplicates, f.foreign, f.sources
    )
}

/// At least 95 % arrived, all intact, nothing foreign.
pub(crate) fn good(f: &FlowStats) -> bool {
    f.sent > 0
        && f.send_errors == 0
        && u64::from(f.received) * 100 >= u64::from(f.sent) * 95
        && f.payload_errors == 0
        && f.duplicates == 0
        && f.foreign == 0
}
