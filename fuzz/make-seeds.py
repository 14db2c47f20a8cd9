"""Writes the fuzzers' seed inputs into corpus/ (run by fuzz/run.sh on first use).

- corpus/plan_parse/: the plan of a tiny random-weight 2D MSNet (scripts/tiny_model.py), so
  the fuzzer starts from a valid plan of 14 KB instead of the 440 KB shipped one.
- corpus/image_preprocess/: small images in every format and pixel type `msnet-run segment`
  reads (PNG 8/16-bit gray, RGB, RGBA, gray+alpha; JPEG gray and RGB; BMP; TIFF 8/16-bit).

Usage: python make-seeds.py MSNET_BINARY   (needs numpy and Pillow)
"""
import pathlib
import sys
import tempfile

import numpy as np
from PIL import Image

here = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(here.parent / "scripts"))
from tiny_model import write_tiny_model  # noqa: E402

msnet = sys.argv[1]
rng = np.random.default_rng(7)


def tiny_plan(out: pathlib.Path) -> None:
    with tempfile.TemporaryDirectory() as d:
        write_tiny_model(2, pathlib.Path(d), msnet)
        out.mkdir(parents=True, exist_ok=True)
        (out / "tiny.msplan").write_bytes((pathlib.Path(d) / "model.msplan").read_bytes())


def images(out: pathlib.Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    h, w = 12, 16
    rgb = (rng.random((h, w, 3)) * 255).astype(np.uint8)
    gray = rgb[..., 0]
    Image.fromarray(gray).save(out / "gray8.png")
    Image.fromarray((gray.astype(np.uint16) * 257)).save(out / "gray16.png")
    Image.fromarray(rgb).save(out / "rgb8.png")
    Image.fromarray(np.dstack([rgb, gray])).save(out / "rgba8.png")
    Image.fromarray(np.dstack([gray, gray])).save(out / "gray-alpha.png")
    Image.fromarray(rgb).save(out / "rgb.jpg", quality=80)
    Image.fromarray(gray).save(out / "gray.jpg", quality=80)
    Image.fromarray(rgb).save(out / "rgb.bmp")
    Image.fromarray(rgb).save(out / "rgb8.tif")
    Image.fromarray((gray.astype(np.uint16) * 257)).save(out / "gray16.tif")


tiny_plan(here / "corpus" / "plan_parse")
images(here / "corpus" / "image_preprocess")
print("seeds written to", here / "corpus")
