//! The MPR's MGCP ALG (Figs. 9 and 10, the MPR's column).
//!
//! **Routing** ([`route`]). A command from the public side (the call
//! agent) for `local@domain` goes into the signaling pinhole of the
//! network that serves the domain or a parent of it; its response comes
//! back through that pinhole and goes to the command's source (RFC 3435
//! §3.5), found by (network, transaction id). A command from a network
//! (NTFY, RSIP, a gateway's DLCX) goes to the call agent
//! ([`MprConfig::call_agent`], else the command's NotifiedEntity when it
//! is an address); the call agent's response goes back into that
//! network's pinhole. Response acknowledgements (`000`, `K:`) pass like
//! the rest. A piggybacked datagram goes on as one datagram; a message in
//! it that cannot go to the same place is answered and cut out.
//!
//! **Media** ([`call`]). One MGCP call (`C:`, scoped by the call agent's
//! address) is one [`MediaCall`] with two [`Sides`]: the first party to
//! describe its media is side A. A gateway's LocalConnectionDescriptor
//! (the SDP of a 2xx to CRCX or MDCX, [`crate::MediaRole::Answer`]) is
//! its side's description: planned with the engine and rewritten to an
//! MPR relay address, remembered per call. The call agent copies that
//! address into its command to the other gateway; such an SDP passes
//! unchanged (the gateway must send to exactly that relay port) and the
//! first side's description is planned again toward the network it now
//! reaches, so that network's CMPH can bind the leg. An SDP from the call
//! agent with any other address is a public party's media (a media
//! server) and is planned as the public side of the call.
//!
//! **Several connections on one endpoint.** A media server or trunking
//! gateway (osmo-mgw's rtpbridge) takes two or more connections on one
//! endpoint in one call, each toward its own party. Each connection beyond
//! the first that an endpoint holds at once gets a call record of its own
//! (its own relay legs); a later MDCX or DLCX finds it by its connection
//! id, a DLCX naming only the call or the endpoint reaches them all. A
//! CRCX whose SDP names a relay address of one of the call's records
//! belongs to that record.
//!
//! **Teardown.** DLCX (from the call agent or a gateway) removes the
//! connections it names (`I:`, else every connection of the endpoint, or
//! of the call); when no gateway connection is left the call's legs go. A
//! CRCX answered with an error frees what it created the same way.
//!
//! **Retransmissions** ([`txn`]). A command or response seen again (same
//! sender, same transaction id) within [`MprConfig::transaction_timeout`]
//! (T-hist, 30 s in RFC 3435 §3.5) is sent on again as it was rewritten
//! the first time, without planning anything again.
//!
//! [`MediaCall`]: pinhole_core::alg::call::MediaCall
//! [`Sides`]: pinhole_core::alg::call::Sides

mod call;
mod route;
mod txn;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use pinhole_core::alg::txn::Transactions;
use pinhole_core::alg::{Counters, MprContext, MprSignaling, Outbox};
use pinhole_core::types::{Receive, Transmit};
use pinhole_core::wire::Protocol;

use super::{Dir, Stats, replies, suffixes};
use crate::{MAX_TRANSACTION_ID, parse_datagram};
use call::{Call, CallId};
use txn::Txn;

/// The MPR MGCP ALG's settings.
#[derive(Clone, Debug)]
pub struct MprConfig {
    /// The MPR's MGCP control socket: networks register their MGCP
    /// pinholes with it, the call agent sends its commands to it.
    pub local: SocketAddr,
    /// Where gateways' own commands (NTFY, RSIP, DLCX...) go. Without one,
    /// to the command's NotifiedEntity (`N:`) when it is an address; else
    /// the gateway is answered 510.
    pub call_agent: Option<SocketAddr>,
    /// Most transactions tracked at once; beyond, commands get 409.
    pub max_transactions: usize,
    /// Most calls tracked at once; beyond, new calls get 403.
    pub max_calls: usize,
    /// How long a transaction (and its rewritten response, for
    /// retransmissions) is kept after its last message: T-hist.
    pub transaction_timeout: Duration,
    /// A call with no gateway connection is forgotten after this long.
    pub setup_timeout: Duration,
    /// A call with no MGCP message for this long is forgotten (its media
    /// expires earlier on its own if no RTP flows).
    pub call_idle: Duration,
    /// The first transaction id the gateways' commands get toward the call
    /// agent (they are renumbered: every network reaches it from our one
    /// socket). A restarted MPR should start elsewhere, so that the call
    /// agent takes no new command for a retransmission; the daemon seeds
    /// it. Default 1.
    pub first_transaction_id: u32,
}

impl MprConfig {
    /// Defaults around the MPR's MGCP socket.
    pub fn new(local: SocketAddr) -> Self {
        Self {
            local,
            call_agent: None,
            max_transactions: 100_000,
            max_calls: 100_000,
            transaction_timeout: Duration::from_secs(30),
            setup_timeout: Duration::from_secs(180),
            call_idle: Duration::from_secs(4 * 3600),
            first_transaction_id: 1,
        }
    }
}

/// The MPR's MGCP ALG.
pub struct Mpr {
    cfg: MprConfig,
    /// By direction, network and the transaction id on the network's side.
    txns: Transactions<(Dir, String, u32), Txn>,
    /// (direction, call agent, id on its side) → (network, id on the
    /// network's side).
    by_ca: HashMap<(Dir, IpAddr, u32), (String, u32)>,
    /// The next id for a gateway's command toward the call agent.
    next_up: u32,
    calls: HashMap<CallId, Call>,
    /// The records of each MGCP call (the call itself first, then further
    /// connections on an endpoint), by call.
    records: HashMap<CallId, Vec<String>>,
    out: Outbox,
    stats: Stats,
}

impl Mpr {
    /// An ALG with no transactions or calls.
    pub fn new(cfg: MprConfig) -> Self {
        Self {
            next_up: cfg.first_transaction_id.clamp(1, MAX_TRANSACTION_ID),
            txns: Transactions::new(cfg.max_transactions),
            cfg,
            by_ca: HashMap::new(),
            calls: HashMap::new(),
            records: HashMap::new(),
            out: Outbox::new(),
            stats: Stats::default(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Call records tracked now: one per call, and one more per further
    /// connection an endpoint holds in it at once.
    pub fn calls(&self) -> usize {
        self.calls.len()
    }

    /// Transactions tracked now.
    pub fn transactions(&self) -> usize {
        self.txns.len()
    }

    /// The network serving `domain` or its nearest parent.
    fn network_for(ctx: &dyn MprContext, domain: &str) -> Option<String> {
        let d = domain.to_ascii_lowercase();
        suffixes(&d).find_map(|s| ctx.network_for_domain(s))
    }

    fn send(&mut self, t: Transmit) {
        self.stats.forwarded += 1;
        self.out.send(t);
    }

    fn answer(&mut self, rx: &Receive<'_>, errors: &[Vec<u8>]) {
        if errors.is_empty() {
            return;
        }
        self.stats.replied += errors.len() as u64;
        self.out.send(Transmit {
            local: rx.local,
            remote: rx.remote,
            payload: replies(errors),
            flow: rx.flow,
        });
    }

    /// A network's current pinhole (a re-registration may move it).
    fn route_to(&self, ctx: &dyn MprContext, network: &str) -> Option<(SocketAddr, SocketAddr)> {
        ctx.route(network, Protocol::Mgcp)
            .map(|r| (r.local, r.pinhole))
    }

    fn arm_sweep(&mut self, now: Instant) {
        self.out.arm_sweep(now + Duration::from_secs(1));
    }

    /// Forgets what timed out: transactions (a CRCX never answered frees
    /// what it created), calls still being set up, idle calls.
    fn expire(&mut self, now: Instant, ctx: &mut dyn MprContext) {
        let unanswered = self.expire_transactions(now);
        for (id, side) in unanswered {
            self.unanswered_crcx(now, ctx, &id, side);
        }
        self.expire_calls(now, ctx);
        self.out.set_sweep(
            (!self.txns.is_empty() || !self.calls.is_empty()).then(|| now + Duration::from_secs(1)),
        );
    }
}

impl MprSignaling for Mpr {
    fn protocol(&self) -> Protocol {
        Protocol::Mgcp
    }

    fn handle_datagram(&mut self, now: Instant, mpr: &mut dyn MprContext, rx: Receive<'_>) {
        self.stats.received += 1;
        let msgs = match parse_datagram(rx.bytes) {
            Ok(m) if !m.is_empty() => m,
            Ok(_) => {
                self.stats.malformed += 1;
                return;
            }
            Err(e) => {
                self.stats.malformed += 1;
                tracing::warn!(remote = %rx.remote, error = %e, "MGCP: unparsable datagram dropped");
                return;
            }
        };
        if msgs.len() > 1 {
            self.stats.piggybacked += 1;
        }
        let net = mpr.network_for_pinhole(Protocol::Mgcp, rx.remote);
        let Some(first) = msgs.first() else {
            return;
        };
        if self.retransmission(mpr, &rx, net.as_deref(), first) {
            return;
        }
        match net {
            Some(n) => self.network_datagram(now, mpr, &rx, &n, &msgs),
            None => self.public_datagram(now, mpr, &rx, &msgs),
        }
    }

    fn sweep(&mut self, now: Instant, mpr: &mut dyn MprContext) {
        self.expire(now, mpr);
    }

    fn outbox(&self) -> &Outbox {
        &self.out
    }

    fn outbox_mut(&mut self) -> &mut Outbox {
        &mut self.out
    }

    fn counters(&self) -> Counters {
        self.stats.counters()
    }
}
