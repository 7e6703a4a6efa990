//! Relay port allocator for the MPR.
//!
//! The MPR relays RTP/RTCP on pairs of UDP ports `(even, even + 1)` taken from
//! a configured range. A freed pair is quarantined for a fixed time
//! (wire-format §5, "port quarantine", 30 s by default) so that late packets
//! of the old call do not leak into a new one.
//!
//! Every operation is O(1) (allocation and release amortised O(1) because of
//! quarantine expiry):
//!
//! * the free pairs are a `Vec` of pair indices; allocation draws a random
//!   position and `swap_remove`s it, and a position index per pair makes
//!   [`Allocator::reserve`] O(1) too;
//! * the quarantine is a FIFO queue: the duration is constant, so with a
//!   monotonic clock insertion order is expiry order;
//! * every pair has a state (free, in use, quarantined) so double frees and
//!   foreign pairs are reported as typed errors.
//!
//! The allocator is sans-IO: time is the `now` parameter and randomness comes
//! from the caller's seeded [`Rng`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::rng::Rng;

/// An inclusive range of UDP ports from which relay pairs are carved.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct PortRange {
    /// The lowest port of the range (inclusive).
    pub first: u16,
    /// The highest port of the range (inclusive).
    pub last: u16,
}

impl PortRange {
    /// A range `first..=last`; it must hold at least one `(even, even + 1)`
    /// pair, otherwise [`PortError::EmptyRange`].
    pub fn new(first: u16, last: u16) -> Result<Self, PortError> {
        let range = Self { first, last };
        if range.pair_count() == 0 {
            return Err(PortError::EmptyRange { first, last });
        }
        Ok(range)
    }

    /// The RTP port of the lowest pair (first even port), as `u32` so that
    /// `first = 65535` does not overflow.
    fn base(self) -> u32 {
        let first = u32::from(self.first);
        first + (first & 1)
    }

    /// How many `(even, even + 1)` pairs fit in the range.
    pub fn pair_count(self) -> usize {
        let base = self.base();
        let last = u32::from(self.last);
        if base + 1 > last {
            return 0;
        }
        ((last - 1 - base) / 2 + 1) as usize
    }

    /// Whether `pair` is one of this range's pairs (even RTP port, both ports
    /// inside the range).
    pub fn contains(self, pair: PortPair) -> bool {
        self.index_of(pair).is_some()
    }

    fn index_of(self, pair: PortPair) -> Option<usize> {
        let rtp = u32::from(pair.rtp);
        if rtp & 1 != 0 || rtp < self.base() || rtp + 1 > u32::from(self.last) {
            return None;
        }
        Some(((rtp - self.base()) / 2) as usize)
    }

    fn pair_at(self, index: usize) -> PortPair {
        // `index < pair_count() <= 32768`, so the result is at most 65534.
        let rtp = self.base() + 2 * index as u32;
        PortPair {
            rtp: u16::try_from(rtp).unwrap_or(u16::MAX - 1),
        }
    }
}

/// A relay port pair: RTP on the even port `rtp`, RTCP on `rtp + 1`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct PortPair {
    /// The (even) RTP port.
    pub rtp: u16,
}

impl PortPair {
    /// The RTCP port, `rtp + 1` (saturating at 65535 for a malformed odd
    /// `rtp`; pairs handed out by the [`Allocator`] always have an even `rtp`).
    pub fn rtcp(self) -> u16 {
        self.rtp.saturating_add(1)
    }
}

/// Why an allocator operation failed.
#[non_exhaustive]
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum PortError {
    /// No free pair: all are in use or quarantined.
    #[error("relay ports exhausted: {in_use} pairs in use, {quarantined} quarantined")]
    Exhausted {
        /// Pairs in use when allocation failed.
        in_use: usize,
        /// Pairs in quarantine when allocation failed.
        quarantined: usize,
    },
    /// Release of a pair that is not in use (double free, or never allocated).
    #[error("port pair {rtp} is not allocated")]
    NotAllocated {
        /// RTP port of the pair.
        rtp: u16,
    },
    /// Reservation of a pair that is already in use.
    #[error("port pair {rtp} is already in use")]
    AlreadyInUse {
        /// RTP port of the pair.
        rtp: u16,
    },
    /// Reservation of a pair that is still in quarantine.
    #[error("port pair {rtp} is in quarantine")]
    Quarantined {
        /// RTP port of the pair.
        rtp: u16,
    },
    /// A pair that is not one of the range's pairs (outside it, or odd RTP port).
    #[error("port pair {rtp} is outside the relay range or not even")]
    OutOfRange {
        /// RTP port of the pair.
        rtp: u16,
    },
    /// A range that holds no `(even, even + 1)` pair.
    #[error("port range {first}..={last} holds no even/odd pair")]
    EmptyRange {
        /// First port of the rejected range.
        first: u16,
        /// Last port of the rejected range.
        last: u16,
    },
}

impl PortError {
    /// A stable short name for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Exhausted { .. } => "exhausted",
            Self::NotAllocated { .. } => "not_allocated",
            Self::AlreadyInUse { .. } => "already_in_use",
            Self::Quarantined { .. } => "quarantined",
            Self::OutOfRange { .. } => "out_of_range",
            Self::EmptyRange { .. } => "empty_range",
        }
    }
}

/// State of one pair.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Slot {
    /// In the free list at this position.
    Free(u32),
    InUse,
    Quarantined,
}

/// Allocates relay port pairs at random from a [`PortRange`], with a
/// quarantine after release. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct Allocator {
    range: PortRange,
    quarantine: Duration,
    rng: Rng,
    /// Indices of free pairs, in no particular order.
    free: Vec<u32>,
    /// State of every pair, by index.
    slots: Vec<Slot>,
    /// Released pairs with their expiry (`None`: the expiry overflowed
    /// `Instant`, i.e. never), oldest first.
    quarantined: VecDeque<(Option<Instant>, u32)>,
    in_use: usize,
}

impl Allocator {
    /// An allocator with every pair of `range` free.
    pub fn new(range: PortRange, quarantine: Duration, rng: Rng) -> Self {
        let n = range.pair_count();
        // `n <= 32768`, so indices fit in u32.
        let free: Vec<u32> = (0..n as u32).collect();
        let slots = (0..n as u32).map(Slot::Free).collect();
        Self {
            range,
            quarantine,
            rng,
            free,
            slots,
            quarantined: VecDeque::new(),
            in_use: 0,
        }
    }

    /// The range this allocator serves.
    pub fn range(&self) -> PortRange {
        self.range
    }

    /// Returns to the free list every quarantined pair whose quarantine ended
    /// at or before `now`. [`allocate`](Self::allocate) does this itself;
    /// call it to refresh the counters.
    pub fn expire(&mut self, now: Instant) {
        while let Some(&(Some(until), index)) = self.quarantined.front() {
            if until > now {
                break;
            }
            self.quarantined.pop_front();
            self.push_free(index);
        }
    }

    /// When the oldest quarantined pair becomes free again, if any will.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.quarantined.front().and_then(|(until, _)| *until)
    }

    /// A random free pair, after first releasing the quarantined pairs whose
    /// time is up. [`PortError::Exhausted`] when none is free.
    pub fn allocate(&mut self, now: Instant) -> Result<PortPair, PortError> {
        self.expire(now);
        if self.free.is_empty() {
            return Err(PortError::Exhausted {
                in_use: self.in_use,
                quarantined: self.quarantined.len(),
            });
        }
        let pos = self.rng.below(self.free.len());
        let index = self.free.swap_remove(pos);
        if let Some(&moved) = self.free.get(pos) {
            self.set_slot(moved, Slot::Free(pos as u32));
        }
        self.set_slot(index, Slot::InUse);
        self.in_use += 1;
        Ok(self.range.pair_at(index as usize))
    }

    /// Takes the specific pair `pair` (to restore state after a restart).
    /// Fails if the pair is not one of the range's, in use, or quarantined.
    pub fn reserve(&mut self, pair: PortPair) -> Result<(), PortError> {
        let index = self.index_of(pair)?;
        match self.slots[index] {
            Slot::InUse => Err(PortError::AlreadyInUse { rtp: pair.rtp }),
            Slot::Quarantined => Err(PortError::Quarantined { rtp: pair.rtp }),
            Slot::Free(pos) => {
                let pos = pos as usize;
                self.free.swap_remove(pos);
                if let Some(&moved) = self.free.get(pos) {
                    self.set_slot(moved, Slot::Free(pos as u32));
                }
                self.slots[index] = Slot::InUse;
                self.in_use += 1;
                Ok(())
            }
        }
    }

    /// Puts an in-use pair into quarantine until `now + quarantine`.
    /// [`PortError::NotAllocated`] on a double free or a pair that was never
    /// handed out; [`PortError::OutOfRange`] on a foreign pair.
    pub fn release(&mut self, now: Instant, pair: PortPair) -> Result<(), PortError> {
        let index = self.index_of(pair)?;
        if self.slots[index] != Slot::InUse {
            return Err(PortError::NotAllocated { rtp: pair.rtp });
        }
        self.slots[index] = Slot::Quarantined;
        self.in_use -= 1;
        self.quarantined
            .push_back((now.checked_add(self.quarantine), index as u32));
        Ok(())
    }

    /// Returns an in-use pair straight to the free list, without
    /// quarantine: for a pair whose address never left the process, so no
    /// late packet can be on its way to it.
    pub fn unallocate(&mut self, pair: PortPair) -> Result<(), PortError> {
        let index = self.index_of(pair)?;
        if self.slots[index] != Slot::InUse {
            return Err(PortError::NotAllocated { rtp: pair.rtp });
        }
        self.in_use -= 1;
        self.push_free(index as u32);
        Ok(())
    }

    /// Pairs ready to be allocated (quarantine expiry is only processed by
    /// [`allocate`](Self::allocate) and [`expire`](Self::expire)).
    pub fn free(&self) -> usize {
        self.free.len()
    }

    /// Pairs released and not yet back in the free list.
    pub fn quarantined(&self) -> usize {
        self.quarantined.len()
    }

    /// Pairs handed out and not released.
    pub fn in_use(&self) -> usize {
        self.in_use
    }

    /// Total pairs in the range: `free() + quarantined() + in_use()`.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    fn index_of(&self, pair: PortPair) -> Result<usize, PortError> {
        self.range
            .index_of(pair)
            .ok_or(PortError::OutOfRange { rtp: pair.rtp })
    }

    fn push_free(&mut self, index: u32) {
        self.set_slot(index, Slot::Free(self.free.len() as u32));
        self.free.push(index);
    }

    fn set_slot(&mut self, index: u32, slot: Slot) {
        if let Some(s) = self.slots.get_mut(index as usize) {
            *s = slot;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet};

    const Q: Duration = Duration::from_secs(30);

    /// Tests need some base instant; the value itself never matters.
    #[allow(clippy::disallowed_methods)]
    fn t0() -> Instant {
        Instant::now()
    }

    fn alloc(first: u16, last: u16, seed: u8) -> Allocator {
        Allocator::new(
            PortRange::new(first, last).unwrap(),
            Q,
            Rng::from_seed([seed; 32]),
        )
    }

    #[test]
    fn an_unused_pair_goes_back_without_quarantine_and_only_once() {
        let mut a = alloc(30_000, 30_003, 1);
        let now = t0();
        let p = a.allocate(now).unwrap();
        let q = a.allocate(now).unwrap();
        assert!(a.allocate(now).is_err());
        a.unallocate(p).unwrap();
        assert_eq!((a.free(), a.quarantined(), a.in_use()), (1, 0, 1));
        assert_eq!(a.unallocate(p), Err(PortError::NotAllocated { rtp: p.rtp }));
        assert_eq!(a.allocate(now).unwrap(), p, "at once, not after 30 s");
        a.release(now, q).unwrap();
        assert_eq!(a.unallocate(q), Err(PortError::NotAllocated { rtp: q.rtp }));
    }

    #[test]
    fn range_validation_and_capacity() {
        assert_eq!(
            PortRange::new(5, 5),
            Err(PortError::EmptyRange { first: 5, last: 5 })
        );
        assert_eq!(
            PortRange::new(5, 6),
            Err(PortError::EmptyRange { first: 5, last: 6 })
        );
        assert_eq!(
            PortRange::new(10, 9),
            Err(PortError::EmptyRange { first: 10, last: 9 })
        );
        assert!(PortRange::new(65535, 65535).is_err());
        assert_eq!(PortRange::new(6, 7).unwrap().pair_count(), 1);
        assert_eq!(PortRange::new(5, 8).unwrap().pair_count(), 1);
        assert_eq!(PortRange::new(5, 9).unwrap().pair_count(), 2);
        assert_eq!(PortRange::new(0, 65535).unwrap().pair_count(), 32768);
        assert_eq!(PortRange::new(1024, 65535).unwrap().pair_count(), 32256);
        assert_eq!(alloc(1024, 65535, 0).capacity(), 32256);
    }

    #[test]
    fn pairs_are_even_odd_and_inside_range() {
        let mut a = alloc(5, 20, 1);
        let now = t0();
        let mut seen = BTreeSet::new();
        while let Ok(p) = a.allocate(now) {
            assert_eq!(p.rtp % 2, 0);
            assert_eq!(p.rtcp(), p.rtp + 1);
            assert!(p.rtp >= 5 && p.rtcp() <= 20, "{p:?}");
            assert!(seen.insert(p), "handed out twice: {p:?}");
        }
        let expected: BTreeSet<_> = [6, 8, 10, 12, 14, 16, 18]
            .into_iter()
            .map(|rtp| PortPair { rtp })
            .collect();
        assert_eq!(seen, expected);
        // Top of the port space.
        let mut top = alloc(65532, 65535, 1);
        let mut got: Vec<_> = (0..2).map(|_| top.allocate(now).unwrap().rtp).collect();
        got.sort_unstable();
        assert_eq!(got, [65532, 65534]);
    }

    #[test]
    fn exhaustion_then_quarantine_returns_pairs() {
        let mut a = alloc(100, 107, 2); // 4 pairs
        let t0 = t0();
        let pairs: Vec<_> = (0..4).map(|_| a.allocate(t0).unwrap()).collect();
        assert_eq!(
            a.allocate(t0),
            Err(PortError::Exhausted {
                in_use: 4,
                quarantined: 0
            })
        );
        a.release(t0, pairs[1]).unwrap();
        assert_eq!(a.next_expiry(), Some(t0 + Q));
        assert_eq!(
            a.allocate(t0 + Q - Duration::from_millis(1)),
            Err(PortError::Exhausted {
                in_use: 3,
                quarantined: 1
            })
        );
        assert_eq!(a.allocate(t0 + Q), Ok(pairs[1]));
        assert_eq!(a.quarantined(), 0);
        assert_eq!(a.next_expiry(), None);
    }

    #[test]
    fn typed_errors_on_misuse() {
        let mut a = alloc(100, 107, 3);
        let now = t0();
        let p = a.allocate(now).unwrap();
        a.release(now, p).unwrap();
        assert_eq!(
            a.release(now, p),
            Err(PortError::NotAllocated { rtp: p.rtp })
        );
        assert_eq!(a.reserve(p), Err(PortError::Quarantined { rtp: p.rtp }));
        let other = (0..4)
            .map(|i| PortPair { rtp: 100 + 2 * i })
            .find(|q| *q != p)
            .unwrap();
        assert_eq!(
            a.release(now, other),
            Err(PortError::NotAllocated { rtp: other.rtp })
        );
        for rtp in [98, 101, 108, 65535] {
            let e = a.release(now, PortPair { rtp }).unwrap_err();
            assert_eq!(e, PortError::OutOfRange { rtp });
            assert_eq!(e.kind(), "out_of_range");
            assert_eq!(a.reserve(PortPair { rtp }), Err(e));
        }
        a.reserve(other).unwrap();
        assert_eq!(
            a.reserve(other),
            Err(PortError::AlreadyInUse { rtp: other.rtp })
        );
        assert_eq!((a.free(), a.in_use(), a.quarantined()), (2, 1, 1));
    }

    #[test]
    fn reserve_keeps_free_list_consistent() {
        let mut a = alloc(0, 199, 4); // 100 pairs
        let now = t0();
        for rtp in (0..200).step_by(4) {
            a.reserve(PortPair { rtp }).unwrap();
        }
        assert_eq!(a.in_use(), 50);
        let mut got = BTreeSet::new();
        while let Ok(p) = a.allocate(now) {
            assert_eq!(p.rtp % 4, 2, "reserved pair handed out: {p:?}");
            assert!(got.insert(p));
        }
        assert_eq!(got.len(), 50);
    }

    #[test]
    fn allocation_is_random_and_seeded() {
        let now = t0();
        let seq = |seed| {
            let mut a = alloc(1024, 65535, seed);
            (0..20)
                .map(|_| a.allocate(now).unwrap().rtp)
                .collect::<Vec<_>>()
        };
        assert_eq!(seq(9), seq(9));
        assert_ne!(seq(9), seq(10));
        let s = seq(9);
        let sequential: Vec<u16> = (0..20).map(|i| 1024 + 2 * i).collect();
        assert_ne!(s, sequential);
    }

    #[test]
    fn zero_quarantine_reuses_at_same_instant() {
        let mut a = Allocator::new(
            PortRange::new(10, 11).unwrap(),
            Duration::ZERO,
            Rng::from_seed([0; 32]),
        );
        let now = t0();
        let p = a.allocate(now).unwrap();
        a.release(now, p).unwrap();
        assert_eq!(a.allocate(now), Ok(p));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Allocate,
        /// Release the in-use pair at this (modulo) position.
        Release(usize),
        /// Release a pair by raw port (may be foreign / not allocated).
        ReleaseRaw(u16),
        Reserve(u16),
        AdvanceMs(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => Just(Op::Allocate),
            3 => any::<usize>().prop_map(Op::Release),
            1 => (90u16..140).prop_map(Op::ReleaseRaw),
            1 => (90u16..140).prop_map(Op::Reserve),
            2 => (0u64..20_000).prop_map(Op::AdvanceMs),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Model check against a plain set/map reference.
        #[test]
        fn matches_reference_model(seed in any::<u8>(), ops in proptest::collection::vec(op(), 1..300)) {
            let range = PortRange::new(100, 131).unwrap(); // 16 pairs
            let mut a = Allocator::new(range, Q, Rng::from_seed([seed; 32]));
            let t0 = t0();
            let mut now = t0;
            let mut in_use: BTreeSet<u16> = BTreeSet::new();
            // rtp -> quarantine end, for pairs not yet back in the free list
            let mut quarantine: BTreeMap<u16, Instant> = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Allocate => {
                        quarantine.retain(|_, until| *until > now);
                        let free = 16 - in_use.len() - quarantine.len();
                        match a.allocate(now) {
                            Ok(p) => {
                                prop_assert!(free > 0);
                                prop_assert!(!in_use.contains(&p.rtp), "in-use pair handed out: {p:?}");
                                prop_assert!(!quarantine.contains_key(&p.rtp), "quarantined pair handed out: {p:?}");
                                prop_assert!(range.contains(p));
                                in_use.insert(p.rtp);
                            }
                            Err(e) => {
                                prop_assert_eq!(free, 0);
                                prop_assert_eq!(e, PortError::Exhausted { in_use: in_use.len(), quarantined: quarantine.len() });
                            }
                        }
                    }
                    Op::Release(i) => {
                        if !in_use.is_empty() {
                            let rtp = *in_use.iter().nth(i % in_use.len()).unwrap();
                            a.release(now, PortPair { rtp }).unwrap();
                            in_use.remove(&rtp);
                            quarantine.insert(rtp, now + Q);
                        }
                    }
                    Op::ReleaseRaw(rtp) => {
                        let r = a.release(now, PortPair { rtp });
                        if !range.contains(PortPair { rtp }) {
                            prop_assert_eq!(r, Err(PortError::OutOfRange { rtp }));
                        } else if in_use.remove(&rtp) {
                            prop_assert_eq!(r, Ok(()));
                            quarantine.insert(rtp, now + Q);
                        } else {
                            prop_assert_eq!(r, Err(PortError::NotAllocated { rtp }));
                        }
                    }
                    Op::Reserve(rtp) => {
                        let r = a.reserve(PortPair { rtp });
                        if !range.contains(PortPair { rtp }) {
                            prop_assert_eq!(r, Err(PortError::OutOfRange { rtp }));
                        } else if in_use.contains(&rtp) {
                            prop_assert_eq!(r, Err(PortError::AlreadyInUse { rtp }));
                        } else if quarantine.contains_key(&rtp) {
                            prop_assert_eq!(r, Err(PortError::Quarantined { rtp }));
                        } else {
                            prop_assert_eq!(r, Ok(()));
                            in_use.insert(rtp);
                        }
                    }
                    Op::AdvanceMs(ms) => now += Duration::from_millis(ms),
                }
                prop_assert_eq!(a.in_use(), in_use.len());
                prop_assert_eq!(a.quarantined(), quarantine.len());
                prop_assert_eq!(a.free() + a.in_use() + a.quarantined(), a.capacity());
            }
        }

        /// Same seed and same operations give the same pairs.
        #[test]
        fn same_seed_same_sequence(seed in any::<[u8; 32]>(), ops in proptest::collection::vec(op(), 1..200)) {
            let range = PortRange::new(1000, 1063).unwrap();
            let mut a = Allocator::new(range, Q, Rng::from_seed(seed));
            let mut b = Allocator::new(range, Q, Rng::from_seed(seed));
            let mut now = t0();
            let mut held = Vec::new();
            for op in ops {
                match op {
                    Op::Allocate => {
                        let (x, y) = (a.allocate(now), b.allocate(now));
                        prop_assert_eq!(&x, &y);
                        if let Ok(p) = x { held.push(p); }
                    }
                    Op::Release(i) if !held.is_empty() => {
                        let p = held.swap_remove(i % held.len());
                        prop_assert_eq!(a.release(now, p), b.release(now, p));
                    }
                    Op::AdvanceMs(ms) => now += Duration::from_millis(ms),
                    _ => {}
                }
            }
        }
    }
}
