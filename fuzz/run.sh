#!/usr/bin/env bash
# Runs the cargo-fuzz targets for a while each, keeping what they find in corpus/.
#
#   fuzz/run.sh [SECONDS] [TARGET...]     default: 600 s each, plan_parse and image_preprocess
#
# cargo-fuzz needs nightly-only compiler flags; the toolchain here is stable, so
# RUSTC_BOOTSTRAP=1 unlocks them for this build only. A crash stops the run with the input
# saved under artifacts/TARGET/ and a non-zero exit. Built with AddressSanitizer (the default),
# so an out-of-bounds access in the runtime's unsafe SIMD code is a crash, not silence.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
seconds="${1:-600}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(plan_parse image_preprocess)

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --version 0.13.2 --locked
if [ ! -d corpus/plan_parse ] || [ ! -d corpus/image_preprocess ]; then
    echo "seed corpus missing: run make-seeds.py (see its docstring)" >&2
    exit 2
fi
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${MSNET_FUZZ_TARGET_DIR:-$HOME/.cache/msnet-edge/target-fuzz}"
for t in "${targets[@]}"; do
    echo "== fuzzing $t for $seconds s" >&2
    # Plans of the tiny seed model are 14 KB; images are kept small so decoding stays fast.
    cargo fuzz run -O "$t" "corpus/$t" -- \
        -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 -print_final_stats=1
done
