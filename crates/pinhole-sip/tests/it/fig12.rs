//! Fig. 12 on the simulated network (no APS): two smart terminals, each a
//! client engine of its own behind its firewall, with the test writing
//! their SIP from the engines' signaling addresses; the MPR runs
//! [`Mpr`]. A reserves its media pinhole and offers it; the MPR writes
//! a relay leg of corp2 into the offer; B binds its pinhole toward that leg
//! and answers with it; the MPR writes A's own reserved leg into the
//! answer. Media flows both ways; the BYE frees the legs.
#![allow(missing_docs)]

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use pinhole_core::client::{self, Event, PinholeId, PinholeRequest};
use pinhole_core::mpr;
use pinhole_core::wire::{Protocol, RtcpMode};
use pinhole_sip::alg::{Mpr, MprConfig};
use pinhole_sip::{HeaderName, Message};
use pinhole_testkit::sip::{self, Request, Response};
use pinhole_testkit::{ClientId, FirewallConfig, World};

const MPR: &str = "203.0.113.10:5060";
const A_SIG: &str = "10.1.0.10:5060";
const B_SIG: &str = "10.2.0.10:5060";
const A_MEDIA: &str = "10.1.0.10:4000";
const B_MEDIA: &str = "10.2.0.10:6000";

fn a(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

struct Fig12 {
    w: World,
    ta: ClientId,
    tb: ClientId,
}

fn fig12() -> Fig12 {
    #[allow(clippy::disallowed_methods)]
    let start = Instant::now();
    let mut mc = mpr::Config::new(ip("203.0.113.10"), [1; 32]);
    mc.control_ports = vec![5060];
    for (id, dom) in [("corp1", "corp1.example"), ("corp2", "corp2.example")] {
        let mut n = mpr::NetworkConfig::new(id, format!("{id}-secret").into_bytes());
        n.domains.push(dom.into());
        mc.networks.push(n);
    }
    let mut w = World::new(start, 12, mc);
    let c1 = w.add_corp("corp1", ip("198.51.100.1"), FirewallConfig::default());
    let c2 = w.add_corp("corp2", ip("198.51.100.2"), FirewallConfig::default());
    w.add_host(c1.zone, ip("10.1.0.10"), "A");
    w.add_host(c2.zone, ip("10.2.0.10"), "B");
    w.set_mpr_alg(a(MPR), Box::new(Mpr::new(MprConfig::new(a(MPR), [12; 32]))));
    let mut ids = Vec::new();
    for (net, sig, seed) in [("corp1", A_SIG, 5u8), ("corp2", B_SIG, 6u8)] {
        ids.push(w.add_client(client::Config::new(
            net,
            format!("{net}-secret").into_bytes(),
            Protocol::Sip,
            a(sig),
            a(MPR),
            [seed; 32],
        )));
    }
    w.run_for(Duration::from_secs(1));
    Fig12 {
        w,
        ta: ids[0],
        tb: ids[1],
    }
}

/// Opens a smart terminal's media pinhole and waits for it: (pinhole, relay).
fn open(
    w: &mut World,
    id: ClientId,
    local: &str,
    relay: Option<SocketAddr>,
) -> (SocketAddr, SocketAddr) {
    let now = w.now();
    let p: PinholeId = w
        .client(id)
        .open_pinhole(
            now,
            PinholeRequest {
                local: a(local),
                relay,
                rtcp: RtcpMode::Mux,
                key: b"fig12-call/0".to_vec(),
                inside: None,
            },
        )
        .unwrap();
    w.run_for(Duration::from_millis(200));
    w.client_events(id)
        .iter()
        .find_map(|e| match e {
            Event::PinholeOpened {
                id, pinhole, relay, ..
            } if *id == p => Some((pinhole.unwrap(), *relay)),
            _ => None,
        })
        .expect("pinhole opened")
}

fn sdp(media: SocketAddr) -> String {
    sip::audio_sdp(media, "0", &["rtcp-mux", "sendrecv"])
}

fn invite(body: &str) -> Vec<u8> {
    Request::new("INVITE", "sip:bob@corp2.example")
        .via(A_SIG, "z9hG4bK-a1")
        .max_forwards(70)
        .from("<sip:alice@corp1.example>;tag=alice1")
        .to("<sip:bob@corp2.example>")
        .call_id("fig12-call@10.1.0.10")
        .cseq(1)
        .contact("sip:alice@198.51.100.1:20000")
        .header("X-Unknown", "  kept  exactly ")
        .sdp(body)
        .build()
}

/// B's response to `req`: Via, From, To (+tag), Call-ID, CSeq and
/// Record-Route copied (RFC 3261 §8.2.6, §12.1.1).
fn respond(req: &[u8], code: u16, reason: &str, body: Option<&str>) -> Vec<u8> {
    Response::to(req, code, reason)
        .tag("bob1")
        .record_route()
        .contact("sip:bob@198.51.100.2:20000")
        .sdp_opt(body)
        .build()
}

/// A's in-dialog request, routed by the reversed Record-Route of `resp`.
fn in_dialog(resp: &[u8], method: &str, cseq: u32) -> Vec<u8> {
    let mut route = sip::record_route(resp);
    route.reverse();
    Request::new(method, "sip:bob@198.51.100.2:20000")
        .via(A_SIG, &format!("z9hG4bK-a{cseq}{method}"))
        .max_forwards(70)
        .route(&route)
        .from("<sip:alice@corp1.example>;tag=alice1")
        .to("<sip:bob@corp2.example>;tag=bob1")
        .call_id("fig12-call@10.1.0.10")
        .cseq(cseq)
        .build()
}

fn take(w: &mut World, at: &str) -> Vec<Vec<u8>> {
    w.take_inbox(a(at)).into_iter().map(|d| d.payload).collect()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn fig12_smart_terminals_call_through_the_mpr_with_media_both_ways() {
    let Fig12 { mut w, ta, tb } = fig12();
    assert!(w.client(ta).registered_pinhole().is_some());
    assert!(w.client(tb).registered_pinhole().is_some());

    // Steps 1110/1115: A reserves a relay leg and learns its pinhole.
    let (pin_a, relay_a) = open(&mut w, ta, A_MEDIA, None);
    assert_eq!(pin_a.ip(), ip("198.51.100.1"), "A's pinhole is on FW1");
    assert_eq!(w.mpr().stats().legs_open, 1);

    // Steps 1105/1120: the INVITE names the pinhole; the MPR writes a
    // corp2 relay leg into it and sends it into B's signaling pinhole.
    w.send(a(A_SIG), a(MPR), invite(&sdp(pin_a)));
    w.run_for(Duration::from_millis(200));
    let got = take(&mut w, B_SIG);
    assert_eq!(got.len(), 1, "B got the INVITE once");
    let inv_b = &got[0];
    let m = Message::parse(inv_b).unwrap();
    assert_eq!(m.method(), Some("INVITE"));
    assert_eq!(m.vias().len(), 2, "the MPR's Via over A's");
    assert_eq!(m.headers_named(HeaderName::RecordRoute).count(), 1);
    assert!(
        contains(inv_b, b";received=198.51.100.1") && contains(inv_b, b";rport=20000"),
        "A's Via records the NAT binding"
    );
    assert!(
        contains(inv_b, b"X-Unknown:   kept  exactly \r\n"),
        "{}",
        String::from_utf8_lossy(inv_b)
    );
    let relay_b = sip::media_of(inv_b).unwrap();
    assert_eq!(relay_b.ip(), ip("203.0.113.10"), "B is told a relay port");
    assert_ne!(relay_b, relay_a, "a leg of its own for corp2");
    assert_eq!(w.mpr().stats().legs_open, 2);

    // Steps 1125–1150: 180, B binds toward the offered leg, 200 with B's
    // pinhole; A is told its own reserved leg.
    w.send(a(B_SIG), a(MPR), respond(inv_b, 180, "Ringing", None));
    let (pin_b, bound) = open(&mut w, tb, B_MEDIA, Some(relay_b));
    assert_eq!(bound, relay_b);
    assert_eq!(pin_b.ip(), ip("198.51.100.2"));
    w.send(
        a(B_SIG),
        a(MPR),
        respond(inv_b, 200, "OK", Some(&sdp(pin_b))),
    );
    w.run_for(Duration::from_millis(200));
    let got = take(&mut w, A_SIG);
    let codes: Vec<u16> = got
        .iter()
        .map(|r| Message::parse(r).unwrap().status().unwrap())
        .collect();
    assert_eq!(codes, [180, 200]);
    let ok = &got[1];
    assert_eq!(
        sip::media_of(ok).unwrap(),
        relay_a,
        "A sends to the leg it reserved"
    );
    assert_eq!(Message::parse(ok).unwrap().vias().len(), 1);
    assert_eq!(
        w.mpr().stats().legs_open,
        2,
        "the answer reuses A's reserved leg"
    );

    // Steps 1160/1155: the ACK through the record-routed MPR.
    w.send(a(A_SIG), a(MPR), in_dialog(ok, "ACK", 1));
    w.run_for(Duration::from_millis(200));
    let got = take(&mut w, B_SIG);
    assert_eq!(got.len(), 1);
    assert_eq!(Message::parse(&got[0]).unwrap().method(), Some("ACK"));

    // Step 1165: media both ways through both firewalls and the relay.
    let before = w.relay_counters().forwarded;
    for i in 0..20u8 {
        w.send(a(A_MEDIA), relay_a, vec![0x80, 0, 0, i, b'a']);
        w.send(a(B_MEDIA), relay_b, vec![0x80, 0, 0, i, b'b']);
        w.run_for(Duration::from_millis(20));
    }
    w.run_for(Duration::from_millis(200));
    let at_b = take(&mut w, B_MEDIA);
    let at_a = take(&mut w, A_MEDIA);
    assert_eq!((at_a.len(), at_b.len()), (20, 20));
    assert!(at_b.iter().all(|p| p[4] == b'a') && at_a.iter().all(|p| p[4] == b'b'));
    assert_eq!(w.relay_counters().forwarded - before, 40);

    // BYE from A: B gets it, the legs go, A gets the 200.
    w.send(a(A_SIG), a(MPR), in_dialog(ok, "BYE", 2));
    w.run_for(Duration::from_millis(200));
    let got = take(&mut w, B_SIG);
    assert_eq!(Message::parse(&got[0]).unwrap().method(), Some("BYE"));
    w.send(a(B_SIG), a(MPR), respond(&got[0], 200, "OK", None));
    w.run_for(Duration::from_millis(200));
    assert_eq!(w.mpr().stats().legs_open, 0, "BYE freed the relay legs");
    let got = take(&mut w, A_SIG);
    assert_eq!(Message::parse(&got[0]).unwrap().status(), Some(200));
}

#[test]
fn a_terminal_cannot_offer_another_networks_pinhole() {
    // corp1 names B's bound pinhole in its offer: the MPR does not put
    // corp2's leg into corp1's call; corp1 gets a leg of its own (which can
    // only latch onto corp1's firewall address).
    let Fig12 { mut w, tb, .. } = fig12();
    let (pin_b, relay_b0) = open(&mut w, tb, B_MEDIA, None);
    assert_eq!(w.mpr().stats().legs_open, 1);
    w.send(a(A_SIG), a(MPR), invite(&sdp(pin_b)));
    w.run_for(Duration::from_millis(200));
    let inv_b = take(&mut w, B_SIG).remove(0);
    assert_ne!(sip::media_of(&inv_b).unwrap(), relay_b0);
    assert_eq!(
        w.mpr().stats().legs_open,
        3,
        "B's reserved leg stays out of the call: two new legs"
    );
}
