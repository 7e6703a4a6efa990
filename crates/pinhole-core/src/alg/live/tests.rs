//! The relay contract over a relay that refuses ports and records binds.

use std::collections::HashSet;
use std::net::SocketAddr;

use super::*;
use crate::intent::{IntentKind, MediaEndpoint, Origin};
use crate::mpr::{Config, NetworkConfig};
use crate::ports::PortRange;

/// A relay on which some ports are held by another process, and which
/// records what it was asked, in order.
#[derive(Default)]
struct Busy {
    taken: HashSet<u16>,
    log: Vec<String>,
}

impl Relay for Busy {
    fn apply(&mut self, cmd: RelayCommand) -> std::io::Result<()> {
        if let RelayCommand::OpenLeg { rtp, .. } = cmd
            && self.taken.contains(&rtp.port())
        {
            self.log.push(format!("refused {}", rtp.port()));
            return Err(std::io::Error::from(std::io::ErrorKind::AddrInUse));
        }
        if let RelayCommand::OpenLeg { rtp, .. } = cmd {
            self.log.push(format!("open {}", rtp.port()));
        }
        Ok(())
    }

    fn bind(&mut self, local: SocketAddr) -> std::io::Result<()> {
        self.log.push(format!("bind {local}"));
        Ok(())
    }
}

fn engine(now: Instant) -> mpr::Engine {
    let mut cfg = Config::new("203.0.113.10".parse().unwrap(), [3; 32]);
    cfg.ports = PortRange {
        first: 30_000,
        last: 30_009,
    };
    cfg.networks
        .push(NetworkConfig::new("corp1", b"secret".to_vec()));
    mpr::Engine::new(cfg, now).unwrap()
}

#[test]
fn a_plan_never_names_a_port_the_relay_could_not_open() {
    let now = crate::test_instant();
    let mut mpr = engine(now);
    // Three of the five pairs are held by another process: the two legs
    // of a public offer fit only on 30 006 and 30 008.
    let mut relay = Busy {
        taken: [30_000, 30_002, 30_004].into_iter().collect(),
        ..Busy::default()
    };
    let call = CallKey::new("c1");
    let eps = [MediaEndpoint::rtp(0, "192.0.2.7:4000".parse().unwrap())];
    let intent = MediaIntent {
        kind: IntentKind::Offer,
        from: crate::Side::A,
        origin: Origin::Public,
        toward: Origin::Public,
        endpoints: &eps,
        stranger: None,
    };
    let mut ctx = LiveMpr::new(&mut mpr, &mut relay);
    let r = ctx.plan(now, &call, &intent);
    assert!(
        relay.log.iter().any(|l| l.starts_with("refused")),
        "the relay refused some port: {:?}",
        relay.log
    );
    let plan = r.expect("the free pairs carry the call after retries");
    let port = plan.endpoints[0].addr.port();
    assert!(
        [30_006, 30_008].contains(&port),
        "the plan names {port}, which the relay could not open"
    );
    // The engine dropped every leg it could not open.
    assert_eq!(
        mpr.stats().relay_open_failures as usize,
        relay
            .log
            .iter()
            .filter(|l| l.starts_with("refused"))
            .count()
    );
    assert_eq!(mpr.poll_command(), None, "every command was carried out");
}

#[test]
fn a_free_relay_gets_the_plan_in_one_pass() {
    let now = crate::test_instant();
    let mut mpr = engine(now);
    let mut relay = Busy::default();
    let eps = [MediaEndpoint::rtp(0, "192.0.2.7:4000".parse().unwrap())];
    let intent = MediaIntent {
        kind: IntentKind::Offer,
        from: crate::Side::A,
        origin: Origin::Public,
        toward: Origin::Public,
        endpoints: &eps,
        stranger: None,
    };
    let plan = LiveMpr::new(&mut mpr, &mut relay)
        .plan(now, &CallKey::new("c2"), &intent)
        .unwrap();
    let port = plan.endpoints[0].addr.port();
    assert!(
        relay.log.contains(&format!("open {port}")),
        "{:?}",
        relay.log
    );
    assert_eq!(mpr.stats().relay_open_failures, 0);
}

#[test]
fn the_media_socket_is_bound_before_the_cmph_leaves() {
    let now = crate::test_instant();
    let cfg = client::Config::new(
        "corp1",
        b"secret".to_vec(),
        Protocol::Sip,
        "10.0.0.2:5060".parse().unwrap(),
        "203.0.113.10:5060".parse().unwrap(),
        [4; 32],
    );
    let mut aps = client::Engine::new(cfg, now).unwrap();
    let mut relay = Busy::default();
    let req = PinholeRequest {
        local: "10.0.0.2:20000".parse().unwrap(),
        relay: Some("203.0.113.10:30000".parse().unwrap()),
        rtcp: RtcpMode::Pair,
        key: b"k".to_vec(),
        inside: Some("10.0.0.9:4000".parse().unwrap()),
    };
    let mut ctx = LiveClient::new(&mut aps, &mut relay);
    // Not registered yet: the engine may refuse, but the sockets come first.
    let _ = ctx.open_pinhole(now, req);
    assert_eq!(
        relay.log,
        ["bind 10.0.0.2:20000", "bind 10.0.0.2:20001"],
        "RTP and RTCP bound, in that order"
    );
}

#[test]
fn a_direct_registration_gives_the_network_a_route() {
    let now = crate::test_instant();
    let mut mpr = engine(now);
    let cfg = client::Config::new(
        "corp1",
        b"secret".to_vec(),
        Protocol::H248,
        "10.0.0.2:2944".parse().unwrap(),
        "203.0.113.10:2944".parse().unwrap(),
        [4; 32],
    );
    let mut cl = client::Engine::new(cfg, now).unwrap();
    assert!(mpr.route("corp1", Protocol::H248).is_none());
    assert!(register_direct(now, &mut mpr, &mut cl));
    let r = mpr.route("corp1", Protocol::H248).unwrap();
    assert_eq!(r.pinhole, "10.0.0.2:2944".parse().unwrap());
    // A wrong secret never registers.
    let bad = client::Config::new(
        "corp1",
        b"wrong".to_vec(),
        Protocol::Sip,
        "10.0.0.3:5060".parse().unwrap(),
        "203.0.113.10:5060".parse().unwrap(),
        [5; 32],
    );
    let mut cl = client::Engine::new(bad, now).unwrap();
    assert!(!register_direct(now, &mut mpr, &mut cl));
}
