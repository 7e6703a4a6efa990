//! `pinhole mpr` and `pinhole aps` as child processes on loopback: the APS
//! registers (seen on the MPR's `/metrics`), both stop cleanly on SIGTERM
//! (the APS deregistering first), and a bad configuration fails at start
//! naming the key.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_pinhole");

fn free_udp(ip: &str) -> SocketAddr {
    UdpSocket::bind((ip, 0)).unwrap().local_addr().unwrap()
}

fn free_tcp() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn write_config(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pinhole-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Kills the child when dropped (a failing test leaves nothing behind).
struct Guard(Option<Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn start(cmd: &str, config: &PathBuf) -> Guard {
    let child = Command::new(BIN)
        .args(["--log-format", "json", cmd, "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    Guard(Some(child))
}

fn scrape(addr: SocketAddr) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

fn sigterm_and_wait(g: &mut Guard) -> (ExitStatus, String) {
    let mut child = g.0.take().unwrap();
    // The shell's builtin kill: no procps needed on minimal images.
    let ok = Command::new("sh")
        .args(["-c", &format!("kill -TERM {}", child.id())])
        .status()
        .unwrap();
    assert!(ok.success());
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t0.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("no exit within 10 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status, err)
}

#[test]
fn mpr_and_aps_register_and_stop_on_sigterm() {
    let control = free_udp("127.0.0.3");
    let mpr_metrics = free_tcp();
    let aps_metrics = free_tcp();
    let signaling = free_udp("127.0.0.1");
    let mpr_cfg = write_config(
        "mpr.toml",
        &format!(
            "relay_ip = \"127.0.0.3\"\ncontrol_ports = [{}]\nmetrics = \"{mpr_metrics}\"\n\
             [relay]\nports = {{ first = 46000, last = 46499 }}\nworkers = 1\n\
             [[networks]]\nid = \"corp1\"\ncredential = \"test-secret\"\n",
            control.port()
        ),
    );
    let aps_cfg = write_config(
        "aps.toml",
        &format!(
            "network = \"corp1\"\ncredential = \"test-secret\"\nsignaling = \"{signaling}\"\n\
             mpr = \"{control}\"\nmetrics = \"{aps_metrics}\"\n[relay]\nworkers = 1\n"
        ),
    );
    let mut mpr = start("mpr", &mpr_cfg);
    let mut aps = start("aps", &aps_cfg);

    // Bounded: at most 15 s for the registration to show on both sides.
    let t0 = Instant::now();
    let (mut m, mut a) = (String::new(), String::new());
    while t0.elapsed() < Duration::from_secs(15) {
        m = scrape(mpr_metrics).unwrap_or_default();
        a = scrape(aps_metrics).unwrap_or_default();
        if m.contains("pinhole_routes_live 1") && a.contains("pinhole_client_registered 1") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(m.starts_with("HTTP/1.1 200 OK"), "{m}");
    assert!(m.contains("pinhole_routes_live 1"), "{m}");
    assert!(
        m.contains("pinhole_registrations_total{result=\"accepted\"} 1"),
        "{m}"
    );
    assert!(m.contains("# TYPE pinhole_legs_open gauge"), "{m}");
    assert!(
        m.contains("pinhole_relay_packets_total{direction=\"in\"} 0"),
        "{m}"
    );
    assert!(
        m.contains("pinhole_relay_drops_total{reason=\"source\"} 0"),
        "{m}"
    );
    for reason in ["stale", "overflow"] {
        let line = format!("pinhole_relay_drops_total{{reason=\"{reason}\"}} 0");
        assert!(m.contains(&line), "{line} not in {m}");
    }
    assert!(a.contains("pinhole_client_registered 1"), "{a}");

    let (status, err) = sigterm_and_wait(&mut aps);
    assert!(status.success(), "aps: {status}\n{err}");
    assert!(err.contains("\"registered\""), "{err}");
    assert!(err.contains("SIGTERM"), "{err}");
    // The APS deregistered before it exited: the route is gone now, not
    // at its expiry (600 s).
    assert!(err.contains("\"deregistered\""), "{err}");
    let m = scrape(mpr_metrics).unwrap_or_default();
    assert!(m.contains("pinhole_routes_live 0"), "{m}");
    let (status, err) = sigterm_and_wait(&mut mpr);
    assert!(status.success(), "mpr: {status}\n{err}");
    assert!(
        err.contains("shutting down") && err.contains("stopped"),
        "{err}"
    );
}

#[test]
fn bad_config_fails_at_start_naming_the_key() {
    let cfg = write_config(
        "bad-mpr.toml",
        "relay_ip = \"127.0.0.3\"\n[relay]\nports = { first = 30000, last = 20000 }\n\
         [[networks]]\nid = \"corp1\"\ncredential = \"s\"\n",
    );
    let out = Command::new(BIN)
        .args(["mpr", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("relay.ports: first > last"), "{err}");

    let cfg = write_config(
        "bad-aps.toml",
        "network = \"corp1\"\ncredential = \"\"\nsignaling = \"127.0.0.1:0\"\nmpr = \"127.0.0.3:5060\"\n",
    );
    let out = Command::new(BIN)
        .args(["aps", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("credential: must not be empty"), "{err}");
}

#[test]
fn help_on_every_subcommand() {
    for sub in [&[][..], &["mpr"], &["aps"], &["demo"], &["inspect"]] {
        let out = Command::new(BIN).args(sub).arg("--help").output().unwrap();
        assert!(out.status.success(), "{sub:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage"),
            "{sub:?}"
        );
    }
}
