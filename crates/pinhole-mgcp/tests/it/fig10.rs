//! Fig. 10 on the simulated network: no APS. Each gateway is a
//! [`SmartGateway`] with a client engine of its own that registers its
//! MGCP socket with the MPR; the call agent's commands reach it through
//! that pinhole, and it opens CMPH for its RTP port before it answers a
//! CRCX (steps 915–925, 935–945). The MPR runs [`Mpr`].
#![allow(missing_docs)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;
use pinhole_core::alg::AlgEvent;
use pinhole_core::client;
use pinhole_core::ports::PortRange;
use pinhole_core::wire::Protocol;
use pinhole_mgcp::alg::{Mpr, MprConfig, SmartGateway, SmartGatewayConfig};
use pinhole_testkit::shared::{Shared, lock};
use pinhole_testkit::{ClientId, FirewallConfig, World};

const GW_A: &str = "10.1.0.10:2427";
const GW_B: &str = "10.2.0.10:2427";
/// Each gateway has one RTP port pair, so the test knows it.
const MEDIA_A: &str = "10.1.0.10:4000";
const MEDIA_B: &str = "10.2.0.10:4000";
const EP_A: &str = "aaln/1@gw1.corp1.example";
const EP_B: &str = "aaln/1@gw2.corp2.example";

fn fig10() -> (World, [ClientId; 2]) {
    let (w, ids, _) = fig10_shared();
    (w, ids)
}

/// Fig. 10's world, with handles on the two gateways' ALGs.
fn fig10_shared() -> (World, [ClientId; 2], [Arc<Mutex<SmartGateway>>; 2]) {
    #[allow(clippy::disallowed_methods)]
    let start = Instant::now();
    let mut w = World::new(start, 10, mpr_config());
    let c1 = w.add_corp("corp1", ip(FW1), FirewallConfig::default());
    let c2 = w.add_corp("corp2", ip(FW2), FirewallConfig::default());
    w.add_host(c1.zone, ip("10.1.0.10"), "A");
    w.add_host(c2.zone, ip("10.2.0.10"), "B");
    let internet = w.internet;
    w.add_host(internet, ip("192.0.2.5"), "CA");
    let mut mc = MprConfig::new(a(MPR));
    mc.call_agent = Some(a(CA));
    w.set_mpr_alg(a(MPR), Box::new(Mpr::new(mc)));
    let mut ids = Vec::new();
    let mut algs = Vec::new();
    for (net, sig, seed) in [("corp1", GW_A, 5u8), ("corp2", GW_B, 6u8)] {
        let id = w.add_client(client::Config::new(
            net,
            format!("{net}-secret").into_bytes(),
            Protocol::Mgcp,
            a(sig),
            a(MPR),
            [seed; 32],
        ));
        let gc = SmartGatewayConfig::new(
            a(sig),
            a(sig).ip(),
            PortRange::new(4000, 4001).unwrap(),
            [seed; 32],
        );
        let (shared, alg) = Shared::new(SmartGateway::new(gc));
        w.set_client_alg(id, Box::new(shared));
        ids.push(id);
        algs.push(alg);
    }
    w.run_for(Duration::from_secs(1));
    (w, [ids[0], ids[1]], [algs.remove(0), algs.remove(0)])
}

fn name(s: SocketAddr) -> String {
    match s.ip().to_string().as_str() {
        MPR_IP => "MPR",
        "192.0.2.5" => "CA",
        FW1 | "10.1.0.10" => "A",
        FW2 | "10.2.0.10" => "B",
        _ => "?",
    }
    .to_owned()
}

const FIG10_STEPS: &[Step] = &[
    step(910, "CA", "MPR", "CRCX "),
    step(910, "MPR", "A", "CRCX "),
    step(915, "A", "MPR", "CMPH request"),
    step(920, "MPR", "A", "CMPH success"),
    step(925, "A", "MPR", "200 "),
    step(925, "MPR", "CA", "200 "),
    step(930, "CA", "MPR", "CRCX "),
    step(930, "MPR", "B", "CRCX "),
    step(935, "B", "MPR", "CMPH request"),
    step(940, "MPR", "B", "CMPH success"),
    step(945, "B", "MPR", "200 "),
    step(945, "MPR", "CA", "200 "),
    step(950, "CA", "MPR", "MDCX "),
    step(950, "MPR", "A", "MDCX "),
    step(955, "A", "MPR", "200 "),
    step(955, "MPR", "CA", "200 "),
];

fn command(w: &mut World, cmd: Vec<u8>) -> Vec<u8> {
    w.send(a(CA), a(MPR), cmd);
    w.run_for(Duration::from_secs(1));
    one(w, CA)
}

#[test]
fn fig10_smart_gateways_call_through_the_mpr_with_media_both_ways() {
    let (mut w, ids) = fig10();
    assert!(w.client(ids[0]).registered_pinhole().is_some());
    assert!(w.client(ids[1]).registered_pinhole().is_some());
    let mut ca = CallAgent::new();

    // 910–925: CRCX to A; A reserves a leg and answers with its pinhole,
    // which the MPR turns into a relay address for the call agent.
    let (_, crcx_a) = ca.command("CRCX", EP_A, &[("C", "F10"), ("M", "recvonly")], None);
    let ok_a = command(&mut w, crcx_a);
    assert_eq!(code(&ok_a), 200);
    let conn_a = pinhole_mgcp::Message::parse(&ok_a)
        .unwrap()
        .connection_id()
        .unwrap()
        .to_owned();
    let r1 = media_of(&ok_a);
    assert_eq!(r1.ip(), ip(MPR_IP));

    // 930–945: CRCX to B with A's relay address; B binds toward it.
    let (_, crcx_b) = ca.command("CRCX", EP_B, &[("C", "F10")], Some(&sdp(r1)));
    let ok_b = command(&mut w, crcx_b);
    assert_eq!(code(&ok_b), 200);
    let ra = media_of(&ok_b);
    assert_eq!(ra.ip(), ip(MPR_IP));
    assert_ne!(ra, r1);

    // 950–955: MDCX to A with B's relay address (A's reserved leg).
    let (_, mdcx) = ca.command(
        "MDCX",
        EP_A,
        &[("C", "F10"), ("I", &conn_a)],
        Some(&sdp(ra)),
    );
    let ok = command(&mut w, mdcx);
    assert_eq!(code(&ok), 200);
    assert_eq!(w.mpr().stats().legs_open, 2);

    let ladder = check_ladder(&w, &name, FIG10_STEPS);
    assert!(ladder.is_ok(), "{}", ladder.unwrap_err());

    // 960: RTP both ways: each gateway sends to the relay address its
    // RemoteConnectionDescriptor named.
    for i in 0..20u8 {
        w.send(a(MEDIA_A), ra, vec![0x80, 0, 0, i, b'a']);
        w.send(a(MEDIA_B), r1, vec![0x80, 0, 0, i, b'b']);
        w.run_for(Duration::from_millis(20));
    }
    w.run_for(Duration::from_millis(200));
    let at_a = take(&mut w, MEDIA_A);
    let at_b = take(&mut w, MEDIA_B);
    assert_eq!((at_a.len(), at_b.len()), (20, 20));
    for (i, (pa, pb)) in at_a.iter().zip(&at_b).enumerate() {
        assert_eq!(pa, &[0x80, 0, 0, i as u8, b'b']);
        assert_eq!(pb, &[0x80, 0, 0, i as u8, b'a']);
    }

    // DLCX both: 250s, the legs go, the gateways' pinholes close.
    let (_, d) = ca.command("DLCX", EP_A, &[("C", "F10")], None);
    assert_eq!(code(&command(&mut w, d)), 250);
    let (_, d) = ca.command("DLCX", EP_B, &[("C", "F10")], None);
    assert_eq!(code(&command(&mut w, d)), 250);
    assert_eq!(w.mpr().stats().legs_open, 0);
}

#[test]
fn a_smart_gateway_answers_a_retransmitted_crcx_once_and_then_the_same() {
    let (mut w, ids) = fig10();
    let mut ca = CallAgent::new();
    let (_, crcx) = ca.command("CRCX", EP_A, &[("C", "RT")], None);
    // Two copies while the pinhole opens: one CMPH, one answer.
    w.send(a(CA), a(MPR), crcx.clone());
    w.send(a(CA), a(MPR), crcx.clone());
    w.run_for(Duration::from_secs(1));
    let first = one(&mut w, CA);
    assert_eq!(code(&first), 200);
    assert_eq!(w.client(ids[0]).stats().pinholes_opened, 1);
    // A later copy: the same bytes again.
    w.send(a(CA), a(MPR), crcx);
    w.run_for(Duration::from_secs(1));
    assert_eq!(one(&mut w, CA), first);
    assert_eq!(w.mpr().stats().legs_open, 2);
    // An MDCX for a connection it does not have: 515.
    let (_, mdcx) = ca.command("MDCX", EP_A, &[("C", "RT"), ("I", "NOPE")], None);
    assert_eq!(code(&command(&mut w, mdcx)), 515);
}

#[test]
fn a_smart_gateway_reports_its_pinholes_and_reopens_toward_a_new_relay() {
    let (mut w, ids, gws) = fig10_shared();
    let mut ca = CallAgent::new();
    let (_, crcx) = ca.command("CRCX", EP_A, &[("C", "EVG")], None);
    let ok = command(&mut w, crcx);
    let conn = pinhole_mgcp::Message::parse(&ok)
        .unwrap()
        .connection_id()
        .unwrap()
        .to_owned();
    let leg_key = format!("mgcp-gw/{conn}").into_bytes();
    let mut seen = 0;
    let mut events = |w: &World| {
        let all = w.client_alg_events(ids[0]);
        let new = all.get(seen..).unwrap_or_default().to_vec();
        seen = all.len();
        new
    };
    assert_eq!(
        events(&w),
        [AlgEvent::PinholeOpened {
            leg_key: leg_key.clone()
        }]
    );
    let c = lock(&gws[0]).connection(&conn).cloned().unwrap();
    assert_eq!(c.media, a(MEDIA_A));
    let first_relay = c.relay.expect("the relay the pinhole points at");
    // An MDCX naming another relay address: A closes its pinhole and
    // opens one toward that address before it answers. (Sent straight
    // into A's signaling pinhole, as from the MPR: the MPR's ALG would
    // only ever name relay legs of corp1's.) The MPR has no such leg: the
    // pinhole fails, the MDCX gets 502, the connection stays.
    let route = w.mpr().route("corp1", Protocol::Mgcp).unwrap();
    let other = SocketAddr::new(first_relay.ip(), first_relay.port() + 2);
    for (relay, want) in [
        (
            other,
            AlgEvent::PinholeFailed {
                leg_key: leg_key.clone(),
            },
        ),
        // Back to the first relay address: the failed pinhole is gone, so
        // A opens one again rather than answer at once.
        (
            first_relay,
            AlgEvent::PinholeOpened {
                leg_key: leg_key.clone(),
            },
        ),
    ] {
        let (_, mdcx) = ca.command(
            "MDCX",
            EP_A,
            &[("C", "EVG"), ("I", &conn)],
            Some(&sdp(relay)),
        );
        w.send(route.local, route.pinhole, mdcx);
        w.run_for(Duration::from_secs(1));
        assert_eq!(events(&w), [want]);
        let c = lock(&gws[0]).connection(&conn).cloned().unwrap();
        assert_eq!(c.remote, Some(relay));
    }
    assert_eq!(w.client(ids[0]).stats().cmph_sent, 4, "one CMPH per open");
    let c = lock(&gws[0]).connection(&conn).cloned().unwrap();
    assert_eq!(c.relay, Some(first_relay));
    let stats = lock(&gws[0]).stats();
    assert_eq!(
        (stats.pinholes, stats.pinhole_failures, stats.replied),
        (3, 1, 1),
        "three pinholes asked for, one failed and answered 502"
    );
    // Both answers reached the MPR (which had not sent those MDCXs).
    let c = w.mpr_alg(Protocol::Mgcp).unwrap().counters();
    assert!(c.contains(&("unknown_transaction", 2)), "{c:?}");
}
