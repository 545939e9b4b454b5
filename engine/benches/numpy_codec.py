#!/usr/bin/env python3
"""A straightforward NumPy implementation of the KakeyaLattice pipeline (spec part 1), written
from the spec for benchmarking the Rust codec against "the obvious vectorised Python" on the
same data. It is float32 throughout, like the reference, with a dense Hadamard matmul.

Usage:
  numpy_codec.py bench --rows ROWS.f32 --dim 128 [--q 10] [--repeats 3] [--json OUT.json]
  numpy_codec.py parity VECTORS.json      # check this implementation against the shared vectors
"""
import argparse
import json
import math
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


def roundtrip(x, variant, q, h=None):
    n, d = x.shape
    if h is None:
        h = hadamard(d)
    x = x.astype(np.float32, copy=False)
    r = np.maximum(np.sqrt((x * x).sum(axis=1, keepdims=True)), EPS)
    r16 = r.astype(np.float16).astype(np.float32)
    y = (x / r) @ h
    qmax = np.maximum(np.abs(y).max(axis=1, keepdims=True), EPS)
    s = qmax.astype(np.float16).astype(np.float32) / np.float32(q)
    bd = 8 if variant == "e8" else 4
    blocks = (y / s).reshape(n, d // bd, bd)
    z = nearest_e8(blocks) if variant == "e8" else nearest_dn(blocks)
    z = np.clip(z, -q, q).astype(np.float32)
    return ((z.reshape(n, d) * s) @ h) * r16


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


def bench(args):
    raw = np.fromfile(args.rows, dtype="<f4")
    x = raw.reshape(-1, args.dim)
    h = hadamard(args.dim)
    results = []
    for variant in ("e8", "d4"):
        roundtrip(x[: min(len(x), 256)], variant, args.q, h)  # warm-up
        best = math.inf
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            roundtrip(x, variant, args.q, h)
            best = min(best, time.perf_counter() - t0)
        vps = len(x) / best
        results.append({
            "arm": f"numpy_{variant}_q{args.q}", "variant": variant, "q": args.q,
            "rows": len(x), "dim": args.dim, "seconds": best, "vectors_per_s": vps,
            "gb_per_s": vps * args.dim * 4 * 2 / 1e9,
        })
        print(f"numpy {variant} Q={args.q}: {vps / 1e6:.3f} M vectors/s ({best:.3f} s for {len(x)} rows)")
    out = {"numpy_version": np.__version__, "threads_note": "NumPy BLAS threads as configured", "results": results}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("bench")
    b.add_argument("--rows", required=True)
    b.add_argument("--dim", type=int, default=128)
    b.add_argument("--q", type=int, default=10)
    b.add_argument("--repeats", type=int, default=3)
    b.add_argument("--json")
    c = sub.add_parser("parity")
    c.add_argument("vectors")
    args = p.parse_args()
    if args.cmd == "parity":
        parity(args.vectors)
    else:
        bench(args)


if __name__ == "__main__":
    sys.exit(main())
