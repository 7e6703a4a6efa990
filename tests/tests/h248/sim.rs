//! Fig. 13 through the firewall simulators, with the real OTP peers: the
//! MPR driver with the H.248 ALG and two APS client drivers with theirs
//! run in this process (`pinhole-net`), each APS behind a userspace NAT
//! firewall (`FirewallSim`) in front of one megaco MG, and the megaco MGC
//! on the public side. Each MG registers through its APS, its firewall's
//! signaling pinhole and the MPR (a gateway port of its own toward the
//! MGC), the MGC's Add/Add/Modify/Subtract ladder goes through, RTP flows
//! MG1 → APS1 → FW1 → MPR → FW2 → APS2 → MG2 and back through pinholes
//! opened from inside, and the Subtracts tear the call down.
//!
//! ```text
//! MG1 127.0.0.105 ── APS1 127.0.0.104 ─ FW1 127.0.0.101 ─┐
//!                                                         MPR 127.0.0.100 ── MGC 127.0.0.103
//! MG2 127.0.0.107 ── APS2 127.0.0.106 ─ FW2 127.0.0.102 ─┘
//! ```
//!
//! Ports: MPR control (H.248) 29700, gateway ports 29710–29719, relay
//! 48000–48199; APS signaling 29701 and 29702, ports B 48200–48299 (APS1)
//! and 48300–48399 (APS2); MGC 29703; MGs 29704 and 29705, their RTP
//! 48400 and 48402. Each firewall's routes are on its APS's address; an
//! APS reaches its MG directly on the LAN (`pinhole_tests::sim::Lan`).

use std::error::Error;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pinhole_core::alg::{self, AlgCounters};
use pinhole_core::ports::PortRange;
use pinhole_core::wire::Protocol;
use pinhole_core::{client, mpr};
use pinhole_h248::alg::{Aps, ApsConfig, Mpr, MprConfig};
use pinhole_net::driver::mpr::MprAlg;
use pinhole_net::driver::{client as client_driver, mpr as mpr_driver};
use pinhole_net::firewall::{Counters, FirewallSim};
use pinhole_net::relay::{Relay, RelayConfig};
use pinhole_tests::megaco::through::{Expect, Span};
use pinhole_tests::megaco::{MgConfig, MgReport, MgcConfig, MgcReport};
use pinhole_tests::sim::{self, Lan};
use tokio::net::UdpSocket;

type Res<T = ()> = Result<T, Box<dyn Error + Send + Sync>>;

const MPR_IP: &str = "127.0.0.100";
const FW_PUBLIC: [&str; 2] = ["127.0.0.101", "127.0.0.102"];
const MGC_IP: &str = "127.0.0.103";
const APS_IPS: [&str; 2] = ["127.0.0.104", "127.0.0.106"];
const MG_IPS: [&str; 2] = ["127.0.0.105", "127.0.0.107"];
const NETWORKS: [&str; 2] = ["corp1", "corp2"];
/// MG1's is configured at APS1, MG2's learned by APS2.
const MIDS: [&str; 2] = ["[127.0.0.105]:29704", "<mg2.corp2.example>"];

const H248_PORT: u16 = 29700;
const MG_PORTS: RangeInclusive<u16> = 29710..=29719;
const RELAY: (u16, u16) = (48000, 48199);

/// RTP each MG sends, and how far apart.
const PACKETS: u32 = 50;
const INTERVAL: Duration = Duration::from_millis(10);
/// The call stays up long enough for every packet both ways.
const HOLD: Duration = Duration::from_millis(1500);
/// Bound on each escript's run.
const RUN: Duration = Duration::from_secs(25);
/// Bound on the drivers' waits (registration, legs).
const WAIT: Duration = Duration::from_secs(10);
/// Bound on the whole test.
const WHOLE: Duration = Duration::from_secs(40);

fn ip(s: &str) -> IpAddr {
    s.parse().expect("a literal address")
}

fn at(s: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip(s), port)
}

fn aps_signaling(i: usize) -> SocketAddr {
    at(APS_IPS[i], 29701 + i as u16)
}

fn ports_b(i: usize) -> (u16, u16) {
    let first = 48200 + 100 * i as u16;
    (first, first + 99)
}

fn mgc() -> SocketAddr {
    at(MGC_IP, 29703)
}

fn mg_signaling(i: usize) -> SocketAddr {
    at(MG_IPS[i], 29704 + i as u16)
}

fn mg_rtp(i: usize) -> SocketAddr {
    at(MG_IPS[i], 48400 + 2 * i as u16)
}

fn credential(net: &str) -> Vec<u8> {
    format!("{net}-h248-secret").into_bytes()
}

fn log_dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("h248-fig13-sim");
    std::fs::create_dir_all(&d).expect("log folder");
    d
}

/// The MPR driver with the H.248 ALG on its control socket; the ALG's
/// gateway ports are bound by the driver.
async fn start_mpr() -> Res<(mpr_driver::MprHandle, mpr_driver::MprOutputs)> {
    let control = UdpSocket::bind(at(MPR_IP, H248_PORT)).await?;
    let local = control.local_addr()?;
    let mut cfg = mpr::Config::new(ip(MPR_IP), [0x48; 32]);
    cfg.ports = PortRange::new(RELAY.0, RELAY.1)?;
    cfg.control_ports = vec![H248_PORT];
    for net in NETWORKS {
        let mut n = mpr::NetworkConfig::new(net, credential(net));
        n.protocols = vec![Protocol::H248];
        cfg.networks.push(n);
    }
    let engine = mpr::Engine::new(cfg, Instant::now())?;
    let (relay, relay_events) = Relay::start(RelayConfig {
        workers: 1,
        ..RelayConfig::default()
    })?;
    let alg = Mpr::new(MprConfig::new(local, mgc(), MG_PORTS));
    Ok(mpr_driver::spawn_with(
        engine,
        vec![Arc::new(control)],
        relay,
        relay_events,
        vec![MprAlg::new(local, Box::new(alg))],
    )?)
}

/// APS `i` with the H.248 ALG behind firewall `sim`, registered.
async fn start_aps(
    i: usize,
    sim: Arc<FirewallSim>,
) -> Res<(client_driver::ClientHandle, client_driver::ClientOutputs)> {
    let net = NETWORKS[i];
    let sig = UdpSocket::bind(aps_signaling(i)).await?;
    let local = sig.local_addr()?;
    let engine = client::Engine::new(
        client::Config::new(
            net,
            credential(net),
            Protocol::H248,
            local,
            at(MPR_IP, H248_PORT),
            [0x50 + i as u8; 32],
        ),
        Instant::now(),
    )?;
    let (relay, relay_events) = Relay::start(RelayConfig {
        workers: 1,
        ..RelayConfig::default()
    })?;
    let (first, last) = ports_b(i);
    let mut ac = ApsConfig::new(
        local,
        ip(APS_IPS[i]),
        PortRange::new(first, last)?,
        [0x60 + i as u8; 32],
    );
    // MG1 is configured, MG2 learned from its first message.
    if i == 0 {
        ac.gateways = vec![(MIDS[0].to_owned(), mg_signaling(0))];
    }
    let (handle, out) = client_driver::spawn_with(
        engine,
        Arc::new(sig),
        relay,
        relay_events,
        Lan::shared(sim, [ip(APS_IPS[i]), ip(MG_IPS[i])]),
        Some(Box::new(Aps::new(ac))),
    )?;
    let pinhole = sim::wait_registered(&handle, WAIT)
        .await
        .map_err(|e| format!("APS{}: {e}", i + 1))?;
    // Registered through its firewall: the MPR saw the public side.
    assert_eq!(pinhole.ip(), ip(FW_PUBLIC[i]), "APS{}", i + 1);
    Ok((handle, out))
}

/// Runs the MGC and both MGs to their end (blocking: the escripts are
/// child processes); `None` when megaco is not installed (skipped loudly).
fn run_peers(dir: PathBuf) -> Res<Option<(MgcReport, [MgReport; 2])>> {
    let Some(mut mgc) = MgcConfig::new(mgc())
        .mg_mids(MIDS[0], MIDS[1])
        .hold(HOLD)
        .max_run(RUN)
        .dir(&dir)
        .start()?
    else {
        return Ok(None);
    };
    let mg = |i: usize| {
        MgConfig::new(aps_signaling(i), mg_signaling(i), MIDS[i], mg_rtp(i))
            .packets(PACKETS)
            .interval(INTERVAL)
            .max_run(RUN)
            .dir(&dir)
            .start()
    };
    let mut mg1 = mg(0)?.ok_or("megaco vanished")?;
    let mut mg2 = mg(1)?.ok_or("megaco vanished")?;
    let report = mgc.wait(RUN)?;
    let r1 = mg1.wait(Duration::from_secs(5))?;
    let r2 = mg2.wait(Duration::from_secs(5))?;
    Ok(Some((
        report.ensure_success()?,
        [r1.ensure_success()?, r2.ensure_success()?],
    )))
}

/// Asserts that the ALG counters `names` exist and are 0.
fn assert_zero(who: &str, c: &AlgCounters, names: &[&str]) {
    let h248 = c
        .iter()
        .find(|(p, _)| *p == Protocol::H248)
        .map(|(_, c)| c)
        .unwrap_or_else(|| panic!("{who}: no H.248 counters in {c:?}"));
    for name in names {
        assert!(
            h248.iter().any(|(n, _)| n == name),
            "{who}: no counter {name} in {h248:?}"
        );
        assert_eq!(
            alg::counter(c, Protocol::H248, name),
            0,
            "{who}: {name} in {h248:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fig13_megaco_mgc_and_mgs_through_in_process_mpr_apss_and_firewall_simulators() -> Res {
    let t0 = Instant::now();
    // On the test's own thread (nothing else runs yet), so that the loud
    // skip names the test.
    if !pinhole_tests::megaco::megaco_available() {
        // MgcConfig::start reports it (or fails under CI).
        let _ = MgcConfig::new(mgc()).start()?;
        return Ok(());
    }
    let (mpr, _mpr_out) = start_mpr().await?;
    let mut fws = Vec::new();
    let mut apss = Vec::new();
    for i in 0..2 {
        let fw = sim::firewall(ip(APS_IPS[i]), ip(FW_PUBLIC[i])).await?;
        apss.push(start_aps(i, Arc::clone(&fw)).await?);
        fws.push(fw);
    }
    sim::wait_legs(&mpr, 0, WAIT).await?;
    let registered: Vec<Counters> = fws.iter().map(|f| f.counters()).collect();

    // The peers run on a blocking thread; meanwhile the most relay legs
    // the MPR held at once is sampled.
    let peers = tokio::task::spawn_blocking(move || run_peers(log_dir()));
    let (done, most_legs) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let sampler = {
        let (mpr, done, most) = (mpr.clone(), Arc::clone(&done), Arc::clone(&most_legs));
        tokio::spawn(async move {
            let until = Instant::now() + WHOLE;
            while !done.load(Ordering::Relaxed) && Instant::now() < until {
                if let Ok(s) = mpr.stats().await {
                    most.fetch_max(s.legs_open, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let peers = tokio::time::timeout(WHOLE, peers).await;
    done.store(true, Ordering::Relaxed);
    sampler.await?;
    let Some((report, reports)) = peers.map_err(|_| "the megaco peers outlived the test")??? else {
        return Ok(());
    };

    let expect = Expect {
        mids: MIDS.map(String::from),
        gateway_ports: Span::new(ip(MPR_IP), MG_PORTS),
        relay: Span::new(ip(MPR_IP), RELAY.0..=RELAY.1),
        media_from: [0, 1].map(|i| {
            let (first, last) = ports_b(i);
            Span::new(ip(APS_IPS[i]), first..=last)
        }),
        packets: PACKETS,
        min_percent: 90,
    };
    for line in expect.check(&report, &reports)? {
        println!("sim: {line}");
    }

    // The call held a leg on each side of the relay, and the Subtracts
    // freed them.
    let most = most_legs.load(Ordering::Relaxed);
    assert!(most >= 2, "at most {most} relay legs open during the call");
    sim::wait_legs(&mpr, 0, WAIT).await?;

    // The media went through pinholes opened from inside: each firewall
    // let in what the pinholes were opened for and dropped nothing, and
    // holds a mapping from a port B of its APS toward an MPR relay port.
    for (i, fw) in fws.iter().enumerate() {
        let c = fw.counters();
        let got = u64::from(reports[i].results[0].rtp_received);
        let sent = u64::from(reports[i].results[0].rtp_sent);
        println!(
            "sim: FW{}: {} out, {} in, {} inbound dropped ({} filtered, {} expired, {} no mapping), {} foreign, {} mappings; {} in since registration",
            i + 1,
            c.outbound,
            c.inbound_passed,
            c.dropped_inbound(),
            c.dropped_filtered,
            c.dropped_expired,
            c.dropped_no_mapping,
            c.dropped_foreign,
            c.mappings_created,
            c.inbound_passed - registered[i].inbound_passed,
        );
        assert_eq!(c.dropped_inbound(), 0, "FW{}: {c:?}", i + 1);
        assert_eq!(c.dropped_foreign, 0, "FW{}: {c:?}", i + 1);
        assert_eq!(c.send_errors, 0, "FW{}: {c:?}", i + 1);
        // Everything the MG received and the signaling to it came in
        // through the firewall; everything it sent went out through it.
        assert!(
            c.inbound_passed - registered[i].inbound_passed > got,
            "FW{}: {c:?}, MG got {got}",
            i + 1
        );
        assert!(
            c.outbound - registered[i].outbound > sent,
            "FW{}: {c:?}, MG sent {sent}",
            i + 1
        );
        let (first, last) = ports_b(i);
        let b = Span::new(ip(APS_IPS[i]), first..=last);
        let relay = Span::new(ip(MPR_IP), RELAY.0..=RELAY.1);
        let maps = fw.mappings();
        println!("sim: FW{} mappings: {maps:?}", i + 1);
        assert!(
            maps.iter().any(|m| b.contains(m.inside)
                && m.public.ip() == ip(FW_PUBLIC[i])
                && m.remotes.iter().any(|r| relay.contains(*r))),
            "FW{}: no pinhole from a port B toward the relay: {maps:?}",
            i + 1
        );
        // Only traffic with the MPR crossed it: the APS and its MG talk on
        // the LAN.
        assert!(
            maps.iter()
                .all(|m| m.remotes.iter().all(|r| r.ip() == ip(MPR_IP))),
            "FW{}: a flow to elsewhere than the MPR: {maps:?}",
            i + 1
        );
    }

    // No relay dropped anything. MG2 starts its RTP when the Add gives it
    // a Remote (port B2), before its reply's Local has reached APS2, which
    // binds B2 only when it opens the pinhole for that Local: the first
    // packet (or first few) can reach B2 before it is bound and is lost
    // there, inside corp2, before any relay or firewall counts it. That is
    // why MG1 may get 49 of 50 while no counter shows a drop.
    let relays = [
        ("MPR", mpr.relay_counters().await?),
        ("APS1", apss[0].0.relay_counters().await?),
        ("APS2", apss[1].0.relay_counters().await?),
    ];
    for (who, r) in &relays {
        println!(
            "sim: {who} relay: {} in, {} out, dropped {} source, {} unbound, {} no peer, {} send error, {} overflow",
            r.packets_in,
            r.packets_out,
            r.dropped_source,
            r.dropped_unbound,
            r.dropped_no_peer,
            r.dropped_send_error,
            r.dropped_overflow
        );
        for (what, n) in [
            ("source", r.dropped_source),
            ("unbound", r.dropped_unbound),
            ("no peer", r.dropped_no_peer),
            ("send error", r.dropped_send_error),
        ] {
            assert_eq!(n, 0, "{who} relay dropped {n} ({what}): {r:?}");
        }
    }

    // Nothing went wrong in the ALGs.
    let errors = [
        "malformed",
        "sdp_errors",
        "plan_errors",
        "no_route",
        "unknown_mg",
        "mid_conflicts",
    ];
    let m = mpr.alg_counters().await?;
    assert_zero("MPR", &m, &errors);
    for (event, at_least) in [("sdp_rewritten", 2), ("calls", 1), ("teardowns", 1)] {
        let v = alg::counter(&m, Protocol::H248, event);
        assert!(v >= at_least, "MPR: {event} = {v} in {m:?}");
    }
    for (i, (aps, _)) in apss.iter().enumerate() {
        let c = aps.alg_counters().await?;
        let who = format!("APS{}", i + 1);
        assert_zero(&who, &c, &errors);
        assert_zero(&who, &c, &["pinhole_failures"]);
        assert!(
            alg::counter(&c, Protocol::H248, "pinholes") >= 1,
            "{who}: {c:?}"
        );
    }
    println!(
        "sim: fig13 through the firewall simulators in {:?}",
        t0.elapsed()
    );
    assert!(t0.elapsed() < WHOLE, "{:?}", t0.elapsed());
    Ok(())
}
