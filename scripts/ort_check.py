"""Runs exported MSNet models in ONNX Runtime on their golden bundles.

Usage: python ort_check.py MODEL_DIR [MODEL_DIR...]

For each model directory written by `msnet export`: checks the sha256 of model.onnx against
golden/manifest.json, runs every golden input through ONNX Runtime (CPU, 1 thread) and
compares with the stored reference output under the manifest's tolerance
(|ref - x| <= atol + rtol*|ref| everywhere, the same argmax over classes wherever the
reference's top classes are not tied within that tolerance: msnet::golden's rule).
Prints one line per case and exits 1 if any case fails.
"""

import hashlib
import json
import os
import sys

import numpy as np
import onnxruntime as ort



def same_classes(ref, out, atol, rtol):
    """The argmax agrees wherever the reference can tell its class from the chosen one."""
    r, o = ref.argmax(axis=1), out.argmax(axis=1)
    best = np.take_along_axis(ref, r[:, None], axis=1)[:, 0]
    chosen = np.take_along_axis(ref, o[:, None], axis=1)[:, 0]
    window = lambda v: atol + rtol * np.abs(v)
    return bool(np.all((r == o) | (best - chosen <= window(best) + window(chosen))))

def check(model_dir):
    golden = os.path.join(model_dir, "golden")
    manifest_path = os.path.join(golden, "manifest.json")
    if not os.path.isfile(manifest_path):
        print(f"{manifest_path}: missing (run `msnet export {model_dir}` first)")
        return False
    with open(manifest_path) as f:
        manifest = json.load(f)
    onnx_path = os.path.join(model_dir, "model.onnx")
    with open(onnx_path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    expected = {m["file"]: m["sha256"] for m in manifest["model_files"]}.get("model.onnx")
    if digest != expected:
        print(f"{onnx_path}: sha256 {digest} differs from the manifest's {expected}")
        return False

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
    tol = manifest["tolerance"]
    atol, rtol = tol["atol"], tol["rtol"]
    ok = True
    for case in manifest["cases"]:
        x = np.load(os.path.join(golden, case["input"]))
        ref = np.load(os.path.join(golden, case["output"]))
        (out,) = session.run([manifest["output_name"]], {manifest["input_name"]: x})
        if out.shape != ref.shape:
            print(f"{model_dir} {case['name']}: output shape {out.shape}, golden {ref.shape}")
            ok = False
            continue
        diff = np.abs(out - ref)
        bound = atol + rtol * np.abs(ref)
        within = bool(np.all(diff <= bound))
        argmax_equal = same_classes(ref, out, atol, rtol)
        passed = within and argmax_equal and bool(np.all(np.isfinite(out)))
        ok &= passed
        print(
            f"{model_dir} {case['name']:<9} onnxruntime {ort.__version__}: max abs diff "
            f"{diff.max():.3e}, worst diff/tolerance {float((diff / bound).max()):.3f}, "
            f"argmax {'equal' if argmax_equal else 'DIFFERS'} -> {'ok' if passed else 'FAIL'}"
        )
    return ok


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    results = [check(d) for d in sys.argv[1:]]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
