#!/usr/bin/env bash
# Keeps the records of finished runs in git: the run folders of scripts/paper-runs.sh are not
# (weights and checkpoints are megabytes each, and runs/ is ignored), so a new machine starts
# without them. This copies what scripts/results-table.py reads, and nothing else: each
# finished run's config.json (the training record: split, schedule, seconds), its scores
# (test-metrics.json or baseline.json) and its validation log (validation.csv), and the JSON
# reports of eval-only pilots.
#
#   scripts/keep-runs.sh [RUNS] [DEST]    (default: runs/protocol results/protocol)
#
# then `scripts/results-table.py DEST` prints the tables from the kept records. A run is
# finished when its scores exist (a pilot: when its model is written); a run in progress is
# left out. Each run's records are replaced as a whole (written beside, then renamed).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-runs/protocol}"
DEST="${2:-results/protocol}"
if [[ ! -d "$RUNS" ]]; then
    echo "keep-runs: no run folder '$RUNS'" >&2
    exit 2
fi
mkdir -p "$DEST"
kept=0
for run in "$RUNS"/*/; do
    run="${run%/}"
    name="$(basename "$run")"
    files=()
    for f in config.json test-metrics.json baseline.json validation.csv; do
        [[ -s "$run/$f" ]] && files+=("$f")
    done
    if [[ -s "$run/test-metrics.json" || -s "$run/baseline.json" ||
        ( -s "$run/validation.csv" && -s "$run/model.safetensors" ) ]]; then
        :
    elif [[ ! -e "$run/config.json" ]] && compgen -G "$run/*.json" > /dev/null; then
        # An eval-only pilot (such as pilot-drishti-regions): its reports.
        files=()
        for f in "$run"/*.json; do files+=("$(basename "$f")"); done
    else
        continue
    fi
    rm -rf "$DEST/$name.tmp"
    mkdir "$DEST/$name.tmp"
    for f in "${files[@]}"; do cp "$run/$f" "$DEST/$name.tmp/$f"; done
    rm -rf "$DEST/$name"
    mv "$DEST/$name.tmp" "$DEST/$name"
    kept=$((kept + 1))
done
echo "keep-runs: kept the records of $kept runs in $DEST" >&2
