//! A media relay of the softswitch's own: plain std UDP sockets, driven by
//! the MPR engine's [`RelayCommand`]s through the [`Relay`] trait. It is
//! what a softswitch would replace with the relay it already has (or a
//! kernel fast path); the engine neither knows nor cares.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::Instant;

use pinhole_core::alg::live::Relay;
use pinhole_core::relay::{RelayCommand, RelayReport, Remote};
use pinhole_core::{Component, LegId};

/// One leg: its sockets (RTP, RTCP) and where each exchanges media.
struct Leg {
    socks: [Option<UdpSocket>; 2],
    remote: [Remote; 2],
    peer: Option<LegId>,
}

/// A std-socket relay: strict source checks, latching, forwarding between
/// paired legs. Single-threaded: [`UdpRelay::pump`] moves what arrived.
#[derive(Default)]
pub struct UdpRelay {
    legs: HashMap<LegId, Leg>,
    /// Datagrams forwarded since the start.
    pub forwarded: u64,
    /// Datagrams dropped for a wrong source or no peer.
    pub dropped: u64,
    /// Legs whose ports could not be opened.
    pub refused: u64,
}

fn index(c: Component) -> usize {
    match c {
        Component::Rtp => 0,
        Component::Rtcp => 1,
    }
}

fn bind(addr: SocketAddr) -> io::Result<UdpSocket> {
    let s = UdpSocket::bind(addr)?;
    s.set_nonblocking(true)?;
    Ok(s)
}

impl Relay for UdpRelay {
    fn apply(&mut self, cmd: RelayCommand) -> io::Result<()> {
        match cmd {
            RelayCommand::OpenLeg { leg, rtp, rtcp } => {
                // A port another process holds fails here; the engine then
                // plans the stream on another pair.
                let socks = bind(rtp).and_then(|r| Ok((r, rtcp.map(bind).transpose()?)));
                let (rtp, rtcp) = socks.inspect_err(|_| self.refused += 1)?;
                self.legs.insert(
                    leg,
                    Leg {
                        socks: [Some(rtp), rtcp],
                        remote: [Remote::Unbound; 2],
                        peer: None,
                    },
                );
            }
            RelayCommand::SetRemote {
                leg,
                component,
                remote,
            } => {
                if let Some(l) = self.legs.get_mut(&leg) {
                    l.remote[index(component)] = remote;
                }
            }
            RelayCommand::Connect { leg, peer } => {
                for (a, b) in [(leg, peer), (peer, leg)] {
                    if let Some(l) = self.legs.get_mut(&a) {
                        l.peer = Some(b);
                    }
                }
            }
            RelayCommand::CloseLeg { leg } => {
                if let Some(l) = self.legs.remove(&leg)
                    && let Some(p) = l.peer.and_then(|p| self.legs.get_mut(&p))
                {
                    p.peer = None;
                }
            }
            // The APS side of the contract: not an MPR's business.
            RelayCommand::MapLocal { .. }
            | RelayCommand::DeliverLocal { .. }
            | RelayCommand::UnmapLocal { .. } => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "client-side command sent to an MPR relay",
                ));
            }
        }
        Ok(())
    }

    fn bind(&mut self, _local: SocketAddr) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "an MPR relay binds only leg sockets",
        ))
    }
}

impl UdpRelay {
    /// Legs open now.
    pub fn legs(&self) -> usize {
        self.legs.len()
    }

    /// Moves every datagram waiting on a leg socket to the peer leg's
    /// remote; returns the reports for the engine (latches, activity).
    pub fn pump(&mut self, now: Instant) -> Vec<RelayReport> {
        let mut reports = Vec::new();
        let mut active = Vec::new();
        let mut buf = [0u8; 2048];
        let ids: Vec<LegId> = self.legs.keys().copied().collect();
        for id in ids {
            for c in [Component::Rtp, Component::Rtcp] {
                let i = index(c);
                let recv = |legs: &HashMap<LegId, Leg>, buf: &mut [u8]| {
                    legs.get(&id)?.socks[i].as_ref()?.recv_from(buf).ok()
                };
                while let Some((n, src)) = recv(&self.legs, &mut buf) {
                    let Some(leg) = self.legs.get_mut(&id) else {
                        break;
                    };
                    // Strict source: only the bound (or latching) remote.
                    let ok = match leg.remote[i] {
                        Remote::Fixed(a) => a == src,
                        Remote::Latch { ip, until } if ip == src.ip() && now <= until => {
                            leg.remote[i] = Remote::Fixed(src);
                            reports.push(RelayReport::Latched {
                                leg: id,
                                component: c,
                                source: src,
                            });
                            true
                        }
                        _ => false,
                    };
                    let out = leg.peer.and_then(|p| self.legs.get(&p)).and_then(|p| {
                        match (p.socks[i].as_ref(), p.remote[i]) {
                            (Some(s), Remote::Fixed(to)) => Some((s, to)),
                            _ => None,
                        }
                    });
                    match (ok, out) {
                        (true, Some((s, to))) if s.send_to(&buf[..n], to).is_ok() => {
                            self.forwarded += 1;
                            if !active.contains(&id) {
                                active.push(id);
                            }
                        }
                        _ => self.dropped += 1,
                    }
                }
            }
        }
        // Activity is coalesced: one report per leg and pump.
        reports.extend(
            active
                .into_iter()
                .map(|leg| RelayReport::Activity { leg, at: now }),
        );
        reports
    }
}
