//! Keyed hashes: a fast hasher for the engines' internal tables, and
//! [`keyed`] for the ids an ALG derives from a secret (branches, tags,
//! LEG-KEYs, connection ids).
//!
//! SipHash (std's default) is the right choice for keys an attacker picks
//! freely. The tables hashed here hold keys an attacker cannot choose —
//! engine-assigned leg ids, relay ports, and transaction ids and pinholes
//! that are only inserted after their message passed the integrity check —
//! so a multiply-rotate hash keyed with a per-engine random seed is enough,
//! and it is several times cheaper on the CMPH path.

use std::hash::{BuildHasher, Hasher};

/// Builds [`FastHasher`]s with the engine's seed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FastState(u64);

impl FastState {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed | 1)
    }
}

impl BuildHasher for FastState {
    type Hasher = FastHasher;

    fn build_hasher(&self) -> FastHasher {
        FastHasher(self.0)
    }
}

/// Multiply-rotate over 8-byte words (the FxHash construction, keyed).
#[derive(Clone, Copy, Debug)]
pub(crate) struct FastHasher(u64);

const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FastHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(K);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 59));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // MurmurHash3's fmix64: the multiply above only carries entropy
        // upward, and hashbrown takes buckets from the low bits and tags
        // from the top seven, so every bit must reach both ends.
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

/// A 64-bit keyed hash of `parts` (FNV-1a over each part, a separator
/// after each, then MurmurHash3's finaliser), for ids an ALG derives from
/// its secret: the same parts give the same id, so a retransmission maps
/// to the same branch or LEG-KEY. Not a MAC: nothing here authenticates.
///
/// ```
/// use pinhole_core::hash::keyed;
/// assert_eq!(keyed(7, &[b"call", b"tag"]), keyed(7, &[b"call", b"tag"]));
/// assert_ne!(keyed(7, &[b"call", b"tag"]), keyed(8, &[b"call", b"tag"]));
/// assert_ne!(keyed(7, &[b"ca", b"lltag"]), keyed(7, &[b"call", b"tag"]));
/// ```
pub fn keyed(key: u64, parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ key;
    for p in parts {
        for &b in *p {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// A `HashMap` with the fast keyed hasher.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, FastState>;

/// An empty [`FastMap`] keyed with `seed`.
pub(crate) fn fast_map<K, V>(seed: u64) -> FastMap<K, V> {
    std::collections::HashMap::with_hasher(FastState::new(seed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::Hash;

    fn h<T: Hash>(s: &FastState, v: T) -> u64 {
        s.hash_one(v)
    }

    #[test]
    fn keyed_and_spread() {
        let a = FastState::new(1);
        let b = FastState::new(2);
        assert_ne!(h(&a, 42u64), h(&b, 42u64), "the seed changes every hash");
        assert_eq!(h(&a, [1u8; 12]), h(&a, [1u8; 12]));
        // Sequential ids, and counters in the high bytes of a transaction
        // id, spread over the low bits (buckets) and the top seven (tags).
        let mut low = std::collections::HashSet::new();
        let mut top = std::collections::HashSet::new();
        for i in 0..1024u64 {
            low.insert(h(&a, i) & 1023);
            let mut tid = [0u8; 12];
            tid[..8].copy_from_slice(&i.to_be_bytes());
            low.insert(h(&a, tid) & 1023 | 1024);
            top.insert(h(&a, tid) >> 57);
        }
        assert!(low.len() > 1200, "{} of 2048 buckets used", low.len());
        assert_eq!(top.len(), 128, "every tag value used");
        // Trailing bytes and length both matter.
        assert_ne!(h(&a, &[1u8, 2, 3][..]), h(&a, &[1u8, 2, 3, 0][..]));
    }

    #[test]
    fn maps_work() {
        let mut m: FastMap<u16, u32> = fast_map(7);
        for p in 0..2000u16 {
            m.insert(p, u32::from(p) * 2);
        }
        assert!((0..2000u16).all(|p| m.get(&p) == Some(&(u32::from(p) * 2))));
    }
}
