//! Fig. 14 with the daemon and the real MGC: no APS. Two smart media
//! gateways (`h248_smart_mg`, the example binary: a gateway with
//! `pinhole_h248`'s ALG in its smart gateway mode beside it) register
//! their H.248 sockets with `pinhole mpr`, reach OTP's megaco MGC through
//! it (a gateway port each), open their media pinholes with CMPH from
//! their own RTP ports before their Add replies leave, and send RTP
//! straight to the MPR's relay addresses; the Subtracts tear it down.
//!
//! ```text
//! MG1 127.0.0.92 ─┐
//!                  MPR 127.0.0.90 ── MGC 127.0.0.91
//! MG2 127.0.0.93 ─┘
//! ```
//!
//! Ports of the pretty-text run: MPR control (H.248) 29600, gateway ports
//! 29610–29619, relay 47000–47199; MGC 29603; the MGs' H.248 sockets
//! 29604 and 29605, their RTP 47400–47499 and 47500–47599. The
//! compact-text run adds 20 to the signaling ports and 500 to the media
//! ports. The runs take turns.

use std::fs::File;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use pinhole_tests::daemon::{self, Daemon, free_tcp};
use pinhole_tests::megaco::through::{Expect, Span};
use pinhole_tests::megaco::{Encoding, MgReport, MgcConfig};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

const MPR_IP: &str = "127.0.0.90";
const MGC_IP: &str = "127.0.0.91";
const MG_IPS: [&str; 2] = ["127.0.0.92", "127.0.0.93"];

/// One run's ports and text encoding.
struct Plan {
    name: &'static str,
    /// Added to every signaling port.
    sig: u16,
    /// Added to every media port.
    media: u16,
    encoding: Encoding,
    /// A domain-name mId and a bracketed-address one.
    mids: [&'static str; 2],
}

impl Plan {
    fn h248_port(&self) -> u16 {
        29600 + self.sig
    }
    fn mg_ports(&self) -> RangeInclusive<u16> {
        29610 + self.sig..=29619 + self.sig
    }
    fn relay_ports(&self) -> RangeInclusive<u16> {
        47000 + self.media..=47199 + self.media
    }
    fn mgc(&self) -> SocketAddr {
        SocketAddr::new(super::ip(MGC_IP), 29603 + self.sig)
    }
    fn mg_h248(&self, i: usize) -> SocketAddr {
        SocketAddr::new(super::ip(MG_IPS[i]), 29604 + self.sig + i as u16)
    }
    fn mg_rtp(&self, i: usize) -> RangeInclusive<u16> {
        let first = 47400 + self.media + 100 * i as u16;
        first..=first + 99
    }
}

/// RTP each MG sends, and how far apart.
const PACKETS: u32 = 50;
const INTERVAL: Duration = Duration::from_millis(10);
/// The call stays up long enough for every packet both ways.
const HOLD: Duration = Duration::from_millis(1500);
/// Bound on the MGC and on each gateway's run.
const RUN: Duration = Duration::from_secs(25);
const WAIT: Duration = Duration::from_secs(15);

/// The `h248_smart_mg` example binary: cargo builds it now (in the test's
/// own target folder and profile, a no-op when it is up to date), found
/// next to the test's executable like [`daemon::pinhole_binary`]'s.
fn smart_mg_binary() -> std::result::Result<PathBuf, String> {
    static BIN: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .ok_or_else(|| format!("{} is not in <target>/<profile>/deps", exe.display()))?;
        let target = profile_dir
            .parent()
            .ok_or_else(|| format!("{} has no target folder", profile_dir.display()))?;
        let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        cmd.args(["build", "--quiet", "-p", "pinhole-examples"])
            .args(["--bin", "h248_smart_mg"])
            .arg("--manifest-path")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml"))
            .arg("--target-dir")
            .arg(target);
        match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => {}
            Some("release") => {
                cmd.arg("--release");
            }
            Some(other) => {
                cmd.args(["--profile", other]);
            }
        }
        let status = cmd
            .status()
            .map_err(|e| format!("cannot run cargo to build h248_smart_mg: {e}"))?;
        if !status.success() {
            return Err(format!("cargo build --bin h248_smart_mg: {status}"));
        }
        let bin = profile_dir.join("h248_smart_mg");
        if bin.is_file() {
            Ok(bin)
        } else {
            Err(format!("{} missing after the build", bin.display()))
        }
    })
    .clone()
}

/// A gateway process: killed when dropped, its output in files.
struct Gw {
    child: Option<Child>,
    name: String,
    dir: PathBuf,
}

impl Gw {
    fn start(bin: &Path, name: &str, args: &[String], dir: &Path) -> Result<Self> {
        let out = File::create(dir.join(format!("{name}.stdout")))?;
        let err = File::create(dir.join(format!("{name}.stderr")))?;
        let child = Command::new(bin)
            .args(args)
            .env("RUST_LOG", "info,pinhole_h248=debug")
            .stdout(out)
            .stderr(err)
            .spawn()?;
        Ok(Self {
            child: Some(child),
            name: name.to_owned(),
            dir: dir.to_owned(),
        })
    }

    fn output(&self, ext: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{}.{ext}", self.name))).unwrap_or_default()
    }

    /// Waits at most `within` for the exit (then kills it); the report.
    fn wait(&mut self, within: Duration) -> Result<(MgReport, String)> {
        let mut child = self.child.take().ok_or("already waited for")?;
        let deadline = Instant::now() + within;
        let status: ExitStatus = loop {
            if let Some(s) = child.try_wait()? {
                break s;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                break child.wait()?;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let (out, err) = (self.output("stdout"), self.output("stderr"));
        let report = MgReport::parse(&self.name, &out, &err, status)?;
        Ok((report, out))
    }
}

impl Drop for Gw {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn tail(path: &Path, n: usize) -> String {
    let t = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = t.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn logs(dir: &Path) -> String {
    [
        "mpr.log",
        "mg1.stdout",
        "mg1.stderr",
        "mg2.stdout",
        "mg2.stderr",
    ]
    .iter()
    .map(|n| format!("--- {n} (end) ---\n{}\n", tail(&dir.join(n), 30)))
    .collect()
}

#[test]
fn fig14_two_smart_mgs_through_the_mpr_daemon_with_the_megaco_mgc() -> Result {
    fig14(&Plan {
        name: "pretty",
        sig: 0,
        media: 0,
        encoding: Encoding::Pretty,
        mids: ["<mg1.corp1.example>", "[127.0.0.93]:29605"],
    })
}

#[test]
fn fig14_compact_text() -> Result {
    fig14(&Plan {
        name: "compact",
        sig: 20,
        media: 500,
        encoding: Encoding::Compact,
        mids: ["<mg1.corp1.example>:29624", "mg2device"],
    })
}

fn fig14(p: &Plan) -> Result {
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
    let mg_bin = smart_mg_binary()?;
    let t0 = Instant::now();
    let dir = super::log_dir(&format!("fig14-{}", p.name));
    let m_mpr = free_tcp();
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
    let cfg_path = dir.join("mpr.toml");
    std::fs::write(&cfg_path, mpr_cfg)?;
    let _mpr = Daemon::spawn(
        Command::new(&bin)
            .args(["mpr", "--config"])
            .arg(&cfg_path)
            .env("RUST_LOG", "info,pinhole_h248=debug")
            .stdout(Stdio::null())
            .stderr(File::create(dir.join("mpr.log"))?),
    );
    let Some(mut mgc) = MgcConfig::new(p.mgc())
        .mg_mids(p.mids[0], p.mids[1])
        .encoding(p.encoding)
        .hold(HOLD)
        .max_run(RUN)
        .dir(&dir)
        .start()?
    else {
        return Ok(());
    };
    let mg = |i: usize| {
        let (net, cred) = [("corp1", "one"), ("corp2", "two")][i];
        let rtp = p.mg_rtp(i);
        let args: Vec<String> = [
            "--h248",
            &p.mg_h248(i).to_string(),
            "--mpr",
            &format!("{MPR_IP}:{}", p.h248_port()),
            "--network",
            net,
            "--credential",
            cred,
            "--mid",
            p.mids[i],
            "--media-ip",
            MG_IPS[i],
            "--media-ports",
            &format!("{}-{}", rtp.start(), rtp.end()),
            "--secs",
            &RUN.as_secs().to_string(),
            "--calls",
            "1",
            "--packets",
            &PACKETS.to_string(),
            "--interval-ms",
            &INTERVAL.as_millis().to_string(),
            "--expect-media",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        Gw::start(&mg_bin, &format!("mg{}", i + 1), &args, &dir)
    };
    let mut mg1 = mg(0)?;
    let mut mg2 = mg(1)?;
    daemon::wait_metric(m_mpr, "pinhole_routes_live 2", WAIT);

    let report = mgc.wait(RUN)?;
    let (r1, out1) = mg1.wait(Duration::from_secs(5))?;
    let (r2, out2) = mg2.wait(Duration::from_secs(5))?;
    let report = report
        .ensure_success()
        .map_err(|e| format!("{e}\n{}", logs(&dir)))?;
    let reports = [
        r1.ensure_success()
            .map_err(|e| format!("{e}\n{}", logs(&dir)))?,
        r2.ensure_success()
            .map_err(|e| format!("{e}\n{}", logs(&dir)))?,
    ];
    for (i, out) in [&out1, &out2].into_iter().enumerate() {
        // Registered with the MPR first (Fig. 6), then announced to the MGC.
        assert!(
            out.lines().any(|l| l.starts_with("registered ")),
            "MG{}:\n{out}",
            i + 1
        );
        assert!(out.contains("EVENT subtract "), "MG{}:\n{out}", i + 1);
        let summary = out
            .lines()
            .find(|l| l.starts_with("RTP sent "))
            .ok_or_else(|| format!("MG{} printed no summary:\n{out}", i + 1))?;
        // Its pinhole: one CMPH, none failed.
        assert!(summary.ends_with("pinholes 1, failures 0"), "{summary}");
        println!("{}: MG{}: {summary}", p.name, i + 1);
    }

    // The smart MGs send to the relay and hear from it: their Remote and
    // every RTP source are MPR relay addresses.
    let relay_span = Span::new(super::ip(MPR_IP), relay);
    let expect = Expect {
        mids: p.mids.map(String::from),
        gateway_ports: Span::new(super::ip(MPR_IP), mg_ports),
        relay: relay_span.clone(),
        media_from: [relay_span.clone(), relay_span],
        packets: PACKETS,
        min_percent: 90,
    };
    for line in expect
        .check(&report, &reports)
        .map_err(|e| format!("{} run: {e}\n{}", p.name, logs(&dir)))?
    {
        println!("{}: {line}", p.name);
    }
    // The Subtracts freed every relay leg at the MPR.
    super::assert_mpr_done(m_mpr, WAIT, &logs(&dir));
    println!(
        "fig14 ({}) through the MPR daemon in {:?}",
        p.name,
        t0.elapsed()
    );
    assert!(t0.elapsed() < Duration::from_secs(40), "{:?}", t0.elapsed());
    Ok(())
}
