//! SIP calls per second: sipp's caller places `N` calls at `R` calls/s
//! (`-m N -r R`, the `basic` scenarios with a short hold) through Fig. 11
//! (caller → APS1 → MPR → APS2 → callee, each APS behind its firewall
//! simulator, as in `fig11.rs`), and, as the baseline in the same run,
//! phone to phone. `R` steps up until a step has a failed call. Ignored by
//! default (about two minutes, most of both cores); run it with
//!
//! ```text
//! cargo test --release -p pinhole-tests --test sipp -- --ignored --nocapture load_
//! ```
//!
//! Media, per call (every call, or every `LOAD_MEDIA_EVERY`-th): a thread
//! tails the caller's sipp trace; when a 200 OK with SDP arrives it sends
//! `LOAD_PACKETS` RTP packets (`LOAD_INTERVAL_MS` apart) from the caller's
//! media socket to the address that 200 names (APS1's port B for the call).
//! The callee's media socket echoes every packet back to where it came
//! from (APS2's port B), so a packet that returns intact crossed the relay
//! path both ways: APS1 → MPR → APS2 → callee → APS2 → MPR → APS1. A call's
//! media passes when every packet reached the callee once and came back
//! once, intact. At the end every address the echoes went to must be one
//! the callee was offered in an INVITE (the return direction used the
//! rewritten SDP, not just the source address). Not covered: RTCP, the
//! callee sending to its offer address on its own, media after the first
//! few packets.
//!
//! Knobs (environment): `LOAD_RATES` (calls/s, default
//! `10,20,50,100,200`), `LOAD_SECS` (seconds of calls per step, default 5),
//! `LOAD_PAUSE_MS` (call hold after the ACK, default 300),
//! `LOAD_PACKETS` (default 5), `LOAD_INTERVAL_MS` (default 10),
//! `LOAD_MEDIA_EVERY` (default 1), `LOAD_QUARANTINE_MS` (port
//! quarantine of the MPR and both APSs, default 100), `LOAD_PATHS`
//! (`direct,pinhole,pinhole-tls`: the last is Fig. 11 with each APS on one
//! mutual-TLS connection to the MPR, issue 13).
//!
//! Ports: relay and media ports B live in 54000–54999: the MPR's relay
//! legs 54000–54335, APS1's ports B 54336–54667 (on 127.0.0.31), APS2's
//! 54668–54999 (on 127.0.0.32; see [`APS_MEDIA_IPS`]).
//! Each call holds two pairs in each for its hold time plus the
//! quarantine, which caps the rate this bed can carry at about
//! 83 / (hold + setup + quarantine) calls/s (≈ 200 with the defaults):
//! the shorter default quarantine (production: 30 s) is what makes that
//! cap high enough to measure anything.
//!
//! CPU: per thread from `/proc/self/task/*/stat` (USER_HZ = 100, so 10 ms
//! resolution): `pinhole-bed` (the MPR and APS drivers, the SIP proxies,
//! the firewall simulators: one tokio runtime) and `pinhole-relay-*` (the
//! three relays' data planes); sipp from `/proc/<pid>/stat`, sampled every
//! 100 ms; the harness's own threads from `/proc/thread-self/stat`. In
//! cores: CPU seconds over the wall time of the caller's sipp run.

use std::collections::{HashMap, HashSet};
use std::error::Error;
use std::io::{self, Read as _, Seek as _, SeekFrom};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pinhole_tests::rtp::{Verdict, check, packet, recv_or_timeout};
use pinhole_tests::sipp::sdp::Sdp;
use pinhole_tests::sipp::sip::SipMessage;
use pinhole_tests::sipp::stats::{Timing, parse_timing};
use pinhole_tests::sipp::trace::{Direction, parse_prefix};
use pinhole_tests::sipp::{Keys, Sipp, scenario, sipp_or_skip};

use crate::common::*;
use crate::fig11::{Bed, BedConfig, bed_with};
use pinhole_core::types::Transport;

/// Where APS1's and APS2's media ports B are bound: addresses nothing else
/// binds, because 54000–54999 lies inside Linux's ephemeral port range
/// (32768–60999): on the phones' own addresses the firewall simulators'
/// inside sockets and the phones' sockets, bound to port 0, took ports B
/// the APSs then could not bind (`Address already in use`; about 3 % of
/// the calls at 50 calls/s failed so). A deployment avoids it by taking
/// ports B outside that range or reserving them
/// (`net.ipv4.ip_local_reserved_ports`).
const APS_MEDIA_IPS: [[u8; 4]; 2] = [[127, 0, 0, 31], [127, 0, 0, 32]];

/// USER_HZ: the unit of `/proc/*/stat` CPU times on Linux.
const TICKS_PER_SEC: f64 = 100.0;
/// How long the harness waits for echoes after both sipps exited.
const ECHO_GRACE: Duration = Duration::from_millis(300);

/// The knobs, from the environment.
#[derive(Clone, Debug)]
struct Knobs {
    rates: Vec<u32>,
    secs: f64,
    pause: Duration,
    packets: u16,
    interval: Duration,
    media_every: u64,
    quarantine: Duration,
    paths: Vec<String>,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

impl Knobs {
    fn from_env() -> Self {
        let rates = std::env::var("LOAD_RATES")
            .ok()
            .map(|v| v.split(',').filter_map(|r| r.trim().parse().ok()).collect())
            .filter(|v: &Vec<u32>| !v.is_empty())
            .unwrap_or_else(|| vec![10, 20, 50, 100, 200]);
        let paths = std::env::var("LOAD_PATHS")
            .ok()
            .map(|v| v.split(',').map(|p| p.trim().to_owned()).collect())
            .unwrap_or_else(|| {
                vec![
                    "direct".to_owned(),
                    "pinhole".to_owned(),
                    "pinhole-tls".to_owned(),
                ]
            });
        Self {
            rates,
            secs: env_or("LOAD_SECS", 5.0f64).clamp(1.0, 60.0),
            pause: Duration::from_millis(env_or("LOAD_PAUSE_MS", 300u64).clamp(50, 10_000)),
            packets: env_or("LOAD_PACKETS", 5u16).clamp(1, 64),
            interval: Duration::from_millis(env_or("LOAD_INTERVAL_MS", 10u64).clamp(1, 100)),
            media_every: env_or("LOAD_MEDIA_EVERY", 1u64).max(1),
            quarantine: Duration::from_millis(env_or("LOAD_QUARANTINE_MS", 100u64)),
            paths,
        }
    }
}

/// CPU seconds (user + system) in a `/proc/.../stat` line.
fn stat_cpu_secs(stat: &str) -> Option<f64> {
    // The command name is in parentheses and may hold spaces: count fields
    // from the last ')'. utime and stime are fields 14 and 15.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / TICKS_PER_SEC)
}

fn proc_cpu_secs(path: &str) -> Option<f64> {
    stat_cpu_secs(&std::fs::read_to_string(path).ok()?)
}

/// CPU seconds of this process's threads by kind: (`pinhole-bed`,
/// `pinhole-relay-*`).
fn bed_cpu() -> (f64, f64) {
    let (mut bed, mut relay) = (0.0, 0.0);
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return (0.0, 0.0);
    };
    for t in tasks.flatten() {
        let dir = t.path();
        let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        let cpu = proc_cpu_secs(&dir.join("stat").to_string_lossy()).unwrap_or(0.0);
        if name.starts_with("pinhole-bed") {
            bed += cpu;
        } else if name.starts_with("pinhole-relay") {
            relay += cpu;
        }
    }
    (bed, relay)
}

/// The calling thread's CPU seconds.
fn own_cpu() -> f64 {
    proc_cpu_secs("/proc/thread-self/stat").unwrap_or(0.0)
}

/// One call's media as the harness saw it.
#[derive(Clone, Copy, Debug, Default)]
struct CallMedia {
    /// Distinct packets (bit = sequence number) that reached the callee.
    one_way: u64,
    /// Distinct packets that came back to the caller intact.
    echoed: u64,
    duplicates: u32,
}

/// What the harness threads share during a step.
#[derive(Default)]
struct Shared {
    /// By SSRC.
    calls: Mutex<HashMap<u32, CallMedia>>,
    /// Where the callee's echoes went (the source of what it received).
    echo_to: Mutex<HashSet<SocketAddr>>,
    /// Datagrams that were not a packet of a known call.
    foreign: Mutex<u64>,
    /// When the caller saw each call's 200 OK (first time), in order.
    answers: Mutex<Vec<Instant>>,
    /// CPU seconds of the harness threads, added as each one ends.
    cpu: Mutex<f64>,
    stop: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A harness thread that panicked poisons nothing the others cannot use.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn seq_bit(seq: u16) -> u64 {
    1u64 << (seq % 64)
}

/// The callee's media socket: echoes everything to its source.
fn echo(sock: UdpSocket, shared: Arc<Shared>, packets: u16) -> io::Result<()> {
    sock.set_read_timeout(Some(Duration::from_millis(50)))?;
    let mut buf = [0u8; 2048];
    while !shared.stop.load(Ordering::Relaxed) {
        let Some((n, from)) = recv_or_timeout(&sock, &mut buf)? else {
            continue;
        };
        let d = buf.get(..n).unwrap_or_default();
        let _ = sock.send_to(d, from);
        lock(&shared.echo_to).insert(from);
        count(&shared, d, packets, |m, bit| {
            if m.one_way & bit != 0 {
                m.duplicates += 1;
            }
            m.one_way |= bit;
        });
    }
    *lock(&shared.cpu) += own_cpu();
    Ok(())
}

/// The caller's media socket: counts the echoes.
fn receive(sock: UdpSocket, shared: Arc<Shared>, packets: u16) -> io::Result<()> {
    sock.set_read_timeout(Some(Duration::from_millis(50)))?;
    let mut buf = [0u8; 2048];
    while !shared.stop.load(Ordering::Relaxed) {
        let Some((n, _)) = recv_or_timeout(&sock, &mut buf)? else {
            continue;
        };
        count(
            &shared,
            buf.get(..n).unwrap_or_default(),
            packets,
            |m, bit| {
                if m.echoed & bit != 0 {
                    m.duplicates += 1;
                }
                m.echoed |= bit;
            },
        );
    }
    *lock(&shared.cpu) += own_cpu();
    Ok(())
}

/// Finds the call a datagram belongs to by its SSRC and, if it is an
/// intact packet of that call, records it.
fn count(shared: &Shared, d: &[u8], packets: u16, record: impl FnOnce(&mut CallMedia, u64)) {
    let ssrc = d
        .get(8..12)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_be_bytes);
    let mut calls = lock(&shared.calls);
    match ssrc.and_then(|s| calls.get_mut(&s).map(|m| (s, m))) {
        Some((ssrc, m)) => match check(d, ssrc, packets) {
            Verdict::Good(seq) => record(m, seq_bit(seq)),
            _ => *lock(&shared.foreign) += 1,
        },
        None => *lock(&shared.foreign) += 1,
    }
}

/// A call whose packets are still being sent.
struct Sending {
    ssrc: u32,
    to: SocketAddr,
    next: u16,
    due: Instant,
}

/// Reads the appended part of a growing sipp trace.
struct Tail {
    path: PathBuf,
    offset: u64,
    pending: Vec<u8>,
}

impl Tail {
    /// The complete entries received since the last call.
    fn received(&mut self) -> Vec<Vec<u8>> {
        let Ok(mut f) = std::fs::File::open(&self.path) else {
            return Vec::new(); // sipp creates it with its first message
        };
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return Vec::new();
        }
        let mut new = Vec::new();
        if let Ok(n) = f.read_to_end(&mut new) {
            self.offset += n as u64;
            self.pending.extend_from_slice(&new);
        }
        let (trace, done) = parse_prefix(&self.pending);
        self.pending.drain(..done.min(self.pending.len()));
        trace
            .entries
            .into_iter()
            .filter(|e| e.direction == Direction::Received)
            .map(|e| e.bytes)
            .collect()
    }
}

/// Tails the caller's trace and sends each answered call's packets.
fn caller_media(
    sock: UdpSocket,
    trace: PathBuf,
    shared: Arc<Shared>,
    k: Knobs,
    ssrc_base: u32,
) -> io::Result<()> {
    let mut tail = Tail {
        path: trace,
        offset: 0,
        pending: Vec::new(),
    };
    let mut answered: HashSet<String> = HashSet::new();
    let mut sending: Vec<Sending> = Vec::new();
    let mut next_poll = Instant::now();
    while !shared.stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now >= next_poll {
            next_poll = now + Duration::from_millis(5);
            for bytes in tail.received() {
                let Ok(m) = SipMessage::parse(&bytes) else {
                    continue;
                };
                let invite_ok =
                    m.status() == Some(200) && m.cseq().is_some_and(|(_, me)| me == "INVITE");
                let Some(call_id) = m.header("Call-ID").filter(|_| invite_ok && m.has_sdp()) else {
                    continue;
                };
                // sipp retransmits nothing here, but a 200 can arrive twice.
                if !answered.insert(call_id.to_owned()) {
                    continue;
                }
                let n = answered.len() as u64 - 1;
                lock(&shared.answers).push(now);
                let Some(to) = Sdp::parse(&m.body).ok().and_then(|s| s.audio_addr()) else {
                    continue;
                };
                if n.is_multiple_of(k.media_every) {
                    let ssrc = ssrc_base.wrapping_add(n as u32);
                    lock(&shared.calls).insert(ssrc, CallMedia::default());
                    sending.push(Sending {
                        ssrc,
                        to,
                        next: 0,
                        due: now,
                    });
                }
            }
        }
        let now = Instant::now();
        for s in sending.iter_mut().filter(|s| s.due <= now) {
            let _ = sock.send_to(&packet(s.ssrc, s.next), s.to);
            s.next += 1;
            s.due += k.interval;
        }
        sending.retain(|s| s.next < k.packets);
        let wake = sending
            .iter()
            .map(|s| s.due)
            .min()
            .unwrap_or(next_poll)
            .min(next_poll);
        if let Some(d) = wake.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
    }
    *lock(&shared.cpu) += own_cpu();
    Ok(())
}

/// Samples sipp's CPU time until told to stop; returns the last reading.
fn sipp_cpu(pids: [u32; 2], stop: Arc<AtomicBool>) -> f64 {
    let mut last = [0.0f64; 2];
    while !stop.load(Ordering::Relaxed) {
        for (slot, pid) in last.iter_mut().zip(pids) {
            if let Some(c) = proc_cpu_secs(&format!("/proc/{pid}/stat")) {
                *slot = c;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    last.iter().sum()
}

/// One step's figures.
#[derive(Clone, Debug, Default)]
struct Step {
    path: String,
    rate: u32,
    calls: u64,
    ok: u64,
    failed: u64,
    achieved_cps: f64,
    media_checked: u64,
    media_ok: u64,
    timing: Timing,
    wall: f64,
    bed_cores: f64,
    relay_cores: f64,
    sipp_cores: f64,
    harness_cores: f64,
    /// See [`exhaustion`].
    exhaustion: u64,
    /// Open file descriptors of the process once the step is over.
    fds: usize,
    notes: Vec<String>,
}

impl Step {
    fn passed(&self) -> bool {
        self.failed == 0
            && self.ok == self.calls
            && self.media_ok == self.media_checked
            && self.notes.is_empty()
    }

    fn row(&self) -> String {
        format!(
            "| {} | {} | {} | {} | {} | {:.1} | {:.1} | {}/{} | {:.1} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} |",
            self.path,
            self.rate,
            self.calls,
            self.ok,
            self.failed,
            self.achieved_cps,
            self.wall,
            self.media_ok,
            self.media_checked,
            self.timing.response_ms,
            self.timing.retransmissions,
            self.exhaustion,
            self.bed_cores,
            self.relay_cores,
            self.sipp_cores,
            self.harness_cores,
            self.fds,
            if self.passed() {
                "ok".to_owned()
            } else {
                self.notes.join("; ")
            }
        )
    }
}

const HEADER: &str = "| path | target cps | calls | ok | failed | achieved cps | caller run s | media ok/checked | setup ms (INVITE→200) | retrans | ports ran out | bed CPU (cores) | relay CPU (cores) | sipp CPU (cores) | harness CPU (cores) | open fds after | note |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|";

/// Runs one step: `rate` calls/s for `k.secs` seconds, through `bed` or
/// phone to phone.
fn step(
    path: &str,
    bed: Option<&Bed>,
    uas_bind: SocketAddr,
    rate: u32,
    k: &Knobs,
    index: u32,
) -> Result<Step, Box<dyn Error>> {
    let calls = ((f64::from(rate) * k.secs).round() as u64).max(1);
    let timeout = Duration::from_secs_f64(calls as f64 / f64::from(rate)) + k.pause + SIPP_TIMEOUT;
    let caller = Phone::new(CALLER_IP)?;
    let callee = Phone::new(CALLEE_IP)?;
    let test = format!("load/{path}-{rate}");
    let uas = Sipp::uas(
        scenario("uas_basic.xml"),
        uas_bind,
        Keys::new(callee.media_addr)
            .domain(CALLEE_DOMAIN)
            .from_domain(CALLER_DOMAIN),
    )
    .calls(calls)
    .pause(k.pause)
    .timeout(timeout)
    .dir(run_dir(&test, "uas"))
    .spawn()?;
    let target = bed.map_or(uas.local_addr(), |b| b.aps1_sig);
    let exhaustion0 = match bed {
        Some(b) => exhaustion(b)?,
        None => 0,
    };
    let shared = Arc::new(Shared::default());
    let (bed0, relay0) = bed_cpu();
    let started = Instant::now();
    let uac = Sipp::uac(
        scenario("uac_basic.xml"),
        SocketAddr::new(CALLER_IP.parse()?, 0),
        target,
        Keys::new(caller.media_addr)
            .domain(CALLEE_DOMAIN)
            .from_domain(CALLER_DOMAIN),
    )
    .calls(calls)
    .rate(rate)
    .pause(k.pause)
    .timeout(timeout)
    .dir(run_dir(&test, "uac"))
    .spawn()?;
    let sampler_stop = Arc::new(AtomicBool::new(false));
    let threads = {
        let (s1, s2, s3) = (
            Arc::clone(&shared),
            Arc::clone(&shared),
            Arc::clone(&shared),
        );
        let (echo_sock, rx_sock, tx_sock) = (
            callee.media.try_clone()?,
            caller.media.try_clone()?,
            caller.media.try_clone()?,
        );
        let (p, kk, trace) = (k.packets, k.clone(), uac.messages_path());
        let stop = Arc::clone(&sampler_stop);
        let pids = [uac.pid(), uas.pid()];
        let ssrc_base = (index << 24) | 0x5a_0000;
        (
            std::thread::Builder::new()
                .name("load-echo".into())
                .spawn(move || echo(echo_sock, s1, p))?,
            std::thread::Builder::new()
                .name("load-rx".into())
                .spawn(move || receive(rx_sock, s2, p))?,
            std::thread::Builder::new()
                .name("load-tx".into())
                .spawn(move || caller_media(tx_sock, trace, s3, kk, ssrc_base))?,
            std::thread::Builder::new()
                .name("load-cpu".into())
                .spawn(move || sipp_cpu(pids, stop))?,
        )
    };
    let uac_out = uac.wait()?;
    let wall = started.elapsed().as_secs_f64();
    let uas_out = uas.wait()?;
    std::thread::sleep(ECHO_GRACE);
    shared.stop.store(true, Ordering::Relaxed);
    sampler_stop.store(true, Ordering::Relaxed);
    let join = |r: std::thread::Result<io::Result<()>>| -> Result<(), Box<dyn Error>> {
        r.map_err(|_| "a harness thread panicked")??;
        Ok(())
    };
    join(threads.0.join())?;
    join(threads.1.join())?;
    join(threads.2.join())?;
    let sipp_secs = threads.3.join().map_err(|_| "CPU sampler panicked")?;
    let (bed1, relay1) = bed_cpu();

    let mut s = Step {
        path: path.to_owned(),
        rate,
        calls,
        ok: uac_out.calls_successful,
        failed: uac_out.calls_failed,
        wall,
        bed_cores: (bed1 - bed0) / wall,
        relay_cores: (relay1 - relay0) / wall,
        sipp_cores: sipp_secs / wall,
        harness_cores: *lock(&shared.cpu) / wall,
        ..Step::default()
    };
    if !uac_out.success {
        s.notes
            .push(format!("caller: {}", uac_out.notes.join(", ")));
    }
    if !uas_out.success {
        s.notes
            .push(format!("callee: {}", uas_out.notes.join(", ")));
    }
    match std::fs::read_to_string(uac_out.dir.join("stats.csv"))
        .map_err(|e| e.to_string())
        .and_then(|csv| parse_timing(&csv).map_err(|e| e.to_string()))
    {
        Ok(t) => s.timing = t,
        Err(e) => s.notes.push(format!("stats.csv: {e}")),
    }
    let answers = lock(&shared.answers).clone();
    if let (Some(first), Some(last)) = (answers.first(), answers.last())
        && answers.len() > 1
    {
        let span = last.duration_since(*first).as_secs_f64();
        s.achieved_cps = (answers.len() - 1) as f64 / span.max(1e-3);
    }
    let full = (1u64 << k.packets) - 1;
    {
        let calls = lock(&shared.calls);
        s.media_checked = calls.len() as u64;
        s.media_ok = calls
            .values()
            .filter(|m| m.one_way == full && m.echoed == full && m.duplicates == 0)
            .count() as u64;
    }
    {
        let calls = lock(&shared.calls);
        let bad: Vec<&CallMedia> = calls
            .values()
            .filter(|m| !(m.one_way == full && m.echoed == full && m.duplicates == 0))
            .collect();
        if let Some(m) = bad.first() {
            s.notes.push(format!(
                "media incomplete for {} calls, e.g. {}/{p} reached the callee, {}/{p} came back, {} duplicates",
                bad.len(),
                m.one_way.count_ones(),
                m.echoed.count_ones(),
                m.duplicates,
                p = k.packets
            ));
        }
    }
    if s.media_checked < calls / k.media_every {
        s.notes.push(format!(
            "media sent for {} calls only ({} answered)",
            s.media_checked,
            answers.len()
        ));
    }
    // The echoes' destinations must be addresses offered to the callee.
    let offered: HashSet<SocketAddr> = uas_out
        .received_sdps
        .iter()
        .filter_map(|r| r.audio_addr())
        .collect();
    let stray: Vec<SocketAddr> = lock(&shared.echo_to)
        .iter()
        .filter(|a| !offered.contains(a))
        .copied()
        .collect();
    if !stray.is_empty() {
        s.notes.push(format!(
            "{} echo destinations were never offered, e.g. {}",
            stray.len(),
            stray[0]
        ));
    }
    if let Some(bed) = bed {
        if let Err(e) = bed.wait_legs_freed() {
            s.notes.push(format!("after the step: {e}"));
        }
        s.exhaustion = exhaustion(bed)? - exhaustion0;
    }
    s.fds = std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count);
    Ok(s)
}

/// The load test's deployment (see the module documentation for the port
/// layout).
fn load_bed(k: &Knobs, upstream: Transport) -> BedConfig {
    BedConfig {
        upstream,
        callee_tcp: false,
        base: 54_000,
        mpr_ports: 336,
        aps_ports: 332,
        quarantine: k.quarantine,
        media_ips: Some(APS_MEDIA_IPS.map(IpAddr::from)),
        // Each media pinhole is a mapping with its own public socket in a
        // simulator: keep them short-lived (the calls last well under a
        // second; the APSs refresh their signalling within 2/3 of this).
        firewall_idle: Duration::from_secs(2),
        firewall_linger: Duration::from_millis(500),
    }
}

/// Times a port ran out so far: MPR relay pairs (`ports_exhausted`) and
/// media pinholes the APSs could not open (no port B free, or the MPR had
/// no leg for them). Under load these come from the port budget, not CPU.
fn exhaustion(bed: &Bed) -> Result<u64, Box<dyn Error>> {
    let mpr = bed.rt.block_on(bed.mpr.stats())?.ports_exhausted;
    Ok(mpr + bed.counter(1, "pinhole_failures")? + bed.counter(2, "pinhole_failures")?)
}

/// The largest rate of a path's passing steps, if any passed.
fn best(steps: &[Step], path: &str) -> Option<u32> {
    steps
        .iter()
        .filter(|s| s.path == path && s.passed())
        .map(|s| s.rate)
        .max()
}

fn report_path() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sipp/load/report.md")
}

#[test]
#[ignore = "load test: about two minutes of both cores; run with --ignored --nocapture"]
fn load_calls_per_second_direct_and_through_fig11() -> TestResult {
    if !sipp_or_skip("load_calls_per_second") {
        return Ok(());
    }
    if std::env::var_os("RUST_LOG").is_some() {
        // The proxies' and engines' own account of a failed call.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
    let k = Knobs::from_env();
    println!("{k:?}");
    // One callee address for every step: APS2 is configured with it.
    let uas_bind = {
        let probe = UdpSocket::bind((CALLEE_IP, 0))?;
        let a = probe.local_addr()?;
        drop(probe);
        a
    };
    let mut steps: Vec<Step> = Vec::new();
    let mut index = 0;
    for path in &k.paths {
        if !matches!(path.as_str(), "direct" | "pinhole" | "pinhole-tls") {
            return Err(format!("LOAD_PATHS: unknown path {path}").into());
        }
        for &rate in &k.rates {
            index += 1;
            // A fresh deployment per step: the firewall simulator keeps
            // an inside socket per route (inside host, remote) for its
            // whole life, about four per call, so one deployment for all
            // steps would run into the 20 000 descriptors allowed here,
            // and the steps would not start alike.
            let bed = match path.as_str() {
                "pinhole" => Some(bed_with(load_bed(&k, Transport::Udp), uas_bind)?),
                "pinhole-tls" => Some(bed_with(load_bed(&k, Transport::Tls), uas_bind)?),
                _ => None,
            };
            let s = step(path, bed.as_ref(), uas_bind, rate, &k, index)?;
            println!("{}", s.row());
            if let Some(bed) = &bed {
                println!(
                    "  pinhole {rate}: MPR ports exhausted {}, plan errors {}, APS pinhole failures {} / {}",
                    bed.rt.block_on(bed.mpr.stats())?.ports_exhausted,
                    bed.counter(0, "plan_errors")?,
                    bed.counter(1, "pinhole_failures")?,
                    bed.counter(2, "pinhole_failures")?,
                );
            }
            drop(bed);
            let passed = s.passed();
            steps.push(s);
            if !passed {
                break;
            }
        }
    }
    let mut report = format!("{k:?}\n\n{HEADER}\n");
    for s in &steps {
        report.push_str(&s.row());
        report.push('\n');
    }
    let direct = best(&steps, "direct");
    let pinhole = best(&steps, "pinhole");
    let tls = best(&steps, "pinhole-tls");
    let summary = format!(
        "highest step with every call and its media through: direct {direct:?} cps, pinhole {pinhole:?} cps, pinhole with the APSs on TLS {tls:?} cps"
    );
    report.push_str(&format!("\n{summary}\n"));
    println!("\n{HEADER}");
    for s in &steps {
        println!("{}", s.row());
    }
    println!("\n{summary}");
    let path: &Path = &report_path();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, report)?;
    println!("report: {}", path.display());
    // The lowest step must pass on every path: a failure there is a broken
    // harness or a broken deployment, not a capacity figure.
    for p in &k.paths {
        let first = steps.iter().find(|s| &s.path == p);
        assert!(
            first.is_some_and(Step::passed),
            "{p}: the first step failed: {first:?}"
        );
    }
    Ok(())
}

#[test]
fn proc_stat_cpu_fields() {
    let line = "1234 (tokio (w) 1) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0";
    assert_eq!(stat_cpu_secs(line), Some(3.0));
    assert_eq!(stat_cpu_secs("1 (x) S 1 2"), None);
    assert!(own_cpu() >= 0.0);
    assert_eq!(seq_bit(3), 8);
}
