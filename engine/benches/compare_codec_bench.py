#!/usr/bin/env python3
"""Summarise one `run_codec_bench.sh` output folder as a Markdown table: every lattice arm and
operation at 1 thread and all threads, its bandwidth fraction, and its speed-up over the NumPy
implementation of the same variant and operation on the same rows in the same run (1 thread vs
NumPy pinned to one BLAS thread; all threads vs NumPy's BLAS default).

Usage: compare_codec_bench.py OUT_DIR
"""
import json
import os
import sys


def load(path):
    with open(path) as f:
        return json.load(f)


def main():
    out = sys.argv[1]
    rust = load(os.path.join(out, "codec_bench.json"))
    body = rust.get("body", rust)
    numpy = {}
    numpy_cpu = {}
    for name, key in (("numpy_codec_1t.json", "1"), ("numpy_codec.json", "all")):
        path = os.path.join(out, name)
        if os.path.exists(path):
            for r in load(path)["results"]:
                k = (key, r["variant"], r.get("op", "roundtrip"))
                numpy[k] = r["vectors_per_s"] / 1e6
                if "cpu_mvectors_per_s" in r:
                    numpy_cpu[k] = r["cpu_mvectors_per_s"]
    bw = body["bandwidth_gb_per_s"]
    print(f"kernel: {body.get('kernel', '?')}; copy bandwidth: "
          + ", ".join(f"{t} thread(s) {v:.1f} GB/s" for t, v in bw.items()))
    print()
    print("| arm | op | threads | M vectors/s | GB/s | % of bandwidth | × NumPy | M vec/CPU-s | × NumPy (CPU time) |")
    print("|---|---|---|---|---|---|---|---|---|")
    max_t = max(int(t) for t in bw)
    for r in body["results"]:
        arm = r["arm"]
        if not (arm.startswith("e8") or arm.startswith("d4")):
            continue
        variant = arm[:2]
        key = "1" if r["threads"] == 1 else ("all" if r["threads"] == max_t else None)
        ref = numpy.get((key, variant, r["op"]))
        ratio = f"{r['mvectors_per_s'] / ref:.1f}×" if ref else "—"
        cpu = r.get("cpu_mvectors_per_s")
        ref_cpu = numpy_cpu.get((key, variant, r["op"])) if key == "1" else None
        cpu_s = f"{cpu:.3f}" if cpu else "—"
        cpu_ratio = f"{cpu / ref_cpu:.1f}×" if cpu and ref_cpu else "—"
        print(f"| {arm} | {r['op']} | {r['threads']} | {r['mvectors_per_s']:.3f} | "
              f"{r['gb_per_s']:.2f} | {100 * r['bandwidth_fraction']:.1f} % | {ratio} | "
              f"{cpu_s} | {cpu_ratio} |")
    print()
    print("| NumPy (same rows) | op | BLAS threads | M vectors/s | M vec/CPU-s |")
    print("|---|---|---|---|---|")
    for k, v in sorted(numpy.items()):
        key, variant, op = k
        cpu = numpy_cpu.get(k)
        print(f"| numpy_{variant} | {op} | {'1' if key == '1' else 'default'} | {v:.3f} | "
              f"{cpu:.3f} |" if cpu else f"| numpy_{variant} | {op} | {key} | {v:.3f} | — |")


if __name__ == "__main__":
    main()
