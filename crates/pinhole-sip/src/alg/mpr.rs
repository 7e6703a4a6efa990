//! The MPR's SIP proxy (Figs. 11 and 12, the MPR's column): routes
//! requests for a registered network's domain into its signaling pinhole
//! (Fig. 4), record-routes so in-dialog requests come back through it, and
//! rewrites SDP so each side sees only MPR relay addresses.
//!
//! It is a stateless proxy for transactions (RFC 3261 §16.11: the branch
//! is a hash of the incoming one, so retransmissions and CANCEL map to the
//! same branch) with a small state per dialog *traversal*: which party sits
//! where, and the offer/answer state. A call that passes the MPR twice
//! (through a soft-switch on the public side) is two traversals; each is
//! named by a token carried in our Record-Route URI and our Via branch, so
//! requests and responses find their traversal without a search.
//!
//! **Plain terminals** (no APS, no CMPH; [`MprConfig::registrar`]
//! set): a REGISTER from the public side for a network's domain goes to the
//! registrar (the soft-switch, which authenticates it). Only its 2xx makes
//! the MPR record the binding: the address of record → the network and the
//! terminal's NAT binding (where the REGISTER came from). Requests from
//! that address then count as the network's (their media legs latch onto
//! that address's IP), and requests for that AOR go to it (RFC 5626 style,
//! the flow the REGISTER opened; the MPR answers its CRLF keepalives).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pinhole_core::Side;
use pinhole_core::alg::{Counters, MprContext, MprSignaling, Outbox};
use pinhole_core::intent::{IntentKind, MediaIntent, Origin};
use pinhole_core::patch::Patch;
use pinhole_core::types::{CallKey, Receive, Transmit};
use pinhole_core::wire::Protocol;

use super::edit::{self, HostPort};
use super::{Stats, is_dialog_creating};
use crate::Message;
use crate::media::{self, Negotiation};

/// The MPR proxy's settings.
#[derive(Clone, Debug)]
pub struct MprConfig {
    /// The MPR's SIP address (the socket networks register and send SIP
    /// to); it goes into our Via and Record-Route.
    pub local: SocketAddr,
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
}

impl MprConfig {
    /// Defaults around the MPR's SIP address.
    pub fn new(local: SocketAddr, seed: [u8; 32]) -> Self {
        Self {
            local,
            outbound_proxy: None,
            max_dialogs: 100_000,
            dialog_idle: Duration::from_secs(4 * 3600),
            setup_timeout: Duration::from_secs(180),
            linger: Duration::from_secs(32),
            seed,
            registrar: None,
            max_bindings: 100_000,
        }
    }
}

/// Where a party of a call sits.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
enum Place {
    /// Behind a network's signaling pinhole (an APS, a smart terminal).
    Network(String),
    /// A plain terminal of a network, at its registered NAT binding.
    Phone {
        network: String,
        at: SocketAddr,
    },
    Public,
}

impl Place {
    fn origin(&self) -> Origin<'_> {
        match self {
            Self::Network(n) | Self::Phone { network: n, .. } => Origin::Network(n),
            Self::Public => Origin::Public,
        }
    }
}

/// A plain terminal's binding, learned from its registrar's 2xx.
struct Binding {
    network: String,
    /// Its NAT binding: where its REGISTER came from.
    at: SocketAddr,
    expires: Instant,
}

/// A request sent to the registrar outside any dialog (REGISTER, OPTIONS),
/// waiting for its final response.
struct Upstream {
    /// A REGISTER's address of record and network.
    register: Option<(String, String)>,
    /// Where it came from, and the socket of ours it reached.
    source: SocketAddr,
    local: SocketAddr,
    sent: Instant,
}

/// `user@host` (or `host`) of the URI at `span`: the host in lower case.
fn aor(buf: &[u8], span: std::ops::Range<usize>) -> Option<String> {
    let uri = crate::Uri::parse(buf, span).ok()?;
    let host = std::str::from_utf8(buf.get(uri.host.clone())?)
        .ok()?
        .to_ascii_lowercase();
    match uri.user.and_then(|u| buf.get(u)) {
        Some(user) => Some(format!("{}@{host}", std::str::from_utf8(user).ok()?)),
        None => Some(host),
    }
}

/// The branch of a request we sent to the registrar: `z9hG4bKphr<id>.<h>`.
const UPSTREAM_BRANCH: &[u8] = b"z9hG4bKphr";

struct Traversal {
    call_id: Vec<u8>,
    caller_tag: Vec<u8>,
    /// Where A and B sit.
    places: [Place; 2],
    /// Where the initial request went: CANCEL and a non-2xx ACK follow it.
    initial_dest: (SocketAddr, SocketAddr),
    neg: Negotiation,
    last: Instant,
    ended: Option<Instant>,
    /// Key in `initial` (Call-ID, From tag, origin).
    initial_key: (Vec<u8>, Vec<u8>, Place),
}

impl Traversal {
    fn place(&self, side: Side) -> &Place {
        match side {
            Side::A => &self.places[0],
            Side::B => &self.places[1],
        }
    }

    fn key(&self, token: u64) -> CallKey {
        let mut k = self.call_id.clone();
        k.extend_from_slice(format!("~{token:x}").as_bytes());
        CallKey::new(k)
    }
}

/// The MPR's SIP ALG.
pub struct Mpr {
    cfg: MprConfig,
    /// Keys branch ids, tags and tokens (from the seed).
    secret: u64,
    traversals: HashMap<u64, Traversal>,
    initial: HashMap<(Vec<u8>, Vec<u8>, Place), u64>,
    next_token: u64,
    out: Outbox,
    stats: Stats,
    /// Plain terminals: AOR → binding, and binding address → AOR.
    bindings: HashMap<String, Binding>,
    by_source: HashMap<SocketAddr, String>,
    upstream: HashMap<u64, Upstream>,
}

impl Mpr {
    /// A proxy with no dialogs.
    pub fn new(cfg: MprConfig) -> Self {
        let secret = pinhole_core::rng::Rng::from_seed(cfg.seed).next_u64();
        let next_token = edit::hash(secret, &[b"token"]) & 0xffff_ffff;
        Self {
            cfg,
            secret,
            traversals: HashMap::new(),
            initial: HashMap::new(),
            next_token: next_token.max(1),
            out: Outbox::new(),
            stats: Stats::default(),
            bindings: HashMap::new(),
            by_source: HashMap::new(),
            upstream: HashMap::new(),
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
        self.bindings.values().filter(|b| b.expires > now).count()
    }

    fn place_of(&self, now: Instant, ctx: &dyn MprContext, source: SocketAddr) -> Place {
        if let Some(n) = ctx.network_for_pinhole(Protocol::Sip, source) {
            return Place::Network(n);
        }
        self.by_source
            .get(&source)
            .and_then(|aor| self.binding(now, aor))
            .filter(|b| b.at == source)
            .map_or(Place::Public, |b| Place::Phone {
                network: b.network.clone(),
                at: b.at,
            })
    }

    fn binding(&self, now: Instant, aor: &str) -> Option<&Binding> {
        self.bindings.get(aor).filter(|b| b.expires > now)
    }

    fn reply(&mut self, rx: &Receive<'_>, msg: &Message<'_>, code: u16, reason: &str) {
        if msg.method().is_some_and(|m| m.eq_ignore_ascii_case("ACK")) {
            return;
        }
        let tag = format!(
            "ph{:x}",
            edit::hash(self.secret, &[msg.call_id().unwrap_or_default()])
        );
        // RFC 3581: back to where the request came from.
        let to = rx.remote;
        self.stats.replied += 1;
        tracing::debug!(code, reason, remote = %rx.remote, "SIP: answered by the MPR");
        self.out.send(Transmit {
            local: rx.local,
            remote: to,
            payload: edit::response(msg, code, reason, &tag),
        });
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
            self.reply(rx, msg, 400, "Missing Call-ID or From tag");
            return;
        };
        let mut patch = Patch::new();
        if edit::max_forwards(msg, &mut patch).is_err() {
            self.reply(rx, msg, 483, "Too Many Hops");
            return;
        }
        let origin = self.place_of(now, ctx, rx.remote);

        // Our own Route entry names the traversal.
        let mut popped = false;
        let mut token = None;
        if let Some((uri, uri_span, span)) = edit::top_route(msg)
            && edit::uri_target(buf, &uri) == Some(self.cfg.local)
        {
            patch.delete(span);
            popped = true;
            token = edit::uri_param(buf, uri_span, b"ph")
                .and_then(|t| std::str::from_utf8(t).ok())
                .and_then(|t| u64::from_str_radix(t, 16).ok());
        }
        // A plain terminal's REGISTER (or server OPTIONS) goes to the registrar.
        if self.cfg.registrar.is_some()
            && msg.to_tag().is_none()
            && !matches!(origin, Place::Network(_))
        {
            let register = method.eq_ignore_ascii_case("REGISTER");
            let server_ping = method.eq_ignore_ascii_case("OPTIONS")
                && msg
                    .request_uri()
                    .and_then(|s| crate::Uri::parse(buf, s).ok())
                    .is_some_and(|u| u.user.is_none());
            if register || server_ping {
                self.upstream(now, ctx, rx, msg, patch, top, register);
                return;
            }
        }
        let ikey = (call_id.to_vec(), from_tag.to_vec(), origin.clone());
        let token = token
            .filter(|t| self.traversals.contains_key(t))
            .or_else(|| self.initial.get(&ikey).copied());
        let token = match token {
            Some(t) => t,
            None => {
                if msg.to_tag().is_some() || method.eq_ignore_ascii_case("CANCEL") {
                    self.stats.unknown_dialog += 1;
                    self.reply(rx, msg, 481, "Call/Transaction Does Not Exist");
                    return;
                }
                if method.eq_ignore_ascii_case("ACK") {
                    self.stats.unknown_dialog += 1;
                    return;
                }
                match self.new_traversal(now, ctx, rx, msg, origin.clone(), ikey) {
                    Ok(t) => t,
                    Err((code, reason)) => {
                        self.reply(rx, msg, code, reason);
                        return;
                    }
                }
            }
        };
        let Some(trav) = self.traversals.get(&token) else {
            return;
        };
        let from = media::sender(msg, &trav.caller_tag);
        let toward = trav.place(from.peer()).clone();
        let initial_dest = trav.initial_dest;
        let follows_invite = msg.to_tag().is_none()
            || method.eq_ignore_ascii_case("CANCEL")
            || (method.eq_ignore_ascii_case("ACK") && !popped);
        let dest = match toward {
            // A network is reached through its current route, which a
            // re-registration may have moved.
            Place::Network(_) | Place::Phone { .. } => self.destination(ctx, msg, &toward, popped),
            // The initial request, its CANCEL and a non-2xx ACK go where the
            // INVITE went (RFC 3261 §9.1, §17.1.1.3).
            Place::Public if follows_invite => Some(initial_dest),
            Place::Public => self.destination(ctx, msg, &toward, popped),
        };
        let Some((local, remote)) = dest else {
            self.reply(rx, msg, 480, "Temporarily Unavailable");
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
            edit::hash(self.secret, &[incoming_branch, call_id])
        );
        if msg.to_tag().is_none() && is_dialog_creating(method) {
            let rr = format!("sip:{};lr;ph={token:x}", HostPort(self.cfg.local));
            edit::add_record_route(msg, &mut patch, &rr);
        }
        edit::add_via(msg, &mut patch, local, &branch);
        if let Err((code, reason)) = self.media(now, ctx, rx, msg, token, from, &mut patch) {
            self.reply(rx, msg, code, reason);
            return;
        }
        self.forward(msg, &patch, local, remote);
    }

    fn new_traversal(
        &mut self,
        now: Instant,
        ctx: &mut dyn MprContext,
        rx: &Receive<'_>,
        msg: &Message<'_>,
        origin: Place,
        ikey: (Vec<u8>, Vec<u8>, Place),
    ) -> Result<u64, (u16, &'static str)> {
        if self.traversals.len() >= self.cfg.max_dialogs {
            self.stats.dialogs_refused += 1;
            return Err((503, "Service Unavailable"));
        }
        let buf = msg.buf();
        let domain = msg
            .request_uri()
            .and_then(|span| crate::Uri::parse(buf, span).ok())
            .and_then(|u| buf.get(u.host).map(<[u8]>::to_vec))
            .and_then(|h| String::from_utf8(h).ok());
        let network = domain.as_deref().and_then(|d| ctx.network_for_domain(d));
        // A plain terminal registered under the Request-URI is reached at
        // its binding.
        let phone = msg
            .request_uri()
            .and_then(|s| aor(buf, s))
            .and_then(|a| self.binding(now, &a))
            .map(|b| Place::Phone {
                network: b.network.clone(),
                at: b.at,
            });
        let toward = match (phone, network, &origin) {
            (Some(p), _, _) => p,
            (None, Some(n), _) => Place::Network(n),
            (None, None, Place::Network(_) | Place::Phone { .. }) => Place::Public,
            // Public to public: the MPR is not an open relay.
            (None, None, Place::Public) => {
                self.stats.not_ours += 1;
                return Err((404, "Not Found"));
            }
        };
        let _ = rx;
        let dest = self
            .destination(ctx, msg, &toward, false)
            .ok_or((480, "Temporarily Unavailable"))?;
        let token = self.next_token;
        self.next_token = self.next_token.wrapping_add(1).max(1);
        self.initial.insert(ikey.clone(), token);
        self.traversals.insert(
            token,
            Traversal {
                call_id: ikey.0.clone(),
                caller_tag: ikey.1.clone(),
                places: [origin, toward],
                initial_dest: dest,
                neg: Negotiation::default(),
                last: now,
                ended: None,
                initial_key: ikey,
            },
        );
        self.stats.dialogs += 1;
        self.arm_sweep(now);
        Ok(token)
    }

    /// Where a request toward `place` goes, and from which of our sockets.
    fn destination(
        &self,
        ctx: &dyn MprContext,
        msg: &Message<'_>,
        place: &Place,
        popped: bool,
    ) -> Option<(SocketAddr, SocketAddr)> {
        match place {
            Place::Network(n) => {
                let r = ctx.route(n, Protocol::Sip)?;
                Some((r.local, r.pinhole))
            }
            Place::Phone { at, .. } => Some((self.cfg.local, *at)),
            Place::Public => {
                let buf = msg.buf();
                let next = if popped {
                    edit::second_route(msg)
                } else {
                    edit::top_route(msg).map(|(u, _, _)| u)
                };
                let by_route = next.and_then(|u| edit::uri_target(buf, &u));
                let by_uri = msg
                    .request_uri()
                    .and_then(|s| crate::Uri::parse(buf, s).ok())
                    .and_then(|u| edit::uri_target(buf, &u));
                let remote = by_route.or(by_uri).or(self.cfg.outbound_proxy)?;
                Some((self.cfg.local, remote))
            }
        }
    }

    /// Plans the message's media and records the SDP edits.
    #[allow(clippy::too_many_arguments)]
    fn media(
        &mut self,
        now: Instant,
        ctx: &mut dyn MprContext,
        rx: &Receive<'_>,
        msg: &Message<'_>,
        token: u64,
        from: Side,
        patch: &mut Patch,
    ) -> Result<(), (u16, &'static str)> {
        let body = match media::sdp_body(msg, rx.remote.ip()) {
            Ok(b) => b,
            Err(e) => {
                self.stats.sdp_errors += 1;
                tracing::warn!(error = %e, "SIP: unreadable SDP, forwarded unchanged");
                None
            }
        };
        let Some(trav) = self.traversals.get_mut(&token) else {
            return Ok(());
        };
        trav.last = now;
        let Some(kind) = trav.neg.classify(msg, body.is_some()) else {
            return Ok(());
        };
        let key = trav.key(token);
        let origin = trav.place(from).clone();
        let toward = trav.place(from.peer()).clone();
        if kind == IntentKind::Teardown {
            trav.ended.get_or_insert(now);
            let intent = MediaIntent {
                kind,
                from,
                origin: origin.origin(),
                toward: toward.origin(),
                endpoints: &[],
            };
            let _ = ctx.plan(now, &key, &intent);
            self.stats.teardowns += 1;
            self.arm_sweep(now);
            return Ok(());
        }
        let Some(body) = body else {
            return Ok(());
        };
        let intent = MediaIntent {
            kind,
            from,
            origin: origin.origin(),
            toward: toward.origin(),
            endpoints: body.endpoints(),
        };
        let planned = match &origin {
            // A plain terminal's legs latch onto the address its
            // (registrar-authenticated) signaling comes from.
            Place::Phone { at, .. } => ctx.plan_latching(now, &key, &intent, at.ip()),
            _ => ctx.plan(now, &key, &intent),
        };
        match planned {
            Ok(plan) => {
                body.rewrite(msg, &plan.endpoints, patch).map_err(|e| {
                    self.stats.sdp_errors += 1;
                    tracing::warn!(error = %e, "SIP: SDP rewrite failed");
                    (488, "Not Acceptable Here")
                })?;
                self.stats.sdp_rewritten += 1;
                Ok(())
            }
            Err(e) => {
                self.stats.plan_errors += 1;
                tracing::warn!(error = %e, "SIP: media plan refused");
                if msg.is_request() {
                    Err((503, "Service Unavailable"))
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
        if let Some(id) = top
            .branch
            .clone()
            .and_then(|b| buf.get(b))
            .and_then(|b| b.strip_prefix(UPSTREAM_BRANCH))
        {
            let id = id
                .split(|&c| c == b'.')
                .next()
                .and_then(|t| std::str::from_utf8(t).ok())
                .and_then(|t| u64::from_str_radix(t, 16).ok());
            self.upstream_response(now, rx, msg, id);
            return;
        }
        let token = top
            .branch
            .clone()
            .and_then(|b| buf.get(b))
            .and_then(|b| b.strip_prefix(b"z9hG4bKph"))
            .and_then(|b| b.split(|&c| c == b'.').next())
            .and_then(|t| std::str::from_utf8(t).ok())
            .and_then(|t| u64::from_str_radix(t, 16).ok());
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
        let mut patch = Patch::new();
        edit::pop_via(msg, &mut patch, top);
        let from = self
            .traversals
            .get(&token)
            .map(|t| media::sender(msg, &t.caller_tag));
        if let Some(from) = from {
            let _ = self.media(now, ctx, rx, msg, token, from, &mut patch);
        }
        let local = match ctx.network_for_pinhole(Protocol::Sip, remote) {
            Some(n) => ctx
                .route(&n, Protocol::Sip)
                .map_or(self.cfg.local, |r| r.local),
            None => self.cfg.local,
        };
        self.forward(msg, &patch, local, remote);
    }

    fn forward(&mut self, msg: &Message<'_>, patch: &Patch, local: SocketAddr, remote: SocketAddr) {
        match patch.apply(msg.buf()) {
            Ok(payload) => {
                self.stats.forwarded += 1;
                self.out.send(Transmit {
                    local,
                    remote,
                    payload,
                });
            }
            Err(e) => {
                self.stats.malformed += 1;
                tracing::error!(error = %e, "SIP: edits overlap; message dropped");
            }
        }
    }

    /// Sends a plain terminal's REGISTER (or server OPTIONS) to the
    /// registrar, statelessly (RFC 3261 §16.11: a retransmission gets the
    /// same branch), remembering where it came from until the answer.
    #[allow(clippy::too_many_arguments)]
    fn upstream(
        &mut self,
        now: Instant,
        ctx: &dyn MprContext,
        rx: &Receive<'_>,
        msg: &Message<'_>,
        mut patch: Patch,
        top: &crate::Via,
        register: bool,
    ) {
        let Some(registrar) = self.cfg.registrar else {
            return;
        };
        let buf = msg.buf();
        let reg = if register {
            // RFC 3261 §10.2: the To header names the address of record.
            let to = msg
                .header(crate::HeaderName::To)
                .and_then(|h| crate::name_addrs(buf, h.value.clone()).ok())
                .and_then(|v| v.into_iter().next())
                .and_then(|na| aor(buf, na.uri));
            let Some(to) = to else {
                self.stats.malformed += 1;
                self.reply(rx, msg, 400, "Bad To");
                return;
            };
            let domain = to.rsplit('@').next().unwrap_or_default();
            let Some(network) = ctx.network_for_domain(domain) else {
                // Not a domain we serve: the MPR is not an open relay.
                self.stats.not_ours += 1;
                self.reply(rx, msg, 404, "Not Found");
                return;
            };
            if self.bindings.len() >= self.cfg.max_bindings && !self.bindings.contains_key(&to) {
                self.reply(rx, msg, 503, "Service Unavailable");
                return;
            }
            Some((to, network))
        } else {
            None
        };
        let incoming = top
            .branch
            .clone()
            .and_then(|b| buf.get(b))
            .unwrap_or_default();
        let source = rx.remote.to_string();
        let id = edit::hash(
            self.secret,
            &[
                incoming,
                msg.call_id().unwrap_or_default(),
                source.as_bytes(),
            ],
        ) & 0xffff_ffff_ffff;
        if !self.upstream.contains_key(&id) && self.upstream.len() >= self.cfg.max_dialogs {
            self.stats.dialogs_refused += 1;
            self.reply(rx, msg, 503, "Service Unavailable");
            return;
        }
        edit::mark_received(msg, &mut patch, top, rx.remote);
        let branch = format!(
            "z9hG4bKphr{id:x}.{:x}",
            edit::hash(self.secret, &[b"upstream", &id.to_be_bytes()])
        );
        edit::add_via(msg, &mut patch, self.cfg.local, &branch);
        if register {
            self.stats.registrations += 1;
        }
        self.upstream.insert(
            id,
            Upstream {
                register: reg,
                source: rx.remote,
                local: rx.local,
                sent: now,
            },
        );
        self.arm_sweep(now);
        self.forward(msg, &patch, self.cfg.local, registrar);
    }

    /// The registrar's answer to a request [`Mpr::upstream`] sent: back
    /// to the terminal; a 2xx to a REGISTER records (or removes) its binding.
    fn upstream_response(
        &mut self,
        now: Instant,
        rx: &Receive<'_>,
        msg: &Message<'_>,
        id: Option<u64>,
    ) {
        let from_registrar = self.cfg.registrar == Some(rx.remote);
        let Some((id, up)) = id
            .filter(|_| from_registrar)
            .and_then(|id| self.upstream.get(&id).map(|u| (id, u)))
        else {
            self.stats.not_ours += 1;
            tracing::debug!(remote = %rx.remote, "SIP response to no upstream request: dropped");
            return;
        };
        let (source, local) = (up.source, up.local);
        let vias = msg.vias();
        let (Some(top), Some(next)) = (vias.first(), vias.get(1)) else {
            self.stats.malformed += 1;
            return;
        };
        let to = edit::via_target(msg.buf(), next).unwrap_or(source);
        let status = msg.status().unwrap_or(0);
        if status >= 200
            && let Some(up) = self.upstream.remove(&id)
            && let Some((aor, network)) = up.register
            && (200..300).contains(&status)
        {
            self.learn(now, msg, aor, network, up.source);
        }
        let mut patch = Patch::new();
        edit::pop_via(msg, &mut patch, top);
        self.forward(msg, &patch, local, to);
    }

    /// Records what a registrar's 2xx says of `aor`: bound at `at` for the
    /// longest expiry it grants (RFC 3261 §10.3 step 8 lists every contact
    /// with its `expires`), or unbound when it lists none.
    fn learn(
        &mut self,
        now: Instant,
        ok: &Message<'_>,
        aor: String,
        network: String,
        at: SocketAddr,
    ) {
        let buf = ok.buf();
        let header_expires = ok
            .headers_by_name(b"Expires")
            .next()
            .and_then(|h| std::str::from_utf8(ok.value(h)).ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let contacts: Vec<Option<u64>> = ok
            .headers_named(crate::HeaderName::Contact)
            .filter_map(|h| crate::name_addrs(buf, h.value.clone()).ok())
            .flatten()
            .map(|na| {
                na.param(buf, b"expires")
                    .and_then(|p| p.value)
                    .and_then(|v| buf.get(v))
                    .and_then(|v| std::str::from_utf8(v).ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
            })
            .collect();
        let expires = contacts
            .iter()
            .map(|e| e.or(header_expires).unwrap_or(3600))
            .max()
            .unwrap_or(0)
            .min(86_400);
        if let Some(old) = self.bindings.remove(&aor)
            && self.by_source.get(&old.at) == Some(&aor)
        {
            self.by_source.remove(&old.at);
        }
        if expires == 0 {
            tracing::info!(%aor, "plain terminal unregistered");
            return;
        }
        tracing::info!(%aor, %network, %at, expires, "plain terminal registered");
        self.stats.bindings += 1;
        self.by_source.insert(at, aor.clone());
        self.bindings.insert(
            aor,
            Binding {
                network,
                at,
                expires: now + Duration::from_secs(expires),
            },
        );
        self.arm_sweep(now);
    }

    fn arm_sweep(&mut self, now: Instant) {
        let at = now + self.cfg.linger.min(self.cfg.setup_timeout);
        self.out.arm_sweep(at);
    }

    fn expire(&mut self, now: Instant, ctx: &mut dyn MprContext) {
        let cfg = &self.cfg;
        let mut gone = Vec::new();
        for (&token, t) in &self.traversals {
            let dead = match t.ended {
                Some(at) => now >= at + cfg.linger,
                None if !t.neg.confirmed() => now >= t.last + cfg.setup_timeout,
                None => now >= t.last + cfg.dialog_idle,
            };
            if dead {
                gone.push(token);
            }
        }
        for token in gone {
            if let Some(t) = self.traversals.remove(&token) {
                self.initial.remove(&t.initial_key);
                if t.ended.is_none() {
                    // Forgotten without a BYE: its media goes too.
                    let intent = MediaIntent {
                        kind: IntentKind::Teardown,
                        from: Side::A,
                        origin: t.places[0].origin(),
                        toward: t.places[1].origin(),
                        endpoints: &[],
                    };
                    let _ = ctx.plan(now, &t.key(token), &intent);
                    self.stats.expired += 1;
                }
            }
        }
        let linger = self.cfg.linger;
        self.upstream.retain(|_, u| now < u.sent + linger);
        let before = self.bindings.len();
        self.bindings.retain(|_, b| b.expires > now);
        self.stats.bindings_expired += (before - self.bindings.len()) as u64;
        let bindings = &self.bindings;
        self.by_source
            .retain(|at, aor| bindings.get(aor).is_some_and(|b| b.at == *at));
        let busy =
            !self.traversals.is_empty() || !self.upstream.is_empty() || !self.bindings.is_empty();
        self.out
            .set_sweep(busy.then(|| now + Duration::from_secs(1).max(self.cfg.linger / 4)));
    }
}

impl MprSignaling for Mpr {
    fn protocol(&self) -> Protocol {
        Protocol::Sip
    }

    fn handle_datagram(&mut self, now: Instant, mpr: &mut dyn MprContext, rx: Receive<'_>) {
        self.stats.received += 1;
        if rx
            .bytes
            .iter()
            .all(|b| matches!(b, b'\r' | b'\n' | b' ' | b'\t' | 0))
        {
            // RFC 5626 keepalive (CRLF): answer with a single CRLF (pong).
            if rx.bytes.starts_with(b"\r\n\r\n") {
                self.out.send(Transmit {
                    local: rx.local,
                    remote: rx.remote,
                    payload: b"\r\n".to_vec(),
                });
            }
            self.stats.keepalives += 1;
            return;
        }
        let msg = match Message::parse(rx.bytes) {
            Ok(m) => m,
            Err(e) => {
                self.stats.malformed += 1;
                tracing::warn!(remote = %rx.remote, error = %e, "SIP: unparsable message dropped");
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
