#!/usr/bin/env bash
# On-device fine-tuning, measured on real data: the shipped WBC model, trained on 60 images
# (models/wbc), is given N more labelled images with `msnet-run finetune` (the device
# command, native engine), and both models are scored on the base model's 20 test images with
# `msnet eval`. The N images come from the pool outside the base's training and test images
# (the first N by name), so the test images stay unseen; `msnet eval` refuses a fine-tuned
# model that saw one.
#
#   scripts/finetune-demo.sh [N] [ITERATIONS]        default: 20 images, 1000 iterations
#
# Environment: MSNET_DATA (default ../shared/data), RUNS (default runs/), THREADS (default 2),
# AUGMENT (default: default), LR (default 1e-3),
# MSNET and MSNET_RUN (the binaries; default: built here in release mode).
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-20}"
iterations="${2:-1000}"
export MSNET_DATA="${MSNET_DATA:-../shared/data}"
data="$MSNET_DATA/wbc_dataset1"
if [[ ! -d "$data/images" ]]; then
    echo "finetune-demo: '$data/images' not found; set MSNET_DATA to the folder holding wbc_dataset1" >&2
    exit 2
fi
if [[ -z "${MSNET:-}" || -z "${MSNET_RUN:-}" ]]; then
    cargo build --release --locked --bin msnet --bin msnet-run >&2
    MSNET="${CARGO_TARGET_DIR:-target}/release/msnet"
    MSNET_RUN="${CARGO_TARGET_DIR:-target}/release/msnet-run"
fi
base=models/wbc
lr="${LR:-1e-3}"
out="${RUNS:-runs}/finetune-wbc-n$n-it$iterations-aug${AUGMENT:-default}-lr$lr"
mapfile -t names < <(python3 - "$base/config.json" "$data/images" "$n" <<'PY'
import json, os, sys
record = json.load(open(sys.argv[1]))["training"]
seen = set(record["train"]) | set(record["test"])
pool = sorted(os.path.splitext(f)[0] for f in os.listdir(sys.argv[2]) if f.endswith(".bmp") or f.endswith(".png"))
picked = [p for p in pool if p not in seen][: int(sys.argv[3])]
print("\n".join(picked))
PY
)
images=() masks=()
for name in "${names[@]}"; do
    images+=("$(ls "$data/images/$name".* | head -1)")
    masks+=("$data/masks/$name.png")
done
resume=()
[[ -d "$out/checkpoint" ]] && resume=(--resume)
[[ -s "$out/model.msplan" ]] || "$MSNET_RUN" finetune --model "$base" --out "$out" \
    --images "${images[@]}" --masks "${masks[@]}" --mask-values 0,128,255 \
    --iterations "$iterations" --augment "${AUGMENT:-default}" --lr "$lr" --threads "${THREADS:-2}" "${resume[@]}"
"$MSNET_RUN" verify --model "$out" >&2
"$MSNET" eval --model "$base" --json > "$out/base-test-metrics.json"
"$MSNET" eval --model "$out" --json > "$out/test-metrics.json"
python3 - "$out" "$base/config.json" <<'PY'
import json, sys
out = sys.argv[1]
base_size = len(json.load(open(sys.argv[2]))["training"]["train"])
for label, f in [(f"base (S = {base_size})", "base-test-metrics.json"), ("fine-tuned", "test-metrics.json")]:
    m = json.load(open(f"{out}/{f}"))
    a = m["mean_all"]
    per = ", ".join(f"{k} {v['dsc']:.4f}" for k, v in m["classes"].items())
    print(f"{label}: DSC_avg {a['dsc']:.4f}, mIoU {a['iou']:.4f}, ASD {a['asd']:.3f} ({per}) over {m['images']} test images")
PY
