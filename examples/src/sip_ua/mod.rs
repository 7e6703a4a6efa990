//! A small SIP user agent for one call at a time, sans-IO: it takes SIP
//! datagrams, pinhole outcomes and time, and queues [`Output`]s (SIP to
//! send, pinholes to open or close, call events). The same state machine
//! runs as the smart terminal of Fig. 12 over real sockets
//! ([`crate::smart`]) and as the phones of the simulated Figs. 11 and 12
//! ([`crate::figures`]).
//!
//! As a **smart terminal** ([`MediaMode::Pinhole`], Fig. 12, no APS) it
//! opens its media pinhole itself before SDP leaves: the caller reserves
//! one (`relay: None`) and offers the pinhole address the CMPH Response
//! reported; the callee binds toward the relay address the offer names and
//! answers with its pinhole. As a **plain phone** ([`MediaMode::Direct`],
//! behind an APS, Fig. 11) it offers its own media address.
//!
//! Every request goes to the configured proxy (the MPR, or the APS); RFC
//! 3261 UDP reliability is kept: INVITE and BYE are retransmitted (timers
//! A/B, E/F), a 2xx until its ACK (§13.3.1.4), retransmitted requests get
//! the same answer again.
//!
//! ```
//! use std::time::Instant;
//! use pinhole_examples::sip_ua::{MediaMode, Output, Ua, UaConfig};
//!
//! let now = Instant::now();
//! let mut ua = Ua::new(UaConfig {
//!     aor: "alice@corp1.example".into(),
//!     sip: "10.1.0.10:5060".parse().unwrap(),
//!     proxy: "203.0.113.10:5060".parse().unwrap(),
//!     media: "10.1.0.10:4000".parse().unwrap(),
//!     mode: MediaMode::Pinhole,
//!     seed: 1,
//! });
//! ua.call(now, "sip:bob@corp2.example").unwrap();
//! // A smart terminal opens its media pinhole before any SDP leaves.
//! let Some(Output::OpenPinhole(req)) = ua.poll_output() else { panic!() };
//! assert_eq!(req.relay, None);
//! ua.pinhole_opened(now, Some("198.51.100.1:40000".parse().unwrap()));
//! let Some(Output::Sip { to, bytes }) = ua.poll_output() else { panic!() };
//! assert_eq!(to, "203.0.113.10:5060".parse().unwrap());
//! let text = String::from_utf8(bytes).unwrap();
//! assert!(text.starts_with("INVITE sip:bob@corp2.example SIP/2.0\r\n"));
//! assert!(text.contains("c=IN IP4 198.51.100.1\r\nt=0 0\r\nm=audio 40000 "));
//! ```

mod msg;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pinhole_core::client::PinholeRequest;
use pinhole_core::wire::RtcpMode;
use pinhole_sip::{HeaderName, Message};

use msg::{Request, Response};

/// RFC 3261 T1: the first retransmission interval.
const T1: Duration = Duration::from_millis(500);
/// RFC 3261 T2: the longest interval for non-INVITE requests and 2xx.
const T2: Duration = Duration::from_secs(4);
/// 64·T1: when a transaction gives up, and how long answers are kept to
/// answer retransmissions.
const GIVE_UP: Duration = Duration::from_secs(32);
/// Most answers kept for retransmitted requests.
const ANSWERED_MAX: usize = 32;

/// How the UA gets its media across the firewall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaMode {
    /// A smart terminal (Fig. 12): it opens its own media pinhole with CMPH
    /// and writes the pinhole address into its SDP.
    Pinhole,
    /// A plain phone (Fig. 11, behind an APS): its SDP names its own media
    /// address.
    Direct,
}

/// The UA's settings.
#[derive(Clone, Debug)]
pub struct UaConfig {
    /// Our address of record, `user@domain` (From of our calls).
    pub aor: String,
    /// Our SIP socket (Via sent-by and, until [`Ua::set_contact`], Contact).
    pub sip: SocketAddr,
    /// Where every request goes: the MPR's SIP address (Fig. 12) or the
    /// APS (Fig. 11).
    pub proxy: SocketAddr,
    /// Our media socket (port A).
    pub media: SocketAddr,
    /// Smart terminal or plain phone.
    pub mode: MediaMode,
    /// Seeds Call-IDs, tags and branches (use a different one per UA).
    pub seed: u64,
}

/// Something the driver must do.
#[derive(Clone, Debug)]
pub enum Output {
    /// Send a SIP datagram from our SIP socket.
    Sip {
        /// Destination.
        to: SocketAddr,
        /// The message.
        bytes: Vec<u8>,
    },
    /// Open a media pinhole (smart terminal), then report the outcome with
    /// [`Ua::pinhole_opened`] or [`Ua::pinhole_failed`].
    OpenPinhole(PinholeRequest),
    /// Close the media pinhole opened for the call that just ended.
    ClosePinhole,
    /// A call event for the application.
    Event(UaEvent),
}

/// What happened to the call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UaEvent {
    /// An INVITE arrived (we answer it ourselves).
    Incoming {
        /// Its From header value.
        from: String,
    },
    /// The callee is ringing (a 180 or 183 arrived).
    Ringing,
    /// The call is up: send media to `remote_media` (the MPR relay address
    /// in the other party's SDP).
    Established {
        /// Where our media goes.
        remote_media: SocketAddr,
    },
    /// The call is over.
    Ended {
        /// Why.
        why: EndReason,
    },
}

/// Why a call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// We hung up (BYE answered or timed out).
    LocalBye,
    /// The other party hung up.
    RemoteBye,
    /// The INVITE got this final error response.
    Rejected(u16),
    /// The caller cancelled before the answer.
    Cancelled,
    /// No answer to our INVITE, or no ACK to our 200.
    Timeout,
    /// The media pinhole could not be opened.
    PinholeFailed,
}

/// Where the UA's single call stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallState {
    /// No call.
    Idle,
    /// Caller: waiting for the media pinhole before the INVITE leaves.
    Reserving,
    /// Caller: INVITE sent.
    Calling,
    /// Caller: a 180/183 arrived.
    Ringing,
    /// Callee: INVITE answered with 180, waiting for the media pinhole.
    Binding,
    /// Callee: 200 sent, waiting for the ACK.
    Answered,
    /// The call is up.
    Confirmed,
    /// Caller: CANCEL sent.
    Cancelling,
    /// BYE sent.
    Terminating,
}

/// A request the UA refused to act on.
#[non_exhaustive]
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum UaError {
    /// A call is already going on.
    #[error("a call is already in progress")]
    Busy,
    /// Nothing to hang up.
    #[error("there is no call to hang up")]
    NoCall,
    /// The call cannot end yet (our 200 waits for its ACK).
    #[error("the call cannot be ended before the ACK of our 200")]
    NotYet,
    /// The target is not a SIP URI we can call.
    #[error("not a SIP URI: {0:?}")]
    BadUri(String),
    /// A datagram that is not SIP.
    #[error("unparsable SIP message: {0}")]
    Parse(#[from] pinhole_sip::ParseError),
    /// A SIP message without a field the UA needs.
    #[error("SIP message without {0}")]
    Missing(&'static str),
}

/// A client transaction we retransmit (RFC 3261 §17.1 over UDP).
struct ClientTx {
    branch: String,
    method: &'static str,
    bytes: Vec<u8>,
    /// The next retransmission; `None` once a provisional response came
    /// (INVITE: timer A stops).
    next: Option<Instant>,
    interval: Duration,
    /// When it gives up (timer B / F); `None` once an INVITE is ringing.
    deadline: Option<Instant>,
}

/// Our 2xx to an INVITE, sent again until its ACK (§13.3.1.4).
struct OkRetx {
    cseq: u32,
    to: SocketAddr,
    bytes: Vec<u8>,
    next: Instant,
    interval: Duration,
    deadline: Instant,
}

/// An answer kept for the request's retransmissions.
struct Answered {
    call_id: Vec<u8>,
    branch: Vec<u8>,
    method: String,
    to: SocketAddr,
    bytes: Vec<u8>,
    until: Instant,
}

/// The call (early or confirmed dialog).
struct Call {
    state: CallState,
    call_id: String,
    local_tag: String,
    /// Their tag, once known (the callee's from the 2xx To).
    remote_tag: Option<Vec<u8>>,
    /// From (ours) and To (theirs) of our requests, tags included once known.
    local_party: String,
    remote_party: String,
    /// The peer's Contact (our requests' Request-URI), and the route set.
    remote_target: String,
    route: Vec<String>,
    /// Our latest CSeq.
    cseq: u32,
    /// Caller: the INVITE's branch and CSeq (CANCEL and non-2xx ACK reuse them).
    invite_branch: String,
    /// Callee: the INVITE being answered.
    incoming: Option<Vec<u8>>,
    /// Callee: the INVITE had no offer; ours goes in the 200, theirs in the ACK.
    late_offer: bool,
    /// Our ACK to the 2xx, sent again for its retransmissions.
    ack: Option<Vec<u8>>,
    /// A media pinhole was asked for (closed when the call ends).
    pinhole: bool,
    /// What our SDP names.
    local_media: Option<SocketAddr>,
    /// What theirs names.
    remote_media: Option<SocketAddr>,
    /// Our SDP's session id; its version stays 1 because our media
    /// address never changes within a call (RFC 3264 §8).
    sdp_session: u64,
}

/// The user agent. See the [module docs](self).
pub struct Ua {
    cfg: UaConfig,
    contact: SocketAddr,
    rng: u64,
    call: Option<Call>,
    txs: Vec<ClientTx>,
    ok: Option<OkRetx>,
    answered: VecDeque<Answered>,
    out: VecDeque<Output>,
}

impl Ua {
    /// A UA with no call.
    pub fn new(cfg: UaConfig) -> Self {
        Self {
            contact: cfg.sip,
            rng: cfg.seed ^ 0x5851_f42d_4c95_7f2d,
            cfg,
            call: None,
            txs: Vec::new(),
            ok: None,
            answered: VecDeque::new(),
            out: VecDeque::new(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &UaConfig {
        &self.cfg
    }

    /// Puts `addr` in our Contact: a smart terminal's signaling pinhole,
    /// once registered, is where the outside can reach it.
    pub fn set_contact(&mut self, addr: SocketAddr) {
        self.contact = addr;
    }

    /// Where the call stands.
    pub fn state(&self) -> CallState {
        self.call.as_ref().map_or(CallState::Idle, |c| c.state)
    }

    /// The media address the other party's SDP named (an MPR relay port).
    pub fn remote_media(&self) -> Option<SocketAddr> {
        self.call.as_ref().and_then(|c| c.remote_media)
    }

    /// The media address our SDP named (the pinhole, for a smart terminal).
    pub fn local_media(&self) -> Option<SocketAddr> {
        self.call.as_ref().and_then(|c| c.local_media)
    }

    /// The next thing to do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// Calls `target` (`sip:user@domain`; `user@domain` is taken as a SIP
    /// URI). A smart terminal first asks for its media pinhole; the INVITE
    /// follows [`Ua::pinhole_opened`].
    pub fn call(&mut self, now: Instant, target: &str) -> Result<(), UaError> {
        if self.call.is_some() {
            return Err(UaError::Busy);
        }
        let target = if target.contains(':') {
            target.to_owned()
        } else {
            format!("sip:{target}")
        };
        let b = target.as_bytes();
        match pinhole_sip::Uri::parse(b, 0..b.len()) {
            Ok(u) if u.scheme != pinhole_sip::Scheme::Tel => {}
            _ => return Err(UaError::BadUri(target)),
        }
        let call_id = format!("{:016x}@{}", self.next_id(), self.cfg.sip.ip());
        let local_tag = format!("{:012x}", self.next_id() & 0xffff_ffff_ffff);
        let session = self.next_id() & 0xffff_ffff;
        self.call = Some(Call {
            state: CallState::Reserving,
            remote_tag: None,
            local_party: format!("<sip:{}>;tag={local_tag}", self.cfg.aor),
            remote_party: format!("<{target}>"),
            remote_target: target,
            route: Vec::new(),
            cseq: 1,
            invite_branch: String::new(),
            incoming: None,
            late_offer: false,
            ack: None,
            pinhole: false,
            local_media: None,
            remote_media: None,
            sdp_session: session,
            call_id,
            local_tag,
        });
        match self.cfg.mode {
            MediaMode::Pinhole => self.open_pinhole(None),
            MediaMode::Direct => self.pinhole_opened(now, Some(self.cfg.media)),
        }
        Ok(())
    }

    /// Hangs up: BYE once the call is up, CANCEL while it rings.
    pub fn hangup(&mut self, now: Instant) -> Result<(), UaError> {
        let state = self.state();
        match state {
            CallState::Confirmed => {
                self.ok = None;
                self.bye(now);
                Ok(())
            }
            // RFC 3261 §15: no BYE before the ACK of our 2xx.
            CallState::Answered => Err(UaError::NotYet),
            CallState::Calling | CallState::Ringing => {
                self.cancel(now);
                Ok(())
            }
            CallState::Reserving => {
                self.end(EndReason::Cancelled);
                Ok(())
            }
            CallState::Binding => {
                self.reject_incoming(now, 480, "Temporarily Unavailable");
                self.end(EndReason::Cancelled);
                Ok(())
            }
            CallState::Idle | CallState::Cancelling | CallState::Terminating => {
                Err(UaError::NoCall)
            }
        }
    }

    /// The media pinhole is open; `pinhole` is the public address the CMPH
    /// Response reported (`None` in the no-response variant: our own port
    /// is written then). The SDP that was waiting for it leaves now.
    pub fn pinhole_opened(&mut self, now: Instant, pinhole: Option<SocketAddr>) {
        let media = pinhole.unwrap_or(self.cfg.media);
        let Some(c) = self.call.as_mut() else {
            return;
        };
        c.local_media = Some(media);
        match c.state {
            CallState::Reserving => self.send_invite(now),
            CallState::Binding => self.answer(now),
            _ => {}
        }
    }

    /// The media pinhole could not be opened: the call cannot have media.
    pub fn pinhole_failed(&mut self, now: Instant) {
        match self.state() {
            CallState::Reserving => self.end(EndReason::PinholeFailed),
            CallState::Binding => {
                self.reject_incoming(now, 503, "Service Unavailable");
                self.end(EndReason::PinholeFailed);
            }
            _ => {}
        }
    }

    /// A datagram arrived on our SIP socket from `source`.
    pub fn handle_sip(
        &mut self,
        now: Instant,
        source: SocketAddr,
        bytes: &[u8],
    ) -> Result<(), UaError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(()); // A keepalive or its pong (RFC 5626).
        }
        let msg = Message::parse(bytes)?;
        if msg.is_request() {
            self.request(now, source, &msg)
        } else {
            self.response(now, &msg)
        }
    }

    /// Time passed: retransmissions and give-ups.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut gave_up = Vec::new();
        for tx in &mut self.txs {
            if tx.deadline.is_some_and(|d| d <= now) {
                gave_up.push(tx.method);
                tx.next = None;
                continue;
            }
            if let Some(next) = tx.next
                && next <= now
            {
                self.out.push_back(Output::Sip {
                    to: self.cfg.proxy,
                    bytes: tx.bytes.clone(),
                });
                tx.interval = if tx.method == "INVITE" {
                    tx.interval * 2
                } else {
                    (tx.interval * 2).min(T2)
                };
                tx.next = Some(now + tx.interval);
            }
        }
        self.txs.retain(|t| t.deadline.is_none_or(|d| d > now));
        for method in gave_up {
            tracing::warn!(method, "SIP: no response, giving up");
            match method {
                "INVITE" => self.end(EndReason::Timeout),
                "BYE" => self.end(EndReason::LocalBye),
                "CANCEL" if self.state() == CallState::Cancelling => {
                    self.end(EndReason::Cancelled);
                }
                _ => {}
            }
        }
        if let Some(ok) = &mut self.ok {
            if ok.deadline <= now {
                // No ACK for our 2xx: the dialog is over (§13.3.1.4).
                self.ok = None;
                tracing::warn!("SIP: no ACK for our 200; hanging up");
                self.bye(now);
            } else if ok.next <= now {
                self.out.push_back(Output::Sip {
                    to: ok.to,
                    bytes: ok.bytes.clone(),
                });
                ok.interval = (ok.interval * 2).min(T2);
                ok.next = now + ok.interval;
            }
        }
        while self.answered.front().is_some_and(|a| a.until <= now) {
            self.answered.pop_front();
        }
    }

    /// When to call [`Ua::handle_timeout`] next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let txs = self.txs.iter().flat_map(|t| [t.next, t.deadline]);
        let ok = self
            .ok
            .iter()
            .flat_map(|o| [Some(o.next), Some(o.deadline)]);
        txs.chain(ok)
            .chain(self.answered.front().map(|a| Some(a.until)))
            .flatten()
            .min()
    }

    fn next_id(&mut self) -> u64 {
        // splitmix64: distinct ids from any seed.
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn branch(&mut self) -> String {
        format!("z9hG4bK{:016x}", self.next_id())
    }

    fn contact_uri(&self) -> String {
        let user = self.cfg.aor.split('@').next().unwrap_or_default();
        format!("sip:{user}@{}", msg::host_port(self.contact))
    }

    fn open_pinhole(&mut self, relay: Option<SocketAddr>) {
        let Some(c) = self.call.as_mut() else {
            return;
        };
        c.pinhole = true;
        // The LEG-KEY names the stream: the Call-ID, cut to fit 64 bytes.
        let mut key = format!("{}/0", c.call_id).into_bytes();
        key.truncate(64);
        self.out.push_back(Output::OpenPinhole(PinholeRequest {
            local: self.cfg.media,
            relay,
            rtcp: RtcpMode::Mux,
            key,
            inside: None,
        }));
    }

    fn local_sdp(&self) -> Option<String> {
        let c = self.call.as_ref()?;
        Some(msg::sdp(c.local_media?, c.sdp_session, 1))
    }

    fn send(&mut self, to: SocketAddr, bytes: Vec<u8>) {
        self.out.push_back(Output::Sip { to, bytes });
    }

    /// Sends a request through the proxy and retransmits it until answered.
    fn send_request(&mut self, now: Instant, method: &'static str, branch: String, bytes: Vec<u8>) {
        self.send(self.cfg.proxy, bytes.clone());
        self.txs.push(ClientTx {
            branch,
            method,
            bytes,
            next: Some(now + T1),
            interval: T1,
            deadline: Some(now + GIVE_UP),
        });
    }

    fn send_invite(&mut self, now: Instant) {
        let sdp = self.local_sdp();
        let branch = self.branch();
        let contact = self.contact_uri();
        let Some(c) = self.call.as_mut() else {
            return;
        };
        c.state = CallState::Calling;
        c.invite_branch.clone_from(&branch);
        let bytes = Request {
            method: "INVITE",
            uri: &c.remote_target,
            via: self.cfg.sip,
            branch: &branch,
            from: &c.local_party,
            to: &c.remote_party,
            call_id: &c.call_id,
            cseq: c.cseq,
            route: &[],
            contact: Some(&contact),
            sdp: sdp.as_deref(),
        }
        .build();
        self.send_request(now, "INVITE", branch, bytes);
    }

    /// An in-dialog request (RFC 3261 §12.2.1.1): Request-URI the remote
    /// target, Route the route set (a strict first router takes the
    /// Request-URI's place).
    fn in_dialog(&mut self, method: &'static str, sdp: Option<&str>) -> Option<(String, Vec<u8>)> {
        let branch = self.branch();
        let c = self.call.as_mut()?;
        if method != "ACK" {
            c.cseq += 1;
        }
        let (uri, route) = match c.route.first() {
            Some(first) if !msg::is_loose(first) => {
                let mut r: Vec<String> = c.route.iter().skip(1).cloned().collect();
                r.push(c.remote_target.clone());
                (first.clone(), r)
            }
            _ => (c.remote_target.clone(), c.route.clone()),
        };
        let bytes = Request {
            method,
            uri: &uri,
            via: self.cfg.sip,
            branch: &branch,
            from: &c.local_party,
            to: &c.remote_party,
            call_id: &c.call_id,
            cseq: c.cseq,
            route: &route,
            contact: None,
            sdp,
        }
        .build();
        Some((branch, bytes))
    }

    fn bye(&mut self, now: Instant) {
        let Some((branch, bytes)) = self.in_dialog("BYE", None) else {
            return;
        };
        if let Some(c) = self.call.as_mut() {
            c.state = CallState::Terminating;
        }
        self.send_request(now, "BYE", branch, bytes);
    }

    /// CANCEL (§9.1): the INVITE's Request-URI, Call-ID, From, To, CSeq
    /// number and branch.
    fn cancel(&mut self, now: Instant) {
        let Some(c) = self.call.as_mut() else {
            return;
        };
        c.state = CallState::Cancelling;
        let branch = c.invite_branch.clone();
        let bytes = Request {
            method: "CANCEL",
            uri: &c.remote_target,
            via: self.cfg.sip,
            branch: &branch,
            from: &c.local_party,
            to: &c.remote_party,
            call_id: &c.call_id,
            cseq: c.cseq,
            route: &[],
            contact: None,
            sdp: None,
        }
        .build();
        // Only a CANCEL's own response ends its transaction: key it apart
        // from the INVITE's, which shares the branch.
        self.send(self.cfg.proxy, bytes.clone());
        self.txs.push(ClientTx {
            branch,
            method: "CANCEL",
            bytes,
            next: Some(now + T1),
            interval: T1,
            deadline: Some(now + GIVE_UP),
        });
    }

    fn end(&mut self, why: EndReason) {
        let Some(c) = self.call.take() else {
            return;
        };
        if c.pinhole {
            self.out.push_back(Output::ClosePinhole);
        }
        self.txs.clear();
        self.ok = None;
        tracing::info!(?why, call_id = %c.call_id, "call ended");
        self.out.push_back(Output::Event(UaEvent::Ended { why }));
    }

    /// Keeps `bytes`, our answer to `req`, for its retransmissions, and
    /// sends it.
    fn reply(&mut self, now: Instant, req: &Message<'_>, to: SocketAddr, bytes: Vec<u8>) {
        if self.answered.len() >= ANSWERED_MAX {
            self.answered.pop_front();
        }
        self.answered.push_back(Answered {
            call_id: req.call_id().unwrap_or_default().to_vec(),
            branch: msg::branch(req).unwrap_or_default().to_vec(),
            method: req.method().unwrap_or_default().to_owned(),
            to,
            bytes: bytes.clone(),
            until: now + GIVE_UP,
        });
        self.send(to, bytes);
    }

    /// A response of our own making with no dialog state behind it.
    fn simple_reply(
        &mut self,
        now: Instant,
        req: &Message<'_>,
        source: SocketAddr,
        code: u16,
        reason: &str,
    ) {
        let tag = format!("{:x}", self.next_id() & 0xffff_ffff);
        let bytes = Response {
            code,
            reason,
            to_tag: &tag,
            record_route: false,
            contact: None,
            sdp: None,
        }
        .build(req);
        self.reply(now, req, msg::response_target(req, source), bytes);
    }

    fn request(
        &mut self,
        now: Instant,
        source: SocketAddr,
        req: &Message<'_>,
    ) -> Result<(), UaError> {
        let method = req.method().ok_or(UaError::Missing("a method"))?;
        let call_id = req.call_id().ok_or(UaError::Missing("Call-ID"))?;
        let branch = msg::branch(req).ok_or(UaError::Missing("a Via branch"))?;
        if req.cseq().is_none() {
            return Err(UaError::Missing("CSeq"));
        }
        // A retransmission of a request we answered: the same answer.
        if method != "ACK"
            && let Some(a) = self
                .answered
                .iter()
                .find(|a| a.call_id == call_id && a.branch == branch && a.method == method)
        {
            let (to, bytes) = (a.to, a.bytes.clone());
            self.send(to, bytes);
            return Ok(());
        }
        match method {
            "ACK" => {
                self.ack_received(req, source);
                Ok(())
            }
            "CANCEL" => {
                self.cancel_received(now, req, source);
                Ok(())
            }
            _ if req.to_tag().is_some() => {
                self.dialog_request(now, req, source, method);
                Ok(())
            }
            "INVITE" => {
                self.incoming(now, req, source);
                Ok(())
            }
            "OPTIONS" => {
                self.simple_reply(now, req, source, 200, "OK");
                Ok(())
            }
            _ => {
                self.simple_reply(now, req, source, 405, "Method Not Allowed");
                Ok(())
            }
        }
    }

    /// Whether `req` belongs to our dialog (Call-ID and both tags).
    fn in_our_dialog(&self, req: &Message<'_>) -> bool {
        let Some(c) = &self.call else {
            return false;
        };
        req.call_id() == Some(c.call_id.as_bytes())
            && req.to_tag() == Some(c.local_tag.as_bytes())
            && req.from_tag().is_some() == c.remote_tag.is_some()
            && req.from_tag() == c.remote_tag.as_deref()
    }

    fn dialog_request(
        &mut self,
        now: Instant,
        req: &Message<'_>,
        source: SocketAddr,
        method: &str,
    ) {
        if !self.in_our_dialog(req) {
            self.simple_reply(now, req, source, 481, "Call/Transaction Does Not Exist");
            return;
        }
        match method {
            "BYE" => {
                self.simple_reply(now, req, source, 200, "OK");
                self.end(EndReason::RemoteBye);
            }
            "INVITE" => self.reinvite(now, req, source),
            "OPTIONS" => self.simple_reply(now, req, source, 200, "OK"),
            _ => self.simple_reply(now, req, source, 405, "Method Not Allowed"),
        }
    }

    /// A re-INVITE (hold, a new relay path): take its offer (or make one
    /// when it has none) and answer with our unchanged media address.
    fn reinvite(&mut self, now: Instant, req: &Message<'_>, source: SocketAddr) {
        let remote = msg::media_of(req, source.ip());
        let sdp = self.local_sdp();
        let contact = self.contact_uri();
        let Some(c) = self.call.as_mut() else {
            return;
        };
        if remote.is_some() {
            c.remote_media = remote;
        }
        c.late_offer = remote.is_none();
        let bytes = Response {
            code: 200,
            reason: "OK",
            to_tag: &c.local_tag,
            record_route: false,
            contact: Some(&contact),
            sdp: sdp.as_deref(),
        }
        .build(req);
        let to = msg::response_target(req, source);
        let cseq = req.cseq().map_or(0, |(n, _)| n);
        self.reply(now, req, to, bytes.clone());
        self.ok = Some(OkRetx {
            cseq,
            to,
            bytes,
            next: now + T1,
            interval: T1,
            deadline: now + GIVE_UP,
        });
    }

    /// A new INVITE: ring at once, then open the pinhole toward the relay
    /// the offer names (a reserve when there is no offer) and answer when
    /// it is open.
    fn incoming(&mut self, now: Instant, req: &Message<'_>, source: SocketAddr) {
        if self.call.is_some() {
            self.simple_reply(now, req, source, 486, "Busy Here");
            return;
        }
        let (Some(call_id), Some(from_tag), Some(from), Some(to)) = (
            req.call_id().and_then(|c| std::str::from_utf8(c).ok()),
            req.from_tag(),
            msg::text(req, HeaderName::From),
            msg::text(req, HeaderName::To),
        ) else {
            self.simple_reply(now, req, source, 400, "Bad Request");
            return;
        };
        let Some(remote_target) = msg::contact_uri(req) else {
            self.simple_reply(now, req, source, 400, "Missing Contact");
            return;
        };
        let local_tag = format!("{:012x}", self.next_id() & 0xffff_ffff_ffff);
        let session = self.next_id() & 0xffff_ffff;
        let offer = msg::media_of(req, source.ip());
        self.call = Some(Call {
            state: CallState::Binding,
            remote_tag: Some(from_tag.to_vec()),
            call_id: call_id.to_owned(),
            local_party: format!("{to};tag={local_tag}"),
            remote_party: from.to_owned(),
            remote_target,
            route: msg::record_route(req),
            cseq: 0,
            invite_branch: String::new(),
            incoming: Some(req.buf().to_vec()),
            late_offer: offer.is_none(),
            ack: None,
            pinhole: false,
            local_media: None,
            remote_media: offer,
            sdp_session: session,
            local_tag,
        });
        self.out.push_back(Output::Event(UaEvent::Incoming {
            from: from.to_owned(),
        }));
        self.ringing(req, source);
        match self.cfg.mode {
            MediaMode::Pinhole => self.open_pinhole(offer),
            MediaMode::Direct => self.pinhole_opened(now, Some(self.cfg.media)),
        }
    }

    fn ringing(&mut self, req: &Message<'_>, source: SocketAddr) {
        let contact = self.contact_uri();
        let Some(c) = &self.call else {
            return;
        };
        let bytes = Response {
            code: 180,
            reason: "Ringing",
            to_tag: &c.local_tag,
            record_route: true,
            contact: Some(&contact),
            sdp: None,
        }
        .build(req);
        self.send(msg::response_target(req, source), bytes);
    }

    /// The 200 to the INVITE being answered, sent until its ACK.
    fn answer(&mut self, now: Instant) {
        let sdp = self.local_sdp();
        let contact = self.contact_uri();
        let Some(c) = self.call.as_mut() else {
            return;
        };
        let Some(invite) = c.incoming.take() else {
            return;
        };
        let Ok(req) = Message::parse(&invite) else {
            return;
        };
        c.state = CallState::Answered;
        let bytes = Response {
            code: 200,
            reason: "OK",
            to_tag: &c.local_tag,
            record_route: true,
            contact: Some(&contact),
            sdp: sdp.as_deref(),
        }
        .build(&req);
        let to = msg::response_target(&req, self.cfg.proxy);
        let cseq = req.cseq().map_or(0, |(n, _)| n);
        self.reply(now, &req, to, bytes.clone());
        self.ok = Some(OkRetx {
            cseq,
            to,
            bytes,
            next: now + T1,
            interval: T1,
            deadline: now + GIVE_UP,
        });
    }

    /// Answers the INVITE still waiting for its pinhole with an error.
    fn reject_incoming(&mut self, now: Instant, code: u16, reason: &str) {
        let Some(invite) = self.call.as_mut().and_then(|c| c.incoming.take()) else {
            return;
        };
        let Ok(req) = Message::parse(&invite) else {
            return;
        };
        let tag = self
            .call
            .as_ref()
            .map(|c| c.local_tag.clone())
            .unwrap_or_default();
        let bytes = Response {
            code,
            reason,
            to_tag: &tag,
            record_route: false,
            contact: None,
            sdp: None,
        }
        .build(&req);
        let to = msg::response_target(&req, self.cfg.proxy);
        self.reply(now, &req, to, bytes);
    }

    fn ack_received(&mut self, req: &Message<'_>, source: SocketAddr) {
        let cseq = req.cseq().map_or(0, |(n, _)| n);
        if !self.in_our_dialog(req) || self.ok.as_ref().is_none_or(|o| o.cseq != cseq) {
            return; // An ACK to a non-2xx, or a stray one.
        }
        self.ok = None;
        let Some(c) = self.call.as_mut() else {
            return;
        };
        if c.late_offer
            && let Some(m) = msg::media_of(req, source.ip())
        {
            c.remote_media = Some(m);
        }
        c.late_offer = false;
        if c.state == CallState::Answered {
            c.state = CallState::Confirmed;
            match c.remote_media {
                Some(remote_media) => self
                    .out
                    .push_back(Output::Event(UaEvent::Established { remote_media })),
                None => tracing::warn!("call up without a media address from the caller"),
            }
        }
    }

    fn cancel_received(&mut self, now: Instant, req: &Message<'_>, source: SocketAddr) {
        let ours = self.call.as_ref().is_some_and(|c| {
            c.incoming.as_deref().is_some_and(|inv| {
                Message::parse(inv).is_ok_and(|i| {
                    i.call_id() == req.call_id() && msg::branch(&i) == msg::branch(req)
                })
            })
        });
        if !ours {
            // Unknown, or the INVITE has its final answer already.
            let known = self
                .call
                .as_ref()
                .is_some_and(|c| req.call_id() == Some(c.call_id.as_bytes()));
            let (code, reason) = if known {
                (200, "OK")
            } else {
                (481, "Call/Transaction Does Not Exist")
            };
            self.simple_reply(now, req, source, code, reason);
            return;
        }
        self.simple_reply(now, req, source, 200, "OK");
        self.reject_incoming(now, 487, "Request Terminated");
        self.end(EndReason::Cancelled);
    }

    fn response(&mut self, now: Instant, resp: &Message<'_>) -> Result<(), UaError> {
        let status = resp.status().ok_or(UaError::Missing("a status"))?;
        let (_, method) = resp.cseq().ok_or(UaError::Missing("CSeq"))?;
        let branch = msg::branch(resp).unwrap_or_default();
        let tx = self
            .txs
            .iter()
            .position(|t| t.branch.as_bytes() == branch && t.method == method);
        let Some(tx) = tx else {
            // A retransmitted 2xx: our ACK got lost.
            let ack = self.call.as_ref().and_then(|c| {
                (method == "INVITE"
                    && (200..300).contains(&status)
                    && resp.call_id() == Some(c.call_id.as_bytes()))
                .then(|| c.ack.clone())
                .flatten()
            });
            if let Some(ack) = ack {
                self.send(self.cfg.proxy, ack);
            }
            return Ok(());
        };
        if status < 200 {
            if let Some(t) = self.txs.get_mut(tx)
                && t.method == "INVITE"
            {
                t.next = None;
                t.deadline = None;
            }
            if (180..=183).contains(&status)
                && let Some(c) = self.call.as_mut()
                && c.state == CallState::Calling
            {
                c.state = CallState::Ringing;
                self.out.push_back(Output::Event(UaEvent::Ringing));
            }
            return Ok(());
        }
        self.txs.remove(tx);
        match method {
            "INVITE" if status < 300 => self.answered_ok(now, resp),
            "INVITE" => {
                self.ack_error(resp);
                let cancelled = self.state() == CallState::Cancelling && status == 487;
                self.end(if cancelled {
                    EndReason::Cancelled
                } else {
                    EndReason::Rejected(status)
                });
            }
            "BYE" => self.end(EndReason::LocalBye),
            _ => {}
        }
        Ok(())
    }

    /// A 2xx to our INVITE: the dialog is up (§12.1.2): their tag and
    /// Contact, the Record-Route set reversed; ACK it.
    fn answered_ok(&mut self, now: Instant, resp: &Message<'_>) {
        let Some(c) = self.call.as_mut() else {
            return;
        };
        if let Some(to) = msg::text(resp, HeaderName::To) {
            c.remote_party = to.to_owned();
        }
        c.remote_tag = resp.to_tag().map(<[u8]>::to_vec);
        if let Some(target) = msg::contact_uri(resp) {
            c.remote_target = target;
        }
        let mut route = msg::record_route(resp);
        route.reverse();
        c.route = route;
        c.remote_media = msg::media_of(resp, self.cfg.proxy.ip());
        let cancelling = c.state == CallState::Cancelling;
        c.state = CallState::Confirmed;
        let Some((_, ack)) = self.in_dialog("ACK", None) else {
            return;
        };
        if let Some(c) = self.call.as_mut() {
            c.ack = Some(ack.clone());
        }
        self.send(self.cfg.proxy, ack);
        if cancelling {
            // The 200 crossed our CANCEL: the call is up, so end it.
            self.bye(now);
            return;
        }
        match self.remote_media() {
            Some(remote_media) => self
                .out
                .push_back(Output::Event(UaEvent::Established { remote_media })),
            None => tracing::warn!("the answer has no media address"),
        }
    }

    /// The ACK to a non-2xx final response (§17.1.1.3): the INVITE's
    /// Request-URI and branch, the response's To.
    fn ack_error(&mut self, resp: &Message<'_>) {
        let Some(c) = self.call.as_ref() else {
            return;
        };
        let to = msg::text(resp, HeaderName::To).unwrap_or(&c.remote_party);
        let bytes = Request {
            method: "ACK",
            uri: &c.remote_target,
            via: self.cfg.sip,
            branch: &c.invite_branch,
            from: &c.local_party,
            to,
            call_id: &c.call_id,
            cseq: c.cseq,
            route: &[],
            contact: None,
            sdp: None,
        }
        .build();
        self.send(self.cfg.proxy, bytes);
    }
}

#[cfg(test)]
mod tests;
