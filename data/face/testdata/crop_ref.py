"""Reference for data/face's Cropper: Pillow.

Reads a JSON request on stdin:
  {"image": PATH, "cases": [
     {"box": [x0, y0, x1, y1], "resize": [W, H] or null},
     {"size": [w, h], "data": [a, b, c, d, e, f], "resize": [W, H] or null}, ...]}
and writes, for each case, the raw RGB bytes of
img.crop(box) or img.transform(size, Image.AFFINE, data, Image.BILINEAR),
then .resize(resize, Image.BILINEAR) when resize is given.
"""
import json
import sys

from PIL import Image

req = json.load(sys.stdin)
img = Image.open(req["image"]).convert("RGB")
out = sys.stdout.buffer
for c in req["cases"]:
    if c.get("box"):
        x = img.crop(tuple(c["box"]))
    else:
        x = img.transform(tuple(c["size"]), Image.AFFINE, tuple(c["data"]), Image.BILINEAR)
    if c.get("resize"):
        x = x.resize(tuple(c["resize"]), Image.BILINEAR)
    out.write(x.tobytes())
