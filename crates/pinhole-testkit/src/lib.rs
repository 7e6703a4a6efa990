//! Test kit: a deterministic simulated IP network with NAT firewalls and
//! simulated time, for sans-IO engine tests. No sockets, no sleeps: the test
//! drives the clock ([`Net::advance_to`]) and pulls datagrams
//! ([`Net::poll_delivery`]).
//!
//! ```
//! use std::net::SocketAddr;
//! use pinhole_testkit::{Datagram, FirewallConfig, Net, base_instant};
//!
//! let mut net = Net::new(base_instant(), 1);
//! let internet = net.add_zone("internet");
//! let corp = net.add_zone("corp");
//! net.add_host_ip(internet, "198.51.100.10".parse().unwrap());
//! net.add_host_ip(corp, "10.0.0.2".parse().unwrap());
//! let fw = net.add_firewall(corp, internet, "203.0.113.1".parse().unwrap(), FirewallConfig::default());
//!
//! let client: SocketAddr = "10.0.0.2:5000".parse().unwrap();
//! let mpr: SocketAddr = "198.51.100.10:3478".parse().unwrap();
//! net.send(Datagram { src: client, dst: mpr, payload: b"hello".to_vec() });
//! let seen = net.step().unwrap();
//! assert_eq!(seen.src.ip(), net.firewall(fw).public_ip()); // translated
//! net.send(Datagram { src: mpr, dst: seen.src, payload: b"reply".to_vec() });
//! assert_eq!(net.step().unwrap().dst, client); // the pinhole lets the reply in
//! ```
#![forbid(unsafe_code)]

pub mod bed;
mod clock;
pub mod corpus;
pub mod erlang_asn1;
pub mod exhaust;
mod firewall;
pub mod ladder;
mod net;
mod prng;
pub mod scripted;
pub mod shared;
pub mod sip;
/// Proptest strategies shared by the workspace's tests.
pub mod strategies;
#[cfg(test)]
mod tests;
mod world;

pub use clock::{Clock, base_instant};
pub use firewall::{Firewall, FirewallConfig, FirewallCounters, MappingBehavior, MappingInfo};
pub use net::{Datagram, FirewallId, Net, NetDrops, ZoneId};
pub use world::{ClientId, Corp, Namer, RelayCounters, Rung, World};
