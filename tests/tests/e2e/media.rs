//! Figs. 7, 8 and 11, the no-response variant, latching and hold: media
//! checked packet by packet in both directions through the firewalls.

use std::time::Duration;

use pinhole_core::client::{CmphMode, PinholeRequest};
use pinhole_core::intent::{IntentKind, Origin};
use pinhole_core::types::Side;
use pinhole_core::wire::RtcpMode;

use crate::common::*;

#[test]
fn fig7_with_aps_public_caller_to_phone_behind_firewall() {
    let mut b = Bed::new().registered();
    // The offer names corp1's leg L; APS1 opens the pinhole from port B
    // toward L, mapping B to phone A; the answer carries the pinhole C.
    let port_b = addr("10.1.0.2:41000");
    let call = b.inbound_call(
        "fig7",
        "corp1",
        b.aps1,
        addr(P_MEDIA),
        port_b,
        RtcpMode::Mux,
        Some(addr(PHONE_A)),
    );
    assert_eq!(call.inside_leg.ip(), ip(MPR));
    let c = call.pinhole.expect("CMPH Response carries the pinhole");
    assert_eq!(c.ip(), ip("198.51.100.1"));
    assert_ne!(call.public_leg, call.inside_leg);
    // Media both ways: P ↔ P's leg … A's leg ↔ C ↔ B ↔ A.
    let dropped_before =
        b.w.net
            .firewall(b.corp1.firewall)
            .counters()
            .dropped_inbound();
    b.talk_both_ways(
        (addr(P_MEDIA), call.public_leg),
        (addr(PHONE_A), port_b),
        50,
    );
    assert_eq!(
        b.w.net
            .firewall(b.corp1.firewall)
            .counters()
            .dropped_inbound(),
        dropped_before
    );
    assert!(b.w.relay_counters().aps_forwarded >= 100);
}

#[test]
fn fig8_smart_terminal_without_aps() {
    let mut b = Bed::new().registered();
    let port_a = addr("10.2.0.10:9000");
    let call = b.call_into_t2("fig8", port_a, RtcpMode::Pair);
    assert!(call.pinhole.is_some());
    b.talk_both_ways(
        (addr(P_MEDIA), call.public_leg),
        (port_a, call.inside_leg),
        40,
    );
    // RTCP crosses on the next ports, bound by its own CMPH.
    let rtcp_leg = std::net::SocketAddr::new(call.public_leg.ip(), call.public_leg.port() + 1);
    b.w.send(addr("192.0.2.7:4001"), rtcp_leg, b"rtcp-from-p".to_vec());
    b.w.run_for(Duration::from_millis(100));
    assert_eq!(b.w.take_inbox(addr("10.2.0.10:9001")).len(), 1);
}

#[test]
fn fig11_offerer_behind_aps_calls_smart_terminal_behind_another_firewall() {
    let mut b = Bed::new().registered();
    // APS1 reserves a relay port at the control address, then binds from B.
    let port_b = addr("10.1.0.2:41000");
    let (l1, c1) = b.open(
        b.aps1,
        PinholeRequest {
            local: port_b,
            relay: None,
            rtcp: RtcpMode::Mux,
            key: b"fig11/A/0".to_vec(),
            inside: Some(addr(PHONE_A)),
        },
    );
    let c1 = c1.unwrap();
    // The INVITE's SDP carries C1; the MPR routes it to corp2 naming L2.
    let offer = b.intent(
        "fig11",
        IntentKind::Offer,
        Side::A,
        Origin::Network("corp1"),
        Origin::Network("corp2"),
        &[mux_ep(0, c1)],
    );
    let l2 = offer.endpoints[0].addr;
    let port_t = addr("10.2.0.10:9000");
    let (_, c2) = b.open(
        b.t2,
        PinholeRequest {
            local: port_t,
            relay: Some(l2),
            rtcp: RtcpMode::Mux,
            key: b"fig11/B/0".to_vec(),
            inside: None,
        },
    );
    let answer = b.intent(
        "fig11",
        IntentKind::Answer,
        Side::B,
        Origin::Network("corp2"),
        Origin::Network("corp1"),
        &[mux_ep(0, c2.unwrap())],
    );
    assert_eq!(
        answer.endpoints[0].addr, l1,
        "the answer toward A names the leg APS1 reserved"
    );
    assert_eq!(b.w.mpr().stats().legs_open, 2);
    b.talk_both_ways((addr(PHONE_A), port_b), (port_t, l2), 60);
}

/// The standard bed with T2 sending CMPH indications (the "no CMPH
/// response" variant), registered.
fn indication_bed() -> Bed {
    Bed::with(Opts {
        t2: Box::new(|c| c.cmph_mode = CmphMode::Indication),
        ..Opts::default()
    })
    .registered()
}

#[test]
fn no_cmph_response_variant_binds_by_indication() {
    let mut b = indication_bed();
    let port_t = addr("10.2.0.10:9100");
    let call = b.call_into_t2("ind", port_t, RtcpMode::Mux);
    assert_eq!(
        call.pinhole, None,
        "no response: the terminal does not learn its pinhole"
    );
    // The answer carried the terminal's actual (private) address.
    b.talk_both_ways(
        (addr(P_MEDIA), call.public_leg),
        (port_t, call.inside_leg),
        30,
    );
    let n_cmph =
        b.w.ladder()
            .iter()
            .filter(|r| r.what.starts_with("CMPH"))
            .count();
    assert_eq!(n_cmph, 3, "three indication copies, no responses");
}

#[test]
fn no_cmph_response_variant_on_the_offering_side() {
    let mut b = indication_bed();
    // The terminal reserves L (that one has a response), then binds from
    // its port with indications only: it never learns its pinhole and
    // offers its own (private) address.
    let port_t = addr("10.2.0.10:9200");
    let (l, c) = b.open(
        b.t2,
        PinholeRequest {
            local: port_t,
            relay: None,
            rtcp: RtcpMode::Mux,
            key: b"ind-offer/A/0".to_vec(),
            inside: None,
        },
    );
    assert_eq!(c, None, "no response: no pinhole learned");
    let (offer, answer) = b.offer_answer(
        "ind-offer",
        Origin::Network("corp2"),
        Origin::Public,
        &[mux_ep(0, port_t)],
        &[mux_ep(0, addr(P_MEDIA))],
    );
    let public_leg = offer.endpoints[0].addr;
    assert_eq!(
        answer.endpoints[0].addr, l,
        "the MPR found the reserved leg by the private address the reserve named"
    );
    assert_eq!(b.w.mpr().stats().legs_open, 2, "no second, latching leg");
    b.talk_both_ways((addr(P_MEDIA), public_leg), (port_t, l), 30);
}

#[test]
fn plain_terminal_latches_from_its_network_only() {
    let mut b = Bed::new().registered();
    let plain = addr("10.1.0.20:7000");
    // The plain phone's offer carries its private address; nothing opened a pinhole.
    let (offer, answer) = b.offer_answer(
        "plain",
        Origin::Network("corp1"),
        Origin::Public,
        &[mux_ep(0, plain)],
        &[mux_ep(0, addr(P_MEDIA))],
    );
    let (lp, l) = (offer.endpoints[0].addr, answer.endpoints[0].addr);
    // An attacker races the phone to the relay port: not its IP, dropped.
    b.w.send(addr("192.0.2.66:7000"), l, rtp(b'x', 0));
    b.w.run_for(Duration::from_millis(50));
    assert_eq!(b.w.relay_counters().dropped_source, 1);
    // The phone's first packet latches; then media flows both ways.
    b.talk_both_ways((plain, l), (addr(P_MEDIA), lp), 30);
    assert_eq!(b.w.mpr().stats().latches, 1);
    // After the latch, the attacker still gets nowhere.
    b.w.send(addr("192.0.2.66:7000"), l, rtp(b'x', 1));
    b.w.run_for(Duration::from_millis(50));
    assert_eq!(b.w.relay_counters().dropped_source, 2);
    assert!(b.w.take_inbox(addr(P_MEDIA)).is_empty());
}

#[test]
fn hold_longer_than_the_firewall_timeout_then_resume() {
    let mut b = Bed::new().registered();
    let port_t = addr("10.2.0.10:9200");
    let call = b.call_into_t2("hold", port_t, RtcpMode::Mux);
    let (lp, l) = (call.public_leg, call.inside_leg);
    let (at_t, _) = b.talk((addr(P_MEDIA), lp), (port_t, l), 5);
    assert_media(&at_t, b'a', 5);
    // On hold: no media for 3 minutes (the firewall forgets after 30 s).
    b.w.run_for(Duration::from_secs(180));
    assert!(
        b.w.client(b.t2).stats().keepalives >= 8,
        "keepalives held the pinhole"
    );
    assert_eq!(
        b.w.mpr().stats().calls_open,
        1,
        "keepalives kept the call alive at the MPR too"
    );
    // Resume: P's media gets in, and T's gets out.
    b.talk_both_ways((addr(P_MEDIA), lp), (port_t, l), 10);
    assert_eq!(
        b.w.net
            .firewall(b.corp2.firewall)
            .counters()
            .dropped_inbound(),
        0
    );
}

#[test]
fn a_call_whose_media_never_starts_expires_and_frees_its_ports() {
    let mut b = Bed::new().registered();
    let free = b.w.mpr().free_port_pairs();
    b.intent(
        "silent",
        IntentKind::Offer,
        Side::A,
        Origin::Public,
        Origin::Network("corp1"),
        &[rtp_ep(0, addr(P_MEDIA)), rtp_ep(1, addr("192.0.2.7:4002"))],
    );
    assert_eq!(b.w.mpr().stats().legs_open, 4);
    b.w.run_for(Duration::from_secs(61));
    assert_eq!(b.w.mpr().stats().legs_open, 0);
    assert_eq!(b.w.mpr().stats().calls_expired, 1);
    assert!(
        b.w.mpr().free_port_pairs() < free,
        "freed ports rest in quarantine"
    );
    b.w.run_for(Duration::from_secs(31));
    assert_eq!(
        b.w.mpr().free_port_pairs(),
        free,
        "after quarantine every pair is free again"
    );
}

#[test]
fn cmph_survives_30_percent_loss_by_retransmission() {
    let mut b = Bed::new().registered();
    let (c2, inet) = (b.corp2.zone, b.w.internet);
    b.w.net.set_loss(c2, inet, 0.3);
    b.w.net.set_loss(inet, c2, 0.3);
    let port_t = addr("10.2.0.10:9400");
    let call = b.call_into_t2("lossy", port_t, RtcpMode::Pair);
    assert!(call.pinhole.is_some(), "opened despite loss");
    let stats = b.w.client(b.t2).stats();
    assert_eq!(stats.pinholes_opened, 1);
    assert!(stats.retransmissions > 0, "the loss was real: {stats:?}");
    b.w.net.set_loss(c2, inet, 0.0);
    b.w.net.set_loss(inet, c2, 0.0);
    b.talk_both_ways(
        (addr(P_MEDIA), call.public_leg),
        (port_t, call.inside_leg),
        20,
    );
}
