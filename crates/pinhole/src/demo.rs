//! `pinhole demo`: the Fig. 11 shape on real loopback sockets, in one
//! process, without root.
//!
//! ```text
//!  corp1 (FW1, public 127.0.0.2)         public side            corp2 (FW2, public 127.0.0.6)
//!  phone A ── APS1 port B ── FW1 ── MPR 127.0.0.3 (L1 ⇄ L2) ── FW2 ── smart terminal T
//! ```
//!
//! The APS reserves a leg first (`relay: None`) and writes its pinhole C1
//! into the offer toward corp2; the MPR plans L2 for corp2; the terminal
//! opens its pinhole toward L2 (C2) and answers with it; the MPR plans L1
//! for corp1. Then RTP flows both ways. The ladder is reconstructed from the
//! engines' events and the media intents as they happen (the signaling
//! itself is not sent: the protocol ALGs will carry it later).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use pinhole_core::client::{self, Event as ClientEvent, PinholeRequest};
use pinhole_core::intent::{IntentKind, MediaEndpoint};
use pinhole_core::mpr;
use pinhole_core::ports::PortRange;
use pinhole_core::types::{CallKey, Side};
use pinhole_core::wire::{Protocol, RtcpMode};
use pinhole_net::driver::mpr::Intent;
use pinhole_net::driver::{SimRouter, client as client_driver, mpr as mpr_driver};
use pinhole_net::firewall::{FirewallSim, SimConfig};
use pinhole_net::relay::{Relay, RelayConfig};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::timeout;

const MPR_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
const FW1_PUBLIC: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const FW2_PUBLIC: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 6);
const INSIDE: Ipv4Addr = Ipv4Addr::LOCALHOST;
const STRANGER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 4);
/// The demo's relay port range (kept clear of the tests' ranges).
const RELAY_PORTS: (u16, u16) = (45_000, 45_999);
/// Packets per second each way (20 ms RTP).
const PPS: u64 = 50;
/// RTP packet size, G.711 20 ms plus headers.
const RTP_LEN: usize = 172;
/// Probes sent at each firewall before any media pinhole exists.
const PROBES: u64 = 5;
/// Longest wait for any one control step.
const STEP: Duration = Duration::from_secs(5);
/// The whole demo's bound.
const WHOLE: Duration = Duration::from_secs(60);

/// What happened to media in one direction.
#[derive(Debug, Default)]
struct Flow {
    sent: u64,
    received: u64,
    /// One-way latencies, microseconds.
    latencies: Vec<u64>,
}

impl Flow {
    fn loss(&self) -> u64 {
        self.sent.saturating_sub(self.received)
    }
}

/// The message ladder, stamped as things happen and printed in order.
#[derive(Clone)]
struct Ladder {
    start: Instant,
    quiet: bool,
    rungs: Arc<Mutex<Vec<(Duration, String)>>>,
}

impl Ladder {
    fn new(quiet: bool) -> Self {
        Self {
            start: Instant::now(),
            quiet,
            rungs: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn push(&self, from: &str, to: &str, what: impl Into<String>) {
        let at = self.start.elapsed();
        let line = format!("{from:>12} → {to:<12} {}", what.into());
        self.rungs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((at, line));
    }

    fn note(&self, what: impl Into<String>) {
        let at = self.start.elapsed();
        let line = format!("{:>12}   {:<12} {}", "", "", what.into());
        self.rungs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((at, line));
    }

    /// Prints what was pushed since the last flush, in time order.
    fn flush(&self) {
        let mut rungs =
            std::mem::take(&mut *self.rungs.lock().unwrap_or_else(PoisonError::into_inner));
        rungs.sort_by_key(|(at, _)| *at);
        if !self.quiet {
            for (at, line) in rungs {
                println!("  {:>7.3}s  {line}", at.as_secs_f64());
            }
            println!();
        }
    }

    fn section(&self, title: &str) {
        if !self.quiet {
            println!("== {title}");
        }
    }

    fn say(&self, text: &str) {
        if !self.quiet {
            println!("{text}");
        }
    }
}

fn mux(addr: SocketAddr) -> MediaEndpoint {
    MediaEndpoint {
        index: 0,
        addr,
        rtcp: RtcpMode::Mux,
        rtcp_addr: None,
    }
}

/// A free UDP address on `ip` (bound, read, released).
async fn free_addr(ip: Ipv4Addr) -> Result<SocketAddr> {
    let s = UdpSocket::bind((ip, 0)).await?;
    Ok(s.local_addr()?)
}

/// Waits for the first event `want` accepts, bounded by [`STEP`].
async fn wait_event<T>(
    rx: &mut mpsc::Receiver<T>,
    what: &str,
    mut want: impl FnMut(&T) -> bool,
) -> Result<T> {
    timeout(STEP, async {
        // Bounded by the timeout; events are few.
        while let Some(e) = rx.recv().await {
            if want(&e) {
                return Ok(e);
            }
        }
        bail!("event channel closed while waiting for {what}")
    })
    .await
    .with_context(|| format!("no {what} within {STEP:?}"))?
}

/// An RTP packet: sequence number, and the send time (µs since `start`) in
/// the payload for the receiver's latency.
fn rtp(ssrc: u32, seq: u16, start: Instant) -> Vec<u8> {
    let mut p = Vec::with_capacity(RTP_LEN);
    p.extend_from_slice(&[0x80, 0x00]);
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    let sent = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
    p.extend_from_slice(&sent.to_be_bytes());
    p.resize(RTP_LEN, 0xd5);
    p
}

/// Sends `n` packets at [`PPS`] from `sock` to `to`.
async fn send_media(
    sock: Arc<UdpSocket>,
    to: SocketAddr,
    ssrc: u32,
    n: u64,
    start: Instant,
) -> u64 {
    let mut tick = tokio::time::interval(Duration::from_millis(1000 / PPS));
    let mut sent = 0;
    for seq in 0..n {
        tick.tick().await;
        let seq = u16::try_from(seq % 65_536).unwrap_or_default();
        match sock.send_to(&rtp(ssrc, seq, start), to).await {
            Ok(_) => sent += 1,
            Err(e) => tracing::warn!(%to, error = %e, "media send failed"),
        }
    }
    sent
}

/// Receives up to `n` packets of `ssrc` from `from` until `deadline`.
async fn recv_media(
    sock: Arc<UdpSocket>,
    from: SocketAddr,
    ssrc: u32,
    n: u64,
    start: Instant,
    deadline: tokio::time::Instant,
) -> Flow {
    let mut flow = Flow::default();
    let mut seen = vec![false; usize::try_from(n).unwrap_or(0)];
    let mut buf = [0u8; 2048];
    // Bounded by the deadline and by a count of datagrams read.
    for _ in 0..n.saturating_mul(4).saturating_add(64) {
        if flow.received >= n {
            break;
        }
        let Ok(Ok((len, src))) = tokio::time::timeout_at(deadline, sock.recv_from(&mut buf)).await
        else {
            break;
        };
        let p = &buf[..len];
        if src != from || len != RTP_LEN || p[8..12] != ssrc.to_be_bytes() {
            continue;
        }
        let seq = usize::from(u16::from_be_bytes([p[2], p[3]]));
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&p[12..20]);
        let sent = u64::from_be_bytes(ts);
        if seen.get(seq) == Some(&false) {
            seen[seq] = true;
            flow.received += 1;
            let now = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
            flow.latencies.push(now.saturating_sub(sent));
        }
    }
    flow
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    // Nearest rank.
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Sends [`PROBES`] datagrams from a stranger at `target` and returns how
/// many more drops the firewall counted (polled for at most a second).
async fn probe(sim: &FirewallSim, stranger: &UdpSocket, target: SocketAddr) -> Result<u64> {
    let before = sim.counters().dropped_inbound();
    for i in 0..PROBES {
        stranger
            .send_to(
                &rtp(0xbad, u16::try_from(i).unwrap_or_default(), Instant::now()),
                target,
            )
            .await?;
    }
    let mut dropped = 0;
    for _ in 0..50 {
        dropped = sim.counters().dropped_inbound() - before;
        if dropped >= PROBES {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(dropped)
}

/// Runs the demo; `Ok(true)` when media arrived both ways.
pub(crate) async fn run(json: bool, seconds: u64) -> Result<bool> {
    timeout(WHOLE, run_inner(json, seconds))
        .await
        .with_context(|| format!("the demo did not finish within {WHOLE:?}"))?
}

#[allow(clippy::too_many_lines)]
async fn run_inner(json: bool, seconds: u64) -> Result<bool> {
    let ladder = Ladder::new(json);
    ladder.say(
        "Pinhole demo: one MPR, two corporate networks behind simulated NAT firewalls, real UDP on loopback.\n\
         corp1: phone A behind APS1 (FW1, public 127.0.0.2); corp2: smart terminal T, which embeds the\n\
         client library (FW2, public 127.0.0.6). MPR relay on 127.0.0.3. Control messages are shown as the\n\
         engines report them; the call signaling is represented by the media intents the ALGs will send.\n",
    );

    // The two firewalls.
    let fw1 = Arc::new(
        FirewallSim::start(SimConfig {
            inside_ip: INSIDE.into(),
            public_ip: FW1_PUBLIC.into(),
            ..SimConfig::default()
        })
        .await
        .context("firewall simulator 1 (127.0.0.2)")?,
    );
    let fw2 = Arc::new(
        FirewallSim::start(SimConfig {
            inside_ip: INSIDE.into(),
            public_ip: FW2_PUBLIC.into(),
            ..SimConfig::default()
        })
        .await
        .context("firewall simulator 2 (127.0.0.6)")?,
    );

    // The MPR.
    let control = Arc::new(
        UdpSocket::bind((MPR_IP, 0))
            .await
            .context("MPR control socket")?,
    );
    let control_addr = control.local_addr()?;
    let mut cfg = mpr::Config::new(IpAddr::V4(MPR_IP), [3; 32]);
    cfg.ports = PortRange::new(RELAY_PORTS.0, RELAY_PORTS.1)?;
    cfg.control_ports = vec![control_addr.port()];
    cfg.networks.push(mpr::NetworkConfig::new(
        "corp1",
        b"corp1-demo-secret".to_vec(),
    ));
    cfg.networks.push(mpr::NetworkConfig::new(
        "corp2",
        b"corp2-demo-secret".to_vec(),
    ));
    let engine = mpr::Engine::new(cfg, Instant::now())?;
    let (relay, relay_events) = Relay::start(RelayConfig::default())?;
    let (mpr, mut mpr_out) = mpr_driver::spawn(engine, vec![control], relay, relay_events)?;
    {
        // MPR events into the ladder as they happen.
        let ladder = ladder.clone();
        tokio::spawn(async move {
            while let Some(e) = mpr_out.events.recv().await {
                match e {
                    mpr::Event::Registered {
                        network, pinhole, ..
                    } => ladder.note(format!(
                        "MPR: route {network}/SIP → {pinhole} (Fig. 4 table)"
                    )),
                    mpr::Event::PinholeBound { leg, pinhole, .. } => {
                        ladder.note(format!("MPR: leg {} bound to pinhole {pinhole}", leg.0));
                    }
                    other => ladder.note(format!("MPR: {other:?}")),
                }
            }
        });
    }

    // APS1 in corp1 and the terminal T in corp2.
    let (aps, mut aps_events) =
        start_client("corp1", b"corp1-demo-secret", control_addr, &fw1, [11; 32]).await?;
    let (term, mut term_events) =
        start_client("corp2", b"corp2-demo-secret", control_addr, &fw2, [22; 32]).await?;

    ladder.section("Fig. 6 — registration: each network opens its signaling pinhole from inside");
    let mut pinholes = Vec::new();
    for (name, fw, events) in [
        ("APS1", "FW1", &mut aps_events),
        ("T", "FW2", &mut term_events),
    ] {
        let e = wait_event(events, "registration", |e| {
            matches!(e, ClientEvent::Registered { .. })
        })
        .await?;
        let ClientEvent::Registered { pinhole, lifetime } = e else {
            bail!("unexpected event")
        };
        ladder.push(
            name,
            "MPR",
            format!("Registration Request (via {fw}, from inside)"),
        );
        ladder.push(
            "MPR",
            name,
            format!(
                "Registration Success: signaling pinhole {pinhole}, lifetime {} s",
                lifetime.as_secs()
            ),
        );
        pinholes.push(pinhole);
    }
    let (reg1, reg2) = (pinholes[0], pinholes[1]);
    ensure!(
        reg1.ip() == IpAddr::V4(FW1_PUBLIC),
        "corp1 registered from {reg1}"
    );
    ensure!(
        reg2.ip() == IpAddr::V4(FW2_PUBLIC),
        "corp2 registered from {reg2}"
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    ladder.flush();

    // Negative control: nothing gets in before a pinhole exists for it.
    ladder
        .section("Before any media pinhole: a stranger on the public side sends at both firewalls");
    let stranger = UdpSocket::bind((STRANGER, 0)).await?;
    let d1 = probe(&fw1, &stranger, reg1).await?;
    let d2 = probe(&fw2, &stranger, reg2).await?;
    let drops_before = d1 + d2;
    ladder.say(&format!(
        "  {PROBES} packets at FW1 {reg1}: {d1} dropped; {PROBES} at FW2 {reg2}: {d2} dropped\n"
    ));

    ladder.section("Fig. 11 shape — phone A (corp1, APS1 reserves first) calls T (corp2)");
    let call = CallKey::from("demo-call@corp1");
    let phone = Arc::new(UdpSocket::bind((INSIDE, 0)).await?);
    let terminal = Arc::new(UdpSocket::bind((INSIDE, 0)).await?);
    let port_b = free_addr(INSIDE).await?;
    ladder.push("A", "APS1", "INVITE (SDP: A's media address)");
    let id = aps
        .open_pinhole(PinholeRequest {
            local: port_b,
            relay: None,
            rtcp: RtcpMode::Mux,
            key: b"demo/A/0".to_vec(),
            inside: Some(phone.local_addr()?),
        })
        .await?
        .context("APS1 cannot open a pinhole")?;
    ladder.push(
        "APS1",
        "MPR",
        format!("CMPH Request (reserve, LEG-KEY demo/A/0) from port B {port_b}"),
    );
    let (l1, c1) = opened(&mut aps_events, id, "APS1's CMPH").await?;
    ladder.push(
        "MPR",
        "APS1",
        format!("CMPH Response: relay L1 {l1}, pinhole C1 {c1}"),
    );

    let offer = Intent {
        kind: IntentKind::Offer,
        from: Side::A,
        origin: Some("corp1".into()),
        toward: Some("corp2".into()),
        endpoints: vec![mux(c1)],
    };
    let plan = mpr
        .intent(call.clone(), offer)
        .await?
        .context("the MPR refused the offer")?;
    let l2 = plan.endpoints.first().context("empty plan")?.addr;
    ladder.push("APS1", "MPR", format!("INVITE toward corp2 (SDP: C1 {c1})"));
    ladder.push("MPR", "T", format!("INVITE (SDP rewritten: relay L2 {l2})"));

    let port_t = free_addr(INSIDE).await?;
    let id = term
        .open_pinhole(PinholeRequest {
            local: port_t,
            relay: Some(l2),
            rtcp: RtcpMode::Mux,
            key: b"demo/B/0".to_vec(),
            inside: Some(terminal.local_addr()?),
        })
        .await?
        .context("T cannot open a pinhole")?;
    ladder.push(
        "T",
        "MPR",
        format!("CMPH Request (bind to L2 {l2}) from {port_t}"),
    );
    let (relay2, c2) = opened(&mut term_events, id, "T's CMPH").await?;
    ensure!(relay2 == l2, "T opened toward {relay2}, not L2 {l2}");
    ladder.push("MPR", "T", format!("CMPH Response: pinhole C2 {c2}"));

    let answer = Intent {
        kind: IntentKind::Answer,
        from: Side::B,
        origin: Some("corp2".into()),
        toward: Some("corp1".into()),
        endpoints: vec![mux(c2)],
    };
    let plan = mpr
        .intent(call.clone(), answer)
        .await?
        .context("the MPR refused the answer")?;
    let toward_a = plan.endpoints.first().context("empty plan")?.addr;
    ensure!(
        toward_a == l1,
        "the answer toward A names {toward_a}, not L1 {l1}"
    );
    ladder.push("T", "MPR", format!("200 OK (SDP: C2 {c2})"));
    ladder.push(
        "MPR",
        "APS1",
        format!("200 OK (SDP rewritten: relay L1 {l1})"),
    );
    ladder.push(
        "APS1",
        "A",
        format!("200 OK (SDP rewritten: port B {port_b})"),
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    ladder.flush();

    let n = seconds * PPS;
    ladder.say(&format!(
        "== Media: {n} RTP packets ({RTP_LEN} bytes, {PPS}/s) each way for {seconds} s\n  \
         A ⇄ APS1 {port_b} ⇄ FW1 {c1} ⇄ MPR {l1} ⇄ MPR {l2} ⇄ FW2 {c2} ⇄ T\n"
    ));
    let start = Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds + 2);
    let at_t = tokio::spawn(recv_media(
        Arc::clone(&terminal),
        port_t,
        0xa,
        n,
        start,
        deadline,
    ));
    let at_a = tokio::spawn(recv_media(
        Arc::clone(&phone),
        port_b,
        0xb,
        n,
        start,
        deadline,
    ));
    let from_a = tokio::spawn(send_media(Arc::clone(&phone), port_b, 0xa, n, start));
    let from_t = tokio::spawn(send_media(Arc::clone(&terminal), port_t, 0xb, n, start));
    let mut a_to_b = at_t.await?;
    a_to_b.sent = from_a.await?;
    let mut b_to_a = at_a.await?;
    b_to_a.sent = from_t.await?;

    let mut all: Vec<u64> = a_to_b
        .latencies
        .iter()
        .chain(&b_to_a.latencies)
        .copied()
        .collect();
    all.sort_unstable();
    let (p50, p99) = (percentile(&all, 50.0), percentile(&all, 99.0));
    let stats = mpr.stats().await?;
    let aps_stats = aps.stats().await?;
    let term_stats = term.stats().await?;

    // Loopback loses nothing; a loaded machine may lose a packet or two.
    let bound = |f: &Flow| f.sent > 0 && f.received > 0 && f.loss() * 100 <= f.sent;
    let ok = bound(&a_to_b) && bound(&b_to_a) && drops_before >= 2 * PROBES;

    if json {
        let v = serde_json::json!({
            "ok": ok,
            "a_to_b": { "sent": a_to_b.sent, "received": a_to_b.received, "lost": a_to_b.loss() },
            "b_to_a": { "sent": b_to_a.sent, "received": b_to_a.received, "lost": b_to_a.loss() },
            "latency_us": { "p50": p50, "p99": p99 },
            "firewall_drops_before_pinhole": drops_before,
            "registrations": stats.registrations_accepted,
            "cmph_bound": stats.cmph_bound,
            "cmph_reserved": stats.cmph_reserved,
            "legs_open": stats.legs_open,
            "auth_failures": stats.auth_failures,
            "client_retransmissions": aps_stats.retransmissions + term_stats.retransmissions,
        });
        println!("{v}");
    } else {
        println!("Summary:");
        for (name, f) in [("A → T", &a_to_b), ("T → A", &b_to_a)] {
            println!(
                "  {name}: sent {}, received {}, lost {} ({:.1} %)",
                f.sent,
                f.received,
                f.loss(),
                if f.sent == 0 {
                    0.0
                } else {
                    f.loss() as f64 * 100.0 / f.sent as f64
                }
            );
        }
        println!(
            "  latency end to end through both firewalls and the relay: p50 {p50} µs, p99 {p99} µs"
        );
        println!(
            "  dropped by the firewalls before the pinholes existed: {drops_before} of {}",
            2 * PROBES
        );
        println!(
            "  MPR: {} registrations, {} CMPH reserves, {} CMPH binds, {} legs open, {} auth failures",
            stats.registrations_accepted,
            stats.cmph_reserved,
            stats.cmph_bound,
            stats.legs_open,
            stats.auth_failures
        );
        println!(
            "  result: {}",
            if ok {
                "OK — media crossed both firewalls both ways"
            } else {
                "FAILED"
            }
        );
    }

    let bye = Intent {
        kind: IntentKind::Teardown,
        from: Side::A,
        origin: Some("corp1".into()),
        toward: Some("corp2".into()),
        endpoints: vec![],
    };
    if let Err(e) = mpr.intent(call, bye).await? {
        tracing::warn!(error = %e, "teardown refused");
    }
    // Close the MPR's sockets and relay threads now, not in the runtime's
    // teardown.
    mpr.stop().await?;
    Ok(ok)
}

/// Waits for pinhole `id` to open: (relay, pinhole).
async fn opened(
    events: &mut mpsc::Receiver<ClientEvent>,
    id: client::PinholeId,
    what: &str,
) -> Result<(SocketAddr, SocketAddr)> {
    let e = wait_event(events, what, |e| {
        matches!(e, ClientEvent::PinholeOpened { id: i, .. } | ClientEvent::PinholeFailed { id: i, .. } if *i == id)
    })
    .await?;
    match e {
        ClientEvent::PinholeOpened {
            relay,
            pinhole: Some(c),
            ..
        } => Ok((relay, c)),
        other => bail!("{what} failed: {other:?}"),
    }
}

/// A client (APS or smart terminal) behind `fw`, on a fresh signaling socket.
async fn start_client(
    network: &str,
    credential: &[u8],
    mpr: SocketAddr,
    fw: &Arc<FirewallSim>,
    seed: [u8; 32],
) -> Result<(client_driver::ClientHandle, mpsc::Receiver<ClientEvent>)> {
    let sig = Arc::new(UdpSocket::bind((INSIDE, 0)).await?);
    let cfg = client::Config::new(
        network,
        credential.to_vec(),
        Protocol::Sip,
        sig.local_addr()?,
        mpr,
        seed,
    );
    let engine = client::Engine::new(cfg, Instant::now())?;
    let (relay, relay_events) = Relay::start(RelayConfig::default())?;
    let router = Arc::new(SimRouter::new(Arc::clone(fw)));
    let (handle, out) = client_driver::spawn(engine, sig, relay, relay_events, router)?;
    Ok((handle, out.events))
}
