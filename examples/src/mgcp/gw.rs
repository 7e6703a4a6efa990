//! A minimal MGCP gateway, sans-IO: endpoints `aaln/1`… under one domain,
//! one RTP address. It answers AUEP, RQNT, EPCF and AUCX with 200; CRCX
//! with 200, a new connection id and its description; MDCX with 200 and its
//! description; DLCX with 250 (RFC 3435 §2.4); an unknown endpoint with 500
//! and an unknown connection with 515. A retransmitted command gets the
//! same response (§3.5, kept [`super::T_HIST`]). [`Gateway::restart`] sends
//! RSIP to the call agent and retransmits it until answered.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pinhole_mgcp::{Command, Message, Verb};

use super::{T_HIST, audio_sdp, sdp_media};

/// The gateway's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GwConfig {
    /// Its domain, as endpoints name it (`gw1.corp1.example`).
    pub domain: String,
    /// Its endpoints' local names.
    pub endpoints: Vec<String>,
    /// The RTP address it writes into its descriptions (one for every
    /// connection: a gateway of one line).
    pub media: SocketAddr,
    /// Where RSIP goes (its call agent, or the APS standing in for it).
    pub call_agent: Option<SocketAddr>,
}

impl GwConfig {
    /// A gateway with endpoint `aaln/1` under `domain`, RTP on `media`.
    pub fn new(domain: &str, media: SocketAddr) -> Self {
        Self {
            domain: domain.to_owned(),
            endpoints: vec!["aaln/1".to_owned()],
            media,
            call_agent: None,
        }
    }
}

/// One connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connection {
    /// Its id (`I:`).
    pub id: String,
    /// The endpoint's local name.
    pub endpoint: String,
    /// The call (`C:`).
    pub call: String,
    /// Its mode (`M:`).
    pub mode: String,
    /// Where to send RTP (from the RemoteConnectionDescriptor).
    pub remote: Option<SocketAddr>,
}

/// A one-line MGCP gateway.
#[derive(Debug)]
pub struct Gateway {
    cfg: GwConfig,
    conns: Vec<Connection>,
    next_conn: u32,
    /// Answers kept for retransmitted commands: (from, txid, bytes, since).
    answered: VecDeque<(SocketAddr, u32, Vec<u8>, Instant)>,
    out: VecDeque<(SocketAddr, Vec<u8>)>,
    rsip: Option<(u32, Vec<u8>, Instant, u32)>,
    next_txid: u32,
    /// Commands answered (retransmissions not counted), by verb.
    pub handled: Vec<(String, u32)>,
}

impl Gateway {
    /// A gateway with no connection.
    pub fn new(cfg: GwConfig) -> Self {
        // Gateways number their transactions independently; two of these
        // behind one MPR must not start at the same id (the MPR refuses a
        // second network's command with an id still live: 409).
        let first_txid = 9000
            + cfg
                .domain
                .bytes()
                .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
                % 100_000;
        Self {
            next_conn: 0x1a2b_0001 ^ u32::from(cfg.media.port()),
            cfg,
            conns: Vec::new(),
            answered: VecDeque::new(),
            out: VecDeque::new(),
            rsip: None,
            next_txid: first_txid,
            handled: Vec::new(),
        }
    }

    /// Its settings.
    pub fn config(&self) -> &GwConfig {
        &self.cfg
    }

    /// The live connections.
    pub fn connections(&self) -> &[Connection] {
        &self.conns
    }

    /// Where to send RTP: the remote of the last connection that has one
    /// and may send (`sendrecv`, `sendonly`, `conttest` aside).
    pub fn remote_media(&self) -> Option<SocketAddr> {
        self.conns
            .iter()
            .rev()
            .filter(|c| {
                c.mode.eq_ignore_ascii_case("sendrecv") || c.mode.eq_ignore_ascii_case("sendonly")
            })
            .find_map(|c| c.remote)
    }

    /// Announces a restart (RSIP `RM: restart` for every endpoint, `*`),
    /// retransmitted until the call agent answers. Nothing without one.
    pub fn restart(&mut self, now: Instant) {
        let Some(ca) = self.cfg.call_agent else {
            return;
        };
        let txid = self.next_txid;
        self.next_txid += 1;
        let bytes = Command::builder("RSIP", txid, &format!("*@{}", self.cfg.domain))
            .param("RM", "restart")
            .to_bytes();
        self.out.push_back((ca, bytes.clone()));
        self.rsip = Some((txid, bytes, now + Duration::from_millis(500), 1));
    }

    /// True once the call agent answered the RSIP.
    pub fn restarted(&self) -> bool {
        self.rsip.is_none()
    }

    /// A datagram arrived from `from`.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        let Ok(msgs) = pinhole_mgcp::parse_datagram(bytes) else {
            tracing::debug!(%from, "gateway: malformed MGCP dropped");
            return;
        };
        self.answered
            .retain(|(.., t)| now.duration_since(*t) < T_HIST);
        for m in &msgs {
            let txid = m.transaction_id();
            if m.command().is_none() {
                if self.rsip.as_ref().is_some_and(|(t, ..)| *t == txid) {
                    self.rsip = None;
                }
                continue;
            }
            if let Some((.., r, _)) = self
                .answered
                .iter()
                .find(|(f, t, ..)| *f == from && *t == txid)
            {
                self.out.push_back((from, r.clone()));
                continue;
            }
            let r = self.command(m);
            self.out.push_back((from, r.clone()));
            self.answered.push_back((from, txid, r, now));
            if self.answered.len() > 256 {
                self.answered.pop_front();
            }
        }
    }

    fn command(&mut self, m: &Message<'_>) -> Vec<u8> {
        let txid = m.transaction_id();
        let Some(c) = m.command() else {
            return pinhole_mgcp::response(400, txid, Some("Bad request"), &[], None);
        };
        let verb = c.verb.as_str().to_ascii_uppercase();
        match self.handled.iter_mut().find(|(v, _)| *v == verb) {
            Some((_, n)) => *n += 1,
            None => self.handled.push((verb.clone(), 1)),
        }
        let ep = &c.endpoint;
        if !ep.domain.eq_ignore_ascii_case(&self.cfg.domain) {
            return pinhole_mgcp::response(500, txid, Some("Endpoint unknown"), &[], None);
        }
        // A wildcard names any of ours; otherwise it must be one of them.
        let local = if ep.local.contains(['*', '$']) {
            self.cfg.endpoints.first().cloned()
        } else {
            self.cfg
                .endpoints
                .iter()
                .find(|e| e.eq_ignore_ascii_case(ep.local))
                .cloned()
        };
        let Some(local) = local else {
            return pinhole_mgcp::response(500, txid, Some("Endpoint unknown"), &[], None);
        };
        let remote = m
            .sdp_span()
            .and_then(|s| m.buf().get(s))
            .and_then(sdp_media);
        match c.verb {
            Verb::Crcx => {
                let Some(call) = m.call_id() else {
                    return pinhole_mgcp::response(516, txid, Some("Unknown call id"), &[], None);
                };
                let id = format!("{:X}", self.next_conn);
                self.next_conn = self.next_conn.wrapping_add(1);
                self.conns.push(Connection {
                    id: id.clone(),
                    endpoint: local.clone(),
                    call: call.to_owned(),
                    mode: m.mode().unwrap_or("inactive").to_owned(),
                    remote,
                });
                let sdp = audio_sdp(u64::from(txid), self.cfg.media);
                let z = format!("{local}@{}", self.cfg.domain);
                let params: Vec<(&str, &str)> = if ep.local.contains(['*', '$']) {
                    vec![("I", &id), ("Z", &z)]
                } else {
                    vec![("I", &id)]
                };
                pinhole_mgcp::response(200, txid, Some("OK"), &params, Some(&sdp))
            }
            Verb::Mdcx => {
                let Some(conn) = m
                    .connection_id()
                    .and_then(|i| self.conns.iter_mut().find(|c| c.id.eq_ignore_ascii_case(i)))
                else {
                    return pinhole_mgcp::response(
                        515,
                        txid,
                        Some("Unknown connection"),
                        &[],
                        None,
                    );
                };
                if let Some(mode) = m.mode() {
                    mode.clone_into(&mut conn.mode);
                }
                if remote.is_some() {
                    conn.remote = remote;
                }
                let sdp = audio_sdp(u64::from(txid), self.cfg.media);
                pinhole_mgcp::response(200, txid, Some("OK"), &[], Some(&sdp))
            }
            Verb::Dlcx => {
                let before = self.conns.len();
                let (call, conn) = (m.call_id(), m.connection_id());
                self.conns.retain(|c| {
                    let same_call = call.is_none_or(|x| c.call.eq_ignore_ascii_case(x));
                    let same_conn = conn.is_none_or(|x| c.id.eq_ignore_ascii_case(x));
                    !(c.endpoint == local && same_call && same_conn)
                });
                if self.conns.len() == before {
                    pinhole_mgcp::response(515, txid, Some("Unknown connection"), &[], None)
                } else {
                    pinhole_mgcp::response(250, txid, Some("Deleted"), &[], None)
                }
            }
            _ => pinhole_mgcp::response(200, txid, Some("OK"), &[], None),
        }
    }

    /// Time passed: retransmit an unanswered RSIP.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(ca) = self.cfg.call_agent else {
            return;
        };
        if let Some((_, bytes, next, attempts)) = &mut self.rsip
            && *next <= now
        {
            if *attempts >= 6 {
                self.rsip = None;
                return;
            }
            *attempts += 1;
            *next = now + Duration::from_millis(500) * (1 << (*attempts).min(3));
            self.out.push_back((ca, bytes.clone()));
        }
    }

    /// When to call [`Gateway::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.rsip.as_ref().map(|(_, _, next, _)| *next)
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.out.pop_front()
    }
}
