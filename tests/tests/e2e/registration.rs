//! Fig. 6: registration of the signaling pinhole through the firewall.

use std::time::Duration;

use pinhole_core::client::{Event as ClientEvent, Failure};
use pinhole_core::mpr::Event as MprEvent;
use pinhole_core::wire::{ErrorCode, Protocol};
use pinhole_testkit::FirewallConfig;

use crate::common::*;

/// The MPR sends one signaling datagram into corp1's route; true if the
/// APS's signaling socket received it.
fn signal_into_corp1(b: &mut Bed, tag: u32) -> bool {
    let route = b.w.mpr().route("corp1", Protocol::Sip).expect("route");
    let payload =
        format!("OPTIONS sip:aps@corp1.example SIP/2.0\r\nX-Seq: {tag}\r\n\r\n").into_bytes();
    b.w.send(route.local, route.pinhole, payload.clone());
    b.w.run_for(Duration::from_millis(100));
    b.w.take_inbox(addr(APS1_SIG))
        .iter()
        .any(|d| d.payload == payload)
}

#[test]
fn registration_holds_the_pinhole_for_hours_when_refresh_is_shorter_than_the_firewall_timeout() {
    let mut b = Bed::new().registered();
    let pinhole = b.w.mpr().route("corp1", Protocol::Sip).unwrap().pinhole;
    assert_eq!(
        pinhole.ip(),
        ip("198.51.100.1"),
        "the MPR learned the firewall's public address"
    );
    // Three hours, signaling into the pinhole every 7 minutes.
    for i in 0..26 {
        b.w.run_for(Duration::from_secs(7 * 60));
        assert!(
            signal_into_corp1(&mut b, i),
            "signaling reached the APS at {} min",
            (i + 1) * 7
        );
    }
    assert_eq!(
        b.w.mpr().route("corp1", Protocol::Sip).unwrap().pinhole,
        pinhole,
        "the same pinhole all along"
    );
    assert!(
        !b.w.mpr_events()
            .iter()
            .any(|e| matches!(e, MprEvent::RouteMoved { .. }))
    );
    let fw = b.w.net.firewall(b.corp1.firewall).counters().clone();
    assert_eq!(
        fw.dropped_inbound(),
        0,
        "nothing was dropped at the firewall"
    );
    // Idle refreshes every 20 s from each of the two networks: 2 × 3 h / 20 s.
    let refreshes = b.w.mpr().stats().registrations_refreshed;
    assert!((1000..=1090).contains(&refreshes), "{refreshes} refreshes");
    assert!(!b.w.client(b.aps1).alarm());
}

#[test]
fn refresh_longer_than_the_firewall_timeout_fails_visibly() {
    // The operator told the APS the firewall keeps pinholes 120 s; it keeps them 30 s.
    let mut b = Bed::with(Opts {
        aps1: Box::new(|c| c.firewall_idle_timeout = Duration::from_secs(120)),
        ..Opts::default()
    })
    .registered();
    let first = b.w.mpr().route("corp1", Protocol::Sip).unwrap().pinhole;
    b.w.run_for(Duration::from_secs(45));
    let dropped_before =
        b.w.net
            .firewall(b.corp1.firewall)
            .counters()
            .dropped_inbound();
    assert!(
        !signal_into_corp1(&mut b, 1),
        "the firewall closed the pinhole: signaling is lost"
    );
    assert!(
        b.w.net
            .firewall(b.corp1.firewall)
            .counters()
            .dropped_inbound()
            > dropped_before
    );
    // The next refresh (at 80 s) comes from a new pinhole: the MPR says so.
    b.w.run_for(Duration::from_secs(40));
    let moved =
        b.w.mpr_events()
            .iter()
            .any(|e| matches!(e, MprEvent::RouteMoved { from, .. } if *from == first));
    assert!(moved, "RouteMoved raised: {:?}", b.w.mpr_events());
    assert_eq!(b.w.mpr().stats().routes_moved, 1);
}

#[test]
fn registration_survives_30_percent_loss_by_retransmission() {
    let mut b = Bed::with(Opts {
        seed: 99,
        ..Opts::default()
    });
    let (c1, inet) = (b.corp1.zone, b.w.internet);
    b.w.net.set_loss(c1, inet, 0.3);
    b.w.net.set_loss(inet, c1, 0.3);
    b.w.run_for(Duration::from_secs(60));
    assert!(b.w.client(b.aps1).registered_pinhole().is_some());
    let stats = b.w.client(b.aps1).stats();
    assert!(
        stats.retransmissions > 0,
        "loss was recovered by retransmission: {stats:?}"
    );
    // And it stays registered for ten more minutes of lossy refreshes.
    b.w.run_for(Duration::from_secs(600));
    assert!(b.w.mpr().route("corp1", Protocol::Sip).is_some());
}

#[test]
fn wrong_credentials_raise_an_alarm_and_back_off_without_a_route() {
    let mut b = Bed::with(Opts {
        aps1: Box::new(|c| c.credential = b"not-the-secret".to_vec()),
        ..Opts::default()
    });
    b.w.run_for(Duration::from_secs(40));
    assert!(b.w.mpr().route("corp1", Protocol::Sip).is_none());
    let alarms: Vec<(Failure, Duration)> =
        b.w.client_events(b.aps1)
            .iter()
            .filter_map(|e| match e {
                ClientEvent::Alarm { failure, retry_in } => Some((*failure, *retry_in)),
                _ => None,
            })
            .collect();
    assert!(alarms.len() >= 4, "{alarms:?}");
    assert!(
        alarms
            .iter()
            .all(|(f, _)| *f == Failure::Refused(ErrorCode::UNAUTHORIZED))
    );
    let delays: Vec<u64> = alarms.iter().map(|(_, d)| d.as_secs()).collect();
    assert_eq!(&delays[..4], &[1, 2, 4, 8], "exponential backoff");
    assert!(b.w.mpr().stats().auth_failures >= 4);
    assert!(b.w.client(b.aps1).alarm());
}

#[test]
fn mpr_restart_clients_re_register_within_a_refresh_interval() {
    let mut b = Bed::new().registered();
    b.w.run_for(Duration::from_secs(5));
    b.w.restart_mpr([77; 32]);
    assert!(b.w.mpr().route("corp1", Protocol::Sip).is_none());
    // The next refresh (≤ 20 s) meets a stale nonce, retries, and re-creates the route.
    b.w.run_for(Duration::from_secs(21));
    assert!(b.w.mpr().route("corp1", Protocol::Sip).is_some());
    assert!(b.w.mpr().route("corp2", Protocol::Sip).is_some());
    assert!(
        b.w.mpr().stats().stale_nonces >= 2,
        "{:?}",
        b.w.mpr().stats()
    );
    assert!(
        !b.w.client(b.aps1).alarm(),
        "a restart costs a retry, not an alarm"
    );
    assert!(signal_into_corp1(&mut b, 1));
}

#[test]
fn the_ladder_shows_the_fig6_exchange() {
    let b = Bed::new().registered();
    let rungs: Vec<&str> =
        b.w.ladder()
            .iter()
            .filter(|r| r.src.ip() == ip("198.51.100.1") || r.dst.ip() == ip("10.1.0.2"))
            .map(|r| r.what.as_str())
            .collect();
    assert!(rungs.len() >= 4, "{rungs:?}");
    assert!(rungs[0].starts_with("REGISTER request"), "{rungs:?}");
    assert!(rungs[1].starts_with("REGISTER error 401"), "{rungs:?}");
    assert!(rungs[2].starts_with("REGISTER request"));
    assert!(
        rungs[3].starts_with("REGISTER success mapped=198.51.100.1:"),
        "{rungs:?}"
    );
    let _ = FirewallConfig::default();
}
