//! Pinhole's tokio runtime: the parts of Pinhole that own real sockets.
//!
//! Today it holds [`firewall`], a userspace stateful NAT firewall
//! simulator on loopback sockets that tests and the demo use to show a real
//! pinhole, blocked and then open, without root, and [`relay`], the media
//! relay data plane (batched UDP forwarding with strict source checks on a
//! few worker threads). The drivers that run the sans-IO engines of
//! `pinhole-core` over tokio sockets will join them as sibling modules.
//!
//! [`stream`] carries signaling over TCP and TLS: one task per connection,
//! whole frames to the driver, bounded reads and writes.
//!
//! [`logs`] limits log lines per callsite (a flood of datagrams must not
//! become a flood of lines); the daemons install it on their output.
//!
//! [`tls`] holds the TLS configs for signaling over TCP (rustls with ring:
//! the MPR's certificate, reloadable; the APS's CA and optional client
//! certificate) and [`tls::testca`], which makes test certificates at run
//! time so nothing checked in expires.
//!
//! The firewall simulator binds to loopback addresses only; the relay binds
//! exactly the addresses its commands name.
//!
//! # Example
//!
//! An inside host sends to a remote through the simulator; the remote's
//! reply passes because the inside host opened the pinhole.
//!
//! ```
//! use std::time::Duration;
//! use pinhole_net::firewall::{FirewallSim, SimConfig};
//! use tokio::net::UdpSocket;
//! use tokio::time::timeout;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let sim = FirewallSim::start(SimConfig::default()).await?;
//! let phone = UdpSocket::bind("127.0.0.1:0").await?; // inside host
//! let server = UdpSocket::bind("127.0.0.1:0").await?; // outside remote
//!
//! // The phone reaches the server through its route.
//! let route = sim.route(phone.local_addr()?, server.local_addr()?)?;
//! phone.send_to(b"hello", route).await?;
//!
//! // The server sees the firewall's public address ...
//! let mut buf = [0u8; 64];
//! let wait = Duration::from_secs(5);
//! let (n, public) = timeout(wait, server.recv_from(&mut buf)).await??;
//! assert_eq!(&buf[..n], b"hello");
//! assert_eq!(Some(public), sim.public_addr(phone.local_addr()?));
//!
//! // ... and its reply comes back to the phone from the route.
//! server.send_to(b"welcome", public).await?;
//! let (n, from) = timeout(wait, phone.recv_from(&mut buf)).await??;
//! assert_eq!((&buf[..n], from), (&b"welcome"[..], route));
//! assert_eq!(sim.counters().inbound_passed, 1);
//!
//! sim.shutdown().await;
//! # Ok(())
//! # }
//! ```
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod driver;
pub mod firewall;
pub mod logs;
pub mod relay;
pub mod stream;
pub mod tls;
