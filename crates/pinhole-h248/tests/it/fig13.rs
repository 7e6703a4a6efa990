//! Fig. 13 on the simulated network: an APS in each network ([`Aps`]),
//! the MPR running [`Mpr`], an MGC on the public side and a plain media
//! gateway behind each firewall. ServiceChange through the APS and the
//! MPR (each gateway at a port of its own toward the MGC), Add to A with
//! CMPH before A's reply leaves corp1, Add to B with A's relay address,
//! CMPH before B's reply leaves corp2, Modify to A with B's relay address,
//! RTP both ways through both firewalls and the relay, Subtract frees
//! everything.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use pinhole_core::alg::counter;
use pinhole_core::client;
use pinhole_core::mpr;
use pinhole_core::ports::PortRange;
use pinhole_core::wire::Protocol;
use pinhole_h248::alg::{Aps, ApsConfig, Mpr, MprConfig};
use pinhole_h248::{Item, parse};
use pinhole_testkit::ladder::{Step, changed_lines, check_ladder, step};
use pinhole_testkit::{ClientId, FirewallConfig, World};

const MPR_IP: &str = "203.0.113.10";
const MPR: &str = "203.0.113.10:2944";
const MGC: &str = "192.0.2.5:2944";
const FW1: &str = "198.51.100.1";
const FW2: &str = "198.51.100.2";
const APS1: &str = "10.1.0.2:2944";
const APS2: &str = "10.2.0.2:2944";
const MG_A: &str = "10.1.0.10:2944";
const MG_B: &str = "10.2.0.10:2944";
const MEDIA_A: &str = "10.1.0.10:4000";
const MEDIA_B: &str = "10.2.0.10:6000";
const MID_A: &str = "[10.1.0.10]:2944";
const MID_B: &str = "<mgb.corp2.example>";

fn a(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A plain media gateway: answers the MGC's Add and Modify with its
/// media in Local, remembers the Remote it was given.
struct Gateway {
    mid: &'static str,
    at: SocketAddr,
    media: SocketAddr,
    context: u32,
    remote: Option<SocketAddr>,
}

impl Gateway {
    fn new(mid: &'static str, at: &str, media: &str, context: u32) -> Self {
        Self {
            mid,
            at: a(at),
            media: a(media),
            context,
            remote: None,
        }
    }

    fn service_change(&self, id: u32) -> Vec<u8> {
        format!(
            "MEGACO/1 {}\r\nTransaction = {id} {{\r\n  Context = - {{\r\n    ServiceChange = ROOT {{Services {{Method = Restart, Reason = \"901 Cold Boot\"}}}}\r\n  }}\r\n}}\r\n",
            self.mid
        )
        .into_bytes()
    }

    /// The reply to the MGC's request `req`.
    fn answer(&mut self, req: &[u8]) -> Vec<u8> {
        let msg = parse(req).unwrap();
        let Item::Request(r) = &msg.items()[0] else {
            panic!("a request");
        };
        let cmd = &r.actions[0].commands[0];
        if let Some(g) = cmd.streams.first().and_then(|s| s.remote.first()) {
            let sdp = msg.sdp(g).unwrap();
            self.remote = Some(sdp.endpoints(ip("0.0.0.0")).unwrap()[0].addr);
        }
        let (id, ctx) = (r.id, self.context);
        let name = cmd.kind.long_name();
        if name == "Subtract" {
            return format!(
                "MEGACO/1 {}\r\nReply = {id} {{\r\n  Context = {ctx} {{ Subtract = RTP/1 }}\r\n}}\r\n",
                self.mid
            )
            .into_bytes();
        }
        format!(
            "MEGACO/1 {mid}\r\nReply = {id} {{\r\n  Context = {ctx} {{\r\n    {name} = RTP/1 {{\r\n      Media {{\r\n        Stream = 1 {{\r\n          Local {{\r\nv=0\r\no=- 4711 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\n          }}\r\n        }}\r\n      }}\r\n    }}\r\n  }}\r\n}}\r\n",
            mid = self.mid,
            ip = self.media.ip(),
            port = self.media.port()
        )
        .into_bytes()
    }
}

/// The MGC's requests.
fn add(id: u32, remote: Option<SocketAddr>) -> Vec<u8> {
    let remote = remote.map_or(String::new(), |r| {
        format!(
            ",\r\n          Remote {{\r\nv=0\r\nc=IN IP4 {}\r\nm=audio {} RTP/AVP 0\r\n          }}",
            r.ip(),
            r.port()
        )
    });
    format!(
        "MEGACO/1 [192.0.2.5]:2944\r\nTransaction = {id} {{\r\n  Context = $ {{\r\n    Add = RTP/$ {{\r\n      Media {{\r\n        Stream = 1 {{\r\n          LocalControl {{ Mode = SendReceive }},\r\n          Local {{\r\nv=0\r\nc=IN IP4 $\r\nm=audio $ RTP/AVP 0\r\n          }}{remote}\r\n        }}\r\n      }}\r\n    }}\r\n  }}\r\n}}\r\n"
    )
    .into_bytes()
}

fn modify(id: u32, ctx: u32, remote: SocketAddr) -> Vec<u8> {
    format!(
        "MEGACO/1 [192.0.2.5]:2944\r\nTransaction = {id} {{\r\n  Context = {ctx} {{\r\n    Modify = RTP/1 {{\r\n      Media {{\r\n        Stream = 1 {{\r\n          Remote {{\r\nv=0\r\nc=IN IP4 {}\r\nm=audio {} RTP/AVP 0\r\n          }}\r\n        }}\r\n      }}\r\n    }}\r\n  }}\r\n}}\r\n",
        remote.ip(),
        remote.port()
    )
    .into_bytes()
}

fn subtract(id: u32, ctx: u32, term: &str) -> Vec<u8> {
    format!("MEGACO/1 [192.0.2.5]:2944\r\nTransaction = {id} {{\r\n  Context = {ctx} {{\r\n    Subtract = {term}\r\n  }}\r\n}}\r\n").into_bytes()
}

/// The first Local (or Remote) endpoint of a message's first command.
fn media_of(d: &[u8], local: bool) -> SocketAddr {
    let msg = parse(d).unwrap();
    let actions = match &msg.items()[0] {
        Item::Request(r) => &r.actions,
        Item::Reply(r) => &r.actions,
        _ => panic!("no actions"),
    };
    let s = &actions[0].commands[0].streams[0];
    let g = if local { &s.local } else { &s.remote };
    let sdp = msg.sdp(g.last().unwrap()).unwrap();
    sdp.endpoints(ip("0.0.0.0")).unwrap()[0].addr
}

struct Fig13 {
    w: World,
    ga: Gateway,
    gb: Gateway,
    aps: [ClientId; 2],
}

fn fig13() -> Fig13 {
    #[allow(clippy::disallowed_methods)]
    let start = Instant::now();
    let mut mc = mpr::Config::new(ip(MPR_IP), [1; 32]);
    mc.control_ports = vec![2944];
    for id in ["corp1", "corp2"] {
        mc.networks.push(mpr::NetworkConfig::new(
            id,
            format!("{id}-secret").into_bytes(),
        ));
    }
    let mut w = World::new(start, 13, mc);
    let c1 = w.add_corp("corp1", ip(FW1), FirewallConfig::default());
    let c2 = w.add_corp("corp2", ip(FW2), FirewallConfig::default());
    w.add_host(c1.zone, ip("10.1.0.2"), "APS1");
    w.add_host(c1.zone, ip("10.1.0.10"), "A");
    w.add_host(c2.zone, ip("10.2.0.2"), "APS2");
    w.add_host(c2.zone, ip("10.2.0.10"), "B");
    let internet = w.internet;
    w.add_host(internet, ip("192.0.2.5"), "MGC");
    w.set_mpr_alg(
        a(MPR),
        Box::new(Mpr::new(MprConfig::new(a(MPR), a(MGC), 2950..=2959))),
    );
    let mut aps = Vec::new();
    for (net, sig, media, seed) in [
        ("corp1", APS1, "10.1.0.2", 3u8),
        ("corp2", APS2, "10.2.0.2", 4u8),
    ] {
        let cfg = client::Config::new(
            net,
            format!("{net}-secret").into_bytes(),
            Protocol::H248,
            a(sig),
            a(MPR),
            [seed; 32],
        );
        let id = w.add_client(cfg);
        let pc = ApsConfig::new(
            a(sig),
            ip(media),
            PortRange::new(20_000, 20_999).unwrap(),
            [seed; 32],
        );
        w.set_client_alg(id, Box::new(Aps::new(pc)));
        aps.push(id);
    }
    w.run_for(Duration::from_secs(2));
    Fig13 {
        w,
        ga: Gateway::new(MID_A, MG_A, MEDIA_A, 2000),
        gb: Gateway::new(MID_B, MG_B, MEDIA_B, 77),
        aps: [aps[0], aps[1]],
    }
}

/// Who is behind an address in Fig. 13 (a firewall's address is its APS).
fn name(s: SocketAddr) -> String {
    match s.ip().to_string().as_str() {
        MPR_IP => "MPR",
        "192.0.2.5" => "MGC",
        FW1 | "10.1.0.2" => "APS1",
        FW2 | "10.2.0.2" => "APS2",
        "10.1.0.10" => "A",
        "10.2.0.10" => "B",
        _ => "?",
    }
    .to_owned()
}

const FIG13_STEPS: &[Step] = &[
    step(1205, "A", "APS1", "H.248 Transaction ServiceChange"),
    step(1205, "MPR", "MGC", "H.248 Transaction ServiceChange"),
    step(1205, "MPR", "APS1", "H.248 Reply ServiceChange"),
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

/// The one datagram that arrived at `at`: its source and payload.
fn one(w: &mut World, at: SocketAddr) -> (SocketAddr, Vec<u8>) {
    let mut got = w.take_inbox(at);
    assert_eq!(got.len(), 1, "one datagram at {at}: {got:?}");
    let d = got.remove(0);
    (d.src, d.payload)
}

/// The gateway announces itself; gives the address the MGC knows it by.
fn announce(w: &mut World, g: &Gateway, aps: &str, id: u32) -> SocketAddr {
    let sc = g.service_change(id);
    w.send(g.at, a(aps), sc.clone());
    w.run_for(Duration::from_millis(500));
    let (from, got) = one(w, a(MGC));
    assert_eq!(got, sc, "ServiceChange passes byte for byte");
    let reply = format!(
        "MEGACO/1 [192.0.2.5]:2944\r\nReply = {id} {{\r\n  Context = - {{ServiceChange = ROOT {{Services {{Version = 1}}}}}}\r\n}}\r\n"
    );
    w.send(a(MGC), from, reply.clone().into_bytes());
    w.run_for(Duration::from_millis(500));
    let (_, got) = one(w, g.at);
    assert_eq!(got, reply.as_bytes(), "the gateway sees the MGC's bytes");
    from
}

/// MGC → gateway through the MPR and its APS; the gateway's reply back.
fn exchange(
    w: &mut World,
    req: Vec<u8>,
    to: SocketAddr,
    g: &mut Gateway,
    aps: &str,
) -> (Vec<u8>, Vec<u8>) {
    w.send(a(MGC), to, req);
    w.run_for(Duration::from_millis(500));
    let (_, got) = one(w, g.at);
    let reply = g.answer(&got);
    w.send(g.at, a(aps), reply);
    w.run_for(Duration::from_secs(1));
    let (_, back) = one(w, a(MGC));
    (got, back)
}

#[test]
fn fig13_call_with_an_aps_in_each_network() {
    let Fig13 {
        mut w,
        mut ga,
        mut gb,
        aps,
    } = fig13();
    assert!(w.client(aps[0]).registered_pinhole().is_some());

    // 1205: each gateway announces itself; the MGC sees each at an
    // address of its own on the MPR.
    let at_a = announce(&mut w, &ga, APS1, 9998);
    let at_b = announce(&mut w, &gb, APS2, 50001);
    assert_eq!((at_a.ip(), at_b.ip()), (ip(MPR_IP), ip(MPR_IP)));
    assert_ne!(at_a, at_b);

    // 1210–1235: Add to A (CHOOSE); A's reply leaves only after CMPH.
    let add_a = add(10003, None);
    let (got, reply_a) = exchange(&mut w, add_a.clone(), at_a, &mut ga, APS1);
    assert_eq!(got, add_a, "a request without media passes byte for byte");
    let ra = media_of(&reply_a, true);
    assert_eq!(ra.ip(), ip(MPR_IP), "the MGC is told an MPR relay port");
    assert_eq!(
        changed_lines(&ga.answer(&add_a), &reply_a),
        [
            format!("c=IN IP4 {MPR_IP}"),
            format!("m=audio {} RTP/AVP 0", ra.port())
        ],
        "only c= and m= changed"
    );

    // 1240–1265: Add to B with A's relay address.
    let add_b = add(10004, Some(ra));
    let (got, reply_b) = exchange(&mut w, add_b.clone(), at_b, &mut gb, APS2);
    let b2 = media_of(&got, false);
    assert_eq!(b2.ip(), ip("10.2.0.2"), "B is told APS2's port B");
    assert_eq!(changed_lines(&add_b, &got).len(), 2);
    let rb = media_of(&reply_b, true);
    assert_eq!(rb.ip(), ip(MPR_IP));
    assert_ne!(rb, ra);

    // 1270–1285: Modify to A with B's relay address.
    let (got, _) = exchange(&mut w, modify(10005, 2000, rb), at_a, &mut ga, APS1);
    let b1 = media_of(&got, false);
    assert_eq!(b1.ip(), ip("10.1.0.2"), "A is told APS1's port B");
    assert_eq!((ga.remote, gb.remote), (Some(b1), Some(b2)));

    let ladder = check_ladder(&w, &name, FIG13_STEPS);
    assert!(ladder.is_ok(), "{}", ladder.unwrap_err());

    // 1290: RTP both ways through both firewalls and the relay.
    let before = w.relay_counters().forwarded;
    for i in 0..20u8 {
        w.send(a(MEDIA_A), b1, vec![0x80, 0, 0, i, b'a']);
        w.send(a(MEDIA_B), b2, vec![0x80, 0, 0, i, b'b']);
        w.run_for(Duration::from_millis(20));
    }
    w.run_for(Duration::from_millis(200));
    let at_ma: Vec<Vec<u8>> = w
        .take_inbox(a(MEDIA_A))
        .into_iter()
        .map(|d| d.payload)
        .collect();
    let at_mb: Vec<Vec<u8>> = w
        .take_inbox(a(MEDIA_B))
        .into_iter()
        .map(|d| d.payload)
        .collect();
    assert_eq!((at_ma.len(), at_mb.len()), (20, 20));
    for (i, (pa, pb)) in at_ma.iter().zip(&at_mb).enumerate() {
        assert_eq!(pa, &[0x80, 0, 0, i as u8, b'b'], "B→A payload {i}");
        assert_eq!(pb, &[0x80, 0, 0, i as u8, b'a'], "A→B payload {i}");
    }
    assert_eq!(w.relay_counters().forwarded - before, 40);
    assert_eq!(w.mpr().stats().legs_open, 2, "one leg per side");

    // Subtract A's termination, then everything in B's context.
    let _ = exchange(&mut w, subtract(10006, 2000, "RTP/1"), at_a, &mut ga, APS1);
    assert_eq!(
        w.mpr().stats().legs_open,
        2,
        "B's termination holds the call"
    );
    let _ = exchange(&mut w, subtract(10007, 77, "*"), at_b, &mut gb, APS2);
    assert_eq!(
        w.mpr().stats().legs_open,
        0,
        "Subtract freed the relay legs"
    );
    let mpr_counters = vec![(
        Protocol::H248,
        w.mpr_alg(Protocol::H248).unwrap().counters(),
    )];
    assert_eq!(counter(&mpr_counters, Protocol::H248, "teardowns"), 1);
    // A's reply, B's Add (A's relay address toward corp2), B's reply; the
    // Modify to A names B's relay address that already faces corp1.
    assert_eq!(counter(&mpr_counters, Protocol::H248, "sdp_rewritten"), 3);
    for id in aps {
        let c = w.client_alg(id).unwrap().counters();
        let get = |n: &str| c.iter().find(|(k, _)| *k == n).unwrap().1;
        assert_eq!(get("pinholes"), 1);
    }
}

#[test]
fn a_retransmitted_add_gets_the_same_relay_port_and_reply() {
    let Fig13 {
        mut w, mut ga, aps, ..
    } = fig13();
    let at_a = announce(&mut w, &ga, APS1, 1);
    let req = add(20, None);
    w.send(a(MGC), at_a, req.clone());
    w.run_for(Duration::from_millis(300));
    // The MGC repeats it before any reply.
    w.send(a(MGC), at_a, req.clone());
    w.run_for(Duration::from_millis(300));
    let got: Vec<Vec<u8>> = w
        .take_inbox(a(MG_A))
        .into_iter()
        .map(|d| d.payload)
        .collect();
    assert_eq!(
        got,
        [req.clone(), req.clone()],
        "both copies reach A unchanged"
    );
    // A replies to each; the second copy arrives while CMPH runs.
    let reply = ga.answer(&req);
    w.send(a(MG_A), a(APS1), reply.clone());
    w.send(a(MG_A), a(APS1), reply.clone());
    w.run_for(Duration::from_secs(1));
    let back: Vec<Vec<u8>> = w
        .take_inbox(a(MGC))
        .into_iter()
        .map(|d| d.payload)
        .collect();
    assert_eq!(back.len(), 1, "the copy held behind the CMPH is absorbed");
    // A third copy after the pinhole opened: the same rewritten bytes.
    w.send(a(MG_A), a(APS1), reply);
    w.run_for(Duration::from_secs(1));
    let again: Vec<Vec<u8>> = w
        .take_inbox(a(MGC))
        .into_iter()
        .map(|d| d.payload)
        .collect();
    assert_eq!(again, back, "the same relay port, the same reply");
    assert_eq!(w.mpr().stats().legs_open, 2, "planned once: one leg pair");
    assert_eq!(w.client(aps[0]).stats().pinholes_opened, 1);
}
