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
use pinhole_core::wire::{ErrorCode, Protocol, RtcpMode};
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
    /// The MPR's control address (kept across a restart).
    control: SocketAddr,
    mpr: mpr_driver::MprHandle,
    mpr_out: mpr_driver::MprOutputs,
    /// The client behind the firewall: an APS, or a smart terminal when a
    /// test opens pinholes without `inside`.
    aps: client_driver::ClientHandle,
    aps_events: mpsc::Receiver<ClientEvent>,
    aps_media: mpsc::Receiver<client_driver::Media>,
    aps_task: tokio::task::JoinHandle<()>,
    aps_signaling: SocketAddr,
    pinhole: SocketAddr,
}

/// An MPR on an already bound control socket, relay ports `ports`.
fn start_mpr(
    control: UdpSocket,
    ports: (u16, u16),
    seed: u8,
) -> (mpr_driver::MprHandle, mpr_driver::MprOutputs) {
    let control_addr = control.local_addr().unwrap();
    let mut cfg = mpr::Config::new(MPR_IP.into(), [seed; 32]);
    cfg.ports = PortRange::new(ports.0, ports.1).unwrap();
    cfg.control_ports = vec![control_addr.port()];
    cfg.networks
        .push(mpr::NetworkConfig::new("corp1", CRED.to_vec()));
    let engine = mpr::Engine::new(cfg, tokio::time::Instant::now().into_std()).unwrap();
    let (relay, relay_events) = Relay::start(RelayConfig::default()).unwrap();
    mpr_driver::spawn(engine, vec![Arc::new(control)], relay, relay_events).unwrap()
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
    let control = UdpSocket::bind((IpAddr::from(MPR_IP), 0)).await.unwrap();
    let control_addr = control.local_addr().unwrap();
    let (mpr, mut mpr_out) = start_mpr(control, ports, ports.0 as u8);

    let sig = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let aps_signaling = sig.local_addr().unwrap();
    let mut ccfg = client::Config::new(
        "corp1",
        CRED.to_vec(),
        Protocol::Sip,
        aps_signaling,
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
    wait_event(&mut mpr_out.events, |e| {
        matches!(e, mpr::Event::Registered { .. })
    })
    .await;
    Bed {
        sim,
        control: control_addr,
        mpr,
        mpr_out,
        aps,
        aps_events: aps_out.events,
        aps_media: aps_out.media,
        aps_task: aps_out.task,
        aps_signaling,
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

// The tests below use relay ports 48000–48999 on 127.0.0.3.

/// Waits for pinhole `id` to open or fail.
async fn opened(b: &mut Bed, id: client::PinholeId) -> ClientEvent {
    wait_event(&mut b.aps_events, |e| matches!(e, ClientEvent::PinholeOpened { id: i, .. } | ClientEvent::PinholeFailed { id: i, .. } if *i == id)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fig8_smart_terminal_owns_its_media_port_through_the_firewall() {
    // The bed's client is the smart terminal: it runs the client engine
    // and its application sends and receives the media on port A itself.
    let mut b = bed(
        (48_000, 48_099),
        Duration::from_secs(30),
        Duration::from_secs(30),
    )
    .await;
    let party = UdpSocket::bind("127.0.0.4:0").await.unwrap();
    let call = CallKey::from("fig8@loopback");
    let offer = Intent {
        kind: IntentKind::Offer,
        from: Side::A,
        origin: None,
        toward: Some("corp1".into()),
        endpoints: vec![mux(party.local_addr().unwrap())],
    };
    let l = b
        .mpr
        .intent(call.clone(), offer)
        .await
        .unwrap()
        .unwrap()
        .endpoints[0]
        .addr;
    // Port A is the terminal's own media port: no inside address.
    let port_a = free_addr([127, 0, 0, 1]).await;
    let id = b
        .aps
        .open_pinhole(PinholeRequest {
            local: port_a,
            relay: Some(l),
            rtcp: RtcpMode::Mux,
            key: call.as_bytes().to_vec(),
            inside: None,
        })
        .await
        .unwrap()
        .unwrap();
    let ClientEvent::PinholeOpened {
        pinhole: Some(c), ..
    } = opened(&mut b, id).await
    else {
        panic!("pinhole failed")
    };
    assert_eq!(c.ip(), IpAddr::from([127, 0, 0, 2]), "C is on the firewall");
    let answer = Intent {
        kind: IntentKind::Answer,
        from: Side::B,
        origin: Some("corp1".into()),
        toward: None,
        endpoints: vec![mux(c)],
    };
    let d = b.mpr.intent(call, answer).await.unwrap().unwrap().endpoints[0].addr;

    // Party → D → (out of L) → C → port A → the application.
    const N: u16 = 40;
    for i in 0..N {
        party.send_to(&rtp(b'p', i), d).await.unwrap();
    }
    let mut got = Vec::new();
    while got.len() < usize::from(N) {
        match timeout(Duration::from_secs(3), b.aps_media.recv()).await {
            Ok(Some(m)) => got.push(m),
            _ => break,
        }
    }
    assert_eq!(got.len(), usize::from(N), "party → terminal");
    for (i, m) in got.iter().enumerate() {
        assert_eq!(m.local, port_a);
        assert_eq!(m.remote, l, "from the terminal's relay port L");
        assert_eq!(m.payload, rtp(b'p', i as u16), "intact, in order");
    }
    // The application's media leaves port A → C → L → (out of D) → party.
    for i in 0..N {
        b.aps
            .send_media(client_driver::Media {
                local: port_a,
                remote: l,
                payload: rtp(b't', i),
            })
            .await
            .unwrap();
    }
    let at_party = recv_n(&party, usize::from(N)).await;
    assert_eq!(at_party.len(), usize::from(N), "terminal → party");
    assert!(
        at_party
            .iter()
            .enumerate()
            .all(|(i, (p, from))| *p == rtp(b't', i as u16) && *from == d)
    );
    let relay = b.aps.relay_counters().await.unwrap();
    assert_eq!(relay.local_delivered, u64::from(N));

    // A stranger gets nothing to the terminal: not at L (the MPR checks
    // the source), not at the pinhole C (the firewall), not even straight
    // at port A (the terminal's relay accepts only L's packets).
    let stranger = UdpSocket::bind("127.0.0.5:0").await.unwrap();
    let mpr_before = b.mpr.relay_counters().await.unwrap().dropped_source;
    let fw_before = b.sim.counters().dropped_inbound();
    stranger.send_to(&rtp(b'x', 0), l).await.unwrap();
    stranger.send_to(&rtp(b'x', 1), c).await.unwrap();
    stranger.send_to(&rtp(b'x', 2), port_a).await.unwrap();
    assert!(
        timeout(Duration::from_millis(500), b.aps_media.recv())
            .await
            .is_err(),
        "nothing from the stranger reaches the application"
    );
    assert_eq!(
        b.mpr.relay_counters().await.unwrap().dropped_source,
        mpr_before + 1
    );
    assert_eq!(b.sim.counters().dropped_inbound(), fw_before + 1);
    let relay = b.aps.relay_counters().await.unwrap();
    assert_eq!(relay.dropped_source, 1);
    assert_eq!(relay.local_delivered, u64::from(N));
    // Sending from a port that is no pinhole's is refused.
    let err = b
        .aps
        .send_media(client_driver::Media {
            local: free_addr([127, 0, 0, 1]).await,
            remote: l,
            payload: rtp(b't', 0),
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mpr_restart_on_the_same_address_the_aps_re_registers_and_calls_work() {
    // A long firewall timeout: the APS's next refresh is 20 s away, so
    // what brings it back is its first CMPH after the restart.
    let mut b = bed(
        (48_200, 48_299),
        Duration::from_secs(30),
        Duration::from_secs(30),
    )
    .await;
    let phone = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let party = UdpSocket::bind("127.0.0.4:0").await.unwrap();
    let (party_addr, phone_addr) = (party.local_addr().unwrap(), phone.local_addr().unwrap());
    let (port_b, _, _, lp) = fig7_call(
        &mut b,
        &CallKey::from("before@restart"),
        party_addr,
        phone_addr,
    )
    .await;
    talk(&party, lp, &phone, port_b, 5).await;
    let before = b.aps.stats().await.unwrap();

    // Stop the MPR; it gives back its control and relay ports.
    b.mpr.stop().await.unwrap();
    (&mut b.mpr_out.task).await.unwrap();
    let control = UdpSocket::bind(b.control)
        .await
        .expect("the control address is free again");
    // A new run: new seed, so a new nonce secret; no routes, no legs.
    let (mpr, mpr_out) = start_mpr(control, (48_200, 48_299), 0xEE);
    b.mpr = mpr;
    b.mpr_out = mpr_out;
    assert_eq!(b.mpr.route("corp1", Protocol::Sip).await.unwrap(), None);

    // Fig. 11 at once: the APS reserves a leg. Its old nonce gets 438, the
    // lost route 480; it registers again and the CMPH goes through.
    let port_b2 = free_addr([127, 0, 0, 1]).await;
    let id = b
        .aps
        .open_pinhole(PinholeRequest {
            local: port_b2,
            relay: None,
            rtcp: RtcpMode::Mux,
            key: b"after@restart/0".to_vec(),
            inside: Some(phone_addr),
        })
        .await
        .unwrap()
        .unwrap();
    let mut seen = Vec::new();
    let opened = wait_event(&mut b.aps_events, |e| {
        seen.push(e.clone());
        matches!(e, ClientEvent::PinholeOpened { id: i, .. } | ClientEvent::PinholeFailed { id: i, .. } if *i == id)
    })
    .await;
    let ClientEvent::PinholeOpened {
        pinhole: Some(c),
        relay: l,
        ..
    } = opened
    else {
        panic!("no recovery: {seen:?}")
    };
    assert!(
        seen.iter()
            .any(|e| matches!(e, ClientEvent::Registered { pinhole, .. } if *pinhole == b.pinhole)),
        "re-registered from the same signaling pinhole: {seen:?}"
    );
    assert!(
        !seen.iter().any(|e| matches!(e, ClientEvent::Alarm { .. })),
        "no alarm: the MPR was back within the retransmission window: {seen:?}"
    );
    let after = b.aps.stats().await.unwrap();
    assert!(
        after.nonce_retries > before.nonce_retries,
        "a 438 was answered"
    );
    assert_eq!(after.registrations_ok, before.registrations_ok + 1);
    let stats = b.mpr.stats().await.unwrap();
    assert!(stats.stale_nonces >= 1, "{stats:?}");
    assert_eq!(stats.registrations_accepted, 1);
    wait_event(
        &mut b.mpr_out.events,
        |e| matches!(e, mpr::Event::Registered { pinhole, .. } if *pinhole == b.pinhole),
    )
    .await;

    // The outgoing call completes and its media flows both ways.
    let call = CallKey::from("after@restart");
    let offer = Intent {
        kind: IntentKind::Offer,
        from: Side::A,
        origin: Some("corp1".into()),
        toward: None,
        endpoints: vec![mux(c)],
    };
    let d = b
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
        endpoints: vec![mux(party_addr)],
    };
    let to_aps = b.mpr.intent(call, answer).await.unwrap().unwrap().endpoints[0].addr;
    assert_eq!(to_aps, l, "the answer names the reserved leg");
    talk(&party, d, &phone, port_b2, 20).await;

    // And so does a new incoming call (Fig. 7) over the restored route.
    let (port_b3, _, _, lp3) = fig7_call(
        &mut b,
        &CallKey::from("incoming@restart"),
        party_addr,
        phone_addr,
    )
    .await;
    talk(&party, lp3, &phone, port_b3, 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reserve_whose_ports_are_taken_gets_a_working_pair() {
    // Four pairs; another process holds three of them, among them 48406,
    // the pair this MPR's seed (16) makes the allocator try first.
    let blocked: Vec<std::net::UdpSocket> = [48_400u16, 48_402, 48_406]
        .iter()
        .map(|p| std::net::UdpSocket::bind((IpAddr::from(MPR_IP), *p)).unwrap())
        .collect();
    let mut b = bed(
        (48_400, 48_407),
        Duration::from_secs(30),
        Duration::from_secs(30),
    )
    .await;
    let phone = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port_b = free_addr([127, 0, 0, 1]).await;
    let id = b
        .aps
        .open_pinhole(PinholeRequest {
            local: port_b,
            relay: None,
            rtcp: RtcpMode::Mux,
            key: b"taken/0".to_vec(),
            inside: Some(phone.local_addr().unwrap()),
        })
        .await
        .unwrap()
        .unwrap();
    let e = opened(&mut b, id).await;
    let ClientEvent::PinholeOpened { relay, .. } = e else {
        panic!("{e:?}")
    };
    assert_eq!(relay, SocketAddr::from((MPR_IP, 48_404)));
    let stats = b.mpr.stats().await.unwrap();
    assert!(stats.relay_open_failures >= 1, "{stats:?}");
    assert_eq!(stats.legs_open, 1);
    assert_eq!(stats.cmph_bound, 1, "the bind found its leg (no 437)");
    drop(blocked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reserve_none_of_whose_pairs_can_be_opened_fails_with_508() {
    let blocked: Vec<std::net::UdpSocket> = [48_420u16, 48_422, 48_424, 48_426]
        .iter()
        .map(|p| std::net::UdpSocket::bind((IpAddr::from(MPR_IP), *p)).unwrap())
        .collect();
    let mut b = bed(
        (48_420, 48_427),
        Duration::from_secs(30),
        Duration::from_secs(30),
    )
    .await;
    let port_b = free_addr([127, 0, 0, 1]).await;
    let id = b
        .aps
        .open_pinhole(PinholeRequest {
            local: port_b,
            relay: None,
            rtcp: RtcpMode::Mux,
            key: b"all-taken/0".to_vec(),
            inside: Some(SocketAddr::from(([127, 0, 0, 1], 9))),
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        opened(&mut b, id).await,
        ClientEvent::PinholeFailed {
            id,
            failure: client::Failure::Refused(ErrorCode::INSUFFICIENT_CAPACITY),
        }
    );
    let stats = b.mpr.stats().await.unwrap();
    assert_eq!(stats.relay_open_failures, 4);
    assert_eq!(stats.legs_open, 0);
    assert_eq!(stats.cmph_bound, 0);
    // The APS released the media port it had bound for the CMPH.
    UdpSocket::bind(port_b).await.expect("port B is free again");
    drop(blocked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aps_shutdown_deregisters_and_the_route_is_gone_at_once() {
    let mut b = bed(
        (48_500, 48_599),
        Duration::from_secs(30),
        Duration::from_secs(30),
    )
    .await;
    let phone = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let party = UdpSocket::bind("127.0.0.4:0").await.unwrap();
    let (port_b, ..) = fig7_call(
        &mut b,
        &CallKey::from("shutdown@loopback"),
        party.local_addr().unwrap(),
        phone.local_addr().unwrap(),
    )
    .await;
    let outcome = b.aps.shutdown(Duration::from_secs(2)).await.unwrap();
    assert_eq!(outcome, client_driver::Deregistration::Confirmed);
    // At once, not at expiry (the lifetime is 600 s).
    assert_eq!(b.mpr.route("corp1", Protocol::Sip).await.unwrap(), None);
    assert_eq!(b.mpr.stats().await.unwrap().routes_live, 0);
    wait_event(
        &mut b.mpr_out.events,
        |e| matches!(e, mpr::Event::Deregistered { network, .. } if network == "corp1"),
    )
    .await;
    wait_event(&mut b.aps_events, |e| *e == ClientEvent::Deregistered).await;
    // The driver has ended and given back its sockets.
    timeout(WAIT, &mut b.aps_task).await.unwrap().unwrap();
    assert!(b.aps.stats().await.is_err());
    UdpSocket::bind(b.aps_signaling)
        .await
        .expect("the signaling socket is closed");
    UdpSocket::bind(port_b)
        .await
        .expect("the media socket is closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_aps_pinhole_sends_no_keepalives_and_a_silent_one_does() {
    // Firewall timeout 3 s: keepalives are due after 2 s without traffic.
    let mut b = bed(
        (48_600, 48_699),
        Duration::from_secs(3),
        Duration::from_secs(3),
    )
    .await;
    let phone = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let party = UdpSocket::bind("127.0.0.4:0").await.unwrap();
    let (port_b, ..) = fig7_call(
        &mut b,
        &CallKey::from("busy@loopback"),
        party.local_addr().unwrap(),
        phone.local_addr().unwrap(),
    )
    .await;
    // The phone talks for 5 s (a packet every 20 ms, 250 in all): media
    // leaves through the pinhole all the time.
    for i in 0..250u16 {
        phone.send_to(&rtp(b'a', i), port_b).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(b.aps.stats().await.unwrap().keepalives, 0, "busy: none");
    assert!(b.aps.relay_counters().await.unwrap().local_forwarded >= 250);
    // Silence: a keepalive within the next 2 s (+ margin).
    let t0 = tokio::time::Instant::now();
    let mut keepalives = 0;
    while t0.elapsed() < Duration::from_secs(5) && keepalives == 0 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        keepalives = b.aps.stats().await.unwrap().keepalives;
    }
    assert!(keepalives >= 1, "silent: kept alive");
}

/// A toy ALG: answers each datagram with `<token>:<bytes>` from the socket
/// it came in on, and 50 ms later sends `<token>:tick` (its own timer).
use pinhole_core::alg::Outbox;

struct EchoAlg {
    protocol: Protocol,
    received: u64,
    out: Outbox,
    tick: Option<(SocketAddr, SocketAddr)>,
    extra: Vec<SocketAddr>,
}

impl EchoAlg {
    fn boxed(protocol: Protocol) -> Box<dyn pinhole_core::alg::MprSignaling> {
        Box::new(Self {
            protocol,
            received: 0,
            out: Outbox::new(),
            tick: None,
            extra: Vec::new(),
        })
    }

    /// Also receiving on `extra` (like H.248's gateway ports).
    fn with_extra(
        protocol: Protocol,
        extra: Vec<SocketAddr>,
    ) -> Box<dyn pinhole_core::alg::MprSignaling> {
        Box::new(Self {
            protocol,
            received: 0,
            out: Outbox::new(),
            tick: None,
            extra,
        })
    }

    fn send(&mut self, local: SocketAddr, remote: SocketAddr, body: &[u8]) {
        let mut payload = self.protocol.token().as_bytes().to_vec();
        payload.push(b':');
        payload.extend_from_slice(body);
        self.out.send(pinhole_core::types::Transmit {
            local,
            remote,
            payload,
            flow: Default::default(),
        });
    }
}

impl pinhole_core::alg::MprSignaling for EchoAlg {
    fn protocol(&self) -> Protocol {
        self.protocol
    }

    fn handle_datagram(
        &mut self,
        now: std::time::Instant,
        _mpr: &mut dyn pinhole_core::alg::MprContext,
        rx: pinhole_core::types::Receive<'_>,
    ) {
        self.received += 1;
        self.send(rx.local, rx.remote, rx.bytes);
        self.tick = Some((rx.local, rx.remote));
        self.out.arm_sweep(now + Duration::from_millis(50));
    }

    fn sweep(&mut self, _now: std::time::Instant, _mpr: &mut dyn pinhole_core::alg::MprContext) {
        if let Some((local, remote)) = self.tick.take() {
            self.send(local, remote, b"tick");
        }
    }

    fn outbox(&self) -> &Outbox {
        &self.out
    }

    fn outbox_mut(&mut self) -> &mut Outbox {
        &mut self.out
    }

    fn counters(&self) -> pinhole_core::alg::Counters {
        vec![("received", self.received)]
    }

    fn extra_addresses(&self) -> Vec<SocketAddr> {
        self.extra.clone()
    }
}

/// An MPR with a SIP and an MGCP ALG, each on its own control socket.
fn two_alg_mpr(
    sip: UdpSocket,
    mgcp: UdpSocket,
    ports: (u16, u16),
    algs: Vec<mpr_driver::MprAlg>,
) -> std::io::Result<(mpr_driver::MprHandle, mpr_driver::MprOutputs)> {
    let mut cfg = mpr::Config::new(MPR_IP.into(), [9; 32]);
    cfg.ports = PortRange::new(ports.0, ports.1).unwrap();
    cfg.control_ports = vec![
        sip.local_addr().unwrap().port(),
        mgcp.local_addr().unwrap().port(),
    ];
    cfg.networks
        .push(mpr::NetworkConfig::new("corp1", CRED.to_vec()));
    let engine = mpr::Engine::new(cfg, tokio::time::Instant::now().into_std()).unwrap();
    let (relay, relay_events) = Relay::start(RelayConfig::default()).unwrap();
    mpr_driver::spawn_with(
        engine,
        vec![Arc::new(sip), Arc::new(mgcp)],
        relay,
        relay_events,
        algs,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_alg_gets_the_signaling_of_its_own_control_socket_and_its_own_timer() {
    let sip = UdpSocket::bind((IpAddr::from(MPR_IP), 0)).await.unwrap();
    let mgcp = UdpSocket::bind((IpAddr::from(MPR_IP), 0)).await.unwrap();
    let (sip_at, mgcp_at) = (sip.local_addr().unwrap(), mgcp.local_addr().unwrap());
    let (mpr, _out) = two_alg_mpr(
        sip,
        mgcp,
        (47_900, 47_949),
        vec![
            mpr_driver::MprAlg::new(sip_at, EchoAlg::boxed(Protocol::Sip)),
            mpr_driver::MprAlg::new(mgcp_at, EchoAlg::boxed(Protocol::Mgcp)),
        ],
    )
    .unwrap();
    let peer = UdpSocket::bind("127.0.0.4:0").await.unwrap();
    peer.send_to(b"INVITE", sip_at).await.unwrap();
    peer.send_to(b"CRCX 1", mgcp_at).await.unwrap();
    peer.send_to(b"CRCX 2", mgcp_at).await.unwrap();
    let got = recv_n(&peer, 5).await;
    let mut from_sip: Vec<&[u8]> = Vec::new();
    let mut from_mgcp: Vec<&[u8]> = Vec::new();
    for (p, from) in &got {
        match *from {
            a if a == sip_at => from_sip.push(p),
            a if a == mgcp_at => from_mgcp.push(p),
            a => panic!("answer from {a}"),
        }
    }
    assert_eq!(from_sip, [&b"sip:INVITE"[..], b"sip:tick"]);
    assert_eq!(
        from_mgcp,
        [&b"mgcp:CRCX 1"[..], b"mgcp:CRCX 2", b"mgcp:tick"]
    );
    let c = mpr.alg_counters().await.unwrap();
    assert_eq!(pinhole_core::alg::counter(&c, Protocol::Sip, "received"), 1);
    assert_eq!(
        pinhole_core::alg::counter(&c, Protocol::Mgcp, "received"),
        2
    );
    mpr.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alg_on_a_foreign_or_shared_socket_is_refused() {
    let sip = UdpSocket::bind((IpAddr::from(MPR_IP), 0)).await.unwrap();
    let mgcp = UdpSocket::bind((IpAddr::from(MPR_IP), 0)).await.unwrap();
    let sip_at = sip.local_addr().unwrap();
    let stranger = free_addr(MPR_IP).await;
    let e = two_alg_mpr(
        sip,
        mgcp,
        (47_950, 47_969),
        vec![mpr_driver::MprAlg::new(
            stranger,
            EchoAlg::boxed(Protocol::Mgcp),
        )],
    )
    .err()
    .expect("refused");
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    assert!(e.to_string().contains("not a control socket"), "{e}");

    let sip = UdpSocket::bind(sip_at).await.unwrap();
    let mgcp = UdpSocket::bind((IpAddr::from(MPR_IP), 0)).await.unwrap();
    let e = two_alg_mpr(
        sip,
        mgcp,
        (47_970, 47_989),
        vec![
            mpr_driver::MprAlg::new(sip_at, EchoAlg::boxed(Protocol::Sip)),
            mpr_driver::MprAlg::new(sip_at, EchoAlg::boxed(Protocol::Mgcp)),
        ],
    )
    .err()
    .expect("refused");
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    assert!(e.to_string().contains("two signaling ALGs"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alg_receives_and_sends_on_its_extra_addresses() {
    let sip = UdpSocket::bind((IpAddr::from(MPR_IP), 0)).await.unwrap();
    let mgcp = UdpSocket::bind((IpAddr::from(MPR_IP), 0)).await.unwrap();
    let (sip_at, mgcp_at) = (sip.local_addr().unwrap(), mgcp.local_addr().unwrap());
    let (x1, x2) = (free_addr(MPR_IP).await, free_addr(MPR_IP).await);
    let (mpr, mut out) = two_alg_mpr(
        sip,
        mgcp,
        (47_990, 47_999),
        vec![
            mpr_driver::MprAlg::new(sip_at, EchoAlg::boxed(Protocol::Sip)),
            mpr_driver::MprAlg::new(mgcp_at, EchoAlg::with_extra(Protocol::H248, vec![x1, x2])),
        ],
    )
    .unwrap();
    let peer = UdpSocket::bind("127.0.0.4:0").await.unwrap();
    peer.send_to(b"MEGACO/1 one", x1).await.unwrap();
    let got = recv_n(&peer, 2).await;
    // Answered from the address it arrived on (Receive.local = x1), and
    // the ALG's own timer sends from there too.
    assert_eq!(
        got,
        [
            (b"h248:MEGACO/1 one".to_vec(), x1),
            (b"h248:tick".to_vec(), x1)
        ]
    );
    peer.send_to(b"MEGACO/1 two", x2).await.unwrap();
    peer.send_to(b"MEGACO/1 main", mgcp_at).await.unwrap();
    let got = recv_n(&peer, 3).await;
    assert!(
        got.contains(&(b"h248:MEGACO/1 two".to_vec(), x2)),
        "{got:?}"
    );
    assert!(
        got.contains(&(b"h248:MEGACO/1 main".to_vec(), mgcp_at)),
        "{got:?}"
    );
    // The tick goes where the latest datagram came in (two readers: either).
    assert!(
        got.contains(&(b"h248:tick".to_vec(), x2))
            || got.contains(&(b"h248:tick".to_vec(), mgcp_at)),
        "{got:?}"
    );
    // A control message on an extra address is the ALG's too: those are
    // no control sockets.
    let stun = [
        0u8, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
    ];
    assert!(pinhole_core::wire::is_control(&stun));
    peer.send_to(&stun, x2).await.unwrap();
    let got = recv_n(&peer, 1).await;
    assert_eq!(got[0].1, x2);
    assert!(got[0].0.starts_with(b"h248:"));
    let c = mpr.alg_counters().await.unwrap();
    assert_eq!(
        pinhole_core::alg::counter(&c, Protocol::H248, "received"),
        4
    );
    assert_eq!(pinhole_core::alg::counter(&c, Protocol::Sip, "received"), 0);
    assert!(
        out.signaling.try_recv().is_err(),
        "nothing left for the application"
    );
    mpr.stop().await.unwrap();
    // Stopped: every socket, the extra ones too, is free again.
    for a in [x1, x2] {
        drop(UdpSocket::bind(a).await.unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extra_addresses_that_clash_or_cannot_be_bound_are_refused() {
    let sip = UdpSocket::bind((IpAddr::from(MPR_IP), 0)).await.unwrap();
    let mgcp = UdpSocket::bind((IpAddr::from(MPR_IP), 0)).await.unwrap();
    let (sip_at, mgcp_at) = (sip.local_addr().unwrap(), mgcp.local_addr().unwrap());
    let e = two_alg_mpr(
        sip,
        mgcp,
        (47_950, 47_969),
        vec![mpr_driver::MprAlg::new(
            mgcp_at,
            EchoAlg::with_extra(Protocol::H248, vec![sip_at]),
        )],
    )
    .err()
    .expect("refused");
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    assert!(e.to_string().contains("is a control socket"), "{e}");

    // Taken by another socket: the error names the address.
    let holder = UdpSocket::bind((IpAddr::from(MPR_IP), 0)).await.unwrap();
    let taken = holder.local_addr().unwrap();
    let sip = UdpSocket::bind(sip_at).await.unwrap();
    let mgcp = UdpSocket::bind(mgcp_at).await.unwrap();
    let e = two_alg_mpr(
        sip,
        mgcp,
        (47_970, 47_989),
        vec![mpr_driver::MprAlg::new(
            mgcp_at,
            EchoAlg::with_extra(Protocol::H248, vec![taken]),
        )],
    )
    .err()
    .expect("refused");
    assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse, "{e}");
    assert!(
        e.to_string()
            .contains(&format!("cannot bind extra address {taken}")),
        "{e}"
    );
}

/// A client whose upstream to the MPR is a stream holds what it sends
/// there while it has no connection (at most `max_pending`; the rest are
/// dropped and counted as unroutable), and sends the held messages first,
/// in order, once a connection comes up after its back-off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signaling_for_the_mpr_is_held_while_the_connection_is_down() {
    use pinhole_core::types::Transport;
    use tokio::io::AsyncReadExt;

    // The MPR's address: nothing listens there yet.
    let mpr_addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let sig = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let mut ccfg = client::Config::new(
        "corp1",
        CRED.to_vec(),
        Protocol::Sip,
        sig.local_addr().unwrap(),
        mpr_addr,
        [5; 32],
    );
    ccfg.upstream = Transport::Tcp;
    let engine = client::Engine::new(ccfg, tokio::time::Instant::now().into_std()).unwrap();
    let (relay, relay_events) = Relay::start(RelayConfig::default()).unwrap();
    let streams = client_driver::ClientStreams {
        upstream: client_driver::Upstream {
            keepalive: None,
            backoff_min: Duration::from_millis(400),
            backoff_max: Duration::from_millis(400),
            max_pending: 3,
        },
        ..client_driver::ClientStreams::default()
    };
    let (h, _out) = client_driver::spawn_streaming(
        engine,
        sig,
        relay,
        relay_events,
        Arc::new(pinhole_net::driver::Direct),
        None,
        &streams,
    )
    .await
    .unwrap();
    // The first connect is refused (its Registration goes with it).
    let deadline = tokio::time::Instant::now() + WAIT;
    while h.link_counters().await.unwrap().streams.connect_failures == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no connect attempt");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for i in 0..5 {
        h.send_signaling(mpr_addr, format!("msg-{i};").into_bytes())
            .await
            .unwrap();
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    while h.link_counters().await.unwrap().unroutable < 2 {
        assert!(tokio::time::Instant::now() < deadline, "nothing dropped");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        h.link_counters().await.unwrap().unroutable,
        2,
        "3 held, 2 dropped"
    );
    // The MPR comes up: the next attempt connects and the held ones go.
    let listener = tokio::net::TcpListener::bind(mpr_addr).await.unwrap();
    let (mut conn, _) = timeout(WAIT, listener.accept()).await.unwrap().unwrap();
    let want = b"msg-0;msg-1;msg-2;";
    let mut got = vec![0u8; want.len()];
    timeout(WAIT, conn.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, want);
    // Nothing else was held; the Registration, lost with the connection
    // that never opened, is sent again over this first one (a stream is
    // not retransmitted: without it the APS would wait out the whole
    // transaction timeout before registering).
    let mut more = Vec::new();
    let mut buf = [0u8; 2048];
    while let Ok(Ok(n @ 1..)) = timeout(Duration::from_millis(300), conn.read(&mut buf)).await {
        more.extend_from_slice(&buf[..n]);
    }
    assert!(
        !more.windows(4).any(|w| w == b"msg-"),
        "nothing else was held"
    );
    let len = usize::from(u16::from_be_bytes([more[2], more[3]]));
    assert!(
        pinhole_core::wire::is_control(&more[..20 + len]),
        "a control message: {more:?}"
    );
    assert_eq!(h.stats().await.unwrap().reconnects, 1);
}

/// A TPKT frame of `body` (at least 4 bytes: a shorter frame waits, as
/// the first 8 bytes of a control message would).
fn tpkt(body: &[u8]) -> Vec<u8> {
    let len = u16::try_from(body.len() + 4).unwrap();
    let mut f = vec![3, 0];
    f.extend_from_slice(&len.to_be_bytes());
    f.extend_from_slice(body);
    f
}

/// What a [`TpktAlg`] was handed: (local, remote, frame).
type Seen = Arc<std::sync::Mutex<Vec<(SocketAddr, SocketAddr, Vec<u8>)>>>;

/// A toy client ALG with TPKT framing (like H.323's): records every frame,
/// answers it back the way it came with `echo-echo`, and on `dial-please` opens a TCP
/// connection from the listener it arrived on to `dial` (like the H.323
/// APS toward the MPR's H.245 lease or an inside terminal).
struct TpktAlg {
    seen: Seen,
    dial: SocketAddr,
    out: Outbox,
}

impl pinhole_core::alg::ClientSignaling for TpktAlg {
    fn protocol(&self) -> Protocol {
        Protocol::H323
    }

    fn framer(&self) -> Option<pinhole_core::framing::ProtocolFramer> {
        Some(pinhole_core::framing::tpkt)
    }

    fn handle_datagram(
        &mut self,
        _now: std::time::Instant,
        _ctx: &mut dyn pinhole_core::alg::ClientContext,
        rx: pinhole_core::types::Receive<'_>,
    ) {
        self.seen
            .lock()
            .unwrap()
            .push((rx.local, rx.remote, rx.bytes.to_vec()));
        self.out.send(pinhole_core::types::Transmit {
            local: rx.local,
            remote: rx.remote,
            payload: tpkt(b"echo-echo"),
            flow: rx.flow,
        });
        if rx.bytes == tpkt(b"dial-please") {
            self.out.send(pinhole_core::types::Transmit {
                local: rx.local,
                remote: self.dial,
                payload: tpkt(b"hello-there"),
                flow: pinhole_core::types::Flow::over(pinhole_core::types::Transport::Tcp),
            });
        }
    }

    fn handle_event(
        &mut self,
        _now: std::time::Instant,
        _ctx: &mut dyn pinhole_core::alg::ClientContext,
        _ev: &ClientEvent,
    ) {
    }

    fn sweep(&mut self, _now: std::time::Instant, _ctx: &mut dyn pinhole_core::alg::ClientContext) {
    }

    fn counters(&self) -> pinhole_core::alg::Counters {
        vec![("received", self.seen.lock().unwrap().len() as u64)]
    }

    fn outbox(&self) -> &Outbox {
        &self.out
    }

    fn outbox_mut(&mut self) -> &mut Outbox {
        &mut self.out
    }
}

/// A free TCP address on loopback (bound, then let go).
fn free_tcp() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A client driver with a [`TpktAlg`] and `listen_also`.
async fn tpkt_client(
    listen_also: Vec<SocketAddr>,
    dial: SocketAddr,
    seen: Seen,
) -> std::io::Result<(client_driver::ClientHandle, client_driver::ClientOutputs)> {
    let sig = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    // No MPR answers there: the registration fails quietly meanwhile.
    let mpr_addr = free_addr([127, 0, 0, 1]).await;
    let ccfg = client::Config::new(
        "corp1",
        CRED.to_vec(),
        Protocol::H323,
        sig.local_addr().unwrap(),
        mpr_addr,
        [6; 32],
    );
    let engine = client::Engine::new(ccfg, tokio::time::Instant::now().into_std()).unwrap();
    let (relay, relay_events) = Relay::start(RelayConfig::default()).unwrap();
    let alg = TpktAlg {
        seen,
        dial,
        out: Outbox::new(),
    };
    client_driver::spawn_streaming(
        engine,
        sig,
        relay,
        relay_events,
        Arc::new(pinhole_net::driver::Direct),
        Some(Box::new(alg)),
        &client_driver::ClientStreams {
            listen_also,
            ..client_driver::ClientStreams::default()
        },
    )
    .await
}

/// Reads one TPKT frame.
async fn read_tpkt(s: &mut tokio::net::TcpStream) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut head = [0u8; 4];
    timeout(WAIT, s.read_exact(&mut head))
        .await
        .unwrap()
        .unwrap();
    let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
    let mut rest = vec![0u8; len - 4];
    timeout(WAIT, s.read_exact(&mut rest))
        .await
        .unwrap()
        .unwrap();
    let mut f = head.to_vec();
    f.extend_from_slice(&rest);
    f
}

/// Frames on a `listen_also` listener reach the ALG with that listener as
/// `rx.local`, and its answer goes back on the connection; a TCP
/// `Transmit` to another address than the MPR opens a connection from that
/// address (framed like the listener), and what comes back on it reaches
/// the ALG with `rx.remote` the address dialled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extra_tcp_listeners_feed_the_alg_and_its_connections_answer_it() {
    use tokio::io::AsyncWriteExt;

    let (inside, pool) = (free_tcp(), free_tcp());
    let far = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let far_at = far.local_addr().unwrap();
    let seen = Seen::default();
    let (h, _out) = tpkt_client(vec![inside, pool], far_at, Arc::clone(&seen))
        .await
        .unwrap();

    // A terminal on the second listener: its frame reaches the ALG with
    // that listener as local, and the echo comes back.
    let mut t = tokio::net::TcpStream::connect(pool).await.unwrap();
    let t_at = t.local_addr().unwrap();
    t.write_all(&tpkt(b"frame-one")).await.unwrap();
    assert_eq!(read_tpkt(&mut t).await, tpkt(b"echo-echo"));
    assert_eq!(seen.lock().unwrap()[0], (pool, t_at, tpkt(b"frame-one")));

    // On the first: `dial` opens a connection to `far` from `inside`.
    let mut t2 = tokio::net::TcpStream::connect(inside).await.unwrap();
    t2.write_all(&tpkt(b"dial-please")).await.unwrap();
    assert_eq!(read_tpkt(&mut t2).await, tpkt(b"echo-echo"));
    let (mut f, _) = timeout(WAIT, far.accept()).await.unwrap().unwrap();
    assert_eq!(read_tpkt(&mut f).await, tpkt(b"hello-there"));
    // What the far end answers reaches the ALG from the address dialled,
    // and the ALG's echo goes back on that connection.
    f.write_all(&tpkt(b"back-again")).await.unwrap();
    assert_eq!(read_tpkt(&mut f).await, tpkt(b"echo-echo"));
    let got = seen.lock().unwrap().clone();
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got[1].0, inside);
    assert_eq!(got[2], (inside, far_at, tpkt(b"back-again")));
    assert!(
        timeout(Duration::from_millis(200), far.accept())
            .await
            .is_err(),
        "the answer reused the connection"
    );
    let c = h.alg_counters().await.unwrap();
    assert_eq!(
        pinhole_core::alg::counter(&c, Protocol::H323, "received"),
        3
    );
}

/// A `listen_also` address that cannot be bound is an error naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extra_tcp_listener_that_cannot_be_bound_is_named() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = holder.local_addr().unwrap();
    let e = tpkt_client(vec![free_tcp(), taken], free_tcp(), Seen::default())
        .await
        .err()
        .expect("refused");
    assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse, "{e}");
    assert!(
        e.to_string()
            .contains(&format!("cannot listen for TCP on {taken}")),
        "{e}"
    );
    let twice = free_tcp();
    let e = tpkt_client(vec![twice, twice], free_tcp(), Seen::default())
        .await
        .err()
        .expect("refused");
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("listed twice"), "{e}");
}
