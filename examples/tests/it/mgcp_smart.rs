//! `mgcp_smart_gw` as the netns bed runs it: two smart gateway processes
//! register with an in-process MPR (its MGCP ALG on the control socket), the
//! call agent connects them through the MPR, test RTP flows both ways
//! through the relay, and the call is torn down. No firewall here (the
//! firewall-simulator version is in tests/tests/mgcp/fig10.rs).
//!
//! Addresses used by no other test: 127.0.0.59 (MPR relay 46700–46719,
//! gateways' MGCP 24278/24279 and RTP 46720–46727, call agent 24280).

use std::net::{IpAddr, SocketAddr};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pinhole_core::mpr;
use pinhole_core::ports::PortRange;
use pinhole_core::wire::Protocol;
use pinhole_examples::mgcp::ca::{CaEvent, CallAgent, Leg};
use pinhole_mgcp::alg::{Mpr, MprConfig};
use pinhole_net::driver::mpr::{self as mpr_driver, MprAlg};
use pinhole_net::relay::{Relay, RelayConfig};
use tokio::net::UdpSocket;

use crate::common;

const IP: [u8; 4] = [127, 0, 0, 59];
const WAIT: Duration = Duration::from_secs(10);

/// Runs the call agent until `stop` takes an event (or `WAIT`).
async fn pump(
    sock: &UdpSocket,
    ca: &mut CallAgent,
    stop: impl Fn(&CaEvent) -> bool,
) -> Option<CaEvent> {
    let until = tokio::time::Instant::now() + WAIT;
    let mut buf = vec![0u8; 65_536];
    loop {
        while let Some((to, bytes)) = ca.poll_transmit() {
            sock.send_to(&bytes, to).await.expect("send");
        }
        while let Some(e) = ca.poll_event() {
            if stop(&e) {
                return Some(e);
            }
        }
        let timer = ca.poll_timeout().map(tokio::time::Instant::from_std);
        tokio::select! {
            () = tokio::time::sleep_until(until) => return None,
            r = sock.recv_from(&mut buf) => {
                let (n, from) = r.expect("receive");
                ca.handle_datagram(Instant::now(), from, &buf[..n]);
            }
            () = async {
                match timer {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            } => ca.handle_timeout(Instant::now()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_smart_gateway_processes_call_through_the_mpr() {
    let ip = IpAddr::from(IP);
    let control = UdpSocket::bind((ip, 0)).await.unwrap();
    let control_addr = control.local_addr().unwrap();
    let mut cfg = mpr::Config::new(ip, [59; 32]);
    cfg.ports = PortRange::new(46700, 46719).unwrap();
    cfg.control_ports = vec![control_addr.port()];
    for (id, domain) in [("corp1", "corp1.example"), ("corp2", "corp2.example")] {
        let mut n = mpr::NetworkConfig::new(id, format!("{id}-secret").into_bytes());
        n.domains.push(domain.into());
        cfg.networks.push(n);
    }
    let engine = mpr::Engine::new(cfg, Instant::now()).unwrap();
    let (relay, relay_events) = Relay::start(RelayConfig {
        workers: 1,
        ..RelayConfig::default()
    })
    .unwrap();
    let ca_addr = SocketAddr::new(ip, 24280);
    let mut mc = MprConfig::new(control_addr);
    mc.call_agent = Some(ca_addr);
    let (mpr, _out) = mpr_driver::spawn_with(
        engine,
        vec![Arc::new(control)],
        relay,
        relay_events,
        vec![MprAlg::new(control_addr, Box::new(Mpr::new(mc)))],
    )
    .unwrap();

    let gw = |net: &str, n: u16, media: &str| {
        Command::new(env!("CARGO_BIN_EXE_mgcp_smart_gw"))
            .args(["--mgcp", &format!("127.0.0.59:{}", 24277 + n)])
            .args(["--mpr", &control_addr.to_string()])
            .args(["--network", net])
            .args(["--domain", &format!("gw{n}.{net}.example")])
            .args(["--media-ip", "127.0.0.59", "--media-ports", media])
            .args(["--secs", "6", "--expect-media", "--interval-ms", "10"])
            .env("PINHOLE_CREDENTIAL", format!("{net}-secret"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mgcp_smart_gw starts")
    };
    let mut g1 = gw("corp1", 1, "46720-46723");
    let mut g2 = gw("corp2", 2, "46724-46727");
    let until = Instant::now() + WAIT;
    for net in ["corp1", "corp2"] {
        while mpr.route(net, Protocol::Mgcp).await.unwrap().is_none() {
            if Instant::now() > until {
                let _ = (g1.kill(), g2.kill());
                eprintln!("{:?}", mpr.stats().await);
                let out = |g: std::process::Child| {
                    g.wait_with_output()
                        .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
                        .unwrap_or_default()
                };
                panic!("{net} did not register:\n{}\n{}", out(g1), out(g2));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    let sock = UdpSocket::bind(ca_addr).await.unwrap();
    let mut ca = CallAgent::new(ca_addr, 59);
    ca.connect(
        Instant::now(),
        "5EA",
        Leg::new("aaln/1@gw1.corp1.example", control_addr),
        Leg::new("aaln/1@gw2.corp2.example", control_addr),
    )
    .unwrap();
    let up = pump(&sock, &mut ca, |e| {
        matches!(e, CaEvent::Connected { .. } | CaEvent::Failed { .. })
    })
    .await;
    let Some(CaEvent::Connected { a, b }) = up else {
        panic!("the call did not come up: {up:?}");
    };
    assert_eq!((a.ip(), b.ip()), (ip, ip));
    assert!((46700..=46719).contains(&a.port()) && (46700..=46719).contains(&b.port()));
    // About 2 s of 10 ms packets each way.
    tokio::time::sleep(Duration::from_secs(2)).await;
    ca.hangup(Instant::now());
    let end = pump(&sock, &mut ca, |e| {
        matches!(e, CaEvent::Ended | CaEvent::Failed { .. })
    })
    .await;
    assert_eq!(end, Some(CaEvent::Ended));
    let until = Instant::now() + WAIT;
    while mpr.stats().await.unwrap().legs_open > 0 {
        assert!(Instant::now() < until, "relay legs left open");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    for (n, g) in [(1, g1), (2, g2)] {
        let out = tokio::task::spawn_blocking(move || g.wait_with_output())
            .await
            .unwrap()
            .expect("mgcp_smart_gw ends");
        eprintln!("gw{n}: {}", String::from_utf8_lossy(&out.stdout));
        let text = common::successful_stdout(&out);
        assert!(
            text.contains(&format!("registered aaln/1@gw{n}.corp")),
            "{text}"
        );
        assert!(common::intact(&text) >= 100, "{text}");
    }
}
