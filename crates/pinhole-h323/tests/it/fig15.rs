//! Fig. 15 on the simulated network: an APS in each network
//! ([`Client`]), the MPR running [`Mpr`], plain H.323 terminals behind
//! each firewall whose messages rasn's encoder builds. Setup through both
//! APSs and the MPR, H.245 on its own connections (every one opened
//! toward the MPR), CMPH before each OLC and OLC Ack leaves its network,
//! RTP both ways through both firewalls and the relay, release frees
//! everything. Also with fastStart, and with H.245 tunneled.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use pinhole_core::client;
use pinhole_core::mpr;
use pinhole_core::ports::PortRange;
use pinhole_core::wire::Protocol;
use pinhole_h323::alg::{Client, ClientConfig, Mpr, MprConfig};
use pinhole_h323::signal::Signal;
use pinhole_h323_oracle::{
    Kind, access, build as b, decode_h245, decode_user_information, inspect,
};
use pinhole_testkit::ladder::{Step, check_ladder, step};
use pinhole_testkit::{ClientId, FirewallConfig, World};

const MPR_IP: &str = "203.0.113.10";
const MPR: &str = "203.0.113.10:1720";
const FW1: &str = "198.51.100.1";
const FW2: &str = "198.51.100.2";
const APS1: &str = "10.1.0.2:1720";
const APS2: &str = "10.2.0.2:1720";
const A_SIG: &str = "10.1.0.10:1720";
const A_H245: &str = "10.1.0.10:1300";
const A_RTP: &str = "10.1.0.10:5000";
const A_RTCP: &str = "10.1.0.10:5001";
const B_SIG: &str = "10.2.0.10:1720";
const B_H245: &str = "10.2.0.10:1400";
const B_RTP: &str = "10.2.0.10:6000";
const B_RTCP: &str = "10.2.0.10:6001";

const GUID: [u8; 16] = [0x15; 16];
const CONF: [u8; 16] = [0x16; 16];
const CRV_A: u16 = 0x0202;

fn a(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Names H.323 frames on the ladder: `H.225 setup`, `H.245 openLogicalChannel`.
fn namer(d: &[u8]) -> Option<String> {
    let payload = pinhole_h323::q931::tpkt_payload(d).ok()?;
    if let Ok(s) = Signal::call_signaling(payload) {
        return Some(format!("H.225 {}", s.name()));
    }
    Signal::h245(payload)
        .ok()
        .map(|s| format!("H.245 {}", s.name()))
}

fn name(s: SocketAddr) -> String {
    match s.ip().to_string().as_str() {
        MPR_IP => "MPR",
        FW1 | "10.1.0.2" => "APS1",
        FW2 | "10.2.0.2" => "APS2",
        "10.1.0.10" => "A",
        "10.2.0.10" => "B",
        _ => "?",
    }
    .to_owned()
}

struct Bed {
    w: World,
    aps: [ClientId; 2],
}

fn bed() -> Bed {
    #[allow(clippy::disallowed_methods)]
    let start = Instant::now();
    let mut mc = mpr::Config::new(ip(MPR_IP), [1; 32]);
    mc.control_ports = vec![1720];
    for id in ["corp1", "corp2"] {
        mc.networks.push(mpr::NetworkConfig::new(
            id,
            format!("{id}-secret").into_bytes(),
        ));
    }
    let mut w = World::new(start, 15, mc);
    w.set_namer(namer);
    let c1 = w.add_corp("corp1", ip(FW1), FirewallConfig::default());
    let c2 = w.add_corp("corp2", ip(FW2), FirewallConfig::default());
    w.add_host(c1.zone, ip("10.1.0.2"), "APS1");
    w.add_host(c1.zone, ip("10.1.0.10"), "A");
    w.add_host(c2.zone, ip("10.2.0.2"), "APS2");
    w.add_host(c2.zone, ip("10.2.0.10"), "B");
    let pool: Vec<SocketAddr> = (1730..1734)
        .map(|p| SocketAddr::new(ip(MPR_IP), p))
        .collect();
    w.set_mpr_alg(
        a(MPR),
        Box::new(Mpr::new(MprConfig::new(a(MPR), pool.clone(), [2; 32]))),
    );
    for p in pool {
        w.listen_mpr_alg(a(MPR), p);
    }
    let mut aps = Vec::new();
    for (net, sig, media, seed, terminal) in [
        ("corp1", APS1, "10.1.0.2", 3u8, ("alice", A_SIG)),
        ("corp2", APS2, "10.2.0.2", 4u8, ("bob", B_SIG)),
    ] {
        let mut cfg = client::Config::new(
            net,
            format!("{net}-secret").into_bytes(),
            Protocol::H323,
            a(sig),
            a(MPR),
            [seed; 32],
        );
        cfg.domains = vec![format!("{net}.example")];
        let id = w.add_client(cfg);
        let pool: Vec<SocketAddr> = (1740..1744)
            .map(|p| SocketAddr::new(ip(media), p))
            .collect();
        let mut pc = ClientConfig::aps(
            a(sig),
            pool.clone(),
            ip(media),
            PortRange::new(20_000, 20_999).unwrap(),
            [seed; 32],
        );
        pc.aliases = vec![(terminal.0.to_string(), a(terminal.1))];
        w.set_client_alg(id, Box::new(Client::new(pc)));
        for p in pool {
            w.listen_client_alg(id, p);
        }
        aps.push(id);
    }
    w.run_for(Duration::from_secs(2));
    Bed {
        w,
        aps: [aps[0], aps[1]],
    }
}

/// The frames that reached `at`, as (source, TPKT payload).
fn frames(w: &mut World, at: &str) -> Vec<(SocketAddr, Vec<u8>)> {
    w.take_inbox(a(at))
        .into_iter()
        .map(|d| {
            (
                d.src,
                pinhole_h323::q931::tpkt_payload(&d.payload)
                    .unwrap()
                    .to_vec(),
            )
        })
        .collect()
}

fn uuie(q931: &[u8]) -> pinhole_h323_oracle::h225::H323UserInformation {
    decode_user_information(pinhole_h323_oracle::q931_user_user(q931).unwrap()).unwrap()
}

fn names(fs: &[(SocketAddr, Vec<u8>)]) -> Vec<String> {
    fs.iter()
        .map(|(_, p)| {
            if p.first() == Some(&0x08) {
                access::message_name(&uuie(p))
            } else {
                access::h245_name(&decode_h245(p).unwrap())
            }
        })
        .collect()
}

/// The one address named `field` of an H.245 frame.
fn h245_addr(p: &[u8], field: &str) -> SocketAddr {
    let r = inspect(Kind::H245, p).unwrap();
    let f = r.addresses.into_iter().find(|f| f.field == field).unwrap();
    SocketAddr::new(f.ip, f.port)
}

fn send(w: &mut World, from: &str, to: SocketAddr, payload: &[u8]) {
    w.send(a(from), to, b::tpkt(payload));
    w.run_for(Duration::from_millis(300));
}

const FIG15_STEPS: &[Step] = &[
    step(1404, "A", "APS1", "H.225 setup"),
    step(1406, "APS1", "MPR", "H.225 setup"),
    step(1408, "MPR", "APS2", "H.225 setup"),
    // The MPR's CALL PROCEEDING leaves with the Setup it forwards.
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
    step(1440, "MPR", "APS1", "H.245 terminalCapabilitySetAck"),
    step(1442, "APS1", "A", "H.245 terminalCapabilitySetAck"),
    step(1444, "A", "APS1", "H.245 openLogicalChannel"),
    step(1446, "APS1", "MPR", "CMPH request"),
    step(1448, "MPR", "APS1", "CMPH success"),
    step(1450, "APS1", "MPR", "H.245 openLogicalChannel"),
    step(1452, "MPR", "APS2", "H.245 openLogicalChannel"),
    step(1454, "APS2", "B", "H.245 openLogicalChannel"),
    step(1456, "B", "APS2", "H.245 openLogicalChannelAck"),
    step(1458, "APS2", "MPR", "CMPH request"),
    step(1460, "MPR", "APS2", "CMPH success"),
    step(1462, "APS2", "MPR", "H.245 openLogicalChannelAck"),
    step(1464, "MPR", "APS1", "H.245 openLogicalChannelAck"),
    step(1466, "APS1", "A", "H.245 openLogicalChannelAck"),
];

/// RTP both ways: A sends to `to_b` (what its Ack named), B to `to_a`.
fn rtp_both_ways(w: &mut World, to_b: SocketAddr, to_a: SocketAddr) {
    for i in 0..20u8 {
        w.send(a(A_RTP), to_b, vec![0x80, 0, 0, i, b'a']);
        w.send(a(B_RTP), to_a, vec![0x80, 0, 0, i, b'b']);
        w.run_for(Duration::from_millis(20));
    }
    w.run_for(Duration::from_millis(200));
    let at_a: Vec<Vec<u8>> = w
        .take_inbox(a(A_RTP))
        .into_iter()
        .map(|d| d.payload)
        .collect();
    let at_b: Vec<Vec<u8>> = w
        .take_inbox(a(B_RTP))
        .into_iter()
        .map(|d| d.payload)
        .collect();
    assert_eq!((at_a.len(), at_b.len()), (20, 20), "RTP both ways");
    for (i, (pa, pb)) in at_a.iter().zip(&at_b).enumerate() {
        assert_eq!(pa, &[0x80, 0, 0, i as u8, b'b'], "B→A payload {i}");
        assert_eq!(pb, &[0x80, 0, 0, i as u8, b'a'], "A→B payload {i}");
    }
}

#[test]
fn fig15_h245_on_its_own_connections() {
    let Bed { mut w, aps } = bed();
    assert!(w.client(aps[0]).registered_pinhole().is_some());
    // 1404: A's Setup to its APS, offering its own H.245 address.
    let setup = b::setup(
        GUID,
        CONF,
        "alice",
        "bob@corp2.example",
        Some(a(A_H245)),
        Some(a(A_SIG)),
        None,
        &[],
        false,
        &[],
    );
    send(&mut w, A_SIG, a(APS1), &b::q931(CRV_A, false, 0x05, &setup));
    // 1410: B gets it, told to connect its H.245 to APS2.
    let got = frames(&mut w, B_SIG);
    assert_eq!(names(&got), ["setup"]);
    let (from_aps2, b_setup) = got.into_iter().next().unwrap();
    assert_eq!(from_aps2, a(APS2));
    let b_lease = access::h245_address(&uuie(&b_setup)).unwrap();
    assert_eq!(
        b_lease.ip(),
        ip("10.2.0.2"),
        "B connects inside its network"
    );
    let crv_b = pinhole_h323::q931::Message::parse(&b_setup)
        .unwrap()
        .call_reference_value() as u16;
    // 1414, then FACILITY startH245 (A offered an address): A is told to
    // connect to APS1.
    let got = frames(&mut w, A_SIG);
    assert_eq!(names(&got), ["callProceeding", "facility"]);
    let a_lease = access::h245_address(&uuie(&got[1].1)).unwrap();
    assert_eq!(a_lease.ip(), ip("10.1.0.2"));

    // 1416–1426; then Connect.
    let bq = |t: u8, per: Vec<u8>| b::q931(crv_b, true, t, &per);
    send(
        &mut w,
        B_SIG,
        a(APS2),
        &bq(0x02, b::call_proceeding(GUID, None, &[], false)),
    );
    send(
        &mut w,
        B_SIG,
        a(APS2),
        &bq(0x01, b::alerting(GUID, None, &[], false)),
    );
    send(
        &mut w,
        B_SIG,
        a(APS2),
        &bq(0x07, b::connect(GUID, CONF, None, &[], false, &[])),
    );
    assert_eq!(names(&frames(&mut w, A_SIG)), ["alerting", "connect"]);

    // 1428–1442: H.245, each terminal on the APS listener it was given.
    send(&mut w, A_H245, a_lease, &b::tcs(1));
    send(&mut w, B_H245, b_lease, &b::tcs(1));
    assert_eq!(
        names(&frames(&mut w, B_H245)),
        ["request.terminalCapabilitySet"]
    );
    assert_eq!(
        names(&frames(&mut w, A_H245)),
        ["request.terminalCapabilitySet"]
    );
    send(&mut w, B_H245, b_lease, &b::tcs_ack(1));
    send(&mut w, A_H245, a_lease, &b::tcs_ack(1));
    assert_eq!(
        names(&frames(&mut w, A_H245)),
        ["response.terminalCapabilitySetAck"]
    );
    assert_eq!(
        names(&frames(&mut w, B_H245)),
        ["response.terminalCapabilitySetAck"]
    );

    // 1444–1466: A's channel; CMPH before each leaves its network.
    send(
        &mut w,
        A_H245,
        a_lease,
        &b::olc_msg(1, Some(a(A_RTCP)), None, false),
    );
    let got = frames(&mut w, B_H245);
    assert_eq!(names(&got), ["request.openLogicalChannel"]);
    assert_eq!(
        h245_addr(&got[0].1, "mediaControlChannel").ip(),
        ip("10.2.0.2"),
        "B is told APS2's port B"
    );
    send(&mut w, B_H245, b_lease, &b::olc_ack(1, a(B_RTP), a(B_RTCP)));
    let got = frames(&mut w, A_H245);
    assert_eq!(names(&got), ["response.openLogicalChannelAck"]);
    let a_to_b = h245_addr(&got[0].1, "mediaChannel");
    assert_eq!(a_to_b.ip(), ip("10.1.0.2"), "A is told APS1's port B");
    // B's channel the other way.
    send(
        &mut w,
        B_H245,
        b_lease,
        &b::olc_msg(1, Some(a(B_RTCP)), None, false),
    );
    assert_eq!(
        names(&frames(&mut w, A_H245)),
        ["request.openLogicalChannel"]
    );
    send(&mut w, A_H245, a_lease, &b::olc_ack(1, a(A_RTP), a(A_RTCP)));
    let got = frames(&mut w, B_H245);
    let b_to_a = h245_addr(&got[0].1, "mediaChannel");
    assert_eq!(b_to_a.ip(), ip("10.2.0.2"), "B is told APS2's port B");

    let ladder = check_ladder(&w, &name, FIG15_STEPS);
    assert!(ladder.is_ok(), "{}", ladder.unwrap_err());

    // 1468: RTP both ways through both firewalls and the relay.
    rtp_both_ways(&mut w, a_to_b, b_to_a);
    assert_eq!(w.mpr().stats().legs_open, 2, "one leg per side");

    // A releases: B hears it, the relay legs and ports B are freed.
    send(
        &mut w,
        A_SIG,
        a(APS1),
        &b::q931(CRV_A, false, 0x5a, &b::release_complete(GUID, false)),
    );
    assert_eq!(names(&frames(&mut w, B_SIG)), ["releaseComplete"]);
    assert_eq!(
        w.mpr().stats().legs_open,
        0,
        "the release freed the relay legs"
    );
    assert_eq!(
        w.mpr_alg(Protocol::H323)
            .unwrap()
            .counters()
            .iter()
            .find(|(n, _)| *n == "calls")
            .unwrap()
            .1,
        1
    );
}

/// The Setup of a call from A to bob, its copy at B, and B's call
/// reference.
fn call(w: &mut World, fast_start: &[Vec<u8>], tunnel: bool) -> (Vec<u8>, u16) {
    let setup = b::setup(
        GUID,
        CONF,
        "alice",
        "bob@corp2.example",
        None,
        Some(a(A_SIG)),
        None,
        fast_start,
        tunnel,
        &[],
    );
    send(w, A_SIG, a(APS1), &b::q931(CRV_A, false, 0x05, &setup));
    let got = frames(w, B_SIG);
    assert_eq!(names(&got), ["setup"]);
    let b_setup = got.into_iter().next().unwrap().1;
    let crv_b = pinhole_h323::q931::Message::parse(&b_setup)
        .unwrap()
        .call_reference_value() as u16;
    assert_eq!(
        names(&frames(w, A_SIG)),
        ["callProceeding"],
        "no h245Address: no FACILITY"
    );
    (b_setup, crv_b)
}

/// Every media address of a fastStart element list, by field.
fn fast_start_media(
    ui: &pinhole_h323_oracle::h225::H323UserInformation,
) -> Vec<(String, SocketAddr)> {
    let mut out = Vec::new();
    for e in access::fast_start(ui) {
        let olc = pinhole_h323_oracle::decode_olc(&e).unwrap();
        let (_, fwd, rev) = access::olc_media(&olc);
        for (m, c) in [fwd, rev].into_iter().flatten() {
            if let Some(m) = m {
                out.push(("mediaChannel".to_string(), m));
            }
            if let Some(c) = c {
                out.push(("mediaControlChannel".to_string(), c));
            }
        }
    }
    out
}

/// fastStart: the media is in the Setup and the Connect; each APS opens
/// its pinhole before its message leaves (the Setup waits at APS1, the
/// Connect at APS2), and RTP flows both ways with no H.245 at all.
#[test]
fn fig15_fast_start() {
    let Bed { mut w, .. } = bed();
    let proposals = vec![
        b::olc(1, Some(a(A_RTCP)), None, false),
        b::olc(2, Some(a(A_RTCP)), Some(a(A_RTP)), true),
    ];
    let (b_setup, crv_b) = call(&mut w, &proposals, false);
    let offered = fast_start_media(&uuie(&b_setup));
    assert!(
        offered.iter().all(|(_, at)| at.ip() == ip("10.2.0.2")),
        "B is told APS2's ports B: {offered:?}"
    );
    let b_to_a = offered.iter().find(|(f, _)| f == "mediaChannel").unwrap().1;
    // B accepts both: its receive address for A's channel, the reverse
    // channel echoing where it will send.
    let answer = vec![
        b::olc(1, Some(a(B_RTCP)), Some(a(B_RTP)), false),
        b::olc(2, Some(a(B_RTCP)), Some(b_to_a), true),
    ];
    let connect = b::connect(GUID, CONF, None, &answer, false, &[]);
    send(
        &mut w,
        B_SIG,
        a(APS2),
        &b::q931(crv_b, true, 0x07, &connect),
    );
    let got = frames(&mut w, A_SIG);
    assert_eq!(names(&got), ["connect"]);
    let answered = fast_start_media(&uuie(&got[0].1));
    let channels: Vec<SocketAddr> = answered
        .iter()
        .filter(|(f, _)| f == "mediaChannel")
        .map(|(_, a)| *a)
        .collect();
    assert_eq!(channels.len(), 2);
    let a_to_b = channels[0];
    assert_eq!(a_to_b.ip(), ip("10.1.0.2"), "A is told APS1's port B");
    assert_eq!(
        channels[1],
        a(A_RTP),
        "the echo of A's own address comes back as A's own"
    );
    let steps = [
        step(1, "A", "APS1", "H.225 setup"),
        step(2, "APS1", "MPR", "CMPH request"),
        step(3, "MPR", "APS1", "CMPH success"),
        step(4, "APS1", "MPR", "H.225 setup"),
        step(5, "B", "APS2", "H.225 connect"),
        step(6, "APS2", "MPR", "CMPH request"),
        step(7, "MPR", "APS2", "CMPH success"),
        step(8, "APS2", "MPR", "H.225 connect"),
    ];
    let ladder = check_ladder(&w, &name, &steps);
    assert!(ladder.is_ok(), "{}", ladder.unwrap_err());
    rtp_both_ways(&mut w, a_to_b, b_to_a);
}

/// H.245 tunneled in FACILITY messages (h245Control): the same channel
/// exchange as Fig. 15 steps 1444–1466, inside call signaling.
#[test]
fn fig15_h245_tunneled() {
    let Bed { mut w, .. } = bed();
    let (_, crv_b) = call(&mut w, &[], true);
    let facility = |olc: Vec<u8>| b::facility(GUID, CONF, None, None, &[], true, &[olc]);
    let tunneled = |frame: &[u8]| -> Vec<u8> { access::h245_control(&uuie(frame)).remove(0) };
    send(
        &mut w,
        A_SIG,
        a(APS1),
        &b::q931(
            CRV_A,
            false,
            0x62,
            &facility(b::olc_msg(1, Some(a(A_RTCP)), None, false)),
        ),
    );
    let got = frames(&mut w, B_SIG);
    assert_eq!(
        h245_addr(&tunneled(&got[0].1), "mediaControlChannel").ip(),
        ip("10.2.0.2")
    );
    send(
        &mut w,
        B_SIG,
        a(APS2),
        &b::q931(
            crv_b,
            true,
            0x62,
            &facility(b::olc_ack(1, a(B_RTP), a(B_RTCP))),
        ),
    );
    let got = frames(&mut w, A_SIG);
    let a_to_b = h245_addr(&tunneled(&got[0].1), "mediaChannel");
    assert_eq!(a_to_b.ip(), ip("10.1.0.2"));
    send(
        &mut w,
        B_SIG,
        a(APS2),
        &b::q931(
            crv_b,
            true,
            0x62,
            &facility(b::olc_msg(1, Some(a(B_RTCP)), None, false)),
        ),
    );
    let _ = frames(&mut w, A_SIG);
    send(
        &mut w,
        A_SIG,
        a(APS1),
        &b::q931(
            CRV_A,
            false,
            0x62,
            &facility(b::olc_ack(1, a(A_RTP), a(A_RTCP))),
        ),
    );
    let got = frames(&mut w, B_SIG);
    let b_to_a = h245_addr(&tunneled(&got[0].1), "mediaChannel");
    assert_eq!(b_to_a.ip(), ip("10.2.0.2"));
    rtp_both_ways(&mut w, a_to_b, b_to_a);
}

/// Real terminals open their channels at once: A's OLC and B's cross.
/// Each APS opened its pinhole (a CMPH reserve) before the other's OLC
/// reached it, and the MPR adopted those legs when the OLCs reached it,
/// so the relay addresses it wrote before are stale; the APSs keep their
/// pinholes and RTP flows both ways.
#[test]
fn fig15_channels_opened_at_once() {
    let Bed { mut w, .. } = bed();
    let setup = b::setup(
        GUID,
        CONF,
        "alice",
        "bob@corp2.example",
        Some(a(A_H245)),
        Some(a(A_SIG)),
        None,
        &[],
        false,
        &[],
    );
    send(&mut w, A_SIG, a(APS1), &b::q931(CRV_A, false, 0x05, &setup));
    let got = frames(&mut w, B_SIG);
    let b_lease = access::h245_address(&uuie(&got[0].1)).unwrap();
    let crv_b = pinhole_h323::q931::Message::parse(&got[0].1)
        .unwrap()
        .call_reference_value() as u16;
    let got = frames(&mut w, A_SIG);
    let a_lease = access::h245_address(&uuie(&got[1].1)).unwrap();
    send(
        &mut w,
        B_SIG,
        a(APS2),
        &b::q931(
            crv_b,
            true,
            0x07,
            &b::connect(GUID, CONF, None, &[], false, &[]),
        ),
    );
    send(&mut w, A_H245, a_lease, &b::tcs(1));
    send(&mut w, B_H245, b_lease, &b::tcs(1));
    let _ = (frames(&mut w, A_H245), frames(&mut w, B_H245));
    // Both OLCs leave before either arrives.
    w.send(
        a(A_H245),
        a_lease,
        b::tpkt(&b::olc_msg(1, Some(a(A_RTCP)), None, false)),
    );
    w.send(
        a(B_H245),
        b_lease,
        b::tpkt(&b::olc_msg(2, Some(a(B_RTCP)), None, false)),
    );
    w.run_for(Duration::from_millis(500));
    assert_eq!(
        names(&frames(&mut w, A_H245)),
        ["request.openLogicalChannel"]
    );
    assert_eq!(
        names(&frames(&mut w, B_H245)),
        ["request.openLogicalChannel"]
    );
    // Both Acks at once too.
    w.send(
        a(A_H245),
        a_lease,
        b::tpkt(&b::olc_ack(2, a(A_RTP), a(A_RTCP))),
    );
    w.send(
        a(B_H245),
        b_lease,
        b::tpkt(&b::olc_ack(1, a(B_RTP), a(B_RTCP))),
    );
    w.run_for(Duration::from_millis(500));
    let got = frames(&mut w, A_H245);
    assert_eq!(names(&got), ["response.openLogicalChannelAck"]);
    let a_to_b = h245_addr(&got[0].1, "mediaChannel");
    let got = frames(&mut w, B_H245);
    assert_eq!(names(&got), ["response.openLogicalChannelAck"]);
    let b_to_a = h245_addr(&got[0].1, "mediaChannel");
    assert_eq!((a_to_b.ip(), b_to_a.ip()), (ip("10.1.0.2"), ip("10.2.0.2")));
    rtp_both_ways(&mut w, a_to_b, b_to_a);
    assert_eq!(
        w.mpr().stats().legs_open,
        2,
        "one leg per side: the stale ones closed"
    );
}

mod hostile {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Damaged frames from the terminals and from the MPR's side into
        /// the APSs during a call: never a panic, the call or the next
        /// one still goes (the APSs and MPR keep their state consistent).
        #[test]
        fn damaged_frames_into_the_apss_never_panic(
            flips in proptest::collection::vec((0usize..4, any::<prop::sample::Index>(), 1u8..=255), 1..8),
        ) {
            let Bed { mut w, .. } = bed();
            let setup = b::setup(GUID, CONF, "alice", "bob@corp2.example", Some(a(A_H245)), Some(a(A_SIG)), None,
                &[b::olc(1, Some(a(A_RTCP)), None, false)], true, &[]);
            let frames = [
                b::q931(CRV_A, false, 0x05, &setup),
                b::olc_msg(1, Some(a(A_RTCP)), None, false),
                b::olc_ack(1, a(A_RTP), a(A_RTCP)),
                b::q931(CRV_A, false, 0x5a, &b::release_complete(GUID, false)),
            ];
            for (pick, at, x) in flips {
                let mut f = frames[pick].clone();
                let i = at.index(f.len());
                f[i] ^= x;
                let (from, to) = if pick % 2 == 0 { (A_SIG, a(APS1)) } else { (A_H245, SocketAddr::new(ip("10.1.0.2"), 1740)) };
                w.send(a(from), to, b::tpkt(&f));
                w.run_for(Duration::from_millis(50));
            }
            // A clean call still gets through afterwards.
            send(&mut w, A_SIG, a(APS1), &b::q931(0x0404, false, 0x05, &b::setup([9; 16], CONF, "alice", "bob@corp2.example", None, Some(a(A_SIG)), None, &[], false, &[])));
            let got = frames_at(&mut w, B_SIG);
            prop_assert!(got.iter().any(|n| n == "setup"), "{got:?}");
        }
    }

    fn frames_at(w: &mut World, at: &str) -> Vec<String> {
        w.take_inbox(a(at))
            .into_iter()
            .filter_map(|d| {
                let p = pinhole_h323::q931::tpkt_payload(&d.payload).ok()?;
                let ui =
                    decode_user_information(pinhole_h323_oracle::q931_user_user(p).ok()?).ok()?;
                Some(access::message_name(&ui))
            })
            .collect()
    }
}
