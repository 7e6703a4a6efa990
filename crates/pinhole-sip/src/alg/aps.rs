//! The APS's SIP proxy (Fig. 11, the APS columns). Inside phones use the
//! APS as their outbound proxy; it forwards everything to the MPR through
//! its registered signaling pinhole, and requests from the MPR to the
//! phone registered for the Request-URI (or a configured inside
//! destination).
//!
//! Media: SDP leaving the network names the firewall pinhole the APS opened
//! with CMPH *before* the message leaves (steps 1010–1015 for an offer,
//! 1060–1065 for an answer); SDP entering names an APS media port B, which
//! the relay maps to the MPR relay port named in that SDP and to the phone.
//! A message that waits for its pinhole is held, and the dialog's later
//! messages queue behind it so order is kept.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use pinhole_core::Side;
use pinhole_core::alg::{ClientContext, ClientSignaling, Counters, Outbox};
use pinhole_core::client::{Event, PinholeId, PinholeRequest};
use pinhole_core::intent::{IntentKind, PlannedEndpoint};
use pinhole_core::patch::Patch;
use pinhole_core::ports::{Allocator, PortPair, PortRange};
use pinhole_core::rng::Rng;
use pinhole_core::types::{Receive, Transmit};
use pinhole_core::wire::Protocol;

use super::edit::{self, HostPort};
use super::{Stats, is_dialog_creating, is_keepalive};
use crate::media::{self, Negotiation};
use crate::{HeaderName, Message, Uri, name_addrs};

/// The APS proxy's settings.
#[derive(Clone, Debug)]
pub struct ApsConfig {
    /// The APS's SIP socket (inside address, registered with the MPR).
    pub local: SocketAddr,
    /// The inside address media ports B are bound on.
    pub media_ip: IpAddr,
    /// Media ports B.
    pub media_ports: PortRange,
    /// Where requests from the MPR go when no phone registered the
    /// Request-URI: an inside PBX or a phone.
    pub inside_default: Option<SocketAddr>,
    /// Most dialogs tracked at once.
    pub max_dialogs: usize,
    /// A dialog with no message for this long is forgotten.
    pub dialog_idle: Duration,
    /// A call that never got a 2xx is forgotten after this long.
    pub setup_timeout: Duration,
    /// How long an ended dialog stays to absorb retransmissions.
    pub linger: Duration,
    /// Most messages held per dialog while pinholes open.
    pub max_parked: usize,
    /// How long a freed media port pair B rests before reuse (late
    /// packets of the old call must not reach the next one).
    pub port_quarantine: Duration,
    /// Keys branch ids and LEG-KEYs; seeds the port choice.
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
            inside_default: None,
            max_dialogs: 50_000,
            dialog_idle: Duration::from_secs(4 * 3600),
            setup_timeout: Duration::from_secs(180),
            linger: Duration::from_secs(32),
            max_parked: 16,
            port_quarantine: Duration::from_secs(30),
            seed,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PhState {
    Opening,
    Open {
        public: Option<SocketAddr>,
        rtcp_public: Option<SocketAddr>,
        relay: SocketAddr,
    },
    Failed,
}

#[derive(Clone, Copy, Debug)]
struct Ph {
    id: PinholeId,
    inside: SocketAddr,
    state: PhState,
}

#[derive(Debug, Default)]
struct StreamState {
    b: Option<PortPair>,
    /// The MPR relay address the latest SDP from outside named.
    relay: Option<SocketAddr>,
    pinhole: Option<Ph>,
}

struct Parked {
    local: SocketAddr,
    remote: SocketAddr,
    bytes: Vec<u8>,
}

type DialogKey = (Vec<u8>, Vec<u8>);

struct Dialog {
    caller_tag: Vec<u8>,
    neg: Negotiation,
    streams: HashMap<(Side, u16), StreamState>,
    parked: VecDeque<Parked>,
    last: Instant,
    ended: Option<Instant>,
}

/// A phone's registration seen passing through (AOR → where it is).
#[derive(Clone, Copy, Debug)]
struct Binding {
    at: SocketAddr,
    expires: Instant,
}

enum MediaStep {
    /// Edits recorded (or nothing to do).
    Ready,
    /// A pinhole is still opening: hold the message.
    Wait,
    /// A pinhole failed: refuse (requests) or pass unchanged (responses).
    Failed,
}

/// The APS's SIP ALG.
pub struct Aps {
    cfg: ApsConfig,
    ports: Allocator,
    dialogs: HashMap<DialogKey, Dialog>,
    by_pinhole: HashMap<PinholeId, DialogKey>,
    bindings: HashMap<Vec<u8>, Binding>,
    secret: u64,
    out: Outbox,
    stats: Stats,
}

impl Aps {
    /// A proxy with no dialogs.
    pub fn new(cfg: ApsConfig) -> Self {
        let mut rng = Rng::from_seed(cfg.seed);
        let secret = rng.next_u64();
        let ports = Allocator::new(cfg.media_ports, cfg.port_quarantine, rng.fork());
        Self {
            cfg,
            ports,
            dialogs: HashMap::new(),
            by_pinhole: HashMap::new(),
            bindings: HashMap::new(),
            secret,
            out: Outbox::new(),
            stats: Stats::default(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Dialogs tracked now.
    pub fn dialogs(&self) -> usize {
        self.dialogs.len()
    }

    fn reply(&mut self, rx: &Receive<'_>, msg: &Message<'_>, code: u16, reason: &str) {
        if msg.method().is_some_and(|m| m.eq_ignore_ascii_case("ACK")) {
            return;
        }
        let tag = format!(
            "aps{:x}",
            edit::hash(self.secret, &[msg.call_id().unwrap_or_default()])
        );
        self.stats.replied += 1;
        tracing::debug!(code, reason, remote = %rx.remote, "SIP: answered by the APS");
        self.out.send(Transmit {
            local: rx.local,
            remote: rx.remote,
            payload: edit::response(msg, code, reason, &tag),
        });
    }

    /// The dialog a message belongs to, by Call-ID and either tag.
    fn dialog_key(&self, msg: &Message<'_>) -> Option<DialogKey> {
        let call = msg.call_id()?;
        [msg.from_tag(), msg.to_tag()]
            .into_iter()
            .flatten()
            .map(|t| (call.to_vec(), t.to_vec()))
            .find(|k| self.dialogs.contains_key(k))
    }

    fn process(
        &mut self,
        now: Instant,
        ctx: &mut dyn ClientContext,
        rx: Receive<'_>,
        resuming: bool,
    ) -> bool {
        let msg = match Message::parse(rx.bytes) {
            Ok(m) => m,
            Err(e) => {
                self.stats.malformed += 1;
                tracing::warn!(remote = %rx.remote, error = %e, "SIP: unparsable message dropped");
                return true;
            }
        };
        let key = self.dialog_key(&msg);
        // Keep a dialog's order: behind a held message, everything waits.
        if !resuming
            && let Some(k) = &key
            && let Some(d) = self.dialogs.get_mut(k)
            && !d.parked.is_empty()
        {
            park(d, &rx, self.cfg.max_parked, &mut self.stats);
            return true;
        }
        if msg.is_request() {
            self.request(now, ctx, &rx, &msg, key)
        } else {
            self.response(now, ctx, &rx, &msg, key)
        }
    }

    /// Handles a request; false when it must be held (resume later).
    fn request(
        &mut self,
        now: Instant,
        ctx: &mut dyn ClientContext,
        rx: &Receive<'_>,
        msg: &Message<'_>,
        key: Option<DialogKey>,
    ) -> bool {
        let buf = msg.buf();
        let outside = rx.remote == ctx.mpr();
        let vias = msg.vias();
        let Some(top) = vias.first() else {
            self.stats.malformed += 1;
            return true;
        };
        let (Some(call_id), Some(from_tag), Some(method)) =
            (msg.call_id(), msg.from_tag(), msg.method())
        else {
            self.stats.malformed += 1;
            self.reply(rx, msg, 400, "Missing Call-ID or From tag");
            return true;
        };
        let mut patch = Patch::new();
        if edit::max_forwards(msg, &mut patch).is_err() {
            self.reply(rx, msg, 483, "Too Many Hops");
            return true;
        }
        let mut popped = false;
        if let Some((uri, _, span)) = edit::top_route(msg)
            && edit::uri_target(buf, &uri) == Some(self.cfg.local)
        {
            patch.delete(span);
            popped = true;
        }
        if !outside && ctx.registered_pinhole().is_none() {
            self.reply(rx, msg, 503, "Not Registered With The MPR");
            return true;
        }
        // A dialog starts with an INVITE without a To tag.
        let key = match key {
            Some(k) => Some(k),
            None if method.eq_ignore_ascii_case("INVITE") && msg.to_tag().is_none() => {
                if self.dialogs.len() >= self.cfg.max_dialogs {
                    self.stats.dialogs_refused += 1;
                    self.reply(rx, msg, 503, "Service Unavailable");
                    return true;
                }
                let k = (call_id.to_vec(), from_tag.to_vec());
                self.dialogs.insert(
                    k.clone(),
                    Dialog {
                        caller_tag: from_tag.to_vec(),
                        neg: Negotiation::default(),
                        streams: HashMap::new(),
                        parked: VecDeque::new(),
                        last: now,
                        ended: None,
                    },
                );
                self.stats.dialogs += 1;
                self.arm_sweep(now);
                Some(k)
            }
            None => None,
        };
        let dest = if outside {
            self.inward_destination(now, msg, popped)
        } else {
            if method.eq_ignore_ascii_case("REGISTER") {
                self.learn_binding(now, msg, rx.remote);
            }
            Some(ctx.mpr())
        };
        let Some(remote) = dest else {
            self.stats.not_ours += 1;
            self.reply(rx, msg, 404, "Not Found");
            return true;
        };
        if let Some(k) = &key {
            match self.media(now, ctx, msg, k, outside, &mut patch) {
                MediaStep::Ready => {}
                MediaStep::Wait => {
                    if let Some(d) = self.dialogs.get_mut(k) {
                        park(d, rx, self.cfg.max_parked, &mut self.stats);
                    }
                    return false;
                }
                MediaStep::Failed => {
                    self.reply(rx, msg, 503, "Media Pinhole Failed");
                    return true;
                }
            }
        }
        edit::mark_received(msg, &mut patch, top, rx.remote);
        let incoming = top
            .branch
            .clone()
            .and_then(|b| buf.get(b))
            .unwrap_or(call_id);
        let branch = format!(
            "z9hG4bKaps{:x}",
            edit::hash(self.secret, &[incoming, call_id])
        );
        if msg.to_tag().is_none() && is_dialog_creating(method) {
            let rr = format!("sip:{};lr", HostPort(self.cfg.local));
            edit::add_record_route(msg, &mut patch, &rr);
        }
        edit::add_via(msg, &mut patch, self.cfg.local, &branch);
        self.forward(msg, &patch, remote);
        true
    }

    /// Where a request from the MPR goes inside.
    fn inward_destination(
        &self,
        now: Instant,
        msg: &Message<'_>,
        popped: bool,
    ) -> Option<SocketAddr> {
        let buf = msg.buf();
        let next = if popped {
            edit::second_route(msg)
        } else {
            edit::top_route(msg).map(|(u, _, _)| u)
        };
        if let Some(t) = next.and_then(|u| edit::uri_target(buf, &u)) {
            return Some(t);
        }
        let ruri = msg.request_uri().and_then(|s| Uri::parse(buf, s).ok());
        if let Some(u) = &ruri {
            if let Some(b) = self.bindings.get(&aor(buf, u))
                && b.expires > now
            {
                return Some(b.at);
            }
            if let Some(t) = edit::uri_target(buf, u) {
                return Some(t);
            }
        }
        self.cfg.inside_default
    }

    /// A REGISTER from inside: remember where the phone is, so requests for
    /// its address of record find it.
    fn learn_binding(&mut self, now: Instant, msg: &Message<'_>, source: SocketAddr) {
        let buf = msg.buf();
        let Some(to) = msg.header(HeaderName::To) else {
            return;
        };
        let Some(entry) = name_addrs(buf, to.value.clone())
            .ok()
            .and_then(|v| v.into_iter().next())
        else {
            return;
        };
        let Ok(uri) = Uri::parse(buf, entry.uri.clone()) else {
            return;
        };
        let expires = msg
            .header(HeaderName::Expires)
            .and_then(|h| std::str::from_utf8(msg.value(h)).ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(3600)
            .min(86_400);
        let key = aor(buf, &uri);
        if expires == 0 {
            self.bindings.remove(&key);
        } else {
            self.bindings.insert(
                key,
                Binding {
                    at: source,
                    expires: now + Duration::from_secs(expires),
                },
            );
        }
    }

    fn response(
        &mut self,
        now: Instant,
        ctx: &mut dyn ClientContext,
        rx: &Receive<'_>,
        msg: &Message<'_>,
        key: Option<DialogKey>,
    ) -> bool {
        let buf = msg.buf();
        let vias = msg.vias();
        let Some(top) = vias.first() else {
            self.stats.malformed += 1;
            return true;
        };
        if !edit::via_is(buf, top, self.cfg.local) {
            self.stats.not_ours += 1;
            return true;
        }
        let Some(remote) = vias.get(1).and_then(|v| edit::via_target(buf, v)) else {
            self.stats.malformed += 1;
            return true;
        };
        let outside = rx.remote == ctx.mpr();
        let mut patch = Patch::new();
        edit::pop_via(msg, &mut patch, top);
        if let Some(k) = &key {
            match self.media(now, ctx, msg, k, outside, &mut patch) {
                MediaStep::Ready => {}
                MediaStep::Wait => {
                    if let Some(d) = self.dialogs.get_mut(k) {
                        park(d, rx, self.cfg.max_parked, &mut self.stats);
                    }
                    return false;
                }
                MediaStep::Failed => {
                    tracing::error!(
                        "SIP: the answer's media pinhole failed; forwarded without media"
                    );
                }
            }
        }
        self.forward(msg, &patch, remote);
        true
    }

    /// Opens pinholes for SDP leaving, maps ports B for SDP entering, and
    /// records the SDP edits.
    fn media(
        &mut self,
        now: Instant,
        ctx: &mut dyn ClientContext,
        msg: &Message<'_>,
        key: &DialogKey,
        outside: bool,
        patch: &mut Patch,
    ) -> MediaStep {
        let body = match media::sdp_body(msg, self.cfg.media_ip) {
            Ok(b) => b,
            Err(e) => {
                self.stats.sdp_errors += 1;
                tracing::warn!(error = %e, "SIP: unreadable SDP, forwarded unchanged");
                None
            }
        };
        let Some(d) = self.dialogs.get_mut(key) else {
            return MediaStep::Ready;
        };
        d.last = now;
        let sender = media::sender(msg, &d.caller_tag);
        let kind = d.neg.classify(msg, body.is_some());
        if kind == Some(IntentKind::Teardown) {
            d.ended.get_or_insert(now);
            self.close_dialog_media(now, ctx, key);
            self.stats.teardowns += 1;
            self.arm_sweep(now);
            return MediaStep::Ready;
        }
        let (Some(body), Some(_)) = (body, kind) else {
            return MediaStep::Ready;
        };
        let mut plan = Vec::with_capacity(body.endpoints().len());
        let mut waiting = false;
        for e in body.endpoints() {
            let step = if outside {
                self.inward_stream(now, ctx, key, sender.peer(), e)
            } else {
                self.outward_stream(now, ctx, key, sender, e)
            };
            match step {
                Ok(Some(p)) => plan.push(p),
                Ok(None) => waiting = true,
                Err(()) => return MediaStep::Failed,
            }
        }
        if waiting {
            return MediaStep::Wait;
        }
        if let Err(e) = body.rewrite(msg, &plan, patch) {
            self.stats.sdp_errors += 1;
            tracing::warn!(error = %e, "SIP: SDP rewrite failed");
            return MediaStep::Failed;
        }
        self.stats.sdp_rewritten += 1;
        MediaStep::Ready
    }

    /// SDP leaving: the stream needs an open pinhole mapped to the phone.
    fn outward_stream(
        &mut self,
        now: Instant,
        ctx: &mut dyn ClientContext,
        key: &DialogKey,
        side: Side,
        e: &pinhole_core::intent::MediaEndpoint,
    ) -> Result<Option<PlannedEndpoint>, ()> {
        let unchanged = PlannedEndpoint {
            index: e.index,
            addr: e.addr,
            rtcp_addr: e.rtcp_addr,
        };
        if e.is_disabled() {
            self.close_stream(now, ctx, key, side, e.index);
            return Ok(Some(unchanged));
        }
        let leg_key = self.leg_key(key, side, e.index);
        let Some(d) = self.dialogs.get_mut(key) else {
            return Ok(Some(unchanged));
        };
        let st = d.streams.entry((side, e.index)).or_default();
        if let Some(ph) = st.pinhole
            && !e.is_hold()
            && (ph.inside != e.addr || ph.state == PhState::Failed)
        {
            // The phone moved its media (or the last try failed): start over.
            let _ = ctx.close_pinhole(ph.id);
            self.by_pinhole.remove(&ph.id);
            st.pinhole = None;
        }
        if st.pinhole.is_none() {
            if e.is_hold() {
                return Ok(Some(unchanged));
            }
            let b = match st.b {
                Some(b) => b,
                None => {
                    let b = self.ports.allocate(now).map_err(|err| {
                        tracing::error!(error = %err, "SIP: no APS media port free");
                    })?;
                    st.b = Some(b);
                    b
                }
            };
            let req = PinholeRequest {
                local: SocketAddr::new(self.cfg.media_ip, b.rtp),
                relay: st.relay,
                rtcp: e.rtcp,
                key: leg_key,
                inside: Some(e.addr),
            };
            let id = ctx.open_pinhole(now, req).map_err(|err| {
                self.stats.pinhole_failures += 1;
                tracing::error!(error = %err, "SIP: cannot open a media pinhole");
            })?;
            self.stats.pinholes += 1;
            st.pinhole = Some(Ph {
                id,
                inside: e.addr,
                state: PhState::Opening,
            });
            self.by_pinhole.insert(id, key.clone());
            return Ok(None);
        }
        let Some(ph) = st.pinhole else {
            return Ok(None);
        };
        match ph.state {
            PhState::Opening => Ok(None),
            PhState::Failed => Err(()),
            PhState::Open {
                public,
                rtcp_public,
                ..
            } => {
                let b = st.b.map(|b| SocketAddr::new(self.cfg.media_ip, b.rtp));
                let Some(mut addr) = public.or(b) else {
                    return Err(());
                };
                if e.is_hold() {
                    addr.set_ip(e.addr.ip());
                }
                let rtcp_addr = e.rtcp_addr.map(|_| {
                    rtcp_public
                        .unwrap_or_else(|| SocketAddr::new(addr.ip(), addr.port().wrapping_add(1)))
                });
                Ok(Some(PlannedEndpoint {
                    index: e.index,
                    addr,
                    rtcp_addr,
                }))
            }
        }
    }

    /// SDP entering: the phone gets port B; the MPR relay address in the
    /// SDP is where B's pinhole will point.
    fn inward_stream(
        &mut self,
        now: Instant,
        ctx: &mut dyn ClientContext,
        key: &DialogKey,
        side: Side,
        e: &pinhole_core::intent::MediaEndpoint,
    ) -> Result<Option<PlannedEndpoint>, ()> {
        if e.is_disabled() {
            self.close_stream(now, ctx, key, side, e.index);
            return Ok(Some(PlannedEndpoint {
                index: e.index,
                addr: e.addr,
                rtcp_addr: e.rtcp_addr,
            }));
        }
        let Some(d) = self.dialogs.get_mut(key) else {
            return Err(());
        };
        let st = d.streams.entry((side, e.index)).or_default();
        if !e.is_hold() {
            st.relay = Some(e.addr);
            if let Some(ph) = st.pinhole
                && let PhState::Open { relay, .. } = ph.state
                && relay != e.addr
            {
                // The MPR moved the stream: the next SDP leaving reopens it.
                let _ = ctx.close_pinhole(ph.id);
                self.by_pinhole.remove(&ph.id);
                st.pinhole = None;
            }
        }
        let b = match st.b {
            Some(b) => b,
            None => {
                let b = self.ports.allocate(now).map_err(|err| {
                    tracing::error!(error = %err, "SIP: no APS media port free");
                })?;
                st.b = Some(b);
                b
            }
        };
        let ip = if e.is_hold() {
            e.addr.ip()
        } else {
            self.cfg.media_ip
        };
        Ok(Some(PlannedEndpoint {
            index: e.index,
            addr: SocketAddr::new(ip, b.rtp),
            rtcp_addr: e.rtcp_addr.map(|_| SocketAddr::new(ip, b.rtcp())),
        }))
    }

    fn leg_key(&self, key: &DialogKey, side: Side, index: u16) -> Vec<u8> {
        let h = edit::hash(self.secret, &[&key.0, &key.1]);
        let s = if side == Side::A { 'a' } else { 'b' };
        format!("sip/{h:016x}/{s}/{index}").into_bytes()
    }

    fn close_stream(
        &mut self,
        now: Instant,
        ctx: &mut dyn ClientContext,
        key: &DialogKey,
        side: Side,
        index: u16,
    ) {
        let Some(d) = self.dialogs.get_mut(key) else {
            return;
        };
        if let Some(st) = d.streams.remove(&(side, index)) {
            release(now, ctx, &mut self.ports, &mut self.by_pinhole, st);
        }
    }

    fn close_dialog_media(&mut self, now: Instant, ctx: &mut dyn ClientContext, key: &DialogKey) {
        let Some(d) = self.dialogs.get_mut(key) else {
            return;
        };
        for (_, st) in d.streams.drain() {
            release(now, ctx, &mut self.ports, &mut self.by_pinhole, st);
        }
    }

    fn forward(&mut self, msg: &Message<'_>, patch: &Patch, remote: SocketAddr) {
        match patch.apply(msg.buf()) {
            Ok(payload) => {
                self.stats.forwarded += 1;
                self.out.send(Transmit {
                    local: self.cfg.local,
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

    /// Runs the held messages of a dialog, in order, until one must wait.
    fn resume(&mut self, now: Instant, ctx: &mut dyn ClientContext, key: &DialogKey) {
        loop {
            let Some(p) = self.dialogs.get_mut(key).and_then(|d| d.parked.pop_front()) else {
                return;
            };
            let rx = Receive {
                local: p.local,
                remote: p.remote,
                bytes: &p.bytes,
            };
            if !self.process(now, ctx, rx, true) {
                // `process` parked it again at the back; put it first again.
                if let Some(d) = self.dialogs.get_mut(key)
                    && let Some(again) = d.parked.pop_back()
                {
                    d.parked.push_front(again);
                    self.stats.parked -= 1;
                }
                return;
            }
        }
    }

    fn arm_sweep(&mut self, now: Instant) {
        let at = now + self.cfg.linger.min(self.cfg.setup_timeout);
        self.out.arm_sweep(at);
    }

    fn expire(&mut self, now: Instant, ctx: &mut dyn ClientContext) {
        let cfg = &self.cfg;
        let gone: Vec<DialogKey> = self
            .dialogs
            .iter()
            .filter(|(_, d)| match d.ended {
                Some(at) => now >= at + cfg.linger,
                None if !d.neg.confirmed() => now >= d.last + cfg.setup_timeout,
                None => now >= d.last + cfg.dialog_idle,
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in gone {
            self.close_dialog_media(now, ctx, &k);
            if let Some(d) = self.dialogs.remove(&k)
                && d.ended.is_none()
            {
                self.stats.expired += 1;
            }
        }
        self.bindings.retain(|_, b| b.expires > now);
        self.ports.expire(now);
        self.out.set_sweep(
            (!self.dialogs.is_empty())
                .then(|| now + Duration::from_secs(1).max(self.cfg.linger / 4)),
        );
    }
}

fn park(d: &mut Dialog, rx: &Receive<'_>, max: usize, stats: &mut Stats) {
    // A retransmission of a held message adds nothing.
    if d.parked.iter().any(|p| p.bytes == rx.bytes) {
        return;
    }
    if d.parked.len() >= max {
        tracing::warn!("SIP: too many messages held for one dialog; dropped");
        return;
    }
    stats.parked += 1;
    d.parked.push_back(Parked {
        local: rx.local,
        remote: rx.remote,
        bytes: rx.bytes.to_vec(),
    });
}

fn release(
    now: Instant,
    ctx: &mut dyn ClientContext,
    ports: &mut Allocator,
    by_pinhole: &mut HashMap<PinholeId, DialogKey>,
    st: StreamState,
) {
    if let Some(ph) = st.pinhole {
        let _ = ctx.close_pinhole(ph.id);
        by_pinhole.remove(&ph.id);
    }
    if let Some(b) = st.b {
        let _ = ports.release(now, b);
    }
}

/// An address of record: `user@host`, lowercased host.
fn aor(buf: &[u8], uri: &Uri) -> Vec<u8> {
    let mut k = uri
        .user
        .clone()
        .and_then(|u| buf.get(u))
        .unwrap_or_default()
        .to_vec();
    k.push(b'@');
    k.extend(
        buf.get(uri.host.clone())
            .unwrap_or_default()
            .iter()
            .map(u8::to_ascii_lowercase),
    );
    k
}

impl ClientSignaling for Aps {
    fn protocol(&self) -> Protocol {
        Protocol::Sip
    }

    fn handle_datagram(&mut self, now: Instant, ctx: &mut dyn ClientContext, rx: Receive<'_>) {
        self.stats.received += 1;
        if is_keepalive(rx.bytes) {
            self.stats.keepalives += 1;
            if rx.bytes.starts_with(b"\r\n\r\n") {
                self.out.send(Transmit {
                    local: rx.local,
                    remote: rx.remote,
                    payload: b"\r\n".to_vec(),
                });
            }
            return;
        }
        let _ = self.process(now, ctx, rx, false);
    }

    fn handle_event(&mut self, now: Instant, ctx: &mut dyn ClientContext, ev: &Event) {
        let (id, state) = match *ev {
            Event::PinholeOpened {
                id,
                relay,
                pinhole,
                rtcp_pinhole,
            } => (
                id,
                PhState::Open {
                    public: pinhole,
                    rtcp_public: rtcp_pinhole,
                    relay,
                },
            ),
            Event::PinholeFailed { id, .. } => {
                self.stats.pinhole_failures += 1;
                (id, PhState::Failed)
            }
            _ => return,
        };
        let Some(key) = self.by_pinhole.get(&id).cloned() else {
            return;
        };
        if let Some(d) = self.dialogs.get_mut(&key) {
            for st in d.streams.values_mut() {
                if let Some(ph) = st.pinhole.as_mut()
                    && ph.id == id
                {
                    ph.state = state;
                    if let PhState::Open { relay, .. } = state {
                        st.relay = Some(relay);
                    }
                }
            }
        }
        self.resume(now, ctx, &key);
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
        self.stats.counters()
    }
}
