//! The packed file format (`.kl`): a fixed 40-byte header, then frames of packed rows.
//! `docs/CODEC.md` describes it for people; this module is the one place that reads and
//! writes it, and refuses every header it cannot trust before anything is allocated from it.
//!
//! Header, all integers little-endian:
//!
//! | offset | size | field        | meaning                                              |
//! |-------:|-----:|--------------|------------------------------------------------------|
//! | 0      | 8    | magic        | `KLATTICE`                                           |
//! | 8      | 2    | version      | [`VERSION`] (1)                                      |
//! | 10     | 1    | variant      | 0 = E8, 1 = D4                                       |
//! | 11     | 1    | rotation     | 0 = reference, 1 = fast                              |
//! | 12     | 4    | q            | q_range Q (1 ..= [`crate::pack::MAX_PACK_Q`])        |
//! | 16     | 4    | dim          | D (power of two, block multiple, ≤ [`MAX_DIM`])      |
//! | 20     | 4    | frame_rows   | most rows one frame holds (frame_rows·D ≤ [`MAX_FRAME_VALUES`]) |
//! | 24     | 8    | rows         | total rows in the file                               |
//! | 32     | 8    | reserved     | zero                                                 |
//!
//! Each frame: `rows: u32`, `long: u32`, `payload: u64`, then `long` pairs
//! `(row: u32, bytes: u32)` naming the rows whose packed size is not the base size (rows with
//! escaped blocks, in increasing row order), then `payload` bytes: the frame's packed rows back
//! to back. Every frame but the last holds exactly `frame_rows` rows.

use crate::hadamard::Rotation;
use crate::pack::{MAX_PACK_Q, Packer};
use crate::{Codec, StreamError, Variant};

/// The eight bytes every packed file starts with.
pub const MAGIC: [u8; 8] = *b"KLATTICE";
/// The format version this crate writes and reads.
pub const VERSION: u16 = 1;
/// Bytes in the file header.
pub const HEADER_BYTES: usize = 40;
/// Bytes in a frame header (before its list of long rows).
pub const FRAME_HEADER_BYTES: usize = 16;
/// Largest D a packed file may declare (one row of f32 is then 256 KiB).
pub const MAX_DIM: u32 = 1 << 16;
/// Largest number of values (rows × D) one frame may hold: 4 MiB of float32, which bounds
/// the buffers a reader allocates whatever the header says.
pub const MAX_FRAME_VALUES: usize = 1 << 20;

/// The decoded file header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Lattice variant.
    pub variant: Variant,
    /// Rotation kernel the rows were encoded with (decoding must use the same).
    pub rotation: Rotation,
    /// q_range Q.
    pub q: u32,
    /// Row length D.
    pub dim: u32,
    /// Most rows in one frame.
    pub frame_rows: u32,
    /// Total rows.
    pub rows: u64,
}

impl Header {
    /// The header for `rows` rows of `codec`, with frames as large as the format allows.
    ///
    /// ```
    /// use kakeya_lattice::{Codec, Variant, file::Header};
    /// let h = Header::for_codec(&Codec::new(Variant::E8, 128, 38)?, 1000);
    /// assert_eq!((h.dim, h.rows, h.frame_rows), (128, 1000, 8192));
    /// # Ok::<(), kakeya_lattice::CodecError>(())
    /// ```
    pub fn for_codec(codec: &Codec, rows: u64) -> Header {
        Header {
            variant: codec.variant(),
            rotation: codec.rotation(),
            q: codec.q(),
            dim: codec.dim() as u32,
            frame_rows: (MAX_FRAME_VALUES / codec.dim()).max(1) as u32,
            rows,
        }
    }

    /// The 40 header bytes.
    ///
    /// ```
    /// use kakeya_lattice::{Codec, Variant, file::{Header, MAGIC}};
    /// let h = Header::for_codec(&Codec::new(Variant::D4, 64, 10)?, 3);
    /// let b = h.to_bytes();
    /// assert_eq!(&b[..8], &MAGIC);
    /// assert_eq!(Header::parse(&b).unwrap(), h);
    /// # Ok::<(), kakeya_lattice::CodecError>(())
    /// ```
    pub fn to_bytes(&self) -> [u8; HEADER_BYTES] {
        let mut b = [0u8; HEADER_BYTES];
        b[..8].copy_from_slice(&MAGIC);
        b[8..10].copy_from_slice(&VERSION.to_le_bytes());
        b[10] = match self.variant {
            Variant::E8 => 0,
            Variant::D4 => 1,
        };
        b[11] = match self.rotation {
            Rotation::Reference => 0,
            Rotation::Fast => 1,
        };
        b[12..16].copy_from_slice(&self.q.to_le_bytes());
        b[16..20].copy_from_slice(&self.dim.to_le_bytes());
        b[20..24].copy_from_slice(&self.frame_rows.to_le_bytes());
        b[24..32].copy_from_slice(&self.rows.to_le_bytes());
        b
    }

    /// Read and check a header: magic, version, variant, rotation, the codec's own checks on
    /// D and Q, and the format's bounds on D and frame size. `bytes` shorter than the header
    /// is a truncated file.
    ///
    /// ```
    /// use kakeya_lattice::file::Header;
    /// let err = Header::parse(b"NOTAFILE").unwrap_err();
    /// assert!(err.to_string().contains("truncated"));
    /// let err = Header::parse(&[0u8; 40]).unwrap_err();
    /// assert!(err.to_string().contains("magic"));
    /// ```
    pub fn parse(bytes: &[u8]) -> Result<Header, StreamError> {
        let bad = |reason: String| StreamError::BadHeader { reason };
        if bytes.len() < HEADER_BYTES {
            return Err(bad(format!(
                "truncated: {} bytes, a header needs {HEADER_BYTES}",
                bytes.len()
            )));
        }
        if bytes[..8] != MAGIC {
            return Err(bad(format!(
                "bad magic {:?} (expected {:?}): not a kakeya-lattice packed file",
                String::from_utf8_lossy(&bytes[..8]),
                String::from_utf8_lossy(&MAGIC)
            )));
        }
        let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]);
        let u32_at =
            |o: usize| u32::from_le_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]);
        let u64_at = |o: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&bytes[o..o + 8]);
            u64::from_le_bytes(a)
        };
        let version = u16_at(8);
        if version != VERSION {
            return Err(bad(format!(
                "unsupported version {version} (this build reads version {VERSION})"
            )));
        }
        let variant = match bytes[10] {
            0 => Variant::E8,
            1 => Variant::D4,
            v => return Err(bad(format!("unknown variant code {v} (0 = e8, 1 = d4)"))),
        };
        let rotation = match bytes[11] {
            0 => Rotation::Reference,
            1 => Rotation::Fast,
            v => {
                return Err(bad(format!(
                    "unknown rotation code {v} (0 = reference, 1 = fast)"
                )));
            }
        };
        let (q, dim, frame_rows, rows) = (u32_at(12), u32_at(16), u32_at(20), u64_at(24));
        if u64_at(32) != 0 {
            return Err(bad("reserved bytes 32..40 are not zero".into()));
        }
        if dim > MAX_DIM {
            return Err(bad(format!(
                "dimension D={dim} is above the format's maximum {MAX_DIM}"
            )));
        }
        if q > MAX_PACK_Q {
            return Err(bad(format!(
                "Q={q} is above the packed maximum {MAX_PACK_Q}"
            )));
        }
        crate::validate(variant, dim as usize, i64::from(q)).map_err(|e| bad(e.to_string()))?;
        if frame_rows == 0 || frame_rows as usize * dim as usize > MAX_FRAME_VALUES {
            return Err(bad(format!(
                "frame size {frame_rows} rows of D={dim} is outside 1..={} rows",
                MAX_FRAME_VALUES / dim as usize
            )));
        }
        Ok(Header {
            variant,
            rotation,
            q,
            dim,
            frame_rows,
            rows,
        })
    }

    /// The packer that decodes this file.
    ///
    /// ```
    /// use kakeya_lattice::{Codec, Variant, file::Header};
    /// let h = Header::for_codec(&Codec::new(Variant::E8, 128, 38)?, 0);
    /// assert_eq!(h.packer()?.codec().q(), 38);
    /// # Ok::<(), kakeya_lattice::StreamError>(())
    /// ```
    pub fn packer(&self) -> Result<Packer, StreamError> {
        let codec = Codec::new(self.variant, self.dim as usize, i64::from(self.q))?
            .with_rotation(self.rotation);
        Ok(Packer::new(codec)?)
    }

    /// Frames the file holds: ⌈rows / frame_rows⌉.
    ///
    /// ```
    /// use kakeya_lattice::{Codec, Variant, file::Header};
    /// let mut h = Header::for_codec(&Codec::new(Variant::E8, 128, 38)?, 8193);
    /// assert_eq!(h.frames(), 2);
    /// h.rows = 0;
    /// assert_eq!(h.frames(), 0);
    /// # Ok::<(), kakeya_lattice::CodecError>(())
    /// ```
    pub fn frames(&self) -> u64 {
        self.rows.div_ceil(u64::from(self.frame_rows))
    }

    /// The smallest file that can hold what this header promises (every row at its base
    /// size, no long rows): a shorter file is refused before decoding starts.
    ///
    /// ```
    /// use kakeya_lattice::{Codec, Variant, file::Header};
    /// let h = Header::for_codec(&Codec::new(Variant::E8, 128, 38)?, 10);
    /// assert_eq!(h.min_file_bytes(106), 40 + 16 + 10 * 106);
    /// # Ok::<(), kakeya_lattice::CodecError>(())
    /// ```
    pub fn min_file_bytes(&self, base_bytes: usize) -> u128 {
        HEADER_BYTES as u128
            + u128::from(self.frames()) * FRAME_HEADER_BYTES as u128
            + u128::from(self.rows) * base_bytes as u128
    }
}

/// Most bytes one packed row can take: the accounted bits plus every block escaped, rounded
/// up to a byte. Frames claiming more per row are refused.
///
/// ```
/// use kakeya_lattice::{Codec, Packer, Variant, file::max_row_bytes};
/// let p = Packer::new(Codec::new(Variant::E8, 128, 38)?)?;
/// assert!(max_row_bytes(&p) > p.base_bytes());
/// # Ok::<(), kakeya_lattice::CodecError>(())
/// ```
pub fn max_row_bytes(packer: &Packer) -> usize {
    let c = packer.codec();
    let blocks = (c.dim() / c.variant().block()) as u64;
    let bits = c.bits() + blocks * u64::from(packer.escape_block_bits());
    bits.div_ceil(8) as usize
}
