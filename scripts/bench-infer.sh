#!/usr/bin/env bash
# Inference benchmark: msnet-runtime against tract and ONNX Runtime on the same exported model,
# in one run, on this machine. Prints one JSON line per engine and a table with ratios.
#
#   scripts/bench-infer.sh [MODEL_DIR] [SIZE]     default: models/wbc-s10-seed0 at 128x128
#
# The model is re-exported at SIZE into a temporary directory (the shipped one is untouched).
# ONNX Runtime comes from the virtual environment of scripts/check-onnxruntime.sh.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
model="${1:-$root/models/wbc-s10-seed0}"
size="${2:-128x128}"
runs="${RUNS:-30}"
venv="${MSNET_ORT_VENV:-$HOME/.cache/msnet-edge/ort-venv}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/msnet-edge/target}"

cd "$root"
# msnet-run in release. The host command `msnet` (export, and tract's timing) in the dev
# profile: the workspace builds every dependency, tract included, at opt-level 3 there, and a
# cold release build of burn + tract takes 25 minutes on 2 cores.
cargo build --release --locked -p msnet-run >&2
cargo build --locked -p msnet-cli >&2
bin="$CARGO_TARGET_DIR/release"
host="$CARGO_TARGET_DIR/debug"
if ! "$venv/bin/python" -c "import onnxruntime, numpy" 2>/dev/null; then
    "$here/check-onnxruntime.sh" "$model" >&2   # installs the venv
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$model/config.json" "$model/model.safetensors" "$work/"
"$host/msnet" export "$work" --shape "$size" >&2

{
    "$bin/msnet-run" bench --model "$work" --runs "$runs" --json
    "$host/msnet" bench-tract --model "$work" --runs "$((runs / 3 + 1))"
    "$venv/bin/python" "$here/ort_bench.py" "$work" "$runs" 1 2
} | tee "$work/results.jsonl"

"$venv/bin/python" - "$work/results.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
ours = next(r for r in rows if r["engine"] == "msnet-runtime")
print(f"\n{'engine':<22} {'threads':>7} {'median ms':>10} {'min ms':>8}  {'msnet-runtime speed-up':>22}")
for r in rows:
    ratio = r["median_ms"] / ours["median_ms"]
    print(f"{r['engine']:<22} {r['threads']:>7} {r['median_ms']:>10.2f} {r['min_ms']:>8.2f}  {ratio:>21.2f}x")
print(f"\nmsnet-runtime: {ours['gflop_per_frame']:.3f} GFLOP/frame, {ours['gflops_at_median']:.1f} GFLOP/s "
      f"at the median, {ours['allocations_per_frame']} allocations per frame, arena {ours['arena_bytes']/2**20:.2f} MiB")
PY
