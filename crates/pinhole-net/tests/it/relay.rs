//! The relay data plane on loopback sockets: forwarding, strict source
//! checks, latching, control demultiplexing, client mappings and
//! delivery, IPv6 and a burst across many legs.
//!
//! Every wait is bounded ([`WAIT`]); checks that something does not happen
//! watch for [`QUIET`]. Plain std sockets: the relay needs no runtime.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use pinhole_core::relay::{RelayCommand, RelayReport, Remote};
use pinhole_core::types::{Component, LegId};
use pinhole_core::wire::{Builder, Class, Method, TransactionId};
use pinhole_net::relay::{Relay, RelayConfig, RelayCounters, RelayEvent};
use tokio::sync::mpsc::Receiver;

/// The bound on every wait for something that should happen.
const WAIT: Duration = Duration::from_secs(10);
/// How long a test watches for something that must not happen.
const QUIET: Duration = Duration::from_millis(300);
const V4: &str = "127.0.0.1";
const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A free address on `ip` (bound, then released) for a relay port.
fn free(ip: &str) -> SocketAddr {
    UdpSocket::bind((ip, 0)).unwrap().local_addr().unwrap()
}

/// Two distinct free addresses (both held while choosing, so they differ).
fn free2(ip: &str) -> (SocketAddr, SocketAddr) {
    let a = UdpSocket::bind((ip, 0)).unwrap();
    let b = UdpSocket::bind((ip, 0)).unwrap();
    (addr(&a), addr(&b))
}

/// A party's socket, with bounded reads.
fn party(ip: &str) -> UdpSocket {
    let s = UdpSocket::bind((ip, 0)).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s
}

fn addr(s: &UdpSocket) -> SocketAddr {
    s.local_addr().unwrap()
}

fn recv(s: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = [0u8; 2048];
    let (n, from) = s.recv_from(&mut buf).expect("no datagram in time");
    (buf[..n].to_vec(), from)
}

/// Nothing arrives at any of `socks` for [`QUIET`].
fn silent(socks: &[&UdpSocket]) {
    std::thread::sleep(QUIET);
    for s in socks {
        s.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 2048];
        let r = s.recv_from(&mut buf);
        s.set_nonblocking(false).unwrap();
        assert_eq!(
            r.map(|(n, from)| (buf[..n].to_vec(), from))
                .unwrap_err()
                .kind(),
            io::ErrorKind::WouldBlock
        );
    }
}

fn rtp(seq: u16, body: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, 0x00];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(body);
    p
}

fn start() -> (Relay, Receiver<RelayEvent>) {
    Relay::start(RelayConfig::default()).unwrap()
}

/// The next event, within [`WAIT`].
fn event(rx: &mut Receiver<RelayEvent>) -> RelayEvent {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(e) = rx.try_recv() {
            return e;
        }
        assert!(Instant::now() < deadline, "no relay event in time");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The next event that is not an Activity report.
fn event_no_activity(rx: &mut Receiver<RelayEvent>) -> RelayEvent {
    loop {
        match event(rx) {
            RelayEvent::Report(RelayReport::Activity { .. }) => {}
            e => return e,
        }
    }
}

/// Polls the counters until `done` holds, for at most [`WAIT`].
fn counters_until(relay: &Relay, done: impl Fn(&RelayCounters) -> bool) -> RelayCounters {
    let deadline = Instant::now() + WAIT;
    loop {
        let c = relay.counters();
        if done(&c) {
            return c;
        }
        assert!(Instant::now() < deadline, "counters never got there: {c:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn set(relay: &Relay, leg: LegId, component: Component, remote: Remote) {
    relay
        .apply(RelayCommand::SetRemote {
            leg,
            component,
            remote,
        })
        .unwrap();
}

/// Two connected legs, both remotes fixed to their parties.
struct Pair {
    a: UdpSocket,
    b: UdpSocket,
    port_a: SocketAddr,
    port_b: SocketAddr,
}

const A: LegId = LegId(1);
const B: LegId = LegId(2);

fn open(relay: &Relay, ip: &str, leg: LegId) -> SocketAddr {
    let rtp = free(ip);
    relay
        .apply(RelayCommand::OpenLeg {
            leg,
            rtp,
            rtcp: None,
        })
        .unwrap();
    rtp
}

fn pair(relay: &Relay, ip: &str) -> Pair {
    let p = Pair {
        a: party(ip),
        b: party(ip),
        port_a: open(relay, ip, A),
        port_b: open(relay, ip, B),
    };
    set(relay, A, Component::Rtp, Remote::Fixed(addr(&p.a)));
    set(relay, B, Component::Rtp, Remote::Fixed(addr(&p.b)));
    relay
        .apply(RelayCommand::Connect { leg: A, peer: B })
        .unwrap();
    p
}

fn both_ways(relay: &Relay, p: &Pair) {
    let one = rtp(1, b"from a");
    p.a.send_to(&one, p.port_a).unwrap();
    assert_eq!(recv(&p.b), (one.clone(), p.port_b));
    let two = rtp(2, b"from b, longer");
    p.b.send_to(&two, p.port_b).unwrap();
    assert_eq!(recv(&p.a), (two.clone(), p.port_a));
    let bytes = (one.len() + two.len()) as u64;
    let c = counters_until(relay, |c| c.packets_out == 2);
    let want = RelayCounters {
        packets_in: 2,
        packets_out: 2,
        bytes_in: bytes,
        bytes_out: bytes,
        ..RelayCounters::default()
    };
    assert_eq!(c, want);
}

#[test]
fn two_legs_forward_both_ways() {
    let (relay, _rx) = start();
    let p = pair(&relay, V4);
    both_ways(&relay, &p);
    relay.shutdown();
}

#[test]
fn spinning_workers_forward_and_shut_down() {
    let cfg = RelayConfig {
        spin: Duration::from_millis(5),
        ..RelayConfig::default()
    };
    let (relay, _rx) = Relay::start(cfg).unwrap();
    let p = pair(&relay, V4);
    for _ in 0..3 {
        both_ways_once(&p);
        // Past the spin: the workers sleep in poll again and must wake.
        std::thread::sleep(Duration::from_millis(20));
    }
    let begun = Instant::now();
    relay.shutdown();
    assert!(begun.elapsed() < WAIT);
}

/// One packet each way, checked at the parties.
fn both_ways_once(p: &Pair) {
    p.a.send_to(&rtp(1, b"a"), p.port_a).unwrap();
    assert_eq!(recv(&p.b), (rtp(1, b"a"), p.port_b));
    p.b.send_to(&rtp(2, b"b"), p.port_b).unwrap();
    assert_eq!(recv(&p.a), (rtp(2, b"b"), p.port_a));
}

#[test]
fn ipv6_legs() {
    let (relay, _rx) = start();
    let p = pair(&relay, "::1");
    both_ways(&relay, &p);
}

#[test]
fn spoofed_source_is_dropped() {
    let (relay, _rx) = start();
    let p = pair(&relay, V4);
    let spoofer = party(V4);
    spoofer.send_to(&rtp(1, b"bleed"), p.port_a).unwrap();
    spoofer.send_to(&rtp(2, b"bleed"), p.port_b).unwrap();
    silent(&[&p.a, &p.b, &spoofer]);
    let c = relay.counters();
    assert_eq!((c.packets_in, c.dropped_source, c.packets_out), (2, 2, 0));
}

#[test]
fn latching_is_strict_after_the_first_packet() {
    let (relay, mut rx) = start();
    let p = pair(&relay, V4);
    let until = Instant::now() + Duration::from_secs(2);
    set(
        &relay,
        A,
        Component::Rtp,
        Remote::Latch {
            ip: LOCALHOST,
            until,
        },
    );
    let phone = party(V4);
    phone.send_to(&rtp(1, b"first"), p.port_a).unwrap();
    assert_eq!(recv(&p.b), (rtp(1, b"first"), p.port_b));
    let latched = RelayReport::Latched {
        leg: A,
        component: Component::Rtp,
        source: addr(&phone),
    };
    assert_eq!(event_no_activity(&mut rx), RelayEvent::Report(latched));
    // The reverse direction follows the latch, even though leg B is read
    // by the other worker.
    p.b.send_to(&rtp(2, b"back"), p.port_b).unwrap();
    assert_eq!(recv(&phone), (rtp(2, b"back"), p.port_a));
    // Same IP, other port: dropped now.
    p.a.send_to(&rtp(3, b"late"), p.port_a).unwrap();
    silent(&[&p.b, &phone]);
    let c = relay.counters();
    assert_eq!((c.latches, c.dropped_source, c.packets_out), (1, 1, 2));
}

#[test]
fn an_expired_latch_window_does_not_latch() {
    let (relay, mut rx) = start();
    let p = pair(&relay, V4);
    let until = Instant::now();
    set(
        &relay,
        A,
        Component::Rtp,
        Remote::Latch {
            ip: LOCALHOST,
            until,
        },
    );
    std::thread::sleep(Duration::from_millis(20));
    p.a.send_to(&rtp(1, b"too late"), p.port_a).unwrap();
    silent(&[&p.b]);
    let c = relay.counters();
    assert_eq!((c.latches, c.dropped_source), (0, 1));
    assert!(rx.try_recv().is_err(), "no report");
}

#[test]
fn unbound_set_remote_and_close_leg() {
    let (relay, _rx) = start();
    let (a, b, b2) = (party(V4), party(V4), party(V4));
    let port_a = open(&relay, V4, A);
    let port_b = open(&relay, V4, B);
    relay
        .apply(RelayCommand::Connect { leg: A, peer: B })
        .unwrap();
    // Nothing bound yet.
    a.send_to(&rtp(1, b"x"), port_a).unwrap();
    counters_until(&relay, |c| c.dropped_unbound == 1);
    // A bound, B not: no peer to send to.
    set(&relay, A, Component::Rtp, Remote::Fixed(addr(&a)));
    a.send_to(&rtp(2, b"x"), port_a).unwrap();
    counters_until(&relay, |c| c.dropped_no_peer == 1);
    set(&relay, B, Component::Rtp, Remote::Fixed(addr(&b)));
    a.send_to(&rtp(3, b"x"), port_a).unwrap();
    assert_eq!(recv(&b), (rtp(3, b"x"), port_b));
    // SetRemote takes effect at once.
    set(&relay, B, Component::Rtp, Remote::Fixed(addr(&b2)));
    a.send_to(&rtp(4, b"x"), port_a).unwrap();
    assert_eq!(recv(&b2), (rtp(4, b"x"), port_b));
    silent(&[&b]);
    // CloseLeg releases the port before it returns.
    relay.apply(RelayCommand::CloseLeg { leg: A }).unwrap();
    let again = UdpSocket::bind(port_a).expect("port released");
    drop(again);
    // B's party now reaches no one.
    b2.send_to(&rtp(5, b"x"), port_b).unwrap();
    counters_until(&relay, |c| c.dropped_no_peer == 2);
    // And the leg can be opened again on the same port.
    relay
        .apply(RelayCommand::OpenLeg {
            leg: A,
            rtp: port_a,
            rtcp: None,
        })
        .unwrap();
    let c = relay.counters();
    assert_eq!(c.packets_in, c.packets_out + c.dropped());
}

#[test]
fn open_leg_on_a_port_in_use_is_an_error() {
    let (relay, _rx) = start();
    let taken = UdpSocket::bind((V4, 0)).unwrap();
    let err = relay
        .apply(RelayCommand::OpenLeg {
            leg: A,
            rtp: addr(&taken),
            rtcp: None,
        })
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    // The same leg opened twice with other addresses is refused too.
    let port = open(&relay, V4, B);
    let err = relay
        .apply(RelayCommand::OpenLeg {
            leg: B,
            rtp: free(V4),
            rtcp: None,
        })
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
    relay
        .apply(RelayCommand::OpenLeg {
            leg: B,
            rtp: port,
            rtcp: None,
        })
        .expect("the same open again is a no-op");
}

fn binding_request() -> Vec<u8> {
    let mut buf = [0u8; 128];
    let b = Builder::new(
        &mut buf,
        Method::Binding,
        Class::Request,
        TransactionId([7; 12]),
    )
    .unwrap();
    let n = b.finish(None).unwrap();
    buf[..n].to_vec()
}

#[test]
fn control_messages_become_events_and_send_from_uses_the_relay_port() {
    let (relay, mut rx) = start();
    let p = pair(&relay, V4);
    let stun = binding_request();
    assert!(pinhole_core::wire::is_control(&stun));
    let stranger = party(V4);
    for from in [&p.a, &stranger] {
        from.send_to(&stun, p.port_a).unwrap();
        let want = RelayEvent::Control {
            local: p.port_a,
            remote: addr(from),
            payload: stun.clone(),
        };
        assert_eq!(event(&mut rx), want);
    }
    silent(&[&p.b]);
    let c = relay.counters();
    assert_eq!((c.control_in, c.packets_in, c.packets_out), (2, 0, 0));

    relay
        .send_from(p.port_a, addr(&stranger), b"response")
        .unwrap();
    assert_eq!(recv(&stranger), (b"response".to_vec(), p.port_a));
    let err = relay
        .send_from(free(V4), addr(&stranger), b"x")
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
}

#[test]
fn rtcp_on_its_own_ports() {
    let (relay, _rx) = start();
    let parties: Vec<[UdpSocket; 2]> = (0..2).map(|_| [party(V4), party(V4)]).collect();
    let mut ports = Vec::new();
    for (leg, ps) in [A, B].into_iter().zip(&parties) {
        let (rtp_port, rtcp_port) = free2(V4);
        relay
            .apply(RelayCommand::OpenLeg {
                leg,
                rtp: rtp_port,
                rtcp: Some(rtcp_port),
            })
            .unwrap();
        set(&relay, leg, Component::Rtp, Remote::Fixed(addr(&ps[0])));
        set(&relay, leg, Component::Rtcp, Remote::Fixed(addr(&ps[1])));
        ports.push([rtp_port, rtcp_port]);
    }
    relay
        .apply(RelayCommand::Connect { leg: A, peer: B })
        .unwrap();
    let sr = [0x80, 0xc8, 0x00, 0x06, 1, 2, 3, 4];
    parties[0][1].send_to(&sr, ports[0][1]).unwrap();
    assert_eq!(recv(&parties[1][1]), (sr.to_vec(), ports[1][1]));
    parties[1][0].send_to(&rtp(9, b"m"), ports[1][0]).unwrap();
    assert_eq!(recv(&parties[0][0]), (rtp(9, b"m"), ports[0][0]));
    // RTCP from the RTP party at the RTCP port is a wrong source.
    parties[0][0].send_to(&sr, ports[0][1]).unwrap();
    silent(&[&parties[1][0], &parties[1][1]]);
    assert_eq!(relay.counters().dropped_source, 1);
}

#[test]
fn rtcp_mux_legs_carry_rtcp_on_the_rtp_port() {
    let (relay, _rx) = start();
    let p = pair(&relay, V4);
    let sr = [0x80, 0xc8, 0x00, 0x06, 1, 2, 3, 4];
    p.a.send_to(&sr, p.port_a).unwrap();
    assert_eq!(recv(&p.b), (sr.to_vec(), p.port_b));
    p.b.send_to(&rtp(1, b"m"), p.port_b).unwrap();
    assert_eq!(recv(&p.a), (rtp(1, b"m"), p.port_a));
}

#[test]
fn map_local_both_directions() {
    let (relay, mut rx) = start();
    let (mpr, phone, stranger) = (party(V4), party(V4), party(V4));
    let local = free(V4);
    // The client sends its CMPH from the media port before the mapping.
    relay.bind(local).unwrap();
    relay
        .send_from(local, addr(&mpr), &binding_request())
        .unwrap();
    assert_eq!(recv(&mpr), (binding_request(), local));
    mpr.send_to(&rtp(0, b"early"), local).unwrap();
    counters_until(&relay, |c| c.dropped_source == 1);

    relay
        .apply(RelayCommand::MapLocal {
            local,
            outside: addr(&mpr),
            inside: addr(&phone),
        })
        .unwrap();
    mpr.send_to(&rtp(1, b"in"), local).unwrap();
    assert_eq!(recv(&phone), (rtp(1, b"in"), local));
    phone.send_to(&rtp(2, b"out"), local).unwrap();
    assert_eq!(recv(&mpr), (rtp(2, b"out"), local));
    // Media out through the pinhole restarts the client's keepalive timer.
    assert!(matches!(
        event(&mut rx),
        RelayEvent::Report(RelayReport::LocalActivity { local: l, .. }) if l == local
    ));
    stranger.send_to(&rtp(3, b"no"), local).unwrap();
    silent(&[&mpr, &phone]);
    stranger.send_to(&binding_request(), local).unwrap();
    assert!(matches!(
        event(&mut rx),
        RelayEvent::Control { local: l, remote, .. } if l == local && remote == addr(&stranger)
    ));
    let c = counters_until(&relay, |c| c.control_in == 1);
    assert_eq!(
        (c.local_forwarded, c.packets_out, c.dropped_source),
        (2, 2, 2)
    );

    relay.apply(RelayCommand::UnmapLocal { local }).unwrap();
    drop(UdpSocket::bind(local).expect("port released"));
}

#[test]
fn deliver_local_hands_the_relay_ports_media_to_the_application_only() {
    let (relay, mut rx) = start();
    let (mpr, stranger) = (party(V4), party(V4));
    let local = free(V4);
    relay.bind(local).unwrap();
    relay
        .apply(RelayCommand::DeliverLocal {
            local,
            outside: addr(&mpr),
        })
        .unwrap();
    mpr.send_to(&rtp(1, b"for the app"), local).unwrap();
    assert_eq!(
        event(&mut rx),
        RelayEvent::Media {
            local,
            remote: addr(&mpr),
            payload: rtp(1, b"for the app"),
        }
    );
    // The application's own media leaves from the same port.
    relay
        .send_from(local, addr(&mpr), &rtp(2, b"from the app"))
        .unwrap();
    assert_eq!(recv(&mpr), (rtp(2, b"from the app"), local));
    stranger.send_to(&rtp(3, b"no"), local).unwrap();
    let c = counters_until(&relay, |c| c.dropped_source == 1);
    assert_eq!((c.local_delivered, c.packets_out, c.packets_in), (1, 1, 2));
    std::thread::sleep(QUIET);
    assert!(rx.try_recv().is_err(), "nothing from the stranger");
    relay.apply(RelayCommand::UnmapLocal { local }).unwrap();
    drop(UdpSocket::bind(local).expect("port released"));
}

#[test]
fn activity_reports_are_coalesced() {
    let cfg = RelayConfig {
        activity_interval: Duration::from_secs(60),
        ..RelayConfig::default()
    };
    let (relay, mut rx) = Relay::start(cfg).unwrap();
    let p = pair(&relay, V4);
    for i in 0..50 {
        p.a.send_to(&rtp(i, b"x"), p.port_a).unwrap();
        recv(&p.b);
    }
    counters_until(&relay, |c| c.packets_out == 50);
    assert!(matches!(
        event(&mut rx),
        RelayEvent::Report(RelayReport::Activity { leg: A, .. })
    ));
    assert!(rx.try_recv().is_err(), "one report for 50 packets");
}

#[test]
fn burst_across_200_legs() {
    const PAIRS: usize = 100;
    const ROUNDS: usize = 10;
    const PER_ROUND: usize = 10;
    // 2 000 datagrams at once keep a debug build busy for longer than the
    // default `max_queue_delay`, and then it rightly sheds the tail; this
    // test is about relaying every one of them.
    let cfg = RelayConfig {
        max_queue_delay: Duration::ZERO,
        ..RelayConfig::default()
    };
    let (relay, mut rx) = Relay::start(cfg).unwrap();
    let begun = Instant::now();
    let mut parties = Vec::new();
    let mut ports = Vec::new();
    for i in 0..PAIRS * 2 {
        let leg = LegId(i as u64);
        let port = open(&relay, V4, leg);
        let s = party(V4);
        set(&relay, leg, Component::Rtp, Remote::Fixed(addr(&s)));
        if i % 2 == 1 {
            relay
                .apply(RelayCommand::Connect {
                    leg: LegId(i as u64 - 1),
                    peer: leg,
                })
                .unwrap();
        }
        parties.push(s);
        ports.push(port);
    }
    for round in 0..ROUNDS {
        for (i, s) in parties.iter().enumerate() {
            for k in 0..PER_ROUND {
                let seq = (round * PER_ROUND + k) as u16;
                s.send_to(&rtp(seq, &(i as u32).to_be_bytes()), ports[i])
                    .unwrap();
            }
        }
        for (i, s) in parties.iter().enumerate() {
            let peer = i ^ 1;
            for _ in 0..PER_ROUND {
                let (payload, from) = recv(s);
                // From its own leg's port: the port its pinhole points at.
                assert_eq!(from, ports[i]);
                assert_eq!(payload[4..], (peer as u32).to_be_bytes());
            }
        }
    }
    let total = (PAIRS * 2 * ROUNDS * PER_ROUND) as u64;
    let c = counters_until(&relay, |c| c.packets_out == total);
    assert_eq!((c.packets_in, c.dropped()), (total, 0));
    assert_eq!(c.packets_in, c.packets_out + c.dropped());
    assert!(begun.elapsed() < Duration::from_secs(60));
    // Activity: a handful per leg, not one per packet.
    let mut reports = 0u64;
    while let Ok(e) = rx.try_recv() {
        assert!(matches!(
            e,
            RelayEvent::Report(RelayReport::Activity { .. })
        ));
        reports += 1;
    }
    let bound = (PAIRS as u64 * 2) * (begun.elapsed().as_millis() as u64 / 500 + 2);
    assert!(
        reports <= bound && reports < total / 10,
        "{reports} reports"
    );
}

/// Opens `leg` on the first free port of `ports` (this file's fixed-port
/// tests use 49000–49499).
fn open_in(relay: &Relay, ports: &mut impl Iterator<Item = u16>, leg: LegId) -> SocketAddr {
    for port in ports {
        let rtp = SocketAddr::from(([127, 0, 0, 1], port));
        match relay.apply(RelayCommand::OpenLeg {
            leg,
            rtp,
            rtcp: None,
        }) {
            Ok(()) => return rtp,
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {}
            Err(e) => panic!("open {leg:?} at {rtp}: {e}"),
        }
    }
    panic!("no free port left for {leg:?}");
}

/// 200 streams flooded for a second by two threads sending as fast as they
/// can, into a one-worker relay: it cannot relay it all, so it sheds (it
/// does not queue), and a second after the flood every stream flows again
/// without delay. (How evenly it sheds is checked with paced streams in
/// the crate's unit tests: an unpaced flood from threads sharing the CPUs
/// with the relay is not even to begin with.)
#[test]
fn a_flood_is_shed_and_every_stream_recovers_within_a_second() {
    const STREAMS: usize = 200;
    const FLOOD: Duration = Duration::from_secs(1);
    const CALM: Duration = Duration::from_millis(2500);
    const CALM_PPS: u64 = 10;
    let cfg = RelayConfig {
        workers: 1,
        ..RelayConfig::default()
    };
    let (relay, _rx) = Relay::start(cfg).unwrap();
    let mut ports = 49000..49500;
    let mut tx = Vec::new();
    let mut rx = Vec::new();
    let mut to = Vec::new();
    for i in 0..STREAMS as u64 {
        let (a, b) = (LegId(2 * i + 1), LegId(2 * i + 2));
        to.push(open_in(&relay, &mut ports, a));
        open_in(&relay, &mut ports, b);
        let (s, r) = (party(V4), party(V4));
        r.set_nonblocking(true).unwrap();
        set(&relay, a, Component::Rtp, Remote::Fixed(addr(&s)));
        set(&relay, b, Component::Rtp, Remote::Fixed(addr(&r)));
        relay
            .apply(RelayCommand::Connect { leg: a, peer: b })
            .unwrap();
        s.set_nonblocking(true).unwrap();
        s.connect(to[i as usize]).unwrap();
        tx.push(s);
        rx.push(r);
    }
    // Receive timestamps need a moment to switch on in the kernel.
    std::thread::sleep(Duration::from_millis(100));
    let origin = Instant::now();
    let ns = || origin.elapsed().as_nanos() as u64;
    let packet = |stream: usize, seq: u32, ns: u64| {
        let mut p = [0u8; 24];
        p[0] = 0x80;
        p[4..8].copy_from_slice(&(stream as u32).to_be_bytes());
        p[8..12].copy_from_slice(&seq.to_be_bytes());
        p[16..24].copy_from_slice(&ns.to_be_bytes());
        p
    };
    let done = std::sync::atomic::AtomicBool::new(false);
    let flood_until = Instant::now() + FLOOD;
    // Per stream: (seq, sent ns, received ns).
    let (got, sent, flood_end) = std::thread::scope(|scope| {
        let receiver = scope.spawn(|| {
            let mut got = vec![Vec::new(); STREAMS];
            let mut buf = [0u8; 64];
            let end = Instant::now() + FLOOD + CALM + WAIT;
            let mut quiet_since = Instant::now();
            while Instant::now() < end {
                let mut any = false;
                for (i, r) in rx.iter().enumerate() {
                    for _ in 0..64 {
                        let Ok(n) = r.recv(&mut buf) else { break };
                        assert_eq!(n, 24);
                        let seq = u32::from_be_bytes(buf[8..12].try_into().unwrap());
                        let at = u64::from_be_bytes(buf[16..24].try_into().unwrap());
                        got[i].push((seq, at, ns()));
                        any = true;
                    }
                }
                if any {
                    quiet_since = Instant::now();
                } else if done.load(std::sync::atomic::Ordering::Acquire)
                    && quiet_since.elapsed() > QUIET
                {
                    break;
                } else {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
            got
        });
        // The flood: two threads, each round-robin over half the streams,
        // as fast as the sockets take it.
        let flood = |first: usize| {
            let mut sent: Vec<Vec<u64>> = vec![Vec::new(); STREAMS / 2];
            'flood: for _ in 0..10_000_000u32 {
                for (k, sent) in sent.iter_mut().enumerate() {
                    if k == 0 && Instant::now() >= flood_until {
                        break 'flood;
                    }
                    let i = first + k;
                    let t = ns();
                    if tx[i].send(&packet(i, sent.len() as u32, t)).is_ok() {
                        sent.push(t);
                    }
                }
            }
            sent
        };
        let halves = [0, STREAMS / 2].map(|first| scope.spawn(move || flood(first)));
        let mut sent: Vec<Vec<u64>> = halves.into_iter().flat_map(|h| h.join().unwrap()).collect();
        let flood_end = ns();
        // Calm: CALM_PPS per stream, streams staggered.
        let calm_start = Instant::now();
        let per = CALM.as_secs() as f64 + f64::from(CALM.subsec_millis()) / 1e3;
        let total = (per * CALM_PPS as f64) as usize;
        let rate = (STREAMS as u64 * CALM_PPS) as f64;
        let mut k = 0usize;
        while k < total * STREAMS {
            let due =
                ((calm_start.elapsed().as_secs_f64() * rate) as usize + 1).min(total * STREAMS);
            while k < due {
                let i = k % STREAMS;
                let t = ns();
                tx[i].send(&packet(i, sent[i].len() as u32, t)).unwrap();
                sent[i].push(t);
                k += 1;
            }
            assert!(calm_start.elapsed() < CALM + WAIT, "sender far behind");
            std::thread::sleep(Duration::from_micros(500));
        }
        done.store(true, std::sync::atomic::Ordering::Release);
        let got = receiver.join().unwrap();
        (got, sent, flood_end)
    });
    let c = relay.counters();
    assert_eq!(c.packets_in, c.packets_out + c.dropped(), "{c:?}");
    assert_eq!(c.dropped(), c.dropped_stale, "{c:?}");
    // Two senders outrun one worker: it had to shed.
    assert!(c.dropped_stale > 0, "nothing shed: {c:?}");
    let total: usize = sent.iter().map(Vec::len).sum();
    assert_eq!(c.packets_in + c.dropped_overflow, total as u64, "{c:?}");
    // A second after the flood, every stream flows again, promptly.
    let late_from = flood_end + 1_000_000_000;
    for i in 0..STREAMS {
        let want = sent[i].iter().filter(|&&t| t >= late_from).count();
        let mut ms: Vec<f64> = got[i]
            .iter()
            .filter(|a| a.1 >= late_from)
            .map(|a| (a.2 - a.1) as f64 / 1e6)
            .collect();
        ms.sort_by(f64::total_cmp);
        assert!(want >= 10, "stream {i}: {want} packets after recovery");
        assert!(
            ms.len() * 5 >= want * 4,
            "stream {i}: {} of {want} delivered after recovery; {c:?}",
            ms.len()
        );
        let p50 = ms[ms.len() / 2];
        assert!(p50 < 50.0, "stream {i}: {p50:.1} ms late after recovery");
    }
}
