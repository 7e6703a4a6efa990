//! Fig. 12 for real, on loopback: the MPR with its SIP proxy on 127.0.0.31,
//! two smart terminals (the `smart` module's UA over the client driver),
//! each behind its own userspace firewall simulator. Every SIP message,
//! control message and RTP packet crosses real sockets.
//!
//! ```text
//! A 127.0.0.1 ─ FW1 127.0.0.32 ─┐
//!                               MPR 127.0.0.31 (relay 53000–53199)
//! B 127.0.0.2 ─ FW2 127.0.0.33 ─┘
//! ```
#![allow(missing_docs)]

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use pinhole_core::alg::{self, AlgCounters};
use pinhole_core::mpr;
use pinhole_core::ports::PortRange;
use pinhole_core::wire::Protocol;
use pinhole_examples::rtp;
use pinhole_examples::sip_ua::EndReason;
use pinhole_examples::smart::{SmartUa, SmartUaConfig};
use pinhole_net::driver::mpr::{self as mpr_driver, MprAlg, MprHandle, MprOutputs};
use pinhole_net::driver::{SharedRouter, SimRouter};
use pinhole_net::firewall::{FirewallSim, SimConfig};
use pinhole_net::relay::{Relay, RelayConfig};
use pinhole_sip::alg as sip_alg;

const MPR_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 31));
const WAIT: Duration = Duration::from_secs(10);
const PACKETS: u32 = 50;
const INTERVAL: Duration = Duration::from_millis(10);

struct Mpr {
    handle: MprHandle,
    _out: MprOutputs,
    sip: SocketAddr,
}

/// The MPR with its SIP proxy; corp1 and corp2 serve corp1.example and
/// corp2.example.
async fn mpr(first: u16, last: u16) -> Result<Mpr> {
    let control = tokio::net::UdpSocket::bind((MPR_IP, 0)).await?;
    let sip = control.local_addr()?;
    let mut cfg = mpr::Config::new(MPR_IP, [31; 32]);
    cfg.ports = PortRange::new(first, last)?;
    cfg.control_ports = vec![sip.port()];
    for (id, domain) in [("corp1", "corp1.example"), ("corp2", "corp2.example")] {
        let mut n = mpr::NetworkConfig::new(id, format!("{id}-secret").into_bytes());
        n.domains.push(domain.into());
        cfg.networks.push(n);
    }
    let engine = mpr::Engine::new(cfg, Instant::now())?;
    let (relay, events) = Relay::start(RelayConfig {
        workers: 1,
        ..RelayConfig::default()
    })?;
    let proxy = sip_alg::Mpr::new(sip_alg::MprConfig::new(sip, [first.to_le_bytes()[0]; 32]));
    let (handle, out) = mpr_driver::spawn_with(
        engine,
        vec![Arc::new(control)],
        relay,
        events,
        vec![MprAlg::new(sip, Box::new(proxy))],
    )?;
    Ok(Mpr {
        handle,
        _out: out,
        sip,
    })
}

async fn firewall(inside: [u8; 4], public: [u8; 4]) -> Result<Arc<FirewallSim>> {
    Ok(Arc::new(
        FirewallSim::start(SimConfig {
            inside_ip: IpAddr::from(inside),
            public_ip: IpAddr::from(public),
            ..SimConfig::default()
        })
        .await?,
    ))
}

fn ua_config(aor: &str, net: &str, ip: [u8; 4], media: u16, mpr: SocketAddr) -> SmartUaConfig {
    SmartUaConfig {
        aor: aor.into(),
        sip: SocketAddr::new(IpAddr::from(ip), 0),
        mpr,
        network: net.into(),
        credential: format!("{net}-secret").into_bytes(),
        media: SocketAddr::new(IpAddr::from(ip), media),
        seed: u64::from(media),
        tls_ca: None,
    }
}

fn counter(c: &AlgCounters, name: &str) -> u64 {
    alg::counter(c, Protocol::Sip, name)
}

fn in_relay_range(a: SocketAddr, first: u16, last: u16) -> bool {
    a.ip() == MPR_IP && (first..=last).contains(&a.port())
}

#[test]
fn fig12_smart_terminals_call_through_the_mpr_behind_two_firewalls() -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let (first, last) = (53_000, 53_199);
        let mpr = mpr(first, last).await?;
        let fw1 = firewall([127, 0, 0, 1], [127, 0, 0, 32]).await?;
        let fw2 = firewall([127, 0, 0, 2], [127, 0, 0, 33]).await?;
        let r1: SharedRouter = Arc::new(SimRouter::new(Arc::clone(&fw1)));
        let r2: SharedRouter = Arc::new(SimRouter::new(Arc::clone(&fw2)));
        let cfg_a = ua_config(
            "alice@corp1.example",
            "corp1",
            [127, 0, 0, 1],
            53_400,
            mpr.sip,
        );
        let cfg_b = ua_config(
            "bob@corp2.example",
            "corp2",
            [127, 0, 0, 2],
            53_402,
            mpr.sip,
        );
        let (media_a, media_b) = (cfg_a.media, cfg_b.media);
        let mut a = SmartUa::start(cfg_a, r1).await?;
        let mut b = SmartUa::start(cfg_b, r2).await?;

        // Fig. 6: both SIP sockets registered through their firewalls.
        let pa = a.wait_registered(WAIT).await?;
        let pb = b.wait_registered(WAIT).await?;
        assert_eq!(
            pa.ip(),
            IpAddr::from([127, 0, 0, 32]),
            "A seen at FW1's address"
        );
        assert_eq!(
            pb.ip(),
            IpAddr::from([127, 0, 0, 33]),
            "B seen at FW2's address"
        );
        assert_eq!(mpr.handle.stats().await?.registrations_accepted, 2);

        // Steps 1105–1160: A reserves and offers its pinhole; B binds
        // toward the relay in the offer and answers with its pinhole.
        let (to_a, to_b) = tokio::join!(a.call("sip:bob@corp2.example", WAIT), b.answer(WAIT));
        let (a_sends_to, b_sends_to) = (to_a?, to_b?);
        assert!(
            in_relay_range(a_sends_to, first, last),
            "A told a relay port: {a_sends_to}"
        );
        assert!(
            in_relay_range(b_sends_to, first, last),
            "B told a relay port: {b_sends_to}"
        );
        assert_ne!(a_sends_to, b_sends_to, "one relay leg per side");
        let pin_a = a.local_media().context("A's SDP address")?;
        let pin_b = b.local_media().context("B's SDP address")?;
        assert_eq!(
            Some(pin_a),
            fw1.public_addr(media_a),
            "A's SDP names its pinhole"
        );
        assert_eq!(
            Some(pin_b),
            fw2.public_addr(media_b),
            "B's SDP names its pinhole"
        );
        let alg = mpr.handle.alg_counters().await?;
        assert_eq!(counter(&alg, "dialogs"), 1);
        assert!(
            counter(&alg, "sdp_rewritten") >= 2,
            "offer and answer rewritten: {alg:?}"
        );
        assert_eq!(mpr.handle.stats().await?.legs_open, 2);

        // Step 1165: RTP both ways through the relay and both firewalls.
        let (sa, sb) = tokio::join!(a.talk(PACKETS, INTERVAL), b.talk(PACKETS, INTERVAL));
        assert_eq!((sa?, sb?), (PACKETS, PACKETS));
        let (la, lb) = tokio::join!(
            a.listen(Duration::from_millis(300)),
            b.listen(Duration::from_millis(300))
        );
        la?;
        lb?;
        let full = u64::from(PACKETS);
        let size = (rtp::HEADER + rtp::PAYLOAD) as u64;
        for (who, got, from) in [("A", a.received(), b.ssrc()), ("B", b.received(), a.ssrc())] {
            assert_eq!(got.packets, full, "{who} got every packet");
            assert_eq!(got.intact, full, "{who} got them intact");
            assert_eq!(got.bytes, full * size, "{who} got every byte");
            assert_eq!(got.ssrcs, [from], "{who} got the other party's stream only");
        }

        // A stranger sends to both relay legs and to both firewalls'
        // media mappings: the relay drops it by source, the firewalls by
        // filter, and nothing reaches a UA.
        let relay_before = mpr.handle.relay_counters().await?;
        let (fw1_before, fw2_before) = (fw1.counters(), fw2.counters());
        let stranger = tokio::net::UdpSocket::bind("127.0.0.40:0").await?;
        for seq in 0..10u16 {
            for to in [a_sends_to, b_sends_to, pin_a, pin_b] {
                stranger.send_to(&rtp::packet(0xbad0_0000, seq), to).await?;
            }
        }
        let (la, lb) = tokio::join!(
            a.listen(Duration::from_millis(300)),
            b.listen(Duration::from_millis(300))
        );
        la?;
        lb?;
        assert_eq!(a.received().packets, full, "nothing more reached A");
        assert_eq!(b.received().packets, full, "nothing more reached B");
        let relay_after = mpr.handle.relay_counters().await?;
        assert_eq!(relay_after.dropped_source - relay_before.dropped_source, 20);
        assert_eq!(
            relay_after.packets_out, relay_before.packets_out,
            "the relay forwarded none"
        );
        for (fw, before) in [(&fw1, fw1_before), (&fw2, fw2_before)] {
            let after = fw.counters();
            assert_eq!(after.dropped_filtered - before.dropped_filtered, 10);
            assert_eq!(after.inbound_passed, before.inbound_passed);
        }

        // BYE: both ends see the call over, the MPR frees its legs.
        let (ea, eb) = tokio::join!(a.hangup(WAIT), b.wait_ended(WAIT));
        assert_eq!(ea?, EndReason::LocalBye);
        assert_eq!(eb?, EndReason::RemoteBye);
        let deadline = Instant::now() + WAIT;
        while mpr.handle.stats().await?.legs_open > 0 {
            if Instant::now() > deadline {
                bail!("the BYE did not free the relay legs");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let alg = mpr.handle.alg_counters().await?;
        assert_eq!(counter(&alg, "teardowns"), 1);
        assert_eq!(counter(&alg, "malformed"), 0);
        assert_eq!(counter(&alg, "replied"), 0, "the MPR refused nothing");

        a.shutdown().await?;
        b.shutdown().await?;
        mpr.handle.stop().await?;
        for fw in [fw1, fw2] {
            if let Ok(fw) = Arc::try_unwrap(fw) {
                fw.shutdown().await;
            }
        }
        Ok(())
    })
}

/// Reads a child's stdout lines into a channel, so the test can wait for
/// one with a deadline.
fn lines(child: &mut Child) -> Result<std::sync::mpsc::Receiver<String>> {
    let out = child.stdout.take().context("stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                return;
            }
        }
    });
    Ok(rx)
}

fn wait_line(
    rx: &std::sync::mpsc::Receiver<String>,
    needle: &str,
    seen: &mut Vec<String>,
) -> Result<()> {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(100)) {
            let hit = l.contains(needle);
            seen.push(l);
            if hit {
                return Ok(());
            }
        }
    }
    bail!("no line with {needle:?} in {seen:#?}")
}

/// Kills the child when dropped (a failed test leaves no process behind).
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_exit(c: &mut Reaped) -> Result<std::process::ExitStatus> {
    let deadline = Instant::now() + WAIT * 2;
    loop {
        if let Some(s) = c.0.try_wait()? {
            return Ok(s);
        }
        if Instant::now() > deadline {
            bail!("sip_smart_ua did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_sip_smart_ua_binary_calls_and_answers() -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let mpr = rt.block_on(mpr(53_200, 53_399))?;
    let ua = |aor: &str, net: &str, media: u16| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_sip_smart_ua"));
        c.args(["--sip", "127.0.0.1:0", "--mpr", &mpr.sip.to_string()])
            .args(["--network", net, "--aor", aor])
            .args(["--media", &format!("127.0.0.1:{media}")])
            .args([
                "--packets",
                "20",
                "--interval-ms",
                "10",
                "--timeout-secs",
                "10",
            ])
            .env("PINHOLE_CREDENTIAL", format!("{net}-secret"))
            .stdout(Stdio::piped());
        c
    };
    let mut callee = Reaped(
        ua("bob@corp2.example", "corp2", 53_410)
            .arg("--answer")
            .spawn()?,
    );
    let callee_out = lines(&mut callee.0)?;
    let mut seen_b = Vec::new();
    wait_line(&callee_out, "waiting for a call", &mut seen_b)?;
    let mut caller = Reaped(
        ua("alice@corp1.example", "corp1", 53_412)
            .args(["--call", "sip:bob@corp2.example"])
            .spawn()?,
    );
    let caller_out = lines(&mut caller.0)?;
    let (sa, sb) = (wait_exit(&mut caller)?, wait_exit(&mut callee)?);
    let mut seen_a = Vec::new();
    while let Ok(l) = caller_out.recv_timeout(Duration::from_millis(200)) {
        seen_a.push(l);
    }
    while let Ok(l) = callee_out.recv_timeout(Duration::from_millis(200)) {
        seen_b.push(l);
    }
    assert!(sa.success(), "caller failed: {seen_a:#?}");
    assert!(sb.success(), "callee failed: {seen_b:#?}");
    for (who, seen, end) in [
        ("caller", &seen_a, "LocalBye"),
        ("callee", &seen_b, "RemoteBye"),
    ] {
        let text = seen.join("\n");
        assert!(
            text.contains("RTP sent 20 (3440 bytes), received 20 (3440 bytes, 20 intact)"),
            "{who}: {text}"
        );
        assert!(
            text.contains(&format!("call ended: {end}")),
            "{who}: {text}"
        );
    }
    rt.block_on(mpr.handle.stop())?;
    Ok(())
}
