//! Figs. 13 and 14: an H.248 media gateway controller on the public side
//! ([`Mgc`]) connects media gateway A in corp1 and B in corp2 through the
//! MPR's [`Mpr`] (which gives each gateway a port of its own toward the
//! MGC); RTP flows both ways; the MGC subtracts both terminations.
//!
//! - **Fig. 13**: plain gateways ([`Mg`]) behind an APS each ([`Aps`]),
//!   which the gateways use as their MGC; it opens the media pinholes
//!   from its ports B and gives the gateways those ports.
//! - **Fig. 14**: no APS. Each gateway host runs a client engine of its
//!   own with the same ALG in its smart gateway mode
//!   ([`ApsConfig::terminal`]) beside the plain gateway (another port on
//!   the same host): the pinholes open from the gateway's own media
//!   port, and the gateway sends straight to the MPR relay addresses.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use pinhole_core::client;
use pinhole_core::mpr;
use pinhole_core::ports::PortRange;
use pinhole_core::wire::Protocol;
use pinhole_h248::alg::{Aps, ApsConfig, Mpr, MprConfig};
use pinhole_h248::{CommandKind, ContextId, Item, Message, parse};
use pinhole_testkit::{FirewallConfig, World, base_instant};

use super::{FW1, FW2, Figure, FigureRun, MPR_IP, PACKETS, Step, TICK, ip, ladder_of, sa, step};
use crate::rtp::{self, Tally};

const MPR_H248: &str = "203.0.113.10:2944";
const MGC: &str = "192.0.2.5:2944";
const MGC_MID: &str = "[192.0.2.5]:2944";

/// Fig. 13, steps 1205–1285 (1290 is the media). Step 1205 is gateway
/// A's ServiceChange (the "possible setup message"), which reaches the
/// MGC through APS1 and the MPR.
pub const FIG13_STEPS: &[Step] = &[
    step(1205, "A", "APS1", "H.248 Transaction ServiceChange"),
    step(1205, "APS1", "MPR", "H.248 Transaction ServiceChange"),
    step(1205, "MPR", "MGC", "H.248 Transaction ServiceChange"),
    step(1205, "MGC", "MPR", "H.248 Reply ServiceChange"),
    step(1205, "MPR", "APS1", "H.248 Reply ServiceChange"),
    step(1205, "APS1", "A", "H.248 Reply ServiceChange"),
    step(1210, "MGC", "MPR", "H.248 Transaction Add"),
    step(1210, "MPR", "APS1", "H.248 Transaction Add"),
    step(1215, "APS1", "A", "H.248 Transaction Add"),
    step(1220, "A", "APS1", "H.248 Reply Add"),
    step(1225, "APS1", "MPR", "CMPH request"),
    step(1230, "MPR", "APS1", "CMPH success"),
    step(1235, "APS1", "MPR", "H.248 Reply Add"),
    step(1235, "MPR", "MGC", "H.248 Reply Add"),
    step(1240, "MGC", "MPR", "H.248 Transaction Add"),
    step(1240, "MPR", "APS2", "H.248 Transaction Add"),
    step(1245, "APS2", "B", "H.248 Transaction Add"),
    step(1250, "B", "APS2", "H.248 Reply Add"),
    step(1255, "APS2", "MPR", "CMPH request"),
    step(1260, "MPR", "APS2", "CMPH success"),
    step(1265, "APS2", "MPR", "H.248 Reply Add"),
    step(1265, "MPR", "MGC", "H.248 Reply Add"),
    step(1270, "MGC", "MPR", "H.248 Transaction Modify"),
    step(1270, "MPR", "APS1", "H.248 Transaction Modify"),
    step(1275, "APS1", "A", "H.248 Transaction Modify"),
    step(1280, "A", "APS1", "H.248 Reply Modify"),
    step(1285, "APS1", "MPR", "H.248 Reply Modify"),
    step(1285, "MPR", "MGC", "H.248 Reply Modify"),
];

/// Fig. 14, steps 1305–1355 (1360 is the media). A gateway and its ALG
/// share a host, so both are "A" (or "B"); what they say to each other
/// stays on the host, and each gateway's CMPH (1315/1320, 1335/1340) is
/// answered before its Add reply leaves.
pub const FIG14_STEPS: &[Step] = &[
    step(1305, "A", "MPR", "H.248 Transaction ServiceChange"),
    step(1305, "MPR", "MGC", "H.248 Transaction ServiceChange"),
    step(1305, "MGC", "MPR", "H.248 Reply ServiceChange"),
    step(1305, "MPR", "A", "H.248 Reply ServiceChange"),
    step(1310, "MGC", "MPR", "H.248 Transaction Add"),
    step(1310, "MPR", "A", "H.248 Transaction Add"),
    step(1315, "A", "MPR", "CMPH request"),
    step(1320, "MPR", "A", "CMPH success"),
    step(1325, "A", "MPR", "H.248 Reply Add"),
    step(1325, "MPR", "MGC", "H.248 Reply Add"),
    step(1330, "MGC", "MPR", "H.248 Transaction Add"),
    step(1330, "MPR", "B", "H.248 Transaction Add"),
    step(1335, "B", "MPR", "CMPH request"),
    step(1340, "MPR", "B", "CMPH success"),
    step(1345, "B", "MPR", "H.248 Reply Add"),
    step(1345, "MPR", "MGC", "H.248 Reply Add"),
    step(1350, "MGC", "MPR", "H.248 Transaction Modify"),
    step(1350, "MPR", "A", "H.248 Transaction Modify"),
    step(1355, "A", "MPR", "H.248 Reply Modify"),
    step(1355, "MPR", "MGC", "H.248 Reply Modify"),
];

/// A plain media gateway: announces itself to its MGC (its APS, or its
/// ALG), answers Add and Modify with its media in `Local`, sends its RTP
/// to the `Remote` it was given, and tallies what reaches its media port.
struct Mg {
    mid: &'static str,
    h248: SocketAddr,
    /// Where its own requests go.
    mgc: SocketAddr,
    media: SocketAddr,
    /// The context it puts its termination in.
    context: u32,
    remote: Option<SocketAddr>,
    announced: bool,
    ssrc: u32,
    received: Tally,
}

impl Mg {
    fn pump(&mut self, w: &mut World) {
        for d in w.take_inbox(self.h248) {
            if let Some(reply) = self.answer(&d.payload) {
                w.send(self.h248, d.src, reply);
            }
        }
        for d in w.take_inbox(self.media) {
            self.received.add(&d.payload);
        }
    }

    fn service_change(&self, id: u32) -> Vec<u8> {
        format!(
            "MEGACO/1 {}\r\nTransaction = {id} {{\r\n  Context = - {{\r\n    ServiceChange = ROOT {{Services {{Method = Restart, Reason = \"901 Cold Boot\"}}}}\r\n  }}\r\n}}\r\n",
            self.mid
        )
        .into_bytes()
    }

    /// The reply to an MGC's request; `None` for anything else (the
    /// MGC's reply to the ServiceChange marks the gateway announced).
    fn answer(&mut self, bytes: &[u8]) -> Option<Vec<u8>> {
        let msg = parse(bytes).ok()?;
        let r = match msg.items().first()? {
            Item::Request(r) => r,
            Item::Reply(_) => {
                self.announced = true;
                return None;
            }
            _ => return None,
        };
        let cmd = r.actions.first()?.commands.first()?;
        if let Some(g) = cmd.streams.first().and_then(|s| s.remote.first()) {
            let sdp = msg.sdp(g).ok()?;
            self.remote = sdp.endpoints(self.media.ip()).ok()?.first().map(|e| e.addr);
        }
        let (id, ctx, mid) = (r.id, self.context, self.mid);
        if cmd.kind == CommandKind::Subtract {
            return Some(
                format!("MEGACO/1 {mid}\r\nReply = {id} {{\r\n  Context = {ctx} {{ Subtract = RTP/1 }}\r\n}}\r\n")
                    .into_bytes(),
            );
        }
        let (name, ip, port) = (cmd.kind.long_name(), self.media.ip(), self.media.port());
        Some(format!(
            "MEGACO/1 {mid}\r\nReply = {id} {{\r\n  Context = {ctx} {{\r\n    {name} = RTP/1 {{\r\n      Media {{\r\n        Stream = 1 {{\r\n          Local {{\r\nv=0\r\no=- 4711 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\n          }}\r\n        }}\r\n      }}\r\n    }}\r\n  }}\r\n}}\r\n"
        ).into_bytes())
    }
}

/// The media gateway controller: answers ServiceChanges (noting the
/// address each gateway's `mId` reached it from: its port on the MPR)
/// and keeps the replies to its own requests.
#[derive(Default)]
struct Mgc {
    gateways: HashMap<String, SocketAddr>,
    replies: HashMap<u32, Vec<u8>>,
}

impl Mgc {
    fn pump(&mut self, w: &mut World) {
        for d in w.take_inbox(sa(MGC)) {
            let Ok(msg) = parse(&d.payload) else {
                continue;
            };
            for item in msg.items() {
                match item {
                    Item::Request(r) => {
                        self.gateways.insert(msg.mid().text.to_owned(), d.src);
                        let reply = format!(
                            "MEGACO/1 {MGC_MID}\r\nReply = {} {{\r\n  Context = - {{ServiceChange = ROOT {{Services {{Version = 1}}}}}}\r\n}}\r\n",
                            r.id
                        );
                        w.send(sa(MGC), d.src, reply.into_bytes());
                    }
                    Item::Reply(r) => {
                        self.replies.insert(r.id, d.payload.clone());
                    }
                    _ => {}
                }
            }
        }
    }
}

/// The MGC and the two gateways.
struct Parties {
    mgc: Mgc,
    mgs: [Mg; 2],
}

impl Parties {
    fn pump(&mut self, w: &mut World) {
        self.mgc.pump(w);
        for g in &mut self.mgs {
            g.pump(w);
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

    /// Gateway `i` announces itself; the address the MGC knows it by.
    fn announce(&mut self, w: &mut World, i: usize, id: u32) -> Result<SocketAddr> {
        let g = &self.mgs[i];
        w.send(g.h248, g.mgc, g.service_change(id));
        self.run_until(w, Duration::from_secs(5), |p| p.mgs[i].announced);
        self.mgc
            .gateways
            .get(self.mgs[i].mid)
            .copied()
            .filter(|_| self.mgs[i].announced)
            .with_context(|| format!("gateway {} was not announced", self.mgs[i].mid))
    }

    /// The MGC's request `id` to the gateway it knows at `to`: its reply,
    /// an error when none came or it failed.
    fn transact(&mut self, w: &mut World, to: SocketAddr, id: u32, req: String) -> Result<Vec<u8>> {
        w.send(sa(MGC), to, req.into_bytes());
        self.run_until(w, Duration::from_secs(5), |p| {
            p.mgc.replies.contains_key(&id)
        });
        let reply = self
            .mgc
            .replies
            .remove(&id)
            .with_context(|| format!("no reply to transaction {id}"))?;
        let msg = parse(&reply).map_err(|e| anyhow!("reply {id}: {e}"))?;
        match msg.items().first() {
            Some(Item::Reply(r)) if r.error.is_none() => Ok(reply),
            _ => bail!(
                "transaction {id} failed: {}",
                String::from_utf8_lossy(&reply)
            ),
        }
    }
}

/// The context and first `Local` endpoint of a gateway's reply.
fn answered(reply: &[u8]) -> Result<(u32, SocketAddr)> {
    let msg = parse(reply).map_err(|e| anyhow!("{e}"))?;
    let local = |msg: &Message<'_>| -> Option<(u32, SocketAddr)> {
        let Item::Reply(r) = msg.items().first()? else {
            return None;
        };
        let action = r.actions.first()?;
        let ContextId::Id(ctx) = action.context else {
            return None;
        };
        let g = action.commands.first()?.streams.first()?.local.last()?;
        let addr = msg.sdp(g).ok()?.endpoints(ip(MPR_IP)).ok()?.first()?.addr;
        Some((ctx, addr))
    };
    local(&msg).context("a reply with a context and a Local")
}

fn add(id: u32, remote: Option<SocketAddr>) -> String {
    let remote = remote.map_or(String::new(), |r| {
        format!(
            ",\r\n          Remote {{\r\nv=0\r\nc=IN IP4 {}\r\nm=audio {} RTP/AVP 0\r\n          }}",
            r.ip(),
            r.port()
        )
    });
    format!(
        "MEGACO/1 {MGC_MID}\r\nTransaction = {id} {{\r\n  Context = $ {{\r\n    Add = RTP/$ {{\r\n      Media {{\r\n        Stream = 1 {{\r\n          LocalControl {{ Mode = SendReceive }},\r\n          Local {{\r\nv=0\r\nc=IN IP4 $\r\nm=audio $ RTP/AVP 0\r\n          }}{remote}\r\n        }}\r\n      }}\r\n    }}\r\n  }}\r\n}}\r\n"
    )
}

fn modify(id: u32, ctx: u32, remote: SocketAddr) -> String {
    format!(
        "MEGACO/1 {MGC_MID}\r\nTransaction = {id} {{\r\n  Context = {ctx} {{\r\n    Modify = RTP/1 {{\r\n      Media {{\r\n        Stream = 1 {{\r\n          Remote {{\r\nv=0\r\nc=IN IP4 {}\r\nm=audio {} RTP/AVP 0\r\n          }}\r\n        }}\r\n      }}\r\n    }}\r\n  }}\r\n}}\r\n",
        remote.ip(),
        remote.port()
    )
}

fn subtract(id: u32, ctx: u32, term: &str) -> String {
    format!(
        "MEGACO/1 {MGC_MID}\r\nTransaction = {id} {{\r\n  Context = {ctx} {{\r\n    Subtract = {term}\r\n  }}\r\n}}\r\n"
    )
}

/// The world of both figures: two corporate networks, the MGC, the MPR
/// with its H.248 ALG (gateway ports 2950–2959).
fn world(seed: u64) -> (World, [pinhole_testkit::ZoneId; 2]) {
    let mut mc = mpr::Config::new(ip(MPR_IP), [seed as u8; 32]);
    mc.control_ports = vec![sa(MPR_H248).port()];
    for id in ["corp1", "corp2"] {
        mc.networks.push(mpr::NetworkConfig::new(
            id,
            format!("{id}-secret").into_bytes(),
        ));
    }
    let mut w = World::new(base_instant(), seed, mc);
    let c1 = w.add_corp("corp1", ip(FW1), FirewallConfig::default());
    let c2 = w.add_corp("corp2", ip(FW2), FirewallConfig::default());
    w.add_host(c1.zone, ip("10.1.0.10"), "A");
    w.add_host(c2.zone, ip("10.2.0.10"), "B");
    let internet = w.internet;
    w.add_host(internet, sa(MGC).ip(), "MGC");
    let cfg = MprConfig::new(sa(MPR_H248), sa(MGC), 2950..=2959);
    w.set_mpr_alg(sa(MPR_H248), Box::new(Mpr::new(cfg)));
    (w, [c1.zone, c2.zone])
}

/// A client engine for network `net` at `sig` running `alg`.
fn client(w: &mut World, net: &str, sig: SocketAddr, seed: u8, alg: Aps) {
    let cfg = client::Config::new(
        net,
        format!("{net}-secret").into_bytes(),
        Protocol::H248,
        sig,
        sa(MPR_H248),
        [seed; 32],
    );
    let id = w.add_client(cfg);
    w.set_client_alg(id, Box::new(alg));
}

/// Gateway `i` (A in corp1, B in corp2) at `h248` with MGC `mgc`.
fn mg(i: usize, h248: SocketAddr, mgc: SocketAddr, mid: &'static str) -> Mg {
    let (media, context) = if i == 0 {
        ("10.1.0.10:4000", 2000)
    } else {
        ("10.2.0.10:6000", 77)
    };
    Mg {
        mid,
        h248,
        mgc,
        media: sa(media),
        context,
        remote: None,
        announced: false,
        ssrc: 0xc000_0000 + i as u32,
        received: Tally::default(),
    }
}

/// Fig. 13: plain gateways A and B behind APS1 and APS2.
pub fn fig13() -> Result<FigureRun> {
    let (mut w, zones) = world(13);
    let mut mgs = Vec::new();
    for (i, (net, aps, gw, mid)) in [
        (
            "corp1",
            "10.1.0.2:2944",
            "10.1.0.10:2944",
            "[10.1.0.10]:2944",
        ),
        (
            "corp2",
            "10.2.0.2:2944",
            "10.2.0.10:2944",
            "<mgb.corp2.example>",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let name = if i == 0 { "APS1" } else { "APS2" };
        w.add_host(zones[i], sa(aps).ip(), name);
        let seed = 3 + i as u8;
        let pc = ApsConfig::new(
            sa(aps),
            sa(aps).ip(),
            PortRange::new(20_000, 20_999)?,
            [seed; 32],
        );
        client(&mut w, net, sa(aps), seed, Aps::new(pc));
        mgs.push(mg(i, sa(gw), sa(aps), mid));
    }
    let names = [
        ("10.1.0.2", "APS1"),
        (FW1, "APS1"),
        ("10.1.0.10", "A"),
        ("10.2.0.2", "APS2"),
        (FW2, "APS2"),
        ("10.2.0.10", "B"),
        (MPR_IP, "MPR"),
        ("192.0.2.5", "MGC"),
    ];
    call(Figure::Fig13, w, mgs, &names)
}

/// Fig. 14: no APS; on each gateway host an ALG in smart gateway mode
/// (port 2944, registered by its own client engine) beside a plain
/// gateway (port 2945) that uses it as its MGC.
pub fn fig14() -> Result<FigureRun> {
    let (mut w, _) = world(14);
    let mut mgs = Vec::new();
    for (i, (net, host, mid)) in [
        ("corp1", "10.1.0.10", "[10.1.0.10]:2945"),
        ("corp2", "10.2.0.10", "<mgb.corp2.example>"),
    ]
    .into_iter()
    .enumerate()
    {
        let alg = SocketAddr::new(ip(host), 2944);
        let seed = 5 + i as u8;
        let pc = ApsConfig::terminal(alg, ip(host), [seed; 32]);
        client(&mut w, net, alg, seed, Aps::new(pc));
        mgs.push(mg(i, SocketAddr::new(ip(host), 2945), alg, mid));
    }
    let names = [
        (FW1, "A"),
        ("10.1.0.10", "A"),
        (FW2, "B"),
        ("10.2.0.10", "B"),
        (MPR_IP, "MPR"),
        ("192.0.2.5", "MGC"),
    ];
    call(Figure::Fig14, w, mgs, &names)
}

/// Registration, the gateways' ServiceChanges, Add to A, Add to B with
/// A's relay address, Modify to A with B's, media both ways, Subtract.
fn call(figure: Figure, mut w: World, mgs: Vec<Mg>, names: &[(&str, &str)]) -> Result<FigureRun> {
    // Fig. 6 first: the H.248 signaling pinholes.
    w.run_for(Duration::from_secs(1));
    if w.mpr().route("corp1", Protocol::H248).is_none()
        || w.mpr().route("corp2", Protocol::H248).is_none()
    {
        bail!("the networks did not register");
    }
    let mut p = Parties {
        mgc: Mgc::default(),
        mgs: mgs.try_into().map_err(|_| anyhow!("two gateways"))?,
    };
    let at_a = p.announce(&mut w, 0, 9998)?;
    let at_b = p.announce(&mut w, 1, 50001)?;
    let (ctx_a, relay_a) = answered(&p.transact(&mut w, at_a, 10003, add(10003, None))?)?;
    let (ctx_b, relay_b) =
        answered(&p.transact(&mut w, at_b, 10004, add(10004, Some(relay_a)))?)?;
    p.transact(&mut w, at_a, 10005, modify(10005, ctx_a, relay_b))?;
    for seq in 0..PACKETS as u16 {
        // Each gateway sends where its Remote said: its APS's port B
        // (Fig. 13), the MPR's relay address (Fig. 14).
        for g in &p.mgs {
            if let Some(to) = g.remote {
                w.send(g.media, to, rtp::packet(g.ssrc, seq));
            }
        }
        p.run_until(&mut w, Duration::from_millis(20), |_| false);
    }
    p.run_until(&mut w, Duration::from_millis(200), |_| false);
    p.transact(&mut w, at_a, 10006, subtract(10006, ctx_a, "RTP/1"))?;
    p.transact(&mut w, at_b, 10007, subtract(10007, ctx_b, "*"))?;
    let ladder = ladder_of(&w, names);
    let ended = Some("Subtracted".to_owned());
    let [a, b] = p.mgs;
    Ok(FigureRun {
        figure,
        ladder,
        sent: PACKETS,
        legs_open_after: w.mpr().stats().legs_open,
        ended: [ended.clone(), ended],
        at_a: a.received,
        at_b: b.received,
    })
}
