//! Where the APS sends a request from the MPR inside its network: the next
//! Route entry, else the phone whose REGISTER passed through the APS for
//! the Request-URI's address of record, else an IP literal Request-URI,
//! else the configured inside destination (a PBX or a phone).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::edit;
use crate::{HeaderName, Message, Uri, name_addrs};

/// A phone's registration seen passing through (AOR → where it is).
#[derive(Clone, Copy, Debug)]
struct Binding {
    at: SocketAddr,
    expires: Instant,
}

/// The inside phones the APS has seen register, and its default.
pub(super) struct Phones {
    bindings: HashMap<Vec<u8>, Binding>,
    default: Option<SocketAddr>,
}

impl Phones {
    /// No phone known yet; requests for none go to `default`.
    pub(super) fn new(default: Option<SocketAddr>) -> Self {
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
    ) -> Option<SocketAddr> {
        let buf = msg.buf();
        let next = if popped {
            edit::second_route(msg)
        } else {
            edit::top_route(msg).map(|(u, _, _)| u)
        };
        if let Some(t) = next.and_then(|u| edit::uri_target(buf, &u)) {
            return Some(t);
        }
        let ruri = msg.request_uri().and_then(|s| Uri::parse(buf, s).ok());
        if let Some(u) = &ruri {
            if let Some(b) = self.bindings.get(&aor(buf, u))
                && b.expires > now
            {
                return Some(b.at);
            }
            if let Some(t) = edit::uri_target(buf, u) {
                return Some(t);
            }
        }
        self.default
    }

    /// A REGISTER from inside: remember where the phone is, so requests for
    /// its address of record find it.
    pub(super) fn learn(&mut self, now: Instant, msg: &Message<'_>, source: SocketAddr) {
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
