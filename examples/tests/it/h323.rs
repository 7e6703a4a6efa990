//! Two H.323 terminals (`pinhole_examples::h323`, every PDU by rasn) call
//! each other on loopback with two-way RTP: H.245 on its own connection,
//! tunnelled, and fastStart; straight at the callee, and through a
//! forwarding proxy that asks the caller to open H.245 with FACILITY
//! startH245; and the `h323_terminal` binary. Fig. 16: two smart
//! terminals (`h323::smart`) through an in-process MPR ([`fig16`]).
//!
//! Addresses: 127.0.0.141–.149 and .151–.155, ports 47901–47931 and
//! 47940–47999 (no other suite uses them).

use std::net::SocketAddr;
use std::time::Duration;

use pinhole_examples::h323::wire::{self, Deframer};
use pinhole_examples::h323::{Config, Mode, Released, Report, run};
use pinhole_h323_oracle::{access, build, h225};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

const PACKETS: u32 = 100;
/// 90 % of what the other side sends.
const EXPECT: u64 = PACKETS as u64 * 9 / 10;

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

struct Pair {
    caller: Config,
    callee: Config,
}

/// Caller on `.a`, callee on `.b`; the SETUP goes to `via` (default: the
/// callee).
fn pair(a: u8, b: u8, mode: Mode) -> Pair {
    let callee_signal = sa(&format!("127.0.0.{b}:47901"));
    let mut callee = Config::callee(
        "bob@corp2.example",
        callee_signal,
        sa(&format!("127.0.0.{b}:47920")),
    );
    callee.mode = mode;
    callee.packets = PACKETS;
    callee.seed = 2;
    callee.timeout = Duration::from_secs(20);
    let mut caller = Config::caller(
        "alice@corp1.example",
        sa(&format!("127.0.0.{a}:47901")),
        sa(&format!("127.0.0.{a}:47910")),
        "bob@corp2.example",
        callee_signal,
    );
    caller.mode = mode;
    caller.packets = PACKETS;
    caller.hold = Duration::from_secs(3);
    caller.seed = 1;
    caller.timeout = Duration::from_secs(20);
    Pair { caller, callee }
}

/// Runs both (the callee first, listening) to their ends.
async fn call(p: Pair) -> (Report, Report) {
    let callee = tokio::spawn(run(p.callee));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let caller = tokio::spawn(run(p.caller));
    let a = caller.await.unwrap().expect("caller ran");
    let b = callee.await.unwrap().expect("callee ran");
    (a, b)
}

/// `want` appear in `have` in this order (others may come between).
fn in_order(have: &[String], want: &[&str]) {
    let mut it = have.iter();
    for w in want {
        assert!(
            it.any(|h| h == w),
            "{w:?} missing or out of order in {have:#?}"
        );
    }
}

fn h225_of(r: &Report) -> Vec<&str> {
    r.messages
        .iter()
        .filter(|m| !m.contains("h245") && !m.starts_with('*'))
        .map(String::as_str)
        .collect()
}

/// What every mode shares: media both ways at the other's address, the
/// H.225.0 ladder, the release.
fn check_call(a: &Report, b: &Report, mode: Mode) {
    let (a_media, b_media) = (a.media_dest.unwrap(), b.media_dest.unwrap());
    assert_eq!(b.mode, mode);
    assert!(a.sent >= u64::from(PACKETS) && b.sent >= u64::from(PACKETS));
    assert!(a.intact >= EXPECT, "caller got {} of {}", a.intact, b.sent);
    assert!(b.intact >= EXPECT, "callee got {} of {}", b.intact, a.sent);
    // Symmetric RTP: each side's media comes from where it sends its own.
    assert_eq!(a.rtp_sources, [a_media]);
    assert_eq!(b.rtp_sources, [b_media]);
    assert_eq!(a_media.port(), 47920);
    assert_eq!(b_media.port(), 47910);
    assert!(
        a.rtcp_received >= 1 && b.rtcp_received >= 1,
        "RTCP both ways"
    );
    let ha = h225_of(a);
    assert_eq!(ha.first(), Some(&"> Setup"));
    assert_eq!(ha.last(), Some(&"> ReleaseComplete"));
    in_order(
        &a.messages,
        &[
            "> Setup",
            "< CallProceeding",
            "< Alerting",
            "< Connect",
            "> ReleaseComplete",
        ],
    );
    in_order(
        &b.messages,
        &[
            "< Setup",
            "> CallProceeding",
            "> Alerting",
            "> Connect",
            "< ReleaseComplete",
        ],
    );
    assert_eq!(h225_of(b).last(), Some(&"< ReleaseComplete"));
    assert_eq!(a.released_by, Some(Released::Local));
    assert_eq!(b.released_by, Some(Released::Remote));
}

/// The H.245 both sides run (separate or tunnelled).
fn check_h245(a: &Report, b: &Report) {
    for r in [a, b] {
        in_order(
            &r.messages,
            &[
                "> h245 terminalCapabilitySet",
                "> h245 openLogicalChannel",
                "< h245 openLogicalChannelAck",
            ],
        );
        for m in [
            "< h245 terminalCapabilitySet",
            "> h245 terminalCapabilitySetAck",
            "< h245 terminalCapabilitySetAck",
            "> h245 masterSlaveDetermination",
            "< h245 masterSlaveDetermination",
            "< h245 masterSlaveDeterminationAck",
            "< h245 openLogicalChannel",
            "> h245 openLogicalChannelAck",
        ] {
            assert!(
                r.messages.iter().any(|x| x == m),
                "{m} in {:#?}",
                r.messages
            );
        }
    }
    in_order(
        &a.messages,
        &[
            "> h245 closeLogicalChannel",
            "> h245 endSessionCommand",
            "< h245 endSessionCommand",
            "> ReleaseComplete",
        ],
    );
    in_order(
        &b.messages,
        &[
            "< h245 closeLogicalChannel",
            "> h245 closeLogicalChannelAck",
            "< h245 endSessionCommand",
            "> h245 endSessionCommand",
            "< ReleaseComplete",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn separate_h245_the_callee_connects_to_the_callers_address() {
    let (a, b) = call(pair(141, 142, Mode::Separate)).await;
    check_call(&a, &b, Mode::Separate);
    check_h245(&a, &b);
    assert!(
        a.messages
            .iter()
            .any(|m| m.starts_with("* h245 accepted from 127.0.0.142:")),
        "{:#?}",
        a.messages
    );
    assert!(
        b.messages
            .iter()
            .any(|m| m.starts_with("* h245 connected to 127.0.0.141:")),
        "{:#?}",
        b.messages
    );
    assert_eq!(a.media_dest, Some(sa("127.0.0.142:47920")));
    assert_eq!(b.media_dest, Some(sa("127.0.0.141:47910")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnelled_h245_in_facility_messages() {
    let (a, b) = call(pair(143, 144, Mode::Tunnel)).await;
    check_call(&a, &b, Mode::Tunnel);
    check_h245(&a, &b);
    for r in [&a, &b] {
        assert!(!r.messages.iter().any(|m| m.starts_with("* h245")));
        assert!(r.messages.iter().any(|m| m == "> Facility"));
        assert!(r.messages.iter().any(|m| m == "< Facility"));
    }
    // The caller's TCS and MSD went in the Setup: logged before it.
    assert_eq!(
        a.messages[..3],
        [
            "> h245 terminalCapabilitySet",
            "> h245 masterSlaveDetermination",
            "> Setup"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_start_media_without_h245() {
    let (a, b) = call(pair(145, 146, Mode::FastStart)).await;
    check_call(&a, &b, Mode::FastStart);
    for r in [&a, &b] {
        assert!(
            !r.messages.iter().any(|m| m.contains("h245")),
            "{:#?}",
            r.messages
        );
    }
    // The callee's RTP goes to the caller's reverse mediaChannel, the
    // caller's to the callee's forward one.
    assert_eq!(a.media_dest, Some(sa("127.0.0.146:47920")));
    assert_eq!(b.media_dest, Some(sa("127.0.0.145:47910")));
    assert_eq!(
        h225_of(&a),
        [
            "> Setup",
            "< CallProceeding",
            "< Alerting",
            "< Connect",
            "> ReleaseComplete"
        ]
    );
}

/// Forwards TPKT frames from `from` to `to`; with `start_h245`, before a
/// CONNECT that carries an `h245Address` tells `to` to connect there
/// (FACILITY startH245).
async fn forward(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, start_h245: bool) {
    let mut d = Deframer::default();
    let mut buf = vec![0u8; 4096];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        d.push(&buf[..n]);
        while let Some(f) = d.next_frame() {
            if start_h245
                && let Some(fac) = start_h245_for(&f)
                && to.write_all(&fac).await.is_err()
            {
                return;
            }
            if to.write_all(&wire::tpkt(&f)).await.is_err() {
                return;
            }
        }
    }
    let _ = to.shutdown().await;
}

/// A FACILITY startH245 naming the `h245Address` of `q931`, if it is a
/// CONNECT with one (built by rasn, as a proxy would).
fn start_h245_for(q931: &[u8]) -> Option<Vec<u8>> {
    let h = wire::parse_header(q931).ok()?;
    if h.kind != wire::kind::CONNECT {
        return None;
    }
    let per = pinhole_h323_oracle::q931_user_user(q931).ok()?;
    let ui = pinhole_h323_oracle::decode_user_information(per).ok()?;
    let addr = access::h245_address(&ui)?;
    let h225::H323UUPDUH323MessageBody::connect(c) = &ui.h323_uu_pdu.h323_message_body else {
        return None;
    };
    let per = build::facility(
        access::call_identifier(&ui)?,
        *c.conference_id.0.0,
        None,
        Some(addr),
        &[],
        false,
        &[],
    );
    Some(build::tpkt(&build::q931(
        h.crv,
        true,
        wire::kind::FACILITY,
        &per,
    )))
}

/// A proxy for one call that forwards the call signalling both ways
/// unchanged and, as a proxy that never connects H.245 itself does, sends
/// the caller FACILITY startH245 with the callee's `h245Address` ahead of
/// the CONNECT.
async fn proxy(l: TcpListener, callee: SocketAddr) {
    let (caller, _) = l.accept().await.unwrap();
    let callee = TcpStream::connect(callee).await.unwrap();
    let (caller_r, caller_w) = caller.into_split();
    let (callee_r, callee_w) = callee.into_split();
    tokio::join!(
        forward(caller_r, callee_w, false),
        forward(callee_r, caller_w, true)
    );
}

fn index_of(have: &[String], prefix: &str) -> usize {
    have.iter()
        .position(|m| m.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} in {have:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_a_proxy_the_caller_connects_h245_on_facility_start_h245() {
    let mut p = pair(147, 148, Mode::Separate);
    let via = sa("127.0.0.149:47901");
    p.caller.via = Some(via);
    // No h245Address in the SETUP: the callee gives its own in CONNECT.
    p.caller.offer_h245 = false;
    let l = TcpListener::bind(via).await.unwrap();
    let px = tokio::spawn(proxy(l, p.callee.signal));
    let (a, b) = call(p).await;
    px.abort();
    check_call(&a, &b, Mode::Separate);
    check_h245(&a, &b);
    let m = &a.messages;
    let fac = index_of(m, "< Facility(startH245)");
    let conn = index_of(m, "* h245 connected to 127.0.0.148:");
    let connect = index_of(m, "< Connect");
    assert!(fac < conn && fac < connect, "{m:#?}");
    assert!(!m.iter().any(|x| x.starts_with("* h245 accepted")));
    assert!(
        b.messages
            .iter()
            .any(|x| x.starts_with("* h245 accepted from 127.0.0.147:")),
        "{:#?}",
        b.messages
    );
}

/// The binary: callee and caller as processes, the JSON report, the exit
/// status.
#[test]
fn the_binary_calls_and_reports() {
    use std::process::Command;
    let bin = env!("CARGO_BIN_EXE_h323_terminal");
    let callee = Command::new(bin)
        .args([
            "--alias",
            "bob@corp2.example",
            "--signal",
            "127.0.0.152:47930",
            "--media",
            "127.0.0.152:47920",
            "--expect",
            "90",
            "--timeout-secs",
            "20",
            "--seed",
            "2",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let caller = Command::new(bin)
        .args([
            "--alias",
            "alice@corp1.example",
            "--signal",
            "127.0.0.151:47930",
            "--media",
            "127.0.0.151:47910",
            "--call",
            "bob@corp2.example",
            "--via",
            "127.0.0.152:47930",
            "--mode",
            "tunnel",
            "--hold-secs",
            "3",
            "--expect",
            "90",
            "--timeout-secs",
            "20",
            "--seed",
            "1",
        ])
        .output()
        .unwrap();
    let callee = callee.wait_with_output().unwrap();
    let a = crate::common::successful_stdout(&caller);
    let b = crate::common::successful_stdout(&callee);
    for (out, role, dest) in [
        (&a, "caller", "127.0.0.152:47920"),
        (&b, "callee", "127.0.0.151:47910"),
    ] {
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(
            out.starts_with(&format!("{{\"role\":\"{role}\",\"mode\":\"tunnel\"")),
            "{out}"
        );
        assert!(out.contains(&format!("\"media_dest\":\"{dest}\"")), "{out}");
        assert!(out.contains("\"rtp_sources\":[\"127.0.0.15"), "{out}");
    }
    assert!(a.contains("\"released_by\":\"local\""), "{a}");
    assert!(b.contains("\"released_by\":\"remote\""), "{b}");
    assert!(
        b.contains("\"< Setup\",\"> h245 terminalCapabilitySet\""),
        "{b}"
    );
}

#[tokio::test]
async fn a_callee_without_a_call_times_out() {
    let mut c = Config::callee(
        "carol@corp3.example",
        sa("127.0.0.149:47911"),
        sa("127.0.0.149:47924"),
    );
    c.timeout = Duration::from_millis(500);
    let r = run(c).await.unwrap();
    assert_eq!(r.released_by, Some(Released::Timeout));
    assert_eq!((r.sent, r.received, r.media_dest), (0, 0, None));
    assert!(r.messages.is_empty());
}

/// Fig. 16 on loopback: an in-process MPR with its H.323 ALG (call
/// signalling on its control port's TCP listener, H.245 listeners), and
/// two smart terminals (`h323::smart`), each its own ALG in terminal mode
/// on the client driver with its media through the driver's relay.
/// Addresses 127.0.0.153 (MPR), .154 (alice), .155 (bob); each mode its
/// own 20 ports from 47940 (MPR: control base, H.245 base+1–4, relay
/// base+6–17; terminals: signal base, ALG base+1, H.245 base+2–5, media
/// base+18).
mod fig16 {
    use std::net::{IpAddr, SocketAddr};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use pinhole_core::alg::counter;
    use pinhole_core::mpr;
    use pinhole_core::ports::PortRange;
    use pinhole_core::types::Transport;
    use pinhole_core::wire::Protocol;
    use pinhole_examples::h323::smart::{self, SmartConfig};
    use pinhole_examples::h323::{Config, Mode, Released, Report};
    use pinhole_h323::alg::{Mpr, MprConfig};
    use pinhole_net::driver::mpr::{self as mpr_driver, MprAlg, MprHandle};
    use pinhole_net::driver::{Streaming, mpr::MprOutputs};
    use pinhole_net::relay::{Relay, RelayConfig};
    use tokio::net::UdpSocket;

    use super::{EXPECT, PACKETS, in_order};

    const MPR_IP: [u8; 4] = [127, 0, 0, 153];
    const IP: [[u8; 4]; 2] = [[127, 0, 0, 154], [127, 0, 0, 155]];

    fn base(mode: Mode) -> u16 {
        47940
            + 20 * match mode {
                Mode::Separate => 0,
                Mode::Tunnel => 1,
                Mode::FastStart => 2,
            }
    }

    fn relay_ports(mode: Mode) -> (u16, u16) {
        (base(mode) + 6, base(mode) + 17)
    }

    async fn start_mpr(mode: Mode) -> (MprHandle, MprOutputs, SocketAddr) {
        let ip = IpAddr::from(MPR_IP);
        let b = base(mode);
        let at = SocketAddr::new(ip, b);
        let control = UdpSocket::bind(at).await.unwrap();
        let mut cfg = mpr::Config::new(ip, [153; 32]);
        let (first, last) = relay_ports(mode);
        cfg.ports = PortRange::new(first, last).unwrap();
        cfg.control_ports = vec![b];
        for id in ["corp1", "corp2"] {
            let mut n = mpr::NetworkConfig::new(id, format!("{id}-secret").into_bytes());
            n.domains.push(format!("{id}.example"));
            cfg.networks.push(n);
        }
        let engine = mpr::Engine::new(cfg, Instant::now()).unwrap();
        let (relay, relay_events) = Relay::start(RelayConfig {
            workers: 1,
            ..RelayConfig::default()
        })
        .unwrap();
        let pool: Vec<SocketAddr> = (b + 1..=b + 4).map(|p| SocketAddr::new(ip, p)).collect();
        let mut alg = MprAlg::new(
            at,
            Box::new(Mpr::new(MprConfig::new(at, pool.clone(), [154; 32]))),
        )
        .listen(at, Transport::Tcp);
        for p in pool {
            alg = alg.listen(p, Transport::Tcp);
        }
        let (h, out) = mpr_driver::spawn_streaming(
            engine,
            vec![Arc::new(control)],
            relay,
            relay_events,
            vec![alg],
            &Streaming::default(),
        )
        .await
        .unwrap();
        (h, out, at)
    }

    fn terminal(i: usize, mode: Mode, mpr: SocketAddr) -> SmartConfig {
        let ip = IpAddr::from(IP[i]);
        let b = base(mode);
        let (net, user) = [("corp1", "alice"), ("corp2", "bob")][i];
        let mut t = Config::callee(
            &format!("{user}@{net}.example"),
            SocketAddr::new(ip, b),
            SocketAddr::new(ip, b + 18),
        );
        if i == 0 {
            t.call = Some("bob@corp2.example".into());
            t.hold = Duration::from_secs(3);
        }
        t.mode = mode;
        t.packets = PACKETS;
        t.seed = 16 + i as u64;
        t.timeout = Duration::from_secs(20);
        let mut c = SmartConfig::new(t, mpr, net, format!("{net}-secret").as_bytes());
        c.domains = vec![format!("{net}.example")];
        c.alg = SocketAddr::new(ip, b + 1);
        c.h245_pool = (b + 2..=b + 5).map(|p| SocketAddr::new(ip, p)).collect();
        c
    }

    async fn call(mode: Mode) -> (Report, Report, MprHandle) {
        let (mpr, _out, at) = start_mpr(mode).await;
        let bob = tokio::spawn(smart::run(terminal(1, mode, at)));
        let until = Instant::now() + Duration::from_secs(10);
        while mpr.route("corp2", Protocol::H323).await.unwrap().is_none() {
            assert!(Instant::now() < until, "bob never registered");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let alice = smart::run(terminal(0, mode, at)).await.expect("alice ran");
        let bob = bob.await.unwrap().expect("bob ran");
        (alice, bob, mpr)
    }

    async fn check(mode: Mode) {
        let (a, b, mpr) = call(mode).await;
        let (first, last) = relay_ports(mode);
        for (r, who) in [(&a, "alice"), (&b, "bob")] {
            let dest = r
                .media_dest
                .unwrap_or_else(|| panic!("{who}: no media: {r:#?}"));
            assert_eq!(dest.ip(), IpAddr::from(MPR_IP), "{who} sends to the relay");
            assert!((first..=last).contains(&dest.port()), "{who}: {dest}");
            assert!(r.sent >= u64::from(PACKETS), "{who} sent {}", r.sent);
            assert!(r.intact >= EXPECT, "{who} got {}: {r:#?}", r.intact);
            // Symmetric RTP: it comes from the relay port we send to.
            assert_eq!(r.rtp_sources, [dest], "{who}");
        }
        assert_eq!(b.mode, mode);
        in_order(&a.messages, &["> Setup", "< Connect", "> ReleaseComplete"]);
        in_order(&b.messages, &["< Setup", "> Connect", "< ReleaseComplete"]);
        assert_eq!(a.released_by, Some(Released::Local));
        assert_eq!(b.released_by, Some(Released::Remote));
        // One call at the MPR, released, every relay leg closed.
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            let s = mpr.stats().await.unwrap();
            let c = mpr.alg_counters().await.unwrap();
            let (calls, released) = (
                counter(&c, Protocol::H323, "calls"),
                counter(&c, Protocol::H323, "released"),
            );
            if s.legs_open == 0 && released == 1 {
                assert_eq!(calls, 1);
                assert_eq!(counter(&c, Protocol::H323, "h245_refused"), 0);
                break;
            }
            assert!(
                Instant::now() < until,
                "legs open {}, calls {calls}, released {released}",
                s.legs_open
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn smart_terminals_h245_on_its_own_connections() {
        check(Mode::Separate).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn smart_terminals_h245_tunneled() {
        check(Mode::Tunnel).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn smart_terminals_fast_start() {
        check(Mode::FastStart).await;
    }
}
