//! The MPR's MGCP ALG per call: the call agent's CRCX to gateway A, A's
//! 200 with SDP (planned and rewritten), the CRCX to B with A's relay
//! address (passed, planned again toward corp2), B's 200 (rewritten), the
//! MDCX to A, and a DLCX to each (the legs go). Eight datagrams, one call.
#![allow(missing_docs)]

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pinhole_core::alg::MprSignaling;
use pinhole_core::alg::live::{LiveMpr, NoSockets};
use pinhole_core::client;
use pinhole_core::mpr;
use pinhole_core::types::Receive;
use pinhole_core::wire::Protocol;
use pinhole_mgcp::alg::{Mpr, MprConfig};

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

const MPR: &str = "203.0.113.10:2727";
const CA: &str = "192.0.2.5:2727";

/// The MPR engine with corp1 and corp2 registered (no NAT).
fn engine(now: Instant) -> mpr::Engine {
    let mut mc = mpr::Config::new(sa(MPR).ip(), [1; 32]);
    mc.control_ports = vec![2727];
    // Registrations outlive the run; freed ports come back soon.
    mc.timers.registration_max = std::time::Duration::from_secs(30 * 86_400);
    mc.timers.port_quarantine = std::time::Duration::from_secs(1);
    for (id, dom) in [("corp1", "corp1.example"), ("corp2", "corp2.example")] {
        let mut n = mpr::NetworkConfig::new(id, id.as_bytes().to_vec());
        n.domains.push(dom.into());
        mc.networks.push(n);
    }
    let mut e = mpr::Engine::new(mc, now).unwrap();
    for (id, aps) in [
        ("corp1", "198.51.100.1:2727"),
        ("corp2", "198.51.100.2:2727"),
    ] {
        let cc = client::Config::new(
            id,
            id.as_bytes().to_vec(),
            Protocol::Mgcp,
            sa(aps),
            sa(MPR),
            [id.len() as u8 + aps.as_bytes()[11]; 32],
        );
        let mut cc = cc;
        cc.lifetime = std::time::Duration::from_secs(30 * 86_400);
        let mut cl = client::Engine::new(cc, now).unwrap();
        cl.handle_timeout(now);
        for _ in 0..4 {
            while let Some(t) = cl.poll_transmit() {
                let _ = e.handle_datagram(
                    now,
                    Receive {
                        local: t.remote,
                        remote: t.local,
                        bytes: &t.payload,
                        flow: Default::default(),
                    },
                );
            }
            while let Some(t) = e.poll_transmit() {
                let _ = cl.handle_datagram(
                    now,
                    Receive {
                        local: t.remote,
                        remote: t.local,
                        bytes: &t.payload,
                        flow: Default::default(),
                    },
                );
            }
        }
    }
    while e.poll_command().is_some() {}
    assert!(
        e.route("corp1", Protocol::Mgcp).is_some() && e.route("corp2", Protocol::Mgcp).is_some()
    );
    e
}

fn sdp(ip: &str, port: u16) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    )
}

fn call(alg: &mut Mpr, e: &mut mpr::Engine, start: Instant, n: u32) {
    // 10 ms of simulated time per call, so freed relay ports leave
    // quarantine and old transactions expire as they would live.
    let now = start + std::time::Duration::from_millis(u64::from(n) * 10);
    e.handle_timeout(now);
    if alg.poll_timeout().is_some_and(|t| t <= now) {
        alg.handle_timeout(now, &mut LiveMpr::new(e, &mut NoSockets));
    }
    let tx = n.wrapping_mul(8) % 999_999_000 + 1;
    let mut feed = |from: &str, bytes: &[u8]| -> Vec<u8> {
        alg.handle_datagram(
            now,
            &mut LiveMpr::new(e, &mut NoSockets),
            Receive {
                local: sa(MPR),
                remote: sa(from),
                bytes,
                flow: Default::default(),
            },
        );
        while e.poll_command().is_some() {}
        let out = alg.poll_transmit().map(|t| t.payload).unwrap_or_default();
        while alg.poll_transmit().is_some() {}
        out
    };
    let relay = |d: &[u8]| {
        if d.is_empty() {
            panic!("call {n}: nothing forwarded");
        }
        let m = pinhole_mgcp::Message::parse(d).unwrap();
        let s = m.sdp().unwrap().unwrap();
        s.endpoints(sa(MPR).ip()).unwrap()[0].addr
    };
    let c = format!("C: K{n}\r\n");
    feed(
        CA,
        format!("CRCX {tx} aaln/1@gw1.corp1.example MGCP 1.0\r\n{c}").as_bytes(),
    );
    let ok = feed(
        "198.51.100.1:2727",
        format!(
            "200 {tx} OK\r\nI: A1\r\n\r\n{}",
            sdp("198.51.100.1", 40_000)
        )
        .as_bytes(),
    );
    let r1 = relay(&ok);
    feed(
        CA,
        format!(
            "CRCX {} aaln/1@gw2.corp2.example MGCP 1.0\r\n{c}\r\n{}",
            tx + 1,
            sdp(&r1.ip().to_string(), r1.port())
        )
        .as_bytes(),
    );
    let ok = feed(
        "198.51.100.2:2727",
        format!(
            "200 {} OK\r\nI: B1\r\n\r\n{}",
            tx + 1,
            sdp("198.51.100.2", 40_002)
        )
        .as_bytes(),
    );
    let ra = relay(&ok);
    feed(
        CA,
        format!(
            "MDCX {} aaln/1@gw1.corp1.example MGCP 1.0\r\n{c}I: A1\r\n\r\n{}",
            tx + 2,
            sdp(&ra.ip().to_string(), ra.port())
        )
        .as_bytes(),
    );
    feed(
        CA,
        format!("DLCX {} aaln/1@gw1.corp1.example MGCP 1.0\r\n{c}", tx + 3).as_bytes(),
    );
    black_box(feed(
        CA,
        format!("DLCX {} aaln/1@gw2.corp2.example MGCP 1.0\r\n{c}", tx + 4).as_bytes(),
    ));
}

fn bench(c: &mut Criterion) {
    #[allow(clippy::disallowed_methods)]
    let now = Instant::now();
    let mut e = engine(now);
    let mut alg = Mpr::new(MprConfig::new(sa(MPR)));
    let mut n = 0u32;
    let mut g = c.benchmark_group("mgcp_mpr");
    g.throughput(Throughput::Elements(1));
    g.bench_function("call_setup_and_teardown", |b| {
        b.iter(|| {
            n = n.wrapping_add(1);
            call(&mut alg, &mut e, now, n);
        });
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
