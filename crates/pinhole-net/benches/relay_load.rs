//! Relay load benchmark: N concurrent calls (2N legs) at 50 packets/s per
//! leg, 172-byte RTP-sized packets, on loopback, stepping N up.
//!
//! Relays measured in the same run, with the same generator:
//!
//! - `pinhole`: [`pinhole_net::relay::Relay`], legs opened and connected by
//!   `RelayCommand`s (`Remote::Fixed` on both sides), its own worker threads;
//! - `naive`: a tokio multi-thread runtime with one task per leg doing
//!   `recv_from` / `send_to` (the baseline);
//! - `rtpengine`: the Debian package `rtpengine-daemon` (userspace
//!   forwarding), if installed, started with `/work/shared/tools/rtpengine/`
//!   and given sessions through its ng control protocol.
//!
//! Every step first measures a direct (no relay) loopback path with the
//! same generator and the same number of streams; "added latency" is the
//! relayed latency minus that direct median.
//!
//! Environment:
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `RELAYS` | `pinhole,naive,rtpengine` | which relays, in order |
//! | `STEPS` | `250,500,750,1000,1500,2000,4000` | concurrent calls per step (100 pps each) |
//! | `SECS` | `4` | sending time per step |
//! | `DIRECT_SECS` | `1` | sending time of the direct baseline per step |
//! | `OVERLOAD` | `1` | run the overload test on each relay (0: skip) |
//! | `OVERLOAD_SECS` | `3` | length of the 2× phase of the overload test (the 1× phase after it is as long) |
//! | `OVERLOAD_CALLS` | highest zero-loss step | calls of the overload test (its 1× rate) |
//! | `LATE_MS` | `100` | overload test: a packet later than this is not "on time" when timing recovery |
//! | `RTPENGINE_TOOLS` | `/work/shared/tools/rtpengine` | the helper scripts |
//! | `PIN` | `1` | relay threads on CPU 0, generator (and this process's other threads) on CPU 1; `0`: no pinning |
//! | `PINHOLE_WORKERS` | `2` | `RelayConfig::workers` of the pinhole relay |
//! | `PINHOLE_RCVBUF` | default | `RelayConfig::recv_buffer` of the pinhole relay, bytes |
//! | `PINHOLE_MAX_DELAY_MS` | default | `RelayConfig::max_queue_delay` of the pinhole relay (0: no shedding) |
//! | `PINHOLE_SPIN_US` | default | `RelayConfig::spin` of the pinhole relay, µs |
//! | `GEN_RT` | `0` | `1`: run `gen-rx` as SCHED_FIFO 1 (if permitted); tried once: direct p99 fell to ~35 µs but relayed p99 rose to ~78 ms, so off |
//!
//! Generator: two threads (`gen-tx`, `gen-rx`) with one non-blocking std
//! socket per party; `gen-tx` paces sends round-robin over the active
//! streams (each stream gets one packet every 1/pps s), `gen-rx` reads all
//! party sockets through one level-triggered epoll set. A packet carries its stream id,
//! a sequence number and its send time (ns since the run's origin).
//! Every loop is bounded in time.
//!
//! Overload test (after the steps): the same calls at twice their rate for
//! `OVERLOAD_SECS`, then at their normal rate for as long. Reported: each
//! stream's share of its packets delivered during the 2× phase (min /
//! median / max over streams), the latency of what was delivered then;
//! recovery: the time after the 2× phase from which every 100 ms (by send
//! time) got at least 90 % of its packets through on time (within
//! `LATE_MS`); the on-time share in the last second (so a 1× rate the relay
//! does not carry cleanly anyway shows), and streams with less than half
//! on time ("starved") or nothing at all ("muted") in that last second.
//!
//! CPU is the scheduler's exact runtime (`clock_gettime` on the kernel's
//! per-thread / per-process CPU clocks; `/proc/*/stat` ticks are sampled at
//! 100 Hz and miss threads that wake briefly): relay threads are those
//! named `pinhole-relay-*` / `naive-relay`, or the whole rtpengine process. Memory per session is the VmRSS delta
//! across opening the legs (for rtpengine: across the ng `setup`), divided
//! by the calls.

#![allow(missing_docs)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use pinhole_core::relay::{RelayCommand, Remote};
use pinhole_core::types::{Component, LegId};
use pinhole_net::relay::{Relay, RelayConfig};

const PACKET: usize = 172;
const PPS_PER_LEG: f64 = 50.0;
/// Our relay ports: 10000.. (outside the ephemeral range 32768–60999).
const RELAY_PORT_BASE: u16 = 10000;
const RELAY_PORT_MAX: u16 = 19999;
/// Time the receiver keeps reading after the last send.
const DRAIN: Duration = Duration::from_millis(300);
/// Sequence number of priming packets (not counted).
const PRIME: u32 = u32::MAX;
/// Latency histogram: 1 µs buckets up to this many µs, then one overflow bucket.
const HIST_US: usize = 200_000;
/// The p99 bound of the headline.
const P99_BOUND_US: f64 = 1000.0;

// ------------------------------------------------------------------ config

struct Config {
    relays: Vec<String>,
    steps: Vec<usize>,
    secs: f64,
    direct_secs: f64,
    overload: bool,
    tools: PathBuf,
    /// Pin the relay to CPU 0 and the generator to CPU 1.
    pin: bool,
    pinhole_workers: usize,
    pinhole_rcvbuf: Option<usize>,
    pinhole_max_delay_ms: Option<u64>,
    pinhole_spin_us: Option<u64>,
    overload_secs: f64,
    overload_calls: Option<usize>,
    late_ms: f64,
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

impl Config {
    fn from_env() -> Self {
        let relays = env_or("RELAYS", "pinhole,naive,rtpengine")
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        let mut steps: Vec<usize> = env_or("STEPS", "250,500,750,1000,1500,2000,4000")
            .split(',')
            .filter_map(|s| s.trim().parse().ok())
            .filter(|&n| n > 0)
            .collect();
        steps.sort_unstable();
        steps.dedup();
        let max_calls = usize::from(RELAY_PORT_MAX - RELAY_PORT_BASE + 1) / 2;
        steps.retain(|&n| n <= max_calls);
        assert!(!steps.is_empty(), "STEPS: no step in 1..={max_calls}");
        Self {
            relays,
            steps,
            secs: env_or("SECS", "4").parse().expect("SECS"),
            direct_secs: env_or("DIRECT_SECS", "1").parse().expect("DIRECT_SECS"),
            overload: env_or("OVERLOAD", "1") != "0",
            tools: PathBuf::from(env_or("RTPENGINE_TOOLS", "/work/shared/tools/rtpengine")),
            pin: env_or("PIN", "1") != "0",
            pinhole_workers: env_or("PINHOLE_WORKERS", "2")
                .parse()
                .expect("PINHOLE_WORKERS"),
            pinhole_rcvbuf: std::env::var("PINHOLE_RCVBUF")
                .ok()
                .map(|v| v.parse().expect("PINHOLE_RCVBUF")),
            pinhole_max_delay_ms: std::env::var("PINHOLE_MAX_DELAY_MS")
                .ok()
                .map(|v| v.parse().expect("PINHOLE_MAX_DELAY_MS")),
            pinhole_spin_us: std::env::var("PINHOLE_SPIN_US")
                .ok()
                .map(|v| v.parse().expect("PINHOLE_SPIN_US")),
            overload_secs: env_or("OVERLOAD_SECS", "3").parse().expect("OVERLOAD_SECS"),
            overload_calls: std::env::var("OVERLOAD_CALLS")
                .ok()
                .map(|v| v.parse().expect("OVERLOAD_CALLS")),
            late_ms: env_or("LATE_MS", "100").parse().expect("LATE_MS"),
        }
    }
}

// --------------------------------------------------------------- generator

/// One phase of a run: the first `calls` calls send `pps` packets/s per leg.
#[derive(Clone, Copy)]
struct Phase {
    secs: f64,
    calls: usize,
    pps: f64,
}

/// The parties: socket `s` is stream `s`'s sender; stream `2c` is call
/// `c`'s A→B direction, `2c + 1` its B→A direction. A party's socket also
/// receives its peer's stream.
struct Parties {
    socks: Vec<UdpSocket>,
}

impl Parties {
    fn new(calls: usize) -> io::Result<Self> {
        let mut socks = Vec::with_capacity(2 * calls);
        for _ in 0..2 * calls {
            let s = UdpSocket::bind("127.0.0.1:0")?;
            s.set_nonblocking(true)?;
            socks.push(s);
        }
        Ok(Self { socks })
    }

    /// Connects the first `streams` parties to their targets: `send`
    /// skips the per-packet route lookup of `send_to`, and the socket only
    /// accepts datagrams from its target (every relay here answers a party
    /// from the port the party sends to).
    fn connect(&self, targets: &[SocketAddr], streams: usize) {
        for (s, t) in self.socks.iter().zip(targets).take(streams) {
            s.connect(t).unwrap();
        }
    }

    fn addr(&self, stream: usize) -> SocketAddr {
        self.socks[stream].local_addr().unwrap()
    }

    /// Reads and discards whatever is queued (stragglers of an earlier
    /// run); returns how many.
    fn flush(&self) -> u64 {
        let mut buf = [0u8; 2048];
        let mut n = 0;
        for s in &self.socks {
            for _ in 0..100_000 {
                if s.recv_from(&mut buf).is_err() {
                    break;
                }
                n += 1;
            }
        }
        n
    }

    /// Waits until nothing arrives for 300 ms (a relay that fell behind
    /// still empties its socket queues after the senders stop), at most
    /// `limit`; returns the stragglers read and whether it got quiet.
    fn settle(&self, limit: Duration) -> (u64, bool) {
        let end = Instant::now() + limit;
        let mut total = 0;
        let mut quiet_since = Instant::now();
        while Instant::now() < end {
            let n = self.flush();
            total += n;
            if n > 0 {
                quiet_since = Instant::now();
            } else if quiet_since.elapsed() >= Duration::from_millis(300) {
                return (total, true);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        (total, false)
    }
}

fn now_ns(origin: Instant) -> u64 {
    u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Marks the packets of one run (in the RTP timestamp field): packets a
/// relay still had queued from an earlier run are counted as stale, never
/// as deliveries.
static RUN_ID: AtomicU32 = AtomicU32::new(1);

fn fill(buf: &mut [u8; PACKET], stream: usize, seq: u32, ns: u64) {
    buf[0] = 0x80; // RTP v2, not STUN-framed
    buf[1] = 0x00; // PT 0 (PCMU)
    buf[2..4].copy_from_slice(&(seq as u16).to_be_bytes());
    buf[4..8].copy_from_slice(&RUN_ID.load(Ordering::Relaxed).to_be_bytes());
    buf[8..12].copy_from_slice(&(stream as u32).to_be_bytes());
    buf[12..16].copy_from_slice(&seq.to_be_bytes());
    buf[16..24].copy_from_slice(&ns.to_be_bytes());
}

/// What one run of the generator saw.
struct RunResult {
    /// Per phase: offered packets (what pacing asked for) and sent packets.
    offered: Vec<u64>,
    sent_phase: Vec<u64>,
    /// Per phase, per stream: the first sequence number of the phase; one
    /// more entry holds the end.
    phase_seq: Vec<Vec<u32>>,
    send_errors: u64,
    /// Largest lag behind the pacing schedule, in seconds.
    max_lag: f64,
    /// The generator could not send every packet in time.
    behind: bool,
    /// Per stream: received sequence numbers (bitset).
    got: Vec<Vec<u64>>,
    /// Per stream, per sequence number: latency in µs (`u32::MAX`: none).
    lat: Vec<Vec<u32>>,
    received: u64,
    duplicates: u64,
    stray: u64,
    hist: Vec<u32>,
    send_secs: f64,
    /// CPU seconds of the generator's sender and receiver threads.
    gen_cpu: (f64, f64),
}

impl RunResult {
    fn sent(&self) -> u64 {
        self.sent_phase.iter().sum()
    }

    fn offered_total(&self) -> u64 {
        self.offered.iter().sum()
    }

    /// Latency of `seq` of `stream` in µs, if it arrived.
    fn latency(&self, stream: usize, seq: u32) -> Option<u32> {
        self.lat[stream]
            .get(seq as usize)
            .copied()
            .filter(|&l| l != u32::MAX)
    }

    fn has(&self, stream: usize, seq: u32) -> bool {
        let i = seq as usize;
        self.got[stream]
            .get(i / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    /// Latency percentile in µs (upper edge of the bucket).
    fn pct(&self, p: f64) -> f64 {
        let total: u64 = self.hist.iter().map(|&c| u64::from(c)).sum();
        if total == 0 {
            return f64::NAN;
        }
        let want = ((total as f64) * p).ceil().max(1.0) as u64;
        let mut acc = 0u64;
        for (i, &c) in self.hist.iter().enumerate() {
            acc += u64::from(c);
            if acc >= want {
                return i as f64 + 1.0;
            }
        }
        f64::INFINITY
    }

    fn max_us(&self) -> f64 {
        match self.hist.iter().rposition(|&c| c != 0) {
            Some(i) if i == HIST_US => f64::INFINITY,
            Some(i) => i as f64 + 1.0,
            None => f64::NAN,
        }
    }

    fn loss(&self) -> f64 {
        let sent = self.sent();
        if sent == 0 {
            return 0.0;
        }
        1.0 - self.received.min(sent) as f64 / sent as f64
    }
}

/// Sends `phases` from the parties to `targets[stream]` and receives
/// everything that comes back, on two threads of its own.
fn run_load(
    parties: &Parties,
    targets: &[SocketAddr],
    phases: &[Phase],
    origin: Instant,
) -> RunResult {
    let streams = phases.iter().map(|p| 2 * p.calls).max().unwrap_or(0);
    assert!(streams <= parties.socks.len() && streams <= targets.len());
    parties.connect(targets, streams);
    let _ = parties.flush();
    let run_id = RUN_ID.fetch_add(1, Ordering::Relaxed) + 1;
    let max_seq: f64 = phases.iter().map(|p| p.secs * p.pps).sum();
    let words = (max_seq as usize + 64) / 64 + 1;
    let total_secs: f64 = phases.iter().map(|p| p.secs).sum();
    let tx_done = AtomicBool::new(false);

    std::thread::scope(|scope| {
        let rx = std::thread::Builder::new()
            .name("gen-rx".into())
            .spawn_scoped(scope, || {
                receive(
                    parties, streams, words, total_secs, &tx_done, origin, run_id,
                )
            })
            .unwrap();
        let tx = std::thread::Builder::new()
            .name("gen-tx".into())
            .spawn_scoped(scope, || {
                let r = send(parties, phases, streams, origin);
                tx_done.store(true, Ordering::Release);
                r
            })
            .unwrap();
        let sent = tx.join().unwrap();
        let got = rx.join().unwrap();
        RunResult {
            offered: sent.offered,
            sent_phase: sent.sent,
            phase_seq: sent.phase_seq,
            send_errors: sent.errors,
            max_lag: sent.max_lag,
            behind: sent.behind,
            got: got.got,
            lat: got.lat,
            received: got.received,
            duplicates: got.duplicates,
            stray: got.stray,
            hist: got.hist,
            send_secs: sent.secs,
            gen_cpu: (sent.cpu, got.cpu),
        }
    })
}

struct Sent {
    offered: Vec<u64>,
    sent: Vec<u64>,
    phase_seq: Vec<Vec<u32>>,
    errors: u64,
    max_lag: f64,
    behind: bool,
    secs: f64,
    cpu: f64,
}

fn send(parties: &Parties, phases: &[Phase], streams: usize, origin: Instant) -> Sent {
    let cpu0 = own_cpu();
    let mut seq = vec![0u32; streams];
    let mut out = Sent {
        offered: Vec::new(),
        sent: Vec::new(),
        phase_seq: Vec::new(),
        errors: 0,
        max_lag: 0.0,
        behind: false,
        secs: 0.0,
        cpu: 0.0,
    };
    let mut buf = [0u8; PACKET];
    let start = Instant::now();
    let mut phase_start = start;
    for ph in phases {
        out.phase_seq.push(seq.clone());
        let legs = 2 * ph.calls;
        let rate = legs as f64 * ph.pps;
        let n_total = (rate * ph.secs).round() as u64;
        // The phase ends on schedule; whatever is not sent by then is the
        // generator falling behind.
        let deadline = phase_start + Duration::from_secs_f64(ph.secs);
        // A sleep overshooting the last packet's slot is not falling behind.
        let hard = deadline + Duration::from_millis(20);
        let (mut k, mut sent, mut rr) = (0u64, 0u64, 0usize);
        while k < n_total && legs > 0 {
            let now = Instant::now();
            if now >= hard {
                out.behind = true;
                break;
            }
            let el = (now - phase_start).as_secs_f64();
            let due = ((el * rate) as u64 + 1).min(n_total);
            if due <= k {
                let next = Duration::from_secs_f64(k as f64 / rate);
                let wait = (phase_start + next).saturating_duration_since(now);
                std::thread::sleep(wait.min(Duration::from_micros(200)));
                continue;
            }
            out.max_lag = out.max_lag.max((due - k) as f64 / rate);
            // At most 512 packets before looking at the clock again.
            let stop = due.min(k + 512);
            while k < stop {
                let s = rr;
                rr += 1;
                if rr == legs {
                    rr = 0;
                }
                fill(&mut buf, s, seq[s], now_ns(origin));
                match parties.socks[s].send(&buf) {
                    Ok(_) => sent += 1,
                    Err(_) => out.errors += 1,
                }
                seq[s] += 1;
                k += 1;
            }
        }
        out.offered.push(n_total);
        out.sent.push(sent);
        if sent + out.errors < n_total {
            out.behind = true;
        }
        // Wait out the rest of the phase (bounded by its length).
        let now = Instant::now();
        if now < deadline {
            std::thread::sleep(deadline - now);
        }
        phase_start = deadline;
    }
    out.phase_seq.push(seq);
    out.secs = start.elapsed().as_secs_f64();
    out.cpu = own_cpu() - cpu0;
    out
}

struct Got {
    got: Vec<Vec<u64>>,
    lat: Vec<Vec<u32>>,
    received: u64,
    duplicates: u64,
    stray: u64,
    hist: Vec<u32>,
    cpu: f64,
}

impl Got {
    fn record(&mut self, pkt: &[u8], t: u64, streams: usize, words: usize, run_id: u32) {
        if pkt.len() < 24 || pkt[4..8] != run_id.to_be_bytes() {
            self.stray += 1;
            return;
        }
        let stream = u32::from_be_bytes(pkt[8..12].try_into().unwrap()) as usize;
        let seq = u32::from_be_bytes(pkt[12..16].try_into().unwrap());
        let ts = u64::from_be_bytes(pkt[16..24].try_into().unwrap());
        if seq == PRIME {
            return;
        }
        let i = seq as usize;
        if stream >= streams || i / 64 >= words {
            self.stray += 1;
            return;
        }
        let w = &mut self.got[stream][i / 64];
        if *w & (1 << (i % 64)) != 0 {
            self.duplicates += 1;
            return;
        }
        *w |= 1 << (i % 64);
        self.received += 1;
        let us = (t.saturating_sub(ts) / 1000) as usize;
        self.hist[us.min(HIST_US)] += 1;
        if let Some(l) = self.lat[stream].get_mut(i) {
            *l = u32::try_from(us).unwrap_or(u32::MAX - 1);
        }
    }
}

/// A level-triggered epoll set (mio is edge-triggered only, which costs
/// one extra `recv` returning EAGAIN per readiness at 50 pps per socket).
struct Epoll(OwnedFd);

impl Epoll {
    #[allow(unsafe_code)]
    fn new() -> io::Result<Self> {
        // SAFETY: epoll_create1 takes no pointers; a non-negative result is
        // a new fd that we own.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a freshly created descriptor owned by nobody else.
        Ok(Self(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    #[allow(unsafe_code)]
    fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: `ev` is a valid epoll_event for the duration of the call;
        // both fds are open (the socket outlives the epoll set's use).
        let r = unsafe { libc::epoll_ctl(self.0.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits up to `ms` milliseconds; returns how many events were filled.
    #[allow(unsafe_code)]
    fn wait(&self, events: &mut [libc::epoll_event], ms: i32) -> usize {
        let max = i32::try_from(events.len()).unwrap_or(i32::MAX);
        // SAFETY: `events` is valid writable memory for `max` entries.
        let n = unsafe { libc::epoll_wait(self.0.as_raw_fd(), events.as_mut_ptr(), max, ms) };
        usize::try_from(n).unwrap_or(0)
    }
}

fn receive(
    parties: &Parties,
    streams: usize,
    words: usize,
    total_secs: f64,
    tx_done: &AtomicBool,
    origin: Instant,
    run_id: u32,
) -> Got {
    let mut g = Got {
        got: vec![vec![0u64; words]; streams],
        lat: vec![vec![u32::MAX; words * 64]; streams],
        received: 0,
        duplicates: 0,
        stray: 0,
        hist: vec![0u32; HIST_US + 1],
        cpu: 0.0,
    };
    let cpu0 = own_cpu();
    realtime();
    let ep = Epoll::new().unwrap();
    for (i, s) in parties.socks.iter().enumerate().take(streams) {
        ep.add(s.as_raw_fd(), i as u64).unwrap();
    }
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 4096];
    let mut buf = [0u8; 2048];
    let hard_end = Instant::now() + Duration::from_secs_f64(total_secs + 10.0);
    let mut drain_end: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if now >= hard_end || drain_end.is_some_and(|d| now >= d) {
            break;
        }
        if drain_end.is_none() && tx_done.load(Ordering::Acquire) {
            drain_end = Some(now + DRAIN);
        }
        let n = ep.wait(&mut events, 5);
        for ev in &events[..n] {
            let token = ev.u64;
            // Level-triggered: one datagram per readiness, no EAGAIN read;
            // a socket with more queued is reported again.
            let Ok(len) = parties.socks[token as usize].recv(&mut buf) else {
                continue;
            };
            g.record(&buf[..len], now_ns(origin), streams, words, run_id);
        }
    }
    g.cpu = own_cpu() - cpu0;
    g
}

/// Sends a few priming packets from every party (A sides first) so
/// address-learning relays know both ends before the measurement.
fn prime(parties: &Parties, targets: &[SocketAddr], calls: usize) {
    parties.connect(targets, 2 * calls);
    let mut buf = [0u8; PACKET];
    for side in 0..2 {
        for _ in 0..2 {
            for c in 0..calls {
                let s = 2 * c + side;
                fill(&mut buf, s, PRIME, 0);
                let _ = parties.socks[s].send(&buf);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = parties.flush();
}

// ------------------------------------------------------------- /proc reads

/// VmRSS of `pid` in bytes.
fn rss(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Reads a CPU-time clock, in seconds (NaN if the kernel refuses).
#[allow(unsafe_code)]
fn clock_secs(clock: libc::clockid_t) -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is valid writable memory for the call.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return f64::NAN;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// The kernel's CPU-time clock ids (`CPUCLOCK_SCHED`, i.e. the scheduler's
/// exact runtime, not tick samples): a thread of this process by tid, or a
/// whole process by pid (see `clock_getcpuclockid(3)`).
fn thread_clock(tid: i32) -> libc::clockid_t {
    ((!tid) << 3) | 6
}

fn process_clock(pid: i32) -> libc::clockid_t {
    ((!pid) << 3) | 2
}

/// CPU seconds of the threads of this process whose name passes `pick`.
fn cpu(pick: &dyn Fn(&str) -> bool) -> f64 {
    let mut total = 0.0;
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    for e in dir.flatten() {
        let name = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        let Some(tid) = e.file_name().to_str().and_then(|t| t.parse::<i32>().ok()) else {
            continue;
        };
        if pick(name.trim()) {
            let c = clock_secs(thread_clock(tid));
            if c.is_finite() {
                total += c;
            }
        }
    }
    total
}

/// CPU the relay runs on and CPU the generator runs on, when pinning.
const RELAY_CPU: usize = 0;
const GEN_CPU: usize = 1;

/// Pins thread `tid` (0: the calling thread) to `cpu`.
#[allow(unsafe_code)]
fn pin(tid: i32, cpu: usize) {
    // SAFETY: `set` is a plain bitmask initialized by CPU_ZERO before use;
    // sched_setaffinity only reads it.
    let r = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if r != 0 {
        eprintln!(
            "sched_setaffinity({tid}, cpu {cpu}): {}",
            io::Error::last_os_error()
        );
    }
}

/// Pins every thread of this process whose name passes `pick` to `cpu`.
fn pin_threads(pick: &dyn Fn(&str) -> bool, cpu: usize) -> usize {
    let mut n = 0;
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    for e in dir.flatten() {
        let name = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        let Some(tid) = e.file_name().to_str().and_then(|t| t.parse::<i32>().ok()) else {
            continue;
        };
        if pick(name.trim()) {
            pin(tid, cpu);
            n += 1;
        }
    }
    n
}

/// Makes the calling thread SCHED_FIFO 1 if allowed (root), so the
/// receiver runs as soon as a datagram wakes it instead of waiting for the
/// sender's time slice on the shared CPU; without it the measured latency
/// tail is the scheduler's. The receiver always sleeps in `epoll_wait`
/// between bounded bursts, so it cannot starve the sender.
#[allow(unsafe_code)]
fn realtime() {
    if std::env::var("GEN_RT").map_or(true, |v| v != "1") {
        return;
    }
    let param = libc::sched_param { sched_priority: 1 };
    // SAFETY: `param` is a valid sched_param read during the call.
    let r = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
    if r != 0 {
        eprintln!(
            "gen-rx: SCHED_FIFO not available: {}",
            io::Error::last_os_error()
        );
    }
}

/// CPU seconds of the calling thread.
fn own_cpu() -> f64 {
    clock_secs(libc::CLOCK_THREAD_CPUTIME_ID)
}

fn self_pid() -> u32 {
    std::process::id()
}

// ------------------------------------------------------------------ relays

/// A relay under test, with its legs open for `calls` calls.
enum Under {
    Pinhole(Relay),
    /// Held until dropped: dropping the runtime stops the tasks.
    Naive(#[allow(dead_code)] tokio::runtime::Runtime),
    Rtpengine(Rtpengine),
}

struct Rtpengine {
    dir: PathBuf,
    tools: PathBuf,
    pid: u32,
}

impl Drop for Rtpengine {
    fn drop(&mut self) {
        let out = Command::new("sh")
            .arg(self.tools.join("rtpengine_ctl.sh"))
            .arg("stop")
            .arg(&self.dir)
            .output();
        if let Ok(o) = out {
            eprintln!("  {}", String::from_utf8_lossy(&o.stdout).trim());
        }
    }
}

impl Under {
    fn cpu(&self) -> f64 {
        match self {
            Self::Pinhole(_) => cpu(&|n| n.starts_with("pinhole-relay")),
            Self::Naive(_) => cpu(&|n| n.starts_with("naive-relay")),
            Self::Rtpengine(r) => clock_secs(process_clock(i32::try_from(r.pid).unwrap())),
        }
    }
}

fn relay_port(leg: usize) -> SocketAddr {
    let port = RELAY_PORT_BASE + u16::try_from(leg).unwrap();
    assert!(port <= RELAY_PORT_MAX);
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Starts the pinhole relay with `calls` calls; returns it and the targets.
fn start_pinhole(
    parties: &Parties,
    calls: usize,
    cfg: &Config,
) -> io::Result<(Under, Vec<SocketAddr>)> {
    let (workers, pinned) = (cfg.pinhole_workers, cfg.pin);
    let d = RelayConfig::default();
    let rc = RelayConfig {
        workers,
        recv_buffer: cfg.pinhole_rcvbuf.unwrap_or(d.recv_buffer),
        max_queue_delay: cfg
            .pinhole_max_delay_ms
            .map_or(d.max_queue_delay, Duration::from_millis),
        spin: cfg.pinhole_spin_us.map_or(d.spin, Duration::from_micros),
        ..d
    };
    println!(
        "pinhole config: {} workers, batch {}, recv_buffer {} B, max_queue_delay {:?}, spin {:?}",
        rc.workers, rc.batch, rc.recv_buffer, rc.max_queue_delay, rc.spin
    );
    let (relay, events) = Relay::start(rc)?;

    // Nobody reads events in this bench: Activity reports are coalesced
    // and dropped (counted) once the channel is full.
    drop(events);
    let mut targets = Vec::with_capacity(2 * calls);
    for c in 0..calls {
        for side in 0..2 {
            let s = 2 * c + side;
            let leg = LegId(s as u64 + 1);
            relay.apply(RelayCommand::OpenLeg {
                leg,
                rtp: relay_port(s),
                rtcp: None,
            })?;
            relay.apply(RelayCommand::SetRemote {
                leg,
                component: Component::Rtp,
                remote: Remote::Fixed(parties.addr(s)),
            })?;
            targets.push(relay_port(s));
        }
        relay.apply(RelayCommand::Connect {
            leg: LegId(2 * c as u64 + 1),
            peer: LegId(2 * c as u64 + 2),
        })?;
    }
    // After the commands: every worker has acknowledged, so each runs and
    // carries its name.
    if pinned {
        let n = pin_threads(&|n| n.starts_with("pinhole-relay"), RELAY_CPU);
        assert_eq!(n, workers, "pinhole worker threads found by name");
    }
    Ok((Under::Pinhole(relay), targets))
}

/// One task per leg: `recv_from` on the leg's socket, `send_to` out of the
/// peer leg's socket to the peer party.
fn start_naive(
    parties: &Parties,
    calls: usize,
    pinned: bool,
) -> io::Result<(Under, Vec<SocketAddr>)> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("naive-relay")
        .on_thread_start(move || {
            if pinned {
                pin(0, RELAY_CPU);
            }
        })
        .enable_io()
        .build()?;
    let mut targets = Vec::with_capacity(2 * calls);
    for c in 0..calls {
        let mut socks = Vec::with_capacity(2);
        for side in 0..2 {
            let s = 2 * c + side;
            let std_sock = UdpSocket::bind(relay_port(s))?;
            std_sock.set_nonblocking(true)?;
            let _guard = rt.enter();
            socks.push(Arc::new(tokio::net::UdpSocket::from_std(std_sock)?));
            targets.push(relay_port(s));
        }
        for side in 0..2 {
            let (me, peer) = (2 * c + side, 2 * c + (1 - side));
            let rx = Arc::clone(&socks[side]);
            let tx = Arc::clone(&socks[1 - side]);
            let from = parties.addr(me);
            let to = parties.addr(peer);
            // The task ends when the runtime is dropped.
            rt.spawn(async move {
                let mut buf = [0u8; 2048];
                loop {
                    let Ok((n, src)) = rx.recv_from(&mut buf).await else {
                        continue;
                    };
                    if src == from {
                        let _ = tx.send_to(&buf[..n], to).await;
                    }
                }
            });
        }
    }
    Ok((Under::Naive(rt), targets))
}

fn rtpengine_installed() -> Option<PathBuf> {
    ["/usr/sbin/rtpengine", "/usr/bin/rtpengine"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

const NG_PORT: u16 = 9922;

/// Starts rtpengine (ports 10000–31999 for its media, ng on 9922) and
/// creates `calls` sessions; the RSS delta of the setup is returned too.
fn start_rtpengine(
    tools: &Path,
    calls: usize,
    pinned: bool,
) -> io::Result<(Under, Vec<SocketAddr>, u64)> {
    let dir = std::env::temp_dir().join(format!("relay_load_rtpengine_{}", self_pid()));
    let mut start = Command::new("sh");
    start
        .arg(tools.join("rtpengine_ctl.sh"))
        .arg("start")
        .arg(&dir);
    if pinned {
        start.env("RELAY_CPUS", RELAY_CPU.to_string());
    }
    let out = start
        .env("NG_PORT", NG_PORT.to_string())
        .env("PORT_MIN", "10000")
        .env("PORT_MAX", "31999")
        .output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "rtpengine_ctl.sh start: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let pid: u32 = std::fs::read_to_string(dir.join("rtpengine.pid"))?
        .trim()
        .parse()
        .map_err(|_| io::Error::other("rtpengine pid"))?;
    let under = Rtpengine {
        dir,
        tools: tools.to_path_buf(),
        pid,
    };
    let rss0 = rss(pid);
    // The SDP ports are only where rtpengine sends before it learns the
    // parties' real addresses (priming does that).
    let out = Command::new("python3")
        .arg(tools.join("ng_client.py"))
        .arg("--ng")
        .arg(format!("127.0.0.1:{NG_PORT}"))
        .arg("setup")
        .arg("--sessions")
        .arg(calls.to_string())
        .arg("--base-port")
        .arg("40000")
        .output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "ng_client.py setup: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let json = String::from_utf8_lossy(&out.stdout);
    // Per session: caller's send_to, then callee's send_to (json.dumps
    // keeps ng_client's key order).
    let ports: Vec<u16> = json
        .match_indices("\"send_to\":")
        .filter_map(|(i, k)| {
            let rest = json[i + k.len()..].trim_start();
            let end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            rest[..end].parse().ok()
        })
        .collect();
    if ports.len() != 2 * calls {
        return Err(io::Error::other(format!(
            "ng_client.py returned {} ports for {calls} sessions",
            ports.len()
        )));
    }
    std::thread::sleep(Duration::from_millis(300));
    let mem = rss(pid).saturating_sub(rss0);
    let targets = ports
        .into_iter()
        .map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
        .collect();
    Ok((Under::Rtpengine(under), targets, mem))
}

// ----------------------------------------------------------------- results

struct Row {
    relay: String,
    calls: usize,
    offered_pps: f64,
    achieved_pps: f64,
    relayed_pps: f64,
    loss: f64,
    p50: f64,
    p99: f64,
    max: f64,
    direct_p50: f64,
    cores_per_100k: f64,
    gen_cpu: f64,
    behind: bool,
    max_lag_ms: f64,
    /// Duplicates, stray (incl. stale: earlier runs) datagrams and send
    /// errors seen by the generator.
    oddities: (u64, u64, u64),
}

impl Row {
    fn ok(&self) -> bool {
        self.loss == 0.0 && self.p99 - self.direct_p50 <= P99_BOUND_US && !self.behind
    }
}

#[allow(clippy::too_many_arguments)]
fn measure(
    name: &str,
    under: &Under,
    parties: &Parties,
    targets: &[SocketAddr],
    calls: usize,
    secs: f64,
    direct_p50: f64,
    origin: Instant,
) -> Row {
    let phases = [Phase {
        secs,
        calls,
        pps: PPS_PER_LEG,
    }];
    let cpu0 = under.cpu();
    let r = run_load(parties, targets, &phases, origin);
    let relay_cpu = under.cpu() - cpu0;
    settle_note(parties);
    Row {
        relay: name.to_string(),
        calls,
        offered_pps: r.offered_total() as f64 / secs,
        achieved_pps: r.sent() as f64 / secs,
        relayed_pps: r.received as f64 / secs,
        loss: r.loss(),
        p50: r.pct(0.50),
        p99: r.pct(0.99),
        max: r.max_us(),
        direct_p50,
        cores_per_100k: if r.received > 0 {
            relay_cpu / (r.received as f64 / 100_000.0)
        } else {
            f64::NAN
        },
        gen_cpu: (r.gen_cpu.0 + r.gen_cpu.1) / r.send_secs.max(1e-9),
        behind: r.behind,
        max_lag_ms: r.max_lag * 1000.0,
        oddities: (r.duplicates, r.stray, r.send_errors),
    }
}

/// Lets the relay empty its queues before the next step, and says so if
/// it had any.
fn settle_note(parties: &Parties) {
    let t = Instant::now();
    let (n, quiet) = parties.settle(Duration::from_secs(30));
    if n > 0 || !quiet {
        println!(
            "          (after the run: {n} late datagrams over {:.1} s{})",
            t.elapsed().as_secs_f64(),
            if quiet {
                ""
            } else {
                ", still arriving after 30 s"
            }
        );
    }
}

fn print_header() {
    println!(
        "{:<9} {:>5} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7} {:>7} {:>8} {:>6} {:>7} {:>6}  note",
        "relay",
        "calls",
        "offered",
        "sent",
        "relayed",
        "loss%",
        "+p50us",
        "+p99us",
        "+maxus",
        "directus",
        "c/100k",
        "gen-cpu",
        "lagms"
    );
}

fn print_row(r: &Row) {
    let mut note = String::new();
    if r.behind {
        note.push_str("GENERATOR-BEHIND ");
    }
    if r.ok() {
        note.push_str("ok ");
    }
    let (dup, stray, err) = r.oddities;
    if dup + stray + err > 0 {
        note.push_str(&format!("dup {dup} stray {stray} send-err {err}"));
    }
    println!(
        "{:<9} {:>5} {:>8.0} {:>8.0} {:>8.0} {:>8.4} {:>7.0} {:>7.0} {:>7.0} {:>8.0} {:>6.3} {:>7.2} {:>6.1}  {}",
        r.relay,
        r.calls,
        r.offered_pps,
        r.achieved_pps,
        r.relayed_pps,
        r.loss * 100.0,
        r.p50 - r.direct_p50,
        r.p99 - r.direct_p50,
        r.max - r.direct_p50,
        r.direct_p50,
        r.cores_per_100k,
        r.gen_cpu,
        r.max_lag_ms,
        note
    );
}

/// What the overload test saw.
struct Overload {
    relay: String,
    calls: usize,
    /// Offered and sent pps during the 2× phase, and the 1× rate.
    offered: f64,
    sent: f64,
    base: f64,
    behind: bool,
    /// Per-stream delivered share during the 2× phase.
    share: (f64, f64, f64),
    /// Latency of what was delivered during the 2× phase, µs (p50, p99).
    lat: (f64, f64),
    /// Recovery after the 2× phase, s (`None`: never).
    recovery: Option<f64>,
    /// On-time share of the last second.
    on_time_last: f64,
    /// Streams with under half on time / nothing delivered in the last
    /// second.
    starved: usize,
    muted: usize,
    relay_cpu: f64,
    /// For pinhole: datagrams shed as stale and dropped by the kernel.
    shed: Option<(u64, u64)>,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn pct_of(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len().max(1)) - 1;
    v.get(i).copied().unwrap_or(f64::NAN)
}

/// The same `calls` at 2× their rate for `secs`, then at 1× for as long.
#[allow(clippy::too_many_arguments)]
fn overload(
    name: &str,
    under: &Under,
    parties: &Parties,
    targets: &[SocketAddr],
    calls: usize,
    secs: f64,
    late_ms: f64,
    origin: Instant,
) -> Overload {
    let phases = [
        Phase {
            secs,
            calls,
            pps: 2.0 * PPS_PER_LEG,
        },
        Phase {
            secs,
            calls,
            pps: PPS_PER_LEG,
        },
    ];
    let before = match under {
        Under::Pinhole(r) => Some(r.counters()),
        _ => None,
    };
    let cpu0 = under.cpu();
    let r = run_load(parties, targets, &phases, origin);
    let relay_cpu = under.cpu() - cpu0;
    let shed = match (under, before) {
        (Under::Pinhole(relay), Some(b)) => {
            let c = relay.counters();
            Some((
                c.dropped_stale - b.dropped_stale,
                c.dropped_overflow - b.dropped_overflow,
            ))
        }
        _ => None,
    };
    settle_note(parties);
    let streams = 2 * calls;
    let late_us = (late_ms * 1000.0) as u32;
    let mut shares = Vec::with_capacity(streams);
    let mut over_lat = Vec::new();
    let mut muted = 0usize;
    let mut starved = 0usize;
    // 100 ms windows of the 1× phase, by send time: packets, on time.
    let per_window = (PPS_PER_LEG / 10.0) as u32;
    let windows = (secs * 10.0) as usize;
    let mut win = vec![(0u64, 0u64); windows];
    let on_time = |s: usize, q: u32| r.latency(s, q).is_some_and(|l| l <= late_us);
    for s in 0..streams {
        let (a, b, c) = (r.phase_seq[0][s], r.phase_seq[1][s], r.phase_seq[2][s]);
        let mut n = 0usize;
        for q in a..b {
            if let Some(l) = r.latency(s, q) {
                n += 1;
                over_lat.push(f64::from(l));
            }
        }
        shares.push(n as f64 / f64::from((b - a).max(1)));
        for q in b..c {
            if let Some(w) = win.get_mut(((q - b) / per_window) as usize) {
                w.0 += 1;
                w.1 += u64::from(on_time(s, q));
            }
        }
        let last_sec = c.saturating_sub(PPS_PER_LEG as u32).max(b);
        let good = (last_sec..c).filter(|&q| on_time(s, q)).count();
        if c > last_sec && 2 * good < (c - last_sec) as usize {
            starved += 1;
        }
        if c > last_sec && (last_sec..c).all(|q| !r.has(s, q)) {
            muted += 1;
        }
    }
    // Recovered from the first window after which no window is below 90 %.
    let bad = |w: &(u64, u64)| w.0 > 0 && w.1 * 10 < w.0 * 9;
    let recovery = match win.iter().rposition(bad) {
        None => Some(0.0),
        Some(i) if i + 1 < windows => Some((i + 1) as f64 / 10.0),
        Some(_) => None,
    };
    let last = &win[windows.saturating_sub(10)..];
    let (tot, ok) = last.iter().fold((0, 0), |a, w| (a.0 + w.0, a.1 + w.1));
    let on_time_last = ok as f64 / tot.max(1) as f64;
    let (lo, hi) = (
        shares.iter().copied().fold(f64::INFINITY, f64::min),
        shares.iter().copied().fold(0.0, f64::max),
    );
    let mid = median(&mut shares);
    let lat = (pct_of(&mut over_lat, 0.5), pct_of(&mut over_lat, 0.99));
    let o = Overload {
        relay: name.to_string(),
        calls,
        offered: r.offered[0] as f64 / secs,
        sent: r.sent_phase[0] as f64 / secs,
        base: 2.0 * calls as f64 * PPS_PER_LEG,
        behind: r.behind,
        share: (lo, mid, hi),
        lat,
        recovery,
        on_time_last,
        starved,
        muted,
        relay_cpu,
        shed,
    };
    print_overload(&o, streams);
    o
}

fn print_overload(o: &Overload, streams: usize) {
    println!(
        "{:<9} overload {} calls: 2x phase offered {:.0} pps, sent {:.0} ({:.2}x the 1x rate {:.0}){}; \
         per-stream delivery min {:.3} / median {:.3} / max {:.3}, latency of delivered p50 {:.1} ms p99 {:.1} ms; \
         recovery (every 100 ms >= 90% on time) {}; last second {:.1}% on time, {} of {streams} streams starved, \
         {} muted; relay cpu {:.2} s{}",
        o.relay,
        o.calls,
        o.offered,
        o.sent,
        o.sent / o.base,
        o.base,
        if o.behind { ", GENERATOR-BEHIND" } else { "" },
        o.share.0,
        o.share.1,
        o.share.2,
        o.lat.0 / 1000.0,
        o.lat.1 / 1000.0,
        o.recovery
            .map_or("never".to_string(), |t| format!("after {t:.1} s")),
        o.on_time_last * 100.0,
        o.starved,
        o.muted,
        o.relay_cpu,
        o.shed
            .map(|(st, ov)| format!("; shed stale {st}, kernel overflow {ov}"))
            .unwrap_or_default(),
    );
}

// -------------------------------------------------------------------- main

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is ignored.
    let cfg = Config::from_env();
    let origin = Instant::now();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pinned = cfg.pin && cpus >= 2;
    if pinned {
        // Threads started from here on (the generator's) inherit CPU 1;
        // relay threads are moved to CPU 0.
        pin(0, GEN_CPU);
    }
    println!(
        "pinning: {}",
        if pinned {
            "relay threads on CPU 0, generator on CPU 1"
        } else {
            "none"
        }
    );
    let cfg = Config { pin: pinned, ..cfg };
    let max_calls = *cfg.steps.last().unwrap();
    println!(
        "relay_load: steps {:?} calls (100 pps each, {PACKET}-byte packets), {} s per step, direct baseline {} s, relays {:?}",
        cfg.steps, cfg.secs, cfg.direct_secs, cfg.relays
    );
    let parties = Parties::new(max_calls).expect("party sockets");
    let direct_targets: Vec<SocketAddr> = (0..2 * max_calls).map(|s| parties.addr(s ^ 1)).collect();

    // Direct (no relay) latency per step, same generator, same streams.
    let mut direct = Vec::new();
    for &calls in &cfg.steps {
        let phases = [Phase {
            secs: cfg.direct_secs,
            calls,
            pps: PPS_PER_LEG,
        }];
        let r = run_load(&parties, &direct_targets, &phases, origin);
        println!(
            "direct    {calls:>5} calls: p50 {:.0} us, p99 {:.0} us, loss {:.4}%{}",
            r.pct(0.5),
            r.pct(0.99),
            r.loss() * 100.0,
            if r.behind { " GENERATOR-BEHIND" } else { "" }
        );
        direct.push(r.pct(0.5));
    }

    let mut rows: Vec<Row> = Vec::new();
    let mut overloads: Vec<Overload> = Vec::new();
    let mut mem: Vec<(String, f64)> = Vec::new();
    for name in &cfg.relays {
        let rss0 = rss(self_pid());
        let started = match name.as_str() {
            "pinhole" => start_pinhole(&parties, max_calls, &cfg).map(|(u, t)| (u, t, None)),
            "naive" => start_naive(&parties, max_calls, cfg.pin).map(|(u, t)| (u, t, None)),
            "rtpengine" => {
                if rtpengine_installed().is_none() {
                    println!(
                        "rtpengine: not installed (/usr/sbin/rtpengine or /usr/bin/rtpengine), skipped"
                    );
                    continue;
                }
                start_rtpengine(&cfg.tools, max_calls, cfg.pin).map(|(u, t, m)| (u, t, Some(m)))
            }
            other => {
                println!("{other}: unknown relay, skipped");
                continue;
            }
        };
        let (under, targets, ext_mem) = match started {
            Ok(x) => x,
            Err(e) => {
                println!("{name}: could not start: {e}");
                continue;
            }
        };
        std::thread::sleep(Duration::from_millis(200));
        let delta = ext_mem.unwrap_or_else(|| rss(self_pid()).saturating_sub(rss0));
        let per = delta as f64 / max_calls as f64;
        mem.push((name.clone(), per));
        println!(
            "{name}: {max_calls} calls open, RSS +{:.1} MiB = {per:.0} B per call ({:.0} B per leg)",
            delta as f64 / 1048576.0,
            per / 2.0
        );
        prime(&parties, &targets, max_calls);
        print_header();
        let mut capacity: Option<usize> = None;
        for (i, &calls) in cfg.steps.iter().enumerate() {
            let row = measure(
                name, &under, &parties, &targets, calls, cfg.secs, direct[i], origin,
            );
            print_row(&row);
            if row.loss == 0.0 && !row.behind {
                capacity = Some(calls);
            }
            rows.push(row);
        }
        if cfg.overload {
            // 2× the zero-loss capacity (or the calls asked for).
            if let Some(calls) = cfg.overload_calls.or(capacity).filter(|&c| c <= max_calls) {
                overloads.push(overload(
                    name,
                    &under,
                    &parties,
                    &targets,
                    calls,
                    cfg.overload_secs,
                    cfg.late_ms,
                    origin,
                ));
            } else {
                println!("{name}: no zero-loss step, overload test skipped");
            }
        }
        if let Under::Pinhole(relay) = &under {
            println!("pinhole counters: {:?}", relay.counters());
        }
        drop(under);
        std::thread::sleep(Duration::from_millis(200));
    }

    // Headline.
    println!();
    println!(
        "headline: highest step with zero loss and p99 added latency <= {P99_BOUND_US} us (generator keeping up)"
    );
    let mut best_pps: Vec<(String, f64)> = Vec::new();
    for name in &cfg.relays {
        let best = rows
            .iter()
            .filter(|r| &r.relay == name && r.ok())
            .map(|r| r.offered_pps)
            .fold(None, |a: Option<f64>, b| Some(a.map_or(b, |a| a.max(b))));
        if rows.iter().any(|r| &r.relay == name) {
            match best {
                Some(p) => println!("  {name:<9} {p:>8.0} pps"),
                None => println!("  {name:<9} none"),
            }
            best_pps.push((name.clone(), best.unwrap_or(0.0)));
        }
    }
    println!("zero-loss capacity: highest step with zero loss (generator keeping up), any latency");
    let mut cap_pps: Vec<(String, f64)> = Vec::new();
    for name in &cfg.relays {
        let rs: Vec<&Row> = rows.iter().filter(|r| &r.relay == name).collect();
        if rs.is_empty() {
            continue;
        }
        let best = rs
            .iter()
            .filter(|r| r.loss == 0.0 && !r.behind)
            .map(|r| (r.offered_pps, r.p99 - r.direct_p50))
            .fold(None, |a: Option<(f64, f64)>, b| {
                Some(a.map_or(b, |a| if b.0 > a.0 { b } else { a }))
            });
        match best {
            Some((p, p99)) => println!(
                "  {name:<9} {p:>8.0} pps (p99 added {:.1} ms there)",
                p99 / 1000.0
            ),
            None => println!("  {name:<9} none"),
        }
        cap_pps.push((name.clone(), best.map_or(0.0, |b| b.0)));
    }
    let cap = |n: &str| cap_pps.iter().find(|(r, _)| r == n).map(|&(_, p)| p);
    if let Some(p) = cap("pinhole") {
        for base in ["rtpengine", "naive"] {
            if let Some(b) = cap(base).filter(|&b| b > 0.0) {
                println!("  zero-loss capacity pinhole / {base}: {:.2}x", p / b);
            }
        }
    }
    let get = |n: &str| best_pps.iter().find(|(r, _)| r == n).map(|&(_, p)| p);
    if let Some(p) = get("pinhole") {
        for base in ["rtpengine", "naive"] {
            if let Some(b) = get(base) {
                if p > 0.0 && b > 0.0 {
                    println!("  headline (p99 <= 1 ms) pinhole / {base}: {:.2}x", p / b);
                } else {
                    println!(
                        "  headline (p99 <= 1 ms) pinhole / {base}: n/a (a relay met no step)"
                    );
                }
            }
        }
    }
    for (name, per) in &mem {
        println!("  memory {name:<9} {per:>8.0} B per call (2 legs)");
    }
    if !overloads.is_empty() {
        println!("overload (2x for {} s, then 1x):", cfg.overload_secs);
        for o in &overloads {
            print_overload(o, 2 * o.calls);
        }
    }
}
