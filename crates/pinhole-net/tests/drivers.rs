//! The engines on real loopback sockets, through the userspace firewall
//! simulator: Fig. 6 registration, Fig. 7 (APS) media both ways, and the
//! firewall dropping what arrives before a pinhole exists.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use pinhole_core::client::{self, Event as ClientEvent, PinholeRequest};
use pinhole_core::intent::{IntentKind, MediaEndpoint};
use pinhole_core::mpr;
use pinhole_core::ports::PortRange;
use pinhole_core::types::{CallKey, Side};
use pinhole_core::wire::{Protocol, RtcpMode};
use pinhole_net::driver::mpr::Intent;
use pinhole_net::driver::{SimRouter, client as client_driver, mpr as mpr_driver};
use pinhole_net::firewall::{FirewallSim, SimConfig};
use pinhole_net::relay::{Relay, RelayConfig};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::timeout;

const MPR_IP: [u8; 4] = [127, 0, 0, 3];
const CRED: &[u8] = b"corp1-shared-secret";
const WAIT: Duration = Duration::from_secs(10);

fn mux(a: SocketAddr) -> MediaEndpoint {
    MediaEndpoint {
        index: 0,
        addr: a,
        rtcp: RtcpMode::Mux,
        rtcp_addr: None,
    }
}

async fn free_addr(ip: [u8; 4]) -> SocketAddr {
    let s = UdpSocket::bind((IpAddr::from(ip), 0)).await.unwrap();
    s.local_addr().unwrap()
}

async fn wait_event<T: std::fmt::Debug>(
    rx: &mut mpsc::Receiver<T>,
    mut want: impl FnMut(&T) -> bool,
) -> T {
    timeout(WAIT, async {
        loop {
            let e = rx.recv().await.expect("event channel open");
            if want(&e) {
                return e;
            }
        }
    })
    .await
    .expect("event in time")
}

async fn recv_n(sock: &UdpSocket, n: usize) -> Vec<(Vec<u8>, SocketAddr)> {
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    while out.len() < n {
        match timeout(Duration::from_secs(3), sock.recv_from(&mut buf)).await {
            Ok(Ok((len, from))) => out.push((buf[..len].to_vec(), from)),
            _ => break,
        }
    }
    out
}

fn rtp(who: u8, seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, 0x00];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&[0; 8]);
    p.push(who);
    p.resize(172, 0x55);
    p
}

struct Bed {
    sim: Arc<FirewallSim>,
    mpr: mpr_driver::MprHandle,
    _mpr_out: mpr_driver::MprOutputs,
    aps: client_driver::ClientHandle,
    aps_events: mpsc::Receiver<ClientEvent>,
    pinhole: SocketAddr,
}

/// An MPR on 127.0.0.3 and an APS behind the firewall simulator, registered.
/// Tests run in parallel: each gets its own relay port range and seed.
async fn bed(ports: (u16, u16), firewall_timeout: Duration, client_assumes: Duration) -> Bed {
    let sim = Arc::new(
        FirewallSim::start(SimConfig {
            udp_idle_timeout: firewall_timeout,
            ..SimConfig::default()
        })
        .await
        .unwrap(),
    );
    let control = Arc::new(UdpSocket::bind((IpAddr::from(MPR_IP), 0)).await.unwrap());
    let control_addr = control.local_addr().unwrap();
    let mut cfg = mpr::Config::new(MPR_IP.into(), [ports.0 as u8; 32]);
    cfg.ports = PortRange::new(ports.0, ports.1).unwrap();
    cfg.control_ports = vec![control_addr.port()];
    cfg.networks
        .push(mpr::NetworkConfig::new("corp1", CRED.to_vec()));
    let engine = mpr::Engine::new(cfg, tokio::time::Instant::now().into_std()).unwrap();
    let (relay, relay_events) = Relay::start(RelayConfig::default()).unwrap();
    let (mpr, mpr_out) = mpr_driver::spawn(engine, vec![control], relay, relay_events).unwrap();

    let sig = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let mut ccfg = client::Config::new(
        "corp1",
        CRED.to_vec(),
        Protocol::Sip,
        sig.local_addr().unwrap(),
        control_addr,
        [4; 32],
    );
    ccfg.firewall_idle_timeout = client_assumes;
    let cengine = client::Engine::new(ccfg, tokio::time::Instant::now().into_std()).unwrap();
    let (crelay, crelay_events) = Relay::start(RelayConfig::default()).unwrap();
    let router = Arc::new(SimRouter::new(Arc::clone(&sim)));
    let (aps, mut aps_out) =
        client_driver::spawn(cengine, sig, crelay, crelay_events, router).unwrap();

    // Fig. 6: registered through the firewall; the MPR saw its public side.
    let e = wait_event(&mut aps_out.events, |e| {
        matches!(e, ClientEvent::Registered { .. })
    })
    .await;
    let ClientEvent::Registered { pinhole, .. } = e else {
        unreachable!()
    };
    assert_eq!(pinhole.ip(), IpAddr::from([127, 0, 0, 2]));
    let route = mpr
        .route("corp1", Protocol::Sip)
        .await
        .unwrap()
        .expect("route");
    assert_eq!(route.pinhole, pinhole);
    Bed {
        sim,
        mpr,
        _mpr_out: mpr_out,
        aps,
        aps_events: aps_out.events,
        pinhole,
    }
}

/// Fig. 7 from the public party's offer to the answer: returns (B, L, C, LP).
async fn fig7_call(
    b: &mut Bed,
    call: &CallKey,
    party: SocketAddr,
    phone: SocketAddr,
) -> (SocketAddr, SocketAddr, SocketAddr, SocketAddr) {
    let offer = Intent {
        kind: IntentKind::Offer,
        from: Side::A,
        origin: None,
        toward: Some("corp1".into()),
        endpoints: vec![mux(party)],
    };
    let plan = b.mpr.intent(call.clone(), offer).await.unwrap().unwrap();
    let l = plan.endpoints[0].addr;
    assert_eq!(l.ip(), IpAddr::from(MPR_IP));
    let port_b = free_addr([127, 0, 0, 1]).await;
    let id = b
        .aps
        .open_pinhole(PinholeRequest {
            local: port_b,
            relay: Some(l),
            rtcp: RtcpMode::Mux,
            key: call.as_bytes().to_vec(),
            inside: Some(phone),
        })
        .await
        .unwrap()
        .unwrap();
    let e = wait_event(&mut b.aps_events, |e| matches!(e, ClientEvent::PinholeOpened { id: i, .. } | ClientEvent::PinholeFailed { id: i, .. } if *i == id)).await;
    let ClientEvent::PinholeOpened {
        pinhole: Some(c),
        relay,
        ..
    } = e
    else {
        panic!("pinhole failed: {e:?}")
    };
    assert_eq!(relay, l);
    assert_eq!(c.ip(), IpAddr::from([127, 0, 0, 2]));
    let answer = Intent {
        kind: IntentKind::Answer,
        from: Side::B,
        origin: Some("corp1".into()),
        toward: None,
        endpoints: vec![mux(c)],
    };
    let lp = b
        .mpr
        .intent(call.clone(), answer)
        .await
        .unwrap()
        .unwrap()
        .endpoints[0]
        .addr;
    (port_b, l, c, lp)
}

/// `n` packets each way; asserts they all arrive intact, in order, from the right ports.
async fn talk(party: &UdpSocket, lp: SocketAddr, phone: &UdpSocket, port_b: SocketAddr, n: u16) {
    for i in 0..n {
        party.send_to(&rtp(b'p', i), lp).await.unwrap();
        phone.send_to(&rtp(b'a', i), port_b).await.unwrap();
    }
    let at_phone = recv_n(phone, usize::from(n)).await;
    let at_party = recv_n(party, usize::from(n)).await;
    assert_eq!(at_phone.len(), usize::from(n), "party → phone");
    assert_eq!(at_party.len(), usize::from(n), "phone → party");
    assert!(
        at_phone
            .iter()
            .enumerate()
            .all(|(i, (p, from))| *p == rtp(b'p', i as u16) && *from == port_b),
        "intact, in order, from the APS's port B"
    );
    assert!(
        at_party
            .iter()
            .enumerate()
            .all(|(i, (p, from))| *p == rtp(b'a', i as u16) && *from == lp),
        "intact, in order, from the party's relay leg"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fig7_through_the_firewall_simulator_media_both_ways() {
    let mut b = bed(
        (43_000, 43_499),
        Duration::from_secs(30),
        Duration::from_secs(30),
    )
    .await;
    let phone = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let party = UdpSocket::bind("127.0.0.4:0").await.unwrap();

    // Before any media pinhole, the outside cannot reach inside: a packet
    // at the firewall's registration pinhole from a stranger is dropped.
    let before = b.sim.counters().dropped_inbound();
    party.send_to(&rtp(b'x', 0), b.pinhole).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(b.sim.counters().dropped_inbound(), before + 1);

    let call = CallKey::from("fig7@loopback");
    let (port_b, l, _c, lp) = fig7_call(
        &mut b,
        &call,
        party.local_addr().unwrap(),
        phone.local_addr().unwrap(),
    )
    .await;
    talk(&party, lp, &phone, port_b, 50).await;
    let stats = b.mpr.stats().await.unwrap();
    assert_eq!(stats.cmph_bound, 1);
    assert_eq!(stats.legs_open, 2);

    // A stranger injecting at either leg gets nothing to the phone.
    let stranger = UdpSocket::bind("127.0.0.5:0").await.unwrap();
    stranger.send_to(&rtp(b'x', 1), lp).await.unwrap();
    stranger.send_to(&rtp(b'x', 2), l).await.unwrap();
    assert!(
        recv_n(&phone, 1).await.is_empty(),
        "injected media never reaches the phone"
    );

    // Teardown frees the legs.
    let bye = Intent {
        kind: IntentKind::Teardown,
        from: Side::A,
        origin: None,
        toward: Some("corp1".into()),
        endpoints: vec![],
    };
    b.mpr.intent(call, bye).await.unwrap().unwrap();
    assert_eq!(b.mpr.stats().await.unwrap().legs_open, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_longer_than_the_firewall_timeout_then_resume() {
    // The firewall forgets idle flows after 1.5 s; the APS knows it, and
    // refreshes and keeps alive every 1 s (2/3 of it): 0.5 s of margin for
    // a loaded CI machine.
    let mut b = bed(
        (43_500, 43_999),
        Duration::from_millis(1_500),
        Duration::from_millis(1_500),
    )
    .await;
    let phone = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let party = UdpSocket::bind("127.0.0.4:0").await.unwrap();
    let call = CallKey::from("hold@loopback");
    let (port_b, _l, _c, lp) = fig7_call(
        &mut b,
        &call,
        party.local_addr().unwrap(),
        phone.local_addr().unwrap(),
    )
    .await;
    talk(&party, lp, &phone, port_b, 10).await;
    // On hold: silence for more than two firewall timeouts.
    tokio::time::sleep(Duration::from_millis(3_600)).await;
    let stats = b.aps.stats().await.unwrap();
    assert!(
        stats.keepalives >= 2,
        "keepalives held the media pinhole: {stats:?}"
    );
    assert!(
        stats.registrations_ok >= 3,
        "refreshes held the signaling pinhole: {stats:?}"
    );
    let route = b
        .mpr
        .route("corp1", Protocol::Sip)
        .await
        .unwrap()
        .expect("route");
    assert_eq!(
        route.pinhole, b.pinhole,
        "the same signaling pinhole all along"
    );
    assert_eq!(b.sim.counters().dropped_expired, 0);
    // Resume: media both ways again.
    talk(&party, lp, &phone, port_b, 10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_terminal_latches_through_the_firewall_and_strangers_do_not() {
    let b = bed(
        (44_000, 44_499),
        Duration::from_secs(30),
        Duration::from_secs(30),
    )
    .await;
    // A plain phone inside: no CMPH; its offer carries its private address.
    let phone = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let phone_addr = phone.local_addr().unwrap();
    let party = UdpSocket::bind("127.0.0.4:0").await.unwrap();
    let call = CallKey::from("plain@loopback");
    let offer = Intent {
        kind: IntentKind::Offer,
        from: Side::A,
        origin: Some("corp1".into()),
        toward: None,
        endpoints: vec![mux(phone_addr)],
    };
    let lp = b
        .mpr
        .intent(call.clone(), offer)
        .await
        .unwrap()
        .unwrap()
        .endpoints[0]
        .addr;
    let answer = Intent {
        kind: IntentKind::Answer,
        from: Side::B,
        origin: None,
        toward: Some("corp1".into()),
        endpoints: vec![mux(party.local_addr().unwrap())],
    };
    let l = b.mpr.intent(call, answer).await.unwrap().unwrap().endpoints[0].addr;
    // A stranger races the phone to its leg: wrong IP, dropped, not latched.
    let stranger = UdpSocket::bind("127.0.0.5:0").await.unwrap();
    stranger.send_to(&rtp(b'x', 0), l).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(b.mpr.stats().await.unwrap().latches, 0);
    // The phone's media leaves through the firewall and latches its leg.
    let route = b.sim.route(phone_addr, l).unwrap();
    for i in 0..20u16 {
        phone.send_to(&rtp(b'a', i), route).await.unwrap();
        party.send_to(&rtp(b'p', i), lp).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let at_party = recv_n(&party, 20).await;
    assert_eq!(at_party.len(), 20, "phone → party");
    assert!(
        at_party
            .iter()
            .enumerate()
            .all(|(i, (p, from))| *p == rtp(b'a', i as u16) && *from == lp)
    );
    // The party's first packets may race the latch; after it, all pass.
    let at_phone = recv_n(&phone, 20).await;
    assert!(!at_phone.is_empty(), "party → phone once latched");
    assert!(
        at_phone.iter().all(|(_, from)| *from == route),
        "through the firewall's pinhole"
    );
    for i in 20..30u16 {
        party.send_to(&rtp(b'p', i), lp).await.unwrap();
    }
    let at_phone = recv_n(&phone, 10).await;
    assert_eq!(at_phone.len(), 10);
    assert_eq!(b.mpr.stats().await.unwrap().latches, 1);
    // After the latch the stranger still gets nothing through.
    stranger.send_to(&rtp(b'x', 1), l).await.unwrap();
    assert!(recv_n(&party, 1).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_ports_taken_by_another_process_are_never_written_into_a_plan() {
    // Another process holds two ports inside the relay range.
    let blocked: Vec<std::net::UdpSocket> = [47_010u16, 47_020]
        .iter()
        .map(|p| std::net::UdpSocket::bind((IpAddr::from(MPR_IP), *p)).unwrap())
        .collect();
    let control = Arc::new(UdpSocket::bind((IpAddr::from(MPR_IP), 0)).await.unwrap());
    let mut cfg = mpr::Config::new(MPR_IP.into(), [47; 32]);
    cfg.ports = PortRange::new(47_000, 47_039).unwrap();
    cfg.control_ports = vec![];
    let engine = mpr::Engine::new(cfg, tokio::time::Instant::now().into_std()).unwrap();
    let (relay, relay_events) = Relay::start(RelayConfig::default()).unwrap();
    let (mpr, _out) = mpr_driver::spawn(engine, vec![control], relay, relay_events).unwrap();
    let a = UdpSocket::bind("127.0.0.4:0").await.unwrap();
    let b = UdpSocket::bind("127.0.0.5:0").await.unwrap();
    for n in 0..6 {
        let call = CallKey::new(format!("busy-{n}"));
        let offer = Intent {
            kind: IntentKind::Offer,
            from: Side::A,
            origin: None,
            toward: None,
            endpoints: vec![mux(a.local_addr().unwrap())],
        };
        let to_b = mpr
            .intent(call.clone(), offer)
            .await
            .unwrap()
            .unwrap()
            .endpoints[0]
            .addr;
        let answer = Intent {
            kind: IntentKind::Answer,
            from: Side::B,
            origin: None,
            toward: None,
            endpoints: vec![mux(b.local_addr().unwrap())],
        };
        let to_a = mpr
            .intent(call.clone(), answer)
            .await
            .unwrap()
            .unwrap()
            .endpoints[0]
            .addr;
        for addr in [to_a, to_b] {
            assert!(
                ![47_010, 47_011, 47_020, 47_021].contains(&addr.port()),
                "plan names a taken port: {addr}"
            );
        }
        // And the legs really work.
        a.send_to(&rtp(b'a', n), to_a).await.unwrap();
        let got = recv_n(&b, 1).await;
        assert_eq!(got.len(), 1, "call {n}: media through the replanned legs");
        assert_eq!(got[0].1, to_b);
        let bye = Intent {
            kind: IntentKind::Teardown,
            from: Side::A,
            origin: None,
            toward: None,
            endpoints: vec![],
        };
        mpr.intent(call, bye).await.unwrap().unwrap();
    }
    let stats = mpr.stats().await.unwrap();
    assert!(
        stats.relay_open_failures >= 1,
        "the taken ports were hit and replaced: {stats:?}"
    );
    drop(blocked);
}
