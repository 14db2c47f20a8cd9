#!/usr/bin/env bash
# The whole-photograph disc/cup pipeline on Drishti-GS1's 51 test photographs, as a fundus
# camera would run it: the locator finds the disc, the disc/cup model segments a window around
# it, masks come back in photograph coordinates (msnet-run segment --locator); then
# `msnet score-photos` scores them (disc and cup DSC, vCDR against the experts, centre error).
#
#   scripts/fundus-photo-eval.sh [LOCATOR] [DISC_CUP_MODEL] [OUT]
#
# Defaults: models/fundus-locator, models/fundus-disc-cup, runs/fundus-photos. Writes
# OUT/*.mask.png and *.overlay.png, OUT.jsonl (msnet-run's lines) and OUT.score.json.
# Environment: MSNET_DATA (default ../shared/data); MSNET and MSNET_RUN (the binaries;
# default: built here in release mode); THREADS (default 1).
set -euo pipefail
cd "$(dirname "$0")/.."
export MSNET_DATA="${MSNET_DATA:-../shared/data}"
photos="$MSNET_DATA/drishti_gs1/full/test/images"
if [[ ! -d "$photos" ]]; then
    echo "fundus-photo-eval: '$photos' not found; set MSNET_DATA to the folder holding drishti_gs1" >&2
    exit 2
fi
LOCATOR="${1:-models/fundus-locator}"
MODEL="${2:-models/fundus-disc-cup}"
OUT="${3:-runs/fundus-photos}"
if [[ -z "${MSNET:-}" || -z "${MSNET_RUN:-}" ]]; then
    cargo build --release --locked -p msnet-cli -p msnet-run >&2
    bin="${CARGO_TARGET_DIR:-target}/release"
    MSNET="${MSNET:-$bin/msnet}"
    MSNET_RUN="${MSNET_RUN:-$bin/msnet-run}"
fi
mkdir -p "$OUT"
# A photograph the locator finds no disc in fails alone (msnet-run exits 1); it is scored as
# an empty prediction, so the status is not fatal here.
"$MSNET_RUN" segment --locator "$LOCATOR" --model "$MODEL" --threads "${THREADS:-1}" \
    --out "$OUT" --force "$photos"/*.png > "$OUT.jsonl.tmp" || true
mv "$OUT.jsonl.tmp" "$OUT.jsonl"
"$MSNET" score-photos --masks "$OUT" --located "$OUT.jsonl" --json > "$OUT.score.json.tmp"
mv "$OUT.score.json.tmp" "$OUT.score.json"
"$MSNET" score-photos --masks "$OUT" --located "$OUT.jsonl"
