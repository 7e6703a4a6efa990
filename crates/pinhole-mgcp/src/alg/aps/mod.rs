//! The APS's MGCP ALG (Fig. 9, the APS columns). The inside gateways use
//! the APS as their call agent; it forwards their messages to the MPR
//! through its registered signaling pinhole ([`up`]), and the call agent's
//! commands from the MPR to the gateway that serves the endpoint's domain
//! ([`ApsConfig::gateways`], or the `[ip]:port` the endpoint names;
//! [`down`]).
//!
//! **Media.** Each gateway connection is a party of core's
//! [`ApsMedia`] (keyed by the APS's number for the connection). A
//! RemoteConnectionDescriptor going in (CRCX/MDCX from the MPR) is
//! rewritten to an APS media port B ([`ApsMedia::inward`]), which the
//! relay maps to the MPR relay port it named and to the gateway. A
//! LocalConnectionDescriptor coming out (the gateway's 2xx) needs an open
//! media pinhole first ([`ApsMedia::outward`]): the APS sends CMPH (steps
//! 825, 855) and holds the 2xx — and the call's later messages behind it,
//! in a [`Held`] queue per call id — until the pinhole opens (830, 860),
//! then forwards it with the pinhole's public address written in (835,
//! 865). Port B is the source of the media the gateway receives, and the
//! address its SDP names: a gateway like osmo-mgw takes RTP only from
//! there. Each stream's LEG-KEY is `mgcp/{keyed hash of the connection}/{stream}`.
//!
//! **Failure.** When the pinhole cannot be opened the APS answers the MPR
//! on the gateway's behalf with 502 (RFC 3435 §2.4: the endpoint lacks
//! the resources) and deletes the connection the gateway created with a
//! DLCX of its own (whose answer it keeps), so nothing is left half made.
//! A held 2xx whose pinhole failed is refused so when it resumes
//! ([`Step::Failed`]), never offered again in a loop.
//!
//! **Retransmissions.** A command seen again goes to the gateway as it was
//! first rewritten; a gateway's 2xx repeated while its pinhole opens is
//! absorbed, and after that gets the first rewritten copy again. DLCX frees
//! the connection's ports B and closes its pinholes.
//!
//! [`Step::Failed`]: pinhole_core::alg::aps::Step::Failed

mod down;
mod up;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use pinhole_core::alg::aps::{ApsMedia, Held, Outcome, Park};
use pinhole_core::alg::txn::Transactions;
use pinhole_core::alg::{ClientContext, ClientSignaling, Counters, Outbox};
use pinhole_core::client::Event;
use pinhole_core::hash::keyed;
use pinhole_core::ports::PortRange;
use pinhole_core::rng::Rng;
use pinhole_core::types::{Receive, Transmit};
use pinhole_core::wire::Protocol;

use super::{Dir, Kind, Stats, dlcx_names, endpoint_name, replies, suffixes};
use crate::{Head, Host, Message, parse_datagram};

/// The APS MGCP ALG's settings.
#[derive(Clone, Debug)]
pub struct ApsConfig {
    /// The APS's MGCP socket (inside address, registered with the MPR for
    /// MGCP); the inside gateways send to it as their call agent.
    pub local: SocketAddr,
    /// The inside address media ports B are bound on.
    pub media_ip: IpAddr,
    /// Media ports B.
    pub media_ports: PortRange,
    /// Inside gateways by endpoint domain (`gw1.corp1.example` → its MGCP
    /// address); a domain's parents match too. An endpoint domain that is
    /// itself `[ip]` (with an optional `:port`, default 2427) needs no entry.
    pub gateways: Vec<(String, SocketAddr)>,
    /// Most connections tracked at once; beyond, CRCX gets 403.
    pub max_connections: usize,
    /// Most transactions tracked at once; beyond, commands get 409.
    pub max_transactions: usize,
    /// Most messages held per call while pinholes open.
    pub max_parked: usize,
    /// How long a transaction and its rewritten response are kept (T-hist).
    pub transaction_timeout: Duration,
    /// A connection with no message for this long is forgotten.
    pub connection_idle: Duration,
    /// How long a freed media port pair B rests before reuse.
    pub port_quarantine: Duration,
    /// Keys LEG-KEYs and seeds the port choice.
    pub seed: [u8; 32],
}

impl ApsConfig {
    /// Defaults for an APS at `local` with media ports on `media_ip`.
    pub fn new(
        local: SocketAddr,
        media_ip: IpAddr,
        media_ports: PortRange,
        seed: [u8; 32],
    ) -> Self {
        Self {
            local,
            media_ip,
            media_ports,
            gateways: Vec::new(),
            max_connections: 50_000,
            max_transactions: 100_000,
            max_parked: 16,
            transaction_timeout: Duration::from_secs(30),
            connection_idle: Duration::from_secs(4 * 3600),
            port_quarantine: Duration::from_secs(30),
            seed,
        }
    }
}

/// A gateway connection (from its CRCX on); its streams are in
/// [`Aps::media`] under the same number.
struct Conn {
    call: String,
    gateway: SocketAddr,
    endpoint: String,
    id: Option<String>,
    last: Instant,
}

impl Conn {
    /// Whether a DLCX (call, endpoint, connection) names this connection
    /// (RFC 3435 §2.3.9).
    fn named_by(&self, call: Option<&str>, endpoint: &str, conn: Option<&str>) -> bool {
        if let Some(i) = conn {
            return self.id.as_deref() == Some(i);
        }
        call.is_none_or(|x| x == self.call) && dlcx_names(endpoint, &self.endpoint)
    }
}

/// What the APS keeps per transaction, beside what it sent.
struct Txn {
    gateway: SocketAddr,
    kind: Kind,
    call: Option<String>,
    /// The connection a CRCX or MDCX was for.
    conn: Option<u64>,
}

/// The APS's MGCP ALG.
pub struct Aps {
    cfg: ApsConfig,
    secret: u64,
    media: ApsMedia<u64>,
    conns: HashMap<u64, Conn>,
    next_conn: u64,
    /// By direction and transaction id.
    txns: Transactions<(Dir, u32), Txn>,
    /// Our own DLCXs to gateways (their answers stay here).
    own: HashMap<u32, Instant>,
    next_own: u32,
    /// Messages held while pinholes open, by call id.
    held: Held<String>,
    out: Outbox,
    stats: Stats,
}

impl Aps {
    /// An ALG with no connections.
    pub fn new(cfg: ApsConfig) -> Self {
        let mut rng = Rng::from_seed(cfg.seed);
        let secret = rng.next_u64();
        let media = ApsMedia::new(
            cfg.media_ip,
            cfg.media_ports,
            cfg.port_quarantine,
            rng.fork(),
        );
        // Our DLCX ids from the top of the range, away from call agents'.
        let next_own = 900_000_000 + (secret % 90_000_000) as u32;
        Self {
            secret,
            media,
            conns: HashMap::new(),
            next_conn: 1,
            txns: Transactions::new(cfg.max_transactions),
            own: HashMap::new(),
            next_own,
            held: Held::new(cfg.max_parked),
            out: Outbox::new(),
            stats: Stats::default(),
            cfg,
        }
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        // Pinholes started and refused are counted where they happen,
        // in the shared stream machine.
        Stats {
            pinholes: self.media.opened(),
            pinhole_failures: self.stats.pinhole_failures + self.media.open_refusals(),
            ..self.stats
        }
    }

    /// Gateway connections tracked now.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Media ports B in use now.
    pub fn ports_in_use(&self) -> usize {
        self.media.ports_in_use()
    }

    /// The inside gateway for an endpoint.
    fn gateway_for(&self, m: &Message<'_>) -> Option<SocketAddr> {
        let ep = m.endpoint()?;
        if let Host::Ip(ip) = ep.host {
            return Some(SocketAddr::new(ip, ep.port.unwrap_or(2427)));
        }
        let d = ep.domain.to_ascii_lowercase();
        suffixes(&d).find_map(|s| {
            self.cfg
                .gateways
                .iter()
                .find(|(g, _)| g.eq_ignore_ascii_case(s))
                .map(|(_, a)| *a)
        })
    }

    /// The LEG-KEY of stream `index` of connection `c`, for the MPR.
    fn leg_key(&self, c: u64) -> impl Fn(u16) -> Vec<u8> + use<> {
        let h = keyed(self.secret, &[&c.to_be_bytes()]);
        move |index| format!("mgcp/{h:016x}/{index}").into_bytes()
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
            local: self.cfg.local,
            remote: rx.remote,
            payload: replies(errors),
            flow: rx.flow,
        });
    }

    /// The call a datagram from a gateway belongs to, for its order.
    fn call_of(&self, m: &Message<'_>) -> Option<String> {
        match m.head() {
            Head::Command(_) => m.call_id().map(str::to_owned),
            Head::Response(r) => self
                .txns
                .get(&(Dir::Down, r.transaction_id))
                .and_then(|t| t.data.call.clone()),
        }
    }

    /// One datagram, new or held (`resuming`); false when it was held
    /// (again) for a pinhole.
    fn process(
        &mut self,
        now: Instant,
        ctx: &mut dyn ClientContext,
        rx: &Receive<'_>,
        resuming: bool,
    ) -> bool {
        let msgs = match parse_datagram(rx.bytes) {
            Ok(m) if !m.is_empty() => m,
            Ok(_) | Err(_) => {
                self.stats.malformed += 1;
                return true;
            }
        };
        if msgs.len() > 1 && !resuming {
            self.stats.piggybacked += 1;
        }
        if rx.remote == ctx.mpr() {
            self.mpr_datagram(now, ctx, rx, &msgs);
            return true;
        }
        let Some(first) = msgs.first() else {
            return true;
        };
        if !resuming {
            if self.retransmission_inside(rx, first) {
                return true;
            }
            if let Some(call) = self.call_of(first)
                && self.held.is_holding(&call)
            {
                self.park(&call, rx, false);
                return true;
            }
        }
        self.gateway_datagram(now, ctx, rx, &msgs, resuming)
    }

    /// Holds a gateway's datagram behind its call's pinhole. One held
    /// again while resuming was counted when it was first held.
    fn park(&mut self, call: &str, rx: &Receive<'_>, resuming: bool) {
        match self.held.park(&call.to_owned(), rx) {
            Park::Held if !resuming => self.stats.parked += 1,
            // A retransmission of a held message adds nothing.
            Park::Duplicate => self.stats.retransmissions += 1,
            Park::Held | Park::Full => {}
        }
    }

    /// Runs the held messages of a call, in order, until one must wait.
    fn resume(&mut self, now: Instant, ctx: &mut dyn ClientContext, call: &str) {
        Held::resume(
            self,
            |a| &mut a.held,
            &call.to_owned(),
            |a, rx| a.process(now, ctx, &rx, true),
        );
    }

    fn free_conn(&mut self, now: Instant, ctx: &mut dyn ClientContext, c: u64) {
        if self.conns.remove(&c).is_none() {
            return;
        }
        self.media.close(now, ctx, &c);
        self.arm_sweep(now);
    }

    /// Frees the connections of gateway `g` a DLCX names; how many.
    fn dlcx(
        &mut self,
        now: Instant,
        ctx: &mut dyn ClientContext,
        g: SocketAddr,
        m: &Message<'_>,
    ) -> usize {
        let call = m.call_id();
        let endpoint = endpoint_name(m);
        let gone: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| c.gateway == g && c.named_by(call, &endpoint, m.connection_id()))
            .map(|(k, _)| *k)
            .collect();
        for &k in &gone {
            self.free_conn(now, ctx, k);
        }
        gone.len()
    }

    fn arm_sweep(&mut self, now: Instant) {
        self.out.arm_sweep(now + Duration::from_secs(1));
    }

    fn expire(&mut self, now: Instant, ctx: &mut dyn ClientContext) {
        // A CRCX never answered created nothing at the gateway: its ports
        // B go with its transaction.
        let gone = self.txns.expire(now, self.cfg.transaction_timeout);
        let unanswered: Vec<u64> = gone
            .iter()
            .filter(|(_, e)| e.data.kind == Kind::Crcx && e.response.is_none())
            .filter_map(|(_, e)| e.data.conn)
            .filter(|c| self.conns.get(c).is_some_and(|x| x.id.is_none()))
            .collect();
        for c in unanswered {
            self.stats.expired += 1;
            self.free_conn(now, ctx, c);
        }
        let life = self.cfg.transaction_timeout;
        self.own.retain(|_, at| now < *at + life);
        let idle = self.cfg.connection_idle;
        let stale: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| now >= c.last + idle)
            .map(|(k, _)| *k)
            .collect();
        for c in stale {
            self.stats.expired += 1;
            self.free_conn(now, ctx, c);
        }
        // Messages held for connections that are gone wait for nothing.
        let calls: HashSet<&str> = self.conns.values().map(|c| c.call.as_str()).collect();
        self.held.retain(|call| calls.contains(call.as_str()));
        self.media.expire(now);
        let busy = !self.txns.is_empty() || !self.conns.is_empty() || !self.own.is_empty();
        self.out
            .set_sweep(busy.then(|| now + Duration::from_secs(1)));
    }
}

impl ClientSignaling for Aps {
    fn protocol(&self) -> Protocol {
        Protocol::Mgcp
    }

    fn handle_datagram(&mut self, now: Instant, ctx: &mut dyn ClientContext, rx: Receive<'_>) {
        self.stats.received += 1;
        let _ = self.process(now, ctx, &rx, false);
    }

    fn handle_event(&mut self, now: Instant, ctx: &mut dyn ClientContext, ev: &Event) {
        let c = match self.media.handle_event(ev, &mut self.out) {
            Some(Outcome::Opened(c)) => c,
            Some(Outcome::Failed(c)) => {
                self.stats.pinhole_failures += 1;
                c
            }
            None => return,
        };
        let Some(call) = self.conns.get(&c).map(|x| x.call.clone()) else {
            return;
        };
        self.resume(now, ctx, &call);
    }

    fn sweep(&mut self, now: Instant, ctx: &mut dyn ClientContext) {
        self.expire(now, ctx);
    }

    fn outbox(&self) -> &Outbox {
        &self.out
    }

    fn outbox_mut(&mut self) -> &mut Outbox {
        &mut self.out
    }

    fn counters(&self) -> Counters {
        self.stats().counters()
    }
}
