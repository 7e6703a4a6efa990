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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fig7_through_the_firewall_simulator_media_both_ways() {
    let sim = Arc::new(FirewallSim::start(SimConfig::default()).await.unwrap());

    // The MPR on 127.0.0.3: a control socket and a relay.
    let control = Arc::new(UdpSocket::bind((IpAddr::from(MPR_IP), 0)).await.unwrap());
    let control_addr = control.local_addr().unwrap();
    let mut cfg = mpr::Config::new(MPR_IP.into(), [3; 32]);
    cfg.ports = PortRange::new(43_000, 43_999).unwrap();
    cfg.control_ports = vec![control_addr.port()];
    cfg.networks
        .push(mpr::NetworkConfig::new("corp1", CRED.to_vec()));
    let engine = mpr::Engine::new(cfg, tokio::time::Instant::now().into_std()).unwrap();
    let (relay, relay_events) = Relay::start(RelayConfig::default()).unwrap();
    let (mpr, mut mpr_out) = mpr_driver::spawn(engine, vec![control], relay, relay_events).unwrap();

    // The APS inside, behind the simulator.
    let sig = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let ccfg = client::Config::new(
        "corp1",
        CRED.to_vec(),
        Protocol::Sip,
        sig.local_addr().unwrap(),
        control_addr,
        [4; 32],
    );
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

    let phone = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let phone_addr = phone.local_addr().unwrap();
    let party = UdpSocket::bind("127.0.0.4:0").await.unwrap();
    let party_addr = party.local_addr().unwrap();

    // Before any media pinhole, the outside cannot reach inside: a packet
    // at the firewall's registration pinhole from a stranger is dropped.
    let before = sim.counters().dropped_inbound();
    party.send_to(&rtp(b'x', 0), pinhole).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(sim.counters().dropped_inbound(), before + 1);

    // Fig. 7: the offer names corp1's leg L; the APS opens the pinhole from B.
    let call = CallKey::from("fig7@loopback");
    let offer = Intent {
        kind: IntentKind::Offer,
        from: Side::A,
        origin: None,
        toward: Some("corp1".into()),
        endpoints: vec![mux(party_addr)],
    };
    let plan = mpr.intent(call.clone(), offer).await.unwrap().unwrap();
    let l = plan.endpoints[0].addr;
    assert_eq!(l.ip(), IpAddr::from(MPR_IP));
    let b = free_addr([127, 0, 0, 1]).await;
    let id = aps
        .open_pinhole(PinholeRequest {
            local: b,
            relay: Some(l),
            rtcp: RtcpMode::Mux,
            key: b"fig7/0".to_vec(),
            inside: Some(phone_addr),
        })
        .await
        .unwrap()
        .unwrap();
    let e = wait_event(&mut aps_out.events, |e| matches!(e, ClientEvent::PinholeOpened { id: i, .. } | ClientEvent::PinholeFailed { id: i, .. } if *i == id)).await;
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
    let lp = mpr
        .intent(call.clone(), answer)
        .await
        .unwrap()
        .unwrap()
        .endpoints[0]
        .addr;

    // Media both ways: party ↔ LP … L ↔ C (firewall) ↔ B (APS) ↔ phone.
    for i in 0..50u16 {
        party.send_to(&rtp(b'p', i), lp).await.unwrap();
        phone.send_to(&rtp(b'a', i), b).await.unwrap();
    }
    let at_phone = recv_n(&phone, 50).await;
    let at_party = recv_n(&party, 50).await;
    assert_eq!(at_phone.len(), 50, "party → phone");
    assert_eq!(at_party.len(), 50, "phone → party");
    assert!(
        at_phone
            .iter()
            .enumerate()
            .all(|(i, (p, from))| *p == rtp(b'p', i as u16) && *from == b),
        "intact, in order, from the APS's port B"
    );
    assert!(
        at_party
            .iter()
            .enumerate()
            .all(|(i, (p, from))| *p == rtp(b'a', i as u16) && *from == lp),
        "intact, in order, from the party's relay leg"
    );
    let stats = mpr.stats().await.unwrap();
    assert_eq!(stats.cmph_bound, 1);
    assert_eq!(stats.legs_open, 2);

    // A stranger injecting at the party's leg gets nothing to the phone.
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
    mpr.intent(call, bye).await.unwrap().unwrap();
    assert_eq!(mpr.stats().await.unwrap().legs_open, 0);
    let _ = mpr_out.events.try_recv();
}
