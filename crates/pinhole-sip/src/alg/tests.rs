//! The proxies on the simulated network: Fig. 11 (an APS in each network)
//! end to end — registration, INVITE / 180 / 200 / ACK through APS1, the
//! MPR and APS2, CMPH before the SDP leaves each network, media both ways
//! through both firewalls, BYE freeing the ports.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use pinhole_core::alg::live::{LiveClient, LiveMpr, NoSockets};
use pinhole_core::client;
use pinhole_core::mpr;
use pinhole_core::ports::PortRange;
use pinhole_core::wire::Protocol;
use pinhole_testkit::sip::{self, Request, Response};
use pinhole_testkit::{FirewallConfig, World};

use super::{Aps, ApsConfig, Mpr, MprConfig};
use crate::{HeaderName, Message};

fn a(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const MPR: &str = "203.0.113.10:5060";
const APS1: &str = "10.1.0.2:5060";
const APS2: &str = "10.2.0.2:5060";
const PHONE_A: &str = "10.1.0.10:5060";
const PHONE_B: &str = "10.2.0.10:5060";
const MEDIA_A: &str = "10.1.0.10:4000";
const MEDIA_B: &str = "10.2.0.10:6000";

struct Fig11 {
    w: World,
}

fn fig11() -> Fig11 {
    fig11_with(client::CmphMode::Request)
}

fn fig11_with(cmph_mode: client::CmphMode) -> Fig11 {
    fig11_tuned(cmph_mode, |_| {})
}

/// The Fig. 11 bed with the MPR engine's configuration changed by `tune`.
fn fig11_tuned(cmph_mode: client::CmphMode, tune: impl FnOnce(&mut mpr::Config)) -> Fig11 {
    let alg = Box::new(Mpr::new(MprConfig::new(a(MPR), [99; 32])));
    #[allow(clippy::disallowed_methods)]
    let start = Instant::now();
    let mut mc = mpr::Config::new(ip("203.0.113.10"), [1; 32]);
    mc.control_ports = vec![5060];
    for (id, dom) in [("corp1", "corp1.example"), ("corp2", "corp2.example")] {
        let mut n = mpr::NetworkConfig::new(id, format!("{id}-secret").into_bytes());
        n.domains.push(dom.into());
        mc.networks.push(n);
    }
    tune(&mut mc);
    let mut w = World::new(start, 7, mc);
    let c1 = w.add_corp("corp1", ip("198.51.100.1"), FirewallConfig::default());
    let c2 = w.add_corp("corp2", ip("198.51.100.2"), FirewallConfig::default());
    w.add_host(c1.zone, ip("10.1.0.2"), "APS1");
    w.add_host(c1.zone, ip("10.1.0.10"), "A");
    w.add_host(c2.zone, ip("10.2.0.2"), "APS2");
    w.add_host(c2.zone, ip("10.2.0.10"), "B");
    w.set_mpr_alg(a(MPR), alg);
    for (net, sig, media, phone, seed) in [
        ("corp1", APS1, "10.1.0.2", PHONE_A, 3u8),
        ("corp2", APS2, "10.2.0.2", PHONE_B, 4u8),
    ] {
        let mut cfg = client::Config::new(
            net,
            format!("{net}-secret").into_bytes(),
            Protocol::Sip,
            a(sig),
            a(MPR),
            [seed; 32],
        );
        cfg.cmph_mode = cmph_mode;
        let id = w.add_client(cfg);
        let mut pc = ApsConfig::new(
            a(sig),
            ip(media),
            PortRange::new(20_000, 20_999).unwrap(),
            [seed; 32],
        );
        pc.inside_default = Some(a(phone));
        w.set_client_alg(id, Box::new(Aps::new(pc)));
    }
    w.run_for(Duration::from_secs(2));
    Fig11 { w }
}

fn sdp(media: SocketAddr) -> String {
    sip::audio_sdp(media, "0 8", &["rtpmap:0 PCMU/8000", "sendrecv"])
}

fn invite(body: &str) -> Vec<u8> {
    Request::new("INVITE", "sip:bob@corp2.example")
        .via(PHONE_A, "z9hG4bK-a1")
        .max_forwards(70)
        .from("<sip:alice@corp1.example>;tag=alice1")
        .to("<sip:bob@corp2.example>")
        .call_id("fig11-call@10.1.0.10")
        .cseq(1)
        .contact(&format!("sip:alice@{PHONE_A}"))
        .header("X-Unknown", "  kept  exactly ")
        .sdp(body)
        .build()
}

/// A UAS response to `req`: Via, From, To (+tag), Call-ID, CSeq and the
/// Record-Route set copied, as RFC 3261 §8.2.6 and §12.1.1 say.
fn respond(req: &[u8], code: u16, reason: &str, body: Option<&str>) -> Vec<u8> {
    Response::to(req, code, reason)
        .always_tag("bob1")
        .record_route()
        .contact(&format!("sip:bob@{PHONE_B}"))
        .sdp_opt(body)
        .build()
}

/// An in-dialog request from A, routed by the Record-Route set of `resp`
/// (reversed for the caller, RFC 3261 §12.1.2).
fn dialog_request(resp: &[u8], method: &str, cseq: u32) -> Request {
    let mut route = sip::record_route(resp);
    route.reverse();
    Request::new(method, &format!("sip:bob@{PHONE_B}"))
        .via(PHONE_A, &format!("z9hG4bK-a{cseq}{method}"))
        .max_forwards(70)
        .route(&route)
        .from("<sip:alice@corp1.example>;tag=alice1")
        .to("<sip:bob@corp2.example>;tag=bob1")
        .call_id("fig11-call@10.1.0.10")
        .cseq(cseq)
}

fn in_dialog(resp: &[u8], method: &str, cseq: u32) -> Vec<u8> {
    dialog_request(resp, method, cseq).build()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn take_sip(w: &mut World, at: &str) -> Vec<Vec<u8>> {
    w.take_inbox(a(at)).into_iter().map(|d| d.payload).collect()
}

/// INVITE, 200 and ACK of the Fig. 11 call: B's INVITE and A's 200.
fn established(w: &mut World) -> (Vec<u8>, Vec<u8>) {
    w.send(a(PHONE_A), a(APS1), invite(&sdp(a(MEDIA_A))));
    w.run_for(Duration::from_secs(1));
    let inv_b = take_sip(w, PHONE_B).remove(0);
    w.send(
        a(PHONE_B),
        a(APS2),
        respond(&inv_b, 200, "OK", Some(&sdp(a(MEDIA_B)))),
    );
    w.run_for(Duration::from_secs(1));
    let ok = take_sip(w, PHONE_A).remove(0);
    w.send(a(PHONE_A), a(APS1), in_dialog(&ok, "ACK", 1));
    w.run_for(Duration::from_millis(500));
    assert_eq!(take_sip(w, PHONE_B).len(), 1, "B got the ACK");
    (inv_b, ok)
}

/// 20 packets each way, A to `b1` and B to `b2` (the ports B their SDP
/// named): each arrives once, intact, at the other phone.
fn media_both_ways(w: &mut World, b1: SocketAddr, b2: SocketAddr) {
    for i in 0..20u8 {
        w.send(a(MEDIA_A), b1, vec![0x80, 0, 0, i, b'a']);
        w.send(a(MEDIA_B), b2, vec![0x80, 0, 0, i, b'b']);
        w.run_for(Duration::from_millis(20));
    }
    w.run_for(Duration::from_millis(200));
    let at_b = take_sip(w, MEDIA_B);
    let at_a = take_sip(w, MEDIA_A);
    assert_eq!(at_b.len(), 20, "A→B media");
    assert_eq!(at_a.len(), 20, "B→A media");
    assert!(at_b.iter().all(|p| p[4] == b'a') && at_a.iter().all(|p| p[4] == b'b'));
}

#[test]
fn fig11_call_with_media_both_ways_and_bye_frees_the_ports() {
    let mut f = fig11();
    let w = &mut f.w;

    // Step 1005: A's INVITE to APS1. APS1 opens the pinhole first.
    let inv = invite(&sdp(a(MEDIA_A)));
    w.send(a(PHONE_A), a(APS1), inv);
    w.run_for(Duration::from_secs(1));
    let got = take_sip(w, PHONE_B);
    assert_eq!(got.len(), 1, "B got the INVITE once");
    let inv_b = &got[0];
    let m = Message::parse(inv_b).unwrap();
    assert_eq!(m.method(), Some("INVITE"));
    assert_eq!(m.vias().len(), 4, "A, APS1, MPR, APS2");
    assert_eq!(m.headers_named(HeaderName::RecordRoute).count(), 3);
    // Each proxy put its Via right above the others (RFC 3261 §16.6 step 8).
    let names: Vec<HeaderName> = m.headers().iter().map(|h| h.name).collect();
    let first = names.iter().position(|n| *n == HeaderName::Via).unwrap();
    assert!(
        names[first..first + 4]
            .iter()
            .all(|n| *n == HeaderName::Via),
        "{names:?}"
    );
    // Unknown headers and odd spacing pass untouched.
    assert!(
        contains(inv_b, b"X-Unknown:   kept  exactly \r\n"),
        "unknown header kept byte for byte"
    );
    let b2 = sip::media_of(inv_b).unwrap();
    assert_eq!(b2.ip(), ip("10.2.0.2"), "B is told APS2's media port B");
    // The ladder shows CMPH before the INVITE leaves corp1 (step 1010).
    let ladder: Vec<String> = w.ladder().iter().map(|r| r.what.clone()).collect();
    let cmph = ladder
        .iter()
        .position(|l| l.starts_with("CMPH request"))
        .unwrap();
    let inv_out = ladder
        .iter()
        .rposition(|l| l.starts_with("INVITE"))
        .unwrap();
    assert!(cmph < inv_out, "CMPH before the INVITE leaves: {ladder:#?}");

    // Steps 1035–1080: 180, then 200 with B's SDP (APS2 opens its pinhole).
    w.send(a(PHONE_B), a(APS2), respond(inv_b, 180, "Ringing", None));
    w.send(
        a(PHONE_B),
        a(APS2),
        respond(inv_b, 200, "OK", Some(&sdp(a(MEDIA_B)))),
    );
    w.run_for(Duration::from_secs(1));
    let got = take_sip(w, PHONE_A);
    let codes: Vec<u16> = got
        .iter()
        .map(|r| Message::parse(r).unwrap().status().unwrap())
        .collect();
    assert_eq!(codes, [180, 200], "responses reach A in order");
    let ok = &got[1];
    let b1 = sip::media_of(ok).unwrap();
    assert_eq!(b1.ip(), ip("10.1.0.2"), "A is told APS1's media port B");
    assert_eq!(
        Message::parse(ok).unwrap().vias().len(),
        1,
        "only A's Via left"
    );

    // Step 1090: ACK through the record-routed path.
    w.send(a(PHONE_A), a(APS1), in_dialog(ok, "ACK", 1));
    w.run_for(Duration::from_millis(500));
    let got = take_sip(w, PHONE_B);
    assert_eq!(got.len(), 1);
    assert_eq!(Message::parse(&got[0]).unwrap().method(), Some("ACK"));

    // Step 1100: media both ways through both firewalls.
    media_both_ways(w, b1, b2);
    assert!(w.mpr().stats().legs_open >= 2);

    // BYE from A: the MPR's legs go.
    w.send(a(PHONE_A), a(APS1), in_dialog(ok, "BYE", 2));
    w.run_for(Duration::from_millis(500));
    let got = take_sip(w, PHONE_B);
    assert_eq!(Message::parse(&got[0]).unwrap().method(), Some("BYE"));
    w.send(a(PHONE_B), a(APS2), respond(&got[0], 200, "OK", None));
    w.run_for(Duration::from_secs(1));
    assert_eq!(w.mpr().stats().legs_open, 0, "BYE freed the relay legs");
    let got = take_sip(w, PHONE_A);
    assert_eq!(Message::parse(&got[0]).unwrap().status(), Some(200));
}

/// The "no CMPH response" variant in both networks, the offering APS
/// included: it reserved its leg and bound it by indication, so it knows no
/// pinhole address for its offer. (Found by the netns test bed: the offer
/// named port B, the MPR opened a second, latching leg for it, and media
/// sent to the reserved leg had no peer.)
#[test]
fn fig11_with_cmph_indications_on_both_sides_carries_media() {
    let mut f = fig11_with(client::CmphMode::Indication);
    let w = &mut f.w;
    let (inv_b, ok) = established(w);
    media_both_ways(
        w,
        sip::media_of(&ok).unwrap(),
        sip::media_of(&inv_b).unwrap(),
    );
    assert_eq!(
        w.mpr().stats().legs_open,
        2,
        "one leg per network, no extra"
    );
}

#[test]
fn invite_for_an_unregistered_domain_from_the_public_side_is_refused() {
    let mut f = fig11();
    let w = &mut f.w;
    w.add_host(w.internet, ip("192.0.2.50"), "P");
    let req = invite(&sdp(a("192.0.2.50:7000")))
        .into_iter()
        .collect::<Vec<u8>>();
    let req = String::from_utf8(req)
        .unwrap()
        .replace("bob@corp2.example SIP", "bob@elsewhere.example SIP")
        .into_bytes();
    w.send(a("192.0.2.50:5060"), a(MPR), req);
    w.run_for(Duration::from_millis(500));
    let got: Vec<Vec<u8>> = w
        .take_inbox(a("192.0.2.50:5060"))
        .into_iter()
        .map(|d| d.payload)
        .collect();
    assert_eq!(got.len(), 1);
    assert_eq!(
        Message::parse(&got[0]).unwrap().status(),
        Some(404),
        "not an open relay"
    );
}

mod hostile {
    //! Hostile datagrams straight into both proxies: never a panic, and a
    //! mangled message is counted, not forwarded blindly.

    use super::*;
    use pinhole_core::alg::{ClientSignaling, MprSignaling};
    use pinhole_core::types::Receive;
    use proptest::prelude::*;

    fn engines() -> (Mpr, mpr::Engine, Aps, client::Engine) {
        #[allow(clippy::disallowed_methods)]
        let now = Instant::now();
        let mut mc = mpr::Config::new(ip("203.0.113.10"), [1; 32]);
        let mut n = mpr::NetworkConfig::new("corp2", b"s".to_vec());
        n.domains.push("corp2.example".into());
        mc.networks.push(n);
        let mpr = mpr::Engine::new(mc, now).unwrap();
        let cc = client::Config::new(
            "corp2",
            b"s".to_vec(),
            Protocol::Sip,
            a(APS2),
            a(MPR),
            [2; 32],
        );
        let cl = client::Engine::new(cc, now).unwrap();
        let mut pc = ApsConfig::new(
            a(APS2),
            ip("10.2.0.2"),
            PortRange::new(20_000, 20_099).unwrap(),
            [3; 32],
        );
        pc.inside_default = Some(a(PHONE_B));
        (
            Mpr::new(MprConfig::new(a(MPR), [5; 32])),
            mpr,
            Aps::new(pc),
            cl,
        )
    }

    fn feed(bytes: &[u8]) {
        #[allow(clippy::disallowed_methods)]
        let now = Instant::now();
        let (mut mp, mut me, mut ap, mut ce) = engines();
        for (local, remote) in [
            (a(MPR), a("192.0.2.9:5060")),
            (a(MPR), a("198.51.100.2:5060")),
        ] {
            mp.handle_datagram(
                now,
                &mut LiveMpr::new(&mut me, &mut NoSockets),
                Receive {
                    local,
                    remote,
                    bytes,
                    flow: Default::default(),
                },
            );
            while mp.poll_transmit().is_some() {}
        }
        for remote in [a(MPR), a(PHONE_B)] {
            ap.handle_datagram(
                now,
                &mut LiveClient::new(&mut ce, &mut NoSockets),
                Receive {
                    local: a(APS2),
                    remote,
                    bytes,
                    flow: Default::default(),
                },
            );
            while ap.poll_transmit().is_some() {}
        }
        mp.handle_timeout(
            now + Duration::from_secs(3600),
            &mut LiveMpr::new(&mut me, &mut NoSockets),
        );
        ap.handle_timeout(
            now + Duration::from_secs(3600),
            &mut LiveClient::new(&mut ce, &mut NoSockets),
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            feed(&bytes);
        }

        #[test]
        fn mangled_invites_never_panic(
            cut in 0usize..700,
            flips in proptest::collection::vec((0usize..700, any::<u8>()), 0..8),
        ) {
            let mut m = invite(&sdp(a(MEDIA_A)));
            for (at, b) in flips {
                if let Some(x) = m.get_mut(at) {
                    *x = b;
                }
            }
            m.truncate(cut.max(1).min(m.len()));
            feed(&m);
        }
    }

    #[test]
    fn a_response_not_sent_through_the_mpr_is_dropped_and_counted() {
        #[allow(clippy::disallowed_methods)]
        let now = Instant::now();
        let (mut mp, mut me, ..) = engines();
        let resp = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx\r\n\
            From: <sip:a@x>;tag=1\r\nTo: <sip:b@y>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\
            Content-Length: 0\r\n\r\n";
        mp.handle_datagram(
            now,
            &mut LiveMpr::new(&mut me, &mut NoSockets),
            Receive {
                local: a(MPR),
                remote: a("192.0.2.9:5060"),
                bytes: resp,
                flow: Default::default(),
            },
        );
        assert!(mp.poll_transmit().is_none());
        assert_eq!(mp.stats().not_ours, 1);
        mp.handle_datagram(
            now,
            &mut LiveMpr::new(&mut me, &mut NoSockets),
            Receive {
                local: a(MPR),
                remote: a("192.0.2.9:5060"),
                bytes: b"garbage\r\n\r\n",
                flow: Default::default(),
            },
        );
        assert_eq!(mp.stats().malformed, 1);
    }
}

#[test]
fn retransmissions_get_the_same_relay_ports_and_bytes() {
    let mut f = fig11();
    let w = &mut f.w;
    let inv = invite(&sdp(a(MEDIA_A)));
    w.send(a(PHONE_A), a(APS1), inv.clone());
    w.run_for(Duration::from_millis(300));
    // A's retransmission (Timer A) after the first copy went through.
    w.send(a(PHONE_A), a(APS1), inv);
    w.run_for(Duration::from_secs(1));
    let got = take_sip(w, PHONE_B);
    assert_eq!(got.len(), 2, "both copies reach B");
    assert_eq!(
        got[0], got[1],
        "the retransmission is rewritten identically"
    );
    let ok = respond(&got[0], 200, "OK", Some(&sdp(a(MEDIA_B))));
    w.send(a(PHONE_B), a(APS2), ok.clone());
    w.run_for(Duration::from_millis(300));
    w.send(a(PHONE_B), a(APS2), ok);
    w.run_for(Duration::from_secs(1));
    let got = take_sip(w, PHONE_A);
    assert_eq!(got.len(), 2, "both 200s reach A");
    assert_eq!(
        got[0], got[1],
        "the 200's retransmission maps to the same ports"
    );
    // One call, one leg per party: nothing was allocated twice.
    assert_eq!(w.mpr().stats().legs_open, 2);
}

#[test]
fn a_call_that_never_starts_expires_and_frees_its_legs() {
    let mut f = fig11();
    let w = &mut f.w;
    w.send(a(PHONE_A), a(APS1), invite(&sdp(a(MEDIA_A))));
    w.run_for(Duration::from_secs(1));
    assert_eq!(take_sip(w, PHONE_B).len(), 1);
    assert!(w.mpr().stats().legs_open >= 1);
    // B never answers and no media ever flows.
    w.run_for(Duration::from_secs(240));
    assert_eq!(w.mpr().stats().legs_open, 0, "the legs expired");
    let expired = |c: pinhole_core::alg::Counters| {
        c.iter()
            .find(|(n, _)| *n == "expired")
            .map_or(0, |(_, v)| *v)
    };
    assert_eq!(
        expired(w.mpr_alg(Protocol::Sip).unwrap().counters()),
        1,
        "the MPR forgot the dialog"
    );
}

mod flood;
mod mpr_calls;
mod refusal;
