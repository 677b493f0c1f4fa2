"""Reference for data/imaging's tests: Pillow's decode and resampling.

Reads a JSON request on stdin:
  {"image": PATH, "cases": [{"crop": [x0,y0,x1,y1], "size": [W,H],
    "window": [x0,y0,x1,y1] or null, "flip": bool, "mean": [..] or null,
    "std": [..] or null}, ...]}
and writes, for each case, the float32 CHW tensor torchvision makes of
img.convert("RGB").crop(crop).resize(size, BILINEAR).crop(window)
(+ hflip) with ToTensor (+ Normalize), concatenated as raw little-endian
float32, after the decoded image itself as raw RGB bytes.
"""
import json
import sys

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image

req = json.load(sys.stdin)
img = Image.open(req["image"]).convert("RGB")
out = sys.stdout.buffer
out.write(np.asarray(img, dtype=np.uint8).tobytes())
for c in req["cases"]:
    x = img.crop(tuple(c["crop"])).resize(tuple(c["size"]), Image.BILINEAR)
    if c.get("window"):
        x = x.crop(tuple(c["window"]))
    if c.get("flip"):
        x = TF.hflip(x)
    t = TF.to_tensor(x)
    if c.get("mean"):
        t = TF.normalize(t, c["mean"], c["std"])
    out.write(t.contiguous().numpy().astype("<f4").tobytes())
