"""Writes a tiny random-weight MSNet model directory and exports it with `msnet export`:
4 channels, 2 phases, 2 grids, 1 input channel, 2 classes; 2D 8x8 or 3D 4x8x8. The plans are a
few kilobytes: fixtures for tests and seeds for fuzzers, not models of anything.

Usage: python scripts/tiny_model.py DIMS OUT_DIR MSNET_BINARY     (needs numpy)
Keeps config.json, model.safetensors and everything `msnet export` writes in OUT_DIR.
"""
import json
import pathlib
import struct
import subprocess
import sys

import numpy as np


def write_tiny_model(dims: int, out: pathlib.Path, msnet: str, seed: int = 7) -> None:
    rng = np.random.default_rng(seed)
    c, classes, in_ch, grids = 4, 2, 1, 2
    k = [3, 3, 3] if dims == 3 else [3, 3]
    shapes = {"head.weight": [c, in_ch, *k], "out.O1.weight": [c, c, *k],
              "out.O2.weight": [classes, c, *k], "restrict_r.weight": [c, c, *k],
              "restrict_u.weight": [c, c, *k]}
    for side, levels in (("down", grids), ("up", grids - 1)):
        for level in range(1, levels + 1):
            for conv in ("K", "L1", "L2", "T1", "T2"):
                shapes[f"{side}.{level}.{conv}.weight"] = [c, c, *k]
    header, blobs, offset = {}, [], 0
    for name in sorted(shapes):
        data = (rng.standard_normal(shapes[name]) * 0.3).astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": shapes[name],
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    head = json.dumps(header).encode()
    config = {"format_version": 1, "dims": dims, "in_channels": in_ch, "classes": classes,
              "channels": c, "phases": 2, "grids": grids, "lambda": 1.0, "alpha": 1.0,
              "eps": 1.0, "dt": 0.5, "input_size": [4, 8, 8] if dims == 3 else [1, 8, 8],
              "normalization": {"mean": [0.5], "std": [0.25]},
              "class_names": ["background", "object"]}
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (out / "model.safetensors").write_bytes(
        struct.pack("<Q", len(head)) + head + b"".join(blobs))
    subprocess.run([msnet, "export", str(out)], check=True, stdout=subprocess.DEVNULL)


if __name__ == "__main__":
    write_tiny_model(int(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3])
