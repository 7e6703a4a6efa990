//! Calls through the MPR's call model on the simulated network: the
//! events a Fig. 11 call raises, a re-INVITE after the engine forgot the
//! call's media, and a 2xx whose pinhole failed reaching the caller as 503.

use pinhole_core::Side;
use pinhole_core::alg::AlgEvent;
use pinhole_core::intent::{IntentKind, MediaIntent, Origin};
use pinhole_core::types::CallKey;

use super::*;

fn counter(w: &World, name: &str) -> u64 {
    pinhole_core::alg::counter(
        &[(Protocol::Sip, w.mpr_alg(Protocol::Sip).unwrap().counters())],
        Protocol::Sip,
        name,
    )
}

#[test]
fn a_fig11_call_raises_anchored_planned_and_ended_at_the_mpr() {
    let mut f = fig11();
    let w = &mut f.w;
    let (_, ok) = established(w);
    w.send(a(PHONE_A), a(APS1), in_dialog(&ok, "BYE", 2));
    w.run_for(Duration::from_millis(500));
    let bye = take_sip(w, PHONE_B).remove(0);
    w.send(a(PHONE_B), a(APS2), respond(&bye, 200, "OK", None));
    w.run_for(Duration::from_secs(1));
    assert_eq!(w.mpr().stats().legs_open, 0);

    let events = w.mpr_alg_events(Protocol::Sip);
    let Some(AlgEvent::CallAnchored { call }) = events.first() else {
        panic!("the call is anchored first: {events:?}")
    };
    assert!(
        call.as_bytes().starts_with(b"fig11-call@10.1.0.10~"),
        "keyed Call-ID~token: {call:?}"
    );
    let call = call.clone();
    assert_eq!(
        events,
        [
            AlgEvent::CallAnchored { call: call.clone() },
            // A's offer, then B's answer.
            AlgEvent::MediaPlanned {
                call: call.clone(),
                streams: 1
            },
            AlgEvent::MediaPlanned {
                call: call.clone(),
                streams: 1
            },
            AlgEvent::CallEnded { call },
        ]
    );
}

/// A re-INVITE from A with SDP, routed like `in_dialog`'s requests.
fn reinvite(ok: &[u8], cseq: u32, body: &str) -> Vec<u8> {
    dialog_request(ok, "INVITE", cseq)
        .contact(&format!("sip:alice@{PHONE_A}"))
        .sdp(body)
        .build()
}

#[test]
fn a_reinvite_after_the_engine_forgot_the_call_is_offered_again() {
    let mut f = fig11();
    let w = &mut f.w;
    let (inv_b, ok) = established(w);
    assert_eq!(w.mpr().stats().legs_open, 2);
    // The engine's key of the call: Call-ID~token, the token as the MPR's
    // Record-Route carries it.
    let text = String::from_utf8(inv_b).unwrap();
    let token = text
        .split(";ph=")
        .nth(1)
        .and_then(|t| t.split('>').next())
        .unwrap();
    let call = CallKey::new(format!("fig11-call@10.1.0.10~{token}"));
    // The engine forgets the call's media, as when its legs expire; the
    // dialog itself lives on at the proxies.
    let now = w.now();
    let forget = MediaIntent {
        kind: IntentKind::Teardown,
        from: Side::A,
        origin: Origin::Public,
        toward: Origin::Public,
        endpoints: &[],
        stranger: None,
    };
    w.mpr().handle_intent(now, &call, &forget).unwrap();
    w.run_for(Duration::from_millis(100));
    assert_eq!(w.mpr().stats().legs_open, 0, "the engine forgot the call");
    assert_eq!(counter(w, "dialogs"), 1);
    let seen = w.mpr_alg_events(Protocol::Sip).len();

    w.send(a(PHONE_A), a(APS1), reinvite(&ok, 3, &sdp(a(MEDIA_A))));
    w.run_for(Duration::from_secs(1));
    assert!(take_sip(w, PHONE_A).is_empty(), "no 503 for A");
    let got = take_sip(w, PHONE_B);
    assert_eq!(got.len(), 1, "the re-INVITE reaches B");
    let m = Message::parse(&got[0]).unwrap();
    assert_eq!(m.method(), Some("INVITE"));
    assert_eq!(m.cseq(), Some((3, "INVITE")));
    assert_eq!(
        sip::media_of(&got[0]).unwrap().ip(),
        ip("10.2.0.2"),
        "APS2's port B"
    );
    assert!(w.mpr().stats().legs_open >= 1, "new relay legs");
    assert_eq!(counter(w, "plan_errors"), 0);
    assert_eq!(counter(w, "replied"), 0);
    let events = w.mpr_alg_events(Protocol::Sip).split_off(seen);
    assert!(
        matches!(events.first(), Some(AlgEvent::CallAnchored { .. })),
        "anchored anew: {events:?}"
    );
}

#[test]
fn a_2xx_whose_pinhole_failed_reaches_the_caller_as_503_and_frees_the_legs() {
    let mut f = fig11();
    let w = &mut f.w;
    w.send(a(PHONE_A), a(APS1), invite(&sdp(a(MEDIA_A))));
    w.run_for(Duration::from_secs(1));
    let inv_b = take_sip(w, PHONE_B).remove(0);
    assert!(w.mpr().stats().legs_open >= 1);
    // Corp2 is cut off while APS2's CMPH for B's answer is retransmitted
    // (RFC 8489: the last of seven leaves at 31.5 s, failure at 39.5 s).
    let corp2 = w.net.zone_of(ip("10.2.0.2")).unwrap();
    let internet = w.internet;
    w.net.block_for(corp2, internet, Duration::from_secs(33));
    w.send(
        a(PHONE_B),
        a(APS2),
        respond(&inv_b, 200, "OK", Some(&sdp(a(MEDIA_B)))),
    );
    w.run_for(Duration::from_secs(45));

    let at_a = take_sip(w, PHONE_A);
    let codes: Vec<Option<u16>> = at_a
        .iter()
        .map(|m| Message::parse(m).unwrap().status())
        .collect();
    assert_eq!(codes, [Some(503)], "the 200 never leaves; A gets a 503");
    assert!(!contains(&at_a[0], b"10.2.0.10"), "no inside address leaks");
    let at_b = take_sip(w, PHONE_B);
    let methods: Vec<Option<String>> = at_b
        .iter()
        .map(|m| Message::parse(m).unwrap().method().map(str::to_owned))
        .collect();
    assert_eq!(
        methods,
        [Some("ACK".to_owned()), Some("BYE".to_owned())],
        "the APS ends B's dialog"
    );
    assert_eq!(w.mpr().stats().legs_open, 0, "the 503 freed the relay legs");
    assert_eq!(counter(w, "teardowns"), 1);
}
