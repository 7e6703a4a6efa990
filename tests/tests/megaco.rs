//! Baseline for the H.248 (MEGACO) end-to-end tests: Erlang/OTP's megaco
//! as the MGC and two MGs (`tests/megaco/*.escript`, run by
//! `pinhole_tests::megaco`), directly on loopback with no Pinhole in
//! between. Proves the peers make a call (ServiceChange, Add, Add, Modify,
//! Subtract by name and Subtract `*`) and that RTP flows both ways between
//! the addresses their Add replies name. Skipped loudly without escript
//! and megaco unless `CI` is set.
//!
//! Addresses used by no other test: 127.0.0.70-127.0.0.79, signalling
//! ports 29400-29499, RTP ports 45000-45099. The pretty-text test uses
//! 127.0.0.70-72 (signalling 2940x, RTP 4500x), the compact one
//! 127.0.0.73-75 (2941x, 4501x), the relayed one 127.0.0.76-79 (2942x,
//! 4502x), the timeout one 127.0.0.70-71 (2943x, 45030); the namespace
//! test has its own loopback (2944x, 4504x).
#![allow(missing_docs)]

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pinhole_tests::megaco::{Encoding, MgConfig, MgReport, MgcConfig, MgcReport};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// RTP packets each MG sends per call, and how far apart.
const PACKETS: u32 = 40;
const INTERVAL: Duration = Duration::from_millis(10);
/// Long enough for every packet to go both ways before the Subtracts
/// (the sending takes 0.4 s), with room for a loaded machine.
const HOLD: Duration = Duration::from_millis(1500);
/// Bounds on each process (the whole test takes about 3 s per call).
const RUN: Duration = Duration::from_secs(20);

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("a literal address")
}

fn log_dir(test: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("megaco")
        .join(test)
}

/// One MG's addresses.
struct Gw {
    signal: SocketAddr,
    mid: &'static str,
    rtp: SocketAddr,
    /// A signalling relay between this MG and the MGC: (the address the
    /// MG sends to, the address the relay sends to the MGC from).
    via: Option<(SocketAddr, SocketAddr)>,
}

impl Gw {
    fn direct(signal: &str, mid: &'static str, rtp: &str) -> Self {
        Self {
            signal: addr(signal),
            mid,
            rtp: addr(rtp),
            via: None,
        }
    }

    /// Where the MGC sees this MG's signalling come from.
    fn peer(&self) -> SocketAddr {
        self.via.map_or(self.signal, |(_, mgc_side)| mgc_side)
    }
}

/// Runs the MGC and both MGs to the end and returns what they printed.
fn run_call(
    test: &str,
    mgc: MgcConfig,
    mg1: &Gw,
    mg2: &Gw,
    adjust: impl Fn(MgConfig) -> MgConfig,
) -> Result<Option<(MgcReport, MgReport, MgReport)>> {
    let dir = log_dir(test);
    let Some(mut mgc) = mgc
        .mg_mids(mg1.mid, mg2.mid)
        .max_run(RUN)
        .dir(&dir)
        .start()?
    else {
        return Ok(None);
    };
    let start = |gw: &Gw| {
        adjust(
            MgConfig::new(
                gw.via.map_or(mgc.listen_addr(), |(mg_side, _)| mg_side),
                gw.signal,
                gw.mid,
                gw.rtp,
            )
            .packets(PACKETS)
            .interval(INTERVAL)
            .max_run(RUN)
            .dir(&dir),
        )
        .start()
    };
    let mut m1 = start(mg1)?.ok_or("megaco vanished")?;
    let mut m2 = start(mg2)?.ok_or("megaco vanished")?;
    let report = mgc.wait(RUN)?;
    let r1 = m1.wait(Duration::from_secs(5))?;
    let r2 = m2.wait(Duration::from_secs(5))?;
    let report = report.ensure_success()?;
    Ok(Some((report, r1.ensure_success()?, r2.ensure_success()?)))
}

/// What every call must show: the ladder in order, the Add replies'
/// Local addresses being the MGs' RTP sockets, and RTP both ways.
fn check_calls(report: &MgcReport, r1: &MgReport, r2: &MgReport, mg1: &Gw, mg2: &Gw, calls: u32) {
    // megaco stores, under the MID each MG registered with, the address
    // its ServiceChange came from: its own socket, or the relay's.
    for (n, gw) in [(1, mg1), (2, mg2)] {
        let sc = report.service_change(n).expect("a ServiceChange per MG");
        assert_eq!((sc.mid.as_str(), sc.peer), (gw.mid, gw.peer()), "{sc:?}");
        assert_eq!(sc.method, "restart");
    }
    assert_eq!(report.done_calls, Some(calls));
    for call in 1..=calls {
        let add1 = report.add(call, 1).expect("MG1's Add reply");
        let add2 = report.add(call, 2).expect("MG2's Add reply");
        assert_eq!((add1.local, add1.remote), (mg1.rtp, None), "{add1:?}");
        assert_eq!(
            (add2.local, add2.remote),
            (mg2.rtp, Some(mg1.rtp)),
            "{add2:?}"
        );
        let modify: Vec<_> = report.modifies.iter().filter(|m| m.call == call).collect();
        assert_eq!(modify.len(), 1, "{:?}", report.modifies);
        assert_eq!(
            (
                modify[0].mg,
                modify[0].context,
                &modify[0].termination,
                modify[0].remote
            ),
            (1, add1.context, &add1.termination, mg2.rtp)
        );
        let subs: Vec<_> = report.subtracts.iter().filter(|s| s.call == call).collect();
        assert_eq!(subs.len(), 2, "{:?}", report.subtracts);
        // MG1's termination by name, MG2's whole context with *.
        assert_eq!((subs[0].mg, subs[0].context), (1, add1.context));
        assert_eq!(subs[0].request, add1.termination);
        assert_eq!(subs[0].terminations, vec![add1.termination.clone()]);
        assert_eq!((subs[1].mg, subs[1].context), (2, add2.context));
        assert_eq!(subs[1].request, "*");
        assert_eq!(subs[1].terminations, vec![add2.termination.clone()]);
        // The MGs' own view of the same call, and the media.
        for (r, add, me, peer) in [(r1, add1, mg1, mg2), (r2, add2, mg2, mg1)] {
            let res = r
                .results
                .iter()
                .find(|x| x.call == call)
                .unwrap_or_else(|| panic!("no RESULT for call {call} from {}", me.mid));
            assert_eq!(
                (res.context, &res.termination),
                (add.context, &add.termination)
            );
            assert_eq!(res.remote, Some(peer.rtp), "{} {res:?}", me.mid);
            assert_eq!(res.rtp_sent, PACKETS, "{} {res:?}", me.mid);
            assert!(
                res.rtp_received * 10 >= PACKETS * 9,
                "{} got {} of {PACKETS} RTP packets: {res:?}",
                me.mid,
                res.rtp_received
            );
            assert_eq!(res.rtp_bad, 0, "{res:?}");
            assert_eq!(res.from, vec![peer.rtp], "{} {res:?}", me.mid);
            println!(
                "call {call}: {} sent {} and received {} RTP packets (from {:?})",
                me.mid, res.rtp_sent, res.rtp_received, res.from
            );
        }
    }
}

#[test]
fn megaco_call_with_two_way_rtp_on_loopback() -> Result {
    let mg1 = Gw::direct("127.0.0.71:29401", "[127.0.0.71]:29401", "127.0.0.71:45000");
    // A domain-name MID whose name is no address: megaco sends to the
    // source of the MG's messages, never to its MID.
    let mg2 = Gw::direct("127.0.0.72:29402", "<mg2.example>", "127.0.0.72:45002");
    let mgc = MgcConfig::new(addr("127.0.0.70:29400")).hold(HOLD);
    let Some((report, r1, r2)) = run_call("pretty", mgc, &mg1, &mg2, |c| c)? else {
        return Ok(());
    };
    assert_eq!(report.mid.as_deref(), Some("[127.0.0.70]:29400"));
    check_calls(&report, &r1, &r2, &mg1, &mg2, 1);
    Ok(())
}

#[test]
fn megaco_compact_text_two_calls_known_mgc_mid() -> Result {
    let mg1 = Gw::direct(
        "127.0.0.74:29411",
        "<mg1.example>:29411",
        "127.0.0.74:45010",
    );
    let mg2 = Gw::direct("127.0.0.75:29412", "mg2device", "127.0.0.75:45012");
    let mgc = MgcConfig::new(addr("127.0.0.73:29410"))
        .mid("<mgc.example>:29410")
        .encoding(Encoding::Compact)
        .calls(2)
        .hold(HOLD);
    let adjust = |c: MgConfig| {
        c.encoding(Encoding::Compact)
            .calls(2)
            .mgc_mid("<mgc.example>:29410")
    };
    let Some((report, r1, r2)) = run_call("compact", mgc, &mg1, &mg2, adjust)? else {
        return Ok(());
    };
    assert_eq!(report.mid.as_deref(), Some("<mgc.example>:29410"));
    check_calls(&report, &r1, &r2, &mg1, &mg2, 2);
    // Each call gets its own context and termination on each MG.
    for r in [&r1, &r2] {
        assert_eq!(r.results.len(), 2);
        assert_ne!(r.results[0].context, r.results[1].context);
        assert_ne!(r.results[0].termination, r.results[1].termination);
    }
    Ok(())
}

/// A signalling relay standing where Pinhole's MPR will: the MG sends to
/// `mg_side`, the relay forwards from `mgc_side` to the MGC and sends the
/// MGC's datagrams back to the MG from `mg_side`. Stops when told, or
/// after `RUN`.
fn relay(
    mg_side: SocketAddr,
    mgc_side: SocketAddr,
    mgc: SocketAddr,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<u32>> {
    let inner = UdpSocket::bind(mg_side)?;
    let outer = UdpSocket::bind(mgc_side)?;
    for s in [&inner, &outer] {
        s.set_read_timeout(Some(Duration::from_millis(5)))?;
    }
    Ok(std::thread::spawn(move || {
        let deadline = Instant::now() + RUN;
        let (mut mg, mut relayed) = (None, 0);
        let mut buf = [0u8; 65536];
        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            if let Ok((n, from)) = inner.recv_from(&mut buf) {
                mg = Some(from);
                relayed += u32::from(outer.send_to(&buf[..n], mgc).is_ok());
            }
            if let (Ok((n, _)), Some(mg)) = (outer.recv_from(&mut buf), mg) {
                relayed += u32::from(inner.send_to(&buf[..n], mg).is_ok());
            }
        }
        relayed
    }))
}

#[test]
fn megaco_mgc_sees_the_relay_as_the_mg() -> Result {
    let mgc_addr = addr("127.0.0.76:29420");
    let (mg_side, mgc_side) = (addr("127.0.0.77:29421"), addr("127.0.0.77:29422"));
    let mg1 = Gw {
        via: Some((mg_side, mgc_side)),
        ..Gw::direct("127.0.0.78:29423", "[127.0.0.78]:29423", "127.0.0.78:45020")
    };
    let mg2 = Gw::direct(
        "127.0.0.79:29424",
        "<mg2.relayed.example>",
        "127.0.0.79:45022",
    );
    let stop = Arc::new(AtomicBool::new(false));
    let relay = relay(mg_side, mgc_side, mgc_addr, Arc::clone(&stop))?;
    // MG1 talks to the relay; MG2 straight to the MGC.
    let mgc = MgcConfig::new(mgc_addr).hold(HOLD);
    let outcome = run_call("relayed", mgc, &mg1, &mg2, |c| c);
    stop.store(true, Ordering::Relaxed);
    let relayed = relay.join().map_err(|_| "relay thread panicked")?;
    let Some((report, r1, r2)) = outcome? else {
        return Ok(());
    };
    // megaco keys MG1 on its MID but sends to where its ServiceChange
    // came from: the relay (check_calls checks the peer address).
    check_calls(&report, &r1, &r2, &mg1, &mg2, 1);
    assert_eq!(report.service_change(1).map(|s| s.peer), Some(mgc_side));
    // ServiceChange, Add, Modify, Subtract, each with its reply.
    assert!(relayed >= 8, "relayed {relayed} datagrams");
    Ok(())
}

#[test]
fn megaco_waits_are_bounded() -> Result {
    // An MGC nobody registers with gives up after its wait.
    let t0 = Instant::now();
    let Some(mut mgc) = MgcConfig::new(addr("127.0.0.70:29430"))
        .wait_registrations(Duration::from_millis(800))
        .dir(log_dir("bounded"))
        .start()?
    else {
        return Ok(());
    };
    let report = mgc.wait(RUN)?;
    assert!(!report.status.success(), "{report:?}");
    let error = report.error.clone().unwrap_or_default();
    assert!(error.contains("0 of 2 MGs registered"), "{error}");
    assert!(report.ensure_success().is_err());
    // An MG whose MGC never answers gives up after its request timeout.
    let silent = UdpSocket::bind("127.0.0.70:29431")?;
    let mut mg = MgConfig::new(
        silent.local_addr()?,
        addr("127.0.0.71:29432"),
        "[127.0.0.71]:29432",
        addr("127.0.0.71:45030"),
    )
    .request_timeout(Duration::from_millis(600))
    .dir(log_dir("bounded"))
    .start()?
    .ok_or("megaco vanished")?;
    let report = mg.wait(RUN)?;
    assert!(!report.status.success() && !report.registered, "{report:?}");
    let error = report.error.clone().unwrap_or_default();
    assert!(error.contains("ServiceChange"), "{error}");
    // It did send: three tries, each a ServiceChange Restart.
    silent.set_read_timeout(Some(Duration::from_millis(100)))?;
    let mut buf = [0u8; 2048];
    let (n, from) = silent.recv_from(&mut buf)?;
    assert_eq!(from, addr("127.0.0.71:29432"));
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(
        text.starts_with("MEGACO/1 [127.0.0.71]:29432\n") && text.contains("Method = Restart"),
        "{text}"
    );
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    Ok(())
}

/// A network namespace with its loopback up, deleted on drop.
struct Netns(String);

impl Netns {
    fn create(name: &str) -> Option<Self> {
        let ok = |args: &[&str]| {
            Command::new("ip")
                .args(args)
                .output()
                .is_ok_and(|o| o.status.success())
        };
        if !ok(&["netns", "add", name]) {
            return None;
        }
        let ns = Self(name.to_owned());
        ok(&["-n", name, "link", "set", "lo", "up"]).then_some(ns)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn megaco_call_inside_a_network_namespace() -> Result {
    if !pinhole_tests::megaco::megaco_available() {
        // The loopback test reports the missing tools.
        return Ok(());
    }
    let name = format!("pinhole-megaco-{}", std::process::id());
    let Some(ns) = Netns::create(&name) else {
        let bar = "!".repeat(72);
        let notice = format!(
            "\n{bar}\n!!! SKIPPED megaco_call_inside_a_network_namespace: cannot create a network namespace (needs root)\n{bar}\n"
        );
        std::io::Write::write_all(&mut std::io::stderr(), notice.as_bytes())?;
        return Ok(());
    };
    // The namespace's own loopback: the loopback test's addresses, other
    // ports, and no clash with anything outside.
    let mg1 = Gw::direct("127.0.0.71:29441", "[127.0.0.71]:29441", "127.0.0.71:45040");
    let mg2 = Gw::direct("127.0.0.72:29442", "<mg2.example>", "127.0.0.72:45042");
    let mgc = MgcConfig::new(addr("127.0.0.70:29440"))
        .hold(HOLD)
        .netns(ns.0.clone());
    let outcome = run_call("netns", mgc, &mg1, &mg2, |c| c.netns(ns.0.clone()));
    let Some((report, r1, r2)) = outcome? else {
        return Ok(());
    };
    check_calls(&report, &r1, &r2, &mg1, &mg2, 1);
    Ok(())
}
