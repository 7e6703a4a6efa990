//! The body of the `h248_proxy` fuzz target: a datagram into the MPR's
//! and an APS's H.248 ALGs from every direction, after a registration, a
//! ServiceChange and an Add so the gateway, transaction and media paths
//! run. Never a panic; everything they send parses as H.248 (the MPR's
//! messages into a pinhole once the line naming the gateway is off); and
//! once time passes, every call, termination and transaction is gone.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pinhole_core::alg::live::{LiveClient, LiveMpr, NoSockets, register_direct};
use pinhole_core::alg::{ClientSignaling, MprSignaling};
use pinhole_core::client;
use pinhole_core::mpr;
use pinhole_core::ports::PortRange;
use pinhole_core::types::{Receive, Transmit};
use pinhole_core::wire::Protocol;

use super::{Aps, ApsConfig, Mpr, MprConfig, untag};

fn sa(s: &str) -> SocketAddr {
    s.parse()
        .unwrap_or_else(|_| unreachable!("address constants parse"))
}

const MPR: &str = "203.0.113.10:2944";
const MG_PORT: &str = "203.0.113.10:2950";
const MGC: &str = "192.0.2.5:2944";
const APS: &str = "10.1.0.2:2944";
const MG: &str = "10.1.0.10:2944";

/// The gateway's ServiceChange.
pub const SERVICE_CHANGE: &[u8] = b"MEGACO/1 [10.1.0.10]:2944\r\nTransaction = 1 {\r\n  Context = - {\r\n    ServiceChange = ROOT {Services {Method = Restart}}\r\n  }\r\n}\r\n";
/// The MGC's Add, with CHOOSE in Local and a public party in Remote.
pub const ADD: &[u8] = b"MEGACO/1 [192.0.2.5]:2944\r\nTransaction = 7 {\r\n  Context = $ {\r\n    Add = RTP/$ {\r\n      Media { Stream = 1 {\r\n        Local {\r\nv=0\r\nc=IN IP4 $\r\nm=audio $ RTP/AVP 0\r\n        },\r\n        Remote {\r\nv=0\r\nc=IN IP4 198.51.100.20\r\nm=audio 7000 RTP/AVP 0\r\n        }\r\n      } }\r\n    }\r\n  }\r\n}\r\n";
/// The gateway's reply, with its media in Local.
pub const ADD_REPLY: &[u8] = b"MEGACO/1 [10.1.0.10]:2944\r\nReply = 7 {\r\n  Context = 5 {\r\n    Add = RTP/1 {\r\n      Media { Stream = 1 {\r\n        Local {\r\nv=0\r\nc=IN IP4 10.1.0.10\r\nm=audio 4000 RTP/AVP 0\r\n        }\r\n      } }\r\n    }\r\n  }\r\n}\r\n";

fn check(t: &Transmit) {
    let bytes = untag(&t.payload).map_or(&t.payload[..], |(_, rest)| rest);
    assert!(
        crate::parse(bytes).is_ok(),
        "sent H.248 that does not parse: {:?}",
        String::from_utf8_lossy(&t.payload)
    );
}

/// Feeds `data` everywhere; see the module docs.
pub fn h248_proxy(data: &[u8]) {
    #[allow(clippy::disallowed_methods)]
    let now = Instant::now();
    let mut mc = mpr::Config::new(sa(MPR).ip(), [1; 32]);
    mc.control_ports = vec![2944];
    mc.networks
        .push(mpr::NetworkConfig::new("corp1", b"s".to_vec()));
    let Ok(mut engine) = mpr::Engine::new(mc, now) else {
        return;
    };
    let cc = client::Config::new(
        "corp1",
        b"s".to_vec(),
        Protocol::H248,
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
    let mut mpr_alg = Mpr::new(MprConfig::new(sa(MPR), sa(MGC), 2950..=2951));
    let mut aps = Aps::new(ApsConfig::new(sa(APS), sa(APS).ip(), ports, [3; 32]));

    // The MPR: the gateway announces itself, the MGC adds a termination,
    // the gateway answers; the input from every side in between.
    let mut to_mpr = |local: &str, remote: &str, bytes: &[u8]| {
        mpr_alg.handle_datagram(
            now,
            &mut LiveMpr::new(&mut engine, &mut NoSockets),
            Receive {
                local: sa(local),
                remote: sa(remote),
                bytes,
                flow: Default::default(),
            },
        );
        while let Some(t) = mpr_alg.poll_transmit() {
            check(&t);
        }
    };
    to_mpr(MPR, APS, SERVICE_CHANGE);
    to_mpr(MG_PORT, MGC, ADD);
    to_mpr(MPR, APS, data);
    to_mpr(MPR, APS, ADD_REPLY);
    to_mpr(MG_PORT, MGC, data);
    to_mpr(MPR, APS, data);
    to_mpr(MPR, MGC, data);

    // The APS: the gateway announces itself, the MPR's Add (with the
    // line naming the gateway), the input from inside and from the MPR.
    let tagged_add = super::tag("[10.1.0.10]:2944", ADD);
    let tagged_data = super::tag("[10.1.0.10]:2944", data);
    for (remote, bytes) in [
        (MG, SERVICE_CHANGE),
        (MPR, &tagged_add[..]),
        (MG, data),
        (MG, ADD_REPLY),
        (MPR, data),
        (MPR, &tagged_data[..]),
        (MG, data),
    ] {
        aps.handle_datagram(
            now,
            &mut LiveClient::new(&mut ce, &mut NoSockets),
            Receive {
                local: sa(APS),
                remote: sa(remote),
                bytes,
                flow: Default::default(),
            },
        );
        while let Some(t) = aps.poll_transmit() {
            check(&t);
        }
    }
    let later = now + Duration::from_secs(5 * 3600);
    mpr_alg.handle_timeout(later, &mut LiveMpr::new(&mut engine, &mut NoSockets));
    aps.handle_timeout(later, &mut LiveClient::new(&mut ce, &mut NoSockets));
    assert_eq!(mpr_alg.calls(), 0, "every call expires");
    assert_eq!(mpr_alg.transactions(), 0, "every transaction expires");
    assert_eq!(aps.terminations(), 0, "every termination expires");
}
