//! MPR engine costs: one CMPH (decode + verify + answer), one registration
//! refresh, one media-intent round with two streams; and the same with 1k
//! and 1M registrations / calls in the tables, to show O(1) lookups.

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods
)]

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use pinhole_core::intent::{IntentKind, MediaEndpoint, MediaIntent, Origin};
use pinhole_core::mpr::{Config, Engine, NetworkConfig};
use pinhole_core::ports::PortRange;
use pinhole_core::wire::{Builder, Class, Message, Method, Protocol, RtcpMode, TransactionId};
use pinhole_core::{CallKey, Receive, Side};

const CONTROL: &str = "203.0.113.10:5060";

struct Bench {
    mpr: Engine,
    now: Instant,
    control: SocketAddr,
    tid: u64,
}

fn net_name(i: usize) -> String {
    format!("net{i}")
}

fn cred(i: usize) -> Vec<u8> {
    format!("credential-of-network-{i}").into_bytes()
}

fn src(i: usize) -> SocketAddr {
    let i = i as u32;
    SocketAddr::new(
        std::net::Ipv4Addr::from(0x0A00_0000 + (i >> 8)).into(),
        10_000 + (i & 0xff) as u16,
    )
}

impl Bench {
    fn new(networks: usize) -> Self {
        let now = Instant::now();
        let mut cfg = Config::new("203.0.113.10".parse().unwrap(), [5; 32]);
        cfg.ports = PortRange::new(1024, 65535).unwrap();
        cfg.timers.nonce_lifetime = Duration::from_secs(3600);
        cfg.timers.port_quarantine = Duration::from_secs(1);
        for i in 0..networks {
            cfg.networks.push(NetworkConfig::new(net_name(i), cred(i)));
        }
        let mut b = Self {
            mpr: Engine::new(cfg, now).unwrap(),
            now,
            control: CONTROL.parse().unwrap(),
            tid: 0,
        };
        for i in 0..networks {
            b.register(i);
        }
        b
    }

    fn next_tid(&mut self) -> TransactionId {
        self.tid += 1;
        let mut t = [0u8; 12];
        t[..8].copy_from_slice(&self.tid.to_be_bytes());
        TransactionId(t)
    }

    fn send(&mut self, local: SocketAddr, remote: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
        let _ = self.mpr.handle_datagram(
            self.now,
            Receive {
                local,
                remote,
                bytes,
                flow: Default::default(),
            },
        );
        let mut last = None;
        while let Some(t) = self.mpr.poll_transmit() {
            last = Some(t.payload);
        }
        last
    }

    /// Registers network i (challenge + request) and returns its nonce.
    fn register(&mut self, i: usize) -> Vec<u8> {
        let tid = self.next_tid();
        let r = self
            .send(self.control, src(i), &register(tid, i, None))
            .unwrap();
        let nonce = Message::decode(&r).unwrap().nonce().unwrap().to_vec();
        let tid = self.next_tid();
        let r = self
            .send(self.control, src(i), &register(tid, i, Some(&nonce)))
            .unwrap();
        Message::decode(&r).unwrap().nonce().unwrap().to_vec()
    }
}

fn register(tid: TransactionId, i: usize, nonce: Option<&[u8]>) -> Vec<u8> {
    let mut buf = [0u8; 256];
    let mut b = Builder::new(&mut buf, Method::Register, Class::Request, tid).unwrap();
    b.username(&net_name(i)).unwrap();
    b.protocol(Protocol::Sip).unwrap();
    b.lifetime(600).unwrap();
    if let Some(n) = nonce {
        b.nonce(n).unwrap();
    }
    let n = b.finish(Some(&cred(i))).unwrap();
    buf[..n].to_vec()
}

fn cmph(tid: TransactionId, i: usize, nonce: &[u8], key: Option<&[u8]>) -> Vec<u8> {
    let mut buf = [0u8; 256];
    let mut b = Builder::new(&mut buf, Method::Cmph, Class::Request, tid).unwrap();
    b.username(&net_name(i)).unwrap();
    if let Some(k) = key {
        b.leg_key(k).unwrap();
        b.rtcp_mode(RtcpMode::Mux).unwrap();
    }
    b.nonce(nonce).unwrap();
    let n = b.finish(Some(&cred(i))).unwrap();
    buf[..n].to_vec()
}

/// One CMPH bind at a relay port: decode, MESSAGE-INTEGRITY-SHA256 check,
/// nonce check, replay check, bind, encode + sign the response.
fn bench_cmph(c: &mut Criterion) {
    let mut b = Bench::new(1);
    let nonce = b.register(0);
    let tid = b.next_tid();
    let reserve = cmph(tid, 0, &nonce, Some(b"bench-leg"));
    let resp = b.send(b.control, src(0), &reserve).unwrap();
    let relay = Message::decode(&resp)
        .unwrap()
        .xor_relayed_address()
        .unwrap();
    c.bench_function("mpr/cmph_bind_decode_verify_answer", |bench| {
        bench.iter_custom(|iters| {
            let msgs: Vec<Vec<u8>> = (0..iters)
                .map(|_| {
                    let t = b.next_tid();
                    cmph(t, 0, &nonce, None)
                })
                .collect();
            let start = Instant::now();
            for m in &msgs {
                black_box(b.send(relay, src(0), m));
            }
            start.elapsed()
        })
    });
}

/// Baseline in the same run: a generic STUN stack (stun-rs) only decoding
/// and validating the same CMPH request (MESSAGE-INTEGRITY-SHA256 and
/// FINGERPRINT), with no state and no answer.
fn bench_baseline(c: &mut Criterion) {
    use stun_rs::{DecoderContextBuilder, HMACKey, MessageDecoderBuilder};
    let mut b = Bench::new(1);
    let nonce = b.register(0);
    let tid = b.next_tid();
    let msg = cmph(tid, 0, &nonce, None);
    let key = HMACKey::new_short_term(std::str::from_utf8(&cred(0)).unwrap()).unwrap();
    let ctx = DecoderContextBuilder::default()
        .with_key(key)
        .with_validation()
        .build();
    let decoder = MessageDecoderBuilder::default().with_context(ctx).build();
    assert!(decoder.decode(&msg).is_ok());
    c.bench_function("baseline/stun_rs_decode_validate_cmph", |bench| {
        bench.iter(|| black_box(decoder.decode(black_box(&msg)).is_ok()))
    });
}

/// One registration refresh, with 1k and 1M networks registered.
fn bench_refresh(c: &mut Criterion) {
    let mut g = c.benchmark_group("mpr/registration_refresh");
    g.sample_size(30);
    for networks in [1_000usize, 1_000_000] {
        let mut b = Bench::new(networks);
        let mut nonces: Vec<Vec<u8>> = Vec::new();
        let probe: Vec<usize> = (0..64).map(|k| k * (networks / 64)).collect();
        for &i in &probe {
            nonces.push(b.register(i));
        }
        g.bench_with_input(
            BenchmarkId::from_parameter(networks),
            &networks,
            |bench, _| {
                bench.iter_custom(|iters| {
                    let msgs: Vec<(usize, Vec<u8>)> = (0..iters as usize)
                        .map(|k| {
                            let j = k % probe.len();
                            let t = b.next_tid();
                            (probe[j], register(t, probe[j], Some(&nonces[j])))
                        })
                        .collect();
                    let start = Instant::now();
                    for (i, m) in &msgs {
                        black_box(b.send(b.control, src(*i), m));
                    }
                    start.elapsed()
                })
            },
        );
    }
    g.finish();
}

/// One media-intent round: offer (2 streams, public → corp), answer (plain
/// terminal: latching armed), teardown. With 1k and 1M other calls in the table.
fn bench_intents(c: &mut Criterion) {
    let mut g = c.benchmark_group("mpr/intent_round_2_streams");
    g.sample_size(30);
    for calls in [1_000usize, 1_000_000] {
        let mut b = Bench::new(1);
        // Calls whose streams are all disabled hold no ports, so the call
        // table can grow past the relay port count.
        let off = [MediaEndpoint::rtp(0, "192.0.2.1:0".parse().unwrap())];
        for k in 0..calls {
            let intent = MediaIntent {
                kind: IntentKind::Offer,
                from: Side::A,
                origin: Origin::Public,
                toward: Origin::Network("net0"),
                endpoints: &off,
                stranger: None,
            };
            b.mpr
                .handle_intent(b.now, &CallKey::new(format!("filler-{k}")), &intent)
                .unwrap();
        }
        let offer_eps = [
            MediaEndpoint::rtp(0, "192.0.2.7:4000".parse().unwrap()),
            MediaEndpoint::rtp(1, "192.0.2.7:4002".parse().unwrap()),
        ];
        let answer_eps = [
            MediaEndpoint::rtp(0, "10.1.0.5:7000".parse().unwrap()),
            MediaEndpoint::rtp(1, "10.1.0.5:7002".parse().unwrap()),
        ];
        let mut n = 0u64;
        g.bench_with_input(BenchmarkId::from_parameter(calls), &calls, |bench, _| {
            bench.iter(|| {
                n += 1;
                b.now += Duration::from_millis(1);
                let key = CallKey::new(n.to_be_bytes());
                let offer = MediaIntent {
                    kind: IntentKind::Offer,
                    from: Side::A,
                    origin: Origin::Public,
                    toward: Origin::Network("net0"),
                    endpoints: &offer_eps,
                    stranger: None,
                };
                let p1 = b.mpr.handle_intent(b.now, &key, &offer).unwrap();
                let answer = MediaIntent {
                    kind: IntentKind::Answer,
                    from: Side::B,
                    origin: Origin::Network("net0"),
                    toward: Origin::Public,
                    endpoints: &answer_eps,
                    stranger: None,
                };
                let p2 = b.mpr.handle_intent(b.now, &key, &answer).unwrap();
                let bye = MediaIntent {
                    kind: IntentKind::Teardown,
                    from: Side::A,
                    origin: Origin::Public,
                    toward: Origin::Network("net0"),
                    endpoints: &[],
                    stranger: None,
                };
                b.mpr.handle_intent(b.now, &key, &bye).unwrap();
                while b.mpr.poll_command().is_some() {}
                b.mpr.handle_timeout(b.now);
                black_box((p1, p2))
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench_cmph, bench_baseline, bench_refresh, bench_intents
}
criterion_main!(benches);
