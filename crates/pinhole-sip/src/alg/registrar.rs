//! Plain terminals at the MPR (no APS, no CMPH; [`super::MprConfig::registrar`]
//! set): a REGISTER from the public side for a network's domain goes to the
//! registrar (the soft-switch, which authenticates it), and only its 2xx
//! makes the MPR record the binding: the address of record → the network
//! and the terminal's NAT binding (where the REGISTER came from). Requests
//! from that address then count as the network's ([`Place::Phone`]: their
//! media legs latch onto that address's IP), and requests for that AOR go
//! to it (RFC 5626 style, the flow the REGISTER opened).
//!
//! Requests to the registrar pass statelessly (RFC 3261 §16.11): the branch
//! is a keyed hash of the incoming one, so a retransmission gets the same
//! branch, and names the entry that waits for the final response.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pinhole_core::alg::call::Place;
use pinhole_core::alg::{MprContext, Rejection};
use pinhole_core::hash::keyed;
use pinhole_core::patch::Patch;
use pinhole_core::types::{Receive, Transport};

use super::Stats;
use super::edit;
use crate::{HeaderName, Message, Uri, Via, name_addrs};

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

/// The branch of a request we sent to the registrar: `z9hG4bKphr<id>.<h>`
/// (the `r` keeps it apart from a traversal's hex token).
const UPSTREAM_BRANCH: &[u8] = b"z9hG4bKphr";

/// `user@host` (or `host`) of the URI at `span`: the host in lower case.
fn aor(buf: &[u8], span: std::ops::Range<usize>) -> Option<String> {
    let uri = Uri::parse(buf, span).ok()?;
    let host = std::str::from_utf8(buf.get(uri.host.clone())?)
        .ok()?
        .to_ascii_lowercase();
    match uri.user.and_then(|u| buf.get(u)) {
        Some(user) => Some(format!("{}@{host}", std::str::from_utf8(user).ok()?)),
        None => Some(host),
    }
}

/// The plain terminals' registrar path and their bindings.
pub(super) struct Registrar {
    /// The registrar (the soft-switch).
    at: SocketAddr,
    /// The MPR's SIP address (our Via).
    local: SocketAddr,
    secret: u64,
    max_bindings: usize,
    max_pending: usize,
    /// AOR → binding, and binding address → AOR.
    bindings: HashMap<String, Binding>,
    by_source: HashMap<SocketAddr, String>,
    upstream: HashMap<u64, Upstream>,
}

impl Registrar {
    /// A registrar path to `at`, from our SIP address `local`; at most
    /// `max_bindings` terminals and `max_pending` requests in flight.
    pub(super) fn new(
        at: SocketAddr,
        local: SocketAddr,
        secret: u64,
        max_bindings: usize,
        max_pending: usize,
    ) -> Self {
        Self {
            at,
            local,
            secret,
            max_bindings,
            max_pending,
            bindings: HashMap::new(),
            by_source: HashMap::new(),
            upstream: HashMap::new(),
        }
    }

    fn binding(&self, now: Instant, aor: &str) -> Option<&Binding> {
        self.bindings.get(aor).filter(|b| b.expires > now)
    }

    /// Plain terminals with a live binding now.
    pub(super) fn live(&self, now: Instant) -> usize {
        self.bindings.values().filter(|b| b.expires > now).count()
    }

    /// The plain terminal whose binding `source` is, if any.
    pub(super) fn place_of(&self, now: Instant, source: SocketAddr) -> Option<Place> {
        self.by_source
            .get(&source)
            .and_then(|aor| self.binding(now, aor))
            .filter(|b| b.at == source)
            .map(|b| Place::Phone {
                network: b.network.clone(),
                at: b.at,
            })
    }

    /// The plain terminal registered under the URI at `span`, if any.
    pub(super) fn phone(
        &self,
        now: Instant,
        buf: &[u8],
        span: std::ops::Range<usize>,
    ) -> Option<Place> {
        let b = self.binding(now, &aor(buf, span)?)?;
        Some(Place::Phone {
            network: b.network.clone(),
            at: b.at,
        })
    }

    /// True for a request that goes to the registrar: a REGISTER, or an
    /// OPTIONS to a server (no user part), outside any dialog.
    pub(super) fn takes(msg: &Message<'_>, method: &str) -> bool {
        if msg.to_tag().is_some() {
            return false;
        }
        method.eq_ignore_ascii_case("REGISTER")
            || (method.eq_ignore_ascii_case("OPTIONS")
                && msg
                    .request_uri()
                    .and_then(|s| Uri::parse(msg.buf(), s).ok())
                    .is_some_and(|u| u.user.is_none()))
    }

    /// Records a request for the registrar and the edits that send it
    /// there (our Via, the sender's NAT binding in its Via); the registrar's
    /// address comes back. A REGISTER for a domain no network serves, or
    /// beyond the limits, is refused.
    pub(super) fn send_up(
        &mut self,
        now: Instant,
        ctx: &dyn MprContext,
        rx: &Receive<'_>,
        msg: &Message<'_>,
        patch: &mut Patch,
        stats: &mut Stats,
    ) -> Result<SocketAddr, Rejection> {
        let buf = msg.buf();
        let vias = msg.vias();
        let Some(top) = vias.first() else {
            stats.malformed += 1;
            return Err(Rejection::new(400, "Missing Via"));
        };
        let register = msg
            .method()
            .is_some_and(|m| m.eq_ignore_ascii_case("REGISTER"));
        let reg = if register {
            Some(self.register_target(ctx, msg, stats)?)
        } else {
            None
        };
        let incoming = top
            .branch
            .clone()
            .and_then(|b| buf.get(b))
            .unwrap_or_default();
        let source = rx.remote.to_string();
        let id = keyed(
            self.secret,
            &[
                incoming,
                msg.call_id().unwrap_or_default(),
                source.as_bytes(),
            ],
        ) & 0xffff_ffff_ffff;
        if !self.upstream.contains_key(&id) && self.upstream.len() >= self.max_pending {
            stats.dialogs_refused += 1;
            return Err(Rejection::new(503, "Service Unavailable"));
        }
        edit::mark_received(msg, patch, top, rx.remote);
        let branch = format!(
            "z9hG4bKphr{id:x}.{:x}",
            keyed(self.secret, &[b"upstream", &id.to_be_bytes()])
        );
        edit::add_via(msg, patch, self.local, Transport::Udp, &branch);
        if register {
            stats.registrations += 1;
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
        Ok(self.at)
    }

    /// A REGISTER's address of record (RFC 3261 §10.2: its To) and the
    /// network that serves its domain.
    fn register_target(
        &self,
        ctx: &dyn MprContext,
        msg: &Message<'_>,
        stats: &mut Stats,
    ) -> Result<(String, String), Rejection> {
        let buf = msg.buf();
        let to = msg
            .header(HeaderName::To)
            .and_then(|h| name_addrs(buf, h.value.clone()).ok())
            .and_then(|v| v.into_iter().next())
            .and_then(|na| aor(buf, na.uri));
        let Some(to) = to else {
            stats.malformed += 1;
            return Err(Rejection::new(400, "Bad To"));
        };
        let domain = to.rsplit('@').next().unwrap_or_default();
        let Some(network) = ctx.network_for_domain(domain) else {
            // Not a domain we serve: the MPR is not an open relay.
            stats.not_ours += 1;
            return Err(Rejection::new(404, "Not Found"));
        };
        if self.bindings.len() >= self.max_bindings && !self.bindings.contains_key(&to) {
            return Err(Rejection::new(503, "Service Unavailable"));
        }
        Ok((to, network))
    }

    /// The id in a branch [`Registrar::send_up`] made: `Some(None)` for
    /// our prefix with an unreadable id, `None` for another branch.
    pub(super) fn upstream_id(buf: &[u8], top: &Via) -> Option<Option<u64>> {
        let id = top
            .branch
            .clone()
            .and_then(|b| buf.get(b))?
            .strip_prefix(UPSTREAM_BRANCH)?;
        Some(
            id.split(|&c| c == b'.')
                .next()
                .and_then(|t| std::str::from_utf8(t).ok())
                .and_then(|t| u64::from_str_radix(t, 16).ok()),
        )
    }

    /// The registrar's answer to a request [`Registrar::send_up`] sent:
    /// where it goes back (our socket, the terminal) with our Via popped;
    /// a 2xx to a REGISTER records (or removes) its binding. `None`: not
    /// an answer we wait for.
    pub(super) fn answer(
        &mut self,
        now: Instant,
        rx: &Receive<'_>,
        msg: &Message<'_>,
        id: Option<u64>,
        patch: &mut Patch,
        stats: &mut Stats,
    ) -> Option<(SocketAddr, SocketAddr)> {
        let Some((id, up)) = id
            .filter(|_| rx.remote == self.at)
            .and_then(|id| self.upstream.get(&id).map(|u| (id, u)))
        else {
            stats.not_ours += 1;
            tracing::debug!(remote = %rx.remote, "SIP response to no upstream request: dropped");
            return None;
        };
        let (source, local) = (up.source, up.local);
        let vias = msg.vias();
        let (Some(top), Some(next)) = (vias.first(), vias.get(1)) else {
            stats.malformed += 1;
            return None;
        };
        let to = edit::via_target(msg.buf(), next).unwrap_or(source);
        let status = msg.status().unwrap_or(0);
        if status >= 200
            && let Some(up) = self.upstream.remove(&id)
            && let Some((aor, network)) = up.register
            && (200..300).contains(&status)
        {
            self.learn(now, msg, aor, network, up.source, stats);
        }
        edit::pop_via(msg, patch, top);
        Some((local, to))
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
        stats: &mut Stats,
    ) {
        let buf = ok.buf();
        let header_expires = ok
            .headers_by_name(b"Expires")
            .next()
            .and_then(|h| std::str::from_utf8(ok.value(h)).ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let expires = ok
            .headers_named(HeaderName::Contact)
            .filter_map(|h| name_addrs(buf, h.value.clone()).ok())
            .flatten()
            .map(|na| {
                na.param(buf, b"expires")
                    .and_then(|p| p.value)
                    .and_then(|v| buf.get(v))
                    .and_then(|v| std::str::from_utf8(v).ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .or(header_expires)
                    .unwrap_or(3600)
            })
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
        stats.bindings += 1;
        self.by_source.insert(at, aor.clone());
        self.bindings.insert(
            aor,
            Binding {
                network,
                at,
                expires: now + Duration::from_secs(expires),
            },
        );
    }

    /// Forgets requests unanswered for `linger` and expired bindings. True
    /// while something is left to expire.
    pub(super) fn expire(&mut self, now: Instant, linger: Duration, stats: &mut Stats) -> bool {
        self.upstream.retain(|_, u| now < u.sent + linger);
        let before = self.bindings.len();
        self.bindings.retain(|_, b| b.expires > now);
        stats.bindings_expired += (before - self.bindings.len()) as u64;
        let bindings = &self.bindings;
        self.by_source
            .retain(|at, aor| bindings.get(aor).is_some_and(|b| b.at == *at));
        !self.upstream.is_empty() || !self.bindings.is_empty()
    }
}
