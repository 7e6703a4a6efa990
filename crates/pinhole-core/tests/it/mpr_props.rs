//! Property tests of the MPR engine: random sequences of media intents,
//! relay reports and time, checked after every step for leaked legs and
//! ports, stable plans for retransmissions, and plans that only name relay
//! addresses.

#![allow(missing_docs, clippy::unwrap_used, clippy::disallowed_methods)]

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use pinhole_core::intent::{IntentKind, MediaEndpoint, MediaIntent, Origin};
use pinhole_core::mpr::{Config, Engine, NetworkConfig};
use pinhole_core::ports::PortRange;
use pinhole_core::relay::RelayReport;
use pinhole_core::wire::{Builder, Class, Message, Method, Protocol, RtcpMode, TransactionId};
use pinhole_core::{CallKey, Component, LegId, Receive, Side};
use proptest::prelude::*;

const RELAY: &str = "203.0.113.10";

#[derive(Clone, Debug)]
enum Op {
    Intent {
        call: u8,
        kind: u8,
        from: bool,
        origin_net: bool,
        toward_net: bool,
        eps: Vec<(u16, u8, u8)>,
    },
    Advance(u32),
    Activity(u8),
    Latch(u8, bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..4, 0u8..4, any::<bool>(), any::<bool>(), any::<bool>(), prop::collection::vec((0u16..3, 0u8..6, 0u8..3), 0..4))
            .prop_map(|(call, kind, from, origin_net, toward_net, eps)| Op::Intent { call, kind, from, origin_net, toward_net, eps }),
        1 => (0u32..90_000).prop_map(Op::Advance),
        1 => any::<u8>().prop_map(Op::Activity),
        1 => (any::<u8>(), any::<bool>()).prop_map(|(l, ok)| Op::Latch(l, ok)),
    ]
}

fn endpoint(index: u16, a: u8, m: u8) -> MediaEndpoint {
    let addr: SocketAddr = match a {
        0 => "192.0.2.7:4000".parse().unwrap(),
        1 => "192.0.2.8:5000".parse().unwrap(),
        2 => "10.1.0.5:7000".parse().unwrap(),
        3 => "192.0.2.7:0".parse().unwrap(),
        4 => "0.0.0.0:4000".parse().unwrap(),
        _ => "[2001:db8::7]:4000".parse().unwrap(),
    };
    let rtcp = [RtcpMode::Pair, RtcpMode::Mux, RtcpMode::None][usize::from(m)];
    MediaEndpoint {
        index,
        addr,
        rtcp,
        rtcp_addr: None,
    }
}

fn registered_engine(now: Instant) -> Engine {
    let mut cfg = Config::new(RELAY.parse().unwrap(), [3; 32]);
    cfg.ports = PortRange::new(30_000, 30_063).unwrap();
    cfg.networks
        .push(NetworkConfig::new("corp1", b"k1".to_vec()));
    let mut mpr = Engine::new(cfg, now).unwrap();
    let control: SocketAddr = "203.0.113.10:5060".parse().unwrap();
    let fw: SocketAddr = "198.51.100.1:20000".parse().unwrap();
    let mut nonce: Option<Vec<u8>> = None;
    for t in 1..=2u8 {
        let mut buf = [0u8; 256];
        let mut b = Builder::new(
            &mut buf,
            Method::Register,
            Class::Request,
            TransactionId([t; 12]),
        )
        .unwrap();
        b.username("corp1").unwrap();
        b.protocol(Protocol::Sip).unwrap();
        if let Some(n) = &nonce {
            b.nonce(n).unwrap();
        }
        b.pad_to(pinhole_core::wire::ANSWERABLE_LEN, true).unwrap();
        let n = b.finish(Some(b"k1")).unwrap();
        let _ = mpr.handle_datagram(
            now,
            Receive {
                local: control,
                remote: fw,
                bytes: &buf[..n],
                flow: Default::default(),
            },
        );
        let resp = mpr.poll_transmit().unwrap();
        nonce = Message::decode(&resp.payload)
            .unwrap()
            .nonce()
            .map(<[u8]>::to_vec);
    }
    assert!(mpr.route("corp1", Protocol::Sip).is_some());
    mpr
}

fn check_invariants(mpr: &Engine) {
    let (free, in_use, quarantined, cap) = mpr.port_usage();
    assert_eq!(free + in_use + quarantined, cap, "port accounting");
    assert_eq!(
        in_use as u64,
        mpr.stats().legs_open,
        "one port pair per open leg, none leaked"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_intent_sequences_leak_nothing_and_replans_are_stable(ops in prop::collection::vec(op(), 1..40)) {
        let mut now = Instant::now();
        let mut mpr = registered_engine(now);
        let relay_ip: IpAddr = RELAY.parse().unwrap();
        let mut max_leg = 0u64;
        for op in ops {
            match op {
                Op::Intent { call, kind, from, origin_net, toward_net, eps } => {
                    let mut eps: Vec<MediaEndpoint> = eps.into_iter().map(|(i, a, m)| endpoint(i, a, m)).collect();
                    // One description per stream index.
                    eps.sort_by_key(|e| e.index);
                    eps.dedup_by_key(|e| e.index);
                    let kind = [IntentKind::Offer, IntentKind::Answer, IntentKind::Modify, IntentKind::Teardown][usize::from(kind)];
                    let intent = MediaIntent {
                        kind,
                        from: if from { Side::A } else { Side::B },
                        origin: if origin_net { Origin::Network("corp1") } else { Origin::Public },
                        toward: if toward_net { Origin::Network("corp1") } else { Origin::Public },
                        endpoints: &eps,
                        stranger: None,
                    };
                    let key = CallKey::new([call]);
                    let first = mpr.handle_intent(now, &key, &intent);
                    check_invariants(&mpr);
                    if kind == IntentKind::Teardown {
                        prop_assert_eq!(first, Ok(Default::default()), "a teardown plans nothing");
                    } else if let Ok(plan) = &first {
                        prop_assert_eq!(plan.endpoints.len(), eps.len());
                        for (p, e) in plan.endpoints.iter().zip(&eps) {
                            prop_assert_eq!(p.index, e.index);
                            if e.is_disabled() {
                                prop_assert_eq!(p.addr, e.addr);
                                let legs = mpr.call_legs(&key, e.index).unwrap_or([None, None]);
                                prop_assert_eq!(legs, [None, None], "a disabled stream holds no legs");
                            } else if e.is_hold() {
                                prop_assert!(p.addr.ip().is_unspecified());
                            } else {
                                prop_assert_eq!(p.addr.ip(), relay_ip, "plans only name relay addresses");
                                prop_assert!((30_000..=30_063).contains(&p.addr.port()));
                            }
                        }
                        // The same message again (a retransmission) plans the same.
                        let again = mpr.handle_intent(now, &key, &intent);
                        prop_assert_eq!(&again, &first, "retransmission got another plan");
                        check_invariants(&mpr);
                    }
                    max_leg = max_leg.max(mpr.stats().legs_open + 64);
                }
                Op::Advance(ms) => {
                    now += Duration::from_millis(u64::from(ms));
                    mpr.handle_timeout(now);
                }
                Op::Activity(l) => {
                    mpr.handle_relay(now, RelayReport::Activity { leg: LegId(u64::from(l) % (max_leg + 1)), at: now });
                }
                Op::Latch(l, ok) => {
                    let source: SocketAddr = if ok { "198.51.100.1:41000".parse().unwrap() } else { "192.0.2.66:41000".parse().unwrap() };
                    mpr.handle_relay(now, RelayReport::Latched { leg: LegId(u64::from(l) % (max_leg + 1)), component: Component::Rtp, source });
                }
            }
            while mpr.poll_command().is_some() {}
            while mpr.poll_event().is_some() {}
            check_invariants(&mpr);
        }
        // Silence ends every call; quarantine returns every port.
        now += Duration::from_secs(61);
        mpr.handle_timeout(now);
        now += Duration::from_secs(31);
        mpr.handle_timeout(now);
        prop_assert_eq!(mpr.stats().legs_open, 0);
        prop_assert_eq!(mpr.stats().calls_open, 0);
        let (free, _, _, cap) = mpr.port_usage();
        prop_assert_eq!(free, cap, "every pair back after quarantine");
    }
}
