//! Plain terminals without an APS (no CMPH at all), on the simulated
//! network: phones register through the MPR with the soft-switch, which
//! authenticates them; the MPR learns each binding from the 2xx only, routes
//! calls to the NAT binding, and the relay legs latch onto the address the
//! phone's signaling came from.
#![allow(missing_docs)]

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use pinhole_core::alg::live::{LiveMpr, NoSockets};
use pinhole_core::mpr;
use pinhole_core::wire::Protocol;
use pinhole_sip::Message;
use pinhole_sip::alg::{Mpr, MprConfig};
use pinhole_testkit::sip::{self, Request, Response};
use pinhole_testkit::{FirewallConfig, World};

const MPR: &str = "203.0.113.10:5060";
const SOFTSWITCH: &str = "192.0.2.5:5060";
const A: &str = "10.1.0.20:5060";
const B: &str = "10.2.0.20:5060";
const A_MEDIA: &str = "10.1.0.20:4000";
const B_MEDIA: &str = "10.2.0.20:6000";

fn a(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn world() -> World {
    #[allow(clippy::disallowed_methods)]
    let start = Instant::now();
    let mut mc = mpr::Config::new(ip("203.0.113.10"), [1; 32]);
    mc.control_ports = vec![5060];
    for (id, dom) in [("corp1", "corp1.example"), ("corp2", "corp2.example")] {
        let mut n = mpr::NetworkConfig::new(id, format!("{id}-secret").into_bytes());
        n.domains.push(dom.into());
        mc.networks.push(n);
    }
    let mut w = World::new(start, 4, mc);
    let c1 = w.add_corp("corp1", ip("198.51.100.1"), FirewallConfig::default());
    let c2 = w.add_corp("corp2", ip("198.51.100.2"), FirewallConfig::default());
    w.add_host(c1.zone, ip("10.1.0.20"), "A");
    w.add_host(c2.zone, ip("10.2.0.20"), "B");
    let internet = w.internet;
    w.add_host(internet, ip("192.0.2.5"), "SoftSwitch");
    w.add_host(internet, ip("192.0.2.66"), "X");
    let mut pc = MprConfig::new(a(MPR), [4; 32]);
    pc.registrar = Some(a(SOFTSWITCH));
    w.set_mpr_alg(a(MPR), Box::new(Mpr::new(pc)));
    w
}

/// The soft-switch's (or a phone's) response: Via, From, To (+tag),
/// Call-ID, CSeq and Record-Route copied, `extra` lines added.
fn respond(req: &[u8], code: u16, extra: &str, body: Option<&str>) -> Vec<u8> {
    Response::to(req, code, "Whatever")
        .tag(&format!("t{code}"))
        .record_route()
        .raw(extra)
        .sdp_opt(body)
        .build()
}

fn sdp(media: SocketAddr) -> String {
    sip::audio_sdp(media, "0", &["sendrecv"])
}

fn invite(from: &str, to_user: &str, body: &str) -> Vec<u8> {
    Request::new("INVITE", &format!("sip:{to_user}@corp2.example"))
        .via(from, "z9hG4bK-inv")
        .max_forwards(70)
        .from("<sip:alice@corp1.example>;tag=alice1")
        .to(&format!("<sip:{to_user}@corp2.example>"))
        .call_id("plain-call")
        .cseq(1)
        .contact(&format!("sip:alice@{from}"))
        .sdp(body)
        .build()
}

fn in_dialog(resp: &[u8], method: &str, cseq: u32) -> Vec<u8> {
    let mut route = sip::record_route(resp);
    route.reverse();
    Request::new(method, &format!("sip:bob@{B}"))
        .via(A, &format!("z9hG4bK-a{cseq}{method}"))
        .max_forwards(70)
        .route(&route)
        .from("<sip:alice@corp1.example>;tag=alice1")
        .to("<sip:bob@corp2.example>;tag=t200")
        .call_id("plain-call")
        .cseq(cseq)
        .build()
}

fn take(w: &mut World, at: &str) -> Vec<Vec<u8>> {
    w.take_inbox(a(at)).into_iter().map(|d| d.payload).collect()
}

fn counter(w: &World, name: &str) -> u64 {
    let c = w.mpr_alg(Protocol::Sip).unwrap().counters();
    c.iter().find(|(n, _)| *n == name).map_or(0, |(_, v)| *v)
}

/// The phone registers; the soft-switch challenges once, then accepts.
fn registered(w: &mut World, phone: &str, user: &str, domain: &str) {
    w.send(a(phone), a(MPR), sip::register(phone, user, domain, 1));
    w.run_for(Duration::from_millis(100));
    let got = take(w, SOFTSWITCH);
    assert_eq!(got.len(), 1, "the REGISTER reached the soft-switch");
    let reg = &got[0];
    let m = Message::parse(reg).unwrap();
    assert_eq!(m.vias().len(), 2, "the MPR's Via on top");
    w.send(
        a(SOFTSWITCH),
        a(MPR),
        respond(
            reg,
            401,
            "WWW-Authenticate: Digest realm=\"x\", nonce=\"n\"\r\n",
            None,
        ),
    );
    w.run_for(Duration::from_millis(100));
    let got = take(w, phone);
    assert_eq!(
        got.iter().map(|r| sip::status(r)).collect::<Vec<_>>(),
        [Some(401)]
    );
    assert_eq!(Message::parse(&got[0]).unwrap().vias().len(), 1);
    w.send(a(phone), a(MPR), sip::register(phone, user, domain, 2));
    w.run_for(Duration::from_millis(100));
    let reg = take(w, SOFTSWITCH).remove(0);
    let contact = format!("Contact: <sip:{user}@{phone}>;expires=120\r\n");
    w.send(a(SOFTSWITCH), a(MPR), respond(&reg, 200, &contact, None));
    w.run_for(Duration::from_millis(100));
    let got = take(w, phone);
    assert_eq!(
        got.iter().map(|r| sip::status(r)).collect::<Vec<_>>(),
        [Some(200)]
    );
}

#[test]
fn plain_phones_register_through_the_mpr_and_call_with_latched_media() {
    let mut w = world();
    // Before any REGISTER the MPR knows no one: corp2 has no route either.
    w.send(a(A), a(MPR), invite(A, "bob", &sdp(a(A_MEDIA))));
    w.run_for(Duration::from_millis(100));
    assert_eq!(sip::status(&take(&mut w, A)[0]), Some(480));

    registered(&mut w, A, "alice", "corp1.example");
    registered(&mut w, B, "bob", "corp2.example");
    assert_eq!(counter(&w, "bindings"), 2, "one per 2xx, none for the 401");
    assert_eq!(counter(&w, "registrations"), 4);

    // A calls bob: the INVITE goes to B's NAT binding.
    w.send(a(A), a(MPR), invite(A, "bob", &sdp(a(A_MEDIA))));
    w.run_for(Duration::from_millis(100));
    let inv = take(&mut w, B).remove(0);
    let relay_b = sip::media_of(&inv).unwrap();
    assert_eq!(relay_b.ip(), ip("203.0.113.10"));
    w.send(a(B), a(MPR), respond(&inv, 180, "", None));
    w.send(
        a(B),
        a(MPR),
        respond(
            &inv,
            200,
            &format!("Contact: <sip:bob@{B}>\r\n"),
            Some(&sdp(a(B_MEDIA))),
        ),
    );
    w.run_for(Duration::from_millis(100));
    let got = take(&mut w, A);
    assert_eq!(
        got.iter().map(|r| sip::status(r)).collect::<Vec<_>>(),
        [Some(180), Some(200)]
    );
    let relay_a = sip::media_of(&got[1]).unwrap();
    assert_eq!(relay_a.ip(), ip("203.0.113.10"));
    assert_ne!(relay_a, relay_b);
    w.send(a(A), a(MPR), in_dialog(&got[1], "ACK", 1));
    w.run_for(Duration::from_millis(100));
    assert_eq!(
        Message::parse(&take(&mut w, B)[0]).unwrap().method(),
        Some("ACK")
    );

    // A stranger cannot take the legs over: its packets are dropped, and
    // later the phones' own packets latch.
    let drops = w.relay_counters().dropped_source;
    w.send(a("192.0.2.66:7000"), relay_a, vec![0x80, 0, 0, 0, b'x']);
    w.send(a("192.0.2.66:7000"), relay_b, vec![0x80, 0, 0, 0, b'x']);
    w.run_for(Duration::from_millis(50));
    assert_eq!(w.relay_counters().dropped_source - drops, 2);

    // Symmetric RTP: each phone's first packet latches its leg.
    w.send(a(A_MEDIA), relay_a, vec![0x80, 0, 0, 0, b'p']);
    w.send(a(B_MEDIA), relay_b, vec![0x80, 0, 0, 0, b'p']);
    w.run_for(Duration::from_millis(100));
    take(&mut w, A_MEDIA);
    take(&mut w, B_MEDIA);
    for i in 1..=20u8 {
        w.send(a(A_MEDIA), relay_a, vec![0x80, 0, 0, i, b'a']);
        w.send(a(B_MEDIA), relay_b, vec![0x80, 0, 0, i, b'b']);
        w.run_for(Duration::from_millis(20));
    }
    w.run_for(Duration::from_millis(100));
    let (at_a, at_b) = (take(&mut w, A_MEDIA), take(&mut w, B_MEDIA));
    assert_eq!((at_a.len(), at_b.len()), (20, 20));
    assert!(at_b.iter().all(|p| p[4] == b'a') && at_a.iter().all(|p| p[4] == b'b'));
    assert_eq!(w.mpr().stats().latches, 2);

    // BYE frees the legs.
    w.send(a(A), a(MPR), in_dialog(&got[1], "BYE", 2));
    w.run_for(Duration::from_millis(100));
    let bye = take(&mut w, B).remove(0);
    w.send(a(B), a(MPR), respond(&bye, 200, "", None));
    w.run_for(Duration::from_millis(100));
    assert_eq!(sip::status(&take(&mut w, A)[0]), Some(200));
    assert_eq!(w.mpr().stats().legs_open, 0);
}

#[test]
fn only_the_registrars_2xx_binds_and_bindings_expire() {
    let mut w = world();
    // Refused by the soft-switch: no binding, bob stays unreachable.
    w.send(a(B), a(MPR), sip::register(B, "bob", "corp2.example", 1));
    w.run_for(Duration::from_millis(100));
    let reg = take(&mut w, SOFTSWITCH).remove(0);
    w.send(a(SOFTSWITCH), a(MPR), respond(&reg, 403, "", None));
    w.run_for(Duration::from_millis(100));
    assert_eq!(sip::status(&take(&mut w, B)[0]), Some(403));
    // A forged 200 from anyone but the registrar is dropped.
    w.send(a(B), a(MPR), sip::register(B, "bob", "corp2.example", 2));
    w.run_for(Duration::from_millis(100));
    let reg = take(&mut w, SOFTSWITCH).remove(0);
    let ok = respond(&reg, 200, "Contact: <sip:bob@x>;expires=300\r\n", None);
    w.send(a("192.0.2.66:5060"), a(MPR), ok.clone());
    w.run_for(Duration::from_millis(100));
    assert!(take(&mut w, B).is_empty());
    assert_eq!(counter(&w, "bindings"), 0);
    w.send(a(A), a(MPR), invite(A, "bob", &sdp(a(A_MEDIA))));
    w.run_for(Duration::from_millis(100));
    assert_eq!(
        sip::status(&take(&mut w, A)[0]),
        Some(480),
        "bob is not reachable"
    );

    // The registrar's own 200 binds, for the expiry it grants (120 s).
    registered(&mut w, B, "bob", "corp2.example");
    w.send(
        a(A),
        a(MPR),
        invite(A, "bob", &sdp(a(A_MEDIA))).replace_call_id("c2"),
    );
    w.run_for(Duration::from_millis(100));
    assert_eq!(take(&mut w, B).len(), 1, "bob reached at his binding");
    w.run_for(Duration::from_secs(135));
    assert_eq!(
        counter(&w, "bindings_expired"),
        1,
        "{:?}",
        w.mpr_alg(Protocol::Sip).unwrap().counters()
    );
    w.send(
        a(A),
        a(MPR),
        invite(A, "bob", &sdp(a(A_MEDIA))).replace_call_id("c3"),
    );
    w.run_for(Duration::from_millis(100));
    assert!(take(&mut w, B).is_empty(), "gone after expiry");
}

#[test]
fn foreign_domains_keepalives_and_server_options() {
    let mut w = world();
    // A REGISTER for a domain no network serves: not an open relay.
    w.send(
        a("192.0.2.66:5060"),
        a(MPR),
        sip::register("192.0.2.66:5060", "eve", "elsewhere.example", 1),
    );
    w.run_for(Duration::from_millis(100));
    assert_eq!(sip::status(&take(&mut w, "192.0.2.66:5060")[0]), Some(404));
    assert!(take(&mut w, SOFTSWITCH).is_empty());
    // RFC 5626 keepalive: a CRLF pong.
    w.send(a(A), a(MPR), b"\r\n\r\n".to_vec());
    w.run_for(Duration::from_millis(100));
    assert_eq!(take(&mut w, A), [b"\r\n".to_vec()]);
    // OPTIONS to the server passes to the soft-switch and back.
    let options = String::from_utf8(sip::register(A, "alice", "corp1.example", 5))
        .unwrap()
        .replace("REGISTER", "OPTIONS")
        .into_bytes();
    w.send(a(A), a(MPR), options);
    w.run_for(Duration::from_millis(100));
    let o = take(&mut w, SOFTSWITCH).remove(0);
    assert_eq!(Message::parse(&o).unwrap().method(), Some("OPTIONS"));
    w.send(a(SOFTSWITCH), a(MPR), respond(&o, 200, "", None));
    w.run_for(Duration::from_millis(100));
    assert_eq!(sip::status(&take(&mut w, A)[0]), Some(200));
    assert_eq!(counter(&w, "bindings"), 0, "OPTIONS binds nothing");
}

trait CallId {
    fn replace_call_id(self, id: &str) -> Vec<u8>;
}

impl CallId for Vec<u8> {
    fn replace_call_id(self, id: &str) -> Vec<u8> {
        String::from_utf8(self)
            .unwrap()
            .replace("plain-call", id)
            .into_bytes()
    }
}

mod hostile {
    //! The registrar path under hostile input: arbitrary sequences of
    //! mutated REGISTERs, registrar answers and INVITEs from any source
    //! never panic the proxy, and what it sends is SIP (or a CRLF pong).

    use super::*;
    use pinhole_core::alg::MprSignaling;
    use pinhole_core::types::Receive;
    use proptest::prelude::*;

    /// Seeds built from what the proxy really forwarded, so the
    /// registrar's answers carry a branch it knows and reach `learn`.
    fn seeds(forwarded: &[u8]) -> Vec<Vec<u8>> {
        vec![
            sip::register(A, "alice", "corp1.example", 1),
            respond(
                forwarded,
                200,
                "Contact: <sip:alice@x>;expires=60, <sip:alice@y>;expires=0\r\nExpires: 30\r\n",
                None,
            ),
            respond(forwarded, 401, "", None),
            invite(A, "alice", &sdp(a(A_MEDIA))),
            b"\r\n\r\n".to_vec(),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn the_registrar_path_never_panics(
            steps in proptest::collection::vec(
                (0usize..5, 0usize..4, proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6)),
                1..12,
            ),
        ) {
            #[allow(clippy::disallowed_methods)]
            let now = Instant::now();
            let mut mc = mpr::Config::new(ip("203.0.113.10"), [1; 32]);
            mc.control_ports = vec![5060];
            let mut n = mpr::NetworkConfig::new("corp1", b"s".to_vec());
            n.domains.push("corp1.example".into());
            mc.networks.push(n);
            let mut engine = mpr::Engine::new(mc, now).unwrap();
            let mut pc = MprConfig::new(a(MPR), [9; 32]);
            pc.registrar = Some(a(SOFTSWITCH));
            let mut proxy = Mpr::new(pc);
            let sources = [a(A), a(SOFTSWITCH), a("192.0.2.66:5060"), a("198.51.100.1:20000")];
            let reg = sip::register(A, "alice", "corp1.example", 1);
            proxy.handle_datagram(now, &mut LiveMpr::new(&mut engine, &mut NoSockets), Receive { local: a(MPR), remote: a(A), bytes: &reg, flow: Default::default() });
            let forwarded = proxy.poll_transmit().unwrap().payload;
            let seeds = seeds(&forwarded);
            // Unmutated, the 200 binds alice: the mutations start from there.
            let mut probe = Mpr::new({
                let mut pc = MprConfig::new(a(MPR), [9; 32]);
                pc.registrar = Some(a(SOFTSWITCH));
                pc
            });
            probe.handle_datagram(now, &mut LiveMpr::new(&mut engine, &mut NoSockets), Receive { local: a(MPR), remote: a(A), bytes: &reg, flow: Default::default() });
            probe.handle_datagram(now, &mut LiveMpr::new(&mut engine, &mut NoSockets), Receive { local: a(MPR), remote: a(SOFTSWITCH), bytes: &seeds[1], flow: Default::default() });
            prop_assert_eq!(probe.bindings(now), 1);
            for (i, (pick, src, edits)) in steps.into_iter().enumerate() {
                let mut m = seeds[pick].clone();
                for (at, b) in edits {
                    let at = at.index(m.len());
                    m[at] = b;
                }
                let t = now + Duration::from_secs(i as u64 * 20);
                proxy.handle_datagram(t, &mut LiveMpr::new(&mut engine, &mut NoSockets), Receive { local: a(MPR), remote: sources[src], bytes: &m, flow: Default::default() });
                proxy.handle_timeout(t, &mut LiveMpr::new(&mut engine, &mut NoSockets));
                while let Some(out) = proxy.poll_transmit() {
                    // A request that failed the parse is answered 400 with
                    // its own Via, From, To, Call-ID and CSeq lines copied
                    // as they came (RFC 3261 §8.2.6.2), broken ones too:
                    // that answer goes back to its source only.
                    let refused_garbage = out.remote == sources[src]
                        && out.payload.starts_with(b"SIP/2.0 400 ")
                        && Message::parse(&m).is_err();
                    prop_assert!(
                        out.payload == b"\r\n" || Message::parse(&out.payload).is_ok() || refused_garbage,
                        "{}", String::from_utf8_lossy(&out.payload)
                    );
                }
            }
        }
    }
}
