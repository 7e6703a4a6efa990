//! Figs. 11 and 12: two SIP user agents ([`Ua`]) call each other through
//! the MPR's [`Mpr`], with media both ways, and A hangs up.
//!
//! - **Fig. 11** (an APS in each network): plain phones A and B send their
//!   SIP to APS1 and APS2 ([`Aps`]), which open the media pinholes.
//! - **Fig. 12** (no APS): A and B are smart terminals, each a client
//!   engine of its own; they open their media pinholes themselves and send
//!   their SIP straight to the MPR.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Result, bail};
use pinhole_core::client::{self, Event, PinholeId};
use pinhole_core::mpr;
use pinhole_core::ports::PortRange;
use pinhole_core::types::Transport;
use pinhole_core::wire::Protocol;
use pinhole_sip::alg::{Aps, ApsConfig, Mpr, MprConfig};
use pinhole_testkit::{ClientId, FirewallConfig, World, base_instant};

use super::{FW1, FW2, Figure, FigureRun, MPR_IP, PACKETS, Step, TICK, ip, ladder_of, sa, step};
use crate::rtp::{self, Tally};
use crate::sip_ua::{EndReason, MediaMode, Output, Ua, UaConfig, UaEvent};

const MPR_SIP: &str = "203.0.113.10:5060";
/// Fig. 11, steps 1005–1097 (1100 is the media).
pub const FIG11_STEPS: &[Step] = &[
    step(1005, "A", "APS1", "INVITE "),
    step(1010, "APS1", "MPR", "CMPH request"),
    step(1015, "MPR", "APS1", "CMPH success"),
    step(1020, "APS1", "MPR", "INVITE "),
    step(1025, "MPR", "APS2", "INVITE "),
    step(1030, "APS2", "B", "INVITE "),
    step(1035, "B", "APS2", "SIP/2.0 180"),
    step(1040, "APS2", "MPR", "SIP/2.0 180"),
    step(1045, "MPR", "APS1", "SIP/2.0 180"),
    step(1050, "APS1", "A", "SIP/2.0 180"),
    step(1055, "B", "APS2", "SIP/2.0 200"),
    step(1060, "APS2", "MPR", "CMPH request"),
    step(1065, "MPR", "APS2", "CMPH success"),
    step(1070, "APS2", "MPR", "SIP/2.0 200"),
    step(1075, "MPR", "APS1", "SIP/2.0 200"),
    step(1080, "APS1", "A", "SIP/2.0 200"),
    step(1090, "A", "APS1", "ACK "),
    step(1095, "APS1", "MPR", "ACK "),
    step(1097, "MPR", "APS2", "ACK "),
];

/// Fig. 12, steps 1105–1160 (1165 is the media), in the order they cross
/// the wire. Two pairs are listed in the other order than the patent's
/// numbers: A's CMPH exchange (1110/1115) precedes its INVITE (1105),
/// because the INVITE's SDP names the pinhole that only the CMPH Response
/// reports (the patent's own Fig. 8: "upon receiving the CMPH Response
/// ... constructs a connection information message with ... port B");
/// and A's ACK (1160) reaches the MPR before the MPR forwards it (1155).
pub const FIG12_STEPS: &[Step] = &[
    step(1110, "A", "MPR", "CMPH request"),
    step(1115, "MPR", "A", "CMPH success"),
    step(1105, "A", "MPR", "INVITE "),
    step(1120, "MPR", "B", "INVITE "),
    step(1125, "B", "MPR", "SIP/2.0 180"),
    step(1130, "MPR", "A", "SIP/2.0 180"),
    step(1135, "B", "MPR", "CMPH request"),
    step(1140, "MPR", "B", "CMPH success"),
    step(1145, "B", "MPR", "SIP/2.0 200"),
    step(1150, "MPR", "A", "SIP/2.0 200"),
    step(1160, "A", "MPR", "ACK "),
    step(1155, "MPR", "B", "ACK "),
];

/// A user agent on the simulated network, with the client engine it uses
/// for pinholes (smart terminal) or none (plain phone).
struct SimUa {
    ua: Ua,
    client: Option<ClientId>,
    pinhole: Option<PinholeId>,
    /// Client events already handled.
    seen: usize,
    events: Vec<UaEvent>,
    received: Tally,
    ssrc: u32,
}

impl SimUa {
    fn sip(&self) -> SocketAddr {
        self.ua.config().sip
    }

    fn media(&self) -> SocketAddr {
        self.ua.config().media
    }

    /// Takes what arrived and what the engine reported, then does what the
    /// UA asks.
    fn pump(&mut self, w: &mut World) {
        let now = w.now();
        if let Some(id) = self.client {
            let events: Vec<Event> = w
                .client_events(id)
                .get(self.seen..)
                .unwrap_or_default()
                .to_vec();
            self.seen += events.len();
            for e in events {
                match e {
                    Event::Registered { pinhole, .. } => self.ua.set_contact(pinhole),
                    Event::PinholeOpened { id, pinhole, .. } if Some(id) == self.pinhole => {
                        self.ua.pinhole_opened(now, pinhole);
                    }
                    Event::PinholeFailed { id, .. } if Some(id) == self.pinhole => {
                        self.pinhole = None;
                        self.ua.pinhole_failed(now);
                    }
                    _ => {}
                }
            }
        }
        for d in w.take_inbox(self.sip()) {
            if let Err(e) = self.ua.handle_sip(now, d.src, &d.payload) {
                tracing::warn!(error = %e, "SIP datagram ignored");
            }
        }
        for d in w.take_inbox(self.media()) {
            self.received.add(&d.payload);
        }
        if self.ua.poll_timeout().is_some_and(|t| t <= now) {
            self.ua.handle_timeout(now);
        }
        while let Some(o) = self.ua.poll_output() {
            match o {
                Output::Sip { to, bytes } => w.send(self.sip(), to, bytes),
                Output::OpenPinhole(req) => {
                    let opened = self.client.map(|id| w.client(id).open_pinhole(now, req));
                    match opened {
                        Some(Ok(id)) => self.pinhole = Some(id),
                        _ => self.ua.pinhole_failed(now),
                    }
                }
                Output::ClosePinhole => {
                    if let (Some(c), Some(p)) = (self.client, self.pinhole.take()) {
                        let _ = w.client(c).close_pinhole(p);
                    }
                }
                Output::Event(e) => self.events.push(e),
            }
        }
    }

    fn established(&self) -> bool {
        self.events
            .iter()
            .any(|e| matches!(e, UaEvent::Established { .. }))
    }

    fn ended(&self) -> Option<EndReason> {
        self.events.iter().find_map(|e| match e {
            UaEvent::Ended { why } => Some(*why),
            _ => None,
        })
    }
}

/// Runs the world in small ticks, letting both UAs act, until `done` or
/// `limit` of simulated time.
fn run_until(
    w: &mut World,
    uas: &mut [SimUa; 2],
    limit: Duration,
    done: impl Fn(&[SimUa; 2]) -> bool,
) -> bool {
    let end = w.now() + limit;
    while w.now() < end {
        for u in uas.iter_mut() {
            u.pump(w);
        }
        if done(uas) {
            return true;
        }
        w.run_for(TICK);
    }
    done(uas)
}

fn mpr_config() -> mpr::Config {
    let mut mc = mpr::Config::new(ip(MPR_IP), [1; 32]);
    mc.control_ports = vec![5060];
    for (id, dom) in [("corp1", "corp1.example"), ("corp2", "corp2.example")] {
        let mut n = mpr::NetworkConfig::new(id, format!("{id}-secret").into_bytes());
        n.domains.push(dom.into());
        mc.networks.push(n);
    }
    mc
}

fn client_config(net: &str, sig: SocketAddr, seed: u8) -> client::Config {
    client::Config::new(
        net,
        format!("{net}-secret").into_bytes(),
        Protocol::Sip,
        sig,
        sa(MPR_SIP),
        [seed; 32],
    )
}

fn ua(aor: &str, sip: &str, proxy: &str, media: &str, mode: MediaMode, seed: u64) -> Ua {
    Ua::new(UaConfig {
        aor: aor.into(),
        sip: sa(sip),
        proxy: sa(proxy),
        media: sa(media),
        mode,
        seed,
        transport: Transport::Udp,
    })
}

fn sim_ua(ua: Ua, client: Option<ClientId>, ssrc: u32) -> SimUa {
    SimUa {
        ua,
        client,
        pinhole: None,
        seen: 0,
        events: Vec::new(),
        received: Tally::default(),
        ssrc,
    }
}

/// Fig. 11: phones A and B behind APS1 and APS2.
pub fn fig11() -> Result<FigureRun> {
    let mut w = World::new(base_instant(), 11, mpr_config());
    let c1 = w.add_corp("corp1", ip(FW1), FirewallConfig::default());
    let c2 = w.add_corp("corp2", ip(FW2), FirewallConfig::default());
    w.add_host(c1.zone, ip("10.1.0.2"), "APS1");
    w.add_host(c1.zone, ip("10.1.0.10"), "A");
    w.add_host(c2.zone, ip("10.2.0.2"), "APS2");
    w.add_host(c2.zone, ip("10.2.0.10"), "B");
    w.set_mpr_alg(
        sa(MPR_SIP),
        Box::new(Mpr::new(MprConfig::new(sa(MPR_SIP), [11; 32]))),
    );
    for (net, aps, aps_ip, phone, seed) in [
        ("corp1", "10.1.0.2:5060", "10.1.0.2", "10.1.0.10:5060", 3u8),
        ("corp2", "10.2.0.2:5060", "10.2.0.2", "10.2.0.10:5060", 4u8),
    ] {
        let id = w.add_client(client_config(net, sa(aps), seed));
        let mut pc = ApsConfig::new(
            sa(aps),
            ip(aps_ip),
            PortRange::new(20_000, 20_999)?,
            [seed; 32],
        );
        pc.inside_default = Some(sa(phone));
        w.set_client_alg(id, Box::new(Aps::new(pc)));
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
    let uas = [
        sim_ua(
            ua(
                "alice@corp1.example",
                "10.1.0.10:5060",
                "10.1.0.2:5060",
                "10.1.0.10:4000",
                MediaMode::Direct,
                11,
            ),
            None,
            0xa11c_e000,
        ),
        sim_ua(
            ua(
                "bob@corp2.example",
                "10.2.0.10:5060",
                "10.2.0.2:5060",
                "10.2.0.10:6000",
                MediaMode::Direct,
                12,
            ),
            None,
            0xb0b0_0000,
        ),
    ];
    call(Figure::Fig11, w, uas, &names)
}

/// Fig. 12: smart terminals A and B, no APS.
pub fn fig12() -> Result<FigureRun> {
    let mut w = World::new(base_instant(), 12, mpr_config());
    let c1 = w.add_corp("corp1", ip(FW1), FirewallConfig::default());
    let c2 = w.add_corp("corp2", ip(FW2), FirewallConfig::default());
    w.add_host(c1.zone, ip("10.1.0.10"), "A");
    w.add_host(c2.zone, ip("10.2.0.10"), "B");
    w.set_mpr_alg(
        sa(MPR_SIP),
        Box::new(Mpr::new(MprConfig::new(sa(MPR_SIP), [12; 32]))),
    );
    let a = w.add_client(client_config("corp1", sa("10.1.0.10:5060"), 5));
    let b = w.add_client(client_config("corp2", sa("10.2.0.10:5060"), 6));
    let names = [
        ("10.1.0.10", "A"),
        (FW1, "A"),
        ("10.2.0.10", "B"),
        (FW2, "B"),
        (MPR_IP, "MPR"),
    ];
    let uas = [
        sim_ua(
            ua(
                "alice@corp1.example",
                "10.1.0.10:5060",
                MPR_SIP,
                "10.1.0.10:4000",
                MediaMode::Pinhole,
                21,
            ),
            Some(a),
            0xa11c_e000,
        ),
        sim_ua(
            ua(
                "bob@corp2.example",
                "10.2.0.10:5060",
                MPR_SIP,
                "10.2.0.10:6000",
                MediaMode::Pinhole,
                22,
            ),
            Some(b),
            0xb0b0_0000,
        ),
    ];
    call(Figure::Fig12, w, uas, &names)
}

/// Registration, A calls B, media both ways, A hangs up.
fn call(
    figure: Figure,
    mut w: World,
    mut uas: [SimUa; 2],
    names: &[(&str, &str)],
) -> Result<FigureRun> {
    // Fig. 6 first: the signaling pinholes.
    w.run_for(Duration::from_secs(1));
    if w.mpr().route("corp1", Protocol::Sip).is_none()
        || w.mpr().route("corp2", Protocol::Sip).is_none()
    {
        bail!("the networks did not register");
    }
    let now = w.now();
    uas[0].ua.call(now, "sip:bob@corp2.example")?;
    if !run_until(&mut w, &mut uas, Duration::from_secs(10), |u| {
        u[0].established() && u[1].established()
    }) {
        bail!(
            "the call did not come up (A {:?}, B {:?})",
            uas[0].ua.state(),
            uas[1].ua.state()
        );
    }
    for seq in 0..PACKETS as u16 {
        for u in &uas {
            if let Some(to) = u.ua.remote_media() {
                w.send(u.media(), to, rtp::packet(u.ssrc, seq));
            }
        }
        run_until(&mut w, &mut uas, Duration::from_millis(20), |_| false);
    }
    run_until(&mut w, &mut uas, Duration::from_millis(200), |_| false);
    let now = w.now();
    uas[0].ua.hangup(now)?;
    run_until(&mut w, &mut uas, Duration::from_secs(10), |u| {
        u[0].ended().is_some() && u[1].ended().is_some()
    });
    let ladder = ladder_of(&w, names);
    let [a, b] = uas;
    Ok(FigureRun {
        figure,
        ladder,
        sent: PACKETS,
        legs_open_after: w.mpr().stats().legs_open,
        ended: [a.ended(), b.ended()].map(|e| e.map(|r| format!("{r:?}"))),
        at_a: a.received,
        at_b: b.received,
    })
}
