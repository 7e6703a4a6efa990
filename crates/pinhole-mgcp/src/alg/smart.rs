//! A smart gateway (Fig. 10): an MGCP gateway with a client engine of its
//! own, no APS. Its engine registers its MGCP socket with the MPR; the call
//! agent's commands reach it through that signaling pinhole. Before it
//! answers a CRCX it opens a media pinhole with CMPH for the connection's
//! RTP port (steps 915–920) — toward the relay address the command's SDP
//! names, else a fresh one the MPR reserves — and its 2xx names the public
//! pinhole (925), as a smart terminal's SDP does in Figs. 8 and 12. The
//! application sends each connection's RTP from [`Connection::media`] to
//! [`Connection::remote`], the relay address the call agent gave it.
//!
//! The pinholes are core's [`ApsMedia`] in terminal mode (they open from
//! the gateway's own RTP port, whose pairs the gateway allocates itself):
//! one stream, index 0 with RTCP multiplexed, per connection id, LEG-KEY
//! `mgcp-gw/{connection id}`. A command waiting for its pinhole is
//! answered when the engine reports it: 200 with the public pinhole, or
//! 502 (a CRCX's connection is then freed). An MDCX toward another relay
//! address opens the pinhole again toward it before it is answered.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use pinhole_core::alg::aps::{ApsMedia, Outcome, Step};
use pinhole_core::alg::{ClientContext, ClientSignaling, Counters, Outbox, Rejection};
use pinhole_core::client::Event;
use pinhole_core::hash::keyed;
use pinhole_core::intent::MediaEndpoint;
use pinhole_core::ports::{Allocator, PortPair, PortRange};
use pinhole_core::rng::Rng;
use pinhole_core::types::{Receive, Transmit};
use pinhole_core::wire::{Protocol, RtcpMode};

use super::{BAD_SDP, Kind, NO_RESOURCES, PINHOLE_FAILED, Stats, reply};
use crate::{Message, parse_datagram};

/// The smart gateway's settings.
#[derive(Clone, Debug)]
pub struct SmartGatewayConfig {
    /// Its MGCP socket (registered with the MPR for MGCP by its engine).
    pub local: SocketAddr,
    /// The address its RTP ports are on.
    pub media_ip: IpAddr,
    /// Its RTP ports, one pair per connection.
    pub media_ports: PortRange,
    /// Most connections at once; beyond, CRCX gets 403.
    pub max_connections: usize,
    /// How long an answer is kept for a retransmitted command (T-hist).
    pub transaction_timeout: Duration,
    /// Keys connection ids and seeds the port choice.
    pub seed: [u8; 32],
}

impl SmartGatewayConfig {
    /// Defaults for a gateway at `local` with RTP ports on `media_ip`.
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
            max_connections: 1_000,
            transaction_timeout: Duration::from_secs(30),
            seed,
        }
    }
}

/// One connection of the smart gateway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connection {
    /// Its ConnectionId (`I:`).
    pub id: String,
    /// The call (`C:`).
    pub call_id: String,
    /// The endpoint it was created on.
    pub endpoint: String,
    /// Its RTP port: send from here, RTP arrives here.
    pub media: SocketAddr,
    /// Where its RTP goes: the relay address of the latest
    /// RemoteConnectionDescriptor.
    pub remote: Option<SocketAddr>,
    /// The public pinhole its CMPH opened, as the engine reported it.
    pub pinhole: Option<SocketAddr>,
    /// The relay address the pinhole was opened toward.
    pub relay: Option<SocketAddr>,
    ports: PortPair,
}

impl Connection {
    /// Its one stream, as the pinhole machine sees it.
    fn stream(&self) -> MediaEndpoint {
        MediaEndpoint {
            index: 0,
            addr: self.media,
            rtcp: RtcpMode::Mux,
            rtcp_addr: None,
        }
    }
}

/// A command waiting for its connection's pinhole.
struct Waiting {
    txid: u32,
    kind: Kind,
    to: SocketAddr,
    from: SocketAddr,
}

/// The smart gateway of Fig. 10.
pub struct SmartGateway {
    cfg: SmartGatewayConfig,
    ports: Allocator,
    secret: u64,
    next: u64,
    conns: HashMap<String, Connection>,
    /// The connections' pinholes, by connection id.
    media: ApsMedia<String>,
    /// Commands waiting for their pinholes, by connection id.
    waiting: HashMap<String, Waiting>,
    /// Answers by transaction id (`None` while the pinhole opens).
    answered: HashMap<u32, (Instant, Option<Vec<u8>>)>,
    out: Outbox,
    stats: Stats,
}

impl SmartGateway {
    /// A gateway with no connections.
    pub fn new(cfg: SmartGatewayConfig) -> Self {
        let mut rng = Rng::from_seed(cfg.seed);
        let secret = rng.next_u64();
        let ports = Allocator::new(cfg.media_ports, Duration::from_secs(30), rng.fork());
        Self {
            media: ApsMedia::terminal(cfg.media_ip),
            cfg,
            ports,
            secret,
            next: 1,
            conns: HashMap::new(),
            waiting: HashMap::new(),
            answered: HashMap::new(),
            out: Outbox::new(),
            stats: Stats::default(),
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

    /// The connections now.
    pub fn connections(&self) -> impl Iterator<Item = &Connection> {
        self.conns.values()
    }

    /// A connection by id.
    pub fn connection(&self, id: &str) -> Option<&Connection> {
        self.conns.get(id)
    }

    fn respond(
        &mut self,
        now: Instant,
        to: SocketAddr,
        from: SocketAddr,
        txid: u32,
        bytes: Vec<u8>,
    ) {
        self.answered.insert(txid, (now, Some(bytes.clone())));
        self.stats.forwarded += 1;
        self.out.send(Transmit {
            local: from,
            remote: to,
            payload: bytes,
            flow: Default::default(),
        });
        self.arm_sweep(now);
    }

    /// Our session description: PCMU at `at`, RTCP multiplexed.
    fn sdp(&self, at: SocketAddr) -> Vec<u8> {
        let family = if at.is_ipv4() { "IP4" } else { "IP6" };
        format!(
            "v=0\r\no=- {s} 1 IN {family} {ip}\r\ns=-\r\nc=IN {family} {ip}\r\nt=0 0\r\n\
             m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=rtcp-mux\r\n",
            s = self.secret % 1_000_000,
            ip = at.ip(),
            port = at.port()
        )
        .into_bytes()
    }

    /// 200 for connection `conn`, with our description at `at` if any.
    fn ok(&self, txid: u32, conn: &str, at: Option<SocketAddr>) -> Vec<u8> {
        let mut b = crate::Response::builder(200, txid)
            .commentary("OK")
            .param("I", conn);
        if let Some(at) = at {
            b = b.sdp(&self.sdp(at));
        }
        b.to_bytes()
    }

    fn command(
        &mut self,
        now: Instant,
        ctx: &mut dyn ClientContext,
        rx: &Receive<'_>,
        m: &Message<'_>,
    ) {
        let txid = m.transaction_id();
        match self.answered.get(&txid) {
            Some((_, Some(bytes))) => {
                let bytes = bytes.clone();
                self.stats.retransmissions += 1;
                self.respond(now, rx.remote, rx.local, txid, bytes);
                return;
            }
            Some((_, None)) => {
                self.stats.retransmissions += 1;
                return;
            }
            None => {}
        }
        let remote_sdp = match m.sdp() {
            Ok(s) => s.and_then(|s| s.endpoints(rx.remote.ip()).ok()),
            Err(_) => {
                self.stats.sdp_errors += 1;
                let r = reply(BAD_SDP, txid);
                self.respond(now, rx.remote, rx.local, txid, r);
                return;
            }
        };
        let relay = remote_sdp
            .as_ref()
            .and_then(|v| v.first().copied())
            .filter(|e| !e.is_disabled() && !e.is_hold())
            .map(|e| e.addr);
        let kind = Kind::of(m);
        let r = match kind {
            Kind::Crcx => self.crcx(now, ctx, rx, m, relay),
            Kind::Mdcx => self.mdcx(now, ctx, rx, m, relay),
            Kind::Dlcx => Some(self.dlcx(now, ctx, m)),
            Kind::Other => Some(crate::response(200, txid, Some("OK"), &[], None)),
        };
        if let Some(bytes) = r {
            self.respond(now, rx.remote, rx.local, txid, bytes);
        }
    }

    fn crcx(
        &mut self,
        now: Instant,
        ctx: &mut dyn ClientContext,
        rx: &Receive<'_>,
        m: &Message<'_>,
        relay: Option<SocketAddr>,
    ) -> Option<Vec<u8>> {
        let txid = m.transaction_id();
        let Some(call) = m.call_id() else {
            return Some(reply(Rejection::new(400, "No CallId"), txid));
        };
        if self.conns.len() >= self.cfg.max_connections {
            return Some(reply(NO_RESOURCES, txid));
        }
        let Ok(ports) = self.ports.allocate(now) else {
            return Some(reply(NO_RESOURCES, txid));
        };
        let id = format!(
            "{:X}",
            keyed(self.secret, &[&self.next.to_be_bytes()]) & 0xffff_ffff
        );
        self.next += 1;
        let conn = Connection {
            id: id.clone(),
            call_id: call.to_owned(),
            endpoint: m.endpoint().map(|e| e.text.to_owned()).unwrap_or_default(),
            media: SocketAddr::new(self.cfg.media_ip, ports.rtp),
            remote: relay,
            pinhole: None,
            relay: None,
            ports,
        };
        self.conns.insert(id.clone(), conn);
        self.open(now, ctx, rx, txid, &id, Kind::Crcx, relay)
    }

    fn mdcx(
        &mut self,
        now: Instant,
        ctx: &mut dyn ClientContext,
        rx: &Receive<'_>,
        m: &Message<'_>,
        relay: Option<SocketAddr>,
    ) -> Option<Vec<u8>> {
        let txid = m.transaction_id();
        let Some(conn) = m.connection_id().and_then(|i| self.conns.get_mut(i)) else {
            return Some(reply(Rejection::new(515, "Incorrect connection-id"), txid));
        };
        let id = conn.id.clone();
        let Some(relay) = relay else {
            return Some(self.ok(txid, &id, None));
        };
        conn.remote = Some(relay);
        // The pinhole is open toward that relay address already.
        if self.media.public(&id, 0).is_some() && self.media.relay(&id, 0) == Some(relay) {
            return Some(self.ok(txid, &id, None));
        }
        // Another relay address: bind a pinhole toward it first.
        self.open(now, ctx, rx, txid, &id, Kind::Mdcx, Some(relay))
    }

    /// Opens connection `id`'s pinhole (again) toward `relay`, else toward
    /// a relay port the MPR reserves; the command waits for it.
    #[allow(clippy::too_many_arguments)]
    fn open(
        &mut self,
        now: Instant,
        ctx: &mut dyn ClientContext,
        rx: &Receive<'_>,
        txid: u32,
        id: &str,
        kind: Kind,
        relay: Option<SocketAddr>,
    ) -> Option<Vec<u8>> {
        let stream = self.conns.get(id)?.stream();
        let key = id.to_owned();
        // A new pinhole for the new relay address, never the old one's.
        self.media.close_stream(now, ctx, &key, 0);
        if let Some(r) = relay {
            // Terminal mode only notes where the pinhole is to point: the
            // description is not rewritten, nothing can fail.
            let _ = self
                .media
                .inward(now, ctx, &key, &[MediaEndpoint::rtp(0, r)]);
        }
        let leg_key = format!("mgcp-gw/{id}").into_bytes();
        let step = self
            .media
            .outward(now, ctx, &key, &[stream], &|_| leg_key.clone(), false);
        match step {
            Step::Wait => {
                self.stats.parked += 1;
                self.waiting.insert(
                    key,
                    Waiting {
                        txid,
                        kind,
                        to: rx.remote,
                        from: rx.local,
                    },
                );
                self.answered.insert(txid, (now, None));
                None
            }
            // Open at once (never, for a stream just closed): answer now.
            Step::Ready(plan) => {
                let at = plan.first().map(|p| p.addr);
                Some(self.ok(txid, id, at.filter(|_| kind == Kind::Crcx)))
            }
            // The engine refused the CMPH (counted and logged on the way).
            Step::Failed(_) => {
                if kind == Kind::Crcx {
                    self.free(now, ctx, id);
                }
                Some(reply(PINHOLE_FAILED, txid))
            }
        }
    }

    fn dlcx(&mut self, now: Instant, ctx: &mut dyn ClientContext, m: &Message<'_>) -> Vec<u8> {
        let txid = m.transaction_id();
        let call = m.call_id();
        let conn = m.connection_id();
        let gone: Vec<String> = self
            .conns
            .values()
            .filter(|c| match (conn, call) {
                (Some(i), _) => c.id == i,
                (None, Some(cid)) => c.call_id == cid,
                (None, None) => true,
            })
            .map(|c| c.id.clone())
            .collect();
        if gone.is_empty() && conn.is_some() {
            return reply(Rejection::new(515, "Incorrect connection-id"), txid);
        }
        for id in gone {
            self.free(now, ctx, &id);
        }
        crate::response(250, txid, Some("OK"), &[], None)
    }

    fn free(&mut self, now: Instant, ctx: &mut dyn ClientContext, id: &str) {
        if let Some(c) = self.conns.remove(id) {
            self.media.close(now, ctx, &c.id);
            self.waiting.remove(id);
            let _ = self.ports.release(now, c.ports);
        }
    }

    /// The engine reported connection `id`'s pinhole: the waiting command
    /// is answered.
    fn settle(
        &mut self,
        now: Instant,
        ctx: &mut dyn ClientContext,
        outcome: Outcome<String>,
        public: Option<SocketAddr>,
    ) {
        let (Outcome::Opened(id) | Outcome::Failed(id)) = &outcome;
        let Some(w) = self.waiting.remove(id) else {
            return;
        };
        if let Outcome::Failed(id) = &outcome {
            self.stats.pinhole_failures += 1;
            if w.kind == Kind::Crcx {
                self.free(now, ctx, id);
            }
            self.stats.replied += 1;
            let bytes = reply(PINHOLE_FAILED, w.txid);
            self.respond(now, w.to, w.from, w.txid, bytes);
            return;
        }
        let relay = self.media.relay(id, 0);
        let at = self.media.public(id, 0);
        let Some(c) = self.conns.get_mut(id) else {
            return;
        };
        c.pinhole = public;
        c.relay = relay;
        let at = at.filter(|_| w.kind == Kind::Crcx);
        let bytes = self.ok(w.txid, id, at);
        self.respond(now, w.to, w.from, w.txid, bytes);
    }

    fn arm_sweep(&mut self, now: Instant) {
        let at = now + Duration::from_secs(1);
        self.out.arm_sweep(at);
    }
}

impl ClientSignaling for SmartGateway {
    fn protocol(&self) -> Protocol {
        Protocol::Mgcp
    }

    fn handle_datagram(&mut self, now: Instant, ctx: &mut dyn ClientContext, rx: Receive<'_>) {
        self.stats.received += 1;
        let Ok(msgs) = parse_datagram(rx.bytes) else {
            self.stats.malformed += 1;
            return;
        };
        for m in &msgs {
            if m.command().is_some() {
                self.command(now, ctx, &rx, m);
            }
        }
    }

    fn handle_event(&mut self, now: Instant, ctx: &mut dyn ClientContext, ev: &Event) {
        // The public pinhole as reported: none in the no-response variant.
        let public = match *ev {
            Event::PinholeOpened { pinhole, .. } => pinhole,
            _ => None,
        };
        if let Some(outcome) = self.media.handle_event(ev, &mut self.out) {
            self.settle(now, ctx, outcome, public);
        }
    }

    fn sweep(&mut self, now: Instant, _ctx: &mut dyn ClientContext) {
        let life = self.cfg.transaction_timeout;
        self.answered
            .retain(|_, (at, bytes)| bytes.is_none() || now < *at + life);
        self.ports.expire(now);
        self.out
            .set_sweep((!self.answered.is_empty()).then(|| now + Duration::from_secs(1)));
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
