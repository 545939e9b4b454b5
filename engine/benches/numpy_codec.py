#!/usr/bin/env python3
"""A straightforward NumPy implementation of the KakeyaLattice pipeline (spec part 1), written
from the spec for benchmarking the Rust codec against "the obvious vectorised Python" on the
same data. It is float32 throughout, like the reference, with a dense Hadamard matmul.

Usage:
  numpy_codec.py bench --rows ROWS.f32 --dim 128 [--q 10] [--repeats 3] [--json OUT.json]
      times the round trip and its two halves (encode = steps 1-7, decode = 8-10, no bit
      packing); set OPENBLAS_NUM_THREADS=1 for a single-thread run
  numpy_codec.py parity VECTORS.json      # check this implementation against the shared vectors
  numpy_codec.py roundtrip --in X.f32 --out Y.f32 --dim 128 --q 38 [--variant e8]
      [--block-rows N]   whole-process file round trip (read, code, write), the same job as
      `kakeya codec roundtrip`; the whole file at once unless --block-rows bounds the rows
      coded per vectorised call (to keep very large files out of swap)
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np

EPS = np.float32(np.finfo(np.float32).eps)


def hadamard(d):
    h = np.ones((1, 1), dtype=np.float32)
    while h.shape[0] < d:
        h = np.block([[h, h], [h, -h]])
    return (h / np.float32(math.sqrt(d))).astype(np.float32)


def nearest_dn(y):
    """Closest D_n point per row of the last axis (round half even, first-index argmax)."""
    f = np.round(y)
    odd = (f.sum(axis=-1).astype(np.int64) % 2) != 0
    if not odd.any():
        return f
    err = y - f
    k = np.argmax(np.abs(err), axis=-1)[..., None]
    step = np.where(np.take_along_axis(err, k, axis=-1) >= 0, 1.0, -1.0).astype(np.float32)
    fixed = f.copy()
    np.put_along_axis(fixed, k, np.take_along_axis(f, k, axis=-1) + step, axis=-1)
    return np.where(odd[..., None], fixed, f)


def nearest_e8(y):
    a = nearest_dn(y)
    b = nearest_dn(y - np.float32(0.5)) + np.float32(0.5)
    da = ((y - a) ** 2).sum(axis=-1, keepdims=True)
    db = ((y - b) ** 2).sum(axis=-1, keepdims=True)
    return np.where(da <= db, a, b)


def encode(x, variant, q, h=None):
    """Steps 1-7: lattice points z and the two fp16 side scalars (no bit packing)."""
    n, d = x.shape
    if h is None:
        h = hadamard(d)
    x = x.astype(np.float32, copy=False)
    r = np.maximum(np.sqrt((x * x).sum(axis=1, keepdims=True)), EPS)
    r16 = r.astype(np.float16)
    y = (x / r) @ h
    qmax = np.maximum(np.abs(y).max(axis=1, keepdims=True), EPS)
    q16 = qmax.astype(np.float16)
    s = q16.astype(np.float32) / np.float32(q)
    bd = 8 if variant == "e8" else 4
    blocks = (y / s).reshape(n, d // bd, bd)
    z = nearest_e8(blocks) if variant == "e8" else nearest_dn(blocks)
    z = np.clip(z, -q, q).astype(np.float32)
    return z.reshape(n, d), r16, q16


def decode(z, r16, q16, q, h=None):
    """Steps 8-10."""
    if h is None:
        h = hadamard(z.shape[1])
    s = q16.astype(np.float32) / np.float32(q)
    return ((z * s) @ h) * r16.astype(np.float32)


def roundtrip(x, variant, q, h=None):
    z, r16, q16 = encode(x, variant, q, h)
    return decode(z, r16, q16, q, h)


def parity(path):
    data = json.load(open(path))
    worst = 0.0
    for case in data["roundtrip"]:
        x = np.array(case["x"], dtype=np.float32)
        for variant, key in (("e8", "e8"), ("d4", "d4_glue")):
            want = np.array(case[key], dtype=np.float32)
            got = roundtrip(x, variant, case["q_range"])
            delta = float(np.abs(got - want).max())
            exact = float((got == want).mean())
            worst = max(worst, delta)
            print(f"D={case['D']} Q={case['q_range']} {variant}: max|d|={delta:.3e} exact={exact:.3f}")
    print(f"worst {worst:.3e}")


def blas_threads():
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        if os.environ.get(var):
            return f"{var}={os.environ[var]}"
    return "BLAS default"


def best(repeats, f):
    """Best wall time and best process CPU time over `repeats` runs after a warm-up."""
    f()  # warm-up (not timed)
    t_best = c_best = math.inf
    for _ in range(repeats):
        c0 = time.process_time()
        t0 = time.perf_counter()
        f()
        t_best = min(t_best, time.perf_counter() - t0)
        c_best = min(c_best, time.process_time() - c0)
    return t_best, c_best


def bench(args):
    raw = np.fromfile(args.rows, dtype="<f4")
    x = raw.reshape(-1, args.dim)
    h = hadamard(args.dim)
    threads = blas_threads()
    results = []
    for variant in ("e8", "d4"):
        z, r16, q16 = encode(x, variant, args.q, h)
        for op, f in (
            ("roundtrip", lambda: roundtrip(x, variant, args.q, h)),
            ("encode", lambda: encode(x, variant, args.q, h)),
            ("decode", lambda: decode(z, r16, q16, args.q, h)),
        ):
            secs, cpu = best(args.repeats, f)
            vps = len(x) / secs
            results.append({
                "arm": f"numpy_{variant}_q{args.q}", "variant": variant, "q": args.q, "op": op,
                "rows": len(x), "dim": args.dim, "seconds": secs, "vectors_per_s": vps,
                "mvectors_per_s": vps / 1e6, "cpu_seconds": cpu,
                "cpu_mvectors_per_s": len(x) / cpu / 1e6, "blas_threads": threads,
            })
            print(f"numpy {variant} Q={args.q} {op:<9} ({threads}): {vps / 1e6:.3f} M vectors/s, "
                  f"{len(x) / cpu / 1e6:.3f} M vectors/CPU-s ({secs:.3f} s for {len(x)} rows)")
    out = {"numpy_version": np.__version__, "blas_threads": threads,
           "note": "encode/decode are the pipeline halves without any bit packing",
           "results": results}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


def roundtrip_file(args):
    raw = np.fromfile(args.input, dtype="<f4")
    x = raw.reshape(-1, args.dim)
    h = hadamard(args.dim)
    step = args.block_rows or len(x) or 1
    with open(args.out, "wb") as f:
        for i in range(0, len(x), step):
            roundtrip(x[i:i + step], args.variant, args.q, h).astype("<f4").tofile(f)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("bench")
    b.add_argument("--rows", required=True)
    b.add_argument("--dim", type=int, default=128)
    b.add_argument("--q", type=int, default=10)
    b.add_argument("--repeats", type=int, default=3)
    b.add_argument("--json")
    r = sub.add_parser("roundtrip")
    r.add_argument("--in", dest="input", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--dim", type=int, default=128)
    r.add_argument("--q", type=int, default=38)
    r.add_argument("--variant", default="e8", choices=("e8", "d4"))
    r.add_argument("--block-rows", type=int, default=0)
    c = sub.add_parser("parity")
    c.add_argument("vectors")
    args = p.parse_args()
    if args.cmd == "parity":
        parity(args.vectors)
    elif args.cmd == "roundtrip":
        roundtrip_file(args)
    else:
        bench(args)


if __name__ == "__main__":
    sys.exit(main())
