//! What comes from the inside gateways: their commands to the call agent,
//! and their answers, whose LocalConnectionDescriptors leave only once
//! their media pinholes are open.

use std::time::Instant;

use pinhole_core::alg::aps::Step;
use pinhole_core::alg::txn::Leg;
use pinhole_core::alg::{ClientContext, Rejection};
use pinhole_core::intent::PlannedEndpoint;
use pinhole_core::patch::Patch;
use pinhole_core::types::{Receive, Transmit};
use pinhole_sdp::RewriteOptions;

use super::{Aps, Txn};
use crate::alg::{Dir, Kind, OVERLOAD, PINHOLE_FAILED, assemble, keep_sent, leg_of, mark, reply};
use crate::{Head, MediaRole, Message};

impl Aps {
    /// A gateway's command or final response seen before.
    pub(super) fn retransmission_inside(&mut self, rx: &Receive<'_>, first: &Message<'_>) -> bool {
        let txid = first.transaction_id();
        if first.response().is_some() && self.own.contains_key(&txid) {
            return true;
        }
        let Some(leg) = leg_of(first) else {
            return false;
        };
        let Some(t) = self.txns.get(&(Dir::of(Dir::Up, leg), txid)) else {
            return false;
        };
        if t.data.gateway != rx.remote {
            return false;
        }
        match t.sent(leg).cloned() {
            Some(out) => {
                self.stats.retransmissions += 1;
                self.send(out);
                true
            }
            None => false,
        }
    }

    /// A datagram from gateway `rx.remote`, to the MPR; false when it was
    /// held for a pinhole.
    pub(super) fn gateway_datagram(
        &mut self,
        now: Instant,
        ctx: &mut dyn ClientContext,
        rx: &Receive<'_>,
        msgs: &[Message<'_>],
        resuming: bool,
    ) -> bool {
        let mut patch = Patch::new();
        let mut errors = Vec::new();
        let mut drop = vec![false; msgs.len()];
        let registered = ctx.registered_pinhole().is_some();
        for (k, m) in msgs.iter().enumerate() {
            let txid = m.transaction_id();
            match m.head() {
                Head::Command(_) => {
                    if let Err(why) = self.up_command(now, ctx, rx, m, registered) {
                        errors.push(reply(why, txid));
                        mark(&mut drop, k);
                    }
                }
                Head::Response(r) if r.is_ack() => {}
                Head::Response(r) => {
                    if self.own.contains_key(&txid) {
                        mark(&mut drop, k);
                        continue;
                    }
                    let Some(t) = self
                        .txns
                        .get(&(Dir::Down, txid))
                        .filter(|t| t.data.gateway == rx.remote)
                    else {
                        self.stats.unknown_transaction += 1;
                        mark(&mut drop, k);
                        continue;
                    };
                    let (kind, conn, call) = (t.data.kind, t.data.conn, t.data.call.clone());
                    if !r.is_final() {
                        continue;
                    }
                    let Some(c) = conn else {
                        continue;
                    };
                    if !r.is_success() {
                        if kind == Kind::Crcx {
                            self.free_conn(now, ctx, c);
                        }
                        continue;
                    }
                    if kind == Kind::Crcx
                        && let Some(conn) = self.conns.get_mut(&c)
                    {
                        if let Some(i) = m.connection_id() {
                            conn.id = Some(i.to_owned());
                        }
                        // The specific endpoint a wildcard CRCX reached;
                        // our own DLCX goes to it, so it must be one.
                        if let Some(z) = m.value("Z")
                            && crate::head::is_specific_endpoint(z)
                        {
                            conn.endpoint = z.to_ascii_lowercase();
                        }
                    }
                    match self.outward(now, ctx, rx, c, m, &mut patch, resuming) {
                        Ok(Step::Ready(_)) => {}
                        Ok(Step::Wait) => {
                            let call = call.unwrap_or_default();
                            self.park(&call, rx, resuming);
                            return false;
                        }
                        Ok(Step::Failed(e)) => {
                            if e.is_backing_off() {
                                // Logged once, where the back-off began.
                                tracing::debug!(error = %e, "MGCP: a media pinhole failed");
                            } else {
                                tracing::warn!(error = %e, "MGCP: a media pinhole failed");
                            }
                            self.refuse(now, ctx, txid, c, PINHOLE_FAILED);
                            mark(&mut drop, k);
                        }
                        Err(why) => {
                            self.refuse(now, ctx, txid, c, why);
                            mark(&mut drop, k);
                        }
                    }
                }
            }
        }
        self.answer(rx, &errors);
        let Some(payload) = assemble(msgs, &drop, &mut patch, rx.bytes, &mut self.stats) else {
            return true;
        };
        let out = Transmit {
            local: self.cfg.local,
            remote: ctx.mpr(),
            payload,
            flow: Default::default(),
        };
        keep_sent(&mut self.txns, now, msgs, &drop, &out, |first, leg| {
            Some((Dir::of(Dir::Up, leg), first.transaction_id()))
        });
        self.send(out);
        true
    }

    /// A gateway's own command: a transaction toward the call agent (400
    /// before the APS is registered, 409 when the table is full); a DLCX
    /// frees the connections it names.
    fn up_command(
        &mut self,
        now: Instant,
        ctx: &mut dyn ClientContext,
        rx: &Receive<'_>,
        m: &Message<'_>,
        registered: bool,
    ) -> Result<(), Rejection> {
        if !registered {
            return Err(Rejection::new(400, "Not registered with the MPR"));
        }
        let key = (Dir::Up, m.transaction_id());
        self.txns
            .room(&key, OVERLOAD)
            .inspect_err(|_| self.stats.transactions_refused += 1)?;
        let kind = Kind::of(m);
        if kind == Kind::Dlcx {
            self.dlcx(now, ctx, rx.remote, m);
        }
        self.txns.insert(
            now,
            key,
            Txn {
                gateway: rx.remote,
                kind,
                call: m.call_id().map(str::to_owned),
                conn: None,
            },
        );
        self.arm_sweep(now);
        Ok(())
    }

    /// The pinhole for a connection failed: `why` (502) to the call agent
    /// on the gateway's behalf, and the connection deleted at the gateway.
    fn refuse(
        &mut self,
        now: Instant,
        ctx: &mut dyn ClientContext,
        txid: u32,
        c: u64,
        why: Rejection,
    ) {
        let Some(conn) = self.conns.get(&c) else {
            return;
        };
        let mut dlcx =
            crate::Command::builder("DLCX", self.next_own, &conn.endpoint).param("C", &conn.call);
        if let Some(i) = &conn.id {
            dlcx = dlcx.param("I", i);
        }
        let gateway = conn.gateway;
        self.own.insert(self.next_own, now);
        self.next_own = if self.next_own >= crate::MAX_TRANSACTION_ID {
            900_000_000
        } else {
            self.next_own + 1
        };
        self.out.send(Transmit {
            local: self.cfg.local,
            remote: gateway,
            payload: dlcx.to_bytes(),
            flow: Default::default(),
        });
        let answer = Transmit {
            local: self.cfg.local,
            remote: ctx.mpr(),
            payload: reply(why, txid),
            flow: Default::default(),
        };
        // A retransmitted 2xx gets the same refusal.
        self.txns
            .remember(now, &(Dir::Down, txid), Leg::Response, &answer);
        self.stats.replied += 1;
        self.out.send(answer);
        self.free_conn(now, ctx, c);
    }

    /// The gateway's SDP leaving from connection `c`: every stream needs
    /// an open pinhole ([`Step::Wait`] until then); written in when ready.
    /// An SDP that cannot be read or rewritten is refused like a failed
    /// pinhole.
    #[allow(clippy::too_many_arguments)]
    fn outward(
        &mut self,
        now: Instant,
        ctx: &mut dyn ClientContext,
        rx: &Receive<'_>,
        c: u64,
        m: &Message<'_>,
        patch: &mut Patch,
        resuming: bool,
    ) -> Result<Step, Rejection> {
        if m.media_role() != MediaRole::Answer {
            return Ok(Step::Ready(Vec::new()));
        }
        let sdp = match m.sdp() {
            Ok(Some(s)) => s,
            Ok(None) => return Ok(Step::Ready(Vec::new())),
            Err(e) => {
                self.stats.sdp_errors += 1;
                tracing::warn!(error = %e, "MGCP: unreadable SDP from a gateway");
                return Err(PINHOLE_FAILED);
            }
        };
        let Ok(endpoints) = sdp.endpoints(rx.remote.ip()) else {
            self.stats.sdp_errors += 1;
            return Err(PINHOLE_FAILED);
        };
        let step = match self.conns.get_mut(&c) {
            Some(conn) => {
                if endpoints.iter().any(|e| !e.is_disabled()) {
                    conn.last = now;
                }
                let leg_key = self.leg_key(c);
                self.media
                    .outward(now, ctx, &c, &endpoints, &leg_key, resuming)
            }
            // Deleted meanwhile: nothing to open; it passes as it is.
            None => Step::Ready(
                endpoints
                    .iter()
                    .map(|e| PlannedEndpoint {
                        index: e.index,
                        addr: e.addr,
                        rtcp_addr: e.rtcp_addr,
                    })
                    .collect(),
            ),
        };
        let Step::Ready(plan) = &step else {
            return Ok(step);
        };
        if m.rewrite_sdp(&sdp, plan, &RewriteOptions::default(), patch)
            .is_err()
        {
            self.stats.sdp_errors += 1;
            return Err(PINHOLE_FAILED);
        }
        self.stats.sdp_rewritten += 1;
        Ok(step)
    }
}
