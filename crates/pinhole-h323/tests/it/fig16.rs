//! Fig. 16 on the simulated network: no APS; each terminal is smart, its
//! own H.323 ALG ([`Client`] in [`Mode::Terminal`]) beside it on the same
//! host opens the media pinholes with CMPH from the terminal's own media
//! port, and the terminal sends and receives RTP at the MPR's relay
//! addresses itself. The patent's steps 1504–1538 on the ladder, RTP both
//! ways through both firewalls and the relay, release frees everything.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use pinhole_core::client;
use pinhole_core::mpr;
use pinhole_core::wire::Protocol;
use pinhole_h323::alg::{Client, ClientConfig, Mpr, MprConfig};
use pinhole_h323::signal::Signal;
use pinhole_h323_oracle::{
    Kind, access, build as b, decode_h245, decode_user_information, inspect,
};
use pinhole_testkit::ladder::{Step, check_ladder, step};
use pinhole_testkit::{FirewallConfig, World};

const MPR_IP: &str = "203.0.113.10";
const MPR: &str = "203.0.113.10:1720";
const FW1: &str = "198.51.100.1";
const FW2: &str = "198.51.100.2";
/// Each terminal's ALG: the engine's socket toward the MPR, and the
/// inside address its own H.323 stack sends to (same host).
const ALG_A: &str = "10.1.0.10:1720";
const ALG_B: &str = "10.2.0.10:1720";
const A_SIG: &str = "10.1.0.10:1722";
const A_H245: &str = "10.1.0.10:1300";
const A_RTP: &str = "10.1.0.10:5000";
const A_RTCP: &str = "10.1.0.10:5001";
const B_SIG: &str = "10.2.0.10:1722";
const B_H245: &str = "10.2.0.10:1400";
const B_RTP: &str = "10.2.0.10:6000";
const B_RTCP: &str = "10.2.0.10:6001";

const GUID: [u8; 16] = [0x16; 16];
const CONF: [u8; 16] = [0x17; 16];
const CRV_A: u16 = 0x0303;

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
        FW1 | "10.1.0.10" => "A",
        FW2 | "10.2.0.10" => "B",
        _ => "?",
    }
    .to_owned()
}

fn bed() -> World {
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
    let mut w = World::new(start, 16, mc);
    w.set_namer(namer);
    let c1 = w.add_corp("corp1", ip(FW1), FirewallConfig::default());
    let c2 = w.add_corp("corp2", ip(FW2), FirewallConfig::default());
    w.add_host(c1.zone, ip("10.1.0.10"), "A");
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
    for (net, alg, seed, terminal) in [
        ("corp1", ALG_A, 3u8, ("alice", A_SIG)),
        ("corp2", ALG_B, 4u8, ("bob", B_SIG)),
    ] {
        let mut cfg = client::Config::new(
            net,
            format!("{net}-secret").into_bytes(),
            Protocol::H323,
            a(alg),
            a(MPR),
            [seed; 32],
        );
        cfg.domains = vec![format!("{net}.example")];
        let id = w.add_client(cfg);
        let host = a(alg).ip();
        let pool: Vec<SocketAddr> = (1740..1744).map(|p| SocketAddr::new(host, p)).collect();
        let mut pc = ClientConfig::terminal(a(alg), pool.clone(), host, [seed; 32]);
        pc.aliases = vec![(terminal.0.to_string(), a(terminal.1))];
        w.set_client_alg(id, Box::new(Client::new(pc)));
        for p in pool {
            w.listen_client_alg(id, p);
        }
    }
    w.run_for(Duration::from_secs(2));
    w
}

const FIG16_STEPS: &[Step] = &[
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

#[test]
fn fig16_smart_terminals_h245_on_its_own_connections() {
    let mut w = bed();
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
    send(
        &mut w,
        A_SIG,
        a(ALG_A),
        &b::q931(CRV_A, false, 0x05, &setup),
    );
    let got = frames(&mut w, B_SIG);
    assert_eq!(names(&got), ["setup"]);
    let b_setup = &got[0].1;
    let b_lease = access::h245_address(&uuie(b_setup)).unwrap();
    assert_eq!(
        b_lease.ip(),
        ip("10.2.0.10"),
        "B's stack connects to its own ALG"
    );
    let crv_b = pinhole_h323::q931::Message::parse(b_setup)
        .unwrap()
        .call_reference_value() as u16;
    let got = frames(&mut w, A_SIG);
    assert_eq!(names(&got), ["callProceeding", "facility"]);
    let a_lease = access::h245_address(&uuie(&got[1].1)).unwrap();

    let bq = |t: u8, per: Vec<u8>| b::q931(crv_b, true, t, &per);
    send(
        &mut w,
        B_SIG,
        a(ALG_B),
        &bq(0x02, b::call_proceeding(GUID, None, &[], false)),
    );
    send(
        &mut w,
        B_SIG,
        a(ALG_B),
        &bq(0x01, b::alerting(GUID, None, &[], false)),
    );
    send(
        &mut w,
        B_SIG,
        a(ALG_B),
        &bq(0x07, b::connect(GUID, CONF, None, &[], false, &[])),
    );
    assert_eq!(names(&frames(&mut w, A_SIG)), ["alerting", "connect"]);

    send(&mut w, A_H245, a_lease, &b::tcs(1));
    send(&mut w, B_H245, b_lease, &b::tcs(1));
    send(&mut w, B_H245, b_lease, &b::tcs_ack(1));
    send(&mut w, A_H245, a_lease, &b::tcs_ack(1));
    let _ = (frames(&mut w, A_H245), frames(&mut w, B_H245));

    send(
        &mut w,
        A_H245,
        a_lease,
        &b::olc_msg(1, Some(a(A_RTCP)), None, false),
    );
    let got = frames(&mut w, B_H245);
    assert_eq!(names(&got), ["request.openLogicalChannel"]);
    let relay_a_rtcp = h245_addr(&got[0].1, "mediaControlChannel");
    assert_eq!(
        relay_a_rtcp.ip(),
        ip(MPR_IP),
        "a smart terminal is given the relay address itself"
    );
    send(&mut w, B_H245, b_lease, &b::olc_ack(1, a(B_RTP), a(B_RTCP)));
    let got = frames(&mut w, A_H245);
    let a_to_b = h245_addr(&got[0].1, "mediaChannel");
    assert_eq!(a_to_b.ip(), ip(MPR_IP));
    send(
        &mut w,
        B_H245,
        b_lease,
        &b::olc_msg(1, Some(a(B_RTCP)), None, false),
    );
    let _ = frames(&mut w, A_H245);
    send(&mut w, A_H245, a_lease, &b::olc_ack(1, a(A_RTP), a(A_RTCP)));
    let got = frames(&mut w, B_H245);
    let b_to_a = h245_addr(&got[0].1, "mediaChannel");
    assert_eq!(b_to_a.ip(), ip(MPR_IP));

    let ladder = check_ladder(&w, &name, FIG16_STEPS);
    assert!(ladder.is_ok(), "{}", ladder.unwrap_err());

    // 1540: RTP both ways, the terminals' own ports to the relay.
    rtp_both_ways(&mut w, a_to_b, b_to_a);
    assert_eq!(w.mpr().stats().legs_open, 2);

    send(
        &mut w,
        B_SIG,
        a(ALG_B),
        &bq(0x5a, b::release_complete(GUID, false)),
    );
    assert_eq!(names(&frames(&mut w, A_SIG)), ["releaseComplete"]);
    assert_eq!(
        w.mpr().stats().legs_open,
        0,
        "the release freed the relay legs"
    );
    let _ = Kind::H245;
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

/// The terminals open their channels at once (as real ones do): each
/// smart terminal's pinhole leg is adopted by the MPR after the MPR wrote
/// another relay address toward it; each keeps its pinhole's relay.
#[test]
fn fig16_channels_opened_at_once() {
    let mut w = bed();
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
    send(
        &mut w,
        A_SIG,
        a(ALG_A),
        &b::q931(CRV_A, false, 0x05, &setup),
    );
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
        a(ALG_B),
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
    rtp_both_ways(&mut w, a_to_b, b_to_a);
    assert_eq!(w.mpr().stats().legs_open, 2);
}
