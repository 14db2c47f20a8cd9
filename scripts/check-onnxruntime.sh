#!/usr/bin/env bash
# ONNX Runtime agreement: runs each exported model.onnx in ONNX Runtime (PyPI onnxruntime) on
# its golden bundle and checks the golden tolerance (see scripts/ort_check.py).
#
#   scripts/check-onnxruntime.sh MODEL_DIR [MODEL_DIR...]   (default: every models/*/ with golden/)
#
# ONNX Runtime and NumPy are installed, pinned, into a virtual environment at
# $MSNET_ORT_VENV (default ~/.cache/msnet-edge/ort-venv) on first use. Needs python3 >= 3.10
# with venv, and access to PyPI the first time.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
venv="${MSNET_ORT_VENV:-$HOME/.cache/msnet-edge/ort-venv}"
requirements="onnxruntime==1.32.0 numpy==2.4.6"

if ! "$venv/bin/python" -c "import onnxruntime, numpy" 2>/dev/null; then
    echo "installing $requirements into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check $requirements
fi

if [ "$#" -eq 0 ]; then
    set --
    for dir in "$root"/models/*/; do
        [ -f "$dir/golden/manifest.json" ] && set -- "$@" "${dir%/}"
    done
    if [ "$#" -eq 0 ]; then
        echo "no exported models under $root/models (run \`msnet export MODEL_DIR\` first)" >&2
        exit 2
    fi
fi
exec "$venv/bin/python" "$here/ort_check.py" "$@"
