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
//! Ports: MPR control (H.248) 29500, gateway ports 29510–29519, relay
//! 46000–46199; APS signaling 29501 and 29502, ports B 46200–46299 (APS1)
//! and 46300–46399 (APS2); MGC 29503; MGs 29504 and 29505, their RTP
//! 46400 and 46402. No firewall in between (the simulated network's Fig. 13
//! has them): this checks the daemons' wiring against real H.248 text.

use std::fs::File;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pinhole_tests::daemon::{self, Daemon, free_tcp};
use pinhole_tests::megaco::{MgConfig, MgcConfig};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

const MPR_IP: &str = "127.0.0.80";
const APS_IPS: [&str; 2] = ["127.0.0.81", "127.0.0.82"];
const H248_PORT: u16 = 29500;
const MG_PORTS: RangeInclusive<u16> = 29510..=29519;
const RELAY_PORTS: RangeInclusive<u16> = 46000..=46199;
const APS_SIGNALING: [u16; 2] = [29501, 29502];
const PORTS_B: [RangeInclusive<u16>; 2] = [46200..=46299, 46300..=46399];
const MGC: &str = "127.0.0.83:29503";
const MG_SIGNALING: [&str; 2] = ["127.0.0.84:29504", "127.0.0.85:29505"];
/// A bracketed-address mId and a domain-name one.
const MG_MIDS: [&str; 2] = ["[127.0.0.84]:29504", "<mg2.corp2.example>"];
const MG_RTP: [&str; 2] = ["127.0.0.84:46400", "127.0.0.85:46402"];

/// RTP each MG sends, and how far apart.
const PACKETS: u32 = 50;
const INTERVAL: Duration = Duration::from_millis(10);
/// The call stays up long enough for every packet both ways.
const HOLD: Duration = Duration::from_millis(1500);
/// Bound on each escript; the whole test takes about 6 s.
const RUN: Duration = Duration::from_secs(30);
const WAIT: Duration = Duration::from_secs(15);

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("a literal address")
}

fn log_dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("h248-fig13");
    std::fs::create_dir_all(&d).expect("log folder");
    d
}

/// Starts `pinhole {cmd}` with `config`, its log in `{dir}/{name}.log`.
fn start(bin: &Path, cmd: &str, name: &str, config: &str, dir: &Path) -> Result<Daemon> {
    let path = daemon::write_config("pinhole-h248-test", &format!("{name}.toml"), config);
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

fn on(ip: &str, ports: &RangeInclusive<u16>, a: SocketAddr) -> bool {
    a.ip() == ip.parse::<IpAddr>().expect("an IP") && ports.contains(&a.port())
}

#[test]
fn fig13_megaco_mgc_and_two_mgs_through_the_mpr_and_two_aps_daemons() -> Result {
    if !pinhole_tests::megaco::megaco_available() {
        // MgcConfig::start reports it (or fails under CI).
        let _ = MgcConfig::new(addr(MGC)).start()?;
        return Ok(());
    }
    // Built first if needed (not counted in the run's time).
    let bin = daemon::pinhole_binary()?;
    let t0 = Instant::now();
    let dir = log_dir();
    let (m_mpr, m_aps) = (free_tcp(), [free_tcp(), free_tcp()]);
    let mpr_cfg = format!(
        "relay_ip = \"{MPR_IP}\"\ncontrol_ports = [{H248_PORT}]\nmetrics = \"{m_mpr}\"\n\
         [relay]\nports = {{ first = {}, last = {} }}\nworkers = 1\n\
         [[networks]]\nid = \"corp1\"\ncredential = \"one\"\nprotocols = [\"h248\"]\n\
         [[networks]]\nid = \"corp2\"\ncredential = \"two\"\nprotocols = [\"h248\"]\n\
         [sip]\nenabled = false\n\
         [h248]\nlocal = \"{MPR_IP}:{H248_PORT}\"\nmgc = \"{MGC}\"\nmg_ports = \"{}-{}\"\n",
        RELAY_PORTS.start(),
        RELAY_PORTS.end(),
        MG_PORTS.start(),
        MG_PORTS.end(),
    );
    let aps_cfg = |i: usize| {
        let (net, cred) = [("corp1", "one"), ("corp2", "two")][i];
        let mut t = format!(
            "network = \"{net}\"\ncredential = \"{cred}\"\nprotocol = \"h248\"\n\
             signaling = \"{}:{}\"\nmpr = \"{MPR_IP}:{H248_PORT}\"\nmetrics = \"{}\"\n\
             [relay]\nworkers = 1\n\
             [h248]\nmedia_ports = {{ first = {}, last = {} }}\n",
            APS_IPS[i],
            APS_SIGNALING[i],
            m_aps[i],
            PORTS_B[i].start(),
            PORTS_B[i].end(),
        );
        // MG1 is configured, MG2 learned from its first message.
        if i == 0 {
            t.push_str(&format!(
                "gateways = [{{ mid = \"{}\", addr = \"{}\" }}]\n",
                MG_MIDS[0], MG_SIGNALING[0]
            ));
        }
        t
    };
    let _mpr = start(&bin, "mpr", "mpr", &mpr_cfg, &dir)?;
    std::thread::sleep(Duration::from_millis(200));
    let _aps1 = start(&bin, "aps", "aps1", &aps_cfg(0), &dir)?;
    let _aps2 = start(&bin, "aps", "aps2", &aps_cfg(1), &dir)?;
    for m in m_aps {
        daemon::wait_metric(m, "pinhole_client_registered 1", WAIT);
    }
    daemon::wait_metric(m_mpr, "pinhole_routes_live 2", WAIT);

    let Some(mut mgc) = MgcConfig::new(addr(MGC))
        .mg_mids(MG_MIDS[0], MG_MIDS[1])
        .hold(HOLD)
        .max_run(RUN)
        .dir(&dir)
        .start()?
    else {
        return Ok(());
    };
    let mg = |i: usize| {
        let aps = SocketAddr::new(APS_IPS[i].parse().expect("an IP"), APS_SIGNALING[i]);
        MgConfig::new(aps, addr(MG_SIGNALING[i]), MG_MIDS[i], addr(MG_RTP[i]))
            .packets(PACKETS)
            .interval(INTERVAL)
            .max_run(RUN)
            .dir(&dir)
            .start()
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

    // The MGC sees each MG at a gateway port of its own on the MPR.
    let peers: Vec<SocketAddr> = (1..=2)
        .map(|n| {
            let sc = report.service_change(n).expect("a ServiceChange per MG");
            assert_eq!(sc.mid, MG_MIDS[usize::from(n) - 1], "{sc:?}");
            assert_eq!(sc.method, "restart", "{sc:?}");
            assert!(on(MPR_IP, &MG_PORTS, sc.peer), "not a gateway port: {sc:?}");
            sc.peer
        })
        .collect();
    assert_ne!(peers[0], peers[1], "one gateway port each");
    assert_eq!(report.done_calls, Some(1));
    // The Add replies name MPR relay addresses.
    let adds = [
        report.add(1, 1).expect("MG1's Add reply"),
        report.add(1, 2).expect("MG2's Add reply"),
    ];
    for a in &adds {
        assert!(
            on(MPR_IP, &RELAY_PORTS, a.local),
            "not a relay address: {a:?}"
        );
    }
    assert_ne!(adds[0].local, adds[1].local);
    assert_eq!(report.subtracts.len(), 2, "{:?}", report.subtracts);
    // Each MG's Remote is its APS's port B, RTP arrives both ways, from
    // there.
    for (i, r) in reports.iter().enumerate() {
        let res = r.results.first().ok_or("no RESULT")?;
        let remote = res.remote.ok_or("no Remote")?;
        assert!(on(APS_IPS[i], &PORTS_B[i], remote), "MG{}: {res:?}", i + 1);
        assert_eq!(res.rtp_sent, PACKETS, "MG{}: {res:?}", i + 1);
        assert_eq!(res.rtp_bad, 0, "MG{}: {res:?}", i + 1);
        assert!(
            res.rtp_received * 10 >= PACKETS * 9,
            "MG{} got {} of {PACKETS}: {res:?}\n{}",
            i + 1,
            res.rtp_received,
            logs(&dir)
        );
        assert!(
            res.from.iter().all(|f| on(APS_IPS[i], &PORTS_B[i], *f)),
            "MG{}: {res:?}",
            i + 1
        );
        assert!(res.subtracted, "MG{}: {res:?}", i + 1);
        println!(
            "MG{} ({}): sent {} and received {} of {PACKETS} RTP packets, Remote {remote}, from {:?}",
            i + 1,
            MG_MIDS[i],
            res.rtp_sent,
            res.rtp_received,
            res.from
        );
    }
    // The Subtracts tore the call down at the MPR.
    let key =
        |event: &str| format!("pinhole_signaling_total{{protocol=\"h248\",event=\"{event}\"}}");
    let teardowns = wait_at_least(m_mpr, &key("teardowns"), 1.0);
    assert!(
        teardowns.is_some_and(|t| t >= 1.0),
        "teardowns {teardowns:?}\n{}",
        logs(&dir)
    );
    // ... and freed every relay leg of it.
    let m = daemon::wait_metric(m_mpr, "pinhole_legs_open 0", WAIT);
    for (event, at_least) in [("sdp_rewritten", 2.0), ("calls", 1.0)] {
        let v = daemon::metric(&m, &key(event)).unwrap_or(0.0);
        assert!(v >= at_least, "{event} = {v}\n{m}");
    }
    for event in [
        "malformed",
        "sdp_errors",
        "plan_errors",
        "no_route",
        "unknown_mg",
        "mid_conflicts",
    ] {
        assert_eq!(daemon::metric(&m, &key(event)), Some(0.0), "{event}\n{m}");
    }
    println!("fig13 through the daemons in {:?}", t0.elapsed());
    assert!(t0.elapsed() < Duration::from_secs(50), "{:?}", t0.elapsed());
    Ok(())
}
