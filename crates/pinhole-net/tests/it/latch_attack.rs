//! The same-IP latch attack on a plain phone, measured on loopback with the
//! real relay and the MPR engine: an attacker sending from the phone's own
//! public IP (here 127.0.0.1, another port) reaches the phone's leg before
//! the phone does, on RTP and on RTCP, and keeps sending through the call.
//! The phone sends from the port its SDP announced (a port-preserving NAT,
//! or none). Printed (`--nocapture`): what the attacker received of the
//! party's media (bled), what of its own reached the party (injected), and
//! how much of the legitimate media got through each way.
//!
//! docs/flows.md ("Latching") states the rule this checks and the risk
//! that remains (an attacker on the exact SDP port, or a NAT that does not
//! preserve ports).

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use pinhole_core::intent::{IntentKind, MediaEndpoint, MediaIntent, Origin};
use pinhole_core::mpr::{Config, Engine, NetworkConfig};
use pinhole_core::ports::PortRange;
use pinhole_core::types::{CallKey, Side};
use pinhole_core::wire::RtcpMode;
use pinhole_net::relay::{Relay, RelayConfig, RelayEvent};
use tokio::sync::mpsc::Receiver;

const ROUNDS: u16 = 400;
/// The party sends RTCP every this many rounds.
const RTCP_EVERY: u16 = 10;

#[allow(clippy::disallowed_methods)]
fn now() -> Instant {
    // The relay compares latch windows with the real clock.
    Instant::now()
}

/// Two sockets on consecutive ports (RTP, RTCP) of `ip`.
fn pair(ip: &str) -> (UdpSocket, UdpSocket) {
    for _ in 0..100 {
        let rtp = UdpSocket::bind((ip, 0)).unwrap();
        let port = rtp.local_addr().unwrap().port();
        if !port.is_multiple_of(2) || port == u16::MAX {
            continue;
        }
        if let Ok(rtcp) = UdpSocket::bind((ip, port + 1)) {
            for s in [&rtp, &rtcp] {
                s.set_nonblocking(true).unwrap();
            }
            return (rtp, rtcp);
        }
    }
    panic!("no free port pair on {ip}");
}

fn addr(s: &UdpSocket) -> SocketAddr {
    s.local_addr().unwrap()
}

/// Everything waiting on `s`: (first payload byte, source) per datagram.
fn drain(s: &UdpSocket) -> Vec<(u8, SocketAddr)> {
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    while let Ok((n, from)) = s.recv_from(&mut buf) {
        if n > 12 {
            out.push((buf[12], from));
        }
    }
    out
}

fn rtp(who: u8, seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, 0x00];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&[0; 8]);
    p.extend_from_slice(&[who; 20]);
    p
}

fn rtcp(who: u8) -> Vec<u8> {
    let mut p = vec![0x80, 200, 0, 6];
    p.extend_from_slice(&[0; 8]);
    p.extend_from_slice(&[who; 20]);
    p
}

/// Engine ⇄ relay: commands out, reports in, until both are quiet.
fn pump(mpr: &mut Engine, relay: &Relay, events: &mut Receiver<RelayEvent>) {
    for _ in 0..50 {
        let mut moved = false;
        while let Some(c) = mpr.poll_command() {
            moved = true;
            relay.apply(c).unwrap();
        }
        while let Ok(e) = events.try_recv() {
            moved = true;
            if let RelayEvent::Report(r) = e {
                mpr.handle_relay(now(), r);
            }
        }
        if !moved {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[derive(Debug, Default)]
struct Tally {
    bled_rtp: usize,
    bled_rtcp: usize,
    injected: usize,
    phone_to_party: usize,
    party_to_phone: usize,
    party_rtcp_to_phone: usize,
    party_rtcp_sent: usize,
}

fn measure(relay: &Relay, events: &mut Receiver<RelayEvent>) -> Tally {
    let mut cfg = Config::new("127.0.0.1".parse().unwrap(), [61; 32]);
    cfg.ports = PortRange::new(46_600, 46_799).unwrap();
    cfg.control_ports = vec![];
    cfg.networks
        .push(NetworkConfig::new("corp1", b"k".to_vec()));
    let mut mpr = Engine::new(cfg, now()).unwrap();
    let (phone, phone_rtcp) = pair("127.0.0.1");
    let (attacker, attacker_rtcp) = pair("127.0.0.1");
    let (party, party_rtcp) = pair("127.0.0.4");
    let call = CallKey::from("same-ip@loopback");
    let ep = |a: SocketAddr| MediaEndpoint {
        index: 0,
        addr: a,
        rtcp: RtcpMode::Pair,
        rtcp_addr: None,
    };
    // The plain phone offers its own address; its legs latch onto the IP
    // its signaling came from.
    let offer = [ep(addr(&phone))];
    let lp = mpr
        .handle_intent_latching(
            now(),
            &call,
            &MediaIntent {
                kind: IntentKind::Offer,
                from: Side::A,
                origin: Origin::Network("corp1"),
                toward: Origin::Public,
                endpoints: &offer,
                stranger: None,
            },
            "127.0.0.1".parse().unwrap(),
        )
        .unwrap()
        .endpoints[0]
        .addr;
    let answer = [ep(addr(&party))];
    let l = mpr
        .handle_intent(
            now(),
            &call,
            &MediaIntent {
                kind: IntentKind::Answer,
                from: Side::B,
                origin: Origin::Public,
                toward: Origin::Network("corp1"),
                endpoints: &answer,
                stranger: None,
            },
        )
        .unwrap()
        .endpoints[0]
        .addr;
    let l_rtcp = SocketAddr::new(l.ip(), l.port() + 1);
    let lp_rtcp = SocketAddr::new(lp.ip(), lp.port() + 1);
    pump(&mut mpr, relay, events);
    // The attacker is first, on both ports of the phone's leg.
    attacker.send_to(&rtp(b'x', 0), l).unwrap();
    attacker_rtcp.send_to(&rtcp(b'x'), l_rtcp).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    pump(&mut mpr, relay, events);
    let mut t = Tally::default();
    for i in 0..ROUNDS {
        phone.send_to(&rtp(b'a', i), l).unwrap();
        party.send_to(&rtp(b'p', i), lp).unwrap();
        if i % RTCP_EVERY == 0 {
            party_rtcp.send_to(&rtcp(b'p'), lp_rtcp).unwrap();
            t.party_rtcp_sent += 1;
        }
        attacker.send_to(&rtp(b'x', i + 1), l).unwrap();
        attacker_rtcp.send_to(&rtcp(b'x'), l_rtcp).unwrap();
        std::thread::sleep(Duration::from_millis(1));
        pump(&mut mpr, relay, events);
        // Count as we go: a socket buffer holds only a few hundred.
        count(
            &mut t,
            [
                &attacker,
                &attacker_rtcp,
                &party,
                &party_rtcp,
                &phone,
                &phone_rtcp,
            ],
        );
    }
    std::thread::sleep(Duration::from_millis(100));
    pump(&mut mpr, relay, events);
    count(
        &mut t,
        [
            &attacker,
            &attacker_rtcp,
            &party,
            &party_rtcp,
            &phone,
            &phone_rtcp,
        ],
    );
    t
}

/// Adds what waits at each socket to the tally.
fn count(t: &mut Tally, [att, att_rtcp, party, party_rtcp, phone, phone_rtcp]: [&UdpSocket; 6]) {
    t.bled_rtp += drain(att).iter().filter(|p| p.0 == b'p').count();
    t.bled_rtcp += drain(att_rtcp).iter().filter(|p| p.0 == b'p').count();
    let at_party: Vec<u8> = drain(party)
        .into_iter()
        .chain(drain(party_rtcp))
        .map(|p| p.0)
        .collect();
    t.injected += at_party.iter().filter(|&&w| w == b'x').count();
    t.phone_to_party += at_party.iter().filter(|&&w| w == b'a').count();
    t.party_to_phone += drain(phone).iter().filter(|p| p.0 == b'p').count();
    t.party_rtcp_to_phone += drain(phone_rtcp).iter().filter(|p| p.0 == b'p').count();
}

#[test]
fn a_same_ip_attacker_first_loses_the_latch_to_the_phone_on_its_sdp_port() {
    let (relay, mut events) = Relay::start(RelayConfig::default()).unwrap();
    let t = measure(&relay, &mut events);
    let pct = |n: usize| 100.0 * n as f64 / f64::from(ROUNDS);
    println!(
        "same-IP attacker first: bled RTP {}/{ROUNDS}, bled RTCP {}/{}, injected {} (of {} sent), \
         phone→party {:.1} %, party→phone {:.1} %, party RTCP→phone {}/{}",
        t.bled_rtp,
        t.bled_rtcp,
        t.party_rtcp_sent,
        t.injected,
        2 * usize::from(ROUNDS) + 2,
        pct(t.phone_to_party),
        pct(t.party_to_phone),
        t.party_rtcp_to_phone,
        t.party_rtcp_sent,
    );
    // The phone's first packet from its SDP port takes the leg over: the
    // attacker's first RTP packet (and at most one RTCP packet that raced
    // the take-over) got through, nothing after. The slack of a packet or
    // two is the relay's workers learning the take-over from each other.
    assert!(t.injected <= 3, "{t:?}");
    assert!(t.bled_rtp <= 2, "{t:?}");
    assert_eq!(t.bled_rtcp, 0, "{t:?}");
    assert!(t.phone_to_party >= usize::from(ROUNDS) - 2, "{t:?}");
    assert!(t.party_to_phone >= usize::from(ROUNDS) - 2, "{t:?}");
    // RTCP was fixed to the phone's SDP RTCP port when RTP latched there.
    assert!(t.party_rtcp_to_phone >= t.party_rtcp_sent - 2, "{t:?}");
}
