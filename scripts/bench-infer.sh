#!/usr/bin/env bash
# Inference benchmark: msnet-runtime against tract and ONNX Runtime on the same exported model,
# in one run, on this machine. ONNX Runtime runs both the project's model.onnx and the tuned
# variant (model.tuned.onnx: repeated nodes once, softmax as exp / sum, ConvTranspose as the
# flipped Conv). Prints one JSON line per engine, then the machine, a table with ratios and
# the runtime-speed issue's targets.
#
#   scripts/bench-infer.sh [MODEL_DIR] [SIZE]     default: models/fundus-disc-cup at 128x128
#   RUNS=30 THREADS="1 2" TRACT=1                 (environment, with their defaults)
#
# The model is re-exported at SIZE into a temporary directory (the shipped one is untouched).
# ONNX Runtime comes from the virtual environment of scripts/check-onnxruntime.sh.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
model="${1:-$root/models/fundus-disc-cup}"
size="${2:-128x128}"
runs="${RUNS:-30}"
threads="${THREADS:-1 2}"
tract="${TRACT:-1}"
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
"$host/msnet" export "$work" --shape "$size" --tuned-onnx >&2

{
    for t in $threads; do
        "$bin/msnet-run" bench --model "$work" --runs "$runs" --threads "$t" --json
    done
    for file in model.onnx model.tuned.onnx; do
        # shellcheck disable=SC2086  # one argument per thread count
        "$venv/bin/python" "$here/ort_bench.py" "$work" "$runs" $threads --file "$file"
    done
    if [ "$tract" = 1 ]; then
        "$host/msnet" bench-tract --model "$work" --runs "$((runs / 3 + 1))"
    fi
} | tee "$work/results.jsonl"

"$venv/bin/python" - "$work/results.jsonl" "$(basename "$model")" "$size" <<'PY'
import json, os, platform, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
model, size = sys.argv[2], sys.argv[3]
ours = {r["threads"]: r for r in rows if r["engine"] == "msnet-runtime"}

cpu, flags = platform.processor() or platform.machine(), set()
if os.path.exists("/proc/cpuinfo"):
    for line in open("/proc/cpuinfo"):
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            cpu = value.strip()
        elif key.strip() in ("flags", "Features"):
            flags = set(value.split())
kind = "AVX-512F" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
kernel = next(iter(ours.values()))["conv_kernel"] if ours else "?"
print(f"\nmachine: {cpu}, {os.cpu_count()} logical CPUs, avx512f: "
      f"{'yes' if 'avx512f' in flags else 'no'} ({kind} machine); "
      f"msnet-runtime convolution kernel: {kernel}")
print(f"model: {model} at {size}")

print(f"\n{'engine':<40} {'threads':>7} {'median ms':>10} {'min ms':>8} {'GFLOP/s':>8}  {'msnet-runtime (same threads) is faster by':>41}")
for r in rows:
    mine = ours.get(r["threads"])
    ratio = f"{r['median_ms'] / mine['median_ms']:.2f}x" if mine else "-"
    gflops = mine["gflop_per_frame"] / (r["median_ms"] * 1e-3) if mine else float("nan")
    print(f"{r['engine']:<40} {r['threads']:>7} {r['median_ms']:>10.2f} {r['min_ms']:>8.2f} {gflops:>8.1f}  {ratio:>41}")
for t, r in sorted(ours.items()):
    print(f"\nmsnet-runtime, {t} thread(s): {r['gflop_per_frame']:.3f} GFLOP/frame, {r['gflops_at_median']:.1f} GFLOP/s "
          f"at the median, {r['allocations_per_frame']} allocations per frame, arena {r['arena_bytes']/2**20:.2f} MiB")

def ort(file, threads):
    return next((r for r in rows if r.get("onnx_file") == file and r["threads"] == threads), None)

# The runtime-speed issue's targets (fundus model at 128x128), on medians.
print("\ntargets (medians):")
targets = []
if 1 in ours:
    for file, goal in (("model.onnx", 2.5), ("model.tuned.onnx", 1.5)):
        if (o := ort(file, 1)) is not None:
            targets.append((f"1 thread: msnet-runtime vs ONNX Runtime on {file}",
                            o["median_ms"] / ours[1]["median_ms"], goal))
if 1 in ours and 2 in ours:
    targets.append(("msnet-runtime 2 threads vs 1 thread",
                    ours[1]["median_ms"] / ours[2]["median_ms"], 1.8))
for label, ratio, goal in targets:
    print(f"  {label:<58} {ratio:5.2f}x  (target >= {goal}x: {'met' if ratio >= goal else 'MISSED'})")
PY
