//! The caps and timers of calls that strangers offer (issue 18, item 2).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::super::tests::T;
use super::super::{Cap, Event, IntentError, Limits};
use crate::intent::{IntentKind, MediaEndpoint, MediaIntent, Origin};
use crate::ports::PortRange;
use crate::relay::RelayReport;
use crate::types::{CallKey, Side};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn bed(limits: Limits, last_port: u16) -> T {
    let mut t = T::with(|c| {
        c.ports = PortRange {
            first: 30_000,
            last: last_port,
        };
        c.limits = limits;
    });
    t.register();
    t
}

const AUDIO: &[MediaEndpoint] = &[MediaEndpoint {
    index: 0,
    addr: SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7)), 4000),
    rtcp: crate::wire::RtcpMode::Pair,
    rtcp_addr: None,
}];

/// A one-stream offer from the public side toward corp1.
fn offer_from(t: &mut T, call: &str, stranger: Option<IpAddr>) -> Result<(), IntentError> {
    let intent = MediaIntent {
        kind: IntentKind::Offer,
        from: Side::A,
        origin: Origin::Public,
        toward: Origin::Network("corp1"),
        endpoints: AUDIO,
        stranger,
    };
    t.mpr
        .handle_intent(t.now, &CallKey::from(call), &intent)
        .map(|_| ())
}

fn answer(t: &mut T, call: &str) {
    let eps = [MediaEndpoint::rtp(0, "10.1.0.5:7000".parse().unwrap())];
    let intent = MediaIntent {
        kind: IntentKind::Answer,
        from: Side::B,
        origin: Origin::Network("corp1"),
        toward: Origin::Public,
        endpoints: &eps,
        stranger: None,
    };
    t.mpr
        .handle_intent(t.now, &CallKey::from(call), &intent)
        .unwrap();
}

fn limits(per_source: usize, per_network: usize, total: Option<usize>) -> Limits {
    Limits {
        per_source,
        per_network,
        total,
    }
}

#[test]
fn one_stranger_holds_at_most_its_cap_and_an_answer_frees_its_share() {
    let mut t = bed(limits(4, 1_000, Some(1_000)), 30_099);
    let x = ip("192.0.2.66");
    offer_from(&mut t, "x1", Some(x)).unwrap();
    offer_from(&mut t, "x2", Some(x)).unwrap();
    assert_eq!(t.mpr.stats().unanswered_legs, 4);
    assert_eq!(
        offer_from(&mut t, "x3", Some(x)),
        Err(IntentError::Unanswered(Cap::Source))
    );
    assert_eq!(t.mpr.stats().unanswered_refused, 1);
    assert_eq!(t.mpr.stats().calls_open, 2, "the refused call left nothing");
    assert_eq!(t.mpr.stats().legs_open, 4);
    // A retransmitted offer of a call it holds needs no new legs.
    offer_from(&mut t, "x2", Some(x)).unwrap();
    // Another stranger is not held back by the first one.
    offer_from(&mut t, "y1", Some(ip("192.0.2.67"))).unwrap();
    // A trusted peer (the soft-switch: no stranger) is not counted.
    offer_from(&mut t, "s1", None).unwrap();
    assert_eq!(t.mpr.stats().unanswered_legs, 6);
    // The answer releases x1 from the caps; its legs stay for the call.
    answer(&mut t, "x1");
    assert_eq!(t.mpr.stats().unanswered_legs, 4);
    offer_from(&mut t, "x3", Some(x)).unwrap();
    assert_eq!(t.mpr.stats().legs_open, 10);
}

#[test]
fn strangers_together_may_not_fill_one_network() {
    let mut t = bed(limits(100, 4, Some(1_000)), 30_099);
    offer_from(&mut t, "a", Some(ip("192.0.2.1"))).unwrap();
    offer_from(&mut t, "b", Some(ip("192.0.2.2"))).unwrap();
    assert_eq!(
        offer_from(&mut t, "c", Some(ip("192.0.2.3"))),
        Err(IntentError::Unanswered(Cap::Network))
    );
    // A teardown gives the network's share back.
    let bye = MediaIntent {
        kind: IntentKind::Teardown,
        from: Side::A,
        origin: Origin::Public,
        toward: Origin::Network("corp1"),
        endpoints: &[],
        stranger: None,
    };
    t.mpr
        .handle_intent(t.now, &CallKey::from("a"), &bye)
        .unwrap();
    assert_eq!(t.mpr.stats().unanswered_legs, 2);
    offer_from(&mut t, "c", Some(ip("192.0.2.3"))).unwrap();
}

#[test]
fn by_default_strangers_leave_half_the_relay_ports_to_the_networks_own_calls() {
    // 20 port pairs: unanswered calls of strangers may hold 10 legs.
    let mut t = bed(Limits::default(), 30_039);
    let mut held = 0;
    for i in 0..40u8 {
        let from = Some(IpAddr::from([192, 0, 2, i + 1]));
        match offer_from(&mut t, &format!("flood{i}"), from) {
            Ok(()) => held += 1,
            Err(e) => assert_eq!(e, IntentError::Unanswered(Cap::Total)),
        }
    }
    assert_eq!(held, 5, "5 one-stream calls of 2 legs");
    assert_eq!(t.mpr.stats().unanswered_legs, 10);
    // The network's own outgoing calls still get legs: 10 pairs are left.
    for i in 0..5 {
        let intent = MediaIntent {
            kind: IntentKind::Offer,
            from: Side::A,
            origin: Origin::Network("corp1"),
            toward: Origin::Public,
            endpoints: AUDIO,
            stranger: None,
        };
        t.mpr
            .handle_intent(t.now, &CallKey::from(format!("own{i}").as_str()), &intent)
            .unwrap();
    }
    assert_eq!(t.mpr.stats().legs_open, 20);
}

#[test]
fn an_unanswered_call_goes_after_the_short_timer_and_its_media_does_not_keep_it() {
    let mut t = bed(Limits::default(), 30_099);
    offer_from(&mut t, "x", Some(ip("192.0.2.66"))).unwrap();
    let [Some(leg), _] = t.mpr.call_legs(&CallKey::from("x"), 0).unwrap() else {
        panic!("no caller leg");
    };
    let start = t.now;
    // The stranger sends media to keep the call: it does not.
    t.now = start + Duration::from_secs(30);
    t.mpr
        .handle_relay(t.now, RelayReport::Activity { leg, at: t.now });
    t.mpr.handle_timeout(start + Duration::from_secs(31));
    assert_eq!(t.mpr.stats().calls_open, 1);
    t.mpr.handle_timeout(start + Duration::from_secs(33));
    let s = t.mpr.stats();
    assert_eq!((s.calls_open, s.legs_open, s.unanswered_legs), (0, 0, 0));
    assert_eq!(s.unanswered_expired, 1);
    assert!(
        t.events()
            .iter()
            .any(|e| matches!(e, Event::CallExpired { .. }))
    );
}

#[test]
fn a_ringing_call_may_wait_for_its_answer_as_long_as_any_call() {
    let mut t = bed(Limits::default(), 30_099);
    offer_from(&mut t, "x", Some(ip("192.0.2.66"))).unwrap();
    let start = t.now;
    // 180 Ringing at 20 s and again at 70 s (RFC 3261 §13.3.1.1: every minute).
    t.mpr
        .handle_progress(start + Duration::from_secs(20), &CallKey::from("x"));
    t.mpr.handle_timeout(start + Duration::from_secs(40));
    assert_eq!(t.mpr.stats().calls_open, 1, "past the short timer");
    t.mpr
        .handle_progress(start + Duration::from_secs(70), &CallKey::from("x"));
    t.mpr.handle_timeout(start + Duration::from_secs(125));
    assert_eq!(t.mpr.stats().calls_open, 1);
    t.now = start + Duration::from_secs(125);
    answer(&mut t, "x");
    assert_eq!(t.mpr.stats().unanswered_legs, 0);
    // Answered, the call is governed by inactivity alone.
    t.mpr.handle_timeout(start + Duration::from_secs(180));
    assert_eq!(t.mpr.stats().calls_open, 1);
    t.mpr.handle_timeout(start + Duration::from_secs(186));
    assert_eq!(t.mpr.stats().calls_open, 0);
    assert_eq!(t.mpr.stats().unanswered_expired, 0);
}

#[test]
fn an_ipv6_stranger_is_counted_by_its_64_prefix() {
    let mut t = bed(limits(4, 1_000, Some(1_000)), 30_099);
    offer_from(&mut t, "a", Some(ip("2001:db8:1:2::10"))).unwrap();
    offer_from(&mut t, "b", Some(ip("2001:db8:1:2:ffff::99"))).unwrap();
    assert_eq!(
        offer_from(&mut t, "c", Some(ip("2001:db8:1:2:abcd::1"))),
        Err(IntentError::Unanswered(Cap::Source)),
        "a third address of the same /64"
    );
    offer_from(&mut t, "d", Some(ip("2001:db8:1:3::10"))).unwrap();
}
