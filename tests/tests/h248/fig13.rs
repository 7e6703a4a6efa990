//! Fig. 13 with the daemons and the real peers: each MG registers through
//! its APS and the MPR (a gateway port of its own toward the MGC), the
//! MGC's Add/Add/Modify/Subtract ladder goes through, RTP flows MG1 → APS1
//! → MPR → APS2 → MG2 and back, and the Subtracts tear the call down.
//!
//! ```text
//! MG1 127.0.0.84 ── APS1 127.0.0.81 ─┐
//!                                     MPR 127.0.0.80 ── MGC 127.0.0.83
//! MG2 127.0.0.85 ── APS2 127.0.0.82 ─┘
//! ```
//!
//! Ports of the pretty-text run: MPR control (H.248) 29500, gateway ports
//! 29510–29519, relay 46000–46199; APS signaling 29501 and 29502, ports B
//! 46200–46299 (APS1) and 46300–46399 (APS2); MGC 29503; MGs 29504 and
//! 29505, their RTP 46400 and 46402. The compact-text run adds 20 to the
//! signaling ports and 500 to the media ports. The runs take turns (one
//! lock): three Erlang VMs and three daemons each. No firewall in between
//! (the simulated network's Fig. 13 has them): this checks the daemons'
//! wiring against real H.248 text.

use std::fs::File;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pinhole_tests::daemon::{self, Daemon, free_tcp};
use pinhole_tests::megaco::through::{Expect, Span};
use pinhole_tests::megaco::{Encoding, MgConfig, MgcConfig};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

const MPR_IP: &str = "127.0.0.80";
const APS_IPS: [&str; 2] = ["127.0.0.81", "127.0.0.82"];
const MGC_IP: &str = "127.0.0.83";
const MG_IPS: [&str; 2] = ["127.0.0.84", "127.0.0.85"];

/// One run's ports and peers' text settings.
struct Plan {
    name: &'static str,
    /// Added to every signaling port.
    sig: u16,
    /// Added to every media port.
    media: u16,
    encoding: Encoding,
    /// The MGC's own `mId`, told to the MGs (else they learn it).
    mgc_mid: Option<&'static str>,
    /// A bracketed-address mId and a domain-name one.
    mids: [&'static str; 2],
}

impl Plan {
    fn h248_port(&self) -> u16 {
        29500 + self.sig
    }
    fn mg_ports(&self) -> RangeInclusive<u16> {
        29510 + self.sig..=29519 + self.sig
    }
    fn relay_ports(&self) -> RangeInclusive<u16> {
        46000 + self.media..=46199 + self.media
    }
    fn aps_signaling(&self, i: usize) -> SocketAddr {
        SocketAddr::new(super::ip(APS_IPS[i]), 29501 + self.sig + i as u16)
    }
    fn ports_b(&self, i: usize) -> RangeInclusive<u16> {
        let first = 46200 + self.media + 100 * i as u16;
        first..=first + 99
    }
    fn mgc(&self) -> SocketAddr {
        SocketAddr::new(super::ip(MGC_IP), 29503 + self.sig)
    }
    fn mg_signaling(&self, i: usize) -> SocketAddr {
        SocketAddr::new(super::ip(MG_IPS[i]), 29504 + self.sig + i as u16)
    }
    fn mg_rtp(&self, i: usize) -> SocketAddr {
        SocketAddr::new(super::ip(MG_IPS[i]), 46400 + self.media + 2 * i as u16)
    }
}

/// RTP each MG sends, and how far apart.
const PACKETS: u32 = 50;
const INTERVAL: Duration = Duration::from_millis(10);
/// The call stays up long enough for every packet both ways.
const HOLD: Duration = Duration::from_millis(1500);
/// Bound on each escript; the whole test takes about 6 s.
const RUN: Duration = Duration::from_secs(30);
const WAIT: Duration = Duration::from_secs(15);

/// Starts `pinhole {cmd}` with `config`, its log in `{dir}/{name}.log`.
fn start(bin: &Path, cmd: &str, name: &str, config: &str, dir: &Path) -> Result<Daemon> {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, config)?;
    let log = File::create(dir.join(format!("{name}.log")))?;
    Ok(Daemon::spawn(
        Command::new(bin)
            .args([cmd, "--config"])
            .arg(path)
            .env("RUST_LOG", "info,pinhole_h248=debug")
            .stdout(Stdio::null())
            .stderr(log),
    ))
}

fn logs(dir: &Path) -> String {
    ["mpr", "aps1", "aps2"]
        .iter()
        .map(|n| {
            let t = std::fs::read_to_string(dir.join(format!("{n}.log"))).unwrap_or_default();
            let tail: String = t
                .lines()
                .rev()
                .take(40)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n");
            format!("--- {n}.log (end) ---\n{tail}\n")
        })
        .collect()
}

/// Scrapes `metrics` until the sample `key` is at least `min`; its value.
fn wait_at_least(metrics: SocketAddr, key: &str, min: f64) -> Option<f64> {
    let deadline = Instant::now() + WAIT;
    loop {
        let v = daemon::scrape_metrics(metrics)
            .ok()
            .and_then(|m| daemon::metric(&m, key));
        if v.is_some_and(|v| v >= min) || Instant::now() > deadline {
            return v;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn fig13_megaco_mgc_and_two_mgs_through_the_mpr_and_two_aps_daemons() -> Result {
    fig13(&Plan {
        name: "pretty",
        sig: 0,
        media: 0,
        encoding: Encoding::Pretty,
        mgc_mid: None,
        mids: ["[127.0.0.84]:29504", "<mg2.corp2.example>"],
    })
}

#[test]
fn fig13_compact_text_through_the_daemons() -> Result {
    fig13(&Plan {
        name: "compact",
        sig: 20,
        media: 500,
        encoding: Encoding::Compact,
        mgc_mid: Some("<mgc.example>:29523"),
        mids: ["<mg1.corp1.example>:29524", "mg2device"],
    })
}

fn fig13(p: &Plan) -> Result {
    let _turn = super::TURN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !pinhole_tests::megaco::megaco_available() {
        // MgcConfig::start reports it (or fails under CI).
        let _ = MgcConfig::new(p.mgc()).start()?;
        return Ok(());
    }
    // Built first if needed (not counted in the run's time).
    let bin = daemon::pinhole_binary()?;
    let t0 = Instant::now();
    let dir = super::log_dir(&format!("fig13-{}", p.name));
    let (m_mpr, m_aps) = (free_tcp(), [free_tcp(), free_tcp()]);
    let (relay, mg_ports) = (p.relay_ports(), p.mg_ports());
    let mpr_cfg = format!(
        "relay_ip = \"{MPR_IP}\"\ncontrol_ports = [{h}]\nmetrics = \"{m_mpr}\"\n\
         [relay]\nports = {{ first = {}, last = {} }}\nworkers = 1\n\
         [[networks]]\nid = \"corp1\"\ncredential = \"one\"\nprotocols = [\"h248\"]\n\
         [[networks]]\nid = \"corp2\"\ncredential = \"two\"\nprotocols = [\"h248\"]\n\
         [sip]\nenabled = false\n\
         [h248]\nlocal = \"{MPR_IP}:{h}\"\nmgc = \"{}\"\nmg_ports = \"{}-{}\"\n",
        relay.start(),
        relay.end(),
        p.mgc(),
        mg_ports.start(),
        mg_ports.end(),
        h = p.h248_port(),
    );
    let aps_cfg = |i: usize| {
        let (net, cred) = [("corp1", "one"), ("corp2", "two")][i];
        let b = p.ports_b(i);
        let mut t = format!(
            "network = \"{net}\"\ncredential = \"{cred}\"\nprotocol = \"h248\"\n\
             signaling = \"{}\"\nmpr = \"{MPR_IP}:{}\"\nmetrics = \"{}\"\n\
             [relay]\nworkers = 1\n\
             [h248]\nmedia_ports = {{ first = {}, last = {} }}\n",
            p.aps_signaling(i),
            p.h248_port(),
            m_aps[i],
            b.start(),
            b.end(),
        );
        // MG1 is configured, MG2 learned from its first message.
        if i == 0 {
            t.push_str(&format!(
                "gateways = [{{ mid = \"{}\", addr = \"{}\" }}]\n",
                p.mids[0],
                p.mg_signaling(0)
            ));
        }
        t
    };
    let _mpr = start(&bin, "mpr", "mpr", &mpr_cfg, &dir)?;
    // Its sockets are bound once it serves metrics: the APSs' first
    // Registration finds it.
    daemon::wait_metric(m_mpr, "pinhole_up", WAIT);
    let _aps1 = start(&bin, "aps", "aps1", &aps_cfg(0), &dir)?;
    let _aps2 = start(&bin, "aps", "aps2", &aps_cfg(1), &dir)?;
    for m in m_aps {
        daemon::wait_metric(m, "pinhole_client_registered 1", WAIT);
    }
    daemon::wait_metric(m_mpr, "pinhole_routes_live 2", WAIT);

    let mut mgc = MgcConfig::new(p.mgc())
        .mg_mids(p.mids[0], p.mids[1])
        .encoding(p.encoding)
        .hold(HOLD)
        .max_run(RUN)
        .dir(&dir);
    if let Some(m) = p.mgc_mid {
        mgc = mgc.mid(m);
    }
    let Some(mut mgc) = mgc.start()? else {
        return Ok(());
    };
    let mg = |i: usize| {
        let mut c = MgConfig::new(
            p.aps_signaling(i),
            p.mg_signaling(i),
            p.mids[i],
            p.mg_rtp(i),
        )
        .encoding(p.encoding)
        .packets(PACKETS)
        .interval(INTERVAL)
        .max_run(RUN)
        .dir(&dir);
        if let Some(m) = p.mgc_mid {
            c = c.mgc_mid(m);
        }
        c.start()
    };
    let mut mg1 = mg(0)?.ok_or("megaco vanished")?;
    let mut mg2 = mg(1)?.ok_or("megaco vanished")?;
    let report = mgc.wait(RUN)?;
    let r1 = mg1.wait(Duration::from_secs(5))?;
    let r2 = mg2.wait(Duration::from_secs(5))?;
    let report = report
        .ensure_success()
        .map_err(|e| format!("{e}\n{}", logs(&dir)))?;
    let reports = [
        r1.ensure_success()
            .map_err(|e| format!("{e}\n{}", logs(&dir)))?,
        r2.ensure_success()
            .map_err(|e| format!("{e}\n{}", logs(&dir)))?,
    ];

    let expect = Expect {
        mids: p.mids.map(String::from),
        gateway_ports: Span::new(super::ip(MPR_IP), mg_ports),
        relay: Span::new(super::ip(MPR_IP), relay),
        media_from: [0, 1].map(|i| Span::new(super::ip(APS_IPS[i]), p.ports_b(i))),
        packets: PACKETS,
        min_percent: 90,
    };
    for line in expect
        .check(&report, &reports)
        .map_err(|e| format!("{} run: {e}\n{}", p.name, logs(&dir)))?
    {
        println!("{}: {line}", p.name);
    }
    // The Subtracts tore the call down at the MPR ...
    let key =
        |event: &str| format!("pinhole_signaling_total{{protocol=\"h248\",event=\"{event}\"}}");
    let teardowns = wait_at_least(m_mpr, &key("teardowns"), 1.0);
    assert!(
        teardowns.is_some_and(|t| t >= 1.0),
        "teardowns {teardowns:?}\n{}",
        logs(&dir)
    );
    // ... and freed every relay leg of it.
    super::assert_mpr_done(m_mpr, WAIT, &logs(&dir));
    println!(
        "fig13 ({}) through the daemons in {:?}",
        p.name,
        t0.elapsed()
    );
    assert!(t0.elapsed() < Duration::from_secs(40), "{:?}", t0.elapsed());
    Ok(())
}
