//! An aligned-PER bit writer (X.691, ALIGNED variant, BASIC-PER): the
//! pieces the H.225.0 messages of [`super`] are made of. Clause numbers
//! are X.691 (02/2021).

/// Writes an aligned-PER encoding bit by bit, most significant first.
///
/// The writer knows no types: a caller writes a SEQUENCE's preamble (its
/// extension bit, one bit per OPTIONAL component) with [`bit`](Self::bit),
/// then its root components in order, then its extension additions with
/// [`extension_additions`](Self::extension_additions).
///
/// ```
/// use pinhole_h323::build::PerWriter;
///
/// // CallIdentifier ::= SEQUENCE { guid OCTET STRING (SIZE(16)), ... }
/// let mut w = PerWriter::new();
/// w.bit(false); // the extension bit: no additions
/// w.fixed_octets(&[0xAB; 16]); // a fixed size over two octets is aligned
/// let per = w.finish();
/// assert_eq!(per.len(), 17);
/// assert_eq!(per[..2], [0x00, 0xAB]);
///
/// // BOOLEAN FALSE as an open type: its complete encoding is one octet.
/// let mut w = PerWriter::new();
/// w.open_type(|w| w.bit(false));
/// assert_eq!(w.finish(), [0x01, 0x00]);
/// ```
///
/// # Panics
///
/// A value outside its constraint (a constrained whole number outside its
/// bounds, a CHOICE index past its alternatives, a malformed OBJECT
/// IDENTIFIER) is a defect of the caller, and panics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PerWriter {
    out: Vec<u8>,
    /// Bits written; `out.len()` is always `bits.div_ceil(8)`.
    bits: usize,
}

/// A present extension addition: its index among the type's additions
/// and what writes its value.
pub type Addition<'a> = (usize, &'a dyn Fn(&mut PerWriter));

/// The largest count an unfragmented length determinant carries (§11.9.3.7).
const FRAGMENT: usize = 16 * 1024;

impl PerWriter {
    /// An empty encoding.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of bits written.
    pub fn bit_len(&self) -> usize {
        self.bits
    }

    /// One bit (a BOOLEAN, an extension bit, a presence bit).
    pub fn bit(&mut self, b: bool) {
        if self.bits.is_multiple_of(8) {
            self.out.push(0);
        }
        if b {
            let last = self.out.len() - 1;
            self.out[last] |= 0x80 >> (self.bits % 8);
        }
        self.bits += 1;
    }

    /// The low `n` bits of `value` (`n` ≤ 64), most significant first: a
    /// bit-field.
    pub fn bits(&mut self, value: u64, n: u32) {
        assert!(n <= 64, "a bit-field of {n} bits");
        for i in (0..n).rev() {
            self.bit((value >> i) & 1 == 1);
        }
    }

    /// Pads with zero bits to the next octet boundary (no-op on one).
    pub fn align(&mut self) {
        self.bits = self.out.len() * 8;
    }

    /// `bytes` as whole octets from the next octet boundary.
    pub fn aligned_octets(&mut self, bytes: &[u8]) {
        self.align();
        self.out.extend_from_slice(bytes);
        self.bits = self.out.len() * 8;
    }

    /// A fixed-size OCTET STRING (`SIZE(n)`, n < 64K, §17.6–17.7): no
    /// length; up to two octets unaligned, longer from an octet boundary.
    pub fn fixed_octets(&mut self, bytes: &[u8]) {
        assert!(bytes.len() < 64 * 1024, "a fixed size of 64K or more");
        if bytes.len() <= 2 {
            for &b in bytes {
                self.bits(u64::from(b), 8);
            }
        } else {
            self.aligned_octets(bytes);
        }
    }

    /// A constrained whole number `value` in `lb..=ub` (§11.5.7, aligned
    /// variant): nothing for a single value; a bit-field of the fewest
    /// bits for a range up to 255; one aligned octet for 256; two for up
    /// to 64K; beyond, a length in octets and the aligned octets.
    pub fn constrained(&mut self, value: u64, lb: u64, ub: u64) {
        assert!(
            lb <= value && value <= ub,
            "{value} outside its constraint {lb}..={ub}"
        );
        let offset = value - lb;
        let range = u128::from(ub - lb) + 1;
        match range {
            1 => {}
            2..=255 => self.bits(offset, bits_for(ub - lb)),
            256 => {
                self.align();
                self.bits(offset, 8);
            }
            257..=65_536 => {
                self.align();
                self.bits(offset, 16);
            }
            _ => {
                // §11.5.7.4: the indefinite-length case; the length (in
                // octets, at least one) is itself constrained to 1..=the
                // octets of the largest offset.
                let len = octets_for(offset);
                self.constrained(len as u64, 1, octets_for(ub - lb) as u64);
                self.align();
                self.bits(offset, len * 8);
            }
        }
    }

    /// A normally small non-negative whole number (§11.6): a CHOICE's
    /// extension alternative index, a bitmap length less one.
    pub fn normally_small(&mut self, n: u64) {
        if n <= 63 {
            self.bit(false);
            self.bits(n, 6);
        } else {
            // §11.7: a semi-constrained whole number with lower bound 0.
            self.bit(true);
            let len = octets_for(n);
            self.length(len as usize);
            self.bits(n, len * 8);
        }
    }

    /// An unconstrained length determinant of `n` < 16K (§11.9.3.6–7),
    /// from an octet boundary: one octet below 128, two below 16K.
    ///
    /// Longer contents are fragmented: [`octet_string`](Self::octet_string)
    /// does that.
    pub fn length(&mut self, n: usize) {
        assert!(n < FRAGMENT, "a length of {n} needs fragmentation");
        self.align();
        if n < 128 {
            self.bits(n as u64, 8);
        } else {
            self.bits(0x8000 | n as u64, 16);
        }
    }

    /// An OCTET STRING without an upper bound (also the contents of an
    /// open type and of an OBJECT IDENTIFIER): its length determinant and
    /// its octets, aligned, in fragments of 16K to 64K octets from 16K on
    /// (§11.9.3.8).
    pub fn octet_string(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        while rest.len() >= FRAGMENT {
            let m = (rest.len() / FRAGMENT).min(4);
            self.align();
            self.bits(0xC0 | m as u64, 8);
            let (frag, tail) = rest.split_at(m * FRAGMENT);
            self.aligned_octets(frag);
            rest = tail;
        }
        // After fragments, a final determinant even when zero.
        self.length(rest.len());
        self.aligned_octets(rest);
    }

    /// An OBJECT IDENTIFIER (§24): its BER contents octets (X.690 §8.19)
    /// as an unbounded octet string. `{0 0 8 2250 0 4}` is `06 00 08 91
    /// 4A 00 04`.
    pub fn object_identifier(&mut self, arcs: &[u64]) {
        assert!(
            arcs.len() >= 2 && arcs[0] <= 2 && (arcs[0] == 2 || arcs[1] < 40),
            "not an object identifier: {arcs:?}"
        );
        let mut contents = Vec::new();
        let first = arcs[0]
            .checked_mul(40)
            .and_then(|a| a.checked_add(arcs[1]))
            .expect("an object identifier's first subidentifier overflows");
        for &sub in std::iter::once(&first).chain(&arcs[2..]) {
            let groups = (64 - sub.leading_zeros()).div_ceil(7).max(1);
            for g in (0..groups).rev() {
                let more = if g > 0 { 0x80 } else { 0 };
                contents.push(more | ((sub >> (7 * g)) & 0x7F) as u8);
            }
        }
        self.octet_string(&contents);
    }

    /// An open type (§11.2): what `encode` writes, as a complete encoding
    /// (padded to whole octets, one zero octet if empty), in an octet
    /// string. Extension additions and extension alternatives are written
    /// so.
    pub fn open_type(&mut self, encode: impl FnOnce(&mut Self)) {
        let mut inner = Self::new();
        encode(&mut inner);
        self.octet_string(&inner.finish());
    }

    /// A CHOICE's root alternative `index` of `roots` (§23): the extension
    /// bit if `extensible`, then the index as a constrained whole number
    /// (nothing for a single alternative). The caller writes the
    /// alternative's value next.
    pub fn choice_root(&mut self, index: usize, roots: usize, extensible: bool) {
        assert!(index < roots, "alternative {index} of {roots}");
        if extensible {
            self.bit(false);
        }
        self.constrained(index as u64, 0, roots as u64 - 1);
    }

    /// A CHOICE's extension alternative `index` (0 for the first after the
    /// `...`, §23.8): the extension bit set, the index as a normally small
    /// number, the value that `encode` writes as an open type.
    pub fn choice_addition(&mut self, index: usize, encode: impl FnOnce(&mut Self)) {
        self.bit(true);
        self.normally_small(index as u64);
        self.open_type(encode);
    }

    /// A SEQUENCE's extension additions (§19.7–19.9), after its root
    /// components, when its extension bit was written set: the presence
    /// bitmap of all `count` additions of the type (its length as a
    /// normally small length), then each present one in order as an open
    /// type. `present` lists (index among the additions, encoder) in
    /// ascending index order.
    ///
    /// The bitmap is as long as the type has additions, as X.691 §19.8
    /// says and a v6 encoder writes; encoders built on older module
    /// versions write shorter ones, which decoders also accept.
    pub fn extension_additions(&mut self, count: usize, present: &[Addition<'_>]) {
        assert!(
            count > 0 && !present.is_empty(),
            "extension additions written with none present"
        );
        assert!(
            present.windows(2).all(|p| p[0].0 < p[1].0) && present[present.len() - 1].0 < count,
            "extension additions out of order or past {count}"
        );
        self.normally_small(count as u64 - 1);
        let mut next = present.iter().peekable();
        for i in 0..count {
            let here = next.peek().is_some_and(|p| p.0 == i);
            if here {
                next.next();
            }
            self.bit(here);
        }
        for (_, encode) in present {
            self.open_type(|w| encode(w));
        }
    }

    /// The complete encoding (§11.1): padded to whole octets, and one zero
    /// octet for an empty one.
    pub fn finish(self) -> Vec<u8> {
        if self.out.is_empty() {
            vec![0]
        } else {
            self.out
        }
    }
}

/// The bits a bit-field needs to hold `max` (at least one).
fn bits_for(max: u64) -> u32 {
    (64 - max.leading_zeros()).max(1)
}

/// The octets `v` takes (at least one).
fn octets_for(v: u64) -> u32 {
    bits_for(v).div_ceil(8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(f: impl FnOnce(&mut PerWriter)) -> Vec<u8> {
        let mut w = PerWriter::new();
        f(&mut w);
        w.finish()
    }

    #[test]
    fn constrained_whole_numbers() {
        // X.691 §11.5.7: bit-field, one octet, two octets, indefinite.
        assert_eq!(enc(|w| w.constrained(5, 5, 5)), [0]);
        assert_eq!(enc(|w| w.constrained(1, 0, 1)), [0x80]);
        assert_eq!(enc(|w| w.constrained(6, 0, 6)), [0xC0]);
        assert_eq!(enc(|w| w.constrained(11, 0, 11)), [0xB0]);
        assert_eq!(
            enc(|w| {
                w.bit(true);
                w.constrained(0xAB, 0, 255)
            }),
            [0x80, 0xAB]
        );
        assert_eq!(
            enc(|w| {
                w.bit(true);
                w.constrained(1720, 0, 65535)
            }),
            [0x80, 0x06, 0xB8]
        );
        assert_eq!(enc(|w| w.constrained(300, 0, 65536)), [0x40, 0x01, 0x2C]);
        assert_eq!(enc(|w| w.constrained(7, 0, u64::MAX)), [0x00, 0x07]);
        assert_eq!(
            enc(|w| w.constrained(u64::MAX, 0, u64::MAX)),
            [0xE0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
        );
    }

    #[test]
    fn normally_small_and_lengths() {
        assert_eq!(enc(|w| w.normally_small(1)), [0x02]);
        assert_eq!(enc(|w| w.normally_small(63)), [0x7E]);
        assert_eq!(enc(|w| w.normally_small(64)), [0x80, 0x01, 0x40]);
        assert_eq!(enc(|w| w.length(127)), [0x7F]);
        assert_eq!(enc(|w| w.length(128)), [0x80, 0x80]);
        assert_eq!(enc(|w| w.length(16383)), [0xBF, 0xFF]);
    }

    #[test]
    fn fragments() {
        let big = vec![0x5A; 3 * FRAGMENT + 5];
        let out = enc(|w| w.octet_string(&big));
        assert_eq!(out[0], 0xC3);
        assert_eq!(out[1 + 3 * FRAGMENT..1 + 3 * FRAGMENT + 1], [0x05]);
        assert_eq!(out.len(), 1 + big.len() + 1);
        // A multiple of 16K ends with a zero length.
        let exact = vec![0; FRAGMENT];
        let out = enc(|w| w.octet_string(&exact));
        assert_eq!(
            (out[0], out[out.len() - 1], out.len()),
            (0xC1, 0, FRAGMENT + 2)
        );
        let five = vec![0; 5 * FRAGMENT];
        let out = enc(|w| w.octet_string(&five));
        assert_eq!((out[0], out[1 + 4 * FRAGMENT]), (0xC4, 0xC1));
    }

    #[test]
    fn object_identifiers_and_open_types() {
        assert_eq!(
            enc(|w| w.object_identifier(&[0, 0, 8, 2250, 0, 4])),
            [0x06, 0x00, 0x08, 0x91, 0x4A, 0x00, 0x04]
        );
        assert_eq!(
            enc(|w| w.object_identifier(&[2, 999, 0])),
            [0x03, 0x88, 0x37, 0x00]
        );
        // NULL as an open type: an empty encoding is one zero octet.
        assert_eq!(enc(|w| w.open_type(|_| {})), [0x01, 0x00]);
        assert_eq!(enc(|w| w.choice_addition(1, |_| {})), [0x81, 0x01, 0x00]);
    }

    #[test]
    fn extension_bitmaps_count_every_addition() {
        // Two of nine additions present: nine bits, after `0 001000`.
        let out = enc(|w| {
            w.extension_additions(
                9,
                &[
                    (1, &|w: &mut PerWriter| w.bit(false)),
                    (8, &|w| w.bit(true)),
                ],
            )
        });
        assert_eq!(out, [0x10, 0x81, 0x01, 0x00, 0x01, 0x80]);
    }
}
