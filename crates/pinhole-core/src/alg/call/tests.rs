//! The call model against the real MPR engine.

use super::*;
use crate::alg::live::{LiveMpr, Relay};
use crate::mpr::{Config, Engine, NetworkConfig};
use crate::relay::RelayCommand;

struct Accept;

impl Relay for Accept {
    fn apply(&mut self, _: RelayCommand) -> std::io::Result<()> {
        Ok(())
    }
    fn bind(&mut self, _: SocketAddr) -> std::io::Result<()> {
        Ok(())
    }
}

fn engine(now: Instant) -> Engine {
    let mut cfg = Config::new("203.0.113.10".parse().unwrap(), [9; 32]);
    cfg.networks
        .push(NetworkConfig::new("corp1", b"secret".to_vec()));
    Engine::new(cfg, now).unwrap()
}

fn ep(s: &str) -> [MediaEndpoint; 1] {
    [MediaEndpoint::rtp(0, s.parse().unwrap())]
}

#[test]
fn offer_then_modify_and_a_reoffer_after_the_engine_forgot() {
    let now = crate::test_instant();
    let mut mpr = engine(now);
    let mut out = Outbox::new();
    let mut call = MediaCall::new(CallKey::new("c"));
    let (p, q) = (Place::Public, Place::Public);
    let mut relay = Accept;
    let mut ctx = LiveMpr::new(&mut mpr, &mut relay);
    let first = call
        .plan(
            now,
            &mut ctx,
            &mut out,
            IntentKind::Offer,
            Side::A,
            &p,
            &q,
            &ep("192.0.2.1:4000"),
        )
        .unwrap();
    assert!(first.fresh);
    assert!(call.planned());
    // The same side offers again (a re-INVITE, an MDCX): a modification,
    // which keeps its relay address.
    let again = call
        .plan(
            now,
            &mut ctx,
            &mut out,
            IntentKind::Offer,
            Side::A,
            &p,
            &q,
            &ep("192.0.2.1:4000"),
        )
        .unwrap();
    assert!(!again.fresh);
    assert_eq!(again.plan, first.plan);
    assert_eq!(
        out.pop_event(),
        Some(AlgEvent::CallAnchored {
            call: CallKey::new("c")
        })
    );
    // The engine forgets the call (as when its media expired).
    let mut gone = MediaCall::new(CallKey::new("c"));
    gone.planned = true;
    assert!(gone.teardown(now, &mut ctx, &mut out));
    let re = call
        .plan(
            now,
            &mut ctx,
            &mut out,
            IntentKind::Modify,
            Side::A,
            &p,
            &q,
            &ep("192.0.2.1:4000"),
        )
        .unwrap();
    assert!(re.fresh, "offered again");
    assert_eq!(re.plan.endpoints.len(), 1);
    assert!(call.teardown(now, &mut ctx, &mut out));
    assert!(
        !call.teardown(now, &mut ctx, &mut out),
        "nothing left to end"
    );
    assert_eq!(mpr.stats().legs_open, 0);
}

#[test]
fn an_answer_for_an_unknown_call_is_refused_with_an_event() {
    let now = crate::test_instant();
    let mut mpr = engine(now);
    let mut out = Outbox::new();
    let mut call = MediaCall::new(CallKey::new("x"));
    let mut relay = Accept;
    let mut ctx = LiveMpr::new(&mut mpr, &mut relay);
    let r = call.plan(
        now,
        &mut ctx,
        &mut out,
        IntentKind::Answer,
        Side::B,
        &Place::Public,
        &Place::Public,
        &ep("192.0.2.1:4000"),
    );
    assert_eq!(r, Err(IntentError::UnknownCall));
    assert!(matches!(
        out.pop_event(),
        Some(AlgEvent::PlanRefused { .. })
    ));
    assert!(!call.planned());
}

#[test]
fn sides_and_places() {
    let mut s: Sides<Place> = Sides::new();
    assert_eq!(s.free_side(), Some(Side::A));
    s.set(Side::A, Place::Network("corp1".into()));
    assert_eq!(s.free_side(), Some(Side::B));
    s.set(Side::B, Place::Public);
    assert_eq!(s.free_side(), None);
    assert_eq!(s.find(|p| *p == Place::Public), Some(Side::B));
    assert_eq!(s.get(Side::A).unwrap().network(), Some("corp1"));
    let phone = Place::Phone {
        network: "corp2".into(),
        at: "198.51.100.7:5060".parse().unwrap(),
    };
    assert_eq!(phone.origin(), Origin::Network("corp2"));
    assert_eq!(s.take(Side::A), Some(Place::Network("corp1".into())));
    assert_eq!(s.iter().count(), 1);
}
