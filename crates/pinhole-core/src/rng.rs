//! Seeded randomness. The engines never touch the OS generator: the caller
//! passes a 32-byte seed (from the OS in production, fixed in tests), so a
//! test run is reproducible bit for bit.

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{Rng as _, SeedableRng};

/// A cryptographically strong generator seeded by the caller.
#[derive(Debug, Clone)]
pub struct Rng(ChaCha20Rng);

impl Rng {
    /// A generator whose whole output is determined by `seed`.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self(ChaCha20Rng::from_seed(seed))
    }

    /// Derives an independent generator (quinn derives one per connection
    /// the same way), so consumers do not disturb each other's sequences.
    pub fn fork(&mut self) -> Self {
        let mut seed = [0u8; 32];
        self.fill(&mut seed);
        Self::from_seed(seed)
    }

    /// Fills `out` with random bytes.
    pub fn fill(&mut self, out: &mut [u8]) {
        self.0.fill_bytes(out);
    }

    /// A uniformly random `u64`.
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// A uniformly random index in `0..n`; `n` must be non-zero (returns 0 otherwise).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        // Lemire's multiply-shift; the bias for n far below 2^64 is negligible
        // for port choice and does not matter for correctness.
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// A fresh 96-bit STUN transaction id.
    pub fn transaction_id(&mut self) -> [u8; 12] {
        let mut id = [0u8; 12];
        self.fill(&mut id);
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_forks_differ() {
        let mut a = Rng::from_seed([7; 32]);
        let mut b = Rng::from_seed([7; 32]);
        assert_eq!(a.next_u64(), b.next_u64());
        let mut fa = a.fork();
        assert_ne!(fa.next_u64(), a.next_u64());
    }

    #[test]
    fn below_stays_in_range() {
        let mut r = Rng::from_seed([1; 32]);
        let mut seen = [false; 5];
        for _ in 0..200 {
            let i = r.below(5);
            assert!(i < 5);
            seen[i] = true;
        }
        assert!(seen.iter().all(|s| *s), "all five values drawn: {seen:?}");
        assert_eq!(r.below(0), 0);
    }
}
