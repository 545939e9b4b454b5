#!/usr/bin/env bash
# Whole-process file round trips: `kakeya codec roundtrip --variant e8 --q 38 --dim 128` against
# a straightforward NumPy implementation on the same .f32 file, alternated in one run, each
# measured by /usr/bin/time -v (wall, CPU, peak RSS). NumPy goes into a private venv, never CI.
#
#   engine/benches/run_codec_file_bench.sh [ALTERNATIONS] [ROWS...]   (default: 3 200000 2000000)
set -euo pipefail
ALTS=${1:-3}
shift || true
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(200000 2000000)
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=${OUT_DIR:-$TARGET/codec-file-bench}
VENV=$TARGET/codec-bench-venv
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -c 'import numpy' 2>/dev/null || "$VENV/bin/pip" install -q numpy
(cd "$ROOT" && CARGO_TARGET_DIR=$TARGET cargo build --release -q -p kakeya-engine)
mkdir -p "$OUT"
ARGS=()
for n in "${SIZES[@]}"; do ARGS+=(--rows "$n"); done
uptime | tee "$OUT/load.txt"
"$VENV/bin/python" -c 'import numpy; print("numpy", numpy.__version__)' | tee -a "$OUT/load.txt"
python3 "$ROOT/engine/benches/codec_file_bench.py" --kakeya "$TARGET/release/kakeya" \
  --python "$VENV/bin/python" --numpy-script "$ROOT/engine/benches/numpy_codec.py" \
  --out-dir "$OUT" --alternations "$ALTS" "${ARGS[@]}" | tee "$OUT/summary.md"
uptime | tee -a "$OUT/load.txt"
