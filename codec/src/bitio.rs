//! LSB-first bit streams: values are appended at increasing bit positions, bytes fill from
//! their least significant bit. Readers check every bound so hostile input cannot panic.

/// Appends bit fields to a byte vector (whole 64-bit words at a time; the byte stream is the
/// same as writing bit by bit).
pub struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    acc: u128,
    n: u32,
}

impl<'a> BitWriter<'a> {
    /// A writer appending to `out`.
    ///
    /// ```
    /// use kakeya_lattice::bitio::{BitReader, BitWriter};
    /// let mut buf = Vec::new();
    /// let mut w = BitWriter::new(&mut buf);
    /// w.put(5, 3);
    /// w.finish();
    /// assert_eq!(BitReader::new(&buf).get(3), Some(5));
    /// ```
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        BitWriter { out, acc: 0, n: 0 }
    }

    /// Append the low `bits` bits of `v` (bits ≤ 64).
    #[inline(always)]
    pub fn put(&mut self, v: u64, bits: u32) {
        if bits == 0 {
            return;
        }
        let masked = if bits == 64 {
            v
        } else {
            v & ((1u64 << bits) - 1)
        };
        // Invariant: n < 64 between calls, so n + bits ≤ 128.
        self.acc |= u128::from(masked) << self.n;
        self.n += bits;
        if self.n >= 64 {
            self.out.extend_from_slice(&(self.acc as u64).to_le_bytes());
            self.acc >>= 64;
            self.n -= 64;
        }
    }

    /// Append the low `bits` bits of a u128 (bits ≤ 128).
    #[inline(always)]
    pub fn put_wide(&mut self, v: u128, bits: u32) {
        if bits > 64 {
            self.put(v as u64, 64);
            self.put((v >> 64) as u64, bits - 64);
        } else {
            self.put(v as u64, bits);
        }
    }

    /// Flush the last partial byte (zero padded).
    pub fn finish(self) {
        let bytes = self.n.div_ceil(8) as usize;
        self.out
            .extend_from_slice(&(self.acc as u64).to_le_bytes()[..bytes]);
    }
}

/// Reads bit fields written by [`BitWriter`].
pub struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    /// A reader over `data`, from its first bit.
    pub fn new(data: &'a [u8]) -> Self {
        BitReader { data, pos: 0 }
    }

    /// Bits consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Read `bits` (≤ 64) bits, or None past the end of the data.
    #[inline(always)]
    pub fn get(&mut self, bits: u32) -> Option<u64> {
        if bits == 0 {
            return Some(0);
        }
        let end = self.pos.checked_add(bits as usize)?;
        if end > self.data.len() * 8 {
            return None;
        }
        let first = self.pos / 8;
        let shift = (self.pos % 8) as u32;
        let acc = match self.data.get(first..first + 16) {
            // Fast path: one unaligned 16-byte load holds any field of ≤ 64 bits + shift.
            Some(w) => {
                let mut buf = [0u8; 16];
                buf.copy_from_slice(w);
                u128::from_le_bytes(buf)
            }
            None => {
                let mut acc: u128 = 0;
                let last = (end - 1) / 8;
                for (i, &b) in self.data[first..=last].iter().enumerate() {
                    acc |= u128::from(b) << (8 * i);
                }
                acc
            }
        };
        self.pos = end;
        let v = (acc >> shift) as u64;
        Some(if bits == 64 {
            v
        } else {
            v & ((1u64 << bits) - 1)
        })
    }

    /// Read up to 128 bits.
    #[inline(always)]
    pub fn get_wide(&mut self, bits: u32) -> Option<u128> {
        if bits > 64 {
            let lo = self.get(64)?;
            let hi = self.get(bits - 64)?;
            Some(u128::from(lo) | (u128::from(hi) << 64))
        } else {
            self.get(bits).map(u128::from)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_fields() {
        let fields: Vec<(u128, u32)> = (1..=128u32)
            .map(|b| {
                let v = 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210u128.rotate_left(b);
                (if b == 128 { v } else { v & ((1u128 << b) - 1) }, b)
            })
            .collect();
        let mut buf = Vec::new();
        let mut w = BitWriter::new(&mut buf);
        for &(v, b) in &fields {
            w.put_wide(v, b);
        }
        w.finish();
        let mut r = BitReader::new(&buf);
        for &(v, b) in &fields {
            assert_eq!(r.get_wide(b), Some(v));
        }
        assert!(r.get(64).is_none());
    }
}
