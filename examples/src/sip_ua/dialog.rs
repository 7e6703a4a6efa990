//! The dialog layer (RFC 3261 §12-§15): the one call's state, the
//! requests that create, change and end it, and the answers to them.

use std::net::SocketAddr;
use std::time::Instant;

use pinhole_core::types::Transport;
use pinhole_sip::{HeaderName, Message};

use super::media::media_of;
use super::msg::{self, Request, Response};
use super::{CallState, EndReason, Output, Ua, UaEvent};

/// The call (early or confirmed dialog).
pub(super) struct Call {
    pub(super) state: CallState,
    pub(super) call_id: String,
    pub(super) local_tag: String,
    /// Their tag, once known (the callee's from the 2xx To).
    pub(super) remote_tag: Option<Vec<u8>>,
    /// From (ours) and To (theirs) of our requests, tags included once known.
    pub(super) local_party: String,
    pub(super) remote_party: String,
    /// The peer's Contact (our requests' Request-URI), and the route set.
    pub(super) remote_target: String,
    pub(super) route: Vec<String>,
    /// Our latest CSeq.
    pub(super) cseq: u32,
    /// Caller: the INVITE's branch and CSeq (CANCEL and non-2xx ACK reuse them).
    pub(super) invite_branch: String,
    /// Callee: the INVITE being answered.
    pub(super) incoming: Option<Vec<u8>>,
    /// Callee: the INVITE had no offer; ours goes in the 200, theirs in the ACK.
    pub(super) late_offer: bool,
    /// Our ACK to the 2xx, sent again for its retransmissions.
    pub(super) ack: Option<Vec<u8>>,
    /// A media pinhole was asked for (closed when the call ends).
    pub(super) pinhole: bool,
    /// What our SDP names.
    pub(super) local_media: Option<SocketAddr>,
    /// What theirs names.
    pub(super) remote_media: Option<SocketAddr>,
    /// Our SDP's session id; its version stays 1 because our media
    /// address never changes within a call (RFC 3264 §8).
    pub(super) sdp_session: u64,
}

impl Call {
    /// A request of our INVITE's transaction (RFC 3261 §9.1, §17.1.1.3):
    /// the INVITE's Request-URI, Call-ID, From and CSeq number, no Route;
    /// `to` is the To of the response an ACK answers.
    fn invite_tx_request(
        &self,
        via: (SocketAddr, Transport),
        method: &str,
        branch: &str,
        to: &str,
        contact: Option<&str>,
        sdp: Option<&str>,
    ) -> Vec<u8> {
        Request {
            method,
            uri: &self.remote_target,
            via,
            branch,
            from: &self.local_party,
            to,
            call_id: &self.call_id,
            cseq: self.cseq,
            route: &[],
            contact,
            sdp,
        }
        .build()
    }
}

impl Ua {
    /// Our INVITE, its offer naming the media address just settled.
    pub(super) fn send_invite(&mut self, now: Instant) {
        let sdp = self.local_sdp();
        let branch = self.branch();
        let contact = self.contact_uri();
        let Some(c) = self.call.as_mut() else {
            return;
        };
        c.state = CallState::Calling;
        c.invite_branch.clone_from(&branch);
        let bytes = c.invite_tx_request(
            (self.cfg.sip, self.cfg.transport),
            "INVITE",
            &branch,
            &c.remote_party,
            Some(&contact),
            sdp.as_deref(),
        );
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
            via: (self.cfg.sip, self.cfg.transport),
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

    pub(super) fn bye(&mut self, now: Instant) {
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
    pub(super) fn cancel(&mut self, now: Instant) {
        let Some(c) = self.call.as_mut() else {
            return;
        };
        c.state = CallState::Cancelling;
        let branch = c.invite_branch.clone();
        let bytes = c.invite_tx_request(
            (self.cfg.sip, self.cfg.transport),
            "CANCEL",
            &branch,
            &c.remote_party,
            None,
            None,
        );
        // Only a CANCEL's own response ends its transaction: the method
        // keys it apart from the INVITE's, which shares the branch.
        self.send_request(now, "CANCEL", branch, bytes);
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

    pub(super) fn dialog_request(
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
        let remote = media_of(req, source.ip());
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
        self.send_ok(now, req, msg::response_target(req, source), bytes);
    }

    /// A new INVITE: ring at once, then open the pinhole toward the relay
    /// the offer names (a reserve when there is no offer) and answer when
    /// it is open.
    pub(super) fn incoming(&mut self, now: Instant, req: &Message<'_>, source: SocketAddr) {
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
        let offer = media_of(req, source.ip());
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
        self.start_media(now, offer);
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
    pub(super) fn answer(&mut self, now: Instant) {
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
        self.send_ok(now, &req, to, bytes);
    }

    /// Answers the INVITE still waiting for its pinhole with an error.
    pub(super) fn reject_incoming(&mut self, now: Instant, code: u16, reason: &str) {
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
        let bytes = Response::bare(code, reason, &tag).build(&req);
        let to = msg::response_target(&req, self.cfg.proxy);
        self.reply(now, &req, to, bytes);
    }

    pub(super) fn ack_received(&mut self, req: &Message<'_>, source: SocketAddr) {
        let cseq = req.cseq().map_or(0, |(n, _)| n);
        if !self.in_our_dialog(req) || !self.ok_acked(cseq) {
            return; // An ACK to a non-2xx, or a stray one.
        }
        let Some(c) = self.call.as_mut() else {
            return;
        };
        if c.late_offer
            && let Some(m) = media_of(req, source.ip())
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

    pub(super) fn cancel_received(&mut self, now: Instant, req: &Message<'_>, source: SocketAddr) {
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

    /// A 2xx to our INVITE: the dialog is up (§12.1.2): their tag and
    /// Contact, the Record-Route set reversed; ACK it.
    pub(super) fn answered_ok(&mut self, now: Instant, resp: &Message<'_>) {
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
        c.remote_media = media_of(resp, self.cfg.proxy.ip());
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
    pub(super) fn ack_error(&mut self, resp: &Message<'_>) {
        let Some(c) = self.call.as_ref() else {
            return;
        };
        let to = msg::text(resp, HeaderName::To).unwrap_or(&c.remote_party);
        let bytes = c.invite_tx_request(
            (self.cfg.sip, self.cfg.transport),
            "ACK",
            &c.invite_branch,
            to,
            None,
            None,
        );
        self.send(self.cfg.proxy, bytes);
    }
}
