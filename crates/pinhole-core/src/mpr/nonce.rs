//! Stateless nonces and the replay cache (wire-format.md §2.2).

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::hash::{FastMap, fast_map};
use crate::wire::TransactionId;

/// Length of a nonce: 16 hex digits of expiry, 16 of MAC.
pub(crate) const NONCE_LEN: usize = 32;

/// Mints and checks nonces:
/// `hex(expiry secs) || hex(trunc HMAC(secret, network || expiry || source IP))`.
/// A secret drawn at start makes every nonce of an earlier run stale; the
/// source IP in the MAC makes a nonce useless from any other address, so a
/// recorded request replayed from elsewhere fails however old it is.
pub(crate) struct Nonces {
    secret: [u8; 32],
    epoch: Instant,
    lifetime: Duration,
}

/// A network's latest nonce: (expiry second, source IP, nonce).
pub(crate) type Slot = Option<(u64, IpAddr, [u8; NONCE_LEN])>;

/// Outcome of a nonce check.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum NonceCheck {
    Valid,
    /// Well-formed but expired, or minted by another run of the MPR.
    Stale,
    /// Missing, malformed, or minted for another network.
    Invalid,
}

impl Nonces {
    pub(crate) fn new(secret: [u8; 32], epoch: Instant, lifetime: Duration) -> Self {
        Self {
            secret,
            epoch,
            lifetime,
        }
    }

    pub(crate) fn mint(&self, network: &str, ip: IpAddr, now: Instant) -> [u8; NONCE_LEN] {
        let expiry = (now.saturating_duration_since(self.epoch) + self.lifetime).as_secs();
        let mut out = [0u8; NONCE_LEN];
        hex(&expiry.to_be_bytes(), &mut out[..16]);
        hex(&self.tag(network, ip, expiry), &mut out[16..]);
        out
    }

    /// [`Nonces::mint`] through a per-network slot holding the latest nonce:
    /// the HMAC runs at most once per second per network.
    pub(crate) fn mint_cached(
        &self,
        network: &str,
        ip: IpAddr,
        slot: &mut Slot,
        now: Instant,
    ) -> [u8; NONCE_LEN] {
        let expiry = (now.saturating_duration_since(self.epoch) + self.lifetime).as_secs();
        match slot {
            Some((e, i, n)) if *e == expiry && *i == ip => *n,
            _ => {
                let n = self.mint(network, ip, now);
                *slot = Some((expiry, ip, n));
                n
            }
        }
    }

    /// [`Nonces::check`], short-cut when the nonce is the slot's latest.
    pub(crate) fn check_cached(
        &self,
        network: &str,
        ip: IpAddr,
        slot: &Slot,
        nonce: Option<&[u8]>,
        now: Instant,
    ) -> NonceCheck {
        if let (Some((expiry, i, latest)), Some(n)) = (slot, nonce)
            && n == latest
            && *i == ip
            && now.saturating_duration_since(self.epoch).as_secs() < *expiry
        {
            return NonceCheck::Valid;
        }
        self.check(network, ip, nonce, now)
    }

    pub(crate) fn check(
        &self,
        network: &str,
        ip: IpAddr,
        nonce: Option<&[u8]>,
        now: Instant,
    ) -> NonceCheck {
        let Some(nonce) = nonce else {
            return NonceCheck::Invalid;
        };
        if nonce.len() != NONCE_LEN {
            return NonceCheck::Invalid;
        }
        let Some(expiry) = unhex_u64(&nonce[..16]) else {
            return NonceCheck::Invalid;
        };
        let mut tag = [0u8; 16];
        hex(&self.tag(network, ip, expiry), &mut tag);
        if !ct_eq(&tag, &nonce[16..]) {
            // A nonce from an earlier run has a valid shape but a foreign MAC;
            // the client cannot tell the two apart and need not: both mean
            // "take the fresh nonce and retry". Report it as stale so a
            // restarted MPR costs the client one round trip, not an alarm.
            return NonceCheck::Stale;
        }
        if now.saturating_duration_since(self.epoch).as_secs() >= expiry {
            return NonceCheck::Stale;
        }
        NonceCheck::Valid
    }

    /// When the nonces minted at `now` stop being valid.
    pub(crate) fn valid_until(&self, now: Instant) -> Instant {
        now + self.lifetime
    }

    fn tag(&self, network: &str, ip: IpAddr, expiry: u64) -> [u8; 8] {
        // The key is 32 bytes, which HMAC always accepts.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.secret)
            .unwrap_or_else(|_| unreachable_hmac());
        mac.update(network.as_bytes());
        mac.update(&[0]);
        mac.update(&expiry.to_be_bytes());
        match ip {
            IpAddr::V4(a) => mac.update(&a.octets()),
            IpAddr::V6(a) => mac.update(&a.octets()),
        }
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; 8];
        out.copy_from_slice(&full[..8]);
        out
    }
}

#[cold]
fn unreachable_hmac() -> Hmac<Sha256> {
    // HMAC takes keys of any length; this cannot happen. Fall back to a
    // fixed key rather than panic: nonces would still verify consistently.
    <Hmac<Sha256> as KeyInit>::new(&Default::default())
}

fn hex(bytes: &[u8], out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = DIGITS[usize::from(b >> 4)];
        out[2 * i + 1] = DIGITS[usize::from(b & 0xf)];
    }
}

fn unhex_u64(s: &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for &c in s {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        v = (v << 4) | u64::from(d);
    }
    Some(v)
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A transaction the MPR accepted: who sent it, and what it answered.
pub(crate) struct Seen {
    pub(crate) local: SocketAddr,
    pub(crate) remote: SocketAddr,
    /// The response sent (empty for an indication).
    pub(crate) response: Box<[u8]>,
    expires: Instant,
}

/// Every authenticated transaction id accepted within the nonce lifetime.
/// Entries all live the same time, so a FIFO queue is expiry order.
pub(crate) struct ReplayCache {
    seen: FastMap<TransactionId, Seen>,
    order: VecDeque<(Instant, TransactionId)>,
    capacity: usize,
}

/// What the cache says about a transaction id.
pub(crate) enum Replay<'a> {
    /// Never seen: process it.
    Fresh,
    /// Seen from the same addresses: a retransmission; resend this.
    Retransmission(&'a [u8]),
    /// Seen from elsewhere: a replay.
    Replayed,
}

impl ReplayCache {
    pub(crate) fn new(capacity: usize, hash_seed: u64) -> Self {
        Self {
            seen: fast_map(hash_seed),
            order: VecDeque::new(),
            capacity,
        }
    }

    pub(crate) fn prune(&mut self, now: Instant) {
        while let Some(&(t, id)) = self.order.front() {
            if t > now {
                break;
            }
            self.order.pop_front();
            if self.seen.get(&id).is_some_and(|s| s.expires <= now) {
                self.seen.remove(&id);
            }
        }
    }

    pub(crate) fn lookup(
        &self,
        id: &TransactionId,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Replay<'_> {
        match self.seen.get(id) {
            None => Replay::Fresh,
            Some(s) if s.local == local && s.remote == remote => {
                Replay::Retransmission(&s.response)
            }
            Some(_) => Replay::Replayed,
        }
    }

    /// Remembers a transaction. When full, the oldest is forgotten: that
    /// re-opens a replay only from the original source IP, since nonces
    /// are bound to it.
    /// Replaces the cached response of a known transaction (a reserve
    /// re-answered before its answer left); unknown ids are ignored.
    pub(crate) fn replace(&mut self, id: &TransactionId, response: &[u8]) {
        if let Some(s) = self.seen.get_mut(id) {
            s.response = response.into();
        }
    }

    pub(crate) fn insert(
        &mut self,
        id: TransactionId,
        seen_until: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        response: &[u8],
    ) {
        while self.seen.len() >= self.capacity.max(1) {
            let Some((_, old)) = self.order.pop_front() else {
                break;
            };
            self.seen.remove(&old);
        }
        self.seen.insert(
            id,
            Seen {
                local,
                remote,
                response: response.into(),
                expires: seen_until,
            },
        );
        self.order.push_back((seen_until, id));
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.seen.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_round_trip_stale_foreign_and_bound_to_the_source_ip() {
        let t0 = crate::test_instant();
        let ip: IpAddr = "198.51.100.1".parse().unwrap();
        let other: IpAddr = "192.0.2.66".parse().unwrap();
        let n = Nonces::new([3; 32], t0, Duration::from_secs(600));
        let nonce = n.mint("corp1", ip, t0);
        assert!(nonce.iter().all(u8::is_ascii_hexdigit));
        assert_eq!(
            n.check("corp1", ip, Some(&nonce), t0 + Duration::from_secs(599)),
            NonceCheck::Valid
        );
        assert_eq!(
            n.check("corp1", ip, Some(&nonce), t0 + Duration::from_secs(600)),
            NonceCheck::Stale
        );
        // From another IP, or for another network, the MAC does not match.
        assert_eq!(n.check("corp1", other, Some(&nonce), t0), NonceCheck::Stale);
        assert_eq!(n.check("corp2", ip, Some(&nonce), t0), NonceCheck::Stale);
        assert_eq!(n.check("corp1", ip, None, t0), NonceCheck::Invalid);
        assert_eq!(
            n.check("corp1", ip, Some(b"short"), t0),
            NonceCheck::Invalid
        );
        let mut bad = nonce;
        bad[0] = b'z';
        assert_eq!(n.check("corp1", ip, Some(&bad), t0), NonceCheck::Invalid);
        // A restarted MPR has another secret: the old nonce is stale.
        let restarted = Nonces::new([4; 32], t0, Duration::from_secs(600));
        assert_eq!(
            restarted.check("corp1", ip, Some(&nonce), t0),
            NonceCheck::Stale
        );
        // The cached paths agree with the full ones.
        let mut slot = None;
        let a = n.mint_cached("corp1", ip, &mut slot, t0);
        assert_eq!(a, nonce);
        assert_eq!(
            n.check_cached("corp1", ip, &slot, Some(&a), t0),
            NonceCheck::Valid
        );
        assert_eq!(
            n.check_cached("corp1", other, &slot, Some(&a), t0),
            NonceCheck::Stale
        );
        assert_eq!(
            n.check_cached("corp1", ip, &slot, Some(&a), t0 + Duration::from_secs(600)),
            NonceCheck::Stale
        );
    }

    #[test]
    fn replay_cache_tells_retransmission_from_replay_and_expires() {
        let t0 = crate::test_instant();
        let a: SocketAddr = "198.51.100.1:4000".parse().unwrap();
        let b: SocketAddr = "198.51.100.2:4000".parse().unwrap();
        let l: SocketAddr = "203.0.113.1:3478".parse().unwrap();
        let id = TransactionId([1; 12]);
        let mut c = ReplayCache::new(2, 1);
        assert!(matches!(c.lookup(&id, l, a), Replay::Fresh));
        c.insert(id, t0 + Duration::from_secs(10), l, a, b"resp");
        assert!(matches!(c.lookup(&id, l, a), Replay::Retransmission(r) if r == b"resp"));
        assert!(matches!(c.lookup(&id, l, b), Replay::Replayed));
        c.insert(
            TransactionId([2; 12]),
            t0 + Duration::from_secs(10),
            l,
            a,
            b"",
        );
        c.prune(t0 + Duration::from_secs(9));
        assert_eq!(c.len(), 2);
        // Full: the oldest is forgotten to make room.
        c.insert(
            TransactionId([3; 12]),
            t0 + Duration::from_secs(11),
            l,
            a,
            b"",
        );
        assert_eq!(c.len(), 2);
        assert!(matches!(c.lookup(&id, l, b), Replay::Fresh));
        assert!(matches!(
            c.lookup(&TransactionId([3; 12]), l, b),
            Replay::Replayed
        ));
        c.prune(t0 + Duration::from_secs(11));
        assert_eq!(c.len(), 0);
    }
}
