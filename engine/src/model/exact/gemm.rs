//! The batch-invariant matrix multiply `y[m, n] = x[m, k] · Wᵀ` on packed weights.
//!
//! Every output element is one fused multiply-add chain over `k` in index order, starting
//! from zero: `acc = fma(x[k], w[k], acc)`. Nothing else touches it — not the number of
//! rows `m`, not how rows are grouped into register tiles, not how the depth is split into
//! cache blocks (a partial sum is stored as the very f32 the next block continues from), not
//! which thread ran it, and not the instruction set (an FMA is exactly rounded everywhere).
//! So a block of L rows gives the same bits as L single-row calls, which is what makes
//! speculative decoding lossless to the last bit, and the same bits on AVX-512, AVX2 and
//! NEON.
//!
//! Speed comes from the layout, not from reordering: a panel of [`NR`] outputs streams
//! front to back; decode (`m = 1`) walks two panels at a time per core and both cores split
//! the panels, so the weights stream at memory speed; blocks and prefill run register tiles
//! of up to a dozen rows, so one load of a weight feeds that many FMAs and a verify block
//! costs little more than one step.

use std::sync::OnceLock;

use rayon::prelude::*;

use super::elem::{COPY_AVX2, COPY_AVX512, COPY_PORTABLE, Elem};
use super::pack::{NR, Packed};

/// Depth per pass over a register tile: the tile's slice of a panel (`KC × NR` weights)
/// stays in L1/L2 while every row tile of the block reads it.
const KC: usize = 256;

/// Which compiled copy of the kernels runs. All give identical bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    Avx512,
    Avx2,
    /// Plain Rust (NEON on aarch64, where FMA is baseline).
    Portable,
}

/// The best copy this CPU runs; `KAKEYA_EXACT_ISA=portable|avx2|avx512` forces one (for
/// tests proving the copies agree; an unsupported request falls back to detection).
pub fn isa() -> Isa {
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(|| {
        let forced = std::env::var("KAKEYA_EXACT_ISA").ok();
        let detected = detect();
        match forced.as_deref() {
            Some("portable") => Isa::Portable,
            Some("avx2") if detected != Isa::Portable => Isa::Avx2,
            _ => detected,
        }
    })
}

/// What this CPU supports, detected once.
fn detect() -> Isa {
    static DETECTED: OnceLock<Isa> = OnceLock::new();
    *DETECTED.get_or_init(probe)
}

fn probe() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("fma")
        {
            return Isa::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return Isa::Avx2;
        }
    }
    Isa::Portable
}

/// Runs of rows in one register tile, largest first, for each instruction set.
fn tile_rows(isa: Isa) -> &'static [usize] {
    match isa {
        Isa::Avx512 => &[12, 8, 4, 2, 1],
        Isa::Avx2 | Isa::Portable => &[2, 1],
    }
}

/// `y[m, n] = x[m, k] · Wᵀ` on the best instruction set.
pub fn matmul<E: Elem>(x: &[f32], m: usize, w: &Packed<E>) -> Vec<f32> {
    matmul_on(isa(), x, m, w)
}

/// [`matmul`] on a chosen instruction set (falls back to portable if this CPU lacks it).
pub fn matmul_on<E: Elem>(isa: Isa, x: &[f32], m: usize, w: &Packed<E>) -> Vec<f32> {
    let isa = match (isa, detect()) {
        (_, Isa::Portable) | (Isa::Portable, _) => Isa::Portable,
        (Isa::Avx512, Isa::Avx2) => Isa::Avx2,
        (asked, _) => asked,
    };
    let (k, n) = (w.k, w.n);
    assert_eq!(x.len(), m * k, "matmul: x is not [m, k]");
    if m == 0 || n == 0 {
        return Vec::new();
    }
    let panels = w.panels();
    let tiles = plan_tiles(m, tile_rows(isa));
    let packed_x = if m == 1 {
        None
    } else {
        Some(pack_rows(x, k, &tiles))
    };
    let xs = packed_x.as_deref().unwrap_or(x);
    let per_task = panels_per_task(m, panels);
    let mut out = vec![0.0f32; panels * m * NR];
    out.par_chunks_mut(per_task * m * NR)
        .enumerate()
        .for_each(|(t, chunk)| {
            let job = Job {
                x: xs,
                m,
                k,
                first_panel: t * per_task,
                tiles: &tiles,
            };
            run(isa, &job, w, chunk);
        });
    if m == 1 {
        out.truncate(n);
        return out;
    }
    let mut y = vec![0.0f32; m * n];
    for p in 0..panels {
        let live = (n - p * NR).min(NR);
        for i in 0..m {
            let src = &out[(p * m + i) * NR..(p * m + i) * NR + live];
            y[i * n + p * NR..i * n + p * NR + live].copy_from_slice(src);
        }
    }
    y
}

/// Enough panels per task to amortise scheduling, few enough that both threads stay busy.
fn panels_per_task(m: usize, panels: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    let tasks = if m == 1 { threads * 2 } else { threads * 4 };
    let per = panels.div_ceil(tasks).max(1);
    // Decode walks panels in pairs.
    if m == 1 { per + per % 2 } else { per }
}

/// `(first row, rows)` of each register tile: greedy over the allowed sizes.
fn plan_tiles(m: usize, sizes: &[usize]) -> Vec<(usize, usize)> {
    let mut tiles = Vec::new();
    let mut r0 = 0;
    while r0 < m {
        let rows = sizes.iter().copied().find(|&s| s <= m - r0).unwrap_or(1);
        tiles.push((r0, rows));
        r0 += rows;
    }
    tiles
}

/// Each tile's rows interleaved depth-major (`[k][rows]`) at offset `r0 · k`, so a tile
/// reads its inputs as one stream.
fn pack_rows(x: &[f32], k: usize, tiles: &[(usize, usize)]) -> Vec<f32> {
    let mut out = vec![0.0f32; x.len()];
    for &(r0, rows) in tiles {
        let dst = &mut out[r0 * k..(r0 + rows) * k];
        for r in 0..rows {
            let src = &x[(r0 + r) * k..(r0 + r + 1) * k];
            for (kk, v) in src.iter().enumerate() {
                dst[kk * rows + r] = *v;
            }
        }
    }
    out
}

struct Job<'a> {
    x: &'a [f32],
    m: usize,
    k: usize,
    first_panel: usize,
    tiles: &'a [(usize, usize)],
}

fn run<E: Elem>(isa: Isa, job: &Job, w: &Packed<E>, out: &mut [f32]) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `matmul_on` picks Avx512/Avx2 only after detecting those features.
        Isa::Avx512 => unsafe { run_avx512(job, w, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx2 => unsafe { run_avx2(job, w, out) },
        _ => run_body::<E, COPY_PORTABLE>(job, w, out),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
fn run_avx512<E: Elem>(job: &Job, w: &Packed<E>, out: &mut [f32]) {
    run_body::<E, COPY_AVX512>(job, w, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
fn run_avx2<E: Elem>(job: &Job, w: &Packed<E>, out: &mut [f32]) {
    run_body::<E, COPY_AVX2>(job, w, out)
}

/// One task: its panels, every row tile. Decode (one row) walks two panels at a time: two
/// weight streams per core keep more memory requests in flight than one.
#[inline(always)]
fn run_body<E: Elem, const COPY: u8>(job: &Job, w: &Packed<E>, out: &mut [f32]) {
    let (m, k) = (job.m, job.k);
    if m == 1 {
        let count = out.len() / NR;
        let mut p = 0;
        while p + 2 <= count {
            let (a, b) = (
                w.panel(job.first_panel + p),
                w.panel(job.first_panel + p + 1),
            );
            row_pair::<E, COPY>(job.x, a, b, &mut out[p * NR..(p + 2) * NR]);
            p += 2;
        }
        if p < count {
            let d = Depth { from: 0, to: k };
            tile::<E, 1, COPY>(
                job.x,
                w.panel(job.first_panel + p),
                d,
                &mut out[p * NR..(p + 1) * NR],
            );
        }
        return;
    }
    for (p, o) in out.chunks_exact_mut(m * NR).enumerate() {
        let panel = w.panel(job.first_panel + p);
        let mut kb = 0;
        while kb < k {
            let ke = (kb + KC).min(k);
            for &(r0, rows) in job.tiles {
                let x = &job.x[r0 * k..(r0 + rows) * k];
                let o = &mut o[r0 * NR..(r0 + rows) * NR];
                let d = Depth { from: kb, to: ke };
                match rows {
                    12 => tile::<E, 12, COPY>(x, panel, d, o),
                    8 => tile::<E, 8, COPY>(x, panel, d, o),
                    4 => tile::<E, 4, COPY>(x, panel, d, o),
                    2 => tile::<E, 2, COPY>(x, panel, d, o),
                    _ => tile::<E, 1, COPY>(x, panel, d, o),
                }
            }
            kb = ke;
        }
    }
}

#[derive(Clone, Copy)]
struct Depth {
    from: usize,
    to: usize,
}

/// One row against two panels: two weight streams and four FMA chains per 16 outputs.
#[inline(always)]
fn row_pair<E: Elem, const COPY: u8>(x: &[f32], a: &[E], b: &[E], out: &mut [f32]) {
    let mut acc_a = [0.0f32; NR];
    let mut acc_b = [0.0f32; NR];
    let (wa, wb) = (a.as_chunks::<NR>().0, b.as_chunks::<NR>().0);
    for ((xv, ra), rb) in x.iter().zip(wa).zip(wb) {
        let (va, vb) = (E::widen_row::<COPY>(ra), E::widen_row::<COPY>(rb));
        for j in 0..NR {
            acc_a[j] = xv.mul_add(va[j], acc_a[j]);
        }
        for j in 0..NR {
            acc_b[j] = xv.mul_add(vb[j], acc_b[j]);
        }
    }
    out[..NR].copy_from_slice(&acc_a);
    out[NR..2 * NR].copy_from_slice(&acc_b);
}

/// `R` rows (inputs packed `[k][R]`) against one panel over `depth`, continuing the chains
/// stored in `out` (`[R][NR]`) unless the depth starts at zero.
#[inline(always)]
fn tile<E: Elem, const R: usize, const COPY: u8>(
    x: &[f32],
    panel: &[E],
    depth: Depth,
    out: &mut [f32],
) {
    let mut acc = [[0.0f32; NR]; R];
    if depth.from > 0 {
        for (r, o) in out.chunks_exact(NR).enumerate() {
            acc[r].copy_from_slice(o);
        }
    }
    let xs = x[depth.from * R..depth.to * R].as_chunks::<R>().0;
    let ws = panel[depth.from * NR..depth.to * NR].as_chunks::<NR>().0;
    for (xr, wr) in xs.iter().zip(ws) {
        let wv = E::widen_row::<COPY>(wr);
        for r in 0..R {
            let a = xr[r];
            for j in 0..NR {
                acc[r][j] = a.mul_add(wv[j], acc[r][j]);
            }
        }
    }
    for (r, o) in out.chunks_exact_mut(NR).enumerate() {
        o.copy_from_slice(&acc[r]);
    }
}
