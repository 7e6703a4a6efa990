//! Where the APS sends a request from the MPR inside its network: the next
//! Route entry, else the phone whose REGISTER passed through the APS for
//! the Request-URI's address of record, else an IP literal Request-URI,
//! else the configured inside destination (a PBX or a phone).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pinhole_core::types::Transport;

use super::edit;
use crate::{HeaderName, Message, Uri, name_addrs};

/// A phone's registration seen passing through (AOR → where it is).
#[derive(Clone, Copy, Debug)]
struct Binding {
    at: SocketAddr,
    /// What its REGISTER came by: requests for it go the same way (over a
    /// stream, on the connection it opened, which the driver finds by `at`).
    transport: Transport,
    expires: Instant,
}

/// The inside phones the APS has seen register, and its default.
pub(super) struct Phones {
    bindings: HashMap<Vec<u8>, Binding>,
    default: Option<(SocketAddr, Transport)>,
}

impl Phones {
    /// No phone known yet; requests for none go to `default`.
    pub(super) fn new(default: Option<(SocketAddr, Transport)>) -> Self {
        Self {
            bindings: HashMap::new(),
            default,
        }
    }

    /// Where a request from the MPR goes inside. `popped`: our own Route
    /// entry was the top one (the next hop is the one after it).
    pub(super) fn destination(
        &self,
        now: Instant,
        msg: &Message<'_>,
        popped: bool,
    ) -> Option<(SocketAddr, Transport)> {
        let buf = msg.buf();
        let next = if popped {
            edit::second_route(msg)
        } else {
            edit::top_route(msg).map(|(u, _, _)| u)
        };
        let target = |u: &Uri| edit::uri_target(buf, u).map(|t| (t, edit::uri_transport(buf, u)));
        if let Some(t) = next.as_ref().and_then(target) {
            return Some(t);
        }
        let ruri = msg.request_uri().and_then(|s| Uri::parse(buf, s).ok());
        if let Some(u) = &ruri {
            if let Some(b) = self.bindings.get(&aor(buf, u))
                && b.expires > now
            {
                return Some((b.at, b.transport));
            }
            if let Some(t) = target(u) {
                return Some(t);
            }
        }
        self.default
    }

    /// A REGISTER from inside: remember where the phone is, so requests for
    /// its address of record find it.
    pub(super) fn learn(
        &mut self,
        now: Instant,
        msg: &Message<'_>,
        source: SocketAddr,
        transport: Transport,
    ) {
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
                    transport,
                    expires: now + Duration::from_secs(expires),
                },
            );
        }
    }

    /// Forgets registrations that expired.
    pub(super) fn expire(&mut self, now: Instant) {
        self.bindings.retain(|_, b| b.expires > now);
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
