//! `pinhole mpr` and `pinhole aps` as child processes on loopback: the APS
//! registers (seen on the MPR's `/metrics`), both stop cleanly on SIGTERM
//! (the APS deregistering first), and a bad configuration fails at start
//! naming the key.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pinhole_tests::daemon::{Daemon, free_tcp, free_udp, scrape_metrics};

const BIN: &str = env!("CARGO_BIN_EXE_pinhole");

/// The MPR's address, used by no other suite of this test binary: its
/// fixed relay ports (46000–46499) and ephemeral control port meet no other
/// suite's sockets (`pinhole demo` runs its MPR on 127.0.0.3).
const MPR_IP: &str = "127.0.0.44";

fn write_config(name: &str, text: &str) -> std::path::PathBuf {
    pinhole_tests::daemon::write_config("pinhole-test", name, text)
}

fn start(cmd: &str, config: &Path) -> Daemon {
    Daemon::with_config(BIN, &["--log-format", "json", cmd], config, Stdio::piped())
}

#[test]
fn mpr_and_aps_register_and_stop_on_sigterm() {
    let control = free_udp(MPR_IP);
    let mpr_metrics = free_tcp();
    let aps_metrics = free_tcp();
    let signaling = free_udp("127.0.0.1");
    let mpr_cfg = write_config(
        "mpr.toml",
        &format!(
            "relay_ip = \"{MPR_IP}\"\ncontrol_ports = [{}]\nmetrics = \"{mpr_metrics}\"\n\
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
        m = scrape_metrics(mpr_metrics).unwrap_or_default();
        a = scrape_metrics(aps_metrics).unwrap_or_default();
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

    let (status, err) = aps.sigterm_and_wait(Duration::from_secs(10));
    assert!(status.success(), "aps: {status}\n{err}");
    assert!(err.contains("\"registered\""), "{err}");
    assert!(err.contains("SIGTERM"), "{err}");
    // The APS deregistered before it exited: the route is gone now, not
    // at its expiry (600 s).
    assert!(err.contains("\"deregistered\""), "{err}");
    let m = scrape_metrics(mpr_metrics).unwrap_or_default();
    assert!(m.contains("pinhole_routes_live 0"), "{m}");
    let (status, err) = mpr.sigterm_and_wait(Duration::from_secs(10));
    assert!(status.success(), "mpr: {status}\n{err}");
    assert!(
        err.contains("shutting down") && err.contains("stopped"),
        "{err}"
    );
}

/// Runs `pinhole {cmd} --config {name}` with `text` as the file, which
/// must fail; returns its stderr.
fn fails_at_start(cmd: &str, name: &str, text: &str) -> String {
    let cfg = write_config(name, text);
    let out = Command::new(BIN)
        .args([cmd, "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_config_fails_at_start_naming_the_key() {
    let err = fails_at_start(
        "mpr",
        "bad-mpr.toml",
        "relay_ip = \"127.0.0.3\"\n[relay]\nports = { first = 30000, last = 20000 }\n\
         [[networks]]\nid = \"corp1\"\ncredential = \"s\"\n",
    );
    assert!(err.contains("relay.ports: first > last"), "{err}");

    let err = fails_at_start(
        "aps",
        "bad-aps.toml",
        "network = \"corp1\"\ncredential = \"\"\nsignaling = \"127.0.0.1:0\"\nmpr = \"127.0.0.3:5060\"\n",
    );
    assert!(err.contains("credential: must not be empty"), "{err}");
}

/// `pinhole mpr` with `[h248]`: it binds the gateway ports (what arrives
/// there goes to the H.248 ALG, whose counters `/metrics` shows with
/// `protocol="h248"`), and a gateway port another socket holds fails the
/// start naming the address. 127.0.0.86 is used by no other test.
#[test]
fn mpr_with_h248_binds_its_gateway_ports_and_counts_on_metrics() {
    const IP: &str = "127.0.0.86";
    let metrics = free_tcp();
    let text = |metrics: std::net::SocketAddr| {
        format!(
            "relay_ip = \"{IP}\"\ncontrol_ports = [29590]\nmetrics = \"{metrics}\"\n\
             [relay]\nports = {{ first = 46900, last = 46949 }}\nworkers = 1\n\
             [[networks]]\nid = \"corp1\"\ncredential = \"s\"\n\
             [sip]\nenabled = false\n\
             [h248]\nlocal = \"{IP}:29590\"\nmgc = \"127.0.0.87:2944\"\nmg_ports = \"29591-29593\"\n"
        )
    };
    let mut mpr = start("mpr", &write_config("mpr-h248.toml", &text(metrics)));
    let line = "pinhole_signaling_total{protocol=\"h248\",event=\"received\"} 0";
    let m = pinhole_tests::daemon::wait_metric(metrics, line, Duration::from_secs(15));
    assert!(
        m.contains("pinhole_signaling_total{protocol=\"h248\",event=\"teardowns\"} 0"),
        "{m}"
    );
    // A gateway port is bound and the ALG's: a stranger (not the MGC) is
    // counted and dropped.
    let stranger = std::net::UdpSocket::bind("127.0.0.87:0").unwrap();
    stranger
        .send_to(
            b"MEGACO/1 [127.0.0.87]:2944\nTransaction = 1 { }\n",
            (IP, 29592),
        )
        .unwrap();
    pinhole_tests::daemon::wait_metric(
        metrics,
        "pinhole_signaling_total{protocol=\"h248\",event=\"unknown_source\"} 1",
        Duration::from_secs(10),
    );
    let (status, err) = mpr.sigterm_and_wait(Duration::from_secs(10));
    assert!(status.success(), "mpr: {status}\n{err}");
    assert!(err.contains("H.248 ALG on"), "{err}");

    let holder = std::net::UdpSocket::bind((IP, 29593)).unwrap();
    let err = fails_at_start("mpr", "mpr-h248-taken.toml", &text(free_tcp()));
    assert!(
        err.contains("cannot bind extra address 127.0.0.86:29593"),
        "{err}"
    );
    drop(holder);
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
