"""ONNX Runtime latency on an exported MSNet model, one JSON line per thread count.

Usage: python ort_bench.py MODEL_DIR RUNS THREADS [THREADS...] [--file NAME]

NAME is the ONNX file in MODEL_DIR (default model.onnx; `msnet export --tuned-onnx` also
writes model.tuned.onnx). The input is the synthetic one `msnet-run bench` times.
"""

import json
import os
import sys
import time

import numpy as np
import onnxruntime as ort


def main():
    args = sys.argv[1:]
    file = "model.onnx"
    if "--file" in args:
        i = args.index("--file")
        file = args[i + 1]
        del args[i : i + 2]
    model_dir, runs, threads = args[0], int(args[1]), [int(t) for t in args[2:]]
    path = os.path.join(model_dir, file)
    for n in threads:
        options = ort.SessionOptions()
        options.intra_op_num_threads = n
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        inp = session.get_inputs()[0]
        size = int(np.prod(inp.shape))
        x = (0.5 + 0.4 * np.sin((np.arange(size) % 251) * 0.05)).astype(np.float32)
        x = x.reshape(inp.shape)
        for _ in range(3):
            session.run(None, {inp.name: x})
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            session.run(None, {inp.name: x})
            times.append((time.perf_counter() - t) * 1e3)
        times.sort()
        print(json.dumps({
            "engine": f"onnxruntime {ort.__version__} ({file})",
            "onnx_file": file,
            "threads": n,
            "input": inp.shape,
            "runs": runs,
            "median_ms": times[len(times) // 2],
            "min_ms": times[0],
        }))


if __name__ == "__main__":
    main()
