//! Hostile load on loopback (issue 18): the real daemons — `pinhole mpr`
//! with its relay cut to 32 port pairs and two `pinhole aps` — are flooded
//! the way an attacker on the internet would, and then a legitimate call
//! is set up with media both ways. Prints what got through.
//!
//! Floods, each from its own loopback sources (`127.0.1.x`), all bounded
//! in count and time:
//! - **INVITE flood**: strangers INVITE a served domain (each INVITE would
//!   hold two relay legs until answered);
//! - **garbage**: datagrams that are no SIP at all, at the MPR's SIP port;
//! - **mutated SDP**: INVITEs whose SDP is broken in ways the MPR cannot
//!   read (a junk line, no `v=`, a bad port on a second `m=` …): none may
//!   reach the inside phone naming an address other than its APS's;
//! - **reflection**: STUN Binding requests too small to answer.
//!
//! Then the network's own call: corp1's phone calls corp2's through APS1 →
//! MPR → APS2, 50 RTP packets each way. Figures: answers by code, what
//! reached the phone, bytes answered per byte sent, log bytes, and the
//! daemons' CPU.
//!
//! The short form runs in `cargo test`; the full one (ten times the
//! counts) with
//!
//! ```text
//! just hostile
//! cargo test --release -p pinhole-tests --test hostile -- --ignored --nocapture
//! ```
//!
//! Addresses: MPR 127.0.0.81 (relay 47400–47463), APS1 127.0.0.82 (ports
//! B 47500–47599), APS2 127.0.0.83 (ports B 47600–47699), corp1's phone
//! 127.0.0.84, corp2's phone 127.0.0.85, strangers 127.0.1.1–127.0.1.250.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fs::File;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use pinhole_testkit::sip::{self as sipmsg, Request, Response};
use pinhole_tests::daemon::{self, Daemon, free_tcp, free_udp, metric, scrape_metrics};
use pinhole_tests::rtp::rtp_pair;

const MPR_IP: &str = "127.0.0.81";
const APS_IPS: [&str; 2] = ["127.0.0.82", "127.0.0.83"];
const PHONE_IPS: [&str; 2] = ["127.0.0.84", "127.0.0.85"];
const WAIT: Duration = Duration::from_secs(10);

/// How much of each flood.
#[derive(Clone, Copy, Debug)]
struct Scale {
    invites: u8,
    garbage: u32,
    mutated: u32,
    stun: u32,
}

impl Scale {
    const SHORT: Self = Self {
        invites: 40,
        garbage: 2_000,
        mutated: 100,
        stun: 500,
    };
    const FULL: Self = Self {
        invites: 250,
        garbage: 20_000,
        mutated: 500,
        stun: 5_000,
    };
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A daemon and where it logs.
struct Node {
    daemon: Daemon,
    log: PathBuf,
    metrics: SocketAddr,
}

impl Node {
    fn start(cmd: &str, name: &str, text: &str) -> Self {
        let config = daemon::write_config("pinhole-hostile", &format!("{name}.toml"), text);
        let log = config.with_extension("log");
        let bin = daemon::pinhole_binary().unwrap();
        let stderr = Stdio::from(File::create(&log).unwrap());
        let metrics = text
            .lines()
            .find_map(|l| l.strip_prefix("metrics = \""))
            .and_then(|l| l.strip_suffix('"'))
            .unwrap()
            .parse()
            .unwrap();
        Self {
            daemon: Daemon::with_config(bin.to_str().unwrap(), &[cmd], &config, stderr),
            log,
            metrics,
        }
    }

    fn log_bytes(&self) -> u64 {
        std::fs::metadata(&self.log).map_or(0, |m| m.len())
    }

    /// CPU seconds used so far (utime + stime, USER_HZ = 100).
    fn cpu(&self) -> f64 {
        let Some(pid) = self.daemon.pid() else {
            return 0.0;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Fields after the command name, which is in parentheses.
        let rest = stat.rsplit(')').next().unwrap_or("");
        let f: Vec<u64> = rest
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        f.get(11)
            .zip(f.get(12))
            .map_or(0.0, |(u, s)| (u + s) as f64 / 100.0)
    }

    fn metric(&self, key: &str) -> f64 {
        let text = scrape_metrics(self.metrics).unwrap_or_default();
        metric(&text, key).unwrap_or(0.0)
    }
}

struct Bed {
    mpr: Node,
    aps: [Node; 2],
    /// The MPR's SIP and control socket.
    mpr_sip: SocketAddr,
    aps_sig: [SocketAddr; 2],
    /// corp2's phone (the callee): APS2's `inside_default`.
    callee: UdpSocket,
}

impl Bed {
    /// The bed; `limits` goes into the MPR's file as its `[limits]`
    /// section (empty: the defaults).
    fn start(limits: &str) -> Self {
        let mpr_sip = free_udp(MPR_IP);
        let aps_sig = [free_udp(APS_IPS[0]), free_udp(APS_IPS[1])];
        let callee = UdpSocket::bind((PHONE_IPS[1], 0)).unwrap();
        let mpr = Node::start(
            "mpr",
            "mpr",
            &format!(
                "relay_ip = \"{MPR_IP}\"\ncontrol_ports = [{}]\nmetrics = \"{}\"\n\
                 [relay]\nports = {{ first = 47400, last = 47463 }}\n\
                 [[networks]]\nid = \"corp1\"\ncredential = \"one\"\ndomains = [\"corp1.example\"]\n\
                 [[networks]]\nid = \"corp2\"\ncredential = \"two\"\ndomains = [\"corp2.example\"]\n\
                 [limits]\n{limits}",
                mpr_sip.port(),
                free_tcp()
            ),
        );
        daemon::wait_metric(mpr.metrics, "pinhole_up 1", WAIT);
        let aps = |i: usize, net: &str, cred: &str, inside: Option<SocketAddr>| {
            let first = 47500 + 100 * i as u16;
            let mut t = format!(
                "network = \"{net}\"\ncredential = \"{cred}\"\nsignaling = \"{}\"\nmpr = \"{mpr_sip}\"\n\
                 metrics = \"{}\"\n[sip]\nmedia_ports = {{ first = {first}, last = {} }}\n",
                aps_sig[i],
                free_tcp(),
                first + 99
            );
            if let Some(a) = inside {
                t.push_str(&format!("inside_default = \"{a}\"\n"));
            }
            Node::start("aps", &format!("aps{}", i + 1), &t)
        };
        let aps = [
            aps(0, "corp1", "one", None),
            aps(1, "corp2", "two", Some(callee.local_addr().unwrap())),
        ];
        for a in &aps {
            daemon::wait_metric(a.metrics, "pinhole_client_registered 1", WAIT);
        }
        callee
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        Self {
            mpr,
            aps,
            mpr_sip,
            aps_sig,
            callee,
        }
    }

    /// Everything the callee got since the last call (waits 100 ms of quiet).
    fn callee_inbox(&self) -> Vec<Vec<u8>> {
        settled(std::slice::from_ref(&self.callee))
    }
}

fn drain(s: &UdpSocket) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 65_536];
    while let Ok((n, _)) = s.recv_from(&mut buf) {
        out.push(buf[..n].to_vec());
    }
    out
}

/// What arrives at `socks` until they have been quiet for 500 ms (at most
/// 10 s): on two loaded cores a flood's last answers can take a while.
fn settled(socks: &[UdpSocket]) -> Vec<Vec<u8>> {
    let (mut out, mut quiet, t0) = (Vec::new(), 0, Instant::now());
    while quiet < 5 && t0.elapsed() < WAIT {
        let before = out.len();
        for s in socks {
            out.extend(drain(s));
        }
        if out.len() == before {
            quiet += 1;
            std::thread::sleep(Duration::from_millis(100));
        } else {
            quiet = 0;
        }
    }
    out
}

fn sdp(media: SocketAddr) -> String {
    sipmsg::audio_sdp(media, "0 8", &["rtpmap:0 PCMU/8000", "sendrecv"])
}

fn invite(from: SocketAddr, call_id: &str, body: &str) -> Vec<u8> {
    Request::new("INVITE", "sip:bob@corp2.example")
        .via(from, &format!("z9hG4bK-{call_id}"))
        .max_forwards(70)
        .from(&format!("<sip:x@{}>;tag=t-{call_id}", from.ip()))
        .to("<sip:bob@corp2.example>")
        .call_id(call_id)
        .cseq(1)
        .contact(&format!("sip:x@{from}"))
        .sdp(body)
        .build()
}

/// A stranger's socket on 127.0.1.`i`.
fn stranger(i: u32) -> UdpSocket {
    let s = UdpSocket::bind((format!("127.0.1.{}", 1 + i % 250).as_str(), 0)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
    s
}

/// SIP status codes in `msgs`, counted.
fn codes(msgs: &[Vec<u8>]) -> BTreeMap<u16, usize> {
    let mut m = BTreeMap::new();
    for c in msgs.iter().filter_map(|d| sipmsg::status(d)) {
        *m.entry(c).or_default() += 1;
    }
    m
}

/// What one flood did.
#[derive(Debug, Default)]
struct Outcome {
    sent: u64,
    bytes_sent: u64,
    answers: BTreeMap<u16, usize>,
    answers_other: usize,
    bytes_answered: u64,
    reached_phone: usize,
    foreign_at_phone: usize,
    mpr_log: u64,
    aps_log: u64,
    aps_cpu: f64,
    secs: f64,
    /// RTP packets that arrived (caller → callee, callee → caller).
    media: Option<(u32, u32)>,
    /// CMPH reserves the calling network's APS sent.
    cmph: Option<u64>,
}

impl Outcome {
    fn amplification(&self) -> f64 {
        self.bytes_answered as f64 / self.bytes_sent.max(1) as f64
    }

    fn line(&self, name: &str) -> String {
        format!(
            "{name:<13} sent {:>6} in {:>5.2} s | answers {:?} +{} other, {:.2} B/B | reached phone {:>4}, foreign {:>2} | log MPR {:>6} B, APSs {:>6} B | APS CPU {:.2} s{}",
            self.sent,
            self.secs,
            self.answers,
            self.answers_other,
            self.amplification(),
            self.reached_phone,
            self.foreign_at_phone,
            self.mpr_log,
            self.aps_log,
            self.aps_cpu,
            self.media
                .map_or(String::new(), |(a, b)| format!(" | RTP {a}/50 →, {b}/50 ←"))
                + &self
                    .cmph
                    .map_or(String::new(), |n| format!(" | APS1 sent {n} CMPH")),
        )
    }
}

/// Runs `flood` (which returns what it sent and what came back), then
/// reads what reached the callee and the daemons' log and CPU.
fn measure(b: &Bed, flood: impl FnOnce(&Bed, &mut Outcome) -> Vec<Vec<u8>>) -> Outcome {
    let mut o = Outcome::default();
    let (mpr_log, aps_log) = (
        b.mpr.log_bytes(),
        b.aps[0].log_bytes() + b.aps[1].log_bytes(),
    );
    let aps_cpu = b.aps[0].cpu() + b.aps[1].cpu();
    let t0 = Instant::now();
    let answers = flood(b, &mut o);
    o.secs = t0.elapsed().as_secs_f64();
    o.answers = codes(&answers);
    o.answers_other = answers.len() - o.answers.values().sum::<usize>();
    o.bytes_answered = answers.iter().map(|a| a.len() as u64).sum();
    let aps2 = ip(APS_IPS[1]);
    for m in b.callee_inbox() {
        if sipmsg::status(&m).is_some() {
            continue;
        }
        o.reached_phone += 1;
        // The inside phone may only be told its APS's port B.
        if sipmsg::media_of(&m).is_some_and(|a| a.ip() != aps2) || !names_only(&m, aps2) {
            o.foreign_at_phone += 1;
        }
    }
    o.mpr_log = b.mpr.log_bytes() - mpr_log;
    o.aps_log = b.aps[0].log_bytes() + b.aps[1].log_bytes() - aps_log;
    o.aps_cpu = b.aps[0].cpu() + b.aps[1].cpu() - aps_cpu;
    o
}

/// True when every `c=` line of the message's body names `ip`.
fn names_only(msg: &[u8], ip: IpAddr) -> bool {
    let text = String::from_utf8_lossy(msg);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    body.lines()
        .filter_map(|l| l.trim_end().strip_prefix("c="))
        .all(|c| c.split_whitespace().nth(2) == Some(ip.to_string().as_str()))
}

/// Sends `payloads` from `socks` round robin to `to`, reading answers as
/// it goes; at most `rate` datagrams per second; returns the answers.
fn blast(
    o: &mut Outcome,
    socks: &[UdpSocket],
    to: SocketAddr,
    payloads: impl Iterator<Item = Vec<u8>>,
    rate: u32,
) -> Vec<Vec<u8>> {
    let start = Instant::now();
    let mut answers = Vec::new();
    let mut buf = [0u8; 65_536];
    for (n, p) in payloads.enumerate() {
        let due = start + Duration::from_secs(1) * n as u32 / rate;
        if let Some(w) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(w);
        }
        let s = &socks[n % socks.len()];
        s.send_to(&p, to).unwrap();
        o.sent += 1;
        o.bytes_sent += p.len() as u64;
        if n % 64 == 0 {
            for s in socks {
                s.set_nonblocking(true).unwrap();
                while let Ok((k, _)) = s.recv_from(&mut buf) {
                    answers.push(buf[..k].to_vec());
                }
                s.set_nonblocking(false).unwrap();
            }
        }
    }
    answers.extend(settled(socks));
    answers
}

/// A deterministic generator for the mutations.
struct Xs(u64);

impl Xs {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// An INVITE from `from` whose SDP is broken in one of the ways the attack
/// run found to pass (a junk line, no `v=`, a bad port on a second `m=`,
/// a truncated line, a wrong Content-Length) or otherwise mangled at random.
fn mutated(from: SocketAddr, n: u32, rng: &mut Xs) -> Vec<u8> {
    let media = SocketAddr::new(from.ip(), 7000);
    let good = sdp(media);
    let body = match n % 6 {
        0 => good.replacen("s=", "junk line\r\ns=", 1),
        1 => good.replacen("v=0\r\n", "", 1),
        2 => format!("{good}m=video 99999 RTP/AVP 31\r\n"),
        3 => good[..good.len() - 7].to_owned(),
        4 => good.replacen("m=audio", "m=audio  x", 1),
        _ => {
            let mut b = good.into_bytes();
            for _ in 0..3 {
                let at = (rng.next() as usize) % b.len();
                b[at] = b" \r\n=:0x/"[(rng.next() % 8) as usize];
            }
            String::from_utf8_lossy(&b).into_owned()
        }
    };
    invite(from, &format!("mut-{n}"), &body)
}

fn run(scale: Scale) -> Vec<(&'static str, Outcome)> {
    let b = Bed::start("");
    let mut report = Vec::new();

    // 40+ unauthenticated INVITEs to a served domain, one per stranger.
    let o = measure(&b, |b, o| {
        let socks: Vec<UdpSocket> = (0..u32::from(scale.invites)).map(stranger).collect();
        let msgs = socks.iter().enumerate().map(|(i, s)| {
            invite(
                s.local_addr().unwrap(),
                &format!("flood-{i}"),
                &sdp(s.local_addr().unwrap()),
            )
        });
        let msgs: Vec<Vec<u8>> = msgs.collect();
        // One INVITE per socket: blast sends the n-th payload from the
        // n-th socket.
        blast(o, &socks, b.mpr_sip, msgs.into_iter(), 500)
    });
    report.push(("invite flood", o));

    let o = measure(&b, |b, o| {
        let socks: Vec<UdpSocket> = (0..4).map(|i| stranger(100 + i)).collect();
        let junk =
            (0..scale.garbage).map(|n| format!("\u{1}garbage {n} \u{7f}\r\n\r\n").into_bytes());
        blast(o, &socks, b.mpr_sip, junk, 5_000)
    });
    report.push(("garbage", o));

    let o = measure(&b, |b, o| {
        let socks: Vec<UdpSocket> = (0..8).map(|i| stranger(120 + i)).collect();
        let mut rng = Xs(0x9e37_79b9_7f4a_7c15);
        let from: Vec<SocketAddr> = socks.iter().map(|s| s.local_addr().unwrap()).collect();
        let msgs: Vec<Vec<u8>> = (0..scale.mutated)
            .map(|n| mutated(from[n as usize % from.len()], n, &mut rng))
            .collect();
        blast(o, &socks, b.mpr_sip, msgs.into_iter(), 1_000)
    });
    report.push(("mutated SDP", o));

    let o = measure(&b, |b, o| {
        let socks: Vec<UdpSocket> = (0..4).map(|i| stranger(140 + i)).collect();
        // A bare 20-byte Binding request: its answer would be larger.
        let binding = |n: u32| {
            let mut m = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
            m.extend_from_slice(&[0; 8]);
            m.extend_from_slice(&n.to_be_bytes());
            m
        };
        blast(o, &socks, b.mpr_sip, (0..scale.stun).map(binding), 5_000)
    });
    report.push(("reflection", o));

    // The network's own call, right after.
    let o = measure(&b, |b, o| {
        legit_call(b, o);
        Vec::new()
    });
    report.push(("own call", o));

    eprintln!("hostile load ({scale:?}), MPR relay of 32 port pairs:");
    for (name, o) in &report {
        eprintln!("  {}", o.line(name));
    }
    eprintln!(
        "  MPR: unanswered calls refused {} expired {}, legs held by strangers now {}; SIP malformed {}; amplification drops {}",
        b.mpr.metric("pinhole_unanswered_total{result=\"refused\"}"),
        b.mpr.metric("pinhole_unanswered_total{result=\"expired\"}"),
        b.mpr.metric("pinhole_unanswered_legs"),
        b.mpr
            .metric("pinhole_signaling_total{protocol=\"sip\",event=\"malformed\"}"),
        b.mpr
            .metric("pinhole_drops_total{reason=\"amplification\"}"),
    );
    drop(b);
    report.push(("out of ports", out_of_ports(scale)));
    let o = &report.last().unwrap().1;
    eprintln!("  {}", o.line("out of ports"));
    report
}

/// The retry storm's setting: with the caps lifted, strangers' INVITEs take
/// every relay port pair; then corp1's phone dials 10 times a second. Its
/// APS answers each call 503 and sends a reserve only when its back-off
/// ends (before: a reserve per call, and a loop of ~3,660 per second).
/// `o.sent` counts the calls, `o.answers` their answers, `o.cmph` the
/// CMPHs APS1 sent.
fn out_of_ports(scale: Scale) -> Outcome {
    let b = Bed::start("unanswered_legs_total = 32\n");
    let socks: Vec<UdpSocket> = (0..40).map(|i| stranger(200 + i)).collect();
    for (i, s) in socks.iter().enumerate() {
        let me = s.local_addr().unwrap();
        s.send_to(&invite(me, &format!("take-{i}"), &sdp(me)), b.mpr_sip)
            .unwrap();
    }
    let t0 = Instant::now();
    while b.mpr.metric("pinhole_legs_open") < 32.0 && t0.elapsed() < WAIT {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(b.mpr.metric("pinhole_legs_open"), 32.0, "every pair taken");
    b.callee_inbox();
    let cmph_key = "pinhole_client_cmph_sent_total";
    let cmph = b.aps[0].metric(cmph_key);
    let caller = UdpSocket::bind((PHONE_IPS[0], 0)).unwrap();
    caller
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let me = caller.local_addr().unwrap();
    let calls = u32::from(scale.invites);
    let mut o = measure(&b, |b, o| {
        let msgs = (0..calls).map(|n| invite(me, &format!("dial-{n}"), &sdp(me)));
        blast(o, std::slice::from_ref(&caller), b.aps_sig[0], msgs, 10)
    });
    o.cmph = Some((b.aps[0].metric(cmph_key) - cmph) as u64);
    o
}

/// corp1's phone calls corp2's: INVITE, 200, ACK, then RTP both ways;
/// the packets that arrived are in `o.media`.
fn legit_call(b: &Bed, o: &mut Outcome) {
    let caller = UdpSocket::bind((PHONE_IPS[0], 0)).unwrap();
    caller
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let caller_media = UdpSocket::bind((PHONE_IPS[0], 0)).unwrap();
    let callee_media = UdpSocket::bind((PHONE_IPS[1], 0)).unwrap();
    let me = caller.local_addr().unwrap();
    let inv = invite(me, "legit-1", &sdp(caller_media.local_addr().unwrap()));
    caller.send_to(&inv, b.aps_sig[0]).unwrap();
    o.sent += 1;
    let deadline = Instant::now() + WAIT;
    let (inv_b, from) = loop {
        let mut buf = [0u8; 65_536];
        if let Ok((n, from)) = b.callee.recv_from(&mut buf)
            && sipmsg::header(&buf[..n], "Call-ID").as_deref() == Some("legit-1")
        {
            break (buf[..n].to_vec(), from);
        }
        assert!(
            Instant::now() < deadline,
            "the INVITE never reached corp2's phone"
        );
    };
    let to_caller = sipmsg::media_of(&inv_b).unwrap();
    let ok = Response::to(&inv_b, 200, "OK")
        .always_tag("bob1")
        .record_route()
        .contact(&format!("sip:bob@{}", b.callee.local_addr().unwrap()))
        .sdp(&sdp(callee_media.local_addr().unwrap()))
        .build();
    b.callee.send_to(&ok, from).unwrap();
    let ok_a = loop {
        let mut buf = [0u8; 65_536];
        if let Ok((n, _)) = caller.recv_from(&mut buf)
            && sipmsg::status(&buf[..n]) == Some(200)
        {
            break buf[..n].to_vec();
        }
        assert!(Instant::now() < deadline, "no 200 OK reached corp1's phone");
    };
    let to_callee = sipmsg::media_of(&ok_a).unwrap();
    let mut route = sipmsg::record_route(&ok_a);
    route.reverse();
    let ack = Request::new(
        "ACK",
        &format!("sip:bob@{}", b.callee.local_addr().unwrap()),
    )
    .via(me, "z9hG4bK-legit-ack")
    .max_forwards(70)
    .route(&route)
    .from("<sip:x@127.0.0.84>;tag=t-legit-1")
    .to("<sip:bob@corp2.example>;tag=bob1")
    .call_id("legit-1")
    .cseq(1)
    .build();
    caller.send_to(&ack, b.aps_sig[0]).unwrap();
    let r = rtp_pair(
        &caller_media,
        &callee_media,
        to_callee,
        to_caller,
        50,
        Duration::from_millis(10),
    )
    .unwrap();
    o.media = Some((r.a_to_b.received, r.b_to_a.received));
    assert!(r.a_to_b.is_complete() && r.b_to_a.is_complete(), "{r:?}");
}

fn check(report: &[(&str, Outcome)], scale: Scale) {
    let get = |name: &str| &report.iter().find(|(n, _)| *n == name).unwrap().1;
    let flood = get("invite flood");
    // Strangers' unanswered calls may hold half the 32 pairs: 8 calls.
    assert!(flood.reached_phone <= 8, "{}", flood.line("invite flood"));
    assert_eq!(
        flood.answers.get(&503).copied().unwrap_or(0) + flood.reached_phone,
        usize::from(scale.invites),
        "every INVITE forwarded or answered 503: {}",
        flood.line("invite flood")
    );
    let garbage = get("garbage");
    assert!(
        garbage.amplification() <= 1.0,
        "{}",
        garbage.line("garbage")
    );
    assert_eq!(garbage.reached_phone, 0);
    let mutated = get("mutated SDP");
    assert_eq!(
        mutated.foreign_at_phone,
        0,
        "{}",
        mutated.line("mutated SDP")
    );
    let reflection = get("reflection");
    assert!(
        reflection.amplification() <= 1.0,
        "{}",
        reflection.line("reflection")
    );
    for (name, o) in report {
        // Bounded log: not a line per datagram (a WARN line is ~230 B:
        // 466 000 B for the garbage flood before lines were limited).
        assert!(
            o.mpr_log + o.aps_log < 16 * 1024,
            "{name}: {}",
            o.line(name)
        );
        assert!(o.aps_cpu < 5.0, "{name}: {}", o.line(name));
    }
    let storm = get("out of ports");
    assert_eq!(
        storm.answers.get(&503).copied(),
        Some(usize::from(scale.invites)),
        "each call answered 503 once: {}",
        storm.line("out of ports")
    );
    // 10 calls a second: reserves at 0, 1, 3, 7, 15 s and every 16 s.
    let bound = 5 + storm.secs as u64 / 16;
    assert!(
        storm.cmph.unwrap() <= bound,
        "{}",
        storm.line("out of ports")
    );
    let own = get("own call");
    assert_eq!(own.media, Some((50, 50)), "{}", own.line("own call"));
}

#[test]
fn floods_then_the_networks_own_call_has_media_both_ways() {
    let report = run(Scale::SHORT);
    check(&report, Scale::SHORT);
}

#[test]
#[ignore = "the full form: about a minute; `just hostile`"]
fn floods_full() {
    let report = run(Scale::FULL);
    check(&report, Scale::FULL);
}
