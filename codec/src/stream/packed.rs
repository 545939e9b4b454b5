//! Streaming encode (float32 rows → packed file) and decode (packed file → float32 rows). A
//! frame is one chunk of rows; inside a frame the rows are coded on all cores in tasks of
//! [`CHUNK_ROWS`] rows, each task into its own reusable byte buffer, and the writer writes the
//! task buffers one after another (no concatenation copy).

use std::io::{Read, Write};

use rayon::prelude::*;

use super::{Floats, StreamError, StreamStats, check_finite, pipe, read_rows, write_floats};
use crate::batch::{CHUNK_ROWS, Quantizer};
use crate::file::{FRAME_HEADER_BYTES, HEADER_BYTES, Header, max_row_bytes};
use crate::{CodecError, Packer};

/// One task's packed rows.
#[derive(Default)]
struct Part {
    bytes: Vec<u8>,
    lens: Vec<usize>,
    escapes: u64,
}

/// One encoded frame: its task parts and its list of long rows.
#[derive(Default)]
struct Frame {
    parts: Vec<Part>,
    used: usize,
    rows: usize,
    long: Vec<(u32, u32)>,
    payload: u64,
}

fn corrupt(reason: String) -> StreamError {
    StreamError::BadFrame { reason }
}

/// Encode exactly `rows` little-endian float32 rows (D = the packer's) from `input` into a
/// packed file (header, then frames) on `output`. Refuses non-finite rows, rows whose norm
/// overflows fp16, and input holding another number of rows than declared. Decoding the
/// result gives [`crate::roundtrip_rows`] of the input byte for byte.
///
/// ```
/// use kakeya_lattice::{Codec, Packer, Variant, roundtrip_rows, stream::{decode_stream, encode_stream}};
///
/// let packer = Packer::new(Codec::new(Variant::D4, 32, 10)?)?;
/// let x: Vec<f32> = (0..32 * 7).map(|i| (i as f32 * 0.61).cos()).collect();
/// let raw: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
/// let mut packed = Vec::new();
/// encode_stream(&packer, &raw[..], 7, &mut packed, None)?;
/// assert!(packed.len() < raw.len() / 4);
/// let mut back = Vec::new();
/// decode_stream(&packed[..], &mut back, Some(packed.len() as u64))?;
/// let want: Vec<u8> = roundtrip_rows(packer.codec(), &x)?.iter().flat_map(|v| v.to_le_bytes()).collect();
/// assert_eq!(back, want);
/// # Ok::<(), kakeya_lattice::StreamError>(())
/// ```
pub fn encode_stream<R: Read + Send, W: Write + Send>(
    packer: &Packer,
    mut input: R,
    rows: u64,
    mut output: W,
    frame_rows: Option<usize>,
) -> Result<StreamStats, StreamError> {
    let codec = packer.codec();
    let dim = codec.dim();
    let mut header = Header::for_codec(codec, rows);
    if let Some(f) = frame_rows {
        header.frame_rows = f.clamp(1, header.frame_rows as usize) as u32;
    }
    let chunk = header.frame_rows as usize;
    output
        .write_all(&header.to_bytes())
        .map_err(StreamError::Write)?;
    let base = packer.base_bytes();
    let (mut bytes_in, mut bytes_out) = (0u64, HEADER_BYTES as u64);
    let (mut rows_done, mut escapes) = (0u64, 0u64);
    let mut rows_read = 0u64;
    pipe::run(
        vec![Floats::new(chunk * dim), Floats::new(chunk * dim)],
        vec![Frame::default(), Frame::default()],
        |f| {
            let more = read_rows(&mut input, f, dim, &mut bytes_in)?;
            rows_read += (f.len / dim) as u64;
            if rows_read > rows || (!more && rows_read != rows) {
                return Err(StreamError::RowCount {
                    expected: rows,
                    found: rows_read,
                });
            }
            Ok(more)
        },
        |x, fr| {
            encode_frame(packer, x.filled(), fr, rows_done)?;
            for (i, len) in fr.parts[..fr.used].iter().flat_map(|p| &p.lens).enumerate() {
                if *len != base {
                    fr.long.push((i as u32, *len as u32));
                }
            }
            rows_done += fr.rows as u64;
            escapes += fr.parts[..fr.used].iter().map(|p| p.escapes).sum::<u64>();
            Ok(())
        },
        |fr| {
            let mut head = Vec::with_capacity(FRAME_HEADER_BYTES + 8 * fr.long.len());
            head.extend_from_slice(&(fr.rows as u32).to_le_bytes());
            head.extend_from_slice(&(fr.long.len() as u32).to_le_bytes());
            head.extend_from_slice(&fr.payload.to_le_bytes());
            for (r, l) in &fr.long {
                head.extend_from_slice(&r.to_le_bytes());
                head.extend_from_slice(&l.to_le_bytes());
            }
            output.write_all(&head).map_err(StreamError::Write)?;
            for p in &fr.parts[..fr.used] {
                output.write_all(&p.bytes).map_err(StreamError::Write)?;
            }
            bytes_out += head.len() as u64 + fr.payload;
            Ok(())
        },
    )?;
    output.flush().map_err(StreamError::Write)?;
    Ok(StreamStats {
        rows: rows_done,
        bytes_in,
        bytes_out,
        escapes,
    })
}

/// Pack one chunk of rows into `fr` on all cores; checks input finiteness and the fp16 norm
/// (the first 16 bits of every packed row) per task.
fn encode_frame(packer: &Packer, x: &[f32], fr: &mut Frame, first: u64) -> Result<(), StreamError> {
    let dim = packer.codec().dim();
    let step = CHUNK_ROWS * dim;
    let tasks = x.len().div_ceil(step);
    if fr.parts.len() < tasks {
        fr.parts.resize_with(tasks, Part::default);
    }
    fr.used = tasks;
    fr.rows = x.len() / dim;
    fr.long.clear();
    let err = x
        .par_chunks(step)
        .zip(fr.parts.par_iter_mut())
        .enumerate()
        .map(|(i, (xc, part))| {
            let row0 = first + (i * CHUNK_ROWS) as u64;
            check_finite(xc, dim, row0)?;
            part.bytes.clear();
            part.lens.clear();
            part.escapes = packer.encode_chunk(xc, &mut part.bytes, &mut part.lens)?;
            let mut at = 0;
            for (r, &len) in part.lens.iter().enumerate() {
                let norm =
                    half::f16::from_bits(u16::from_le_bytes([part.bytes[at], part.bytes[at + 1]]));
                if !norm.is_finite() {
                    return Err(StreamError::Overflow {
                        row: row0 + r as u64,
                    });
                }
                at += len;
            }
            Ok(())
        })
        .find_map_first(Result::err);
    if let Some(e) = err {
        return Err(e);
    }
    fr.payload = fr.parts[..tasks].iter().map(|p| p.bytes.len() as u64).sum();
    Ok(())
}

/// One frame read from a packed file: its payload and per-row byte offsets.
struct Packed {
    bytes: Vec<u8>,
    long: usize,
    offsets: Vec<usize>,
    lens: Vec<usize>,
}

/// Decode a packed file from `input` into little-endian float32 rows on `output`. With the
/// input's total length (`input_len`, e.g. from file metadata) a file too short or too long
/// for the rows its header promises is refused before anything is decoded; either way every
/// frame is checked against the header (row counts, long-row list, payload size) and trailing
/// bytes are refused.
///
/// ```
/// use kakeya_lattice::stream::decode_stream;
/// let err = decode_stream(&b"KLATTICE\x09\x00"[..], Vec::new(), None).unwrap_err();
/// assert!(err.to_string().contains("truncated"));
/// ```
pub fn decode_stream<R: Read + Send, W: Write + Send>(
    mut input: R,
    mut output: W,
    input_len: Option<u64>,
) -> Result<StreamStats, StreamError> {
    let mut hb = [0u8; HEADER_BYTES];
    let got = super::fill(&mut input, &mut hb)?;
    let header = Header::parse(&hb[..got])?;
    let packer = header.packer()?;
    let (base, max_row) = (packer.base_bytes(), max_row_bytes(&packer));
    if let Some(len) = input_len {
        check_size(&header, base, max_row, len)?;
    }
    let dim = header.dim as usize;
    let frame_rows = header.frame_rows as usize;
    let mut rows_read = 0u64;
    let mut bytes_in = HEADER_BYTES as u64;
    let mut rows_done = 0u64;
    let new_packed = || Packed {
        bytes: Vec::new(),
        long: 0,
        offsets: Vec::with_capacity(frame_rows + 1),
        lens: Vec::with_capacity(frame_rows),
    };
    pipe::run(
        vec![new_packed(), new_packed()],
        vec![Floats::new(frame_rows * dim), Floats::new(frame_rows * dim)],
        |p| {
            let more = read_frame(&mut input, &header, base, max_row, rows_read, p)?;
            if more {
                rows_read += p.lens.len() as u64;
                bytes_in += (FRAME_HEADER_BYTES + 8 * p.long + p.bytes.len()) as u64;
            }
            Ok(more)
        },
        |p, y| {
            let rows = p.lens.len();
            y.len = rows * dim;
            decode_frame(&packer, p, &mut y.buf[..rows * dim], rows_done)?;
            rows_done += rows as u64;
            Ok(())
        },
        |y| write_floats(&mut output, y),
    )?;
    output.flush().map_err(StreamError::Write)?;
    Ok(StreamStats {
        rows: rows_done,
        bytes_in,
        bytes_out: rows_done * 4 * dim as u64,
        escapes: 0,
    })
}

/// Refuse a file whose length cannot hold what its header promises.
fn check_size(h: &Header, base: usize, max_row: usize, len: u64) -> Result<(), StreamError> {
    let min = h.min_file_bytes(base);
    let max = min + u128::from(h.rows) * (max_row - base + 8) as u128;
    if u128::from(len) < min {
        return Err(StreamError::BadHeader {
            reason: format!(
                "the file holds {len} bytes but its header promises {} rows of D={}, which need at \
                 least {min}: truncated, or the row count is wrong",
                h.rows, h.dim
            ),
        });
    }
    if u128::from(len) > max {
        return Err(StreamError::BadHeader {
            reason: format!(
                "the file holds {len} bytes but {} rows of D={} take at most {max}: the row count \
                 is wrong",
                h.rows, h.dim
            ),
        });
    }
    Ok(())
}

/// Read and check the next frame into `p`; `Ok(false)` once every promised row was read and
/// the input has nothing left.
fn read_frame(
    input: &mut impl Read,
    h: &Header,
    base: usize,
    max_row: usize,
    rows_read: u64,
    p: &mut Packed,
) -> Result<bool, StreamError> {
    p.lens.clear();
    p.offsets.clear();
    p.bytes.clear();
    let mut fh = [0u8; FRAME_HEADER_BYTES];
    let got = super::fill(input, &mut fh)?;
    if rows_read == h.rows {
        if got > 0 {
            return Err(corrupt(format!(
                "bytes follow the last of the header's {} rows",
                h.rows
            )));
        }
        return Ok(false);
    }
    if got < FRAME_HEADER_BYTES {
        return Err(corrupt(format!(
            "truncated: the header promises {} rows, the file ends after {rows_read}",
            h.rows
        )));
    }
    let rows = u32::from_le_bytes([fh[0], fh[1], fh[2], fh[3]]) as usize;
    let long = u32::from_le_bytes([fh[4], fh[5], fh[6], fh[7]]) as usize;
    let mut p8 = [0u8; 8];
    p8.copy_from_slice(&fh[8..16]);
    let payload = u64::from_le_bytes(p8);
    let want = (h.rows - rows_read).min(u64::from(h.frame_rows)) as usize;
    if rows != want {
        return Err(corrupt(format!(
            "frame at row {rows_read} holds {rows} rows, expected {want}"
        )));
    }
    if long > rows {
        return Err(corrupt(format!(
            "frame at row {rows_read} lists {long} long rows among {rows}"
        )));
    }
    let (lo, hi) = ((rows * base) as u64, (rows * max_row) as u64);
    if payload < lo || payload > hi {
        return Err(corrupt(format!(
            "frame at row {rows_read} claims {payload} payload bytes for {rows} rows \
             (possible: {lo}..={hi})"
        )));
    }
    p.lens.resize(rows, base);
    p.long = long;
    let mut list = vec![0u8; 8 * long];
    if super::fill(input, &mut list)? < list.len() {
        return Err(corrupt(format!(
            "truncated long-row list in the frame at row {rows_read}"
        )));
    }
    let mut last: Option<usize> = None;
    for pair in list.chunks_exact(8) {
        let r = u32::from_le_bytes([pair[0], pair[1], pair[2], pair[3]]) as usize;
        let l = u32::from_le_bytes([pair[4], pair[5], pair[6], pair[7]]) as usize;
        if r >= rows || last.is_some_and(|x| r <= x) || l <= base || l > max_row {
            return Err(corrupt(format!(
                "frame at row {rows_read}: long-row entry (row {r}, {l} bytes) is out of order \
                 or out of range"
            )));
        }
        p.lens[r] = l;
        last = Some(r);
    }
    p.offsets.push(0);
    let mut at = 0usize;
    for &l in &p.lens {
        at += l;
        p.offsets.push(at);
    }
    if at as u64 != payload {
        return Err(corrupt(format!(
            "frame at row {rows_read}: row sizes add up to {at} bytes, the frame claims {payload}"
        )));
    }
    let n = input
        .by_ref()
        .take(payload)
        .read_to_end(&mut p.bytes)
        .map_err(StreamError::Read)?;
    if n as u64 != payload {
        return Err(corrupt(format!(
            "truncated: the frame at row {rows_read} ends after {n} of its {payload} bytes"
        )));
    }
    Ok(true)
}

/// Decode one frame on all cores; a row decoding to a non-finite value (a forged side scalar)
/// is refused.
fn decode_frame(packer: &Packer, p: &Packed, y: &mut [f32], first: u64) -> Result<(), StreamError> {
    let dim = packer.codec().dim();
    let err = y
        .par_chunks_mut(CHUNK_ROWS * dim)
        .enumerate()
        .map(|(i, yc)| {
            let (s, e) = (i * CHUNK_ROWS, i * CHUNK_ROWS + yc.len() / dim);
            let bytes = &p.bytes[p.offsets[s]..p.offsets[e]];
            packer
                .decode_chunk(bytes, &p.lens[s..e], yc)
                .map_err(|err| match err {
                    CodecError::Malformed { reason } => corrupt(format!(
                        "rows {}..{}: {reason}",
                        first + s as u64,
                        first + e as u64
                    )),
                    other => other.into(),
                })?;
            match yc.iter().position(|v| !v.is_finite()) {
                None => Ok(()),
                Some(j) => Err(corrupt(format!(
                    "row {} decodes to a non-finite value (its side scalars are not valid)",
                    first + (s + j / dim) as u64
                ))),
            }
        })
        .find_map_first(Result::err);
    err.map_or(Ok(()), Err)
}
