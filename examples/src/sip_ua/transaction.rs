//! The transaction layer (RFC 3261 §17 over UDP): our client
//! transactions retransmitted until answered (timers A/B, E/F), our 2xx
//! retransmitted until its ACK (§13.3.1.4), answers kept for retransmitted
//! requests, and the matching that hands new requests and responses to the
//! dialog layer.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pinhole_sip::Message;

use super::msg::{self, Response};
use super::{CallState, EndReason, Output, Ua, UaError, UaEvent};

/// RFC 3261 T1: the first retransmission interval.
const T1: Duration = Duration::from_millis(500);
/// RFC 3261 T2: the longest interval for non-INVITE requests and 2xx.
const T2: Duration = Duration::from_secs(4);
/// 64·T1: when a transaction gives up, and how long answers are kept to
/// answer retransmissions.
const GIVE_UP: Duration = Duration::from_secs(32);
/// Most answers kept for retransmitted requests.
const ANSWERED_MAX: usize = 32;

/// A client transaction we retransmit (RFC 3261 §17.1 over UDP).
pub(super) struct ClientTx {
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
pub(super) struct OkRetx {
    cseq: u32,
    to: SocketAddr,
    bytes: Vec<u8>,
    next: Instant,
    interval: Duration,
    deadline: Instant,
}

/// An answer kept for the request's retransmissions.
pub(super) struct Answered {
    call_id: Vec<u8>,
    branch: Vec<u8>,
    method: String,
    to: SocketAddr,
    bytes: Vec<u8>,
    until: Instant,
}

impl Ua {
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

    /// Sends a request through the proxy and retransmits it until answered.
    pub(super) fn send_request(
        &mut self,
        now: Instant,
        method: &'static str,
        branch: String,
        bytes: Vec<u8>,
    ) {
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

    /// Sends our 2xx to the INVITE `req` and keeps sending it until its
    /// ACK (§13.3.1.4).
    pub(super) fn send_ok(
        &mut self,
        now: Instant,
        req: &Message<'_>,
        to: SocketAddr,
        bytes: Vec<u8>,
    ) {
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

    /// Whether an ACK with `cseq` acknowledges our 2xx; it stops the 2xx's
    /// retransmission when it does.
    pub(super) fn ok_acked(&mut self, cseq: u32) -> bool {
        if self.ok.as_ref().is_none_or(|o| o.cseq != cseq) {
            return false;
        }
        self.ok = None;
        true
    }

    /// Keeps `bytes`, our answer to `req`, for its retransmissions, and
    /// sends it.
    pub(super) fn reply(
        &mut self,
        now: Instant,
        req: &Message<'_>,
        to: SocketAddr,
        bytes: Vec<u8>,
    ) {
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
    pub(super) fn simple_reply(
        &mut self,
        now: Instant,
        req: &Message<'_>,
        source: SocketAddr,
        code: u16,
        reason: &str,
    ) {
        let tag = format!("{:x}", self.next_id() & 0xffff_ffff);
        let bytes = Response::bare(code, reason, &tag).build(req);
        self.reply(now, req, msg::response_target(req, source), bytes);
    }

    /// A request from `source`: a retransmission of one we answered gets
    /// the same answer again, a new one goes to the dialog layer.
    pub(super) fn request(
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

    /// A response, matched to its client transaction by branch and
    /// method: a provisional one stops an INVITE's retransmission, a final
    /// one ends the transaction and goes to the dialog layer.
    pub(super) fn response(&mut self, now: Instant, resp: &Message<'_>) -> Result<(), UaError> {
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
}
