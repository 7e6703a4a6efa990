//! The firewall simulator with real loopback sockets: pinholes blocked, then
//! open, then closed again.
//!
//! Every wait is bounded. Timing tests use a 300 ms idle timeout and check
//! well away from it (100 ms before, 300 ms after), because other builds
//! share the machine.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use pinhole_net::firewall::{Counters, FirewallSim, MappingBehavior, MappingInfo, SimConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream, UdpSocket};
use tokio::time::{sleep, timeout};

/// The bound on every wait for something that should happen.
const WAIT: Duration = Duration::from_secs(5);
/// How long a test watches for something that must not happen.
const QUIET: Duration = Duration::from_millis(300);
const IDLE: Duration = Duration::from_millis(300);
const INSIDE_IP: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const PUBLIC_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

fn cfg() -> SimConfig {
    SimConfig {
        inside_ip: INSIDE_IP,
        public_ip: PUBLIC_IP,
        ..SimConfig::default()
    }
}

fn short_idle() -> SimConfig {
    SimConfig {
        udp_idle_timeout: IDLE,
        ..cfg()
    }
}

async fn udp() -> UdpSocket {
    UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap()
}

fn addr(s: &UdpSocket) -> SocketAddr {
    s.local_addr().unwrap()
}

/// The next datagram on `sock`, within [`WAIT`].
async fn recv(sock: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = [0u8; 2048];
    let (n, from) = timeout(WAIT, sock.recv_from(&mut buf))
        .await
        .expect("no datagram in time")
        .unwrap();
    (buf[..n].to_vec(), from)
}

/// Polls the counters until `done` holds, for at most [`WAIT`].
async fn counters_until(sim: &FirewallSim, done: impl Fn(&Counters) -> bool) -> Counters {
    timeout(WAIT, async {
        loop {
            let c = sim.counters();
            if done(&c) {
                return c;
            }
            sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("counters never got there: {:?}", sim.counters()))
}

/// An inside phone, an outside server, the phone's route to the server, and
/// the public address the server saw the first datagram ("open") from.
struct Call {
    phone: UdpSocket,
    server: UdpSocket,
    route: SocketAddr,
    public: SocketAddr,
}

async fn open_call(sim: &FirewallSim) -> Call {
    let (phone, server) = (udp().await, udp().await);
    let route = sim.route(addr(&phone), addr(&server)).unwrap();
    phone.send_to(b"open", route).await.unwrap();
    let (data, public) = recv(&server).await;
    assert_eq!(data, b"open");
    Call {
        phone,
        server,
        route,
        public,
    }
}

#[tokio::test]
async fn outbound_then_reply_passes() {
    let sim = FirewallSim::start(cfg()).await.unwrap();
    let call = open_call(&sim).await;
    assert_eq!(call.public.ip(), PUBLIC_IP);
    assert_eq!(sim.public_addr(addr(&call.phone)), Some(call.public));
    assert_eq!(
        sim.public_addr_for(addr(&call.phone), addr(&call.server)),
        Some(call.public)
    );
    assert_eq!(call.route.ip(), INSIDE_IP);
    // The route is stable.
    assert_eq!(
        sim.route(addr(&call.phone), addr(&call.server)).unwrap(),
        call.route
    );

    call.server.send_to(b"reply", call.public).await.unwrap();
    assert_eq!(recv(&call.phone).await, (b"reply".to_vec(), call.route));

    assert_eq!(
        sim.counters(),
        Counters {
            outbound: 1,
            inbound_passed: 1,
            mappings_created: 1,
            ..Counters::default()
        }
    );
    assert_eq!(
        sim.mappings(),
        vec![MappingInfo {
            inside: addr(&call.phone),
            public: call.public,
            remotes: vec![addr(&call.server)],
        }]
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn unsolicited_inbound_from_a_third_party_is_dropped() {
    let sim = FirewallSim::start(cfg()).await.unwrap();
    let call = open_call(&sim).await;
    let attacker = udp().await;

    attacker.send_to(b"attack", call.public).await.unwrap();
    let c = counters_until(&sim, |c| c.dropped_filtered == 1).await;
    assert_eq!(c.inbound_passed, 0);
    assert_eq!(c.dropped_inbound(), 1);

    // The phone's next datagram is the server's, not the attacker's.
    call.server.send_to(b"reply", call.public).await.unwrap();
    assert_eq!(recv(&call.phone).await, (b"reply".to_vec(), call.route));
    let c = sim.counters();
    assert_eq!((c.inbound_passed, c.dropped_filtered), (1, 1));
    sim.shutdown().await;
}

#[tokio::test]
async fn reply_from_another_port_of_the_remote_is_dropped() {
    let sim = FirewallSim::start(cfg()).await.unwrap();
    let call = open_call(&sim).await;
    // Same IP as the server, another port: APDF says no.
    let other_port = udp().await;
    assert_eq!(addr(&other_port).ip(), addr(&call.server).ip());

    other_port.send_to(b"sideways", call.public).await.unwrap();
    counters_until(&sim, |c| c.dropped_filtered == 1).await;

    call.server.send_to(b"reply", call.public).await.unwrap();
    assert_eq!(recv(&call.phone).await, (b"reply".to_vec(), call.route));
    assert_eq!(
        sim.counters(),
        Counters {
            outbound: 1,
            inbound_passed: 1,
            dropped_filtered: 1,
            mappings_created: 1,
            ..Counters::default()
        }
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn idle_entry_expires_and_a_late_reply_is_dropped() {
    let sim = FirewallSim::start(short_idle()).await.unwrap();
    let call = open_call(&sim).await;

    // Well within the timeout: passes (and refreshes the entry).
    sleep(Duration::from_millis(100)).await;
    call.server.send_to(b"early", call.public).await.unwrap();
    assert_eq!(recv(&call.phone).await, (b"early".to_vec(), call.route));

    // Twice the timeout after the last traffic: dropped as expired.
    sleep(2 * IDLE).await;
    assert_eq!(sim.mappings(), vec![]);
    assert_eq!(sim.public_addr(addr(&call.phone)), None);
    call.server.send_to(b"late", call.public).await.unwrap();
    let c = counters_until(&sim, |c| c.dropped_expired == 1).await;
    assert_eq!(
        c,
        Counters {
            outbound: 1,
            inbound_passed: 1,
            dropped_expired: 1,
            mappings_created: 1,
            mappings_expired: 1,
            ..Counters::default()
        }
    );

    // The late datagram never reached the phone: its next one is the reply
    // to a fresh outbound datagram.
    call.phone.send_to(b"again", call.route).await.unwrap();
    let (data, public2) = recv(&call.server).await;
    assert_eq!(data, b"again");
    call.server.send_to(b"fresh", public2).await.unwrap();
    assert_eq!(recv(&call.phone).await, (b"fresh".to_vec(), call.route));
    sim.shutdown().await;
}

#[tokio::test]
async fn outbound_keepalives_keep_the_pinhole_open() {
    // Only outbound traffic refreshes here, so it alone keeps the pinhole.
    let sim = FirewallSim::start(SimConfig {
        inbound_refreshes: false,
        ..short_idle()
    })
    .await
    .unwrap();
    let call = open_call(&sim).await;

    // 8 × 100 ms: well past the 300 ms timeout in total.
    for i in 0..8u8 {
        sleep(Duration::from_millis(100)).await;
        call.phone.send_to(&[i], call.route).await.unwrap();
        assert_eq!(recv(&call.server).await, (vec![i], call.public));
    }
    call.server.send_to(b"reply", call.public).await.unwrap();
    assert_eq!(recv(&call.phone).await, (b"reply".to_vec(), call.route));
    assert_eq!(
        sim.counters(),
        Counters {
            outbound: 9,
            inbound_passed: 1,
            mappings_created: 1,
            ..Counters::default()
        }
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn inbound_traffic_refreshes_only_when_configured() {
    for inbound_refreshes in [true, false] {
        let sim = FirewallSim::start(SimConfig {
            inbound_refreshes,
            ..short_idle()
        })
        .await
        .unwrap();
        let call = open_call(&sim).await;
        // Inbound every 100 ms, no outbound after the first datagram.
        for i in 0..6u8 {
            sleep(Duration::from_millis(100)).await;
            call.server.send_to(&[i], call.public).await.unwrap();
            if inbound_refreshes || i == 0 {
                assert_eq!(recv(&call.phone).await, (vec![i], call.route));
            }
        }
        if inbound_refreshes {
            assert_eq!(sim.counters().inbound_passed, 6);
            assert_eq!(sim.counters().dropped_inbound(), 0);
        } else {
            // At 100 ms it passed; from 300 ms on it is gone. (The one at
            // 200 ms is within the timeout but too close to its edge to
            // assert on a busy machine.)
            let c = counters_until(&sim, |c| c.inbound_passed + c.dropped_expired == 6).await;
            assert!(c.inbound_passed >= 1 && c.dropped_expired >= 4, "{c:?}");
        }
        sim.shutdown().await;
    }
}

#[tokio::test]
async fn expired_mapping_gets_a_new_public_port() {
    let sim = FirewallSim::start(short_idle()).await.unwrap();
    let call = open_call(&sim).await;
    counters_until(&sim, |c| c.mappings_expired == 1).await;
    assert_eq!(sim.mappings(), vec![]);

    call.phone.send_to(b"again", call.route).await.unwrap();
    let (data, public2) = recv(&call.server).await;
    assert_eq!(data, b"again");
    assert_ne!(public2, call.public, "a new mapping reused the old port");
    assert_eq!(public2.ip(), PUBLIC_IP);
    assert_eq!(sim.public_addr(addr(&call.phone)), Some(public2));

    // The old port lingers: the server's datagram there counts as expired,
    // a stranger's as no mapping; neither reaches the phone.
    call.server.send_to(b"old port", call.public).await.unwrap();
    udp().await.send_to(b"stranger", call.public).await.unwrap();
    let c = counters_until(&sim, |c| {
        c.dropped_expired == 1 && c.dropped_no_mapping == 1
    })
    .await;
    assert_eq!((c.mappings_created, c.mappings_expired), (2, 1));
    call.server.send_to(b"new port", public2).await.unwrap();
    assert_eq!(recv(&call.phone).await, (b"new port".to_vec(), call.route));
    sim.shutdown().await;
}

/// The phone talks to servers `a` and `b`; returns the public address each
/// saw, after checking that `b` could not get in before the phone sent to it.
async fn two_remotes(sim: &FirewallSim) -> (SocketAddr, SocketAddr) {
    let (phone, a, b) = (udp().await, udp().await, udp().await);
    let route_a = sim.route(addr(&phone), addr(&a)).unwrap();
    let route_b = sim.route(addr(&phone), addr(&b)).unwrap();
    assert_ne!(route_a, route_b);

    phone.send_to(b"to a", route_a).await.unwrap();
    let (_, public_a) = recv(&a).await;
    // b is not allowed in yet, even where it shares a's mapping.
    b.send_to(b"too early", public_a).await.unwrap();
    counters_until(sim, |c| c.dropped_filtered == 1).await;

    phone.send_to(b"to b", route_b).await.unwrap();
    let (_, public_b) = recv(&b).await;

    // Each reply arrives from the route to its sender.
    a.send_to(b"from a", public_a).await.unwrap();
    assert_eq!(recv(&phone).await, (b"from a".to_vec(), route_a));
    b.send_to(b"from b", public_b).await.unwrap();
    assert_eq!(recv(&phone).await, (b"from b".to_vec(), route_b));
    assert_eq!(sim.public_addr_for(addr(&phone), addr(&a)), Some(public_a));
    assert_eq!(sim.public_addr_for(addr(&phone), addr(&b)), Some(public_b));

    let mut remotes = vec![addr(&a), addr(&b)];
    remotes.sort();
    let maps = sim.mappings();
    if public_a == public_b {
        assert_eq!(
            maps,
            vec![MappingInfo {
                inside: addr(&phone),
                public: public_a,
                remotes,
            }]
        );
    } else {
        assert_eq!(maps.len(), 2);
        assert!(maps.iter().all(|m| m.remotes.len() == 1));
    }
    (public_a, public_b)
}

#[tokio::test]
async fn endpoint_independent_mapping_shares_one_public_port() {
    let sim = FirewallSim::start(cfg()).await.unwrap();
    let (public_a, public_b) = two_remotes(&sim).await;
    assert_eq!(public_a, public_b);
    assert_eq!(sim.counters().mappings_created, 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn address_and_port_dependent_mapping_uses_a_port_per_remote() {
    let sim = FirewallSim::start(SimConfig {
        mapping: MappingBehavior::AddressAndPortDependent,
        ..cfg()
    })
    .await
    .unwrap();
    let (public_a, public_b) = two_remotes(&sim).await;
    assert_ne!(public_a, public_b);
    assert_eq!(public_a.ip(), public_b.ip());
    assert_eq!(sim.counters().mappings_created, 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_route_forwards_only_its_inside_host() {
    let sim = FirewallSim::start(cfg()).await.unwrap();
    let call = open_call(&sim).await;
    let intruder = udp().await;
    intruder.send_to(b"spoof", call.route).await.unwrap();
    counters_until(&sim, |c| c.dropped_foreign == 1).await;
    // The server's next datagram is the phone's, not the intruder's.
    call.phone.send_to(b"real", call.route).await.unwrap();
    assert_eq!(recv(&call.server).await, (b"real".to_vec(), call.public));
    assert_eq!(sim.counters().outbound, 2);
    sim.shutdown().await;
}

async fn read_exact(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    timeout(WAIT, stream.read_exact(&mut buf))
        .await
        .expect("no TCP data in time")
        .unwrap();
    buf
}

async fn read_eof(stream: &mut TcpStream) {
    let mut buf = [0u8; 16];
    let n = timeout(WAIT, stream.read(&mut buf))
        .await
        .expect("no EOF in time")
        .unwrap();
    assert_eq!(n, 0, "expected EOF, got {:?}", &buf[..n]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_flows_both_ways_and_the_public_side_stays_closed() {
    let sim = FirewallSim::start(cfg()).await.unwrap();
    let server = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let server_addr = server.local_addr().unwrap();
    // The phone also listens, to show that nothing from outside reaches it.
    let phone_listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();

    let route = sim.route_tcp(INSIDE_IP, server_addr).unwrap();
    assert_eq!(sim.route_tcp(INSIDE_IP, server_addr).unwrap(), route);
    let mut phone = timeout(WAIT, TcpStream::connect(route))
        .await
        .unwrap()
        .unwrap();
    let (mut at_server, public) = timeout(WAIT, server.accept()).await.unwrap().unwrap();
    assert_eq!(public.ip(), PUBLIC_IP);

    phone.write_all(b"hello").await.unwrap();
    assert_eq!(read_exact(&mut at_server, 5).await, b"hello");
    at_server.write_all(b"world!").await.unwrap();
    assert_eq!(read_exact(&mut phone, 6).await, b"world!");
    assert_eq!(sim.counters().tcp_opened, 1);

    // Unsolicited inbound: the flow's public port and the phone's listening
    // port on the public IP both refuse; the phone's listener sees nothing.
    let phone_port_on_public =
        SocketAddr::new(PUBLIC_IP, phone_listener.local_addr().unwrap().port());
    for target in [public, phone_port_on_public] {
        let attempt = timeout(WAIT, TcpStream::connect(target)).await.unwrap();
        assert!(
            attempt.is_err(),
            "inbound connection to {target} was accepted"
        );
    }
    assert!(
        timeout(QUIET, phone_listener.accept()).await.is_err(),
        "an outside connection reached the inside"
    );

    // A connection to the route from another IP is reset and counted, and
    // never reaches the server.
    let foreign = TcpSocket::new_v4().unwrap();
    foreign
        .bind((Ipv4Addr::new(127, 0, 0, 3), 0).into())
        .unwrap();
    let foreign = timeout(WAIT, foreign.connect(route)).await.unwrap();
    counters_until(&sim, |c| c.tcp_refused_foreign == 1).await;
    drop(foreign);
    assert!(timeout(QUIET, server.accept()).await.is_err());

    // Closing: each direction ends separately, then the flow is gone.
    phone.shutdown().await.unwrap();
    read_eof(&mut at_server).await;
    at_server.write_all(b"bye").await.unwrap();
    assert_eq!(read_exact(&mut phone, 3).await, b"bye");
    drop(at_server);
    read_eof(&mut phone).await;
    let c = counters_until(&sim, |c| c.tcp_closed == 1).await;
    assert_eq!((c.tcp_opened, c.tcp_connect_failed), (1, 0));
    sim.shutdown().await;
}

#[tokio::test]
async fn tcp_connect_failure_resets_the_inside_connection() {
    let sim = FirewallSim::start(cfg()).await.unwrap();
    // A port with nothing listening: bind, note, close.
    let closed = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let closed_addr = closed.local_addr().unwrap();
    drop(closed);

    let route = sim.route_tcp(INSIDE_IP, closed_addr).unwrap();
    let mut phone = timeout(WAIT, TcpStream::connect(route))
        .await
        .unwrap()
        .unwrap();
    let mut buf = [0u8; 8];
    let read = timeout(WAIT, phone.read(&mut buf)).await.unwrap();
    assert_eq!(
        read.map_err(|e| e.kind()),
        Err(io::ErrorKind::ConnectionReset)
    );
    let c = counters_until(&sim, |c| c.tcp_connect_failed == 1).await;
    assert_eq!(c.tcp_opened, 0);
    sim.shutdown().await;
}

#[tokio::test]
async fn shutdown_and_drop_release_every_socket() {
    for use_drop in [false, true] {
        let sim = FirewallSim::start(cfg()).await.unwrap();
        let call = open_call(&sim).await;
        if use_drop {
            drop(sim);
        } else {
            sim.shutdown().await;
        }
        // The public port and the route become free (aborted tasks release
        // them when the runtime next runs them; poll, bounded).
        for taken in [call.public, call.route] {
            timeout(WAIT, async {
                while std::net::UdpSocket::bind(taken).is_err() {
                    sleep(Duration::from_millis(5)).await;
                }
            })
            .await
            .unwrap_or_else(|_| panic!("{taken} still bound after shutdown"));
        }
    }
}

#[tokio::test]
async fn only_loopback_is_accepted() {
    let outside = SocketAddr::from(([192, 0, 2, 1], 5060));
    let err = FirewallSim::start(SimConfig {
        public_ip: outside.ip(),
        ..cfg()
    })
    .await
    .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);

    let sim = FirewallSim::start(cfg()).await.unwrap();
    let phone = udp().await;
    for (inside, dst) in [
        (addr(&phone), outside),
        (outside, addr(&phone)),
        (addr(&phone), SocketAddr::from(([127, 0, 0, 1], 0))),
        (addr(&phone), "[::1]:5060".parse().unwrap()),
    ] {
        let err = sim.route(inside, dst).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{inside} → {dst}");
    }
    assert_eq!(
        sim.route_tcp(INSIDE_IP, outside).unwrap_err().kind(),
        io::ErrorKind::InvalidInput
    );
    sim.shutdown().await;
}
