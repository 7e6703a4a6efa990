//! Control datagrams: Binding, Registration (Fig. 6) and CMPH (Figs. 7, 8).

use std::time::Instant;

use super::nonce::{NonceCheck, Replay};
use super::{Engine, Event, InputError, NetIdx, Owner, PendingReserve, RESERVE_ATTEMPTS, TimerKey};
use crate::relay::Remote;
use crate::types::{Component, LegId, Receive, Transmit};
use crate::wire::{
    self, Builder, Class, ErrorCode, IntegrityKey, Message, Method, Protocol, RtcpMode,
    TransactionId,
};

/// What a request resolved to, before the response is written.
enum Answer {
    Register {
        protocol: Protocol,
        lifetime: u32,
    },
    Cmph {
        leg: LegId,
        /// A reserve that allocated this leg now: its answer waits on the
        /// relay opening the ports (see `PendingReserve`).
        reserved: bool,
    },
    /// An indication: bound, nothing to send.
    Silent,
}

impl Engine {
    pub(super) fn datagram(&mut self, now: Instant, rx: Receive<'_>) -> Result<(), InputError> {
        if !wire::is_control(rx.bytes) {
            self.stats.unexpected += 1;
            return Err(InputError::NotControl);
        }
        let msg = match Message::decode(rx.bytes) {
            Ok(m) => m,
            Err(e) => {
                self.stats.decode_errors += 1;
                return Err(InputError::Decode(e));
            }
        };
        match (msg.method(), msg.class()) {
            (Method::Binding, Class::Request) => self.binding(now, rx, &msg),
            (Method::Binding, Class::Indication) => self.keepalive(now, rx),
            (Method::Register, Class::Request)
            | (Method::Cmph, Class::Request | Class::Indication) => {
                self.authenticated(now, rx, &msg)
            }
            _ => {
                self.stats.unexpected += 1;
                Err(InputError::Unexpected("response or indication"))
            }
        }
    }

    /// Plain STUN: tell the sender its observed address. Changes nothing.
    /// Unauthenticated, so answered only when the answer is no larger than
    /// the request (spec §2.3).
    fn binding(
        &mut self,
        now: Instant,
        rx: Receive<'_>,
        msg: &Message<'_>,
    ) -> Result<(), InputError> {
        let id = msg.transaction_id();
        if !msg.unknown_required().is_empty() {
            let unknown: Vec<u16> = msg.unknown_required().to_vec();
            self.error(
                now,
                rx,
                Method::Binding,
                id,
                ErrorCode::UNKNOWN_ATTRIBUTE,
                None,
                None,
                &unknown,
            );
            return Err(self.refused(
                ErrorCode::UNKNOWN_ATTRIBUTE,
                "unknown comprehension-required attribute",
            ));
        }
        let bytes = encode(Method::Binding, Class::Success, id, None, |b| {
            b.xor_mapped_address(rx.remote)?;
            Ok(())
        });
        self.send_unverified(now, rx, bytes)?;
        self.stats.bindings_answered += 1;
        Ok(())
    }

    /// A Binding Indication on a relay port: media keepalive.
    fn keepalive(&mut self, now: Instant, rx: Receive<'_>) -> Result<(), InputError> {
        let bound = self.by_port.get(&rx.local.port()).copied().and_then(|id| {
            let leg = self.legs.get(&id)?;
            let c = if rx.local.port() == leg.ports.rtp {
                0
            } else {
                1
            };
            (leg.remote[c].target() == Some(rx.remote)).then_some(id)
        });
        match bound {
            Some(id) => {
                self.stats.keepalives += 1;
                self.touch(now, id);
                Ok(())
            }
            None => {
                self.stats.stray_keepalives += 1;
                Err(InputError::StrayKeepalive)
            }
        }
    }

    /// REGISTER and CMPH: authenticate, de-duplicate, then act.
    fn authenticated(
        &mut self,
        now: Instant,
        rx: Receive<'_>,
        msg: &Message<'_>,
    ) -> Result<(), InputError> {
        let method = msg.method();
        let id = msg.transaction_id();
        let silent = msg.class() == Class::Indication;
        if !msg.unknown_required().is_empty() {
            let unknown: Vec<u16> = msg.unknown_required().to_vec();
            if !silent {
                self.error(
                    now,
                    rx,
                    method,
                    id,
                    ErrorCode::UNKNOWN_ATTRIBUTE,
                    None,
                    None,
                    &unknown,
                );
            }
            return Err(self.refused(
                ErrorCode::UNKNOWN_ATTRIBUTE,
                "unknown comprehension-required attribute",
            ));
        }
        let Some(net) = msg.username().and_then(|u| self.by_name.get(u).copied()) else {
            self.stats.auth_failures += 1;
            if !silent {
                self.error(
                    now,
                    rx,
                    method,
                    id,
                    ErrorCode::UNAUTHORIZED,
                    None,
                    None,
                    &[],
                );
            }
            return Err(InputError::Refused {
                code: ErrorCode::UNAUTHORIZED,
                what: "unknown network",
            });
        };
        if msg.verify_with(&self.networks[net].key).is_err() {
            self.stats.auth_failures += 1;
            if !silent {
                let nonce = self.mint(net, rx.remote.ip(), now);
                self.error(
                    now,
                    rx,
                    method,
                    id,
                    ErrorCode::UNAUTHORIZED,
                    Some(&nonce),
                    None,
                    &[],
                );
            }
            return Err(InputError::Refused {
                code: ErrorCode::UNAUTHORIZED,
                what: "message integrity check failed",
            });
        }
        // Authentic from here on: answers carry integrity.
        self.replay.prune(now);
        match self.replay.lookup(&id, rx.local, rx.remote) {
            Replay::Fresh => {}
            Replay::Retransmission(resp) => {
                self.stats.retransmissions += 1;
                if !resp.is_empty() {
                    let payload = resp.to_vec();
                    self.transmits.push_back(Transmit {
                        local: rx.local,
                        remote: rx.remote,
                        payload,
                        flow: rx.flow,
                    });
                }
                return Ok(());
            }
            Replay::Replayed => {
                self.stats.replays += 1;
                tracing::warn!(network = %self.networks[net].cfg.id, remote = %rx.remote, "replayed control message dropped");
                return Err(InputError::Replayed);
            }
        }
        let key = self.networks[net].key.clone();
        let n = &self.networks[net];
        match self
            .nonces
            .check_cached(&n.cfg.id, rx.remote.ip(), &n.nonce, msg.nonce(), now)
        {
            NonceCheck::Valid => {}
            NonceCheck::Invalid => {
                self.stats.challenges += 1;
                if !silent {
                    let nonce = self.mint(net, rx.remote.ip(), now);
                    self.error(
                        now,
                        rx,
                        method,
                        id,
                        ErrorCode::UNAUTHORIZED,
                        Some(&nonce),
                        Some(&key),
                        &[],
                    );
                }
                return Err(InputError::Refused {
                    code: ErrorCode::UNAUTHORIZED,
                    what: "missing nonce",
                });
            }
            NonceCheck::Stale => {
                self.stats.stale_nonces += 1;
                if !silent {
                    let nonce = self.mint(net, rx.remote.ip(), now);
                    self.error(
                        now,
                        rx,
                        method,
                        id,
                        ErrorCode::STALE_NONCE,
                        Some(&nonce),
                        Some(&key),
                        &[],
                    );
                }
                return Err(InputError::Refused {
                    code: ErrorCode::STALE_NONCE,
                    what: "stale nonce",
                });
            }
        }
        let outcome = match method {
            Method::Register => self.register(now, rx, msg, net),
            _ => self.cmph(now, rx, msg, net, silent),
        };
        let nonce = self.mint(net, rx.remote.ip(), now);
        let (bytes, result) = match outcome {
            Ok(Answer::Silent) => (Vec::new(), Ok(())),
            Ok(Answer::Register { protocol, lifetime }) => (
                encode(Method::Register, Class::Success, id, Some(&key), |b| {
                    b.xor_mapped_address(rx.remote)?;
                    b.lifetime(lifetime)?;
                    b.protocol(protocol)?;
                    b.nonce(&nonce)?;
                    Ok(())
                }),
                Ok(()),
            ),
            Ok(Answer::Cmph { leg, reserved }) => {
                if reserved {
                    self.pending_reserves.push(PendingReserve {
                        leg,
                        id,
                        local: rx.local,
                        remote: rx.remote,
                        net,
                        attempts: 1,
                    });
                }
                (self.cmph_success(id, rx, &key, &nonce, leg), Ok(()))
            }
            Err((code, what)) => {
                let bytes = if silent {
                    Vec::new()
                } else {
                    encode(method, Class::Error, id, Some(&key), |b| {
                        b.error_code(code, code.reason())?;
                        Ok(())
                    })
                };
                (bytes, Err(self.refused(code, what)))
            }
        };
        // Every authentic transaction is remembered, refused ones too: a
        // refused CMPH replayed later, once it would succeed, must not bind.
        let until = self.nonces.valid_until(now);
        self.replay.insert(id, until, rx.local, rx.remote, &bytes);
        self.send(rx, bytes);
        result
    }

    fn register(
        &mut self,
        now: Instant,
        rx: Receive<'_>,
        msg: &Message<'_>,
        net: NetIdx,
    ) -> Result<Answer, (ErrorCode, &'static str)> {
        let protocol = msg
            .protocol()
            .ok_or((ErrorCode::BAD_REQUEST, "SIGNALING-PROTOCOL missing"))?;
        let cfg = &self.networks[net].cfg;
        if !cfg.protocols.is_empty() && !cfg.protocols.contains(&protocol) {
            return Err((
                ErrorCode::FORBIDDEN,
                "protocol not allowed for this network",
            ));
        }
        let mut claimed = Vec::new();
        for d in msg.domains() {
            let d = d.to_ascii_lowercase();
            let allowed =
                cfg.domains.is_empty() || cfg.domains.iter().any(|c| c.eq_ignore_ascii_case(&d));
            let taken = self.domains.get(&d).is_some_and(|n| *n != net);
            if !allowed || taken {
                return Err((
                    ErrorCode::FORBIDDEN,
                    "subscriber domain not allowed for this network",
                ));
            }
            claimed.push(d);
        }
        let network = cfg.id.clone();
        let t = self.timers_cfg;
        let asked = msg.lifetime().map_or(t.registration_default, |s| {
            std::time::Duration::from_secs(u64::from(s))
        });
        if asked.is_zero() {
            if self.remove_route(net, protocol).is_some() {
                self.events
                    .push_back(Event::Deregistered { network, protocol });
            }
            self.refresh_gauges();
            return Ok(Answer::Register {
                protocol,
                lifetime: 0,
            });
        }
        let granted = asked.clamp(t.registration_min, t.registration_max);
        let expires = now + granted;
        for d in claimed {
            self.domains.insert(d, net);
        }
        let route = super::Route {
            pinhole: rx.remote,
            local: rx.local,
            expires,
            flow: rx.flow,
        };
        match self.insert_route(net, protocol, route) {
            None => {
                self.stats.registrations_accepted += 1;
                tracing::info!(%network, protocol = protocol.name(), pinhole = %rx.remote, "registered");
                self.events.push_back(Event::Registered {
                    network,
                    protocol,
                    pinhole: rx.remote,
                });
                self.arm(expires, TimerKey::Route(net, protocol.code()));
            }
            Some(old) => {
                self.stats.registrations_refreshed += 1;
                if old.pinhole != rx.remote || old.flow != rx.flow {
                    self.stats.routes_moved += 1;
                    if rx.flow.transport.is_stream() {
                        // A new connection from inside (the old one dropped):
                        // expected, and the route follows it.
                        tracing::info!(%network, from = %old.pinhole, to = %rx.remote, flow = %rx.flow, "signaling route moved to a new connection");
                    } else {
                        tracing::warn!(%network, from = %old.pinhole, to = %rx.remote, "signaling pinhole moved: refresh interval longer than the firewall's idle timeout?");
                    }
                    self.events.push_back(Event::RouteMoved {
                        network,
                        protocol,
                        from: old.pinhole,
                        to: rx.remote,
                    });
                }
                if expires < old.expires {
                    self.arm(expires, TimerKey::Route(net, protocol.code()));
                }
            }
        }
        self.refresh_gauges();
        Ok(Answer::Register {
            protocol,
            lifetime: secs(granted),
        })
    }

    fn cmph(
        &mut self,
        now: Instant,
        rx: Receive<'_>,
        msg: &Message<'_>,
        net: NetIdx,
        silent: bool,
    ) -> Result<Answer, (ErrorCode, &'static str)> {
        if self.networks[net].routes == 0 {
            return Err((
                ErrorCode::NOT_REGISTERED,
                "network has no live registration",
            ));
        }
        match self.by_port.get(&rx.local.port()).copied() {
            Some(id) if self.legs.get(&id).is_some_and(|l| l.ip == rx.local.ip()) => {
                self.bind(now, rx, msg, net, id)
            }
            _ if self.is_relay_address(rx.local) => {
                Err((ErrorCode::ALLOCATION_MISMATCH, "no leg on this relay port"))
            }
            _ if silent => Err((ErrorCode::BAD_REQUEST, "a CMPH indication can only bind")),
            _ => self.reserve(now, rx, msg, net),
        }
    }

    fn is_relay_address(&self, local: std::net::SocketAddr) -> bool {
        (local.ip() == self.relay_ip || Some(local.ip()) == self.relay_ip6)
            && (self.port_range.first..=self.port_range.last).contains(&local.port())
            && !self.control_ports.contains(&local.port())
    }

    /// CMPH to the control address: find or allocate the leg for this key.
    fn reserve(
        &mut self,
        now: Instant,
        rx: Receive<'_>,
        msg: &Message<'_>,
        net: NetIdx,
    ) -> Result<Answer, (ErrorCode, &'static str)> {
        let key = msg
            .leg_key()
            .ok_or((ErrorCode::BAD_REQUEST, "LEG-KEY missing"))?;
        if let Some(&leg) = self.by_key.get(&(net, Box::from(key))) {
            return Ok(Answer::Cmph {
                leg,
                reserved: false,
            });
        }
        let mode = msg.rtcp_mode().unwrap_or_default();
        let leg = self.reserve_leg(now, net, rx.remote.ip(), mode, key.into())?;
        if let Some(local) = msg.xor_local_address() {
            self.file_local(net, leg, local);
        }
        Ok(Answer::Cmph {
            leg,
            reserved: true,
        })
    }

    /// Files a reserved leg under the client's own listening address: a
    /// client that binds with indications never learns its pinhole and
    /// offers this address instead (docs/flows.md, the "no CMPH response"
    /// variant). A newer reserve for the same address takes it over.
    fn file_local(&mut self, net: NetIdx, leg: LegId, local: std::net::SocketAddr) {
        if let Some(l) = self.legs.get_mut(&leg) {
            l.local = Some(local);
            self.by_local.insert((net, local), leg);
        }
    }

    /// Allocates a leg for a reserve and files it under its LEG-KEY.
    fn reserve_leg(
        &mut self,
        now: Instant,
        net: NetIdx,
        family_of: std::net::IpAddr,
        mode: RtcpMode,
        key: Box<[u8]>,
    ) -> Result<LegId, (ErrorCode, &'static str)> {
        let leg = self
            .open_leg(now, Owner::Network(net), family_of, mode)
            .map_err(|e| match e {
                super::IntentError::QuotaReached => (ErrorCode::QUOTA_REACHED, "leg quota reached"),
                super::IntentError::NoRelayAddress => {
                    (ErrorCode::BAD_REQUEST, "no relay address of this family")
                }
                _ => {
                    self.stats.ports_exhausted += 1;
                    (ErrorCode::INSUFFICIENT_CAPACITY, "relay ports exhausted")
                }
            })?;
        if let Some(l) = self.legs.get_mut(&leg) {
            l.key = Some(key.clone());
        }
        self.by_key.insert((net, key), leg);
        self.stats.cmph_reserved += 1;
        self.arm(now + self.timers_cfg.leg_inactivity, TimerKey::Leg(leg.0));
        self.refresh_gauges();
        Ok(leg)
    }

    /// The relay could not open the ports of a leg a reserve just
    /// allocated, and the reserve's answer has not left yet: try another
    /// port pair, or answer 508 once `RESERVE_ATTEMPTS` pairs failed. The
    /// queued answer and the replay cache's copy are rewritten, so the
    /// client never learns a relay address that has no leg behind it.
    pub(super) fn reanswer_reserve(&mut self, now: Instant, p: PendingReserve) {
        let n = &self.networks[p.net];
        let key = n.key.clone();
        let leg_key = self
            .legs
            .get(&p.leg)
            .and_then(|l| l.key.clone())
            .unwrap_or_default();
        let mode = self
            .legs
            .get(&p.leg)
            .map_or(RtcpMode::Pair, |l| l.rtcp_mode);
        let local = self.legs.get(&p.leg).and_then(|l| l.local);
        self.close_leg(now, p.leg);
        let rx = Receive {
            local: p.local,
            remote: p.remote,
            bytes: &[],
            flow: Default::default(),
        };
        let retry = if p.attempts < RESERVE_ATTEMPTS && !leg_key.is_empty() {
            self.reserve_leg(now, p.net, p.remote.ip(), mode, leg_key)
        } else {
            self.stats.ports_exhausted += 1;
            Err((
                ErrorCode::INSUFFICIENT_CAPACITY,
                "no relay port pair could be opened",
            ))
        };
        let bytes = match retry {
            Ok(leg) => {
                if let Some(local) = local {
                    self.file_local(p.net, leg, local);
                }
                tracing::warn!(failed = %p.leg, %leg, "reserved leg's ports could not be opened; trying another pair");
                self.pending_reserves.push(PendingReserve {
                    leg,
                    attempts: p.attempts + 1,
                    ..p
                });
                let nonce = self.mint(p.net, p.remote.ip(), now);
                self.cmph_success(p.id, rx, &key, &nonce, leg)
            }
            Err((code, what)) => {
                tracing::warn!(leg = %p.leg, code = code.0, what, "CMPH reserve refused: relay ports unavailable");
                self.stats.refusals += 1;
                encode(Method::Cmph, Class::Error, p.id, Some(&key), |b| {
                    b.error_code(code, code.reason())?;
                    Ok(())
                })
            }
        };
        let queued = self.transmits.iter_mut().find(|t| {
            t.local == p.local && t.remote == p.remote && t.payload.get(8..20) == Some(&p.id.0[..])
        });
        if let Some(t) = queued {
            t.payload.clone_from(&bytes);
        }
        self.replay.replace(&p.id, &bytes);
    }

    /// A CMPH success for `leg`, answering transaction `id` from `rx`.
    fn cmph_success(
        &self,
        id: TransactionId,
        rx: Receive<'_>,
        key: &IntegrityKey,
        nonce: &[u8],
        leg: LegId,
    ) -> Vec<u8> {
        let (relay, mode) = self
            .legs
            .get(&leg)
            .map(|l| (l.rtp_addr(), l.rtcp_mode))
            .unwrap_or((rx.local, RtcpMode::Pair));
        let lifetime = secs(self.timers_cfg.leg_inactivity);
        encode(Method::Cmph, Class::Success, id, Some(key), |b| {
            b.xor_mapped_address(rx.remote)?;
            b.xor_relayed_address(relay)?;
            b.rtcp_mode(mode)?;
            b.lifetime(lifetime)?;
            b.nonce(nonce)?;
            Ok(())
        })
    }

    /// CMPH to a relay port: bind that component to the observed source.
    fn bind(
        &mut self,
        now: Instant,
        rx: Receive<'_>,
        msg: &Message<'_>,
        net: NetIdx,
        id: LegId,
    ) -> Result<Answer, (ErrorCode, &'static str)> {
        let Some(leg) = self.legs.get(&id) else {
            return Err((ErrorCode::ALLOCATION_MISMATCH, "no leg on this relay port"));
        };
        if leg.owner != Owner::Network(net) {
            return Err((ErrorCode::FORBIDDEN, "the leg belongs to another network"));
        }
        if let (Some(k), Some(mine)) = (msg.leg_key(), leg.key.as_deref())
            && k != mine
        {
            return Err((ErrorCode::BAD_REQUEST, "LEG-KEY does not match the leg"));
        }
        let component = if rx.local.port() == leg.ports.rtp {
            Component::Rtp
        } else {
            Component::Rtcp
        };
        let c = super::component_index(component);
        let old = leg.pinhole[c];
        if let Some(l) = self.legs.get_mut(&id) {
            l.pinhole[c] = Some(rx.remote);
        }
        if component == Component::Rtp && old != Some(rx.remote) {
            if let Some(o) = old {
                self.by_pinhole.remove(&o);
            }
            self.by_pinhole.insert(rx.remote, id);
        }
        self.set_remote(id, component, Remote::Fixed(rx.remote));
        self.touch(now, id);
        self.stats.cmph_bound += 1;
        if old != Some(rx.remote) {
            tracing::info!(leg = %id, pinhole = %rx.remote, "media pinhole bound");
            self.events.push_back(Event::PinholeBound {
                leg: id,
                component,
                pinhole: rx.remote,
            });
        }
        Ok(if msg.class() == Class::Indication {
            Answer::Silent
        } else {
            Answer::Cmph {
                leg: id,
                reserved: false,
            }
        })
    }

    pub(super) fn route_timer(&mut self, now: Instant, net: NetIdx, proto: u8) {
        let Some(protocol) = Protocol::from_code(proto) else {
            return;
        };
        let Some(route) = self.routes.get(&(net, protocol)).copied() else {
            return;
        };
        if route.expires > now {
            self.arm(route.expires, TimerKey::Route(net, proto));
            return;
        }
        self.remove_route(net, protocol);
        self.stats.registrations_expired += 1;
        let network = self.networks[net].cfg.id.clone();
        tracing::info!(%network, protocol = protocol.name(), "registration expired");
        self.events
            .push_back(Event::RegistrationExpired { network, protocol });
    }

    fn mint(
        &mut self,
        net: NetIdx,
        ip: std::net::IpAddr,
        now: Instant,
    ) -> [u8; super::nonce::NONCE_LEN] {
        let n = &mut self.networks[net];
        self.nonces.mint_cached(&n.cfg.id, ip, &mut n.nonce, now)
    }

    /// Counts a refusal and builds its error value.
    fn refused(&mut self, code: ErrorCode, what: &'static str) -> InputError {
        self.stats.refusals += 1;
        InputError::Refused { code, what }
    }

    /// An error answer to a request whose source is not verified yet: every
    /// caller is on the path before the nonce check passed, so the answer
    /// goes out only if it is no larger than the request (spec §2.3).
    #[allow(clippy::too_many_arguments)]
    fn error(
        &mut self,
        now: Instant,
        rx: Receive<'_>,
        method: Method,
        id: TransactionId,
        code: ErrorCode,
        nonce: Option<&[u8]>,
        key: Option<&IntegrityKey>,
        unknown: &[u16],
    ) {
        let bytes = encode(method, Class::Error, id, key, |b| {
            b.error_code(code, code.reason())?;
            if let Some(n) = nonce {
                b.nonce(n)?;
            }
            if !unknown.is_empty() {
                b.unknown_attributes(unknown)?;
            }
            Ok(())
        });
        // Dropped or sent, the caller reports the refusal itself.
        let _ = self.send_unverified(now, rx, bytes);
    }

    /// Sends an answer to a request whose source address nothing has
    /// verified (no nonce minted for it came back) only when the answer is
    /// no larger than the request: a forged source gets no amplified
    /// reflection (spec §2.3). A larger answer is counted and dropped, with
    /// one log line per `Quiet` interval.
    fn send_unverified(
        &mut self,
        now: Instant,
        rx: Receive<'_>,
        payload: Vec<u8>,
    ) -> Result<(), InputError> {
        let (answer, request) = (payload.len(), rx.bytes.len());
        if answer <= request {
            self.send(rx, payload);
            return Ok(());
        }
        self.stats.amplification_drops += 1;
        if let Some(suppressed) = self.amplification_log.allow(now) {
            tracing::warn!(
                remote = %rx.remote,
                answer,
                request,
                suppressed,
                "unauthenticated request smaller than its answer dropped (anti-amplification; pad requests to wire::ANSWERABLE_LEN)"
            );
        }
        Err(InputError::TooSmallToAnswer { answer, request })
    }

    fn send(&mut self, rx: Receive<'_>, payload: Vec<u8>) {
        if payload.is_empty() {
            return;
        }
        self.transmits.push_back(Transmit {
            local: rx.local,
            remote: rx.remote,
            payload,
            flow: rx.flow,
        });
    }
}

/// Encodes one message. Everything the engine writes fits `MAX_MESSAGE`
/// with room to spare; should encoding fail anyway, nothing is sent and the
/// failure is logged (the client retransmits).
fn encode(
    method: Method,
    class: Class,
    id: TransactionId,
    key: Option<&IntegrityKey>,
    body: impl FnOnce(&mut Builder<'_>) -> Result<(), wire::EncodeError>,
) -> Vec<u8> {
    // Every answer the MPR writes is a few hundred bytes; zeroing the full
    // MAX_MESSAGE for each would cost more than the copy.
    let mut buf = [0u8; 512];
    let r = Builder::new(&mut buf, method, class, id).and_then(|mut b| {
        body(&mut b)?;
        b.finish_with(key)
    });
    match r {
        Ok(n) => buf[..n].to_vec(),
        Err(e) => {
            debug_assert!(false, "encoding a response failed: {e}");
            tracing::error!(error = %e, "encoding a control response failed");
            Vec::new()
        }
    }
}

fn secs(d: std::time::Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}
