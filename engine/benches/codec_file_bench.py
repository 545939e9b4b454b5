#!/usr/bin/env python3
"""Whole-process file round trips: `kakeya codec roundtrip` against the NumPy implementation
(numpy_codec.py roundtrip) on the same .f32 file, alternating A/B several times in one run,
each under `/usr/bin/time -v` (wall, user, system time, peak RSS). Prints a markdown table and
writes JSON. Standard library only; run through run_codec_file_bench.sh.

  codec_file_bench.py --kakeya BIN --python VENV_PY --numpy-script numpy_codec.py
      --out-dir DIR --rows 200000 --rows 2000000 [--alternations 3] [--q 38] [--dim 128]
"""
import argparse
import json
import os
import re
import subprocess
import sys


def timed(cmd):
    """Run `cmd` under /usr/bin/time -v; return wall, user, sys seconds and peak RSS (MB)."""
    p = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{p.stderr}")
    t = p.stderr

    def field(name):
        m = re.search(rf"{re.escape(name)}: (.+)", t)
        return m.group(1).strip() if m else None

    wall = field("Elapsed (wall clock) time (h:mm:ss or m:ss)")
    parts = [float(x) for x in wall.split(":")]
    secs = 0.0
    for x in parts:
        secs = secs * 60 + x
    return {
        "wall_s": secs,
        "user_s": float(field("User time (seconds)")),
        "sys_s": float(field("System time (seconds)")),
        "max_rss_mb": int(field("Maximum resident set size (kbytes)")) / 1024,
    }


def load():
    return os.getloadavg()[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kakeya", required=True)
    ap.add_argument("--python", required=True)
    ap.add_argument("--numpy-script", required=True)
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--rows", type=int, action="append", required=True)
    ap.add_argument("--alternations", type=int, default=3)
    ap.add_argument("--q", type=int, default=38)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--numpy-block-rows", type=int, default=200000)
    a = ap.parse_args()
    os.makedirs(a.out_dir, exist_ok=True)
    report = {"q": a.q, "dim": a.dim, "variant": "e8", "alternations": a.alternations,
              "cpus": os.cpu_count(), "numpy_block_rows": a.numpy_block_rows, "sizes": []}
    for rows in a.rows:
        x = os.path.join(a.out_dir, f"x_{rows}.f32")
        gen = ("import numpy as np,sys; n=int(sys.argv[1]); d=int(sys.argv[2]);"
               "(np.random.default_rng(20261201).standard_normal((n,d),dtype=np.float32)"
               "*np.float32(0.3)).astype('<f4').tofile(sys.argv[3])")
        subprocess.run([a.python, "-c", gen, str(rows), str(a.dim), x], check=True)
        yk = os.path.join(a.out_dir, f"y_kakeya_{rows}.f32")
        yn = os.path.join(a.out_dir, f"y_numpy_{rows}.f32")
        kak = [a.kakeya, "codec", "roundtrip", "--variant", "e8", "--q", str(a.q),
               "--dim", str(a.dim), "--in", x, "--out", yk]
        npy = [a.python, a.numpy_script, "roundtrip", "--in", x, "--out", yn, "--dim",
               str(a.dim), "--q", str(a.q), "--variant", "e8",
               "--block-rows", str(a.numpy_block_rows)]
        runs = []
        for i in range(a.alternations):
            l0 = load()
            k = timed(kak)
            n = timed(npy)
            runs.append({"alternation": i, "load1_before": l0, "load1_after": load(),
                         "kakeya": k, "numpy": n, "wall_ratio": n["wall_s"] / k["wall_s"]})
            print(f"rows={rows} alt={i} load={l0:.1f}: kakeya {k['wall_s']:.2f}s wall "
                  f"{k['user_s'] + k['sys_s']:.2f}s cpu {k['max_rss_mb']:.0f}MB | numpy "
                  f"{n['wall_s']:.2f}s wall {n['user_s'] + n['sys_s']:.2f}s cpu "
                  f"{n['max_rss_mb']:.0f}MB | {n['wall_s'] / k['wall_s']:.1f}x", flush=True)
        # Same output size; the NumPy matmul rounds differently, so values are not compared.
        assert os.path.getsize(yk) == os.path.getsize(yn) == os.path.getsize(x)
        best = {arm: min((r[arm] for r in runs), key=lambda m: m["wall_s"])
                for arm in ("kakeya", "numpy")}
        ratios = sorted(r["wall_ratio"] for r in runs)
        report["sizes"].append({
            "rows": rows, "bytes": os.path.getsize(x), "runs": runs, "best": best,
            "best_wall_ratio": best["numpy"]["wall_s"] / best["kakeya"]["wall_s"],
            "median_pair_ratio": ratios[len(ratios) // 2],
        })
        for f in (x, yk, yn):
            os.remove(f)
    with open(os.path.join(a.out_dir, "codec_file_bench.json"), "w") as f:
        json.dump(report, f, indent=2)
    print("\n| rows | arm | best wall s | user s | sys s | peak RSS MB | NumPy/kakeya wall (best-of; median pair) |")
    print("|---:|---|---:|---:|---:|---:|---|")
    for s in report["sizes"]:
        for arm in ("kakeya", "numpy"):
            b = s["best"][arm]
            ratio = (f"{s['best_wall_ratio']:.1f}x; {s['median_pair_ratio']:.1f}x"
                     if arm == "kakeya" else "")
            print(f"| {s['rows']:,} | {arm} | {b['wall_s']:.2f} | {b['user_s']:.2f} | "
                  f"{b['sys_s']:.2f} | {b['max_rss_mb']:.0f} | {ratio} |")
    loads = [r["load1_before"] for s in report["sizes"] for r in s["runs"]]
    print(f"\n1-min load average during the runs: {min(loads):.1f} .. {max(loads):.1f} "
          f"on {report['cpus']} CPUs")


if __name__ == "__main__":
    main()
