//! The MGCP ALGs on their own, without the simulated network: helpers,
//! call agent fallbacks, DLCX forms, byte-faithful rewriting.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pinhole_core::alg::live::{LiveClient, LiveMpr, NoSockets};
use pinhole_core::alg::txn::Leg;
use pinhole_core::alg::{ClientSignaling, MprSignaling};
use pinhole_core::client;
use pinhole_core::mpr;
use pinhole_core::patch::Patch;
use pinhole_core::types::{Receive, Transmit};
use pinhole_core::wire::Protocol;

use super::*;
use crate::parse_datagram;

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

const MPR: &str = "203.0.113.10:2727";
const CA: &str = "192.0.2.5:2727";
const APS: &str = "10.1.0.2:2727";

#[test]
fn notified_entities_and_domain_suffixes() {
    assert_eq!(entity_addr("ca@[192.0.2.5]:2727"), Some(sa(CA)));
    assert_eq!(entity_addr("ca@192.0.2.5:5678"), Some(sa("192.0.2.5:5678")));
    assert_eq!(entity_addr("192.0.2.5"), Some(sa(CA)));
    assert_eq!(
        entity_addr("ca@[2001:db8::1]:2727"),
        Some(sa("[2001:db8::1]:2727"))
    );
    assert_eq!(
        entity_addr("ca@[2001:db8::1]"),
        Some(sa("[2001:db8::1]:2727"))
    );
    assert_eq!(entity_addr("ca@ca1.example.net:2727"), None, "no DNS");
    assert_eq!(entity_addr("ca@[192.0.2.5]x"), None);
    let s: Vec<&str> = suffixes("gw1.corp1.example").collect();
    assert_eq!(s, ["gw1.corp1.example", "corp1.example", "example"]);
    assert_eq!(suffixes("x.").collect::<Vec<_>>(), ["x."]);
}

#[test]
fn dropping_piggybacked_messages_keeps_the_rest_byte_for_byte() {
    let d = b"200 1 OK\r\n.\r\n200 2 OK\r\n.\r\n200 3 OK\r\n";
    let msgs = parse_datagram(d).unwrap();
    for (drop, want) in [
        ([true, false, false], &b"200 2 OK\r\n.\r\n200 3 OK\r\n"[..]),
        ([false, true, false], b"200 1 OK\r\n.\r\n200 3 OK\r\n"),
        ([false, false, true], b"200 1 OK\r\n.\r\n200 2 OK\r\n"),
        ([true, true, false], b"200 3 OK\r\n"),
        ([false, true, true], b"200 1 OK\r\n"),
    ] {
        let mut p = Patch::new();
        assert!(drop_messages(&msgs, &drop, &mut p));
        assert_eq!(p.apply(d).unwrap(), want, "{drop:?}");
    }
    assert!(!drop_messages(&msgs, &[true; 3], &mut Patch::new()));
}

/// An MPR engine with corp1 registered from `APS` (no NAT).
fn registered() -> (Instant, mpr::Engine, client::Engine) {
    #[allow(clippy::disallowed_methods)]
    let now = Instant::now();
    let mut mc = mpr::Config::new(sa(MPR).ip(), [1; 32]);
    mc.control_ports = vec![2727];
    for id in ["corp1", "corp2"] {
        let mut n = mpr::NetworkConfig::new(id, b"s".to_vec());
        n.domains.push(format!("{id}.example"));
        mc.networks.push(n);
    }
    let mut engine = mpr::Engine::new(mc, now).unwrap();
    let cl = register(now, &mut engine, "corp1", APS);
    (now, engine, cl)
}

/// Registers network `id`'s MGCP pinhole from `aps` (no NAT).
fn register(now: Instant, engine: &mut mpr::Engine, id: &str, aps: &str) -> client::Engine {
    let cc = client::Config::new(
        id,
        b"s".to_vec(),
        Protocol::Mgcp,
        sa(aps),
        sa(MPR),
        // Each its own transaction ids.
        [id.bytes().last().unwrap_or_default(); 32],
    );
    let mut cl = client::Engine::new(cc, now).unwrap();
    cl.handle_timeout(now);
    for _ in 0..4 {
        while let Some(t) = cl.poll_transmit() {
            let _ = engine.handle_datagram(
                now,
                Receive {
                    local: t.remote,
                    remote: t.local,
                    bytes: &t.payload,
                    flow: Default::default(),
                },
            );
        }
        while let Some(t) = engine.poll_transmit() {
            let _ = cl.handle_datagram(
                now,
                Receive {
                    local: t.remote,
                    remote: t.local,
                    bytes: &t.payload,
                    flow: Default::default(),
                },
            );
        }
    }
    assert!(engine.route(id, Protocol::Mgcp).is_some());
    cl
}

fn feed(
    alg: &mut Mpr,
    now: Instant,
    e: &mut mpr::Engine,
    from: &str,
    bytes: &[u8],
) -> Vec<Transmit> {
    alg.handle_datagram(
        now,
        &mut LiveMpr::new(e, &mut NoSockets),
        Receive {
            local: sa(MPR),
            remote: sa(from),
            bytes,
            flow: Default::default(),
        },
    );
    std::iter::from_fn(|| alg.poll_transmit()).collect()
}

#[test]
fn gateway_commands_go_to_the_call_agent_or_the_notified_entity() {
    let (now, mut e, _) = registered();
    let mut cfg = MprConfig::new(sa(MPR));
    cfg.first_transaction_id = 500;
    let mut alg = Mpr::new(cfg);
    // No call agent configured: the NotifiedEntity names one. The command
    // gets an id of the MPR's; nothing else changes.
    let ntfy = b"NTFY 7 aaln/1@gw1.corp1.example MGCP 1.0\r\nN: ca@[192.0.2.9]:2727\r\nO: D/1\r\n";
    let out = feed(&mut alg, now, &mut e, APS, ntfy);
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].local, out[0].remote),
        (sa(MPR), sa("192.0.2.9:2727"))
    );
    assert_eq!(
        out[0].payload,
        b"NTFY 500 aaln/1@gw1.corp1.example MGCP 1.0\r\nN: ca@[192.0.2.9]:2727\r\nO: D/1\r\n"
    );
    // Its answer goes back into the pinhole, with the gateway's id.
    let out = feed(&mut alg, now, &mut e, "192.0.2.9:2727", b"200 500 OK\r\n");
    assert_eq!(out[0].remote, sa(APS));
    assert_eq!(out[0].payload, b"200 7 OK\r\n");
    // Neither: the gateway is answered 510.
    let out = feed(
        &mut alg,
        now,
        &mut e,
        APS,
        b"RSIP 8 *@gw1.corp1.example MGCP 1.0\r\nRM: restart\r\n",
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].remote, sa(APS));
    assert!(out[0].payload.starts_with(b"510 8 "));
    assert_eq!(alg.stats().no_call_agent, 1);
    // A response to nothing we sent is dropped and counted.
    assert!(feed(&mut alg, now, &mut e, APS, b"200 99 OK\r\n").is_empty());
    assert_eq!(alg.stats().unknown_transaction, 1);
}

/// Found by the netns bed (two example gateways, both starting at the same
/// transaction id, restarting at once): every network's commands reach the
/// call agent from the MPR's one socket, so the second RSIP looked like a
/// retransmission of the first and its answer went to the wrong network.
/// The MPR now gives each gateway command an id of its own toward the call
/// agent (its `K:` and `000` follow) and gives the answer the gateway's id
/// back.
#[test]
fn gateway_commands_are_renumbered_toward_the_call_agent() {
    let (now, mut e, _) = registered();
    const APS2: &str = "10.2.0.2:2727";
    let _cl2 = register(now, &mut e, "corp2", APS2);
    let mut cfg = MprConfig::new(sa(MPR));
    cfg.call_agent = Some(sa(CA));
    cfg.first_transaction_id = 70;
    let mut alg = Mpr::new(cfg);
    let rsip1 = b"RSIP 9000 *@gw1.corp1.example MGCP 1.0\r\nRM: restart\r\n";
    let out = feed(&mut alg, now, &mut e, APS, rsip1);
    assert_eq!((out.len(), out[0].remote), (1, sa(CA)));
    assert!(out[0].payload.starts_with(b"RSIP 70 *@gw1"), "{out:?}");
    let rsip2 = b"RSIP 9000 *@gw2.corp2.example MGCP 1.0\r\nRM: restart\r\n";
    let out = feed(&mut alg, now, &mut e, APS2, rsip2);
    assert_eq!((out.len(), out[0].remote), (1, sa(CA)), "both reach it");
    assert!(out[0].payload.starts_with(b"RSIP 71 *@gw2"), "{out:?}");
    assert_eq!(alg.stats().transactions_refused, 0);
    // Each answer goes to the network whose command it answers, with the
    // gateway's own id.
    let out = feed(&mut alg, now, &mut e, CA, b"200 71 OK\r\n");
    assert_eq!((out.len(), out[0].remote), (1, sa(APS2)));
    assert_eq!(out[0].payload, b"200 9000 OK\r\n");
    let out = feed(&mut alg, now, &mut e, CA, b"200 70 OK\r\n");
    assert_eq!((out.len(), out[0].remote), (1, sa(APS)));
    assert_eq!(out[0].payload, b"200 9000 OK\r\n");
    // A retransmission gets the same forward (same id of ours), and a
    // repeated answer the same bytes.
    let out = feed(&mut alg, now, &mut e, APS, rsip1);
    assert!(out[0].payload.starts_with(b"RSIP 70 "), "{out:?}");
    let out = feed(&mut alg, now, &mut e, CA, b"200 70 OK\r\n");
    assert_eq!(out[0].payload, b"200 9000 OK\r\n");
    // corp1's next command acknowledges the answer it got (K: 9000): the
    // call agent knows that answer as 70. An id no longer tracked drops
    // out; a list left empty loses its line.
    let ntfy = b"NTFY 9001 aaln/1@gw1.corp1.example MGCP 1.0\r\nK: 8990-9000\r\nO: L/hd\r\n";
    let out = feed(&mut alg, now, &mut e, APS, ntfy);
    assert_eq!(
        out[0].payload,
        b"NTFY 72 aaln/1@gw1.corp1.example MGCP 1.0\r\nK: 70\r\nO: L/hd\r\n"
    );
    let ntfy = b"NTFY 9002 aaln/1@gw1.corp1.example MGCP 1.0\nK: 5\nO: L/hu\n";
    let out = feed(&mut alg, now, &mut e, APS, ntfy);
    assert_eq!(
        out[0].payload,
        b"NTFY 73 aaln/1@gw1.corp1.example MGCP 1.0\nO: L/hu\n"
    );
    // The gateway's 000 for the answer to 9001 carries the id of ours.
    let out = feed(&mut alg, now, &mut e, APS, b"000 9001\r\n");
    assert_eq!((out.len(), out[0].remote), (1, sa(CA)));
    assert_eq!(out[0].payload, b"000 72\r\n");
}

#[test]
fn a_wildcard_dlcx_from_the_call_agent_tears_the_call_down() {
    let (now, mut e, _) = registered();
    let mut alg = Mpr::new(MprConfig::new(sa(MPR)));
    let crcx = b"CRCX 1 aaln/1@gw1.corp1.example MGCP 1.0\r\nC: W\r\n";
    assert_eq!(feed(&mut alg, now, &mut e, CA, crcx).len(), 1);
    let ok = b"200 1 OK\nI: 9\n\nv=0\nc=IN IP4 198.51.100.1\nm=audio 4000 RTP/AVP 0\n";
    let out = feed(&mut alg, now, &mut e, APS, ok);
    // LF line ends kept; only the address and port changed.
    let text = String::from_utf8(out[0].payload.clone()).unwrap();
    assert!(
        text.starts_with("200 1 OK\nI: 9\n\nv=0\nc=IN IP4 203.0.113.10\nm=audio "),
        "{text}"
    );
    assert_eq!(e.stats().legs_open, 2);
    assert_eq!(alg.calls(), 1);
    let dlcx = b"DLCX 2 aaln/*@gw1.corp1.example MGCP 1.0\r\n";
    assert_eq!(feed(&mut alg, now, &mut e, CA, dlcx).len(), 1);
    assert_eq!(e.stats().legs_open, 0);
    assert_eq!((alg.calls(), alg.stats().teardowns), (0, 1));
}

#[test]
fn transactions_and_calls_expire() {
    let (now, mut e, _) = registered();
    let mut cfg = MprConfig::new(sa(MPR));
    cfg.max_transactions = 1;
    let mut alg = Mpr::new(cfg);
    let crcx = b"CRCX 1 aaln/1@gw1.corp1.example MGCP 1.0\r\nC: T\r\n";
    assert_eq!(feed(&mut alg, now, &mut e, CA, crcx).len(), 1);
    // The table is full: 409.
    let out = feed(
        &mut alg,
        now,
        &mut e,
        CA,
        b"AUEP 2 aaln/1@gw1.corp1.example MGCP 1.0\r\n",
    );
    assert!(out[0].payload.starts_with(b"409 2 "));
    assert_eq!(alg.stats().transactions_refused, 1);
    // A CRCX never answered: its transaction and call go in time.
    let t = alg.poll_timeout().unwrap();
    alg.handle_timeout(
        t + Duration::from_secs(200),
        &mut LiveMpr::new(&mut e, &mut NoSockets),
    );
    assert_eq!((alg.transactions(), alg.calls()), (0, 0));
    assert_eq!(alg.stats().expired, 1);
}

#[test]
fn the_aps_answers_for_unknown_endpoints_and_refuses_unregistered_commands() {
    #[allow(clippy::disallowed_methods)]
    let now = Instant::now();
    let cc = client::Config::new(
        "corp1",
        b"s".to_vec(),
        Protocol::Mgcp,
        sa(APS),
        sa(MPR),
        [2; 32],
    );
    let mut cl = client::Engine::new(cc, now).unwrap();
    let mut pc = ApsConfig::new(
        sa(APS),
        sa(APS).ip(),
        pinhole_core::ports::PortRange::new(20_000, 20_099).unwrap(),
        [3; 32],
    );
    pc.gateways
        .push(("gw1.corp1.example".into(), sa("10.1.0.10:2427")));
    let mut aps = Aps::new(pc);
    let mut feed = |from: &str, bytes: &[u8]| {
        aps.handle_datagram(
            now,
            &mut LiveClient::new(&mut cl, &mut NoSockets),
            Receive {
                local: sa(APS),
                remote: sa(from),
                bytes,
                flow: Default::default(),
            },
        );
        std::iter::from_fn(|| aps.poll_transmit()).collect::<Vec<_>>()
    };
    let out = feed(MPR, b"CRCX 1 aaln/1@gw9.corp1.example MGCP 1.0\r\nC: X\r\n");
    assert!(out[0].payload.starts_with(b"500 1 "));
    // An endpoint named by address needs no configuration.
    let out = feed(MPR, b"AUEP 2 aaln/1@[10.1.0.11]:2427 MGCP 1.0\r\n");
    assert_eq!(out[0].remote, sa("10.1.0.11:2427"));
    let out = feed(MPR, b"AUEP 3 aaln/1@gw1.corp1.example MGCP 1.0\r\n");
    assert_eq!(out[0].remote, sa("10.1.0.10:2427"));
    // Not registered with the MPR yet: a gateway's command gets 400.
    let out = feed(
        "10.1.0.10:2427",
        b"NTFY 9 aaln/1@gw1.corp1.example MGCP 1.0\r\n",
    );
    assert_eq!(out[0].remote, sa("10.1.0.10:2427"));
    assert!(out[0].payload.starts_with(b"400 9 "));
    assert_eq!(aps.stats().unknown_endpoint, 1);
}

/// The relay address written into a forwarded message's SDP.
fn relay_in(t: &Transmit) -> SocketAddr {
    let m = crate::Message::parse(&t.payload).unwrap();
    let sdp = m.sdp().unwrap().unwrap();
    sdp.endpoints(sa(MPR).ip()).unwrap()[0].addr
}

#[test]
fn two_connections_on_one_endpoint_each_reach_their_own_public_party() {
    // A media gateway's bridge endpoint (osmo-mgw's rtpbridge) with two
    // connections in one call, each toward its own public phone: each
    // connection gets its own relay legs, neither overwrites the other.
    let (now, mut e, _) = registered();
    let mut alg = Mpr::new(MprConfig::new(sa(MPR)));
    let ep = "rtpbridge/1@mgw.corp1.example";
    let crcx = |txid: u32, port: u16| {
        format!(
            "CRCX {txid} {ep} MGCP 1.0\r\nC: B1\r\nM: sendrecv\r\n\r\nv=0\r\n\
             c=IN IP4 192.0.2.21\r\nm=audio {port} RTP/AVP 0\r\n"
        )
    };
    let ok = |txid: u32, conn: &str, port: u16| {
        format!(
            "200 {txid} OK\r\nI: {conn}\r\n\r\nv=0\r\nc=IN IP4 198.51.100.1\r\n\
             m=audio {port} RTP/AVP 0\r\n"
        )
    };
    let mut toward_phone = Vec::new();
    let mut toward_gw = Vec::new();
    for (txid, phone, conn, gw) in [(1, 5000, "C1", 4000), (2, 5002, "C2", 4002)] {
        let out = feed(&mut alg, now, &mut e, CA, crcx(txid, phone).as_bytes());
        assert_eq!(out.len(), 1);
        toward_phone.push(relay_in(&out[0]));
        let out = feed(&mut alg, now, &mut e, APS, ok(txid, conn, gw).as_bytes());
        assert_eq!(out[0].remote, sa(CA));
        toward_gw.push(relay_in(&out[0]));
    }
    assert_ne!(toward_phone[0], toward_phone[1]);
    assert_ne!(toward_gw[0], toward_gw[1]);
    assert_eq!(e.stats().legs_open, 4);
    assert_eq!(alg.calls(), 2);
    // An MDCX of connection 2 keeps to its own legs.
    let mdcx = format!(
        "MDCX 3 {ep} MGCP 1.0\r\nC: B1\r\nI: C2\r\n\r\nv=0\r\nc=IN IP4 192.0.2.21\r\n\
         m=audio 5002 RTP/AVP 0\r\n"
    );
    let out = feed(&mut alg, now, &mut e, CA, mdcx.as_bytes());
    assert_eq!(relay_in(&out[0]), toward_phone[1]);
    assert_eq!(e.stats().legs_open, 4);
    // DLCX of connection 1 frees its legs only, of the endpoint the rest.
    let dlcx = format!("DLCX 4 {ep} MGCP 1.0\r\nC: B1\r\nI: C1\r\n");
    feed(&mut alg, now, &mut e, CA, dlcx.as_bytes());
    assert_eq!((e.stats().legs_open, alg.calls()), (2, 1));
    let dlcx = format!("DLCX 5 {ep} MGCP 1.0\r\nC: B1\r\n");
    feed(&mut alg, now, &mut e, CA, dlcx.as_bytes());
    assert_eq!((e.stats().legs_open, alg.calls()), (0, 0));
    assert_eq!(alg.stats().plan_errors, 0);
}

#[test]
fn a_call_the_engine_forgot_is_offered_again() {
    // The engine drops a call whose legs saw nothing for `leg_inactivity`
    // while the call agent still holds it: the next description of the
    // call is offered afresh (a modification would be refused), and the
    // call is reported anchored again.
    let (now, mut e, _) = registered();
    const APS2: &str = "10.2.0.2:2727";
    let _cl2 = register(now, &mut e, "corp2", APS2);
    let mut alg = Mpr::new(MprConfig::new(sa(MPR)));
    let crcx = b"CRCX 1 aaln/1@gw1.corp1.example MGCP 1.0\r\nC: F\r\n";
    feed(&mut alg, now, &mut e, CA, crcx);
    let ok = b"200 1 OK\r\nI: 9\r\n\r\nv=0\r\nc=IN IP4 198.51.100.1\r\nm=audio 4000 RTP/AVP 0\r\n";
    let r1 = relay_in(&feed(&mut alg, now, &mut e, APS, ok)[0]);
    let call = pinhole_core::types::CallKey::new("mgcp/192.0.2.5/F");
    let events = |alg: &mut Mpr| std::iter::from_fn(|| alg.poll_event()).collect::<Vec<_>>();
    assert_eq!(
        events(&mut alg)[0],
        pinhole_core::alg::AlgEvent::CallAnchored { call: call.clone() }
    );
    let later = now + Duration::from_secs(90);
    e.handle_timeout(later);
    while e.poll_command().is_some() {}
    assert_eq!(e.stats().legs_open, 0, "the engine forgot the call");
    // B is offered A's relay address: A's description is planned again
    // toward corp2, as a new call at the engine.
    let crcx = format!(
        "CRCX 2 aaln/1@gw2.corp2.example MGCP 1.0\r\nC: F\r\n\r\nv=0\r\nc=IN IP4 {}\r\n\
         m=audio {} RTP/AVP 0\r\n",
        r1.ip(),
        r1.port()
    );
    let out = feed(&mut alg, later, &mut e, CA, crcx.as_bytes());
    assert_eq!(out[0].remote, sa(APS2));
    let r1_again = relay_in(&out[0]);
    assert_eq!(r1_again.ip(), sa(MPR).ip());
    assert_eq!(e.stats().legs_open, 2, "planned afresh: both legs again");
    assert_eq!(alg.stats().plan_errors, 0);
    let ev = events(&mut alg);
    assert_eq!(
        ev,
        [
            pinhole_core::alg::AlgEvent::CallAnchored { call: call.clone() },
            pinhole_core::alg::AlgEvent::MediaPlanned { call, streams: 1 },
        ]
    );
}

#[test]
fn a_piggybacked_message_for_another_place_is_answered_and_cut_out() {
    // One datagram goes on to one place (RFC 3435 §3.6 keeps a
    // piggybacked datagram whole): the MPR sends the messages for the
    // first one's network, answers a command for another network 510 and
    // cuts it out.
    let (now, mut e, _) = registered();
    const APS2: &str = "10.2.0.2:2727";
    let _cl2 = register(now, &mut e, "corp2", APS2);
    let mut alg = Mpr::new(MprConfig::new(sa(MPR)));
    let d = b"RQNT 1 aaln/1@gw1.corp1.example MGCP 1.0\r\nX: 1\r\n.\r\n\
        RQNT 2 aaln/1@gw2.corp2.example MGCP 1.0\r\nX: 2\r\n.\r\n\
        AUEP 3 aaln/2@gw1.corp1.example MGCP 1.0\r\n";
    let sent = b"RQNT 1 aaln/1@gw1.corp1.example MGCP 1.0\r\nX: 1\r\n.\r\n\
        AUEP 3 aaln/2@gw1.corp1.example MGCP 1.0\r\n";
    let out = feed(&mut alg, now, &mut e, CA, d);
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(
        (out[0].remote, out[0].payload.as_slice()),
        (sa(CA), &b"510 2 Messages for different networks\r\n"[..])
    );
    assert_eq!(
        (out[1].remote, out[1].payload.as_slice()),
        (sa(APS), &sent[..])
    );
    // A retransmission of the datagram starts with the same command: what
    // was sent on for it goes again, under the first command's transaction.
    let out = feed(&mut alg, now, &mut e, CA, d);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(
        (out[0].remote, out[0].payload.as_slice()),
        (sa(APS), &sent[..])
    );
    assert_eq!(alg.stats().retransmissions, 1);
    assert_eq!(Dir::of(Dir::Down, Leg::Response), Dir::Up);
    assert_eq!(Dir::of(Dir::Up, Leg::Request), Dir::Up);
}
