//! The APS's SIP proxy (Fig. 11, the APS columns). Inside phones use the
//! APS as their outbound proxy; it forwards everything to the MPR through
//! its registered signaling pinhole, and requests from the MPR to the
//! phone registered for the Request-URI (or a configured inside
//! destination).
//!
//! Media is [`ApsMedia`]'s, keyed by dialog and side: SDP leaving the
//! network names the firewall pinhole the APS opened with CMPH *before* the
//! message leaves (steps 1010–1015 for an offer, 1060–1065 for an answer;
//! LEG-KEY `sip/<dialog hash>/<a|b>/<stream>`); SDP entering names an APS
//! media port B, which the relay maps to the MPR relay port named in that
//! SDP and to the phone. A message that waits for its pinhole is held in
//! [`Held`], and the dialog's later messages queue behind it so order is
//! kept.
//!
//! A held message whose pinhole **failed** is refused, never offered again
//! in a loop (a new attempt waits for the phone's next message):
//!
//! - a request (INVITE, re-INVITE, UPDATE from inside) is answered `503
//!   Media Pinhole Failed`; a refused initial INVITE frees its ports B;
//! - a provisional response with SDP is dropped;
//! - a 2xx to an INVITE is replaced, toward the MPR, by a `503 Media
//!   Pinhole Failed` built from it, and the APS ends the dialog the 2xx
//!   created on the phone with an ACK and a BYE of its own; the dialog's
//!   media is released. A retransmitted 2xx gets the same answer, and the
//!   ACK to our 503 and the answer to our BYE stop here.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use pinhole_core::Side;
use pinhole_core::alg::aps::{ApsMedia, Held, Outcome, Park, Step, StreamError};
use pinhole_core::alg::txn::Leg;
use pinhole_core::alg::unreadable::{Verdict, unreadable_media};
use pinhole_core::alg::{ClientContext, ClientSignaling, Counters, Outbox, Rejection};
use pinhole_core::client::Event;
use pinhole_core::hash::keyed;
use pinhole_core::intent::IntentKind;
use pinhole_core::patch::Patch;
use pinhole_core::ports::PortRange;
use pinhole_core::rng::Rng;
use pinhole_core::types::{Flow, Receive, Transmit, Transport};
use pinhole_core::wire::Protocol;

use super::edit::{self, HostPort};
use super::inside::Phones;
use super::{BAD_SDP, Hop, Lifetime, Stats, forward, is_dialog_creating, keepalive, reply};
use crate::Message;
use crate::media::{self, MediaError, Negotiation};

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
    /// How requests reach `inside_default` (a PBX on TCP, say).
    pub inside_transport: Transport,
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
            inside_transport: Transport::Udp,
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

/// A dialog: Call-ID and the caller's From tag.
type DialogKey = (Vec<u8>, Vec<u8>);

/// Whose streams: a dialog and the side whose media they are.
type Party = (DialogKey, Side);

/// What the APS answers for a message whose media pinhole failed.
const PINHOLE_FAILED: Rejection = Rejection::new(503, "Media Pinhole Failed");

/// The branch prefix of the APS's own requests (the ACK and BYE that end a
/// phone's dialog); `u` is no hex digit, so a proxied branch never has it.
const UAC_BRANCH: &str = "z9hG4bKapsuac";

struct Dialog {
    caller_tag: Vec<u8>,
    neg: Negotiation,
    last: Instant,
    ended: Option<Instant>,
    /// The phone's 2xx was refused for a failed pinhole and the APS ended
    /// the phone's dialog itself.
    refused: bool,
    /// A provisional response was dropped for a failed pinhole (logged
    /// once per dialog).
    dropped: bool,
}

/// The APS's SIP ALG.
pub struct Aps {
    cfg: ApsConfig,
    dialogs: HashMap<DialogKey, Dialog>,
    media: ApsMedia<Party>,
    held: Held<DialogKey>,
    phones: Phones,
    life: Lifetime,
    secret: u64,
    out: Outbox,
    stats: Stats,
}

impl Aps {
    /// A proxy with no dialogs.
    pub fn new(cfg: ApsConfig) -> Self {
        let mut rng = Rng::from_seed(cfg.seed);
        let secret = rng.next_u64();
        let media = ApsMedia::new(
            cfg.media_ip,
            cfg.media_ports,
            cfg.port_quarantine,
            rng.fork(),
        );
        Self {
            held: Held::new(cfg.max_parked),
            phones: Phones::new(cfg.inside_default.map(|d| (d, cfg.inside_transport))),
            life: Lifetime {
                setup_timeout: cfg.setup_timeout,
                dialog_idle: cfg.dialog_idle,
                linger: cfg.linger,
            },
            cfg,
            dialogs: HashMap::new(),
            media,
            secret,
            out: Outbox::new(),
            stats: Stats::default(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        Stats {
            pinholes: self.media.opened(),
            ..self.stats
        }
    }

    /// Dialogs tracked now.
    pub fn dialogs(&self) -> usize {
        self.dialogs.len()
    }

    fn reply(&mut self, rx: &Receive<'_>, msg: &Message<'_>, why: Rejection) {
        let tag = format!(
            "aps{:x}",
            keyed(self.secret, &[msg.call_id().unwrap_or_default()])
        );
        reply(&mut self.out, &mut self.stats, rx, msg, why, &tag);
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

    /// Handles a message; false when it was held (again) to resume later.
    /// `resuming`: it was held before, and comes back from [`Held`].
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
            && self.held.is_holding(k)
        {
            self.hold(k, &rx, false);
            return true;
        }
        if msg.is_request() {
            self.request(now, ctx, &rx, &msg, key, resuming)
        } else {
            self.response(now, ctx, &rx, &msg, key, resuming)
        }
    }

    /// Holds a message at the back of its dialog's queue (a resumed one
    /// goes back to the front: [`Held::resume`] puts it there). False, for
    /// [`Aps::process`] to return.
    fn hold(&mut self, key: &DialogKey, rx: &Receive<'_>, resuming: bool) -> bool {
        if self.held.park(key, rx) == Park::Held && !resuming {
            self.stats.parked += 1;
        }
        false
    }

    /// Handles a request; false when it must be held (resume later).
    fn request(
        &mut self,
        now: Instant,
        ctx: &mut dyn ClientContext,
        rx: &Receive<'_>,
        msg: &Message<'_>,
        key: Option<DialogKey>,
        resuming: bool,
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
            self.reply(rx, msg, Rejection::new(400, "Missing Call-ID or From tag"));
            return true;
        };
        let mut patch = Patch::new();
        if let Err(why) = edit::max_forwards(msg, &mut patch) {
            self.reply(rx, msg, why);
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
            self.reply(rx, msg, Rejection::new(503, "Not Registered With The MPR"));
            return true;
        }
        // The ACK to the 503 that replaced a refused 2xx is ours: the
        // phone's dialog is already over.
        if outside
            && method.eq_ignore_ascii_case("ACK")
            && key
                .as_ref()
                .and_then(|k| self.dialogs.get(k))
                .is_some_and(|d| d.refused)
        {
            return true;
        }
        // A dialog starts with an INVITE without a To tag.
        let key = match key {
            Some(k) => Some(k),
            None if method.eq_ignore_ascii_case("INVITE") && msg.to_tag().is_none() => {
                if self.dialogs.len() >= self.cfg.max_dialogs {
                    self.stats.dialogs_refused += 1;
                    self.reply(rx, msg, Rejection::new(503, "Service Unavailable"));
                    return true;
                }
                let k = (call_id.to_vec(), from_tag.to_vec());
                self.dialogs.insert(
                    k.clone(),
                    Dialog {
                        caller_tag: from_tag.to_vec(),
                        neg: Negotiation::default(),
                        last: now,
                        ended: None,
                        refused: false,
                        dropped: false,
                    },
                );
                self.stats.dialogs += 1;
                self.life.arm(&mut self.out, now);
                Some(k)
            }
            None => None,
        };
        let dest = if outside {
            self.phones
                .destination(now, msg, popped)
                .map(|(remote, t)| Hop {
                    local: self.cfg.local,
                    remote,
                    flow: Flow::over(t),
                })
        } else {
            if method.eq_ignore_ascii_case("REGISTER") {
                self.phones.learn(now, msg, rx.remote, rx.flow.transport);
            }
            Some(Hop {
                local: self.cfg.local,
                remote: ctx.mpr(),
                flow: ctx.upstream(),
            })
        };
        let Some(hop) = dest else {
            self.stats.not_ours += 1;
            self.reply(rx, msg, Rejection::new(404, "Not Found"));
            return true;
        };
        if let Some(k) = &key {
            let step = self.media(now, ctx, msg, k, outside, resuming, &mut patch);
            match step {
                Ok(Step::Ready(_)) => {}
                Ok(Step::Wait) => return self.hold(k, rx, resuming),
                Ok(Step::Failed(_)) | Err(_) => {
                    let why = match step {
                        Err(e) => match self.unreadable(Leg::Request, &e) {
                            Verdict::Refuse(why) => why,
                            Verdict::Drop => PINHOLE_FAILED,
                        },
                        _ => PINHOLE_FAILED,
                    };
                    self.reply(rx, msg, why);
                    if msg.to_tag().is_none() && method.eq_ignore_ascii_case("INVITE") {
                        // The call will not start: its ports B go, and the
                        // phone's next INVITE starts afresh.
                        self.close_media(now, ctx, k);
                    }
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
        let branch = format!("z9hG4bKaps{:x}", keyed(self.secret, &[incoming, call_id]));
        if msg.to_tag().is_none() && is_dialog_creating(method) {
            let rr = format!("sip:{};lr", HostPort(self.cfg.local));
            edit::add_record_route(msg, &mut patch, &rr);
        }
        edit::add_via(msg, &mut patch, self.cfg.local, hop.flow.transport, &branch);
        forward(&mut self.out, &mut self.stats, msg, &patch, hop);
        true
    }

    /// Handles a response; false when it must be held (resume later).
    fn response(
        &mut self,
        now: Instant,
        ctx: &mut dyn ClientContext,
        rx: &Receive<'_>,
        msg: &Message<'_>,
        key: Option<DialogKey>,
        resuming: bool,
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
        if top
            .branch
            .clone()
            .and_then(|b| buf.get(b))
            .is_some_and(|b| b.starts_with(UAC_BRANCH.as_bytes()))
        {
            tracing::debug!(status = ?msg.status(), "SIP: the phone answered the APS's BYE");
            return true;
        }
        let Some(remote) = vias.get(1).and_then(|v| edit::via_target(buf, v)) else {
            self.stats.malformed += 1;
            return true;
        };
        let outside = rx.remote == ctx.mpr();
        // Inside: back the way the request came (over a stream, the
        // phone's connection to that address); outside: up to the MPR.
        let hop = Hop {
            local: self.cfg.local,
            remote,
            flow: if outside {
                Flow::over(edit::via_transport(buf, &vias[1]))
            } else {
                ctx.upstream()
            },
        };
        let ok_to_invite = (200..300).contains(&msg.status().unwrap_or(0))
            && msg
                .cseq()
                .is_some_and(|(_, m)| m.eq_ignore_ascii_case("INVITE"));
        if let Some(k) = &key
            && ok_to_invite
            && self.dialogs.get(k).is_some_and(|d| d.refused)
        {
            // The phone did not get our ACK: the same answer again.
            self.refuse_ok(rx, msg, hop);
            return true;
        }
        let mut patch = Patch::new();
        edit::pop_via(msg, &mut patch, top);
        if let Some(k) = &key {
            match self.media(now, ctx, msg, k, outside, resuming, &mut patch) {
                Ok(Step::Ready(_)) => {}
                Ok(Step::Wait) => return self.hold(k, rx, resuming),
                Ok(Step::Failed(StreamError::PinholeFailed))
                    if msg.status().is_some_and(|s| s < 200) =>
                {
                    // Its SDP would name a pinhole that does not exist;
                    // the final response still comes.
                    let first = self
                        .dialogs
                        .get_mut(k)
                        .is_some_and(|d| !std::mem::replace(&mut d.dropped, true));
                    if first {
                        tracing::warn!("SIP: provisional answer dropped: its media pinhole failed");
                    }
                    return true;
                }
                Ok(Step::Failed(StreamError::PinholeFailed)) if ok_to_invite => {
                    self.refuse_ok(rx, msg, hop);
                    self.end_refused(now, ctx, k);
                    return true;
                }
                Ok(Step::Failed(_)) => {
                    tracing::error!(
                        "SIP: the answer's media pinhole failed; forwarded without media"
                    );
                }
                Err(e) => {
                    // Issue 18: a response cannot be refused, so it is dropped.
                    self.unreadable(Leg::Response, &e);
                    return true;
                }
            }
        }
        forward(&mut self.out, &mut self.stats, msg, &patch, hop);
        true
    }

    /// A 2xx to an INVITE whose media pinhole failed: the MPR gets a 503
    /// instead, and the phone, whose dialog the 2xx created, an ACK and a
    /// BYE from the APS (sent to where the 2xx came from). The same bytes
    /// every time, so a retransmitted 2xx gets retransmissions.
    fn refuse_ok(&mut self, rx: &Receive<'_>, ok: &Message<'_>, up: Hop) {
        self.stats.replied += 1;
        self.out.send(Transmit {
            local: up.local,
            remote: up.remote,
            payload: edit::instead_of(ok, PINHOLE_FAILED),
            flow: up.flow,
        });
        let Some((cseq, _)) = ok.cseq() else {
            return;
        };
        let call_id = ok.call_id().unwrap_or_default();
        let to_tag = ok.to_tag().unwrap_or_default();
        for (method, n) in [("ACK", cseq), ("BYE", cseq.saturating_add(1))] {
            let branch = format!(
                "{UAC_BRANCH}{:x}",
                keyed(self.secret, &[call_id, to_tag, method.as_bytes()])
            );
            let Some(req) = edit::request_in_dialog(ok, method, n, self.cfg.local, &branch) else {
                tracing::warn!(
                    "SIP: the refused 2xx has no usable Contact; the phone's dialog is left to expire"
                );
                return;
            };
            self.out.send(Transmit {
                local: self.cfg.local,
                remote: rx.remote,
                payload: req,
                flow: rx.flow,
            });
        }
    }

    /// After [`Aps::refuse_ok`]: the dialog is over and its media released.
    fn end_refused(&mut self, now: Instant, ctx: &mut dyn ClientContext, key: &DialogKey) {
        tracing::warn!("SIP: 2xx refused: its media pinhole failed; the phone's dialog is ended");
        self.close_media(now, ctx, key);
        if let Some(d) = self.dialogs.get_mut(key) {
            d.ended.get_or_insert(now);
            d.refused = true;
        }
        self.stats.teardowns += 1;
        self.life.arm(&mut self.out, now);
    }

    /// Opens pinholes for SDP leaving, maps ports B for SDP entering, and
    /// records the SDP edits. `Step::Ready` also when there is nothing to
    /// do; `Err` when the SDP could not be rewritten.
    #[allow(clippy::too_many_arguments)]
    fn media(
        &mut self,
        now: Instant,
        ctx: &mut dyn ClientContext,
        msg: &Message<'_>,
        key: &DialogKey,
        outside: bool,
        resuming: bool,
        patch: &mut Patch,
    ) -> Result<Step, MediaError> {
        let nothing = Ok(Step::Ready(Vec::new()));
        // Unreadable: refused or dropped by the caller, never forwarded.
        let body = media::sdp_body(msg, self.cfg.media_ip)?;
        let Some(d) = self.dialogs.get_mut(key) else {
            return nothing;
        };
        d.last = now;
        let sender = media::sender(msg, &d.caller_tag);
        let kind = d.neg.classify(msg, body.is_some());
        if kind == Some(IntentKind::Teardown) {
            d.ended.get_or_insert(now);
            self.close_media(now, ctx, key);
            self.stats.teardowns += 1;
            self.life.arm(&mut self.out, now);
            return nothing;
        }
        let (Some(body), Some(_)) = (body, kind) else {
            return nothing;
        };
        let step = if outside {
            let party = (key.clone(), sender.peer());
            self.media.inward(now, ctx, &party, body.endpoints())
        } else {
            let h = keyed(self.secret, &[&key.0, &key.1]);
            let s = if sender == Side::A { 'a' } else { 'b' };
            let leg_key = |index: u16| format!("sip/{h:016x}/{s}/{index}").into_bytes();
            let party = (key.clone(), sender);
            self.media
                .outward(now, ctx, &party, body.endpoints(), &leg_key, resuming)
        };
        match step {
            Step::Ready(plan) => {
                body.rewrite(msg, &plan, patch)?;
                self.stats.sdp_rewritten += 1;
                Ok(Step::Ready(plan))
            }
            Step::Failed(e) => {
                if matches!(e, StreamError::Open(_)) {
                    self.stats.pinhole_failures += 1;
                }
                if !e.is_backing_off() {
                    tracing::error!(error = %e, "SIP: no media pinhole for the message");
                }
                Ok(Step::Failed(e))
            }
            Step::Wait => Ok(Step::Wait),
        }
    }

    /// Issue 18's rule ([`unreadable_media`]) for a message whose SDP
    /// could not be read or rewritten (`e`): a request is to be answered
    /// 488, a response dropped; never forwarded. Counted and logged here.
    fn unreadable(&mut self, leg: Leg, e: &MediaError) -> Verdict {
        unreadable_media(Protocol::Sip, leg, BAD_SDP, e, &mut self.stats.sdp_errors)
    }

    /// Releases both sides' streams of a dialog: pinholes and ports B.
    fn close_media(&mut self, now: Instant, ctx: &mut dyn ClientContext, key: &DialogKey) {
        for side in [Side::A, Side::B] {
            self.media.close(now, ctx, &(key.clone(), side));
        }
    }

    fn expire(&mut self, now: Instant, ctx: &mut dyn ClientContext) {
        let life = self.life;
        let gone: Vec<DialogKey> = self
            .dialogs
            .iter()
            .filter(|(_, d)| life.over(now, d.last, d.ended, d.neg.confirmed()))
            .map(|(k, _)| k.clone())
            .collect();
        for k in gone {
            self.close_media(now, ctx, &k);
            if let Some(d) = self.dialogs.remove(&k)
                && d.ended.is_none()
            {
                self.stats.expired += 1;
            }
        }
        let dialogs = &self.dialogs;
        self.held.retain(|k| dialogs.contains_key(k));
        self.phones.expire(now);
        self.media.expire(now);
        self.life
            .rearm(&mut self.out, now, !self.dialogs.is_empty());
    }
}

impl ClientSignaling for Aps {
    fn protocol(&self) -> Protocol {
        Protocol::Sip
    }

    fn framer(&self) -> Option<pinhole_core::framing::ProtocolFramer> {
        Some(crate::stream_frame)
    }

    fn handle_datagram(&mut self, now: Instant, ctx: &mut dyn ClientContext, rx: Receive<'_>) {
        self.stats.received += 1;
        if keepalive(&mut self.out, &mut self.stats, &rx) {
            return;
        }
        let _ = self.process(now, ctx, rx, false);
    }

    fn handle_event(&mut self, now: Instant, ctx: &mut dyn ClientContext, ev: &Event) {
        let (key, _) = match self.media.handle_event(ev, &mut self.out) {
            Some(Outcome::Opened(party)) => party,
            Some(Outcome::Failed(party)) => {
                self.stats.pinhole_failures += 1;
                party
            }
            None => return,
        };
        // What waited for the pinhole goes on (or is refused, if it failed).
        Held::resume(
            self,
            |a| &mut a.held,
            &key,
            |a, rx| a.process(now, ctx, rx, true),
        );
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
