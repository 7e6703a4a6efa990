//! Fig. 9 on the simulated network: an APS in each network
//! ([`Aps`]), the MPR running [`Mpr`], a call agent on the public
//! side and a plain gateway behind each firewall. CRCX to A, CMPH before
//! A's answer leaves corp1, CRCX to B with A's relay address, CMPH before
//! B's answer leaves corp2, MDCX to A with B's relay address, RTP both
//! ways through both firewalls and the relay, DLCX frees everything.
#![allow(missing_docs)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::common::*;
use pinhole_core::alg::{AlgEvent, counter};
use pinhole_core::client;
use pinhole_core::hash::keyed;
use pinhole_core::ports::PortRange;
use pinhole_core::rng::Rng;
use pinhole_core::wire::Protocol;
use pinhole_mgcp::alg::{Aps, ApsConfig, Mpr, MprConfig};
use pinhole_mgcp::{Message, piggyback};
use pinhole_testkit::{ClientId, FirewallConfig, World};

const APS1: &str = "10.1.0.2:2727";
const APS2: &str = "10.2.0.2:2727";
const GW_A: &str = "10.1.0.10:2427";
const GW_B: &str = "10.2.0.10:2427";
const MEDIA_A: &str = "10.1.0.10:4000";
const MEDIA_B: &str = "10.2.0.10:6000";
const EP_A: &str = "aaln/1@gw1.corp1.example";
const EP_B: &str = "aaln/1@gw2.corp2.example";

struct Fig9 {
    w: World,
    ca: CallAgent,
    ga: Gateway,
    gb: Gateway,
    aps: [ClientId; 2],
}

fn fig9() -> Fig9 {
    fig9_with(|_| {})
}

fn fig9_with(f: impl FnOnce(&mut pinhole_core::mpr::Config)) -> Fig9 {
    #[allow(clippy::disallowed_methods)]
    let start = Instant::now();
    let mut mc = mpr_config();
    f(&mut mc);
    let mut w = World::new(start, 9, mc);
    let c1 = w.add_corp("corp1", ip(FW1), FirewallConfig::default());
    let c2 = w.add_corp("corp2", ip(FW2), FirewallConfig::default());
    w.add_host(c1.zone, ip("10.1.0.2"), "APS1");
    w.add_host(c1.zone, ip("10.1.0.10"), "A");
    w.add_host(c2.zone, ip("10.2.0.2"), "APS2");
    w.add_host(c2.zone, ip("10.2.0.10"), "B");
    let internet = w.internet;
    w.add_host(internet, ip("192.0.2.5"), "CA");
    let mut mc = MprConfig::new(a(MPR));
    mc.call_agent = Some(a(CA));
    w.set_mpr_alg(a(MPR), Box::new(Mpr::new(mc)));
    let mut aps = Vec::new();
    for (net, sig, media, gw, dom, seed) in [
        ("corp1", APS1, "10.1.0.2", GW_A, "corp1.example", 3u8),
        ("corp2", APS2, "10.2.0.2", GW_B, "corp2.example", 4u8),
    ] {
        let cfg = client::Config::new(
            net,
            format!("{net}-secret").into_bytes(),
            Protocol::Mgcp,
            a(sig),
            a(MPR),
            [seed; 32],
        );
        let id = w.add_client(cfg);
        let mut pc = ApsConfig::new(
            a(sig),
            ip(media),
            PortRange::new(20_000, 20_999).unwrap(),
            [seed; 32],
        );
        pc.gateways.push((dom.into(), a(gw)));
        w.set_client_alg(id, Box::new(Aps::new(pc)));
        aps.push(id);
    }
    w.run_for(Duration::from_secs(2));
    Fig9 {
        w,
        ca: CallAgent::new(),
        ga: Gateway::new(MEDIA_A, "A"),
        gb: Gateway::new(MEDIA_B, "B"),
        aps: [aps[0], aps[1]],
    }
}

/// Who is behind an address in Fig. 9 (a firewall's address is its APS).
fn name(s: SocketAddr) -> String {
    match s.ip().to_string().as_str() {
        MPR_IP => "MPR",
        "192.0.2.5" => "CA",
        FW1 | "10.1.0.2" => "APS1",
        FW2 | "10.2.0.2" => "APS2",
        "10.1.0.10" => "A",
        "10.2.0.10" => "B",
        _ => "?",
    }
    .to_owned()
}

const FIG9_STEPS: &[Step] = &[
    step(805, "CA", "MPR", "RQNT "),
    step(805, "APS1", "A", "RQNT "),
    step(805, "A", "APS1", "200 "),
    step(805, "MPR", "CA", "200 "),
    step(810, "CA", "MPR", "CRCX "),
    step(810, "MPR", "APS1", "CRCX "),
    step(815, "APS1", "A", "CRCX "),
    step(820, "A", "APS1", "200 "),
    step(825, "APS1", "MPR", "CMPH request"),
    step(830, "MPR", "APS1", "CMPH success"),
    step(835, "APS1", "MPR", "200 "),
    step(835, "MPR", "CA", "200 "),
    step(840, "CA", "MPR", "CRCX "),
    step(840, "MPR", "APS2", "CRCX "),
    step(845, "APS2", "B", "CRCX "),
    step(850, "B", "APS2", "200 "),
    step(855, "APS2", "MPR", "CMPH request"),
    step(860, "MPR", "APS2", "CMPH success"),
    step(865, "APS2", "MPR", "200 "),
    step(865, "MPR", "CA", "200 "),
    step(870, "CA", "MPR", "MDCX "),
    step(870, "MPR", "APS1", "MDCX "),
    step(875, "APS1", "A", "MDCX "),
    step(880, "A", "APS1", "200 "),
    step(885, "APS1", "MPR", "200 "),
    step(885, "MPR", "CA", "200 "),
];

/// CA → gateway through the MPR and its APS; the gateway's answer back.
fn exchange(w: &mut World, cmd: Vec<u8>, gw: &mut Gateway, at: &str) -> (Vec<u8>, Vec<u8>) {
    w.send(a(CA), a(MPR), cmd);
    w.run_for(Duration::from_millis(500));
    let got = one(w, at);
    w.send(
        a(at),
        a(if at == GW_A { APS1 } else { APS2 }),
        gw.answer(&got),
    );
    w.run_for(Duration::from_secs(1));
    let back = one(w, CA);
    (got, back)
}

#[test]
fn fig9_call_with_an_aps_in_each_network() {
    let Fig9 {
        mut w,
        mut ca,
        mut ga,
        mut gb,
        aps,
        ..
    } = fig9();
    assert!(w.client(aps[0]).registered_pinhole().is_some());

    // 805: setup (RQNT/200).
    let (_, rqnt) = ca.command("RQNT", EP_A, &[("X", "0123"), ("R", "L/hd")], None);
    let (got, back) = exchange(&mut w, rqnt.clone(), &mut ga, GW_A);
    assert_eq!(got, rqnt, "a command without SDP passes byte for byte");
    assert_eq!(code(&back), 200);

    // 810–835: CRCX to A (no SDP); A's answer leaves only after CMPH.
    let (_, crcx_a) = ca.command("CRCX", EP_A, &[("C", "CALL1"), ("M", "recvonly")], None);
    let (got, ok_a) = exchange(&mut w, crcx_a.clone(), &mut ga, GW_A);
    assert_eq!(got, crcx_a);
    assert_eq!(code(&ok_a), 200);
    let r1 = media_of(&ok_a);
    assert_eq!(
        r1.ip(),
        ip(MPR_IP),
        "the call agent is told an MPR relay port"
    );
    assert_eq!(
        changed_lines(&ga.answer(&crcx_a), &ok_a),
        [
            format!("c=IN IP4 {MPR_IP}"),
            format!("m=audio {} RTP/AVP 0", r1.port())
        ],
        "only c= and m= changed"
    );

    // 840–865: CRCX to B with A's relay address.
    let (_, crcx_b) = ca.command(
        "CRCX",
        EP_B,
        &[("C", "CALL1"), ("M", "sendrecv")],
        Some(&sdp(r1)),
    );
    let (got, ok_b) = exchange(&mut w, crcx_b.clone(), &mut gb, GW_B);
    let b2 = media_of(&got);
    assert_eq!(b2.ip(), ip("10.2.0.2"), "B is told APS2's port B");
    assert_eq!(changed_lines(&crcx_b, &got).len(), 2);
    let ra = media_of(&ok_b);
    assert_eq!(ra.ip(), ip(MPR_IP));
    assert_ne!(ra, r1);

    // 870–885: MDCX to A with B's relay address.
    let (_, mdcx_a) = ca.command(
        "MDCX",
        EP_A,
        &[("C", "CALL1"), ("I", "AC0FFEE"), ("M", "sendrecv")],
        Some(&sdp(ra)),
    );
    let (got, ok) = exchange(&mut w, mdcx_a, &mut ga, GW_A);
    let b1 = media_of(&got);
    assert_eq!(b1.ip(), ip("10.1.0.2"), "A is told APS1's port B");
    assert_eq!(code(&ok), 200);
    assert_eq!(media_of(&ok), r1, "A's description keeps its relay address");
    assert_eq!(ga.remote, Some(b1));
    assert_eq!(gb.remote, Some(b2));

    let ladder = check_ladder(&w, &name, FIG9_STEPS);
    assert!(ladder.is_ok(), "{}", ladder.unwrap_err());

    // 890: RTP both ways through both firewalls and the relay.
    let before = w.relay_counters().forwarded;
    for i in 0..20u8 {
        w.send(a(MEDIA_A), b1, vec![0x80, 0, 0, i, b'a']);
        w.send(a(MEDIA_B), b2, vec![0x80, 0, 0, i, b'b']);
        w.run_for(Duration::from_millis(20));
    }
    w.run_for(Duration::from_millis(200));
    let at_a = take(&mut w, MEDIA_A);
    let at_b = take(&mut w, MEDIA_B);
    assert_eq!((at_a.len(), at_b.len()), (20, 20));
    for (i, (pa, pb)) in at_a.iter().zip(&at_b).enumerate() {
        assert_eq!(pa, &[0x80, 0, 0, i as u8, b'b'], "B→A payload {i}");
        assert_eq!(pb, &[0x80, 0, 0, i as u8, b'a'], "A→B payload {i}");
    }
    assert_eq!(w.relay_counters().forwarded - before, 40);
    assert_eq!(
        w.mpr().stats().legs_open,
        2,
        "one leg per side, nothing extra"
    );

    // Hold (c=0.0.0.0) toward A passes without planning anything.
    let hold = sdp(ra).replace(MPR_IP, "0.0.0.0");
    let (_, mdcx_hold) = ca.command(
        "MDCX",
        EP_A,
        &[("C", "CALL1"), ("I", "AC0FFEE")],
        Some(&hold),
    );
    let (got, _) = exchange(&mut w, mdcx_hold, &mut ga, GW_A);
    assert_eq!(media_of(&got).ip(), ip("0.0.0.0"), "A sees the hold");
    assert_eq!(w.mpr().stats().legs_open, 2);

    // DLCX both: the legs go, ports B are freed.
    let (_, dlcx_a) = ca.command("DLCX", EP_A, &[("C", "CALL1"), ("I", "AC0FFEE")], None);
    let (_, back) = exchange(&mut w, dlcx_a, &mut ga, GW_A);
    assert_eq!(code(&back), 250);
    assert_eq!(
        w.mpr().stats().legs_open,
        2,
        "B's connection still holds the call"
    );
    let (_, dlcx_b) = ca.command("DLCX", EP_B, &[("C", "CALL1")], None);
    let (_, back) = exchange(&mut w, dlcx_b, &mut gb, GW_B);
    assert_eq!(code(&back), 250);
    assert_eq!(w.mpr().stats().legs_open, 0, "DLCX freed the relay legs");
    let mpr_counters = vec![(
        Protocol::Mgcp,
        w.mpr_alg(Protocol::Mgcp).unwrap().counters(),
    )];
    assert_eq!(counter(&mpr_counters, Protocol::Mgcp, "teardowns"), 1);
    assert_eq!(counter(&mpr_counters, Protocol::Mgcp, "sdp_rewritten"), 4);
    for id in aps {
        let c = w.client_alg(id).unwrap().counters();
        let get = |n: &str| c.iter().find(|(k, _)| *k == n).unwrap().1;
        assert_eq!(get("pinholes"), 1);
    }
    assert_eq!(w.client(aps[0]).stats().pinholes_opened, 1);
}

#[test]
fn retransmissions_get_the_same_ports_and_bytes() {
    let Fig9 {
        mut w,
        mut ca,
        mut ga,
        ..
    } = fig9();
    let (_, crcx) = ca.command("CRCX", EP_A, &[("C", "CALL2")], None);
    w.send(a(CA), a(MPR), crcx.clone());
    w.run_for(Duration::from_millis(300));
    // The call agent's retransmission (no answer yet).
    w.send(a(CA), a(MPR), crcx.clone());
    w.run_for(Duration::from_millis(300));
    let got = take(&mut w, GW_A);
    assert_eq!(
        got,
        [crcx.clone(), crcx.clone()],
        "both copies reach A unchanged"
    );
    // A answers twice (once per copy); the second is sent while CMPH runs.
    let ok = ga.answer(&crcx);
    w.send(a(GW_A), a(APS1), ok.clone());
    w.send(a(GW_A), a(APS1), ok.clone());
    w.run_for(Duration::from_secs(1));
    let back = take(&mut w, CA);
    assert_eq!(back.len(), 1, "the copy held behind the CMPH is absorbed");
    // A third copy after the pinhole opened: the same rewritten bytes.
    w.send(a(GW_A), a(APS1), ok);
    w.run_for(Duration::from_secs(1));
    let again = take(&mut w, CA);
    assert_eq!(
        again, back,
        "a retransmitted 200 maps to the same relay port"
    );
    // And the call agent's retransmission after the answer: A gets it again.
    w.send(a(CA), a(MPR), crcx.clone());
    w.run_for(Duration::from_millis(300));
    assert_eq!(take(&mut w, GW_A), [crcx]);
    assert_eq!(w.mpr().stats().legs_open, 2, "planned once");
    assert_eq!(w.client(ClientId(0)).stats().pinholes_opened, 1);
    let c = w.mpr_alg(Protocol::Mgcp).unwrap().counters();
    assert!(c.contains(&("retransmissions", 3)), "{c:?}");
    // APS1 passed both copies of the CRCX as it first did, held the first
    // 200 while its pinhole opened, absorbed the copy behind it, and
    // answered the third with what it sent.
    let c = w.client_alg(ClientId(0)).unwrap().counters();
    for (name, v) in [("parked", 1), ("retransmissions", 4), ("pinholes", 1)] {
        assert!(c.contains(&(name, v)), "{name}: {c:?}");
    }
}

#[test]
fn unknown_domain_gets_500_and_an_unregistered_network_501() {
    let Fig9 { mut w, mut ca, .. } = fig9();
    let (_, c) = ca.command("CRCX", "aaln/1@gw.elsewhere.example", &[("C", "X")], None);
    w.send(a(CA), a(MPR), c);
    w.run_for(Duration::from_millis(300));
    let r = one(&mut w, CA);
    assert!(
        r.starts_with(b"500 1001 "),
        "{}",
        String::from_utf8_lossy(&r)
    );
    let (_, c) = ca.command("CRCX", "aaln/1@gw.corp3.example", &[("C", "X")], None);
    w.send(a(CA), a(MPR), c);
    w.run_for(Duration::from_millis(300));
    let r = one(&mut w, CA);
    assert!(
        r.starts_with(b"501 1002 "),
        "{}",
        String::from_utf8_lossy(&r)
    );
    // Garbage is counted, never answered or forwarded.
    w.send(a(CA), a(MPR), b"CRCX what\r\n".to_vec());
    w.run_for(Duration::from_millis(300));
    assert!(take(&mut w, CA).is_empty());
    let c = w.mpr_alg(Protocol::Mgcp).unwrap().counters();
    for (name, v) in [
        ("unknown_endpoint", 1),
        ("no_route", 1),
        ("malformed", 1),
        ("replied", 2),
    ] {
        assert!(c.contains(&(name, v)), "{name}: {c:?}");
    }
}

#[test]
fn a_public_media_server_gets_relay_ports_and_media_flows() {
    let Fig9 {
        mut w,
        mut ca,
        mut ga,
        ..
    } = fig9();
    let internet = w.internet;
    w.add_host(internet, ip("192.0.2.80"), "MS");
    let ms = a("192.0.2.80:8000");
    let (_, crcx) = ca.command("CRCX", EP_A, &[("C", "ANN")], Some(&sdp(ms)));
    let (got, ok) = exchange(&mut w, crcx, &mut ga, GW_A);
    let b1 = media_of(&got);
    assert_eq!(b1.ip(), ip("10.1.0.2"));
    let relay = media_of(&ok);
    assert_eq!(relay.ip(), ip(MPR_IP));
    for i in 0..5u8 {
        w.send(ms, relay, vec![0x80, 0, 0, i, b'm']);
        w.send(a(MEDIA_A), b1, vec![0x80, 0, 0, i, b'a']);
        w.run_for(Duration::from_millis(20));
    }
    w.run_for(Duration::from_millis(200));
    assert_eq!(take(&mut w, MEDIA_A).len(), 5, "media server → A");
    assert_eq!(take(&mut w, "192.0.2.80:8000").len(), 5, "A → media server");
}

#[test]
fn response_acks_notifications_and_piggybacked_datagrams_pass() {
    let Fig9 {
        mut w,
        mut ca,
        mut ga,
        ..
    } = fig9();
    // A piggybacked CRCX + RQNT with K:, both for A.
    let (_, crcx) = ca.command("CRCX", EP_A, &[("C", "PB"), ("K", "990-999")], None);
    let (_, rqnt) = ca.command("RQNT", EP_A, &[("X", "77"), ("R", "D/[0-9]")], None);
    let d = piggyback(&[&crcx, &rqnt]);
    w.send(a(CA), a(MPR), d.clone());
    w.run_for(Duration::from_millis(300));
    assert_eq!(one(&mut w, GW_A), d, "routed as one datagram, unchanged");
    // A's answers, piggybacked too: the CRCX's SDP is rewritten inside.
    let ok = ga.answer(&crcx);
    let ok2 = ga.answer(&rqnt);
    w.send(a(GW_A), a(APS1), piggyback(&[&ok, &ok2]));
    w.run_for(Duration::from_secs(1));
    let back = one(&mut w, CA);
    let msgs = pinhole_mgcp::parse_datagram(&back).unwrap();
    assert_eq!(msgs.len(), 2);
    assert_eq!(media_of(&back).ip(), ip(MPR_IP));
    // The call agent's response acknowledgement reaches A.
    w.send(a(CA), a(MPR), b"000 1001\r\n".to_vec());
    w.run_for(Duration::from_millis(300));
    assert_eq!(one(&mut w, GW_A), b"000 1001\r\n");
    // A's notification goes to the call agent under an id of the MPR's
    // (every network's commands share its socket); the answer comes back
    // with A's id.
    let ntfy = b"NTFY 5001 aaln/1@gw1.corp1.example MGCP 1.0\r\nX: 77\r\nO: D/5\r\n".to_vec();
    w.send(a(GW_A), a(APS1), ntfy.clone());
    w.run_for(Duration::from_millis(300));
    let at_ca = one(&mut w, CA);
    let ours = Message::parse(&at_ca).unwrap().transaction_id();
    assert_eq!(
        at_ca,
        String::from_utf8_lossy(&ntfy)
            .replacen("5001", &ours.to_string(), 1)
            .into_bytes()
    );
    w.send(a(CA), a(MPR), format!("200 {ours} OK\r\n").into_bytes());
    w.run_for(Duration::from_millis(300));
    assert_eq!(one(&mut w, GW_A), b"200 5001 OK\r\n");
}

#[test]
fn a_pinhole_that_cannot_open_gets_502_and_the_connection_is_deleted() {
    // corp1 may hold no relay leg: APS1's CMPH is refused.
    let Fig9 {
        mut w,
        mut ca,
        mut ga,
        ..
    } = fig9_with(|mc| mc.networks[0].max_legs = 0);
    let (_, crcx) = ca.command("CRCX", EP_A, &[("C", "FAIL")], None);
    let (_, back) = exchange(&mut w, crcx, &mut ga, GW_A);
    assert!(
        back.starts_with(b"502 1001 "),
        "{}",
        String::from_utf8_lossy(&back)
    );
    // The APS deleted the connection A created, with a DLCX of its own.
    let dlcx = one(&mut w, GW_A);
    let m = Message::parse(&dlcx).unwrap();
    assert_eq!(m.verb().unwrap().as_str(), "DLCX");
    assert_eq!(m.connection_id(), Some("AC0FFEE"));
    assert_eq!(m.call_id(), Some("FAIL"));
    // A's 250 stays at the APS.
    w.send(a(GW_A), a(APS1), ga.answer(&dlcx));
    w.run_for(Duration::from_millis(300));
    assert!(take(&mut w, CA).is_empty());
    assert_eq!(w.mpr().stats().legs_open, 0, "nothing left at the MPR");
    let c = w.mpr_alg(Protocol::Mgcp).unwrap().counters();
    assert!(c.contains(&("calls", 1)), "{c:?}");
}

#[test]
fn an_error_to_a_crcx_frees_what_it_planned() {
    let Fig9 { mut w, mut ca, .. } = fig9();
    let internet = w.internet;
    w.add_host(internet, ip("192.0.2.80"), "MS");
    let (_, crcx) = ca.command(
        "CRCX",
        EP_A,
        &[("C", "ERR")],
        Some(&sdp(a("192.0.2.80:8000"))),
    );
    w.send(a(CA), a(MPR), crcx);
    w.run_for(Duration::from_millis(300));
    let got = one(&mut w, GW_A);
    assert_eq!(w.mpr().stats().legs_open, 2, "the public party's legs");
    let txid = Message::parse(&got).unwrap().transaction_id();
    w.send(
        a(GW_A),
        a(APS1),
        pinhole_mgcp::response(502, txid, Some("No resources"), &[], None),
    );
    w.run_for(Duration::from_millis(300));
    assert_eq!(code(&one(&mut w, CA)), 502);
    assert_eq!(w.mpr().stats().legs_open, 0, "the failed CRCX's legs went");
}

#[test]
fn a_crcx_never_answered_frees_its_ports_and_legs() {
    let Fig9 {
        mut w, mut ca, aps, ..
    } = fig9();
    let internet = w.internet;
    w.add_host(internet, ip("192.0.2.80"), "MS");
    let (_, crcx) = ca.command(
        "CRCX",
        EP_A,
        &[("C", "DEAD")],
        Some(&sdp(a("192.0.2.80:8000"))),
    );
    w.send(a(CA), a(MPR), crcx);
    w.run_for(Duration::from_millis(300));
    assert_eq!(take(&mut w, GW_A).len(), 1);
    assert_eq!(w.mpr().stats().legs_open, 2);
    // A never answers (nor does the call agent retransmit).
    w.run_for(Duration::from_secs(40));
    assert_eq!(w.mpr().stats().legs_open, 0, "the MPR forgot the call");
    let c = w.client_alg(aps[0]).unwrap().counters();
    assert!(c.contains(&("expired", 1)), "APS1 freed its port B: {c:?}");
    let c = w.mpr_alg(Protocol::Mgcp).unwrap().counters();
    assert!(c.contains(&("expired", 1)), "{c:?}");
}

/// The LEG-KEY of stream 0 of an APS's first connection, `mgcp/{keyed
/// hash of the connection}/0`, the hash keyed with the APS's secret (the
/// first number its seed gives).
/// The MPR's MGCP ALG's events after the first `seen`, and `seen` moved
/// past them.
fn mpr_events(w: &World, seen: &mut usize) -> Vec<AlgEvent> {
    let all = w.mpr_alg_events(Protocol::Mgcp);
    let new = all.get(*seen..).unwrap_or_default().to_vec();
    *seen = all.len();
    new
}

fn first_leg_key(seed: u8) -> Vec<u8> {
    let secret = Rng::from_seed([seed; 32]).next_u64();
    let h = keyed(secret, &[&1u64.to_be_bytes()]);
    format!("mgcp/{h:016x}/0").into_bytes()
}

#[test]
fn the_mpr_reports_the_call_anchored_planned_and_ended() {
    let Fig9 {
        mut w,
        mut ca,
        mut ga,
        mut gb,
        aps,
        ..
    } = fig9();
    let (_, crcx_a) = ca.command("CRCX", EP_A, &[("C", "EV1")], None);
    let (_, ok_a) = exchange(&mut w, crcx_a, &mut ga, GW_A);
    let (_, crcx_b) = ca.command("CRCX", EP_B, &[("C", "EV1")], Some(&sdp(media_of(&ok_a))));
    let (_, ok_b) = exchange(&mut w, crcx_b, &mut gb, GW_B);
    let (_, mdcx_a) = ca.command(
        "MDCX",
        EP_A,
        &[("C", "EV1"), ("I", "AC0FFEE")],
        Some(&sdp(media_of(&ok_b))),
    );
    exchange(&mut w, mdcx_a, &mut ga, GW_A);
    let call = pinhole_core::types::CallKey::new("mgcp/192.0.2.5/EV1");
    let planned = AlgEvent::MediaPlanned {
        call: call.clone(),
        streams: 1,
    };
    // A's answer anchors the call; it is planned again toward corp2 when
    // B's CRCX names its relay address, then B's answer, B's description
    // again toward corp1 when A's MDCX names B's relay address, and A's
    // answer to the MDCX.
    let mut seen = 0;
    assert_eq!(
        mpr_events(&w, &mut seen),
        [
            AlgEvent::CallAnchored { call: call.clone() },
            planned.clone(),
            planned.clone(),
            planned.clone(),
            planned.clone(),
            planned,
        ]
    );
    // Each APS opened one pinhole, named by its connection's LEG-KEY.
    for (id, seed) in aps.into_iter().zip([3, 4]) {
        assert_eq!(
            w.client_alg_events(id),
            [AlgEvent::PinholeOpened {
                leg_key: first_leg_key(seed)
            }]
        );
    }
    for (ep, gw, at) in [(EP_A, &mut ga, GW_A), (EP_B, &mut gb, GW_B)] {
        let (_, dlcx) = ca.command("DLCX", ep, &[("C", "EV1")], None);
        exchange(&mut w, dlcx, gw, at);
    }
    assert_eq!(w.mpr().stats().legs_open, 0);
    assert_eq!(mpr_events(&w, &mut seen), [AlgEvent::CallEnded { call }]);
}

#[test]
fn a_pinhole_that_fails_is_reported_with_its_leg_key() {
    let Fig9 {
        mut w,
        mut ca,
        mut ga,
        aps,
        ..
    } = fig9_with(|mc| mc.networks[0].max_legs = 0);
    let (_, crcx) = ca.command("CRCX", EP_A, &[("C", "EVF")], None);
    let (_, back) = exchange(&mut w, crcx, &mut ga, GW_A);
    assert_eq!(code(&back), 502);
    assert_eq!(
        w.client_alg_events(aps[0]),
        [AlgEvent::PinholeFailed {
            leg_key: first_leg_key(3)
        }]
    );
    // The 502 carried no description: nothing was planned at the MPR.
    assert_eq!(w.mpr_alg_events(Protocol::Mgcp), []);
}

#[test]
fn with_the_relay_out_of_ports_each_crcx_gets_one_502_and_the_aps_backs_off() {
    // 4 port pairs, all taken (by public calls the MPR relays).
    let Fig9 {
        mut w,
        mut ca,
        mut ga,
        ..
    } = fig9_with(|mc| mc.ports = PortRange::new(30_000, 30_007).unwrap());
    let now = w.now();
    assert_eq!(pinhole_testkit::exhaust::take_every_port(w.mpr(), now), 2);
    let cmph = |w: &World| w.rungs_to(a(MPR), "CMPH request");
    let before = cmph(&w);
    // The call agent sets up 100 calls on A, 5 a second for 20 s; the
    // gateway answers each.
    let (answers, logs) = pinhole_testkit::exhaust::counted(|| {
        let mut answers = Vec::new();
        for n in 0..100 {
            let (_, crcx) = ca.command("CRCX", EP_A, &[("C", &format!("X{n}"))], None);
            w.send(a(CA), a(MPR), crcx);
            w.run_for(Duration::from_millis(100));
            for got in take(&mut w, GW_A) {
                let back = ga.answer(&got);
                w.send(a(GW_A), a(APS1), back);
            }
            w.run_for(Duration::from_millis(100));
            answers.extend(take(&mut w, CA).iter().map(|d| code(d)));
        }
        w.run_for(Duration::from_secs(1));
        answers.extend(take(&mut w, CA).iter().map(|d| code(d)));
        answers
    });
    assert_eq!(answers.len(), 100, "one answer per CRCX");
    assert!(answers.iter().all(|c| *c == 502), "{answers:?}");
    // Reserves reached the MPR at 0, 1, 3, 7 and 15 s (back-off 1-16 s).
    let sent = cmph(&w) - before;
    assert_eq!(sent, 5, "CMPH reserves sent");
    assert!(logs.warn + logs.error <= 3 * sent as u64, "{logs:?}");
    assert_eq!(w.mpr().stats().legs_open, 4, "only the fillers' legs");
}

#[test]
fn a_stranger_other_than_the_call_agent_is_held_to_the_limits_and_the_call_agent_is_not() {
    let Fig9 { mut w, mut ca, .. } = fig9_with(|mc| {
        mc.ports = PortRange::new(30_000, 30_063).unwrap();
        mc.limits.per_source = 2;
    });
    let internet = w.internet;
    w.add_host(internet, ip("192.0.2.99"), "X");
    let x: SocketAddr = a("192.0.2.99:2427");
    let offer = sdp(a("192.0.2.99:7000"));
    // Two CRCX with the stranger's media: the first holds its 2 legs.
    let mut codes_x = Vec::new();
    for c in ["X1", "X2"] {
        let (_, crcx) = ca.command("CRCX", EP_A, &[("C", c)], Some(&offer));
        w.send(x, a(MPR), crcx);
        w.run_for(Duration::from_millis(300));
        codes_x.extend(take(&mut w, "192.0.2.99:2427").iter().map(|d| code(d)));
    }
    assert_eq!(
        take(&mut w, GW_A).len(),
        1,
        "only the first reached the gateway"
    );
    assert_eq!(codes_x.len(), 1, "{codes_x:?}");
    assert!(codes_x[0] >= 400, "{codes_x:?}");
    assert_eq!(w.mpr().stats().unanswered_refused, 1);
    // The configured call agent is trusted: three of its offers pass.
    for c in ["C1", "C2", "C3"] {
        let (_, crcx) = ca.command("CRCX", EP_A, &[("C", c)], Some(&offer));
        w.send(a(CA), a(MPR), crcx);
        w.run_for(Duration::from_millis(300));
    }
    assert_eq!(take(&mut w, GW_A).len(), 3);
    assert!(take(&mut w, CA).is_empty());
    assert_eq!(w.mpr().stats().unanswered_refused, 1);
}
