//! Streaming coding of files (or any reader and writer) in bounded memory, on all cores, in
//! order: raw little-endian float32 rows (`.f32`) round-tripped, encoded to the packed file
//! format of [`crate::file`], and decoded back.
//!
//! Rows move in chunks of at most [`crate::file::MAX_FRAME_VALUES`] values (4 MiB of float32)
//! through two input and two output buffers that are allocated once and recycled: a reader
//! thread fills one while the calling thread codes the other across rayon's pool and a writer
//! thread drains the previous result. Resident memory therefore stays near 16 MiB plus the
//! codec's tables whatever the file size, and the bytes read go straight into the float
//! buffers the kernels use (no conversion copy, no repeated zero-fill). Every chunk is coded
//! by the same batch kernels as the in-memory path, so a stream's output equals the
//! in-memory output byte for byte, whatever the chunk size.

use std::io::{self, Read, Write};

use rayon::prelude::*;

use crate::batch::CHUNK_ROWS;
use crate::file::MAX_FRAME_VALUES;
use crate::{Codec, CodecError};

mod packed;
mod pipe;

pub use packed::{decode_stream, encode_stream};

/// Everything streaming can refuse: I/O failures, input that is not whole finite rows, rows the
/// codec cannot represent, and packed files whose header or frames cannot be trusted.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The codec refused its configuration or a packed row.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// Reading the input failed.
    #[error("reading the input: {0}")]
    Read(io::Error),
    /// Writing the output failed.
    #[error("writing the output: {0}")]
    Write(io::Error),
    /// The input ends inside a row.
    #[error(
        "input holds {bytes} bytes, not a multiple of 4·D = {row_bytes}: not whole float32 rows"
    )]
    Ragged {
        /// Bytes read in total.
        bytes: u64,
        /// Bytes per row (4·D).
        row_bytes: usize,
    },
    /// An input value is NaN or infinite.
    #[error("row {row} column {col} is not a finite number")]
    NonFinite {
        /// Row index from the start of the stream.
        row: u64,
        /// Column index.
        col: usize,
    },
    /// A row's norm does not fit the codec's fp16 side scalar.
    #[error(
        "row {row} reconstructs to a non-finite value: its norm exceeds the fp16 range (65504) \
         of the codec's side scalar"
    )]
    Overflow {
        /// Row index from the start of the stream.
        row: u64,
    },
    /// The packed file's header is missing, damaged or out of bounds.
    #[error("packed file header: {reason}")]
    BadHeader {
        /// What is wrong.
        reason: String,
    },
    /// A frame of the packed file contradicts its header or itself.
    #[error("packed file is corrupt: {reason}")]
    BadFrame {
        /// What is wrong, and where.
        reason: String,
    },
    /// The input holds another number of rows than declared.
    #[error("input holds {found} rows but {expected} were declared")]
    RowCount {
        /// Rows declared.
        expected: u64,
        /// Rows found (a lower bound when the input is longer).
        found: u64,
    },
}

/// What a streaming call moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct StreamStats {
    /// Rows coded.
    pub rows: u64,
    /// Bytes read.
    pub bytes_in: u64,
    /// Bytes written.
    pub bytes_out: u64,
    /// Escaped blocks (encoding only).
    pub escapes: u64,
}

/// Rows per chunk for row length `dim` when the caller does not choose: as many as fit in
/// [`MAX_FRAME_VALUES`] values, at least one.
///
/// ```
/// assert_eq!(kakeya_lattice::stream::default_chunk_rows(128), 8192);
/// ```
pub fn default_chunk_rows(dim: usize) -> usize {
    (MAX_FRAME_VALUES / dim.max(1)).max(1)
}

/// A float buffer with its filled length; allocated once (zeroed lazily by the OS) and reused.
pub(crate) struct Floats {
    pub(crate) buf: Vec<f32>,
    pub(crate) len: usize,
}

impl Floats {
    pub(crate) fn new(values: usize) -> Self {
        Floats {
            buf: vec![0.0; values],
            len: 0,
        }
    }

    pub(crate) fn filled(&self) -> &[f32] {
        &self.buf[..self.len]
    }
}

/// The bytes of a float slice, for reading into and writing from it directly.
pub(crate) fn bytes_mut(v: &mut [f32]) -> &mut [u8] {
    // SAFETY: f32 has no padding and every bit pattern is a valid f32; u8 has alignment 1;
    // the view covers exactly the slice's memory (4·len bytes) and borrows it mutably.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), size_of_val(v)) }
}

/// Read-only counterpart of [`bytes_mut`].
pub(crate) fn bytes(v: &[f32]) -> &[u8] {
    // SAFETY: as in `bytes_mut`: no padding, alignment 1, same memory, shared borrow.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), size_of_val(v)) }
}

/// Fill `buf` from `input` until it is full or the input ends; returns the bytes read.
pub(crate) fn fill(input: &mut impl Read, buf: &mut [u8]) -> Result<usize, StreamError> {
    let mut got = 0;
    while got < buf.len() {
        match input.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(StreamError::Read(e)),
        }
    }
    Ok(got)
}

/// Read whole little-endian float32 rows into `f` (up to its capacity); `Ok(false)` at the end.
/// `total` counts bytes read so far, for the error message of a file that ends inside a row.
pub(crate) fn read_rows(
    input: &mut impl Read,
    f: &mut Floats,
    dim: usize,
    total: &mut u64,
) -> Result<bool, StreamError> {
    let got = fill(input, bytes_mut(&mut f.buf))?;
    *total += got as u64;
    let row_bytes = 4 * dim;
    if !got.is_multiple_of(row_bytes) {
        return Err(StreamError::Ragged {
            bytes: *total,
            row_bytes,
        });
    }
    f.len = got / 4;
    #[cfg(target_endian = "big")]
    for v in &mut f.buf[..f.len] {
        *v = f32::from_bits(u32::from_le(v.to_bits()));
    }
    Ok(got > 0)
}

/// Write `f`'s filled values as little-endian float32.
pub(crate) fn write_floats(output: &mut impl Write, f: &mut Floats) -> Result<(), StreamError> {
    #[cfg(target_endian = "big")]
    for v in &mut f.buf[..f.len] {
        *v = f32::from_bits(v.to_bits().to_le());
    }
    output
        .write_all(bytes(f.filled()))
        .map_err(StreamError::Write)
}

/// The first non-finite value of `x` (rows of `dim` starting at row `first`), as an error.
pub(crate) fn check_finite(x: &[f32], dim: usize, first: u64) -> Result<(), StreamError> {
    match x.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(i) => Err(StreamError::NonFinite {
            row: first + (i / dim) as u64,
            col: i % dim,
        }),
    }
}

/// Round-trip a stream of little-endian float32 rows (D = `codec.dim()`) into `output`, in
/// chunks of `chunk_rows` rows (`None`: [`default_chunk_rows`]). Refuses non-finite input
/// and rows whose norm overflows the fp16 side scalar, naming the row. The bytes written equal
/// [`crate::roundtrip_rows`] on the whole input, whatever the chunk size.
///
/// ```
/// use kakeya_lattice::{Codec, Variant, roundtrip_rows, stream::roundtrip_stream};
///
/// let codec = Codec::new(Variant::E8, 64, 38)?;
/// let x: Vec<f32> = (0..64 * 5).map(|i| (i as f32 * 0.37).sin()).collect();
/// let input: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
/// let mut out = Vec::new();
/// let stats = roundtrip_stream(&codec, &input[..], &mut out, Some(2))?;
/// assert_eq!(stats.rows, 5);
/// let want: Vec<u8> = roundtrip_rows(&codec, &x)?.iter().flat_map(|v| v.to_le_bytes()).collect();
/// assert_eq!(out, want);
/// # Ok::<(), kakeya_lattice::StreamError>(())
/// ```
pub fn roundtrip_stream<R: Read + Send, W: Write + Send>(
    codec: &Codec,
    mut input: R,
    mut output: W,
    chunk_rows: Option<usize>,
) -> Result<StreamStats, StreamError> {
    let dim = codec.dim();
    let chunk = chunk_rows.unwrap_or_else(|| default_chunk_rows(dim)).max(1);
    let values = chunk
        .checked_mul(dim)
        .ok_or(CodecError::RowLength { len: chunk, dim })?;
    let mut stats = StreamStats::default();
    let mut bytes_in = 0u64;
    let mut rows_done = 0u64;
    pipe::run(
        vec![Floats::new(values), Floats::new(values)],
        vec![Floats::new(values), Floats::new(values)],
        |f| read_rows(&mut input, f, dim, &mut bytes_in),
        |x, y| {
            let first = rows_done;
            y.len = x.len;
            roundtrip_chunk(codec, x.filled(), &mut y.buf[..x.len], first)?;
            rows_done += (x.len / dim) as u64;
            Ok(())
        },
        |y| write_floats(&mut output, y),
    )?;
    output.flush().map_err(StreamError::Write)?;
    stats.rows = rows_done;
    stats.bytes_in = bytes_in;
    stats.bytes_out = rows_done * 4 * dim as u64;
    Ok(stats)
}

/// Round-trip one chunk on all cores, checking input and output per task while both are in
/// cache; the error reported is the earliest in row order.
fn roundtrip_chunk(codec: &Codec, x: &[f32], y: &mut [f32], first: u64) -> Result<(), StreamError> {
    let dim = codec.dim();
    let step = CHUNK_ROWS * dim;
    let err = x
        .par_chunks(step)
        .zip(y.par_chunks_mut(step))
        .enumerate()
        .map(|(i, (xc, yc))| {
            let row0 = first + (i * CHUNK_ROWS) as u64;
            check_finite(xc, dim, row0)?;
            codec.roundtrip_into(xc, yc)?;
            match yc.iter().position(|v| !v.is_finite()) {
                None => Ok(()),
                Some(j) => Err(StreamError::Overflow {
                    row: row0 + (j / dim) as u64,
                }),
            }
        })
        .find_map_first(Result::err);
    err.map_or(Ok(()), Err)
}
