//! A scripted MPR engine for ALG tests that feed one proxy by hand: one
//! network (`corp`) serving a set of domains behind one signaling pinhole,
//! and plans that give relay addresses on one IP (disabled and held
//! streams keep theirs). Whatever an ALG sends to [`ScriptedMpr::pinhole`]
//! went into the network.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use pinhole_core::alg::MprContext;
use pinhole_core::intent::{IntentKind, MediaIntent, MediaPlan, PlannedEndpoint};
use pinhole_core::mpr::{IntentError, Route};
use pinhole_core::types::{CallKey, Flow};
use pinhole_core::wire::Protocol;

/// The engine as an MPR-side ALG sees it, scripted.
#[derive(Debug)]
pub struct ScriptedMpr {
    /// The network's signaling pinhole (every protocol's).
    pub pinhole: SocketAddr,
    /// The MPR socket the network's route leaves from.
    pub local: SocketAddr,
    /// How the network's route was registered: UDP, or the connection
    /// it opened (its route carries this flow).
    pub flow: Flow,
    /// The relay's IP, in every plan.
    pub relay_ip: IpAddr,
    /// The domains network `corp` serves (lower case).
    pub domains: Vec<String>,
    /// Plans made (teardowns not counted).
    pub plans: usize,
    /// Provisional answers the ALG reported ([`MprContext::progress`]).
    pub progressed: usize,
    next_port: u16,
    now: Instant,
}

impl ScriptedMpr {
    /// Network `corp` serving `domains` through `pinhole`, routes leaving
    /// from `local`, relay ports from 30000 on `relay_ip`.
    pub fn new(
        now: Instant,
        local: SocketAddr,
        pinhole: SocketAddr,
        relay_ip: IpAddr,
        domains: &[&str],
    ) -> Self {
        Self {
            pinhole,
            local,
            flow: Flow::UDP,
            relay_ip,
            domains: domains.iter().map(|d| d.to_ascii_lowercase()).collect(),
            plans: 0,
            progressed: 0,
            next_port: 30_000,
            now,
        }
    }

    /// True when `addr` is a relay address a plan could have written.
    pub fn is_relay(&self, addr: SocketAddr) -> bool {
        addr.ip() == self.relay_ip
    }
}

impl MprContext for ScriptedMpr {
    fn plan(
        &mut self,
        _: Instant,
        _: &CallKey,
        intent: &MediaIntent<'_>,
    ) -> Result<MediaPlan, IntentError> {
        if intent.kind == IntentKind::Teardown {
            return Ok(MediaPlan::default());
        }
        self.plans += 1;
        let mut endpoints = Vec::with_capacity(intent.endpoints.len());
        for e in intent.endpoints {
            if e.is_disabled() || e.is_hold() {
                endpoints.push(PlannedEndpoint {
                    index: e.index,
                    addr: e.addr,
                    rtcp_addr: e.rtcp_addr,
                });
                continue;
            }
            let port = self.next_port;
            self.next_port = self.next_port.wrapping_add(2).max(30_000);
            endpoints.push(PlannedEndpoint {
                index: e.index,
                addr: SocketAddr::new(self.relay_ip, port),
                rtcp_addr: e
                    .rtcp_addr
                    .map(|_| SocketAddr::new(self.relay_ip, port + 1)),
            });
        }
        Ok(MediaPlan { endpoints })
    }

    fn progress(&mut self, _: Instant, _: &CallKey) {
        self.progressed += 1;
    }

    fn network_for_pinhole(&self, _: Protocol, pinhole: SocketAddr) -> Option<String> {
        (pinhole == self.pinhole).then(|| "corp".to_owned())
    }

    fn network_for_domain(&self, domain: &str) -> Option<String> {
        self.domains
            .contains(&domain.to_ascii_lowercase())
            .then(|| "corp".to_owned())
    }

    fn route(&self, network: &str, _: Protocol) -> Option<Route> {
        (network == "corp").then(|| Route {
            pinhole: self.pinhole,
            local: self.local,
            expires: self.now + Duration::from_secs(3600),
            flow: self.flow,
        })
    }
}
