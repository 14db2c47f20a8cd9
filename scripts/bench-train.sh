#!/usr/bin/env bash
# Training throughput of MSNet (forward + backward + Adam) on generated phantoms, as JSON lines:
# 2D 112x112 (the WBC size) and 3D 16x64x64. Run on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin msnet >&2
msnet=target/release/msnet
"$msnet" bench-train --size 112x112 --batch-size 4 --iterations "${ITERATIONS:-10}"
"$msnet" bench-train --size 16x64x64 --batch-size 1 --iterations "${ITERATIONS:-10}"
