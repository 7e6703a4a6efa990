//! The MPR's transactions: what each command was for (its answer updates
//! the call), the renumbered ids toward the call agent, and what was sent
//! on, for retransmissions.

use std::net::SocketAddr;
use std::time::Instant;

use pinhole_core::Side;
use pinhole_core::alg::txn::Leg;
use pinhole_core::alg::{MprContext, Rejection};
use pinhole_core::patch::Patch;
use pinhole_core::types::Receive;

use super::Mpr;
use super::call::CallId;
use crate::alg::{Dir, Kind, OVERLOAD, endpoint_name};
use crate::{Head, Message};

/// What the MPR keeps per transaction, beside what it sent.
pub(super) struct Txn {
    pub(super) network: String,
    /// The transaction id on the call agent's side: the network's own for
    /// a call agent's command, one of ours for a gateway's (every network
    /// reaches the call agent from our one socket, so their ids are
    /// renumbered into one space).
    pub(super) wire: u32,
    /// The call agent: the command's source (Down) or destination (Up).
    pub(super) ca: SocketAddr,
    pub(super) kind: Kind,
    /// The call record the command was for.
    pub(super) call: Option<String>,
    pub(super) endpoint: String,
    pub(super) conn: Option<String>,
    /// The side of the call the gateway is (CRCX, MDCX).
    pub(super) side: Option<Side>,
}

impl Mpr {
    /// A command or final response seen before: sent on again as it was.
    pub(super) fn retransmission(
        &mut self,
        ctx: &dyn MprContext,
        rx: &Receive<'_>,
        net: Option<&str>,
        first: &Message<'_>,
    ) -> bool {
        let txid = first.transaction_id();
        let ip = rx.remote.ip();
        let key = match (first.head(), net) {
            (Head::Command(_), None) => self
                .by_ca
                .get(&(Dir::Down, ip, txid))
                .map(|(n, t)| (Dir::Down, n.clone(), *t)),
            (Head::Command(_), Some(n)) => Some((Dir::Up, n.to_owned(), txid)),
            (Head::Response(r), Some(n)) if r.is_final() => Some((Dir::Down, n.to_owned(), txid)),
            (Head::Response(r), None) if r.is_final() => self
                .by_ca
                .get(&(Dir::Up, ip, txid))
                .map(|(n, t)| (Dir::Up, n.clone(), *t)),
            _ => None,
        };
        let Some(t) = key.and_then(|key| self.txns.get(&key)) else {
            return false;
        };
        let cached = match first.head() {
            // Another call agent's command with a live id is not a copy.
            Head::Command(_) if t.data.ca.ip() == ip || net.is_some() => t.sent(Leg::Request),
            Head::Response(_) => t.sent(Leg::Response),
            Head::Command(_) => None,
        };
        let Some(mut out) = cached.cloned() else {
            return false;
        };
        // Toward a network: its current pinhole.
        if out.remote != t.data.ca
            && let Some((local, remote)) = self.route_to(ctx, &t.data.network)
        {
            out.local = local;
            out.remote = remote;
        }
        self.stats.retransmissions += 1;
        self.send(out);
        true
    }

    /// Room for transaction `key`, else 409.
    fn room_for(&mut self, key: &(Dir, String, u32)) -> Result<(), Rejection> {
        self.txns
            .room(key, OVERLOAD)
            .inspect_err(|_| self.stats.transactions_refused += 1)
    }

    /// A call agent's command for a gateway of network `n`: transaction,
    /// parties, media.
    pub(super) fn down_command(
        &mut self,
        now: Instant,
        ctx: &mut dyn MprContext,
        rx: &Receive<'_>,
        n: &str,
        m: &Message<'_>,
        patch: &mut Patch,
    ) -> Result<(), Rejection> {
        let txid = m.transaction_id();
        let key = (Dir::Down, n.to_owned(), txid);
        self.room_for(&key)?;
        if let Some(old) = self.txns.get(&key)
            && old.data.ca.ip() != rx.remote.ip()
        {
            // Another call agent's live transaction with this id.
            self.stats.transactions_refused += 1;
            return Err(Rejection::new(409, "Transaction id in use"));
        }
        let endpoint = endpoint_name(m);
        let kind = Kind::of(m);
        let call = m.call_id().map(str::to_owned);
        let conn = m.connection_id().map(str::to_owned);
        let ca_ip = rx.remote.ip();
        let mut side = None;
        let mut record = None;
        match kind {
            Kind::Dlcx => self.dlcx(
                now,
                ctx,
                ca_ip,
                n,
                call.as_deref(),
                &endpoint,
                conn.as_deref(),
            ),
            Kind::Crcx | Kind::Mdcx => {
                if let Some(cid) = &call {
                    let (s, r) = self.down_media(
                        now,
                        ctx,
                        rx,
                        (ca_ip, cid.clone()),
                        n,
                        &endpoint,
                        conn.as_deref(),
                        kind,
                        m,
                        patch,
                    )?;
                    side = Some(s);
                    record = Some(r.1);
                }
            }
            Kind::Other => {}
        }
        self.txns.insert(
            now,
            key,
            Txn {
                network: n.to_owned(),
                ca: rx.remote,
                kind,
                // Its answer updates the record the command was for.
                call: record.or(call),
                endpoint,
                conn,
                side,
                wire: txid,
            },
        );
        self.by_ca
            .insert((Dir::Down, ca_ip, txid), (n.to_owned(), txid));
        self.arm_sweep(now);
        Ok(())
    }

    /// A gateway's own command, toward the call agent `ca`.
    pub(super) fn up_command(
        &mut self,
        now: Instant,
        ctx: &mut dyn MprContext,
        n: &str,
        ca: SocketAddr,
        m: &Message<'_>,
        patch: &mut Patch,
    ) -> Result<(), Rejection> {
        let txid = m.transaction_id();
        let key = (Dir::Up, n.to_owned(), txid);
        self.room_for(&key)?;
        // Every network's commands reach the call agent from our one
        // socket, and two gateways may use one id at once: each command
        // gets an id of ours (its K: list follows), and the answer gets the
        // gateway's id back.
        let wire = self.up_id(ca.ip());
        if let Some(c) = m.command() {
            patch.replace_int(c.transaction_span.clone(), u64::from(wire));
        }
        self.renumber_acks(n, m, patch);
        let endpoint = endpoint_name(m);
        let kind = Kind::of(m);
        let call = m.call_id().map(str::to_owned);
        let conn = m.connection_id().map(str::to_owned);
        if kind == Kind::Dlcx {
            self.dlcx(
                now,
                ctx,
                ca.ip(),
                n,
                call.as_deref(),
                &endpoint,
                conn.as_deref(),
            );
        }
        self.txns.insert(
            now,
            key,
            Txn {
                network: n.to_owned(),
                ca,
                kind,
                call,
                endpoint,
                conn,
                side: None,
                wire,
            },
        );
        self.by_ca
            .insert((Dir::Up, ca.ip(), wire), (n.to_owned(), txid));
        self.arm_sweep(now);
        Ok(())
    }

    /// Forgets transactions quiet for T-hist; gives back the (call, side)
    /// of each CRCX among them that was never answered.
    pub(super) fn expire_transactions(&mut self, now: Instant) -> Vec<(CallId, Side)> {
        let mut unanswered = Vec::new();
        for (k, e) in self.txns.expire(now, self.cfg.transaction_timeout) {
            let t = e.data;
            let bk = (k.0, t.ca.ip(), t.wire);
            if self
                .by_ca
                .get(&bk)
                .is_some_and(|(n, g)| *n == k.1 && *g == k.2)
            {
                self.by_ca.remove(&bk);
            }
            if let (Kind::Crcx, None, Some(cid), Some(side)) = (t.kind, &e.response, t.call, t.side)
            {
                unanswered.push(((t.ca.ip(), cid), side));
            }
        }
        unanswered
    }
}
