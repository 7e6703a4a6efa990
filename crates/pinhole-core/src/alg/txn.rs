//! A transaction table that keeps what was sent for each transaction, so
//! a retransmitted request or response is answered with the same bytes
//! and never planned twice (MGCP's T-hist, H.248's
//! `TransactionResponseAck`). Keys and what else a protocol keeps per
//! transaction are the protocol's.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

use super::Rejection;
use crate::types::Transmit;

/// Which message of a transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Leg {
    /// The request (command) as sent on.
    Request,
    /// The final response as sent on.
    Response,
}

/// One transaction: the protocol's data, and the datagrams sent for it.
#[derive(Clone, Debug)]
pub struct Entry<V> {
    /// What the protocol keeps per transaction.
    pub data: V,
    /// The request as sent on (when it came first in its datagram).
    pub request: Option<Transmit>,
    /// The final response as sent on.
    pub response: Option<Transmit>,
    /// The latest message of the transaction.
    pub last: Instant,
}

impl<V> Entry<V> {
    /// What was sent for `leg`.
    pub fn sent(&self, leg: Leg) -> Option<&Transmit> {
        match leg {
            Leg::Request => self.request.as_ref(),
            Leg::Response => self.response.as_ref(),
        }
    }
}

/// Transactions by key, at most `max` at once.
#[derive(Debug)]
pub struct Transactions<K, V> {
    map: HashMap<K, Entry<V>>,
    max: usize,
}

impl<K: Clone + Eq + Hash, V> Transactions<K, V> {
    /// At most `max` transactions at once.
    pub fn new(max: usize) -> Self {
        Self {
            map: HashMap::new(),
            max,
        }
    }

    /// Transactions now.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True with no transaction.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The transaction `key`.
    pub fn get(&self, key: &K) -> Option<&Entry<V>> {
        self.map.get(key)
    }

    /// The transaction `key`, to change.
    pub fn get_mut(&mut self, key: &K) -> Option<&mut Entry<V>> {
        self.map.get_mut(key)
    }

    /// True when `key` is known.
    pub fn contains(&self, key: &K) -> bool {
        self.map.contains_key(key)
    }

    /// Whether a new transaction `key` fits; `refusal` is the protocol's
    /// answer when the table is full. A known key always fits.
    pub fn room(&self, key: &K, refusal: Rejection) -> Result<(), Rejection> {
        if self.map.len() >= self.max && !self.map.contains_key(key) {
            return Err(refusal);
        }
        Ok(())
    }

    /// Starts (or restarts) transaction `key`, forgetting what was sent.
    pub fn insert(&mut self, now: Instant, key: K, data: V) -> &mut Entry<V> {
        self.map
            .entry(key)
            .insert_entry(Entry {
                data,
                request: None,
                response: None,
                last: now,
            })
            .into_mut()
    }

    /// Keeps what was sent for `leg` of `key` (nothing when `key` is not
    /// known), for retransmissions.
    pub fn remember(&mut self, now: Instant, key: &K, leg: Leg, sent: &Transmit) {
        if let Some(e) = self.map.get_mut(key) {
            e.last = now;
            match leg {
                Leg::Request => e.request = Some(sent.clone()),
                Leg::Response => e.response = Some(sent.clone()),
            }
        }
    }

    /// What was sent for `leg` of `key`, to send again.
    pub fn replay(&self, key: &K, leg: Leg) -> Option<Transmit> {
        self.map.get(key)?.sent(leg).cloned()
    }

    /// Removes transaction `key`.
    pub fn remove(&mut self, key: &K) -> Option<Entry<V>> {
        self.map.remove(key)
    }

    /// Removes and returns every transaction quiet for `life`.
    pub fn expire(&mut self, now: Instant, life: Duration) -> Vec<(K, Entry<V>)> {
        let gone: Vec<K> = self
            .map
            .iter()
            .filter(|(_, e)| now >= e.last + life)
            .map(|(k, _)| k.clone())
            .collect();
        gone.into_iter()
            .filter_map(|k| self.map.remove(&k).map(|e| (k, e)))
            .collect()
    }

    /// Every transaction.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &Entry<V>)> {
        self.map.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(p: &[u8]) -> Transmit {
        Transmit {
            local: "127.0.0.1:1".parse().unwrap(),
            remote: "127.0.0.1:2".parse().unwrap(),
            payload: p.to_vec(),
            flow: Default::default(),
        }
    }

    #[test]
    fn remembers_replays_and_expires() {
        let now = crate::test_instant();
        let mut x: Transactions<u32, &str> = Transactions::new(2);
        x.insert(now, 1, "crcx");
        assert_eq!(x.replay(&1, Leg::Request), None);
        x.remember(now, &1, Leg::Request, &t(b"CRCX"));
        x.remember(now, &9, Leg::Request, &t(b"nobody"));
        assert_eq!(x.replay(&1, Leg::Request), Some(t(b"CRCX")));
        assert_eq!(x.replay(&1, Leg::Response), None);
        x.remember(now + Duration::from_secs(20), &1, Leg::Response, &t(b"200"));
        x.insert(now, 2, "mdcx");
        let full = Rejection::new(409, "Internal overload");
        assert_eq!(x.room(&3, full), Err(full));
        assert_eq!(x.room(&2, full), Ok(()), "a known key always fits");
        let gone = x.expire(now + Duration::from_secs(30), Duration::from_secs(30));
        assert_eq!(gone.len(), 1, "the answer kept 1 alive");
        assert_eq!(gone[0].0, 2);
        assert_eq!(x.get(&1).unwrap().data, "crcx");
        assert_eq!(x.len(), 1);
    }
}
