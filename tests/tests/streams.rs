//! Issue 13 at the real `pinhole mpr`: what its public TCP and TLS
//! listeners refuse, each limit from the configuration file's `[streams]`
//! and counted on `/metrics` (`pinhole_stream_refused_total`,
//! `pinhole_stream_closed_total{reason}`); the certificate reload on SIGHUP;
//! and (ignored, run by hand) the memory an idle TLS connection costs the
//! MPR against an idle TCP one.
//!
//! ```text
//! cargo test -p pinhole-tests --test streams -- --ignored --nocapture memory
//! ```

#![allow(missing_docs)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pinhole_net::tls::ClientTls;
use pinhole_tests::daemon::{self, Daemon, free_tcp, free_udp};

const MPR_IP: &str = "127.0.0.101";
const WAIT: Duration = Duration::from_secs(10);

/// A running `pinhole mpr` with SIP over TCP on its control port and TLS
/// on `tls`.
struct Mpr {
    daemon: Daemon,
    sip: SocketAddr,
    tls: SocketAddr,
    metrics: SocketAddr,
    certs: PathBuf,
}

/// `pinhole certs` into `dir` for the MPR's address.
fn certs(dir: &Path) {
    let bin = daemon::pinhole_binary().unwrap();
    let out = Command::new(bin)
        .args(["certs", "--out"])
        .arg(dir)
        .args(["--name", MPR_IP])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Mpr {
    fn start(test: &str, streams: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("pinhole-streams-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        certs(&dir);
        let sip = free_udp(MPR_IP);
        let tls = std::net::TcpListener::bind((MPR_IP, 0))
            .unwrap()
            .local_addr()
            .unwrap();
        let metrics = free_tcp();
        let d = dir.display();
        let config = daemon::write_config(
            "pinhole-streams",
            &format!("{test}.toml"),
            &format!(
                "relay_ip = \"{MPR_IP}\"\ncontrol_ports = [{}]\nmetrics = \"{metrics}\"\n\
                 [relay]\nports = {{ first = 47800, last = 47863 }}\n\
                 [sip]\ntls_port = {}\n\
                 [tls]\ncert = \"{d}/mpr.pem\"\nkey = \"{d}/mpr.key\"\n\
                 [streams]\n{streams}\n\
                 [[networks]]\nid = \"corp1\"\ncredential = \"one\"\n",
                sip.port(),
                tls.port()
            ),
        );
        let bin = daemon::pinhole_binary().unwrap();
        let daemon = Daemon::with_config(bin.to_str().unwrap(), &["mpr"], &config, Stdio::null());
        daemon::wait_metric(metrics, "pinhole_up 1", WAIT);
        Self {
            daemon,
            sip,
            tls,
            metrics,
            certs: dir,
        }
    }

    fn metric(&self, key: &str) -> f64 {
        let m = daemon::scrape_metrics(self.metrics).unwrap();
        daemon::metric(&m, key).unwrap_or_else(|| panic!("no {key} in\n{m}"))
    }

    /// Waits until `key` reads `want`.
    fn wait(&self, key: &str, want: f64) {
        let deadline = Instant::now() + WAIT;
        while self.metric(key) != want {
            assert!(
                Instant::now() < deadline,
                "{key} is {} after {WAIT:?}, not {want}",
                self.metric(key)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A TCP connection from `from` (an IP of ours) to `to`.
    fn connect(from: &str, to: SocketAddr) -> TcpStream {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.bind(&SocketAddr::new(from.parse().unwrap(), 0).into())
            .unwrap();
        s.connect_timeout(&to.into(), WAIT).unwrap();
        s.into()
    }
}

/// True once the peer closed `s` (a read returns 0 or fails) within `within`.
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut b = [0u8; 64];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) => {
                return !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                );
            }
        }
    }
}

#[test]
fn per_ip_and_total_connection_limits_refuse_and_count() {
    let mpr = Mpr::start("limits", "max_connections = 3\nmax_per_ip = 2\n");
    let a1 = Mpr::connect("127.0.0.102", mpr.sip);
    let a2 = Mpr::connect("127.0.0.102", mpr.sip);
    mpr.wait("pinhole_stream_connections", 2.0);
    // A third from the same IP is over max_per_ip.
    let mut a3 = Mpr::connect("127.0.0.102", mpr.sip);
    assert!(
        closed_within(&mut a3, WAIT),
        "the third connection from one IP stayed open"
    );
    mpr.wait("pinhole_stream_refused_total{limit=\"max_per_ip\"}", 1.0);
    // Another IP may connect, up to max_connections in all.
    let b1 = Mpr::connect("127.0.0.103", mpr.sip);
    mpr.wait("pinhole_stream_connections", 3.0);
    let mut b2 = Mpr::connect("127.0.0.103", mpr.sip);
    assert!(
        closed_within(&mut b2, WAIT),
        "a connection over max_connections stayed open"
    );
    mpr.wait(
        "pinhole_stream_refused_total{limit=\"max_connections\"}",
        1.0,
    );
    // The ones admitted still work: a SIP OPTIONS gets an answer.
    let mut ok = a1;
    ok.write_all(
        b"OPTIONS sip:x@corp9.example SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.102:5060;branch=z9hG4bKs1\r\n\
          From: <sip:a@b>;tag=1\r\nTo: <sip:x@corp9.example>\r\nCall-ID: s1\r\nCSeq: 1 OPTIONS\r\n\
          Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
    )
    .unwrap();
    ok.set_read_timeout(Some(WAIT)).unwrap();
    let mut answer = [0u8; 12];
    ok.read_exact(&mut answer).unwrap();
    assert_eq!(
        &answer,
        b"SIP/2.0 404 ",
        "{}",
        String::from_utf8_lossy(&answer)
    );
    drop((a2, b1));
}

#[test]
fn slow_senders_silent_handshakes_and_garbage_are_closed_and_counted() {
    let mpr = Mpr::start(
        "timers",
        "message_timeout_secs = 1\nhandshake_timeout_secs = 1\nidle_timeout_secs = 2\n",
    );
    // One byte every 300 ms: the message never completes in 1 s.
    let mut slow = Mpr::connect("127.0.0.102", mpr.sip);
    let t0 = Instant::now();
    let mut closed = false;
    for b in b"OPTIONS sip:x@y SIP/2.0\r\n" {
        if slow.write_all(&[*b]).is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
        if t0.elapsed() > Duration::from_secs(4) {
            break;
        }
    }
    assert!(
        closed || closed_within(&mut slow, WAIT),
        "the slow sender was not closed"
    );
    mpr.wait("pinhole_stream_closed_total{reason=\"slow_sender\"}", 1.0);
    // A TLS connection that never says hello.
    let mut silent = Mpr::connect("127.0.0.102", mpr.tls);
    assert!(closed_within(&mut silent, WAIT));
    mpr.wait(
        "pinhole_stream_closed_total{reason=\"handshake_timeout\"}",
        1.0,
    );
    // An idle TCP connection.
    let mut idle = Mpr::connect("127.0.0.102", mpr.sip);
    assert!(closed_within(&mut idle, WAIT));
    mpr.wait("pinhole_stream_closed_total{reason=\"idle\"}", 1.0);
    // A message that cannot be framed (no Content-Length).
    let mut bad = Mpr::connect("127.0.0.102", mpr.sip);
    bad.write_all(b"OPTIONS sip:x@y SIP/2.0\r\nVia: SIP/2.0/TCP a\r\n\r\n")
        .unwrap();
    assert!(closed_within(&mut bad, WAIT));
    mpr.wait("pinhole_stream_closed_total{reason=\"framing\"}", 1.0);
}

/// Completes a TLS handshake with the MPR trusting only `ca`.
fn handshake(to: SocketAddr, ca: &Path) -> Result<(), String> {
    let cfg = ClientTls::load(ca, None)
        .map_err(|e| e.to_string())?
        .config();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let tcp = tokio::net::TcpStream::connect(to)
            .await
            .map_err(|e| e.to_string())?;
        let name = pinhole_net::tls::server_name(MPR_IP).map_err(|e| e.to_string())?;
        let c = tokio_rustls::TlsConnector::from(Arc::clone(&cfg));
        tokio::time::timeout(WAIT, c.connect(name, tcp))
            .await
            .map_err(|_| "handshake timed out".to_owned())?
            .map(drop)
            .map_err(|e| e.to_string())
    })
}

#[test]
fn sighup_reloads_the_certificate_for_new_connections() {
    let mpr = Mpr::start("reload", "");
    let old_ca = mpr.certs.join("old-ca.pem");
    std::fs::copy(mpr.certs.join("ca.pem"), &old_ca).unwrap();
    handshake(mpr.tls, &old_ca).unwrap();
    // New certificates from a new CA in the same files, then SIGHUP.
    certs(&mpr.certs);
    let new_ca = mpr.certs.join("ca.pem");
    assert!(
        handshake(mpr.tls, &new_ca).is_err(),
        "the new CA worked before the reload"
    );
    let pid = mpr.daemon.pid().unwrap();
    assert!(
        Command::new("sh")
            .args(["-c", &format!("kill -HUP {pid}")])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + WAIT;
    while handshake(mpr.tls, &new_ca).is_err() {
        assert!(Instant::now() < deadline, "no reload after SIGHUP");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        handshake(mpr.tls, &old_ca).is_err(),
        "the old certificate is still served"
    );
    // The daemon is still up.
    mpr.wait("pinhole_up{role=\"mpr\"}", 1.0);
}

/// Resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
#[ignore = "measurement: prints the MPR's memory per idle TLS and TCP connection"]
fn memory_per_idle_tls_connection() {
    const N: usize = 400;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // A fresh MPR per kind, so one's freed pages do not hide the other's.
    let measure = |kind: &str| -> (u64, u64) {
        let mpr = Mpr::start(
            &format!("memory-{kind}"),
            "max_connections = 2000\nmax_per_ip = 1000\n",
        );
        let pid = mpr.daemon.pid().unwrap();
        let cfg = ClientTls::load(&mpr.certs.join("ca.pem"), None)
            .unwrap()
            .config();
        std::thread::sleep(Duration::from_millis(500));
        let base = rss_kib(pid);
        let held: Vec<Box<dyn std::any::Any>> = if kind == "tls" {
            rt.block_on(async {
                let mut v: Vec<Box<dyn std::any::Any>> = Vec::with_capacity(N);
                for _ in 0..N {
                    let tcp = tokio::net::TcpStream::connect(mpr.tls).await.unwrap();
                    let name = pinhole_net::tls::server_name(MPR_IP).unwrap();
                    let c = tokio_rustls::TlsConnector::from(Arc::clone(&cfg));
                    v.push(Box::new(c.connect(name, tcp).await.unwrap()));
                }
                v
            })
        } else {
            (0..N)
                .map(|_| Box::new(Mpr::connect("127.0.0.102", mpr.sip)) as Box<dyn std::any::Any>)
                .collect()
        };
        mpr.wait("pinhole_stream_connections", N as f64);
        std::thread::sleep(Duration::from_millis(500));
        let with = rss_kib(pid);
        drop(held);
        (base, with)
    };
    let (tcp0, tcp1) = measure("tcp");
    let (tls0, tls1) = measure("tls");
    let per_tcp = tcp1.saturating_sub(tcp0) as f64 / N as f64;
    let per_tls = tls1.saturating_sub(tls0) as f64 / N as f64;
    println!(
        "MPR RSS with {N} idle connections: TCP {tcp0} -> {tcp1} KiB ({per_tcp:.1} KiB each), \
         TLS {tls0} -> {tls1} KiB ({per_tls:.1} KiB each); TLS/TCP = {:.2}",
        per_tls / per_tcp.max(0.1)
    );
}
