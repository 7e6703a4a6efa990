//! Replayed and forged CMPH, and port exhaustion.

use std::time::Duration;

use pinhole_core::client::{Event as ClientEvent, Failure, PinholeRequest};
use pinhole_core::ports::PortRange;
use pinhole_core::relay::Remote;
use pinhole_core::wire::{
    self, Builder, Class, ErrorCode, Message, Method, RtcpMode, TransactionId,
};

use crate::common::*;

#[test]
fn replayed_and_forged_cmph_never_move_a_pinhole() {
    let mut b = Bed::new().registered();
    let port_t = addr("10.2.0.10:9300");
    let call = b.call_into_t2("r", port_t, RtcpMode::Mux);
    let (l, c) = (call.inside_leg, call.pinhole.unwrap());
    // The eavesdropper's copy of the bind request.
    let bind =
        b.w.captured()
            .iter()
            .find(|d| {
                d.dst == l
                    && Message::decode(&d.payload)
                        .is_ok_and(|m| m.method() == Method::Cmph && m.class() == Class::Request)
            })
            .expect("captured bind")
            .payload
            .clone();
    let x = addr("192.0.2.66:5555");
    b.w.send(x, l, bind);
    // A forged bind: right network, wrong key.
    let mut buf = [0u8; 256];
    let mut m = Builder::new(
        &mut buf,
        Method::Cmph,
        Class::Request,
        TransactionId([9; 12]),
    )
    .unwrap();
    m.username("corp2").unwrap();
    m.nonce(b"00000000000000000000000000000000").unwrap();
    let n = m.finish(Some(b"guessed")).unwrap();
    b.w.send(x, l, buf[..n].to_vec());
    b.w.run_for(Duration::from_millis(100));
    let stats = b.w.mpr().stats();
    assert_eq!(stats.replays, 1);
    assert_eq!(stats.auth_failures, 1);
    let leg = b.w.mpr().leg_by_port(l.port()).unwrap();
    assert_eq!(
        b.w.mpr().leg(leg).unwrap().remote_rtp,
        Remote::Fixed(c),
        "the pinhole did not move"
    );
    // The replay got no answer; the forgery only a 401 without integrity.
    let answers = b.w.take_inbox(x);
    assert_eq!(answers.len(), 1);
    let e = Message::decode(&answers[0].payload).unwrap();
    assert_eq!(e.error_code().unwrap().0, ErrorCode::UNAUTHORIZED);
    // Media from P still reaches T, and nothing reaches the attacker.
    let (at_t, _) = b.talk((addr(P_MEDIA), call.public_leg), (port_t, l), 10);
    assert_media(&at_t, b'a', 10);
    assert!(b.w.take_inbox(x).is_empty());
    // Media injected by the attacker at either relay port is dropped.
    b.w.send(x, l, rtp(b'x', 0));
    b.w.send(x, call.public_leg, rtp(b'x', 1));
    b.w.run_for(Duration::from_millis(100));
    assert!(b.w.take_inbox(port_t).is_empty());
    assert!(b.w.relay_counters().dropped_source >= 2);
    assert!(!wire::is_control(&rtp(0, 0)));
}

#[test]
fn port_exhaustion_fails_the_pinhole_with_508() {
    let mut b = Bed::with(Opts {
        mpr: Box::new(|c| {
            c.ports = PortRange {
                first: 30_000,
                last: 30_003,
            }
        }),
        ..Opts::default()
    })
    .registered();
    for i in 0..2u16 {
        let (_, c) = b.open(
            b.aps1,
            PinholeRequest {
                local: addr(&format!("10.1.0.2:{}", 41000 + 2 * i)),
                relay: None,
                rtcp: RtcpMode::Pair,
                key: vec![i as u8 + 1],
                inside: None,
            },
        );
        assert!(c.is_some());
    }
    let now = b.w.now();
    let id =
        b.w.client(b.aps1)
            .open_pinhole(
                now,
                PinholeRequest {
                    local: addr("10.1.0.2:41010"),
                    relay: None,
                    rtcp: RtcpMode::Pair,
                    key: vec![9],
                    inside: None,
                },
            )
            .unwrap();
    b.w.run_for(Duration::from_secs(1));
    let failed = b.w.client_events(b.aps1).iter().any(|e| matches!(e, ClientEvent::PinholeFailed { id: i, failure: Failure::Refused(ErrorCode::INSUFFICIENT_CAPACITY) } if *i == id));
    assert!(failed, "{:?}", b.w.client_events(b.aps1));
    assert_eq!(b.w.mpr().stats().ports_exhausted, 1);
}
