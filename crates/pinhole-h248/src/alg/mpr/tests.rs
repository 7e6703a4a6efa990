//! The MPR's H.248 ALG on its own, with a real MPR engine and two
//! networks registered without NAT: gateway ports, routing, the Fig. 13
//! media ladder at the MPR, retransmissions, teardown, refusals.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pinhole_core::alg::live::{LiveMpr, NoSockets, register_direct};
use pinhole_core::alg::{AlgEvent, MprSignaling};
use pinhole_core::client;
use pinhole_core::mpr;
use pinhole_core::types::{Receive, Transmit};
use pinhole_core::wire::Protocol;

use super::*;
use crate::alg::untag;

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

const MPR: &str = "203.0.113.10:2944";
const MGC: &str = "192.0.2.5:2944";
const APS1: &str = "10.1.0.2:2944";
const APS2: &str = "10.2.0.2:2944";
const MG1: &str = "[10.1.0.10]:2944";
const MG2: &str = "[10.2.0.10]:2944";

/// Registers network `id`'s H.248 pinhole from `aps` (no NAT).
fn register(now: Instant, engine: &mut mpr::Engine, id: &str, aps: &str) -> client::Engine {
    let cc = client::Config::new(
        id,
        b"s".to_vec(),
        Protocol::H248,
        sa(aps),
        sa(MPR),
        [id.bytes().last().unwrap_or_default(); 32],
    );
    let mut cl = client::Engine::new(cc, now).unwrap();
    assert!(register_direct(now, engine, &mut cl));
    cl
}

fn rx(local: SocketAddr, remote: SocketAddr, bytes: &[u8]) -> Receive<'_> {
    Receive {
        local,
        remote,
        bytes,
        flow: Default::default(),
    }
}

struct Bed {
    now: Instant,
    engine: mpr::Engine,
    alg: Mpr,
    _clients: Vec<client::Engine>,
}

impl Bed {
    fn new() -> Self {
        #[allow(clippy::disallowed_methods)]
        let now = Instant::now();
        let mut mc = mpr::Config::new(sa(MPR).ip(), [1; 32]);
        mc.control_ports = vec![2944];
        for id in ["corp1", "corp2"] {
            mc.networks.push(mpr::NetworkConfig::new(id, b"s".to_vec()));
        }
        let mut engine = mpr::Engine::new(mc, now).unwrap();
        let c1 = register(now, &mut engine, "corp1", APS1);
        let c2 = register(now, &mut engine, "corp2", APS2);
        let alg = Mpr::new(MprConfig::new(sa(MPR), sa(MGC), 2950..=2951));
        Self {
            now,
            engine,
            alg,
            _clients: vec![c1, c2],
        }
    }

    fn feed(&mut self, local: SocketAddr, from: &str, bytes: &[u8]) -> Vec<Transmit> {
        self.alg.handle_datagram(
            self.now,
            &mut LiveMpr::new(&mut self.engine, &mut NoSockets),
            rx(local, sa(from), bytes),
        );
        std::iter::from_fn(|| self.alg.poll_transmit()).collect()
    }

    /// From a network's pinhole to the MPR's H.248 socket.
    fn net_sends(&mut self, aps: &str, bytes: &[u8]) -> Vec<Transmit> {
        self.feed(sa(MPR), aps, bytes)
    }

    /// From the MGC to gateway `mid`'s port.
    fn mgc_sends(&mut self, mid: &str, bytes: &[u8]) -> Vec<Transmit> {
        let at = self.alg.gateway_address(mid).expect("gateway known");
        self.feed(at, MGC, bytes)
    }
}

fn service_change(mid: &str, id: u32) -> Vec<u8> {
    format!(
        "MEGACO/1 {mid}\r\nTransaction = {id} {{\r\n  Context = - {{\r\n    ServiceChange = ROOT {{Services {{Method = Restart, Profile = ResGW/1}}}}\r\n  }}\r\n}}\r\n"
    )
    .into_bytes()
}

fn sc_reply(id: u32) -> Vec<u8> {
    format!("MEGACO/1 [192.0.2.5]:2944\r\nReply = {id} {{\r\n  Context = - {{ServiceChange = ROOT {{Services {{Profile = ResGW/1}}}}}}\r\n}}\r\n").into_bytes()
}

/// The MGC's Add of a new RTP termination in a new context, with CHOOSE
/// in Local and, optionally, the other side's media in Remote.
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

/// A gateway's reply to an Add: context `ctx`, termination RTP/1, its
/// media at `local`.
fn add_reply(mid: &str, id: u32, ctx: u32, local: SocketAddr) -> Vec<u8> {
    format!(
        "MEGACO/1 {mid}\r\nReply = {id} {{\r\n  Context = {ctx} {{\r\n    Add = RTP/1 {{\r\n      Media {{\r\n        Stream = 1 {{\r\n          Local {{\r\nv=0\r\no=- 2890844526 2890842807 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\n          }}\r\n        }}\r\n      }}\r\n    }}\r\n  }}\r\n}}\r\n",
        ip = local.ip(),
        port = local.port()
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

fn subtract(id: u32, ctx: &str, term: &str) -> Vec<u8> {
    format!("MEGACO/1 [192.0.2.5]:2944\r\nTransaction = {id} {{\r\n  Context = {ctx} {{\r\n    Subtract = {term}\r\n  }}\r\n}}\r\n").into_bytes()
}

fn reply_ok(mid: &str, id: u32, ctx: u32, cmd: &str) -> Vec<u8> {
    format!("MEGACO/1 {mid}\r\nReply = {id} {{\r\n  Context = {ctx} {{ {cmd} = RTP/1 }}\r\n}}\r\n")
        .into_bytes()
}

/// The first endpoint of the first `which` group of the message's first
/// command.
fn media_of(payload: &[u8], which: Which) -> SocketAddr {
    let msg = crate::parse(payload).unwrap();
    let item = &msg.items()[0];
    let actions = match item {
        Item::Request(r) => &r.actions,
        Item::Reply(r) => &r.actions,
        _ => panic!("no actions"),
    };
    let cmd = &actions[0].commands[0];
    let d = Described::read(&msg, cmd, which, sa(MGC).ip()).unwrap();
    d.enabled()[0].addr
}

use crate::alg::streams::{Described, Which};

/// Both gateways announced, each through its network's pinhole.
fn announced() -> Bed {
    let mut b = Bed::new();
    for (aps, mid, id) in [(APS1, MG1, 9998), (APS2, MG2, 50001)] {
        let sc = service_change(mid, id);
        let out = b.net_sends(aps, &sc);
        assert_eq!(out.len(), 1);
        let at = b.alg.gateway_address(mid).unwrap();
        assert_eq!((out[0].local, out[0].remote), (at, sa(MGC)));
        assert_eq!(out[0].payload, sc, "passes byte for byte");
        // The MGC's reply to that port goes into the gateway's pinhole,
        // with the line naming it.
        let out = b.mgc_sends(mid, &sc_reply(id));
        assert_eq!((out[0].local, out[0].remote), (sa(MPR), sa(aps)));
        assert_eq!(untag(&out[0].payload), Some((mid, &sc_reply(id)[..])));
    }
    assert_eq!(b.alg.gateways(), 2);
    assert_ne!(b.alg.gateway_address(MG1), b.alg.gateway_address(MG2));
    b
}

#[test]
fn each_gateway_gets_a_port_of_its_own_and_the_mgc_is_routed_into_its_pinhole() {
    let mut b = announced();
    // A third gateway: no port is left (two configured).
    let out = b.net_sends(APS1, &service_change("<mg3.corp1>", 7));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].remote, sa(APS1));
    let (mid, body) = untag(&out[0].payload).unwrap();
    assert_eq!(mid, "<mg3.corp1>");
    assert!(
        body.windows(5).any(|w| w == b"= 510"),
        "{}",
        String::from_utf8_lossy(body)
    );
    assert_eq!(b.alg.stats().mgs_refused, 1);
    // corp2 claims corp1's gateway: 402, nothing to the MGC.
    let out = b.net_sends(APS2, &service_change(MG1, 8));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].remote, sa(APS2));
    assert!(out[0].payload.windows(5).any(|w| w == b"= 402"));
    assert_eq!(b.alg.stats().mid_conflicts, 1);
    // Only the MGC may talk to a gateway's port.
    let at = b.alg.gateway_address(MG1).unwrap();
    assert!(b.feed(at, "198.51.100.7:2944", &add(1, None)).is_empty());
    assert_eq!(b.alg.stats().unknown_source, 1);
    // A message from no registered pinhole is dropped.
    assert!(
        b.feed(sa(MPR), "198.51.100.7:2944", &service_change("<x>", 1))
            .is_empty()
    );
    assert_eq!(b.alg.stats().unknown_source, 2);
}

/// Fig. 13 at the MPR: Add to MG1, its Local becomes a relay address;
/// Add to MG2 with that address in Remote joins MG2's termination to the
/// call; MG2's Local becomes a relay address; Modify to MG1 with it.
#[test]
fn the_fig13_ladder_anchors_one_call_and_subtract_frees_it() {
    let mut b = announced();
    // 1210: Add to MG1, CHOOSE only: passes unchanged (tagged).
    let a1 = add(10003, None);
    let out = b.mgc_sends(MG1, &a1);
    assert_eq!(out.len(), 1);
    assert_eq!(untag(&out[0].payload).unwrap().1, &a1[..]);
    // 1235: MG1's answer, its media rewritten to a relay address.
    let m1 = sa("10.1.0.10:4000");
    let r1 = add_reply(MG1, 10003, 2000, m1);
    let out = b.net_sends(APS1, &r1);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].remote, sa(MGC));
    let ra = media_of(&out[0].payload, Which::Local);
    assert_eq!(ra.ip(), sa(MPR).ip());
    let expected = String::from_utf8(r1.clone())
        .unwrap()
        .replace("c=IN IP4 10.1.0.10", &format!("c=IN IP4 {}", ra.ip()))
        .replace("m=audio 4000", &format!("m=audio {}", ra.port()));
    assert_eq!(String::from_utf8(out[0].payload.clone()).unwrap(), expected);
    // 1240: Add to MG2 with MG1's relay address: MG2 joins the call.
    let a2 = add(20001, Some(ra));
    let out = b.mgc_sends(MG2, &a2);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].remote, sa(APS2));
    let (mid, body) = untag(&out[0].payload).unwrap();
    assert_eq!(mid, MG2);
    let toward2 = media_of(body, Which::Remote);
    assert_eq!(toward2.ip(), sa(MPR).ip());
    let first_a2 = out[0].payload.clone();
    // A retransmission of it: the same bytes, nothing planned again.
    let out = b.mgc_sends(MG2, &a2);
    assert_eq!(out[0].payload, first_a2);
    assert_eq!(b.alg.stats().retransmissions, 1);
    // 1265: MG2's answer.
    let m2 = sa("10.2.0.10:6000");
    let out = b.net_sends(APS2, &add_reply(MG2, 20001, 77, m2));
    let rb = media_of(&out[0].payload, Which::Local);
    assert_eq!(rb.ip(), sa(MPR).ip());
    assert_ne!(rb, ra);
    // 1270: Modify to MG1 with MG2's relay address.
    let out = b.mgc_sends(MG1, &modify(10004, 2000, rb));
    let (_, body) = untag(&out[0].payload).unwrap();
    let toward1 = media_of(body, Which::Remote);
    assert_eq!(toward1.ip(), sa(MPR).ip());
    assert_eq!(b.alg.calls(), 1, "one call, two terminations");
    assert!(b.engine.port_usage().1 > 0, "relay legs in use");
    let events = std::iter::from_fn(|| b.alg.poll_event()).collect::<Vec<_>>();
    assert!(matches!(
        events.first(),
        Some(AlgEvent::CallAnchored { .. })
    ));
    // Subtract MG1's termination, then every termination of MG2's context.
    let out = b.mgc_sends(MG1, &subtract(10005, "2000", "RTP/1"));
    assert_eq!(
        untag(&out[0].payload).unwrap().1,
        &subtract(10005, "2000", "RTP/1")[..]
    );
    assert_eq!(b.alg.calls(), 1, "MG2's termination still holds it");
    let _ = b.mgc_sends(MG2, &subtract(20002, "77", "*"));
    assert_eq!(b.alg.calls(), 0);
    assert_eq!(b.alg.stats().teardowns, 1);
    assert_eq!(b.engine.port_usage().1, 0, "every relay port back");
    let events = std::iter::from_fn(|| b.alg.poll_event()).collect::<Vec<_>>();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, AlgEvent::CallEnded { .. }))
    );
}

#[test]
fn a_failed_add_frees_what_it_created_and_unanswered_adds_expire() {
    let mut b = announced();
    // An Add with a public party's media: planned at once.
    let out = b.mgc_sends(MG1, &add(300, Some(sa("198.51.100.20:7000"))));
    let (_, body) = untag(&out[0].payload).unwrap();
    assert_eq!(media_of(body, Which::Remote).ip(), sa(MPR).ip());
    assert!(b.engine.port_usage().1 > 0, "relay legs in use");
    // The gateway refuses it: the call goes.
    let err = format!("MEGACO/1 {MG1}\r\nReply = 300 {{\r\n  Error = 510 {{\"no DSP\"}}\r\n}}\r\n");
    let out = b.net_sends(APS1, err.as_bytes());
    assert_eq!(out.len(), 1, "the error goes on to the MGC");
    assert_eq!(b.alg.calls(), 0);
    assert_eq!(b.engine.port_usage().1, 0);
    // Another, never answered: gone after the transaction timeout.
    let _ = b.mgc_sends(MG1, &add(301, Some(sa("198.51.100.20:7002"))));
    assert_eq!(b.alg.calls(), 1);
    let later = b.now + Duration::from_secs(31);
    b.now = later;
    b.alg
        .handle_timeout(later, &mut LiveMpr::new(&mut b.engine, &mut NoSockets));
    assert_eq!(b.alg.calls(), 0);
    assert_eq!(b.alg.transactions(), 0);
}

#[test]
fn replies_to_nothing_and_unreadable_media_are_refused_or_dropped() {
    let mut b = announced();
    // A reply to no request of the MGC's.
    assert!(
        b.net_sends(APS1, &reply_ok(MG1, 4242, 1, "Modify"))
            .is_empty()
    );
    assert_eq!(b.alg.stats().unknown_transaction, 1);
    // An MGC request whose Remote cannot be read: 400 to the MGC, nothing
    // to the gateway.
    let bad = b"MEGACO/1 [192.0.2.5]:2944\r\nTransaction = 5 {\r\n  Context = 1 {\r\n    Modify = RTP/1 {\r\n      Media { Remote {\r\nv=0\r\nc=IN IP4 192.0.2.9\r\nm=audio notaport RTP/AVP 0\r\n} }\r\n    }\r\n  }\r\n}\r\n";
    let out = b.mgc_sends(MG1, bad);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].remote, sa(MGC));
    assert!(out[0].payload.windows(5).any(|w| w == b"= 400"));
    assert_eq!(b.alg.stats().sdp_errors, 1);
    // Garbage: dropped and counted.
    assert!(b.net_sends(APS1, b"\x00\x01garbage").is_empty());
    assert_eq!(b.alg.stats().malformed, 1);
}

/// SDPs the ALG cannot read (issue 18): a junk line, no `v=`, a bad port
/// on a second `m=`, a port beyond 65535.
fn unreadable_sdps(ip: &str, port: u16) -> Vec<(&'static str, String)> {
    let ok = format!(
        "v=0\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\nm=video {} RTP/AVP 96\r\n",
        port + 2
    );
    vec![
        ("junk line", ok.replace("t=0 0\r\n", "t=0 0\r\njunk\r\n")),
        ("no v=", ok.replace("v=0\r\n", "")),
        (
            "bad second port",
            ok.replace(&format!("m=video {}", port + 2), "m=video 4x002"),
        ),
        (
            "port beyond 65535",
            ok.replace(&format!("m=audio {port}"), "m=audio 70000"),
        ),
    ]
}

#[test]
fn an_mgc_add_whose_remote_cannot_be_read_is_refused_400_and_plans_nothing() {
    let mut b = announced();
    for (n, (what, sdp)) in unreadable_sdps("198.51.100.20", 7000)
        .into_iter()
        .enumerate()
    {
        let id = 400 + n as u32;
        let good = String::from_utf8(add(id, Some(sa("198.51.100.20:7000")))).unwrap();
        let bad = good.replace(
            "v=0\r\nc=IN IP4 198.51.100.20\r\nm=audio 7000 RTP/AVP 0\r\n",
            &sdp,
        );
        assert_ne!(bad, good, "{what}");
        let out = b.mgc_sends(MG1, bad.as_bytes());
        assert_eq!(out.len(), 1, "{what}: only the error");
        assert_eq!(out[0].remote, sa(MGC), "{what}");
        let text = String::from_utf8_lossy(&out[0].payload);
        assert!(text.contains(&format!("Reply = {id}")), "{what}: {text}");
        assert!(text.contains("Error = 400"), "{what}: {text}");
        assert_eq!(b.alg.stats().sdp_errors, n as u64 + 1, "{what}");
        assert_eq!(b.engine.port_usage().1, 0, "{what}: no relay leg");
        assert_eq!(b.alg.calls(), 0, "{what}");
    }
}

#[test]
fn a_gateway_reply_whose_local_cannot_be_read_is_dropped_not_forwarded() {
    let mut b = announced();
    let out = b.mgc_sends(MG1, &add(500, None));
    assert_eq!(out.len(), 1, "the Add goes in");
    let good = String::from_utf8(add_reply(MG1, 500, 11, sa("10.1.0.10:4000"))).unwrap();
    for (n, (what, sdp)) in unreadable_sdps("10.1.0.10", 4000).into_iter().enumerate() {
        let bad = good.replace(
            "v=0\r\no=- 2890844526 2890842807 IN IP4 10.1.0.10\r\ns=-\r\nc=IN IP4 10.1.0.10\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n",
            &sdp,
        );
        assert_ne!(bad, good, "{what}");
        let out = b.net_sends(APS1, bad.as_bytes());
        assert!(out.is_empty(), "{what}: nothing to the MGC: {out:?}");
        assert_eq!(b.alg.stats().sdp_errors, n as u64 + 1, "{what}");
    }
    // The readable reply goes on with a relay address in Local.
    let out = b.net_sends(APS1, good.as_bytes());
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].remote, sa(MGC));
    assert_eq!(media_of(&out[0].payload, Which::Local).ip(), sa(MPR).ip());
}

#[test]
fn an_unreadable_reply_is_cut_out_and_the_rest_of_its_message_goes_on() {
    let mut b = announced();
    b.mgc_sends(MG1, &add(600, None));
    let bad = String::from_utf8(add_reply(MG1, 600, 12, sa("10.1.0.10:4000")))
        .unwrap()
        .replace("m=audio 4000", "m=audio 4x00");
    // The gateway's own Notify after it, in the same message.
    let notify = format!(
        "{bad}Transaction = 77 {{\r\n  Context = 12 {{\r\n    Notify = RTP/1 {{ObservedEvents = 1 {{al/of}}}}\r\n  }}\r\n}}\r\n"
    );
    let out = b.net_sends(APS1, notify.as_bytes());
    assert_eq!(out.len(), 1, "the Notify goes on");
    let text = String::from_utf8_lossy(&out[0].payload);
    assert!(!text.contains("Reply = 600"), "{text}");
    assert!(text.contains("Transaction = 77"), "{text}");
    assert!(!text.contains("IN IP4 10.1.0.10"), "{text}");
    assert_eq!(b.alg.stats().sdp_errors, 1);
    // The Add stays unanswered: what it created goes when it expires.
    let later = b.now + Duration::from_secs(31);
    b.now = later;
    b.alg
        .handle_timeout(later, &mut LiveMpr::new(&mut b.engine, &mut NoSockets));
    assert_eq!(b.alg.calls(), 0);
    assert_eq!(b.engine.port_usage().1, 0);
}
