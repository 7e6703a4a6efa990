//! Where each message of a datagram goes: from the public side into a
//! network's signaling pinhole, from a network to the call agent; and the
//! renumbering of the gateways' transaction ids toward the call agent.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use pinhole_core::alg::txn::Leg;
use pinhole_core::alg::{MprContext, Rejection};
use pinhole_core::patch::Patch;
use pinhole_core::types::{Receive, Transmit};

use super::Mpr;
use crate::alg::{Dir, ENDPOINT_UNKNOWN, Route, assemble, entity_addr, keep_sent, mark, reply};
use crate::{Head, MAX_TRANSACTION_ID, Message, ResponseAck};

impl Mpr {
    /// A datagram from the public side (the call agent, a media server's
    /// controller): into the pinhole of the network it is for.
    pub(super) fn public_datagram(
        &mut self,
        now: Instant,
        ctx: &mut dyn MprContext,
        rx: &Receive<'_>,
        msgs: &[Message<'_>],
    ) {
        let ip = rx.remote.ip();
        let mut dest: Option<String> = None;
        let mut routes = Vec::with_capacity(msgs.len());
        for m in msgs {
            let r = match m.head() {
                Head::Command(c) => match Self::network_for(ctx, c.endpoint.domain) {
                    None => {
                        self.stats.unknown_endpoint += 1;
                        Route::Fail(ENDPOINT_UNKNOWN)
                    }
                    Some(n) if self.route_to(ctx, &n).is_none() => {
                        self.stats.no_route += 1;
                        Route::Fail(Rejection::new(501, "Endpoint not ready"))
                    }
                    Some(n) => Route::To(n),
                },
                Head::Response(r) => {
                    let dir = if r.is_ack() { Dir::Down } else { Dir::Up };
                    match self.by_ca.get(&(dir, ip, r.transaction_id)) {
                        Some((n, _)) => Route::To(n.clone()),
                        None => {
                            self.stats.unknown_transaction += 1;
                            Route::Drop
                        }
                    }
                }
            };
            routes.push(r.one_place(&mut dest, "Messages for different networks"));
        }
        let mut patch = Patch::new();
        let mut errors = Vec::new();
        let mut drop = vec![false; msgs.len()];
        for (k, (m, r)) in msgs.iter().zip(&routes).enumerate() {
            let Some(n) = r.place(m, k, &mut drop, &mut errors) else {
                continue;
            };
            let done = match m.head() {
                Head::Command(_) => self.down_command(now, ctx, rx, n, m, &mut patch),
                Head::Response(_) if m.sdp().is_err() => {
                    // Nothing plans a call agent's answer's SDP; one that
                    // cannot even be read does not go in (issue 18).
                    if let Err(e) = m.sdp() {
                        self.drop_unreadable(&e);
                    }
                    mark(&mut drop, k);
                    Ok(())
                }
                Head::Response(r) => {
                    // The gateway's own id back for the answer to its command.
                    if !r.is_ack()
                        && let Some((_, g)) = self.by_ca.get(&(Dir::Up, ip, r.transaction_id))
                        && *g != r.transaction_id
                    {
                        patch.replace_int(r.transaction_span.clone(), u64::from(*g));
                    }
                    Ok(())
                }
            };
            if let Err(why) = done {
                errors.push(reply(why, m.transaction_id()));
                mark(&mut drop, k);
            }
        }
        self.answer(rx, &errors);
        let Some(n) = dest else {
            return;
        };
        let Some(payload) = assemble(msgs, &drop, &mut patch, rx.bytes, &mut self.stats) else {
            return;
        };
        let Some((local, remote)) = self.route_to(ctx, &n) else {
            // A response for a network whose registration just lapsed.
            self.stats.no_route += 1;
            return;
        };
        let out = Transmit {
            local,
            remote,
            payload,
            flow: Default::default(),
        };
        let by_ca = &self.by_ca;
        keep_sent(&mut self.txns, now, msgs, &drop, &out, |first, leg| {
            let txid = first.transaction_id();
            match leg {
                Leg::Request => Some((Dir::Down, n.clone(), txid)),
                Leg::Response => by_ca
                    .get(&(Dir::Up, ip, txid))
                    .map(|(n, g)| (Dir::Up, n.clone(), *g)),
            }
        });
        self.send(out);
    }

    /// A datagram from network `n`'s signaling pinhole: to the call agent.
    pub(super) fn network_datagram(
        &mut self,
        now: Instant,
        ctx: &mut dyn MprContext,
        rx: &Receive<'_>,
        n: &str,
        msgs: &[Message<'_>],
    ) {
        let mut dest: Option<SocketAddr> = None;
        let mut routes = Vec::with_capacity(msgs.len());
        for m in msgs {
            let txid = m.transaction_id();
            let r = match m.head() {
                Head::Response(r) if r.is_ack() => {
                    match self.txns.get(&(Dir::Up, n.to_owned(), txid)) {
                        Some(t) => Route::To(t.data.ca),
                        None => self.cfg.call_agent.map_or(Route::Drop, Route::To),
                    }
                }
                Head::Response(_) => match self.txns.get(&(Dir::Down, n.to_owned(), txid)) {
                    Some(t) => Route::To(t.data.ca),
                    None => {
                        self.stats.unknown_transaction += 1;
                        Route::Drop
                    }
                },
                Head::Command(_) => {
                    let to = self
                        .cfg
                        .call_agent
                        .or_else(|| m.notified_entity().and_then(entity_addr));
                    match to {
                        Some(a) => Route::To(a),
                        None => {
                            self.stats.no_call_agent += 1;
                            Route::Fail(Rejection::new(510, "No call agent"))
                        }
                    }
                }
            };
            routes.push(r.one_place(&mut dest, "Messages for different call agents"));
        }
        let mut patch = Patch::new();
        let mut errors = Vec::new();
        let mut drop = vec![false; msgs.len()];
        for (k, (m, r)) in msgs.iter().zip(&routes).enumerate() {
            let Some(&ca) = r.place(m, k, &mut drop, &mut errors) else {
                continue;
            };
            let done = match m.head() {
                Head::Command(_) => self.up_command(now, ctx, n, ca, m, &mut patch),
                Head::Response(r) if r.is_ack() => {
                    // A 000 for the call agent's answer to our renumbered
                    // command carries the id the call agent knows.
                    if let Some(t) = self.txns.get(&(Dir::Up, n.to_owned(), r.transaction_id))
                        && t.data.wire != r.transaction_id
                    {
                        patch.replace_int(r.transaction_span.clone(), u64::from(t.data.wire));
                    }
                    Ok(())
                }
                Head::Response(_) => {
                    if !self.down_response(now, ctx, rx, n, m, &mut patch) {
                        // Not forwarded, and not answered: a response.
                        mark(&mut drop, k);
                    }
                    Ok(())
                }
            };
            if let Err(why) = done {
                errors.push(reply(why, m.transaction_id()));
                mark(&mut drop, k);
            }
        }
        self.answer(rx, &errors);
        let Some(ca) = dest else {
            return;
        };
        let Some(payload) = assemble(msgs, &drop, &mut patch, rx.bytes, &mut self.stats) else {
            return;
        };
        let out = Transmit {
            local: self.cfg.local,
            remote: ca,
            payload,
            flow: Default::default(),
        };
        keep_sent(&mut self.txns, now, msgs, &drop, &out, |first, leg| {
            Some((Dir::of(Dir::Up, leg), n.to_owned(), first.transaction_id()))
        });
        self.send(out);
    }

    /// A free id of ours toward the call agent at `ca_ip`.
    pub(super) fn up_id(&mut self, ca_ip: IpAddr) -> u32 {
        // The table is bounded, so a free id is at most its size away.
        loop {
            let id = self.next_up;
            self.next_up = if id >= MAX_TRANSACTION_ID { 1 } else { id + 1 };
            if !self.by_ca.contains_key(&(Dir::Up, ca_ip, id)) {
                return id;
            }
        }
    }

    /// A gateway's `K:` names its own ids of answers it got: the call agent
    /// knows them by ours. Ids we no longer track are left out; a list
    /// left empty loses its line.
    pub(super) fn renumber_acks(&self, n: &str, m: &Message<'_>, patch: &mut Patch) {
        let Some(k) = m.param("K") else { return };
        let Ok(acks) = ResponseAck::parse(k.value) else {
            return;
        };
        let wire = |g: u32| {
            self.txns
                .get(&(Dir::Up, n.to_owned(), g))
                .map(|t| t.data.wire)
        };
        let mut ours: Vec<u32> = if acks.count() <= 256 {
            acks.ranges()
                .iter()
                .flat_map(|r| r.clone())
                .filter_map(wire)
                .collect()
        } else {
            self.txns
                .iter()
                .filter(|((d, net, g), _)| *d == Dir::Up && net == n && acks.contains(*g))
                .map(|(_, t)| t.data.wire)
                .collect()
        };
        ours.sort_unstable();
        ours.dedup();
        if ours.is_empty() {
            let buf = m.buf();
            let start = k.name_span.start;
            let end = buf
                .get(k.value_span.end..)
                .and_then(|rest| rest.iter().position(|&b| b == b'\n'))
                .map_or(k.value_span.end, |i| k.value_span.end + i + 1);
            patch.delete(start..end);
            return;
        }
        let list: Vec<String> = ours.iter().map(u32::to_string).collect();
        patch.replace(k.value_span.clone(), list.join(", ").as_bytes());
    }
}
