//! What comes from the MPR: the call agent's commands to the inside
//! gateways (their RemoteConnectionDescriptors get ports B), the call
//! agent's answers to the gateways' commands.

use std::net::SocketAddr;
use std::time::Instant;

use pinhole_core::alg::aps::Step;
use pinhole_core::alg::{ClientContext, Rejection};
use pinhole_core::patch::Patch;
use pinhole_core::types::{Receive, Transmit};
use pinhole_sdp::RewriteOptions;

use super::{Aps, Conn, Txn};
use crate::alg::{
    BAD_SDP, Dir, ENDPOINT_UNKNOWN, Kind, NO_RESOURCES, OVERLOAD, Route, assemble, endpoint_name,
    keep_sent, leg_of, mark, reply,
};
use crate::{Head, MediaRole, Message};

impl Aps {
    /// A datagram from the MPR: to the gateway it is for.
    pub(super) fn mpr_datagram(
        &mut self,
        now: Instant,
        ctx: &mut dyn ClientContext,
        rx: &Receive<'_>,
        msgs: &[Message<'_>],
    ) {
        let Some(first) = msgs.first() else {
            return;
        };
        // Seen before: as it went the first time.
        let seen = leg_of(first).and_then(|leg| {
            let key = (Dir::of(Dir::Down, leg), first.transaction_id());
            self.txns.replay(&key, leg)
        });
        if let Some(out) = seen {
            self.stats.retransmissions += 1;
            self.send(out);
            return;
        }
        let mut dest: Option<SocketAddr> = None;
        let mut routes = Vec::with_capacity(msgs.len());
        for m in msgs {
            let to = match m.head() {
                Head::Command(_) => match self.gateway_for(m) {
                    Some(g) => Route::To(g),
                    None => {
                        self.stats.unknown_endpoint += 1;
                        Route::Fail(ENDPOINT_UNKNOWN)
                    }
                },
                Head::Response(r) => {
                    let dir = if r.is_ack() { Dir::Down } else { Dir::Up };
                    match self.txns.get(&(dir, r.transaction_id)) {
                        Some(t) => Route::To(t.data.gateway),
                        None => {
                            self.stats.unknown_transaction += 1;
                            Route::Drop
                        }
                    }
                }
            };
            routes.push(to.one_place(&mut dest, "Messages for different gateways"));
        }
        let mut patch = Patch::new();
        let mut errors = Vec::new();
        let mut drop = vec![false; msgs.len()];
        for (k, (m, to)) in msgs.iter().zip(&routes).enumerate() {
            let Some(&g) = to.place(m, k, &mut drop, &mut errors) else {
                continue;
            };
            if m.command().is_some()
                && let Err(why) = self.down_command(now, ctx, rx, g, m, &mut patch)
            {
                errors.push(reply(why, m.transaction_id()));
                mark(&mut drop, k);
            }
        }
        self.answer(rx, &errors);
        let Some(g) = dest else {
            return;
        };
        let Some(payload) = assemble(msgs, &drop, &mut patch, rx.bytes, &mut self.stats) else {
            return;
        };
        let out = Transmit {
            local: self.cfg.local,
            remote: g,
            payload,
            flow: Default::default(),
        };
        keep_sent(&mut self.txns, now, msgs, &drop, &out, |first, leg| {
            Some((Dir::of(Dir::Down, leg), first.transaction_id()))
        });
        self.send(out);
    }

    /// A call agent's command for gateway `g`.
    fn down_command(
        &mut self,
        now: Instant,
        ctx: &mut dyn ClientContext,
        rx: &Receive<'_>,
        g: SocketAddr,
        m: &Message<'_>,
        patch: &mut Patch,
    ) -> Result<(), Rejection> {
        let txid = m.transaction_id();
        let key = (Dir::Down, txid);
        self.txns
            .room(&key, OVERLOAD)
            .inspect_err(|_| self.stats.transactions_refused += 1)?;
        let kind = Kind::of(m);
        let call = m.call_id().map(str::to_owned);
        let mut conn = None;
        match kind {
            Kind::Dlcx => {
                if self.dlcx(now, ctx, g, m) > 0 {
                    self.stats.teardowns += 1;
                }
            }
            Kind::Crcx | Kind::Mdcx => {
                if let Some(cid) = &call {
                    let k = self.conn_for(now, g, cid, m)?;
                    conn = Some(k);
                    self.inward(now, ctx, rx, k, m, patch)?;
                }
            }
            Kind::Other => {}
        }
        self.txns.insert(
            now,
            key,
            Txn {
                gateway: g,
                kind,
                call,
                conn,
            },
        );
        self.arm_sweep(now);
        Ok(())
    }

    /// The connection of gateway `g` a CRCX or MDCX of call `cid` is for:
    /// the one its ConnectionId names, else a new one (403 when too many).
    fn conn_for(
        &mut self,
        now: Instant,
        g: SocketAddr,
        cid: &str,
        m: &Message<'_>,
    ) -> Result<u64, Rejection> {
        let conn_id = m.connection_id();
        let existing = conn_id.and_then(|i| {
            self.conns
                .iter()
                .find(|(_, c)| c.gateway == g && c.id.as_deref() == Some(i))
                .map(|(k, _)| *k)
        });
        if let Some(k) = existing {
            return Ok(k);
        }
        if self.conns.len() >= self.cfg.max_connections {
            self.stats.calls_refused += 1;
            return Err(NO_RESOURCES);
        }
        let k = self.next_conn;
        self.next_conn += 1;
        self.conns.insert(
            k,
            Conn {
                call: cid.to_owned(),
                gateway: g,
                endpoint: endpoint_name(m),
                id: conn_id.map(str::to_owned),
                last: now,
            },
        );
        self.stats.calls += 1;
        Ok(k)
    }

    /// The call agent's SDP going in to connection `k`: each stream gets
    /// port B, which the relay maps to the relay address it names.
    fn inward(
        &mut self,
        now: Instant,
        ctx: &mut dyn ClientContext,
        rx: &Receive<'_>,
        k: u64,
        m: &Message<'_>,
        patch: &mut Patch,
    ) -> Result<(), Rejection> {
        if !matches!(m.media_role(), MediaRole::Offer | MediaRole::Modify) {
            return Ok(());
        }
        let sdp = match m.sdp() {
            Ok(Some(s)) => s,
            Ok(None) => return Ok(()),
            Err(_) => {
                self.stats.sdp_errors += 1;
                return Err(BAD_SDP);
            }
        };
        let Ok(endpoints) = sdp.endpoints(rx.remote.ip()) else {
            self.stats.sdp_errors += 1;
            return Err(BAD_SDP);
        };
        let Some(conn) = self.conns.get_mut(&k) else {
            return Err(NO_RESOURCES);
        };
        if endpoints.iter().any(|e| !e.is_disabled()) {
            conn.last = now;
        }
        let plan = match self.media.inward(now, ctx, &k, &endpoints) {
            Step::Ready(plan) => plan,
            Step::Wait | Step::Failed(_) => return Err(NO_RESOURCES),
        };
        if m.rewrite_sdp(&sdp, &plan, &RewriteOptions::default(), patch)
            .is_err()
        {
            self.stats.sdp_errors += 1;
            return Err(BAD_SDP);
        }
        self.stats.sdp_rewritten += 1;
        Ok(())
    }
}
