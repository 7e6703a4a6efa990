//! INVITE floods from strangers on the internet (issue 18, item 2): what
//! unanswered calls from unauthenticated public senders may hold, the
//! answers past the caps, the short timer, and the networks' own calls
//! going through the flood with media both ways.

use super::*;

/// A public stranger's INVITE to bob in corp2, numbered `n`.
fn stranger_invite(host: &str, n: u32) -> Vec<u8> {
    let media = SocketAddr::new(ip(host), 7000);
    Request::new("INVITE", "sip:bob@corp2.example")
        .via(format!("{host}:5060"), &format!("z9hG4bK-s{n}"))
        .max_forwards(70)
        .from(&format!("<sip:x@{host}>;tag=s{n}"))
        .to("<sip:bob@corp2.example>")
        .call_id(&format!("flood-{n}@{host}"))
        .cseq(1)
        .contact(&format!("sip:x@{host}:5060"))
        .sdp(&sdp(media))
        .build()
}

/// Stranger `i` (192.0.2.i) on the internet.
fn stranger(w: &mut World, i: u8) -> String {
    let host = format!("192.0.2.{i}");
    w.add_host(w.internet, ip(&host), &format!("S{i}"));
    host
}

/// Status codes the stranger got back.
fn codes(w: &mut World, host: &str) -> Vec<u16> {
    take_sip(w, &format!("{host}:5060"))
        .iter()
        .filter_map(|r| Message::parse(r).ok()?.status())
        .collect()
}

/// The engine's refusals and the legs unanswered calls hold.
fn unanswered(w: &mut World) -> (u64, u64, u64) {
    let s = w.mpr().stats();
    (
        s.unanswered_refused,
        s.unanswered_legs,
        s.unanswered_expired,
    )
}

fn small_relay(c: &mut mpr::Config) {
    // 32 port pairs, as in the attack run (64 ports).
    c.ports = PortRange::new(30_000, 30_063).unwrap();
}

#[test]
fn an_invite_flood_leaves_the_networks_own_calls_their_ports() {
    let mut f = fig11_tuned(client::CmphMode::Request, small_relay);
    let w = &mut f.w;
    let hosts: Vec<String> = (1..=40).map(|i| stranger(w, i)).collect();
    for (n, h) in hosts.iter().enumerate() {
        w.send(
            a(&format!("{h}:5060")),
            a(MPR),
            stranger_invite(h, n as u32),
        );
    }
    w.run_for(Duration::from_secs(1));
    let forwarded = take_sip(w, PHONE_B).len();
    let refused = hosts
        .iter()
        .map(|h| codes(w, h))
        .filter(|c| c == &[503])
        .count();
    // By default unanswered calls from strangers hold at most half the
    // relay's 32 pairs: 16 legs, 8 one-stream calls.
    assert_eq!((forwarded, refused), (8, 32));
    assert_eq!(unanswered(w), (32, 16, 0));

    // The network's own call goes through the flood, media both ways.
    let (inv_b, ok) = established(w);
    assert_eq!(Message::parse(&ok).unwrap().status(), Some(200));
    media_both_ways(
        w,
        sip::media_of(&ok).unwrap(),
        sip::media_of(&inv_b).unwrap(),
    );

    // Nobody answered the strangers: their legs go after 32 s, the
    // network's call stays.
    let legs = w.mpr().stats().legs_open;
    w.run_for(Duration::from_secs(33));
    assert_eq!(unanswered(w), (32, 0, 8));
    assert_eq!(w.mpr().stats().legs_open, legs - 16);
}

#[test]
fn past_its_cap_a_stranger_gets_503_and_a_ringing_call_outlives_the_short_timer() {
    let mut f = fig11_tuned(client::CmphMode::Request, |c| {
        small_relay(c);
        c.limits.per_source = 4;
    });
    let w = &mut f.w;
    let s = stranger(w, 66);
    for n in 0..3 {
        w.send(a(&format!("{s}:5060")), a(MPR), stranger_invite(&s, n));
    }
    w.run_for(Duration::from_secs(1));
    assert_eq!(codes(w, &s), [503], "two calls of 2 legs, then 503");
    let got = take_sip(w, PHONE_B);
    assert_eq!(got.len(), 2);
    // Bob's phone rings for the first: it may ring on (Timer C).
    w.send(a(PHONE_B), a(APS2), respond(&got[0], 180, "Ringing", None));
    w.run_for(Duration::from_secs(40));
    assert_eq!(codes(w, &s), [180]);
    assert_eq!(
        unanswered(w),
        (1, 2, 1),
        "the silent call went, the ringing one stays"
    );
    // Another stranger is not held back by the first one's cap.
    let t = stranger(w, 67);
    w.send(a(&format!("{t}:5060")), a(MPR), stranger_invite(&t, 9));
    w.run_for(Duration::from_secs(1));
    assert_eq!(take_sip(w, PHONE_B).len(), 1);
    assert!(codes(w, &t).is_empty());
}

#[test]
fn strangers_past_the_networks_cap_get_486() {
    let mut f = fig11_tuned(client::CmphMode::Request, |c| {
        small_relay(c);
        c.limits.per_network = 2;
    });
    let w = &mut f.w;
    let (s, t) = (stranger(w, 1), stranger(w, 2));
    w.send(a(&format!("{s}:5060")), a(MPR), stranger_invite(&s, 1));
    w.run_for(Duration::from_millis(300));
    w.send(a(&format!("{t}:5060")), a(MPR), stranger_invite(&t, 2));
    w.run_for(Duration::from_secs(1));
    assert!(codes(w, &s).is_empty());
    assert_eq!(codes(w, &t), [486], "the called network is busy");
    assert_eq!(take_sip(w, PHONE_B).len(), 1);
}

/// A's INVITE number `n` (a new call each: a phone re-dialling, or many
/// phones calling at once).
fn invite_from_a(n: u32) -> Vec<u8> {
    Request::new("INVITE", "sip:bob@corp2.example")
        .via(PHONE_A, &format!("z9hG4bK-re{n}"))
        .max_forwards(70)
        .from(&format!("<sip:alice@corp1.example>;tag=re{n}"))
        .to("<sip:bob@corp2.example>")
        .call_id(&format!("redial-{n}@10.1.0.10"))
        .cseq(1)
        .contact(&format!("sip:alice@{PHONE_A}"))
        .sdp(&sdp(a(MEDIA_A)))
        .build()
}

#[test]
fn with_the_relay_out_of_ports_the_aps_answers_each_call_once_and_backs_off() {
    // 4 port pairs, all taken (by public calls the MPR relays).
    let mut f = fig11_tuned(client::CmphMode::Request, |c| {
        c.ports = PortRange::new(30_000, 30_007).unwrap();
    });
    let w = &mut f.w;
    let now = w.now();
    assert_eq!(pinhole_testkit::exhaust::take_every_port(w.mpr(), now), 2);
    let cmph = |w: &World| w.rungs_to(a(MPR), "CMPH request");
    let before = cmph(w);
    // 10 calls a second for 20 s from inside corp1.
    let ((), logs) = pinhole_testkit::exhaust::counted(|| {
        for n in 0..200 {
            w.send(a(PHONE_A), a(APS1), invite_from_a(n));
            w.run_for(Duration::from_millis(100));
        }
        w.run_for(Duration::from_secs(1));
    });
    let answers: Vec<u16> = take_sip(w, PHONE_A)
        .iter()
        .filter_map(|r| Message::parse(r).ok()?.status())
        .collect();
    assert_eq!(answers.len(), 200, "one answer per call");
    assert!(answers.iter().all(|c| *c == 503), "{answers:?}");
    assert!(take_sip(w, PHONE_B).is_empty(), "no call left corp1");
    // Reserves reached the MPR at 0, 1, 3, 7 and 15 s (back-off 1-16 s):
    // not one per call, and never a loop.
    let sent = cmph(w) - before;
    assert_eq!(sent, 5, "CMPH reserves sent");
    assert_eq!(w.mpr().stats().ports_exhausted, 5 + 1);
    // Log: a WARN per reserve the MPR refused (the failure, the back-off)
    // and nothing per call held back.
    assert!(logs.warn + logs.error <= 3 * sent as u64, "{logs:?}");
}
