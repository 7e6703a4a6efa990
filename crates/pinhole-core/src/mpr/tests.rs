//! Direct tests of the MPR engine with hand-built control messages.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::*;
use crate::intent::{IntentKind, MediaEndpoint, MediaIntent, Origin};
use crate::wire::{Builder, Class, ErrorCode, Message, Method, TransactionId};

const CRED: &[u8] = b"corp1-secret";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

pub(super) struct T {
    pub(super) now: Instant,
    pub(super) mpr: Engine,
    control: SocketAddr,
    fw1: SocketAddr,
    next_tid: u8,
}

impl T {
    fn new() -> Self {
        Self::with(|_| {})
    }

    pub(super) fn with(f: impl FnOnce(&mut Config)) -> Self {
        let now = crate::test_instant();
        let mut cfg = Config::new("203.0.113.10".parse().unwrap(), [1; 32]);
        cfg.ports = PortRange {
            first: 30_000,
            last: 30_009,
        };
        cfg.networks
            .push(NetworkConfig::new("corp1", CRED.to_vec()));
        cfg.networks
            .push(NetworkConfig::new("corp2", b"corp2-secret".to_vec()));
        f(&mut cfg);
        Self {
            now,
            mpr: Engine::new(cfg, now).unwrap(),
            control: addr("203.0.113.10:5060"),
            fw1: addr("198.51.100.1:40000"),
            next_tid: 0,
        }
    }

    fn tid(&mut self) -> TransactionId {
        self.next_tid += 1;
        TransactionId([self.next_tid; 12])
    }

    fn send(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        bytes: &[u8],
    ) -> (Result<(), InputError>, Vec<Transmit>) {
        let r = self.mpr.handle_datagram(
            self.now,
            Receive {
                local,
                remote,
                bytes,
                flow: Default::default(),
            },
        );
        let mut out = Vec::new();
        while let Some(t) = self.mpr.poll_transmit() {
            out.push(t);
        }
        (r, out)
    }

    /// Registers corp1/SIP from fw1 (challenge, then request with nonce) and returns the nonce to use next.
    pub(super) fn register(&mut self) -> Vec<u8> {
        let tid = self.tid();
        let first = register_msg(tid, "corp1", CRED, None, Some(600));
        let (r, out) = self.send(self.control, self.fw1, &first);
        assert!(matches!(
            r,
            Err(InputError::Refused {
                code: ErrorCode::UNAUTHORIZED,
                ..
            })
        ));
        let resp = Message::decode(&out[0].payload).unwrap();
        assert_eq!(resp.error_code().unwrap().0, ErrorCode::UNAUTHORIZED);
        let nonce = resp.nonce().unwrap().to_vec();
        let tid = self.tid();
        let second = register_msg(tid, "corp1", CRED, Some(&nonce), Some(600));
        let (r, out) = self.send(self.control, self.fw1, &second);
        r.unwrap();
        let resp = Message::decode(&out[0].payload).unwrap();
        assert_eq!(resp.class(), Class::Success);
        resp.verify(CRED).unwrap();
        assert_eq!(resp.xor_mapped_address(), Some(self.fw1));
        resp.nonce().unwrap().to_vec()
    }

    fn drain_commands(&mut self) -> Vec<RelayCommand> {
        let mut v = Vec::new();
        while let Some(c) = self.mpr.poll_command() {
            v.push(c);
        }
        v
    }

    pub(super) fn events(&mut self) -> Vec<Event> {
        let mut v = Vec::new();
        while let Some(e) = self.mpr.poll_event() {
            v.push(e);
        }
        v
    }
}

fn register_msg(
    tid: TransactionId,
    net: &str,
    key: &[u8],
    nonce: Option<&[u8]>,
    lifetime: Option<u32>,
) -> Vec<u8> {
    let mut buf = [0u8; 512];
    let mut b = Builder::new(&mut buf, Method::Register, Class::Request, tid).unwrap();
    b.username(net).unwrap();
    b.protocol(Protocol::Sip).unwrap();
    b.domain("corp1.example").unwrap();
    if let Some(l) = lifetime {
        b.lifetime(l).unwrap();
    }
    if let Some(n) = nonce {
        b.nonce(n).unwrap();
    }
    // As a client pads it (spec §2.3).
    b.pad_to(wire::ANSWERABLE_LEN, true).unwrap();
    let n = b.finish(Some(key)).unwrap();
    buf[..n].to_vec()
}

fn cmph_msg(
    tid: TransactionId,
    class: Class,
    key: &[u8],
    nonce: &[u8],
    leg_key: Option<&[u8]>,
) -> Vec<u8> {
    let mut buf = [0u8; 512];
    let mut b = Builder::new(&mut buf, Method::Cmph, class, tid).unwrap();
    b.username("corp1").unwrap();
    if let Some(k) = leg_key {
        b.leg_key(k).unwrap();
    }
    b.nonce(nonce).unwrap();
    if class == Class::Request {
        b.pad_to(wire::ANSWERABLE_LEN, true).unwrap();
    }
    let n = b.finish(Some(key)).unwrap();
    buf[..n].to_vec()
}

#[test]
fn registration_challenge_then_route_then_refresh_then_expiry() {
    let mut t = T::new();
    t.register();
    let route = t.mpr.route("corp1", Protocol::Sip).unwrap();
    assert_eq!(route.pinhole, t.fw1);
    assert_eq!(route.local, t.control);
    assert_eq!(t.mpr.network_for_domain("CORP1.example"), Some("corp1"));
    assert_eq!(
        t.mpr.network_for_pinhole(Protocol::Sip, t.fw1),
        Some("corp1")
    );
    assert_eq!(t.mpr.stats().challenges, 1);
    assert_eq!(t.mpr.stats().registrations_accepted, 1);
    assert!(matches!(t.events()[..], [Event::Registered { .. }]));
    // The route expires after the granted lifetime.
    t.now += Duration::from_secs(599);
    t.mpr.handle_timeout(t.now);
    assert!(t.mpr.route("corp1", Protocol::Sip).is_some());
    t.now += Duration::from_secs(1);
    t.mpr.handle_timeout(t.now);
    assert!(t.mpr.route("corp1", Protocol::Sip).is_none());
    assert!(matches!(
        t.events()[..],
        [Event::RegistrationExpired { .. }]
    ));
}

#[test]
fn lifetime_is_clamped_and_zero_deregisters() {
    let mut t = T::new();
    let nonce = t.register();
    let tid = t.tid();
    let (_, out) = t.send(
        t.control,
        t.fw1,
        &register_msg(tid, "corp1", CRED, Some(&nonce), Some(5)),
    );
    assert_eq!(
        Message::decode(&out[0].payload).unwrap().lifetime(),
        Some(60)
    );
    let tid = t.tid();
    let (_, out) = t.send(
        t.control,
        t.fw1,
        &register_msg(tid, "corp1", CRED, Some(&nonce), Some(1_000_000)),
    );
    assert_eq!(
        Message::decode(&out[0].payload).unwrap().lifetime(),
        Some(3600)
    );
    let tid = t.tid();
    let (r, out) = t.send(
        t.control,
        t.fw1,
        &register_msg(tid, "corp1", CRED, Some(&nonce), Some(0)),
    );
    r.unwrap();
    assert_eq!(
        Message::decode(&out[0].payload).unwrap().lifetime(),
        Some(0)
    );
    assert!(t.mpr.route("corp1", Protocol::Sip).is_none());
}

#[test]
fn wrong_credential_is_refused_without_a_route() {
    let mut t = T::new();
    let tid = t.tid();
    let (r, out) = t.send(
        t.control,
        t.fw1,
        &register_msg(tid, "corp1", b"guess", None, None),
    );
    assert!(matches!(
        r,
        Err(InputError::Refused {
            code: ErrorCode::UNAUTHORIZED,
            ..
        })
    ));
    let resp = Message::decode(&out[0].payload).unwrap();
    assert_eq!(resp.error_code().unwrap().0, ErrorCode::UNAUTHORIZED);
    // Unknown network: refused too.
    let tid = t.tid();
    let (r, _) = t.send(
        t.control,
        t.fw1,
        &register_msg(tid, "nobody", CRED, None, None),
    );
    assert!(r.is_err());
    assert_eq!(t.mpr.stats().auth_failures, 2);
    assert!(t.mpr.route("corp1", Protocol::Sip).is_none());
}

#[test]
fn retransmission_gets_the_cached_answer_and_a_replay_elsewhere_is_dropped() {
    let mut t = T::new();
    let nonce = t.register();
    let tid = t.tid();
    let msg = register_msg(tid, "corp1", CRED, Some(&nonce), Some(600));
    let (_, first) = t.send(t.control, t.fw1, &msg);
    let (r, again) = t.send(t.control, t.fw1, &msg);
    r.unwrap();
    assert_eq!(first, again, "a retransmission gets the identical response");
    assert_eq!(t.mpr.stats().retransmissions, 1);
    // The same bytes from an attacker's address: dropped, the route stays.
    let attacker = addr("192.0.2.66:5060");
    let (r, out) = t.send(t.control, attacker, &msg);
    assert_eq!(r, Err(InputError::Replayed));
    assert!(out.is_empty());
    assert_eq!(t.mpr.route("corp1", Protocol::Sip).unwrap().pinhole, t.fw1);
    assert_eq!(t.mpr.stats().replays, 1);
}

#[test]
fn stale_nonce_gets_438_with_a_fresh_one() {
    let mut t = T::new();
    let nonce = t.register();
    t.now += Duration::from_secs(601);
    let tid = t.tid();
    let (r, out) = t.send(
        t.control,
        t.fw1,
        &register_msg(tid, "corp1", CRED, Some(&nonce), None),
    );
    assert!(matches!(
        r,
        Err(InputError::Refused {
            code: ErrorCode::STALE_NONCE,
            ..
        })
    ));
    let resp = Message::decode(&out[0].payload).unwrap();
    resp.verify(CRED).unwrap();
    assert_ne!(resp.nonce().unwrap(), &nonce[..]);
}

#[test]
fn cmph_reserve_bind_and_forged_or_replayed_binds() {
    let mut t = T::new();
    let nonce = t.register();
    t.drain_commands();
    let media = addr("198.51.100.1:40002");
    // Reserve at the control address.
    let tid = t.tid();
    let reserve = cmph_msg(tid, Class::Request, CRED, &nonce, Some(b"call-1/0"));
    let (r, out) = t.send(t.control, media, &reserve);
    r.unwrap();
    let resp = Message::decode(&out[0].payload).unwrap();
    let relay = resp.xor_relayed_address().unwrap();
    assert_eq!(
        relay.ip(),
        "203.0.113.10".parse::<std::net::IpAddr>().unwrap()
    );
    assert!(matches!(
        t.drain_commands()[..],
        [RelayCommand::OpenLeg { rtcp: Some(_), .. }]
    ));
    // Reserving the same key again gives the same leg.
    let tid = t.tid();
    let (_, out) = t.send(
        t.control,
        media,
        &cmph_msg(tid, Class::Request, CRED, &nonce, Some(b"call-1/0")),
    );
    assert_eq!(
        Message::decode(&out[0].payload)
            .unwrap()
            .xor_relayed_address(),
        Some(relay)
    );
    // Bind from the media port to the relay port: answered from the relay port.
    let tid = t.tid();
    let bind = cmph_msg(tid, Class::Request, CRED, &nonce, None);
    let (r, out) = t.send(relay, media, &bind);
    r.unwrap();
    assert_eq!(out[0].local, relay);
    assert_eq!(
        Message::decode(&out[0].payload)
            .unwrap()
            .xor_mapped_address(),
        Some(media)
    );
    let leg = t.mpr.leg_by_port(relay.port()).unwrap();
    assert_eq!(t.mpr.leg(leg).unwrap().remote_rtp, Remote::Fixed(media));
    // Replay of the bind from elsewhere: nothing moves.
    let attacker = addr("192.0.2.66:40002");
    let (r, out) = t.send(relay, attacker, &bind);
    assert_eq!(r, Err(InputError::Replayed));
    assert!(out.is_empty());
    // Forged bind (wrong key) from elsewhere: 401, nothing moves.
    let tid = t.tid();
    let (r, _) = t.send(
        relay,
        attacker,
        &cmph_msg(tid, Class::Request, b"forged", &nonce, None),
    );
    assert!(matches!(
        r,
        Err(InputError::Refused {
            code: ErrorCode::UNAUTHORIZED,
            ..
        })
    ));
    // Another network's valid credential cannot bind corp1's leg.
    let mut buf = [0u8; 256];
    let mut b = Builder::new(
        &mut buf,
        Method::Cmph,
        Class::Request,
        TransactionId([99; 12]),
    )
    .unwrap();
    b.username("corp2").unwrap();
    let n = b.finish(Some(b"corp2-secret")).unwrap();
    let (r, _) = t.send(relay, attacker, &buf[..n]);
    assert!(r.is_err());
    assert_eq!(t.mpr.leg(leg).unwrap().remote_rtp, Remote::Fixed(media));
    // A plain STUN Binding to the relay port, padded to its answer's size,
    // is answered and changes nothing.
    let mut buf = [0u8; 64];
    let mut b = Builder::new(
        &mut buf,
        Method::Binding,
        Class::Request,
        TransactionId([7; 12]),
    )
    .unwrap();
    b.pad_to(40, false).unwrap();
    let n = b.finish(None).unwrap();
    assert_eq!(n, 40);
    let (r, out) = t.send(relay, attacker, &buf[..n]);
    r.unwrap();
    assert_eq!(
        Message::decode(&out[0].payload)
            .unwrap()
            .xor_mapped_address(),
        Some(attacker)
    );
    assert_eq!(t.mpr.leg(leg).unwrap().remote_rtp, Remote::Fixed(media));
}

#[test]
fn cmph_without_registration_and_to_a_free_relay_port() {
    let mut t = T::new();
    let media = addr("198.51.100.1:40002");
    // Get a nonce via a challenge, without registering.
    let (_, out) = t.send(
        t.control,
        t.fw1,
        &register_msg(TransactionId([201; 12]), "corp1", CRED, None, None),
    );
    let nonce = Message::decode(&out[0].payload)
        .unwrap()
        .nonce()
        .unwrap()
        .to_vec();
    let (r, _) = t.send(
        t.control,
        media,
        &cmph_msg(
            TransactionId([202; 12]),
            Class::Request,
            CRED,
            &nonce,
            Some(b"k"),
        ),
    );
    assert!(matches!(
        r,
        Err(InputError::Refused {
            code: ErrorCode::NOT_REGISTERED,
            ..
        })
    ));
    let nonce = t.register();
    let (r, _) = t.send(
        addr("203.0.113.10:30004"),
        media,
        &cmph_msg(TransactionId([203; 12]), Class::Request, CRED, &nonce, None),
    );
    assert!(matches!(
        r,
        Err(InputError::Refused {
            code: ErrorCode::ALLOCATION_MISMATCH,
            ..
        })
    ));
}

#[test]
fn port_exhaustion_is_a_508_and_intents_fail_typed() {
    let mut t = T::new(); // 5 pairs
    let nonce = t.register();
    let media = addr("198.51.100.1:40002");
    for i in 0..5u8 {
        let (r, _) = t.send(
            t.control,
            media,
            &cmph_msg(
                TransactionId([100 + i; 12]),
                Class::Request,
                CRED,
                &nonce,
                Some(&[i]),
            ),
        );
        r.unwrap();
    }
    let (r, out) = t.send(
        t.control,
        media,
        &cmph_msg(
            TransactionId([200; 12]),
            Class::Request,
            CRED,
            &nonce,
            Some(b"x"),
        ),
    );
    assert!(matches!(
        r,
        Err(InputError::Refused {
            code: ErrorCode::INSUFFICIENT_CAPACITY,
            ..
        })
    ));
    assert_eq!(
        Message::decode(&out[0].payload)
            .unwrap()
            .error_code()
            .unwrap()
            .0,
        ErrorCode::INSUFFICIENT_CAPACITY
    );
    let eps = [MediaEndpoint::rtp(0, addr("192.0.2.7:4000"))];
    let intent = MediaIntent {
        kind: IntentKind::Offer,
        from: Side::A,
        origin: Origin::Public,
        toward: Origin::Public,
        endpoints: &eps,
        stranger: None,
    };
    assert_eq!(
        t.mpr.handle_intent(t.now, &CallKey::from("c"), &intent),
        Err(IntentError::PortsExhausted)
    );
    assert_eq!(t.mpr.stats().ports_exhausted, 2);
    assert_eq!(
        t.mpr.stats().calls_open,
        0,
        "a failed offer leaves no call behind"
    );
}

fn offer<'a>(eps: &'a [MediaEndpoint], origin: Origin<'a>, toward: Origin<'a>) -> MediaIntent<'a> {
    MediaIntent {
        kind: IntentKind::Offer,
        from: Side::A,
        origin,
        toward,
        endpoints: eps,
        stranger: None,
    }
}

#[test]
fn offer_answer_two_streams_retransmission_and_teardown() {
    let mut t = T::with(|c| {
        c.ports = PortRange {
            first: 30_000,
            last: 30_099,
        }
    });
    t.register();
    t.drain_commands();
    let call = CallKey::from("call-1@public");
    let a_audio = addr("192.0.2.7:4000");
    let a_video = addr("192.0.2.7:4002");
    let eps = [
        MediaEndpoint::rtp(0, a_audio),
        MediaEndpoint::rtp(1, a_video),
    ];
    let plan = t
        .mpr
        .handle_intent(
            t.now,
            &call,
            &offer(&eps, Origin::Public, Origin::Network("corp1")),
        )
        .unwrap();
    assert_eq!(plan.endpoints.len(), 2);
    let again = t
        .mpr
        .handle_intent(
            t.now,
            &call,
            &offer(&eps, Origin::Public, Origin::Network("corp1")),
        )
        .unwrap();
    assert_eq!(plan, again, "a retransmitted offer gets the same plan");
    assert_ne!(plan.endpoints[0].addr, plan.endpoints[1].addr);
    assert_eq!(t.mpr.stats().legs_open, 4);
    // The caller's leg sends to and accepts only the caller's address.
    let [a_leg, b_leg] = t.mpr.call_legs(&call, 0).unwrap();
    let a_leg = t.mpr.leg(a_leg.unwrap()).unwrap();
    assert_eq!(a_leg.remote_rtp, Remote::Fixed(a_audio));
    assert_eq!(a_leg.remote_rtcp, Remote::Fixed(addr("192.0.2.7:4001")));
    let b_leg = t.mpr.leg(b_leg.unwrap()).unwrap();
    assert_eq!(
        b_leg.rtp, plan.endpoints[0].addr,
        "the offer toward B names B's own leg"
    );
    assert_eq!(b_leg.peer, Some(a_leg.id));
    // B, a plain terminal, answers with its private address: latching.
    let b_eps = [
        MediaEndpoint::rtp(0, addr("10.1.0.5:7000")),
        MediaEndpoint::rtp(1, addr("10.1.0.5:7002")),
    ];
    let answer = MediaIntent {
        kind: IntentKind::Answer,
        from: Side::B,
        origin: Origin::Network("corp1"),
        toward: Origin::Public,
        endpoints: &b_eps,
        stranger: None,
    };
    let aplan = t.mpr.handle_intent(t.now, &call, &answer).unwrap();
    assert_eq!(
        aplan.endpoints[0].addr, a_leg.rtp,
        "the answer toward A names A's leg"
    );
    assert!(
        matches!(t.mpr.leg(b_leg.id).unwrap().remote_rtp, Remote::Latch { ip, .. } if ip == t.fw1.ip())
    );
    let cmds = t.drain_commands();
    assert!(
        cmds.iter()
            .any(|c| matches!(c, RelayCommand::Connect { .. }))
    );
    // Teardown frees every leg; a retransmitted BYE is harmless.
    let bye = MediaIntent {
        kind: IntentKind::Teardown,
        from: Side::B,
        origin: Origin::Network("corp1"),
        toward: Origin::Public,
        endpoints: &[],
        stranger: None,
    };
    let free_before = t.mpr.free_port_pairs();
    t.mpr.handle_intent(t.now, &call, &bye).unwrap();
    t.mpr.handle_intent(t.now, &call, &bye).unwrap();
    assert_eq!(t.mpr.stats().legs_open, 0);
    assert_eq!(
        t.drain_commands()
            .iter()
            .filter(|c| matches!(c, RelayCommand::CloseLeg { .. }))
            .count(),
        4
    );
    assert_eq!(
        t.mpr.free_port_pairs(),
        free_before,
        "freed ports rest in quarantine first"
    );
    // An answer for the finished call is refused.
    assert_eq!(
        t.mpr.handle_intent(t.now, &call, &answer),
        Err(IntentError::UnknownCall)
    );
}

#[test]
fn latching_accepts_only_the_expected_ip_within_the_window_and_a_cmph_relatches() {
    let mut t = T::new();
    let nonce = t.register();
    let call = CallKey::from("c2");
    let eps = [MediaEndpoint::rtp(0, addr("10.1.0.5:7000"))];
    let plan = t
        .mpr
        .handle_intent(
            t.now,
            &call,
            &offer(&eps, Origin::Network("corp1"), Origin::Public),
        )
        .unwrap();
    let [Some(a), Some(_b)] = t.mpr.call_legs(&call, 0).unwrap() else {
        panic!()
    };
    // A relay that latched from a foreign IP gets corrected.
    t.mpr.handle_relay(
        t.now,
        RelayReport::Latched {
            leg: a,
            component: Component::Rtp,
            source: addr("192.0.2.66:7000"),
        },
    );
    assert_eq!(t.mpr.stats().relay_corrections, 1);
    assert!(matches!(
        t.mpr.leg(a).unwrap().remote_rtp,
        Remote::Latch { .. }
    ));
    // From the network's IP within the window: latched.
    let src = addr("198.51.100.1:41000");
    t.mpr.handle_relay(
        t.now,
        RelayReport::Latched {
            leg: a,
            component: Component::Rtp,
            source: src,
        },
    );
    // Port 41000 is not the SDP's 7000 (the NAT changed it): latched, and
    // the SDP's port could still take over within the window.
    assert!(matches!(
        t.mpr.leg(a).unwrap().remote_rtp,
        Remote::Provisional { source, expected: 7000, .. } if source == src
    ));
    // A re-offer does not move a latched leg.
    t.mpr
        .handle_intent(
            t.now,
            &call,
            &offer(&eps, Origin::Network("corp1"), Origin::Public),
        )
        .unwrap();
    assert_eq!(t.mpr.leg(a).unwrap().remote_rtp.target(), Some(src));
    // An authenticated CMPH to the leg's relay port re-binds it.
    let relay = t.mpr.leg(a).unwrap().rtp;
    let moved = addr("198.51.100.1:41500");
    let (r, _) = t.send(
        relay,
        moved,
        &cmph_msg(
            TransactionId([50; 12]),
            Class::Indication,
            CRED,
            &nonce,
            None,
        ),
    );
    r.unwrap();
    assert_eq!(t.mpr.leg(a).unwrap().remote_rtp, Remote::Fixed(moved));
    let _ = plan;
    // A late first packet (after the window) is refused for a fresh latch.
    let call3 = CallKey::from("c3");
    t.mpr
        .handle_intent(
            t.now,
            &call3,
            &offer(&eps, Origin::Network("corp1"), Origin::Public),
        )
        .unwrap();
    let [Some(a3), _] = t.mpr.call_legs(&call3, 0).unwrap() else {
        panic!()
    };
    t.now += Duration::from_secs(11);
    t.mpr.handle_relay(
        t.now,
        RelayReport::Latched {
            leg: a3,
            component: Component::Rtp,
            source: src,
        },
    );
    assert!(matches!(
        t.mpr.leg(a3).unwrap().remote_rtp,
        Remote::Latch { .. }
    ));
}

#[test]
fn an_offer_with_a_cmph_pinhole_uses_the_reserved_leg() {
    let mut t = T::new();
    let nonce = t.register();
    let media = addr("198.51.100.1:40002");
    let (_, out) = t.send(
        t.control,
        media,
        &cmph_msg(
            TransactionId([10; 12]),
            Class::Request,
            CRED,
            &nonce,
            Some(b"k0"),
        ),
    );
    let relay = Message::decode(&out[0].payload)
        .unwrap()
        .xor_relayed_address()
        .unwrap();
    let (r, _) = t.send(
        relay,
        media,
        &cmph_msg(
            TransactionId([11; 12]),
            Class::Request,
            CRED,
            &nonce,
            Some(b"k0"),
        ),
    );
    r.unwrap();
    let call = CallKey::from("c");
    let eps = [MediaEndpoint {
        index: 0,
        addr: media,
        rtcp: RtcpMode::Mux,
        rtcp_addr: None,
    }];
    t.mpr
        .handle_intent(
            t.now,
            &call,
            &offer(&eps, Origin::Network("corp1"), Origin::Public),
        )
        .unwrap();
    let [Some(a), Some(_)] = t.mpr.call_legs(&call, 0).unwrap() else {
        panic!()
    };
    assert_eq!(t.mpr.leg(a).unwrap().rtp, relay);
    assert_eq!(t.mpr.stats().legs_open, 2);
}

/// The "no CMPH response" variant on the offering side: the client
/// reserved its leg naming its own listening address (XOR-LOCAL-ADDRESS)
/// and bound it by indication, so it knows no pinhole address and its
/// offer names that private address. The MPR must use the reserved leg,
/// not open another (found by the netns test bed), and only for the
/// network that reserved it.
#[test]
fn an_offer_naming_the_reserved_local_address_uses_that_leg() {
    let mut t = T::new();
    let nonce = t.register();
    let media = addr("198.51.100.1:40002");
    let local = addr("10.1.0.2:41000");
    let reserve = {
        let mut buf = [0u8; 512];
        let mut b = Builder::new(
            &mut buf,
            Method::Cmph,
            Class::Request,
            TransactionId([10; 12]),
        )
        .unwrap();
        b.username("corp1").unwrap();
        b.leg_key(b"k0").unwrap();
        b.xor_local_address(local).unwrap();
        b.nonce(&nonce).unwrap();
        let n = b.finish(Some(CRED)).unwrap();
        buf[..n].to_vec()
    };
    let (_, out) = t.send(t.control, media, &reserve);
    let relay = Message::decode(&out[0].payload)
        .unwrap()
        .xor_relayed_address()
        .unwrap();
    let (r, _) = t.send(
        relay,
        media,
        &cmph_msg(
            TransactionId([11; 12]),
            Class::Indication,
            CRED,
            &nonce,
            Some(b"k0"),
        ),
    );
    r.unwrap();
    let call = CallKey::from("c");
    let eps = [MediaEndpoint {
        index: 0,
        addr: local,
        rtcp: RtcpMode::Mux,
        rtcp_addr: None,
    }];
    t.mpr
        .handle_intent(
            t.now,
            &call,
            &offer(&eps, Origin::Network("corp1"), Origin::Public),
        )
        .unwrap();
    let [Some(a), Some(_)] = t.mpr.call_legs(&call, 0).unwrap() else {
        panic!()
    };
    assert_eq!(t.mpr.leg(a).unwrap().rtp, relay);
    assert_eq!(
        t.mpr.stats().legs_open,
        2,
        "the reserved leg and the public one"
    );

    // Another network with the same private address gets a leg of its own.
    let other = CallKey::from("d");
    t.mpr
        .handle_intent(
            t.now,
            &other,
            &offer(&eps, Origin::Network("corp2"), Origin::Public),
        )
        .unwrap();
    let [Some(b), Some(_)] = t.mpr.call_legs(&other, 0).unwrap() else {
        panic!()
    };
    assert_ne!(b, a, "corp2 cannot take corp1's leg");
    assert_eq!(t.mpr.call_legs(&call, 0).unwrap()[0], Some(a));
}

#[test]
fn disabled_stream_and_hold_and_inactivity_expiry() {
    let mut t = T::new();
    let call = CallKey::from("c");
    let eps = [
        MediaEndpoint::rtp(0, addr("192.0.2.7:4000")),
        MediaEndpoint::rtp(1, addr("192.0.2.7:0")),
    ];
    let plan = t
        .mpr
        .handle_intent(t.now, &call, &offer(&eps, Origin::Public, Origin::Public))
        .unwrap();
    assert_eq!(
        plan.endpoints[1].addr.port(),
        0,
        "a disabled stream stays disabled"
    );
    assert_eq!(t.mpr.stats().legs_open, 2);
    let hold = [MediaEndpoint::rtp(0, addr("0.0.0.0:4000"))];
    let modify = MediaIntent {
        kind: IntentKind::Modify,
        ..offer(&hold, Origin::Public, Origin::Public)
    };
    let p = t.mpr.handle_intent(t.now, &call, &modify).unwrap();
    assert!(p.endpoints[0].addr.ip().is_unspecified());
    let [Some(a), _] = t.mpr.call_legs(&call, 0).unwrap() else {
        panic!()
    };
    assert_eq!(
        t.mpr.leg(a).unwrap().remote_rtp,
        Remote::Fixed(addr("192.0.2.7:4000")),
        "hold keeps the binding"
    );
    // Activity keeps the call; silence ends it.
    t.now += Duration::from_secs(50);
    t.mpr
        .handle_relay(t.now, RelayReport::Activity { leg: a, at: t.now });
    t.now += Duration::from_secs(50);
    t.mpr.handle_timeout(t.now);
    assert_eq!(t.mpr.stats().calls_open, 1);
    t.now += Duration::from_secs(11);
    t.mpr.handle_timeout(t.now);
    assert_eq!(t.mpr.stats().calls_open, 0);
    assert_eq!(t.mpr.stats().legs_open, 0);
    assert!(
        t.events()
            .iter()
            .any(|e| matches!(e, Event::CallExpired { .. }))
    );
}

#[test]
fn unknown_required_attribute_gets_420_and_garbage_is_counted() {
    let mut t = T::new();
    // A Binding request with an unknown comprehension-required attribute 0x7F01.
    // 28 bytes: its 64-byte 420 would amplify, so it goes unanswered.
    let mut msg = vec![0x00, 0x01, 0x00, 0x08, 0x21, 0x12, 0xA4, 0x42];
    msg.extend_from_slice(&[5; 12]);
    msg.extend_from_slice(&[0x7F, 0x01, 0x00, 0x04, 1, 2, 3, 4]);
    let (r, out) = t.send(t.control, t.fw1, &msg);
    assert!(matches!(
        r,
        Err(InputError::Refused {
            code: ErrorCode::UNKNOWN_ATTRIBUTE,
            ..
        })
    ));
    assert!(out.is_empty());
    assert_eq!(t.mpr.stats().amplification_drops, 1);
    // The same with a 44-byte value, 68 bytes in all: answered.
    let mut msg = vec![0x00, 0x01, 0x00, 0x30, 0x21, 0x12, 0xA4, 0x42];
    msg.extend_from_slice(&[5; 12]);
    msg.extend_from_slice(&[0x7F, 0x01, 0x00, 0x2C]);
    msg.extend_from_slice(&[1; 44]);
    let (r, out) = t.send(t.control, t.fw1, &msg);
    assert!(matches!(
        r,
        Err(InputError::Refused {
            code: ErrorCode::UNKNOWN_ATTRIBUTE,
            ..
        })
    ));
    let resp = Message::decode(&out[0].payload).unwrap();
    assert!(resp.as_bytes().len() <= msg.len());
    assert_eq!(resp.unknown_attributes().collect::<Vec<_>>(), vec![0x7F01]);
    assert_eq!(t.mpr.stats().amplification_drops, 1);
    let (r, out) = t.send(
        t.control,
        t.fw1,
        b"\x00\x01\x00\x04garbage-garbage-garbage!",
    );
    assert!(r.is_err());
    assert!(out.is_empty());
    let (r, _) = t.send(t.control, t.fw1, b"INVITE sip:x SIP/2.0\r\n");
    assert_eq!(r, Err(InputError::NotControl));
}

#[test]
fn control_ports_inside_the_relay_range_are_never_relay_ports() {
    let mut t = T::with(|c| {
        c.ports = PortRange {
            first: 5000,
            last: 5099,
        };
        c.control_ports = vec![5060, 5061, 5062];
    });
    assert_eq!(
        t.mpr.free_port_pairs(),
        48,
        "pairs 5060/5061 and 5062/5063 are kept back"
    );
    let nonce = t.register();
    // A CMPH on the control port inside the range is a reserve, not a bind.
    let (r, out) = t.send(
        t.control,
        t.fw1,
        &cmph_msg(
            TransactionId([150; 12]),
            Class::Request,
            CRED,
            &nonce,
            Some(b"k"),
        ),
    );
    r.unwrap();
    let relay = Message::decode(&out[0].payload)
        .unwrap()
        .xor_relayed_address()
        .unwrap();
    assert!(![5060, 5061, 5062, 5063].contains(&relay.port()));
}

#[test]
fn a_replay_the_cache_forgot_still_fails_because_the_nonce_is_bound_to_the_source_ip() {
    let mut t = T::with(|c| c.replay_capacity = 1);
    let nonce = t.register();
    let media = addr("198.51.100.1:40002");
    let (_, out) = t.send(
        t.control,
        media,
        &cmph_msg(
            TransactionId([60; 12]),
            Class::Request,
            CRED,
            &nonce,
            Some(b"k"),
        ),
    );
    let relay = Message::decode(&out[0].payload)
        .unwrap()
        .xor_relayed_address()
        .unwrap();
    let bind = cmph_msg(TransactionId([61; 12]), Class::Request, CRED, &nonce, None);
    t.send(relay, media, &bind).0.unwrap();
    // Push the bind out of the one-entry cache.
    t.send(
        t.control,
        media,
        &cmph_msg(
            TransactionId([62; 12]),
            Class::Request,
            CRED,
            &nonce,
            Some(b"k"),
        ),
    )
    .0
    .unwrap();
    let (r, _) = t.send(relay, addr("192.0.2.66:40002"), &bind);
    assert!(
        matches!(
            r,
            Err(InputError::Refused {
                code: ErrorCode::STALE_NONCE,
                ..
            })
        ),
        "{r:?}"
    );
    let leg = t.mpr.leg_by_port(relay.port()).unwrap();
    assert_eq!(t.mpr.leg(leg).unwrap().remote_rtp, Remote::Fixed(media));
}

#[test]
fn ipv6_streams_get_ipv6_relay_legs_only_when_the_mpr_has_one() {
    let v6: SocketAddr = "[2001:db8::7]:4000".parse().unwrap();
    let eps = [MediaEndpoint::rtp(0, v6)];
    let mut t = T::new();
    assert_eq!(
        t.mpr.handle_intent(
            t.now,
            &CallKey::from("v6"),
            &offer(&eps, Origin::Public, Origin::Public)
        ),
        Err(IntentError::NoRelayAddress)
    );
    let mut t = T::with(|c| c.relay_ip6 = Some("2001:db8::10".parse().unwrap()));
    let plan = t
        .mpr
        .handle_intent(
            t.now,
            &CallKey::from("v6"),
            &offer(&eps, Origin::Public, Origin::Public),
        )
        .unwrap();
    assert_eq!(
        plan.endpoints[0].addr.ip(),
        "2001:db8::10".parse::<std::net::IpAddr>().unwrap()
    );
    let [Some(a), _] = t.mpr.call_legs(&CallKey::from("v6"), 0).unwrap() else {
        panic!()
    };
    assert_eq!(t.mpr.leg(a).unwrap().remote_rtp, Remote::Fixed(v6));
    // IPv4 streams still get the IPv4 relay address.
    let v4 = [MediaEndpoint::rtp(0, addr("192.0.2.7:4000"))];
    let plan = t
        .mpr
        .handle_intent(
            t.now,
            &CallKey::from("v4"),
            &offer(&v4, Origin::Public, Origin::Public),
        )
        .unwrap();
    assert_eq!(
        plan.endpoints[0].addr.ip(),
        "203.0.113.10".parse::<std::net::IpAddr>().unwrap()
    );
}

#[test]
fn a_leg_the_relay_cannot_open_is_replaced_when_the_intent_is_planned_again() {
    let mut t = T::with(|c| {
        c.ports = PortRange {
            first: 30_000,
            last: 30_099,
        }
    });
    let call = CallKey::from("busy");
    let eps = [MediaEndpoint::rtp(0, addr("192.0.2.7:4000"))];
    let first = t
        .mpr
        .handle_intent(t.now, &call, &offer(&eps, Origin::Public, Origin::Public))
        .unwrap();
    let [Some(a), Some(b)] = t.mpr.call_legs(&call, 0).unwrap() else {
        panic!()
    };
    t.drain_commands();
    // The relay found B's port taken by another process.
    t.mpr
        .handle_relay(t.now, RelayReport::OpenFailed { leg: b });
    assert_eq!(t.mpr.stats().relay_open_failures, 1);
    assert_eq!(t.mpr.call_legs(&call, 0).unwrap(), [Some(a), None]);
    assert!(
        t.drain_commands()
            .contains(&RelayCommand::CloseLeg { leg: b })
    );
    // The same offer again: A's leg stays, B gets a leg on another pair.
    let again = t
        .mpr
        .handle_intent(t.now, &call, &offer(&eps, Origin::Public, Origin::Public))
        .unwrap();
    let [Some(a2), Some(b2)] = t.mpr.call_legs(&call, 0).unwrap() else {
        panic!()
    };
    assert_eq!(a2, a);
    assert_ne!(b2, b);
    assert_ne!(again.endpoints[0].addr, first.endpoints[0].addr);
    assert_eq!(t.mpr.leg(a).unwrap().peer, Some(b2));
    assert_eq!(t.mpr.stats().legs_open, 2);
}

/// Reserves `leg_key` from `media` without polling the answer, as a driver
/// does before it has applied the relay commands.
fn reserve_unpolled(t: &mut T, nonce: &[u8], media: SocketAddr, leg_key: &[u8]) -> Vec<u8> {
    let tid = t.tid();
    let reserve = cmph_msg(tid, Class::Request, CRED, nonce, Some(leg_key));
    t.mpr
        .handle_datagram(
            t.now,
            Receive {
                local: t.control,
                remote: media,
                bytes: &reserve,
                flow: Default::default(),
            },
        )
        .unwrap();
    reserve
}

fn opened_leg(cmds: &[RelayCommand]) -> Option<(LegId, SocketAddr)> {
    cmds.iter().find_map(|c| match c {
        RelayCommand::OpenLeg { leg, rtp, .. } => Some((*leg, *rtp)),
        _ => None,
    })
}

#[test]
fn a_reserve_whose_leg_cannot_be_opened_is_answered_for_another_pair() {
    let mut t = T::new();
    let nonce = t.register();
    t.drain_commands();
    let media = addr("198.51.100.1:40002");
    let reserve = reserve_unpolled(&mut t, &nonce, media, b"call-9/0");
    let (first, first_addr) = opened_leg(&t.drain_commands()).unwrap();
    // The relay found the pair taken by another process.
    t.mpr
        .handle_relay(t.now, RelayReport::OpenFailed { leg: first });
    let cmds = t.drain_commands();
    assert!(cmds.contains(&RelayCommand::CloseLeg { leg: first }));
    let (second, second_addr) = opened_leg(&cmds).expect("a leg on another pair");
    assert_ne!(second_addr, first_addr);
    // The one answer that leaves names the leg that exists.
    let out: Vec<Transmit> = std::iter::from_fn(|| t.mpr.poll_transmit()).collect();
    assert_eq!(out.len(), 1);
    let resp = Message::decode(&out[0].payload).unwrap();
    assert_eq!(resp.class(), Class::Success);
    resp.verify(CRED).unwrap();
    assert_eq!(resp.xor_relayed_address(), Some(second_addr));
    assert_eq!(t.mpr.stats().relay_open_failures, 1);
    assert_eq!(t.mpr.stats().legs_open, 1);
    // A retransmission of the reserve gets the corrected answer.
    let (r, again) = t.send(t.control, media, &reserve);
    r.unwrap();
    assert_eq!(again[0].payload, out[0].payload);
    // Binding the named port works; the failed one has no leg.
    let tid = t.tid();
    let bind = cmph_msg(tid, Class::Request, CRED, &nonce, Some(b"call-9/0"));
    let (r, out) = t.send(second_addr, media, &bind);
    r.unwrap();
    assert_eq!(
        Message::decode(&out[0].payload).unwrap().class(),
        Class::Success
    );
    assert_eq!(t.mpr.leg_by_port(second_addr.port()), Some(second));
    assert_eq!(t.mpr.leg_by_port(first_addr.port()), None);
}

#[test]
fn a_reserve_no_pair_of_which_can_be_opened_gets_508_and_leaves_no_leg() {
    let mut t = T::new();
    let nonce = t.register();
    t.drain_commands();
    let media = addr("198.51.100.1:40002");
    let reserve = reserve_unpolled(&mut t, &nonce, media, b"call-10/0");
    let mut failed = 0;
    while let Some((leg, _)) = opened_leg(&t.drain_commands()) {
        failed += 1;
        assert!(failed <= 4, "the MPR keeps trying new pairs");
        t.mpr.handle_relay(t.now, RelayReport::OpenFailed { leg });
    }
    assert_eq!(failed, 4);
    let out: Vec<Transmit> = std::iter::from_fn(|| t.mpr.poll_transmit()).collect();
    assert_eq!(out.len(), 1);
    let resp = Message::decode(&out[0].payload).unwrap();
    assert_eq!(resp.class(), Class::Error);
    resp.verify(CRED).unwrap();
    assert_eq!(
        resp.error_code().unwrap().0,
        ErrorCode::INSUFFICIENT_CAPACITY
    );
    assert_eq!(t.mpr.stats().legs_open, 0);
    assert_eq!(t.mpr.stats().relay_open_failures, 4);
    // A retransmission gets the same refusal, and no leg is created.
    let (r, again) = t.send(t.control, media, &reserve);
    r.unwrap();
    assert_eq!(again[0].payload, out[0].payload);
    assert!(t.drain_commands().is_empty());
}

#[test]
fn an_open_failure_after_the_answer_left_only_drops_the_leg() {
    let mut t = T::new();
    let nonce = t.register();
    t.drain_commands();
    let media = addr("198.51.100.1:40002");
    reserve_unpolled(&mut t, &nonce, media, b"call-11/0");
    let (leg, _) = opened_leg(&t.drain_commands()).unwrap();
    let out: Vec<Transmit> = std::iter::from_fn(|| t.mpr.poll_transmit()).collect();
    assert_eq!(out.len(), 1);
    t.mpr.handle_relay(t.now, RelayReport::OpenFailed { leg });
    assert_eq!(t.drain_commands(), vec![RelayCommand::CloseLeg { leg }]);
    assert!(t.mpr.poll_transmit().is_none());
    assert_eq!(t.mpr.stats().legs_open, 0);
}

#[test]
fn a_vouched_plain_terminal_latches_onto_its_own_ip_without_a_registration() {
    let mut t = T::with(|c| {
        c.ports = PortRange {
            first: 30_000,
            last: 30_099,
        }
    });
    let eps = [MediaEndpoint::rtp(0, addr("10.1.0.5:7000"))];
    // corp1 never registered: without a hint its leg has nothing to latch on.
    let plain = CallKey::from("plain");
    t.mpr
        .handle_intent(
            t.now,
            &plain,
            &offer(&eps, Origin::Network("corp1"), Origin::Public),
        )
        .unwrap();
    let [Some(a0), _] = t.mpr.call_legs(&plain, 0).unwrap() else {
        panic!()
    };
    assert_eq!(t.mpr.leg(a0).unwrap().remote_rtp, Remote::Unbound);
    // With the phone's signaling address vouched for, it latches there only.
    let phone_ip: std::net::IpAddr = "198.51.100.77".parse().unwrap();
    let call = CallKey::from("vouched");
    t.mpr
        .handle_intent_latching(
            t.now,
            &call,
            &offer(&eps, Origin::Network("corp1"), Origin::Public),
            phone_ip,
        )
        .unwrap();
    let [Some(a), _] = t.mpr.call_legs(&call, 0).unwrap() else {
        panic!()
    };
    assert!(matches!(
        t.mpr.leg(a).unwrap().remote_rtp,
        Remote::Latch { ip, .. } if ip == phone_ip
    ));
    let cmds = t.drain_commands();
    assert!(cmds.iter().any(|c| matches!(
        c,
        RelayCommand::SetRemote { leg, remote: Remote::Latch { ip, .. }, .. } if *leg == a && *ip == phone_ip
    )));
    // The hint lasts for that one plan: the next one is back to normal.
    let other = CallKey::from("after");
    t.mpr
        .handle_intent(
            t.now,
            &other,
            &offer(&eps, Origin::Network("corp1"), Origin::Public),
        )
        .unwrap();
    let [Some(a2), _] = t.mpr.call_legs(&other, 0).unwrap() else {
        panic!()
    };
    assert_eq!(t.mpr.leg(a2).unwrap().remote_rtp, Remote::Unbound);
    // Another IP (the network's firewall, say) does not latch it.
    t.mpr.handle_relay(
        t.now,
        RelayReport::Latched {
            leg: a,
            component: Component::Rtp,
            source: addr("198.51.100.1:41000"),
        },
    );
    assert!(matches!(
        t.mpr.leg(a).unwrap().remote_rtp,
        Remote::Latch { .. }
    ));
    let src = SocketAddr::new(phone_ip, 41000);
    t.mpr.handle_relay(
        t.now,
        RelayReport::Latched {
            leg: a,
            component: Component::Rtp,
            source: src,
        },
    );
    assert_eq!(t.mpr.leg(a).unwrap().remote_rtp.target(), Some(src));
}

#[test]
fn an_answer_after_long_ringing_reopens_the_callers_latch_window() {
    let mut t = T::with(|c| {
        c.ports = PortRange {
            first: 30_000,
            last: 30_099,
        }
    });
    let ip_a: std::net::IpAddr = "198.51.100.1".parse().unwrap();
    let ip_b: std::net::IpAddr = "198.51.100.2".parse().unwrap();
    let call = CallKey::from("ringing");
    let ea = [MediaEndpoint::rtp(0, addr("10.1.0.5:7000"))];
    let o = offer(&ea, Origin::Network("corp1"), Origin::Network("corp2"));
    t.mpr
        .handle_intent_latching(t.now, &call, &o, ip_a)
        .unwrap();
    let [Some(a), Some(b)] = t.mpr.call_legs(&call, 0).unwrap() else {
        panic!()
    };
    // B answers after 30 s of ringing: A's window opened at the offer is
    // long over, but the answer opens it again.
    t.now += Duration::from_secs(30);
    let eb = [MediaEndpoint::rtp(0, addr("10.2.0.5:8000"))];
    let answer = MediaIntent {
        kind: IntentKind::Answer,
        from: Side::B,
        origin: Origin::Network("corp2"),
        toward: Origin::Network("corp1"),
        endpoints: &eb,
        stranger: None,
    };
    t.mpr
        .handle_intent_latching(t.now, &call, &answer, ip_b)
        .unwrap();
    for (leg, ip) in [(a, ip_a), (b, ip_b)] {
        let src = SocketAddr::new(ip, 42000);
        t.mpr.handle_relay(
            t.now + Duration::from_secs(1),
            RelayReport::Latched {
                leg,
                component: Component::Rtp,
                source: src,
            },
        );
        assert_eq!(t.mpr.leg(leg).unwrap().remote_rtp.target(), Some(src));
    }
}

#[test]
fn a_leg_planned_toward_the_public_side_moves_to_the_network_it_reaches() {
    // MGCP: gateway A's description goes to the call agent (public); the
    // call agent copies the relay address into its command to a gateway of
    // corp1, whose CMPH must then be able to bind that leg.
    let mut t = T::new();
    let nonce = t.register();
    let call = CallKey::from("mgcp-call");
    let eps = [MediaEndpoint::rtp(0, addr("198.51.100.7:4000"))];
    let plan = t
        .mpr
        .handle_intent(
            t.now,
            &call,
            &offer(&eps, Origin::Network("corp1"), Origin::Public),
        )
        .unwrap();
    let relay = plan.endpoints[0].addr;
    let media = addr("198.51.100.1:40008");
    let bind = |t: &mut T, id: u8| {
        let msg = cmph_msg(TransactionId([id; 12]), Class::Request, CRED, &nonce, None);
        t.send(relay, media, &msg).0
    };
    assert!(
        matches!(
            bind(&mut t, 40),
            Err(InputError::Refused {
                code: ErrorCode::FORBIDDEN,
                ..
            })
        ),
        "the public side's leg is no network's"
    );
    // The same description routed to corp1: same relay address, now corp1's.
    let again = t
        .mpr
        .handle_intent(
            t.now,
            &call,
            &MediaIntent {
                kind: IntentKind::Modify,
                ..offer(&eps, Origin::Network("corp1"), Origin::Network("corp1"))
            },
        )
        .unwrap();
    assert_eq!(again.endpoints[0].addr, relay);
    bind(&mut t, 41).unwrap();
    let leg = t.mpr.leg_by_port(relay.port()).unwrap();
    assert_eq!(t.mpr.leg(leg).unwrap().remote_rtp, Remote::Fixed(media));
}

/// A plain phone's offer through `t`: (phone's leg, SDP RTP address),
/// latching onto `ip`, RTCP on the next port.
fn plain_call(t: &mut T, name: &str, ip: std::net::IpAddr) -> (LegId, SocketAddr) {
    let sdp = addr("10.1.0.5:7000");
    let eps = [MediaEndpoint {
        index: 0,
        addr: sdp,
        rtcp: RtcpMode::Pair,
        rtcp_addr: None,
    }];
    let call = CallKey::from(name);
    t.mpr
        .handle_intent_latching(
            t.now,
            &call,
            &offer(&eps, Origin::Network("corp1"), Origin::Public),
            ip,
        )
        .unwrap();
    let [Some(a), _] = t.mpr.call_legs(&call, 0).unwrap() else {
        panic!()
    };
    (a, sdp)
}

fn latched(t: &mut T, leg: LegId, component: Component, source: SocketAddr) {
    t.mpr.handle_relay(
        t.now,
        RelayReport::Latched {
            leg,
            component,
            source,
        },
    );
}

#[test]
fn the_sdp_port_takes_a_leg_over_from_an_earlier_source_of_the_same_ip_once() {
    let mut t = T::with(|c| {
        c.ports = PortRange {
            first: 30_000,
            last: 30_099,
        }
    });
    let ip: std::net::IpAddr = "198.51.100.77".parse().unwrap();
    let (a, sdp) = plain_call(&mut t, "takeover", ip);
    // RTCP waits for RTP: nothing is accepted on it yet.
    assert_eq!(t.mpr.leg(a).unwrap().remote_rtcp, Remote::Unbound);
    // An attacker on the phone's public IP, another port, is first.
    let attacker = SocketAddr::new(ip, 41000);
    latched(&mut t, a, Component::Rtp, attacker);
    let Remote::Provisional {
        source, expected, ..
    } = t.mpr.leg(a).unwrap().remote_rtp
    else {
        panic!("{:?}", t.mpr.leg(a))
    };
    assert_eq!((source, expected), (attacker, sdp.port()));
    // The relay is told, and RTCP may now latch from that IP only.
    let cmds = t.drain_commands();
    assert!(cmds.iter().any(|c| matches!(
        c,
        RelayCommand::SetRemote { leg, component: Component::Rtp, remote: Remote::Provisional { .. } } if *leg == a
    )));
    assert!(matches!(
        t.mpr.leg(a).unwrap().remote_rtcp,
        Remote::Latch { ip: i, .. } if i == ip
    ));
    // The attacker's RTCP latches provisionally (its port is not 7001)...
    latched(&mut t, a, Component::Rtcp, SocketAddr::new(ip, 41001));
    assert!(matches!(
        t.mpr.leg(a).unwrap().remote_rtcp,
        Remote::Provisional { expected: 7001, .. }
    ));
    // ...until the phone sends from its SDP port: it wins RTP, and RTCP is
    // fixed to its SDP RTCP port on the same IP.
    t.now += Duration::from_secs(2);
    let phone = SocketAddr::new(ip, sdp.port());
    latched(&mut t, a, Component::Rtp, phone);
    let leg = t.mpr.leg(a).unwrap();
    assert_eq!(leg.remote_rtp, Remote::Fixed(phone));
    assert_eq!(leg.remote_rtcp, Remote::Fixed(SocketAddr::new(ip, 7001)));
    assert_eq!(t.mpr.stats().latch_takeovers, 1);
    // Once: the leg is fixed now, another port of the IP gets nowhere.
    latched(&mut t, a, Component::Rtp, SocketAddr::new(ip, 41002));
    assert_eq!(t.mpr.leg(a).unwrap().remote_rtp, Remote::Fixed(phone));
    assert_eq!(t.mpr.stats().latch_takeovers, 1);
}

#[test]
fn an_attacker_on_the_exact_sdp_port_first_keeps_the_leg_residual_risk() {
    let mut t = T::with(|c| {
        c.ports = PortRange {
            first: 30_000,
            last: 30_099,
        }
    });
    let ip: std::net::IpAddr = "198.51.100.77".parse().unwrap();
    let (a, sdp) = plain_call(&mut t, "exact", ip);
    // Someone who can send from the phone's public IP and SDP port (behind
    // the same port-preserving NAT, or spoofing) is indistinguishable from
    // the phone: docs/flows.md says so and advises an APS or a smart
    // terminal, whose legs are bound by an authenticated CMPH.
    let spoofed = SocketAddr::new(ip, sdp.port());
    latched(&mut t, a, Component::Rtp, spoofed);
    assert_eq!(t.mpr.leg(a).unwrap().remote_rtp, Remote::Fixed(spoofed));
    let real = SocketAddr::new(ip, 41000);
    latched(&mut t, a, Component::Rtp, real);
    assert_eq!(t.mpr.leg(a).unwrap().remote_rtp, Remote::Fixed(spoofed));
    assert_eq!(t.mpr.stats().latch_takeovers, 0);
}

#[test]
fn rtcp_never_latches_to_another_ip_than_rtps() {
    let mut t = T::with(|c| {
        c.ports = PortRange {
            first: 30_000,
            last: 30_099,
        }
    });
    let ip: std::net::IpAddr = "198.51.100.77".parse().unwrap();
    let (a, _) = plain_call(&mut t, "rtcp", ip);
    // Before RTP latched, RTCP from the latch IP itself is refused.
    latched(&mut t, a, Component::Rtcp, SocketAddr::new(ip, 7001));
    assert_eq!(t.mpr.leg(a).unwrap().remote_rtcp, Remote::Unbound);
    assert_eq!(t.mpr.stats().relay_corrections, 1);
    // A NAT that changes ports: RTP latches from 41000, provisionally.
    let rtp = SocketAddr::new(ip, 41000);
    latched(&mut t, a, Component::Rtp, rtp);
    assert_eq!(t.mpr.leg(a).unwrap().remote_rtp.target(), Some(rtp));
    // RTCP from another IP is refused and the relay corrected...
    latched(&mut t, a, Component::Rtcp, addr("192.0.2.66:41001"));
    assert!(matches!(
        t.mpr.leg(a).unwrap().remote_rtcp,
        Remote::Latch { ip: i, .. } if i == ip
    ));
    assert_eq!(t.mpr.stats().relay_corrections, 2);
    // ...from RTP's IP it latches.
    let rtcp = SocketAddr::new(ip, 41001);
    latched(&mut t, a, Component::Rtcp, rtcp);
    assert_eq!(t.mpr.leg(a).unwrap().remote_rtcp.target(), Some(rtcp));
    assert_eq!(t.mpr.stats().latches, 2);
    // The window closes with the provisional sources in place: they are
    // the phone's, and they stay.
    t.now += Duration::from_secs(11);
    latched(&mut t, a, Component::Rtp, SocketAddr::new(ip, 7000));
    assert_eq!(t.mpr.leg(a).unwrap().remote_rtp.target(), Some(rtp));
}
