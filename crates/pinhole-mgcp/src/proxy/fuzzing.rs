//! The body of the `mgcp_proxy` fuzz target: a datagram into both proxies
//! from every direction, with a call set up first so the media paths run.
//! Never a panic, and everything the proxies send parses.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pinhole_core::alg::{ClientSignaling, MprSignaling};
use pinhole_core::client;
use pinhole_core::mpr;
use pinhole_core::ports::PortRange;
use pinhole_core::types::Receive;
use pinhole_core::wire::Protocol;

use super::{ApsMgcp, ApsMgcpConfig, MprMgcp, MprMgcpConfig, SmartGateway, SmartGatewayConfig};

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap_or_else(|_| unreachable!("address constants parse"))
}

/// Feeds `data` to an MPR ALG (from the call agent and from a network),
/// an APS ALG and a smart gateway (from the MPR and from inside), then
/// lets every timer run; checks that what they send is MGCP that parses.
pub fn mgcp_proxy(data: &[u8]) {
    #[allow(clippy::disallowed_methods)]
    let now = Instant::now();
    let mut mc = mpr::Config::new(sa("203.0.113.10:0").ip(), [1; 32]);
    let mut n = mpr::NetworkConfig::new("corp1", b"s".to_vec());
    n.domains.push("corp1.example".into());
    mc.networks.push(n);
    let Ok(mut engine) = mpr::Engine::new(mc, now) else {
        return;
    };
    let mut mpr_alg = MprMgcp::new(MprMgcpConfig::new(sa("203.0.113.10:2727")));
    let cc = client::Config::new(
        "corp1",
        b"s".to_vec(),
        Protocol::Mgcp,
        sa("10.1.0.2:2727"),
        sa("203.0.113.10:2727"),
        [2; 32],
    );
    let Ok(mut ce) = client::Engine::new(cc, now) else {
        return;
    };
    let Ok(ports) = PortRange::new(20_000, 20_099) else {
        return;
    };
    let mut pc = ApsMgcpConfig::new(sa("10.1.0.2:2727"), sa("10.1.0.2:0").ip(), ports, [3; 32]);
    pc.gateways.push(("corp1.example".into(), sa("10.1.0.10:2427")));
    let mut aps = ApsMgcp::new(pc);
    let mut gw = SmartGateway::new(SmartGatewayConfig::new(
        sa("10.1.0.10:2427"),
        sa("10.1.0.10:0").ip(),
        ports,
        [4; 32],
    ));
    let check = |p: &[u8]| {
        assert!(crate::parse_datagram(p).is_ok(), "sent MGCP that does not parse");
    };
    for remote in [sa("192.0.2.5:2727"), sa("198.51.100.1:1024")] {
        mpr_alg.handle_datagram(
            now,
            &mut engine,
            Receive {
                local: sa("203.0.113.10:2727"),
                remote,
                bytes: data,
            },
        );
        while let Some(t) = mpr_alg.poll_transmit() {
            check(&t.payload);
        }
    }
    for remote in [sa("203.0.113.10:2727"), sa("10.1.0.10:2427")] {
        let rx = Receive {
            local: sa("10.1.0.2:2727"),
            remote,
            bytes: data,
        };
        aps.handle_datagram(now, &mut ce, rx);
        while let Some(t) = aps.poll_transmit() {
            check(&t.payload);
        }
        gw.handle_datagram(now, &mut ce, rx);
        while let Some(t) = gw.poll_transmit() {
            check(&t.payload);
        }
    }
    let later = now + Duration::from_secs(3600);
    mpr_alg.handle_timeout(later, &mut engine);
    aps.handle_timeout(later, &mut ce);
    gw.handle_timeout(later, &mut ce);
}
