//! Overload behaviour of the whole relay, made deterministic with the
//! worker's test hook: forwarding is slowed to about 1 ms per packet, so a
//! few streams at a few hundred packets per second overload it.
//!
//! Loopback only; relay ports from 49500–49999 (the integration tests use
//! 49000–49499); every loop is bounded in count and time.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pinhole_core::relay::{RelayCommand, Remote};
use pinhole_core::types::{Component, LegId};

use super::worker::Hooks;
use super::{Relay, RelayConfig, RelayCounters};

/// The bound on every wait for something that should happen.
const WAIT: Duration = Duration::from_secs(10);

/// Opens `leg` on the first port of `ports` that is free.
fn open_leg(relay: &Relay, ports: &mut impl Iterator<Item = u16>, leg: LegId) -> SocketAddr {
    for port in ports {
        let rtp = SocketAddr::from(([127, 0, 0, 1], port));
        match relay.apply(RelayCommand::OpenLeg {
            leg,
            rtp,
            rtcp: None,
        }) {
            Ok(()) => return rtp,
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {}
            Err(e) => panic!("open {leg:?} at {rtp}: {e}"),
        }
    }
    panic!("no free relay port left for {leg:?}");
}

fn party() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_nonblocking(true).unwrap();
    s
}

fn addr(s: &UdpSocket) -> SocketAddr {
    s.local_addr().unwrap()
}

/// One direction of a call: `tx` sends to `port`, the relay sends on to
/// `rx`.
struct Stream {
    tx: UdpSocket,
    rx: UdpSocket,
    port: SocketAddr,
}

/// `n` calls, each connected, both remotes fixed.
fn streams(relay: &Relay, n: usize, ports: &mut impl Iterator<Item = u16>) -> Vec<Stream> {
    (0..n)
        .map(|i| {
            let (a, b) = (LegId(2 * i as u64 + 1), LegId(2 * i as u64 + 2));
            let st = Stream {
                tx: party(),
                rx: party(),
                port: open_leg(relay, ports, a),
            };
            open_leg(relay, ports, b);
            let set = |leg, s: &UdpSocket| {
                relay
                    .apply(RelayCommand::SetRemote {
                        leg,
                        component: Component::Rtp,
                        remote: Remote::Fixed(addr(s)),
                    })
                    .unwrap();
            };
            set(a, &st.tx);
            set(b, &st.rx);
            relay
                .apply(RelayCommand::Connect { leg: a, peer: b })
                .unwrap();
            st
        })
        .collect()
}

/// An RTP-looking packet carrying its stream, sequence number and send
/// time (ns since `origin`).
fn packet(stream: usize, seq: u32, origin: Instant) -> [u8; 24] {
    let mut p = [0u8; 24];
    p[0] = 0x80;
    p[4..8].copy_from_slice(&(stream as u32).to_be_bytes());
    p[8..12].copy_from_slice(&seq.to_be_bytes());
    let ns = origin.elapsed().as_nanos() as u64;
    p[16..24].copy_from_slice(&ns.to_be_bytes());
    p
}

/// One packet as the receiving party saw it.
#[derive(Clone, Copy, Debug)]
struct Arrival {
    seq: u32,
    sent_ns: u64,
    got_ns: u64,
}

/// Reads every stream's `rx` until `stop` is set and nothing more came for
/// 300 ms, or [`WAIT`] after `stop`: arrivals per stream.
fn receive(streams: &[Stream], origin: Instant, stop: &AtomicBool) -> Vec<Vec<Arrival>> {
    let mut got = vec![Vec::new(); streams.len()];
    let mut buf = [0u8; 64];
    let mut last = Instant::now();
    let mut stopped: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if stopped.is_none() && stop.load(Ordering::Acquire) {
            stopped = Some(now);
        }
        if stopped.is_some_and(|t| now - last > Duration::from_millis(300) || now - t > WAIT) {
            return got;
        }
        let mut any = false;
        for (i, s) in streams.iter().enumerate() {
            // Bounded per socket per sweep, so every stream is read.
            for _ in 0..64 {
                let Ok(n) = s.rx.recv(&mut buf) else { break };
                assert_eq!(n, 24);
                let seq = u32::from_be_bytes(buf[8..12].try_into().unwrap());
                let sent_ns = u64::from_be_bytes(buf[16..24].try_into().unwrap());
                let got_ns = origin.elapsed().as_nanos() as u64;
                got[i].push(Arrival {
                    seq,
                    sent_ns,
                    got_ns,
                });
                any = true;
            }
        }
        if any {
            last = Instant::now();
        } else {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

/// Sends `pps[i]` packets per second on stream `i` for `secs`, paced;
/// `sent[i][seq]` is when stream `i` sent `seq` (ns since `origin`).
fn send_phase(streams: &[Stream], sent: &mut [Vec<u64>], pps: &[u32], secs: f64, origin: Instant) {
    let base: Vec<usize> = sent.iter().map(Vec::len).collect();
    let total: Vec<usize> = pps
        .iter()
        .map(|&r| (f64::from(r) * secs) as usize)
        .collect();
    let start = Instant::now();
    loop {
        let el = start.elapsed().as_secs_f64();
        let mut done = true;
        for (i, s) in streams.iter().enumerate() {
            // Streams are staggered over one packet interval, as calls are.
            let rate = f64::from(pps[i]);
            let t = el - i as f64 / (streams.len() as f64 * rate);
            let due = if t < 0.0 { 0 } else { (t * rate) as usize + 1 }.min(total[i]);
            while sent[i].len() - base[i] < due {
                let p = packet(i, sent[i].len() as u32, origin);
                // A full buffer of our own socket would be the test's fault.
                s.tx.send_to(&p, s.port).unwrap();
                sent[i].push(u64::from_be_bytes(p[16..24].try_into().unwrap()));
            }
            done &= due == total[i];
        }
        if done {
            return;
        }
        assert!(el < secs + 5.0, "sender far behind");
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Gives the kernel time to turn receive timestamps on (see sockopt.rs).
fn settle() {
    std::thread::sleep(Duration::from_millis(100));
}

fn counters_until(relay: &Relay, done: impl Fn(&RelayCounters) -> bool) -> RelayCounters {
    let deadline = Instant::now() + WAIT;
    loop {
        let c = relay.counters();
        if done(&c) {
            return c;
        }
        assert!(Instant::now() < deadline, "counters never got there: {c:?}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn overload_is_shed_evenly_and_every_stream_recovers_within_a_second() {
    const STREAMS: usize = 16;
    // About 1 000 pps of forwarding capacity (1 ms per packet) against
    // 16 × 125 = 2 000 pps offered: 2× overload.
    const FLOOD_PPS: u32 = 125;
    const FLOOD_SECS: f64 = 2.0;
    const CALM_PPS: u32 = 5;
    const CALM_SECS: f64 = 3.0;
    let cfg = RelayConfig {
        workers: 1,
        batch: 8,
        max_queue_delay: Duration::from_millis(50),
        ..RelayConfig::default()
    };
    let hooks = Hooks {
        send_pause: Duration::from_millis(1),
    };
    let (relay, _events) = Relay::start_with(cfg, hooks).unwrap();
    let mut ports = 49500..49600;
    let streams = streams(&relay, STREAMS, &mut ports);
    settle();
    let origin = Instant::now();
    let stop = AtomicBool::new(false);
    let mut sent = vec![Vec::new(); STREAMS];
    let (got, flood_end_ns, flood_seq) = std::thread::scope(|scope| {
        let rx = scope.spawn(|| receive(&streams, origin, &stop));
        send_phase(
            &streams,
            &mut sent,
            &[FLOOD_PPS; STREAMS],
            FLOOD_SECS,
            origin,
        );
        let flood_end_ns = origin.elapsed().as_nanos() as u64;
        let flood_seq: Vec<u32> = sent.iter().map(|s| s.len() as u32).collect();
        send_phase(&streams, &mut sent, &[CALM_PPS; STREAMS], CALM_SECS, origin);
        stop.store(true, Ordering::Release);
        (rx.join().unwrap(), flood_end_ns, flood_seq)
    });

    // Shed, not queued: the relay dropped stale packets itself.
    let total: u64 = sent.iter().map(|s| s.len() as u64).sum();
    let delivered: u64 = got.iter().map(|g| g.len() as u64).sum();
    let c = counters_until(&relay, |c| c.packets_in + c.dropped_overflow == total);
    assert!(c.dropped_stale > 0, "no overload shed: {c:?}");
    assert_eq!(c.packets_in, c.packets_out + c.dropped(), "{c:?}");
    assert_eq!(c.dropped(), c.dropped_stale, "{c:?}");
    assert_eq!(c.packets_out, delivered, "{c:?}");

    // Evenly: every stream kept a similar share during the flood.
    let mut shares: Vec<f64> = got
        .iter()
        .zip(&flood_seq)
        .map(|(g, &n)| g.iter().filter(|a| a.seq < n).count() as f64 / f64::from(n))
        .collect();
    shares.sort_by(f64::total_cmp);
    let (min, median, max) = (shares[0], shares[STREAMS / 2], shares[STREAMS - 1]);
    assert!(
        min > 0.0 && min >= 0.5 * median && max <= 2.0 * median && max < 1.0,
        "per-stream delivery during the flood: min {min:.2} median {median:.2} max {max:.2}"
    );

    // What was relayed during the flood was not seconds late (a queueing
    // relay would be: ~1 000 pps of backlog builds up for 2 s).
    let mut flood_ms: Vec<f64> = got
        .iter()
        .zip(&flood_seq)
        .flat_map(|(g, &n)| g.iter().filter(move |a| a.seq < n))
        .map(|a| (a.got_ns - a.sent_ns) as f64 / 1e6)
        .collect();
    flood_ms.sort_by(f64::total_cmp);
    let p50 = flood_ms[flood_ms.len() / 2];
    assert!(p50 < 200.0, "median latency during the flood {p50:.1} ms");

    // Recovery: for every stream, what it sends from 1 s after the flood
    // on gets through (a late hiccup may cost one packet) and promptly.
    let late_from = flood_end_ns + 1_000_000_000;
    for (i, (g, sent)) in got.iter().zip(&sent).enumerate() {
        let want = sent.iter().filter(|&&t| t >= late_from).count();
        let mut ms: Vec<f64> = g
            .iter()
            .filter(|a| a.sent_ns >= late_from)
            .map(|a| (a.got_ns - a.sent_ns) as f64 / 1e6)
            .collect();
        ms.sort_by(f64::total_cmp);
        assert!(want >= 5, "stream {i}: only {want} packets after recovery");
        assert!(
            ms.len() * 5 >= want * 4,
            "stream {i}: {} of {want} packets delivered after recovery",
            ms.len()
        );
        let p50 = ms[ms.len() / 2];
        assert!(p50 < 50.0, "stream {i}: {p50:.1} ms late after recovery");
    }
}

#[test]
fn a_flooding_leg_does_not_starve_the_others() {
    const STREAMS: usize = 9;
    const SECS: f64 = 2.0;
    // Stream 0 floods at 3 000 pps, about twice what the slowed worker
    // forwards; the others are plain 50 pps voice streams. A generous age
    // budget, so scheduling hiccups on a busy machine cost no voice packet.
    let mut pps = [50; STREAMS];
    pps[0] = 3000;
    let cfg = RelayConfig {
        workers: 1,
        batch: 8,
        max_queue_delay: Duration::from_millis(100),
        ..RelayConfig::default()
    };
    let hooks = Hooks {
        send_pause: Duration::from_micros(500),
    };
    let (relay, _events) = Relay::start_with(cfg, hooks).unwrap();
    let mut ports = 49700..49800;
    let streams = streams(&relay, STREAMS, &mut ports);
    settle();
    let origin = Instant::now();
    let stop = AtomicBool::new(false);
    let mut sent = vec![Vec::new(); STREAMS];
    let got = std::thread::scope(|scope| {
        let rx = scope.spawn(|| receive(&streams, origin, &stop));
        send_phase(&streams, &mut sent, &pps, SECS, origin);
        stop.store(true, Ordering::Release);
        rx.join().unwrap()
    });
    let c = relay.counters();
    // Shed by the relay (stale) or, once the flooder's queue is full, by
    // the kernel: either way at no cost to the others.
    assert!(
        c.dropped_stale + c.dropped_overflow > 0,
        "the flood was not shed: {c:?}"
    );
    let flood_share = got[0].len() as f64 / sent[0].len() as f64;
    assert!(
        flood_share < 0.9,
        "the flooder got {flood_share:.2} through"
    );
    for i in 1..STREAMS {
        let share = got[i].len() as f64 / sent[i].len() as f64;
        let mut ms: Vec<f64> = got[i]
            .iter()
            .map(|a| (a.got_ns - a.sent_ns) as f64 / 1e6)
            .collect();
        ms.sort_by(f64::total_cmp);
        assert!(
            share >= 0.7,
            "stream {i}: {share:.2} delivered next to a flood"
        );
        let p50 = ms[ms.len() / 2];
        assert!(p50 < 50.0, "stream {i}: median {p50:.1} ms next to a flood");
    }
}

#[test]
fn kernel_drops_at_a_full_receive_buffer_are_counted() {
    let cfg = RelayConfig {
        workers: 1,
        // Linux makes it 8 KiB: about nine small datagrams.
        recv_buffer: 4096,
        ..RelayConfig::default()
    };
    // Each packet relayed stalls the worker for 300 ms.
    let hooks = Hooks {
        send_pause: Duration::from_millis(300),
    };
    let (relay, _events) = Relay::start_with(cfg, hooks).unwrap();
    let mut ports = 49600..49700;
    let st = &streams(&relay, 1, &mut ports)[0];
    let stranger = party();
    let origin = Instant::now();
    st.tx.send_to(&packet(0, 0, origin), st.port).unwrap();
    counters_until(&relay, |c| c.packets_out == 1);
    // The worker is stalled: the kernel queues a few, drops the rest
    // (from a stranger, so what is queued is dropped without a stall).
    for seq in 1..=100 {
        stranger.send_to(&packet(0, seq, origin), st.port).unwrap();
    }
    let c = counters_until(&relay, |c| c.packets_in > 1);
    assert!(
        c.packets_in < 60,
        "the buffer held {} packets",
        c.packets_in
    );
    std::thread::sleep(Duration::from_millis(100));
    let queued = relay.counters().packets_in - 1;
    // The drop count rides on the next datagram the socket delivers.
    st.tx.send_to(&packet(0, 101, origin), st.port).unwrap();
    let c = counters_until(&relay, |c| c.packets_out == 2);
    assert_eq!(c.packets_in, queued + 2, "{c:?}");
    assert_eq!(c.dropped_source, queued, "{c:?}");
    assert_eq!(c.packets_in + c.dropped_overflow, 102, "{c:?}");
    assert!(c.dropped_overflow > 0);
    // Kernel drops are not in `dropped()`: that counts what was read.
    assert_eq!(c.packets_in, c.packets_out + c.dropped());
}

#[test]
fn a_worker_that_was_only_paused_relays_what_waited() {
    let cfg = RelayConfig {
        workers: 1,
        max_queue_delay: Duration::from_millis(20),
        ..RelayConfig::default()
    };
    let hooks = Hooks {
        send_pause: Duration::from_millis(150),
    };
    let (relay, _events) = Relay::start_with(cfg, hooks).unwrap();
    let mut ports = 49800..49900;
    let st = &streams(&relay, 1, &mut ports)[0];
    settle();
    let origin = Instant::now();
    st.tx.send_to(&packet(0, 0, origin), st.port).unwrap();
    counters_until(&relay, |c| c.packets_out == 1);
    // These wait 150 ms, far beyond the budget, but the worker was not
    // behind: it had nothing else to do when it stalled.
    for seq in 1..=3 {
        st.tx.send_to(&packet(0, seq, origin), st.port).unwrap();
    }
    let c = counters_until(&relay, |c| c.packets_out == 4);
    assert_eq!(c.dropped_stale, 0, "{c:?}");
    let mut buf = [0u8; 64];
    st.rx.set_nonblocking(false).unwrap();
    st.rx.set_read_timeout(Some(WAIT)).unwrap();
    for seq in 0..4u32 {
        let n = st.rx.recv(&mut buf).unwrap();
        assert_eq!(buf[8..12], seq.to_be_bytes(), "{n} bytes");
    }
}
