//! Property test of the client engine against the real MPR engine: under any
//! pattern of loss, restarts and pinhole requests, the client never panics,
//! every pinhole request ends in exactly one Opened or Failed event, and once
//! the path heals the client is registered again with its alarm cleared.

#![allow(missing_docs, clippy::unwrap_used, clippy::disallowed_methods)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pinhole_core::Receive;
use pinhole_core::client::{self, Event, PinholeRequest};
use pinhole_core::mpr;
use pinhole_core::wire::{Protocol, RtcpMode};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    /// Advance time by this many ms, dropping each datagram with probability drop/8.
    Run {
        ms: u32,
        drop: u8,
    },
    Open {
        port: u16,
        reserve: bool,
        mux: bool,
    },
    Close(u8),
    RestartMpr,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u32..20_000, 0u8..9).prop_map(|(ms, drop)| Op::Run { ms, drop }),
        2 => (0u16..8, any::<bool>(), any::<bool>()).prop_map(|(port, reserve, mux)| Op::Open { port, reserve, mux }),
        1 => any::<u8>().prop_map(Op::Close),
        1 => Just(Op::RestartMpr),
    ]
}

fn public(a: SocketAddr) -> SocketAddr {
    SocketAddr::new([198, 51, 100, 1].into(), a.port())
}

fn inside(a: SocketAddr) -> SocketAddr {
    SocketAddr::new([10, 0, 0, 2].into(), a.port())
}

struct Pump {
    now: Instant,
    mpr: mpr::Engine,
    cl: client::Engine,
    coin: u64,
    events: Vec<Event>,
}

impl Pump {
    fn flip(&mut self, drop: u8) -> bool {
        // A small deterministic generator: the property must not depend on luck.
        self.coin = self
            .coin
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.coin >> 61) as u8) < drop
    }

    fn run(&mut self, ms: u32, drop: u8) {
        let until = self.now + Duration::from_millis(u64::from(ms));
        loop {
            self.cl.handle_timeout(self.now);
            self.mpr.handle_timeout(self.now);
            while let Some(t) = self.cl.poll_transmit() {
                if !self.flip(drop) {
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
            }
            while let Some(t) = self.mpr.poll_transmit() {
                if !self.flip(drop) {
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
            while self.mpr.poll_command().is_some() {}
            while self.cl.poll_command().is_some() {}
            while let Some(e) = self.cl.poll_event() {
                self.events.push(e);
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
                _ => return,
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn the_client_recovers_from_anything_once_the_path_heals(ops in prop::collection::vec(op(), 1..30)) {
        let now = Instant::now();
        let mut mc = mpr::Config::new([203, 0, 113, 10].into(), [1; 32]);
        mc.networks.push(mpr::NetworkConfig::new("corp1", b"k".to_vec()));
        let mut cc = client::Config::new("corp1", b"k".to_vec(), Protocol::Sip, "10.0.0.2:5060".parse().unwrap(), "203.0.113.10:5060".parse().unwrap(), [2; 32]);
        cc.retry_max = Duration::from_secs(8);
        let mut p = Pump { now, mpr: mpr::Engine::new(mc.clone(), now).unwrap(), cl: client::Engine::new(cc, now).unwrap(), coin: 7, events: Vec::new() };
        let mut requested = BTreeSet::new();
        let mut restarts = 2u8;
        for op in ops {
            match op {
                Op::Run { ms, drop } => p.run(ms, drop),
                Op::Open { port, reserve, mux } => {
                    let req = PinholeRequest {
                        local: SocketAddr::new([10, 0, 0, 2].into(), 40_000 + 2 * port),
                        relay: if reserve { None } else { Some("203.0.113.10:20000".parse().unwrap()) },
                        rtcp: if mux { RtcpMode::Mux } else { RtcpMode::Pair },
                        key: port.to_be_bytes().to_vec(),
                        inside: None,
                    };
                    if let Ok(id) = p.cl.open_pinhole(p.now, req) {
                        requested.insert(id);
                    }
                }
                Op::Close(i) => {
                    if let Some(id) = requested.iter().copied().nth(usize::from(i) % requested.len().max(1))
                        && p.cl.close_pinhole(id).is_ok() {
                            requested.remove(&id);
                        }
                }
                Op::RestartMpr if restarts > 0 => {
                    restarts -= 1;
                    mc.rng_seed = [restarts + 10; 32];
                    p.mpr = mpr::Engine::new(mc.clone(), p.now).unwrap();
                }
                Op::RestartMpr => {}
            }
        }
        // Heal the path: a minute without loss.
        p.run(60_000, 0);
        prop_assert!(p.cl.registered_pinhole().is_some(), "registered after healing");
        prop_assert!(!p.cl.alarm(), "alarm cleared after healing");
        prop_assert!(p.mpr.route("corp1", Protocol::Sip).is_some(), "events {:?} client {:?}", p.events, p.cl.stats());
        // Every pinhole still requested ended exactly once (open or failed).
        for id in requested {
            let ends = p.events.iter().filter(|e| matches!(e, Event::PinholeOpened { id: i, .. } | Event::PinholeFailed { id: i, .. } if *i == id)).count();
            prop_assert_eq!(ends, 1, "pinhole {:?} ended {} times", id, ends);
        }
    }
}
