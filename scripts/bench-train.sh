#!/usr/bin/env bash
# Training throughput of MSNet (forward + backward + Adam) on generated phantoms, engines side
# by side in one run, as JSON lines: the native engine and burn at 1 and 2 threads, 2D 112x112
# batch 4 (the WBC size), 3D 16x64x64 and 16x128x128 batch 1; and PyTorch
# (../shared/bench/torch_train_bench.py) when TORCH_PYTHON names a python with torch 2.15.
# Each line is its own process, so peak_rss_mib is that configuration's. Run on an otherwise
# idle machine; these machines vary ±20% run to run, so compare lines of one run.
#   ITERATIONS (default 10): timed iterations per line (burn's 3D lines use a third of them).
#   SKIP_BURN=1: native (and PyTorch) only.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin msnet >&2
msnet="${CARGO_TARGET_DIR:-target}/release/msnet"
iterations="${ITERATIONS:-10}"
torch_bench="${TORCH_BENCH:-../shared/bench/torch_train_bench.py}"
configs=("112x112 4" "16x64x64 1" "16x128x128 1")
for threads in 1 2; do
    for config in "${configs[@]}"; do
        read -r size batch <<< "$config"
        "$msnet" bench-train --engine native --threads "$threads" --size "$size" \
            --batch-size "$batch" --iterations "$iterations"
        if [[ -z "${SKIP_BURN:-}" ]]; then
            burn_iterations="$iterations"
            [[ "$size" == *x*x* ]] && burn_iterations=$(( (iterations + 2) / 3 ))
            RAYON_NUM_THREADS="$threads" "$msnet" bench-train --engine burn --size "$size" \
                --batch-size "$batch" --iterations "$burn_iterations"
        fi
        if [[ -n "${TORCH_PYTHON:-}" && -f "$torch_bench" ]]; then
            dims=2; [[ "$size" == *x*x* ]] && dims=3
            torch_size="$size"; [[ "$dims" == 2 ]] && torch_size="${size%%x*}"
            "$TORCH_PYTHON" "$torch_bench" --dims "$dims" --size "$torch_size" --batch "$batch" \
                --threads "$threads" --iters "$iterations" \
                | sed "s/^{/{\"engine\": \"pytorch\", \"threads\": $threads, \"size\": \"$size\", /"
        fi
    done
done
