#!/usr/bin/env bash
# Does msnet-runtime's speed depend on the input? Every shipped model (models/*/ with golden/)
# on the synthetic input and on each of its golden inputs, in one run, one thread (THREADS to
# change); then per model the spread: slowest median over fastest median, minus one.
#
#   scripts/bench-inputs.sh [MODEL_DIR...]        RUNS (default 20), THREADS (default 1)
#
# Prints msnet-run's JSON lines, then a table.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
runs="${RUNS:-20}"
threads="${THREADS:-1}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/msnet-edge/target}"
cd "$root"
cargo build --release --locked -p msnet-run >&2
run="$CARGO_TARGET_DIR/release/msnet-run"
if [ "$#" -eq 0 ]; then
    for dir in models/*/; do
        [ -f "$dir/golden/manifest.json" ] && set -- "$@" "${dir%/}"
    done
fi
results="$(mktemp)"
trap 'rm -f "$results"' EXIT
for model in "$@"; do
    "$run" bench --model "$model" --runs "$runs" --threads "$threads" --json | tee -a "$results"
    for case in "$model"/golden/*.input.npy; do
        "$run" bench --model "$model" --runs "$runs" --threads "$threads" --json --input "$case" \
            | tee -a "$results"
    done
done
python3 - "$results" <<'PY'
import json, os, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(f"\n{'model':<28} {'input':<18} {'median ms':>10} {'min ms':>8}")
by_model = {}
for r in rows:
    name = os.path.basename(r["input"]).removesuffix(".input.npy")
    print(f"{os.path.basename(r['model']):<28} {name:<18} {r['median_ms']:>10.2f} {r['min_ms']:>8.2f}")
    by_model.setdefault(r["model"], []).append(r["median_ms"])
print()
for model, medians in by_model.items():
    print(f"{os.path.basename(model):<28} spread {100 * (max(medians) / min(medians) - 1):5.1f}% "
          f"over {len(medians)} inputs ({rows[0]['threads']} thread(s), {rows[0]['conv_kernel']})")
PY
