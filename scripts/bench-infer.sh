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
    "$bin/msnet-run" bench --model "$work" --runs "$runs" --threads 1 --json
    "$bin/msnet-run" bench --model "$work" --runs "$runs" --threads 2 --json
    "$host/msnet" bench-tract --model "$work" --runs "$((runs / 3 + 1))"
    "$venv/bin/python" "$here/ort_bench.py" "$work" "$runs" 1 2
} | tee "$work/results.jsonl"

"$venv/bin/python" - "$work/results.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
ours = {r["threads"]: r for r in rows if r["engine"] == "msnet-runtime"}
peak = 78.4  # one core: 2 FMA units x 8 lanes x 2 flops x 2.45 GHz
print(f"\n{'engine':<22} {'threads':>7} {'median ms':>10} {'min ms':>8} {'GFLOP/s':>8}  {'msnet-runtime (same threads) is faster by':>41}")
for r in rows:
    mine = ours.get(r["threads"])
    ratio = f"{r['median_ms'] / mine['median_ms']:.2f}x" if mine else "-"
    gflops = mine["gflop_per_frame"] / (r["median_ms"] * 1e-3) if mine else float("nan")
    print(f"{r['engine']:<22} {r['threads']:>7} {r['median_ms']:>10.2f} {r['min_ms']:>8.2f} {gflops:>8.1f}  {ratio:>41}")
for t, r in sorted(ours.items()):
    print(f"\nmsnet-runtime, {t} thread(s): {r['gflop_per_frame']:.3f} GFLOP/frame, {r['gflops_at_median']:.1f} GFLOP/s "
          f"at the median ({100 * r['gflops_at_median'] / (peak * t):.0f}% of {t} core(s)' peak of {peak} GFLOP/s each), "
          f"{r['allocations_per_frame']} allocations per frame, arena {r['arena_bytes']/2**20:.2f} MiB")
PY
