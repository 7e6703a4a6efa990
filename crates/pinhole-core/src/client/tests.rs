//! Client engine against a real MPR engine over a lossless in-memory path
//! with a trivial NAT (inside 10.0.0.2:p ↔ 198.51.100.1:p). Firewall
//! behaviour, loss and long runs are in the workspace tests (testkit).

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::*;
use crate::mpr;
use crate::relay::Remote;
use crate::wire::Builder;

const CRED: &[u8] = b"corp1-secret";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn public(a: SocketAddr) -> SocketAddr {
    SocketAddr::new("198.51.100.1".parse().unwrap(), a.port())
}

fn inside(a: SocketAddr) -> SocketAddr {
    SocketAddr::new("10.0.0.2".parse().unwrap(), a.port())
}

struct P {
    now: Instant,
    mpr: mpr::Engine,
    cl: Engine,
    /// Drop every datagram from the MPR while set.
    blackhole: bool,
    events: Vec<Event>,
    sent: Vec<Transmit>,
}

impl P {
    fn new(f: impl FnOnce(&mut Config)) -> Self {
        Self::with(|_| {}, f)
    }

    fn with(m: impl FnOnce(&mut mpr::Config), f: impl FnOnce(&mut Config)) -> Self {
        let now = crate::test_instant();
        let mut mc = mpr::Config::new("203.0.113.10".parse().unwrap(), [1; 32]);
        mc.networks
            .push(mpr::NetworkConfig::new("corp1", CRED.to_vec()));
        m(&mut mc);
        let mut cc = Config::new(
            "corp1",
            CRED.to_vec(),
            Protocol::Sip,
            addr("10.0.0.2:5060"),
            addr("203.0.113.10:5060"),
            [2; 32],
        );
        f(&mut cc);
        Self {
            now,
            mpr: mpr::Engine::new(mc, now).unwrap(),
            cl: Engine::new(cc, now).unwrap(),
            blackhole: false,
            events: Vec::new(),
            sent: Vec::new(),
        }
    }

    /// Delivers everything pending, then advances to `until` in timer steps.
    fn run_until(&mut self, until: Instant) {
        loop {
            self.cl.handle_timeout(self.now);
            self.mpr.handle_timeout(self.now);
            let mut moved = false;
            while let Some(t) = self.cl.poll_transmit() {
                moved = true;
                self.sent.push(t.clone());
                let _ = self.mpr.handle_datagram(
                    self.now,
                    Receive {
                        local: t.remote,
                        remote: public(t.local),
                        bytes: &t.payload,
                        flow: Default::default(),
                    },
                );
            }
            while let Some(t) = self.mpr.poll_transmit() {
                moved = true;
                if !self.blackhole {
                    let _ = self.cl.handle_datagram(
                        self.now,
                        Receive {
                            local: inside(t.remote),
                            remote: t.local,
                            bytes: &t.payload,
                            flow: Default::default(),
                        },
                    );
                }
            }
            while let Some(e) = self.cl.poll_event() {
                self.events.push(e);
            }
            if moved {
                continue;
            }
            let next = [self.cl.poll_timeout(), self.mpr.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                // Armed while handling this instant: run it now.
                Some(t) if t <= self.now => {}
                Some(t) if t <= until => self.now = t,
                _ if self.now < until => self.now = until,
                _ => break,
            }
        }
    }

    fn advance(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    fn registrations_sent(&self) -> usize {
        self.sent
            .iter()
            .filter(|t| t.payload[0] == 0x02 && t.payload[1] == 0x81)
            .count()
    }
}

#[test]
fn refresh_interval_must_be_shorter_than_the_firewall_timeout() {
    let mut c = Config::new(
        "n",
        b"k".to_vec(),
        Protocol::Sip,
        addr("10.0.0.2:5060"),
        addr("203.0.113.10:5060"),
        [0; 32],
    );
    c.refresh_interval = Some(Duration::from_secs(30));
    assert!(matches!(
        Engine::new(c.clone(), crate::test_instant()),
        Err(ConfigError::RefreshTooLong { .. })
    ));
    c.refresh_interval = None;
    assert_eq!(c.effective_refresh(), Duration::from_secs(20));
    assert!(Engine::new(c, crate::test_instant()).is_ok());
}

#[test]
fn registers_then_refreshes_on_idle_and_traffic_postpones_it() {
    let mut p = P::new(|_| {});
    p.advance(Duration::from_millis(10));
    assert!(
        matches!(p.events[..], [Event::Registered { pinhole, .. }] if pinhole == addr("198.51.100.1:5060"))
    );
    assert_eq!(
        p.cl.stats().nonce_retries,
        1,
        "the first request is challenged for a nonce"
    );
    assert_eq!(
        p.mpr.route("corp1", Protocol::Sip).unwrap().pinhole,
        addr("198.51.100.1:5060")
    );
    let before = p.registrations_sent();
    // Traffic every 10 s keeps the pinhole open: no refresh for 60 s... until
    // 3/4 of the lifetime (450 s) forces one.
    for _ in 0..6 {
        p.advance(Duration::from_secs(10));
        let now = p.now;
        p.cl.handle_traffic(now, addr("10.0.0.2:5060"));
    }
    assert_eq!(p.registrations_sent(), before);
    // Silence: a refresh at 20 s.
    p.advance(Duration::from_secs(19));
    assert_eq!(p.registrations_sent(), before);
    p.advance(Duration::from_secs(2));
    assert_eq!(p.registrations_sent(), before + 1);
    assert_eq!(p.mpr.stats().registrations_refreshed, 1);
}

#[test]
fn lost_responses_retransmit_then_alarm_and_back_off_then_recover() {
    let mut p = P::new(|c| {
        c.retransmit = Retransmit {
            rto: Duration::from_millis(100),
            rc: 3,
            rm: 4,
        };
        c.retry_min = Duration::from_secs(1);
    });
    p.blackhole = true;
    p.advance(Duration::from_millis(100 + 200 + 400 - 1));
    assert_eq!(p.registrations_sent(), 3, "Rc = 3 copies");
    assert!(p.events.is_empty());
    p.advance(Duration::from_millis(1));
    assert!(
        matches!(p.events[..], [Event::Alarm { failure: Failure::Timeout, retry_in }] if retry_in == Duration::from_secs(1))
    );
    assert!(p.cl.alarm());
    // The retries back off: 1 s, 2 s, 4 s.
    p.advance(Duration::from_secs(1) + Duration::from_millis(700));
    p.advance(Duration::from_secs(2) + Duration::from_millis(700));
    let delays: Vec<Duration> = p
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Alarm { retry_in, .. } => Some(*retry_in),
            _ => None,
        })
        .collect();
    assert_eq!(
        delays,
        vec![
            Duration::from_secs(1),
            Duration::from_secs(2),
            Duration::from_secs(4)
        ]
    );
    p.blackhole = false;
    p.advance(Duration::from_secs(5));
    assert!(!p.cl.alarm());
    assert!(p.events.contains(&Event::AlarmCleared));
    assert!(p.cl.registered_pinhole().is_some());
}

#[test]
fn reserve_bind_opens_rtp_and_rtcp_and_maps_b_to_a() {
    let mut p = P::new(|_| {});
    p.advance(Duration::from_millis(10));
    let b = addr("10.0.0.2:41000");
    let a = addr("10.0.0.77:8000");
    let id =
        p.cl.open_pinhole(
            p.now,
            PinholeRequest {
                local: b,
                relay: None,
                rtcp: RtcpMode::Pair,
                key: b"call/0".to_vec(),
                inside: Some(a),
            },
        )
        .unwrap();
    p.advance(Duration::from_millis(10));
    let opened = p.events.iter().find_map(|e| match e {
        Event::PinholeOpened {
            id: i,
            relay,
            pinhole,
            rtcp_pinhole,
        } if *i == id => Some((*relay, *pinhole, *rtcp_pinhole)),
        _ => None,
    });
    let (relay, pinhole, rtcp) = opened.expect("opened");
    assert_eq!(pinhole, Some(public(b)));
    assert_eq!(rtcp, Some(addr("198.51.100.1:41001")));
    let leg = p.mpr.leg_by_port(relay.port()).unwrap();
    let view = p.mpr.leg(leg).unwrap();
    assert_eq!(view.remote_rtp, Remote::Fixed(public(b)));
    assert_eq!(view.remote_rtcp, Remote::Fixed(addr("198.51.100.1:41001")));
    let mut maps = Vec::new();
    while let Some(c) = p.cl.poll_command() {
        maps.push(c);
    }
    assert_eq!(
        maps,
        vec![
            RelayCommand::MapLocal {
                local: b,
                outside: relay,
                inside: a
            },
            RelayCommand::MapLocal {
                local: addr("10.0.0.2:41001"),
                outside: SocketAddr::new(relay.ip(), relay.port() + 1),
                inside: addr("10.0.0.77:8001")
            },
        ]
    );
    p.cl.close_pinhole(id).unwrap();
    assert!(matches!(p.cl.poll_command(), Some(RelayCommand::UnmapLocal { local }) if local == b));
    assert_eq!(p.cl.close_pinhole(id), Err(ClientError::UnknownPinhole));
}

#[test]
fn silent_pinhole_gets_keepalives_and_media_traffic_suppresses_them() {
    let mut p = P::new(|_| {});
    p.advance(Duration::from_millis(10));
    let b = addr("10.0.0.2:42000");
    let relay = {
        p.cl.open_pinhole(
            p.now,
            PinholeRequest {
                local: b,
                relay: None,
                rtcp: RtcpMode::Mux,
                key: b"k".to_vec(),
                inside: None,
            },
        )
        .unwrap();
        p.advance(Duration::from_millis(10));
        p.events
            .iter()
            .find_map(|e| match e {
                Event::PinholeOpened { relay, .. } => Some(*relay),
                _ => None,
            })
            .unwrap()
    };
    let keepalives = |p: &P| {
        p.sent
            .iter()
            .filter(|t| t.remote == relay && t.payload[..2] == [0x00, 0x11])
            .count()
    };
    p.advance(Duration::from_secs(21));
    assert_eq!(keepalives(&p), 1);
    assert_eq!(
        p.mpr.stats().keepalives,
        1,
        "the MPR counts it as activity from the bound source"
    );
    for _ in 0..4 {
        p.advance(Duration::from_secs(10));
        let now = p.now;
        p.cl.handle_traffic(now, b);
    }
    assert_eq!(keepalives(&p), 1, "media flowing: no keepalive needed");
}

#[test]
fn indication_variant_opens_without_a_response_and_the_mpr_binds() {
    let mut p = P::new(|c| c.cmph_mode = CmphMode::Indication);
    p.advance(Duration::from_millis(10));
    // The relay address came in an offer (Fig. 7): reserve it at the MPR side.
    let eps = [crate::intent::MediaEndpoint::rtp(0, addr("192.0.2.7:4000"))];
    let intent = crate::intent::MediaIntent {
        kind: crate::intent::IntentKind::Offer,
        from: crate::types::Side::A,
        origin: crate::intent::Origin::Public,
        toward: crate::intent::Origin::Network("corp1"),
        endpoints: &eps,
        stranger: None,
    };
    let plan = p
        .mpr
        .handle_intent(p.now, &crate::types::CallKey::from("c"), &intent)
        .unwrap();
    let relay = plan.endpoints[0].addr;
    let b = addr("10.0.0.2:43000");
    p.cl.open_pinhole(
        p.now,
        PinholeRequest {
            local: b,
            relay: Some(relay),
            rtcp: RtcpMode::Pair,
            key: b"k".to_vec(),
            inside: None,
        },
    )
    .unwrap();
    p.advance(Duration::from_millis(200));
    assert!(
        p.events
            .iter()
            .any(|e| matches!(e, Event::PinholeOpened { pinhole: None, .. }))
    );
    let copies = p.sent.iter().filter(|t| t.remote == relay).count();
    assert_eq!(copies, 3);
    let leg = p.mpr.leg_by_port(relay.port()).unwrap();
    assert_eq!(p.mpr.leg(leg).unwrap().remote_rtp, Remote::Fixed(public(b)));
    assert_eq!(
        p.mpr.stats().cmph_bound,
        2,
        "RTP and RTCP bound once each; copies were retransmissions"
    );
}

#[test]
fn a_forged_error_does_not_end_a_transaction() {
    let mut p = P::new(|_| {});
    p.blackhole = true;
    p.cl.handle_timeout(p.now);
    let t = p.cl.poll_transmit().unwrap();
    let id = crate::wire::Message::decode(&t.payload)
        .unwrap()
        .transaction_id();
    let mut buf = [0u8; 128];
    let mut b = Builder::new(&mut buf, Method::Register, Class::Error, id).unwrap();
    b.error_code(ErrorCode::FORBIDDEN, "Forbidden").unwrap();
    let n = b.finish(None).unwrap();
    let r = p.cl.handle_datagram(
        p.now,
        Receive {
            local: t.local,
            remote: t.remote,
            bytes: &buf[..n],
            flow: Default::default(),
        },
    );
    assert_eq!(r, Err(InputError::Unauthenticated));
    // From the wrong address it is not even considered.
    let r = p.cl.handle_datagram(
        p.now,
        Receive {
            local: t.local,
            remote: addr("192.0.2.66:5060"),
            bytes: &buf[..n],
            flow: Default::default(),
        },
    );
    assert_eq!(r, Err(InputError::Unsolicited));
    p.blackhole = false;
    // The real answer to the (retransmitted) request still completes it.
    p.advance(Duration::from_secs(1));
    assert!(p.cl.registered_pinhole().is_some());
    assert!(!p.cl.alarm());
    let _ = IpAddr::from([0u8; 4]);
}

#[test]
fn open_pinhole_needs_a_registration_and_a_sane_key() {
    let mut p = P::new(|_| {});
    let req = PinholeRequest {
        local: addr("10.0.0.2:1"),
        relay: None,
        rtcp: RtcpMode::Mux,
        key: b"k".to_vec(),
        inside: None,
    };
    assert_eq!(
        p.cl.open_pinhole(p.now, req.clone()),
        Err(ClientError::NotRegistered)
    );
    p.advance(Duration::from_millis(10));
    assert_eq!(
        p.cl.open_pinhole(
            p.now,
            PinholeRequest {
                key: vec![],
                ..req.clone()
            }
        ),
        Err(ClientError::BadLegKey)
    );
    assert!(p.cl.open_pinhole(p.now, req).is_ok());
}

#[test]
fn traffic_reports_reach_only_their_own_pinhole() {
    let mut p = P::new(|_| {});
    p.advance(Duration::from_millis(10));
    let a = addr("10.0.0.2:44000");
    let b = addr("10.0.0.2:44100");
    for (local, key) in [(a, b"a".to_vec()), (b, b"b".to_vec())] {
        p.cl.open_pinhole(
            p.now,
            PinholeRequest {
                local,
                relay: None,
                rtcp: RtcpMode::Mux,
                key,
                inside: None,
            },
        )
        .unwrap();
    }
    p.advance(Duration::from_millis(10));
    // Media keeps `a` busy; `b` is silent and needs its keepalives.
    for _ in 0..6 {
        p.advance(Duration::from_secs(10));
        let now = p.now;
        p.cl.handle_traffic(now, a);
    }
    let from = |p: &P, l: SocketAddr| {
        p.sent
            .iter()
            .filter(|t| t.local == l && t.payload[..2] == [0x00, 0x11])
            .count()
    };
    assert_eq!(from(&p, a), 0);
    assert_eq!(from(&p, b), 3);
}

fn opened_relay(p: &P, id: PinholeId) -> Option<SocketAddr> {
    p.events.iter().find_map(|e| match e {
        Event::PinholeOpened { id: i, relay, .. } if *i == id => Some(*relay),
        _ => None,
    })
}

fn commands(p: &mut P) -> Vec<RelayCommand> {
    std::iter::from_fn(|| p.cl.poll_command()).collect()
}

#[test]
fn relay_activity_on_a_mapping_suppresses_keepalives_and_silence_does_not() {
    let mut p = P::new(|_| {});
    p.advance(Duration::from_millis(10));
    let b = addr("10.0.0.2:45000");
    let id =
        p.cl.open_pinhole(
            p.now,
            PinholeRequest {
                local: b,
                relay: None,
                rtcp: RtcpMode::Mux,
                key: b"busy".to_vec(),
                inside: Some(addr("10.0.0.77:8000")),
            },
        )
        .unwrap();
    p.advance(Duration::from_millis(10));
    let relay = opened_relay(&p, id).unwrap();
    let keepalives = |p: &P| {
        p.sent
            .iter()
            .filter(|t| t.remote == relay && t.payload[..2] == [0x00, 0x11])
            .count()
    };
    // The relay reports media sent out of B every 500 ms for 60 s (three
    // refresh intervals): never a keepalive.
    for _ in 0..120 {
        p.advance(Duration::from_millis(500));
        let now = p.now;
        p.cl.handle_relay(now, RelayReport::LocalActivity { local: b, at: now });
    }
    assert_eq!(keepalives(&p), 0, "busy pinhole: no keepalive");
    // Reports for other sockets or legs change nothing.
    for _ in 0..3 {
        p.advance(Duration::from_secs(10));
        let now = p.now;
        let other = addr("10.0.0.2:45002");
        p.cl.handle_relay(
            now,
            RelayReport::LocalActivity {
                local: other,
                at: now,
            },
        );
        p.cl.handle_relay(
            now,
            RelayReport::Activity {
                leg: crate::types::LegId(1),
                at: now,
            },
        );
    }
    assert_eq!(keepalives(&p), 1, "silent for 20 s: one keepalive");
    assert_eq!(p.cl.stats().keepalives, 1);
}

#[test]
fn a_smart_terminal_pinhole_hands_its_port_to_the_application() {
    let mut p = P::new(|_| {});
    p.advance(Duration::from_millis(10));
    let a = addr("10.0.0.2:46000");
    let id =
        p.cl.open_pinhole(
            p.now,
            PinholeRequest {
                local: a,
                relay: None,
                rtcp: RtcpMode::Pair,
                key: b"fig8".to_vec(),
                inside: None,
            },
        )
        .unwrap();
    p.advance(Duration::from_millis(10));
    let relay = opened_relay(&p, id).unwrap();
    assert_eq!(
        commands(&mut p),
        vec![
            RelayCommand::DeliverLocal {
                local: a,
                outside: relay
            },
            RelayCommand::DeliverLocal {
                local: addr("10.0.0.2:46001"),
                outside: SocketAddr::new(relay.ip(), relay.port() + 1),
            },
        ]
    );
    p.cl.close_pinhole(id).unwrap();
    assert_eq!(
        commands(&mut p),
        vec![
            RelayCommand::UnmapLocal { local: a },
            RelayCommand::UnmapLocal {
                local: addr("10.0.0.2:46001")
            },
        ]
    );
}

/// A fresh MPR engine (a restart: new nonce secret, no routes, no legs).
fn restarted_mpr(p: &P, f: impl FnOnce(&mut mpr::NetworkConfig)) -> mpr::Engine {
    let mut mc = mpr::Config::new("203.0.113.10".parse().unwrap(), [9; 32]);
    let mut net = mpr::NetworkConfig::new("corp1", CRED.to_vec());
    f(&mut net);
    mc.networks.push(net);
    mpr::Engine::new(mc, p.now).unwrap()
}

#[test]
fn after_an_mpr_restart_a_cmph_re_registers_and_then_succeeds() {
    let mut p = P::new(|_| {});
    p.advance(Duration::from_millis(10));
    let registered_before = p.cl.stats().registrations_ok;
    let retries_before = p.cl.stats().nonce_retries;
    p.mpr = restarted_mpr(&p, |_| {});
    p.events.clear();
    // Fig. 11 right after the restart, long before the next refresh: the
    // reserve meets 438 (the old nonce), then 480 (no route).
    let id =
        p.cl.open_pinhole(
            p.now,
            PinholeRequest {
                local: addr("10.0.0.2:47000"),
                relay: None,
                rtcp: RtcpMode::Mux,
                key: b"after-restart".to_vec(),
                inside: Some(addr("10.0.0.77:8000")),
            },
        )
        .unwrap();
    p.advance(Duration::from_millis(10));
    assert_eq!(p.cl.stats().nonce_retries, retries_before + 1, "one 438");
    assert!(p.mpr.stats().stale_nonces >= 1);
    assert!(
        p.events
            .iter()
            .any(|e| matches!(e, Event::Registered { .. })),
        "re-registered at once: {:?}",
        p.events
    );
    assert!(p.mpr.route("corp1", Protocol::Sip).is_some());
    assert!(opened_relay(&p, id).is_some(), "{:?}", p.events);
    assert!(
        !p.events
            .iter()
            .any(|e| matches!(e, Event::PinholeFailed { .. } | Event::Alarm { .. })),
        "{:?}",
        p.events
    );
    assert_eq!(p.cl.stats().registrations_ok, registered_before + 1);
    // Every request went out padded to the largest unverified answer, so
    // the first MPR's challenge and the restarted one's 438 came back
    // (spec §2.3); indications are never answered and stay small.
    assert_eq!(p.mpr.stats().amplification_drops, 0);
    let requests: Vec<usize> = p
        .sent
        .iter()
        .filter_map(|t| wire::Message::decode(&t.payload).ok())
        .filter(|m| m.class() == Class::Request)
        .map(|m| m.as_bytes().len())
        .collect();
    assert!(requests.len() >= 5, "{requests:?}");
    assert!(
        requests.iter().all(|&n| n >= wire::ANSWERABLE_LEN),
        "{requests:?}"
    );
}

#[test]
fn a_cmph_parked_on_480_fails_when_re_registration_is_refused() {
    let mut p = P::new(|_| {});
    p.advance(Duration::from_millis(10));
    // The restarted MPR no longer lets corp1 register SIP.
    p.mpr = restarted_mpr(&p, |n| n.protocols = vec![Protocol::Mgcp]);
    p.events.clear();
    let id =
        p.cl.open_pinhole(
            p.now,
            PinholeRequest {
                local: addr("10.0.0.2:47100"),
                relay: None,
                rtcp: RtcpMode::Mux,
                key: b"refused".to_vec(),
                inside: None,
            },
        )
        .unwrap();
    p.advance(Duration::from_millis(10));
    assert!(p.events.contains(&Event::PinholeFailed {
        id,
        failure: Failure::Refused(ErrorCode::NOT_REGISTERED),
    }));
    assert!(p.events.iter().any(|e| matches!(
        e,
        Event::Alarm {
            failure: Failure::Refused(ErrorCode::FORBIDDEN),
            ..
        }
    )));
    assert!(
        commands(&mut p).contains(&RelayCommand::UnmapLocal {
            local: addr("10.0.0.2:47100")
        }),
        "the failed pinhole's port is released"
    );
    let cmph = |p: &P| {
        p.sent
            .iter()
            .filter(|t| t.payload[..2] == [0x02, 0x82])
            .count()
    };
    let sent = cmph(&p);
    p.advance(Duration::from_secs(10));
    assert_eq!(cmph(&p), sent, "the failed CMPH is not sent again");
}

#[test]
fn deregister_removes_the_route_at_once_and_the_engine_goes_quiet() {
    let mut p = P::new(|_| {});
    p.advance(Duration::from_millis(10));
    let b = addr("10.0.0.2:47200");
    p.cl.open_pinhole(
        p.now,
        PinholeRequest {
            local: b,
            relay: None,
            rtcp: RtcpMode::Mux,
            key: b"k".to_vec(),
            inside: Some(addr("10.0.0.77:8000")),
        },
    )
    .unwrap();
    p.advance(Duration::from_millis(10));
    let _ = commands(&mut p);
    assert!(p.mpr.route("corp1", Protocol::Sip).is_some());
    let now = p.now;
    assert!(p.cl.deregister(now));
    assert!(p.cl.deregistering());
    assert_eq!(
        commands(&mut p),
        vec![RelayCommand::UnmapLocal { local: b }]
    );
    let t = p.cl.poll_transmit().unwrap();
    let msg = Message::decode(&t.payload).unwrap();
    assert_eq!((msg.method(), msg.lifetime()), (Method::Register, Some(0)));
    assert_eq!(t.local, addr("10.0.0.2:5060"));
    // Deliver it (the harness only sees what it polls itself).
    let _ = p.mpr.handle_datagram(
        now,
        Receive {
            local: t.remote,
            remote: public(t.local),
            bytes: &t.payload,
            flow: Default::default(),
        },
    );
    p.advance(Duration::from_millis(10));
    assert!(
        p.mpr.route("corp1", Protocol::Sip).is_none(),
        "gone at once"
    );
    assert!(!p.cl.deregistering());
    assert_eq!(p.events.last(), Some(&Event::Deregistered));
    assert_eq!(p.cl.registered_pinhole(), None);
    // Nothing more: no refresh, no keepalive, no new pinholes.
    let sent = p.sent.len();
    p.advance(Duration::from_secs(3600));
    assert_eq!(p.sent.len(), sent);
    let req = PinholeRequest {
        local: b,
        relay: None,
        rtcp: RtcpMode::Mux,
        key: b"k".to_vec(),
        inside: None,
    };
    assert_eq!(
        p.cl.open_pinhole(p.now, req),
        Err(ClientError::NotRegistered)
    );
    assert!(!p.cl.deregister(p.now), "already deregistered");
}

#[test]
fn an_unanswered_deregistration_times_out_without_an_alarm() {
    let mut p = P::new(|c| {
        c.retransmit = Retransmit {
            rto: Duration::from_millis(100),
            rc: 3,
            rm: 4,
        };
    });
    p.advance(Duration::from_millis(10));
    p.blackhole = true;
    let now = p.now;
    assert!(p.cl.deregister(now));
    p.advance(Duration::from_millis(10));
    assert!(p.cl.deregistering());
    p.advance(Duration::from_secs(2));
    assert!(!p.cl.deregistering());
    assert!(
        !p.events
            .iter()
            .any(|e| matches!(e, Event::Alarm { .. } | Event::Deregistered))
    );
    assert_eq!(p.cl.stats().registrations_sent, 2);
    let sent = p.sent.len();
    p.advance(Duration::from_secs(120));
    assert_eq!(p.sent.len(), sent, "no retry after a shutdown");
}

#[test]
fn deregister_before_any_registration_sends_nothing() {
    let mut p = P::new(|_| {});
    let now = p.now;
    assert!(!p.cl.deregister(now));
    assert!(p.cl.poll_transmit().is_none());
    p.advance(Duration::from_secs(60));
    assert!(p.sent.is_empty());
}

#[test]
fn reserves_refused_for_lack_of_ports_back_off_instead_of_storming() {
    // One relay port pair: the first pinhole takes it.
    let mut p = P::with(
        |m| m.ports = crate::ports::PortRange::new(30_000, 30_001).unwrap(),
        |_| {},
    );
    p.advance(Duration::from_millis(10));
    let req = |port: u16| PinholeRequest {
        local: SocketAddr::new("10.0.0.2".parse().unwrap(), port),
        relay: None,
        rtcp: RtcpMode::Mux,
        key: format!("k{port}").into_bytes(),
        inside: None,
    };
    let first = p.cl.open_pinhole(p.now, req(47_000)).unwrap();
    p.advance(Duration::from_millis(10));
    assert!(matches!(p.events.last(), Some(Event::PinholeOpened { id, .. }) if *id == first));
    // Calls keep coming, 10 a second for 20 s: the MPR sees a reserve
    // only when the back-off (1, 2, 4, 8, 16 s) has run out.
    let start = p.now;
    let (mut refused_locally, mut sent) = (0, 0);
    for i in 0..200u16 {
        p.run_until(start + Duration::from_millis(100) * u32::from(i));
        match p.cl.open_pinhole(p.now, req(47_002 + 2 * i)) {
            Ok(_) => sent += 1,
            Err(ClientError::BackingOff) => refused_locally += 1,
            Err(e) => panic!("{e}"),
        }
    }
    p.advance(Duration::from_millis(100));
    // At 0, 1, 3, 7 and 15 s: five reserves, each refused with 508.
    assert_eq!(sent, 5, "reserves that reached the MPR");
    assert_eq!(refused_locally, 195);
    let s = p.cl.stats();
    assert_eq!((s.cmph_backoffs, s.cmph_held_back), (5, 195));
    assert_eq!(p.mpr.stats().ports_exhausted, 5);
    // A bind to a leg the MPR already planned is never held back.
    let bind = PinholeRequest {
        relay: Some(addr("203.0.113.10:30000")),
        ..req(48_000)
    };
    assert!(p.cl.open_pinhole(p.now, bind).is_ok());
    // Ports free again: the next reserve after the back-off opens and
    // clears it.
    p.cl.close_pinhole(first).unwrap();
    p.mpr = restarted_mpr(&p, |_| {});
    p.advance(Duration::from_secs(40));
    let id = p.cl.open_pinhole(p.now, req(49_000)).unwrap();
    p.advance(Duration::from_millis(50));
    assert!(
        p.events
            .iter()
            .any(|e| matches!(e, Event::PinholeOpened { id: x, .. } if *x == id)),
        "{:?}",
        p.events
    );
    assert!(
        p.cl.open_pinhole(p.now, req(49_002)).is_ok(),
        "back-off cleared"
    );
}

/// RFC 8489 §6.2.2: over a stream the Registration is sent once and times
/// out after the whole UDP schedule (here 100 + 200 + 400 ms); it goes up
/// the connection (its flow), and a reconnect sends what is in flight once
/// more.
#[test]
fn over_a_stream_requests_are_not_retransmitted_but_resent_after_a_reconnect() {
    let mut p = P::new(|c| {
        c.upstream = Transport::Tls;
        c.retransmit = Retransmit {
            rto: Duration::from_millis(100),
            rc: 3,
            rm: 4,
        };
        c.retry_min = Duration::from_secs(5);
    });
    p.blackhole = true;
    p.advance(Duration::from_millis(500));
    assert_eq!(p.registrations_sent(), 1, "no retransmission on a stream");
    assert_eq!(p.sent[0].flow, Flow::over(Transport::Tls));
    // The connection is replaced: the request in flight goes once more.
    p.cl.handle_reconnect(p.now);
    p.advance(Duration::from_millis(1));
    assert_eq!(p.registrations_sent(), 2);
    assert_eq!(p.cl.stats().reconnects, 1);
    assert!(p.events.is_empty());
    // Ti = 100 × (2² − 1) + 100 × 4 = 700 ms after it was sent.
    p.advance(Duration::from_millis(200));
    assert!(
        matches!(
            p.events[..],
            [Event::Alarm {
                failure: Failure::Timeout,
                ..
            }]
        ),
        "{:?}",
        p.events
    );
    assert_eq!(
        Retransmit::default().reliable().rto,
        Duration::from_millis(39_500)
    );
}
