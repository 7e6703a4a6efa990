//! The sans-IO core of the terminal: one call, H.225.0 call signalling and
//! H.245 (separate, tunnelled, or none with fastStart). Decoded frames in,
//! frames to send and things to do out ([`Output`]); no sockets, no clock.
//!
//! The runner ([`super::run`]) owns the sockets and the timers and feeds
//! the core: [`Call::start`] (caller), [`Call::on_signal`] for each TPKT
//! payload of the call-signalling connection, [`Call::on_h245`] for each
//! of the separate H.245 connection, [`Call::h245_connection`] when an H.245
//! connection is up (the core says whether to keep it),
//! [`Call::h245_connect_failed`], [`Call::hangup`] when the caller's hold
//! time is over and [`Call::force_release`] when the peer did not answer the
//! EndSessionCommand in time; then drains [`Call::poll`].

use std::collections::VecDeque;
use std::net::SocketAddr;

use pinhole_h323_oracle::access;
use pinhole_h323_oracle::build;
use pinhole_h323_oracle::h225::{self, H323UUPDUH323MessageBody as Body};
use pinhole_h323_oracle::h245;

use super::wire::{self, kind};
use super::{Mode, Released, Role};

/// H.245 terminal type of a terminal (H.245 Table C.1: terminal, no MC).
const TERMINAL_TYPE: u8 = 50;

/// What the core asks the runner to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Write this TPKT frame on the call-signalling connection.
    Signal(Vec<u8>),
    /// Write this TPKT frame on the separate H.245 connection.
    H245(Vec<u8>),
    /// Open the H.245 connection to this address (and report it with
    /// [`Call::h245_connection`] or [`Call::h245_connect_failed`]).
    ConnectH245(SocketAddr),
    /// The media destination is known: send RTP to `rtp` (RTCP to `rtcp`).
    Media {
        /// The RTP destination.
        rtp: SocketAddr,
        /// The RTCP destination, when the peer named one.
        rtcp: Option<SocketAddr>,
    },
    /// The call is over: close everything.
    Done(Released),
}

/// How an H.245 connection came up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// We connected to an `h245Address` we were given.
    Connected,
    /// The peer connected to our listener.
    Accepted,
}

/// The H.245 channel of a separate-mode call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Link {
    Down,
    Connecting,
    Up,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Idle,
    Calling,
    Connected,
    /// We sent EndSessionCommand and wait for the peer's.
    Releasing,
    Ended,
}

/// The core's configuration.
#[derive(Clone, Debug)]
pub struct CallConfig {
    /// Caller or callee.
    pub role: Role,
    /// The mode this terminal wants (a callee follows the Setup).
    pub mode: Mode,
    /// Our h323-ID.
    pub alias: String,
    /// The caller's target h323-ID.
    pub target: Option<String>,
    /// Our call-signalling address (`sourceCallSignalAddress`).
    pub signal: SocketAddr,
    /// Our H.245 listener (separate mode).
    pub h245: Option<SocketAddr>,
    /// Caller, separate mode: offer the listener in Setup (`h245Address`);
    /// false waits for the callee's or a proxy's address.
    pub offer_h245: bool,
    /// Our RTP address (RTCP: the next port).
    pub rtp: SocketAddr,
    /// Call reference, call and conference identifiers, MSD number.
    pub seed: u64,
}

/// One call.
#[derive(Debug)]
pub struct Call {
    cfg: CallConfig,
    /// The mode in effect (a callee's follows the Setup).
    mode: Mode,
    rtcp: SocketAddr,
    crv: u16,
    call_id: [u8; 16],
    conf_id: [u8; 16],
    phase: Phase,
    link: Link,
    /// Our `h245Address` went out in some message.
    offered: bool,
    /// H.245 procedures started (TCS and MSD sent).
    h245_started: bool,
    /// H.245 PDUs waiting for the channel or for a carrier message.
    pending: Vec<Vec<u8>>,
    peer_tcs: bool,
    sdn: u32,
    master: Option<bool>,
    channel: u16,
    olc_sent: bool,
    end_sent: bool,
    /// The callee's fastStart answer, repeated up to CONNECT.
    fast_answer: Vec<Vec<u8>>,
    media: Option<(SocketAddr, Option<SocketAddr>)>,
    out: VecDeque<Output>,
    messages: Vec<String>,
    released: Option<Released>,
    peer_alias: Option<String>,
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn guid(state: &mut u64) -> [u8; 16] {
    let mut g = [0u8; 16];
    g[..8].copy_from_slice(&splitmix(state).to_be_bytes());
    g[8..].copy_from_slice(&splitmix(state).to_be_bytes());
    g
}

/// The last alternative of an H.245 message name (`terminalCapabilitySet`).
fn h245_short(m: &h245::MultimediaSystemControlMessage) -> String {
    let n = access::h245_name(m);
    n.rsplit('.').next().unwrap_or(&n).to_owned()
}

fn alias_text(a: &h225::AliasAddress) -> Option<String> {
    match a {
        h225::AliasAddress::h323_ID(s) => Some(String::from_utf16_lossy(&s.clone().into_vec())),
        _ => None,
    }
}

/// H.245 `masterSlaveDetermination` (H.245 §C.2): the larger terminal type
/// is master; equal types compare the status determination numbers modulo
/// 2^24. `None`: indeterminate.
pub(super) fn determine(own_type: u8, own: u32, peer_type: u8, peer: u32) -> Option<bool> {
    if own_type != peer_type {
        return Some(own_type > peer_type);
    }
    match peer.wrapping_sub(own) & 0xff_ffff {
        0 | 0x80_0000 => None,
        d => Some(d < 0x80_0000),
    }
}

impl Call {
    /// A call not started yet.
    pub fn new(cfg: CallConfig) -> Self {
        let mut s = cfg.seed;
        let crv = (splitmix(&mut s) as u16 & 0x7fff).max(1);
        let call_id = guid(&mut s);
        let conf_id = guid(&mut s);
        let sdn = splitmix(&mut s) as u32 & 0xff_ffff;
        let rtcp = SocketAddr::new(cfg.rtp.ip(), cfg.rtp.port().wrapping_add(1));
        Self {
            mode: cfg.mode,
            rtcp,
            crv,
            call_id,
            conf_id,
            phase: Phase::Idle,
            link: Link::Down,
            offered: false,
            h245_started: false,
            pending: Vec::new(),
            peer_tcs: false,
            sdn,
            master: None,
            channel: if cfg.role == Role::Caller { 1 } else { 2 },
            olc_sent: false,
            end_sent: false,
            fast_answer: Vec::new(),
            media: None,
            out: VecDeque::new(),
            messages: Vec::new(),
            released: None,
            peer_alias: None,
            cfg,
        }
    }

    /// The next thing to do.
    pub fn poll(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// The messages sent (`> `) and received (`< `) in order, H.245 ones as
    /// `> h245 openLogicalChannel`, H.245 connection events as `* …`.
    pub fn messages(&self) -> &[String] {
        &self.messages
    }

    /// The mode in effect.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The RTP destination, once known.
    pub fn media_dest(&self) -> Option<SocketAddr> {
        self.media.map(|m| m.0)
    }

    /// Who ended the call, once it ended.
    pub fn released(&self) -> Option<Released> {
        self.released
    }

    /// The other party's h323-ID (the callee: from the Setup).
    pub fn peer_alias(&self) -> Option<&str> {
        self.peer_alias.as_deref()
    }

    /// The call is over.
    pub fn ended(&self) -> bool {
        self.phase == Phase::Ended
    }

    /// The call is connected and our media runs; the caller's hold time
    /// counts from here.
    pub fn media_started(&self) -> bool {
        self.media.is_some()
    }

    fn note(&mut self, s: String) {
        tracing::info!(alias = %self.cfg.alias, "{s}");
        self.messages.push(s);
    }

    fn tunnel(&self) -> bool {
        self.mode == Mode::Tunnel
    }

    fn uses_h245(&self) -> bool {
        self.mode != Mode::FastStart
    }

    fn sent_by_callee(&self) -> bool {
        self.cfg.role == Role::Callee
    }

    // ------------------------------------------------------------ sending

    /// Sends an H.225.0 message: `per` is its `H323-UserInformation`; in
    /// tunnel mode the pending H.245 PDUs ride along in `h245Control`.
    fn send_signal(&mut self, k: u8, name: String, per: Vec<u8>) {
        let per = if self.tunnel() && !self.pending.is_empty() {
            let controls = std::mem::take(&mut self.pending);
            with_h245_control(&per, &controls).unwrap_or_else(|e| {
                tracing::error!("re-encoding with h245Control: {e}");
                per
            })
        } else {
            per
        };
        let ies: Vec<&[u8]> = match k {
            kind::SETUP => vec![&wire::BEARER_CAPABILITY_SPEECH],
            kind::RELEASE_COMPLETE => vec![&wire::CAUSE_NORMAL_CLEARING],
            _ => vec![],
        };
        let q = wire::q931(self.crv, self.sent_by_callee(), k, &ies, &per);
        self.note(format!("> {name}"));
        self.out.push_back(Output::Signal(wire::tpkt(&q)));
    }

    /// Queues an H.245 PDU: on the separate connection once it is up, in
    /// the next H.225.0 message (or a FACILITY) when tunnelling.
    fn send_h245(&mut self, per: Vec<u8>) {
        let name = pinhole_h323_oracle::decode_h245(&per)
            .map(|m| h245_short(&m))
            .unwrap_or_else(|_| "?".into());
        self.note(format!("> h245 {name}"));
        self.pending.push(per);
        self.flush_separate();
    }

    fn flush_separate(&mut self) {
        if self.mode == Mode::Separate && self.link == Link::Up {
            for p in std::mem::take(&mut self.pending) {
                self.out.push_back(Output::H245(wire::tpkt(&p)));
            }
        }
    }

    /// Tunnel mode: H.245 PDUs left without a carrier go in a FACILITY
    /// with an `empty` body (H.323 §8.2.1).
    fn flush_tunnel(&mut self) {
        if self.tunnel() && !self.pending.is_empty() && self.phase != Phase::Ended {
            let per = build::user_information(Body::empty(()), true, &[]);
            self.send_signal(kind::FACILITY, "Facility".into(), per);
        }
    }

    fn own_h245_address(&self) -> Option<SocketAddr> {
        (self.mode == Mode::Separate)
            .then_some(self.cfg.h245)
            .flatten()
    }

    // ------------------------------------------------------------ caller

    /// Caller: sends the Setup.
    pub fn start(&mut self) {
        if self.cfg.role != Role::Caller || self.phase != Phase::Idle {
            return;
        }
        self.phase = Phase::Calling;
        if self.tunnel() {
            // Tunnelled H.245 is up from the Setup on: TCS and MSD ride in it.
            self.start_h245();
        }
        let h245_addr = if self.cfg.offer_h245 {
            self.own_h245_address()
        } else {
            None
        };
        self.offered = h245_addr.is_some();
        let fast_start = if self.mode == Mode::FastStart {
            vec![
                // Forward (we send): our RTCP for the peer's reports.
                build::olc(1, Some(self.rtcp), None, false),
                // Reverse (we receive): our RTP and RTCP.
                build::olc(2, Some(self.rtcp), Some(self.cfg.rtp), true),
            ]
        } else {
            Vec::new()
        };
        let target = self.cfg.target.clone().unwrap_or_default();
        let per = build::setup(
            self.call_id,
            self.conf_id,
            &self.cfg.alias,
            &target,
            h245_addr,
            Some(self.cfg.signal),
            None,
            &fast_start,
            self.tunnel(),
            &[],
        );
        self.send_signal(kind::SETUP, "Setup".into(), per);
    }

    // ------------------------------------------------------------ input

    /// One TPKT payload of the call-signalling connection. A malformed or
    /// foreign message is logged and ignored.
    pub fn on_signal(&mut self, payload: &[u8]) {
        if let Err(e) = self.signal(payload) {
            tracing::warn!(alias = %self.cfg.alias, "call signalling ignored: {e}");
        }
        self.flush_tunnel();
    }

    fn signal(&mut self, payload: &[u8]) -> Result<(), String> {
        if self.phase == Phase::Ended {
            return Err("call already ended".into());
        }
        let h = wire::parse_header(payload)?;
        let per = pinhole_h323_oracle::q931_user_user(payload)?;
        let ui = pinhole_h323_oracle::decode_user_information(per)?;
        let setup = h.kind == kind::SETUP && self.cfg.role == Role::Callee;
        if setup && self.phase != Phase::Idle {
            return Err("a second Setup".into());
        }
        if !setup {
            if h.crv != self.crv || h.from_destination == self.sent_by_callee() {
                return Err(format!(
                    "call reference {}{} is not this call's",
                    h.crv,
                    if h.from_destination {
                        " (from destination)"
                    } else {
                        ""
                    }
                ));
            }
            if self.phase == Phase::Idle {
                return Err("no call yet".into());
            }
        }
        let mut name = wire::kind_name(h.kind);
        if let Body::facility(f) = &ui.h323_uu_pdu.h323_message_body
            && let h225::FacilityReason::startH245(()) = f.reason
        {
            name.push_str("(startH245)");
        }
        self.note(format!("< {name}"));
        match (self.cfg.role, h.kind) {
            (Role::Callee, kind::SETUP) => self.on_setup(h.crv, &ui),
            (_, kind::RELEASE_COMPLETE) => {
                self.end(Released::Remote);
                return Ok(());
            }
            (
                _,
                kind::CALL_PROCEEDING
                | kind::ALERTING
                | kind::PROGRESS
                | kind::CONNECT
                | kind::FACILITY,
            ) => {
                self.h245_address_from(&ui);
                if self.cfg.role == Role::Caller {
                    self.fast_start_answer(&ui);
                    if h.kind == kind::CONNECT && self.phase == Phase::Calling {
                        self.phase = Phase::Connected;
                        if self.tunnel() && !access::h245_tunnelling(&ui) {
                            tracing::warn!(
                                "CONNECT without h245Tunneling: the peer does not tunnel"
                            );
                        }
                    }
                }
            }
            (_, kind::STATUS_ENQUIRY | kind::STATUS) => {}
            (_, other) => tracing::info!("Q.931 message 0x{other:02x} ignored"),
        }
        // The callee's Setup handling took its tunnelled H.245 already.
        if self.tunnel() && !setup {
            for c in access::h245_control(&ui) {
                self.on_h245_pdu(&c);
            }
        }
        Ok(())
    }

    /// Separate mode: an `h245Address` we receive is the address to open
    /// the H.245 connection to, unless we have one (H.225.0 §8.2.3).
    fn h245_address_from(&mut self, ui: &h225::H323UserInformation) {
        if self.mode != Mode::Separate || self.link != Link::Down {
            return;
        }
        if let Some(a) = access::h245_address(ui) {
            self.link = Link::Connecting;
            self.out.push_back(Output::ConnectH245(a));
        }
    }

    /// Caller, fastStart: the callee's accepted channels. Our RTP goes to
    /// the `mediaChannel` of the accepted forward channel (ours, toward the
    /// callee). The first answer counts; a repeat is ignored.
    fn fast_start_answer(&mut self, ui: &h225::H323UserInformation) {
        if self.mode != Mode::FastStart || self.media.is_some() {
            return;
        }
        for e in access::fast_start(ui) {
            let olc = match pinhole_h323_oracle::decode_olc(&e) {
                Ok(o) => o,
                Err(err) => {
                    tracing::warn!("fastStart element ignored: {err}");
                    continue;
                }
            };
            let (_, fwd, rev) = access::olc_media(&olc);
            if rev.is_none()
                && let Some((Some(rtp), rtcp)) = fwd
            {
                self.start_media(rtp, rtcp);
                return;
            }
        }
    }

    /// Callee: answers a Setup with CALL PROCEEDING, ALERTING and CONNECT.
    fn on_setup(&mut self, crv: u16, ui: &h225::H323UserInformation) {
        let Body::setup(s) = &ui.h323_uu_pdu.h323_message_body else {
            return;
        };
        self.crv = crv;
        self.phase = Phase::Calling;
        if let Some(c) = access::call_identifier(ui) {
            self.call_id = c;
        }
        self.conf_id = *s.conference_id.0.0;
        self.peer_alias = s
            .source_address
            .as_ref()
            .and_then(|v| v.iter().find_map(alias_text));
        let dest = s
            .destination_address
            .as_ref()
            .and_then(|v| v.iter().find_map(alias_text));
        if dest.as_deref() != Some(self.cfg.alias.as_str()) {
            tracing::warn!(?dest, own = %self.cfg.alias, "Setup for another alias: answered anyway");
        }
        // The mode follows the caller's Setup.
        let fast = access::fast_start(ui);
        let mode = if !fast.is_empty() {
            Mode::FastStart
        } else if access::h245_tunnelling(ui) {
            Mode::Tunnel
        } else {
            Mode::Separate
        };
        if mode != self.mode {
            tracing::info!(wanted = ?self.mode, setup = ?mode, "following the Setup's mode");
            self.mode = mode;
        }
        if self.mode == Mode::FastStart {
            self.answer_fast_start(&fast);
        }
        if self.tunnel() {
            // Our TCS and MSD, and the answers to what the Setup tunnels,
            // ride in the CALL PROCEEDING.
            self.start_h245();
            for c in access::h245_control(ui) {
                self.on_h245_pdu(&c);
            }
        }
        // A Setup with h245Address: we connect to it.
        self.h245_address_from(ui);
        let tunnel = self.tunnel();
        let cp = build::call_proceeding(self.call_id, None, &self.fast_answer, tunnel);
        self.send_signal(kind::CALL_PROCEEDING, "CallProceeding".into(), cp);
        let al = build::alerting(self.call_id, None, &self.fast_answer, tunnel);
        self.send_signal(kind::ALERTING, "Alerting".into(), al);
        // CONNECT carries our h245Address unless an H.245 connection is
        // up or being opened.
        let h245_addr = if self.link == Link::Down {
            self.own_h245_address()
        } else {
            None
        };
        self.offered |= h245_addr.is_some();
        let co = build::connect(
            self.call_id,
            self.conf_id,
            h245_addr,
            &self.fast_answer,
            tunnel,
            &[],
        );
        self.send_signal(kind::CONNECT, "Connect".into(), co);
        self.phase = Phase::Connected;
    }

    /// Callee, fastStart: accepts the caller's forward proposal (our
    /// `mediaChannel` and `mediaControlChannel` filled in) and its reverse
    /// proposal (its `mediaChannel` echoed, our `mediaControlChannel`); our
    /// RTP goes to the caller's reverse `mediaChannel`.
    fn answer_fast_start(&mut self, proposals: &[Vec<u8>]) {
        let mut forward = None;
        let mut reverse = None;
        for e in proposals {
            let olc = match pinhole_h323_oracle::decode_olc(e) {
                Ok(o) => o,
                Err(err) => {
                    tracing::warn!("fastStart proposal ignored: {err}");
                    continue;
                }
            };
            match access::olc_media(&olc) {
                (ch, Some(_), None) if forward.is_none() => forward = Some(ch),
                (ch, None, Some((Some(rtp), rtcp))) if reverse.is_none() => {
                    reverse = Some((ch, rtp, rtcp));
                }
                _ => {}
            }
        }
        let (Some(fwd), Some((rev, rtp, rtcp))) = (forward, reverse) else {
            tracing::warn!("fastStart without a forward and a reverse G.711 proposal: refused");
            return;
        };
        self.fast_answer = vec![
            build::olc(fwd, Some(self.rtcp), Some(self.cfg.rtp), false),
            build::olc(rev, Some(self.rtcp), Some(rtp), true),
        ];
        self.start_media(rtp, rtcp);
    }

    fn start_media(&mut self, rtp: SocketAddr, rtcp: Option<SocketAddr>) {
        if self.media.is_some() {
            return;
        }
        self.note(format!("* media to {rtp}"));
        self.media = Some((rtp, rtcp));
        self.out.push_back(Output::Media { rtp, rtcp });
    }

    // ------------------------------------------------------------ H.245

    /// The H.245 channel is usable: capabilities and master/slave
    /// determination go out.
    fn start_h245(&mut self) {
        if self.h245_started {
            return;
        }
        self.h245_started = true;
        self.send_h245(build::tcs(1));
        self.send_h245(build::msd(TERMINAL_TYPE, self.sdn));
    }

    /// An H.245 connection is up (separate mode). `true`: it is the call's
    /// H.245 channel; `false`: there is one already, close this one.
    pub fn h245_connection(&mut self, origin: Origin, peer: SocketAddr) -> bool {
        if self.link == Link::Up || self.phase == Phase::Ended || self.mode != Mode::Separate {
            tracing::info!(%peer, ?origin, "a second H.245 connection: closed");
            return false;
        }
        self.link = Link::Up;
        self.note(format!(
            "* h245 {} {peer}",
            match origin {
                Origin::Connected => "connected to",
                Origin::Accepted => "accepted from",
            }
        ));
        self.start_h245();
        self.flush_separate();
        true
    }

    /// Opening the H.245 connection failed: we offer our own address
    /// instead (FACILITY startH245), if we have not.
    pub fn h245_connect_failed(&mut self, to: SocketAddr, why: &str) {
        tracing::warn!(%to, "H.245 connection failed: {why}");
        if self.link != Link::Connecting {
            return;
        }
        self.link = Link::Down;
        if !self.offered
            && let Some(own) = self.own_h245_address()
        {
            self.offered = true;
            let per = build::facility(self.call_id, self.conf_id, None, Some(own), &[], false, &[]);
            self.send_signal(kind::FACILITY, "Facility(startH245)".into(), per);
        }
    }

    /// The separate H.245 connection closed.
    pub fn h245_closed(&mut self) {
        if self.link == Link::Up {
            self.note("* h245 closed".into());
            self.link = Link::Down;
        }
    }

    /// One TPKT payload of the separate H.245 connection.
    pub fn on_h245(&mut self, payload: &[u8]) {
        if self.phase == Phase::Ended {
            return;
        }
        self.on_h245_pdu(payload);
        self.flush_tunnel();
    }

    fn on_h245_pdu(&mut self, per: &[u8]) {
        use h245::MultimediaSystemControlMessage as M;
        let msg = match pinhole_h323_oracle::decode_h245(per) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(alias = %self.cfg.alias, "H.245 message ignored: {e}");
                return;
            }
        };
        self.note(format!("< h245 {}", h245_short(&msg)));
        if !self.h245_started {
            // A tunnelled message before we started (cannot happen with
            // our peers): start now, the peer is there.
            self.start_h245();
        }
        match msg {
            M::request(h245::RequestMessage::terminalCapabilitySet(t)) => {
                self.peer_tcs = true;
                self.send_h245(build::tcs_ack(t.sequence_number.0));
            }
            M::request(h245::RequestMessage::masterSlaveDetermination(m)) => {
                let master = determine(
                    TERMINAL_TYPE,
                    self.sdn,
                    m.terminal_type,
                    m.status_determination_number,
                )
                // Indeterminate (equal numbers): the caller is master.
                .unwrap_or(self.cfg.role == Role::Caller);
                self.master = Some(master);
                self.send_h245(build::msd_ack(!master));
            }
            M::response(h245::ResponseMessage::masterSlaveDeterminationAck(a)) => {
                let master = matches!(
                    a.decision,
                    h245::MasterSlaveDeterminationAckDecision::master(())
                );
                match self.master {
                    None => self.master = Some(master),
                    Some(m) if m != master => {
                        tracing::warn!(ours = m, theirs = master, "MSD decisions differ");
                    }
                    Some(_) => {}
                }
            }
            M::request(h245::RequestMessage::openLogicalChannel(olc)) => {
                let ch = olc.forward_logical_channel_number.0;
                if self.phase == Phase::Releasing {
                    tracing::info!(ch, "OLC while releasing: not acknowledged");
                } else {
                    self.send_h245(build::olc_ack(ch, self.cfg.rtp, self.rtcp));
                }
            }
            M::response(h245::ResponseMessage::openLogicalChannelAck(ack)) => {
                let (ch, (rtp, rtcp)) = access::olc_ack_media(&ack);
                match rtp {
                    Some(rtp) if ch == self.channel => self.start_media(rtp, rtcp),
                    _ => tracing::warn!(ch, "OLC Ack without mediaChannel or for another channel"),
                }
            }
            M::request(h245::RequestMessage::closeLogicalChannel(c)) => {
                self.send_h245(build::close_logical_channel_ack(
                    c.forward_logical_channel_number.0,
                ));
            }
            M::command(h245::CommandMessage::endSessionCommand(_)) => {
                if !self.end_sent {
                    self.end_sent = true;
                    self.send_h245(build::end_session_command());
                }
                if self.phase == Phase::Releasing {
                    // We asked for the end; the peer agreed.
                    self.release(Released::Local);
                }
            }
            _ => {}
        }
        self.maybe_open();
    }

    /// Opens our logical channel once the peer's capabilities are known and
    /// master/slave determined.
    fn maybe_open(&mut self) {
        if self.olc_sent
            || !self.peer_tcs
            || self.master.is_none()
            || matches!(self.phase, Phase::Releasing | Phase::Ended)
        {
            return;
        }
        self.olc_sent = true;
        self.send_h245(build::olc_msg(self.channel, Some(self.rtcp), None, false));
    }

    // ------------------------------------------------------------ release

    /// Ends the call from our side: CloseLogicalChannel and
    /// EndSessionCommand first when H.245 runs (RELEASE COMPLETE follows
    /// the peer's EndSessionCommand, or [`Call::force_release`]), else
    /// RELEASE COMPLETE at once.
    pub fn hangup(&mut self) {
        if matches!(self.phase, Phase::Releasing | Phase::Ended) {
            return;
        }
        let h245_up = self.uses_h245()
            && self.h245_started
            && (self.tunnel() || self.link == Link::Up)
            && !self.end_sent;
        if h245_up {
            self.phase = Phase::Releasing;
            if self.olc_sent {
                self.send_h245(build::close_logical_channel(self.channel));
            }
            self.end_sent = true;
            self.send_h245(build::end_session_command());
            self.flush_tunnel();
        } else {
            self.release(Released::Local);
        }
    }

    /// The peer did not answer our EndSessionCommand: RELEASE COMPLETE now.
    pub fn force_release(&mut self) {
        if self.phase != Phase::Ended {
            tracing::warn!("no EndSessionCommand from the peer: releasing");
            self.release(Released::Local);
        }
    }

    /// The overall timeout: RELEASE COMPLETE if the call got anywhere.
    pub fn timeout(&mut self) {
        if matches!(self.phase, Phase::Idle | Phase::Ended) {
            self.phase = Phase::Ended;
            self.released = Some(Released::Timeout);
            self.out.push_back(Output::Done(Released::Timeout));
        } else {
            self.release(Released::Timeout);
        }
    }

    /// The call-signalling connection closed under us.
    pub fn signal_closed(&mut self) {
        if self.phase != Phase::Ended {
            self.note("* call signalling closed".into());
            self.end(Released::Closed);
        }
    }

    fn release(&mut self, why: Released) {
        // Whatever H.245 is still queued goes with the RELEASE COMPLETE.
        let per = build::release_complete(self.call_id, self.tunnel());
        self.send_signal(kind::RELEASE_COMPLETE, "ReleaseComplete".into(), per);
        self.end(why);
    }

    fn end(&mut self, why: Released) {
        self.phase = Phase::Ended;
        self.pending.clear();
        self.released = Some(why);
        self.out.push_back(Output::Done(why));
    }
}

/// `per` (an `H323-UserInformation`) with `h245Control` set to `controls`.
fn with_h245_control(per: &[u8], controls: &[Vec<u8>]) -> Result<Vec<u8>, String> {
    let mut ui = pinhole_h323_oracle::decode_user_information(per)?;
    ui.h323_uu_pdu.h245_control = Some(
        controls
            .iter()
            .map(|c| pinhole_h323_oracle::rasn::types::OctetString::from(c.clone()))
            .collect(),
    );
    pinhole_h323_oracle::encode(&ui)
}
