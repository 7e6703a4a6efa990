//! A bounds-checked bit reader with the aligned-PER primitives
//! (X.691 §11): alignment, constrained whole numbers, length determinants.

use super::PerReason;

/// Reads bits from `buf[..end/8]`, most significant first.
pub(crate) struct Bits<'a> {
    pub(crate) buf: &'a [u8],
    /// The next bit to read.
    pub(crate) pos: usize,
    /// The bit where the current value (the PDU, or an open type) ends.
    pub(crate) end: usize,
}

/// A length determinant: a count, and whether a fragment follows
/// (X.691 §11.9.3.8: counts of 16K, 32K, 48K or 64K).
pub(crate) struct Len {
    pub(crate) n: usize,
    pub(crate) more: bool,
}

type R<T> = Result<T, PerReason>;

impl<'a> Bits<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self {
            buf,
            pos: 0,
            end: buf.len() * 8,
        }
    }

    pub(crate) fn bit(&mut self) -> R<bool> {
        Ok(self.bits(1)? == 1)
    }

    /// `n` bits (at most 64) as an unsigned number.
    pub(crate) fn bits(&mut self, n: u32) -> R<u64> {
        let n = n as usize;
        if self.end - self.pos < n {
            return Err(PerReason::Truncated);
        }
        let mut v = 0u64;
        let mut left = n;
        while left > 0 {
            let byte = self.buf[self.pos / 8];
            let used = self.pos % 8;
            let take = (8 - used).min(left);
            let chunk = (byte >> (8 - used - take)) & ((1u16 << take) - 1) as u8;
            v = (v << take) | u64::from(chunk);
            self.pos += take;
            left -= take;
        }
        Ok(v)
    }

    /// Steps to the next octet boundary (padding bits are not checked: a
    /// peer's nonzero padding is its business, and the bytes stay as sent).
    pub(crate) fn align(&mut self) -> R<()> {
        let to = self.pos.div_ceil(8) * 8;
        if to > self.end {
            return Err(PerReason::Truncated);
        }
        self.pos = to;
        Ok(())
    }

    pub(crate) fn skip(&mut self, bits: usize) -> R<()> {
        if self.end - self.pos < bits {
            return Err(PerReason::Truncated);
        }
        self.pos += bits;
        Ok(())
    }

    /// Aligns, then steps over `n` octets; returns the first one's offset.
    pub(crate) fn octets(&mut self, n: usize) -> R<usize> {
        self.align()?;
        let at = self.pos / 8;
        self.skip(n.checked_mul(8).ok_or(PerReason::Truncated)?)?;
        Ok(at)
    }

    /// A constrained whole number with `range` values (X.691 §11.5.7,
    /// aligned variant).
    pub(crate) fn constrained(&mut self, range: u64) -> R<u64> {
        match range {
            0 | 1 => Ok(0),
            2..=255 => self.bits(bits_for(range - 1)),
            256 => {
                self.align()?;
                self.bits(8)
            }
            257..=65536 => {
                self.align()?;
                self.bits(16)
            }
            _ => {
                // The indefinite-length case: the count of octets, then them.
                let max_octets = bits_for(range - 1).div_ceil(8);
                let n = self.constrained(u64::from(max_octets))? + 1;
                self.align()?;
                if n > 8 {
                    return Err(PerReason::TooLong);
                }
                self.bits(n as u32 * 8)
            }
        }
    }

    /// An unconstrained length determinant (X.691 §11.9.3.6–8).
    pub(crate) fn length(&mut self) -> R<Len> {
        self.align()?;
        let b = self.bits(8)? as usize;
        if b & 0x80 == 0 {
            return Ok(Len { n: b, more: false });
        }
        if b & 0x40 == 0 {
            let lo = self.bits(8)? as usize;
            return Ok(Len {
                n: ((b & 0x3f) << 8) | lo,
                more: false,
            });
        }
        let m = b & 0x3f;
        if !(1..=4).contains(&m) {
            return Err(PerReason::BadLength);
        }
        Ok(Len {
            n: m * 16384,
            more: true,
        })
    }

    /// A normally small non-negative whole number (X.691 §11.6): extension
    /// addition indexes and counts.
    pub(crate) fn small(&mut self) -> R<usize> {
        if !self.bit()? {
            return Ok(self.bits(6)? as usize);
        }
        let len = self.length()?;
        if len.more || len.n == 0 || len.n > 4 {
            return Err(PerReason::TooLong);
        }
        Ok(self.bits(len.n as u32 * 8)? as usize)
    }
}

/// Bits needed for values 0..=max.
pub(crate) fn bits_for(max: u64) -> u32 {
    64 - max.leading_zeros()
}
