//! Fig. 14 on the simulated network: no APS. On each network's gateway
//! host a client engine registers with the MPR and runs the H.248 ALG in
//! its smart gateway mode ([`ApsConfig::terminal`]); a plain media
//! gateway on the same host (another port) uses that ALG as its MGC, as a
//! vendor embedding Pinhole beside its gateway would. The MPR runs
//! [`Mpr`], the MGC is on the public side. ServiceChange (1305), Add to A
//! with CMPH from A's own media port before A's reply leaves (1310–1325),
//! the same for B with A's relay address (1330–1345), Modify to A with
//! B's relay address (1350–1355), RTP straight between each gateway's
//! media port and the relay (1360), Subtract frees the relay legs.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use pinhole_core::alg::counter;
use pinhole_core::client;
use pinhole_core::mpr;
use pinhole_core::wire::Protocol;
use pinhole_h248::alg::{Aps, ApsConfig, Mpr, MprConfig};
use pinhole_h248::{Item, parse};
use pinhole_testkit::ladder::{Step, check_ladder, step};
use pinhole_testkit::{ClientId, FirewallConfig, World};

const MPR_IP: &str = "203.0.113.10";
const MPR: &str = "203.0.113.10:2944";
const MGC: &str = "192.0.2.5:2944";
const FW1: &str = "198.51.100.1";
const FW2: &str = "198.51.100.2";
/// The ALGs: each gateway host's client engine, registered with the MPR.
const ALG_A: &str = "10.1.0.10:2944";
const ALG_B: &str = "10.2.0.10:2944";
/// The gateways, beside their ALGs on the same hosts.
const MG_A: &str = "10.1.0.10:2945";
const MG_B: &str = "10.2.0.10:2945";
const MEDIA_A: &str = "10.1.0.10:4000";
const MEDIA_B: &str = "10.2.0.10:6000";
const MID_A: &str = "[10.1.0.10]:2945";
const MID_B: &str = "<mgb.corp2.example>";

fn a(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A plain media gateway: answers the MGC's Add and Modify with its
/// media in Local, remembers the Remote it was given (where it sends).
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

struct Fig14 {
    w: World,
    ga: Gateway,
    gb: Gateway,
    algs: [ClientId; 2],
}

fn fig14() -> Fig14 {
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
    let mut w = World::new(start, 14, mc);
    let c1 = w.add_corp("corp1", ip(FW1), FirewallConfig::default());
    let c2 = w.add_corp("corp2", ip(FW2), FirewallConfig::default());
    w.add_host(c1.zone, ip("10.1.0.10"), "A");
    w.add_host(c2.zone, ip("10.2.0.10"), "B");
    let internet = w.internet;
    w.add_host(internet, ip("192.0.2.5"), "MGC");
    w.set_mpr_alg(
        a(MPR),
        Box::new(Mpr::new(MprConfig::new(a(MPR), a(MGC), 2950..=2959))),
    );
    let mut algs = Vec::new();
    for (net, sig, seed) in [("corp1", ALG_A, 5u8), ("corp2", ALG_B, 6u8)] {
        let cfg = client::Config::new(
            net,
            format!("{net}-secret").into_bytes(),
            Protocol::H248,
            a(sig),
            a(MPR),
            [seed; 32],
        );
        let id = w.add_client(cfg);
        let pc = ApsConfig::terminal(a(sig), a(sig).ip(), [seed; 32]);
        w.set_client_alg(id, Box::new(Aps::new(pc)));
        algs.push(id);
    }
    w.run_for(Duration::from_secs(2));
    Fig14 {
        w,
        ga: Gateway::new(MID_A, MG_A, MEDIA_A, 2000),
        gb: Gateway::new(MID_B, MG_B, MEDIA_B, 77),
        algs: [algs[0], algs[1]],
    }
}

/// Who is behind an address in Fig. 14: a gateway host (its ALG, its
/// gateway and its media port) is its gateway, and so is its firewall.
fn name(s: SocketAddr) -> String {
    match s.ip().to_string().as_str() {
        MPR_IP => "MPR",
        "192.0.2.5" => "MGC",
        FW1 | "10.1.0.10" => "A",
        FW2 | "10.2.0.10" => "B",
        _ => "?",
    }
    .to_owned()
}

/// Fig. 14, steps 1305–1355 (1360 is the media). Each gateway's CMPH is
/// answered before its reply leaves the network.
const FIG14_STEPS: &[Step] = &[
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

/// The one datagram that arrived at `at`: its source and payload.
fn one(w: &mut World, at: SocketAddr) -> (SocketAddr, Vec<u8>) {
    let mut got = w.take_inbox(at);
    assert_eq!(got.len(), 1, "one datagram at {at}: {got:?}");
    let d = got.remove(0);
    (d.src, d.payload)
}

/// The gateway announces itself to its ALG; gives the address the MGC
/// knows it by.
fn announce(w: &mut World, g: &Gateway, alg: &str, id: u32) -> SocketAddr {
    let sc = g.service_change(id);
    w.send(g.at, a(alg), sc.clone());
    w.run_for(Duration::from_millis(500));
    let (from, got) = one(w, a(MGC));
    assert_eq!(got, sc, "ServiceChange passes byte for byte");
    let reply = format!(
        "MEGACO/1 [192.0.2.5]:2944\r\nReply = {id} {{\r\n  Context = - {{ServiceChange = ROOT {{Services {{Version = 1}}}}}}\r\n}}\r\n"
    );
    w.send(a(MGC), from, reply.clone().into_bytes());
    w.run_for(Duration::from_millis(500));
    let (src, got) = one(w, g.at);
    assert_eq!(src, a(alg), "the MGC's messages come from the ALG");
    assert_eq!(got, reply.as_bytes(), "the gateway sees the MGC's bytes");
    from
}

/// MGC → gateway through the MPR and its ALG; the gateway's reply back.
fn exchange(
    w: &mut World,
    req: Vec<u8>,
    to: SocketAddr,
    g: &mut Gateway,
    alg: &str,
) -> (Vec<u8>, Vec<u8>) {
    w.send(a(MGC), to, req);
    w.run_for(Duration::from_millis(500));
    let (_, got) = one(w, g.at);
    let reply = g.answer(&got);
    w.send(g.at, a(alg), reply);
    w.run_for(Duration::from_secs(1));
    let (_, back) = one(w, a(MGC));
    (got, back)
}

/// The payloads that reached `at`.
fn payloads(w: &mut World, at: &str) -> Vec<Vec<u8>> {
    w.take_inbox(a(at)).into_iter().map(|d| d.payload).collect()
}

#[test]
fn fig14_call_between_smart_gateways_without_an_aps() {
    let Fig14 {
        mut w,
        mut ga,
        mut gb,
        algs,
    } = fig14();
    assert!(w.client(algs[0]).registered_pinhole().is_some());
    assert!(w.client(algs[1]).registered_pinhole().is_some());

    // 1305: each gateway announces itself through its ALG.
    let at_a = announce(&mut w, &ga, ALG_A, 9998);
    let at_b = announce(&mut w, &gb, ALG_B, 50001);
    assert_eq!((at_a.ip(), at_b.ip()), (ip(MPR_IP), ip(MPR_IP)));
    assert_ne!(at_a, at_b);

    // 1310–1325: Add to A; A's reply leaves only after its CMPH.
    let add_a = add(10003, None);
    let (got, reply_a) = exchange(&mut w, add_a.clone(), at_a, &mut ga, ALG_A);
    assert_eq!(got, add_a, "a request without media passes byte for byte");
    let ra = media_of(&reply_a, true);
    assert_eq!(ra.ip(), ip(MPR_IP), "the MGC is told an MPR relay port");

    // 1330–1345: Add to B with A's relay address; B gets the MPR's relay
    // address as the MPR wrote it, no port B.
    let add_b = add(10004, Some(ra));
    let (got, reply_b) = exchange(&mut w, add_b.clone(), at_b, &mut gb, ALG_B);
    let to_a = media_of(&got, false);
    assert_eq!(to_a.ip(), ip(MPR_IP), "B sends straight to the relay");
    let rb = media_of(&reply_b, true);
    assert_eq!(rb.ip(), ip(MPR_IP));
    assert_ne!(rb, ra);

    // 1350–1355: Modify to A with B's relay address, unchanged to A.
    let (got, _) = exchange(&mut w, modify(10005, 2000, rb), at_a, &mut ga, ALG_A);
    let to_b = media_of(&got, false);
    assert_eq!(to_b.ip(), ip(MPR_IP), "A sends straight to the relay");
    assert_eq!((ga.remote, gb.remote), (Some(to_b), Some(to_a)));

    let ladder = check_ladder(&w, &name, FIG14_STEPS);
    assert!(ladder.is_ok(), "{}", ladder.unwrap_err());
    // The pinholes opened from the gateways' own media ports: that is
    // where the MPR answered the CMPH.
    for media in [MEDIA_A, MEDIA_B] {
        let answered = w
            .ladder()
            .iter()
            .any(|r| r.dst == a(media) && r.what.starts_with("CMPH success"));
        assert!(answered, "a CMPH answered at {media}");
    }

    // 1360: RTP both ways through both firewalls and the relay.
    let before = w.relay_counters().forwarded;
    for i in 0..20u8 {
        w.send(a(MEDIA_A), to_b, vec![0x80, 0, 0, i, b'a']);
        w.send(a(MEDIA_B), to_a, vec![0x80, 0, 0, i, b'b']);
        w.run_for(Duration::from_millis(20));
    }
    w.run_for(Duration::from_millis(200));
    let at_ma = payloads(&mut w, MEDIA_A);
    let at_mb = payloads(&mut w, MEDIA_B);
    assert_eq!((at_ma.len(), at_mb.len()), (20, 20));
    for (i, (pa, pb)) in at_ma.iter().zip(&at_mb).enumerate() {
        assert_eq!(pa, &[0x80, 0, 0, i as u8, b'b'], "B→A payload {i}");
        assert_eq!(pb, &[0x80, 0, 0, i as u8, b'a'], "A→B payload {i}");
    }
    assert_eq!(w.relay_counters().forwarded - before, 40);
    assert_eq!(w.mpr().stats().legs_open, 2, "one leg per side");

    // Subtract A's termination, then everything in B's context.
    let _ = exchange(&mut w, subtract(10006, 2000, "RTP/1"), at_a, &mut ga, ALG_A);
    let _ = exchange(&mut w, subtract(10007, 77, "*"), at_b, &mut gb, ALG_B);
    assert_eq!(
        w.mpr().stats().legs_open,
        0,
        "Subtract freed the relay legs"
    );
    for (id, locals) in algs.into_iter().zip([2, 1]) {
        let c = w.client_alg(id).unwrap().counters();
        let get = |n: &str| c.iter().find(|(k, _)| *k == n).unwrap().1;
        // One pinhole each; no Remote rewritten, only the Locals (A's Add
        // and Modify replies, B's Add reply).
        assert_eq!((get("pinholes"), get("sdp_rewritten")), (1, locals));
    }
    let mpr_counters = vec![(
        Protocol::H248,
        w.mpr_alg(Protocol::H248).unwrap().counters(),
    )];
    assert_eq!(counter(&mpr_counters, Protocol::H248, "teardowns"), 1);
}

#[test]
fn a_reply_repeated_while_its_cmph_runs_is_absorbed_and_one_pinhole_opens() {
    let Fig14 {
        mut w,
        mut ga,
        algs,
        ..
    } = fig14();
    let at_a = announce(&mut w, &ga, ALG_A, 1);
    let req = add(20, None);
    w.send(a(MGC), at_a, req.clone());
    w.run_for(Duration::from_millis(300));
    let (_, got) = one(&mut w, ga.at);
    assert_eq!(got, req, "the Add reaches A unchanged");
    // A repeats its reply at once: the copy arrives while CMPH runs.
    let reply = ga.answer(&req);
    w.send(ga.at, a(ALG_A), reply.clone());
    w.send(ga.at, a(ALG_A), reply.clone());
    w.run_for(Duration::from_secs(1));
    let back = payloads(&mut w, MGC);
    assert_eq!(back.len(), 1, "the copy held behind the CMPH is absorbed");
    // A third copy after the pinhole opened: the same rewritten bytes.
    w.send(ga.at, a(ALG_A), reply);
    w.run_for(Duration::from_secs(1));
    assert_eq!(
        payloads(&mut w, MGC),
        back,
        "the same pinhole, the same reply"
    );
    assert_eq!(w.client(algs[0]).stats().pinholes_opened, 1);
}
