//! The body of the `mgcp_proxy` fuzz target: a datagram into the MPR's
//! and an APS's MGCP ALGs and a smart gateway, from every direction, after
//! a registration and a CRCX so the transaction and media paths run. Never
//! a panic, and everything they send parses as MGCP.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pinhole_core::alg::live::{LiveClient, LiveMpr, NoSockets, register_direct};
use pinhole_core::alg::{ClientSignaling, MprSignaling};
use pinhole_core::client;
use pinhole_core::mpr;
use pinhole_core::ports::PortRange;
use pinhole_core::types::Receive;
use pinhole_core::wire::Protocol;

use super::{Aps, ApsConfig, Mpr, MprConfig, SmartGateway, SmartGatewayConfig};

fn sa(s: &str) -> SocketAddr {
    s.parse()
        .unwrap_or_else(|_| unreachable!("address constants parse"))
}

const MPR: &str = "203.0.113.10:2727";
const CA: &str = "192.0.2.5:2727";
const APS: &str = "10.1.0.2:2727";
const GW: &str = "10.1.0.10:2427";

/// A CRCX from the call agent, without SDP (the gateway describes first).
pub const CRCX: &[u8] = b"CRCX 1001 aaln/1@gw1.corp1.example MGCP 1.0\r\nC: F1\r\nM: recvonly\r\n";
/// The gateway's 200 to it, with SDP.
pub const OK: &[u8] = b"200 1001 OK\r\nI: 7C\r\n\r\nv=0\r\no=- 1 1 IN IP4 10.1.0.10\r\ns=-\r\n\
c=IN IP4 10.1.0.10\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";

fn check(p: &[u8]) {
    assert!(
        crate::parse_datagram(p).is_ok(),
        "sent MGCP that does not parse: {:?}",
        String::from_utf8_lossy(p)
    );
}

/// Feeds `data` everywhere; see the module docs.
pub fn mgcp_proxy(data: &[u8]) {
    #[allow(clippy::disallowed_methods)]
    let now = Instant::now();
    let mut mc = mpr::Config::new(sa(MPR).ip(), [1; 32]);
    mc.control_ports = vec![2727];
    let mut n = mpr::NetworkConfig::new("corp1", b"s".to_vec());
    n.domains.push("corp1.example".into());
    mc.networks.push(n);
    let Ok(mut engine) = mpr::Engine::new(mc, now) else {
        return;
    };
    let cc = client::Config::new(
        "corp1",
        b"s".to_vec(),
        Protocol::Mgcp,
        sa(APS),
        sa(MPR),
        [2; 32],
    );
    let Ok(mut ce) = client::Engine::new(cc, now) else {
        return;
    };
    if !register_direct(now, &mut engine, &mut ce) {
        return;
    }
    let Ok(ports) = PortRange::new(20_000, 20_099) else {
        return;
    };
    let mut mpr_alg = Mpr::new(MprConfig::new(sa(MPR)));
    let mut pc = ApsConfig::new(sa(APS), sa(APS).ip(), ports, [3; 32]);
    pc.gateways.push(("corp1.example".into(), sa(GW)));
    let mut aps = Aps::new(pc);
    let mut gw = SmartGateway::new(SmartGatewayConfig::new(sa(GW), sa(GW).ip(), ports, [4; 32]));

    // The MPR: a CRCX from the call agent, its answer from the network,
    // then the input from both sides.
    let to_mpr = |alg: &mut Mpr, engine: &mut mpr::Engine, remote: &str, bytes: &[u8]| {
        alg.handle_datagram(
            now,
            &mut LiveMpr::new(engine, &mut NoSockets),
            Receive {
                local: sa(MPR),
                remote: sa(remote),
                bytes,
                flow: Default::default(),
            },
        );
        while let Some(t) = alg.poll_transmit() {
            check(&t.payload);
        }
    };
    to_mpr(&mut mpr_alg, &mut engine, CA, CRCX);
    to_mpr(&mut mpr_alg, &mut engine, APS, data);
    to_mpr(&mut mpr_alg, &mut engine, APS, OK);
    to_mpr(&mut mpr_alg, &mut engine, CA, data);
    to_mpr(&mut mpr_alg, &mut engine, APS, data);

    // The APS and the smart gateway: the CRCX from the MPR, then the input
    // from inside and from the MPR.
    for (remote, bytes) in [(MPR, CRCX), (GW, data), (GW, OK), (MPR, data), (GW, data)] {
        let rx = Receive {
            local: sa(APS),
            remote: sa(remote),
            bytes,
            flow: Default::default(),
        };
        aps.handle_datagram(now, &mut LiveClient::new(&mut ce, &mut NoSockets), rx);
        while let Some(t) = aps.poll_transmit() {
            check(&t.payload);
        }
        gw.handle_datagram(now, &mut LiveClient::new(&mut ce, &mut NoSockets), rx);
        while let Some(t) = gw.poll_transmit() {
            check(&t.payload);
        }
    }
    let later = now + Duration::from_secs(5 * 3600);
    mpr_alg.handle_timeout(later, &mut LiveMpr::new(&mut engine, &mut NoSockets));
    aps.handle_timeout(later, &mut LiveClient::new(&mut ce, &mut NoSockets));
    gw.handle_timeout(later, &mut LiveClient::new(&mut ce, &mut NoSockets));
    assert_eq!(mpr_alg.calls(), 0, "every call expires");
    assert_eq!(aps.connections(), 0, "every connection expires");
}
