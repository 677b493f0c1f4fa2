"""Reference for data/imaging's Affine and Resampler.ApplyRGB: Pillow.

Reads a JSON request on stdin:
  {"image": PATH, "cases": [{"size": [w, h], "data": [a, b, c, d, e, f],
    "resize": [W, H] or null}, ...]}
and writes, for each case, the raw RGB bytes of
img.convert("RGB").transform(size, Image.AFFINE, data, Image.BILINEAR)
(then .resize(resize, Image.BILINEAR) when resize is given), concatenated.
"""
import json
import sys

from PIL import Image

req = json.load(sys.stdin)
img = Image.open(req["image"]).convert("RGB")
out = sys.stdout.buffer
for c in req["cases"]:
    x = img.transform(tuple(c["size"]), Image.AFFINE, tuple(c["data"]), Image.BILINEAR)
    if c.get("resize"):
        x = x.resize(tuple(c["resize"]), Image.BILINEAR)
    out.write(x.tobytes())
