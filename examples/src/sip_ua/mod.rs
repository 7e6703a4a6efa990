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
//!     transport: pinhole_core::types::Transport::Udp,
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

// The layers, bottom up: `msg` writes and reads the SIP text,
// `transaction` retransmits and matches, `dialog` keeps the call and its
// requests, `media` the pinhole and the SDP.
mod dialog;
mod media;
mod msg;
mod transaction;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use pinhole_core::client::PinholeRequest;
use pinhole_core::types::Transport;
use pinhole_sip::Message;

use dialog::Call;
use transaction::{Answered, ClientTx, OkRetx};

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
    /// The transport our Via names (the driver carries the messages).
    pub transport: Transport,
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

impl UaError {
    /// A stable snake_case label of the variant, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Busy => "busy",
            Self::NoCall => "no_call",
            Self::NotYet => "not_yet",
            Self::BadUri(_) => "bad_uri",
            Self::Parse(_) => "parse",
            Self::Missing(_) => "missing",
        }
    }
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
        self.start_media(now, None);
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

    fn send(&mut self, to: SocketAddr, bytes: Vec<u8>) {
        self.out.push_back(Output::Sip { to, bytes });
    }

    /// Ends the call: its pinhole closed, its transactions dropped, the
    /// application told why.
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
}

#[cfg(test)]
mod tests;
