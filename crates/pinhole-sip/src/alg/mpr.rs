//! The MPR's SIP proxy (Figs. 11 and 12, the MPR's column): routes
//! requests for a registered network's domain into its signaling pinhole
//! (Fig. 4), record-routes so in-dialog requests come back through it, and
//! rewrites SDP so each side sees only MPR relay addresses.
//!
//! It is a stateless proxy for transactions (RFC 3261 §16.11: the branch
//! is a hash of the incoming one, so retransmissions and CANCEL map to the
//! same branch) with a small state per dialog *traversal*: where each party
//! sits (`Sides<Place>`), the offer/answer state ([`Negotiation`]) and the
//! call's media at the engine ([`MediaCall`], keyed `Call-ID~token`). A call
//! that passes the MPR twice (through a soft-switch on the public side) is
//! two traversals; each is named by a token carried in our Record-Route URI
//! and our Via branch, so requests and responses find their traversal
//! without a search.
//!
//! What a description means for the engine is [`MediaCall::plan`]'s
//! business: an offer of a call with media is a modification, and a
//! modification of a call the engine forgot (its media expired) is offered
//! again, so a late re-INVITE gets new relay legs rather than a 503. Its
//! events (call anchored, media planned, call ended) are the proxy's.
//!
//! **Plain terminals** (no APS, no CMPH; [`MprConfig::registrar`] set) are
//! [`super::registrar`]'s: their REGISTERs go to the registrar, its 2xx
//! binds them, and a bound terminal is a [`Place::Phone`] whose legs latch
//! onto its NAT binding (the MPR answers its CRLF keepalives).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use pinhole_core::Side;
use pinhole_core::alg::call::{MediaCall, Place, Sides};
use pinhole_core::alg::txn::Leg;
use pinhole_core::alg::unreadable::{Verdict, unreadable_media};
use pinhole_core::alg::{Counters, MprContext, MprSignaling, Outbox, Rejection};
use pinhole_core::hash::keyed;
use pinhole_core::intent::IntentKind;
use pinhole_core::mpr::{Cap, IntentError};
use pinhole_core::patch::Patch;
use pinhole_core::types::{CallKey, Flow, Receive, Transmit, Transport};
use pinhole_core::wire::Protocol;

use super::edit::{self, HostPort};
use super::registrar::Registrar;
use super::{BAD_SDP, Hop, Lifetime, Stats, forward, is_dialog_creating, keepalive, reply};
use crate::media::{self, MediaError, Negotiation, SdpBody};
use crate::{HeaderName, Message, ParseError, Uri};

/// The MPR proxy's settings.
#[derive(Clone, Debug)]
pub struct MprConfig {
    /// The MPR's SIP address (the socket networks register and send SIP
    /// to); it goes into our Via and Record-Route.
    pub local: SocketAddr,
    /// The MPR's SIP-over-TLS address (5061), when it listens for TLS: a
    /// request that leaves over TLS names it in our Via. TCP shares
    /// `local`'s address and port.
    pub tls: Option<SocketAddr>,
    /// Where requests from a network go when their domain is no network's:
    /// the soft-switch. Without one, such requests get 404.
    pub outbound_proxy: Option<SocketAddr>,
    /// Most dialogs tracked at once; beyond, new calls get 503.
    pub max_dialogs: usize,
    /// A dialog with no message for this long is forgotten.
    pub dialog_idle: Duration,
    /// A call that never got a 2xx is forgotten after this long.
    pub setup_timeout: Duration,
    /// How long an ended dialog stays to absorb retransmissions (64·T1).
    pub linger: Duration,
    /// Keys branch ids, tags and traversal tokens.
    pub seed: [u8; 32],
    /// The registrar of plain terminals (the soft-switch). With one, a
    /// REGISTER from the public side for a network's domain is sent there
    /// and its 2xx teaches the MPR the terminal's binding; OPTIONS to a
    /// server (no user part) follow the same way. Without one, REGISTERs
    /// are routed like any request.
    pub registrar: Option<SocketAddr>,
    /// Most plain-terminal bindings kept; beyond, new ones are refused (503).
    pub max_bindings: usize,
    /// Public peers trusted like the soft-switch (trunks, media servers):
    /// calls they offer are not held to the engine's limits on unanswered
    /// calls from strangers. The outbound proxy and the registrar are
    /// always trusted.
    pub trusted: Vec<IpAddr>,
}

impl MprConfig {
    /// Defaults around the MPR's SIP address.
    pub fn new(local: SocketAddr, seed: [u8; 32]) -> Self {
        Self {
            tls: None,
            local,
            outbound_proxy: None,
            max_dialogs: 100_000,
            dialog_idle: Duration::from_secs(4 * 3600),
            setup_timeout: Duration::from_secs(180),
            linger: Duration::from_secs(32),
            seed,
            registrar: None,
            max_bindings: 100_000,
            trusted: Vec::new(),
        }
    }
}

/// Names a dialog's first request: Call-ID, From tag and where it came
/// from (a spiral through a soft-switch comes back from elsewhere).
type InitialKey = (Vec<u8>, Vec<u8>, Place);

struct Traversal {
    caller_tag: Vec<u8>,
    /// Where A and B sit.
    places: Sides<Place>,
    /// The call's media at the engine.
    call: MediaCall,
    /// Where the initial request went: CANCEL and a non-2xx ACK follow it.
    initial_dest: Hop,
    neg: Negotiation,
    last: Instant,
    ended: Option<Instant>,
    /// Key in `initial`.
    initial_key: InitialKey,
}

/// Why [`Mpr::media`] will not let a message go on.
enum Refusal {
    /// The engine refused the plan (a request gets this answer).
    Plan(Rejection),
    /// The SDP could not be rewritten.
    Unreadable(MediaError),
}

/// What a message must have for the proxy to pass it on, beyond
/// [`Message::parse`]: SIP/2.0 (505 otherwise: RFC 3261 §21.5.7, RFC 4475
/// §3.1.2.16), the mandatory To, From, Call-ID and CSeq (RFC 3261
/// §8.1.1), a Content-Type for a body, and for a request the checks of
/// [`edit::check_request`].
fn check(msg: &Message<'_>) -> Result<(), Rejection> {
    if !msg.version().eq_ignore_ascii_case("SIP/2.0") {
        return Err(Rejection::new(505, "Version Not Supported"));
    }
    for (name, why) in [
        (HeaderName::To, "Missing To"),
        (HeaderName::From, "Missing From"),
        (HeaderName::CallId, "Missing Call-ID"),
        (HeaderName::CSeq, "Missing CSeq"),
    ] {
        if msg.header(name).is_none() {
            return Err(Rejection::new(400, why));
        }
    }
    if msg.cseq().is_none() {
        return Err(Rejection::new(400, "Bad CSeq"));
    }
    // RFC 3261 §20.15: a body says what it is. One that does not could be
    // a description nobody rewrote.
    let body = msg.buf().get(msg.body()).unwrap_or_default();
    if msg.content_type().is_none() && !body.trim_ascii().is_empty() {
        return Err(Rejection::new(400, "Missing Content-Type"));
    }
    if msg.is_request() {
        edit::check_request(msg)?;
    }
    Ok(())
}

/// The traversal token in a branch or Record-Route parameter (hex).
fn token_of(text: &[u8]) -> Option<u64> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|t| u64::from_str_radix(t, 16).ok())
}

/// The MPR's SIP ALG.
pub struct Mpr {
    cfg: MprConfig,
    /// Keys branch ids, tags and tokens (from the seed).
    secret: u64,
    traversals: HashMap<u64, Traversal>,
    initial: HashMap<InitialKey, u64>,
    next_token: u64,
    out: Outbox,
    stats: Stats,
    /// Plain terminals, when there is a registrar.
    registrar: Option<Registrar>,
    life: Lifetime,
}

impl Mpr {
    /// A proxy with no dialogs.
    pub fn new(cfg: MprConfig) -> Self {
        let secret = pinhole_core::rng::Rng::from_seed(cfg.seed).next_u64();
        let next_token = keyed(secret, &[b"token"]) & 0xffff_ffff;
        let registrar = cfg
            .registrar
            .map(|at| Registrar::new(at, cfg.local, secret, cfg.max_bindings, cfg.max_dialogs));
        let life = Lifetime {
            setup_timeout: cfg.setup_timeout,
            dialog_idle: cfg.dialog_idle,
            linger: cfg.linger,
        };
        Self {
            life,
            cfg,
            secret,
            traversals: HashMap::new(),
            initial: HashMap::new(),
            next_token: next_token.max(1),
            out: Outbox::new(),
            stats: Stats::default(),
            registrar,
        }
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Dialog traversals tracked now.
    pub fn dialogs(&self) -> usize {
        self.traversals.len()
    }

    /// Plain terminals with a live binding now.
    pub fn bindings(&self, now: Instant) -> usize {
        self.registrar.as_ref().map_or(0, |r| r.live(now))
    }

    fn place_of(&self, now: Instant, ctx: &dyn MprContext, source: SocketAddr) -> Place {
        if let Some(n) = ctx.network_for_pinhole(Protocol::Sip, source) {
            return Place::Network(n);
        }
        self.registrar
            .as_ref()
            .and_then(|r| r.place_of(now, source))
            .unwrap_or(Place::Public)
    }

    /// The sender's IP when nobody vouches for it: a public party other
    /// than the soft-switch, the registrar and the trusted peers.
    fn stranger(&self, origin: &Place, remote: SocketAddr) -> Option<IpAddr> {
        let ip = remote.ip();
        let trusted = self.cfg.outbound_proxy.map(|a| a.ip()) == Some(ip)
            || self.cfg.registrar.map(|a| a.ip()) == Some(ip)
            || self.cfg.trusted.contains(&ip);
        (*origin == Place::Public && !trusted).then_some(ip)
    }

    fn reply(&mut self, rx: &Receive<'_>, msg: &Message<'_>, why: Rejection) {
        let tag = format!(
            "ph{:x}",
            keyed(self.secret, &[msg.call_id().unwrap_or_default()])
        );
        // RFC 3581: back to where the request came from.
        reply(&mut self.out, &mut self.stats, rx, msg, why, &tag);
    }

    fn request(
        &mut self,
        now: Instant,
        ctx: &mut dyn MprContext,
        rx: &Receive<'_>,
        msg: &Message<'_>,
    ) {
        let buf = msg.buf();
        let vias = msg.vias();
        let Some(top) = vias.first() else {
            self.stats.malformed += 1;
            tracing::warn!(remote = %rx.remote, "SIP request without Via dropped");
            return;
        };
        let (Some(call_id), Some(from_tag), Some(method)) =
            (msg.call_id(), msg.from_tag(), msg.method())
        else {
            self.stats.malformed += 1;
            self.reply(rx, msg, Rejection::new(400, "Missing Call-ID or From tag"));
            return;
        };
        if let Err(why) = check(msg) {
            self.stats.malformed += 1;
            tracing::warn!(remote = %rx.remote, code = why.code, reason = why.reason,
                "SIP: malformed request refused");
            self.reply(rx, msg, why);
            return;
        }
        // Read before anything is routed or kept: a description that
        // cannot be read never goes on (and holds no state).
        let body = match media::sdp_body(msg, rx.remote.ip()) {
            Ok(b) => b,
            Err(e) => {
                if let Verdict::Refuse(why) = self.unreadable(msg, &e) {
                    self.reply(rx, msg, why);
                }
                return;
            }
        };
        let mut patch = Patch::new();
        if let Err(why) = edit::max_forwards(msg, &mut patch) {
            self.reply(rx, msg, why);
            return;
        }
        let origin = self.place_of(now, ctx, rx.remote);

        // Our own Route entries (two where we record-routed twice, one per
        // transport) name the traversal.
        let (ours, deletions) = edit::leading_routes(msg, |u| self.is_ours(buf, u));
        for d in deletions {
            patch.delete(d);
        }
        let popped = ours.len();
        let token = ours
            .iter()
            .find_map(|span| edit::uri_param(buf, span.clone(), b"ph").and_then(token_of));
        // A plain terminal's REGISTER (or server OPTIONS) goes to the registrar.
        if let Some(r) = &mut self.registrar
            && !matches!(origin, Place::Network(_))
            && Registrar::takes(msg, method)
        {
            match r.send_up(now, ctx, rx, msg, &mut patch, &mut self.stats) {
                Ok(to) => {
                    self.life.arm(&mut self.out, now);
                    forward(
                        &mut self.out,
                        &mut self.stats,
                        msg,
                        &patch,
                        Hop::udp(self.cfg.local, to),
                    );
                }
                Err(why) => self.reply(rx, msg, why),
            }
            return;
        }
        let ikey = (call_id.to_vec(), from_tag.to_vec(), origin.clone());
        let token = token
            .filter(|t| self.traversals.contains_key(t))
            .or_else(|| self.initial.get(&ikey).copied());
        let mut created = false;
        let token = match token {
            Some(t) => t,
            None => {
                if msg.to_tag().is_some() || method.eq_ignore_ascii_case("CANCEL") {
                    self.stats.unknown_dialog += 1;
                    self.reply(
                        rx,
                        msg,
                        Rejection::new(481, "Call/Transaction Does Not Exist"),
                    );
                    return;
                }
                if method.eq_ignore_ascii_case("ACK") {
                    self.stats.unknown_dialog += 1;
                    return;
                }
                let stranger = self.stranger(&origin, rx.remote);
                match self.new_traversal(now, ctx, msg, origin, stranger, ikey) {
                    Ok(t) => {
                        created = true;
                        t
                    }
                    Err(why) => {
                        self.reply(rx, msg, why);
                        return;
                    }
                }
            }
        };
        let Some(trav) = self.traversals.get(&token) else {
            return;
        };
        let from = media::sender(msg, &trav.caller_tag);
        let Some(toward) = trav.places.get(from.peer()).cloned() else {
            return;
        };
        let initial_dest = trav.initial_dest;
        let follows_invite = msg.to_tag().is_none()
            || method.eq_ignore_ascii_case("CANCEL")
            || (method.eq_ignore_ascii_case("ACK") && popped == 0);
        let dest = match toward {
            // A network is reached through its current route, which a
            // re-registration may have moved.
            Place::Network(_) | Place::Phone { .. } => self.destination(ctx, msg, &toward, popped),
            // The initial request, its CANCEL and a non-2xx ACK go where the
            // INVITE went (RFC 3261 §9.1, §17.1.1.3).
            Place::Public if follows_invite => Some(initial_dest),
            Place::Public => self.destination(ctx, msg, &toward, popped),
        };
        let Some(hop) = dest else {
            self.reply(rx, msg, Rejection::new(480, "Temporarily Unavailable"));
            return;
        };

        edit::mark_received(msg, &mut patch, top, rx.remote);
        let incoming_branch = top
            .branch
            .clone()
            .and_then(|b| buf.get(b))
            .unwrap_or(call_id);
        let branch = format!(
            "z9hG4bKph{token:x}.{:x}",
            keyed(self.secret, &[incoming_branch, call_id])
        );
        if msg.to_tag().is_none() && is_dialog_creating(method) {
            // RFC 5658: where the two sides use different transports, the
            // callee's side (the first entry) and the caller's side (the
            // second, which the caller's reversed route set puts first)
            // each name our address for their transport.
            let (out_t, in_t) = (hop.flow.transport, rx.flow.transport);
            let out_rr = self.record_route(out_t, token);
            if in_t == out_t {
                edit::add_record_route(msg, &mut patch, &out_rr);
            } else {
                let in_rr = self.record_route(in_t, token);
                edit::add_record_routes(msg, &mut patch, &[&out_rr, &in_rr]);
            }
        }
        edit::add_via(msg, &mut patch, hop.local, hop.flow.transport, &branch);
        let refused = match self.media(now, ctx, msg, body, token, from, &mut patch) {
            Ok(()) => None,
            Err(Refusal::Plan(why)) => Some(Verdict::Refuse(why)),
            Err(Refusal::Unreadable(e)) => Some(self.unreadable(msg, &e)),
        };
        if let Some(verdict) = refused {
            if created {
                // The dialog it would have started never began.
                self.forget(now, ctx, token);
            }
            if let Verdict::Refuse(why) = verdict {
                self.reply(rx, msg, why);
            }
            return;
        }
        forward(&mut self.out, &mut self.stats, msg, &patch, hop);
    }

    /// Issue 18's rule ([`unreadable_media`]) for `msg`, whose media
    /// description could not be read or rewritten (`e`): a request is to
    /// be answered [`BAD_SDP`], a response dropped; nothing goes on either
    /// way. Counted and logged here.
    fn unreadable(&mut self, msg: &Message<'_>, e: &MediaError) -> Verdict {
        let leg = if msg.is_request() {
            Leg::Request
        } else {
            Leg::Response
        };
        unreadable_media(Protocol::Sip, leg, BAD_SDP, e, &mut self.stats.sdp_errors)
    }

    /// Forgets traversal `token` at once, with its media (a call refused
    /// before it started).
    fn forget(&mut self, now: Instant, ctx: &mut dyn MprContext, token: u64) {
        if let Some(mut t) = self.traversals.remove(&token) {
            self.initial.remove(&t.initial_key);
            t.call.teardown(now, ctx, &mut self.out);
        }
    }

    fn new_traversal(
        &mut self,
        now: Instant,
        ctx: &mut dyn MprContext,
        msg: &Message<'_>,
        origin: Place,
        stranger: Option<IpAddr>,
        ikey: InitialKey,
    ) -> Result<u64, Rejection> {
        if self.traversals.len() >= self.cfg.max_dialogs {
            self.stats.dialogs_refused += 1;
            return Err(Rejection::new(503, "Service Unavailable"));
        }
        let buf = msg.buf();
        let ruri = msg.request_uri();
        let domain = ruri
            .clone()
            .and_then(|span| Uri::parse(buf, span).ok())
            .and_then(|u| buf.get(u.host).map(<[u8]>::to_vec))
            .and_then(|h| String::from_utf8(h).ok());
        let network = domain.as_deref().and_then(|d| ctx.network_for_domain(d));
        // A plain terminal registered under the Request-URI is reached at
        // its binding.
        let phone = ruri.and_then(|s| self.registrar.as_ref()?.phone(now, buf, s));
        let toward = match (phone, network, &origin) {
            (Some(p), _, _) => p,
            (None, Some(n), _) => Place::Network(n),
            (None, None, Place::Network(_) | Place::Phone { .. }) => Place::Public,
            // Public to public: the MPR is not an open relay.
            (None, None, Place::Public) => {
                self.stats.not_ours += 1;
                return Err(Rejection::new(404, "Not Found"));
            }
        };
        let dest = self
            .destination(ctx, msg, &toward, 0)
            .ok_or(Rejection::new(480, "Temporarily Unavailable"))?;
        let token = self.next_token;
        self.next_token = self.next_token.wrapping_add(1).max(1);
        self.initial.insert(ikey.clone(), token);
        let mut key = ikey.0.clone();
        key.extend_from_slice(format!("~{token:x}").as_bytes());
        self.traversals.insert(
            token,
            Traversal {
                caller_tag: ikey.1.clone(),
                places: Sides::both(origin, toward),
                call: match stranger {
                    Some(ip) => MediaCall::new(CallKey::new(key)).from_stranger(ip),
                    None => MediaCall::new(CallKey::new(key)),
                },
                initial_dest: dest,
                neg: Negotiation::default(),
                last: now,
                ended: None,
                initial_key: ikey,
            },
        );
        self.stats.dialogs += 1;
        self.life.arm(&mut self.out, now);
        Ok(token)
    }

    /// A Route entry that names us (any of our addresses).
    fn is_ours(&self, buf: &[u8], u: &Uri) -> bool {
        let at = edit::uri_target(buf, u);
        at == Some(self.cfg.local) || (at.is_some() && at == self.cfg.tls)
    }

    /// Our Record-Route entry for a transport: our address for it, the
    /// traversal's token, and `;transport=` on a stream.
    fn record_route(&self, transport: Transport, token: u64) -> String {
        let param = match transport {
            Transport::Udp => "",
            Transport::Tcp => ";transport=tcp",
            Transport::Tls => ";transport=tls",
        };
        format!(
            "sip:{};lr;ph={token:x}{param}",
            HostPort(self.local_for(transport))
        )
    }

    /// Our address for a transport: TLS has its own listener.
    fn local_for(&self, transport: Transport) -> SocketAddr {
        match (transport, self.cfg.tls) {
            (Transport::Tls, Some(tls)) => tls,
            _ => self.cfg.local,
        }
    }

    /// Where a request toward `place` goes, from which of our sockets and
    /// how: into a network down its route (over the connection it opened,
    /// when it registered over one); to the public side by the next URI's
    /// transport (RFC 3263 §4.1).
    fn destination(
        &self,
        ctx: &dyn MprContext,
        msg: &Message<'_>,
        place: &Place,
        popped: usize,
    ) -> Option<Hop> {
        match place {
            Place::Network(n) => {
                let r = ctx.route(n, Protocol::Sip)?;
                Some(Hop {
                    local: r.local,
                    remote: r.pinhole,
                    flow: r.flow,
                })
            }
            Place::Phone { at, .. } => Some(Hop::udp(self.cfg.local, *at)),
            Place::Public => {
                let buf = msg.buf();
                let next = edit::route_at(msg, popped);
                let target = |u: Uri| {
                    let t = edit::uri_transport(buf, &u);
                    edit::uri_target(buf, &u).map(|at| (at, t))
                };
                let by_route = next.and_then(target);
                let by_uri = msg
                    .request_uri()
                    .and_then(|s| Uri::parse(buf, s).ok())
                    .and_then(target);
                let (remote, transport) = by_route
                    .or(by_uri)
                    .or(self.cfg.outbound_proxy.map(|p| (p, Transport::Udp)))?;
                Some(Hop {
                    local: self.local_for(transport),
                    remote,
                    flow: Flow::over(transport),
                })
            }
        }
    }

    /// Plans the message's media (`body`, read by the caller) through the
    /// call and records the SDP edits.
    #[allow(clippy::too_many_arguments)]
    fn media(
        &mut self,
        now: Instant,
        ctx: &mut dyn MprContext,
        msg: &Message<'_>,
        body: Option<SdpBody<'_>>,
        token: u64,
        from: Side,
        patch: &mut Patch,
    ) -> Result<(), Refusal> {
        let Some(trav) = self.traversals.get_mut(&token) else {
            return Ok(());
        };
        trav.last = now;
        let Some(kind) = trav.neg.classify(msg, body.is_some()) else {
            return Ok(());
        };
        if kind == IntentKind::Teardown {
            trav.ended.get_or_insert(now);
            trav.call.teardown(now, ctx, &mut self.out);
            self.stats.teardowns += 1;
            self.life.arm(&mut self.out, now);
            return Ok(());
        }
        let (Some(body), Some(origin), Some(toward)) =
            (body, trav.places.get(from), trav.places.get(from.peer()))
        else {
            return Ok(());
        };
        let planned = trav.call.plan(
            now,
            ctx,
            &mut self.out,
            kind,
            from,
            origin,
            toward,
            body.endpoints(),
        );
        match planned {
            Ok(p) => {
                body.rewrite(msg, &p.plan.endpoints, patch)
                    .map_err(Refusal::Unreadable)?;
                self.stats.sdp_rewritten += 1;
                Ok(())
            }
            Err(e) => {
                self.stats.plan_errors += 1;
                tracing::warn!(error = %e, "SIP: media plan refused");
                if msg.is_request() {
                    Err(Refusal::Plan(match e {
                        // The called network has as many calls ringing
                        // from strangers as it may.
                        IntentError::Unanswered(Cap::Network) => Rejection::new(486, "Busy Here"),
                        _ => Rejection::new(503, "Service Unavailable"),
                    }))
                } else {
                    // A response cannot be refused; it passes as it is and
                    // the call will have no media through us.
                    Ok(())
                }
            }
        }
    }

    fn response(
        &mut self,
        now: Instant,
        ctx: &mut dyn MprContext,
        rx: &Receive<'_>,
        msg: &Message<'_>,
    ) {
        let buf = msg.buf();
        let vias = msg.vias();
        let Some(top) = vias.first() else {
            self.stats.malformed += 1;
            return;
        };
        if let Err(why) = check(msg) {
            // A response cannot be refused: it goes nowhere.
            self.stats.malformed += 1;
            tracing::warn!(remote = %rx.remote, reason = why.reason, "SIP: malformed response dropped");
            return;
        }
        if let Some(id) = Registrar::upstream_id(buf, top) {
            let mut patch = Patch::new();
            let back = match &mut self.registrar {
                Some(r) => r.answer(now, rx, msg, id, &mut patch, &mut self.stats),
                None => {
                    self.stats.not_ours += 1;
                    None
                }
            };
            if let Some((local, to)) = back {
                self.life.arm(&mut self.out, now);
                forward(
                    &mut self.out,
                    &mut self.stats,
                    msg,
                    &patch,
                    Hop::udp(local, to),
                );
            }
            return;
        }
        let token = top
            .branch
            .clone()
            .and_then(|b| buf.get(b))
            .and_then(|b| b.strip_prefix(b"z9hG4bKph"))
            .and_then(|b| b.split(|&c| c == b'.').next())
            .and_then(token_of);
        let ours = edit::via_is(buf, top, self.cfg.local) || edit::via_is(buf, top, rx.local);
        let (Some(token), true) = (token, ours) else {
            self.stats.not_ours += 1;
            tracing::debug!(remote = %rx.remote, "SIP response not sent through us: dropped");
            return;
        };
        let Some(next) = vias.get(1) else {
            self.stats.malformed += 1;
            return;
        };
        let Some(remote) = edit::via_target(buf, next) else {
            self.stats.malformed += 1;
            tracing::warn!("SIP response: next Via has no IP address to send to");
            return;
        };
        let body = match media::sdp_body(msg, rx.remote.ip()) {
            Ok(b) => b,
            Err(e) => {
                self.unreadable(msg, &e);
                return;
            }
        };
        let mut patch = Patch::new();
        edit::pop_via(msg, &mut patch, top);
        let from = self
            .traversals
            .get(&token)
            .map(|t| media::sender(msg, &t.caller_tag));
        if let (Some(101..=199), Some(t)) = (msg.status(), self.traversals.get(&token)) {
            // The called party lives: its call may ring (Timer C).
            t.call.progress(now, ctx);
        }
        if let Some(from) = from
            && let Err(Refusal::Unreadable(e)) =
                self.media(now, ctx, msg, body, token, from, &mut patch)
        {
            self.unreadable(msg, &e);
            return;
        }
        // Into a network: down its route. Else back the way the request
        // came (RFC 3261 §18.2.2): over a stream, the connection to that
        // address, which the driver finds.
        let route = ctx
            .network_for_pinhole(Protocol::Sip, remote)
            .and_then(|n| ctx.route(&n, Protocol::Sip));
        let hop = match route {
            Some(r) => Hop {
                local: r.local,
                remote,
                flow: r.flow,
            },
            None => {
                let transport = edit::via_transport(buf, next);
                Hop {
                    local: self.local_for(transport),
                    remote,
                    flow: Flow::over(transport),
                }
            }
        };
        forward(&mut self.out, &mut self.stats, msg, &patch, hop);
    }

    /// A datagram that fails the parse never goes on: a request that can
    /// be answered gets a 400 naming what is broken, anything else is
    /// dropped; counted as malformed either way.
    fn unparsable(&mut self, rx: &Receive<'_>, e: &ParseError) {
        self.stats.malformed += 1;
        let why = edit::bad_request_for(e);
        // The To tag from the Call-ID line's bytes would need the parse
        // that failed; the datagram's own bytes key it instead.
        let tag = format!("ph{:x}", keyed(self.secret, &[rx.bytes]) as u32);
        match edit::bad_request(rx.bytes, why, &tag) {
            Some(payload) => {
                self.stats.replied += 1;
                tracing::warn!(remote = %rx.remote, error = %e, code = why.code, reason = why.reason,
                    "SIP: unparsable request refused");
                self.out.send(Transmit {
                    local: rx.local,
                    remote: rx.remote,
                    payload,
                    flow: rx.flow,
                });
            }
            None => {
                tracing::warn!(remote = %rx.remote, error = %e, "SIP: unparsable message dropped");
            }
        }
    }

    fn expire(&mut self, now: Instant, ctx: &mut dyn MprContext) {
        let life = self.life;
        let gone: Vec<u64> = self
            .traversals
            .iter()
            .filter(|(_, t)| life.over(now, t.last, t.ended, t.neg.confirmed()))
            .map(|(token, _)| *token)
            .collect();
        for token in gone {
            if let Some(mut t) = self.traversals.remove(&token) {
                self.initial.remove(&t.initial_key);
                if t.ended.is_none() {
                    // Forgotten without a BYE: its media goes too.
                    t.call.teardown(now, ctx, &mut self.out);
                    self.stats.expired += 1;
                }
            }
        }
        let registered = match &mut self.registrar {
            Some(r) => r.expire(now, self.cfg.linger, &mut self.stats),
            None => false,
        };
        let busy = !self.traversals.is_empty() || registered;
        self.life.rearm(&mut self.out, now, busy);
    }
}

impl MprSignaling for Mpr {
    fn protocol(&self) -> Protocol {
        Protocol::Sip
    }

    fn framer(&self) -> Option<pinhole_core::framing::ProtocolFramer> {
        Some(crate::stream_frame)
    }

    fn handle_datagram(&mut self, now: Instant, mpr: &mut dyn MprContext, rx: Receive<'_>) {
        self.stats.received += 1;
        if keepalive(&mut self.out, &mut self.stats, &rx) {
            return;
        }
        let msg = match Message::parse(rx.bytes) {
            Ok(m) => m,
            Err(e) => {
                self.unparsable(&rx, &e);
                return;
            }
        };
        if msg.is_request() {
            self.request(now, mpr, &rx, &msg);
        } else {
            self.response(now, mpr, &rx, &msg);
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
