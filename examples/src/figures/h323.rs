//! Figs. 15 and 16: H.323 terminal A in corp1 calls terminal B in corp2
//! through the MPR's H.323 ALG ([`Mpr`]: a gatekeeper-routed proxy of
//! H.225.0 and H.245, every H.245 connection opened toward it); the
//! terminals are the real state machine of [`crate::h323::Call`]
//! (rasn-encoded PDUs, H.245 on its own connections), driven here on the
//! simulated network; RTP flows both ways; A hangs up (CloseLogicalChannel,
//! EndSessionCommand, RELEASE COMPLETE).
//!
//! - **Fig. 15**: plain terminals behind an APS each ([`Client`] with
//!   [`ClientConfig::aps`]), the terminal's gatekeeper-routed proxy: the
//!   APS opens the media pinholes with CMPH before an OpenLogicalChannel
//!   or its Ack leaves the network and gives the terminal its ports B.
//! - **Fig. 16**: no APS. Each terminal host runs a client engine of its
//!   own with the same ALG in its smart terminal mode
//!   ([`ClientConfig::terminal`]) beside the terminal (another port on the
//!   same host): the pinholes open from the terminal's own media port, and
//!   the terminal sends straight to the MPR relay addresses.
//!
//! A simulated TCP connection is the pair of its ends: frames are
//! datagrams, one TPKT frame each. The terminals' call-signalling frames go
//! to their proxy (A's: its APS, or its own ALG; B's: where B's Setup came
//! from); an H.245 "connection" is the terminal's H.245 address and the
//! peer it connected to (or that first sent to it).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use pinhole_core::client;
use pinhole_core::mpr;
use pinhole_core::ports::PortRange;
use pinhole_core::wire::Protocol;
use pinhole_h323::alg::{Client, ClientConfig, Mpr, MprConfig};
use pinhole_h323::signal::Signal;
use pinhole_testkit::{FirewallConfig, World, ZoneId, base_instant};

use super::{FW1, FW2, Figure, FigureRun, MPR_IP, PACKETS, Step, TICK, ip, ladder_of, sa, step};
use crate::h323::wire::Deframer;
use crate::h323::{Call, CallConfig, Mode, Origin, Output, Role};
use crate::rtp::{self, Tally};

/// The MPR's H.323 ALG (call signalling, TCP 1720).
const MPR_H323: &str = "203.0.113.10:1720";
/// The MPR's H.245 listeners (`MprConfig::h245_pool`): 1730–1733.
const MPR_H245_POOL: std::ops::Range<u16> = 1730..1734;
/// The inside H.245 listeners of each APS or terminal ALG: 1740–1743.
const CLIENT_H245_POOL: std::ops::Range<u16> = 1740..1744;
/// RTP packet interval.
const PTIME: Duration = Duration::from_millis(20);
/// How long the caller waits for the callee's EndSessionCommand before it
/// sends RELEASE COMPLETE anyway.
const END_SESSION_WAIT: Duration = Duration::from_secs(2);

/// Fig. 15, steps 1404–1466 (1468 is the media). The order is the
/// figure's, but where real terminals and the APS run ahead of it:
///
/// - The MPR answers the Setup with its own CALL PROCEEDING (1412) as it
///   forwards the Setup, so 1412 leaves before APS2's Setup reaches B
///   (1410); B's CALL PROCEEDING (1416, 1418) ends at the MPR.
/// - A opens its logical channel (1444) as soon as it has B's capabilities
///   and the master/slave decision, before the Ack of its own capabilities
///   is back; APS1 holds the call's frames while A's pinhole opens (1446,
///   1448), so that Ack (1440) waits at APS1 and reaches A (1442) just
///   after the OpenLogicalChannel left (1450).
/// - Each terminal also sends its MasterSlaveDetermination and B its own
///   capabilities and channel (held until its Ack of A's has gone, as
///   the figure draws one channel at a time; see [`fig15_in`]): lines of
///   the ladder the figure does not number.
pub const FIG15_STEPS: &[Step] = &[
    step(1404, "A", "APS1", "H.225 setup"),
    step(1406, "APS1", "MPR", "H.225 setup"),
    step(1408, "MPR", "APS2", "H.225 setup"),
    step(1412, "MPR", "APS1", "H.225 callProceeding"),
    step(1410, "APS2", "B", "H.225 setup"),
    step(1414, "APS1", "A", "H.225 callProceeding"),
    step(1416, "B", "APS2", "H.225 callProceeding"),
    step(1418, "APS2", "MPR", "H.225 callProceeding"),
    step(1420, "B", "APS2", "H.225 alerting"),
    step(1422, "APS2", "MPR", "H.225 alerting"),
    step(1424, "MPR", "APS1", "H.225 alerting"),
    step(1426, "APS1", "A", "H.225 alerting"),
    step(1428, "A", "APS1", "H.245 terminalCapabilitySet"),
    step(1430, "APS1", "MPR", "H.245 terminalCapabilitySet"),
    step(1432, "MPR", "APS2", "H.245 terminalCapabilitySet"),
    step(1434, "APS2", "B", "H.245 terminalCapabilitySet"),
    step(1436, "B", "APS2", "H.245 terminalCapabilitySetAck"),
    step(1438, "APS2", "MPR", "H.245 terminalCapabilitySetAck"),
    step(1444, "A", "APS1", "H.245 openLogicalChannel"),
    step(1446, "APS1", "MPR", "CMPH request"),
    step(1440, "MPR", "APS1", "H.245 terminalCapabilitySetAck"),
    step(1448, "MPR", "APS1", "CMPH success"),
    step(1450, "APS1", "MPR", "H.245 openLogicalChannel"),
    step(1442, "APS1", "A", "H.245 terminalCapabilitySetAck"),
    step(1452, "MPR", "APS2", "H.245 openLogicalChannel"),
    step(1454, "APS2", "B", "H.245 openLogicalChannel"),
    step(1456, "B", "APS2", "H.245 openLogicalChannelAck"),
    step(1458, "APS2", "MPR", "CMPH request"),
    step(1460, "MPR", "APS2", "CMPH success"),
    step(1462, "APS2", "MPR", "H.245 openLogicalChannelAck"),
    step(1464, "MPR", "APS1", "H.245 openLogicalChannelAck"),
    step(1466, "APS1", "A", "H.245 openLogicalChannelAck"),
];

/// Fig. 16, steps 1504–1538 (1540 is the media). A terminal and its ALG
/// share a host, so both are "A" (or "B"); what they say to each other
/// stays on the host. The MPR's CALL PROCEEDING (1508) leaves with the
/// Setup it forwards (1506). Each CMPH of the figure (1524, 1532) is the
/// one from the terminal's media port to the relay (a first one to the
/// MPR's control port reserves the relay leg for A's channel).
pub const FIG16_STEPS: &[Step] = &[
    step(1504, "A", "MPR", "H.225 setup"),
    step(1506, "MPR", "B", "H.225 setup"),
    step(1508, "MPR", "A", "H.225 callProceeding"),
    step(1510, "B", "MPR", "H.225 callProceeding"),
    step(1512, "B", "MPR", "H.225 alerting"),
    step(1514, "MPR", "A", "H.225 alerting"),
    step(1516, "A", "MPR", "H.245 terminalCapabilitySet"),
    step(1518, "MPR", "B", "H.245 terminalCapabilitySet"),
    step(1520, "B", "MPR", "H.245 terminalCapabilitySetAck"),
    step(1522, "MPR", "A", "H.245 terminalCapabilitySetAck"),
    step(1524, "A", "MPR", "CMPH request"),
    step(1526, "MPR", "A", "CMPH success"),
    step(1528, "A", "MPR", "H.245 openLogicalChannel"),
    step(1530, "MPR", "B", "H.245 openLogicalChannel"),
    step(1532, "B", "MPR", "CMPH request"),
    step(1534, "MPR", "B", "CMPH success"),
    step(1536, "B", "MPR", "H.245 openLogicalChannelAck"),
    step(1538, "MPR", "A", "H.245 openLogicalChannelAck"),
];

/// Names H.323 frames on the ladder: `H.225 setup`, `H.245
/// openLogicalChannel` (an empty TPKT, a keepalive, stays off it).
fn namer(d: &[u8]) -> Option<String> {
    let payload = pinhole_h323::q931::tpkt_payload(d).ok()?;
    if let Ok(s) = Signal::call_signaling(payload) {
        return Some(format!("H.225 {}", s.name()));
    }
    Signal::h245(payload)
        .ok()
        .map(|s| format!("H.245 {}", s.name()))
}

/// The payload of `frame` if it is one whole TPKT frame, nothing before
/// or after it.
fn whole_tpkt(frame: &[u8]) -> Option<Vec<u8>> {
    let mut d = Deframer::default();
    d.push(frame);
    let payload = d.next_frame()?;
    (d.skipped == 0 && payload.len() + 4 == frame.len()).then_some(payload)
}

/// One terminal on its host: the [`Call`] core and its addresses.
struct Terminal {
    call: Call,
    /// Its call-signalling address.
    sig: SocketAddr,
    /// Its H.245 listener (and the source of its H.245 connections).
    h245: SocketAddr,
    /// Its RTP address (RTCP on the next port).
    media: SocketAddr,
    /// Where its call-signalling frames go: set for the caller, the source
    /// of the first frame for the callee.
    proxy: Option<SocketAddr>,
    /// The other end of its H.245 connection.
    h245_peer: Option<SocketAddr>,
    /// Where its RTP goes, once the core said.
    rtp_to: Option<SocketAddr>,
    next_rtp: Option<Instant>,
    sent: u64,
    ssrc: u32,
    received: Tally,
    /// Frames that were not one whole TPKT frame (ours or the proxy's).
    bad_frames: u64,
    /// The callee's own OpenLogicalChannel, held until it has acknowledged
    /// the caller's (see [`Terminal::h245_out`]).
    held_olc: Option<Vec<Vec<u8>>>,
}

impl Terminal {
    fn new(
        cfg: CallConfig,
        h245: SocketAddr,
        proxy: Option<SocketAddr>,
        ssrc: u32,
        hold_olc: bool,
    ) -> Self {
        Self {
            sig: cfg.signal,
            h245,
            media: cfg.rtp,
            call: Call::new(cfg),
            proxy,
            h245_peer: None,
            rtp_to: None,
            next_rtp: None,
            sent: 0,
            ssrc,
            received: Tally::default(),
            bad_frames: 0,
            held_olc: hold_olc.then(Vec::new),
        }
    }

    fn rtcp(&self) -> SocketAddr {
        SocketAddr::new(self.media.ip(), self.media.port() + 1)
    }

    /// Takes what reached its sockets, does what the core says, and sends
    /// the RTP that is due.
    fn pump(&mut self, w: &mut World) {
        for d in w.take_inbox(self.sig) {
            let proxy = *self.proxy.get_or_insert(d.src);
            match whole_tpkt(&d.payload) {
                Some(p) if d.src == proxy => self.call.on_signal(&p),
                _ => self.bad_frames += 1,
            }
        }
        for d in w.take_inbox(self.h245) {
            if self.h245_peer != Some(d.src) {
                // A frame from a new peer: it connected to our listener.
                if !self.call.h245_connection(Origin::Accepted, d.src) {
                    continue;
                }
                self.h245_peer = Some(d.src);
            }
            match whole_tpkt(&d.payload) {
                Some(p) => self.call.on_h245(&p),
                None => self.bad_frames += 1,
            }
        }
        for d in w.take_inbox(self.media) {
            self.received.add(&d.payload);
        }
        // RTCP is not counted.
        let _ = w.take_inbox(self.rtcp());
        self.drain(w);
        if let (Some(to), Some(at)) = (self.rtp_to, self.next_rtp)
            && self.sent < PACKETS
            && w.now() >= at
        {
            w.send(self.media, to, rtp::packet(self.ssrc, self.sent as u16));
            self.sent += 1;
            self.next_rtp = Some(at + PTIME);
        }
    }

    /// Carries out the core's outputs.
    fn drain(&mut self, w: &mut World) {
        while let Some(o) = self.call.poll() {
            match o {
                Output::Signal(f) => match (self.proxy, whole_tpkt(&f)) {
                    (Some(to), Some(_)) => w.send(self.sig, to, f),
                    _ => self.bad_frames += 1,
                },
                Output::H245(f) => self.h245_out(w, f),
                Output::ConnectH245(to) => {
                    // A simulated connection is up at once.
                    if self.call.h245_connection(Origin::Connected, to) {
                        self.h245_peer = Some(to);
                    }
                }
                Output::Media { rtp, .. } => {
                    self.rtp_to = Some(rtp);
                    self.next_rtp = Some(w.now());
                }
                Output::Done(_) => {}
            }
        }
    }

    /// Sends an H.245 frame on the H.245 connection. With `held_olc` (the
    /// figures' callee) its own OpenLogicalChannel waits until its
    /// OpenLogicalChannelAck of the caller's channel has gone, as the
    /// figures draw it: [`Call`] opens its channel as soon as it has the
    /// peer's capabilities and the master/slave decision, so the two
    /// channels (one RTP session) cross, the callee's pinhole opens for its
    /// own channel and its Ack needs no CMPH of its own (see [`fig15_in`]).
    fn h245_out(&mut self, w: &mut World, f: Vec<u8>) {
        let (Some(to), Some(p)) = (self.h245_peer, whole_tpkt(&f)) else {
            self.bad_frames += 1;
            return;
        };
        if let Some(held) = &mut self.held_olc {
            let name = Signal::h245(&p).map(|s| s.name()).unwrap_or_default();
            if name == "openLogicalChannel" {
                held.push(f);
                return;
            }
            w.send(self.h245, to, f);
            if name == "openLogicalChannelAck" {
                for f in self.held_olc.take().unwrap_or_default() {
                    w.send(self.h245, to, f);
                }
            }
            return;
        }
        w.send(self.h245, to, f);
    }

    fn media_done(&self) -> bool {
        self.sent == PACKETS
    }
}

fn run_until(
    w: &mut World,
    t: &mut [Terminal; 2],
    limit: Duration,
    done: impl Fn(&[Terminal; 2]) -> bool,
) -> bool {
    let end = w.now() + limit;
    while w.now() < end {
        for x in t.iter_mut() {
            x.pump(w);
        }
        if done(t) {
            return true;
        }
        w.run_for(TICK);
    }
    done(t)
}

/// The world of both figures: two corporate networks, the MPR with its
/// H.323 ALG on 1720 and its H.245 listeners.
fn world(seed: u64) -> (World, [ZoneId; 2]) {
    let mut mc = mpr::Config::new(ip(MPR_IP), [seed as u8; 32]);
    mc.control_ports = vec![sa(MPR_H323).port()];
    for id in ["corp1", "corp2"] {
        mc.networks.push(mpr::NetworkConfig::new(
            id,
            format!("{id}-secret").into_bytes(),
        ));
    }
    let mut w = World::new(base_instant(), seed, mc);
    w.set_namer(namer);
    let c1 = w.add_corp("corp1", ip(FW1), FirewallConfig::default());
    let c2 = w.add_corp("corp2", ip(FW2), FirewallConfig::default());
    w.add_host(c1.zone, ip("10.1.0.10"), "A");
    w.add_host(c2.zone, ip("10.2.0.10"), "B");
    let pool: Vec<SocketAddr> = MPR_H245_POOL
        .map(|p| SocketAddr::new(ip(MPR_IP), p))
        .collect();
    let cfg = MprConfig::new(sa(MPR_H323), pool.clone(), [seed as u8 ^ 0x5a; 32]);
    w.set_mpr_alg(sa(MPR_H323), Box::new(Mpr::new(cfg)));
    for p in pool {
        w.listen_mpr_alg(sa(MPR_H323), p);
    }
    (w, [c1.zone, c2.zone])
}

/// A client engine for network `net` at `sig` (its domain
/// `<net>.example`) running `alg`, with its inside H.245 listeners.
fn client(w: &mut World, net: &str, sig: SocketAddr, seed: u8, alg: ClientConfig) {
    let mut cfg = client::Config::new(
        net,
        format!("{net}-secret").into_bytes(),
        Protocol::H323,
        sig,
        sa(MPR_H323),
        [seed; 32],
    );
    cfg.domains = vec![format!("{net}.example")];
    let id = w.add_client(cfg);
    let listeners = alg.h245_pool.clone();
    w.set_client_alg(id, Box::new(Client::new(alg)));
    for p in listeners {
        w.listen_client_alg(id, p);
    }
}

/// The inside H.245 listeners on `host`.
fn client_pool(host: &str) -> Vec<SocketAddr> {
    CLIENT_H245_POOL
        .map(|p| SocketAddr::new(ip(host), p))
        .collect()
}

/// The two terminals' addresses on their hosts: call signalling on
/// `sig_port`, H.245 listeners on 1300 (A) and 1400 (B), RTP on 5000 (A)
/// and 6000 (B). A calls `bob@corp2.example` through `a_proxy`; with
/// `crossing` B opens its channel when [`Call`] does, else after it
/// acknowledged A's.
fn terminals(mode: Mode, sig_port: u16, a_proxy: SocketAddr, crossing: bool) -> [Terminal; 2] {
    let a_sig = SocketAddr::new(ip("10.1.0.10"), sig_port);
    let b_sig = SocketAddr::new(ip("10.2.0.10"), sig_port);
    let a = CallConfig {
        role: Role::Caller,
        mode,
        alias: "alice@corp1.example".into(),
        target: Some("bob@corp2.example".into()),
        signal: a_sig,
        h245: Some(sa("10.1.0.10:1300")),
        // A waits for an h245Address (B's CONNECT brings one): H.245
        // starts once the call is answered, as the figures draw it.
        offer_h245: false,
        rtp: sa("10.1.0.10:5000"),
        seed: 0xa15,
    };
    let b = CallConfig {
        role: Role::Callee,
        mode,
        alias: "bob@corp2.example".into(),
        target: None,
        signal: b_sig,
        h245: Some(sa("10.2.0.10:1400")),
        offer_h245: true,
        rtp: sa("10.2.0.10:6000"),
        seed: 0xb0b,
    };
    [
        Terminal::new(a, sa("10.1.0.10:1300"), Some(a_proxy), 0xa000_0001, false),
        Terminal::new(b, sa("10.2.0.10:1400"), None, 0xb000_0002, !crossing),
    ]
}

/// Fig. 15: plain terminals A and B behind APS1 and APS2.
pub fn fig15() -> Result<FigureRun> {
    fig15_in(Mode::Separate, false)
}

/// Fig. 15 with H.245 in `mode`. The figure draws [`Mode::Separate`]; in
/// the other modes [`FIG15_STEPS`] do not apply (H.245 rides in call
/// signalling, or fastStart has none), only the media does. With fastStart
/// B sends its RTP from its answer to the Setup on, before the pinholes
/// are open: its first packet may be lost (media clipping).
///
/// `crossing`: B opens its logical channel as soon as [`Call`] does, so
/// the two channels cross (each APS opens its pinhole for its own
/// terminal's channel, and the Acks need no CMPH); the steps then differ
/// from the figure's at 1456–1462, the media does not. Without it B's
/// OpenLogicalChannel waits for its Ack of A's, as the figure draws.
pub fn fig15_in(mode: Mode, crossing: bool) -> Result<FigureRun> {
    let (mut w, zones) = world(15);
    for (i, (net, host, terminal)) in [
        ("corp1", "10.1.0.2", ("alice", "10.1.0.10:1720")),
        ("corp2", "10.2.0.2", ("bob", "10.2.0.10:1720")),
    ]
    .into_iter()
    .enumerate()
    {
        let name = if i == 0 { "APS1" } else { "APS2" };
        w.add_host(zones[i], ip(host), name);
        let sig = SocketAddr::new(ip(host), 1720);
        let seed = 3 + i as u8;
        let mut pc = ClientConfig::aps(
            sig,
            client_pool(host),
            ip(host),
            PortRange::new(20_000, 20_999)?,
            [seed; 32],
        );
        pc.aliases = vec![(terminal.0.to_owned(), sa(terminal.1))];
        client(&mut w, net, sig, seed, pc);
    }
    let names = [
        ("10.1.0.2", "APS1"),
        (FW1, "APS1"),
        ("10.1.0.10", "A"),
        ("10.2.0.2", "APS2"),
        (FW2, "APS2"),
        ("10.2.0.10", "B"),
        (MPR_IP, "MPR"),
    ];
    let t = terminals(mode, 1720, sa("10.1.0.2:1720"), crossing);
    call(Figure::Fig15, w, t, &names)
}

/// Fig. 16: no APS; on each terminal host an ALG in smart terminal mode
/// (port 1720, registered by its own client engine) beside the terminal
/// (port 1722), which sends its Setup to it. B's own channel waits for
/// its Ack of A's, as in [`fig15`].
pub fn fig16() -> Result<FigureRun> {
    let (mut w, _) = world(16);
    for (i, (net, host, alias)) in [
        ("corp1", "10.1.0.10", "alice"),
        ("corp2", "10.2.0.10", "bob"),
    ]
    .into_iter()
    .enumerate()
    {
        let alg = SocketAddr::new(ip(host), 1720);
        let seed = 5 + i as u8;
        let mut pc = ClientConfig::terminal(alg, client_pool(host), ip(host), [seed; 32]);
        pc.aliases = vec![(alias.to_owned(), SocketAddr::new(ip(host), 1722))];
        client(&mut w, net, alg, seed, pc);
    }
    let names = [
        (FW1, "A"),
        ("10.1.0.10", "A"),
        (FW2, "B"),
        ("10.2.0.10", "B"),
        (MPR_IP, "MPR"),
    ];
    let t = terminals(Mode::Separate, 1722, sa("10.1.0.10:1720"), false);
    call(Figure::Fig16, w, t, &names)
}

/// Registration, A's Setup, B's answer, H.245 (capabilities, master/slave,
/// a logical channel each way), `PACKETS` RTP packets each way, A's
/// hangup.
fn call(
    figure: Figure,
    mut w: World,
    mut t: [Terminal; 2],
    names: &[(&str, &str)],
) -> Result<FigureRun> {
    // Fig. 6 first: the H.323 signaling pinholes.
    w.run_for(Duration::from_secs(2));
    if w.mpr().route("corp1", Protocol::H323).is_none()
        || w.mpr().route("corp2", Protocol::H323).is_none()
    {
        bail!("the networks did not register");
    }
    t[0].call.start();
    if !run_until(&mut w, &mut t, Duration::from_secs(10), |t| {
        t.iter().all(|x| x.call.media_started())
    }) {
        bail!(
            "the media did not start: A {:?}, B {:?}",
            t[0].call.messages(),
            t[1].call.messages()
        );
    }
    let media = PTIME * PACKETS as u32 + Duration::from_secs(1);
    run_until(&mut w, &mut t, media, |t| {
        t.iter().all(Terminal::media_done)
    });
    // What is in flight arrives.
    run_until(&mut w, &mut t, Duration::from_millis(200), |_| false);
    t[0].call.hangup();
    if !run_until(&mut w, &mut t, END_SESSION_WAIT, |t| {
        t.iter().all(|x| x.call.ended())
    }) {
        t[0].call.force_release();
        run_until(&mut w, &mut t, Duration::from_secs(2), |t| {
            t.iter().all(|x| x.call.ended())
        });
    }
    // The release reaches the MPR and the legs are freed.
    run_until(&mut w, &mut t, Duration::from_millis(500), |_| false);
    let bad: u64 = t.iter().map(|x| x.bad_frames).sum();
    if bad > 0 {
        bail!("{bad} frames were not one whole TPKT frame");
    }
    let ladder = ladder_of(&w, names);
    let [a, b] = t;
    let ended = |x: &Terminal| x.call.released().map(|r| r.name().to_owned());
    let sent = a.sent.min(b.sent);
    if sent != PACKETS {
        return Err(anyhow!("A sent {}, B {} RTP packets", a.sent, b.sent));
    }
    Ok(FigureRun {
        figure,
        ladder,
        sent,
        legs_open_after: w.mpr().stats().legs_open,
        ended: [ended(&a), ended(&b)],
        at_a: a.received,
        at_b: b.received,
    })
}
