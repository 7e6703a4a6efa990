//! A minimal MGCP call agent, sans-IO: it sends commands, retransmits them
//! until answered (RFC 3435 §3.5.3: same transaction id, the interval
//! doubling from 500 ms), acknowledges final responses with `K:` on its
//! next command, answers the gateways' NTFY and RSIP with 200, and runs one
//! call at a time:
//!
//! - [`CallAgent::connect`]: two endpoints, each behind its own address
//!   (the MPR, or a gateway directly): CRCX A `recvonly` without a
//!   description, CRCX B `sendrecv` with A's, MDCX A `sendrecv` with B's
//!   (Figs. 9 and 10, steps 810–885 and 910–955);
//! - [`CallAgent::connect_public`]: one endpoint and a public party's
//!   description (a media server, a public phone): one CRCX with it.
//!
//! [`CallAgent::hangup`] deletes every connection the call made (DLCX).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pinhole_mgcp::{Command, Message};

/// A command to send, before its transaction id is chosen.
#[derive(Clone, Debug)]
struct Cmd {
    verb: &'static str,
    endpoint: String,
    params: Vec<(&'static str, String)>,
    sdp: Option<Vec<u8>>,
}

impl Cmd {
    fn new(verb: &'static str, endpoint: &str) -> Self {
        Self {
            verb,
            endpoint: endpoint.to_owned(),
            params: Vec::new(),
            sdp: None,
        }
    }

    fn param(mut self, name: &'static str, value: &str) -> Self {
        self.params.push((name, value.to_owned()));
        self
    }

    fn sdp(mut self, sdp: &[u8]) -> Self {
        self.sdp = Some(sdp.to_vec());
        self
    }

    fn to_bytes(&self, txid: u32, ack: Option<&str>) -> Vec<u8> {
        let mut b = Command::builder(self.verb, txid, &self.endpoint);
        if let Some(k) = ack {
            b = b.param("K", k);
        }
        for (n, v) in &self.params {
            b = b.param(n, v);
        }
        if let Some(s) = &self.sdp {
            b = b.sdp(s);
        }
        b.to_bytes()
    }
}

use super::sdp_media;

/// The first retransmission interval (RFC 3435 §3.5.3 suggests 200–500 ms).
const FIRST_RETRY: Duration = Duration::from_millis(500);
/// Attempts per command before the call fails.
const ATTEMPTS: u32 = 6;

/// An endpoint and where its commands go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leg {
    /// `local@domain`, e.g. `aaln/1@gw1.corp1.example`.
    pub endpoint: String,
    /// Where to send its commands: the MPR, or the gateway itself.
    pub via: SocketAddr,
}

impl Leg {
    /// An endpoint reached through `via`.
    pub fn new(endpoint: &str, via: SocketAddr) -> Self {
        Self {
            endpoint: endpoint.to_owned(),
            via,
        }
    }
}

/// What the call agent reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CaEvent {
    /// Both ends have each other's description. `a` and `b` are the RTP
    /// addresses the descriptions name (relay addresses, through an MPR);
    /// with [`CallAgent::connect_public`], `b` is the public party's.
    Connected {
        /// Where A receives.
        a: SocketAddr,
        /// Where B receives.
        b: SocketAddr,
    },
    /// Every connection was deleted.
    Ended,
    /// A step failed: the command and its response code (`None`: no
    /// response after every retransmission).
    Failed {
        /// The step, e.g. `"CRCX A"`.
        step: &'static str,
        /// The response code.
        code: Option<u16>,
    },
    /// A gateway sent a command (NTFY, RSIP, …); it was answered 200.
    Notified {
        /// Where it came from.
        from: SocketAddr,
        /// Its verb.
        verb: String,
        /// Its endpoint.
        endpoint: String,
    },
}

/// Where a call is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// No call.
    Idle,
    /// Connecting.
    Connecting,
    /// Connected.
    Up,
    /// Deleting connections.
    Ending,
}

#[derive(Clone, Debug)]
struct Pending {
    step: &'static str,
    txid: u32,
    to: SocketAddr,
    bytes: Vec<u8>,
    attempts: u32,
    next: Instant,
    interval: Duration,
}

#[derive(Clone, Debug)]
struct Call {
    id: String,
    a: Leg,
    b: Option<Leg>,
    /// The public party's description (connect_public).
    public_sdp: Option<Vec<u8>>,
    a_conn: Option<String>,
    b_conn: Option<String>,
    a_sdp: Option<Vec<u8>>,
    b_sdp: Option<Vec<u8>>,
}

/// A one-call MGCP call agent.
#[derive(Debug)]
pub struct CallAgent {
    local: SocketAddr,
    next_txid: u32,
    call: Option<Call>,
    state: State,
    pending: Vec<Pending>,
    /// Final responses to acknowledge on the next command (§3.5.1 `K:`).
    to_ack: Vec<u32>,
    out: VecDeque<(SocketAddr, Vec<u8>)>,
    events: VecDeque<CaEvent>,
    /// Commands the gateways sent, answered (transaction ids seen, for
    /// answering retransmissions the same).
    answered: VecDeque<(SocketAddr, u32, Vec<u8>)>,
}

impl CallAgent {
    /// A call agent on `local`; `seed` picks the first transaction id.
    pub fn new(local: SocketAddr, seed: u32) -> Self {
        Self {
            local,
            next_txid: 1000 + seed % 100_000,
            call: None,
            state: State::Idle,
            pending: Vec::new(),
            to_ack: Vec::new(),
            out: VecDeque::new(),
            events: VecDeque::new(),
            answered: VecDeque::new(),
        }
    }

    /// Our address.
    pub fn local(&self) -> SocketAddr {
        self.local
    }

    /// Where the call is.
    pub fn state(&self) -> State {
        self.state
    }

    /// The descriptions as the call agent last saw them: A's and B's
    /// (B's is the public party's with [`CallAgent::connect_public`]).
    pub fn descriptions(&self) -> (Option<&[u8]>, Option<&[u8]>) {
        match &self.call {
            Some(c) => (
                c.a_sdp.as_deref(),
                c.b_sdp.as_deref().or(c.public_sdp.as_deref()),
            ),
            None => (None, None),
        }
    }

    /// Connects endpoints `a` and `b` in call `call_id` (CRCX A, CRCX B,
    /// MDCX A). Errors if a call is in progress.
    pub fn connect(&mut self, now: Instant, call_id: &str, a: Leg, b: Leg) -> Result<(), Busy> {
        self.start(now, call_id, a, Some(b), None)
    }

    /// Connects endpoint `a` to a public party whose description is
    /// `remote_sdp` (one CRCX `sendrecv` carrying it).
    pub fn connect_public(
        &mut self,
        now: Instant,
        call_id: &str,
        a: Leg,
        remote_sdp: Vec<u8>,
    ) -> Result<(), Busy> {
        self.start(now, call_id, a, None, Some(remote_sdp))
    }

    fn start(
        &mut self,
        now: Instant,
        call_id: &str,
        a: Leg,
        b: Option<Leg>,
        public_sdp: Option<Vec<u8>>,
    ) -> Result<(), Busy> {
        if self.state != State::Idle {
            return Err(Busy);
        }
        let call = Call {
            id: call_id.to_owned(),
            a,
            b,
            public_sdp,
            a_conn: None,
            b_conn: None,
            a_sdp: None,
            b_sdp: None,
        };
        let cmd = Cmd::new("CRCX", &call.a.endpoint)
            .param("C", &call.id)
            .param("L", "p:20, a:PCMU");
        let (cmd, to) = match &call.public_sdp {
            Some(sdp) => (cmd.param("M", "sendrecv").sdp(sdp), call.a.via),
            None => (cmd.param("M", "recvonly"), call.a.via),
        };
        self.call = Some(call);
        self.state = State::Connecting;
        self.send(now, "CRCX A", to, cmd);
        Ok(())
    }

    /// Deletes the call's connections (DLCX each). Nothing happens without
    /// a call.
    pub fn hangup(&mut self, now: Instant) {
        let Some(call) = self.call.clone() else {
            return;
        };
        self.pending.clear();
        self.state = State::Ending;
        let mut sent = false;
        if let Some(conn) = &call.a_conn {
            let cmd = Cmd::new("DLCX", &call.a.endpoint)
                .param("C", &call.id)
                .param("I", conn);
            self.send(now, "DLCX A", call.a.via, cmd);
            sent = true;
        }
        if let (Some(b), Some(conn)) = (&call.b, &call.b_conn) {
            let cmd = Cmd::new("DLCX", &b.endpoint)
                .param("C", &call.id)
                .param("I", conn);
            self.send(now, "DLCX B", b.via, cmd);
            sent = true;
        }
        if !sent {
            self.finish(CaEvent::Ended);
        }
    }

    /// A datagram arrived from `from`.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        let Ok(msgs) = pinhole_mgcp::parse_datagram(bytes) else {
            tracing::debug!(%from, "call agent: malformed MGCP dropped");
            return;
        };
        for m in &msgs {
            match (m.command(), m.code()) {
                (Some(c), _) => self.gateway_command(from, m, c.verb.as_str(), c.endpoint.text),
                (None, Some(code)) => self.response(now, from, m, code),
                (None, None) => {}
            }
        }
    }

    fn gateway_command(&mut self, from: SocketAddr, m: &Message<'_>, verb: &str, endpoint: &str) {
        let txid = m.transaction_id();
        if let Some((_, _, r)) = self
            .answered
            .iter()
            .find(|(f, t, _)| *f == from && *t == txid)
        {
            // A retransmission: the same answer (§3.5).
            self.out.push_back((from, r.clone()));
            return;
        }
        let r = pinhole_mgcp::response(200, txid, Some("OK"), &[], None);
        self.out.push_back((from, r.clone()));
        self.answered.push_back((from, txid, r));
        if self.answered.len() > 64 {
            self.answered.pop_front();
        }
        self.events.push_back(CaEvent::Notified {
            from,
            verb: verb.to_owned(),
            endpoint: endpoint.to_owned(),
        });
    }

    fn response(&mut self, now: Instant, from: SocketAddr, m: &Message<'_>, code: u16) {
        let txid = m.transaction_id();
        let Some(i) = self
            .pending
            .iter()
            .position(|p| p.txid == txid && p.to == from)
        else {
            return; // late or duplicate
        };
        if (100..200).contains(&code) {
            // Provisional: keep waiting, but stop retransmitting so often.
            if let Some(p) = self.pending.get_mut(i) {
                p.next = now + Duration::from_secs(2);
            }
            return;
        }
        let p = self.pending.remove(i);
        self.to_ack.push(txid);
        let sdp = m
            .sdp_span()
            .and_then(|s| m.buf().get(s))
            .map(<[u8]>::to_vec);
        let conn = m.connection_id().map(str::to_owned);
        if !(200..300).contains(&code) {
            if p.step.starts_with("DLCX") {
                // The connection is gone either way (e.g. 515 unknown).
                self.deleted(p.step);
            } else {
                self.fail(p.step, Some(code));
            }
            return;
        }
        self.step_done(now, p.step, conn, sdp);
    }

    fn step_done(
        &mut self,
        now: Instant,
        step: &'static str,
        conn: Option<String>,
        sdp: Option<Vec<u8>>,
    ) {
        let Some(call) = self.call.as_mut() else {
            return;
        };
        match step {
            "CRCX A" => {
                call.a_conn = conn;
                call.a_sdp = sdp;
                let Some(a_sdp) = call.a_sdp.clone() else {
                    return self.fail(step, None);
                };
                if call.public_sdp.is_some() {
                    return self.connected();
                }
                let Some(b) = call.b.clone() else {
                    return self.fail(step, None);
                };
                let cmd = Cmd::new("CRCX", &b.endpoint)
                    .param("C", &call.id)
                    .param("L", "p:20, a:PCMU")
                    .param("M", "sendrecv")
                    .sdp(&a_sdp);
                self.send(now, "CRCX B", b.via, cmd);
            }
            "CRCX B" => {
                call.b_conn = conn;
                call.b_sdp = sdp;
                let (Some(b_sdp), Some(a_conn)) = (call.b_sdp.clone(), call.a_conn.clone()) else {
                    return self.fail(step, None);
                };
                let cmd = Cmd::new("MDCX", &call.a.endpoint)
                    .param("C", &call.id)
                    .param("I", &a_conn)
                    .param("M", "sendrecv")
                    .sdp(&b_sdp);
                let via = call.a.via;
                self.send(now, "MDCX A", via, cmd);
            }
            "MDCX A" => self.connected(),
            _ => self.deleted(step),
        }
    }

    fn connected(&mut self) {
        let Some(call) = &self.call else { return };
        let a = call.a_sdp.as_deref().and_then(sdp_media);
        let b = call
            .b_sdp
            .as_deref()
            .or(call.public_sdp.as_deref())
            .and_then(sdp_media);
        match (a, b) {
            (Some(a), Some(b)) => {
                self.state = State::Up;
                self.events.push_back(CaEvent::Connected { a, b });
            }
            _ => self.fail("SDP", None),
        }
    }

    fn deleted(&mut self, step: &'static str) {
        if let Some(call) = self.call.as_mut() {
            match step {
                "DLCX A" => call.a_conn = None,
                "DLCX B" => call.b_conn = None,
                _ => {}
            }
        }
        if self.pending.is_empty() {
            self.finish(CaEvent::Ended);
        }
    }

    fn fail(&mut self, step: &'static str, code: Option<u16>) {
        self.pending.clear();
        self.finish(CaEvent::Failed { step, code });
    }

    fn finish(&mut self, ev: CaEvent) {
        self.call = None;
        self.state = State::Idle;
        self.events.push_back(ev);
    }

    /// Time passed: retransmit what is unanswered, fail what gave up.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut gave_up = None;
        for p in &mut self.pending {
            if p.next > now {
                continue;
            }
            if p.attempts >= ATTEMPTS {
                gave_up = Some(p.step);
                continue;
            }
            p.attempts += 1;
            p.interval = (p.interval * 2).min(Duration::from_secs(4));
            p.next = now + p.interval;
            self.out.push_back((p.to, p.bytes.clone()));
        }
        if let Some(step) = gave_up {
            if step.starts_with("DLCX") {
                self.pending.retain(|p| p.step != step);
                self.deleted(step);
            } else {
                self.fail(step, None);
            }
        }
    }

    /// When to call [`CallAgent::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending.iter().map(|p| p.next).min()
    }

    /// The next datagram to send: (destination, bytes).
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.out.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<CaEvent> {
        self.events.pop_front()
    }

    fn send(&mut self, now: Instant, step: &'static str, to: SocketAddr, cmd: Cmd) {
        let txid = self.next_txid;
        self.next_txid = if self.next_txid >= pinhole_mgcp::MAX_TRANSACTION_ID {
            1
        } else {
            self.next_txid + 1
        };
        let ack = ack_list(&self.to_ack);
        self.to_ack.clear();
        let bytes = cmd.to_bytes(txid, ack.as_deref());
        self.out.push_back((to, bytes.clone()));
        self.pending.push(Pending {
            step,
            txid,
            to,
            bytes,
            attempts: 1,
            next: now + FIRST_RETRY,
            interval: FIRST_RETRY,
        });
    }
}

/// The `K:` value acknowledging `ids` (ranges where consecutive).
fn ack_list(ids: &[u32]) -> Option<String> {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while let Some(&first) = ids.get(i) {
        let mut last = first;
        while ids.get(i + 1) == Some(&(last + 1)) {
            last += 1;
            i += 1;
        }
        parts.push(if first == last {
            first.to_string()
        } else {
            format!("{first}-{last}")
        });
        i += 1;
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// A call is already in progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a call is already in progress")]
pub struct Busy;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_lists_collapse_runs() {
        assert_eq!(ack_list(&[]), None);
        assert_eq!(ack_list(&[7]).as_deref(), Some("7"));
        assert_eq!(
            ack_list(&[5, 3, 4, 9, 10, 12]).as_deref(),
            Some("3-5, 9-10, 12")
        );
        let k = ack_list(&[5, 3, 4, 9]).unwrap();
        let parsed = pinhole_mgcp::ResponseAck::parse(&k).unwrap();
        assert!(parsed.contains(4) && parsed.contains(9) && !parsed.contains(6));
    }
}
