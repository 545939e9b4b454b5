#!/usr/bin/env bash
# Codec benchmark: the Rust codec (`kakeya codec bench`) and a straightforward NumPy
# implementation of the same pipeline, on the same rows, in one run. NumPy is installed
# here, into a private venv, never in CI.
#
#   engine/benches/run_codec_bench.sh [ROWS] [Q] [OUT_DIR]
set -euo pipefail
ROWS=${1:-262144}
Q=${2:-10}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=${3:-$TARGET/codec-bench}
VENV=$TARGET/codec-bench-venv
mkdir -p "$OUT"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -c 'import numpy' 2>/dev/null || "$VENV/bin/pip" install -q numpy
(cd "$ROOT" && CARGO_TARGET_DIR=$TARGET cargo build --release -q -p kakeya-engine)
REPEATS=${REPEATS:-5}
uptime | tee "$OUT/load.txt"
"$TARGET/release/kakeya" codec bench --dim 128 --rows "$ROWS" --q "$Q" --repeats "$REPEATS" \
  --dump-rows "$OUT/rows.f32" --out "$OUT/codec_bench.json" | tee "$OUT/codec_bench.txt"
# NumPy on the same rows: its BLAS default (all cores) and pinned to one thread.
"$VENV/bin/python" "$ROOT/engine/benches/numpy_codec.py" bench --rows "$OUT/rows.f32" --dim 128 \
  --q "$Q" --repeats 3 --json "$OUT/numpy_codec.json" | tee "$OUT/numpy_codec.txt"
OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 "$VENV/bin/python" "$ROOT/engine/benches/numpy_codec.py" \
  bench --rows "$OUT/rows.f32" --dim 128 --q "$Q" --repeats 3 --json "$OUT/numpy_codec_1t.json" \
  | tee "$OUT/numpy_codec_1t.txt"
uptime | tee -a "$OUT/load.txt"
"$VENV/bin/python" "$ROOT/engine/benches/compare_codec_bench.py" "$OUT" | tee "$OUT/summary.md"
"$VENV/bin/python" "$ROOT/engine/benches/numpy_codec.py" parity \
  "$ROOT/codec/tests/data/kakeya_reference_vectors.json" | tail -1 || true
