//! Media pinholes: CMPH reserve and bind (Figs. 7, 8, 11), the no-response
//! variant, keepalives on hold, and the APS's B ↔ A mapping.

use std::net::SocketAddr;
use std::time::Instant;

use super::transaction::Purpose;
use super::{
    ClientError, CmphMode, Engine, Event, Failure, PinholeId, PinholeRequest, Timer, component_of,
};
use crate::relay::RelayCommand;
use crate::wire::{self, Class, Message, Method, RtcpMode, TransactionId};

pub(super) struct Pinhole {
    pub(super) req: PinholeRequest,
    relay: Option<SocketAddr>,
    mapped: [Option<SocketAddr>; 2],
    last_traffic: [Instant; 2],
    open: bool,
    /// The no-response variant: the indications still to repeat.
    indications: Vec<(SocketAddr, SocketAddr, Vec<u8>)>,
    copies_left: u32,
}

impl Pinhole {
    fn components(&self) -> usize {
        if self.req.rtcp == RtcpMode::Pair {
            2
        } else {
            1
        }
    }

    /// Local and relay addresses of a component.
    fn ends(&self, c: usize) -> Option<(SocketAddr, SocketAddr)> {
        let relay = self.relay?;
        Some(if c == 0 {
            (self.req.local, relay)
        } else {
            (plus_one(self.req.local), plus_one(relay))
        })
    }

    pub(super) fn traffic(&mut self, now: Instant, local: SocketAddr) {
        for c in 0..self.components() {
            if self.ends(c).map(|e| e.0) == Some(local) {
                self.last_traffic[c] = self.last_traffic[c].max(now);
            }
        }
    }
}

fn plus_one(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip(), a.port().wrapping_add(1))
}

impl Engine {
    /// Opens a media pinhole from `req.local`. The result arrives as
    /// [`Event::PinholeOpened`] or [`Event::PinholeFailed`].
    pub fn open_pinhole(
        &mut self,
        now: Instant,
        req: PinholeRequest,
    ) -> Result<PinholeId, ClientError> {
        if self.reg.pinhole().is_none() {
            return Err(ClientError::NotRegistered);
        }
        if req.key.is_empty() || req.key.len() > 64 {
            return Err(ClientError::BadLegKey);
        }
        if req.relay.is_none() && self.backing_off(now) {
            // Only a reserve asks the MPR for ports; a bind uses a leg
            // the MPR already planned.
            self.stats.cmph_held_back += 1;
            return Err(ClientError::BackingOff);
        }
        let id = self.next_pinhole;
        self.next_pinhole += 1;
        let relay = req.relay;
        let local = req.local;
        self.by_local.insert(local, id);
        if req.rtcp == RtcpMode::Pair {
            self.by_local.insert(plus_one(local), id);
        }
        self.pinholes.insert(
            id,
            Pinhole {
                req,
                relay,
                mapped: [None; 2],
                last_traffic: [now; 2],
                open: false,
                indications: Vec::new(),
                copies_left: 0,
            },
        );
        if relay.is_some() {
            self.start_binds(now, id);
        } else {
            self.stats.cmph_sent += 1;
            let mpr = self.cfg.mpr;
            // Over a stream the reserve goes up the signaling connection
            // (the MPR listens for nothing else at that address).
            let from = if self.cfg.upstream.is_stream() {
                self.cfg.signaling
            } else {
                local
            };
            self.send_request(now, Purpose::Reserve(id), from, mpr, 0);
        }
        Ok(PinholeId(id))
    }

    /// Closes a media pinhole: no more keepalives; its mapping (APS) or
    /// delivery (smart terminal) goes and its local ports are released.
    pub fn close_pinhole(&mut self, id: PinholeId) -> Result<(), ClientError> {
        let p = self
            .pinholes
            .remove(&id.0)
            .ok_or(ClientError::UnknownPinhole)?;
        self.by_local.remove(&p.req.local);
        self.by_local.remove(&plus_one(p.req.local));
        self.txs.retain(
            |_, tx| !matches!(tx.purpose, Purpose::Reserve(x) | Purpose::Bind(x, _) if x == id.0),
        );
        self.parked.retain(
            |(purpose, _, _)| !matches!(purpose, Purpose::Reserve(x) | Purpose::Bind(x, _) if *x == id.0),
        );
        self.release_ports(&p);
        Ok(())
    }

    /// The pinhole's local ports are no longer needed: their mapping or
    /// delivery goes, and a driver that bound them for the CMPH closes
    /// them (even if the pinhole never opened).
    fn release_ports(&mut self, p: &Pinhole) {
        for c in 0..p.components() {
            let local = if c == 0 {
                p.req.local
            } else {
                plus_one(p.req.local)
            };
            self.commands.push_back(RelayCommand::UnmapLocal { local });
        }
    }

    pub(super) fn reserved(&mut self, now: Instant, id: u64, msg: &Message<'_>) {
        let Some(relay) = msg.xor_relayed_address() else {
            self.pinhole_failed(id, Failure::Refused(wire::ErrorCode::BAD_REQUEST));
            return;
        };
        if let Some(p) = self.pinholes.get_mut(&id) {
            p.relay = Some(relay);
        }
        self.start_binds(now, id);
    }

    fn start_binds(&mut self, now: Instant, id: u64) {
        let Some(p) = self.pinholes.get(&id) else {
            return;
        };
        let ends: Vec<(SocketAddr, SocketAddr)> =
            (0..p.components()).filter_map(|c| p.ends(c)).collect();
        match self.cfg.cmph_mode {
            CmphMode::Request => {
                for (c, (local, relay)) in ends.into_iter().enumerate() {
                    self.stats.cmph_sent += 1;
                    self.send_request(now, Purpose::Bind(id, c as u8), local, relay, 0);
                }
            }
            CmphMode::Indication => {
                let mut copies = Vec::new();
                for (c, (local, relay)) in ends.into_iter().enumerate() {
                    let tid = TransactionId(self.rng.transaction_id());
                    // Copies repeat one transaction: the MPR binds on the
                    // first and treats the rest as retransmissions.
                    if let Some(payload) =
                        self.encode_request(tid, Purpose::Bind(id, c as u8), Class::Indication)
                    {
                        self.stats.cmph_sent += 1;
                        self.transmits.push_back(crate::types::Transmit {
                            local,
                            remote: relay,
                            payload: payload.clone(),
                            flow: crate::types::Flow::UDP,
                        });
                        copies.push((local, relay, payload));
                    }
                }
                let left = self.cfg.indication_copies.saturating_sub(1);
                if let Some(p) = self.pinholes.get_mut(&id) {
                    p.indications = copies;
                    p.copies_left = left;
                }
                if left > 0 {
                    self.arm(now + self.cfg.indication_spacing, Timer::Indication(id));
                }
                self.opened(now, id);
            }
        }
    }

    pub(super) fn bound(&mut self, now: Instant, id: u64, c: u8, msg: &Message<'_>) {
        let Some(p) = self.pinholes.get_mut(&id) else {
            return;
        };
        p.mapped[usize::from(c)] = msg.xor_mapped_address();
        if p.relay.is_none() {
            p.relay = msg.xor_relayed_address();
        }
        let done = (0..p.components()).all(|i| p.mapped[i].is_some());
        if done && !p.open {
            self.opened(now, id);
        }
    }

    fn opened(&mut self, now: Instant, id: u64) {
        let Some(p) = self.pinholes.get_mut(&id) else {
            return;
        };
        p.open = true;
        p.last_traffic = [now; 2];
        let Some(relay) = p.relay else {
            return;
        };
        let event = Event::PinholeOpened {
            id: PinholeId(id),
            relay,
            pinhole: p.mapped[0],
            rtcp_pinhole: p.mapped[1],
        };
        let mut maps = Vec::new();
        for c in 0..p.components() {
            if let Some((local, outside)) = p.ends(c) {
                maps.push(match p.req.inside {
                    // APS (Fig. 7): relay B ↔ A.
                    Some(inside) => RelayCommand::MapLocal {
                        local,
                        outside,
                        inside: if c == 0 { inside } else { plus_one(inside) },
                    },
                    // Smart terminal (Fig. 8): port A is the application's.
                    None => RelayCommand::DeliverLocal { local, outside },
                });
            }
        }
        let n = p.components();
        self.commands.extend(maps);
        self.stats.pinholes_opened += 1;
        self.back_on();
        self.events.push_back(event);
        let interval = self.cfg.effective_refresh();
        for c in 0..n {
            self.arm(now + interval, Timer::Keepalive(id, c as u8));
        }
    }

    pub(super) fn pinhole_failed(&mut self, id: u64, failure: Failure) {
        let Some(p) = self.pinholes.remove(&id) else {
            return;
        };
        self.by_local.remove(&p.req.local);
        self.by_local.remove(&plus_one(p.req.local));
        self.txs.retain(
            |_, tx| !matches!(tx.purpose, Purpose::Reserve(x) | Purpose::Bind(x, _) if x == id),
        );
        self.parked.retain(
            |(purpose, _, _)| !matches!(purpose, Purpose::Reserve(x) | Purpose::Bind(x, _) if *x == id),
        );
        self.release_ports(&p);
        self.stats.pinholes_failed += 1;
        tracing::warn!(pinhole = id, ?failure, "media pinhole failed");
        self.events.push_back(Event::PinholeFailed {
            id: PinholeId(id),
            failure,
        });
    }

    /// A silent media pinhole (hold) would close at the firewall: send a
    /// Binding Indication through it before that.
    pub(super) fn keepalive_timer(&mut self, now: Instant, id: u64, c: u8) {
        let interval = self.cfg.effective_refresh();
        let Some(p) = self.pinholes.get_mut(&id) else {
            return;
        };
        let ci = usize::from(c);
        let due = p.last_traffic[ci] + interval;
        if due > now {
            self.arm(due, Timer::Keepalive(id, c));
            return;
        }
        let Some((local, relay)) = p.ends(ci) else {
            return;
        };
        p.last_traffic[ci] = now;
        let mut buf = [0u8; 64];
        let tid = TransactionId(self.rng.transaction_id());
        let encoded = wire::Builder::new(&mut buf, Method::Binding, Class::Indication, tid)
            .and_then(|b| b.finish(None));
        if let Ok(n) = encoded {
            self.stats.keepalives += 1;
            tracing::trace!(component = ?component_of(c), %local, "media keepalive");
            self.transmits.push_back(crate::types::Transmit {
                local,
                remote: relay,
                payload: buf[..n].to_vec(),
                flow: crate::types::Flow::UDP,
            });
        }
        self.arm(now + interval, Timer::Keepalive(id, c));
    }

    pub(super) fn indication_timer(&mut self, now: Instant, id: u64) {
        let Some(p) = self.pinholes.get_mut(&id) else {
            return;
        };
        if p.copies_left == 0 {
            return;
        }
        p.copies_left -= 1;
        let again = p.copies_left > 0;
        let copies: Vec<_> = p.indications.clone();
        for (local, remote, payload) in copies {
            self.stats.retransmissions += 1;
            self.transmits.push_back(crate::types::Transmit {
                local,
                remote,
                payload,
                flow: crate::types::Flow::UDP,
            });
        }
        if again {
            self.arm(now + self.cfg.indication_spacing, Timer::Indication(id));
        }
    }
}
