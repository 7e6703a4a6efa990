//! Figs. 9 and 10: an MGCP call agent on the public side ([`CallAgent`])
//! connects gateway A in corp1 and gateway B in corp2 through the MPR's
//! [`Mpr`]; RTP flows both ways; the call agent deletes both
//! connections.
//!
//! - **Fig. 9**: plain gateways ([`Gateway`]) behind an APS each
//!   ([`Aps`]), which stands in for the call agent inside (the
//!   gateways' RSIP goes to it: step 805) and opens the media pinholes.
//! - **Fig. 10**: smart gateways ([`SmartGateway`]), each on a client
//!   engine of its own, no APS.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Result, bail};
use pinhole_core::client;
use pinhole_core::mpr;
use pinhole_core::ports::PortRange;
use pinhole_core::wire::Protocol;
use pinhole_mgcp::alg::{Aps, ApsConfig, Mpr, MprConfig, SmartGateway, SmartGatewayConfig};
use pinhole_testkit::{FirewallConfig, World, base_instant};

use super::{FW1, FW2, Figure, FigureRun, MPR_IP, PACKETS, Step, TICK, ip, ladder_of, sa, step};
use crate::mgcp::ca::{CaEvent, CallAgent, Leg};
use crate::mgcp::gw::{Gateway, GwConfig};
use crate::rtp::{self, Tally};

const MPR_MGCP: &str = "203.0.113.10:2727";
const CA: &str = "192.0.2.5:2727";
const EP_A: &str = "aaln/1@gw1.corp1.example";
const EP_B: &str = "aaln/1@gw2.corp2.example";
const CALL_ID: &str = "A3C47F21456789F0";

/// Fig. 9, steps 805–885 (890 is the media). Step 805 is gateway A's RSIP
/// (a "possible setup message"), which reaches the call agent through
/// APS1 and the MPR.
pub const FIG9_STEPS: &[Step] = &[
    step(805, "A", "APS1", "RSIP "),
    step(805, "APS1", "MPR", "RSIP "),
    step(805, "MPR", "CA", "RSIP "),
    step(805, "CA", "MPR", "200 "),
    step(805, "MPR", "APS1", "200 "),
    step(805, "APS1", "A", "200 "),
    step(810, "CA", "MPR", "CRCX "),
    step(810, "MPR", "APS1", "CRCX "),
    step(815, "APS1", "A", "CRCX "),
    step(820, "A", "APS1", "200 "),
    step(825, "APS1", "MPR", "CMPH request"),
    step(830, "MPR", "APS1", "CMPH success"),
    step(835, "APS1", "MPR", "200 "),
    step(835, "MPR", "CA", "200 "),
    step(840, "CA", "MPR", "CRCX "),
    step(840, "MPR", "APS2", "CRCX "),
    step(845, "APS2", "B", "CRCX "),
    step(850, "B", "APS2", "200 "),
    step(855, "APS2", "MPR", "CMPH request"),
    step(860, "MPR", "APS2", "CMPH success"),
    step(865, "APS2", "MPR", "200 "),
    step(865, "MPR", "CA", "200 "),
    step(870, "CA", "MPR", "MDCX "),
    step(870, "MPR", "APS1", "MDCX "),
    step(875, "APS1", "A", "MDCX "),
    step(880, "A", "APS1", "200 "),
    step(885, "APS1", "MPR", "200 "),
    step(885, "MPR", "CA", "200 "),
];

/// Fig. 10, steps 910–955 (960 is the media). Each smart gateway opens its
/// pinhole (915/920, 935/940) before it answers the CRCX.
pub const FIG10_STEPS: &[Step] = &[
    step(910, "CA", "MPR", "CRCX "),
    step(910, "MPR", "A", "CRCX "),
    step(915, "A", "MPR", "CMPH request"),
    step(920, "MPR", "A", "CMPH success"),
    step(925, "A", "MPR", "200 "),
    step(925, "MPR", "CA", "200 "),
    step(930, "CA", "MPR", "CRCX "),
    step(930, "MPR", "B", "CRCX "),
    step(935, "B", "MPR", "CMPH request"),
    step(940, "MPR", "B", "CMPH success"),
    step(945, "B", "MPR", "200 "),
    step(945, "MPR", "CA", "200 "),
    step(950, "CA", "MPR", "MDCX "),
    step(950, "MPR", "A", "MDCX "),
    step(955, "A", "MPR", "200 "),
    step(955, "MPR", "CA", "200 "),
];

/// A gateway on the simulated network: its MGCP and RTP addresses, the
/// plain gateway's state machine (Fig. 9) or none (Fig. 10: the smart
/// gateway is the client engine's ALG), and what reached its RTP port.
struct SimGw {
    gw: Option<Gateway>,
    mgcp: SocketAddr,
    media: SocketAddr,
    ssrc: u32,
    received: Tally,
}

/// The call agent, the gateways, and the call agent's events so far.
struct Parties {
    ca: CallAgent,
    gws: [SimGw; 2],
    events: Vec<CaEvent>,
}

impl Parties {
    fn pump(&mut self, w: &mut World) {
        let now = w.now();
        for d in w.take_inbox(sa(CA)) {
            self.ca.handle_datagram(now, d.src, &d.payload);
        }
        if self.ca.poll_timeout().is_some_and(|t| t <= now) {
            self.ca.handle_timeout(now);
        }
        while let Some((to, bytes)) = self.ca.poll_transmit() {
            w.send(sa(CA), to, bytes);
        }
        while let Some(e) = self.ca.poll_event() {
            self.events.push(e);
        }
        for g in &mut self.gws {
            for d in w.take_inbox(g.media) {
                g.received.add(&d.payload);
            }
            let Some(gw) = g.gw.as_mut() else { continue };
            for d in w.take_inbox(g.mgcp) {
                gw.handle_datagram(now, d.src, &d.payload);
            }
            if gw.poll_timeout().is_some_and(|t| t <= now) {
                gw.handle_timeout(now);
            }
            while let Some((to, bytes)) = gw.poll_transmit() {
                w.send(g.mgcp, to, bytes);
            }
        }
    }

    fn run_until(&mut self, w: &mut World, limit: Duration, done: impl Fn(&Self) -> bool) -> bool {
        let end = w.now() + limit;
        while w.now() < end {
            self.pump(w);
            if done(self) {
                return true;
            }
            w.run_for(TICK);
        }
        done(self)
    }

    fn connected(&self) -> Option<(SocketAddr, SocketAddr)> {
        self.events.iter().find_map(|e| match e {
            CaEvent::Connected { a, b } => Some((*a, *b)),
            _ => None,
        })
    }

    fn finished(&self) -> Option<&CaEvent> {
        self.events
            .iter()
            .find(|e| matches!(e, CaEvent::Ended | CaEvent::Failed { .. }))
    }
}

fn mpr_config() -> mpr::Config {
    let mut mc = mpr::Config::new(ip(MPR_IP), [9; 32]);
    mc.control_ports = vec![sa(MPR_MGCP).port()];
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
        Protocol::Mgcp,
        sig,
        sa(MPR_MGCP),
        [seed; 32],
    )
}

fn world(seed: u64) -> (World, [pinhole_testkit::ZoneId; 2]) {
    let mut w = World::new(base_instant(), seed, mpr_config());
    let c1 = w.add_corp("corp1", ip(FW1), FirewallConfig::default());
    let c2 = w.add_corp("corp2", ip(FW2), FirewallConfig::default());
    w.add_host(c1.zone, ip("10.1.0.10"), "A");
    w.add_host(c2.zone, ip("10.2.0.10"), "B");
    let internet = w.internet;
    w.add_host(internet, sa(CA).ip(), "CA");
    let mut mc = MprConfig::new(sa(MPR_MGCP));
    mc.call_agent = Some(sa(CA));
    w.set_mpr_alg(sa(MPR_MGCP), Box::new(Mpr::new(mc)));
    (w, [c1.zone, c2.zone])
}

/// Fig. 9: gateways A and B behind APS1 and APS2.
pub fn fig9() -> Result<FigureRun> {
    let (mut w, zones) = world(9);
    let mut gws = Vec::new();
    for (i, (net, aps, gw_ip, domain, seed)) in [
        (
            "corp1",
            "10.1.0.2:2727",
            "10.1.0.10",
            "gw1.corp1.example",
            3u8,
        ),
        (
            "corp2",
            "10.2.0.2:2727",
            "10.2.0.10",
            "gw2.corp2.example",
            4u8,
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let zone = zones[i];
        w.add_host(zone, sa(aps).ip(), if i == 0 { "APS1" } else { "APS2" });
        let id = w.add_client(client_config(net, sa(aps), seed));
        let mgcp = SocketAddr::new(ip(gw_ip), 2427);
        let mut pc = ApsConfig::new(
            sa(aps),
            sa(aps).ip(),
            PortRange::new(20_000, 20_999)?,
            [seed; 32],
        );
        pc.gateways.push((domain.to_owned(), mgcp));
        w.set_client_alg(id, Box::new(Aps::new(pc)));
        let media = SocketAddr::new(ip(gw_ip), 4000);
        let mut gc = GwConfig::new(domain, media);
        gc.call_agent = Some(sa(aps));
        gws.push(SimGw {
            gw: Some(Gateway::new(gc)),
            mgcp,
            media,
            ssrc: 0xa000_0000 + i as u32,
            received: Tally::default(),
        });
    }
    let names = [
        ("10.1.0.2", "APS1"),
        (FW1, "APS1"),
        ("10.1.0.10", "A"),
        ("10.2.0.2", "APS2"),
        (FW2, "APS2"),
        ("10.2.0.10", "B"),
        (MPR_IP, "MPR"),
        ("192.0.2.5", "CA"),
    ];
    let [a, b]: [SimGw; 2] = gws
        .try_into()
        .map_err(|_| anyhow::anyhow!("two gateways"))?;
    call(Figure::Fig9, w, [a, b], &names)
}

/// Fig. 10: smart gateways A and B, no APS.
pub fn fig10() -> Result<FigureRun> {
    let (mut w, _) = world(10);
    let mut gws = Vec::new();
    for (i, (net, gw_ip, seed)) in [("corp1", "10.1.0.10", 5u8), ("corp2", "10.2.0.10", 6u8)]
        .into_iter()
        .enumerate()
    {
        let mgcp = SocketAddr::new(ip(gw_ip), 2427);
        let id = w.add_client(client_config(net, mgcp, seed));
        // One RTP port pair: the gateway's media address is known.
        let gc = SmartGatewayConfig::new(mgcp, mgcp.ip(), PortRange::new(4000, 4001)?, [seed; 32]);
        w.set_client_alg(id, Box::new(SmartGateway::new(gc)));
        gws.push(SimGw {
            gw: None,
            mgcp,
            media: SocketAddr::new(mgcp.ip(), 4000),
            ssrc: 0xb000_0000 + i as u32,
            received: Tally::default(),
        });
    }
    let names = [
        (FW1, "A"),
        ("10.1.0.10", "A"),
        (FW2, "B"),
        ("10.2.0.10", "B"),
        (MPR_IP, "MPR"),
        ("192.0.2.5", "CA"),
    ];
    let [a, b]: [SimGw; 2] = gws
        .try_into()
        .map_err(|_| anyhow::anyhow!("two gateways"))?;
    call(Figure::Fig10, w, [a, b], &names)
}

/// Registration, (Fig. 9) the gateways' RSIP, the call agent connects A
/// and B, media both ways, the call agent deletes both connections.
fn call(
    figure: Figure,
    mut w: World,
    gws: [SimGw; 2],
    names: &[(&str, &str)],
) -> Result<FigureRun> {
    // Fig. 6 first: the MGCP signaling pinholes.
    w.run_for(Duration::from_secs(1));
    if w.mpr().route("corp1", Protocol::Mgcp).is_none()
        || w.mpr().route("corp2", Protocol::Mgcp).is_none()
    {
        bail!("the networks did not register");
    }
    let mut p = Parties {
        ca: CallAgent::new(sa(CA), 9),
        gws,
        events: Vec::new(),
    };
    let now = w.now();
    if let Some(gw) = p.gws[0].gw.as_mut() {
        gw.restart(now);
        p.run_until(&mut w, Duration::from_secs(2), |p| {
            p.gws[0].gw.as_ref().is_some_and(Gateway::restarted)
        });
    }
    let now = w.now();
    p.ca.connect(
        now,
        CALL_ID,
        Leg::new(EP_A, sa(MPR_MGCP)),
        Leg::new(EP_B, sa(MPR_MGCP)),
    )?;
    let up = p.run_until(&mut w, Duration::from_secs(10), |p| {
        p.connected().is_some() || p.finished().is_some()
    });
    let Some((relay_a, relay_b)) = p.connected().filter(|_| up) else {
        bail!("the call did not come up: {:?}", p.events);
    };
    for seq in 0..PACKETS as u16 {
        for (i, g) in p.gws.iter().enumerate() {
            // A plain gateway sends where its RemoteConnectionDescriptor
            // said (its APS's port B); a smart one to the relay address
            // the call agent gave it, which is the other side's.
            let to = match &g.gw {
                Some(gw) => gw.remote_media(),
                None => Some(if i == 0 { relay_b } else { relay_a }),
            };
            if let Some(to) = to {
                w.send(g.media, to, rtp::packet(g.ssrc, seq));
            }
        }
        p.run_until(&mut w, Duration::from_millis(20), |_| false);
    }
    p.run_until(&mut w, Duration::from_millis(200), |_| false);
    let now = w.now();
    p.ca.hangup(now);
    p.run_until(&mut w, Duration::from_secs(10), |p| p.finished().is_some());
    let verdict = p.finished().map(|e| format!("{e:?}"));
    let ladder = ladder_of(&w, names);
    let [a, b] = p.gws;
    Ok(FigureRun {
        figure,
        ladder,
        sent: PACKETS,
        legs_open_after: w.mpr().stats().legs_open,
        ended: [verdict.clone(), verdict],
        at_a: a.received,
        at_b: b.received,
    })
}
