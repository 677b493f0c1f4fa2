"""Reference for TestEnhanceAllColours (FER_EXHAUSTIVE=1): torchvision's
adjust_hue / adjust_saturation / adjust_contrast / adjust_brightness on a
4096×4096 PIL image holding every 24-bit colour once (pixel i = colour i),
each result written as raw RGB bytes to the file given as argv[1], in the
order of the factors given on stdin as JSON {"hue": [...], "other": [...]}:
all hue factors, then for each other factor saturation, contrast,
brightness.
"""
import json
import sys

import numpy as np
import torchvision.transforms.functional as F
from PIL import Image

req = json.load(sys.stdin)
a = np.arange(1 << 24, dtype=np.uint32)
rgb = np.stack([(a >> 16) & 255, (a >> 8) & 255, a & 255], -1).astype(np.uint8).reshape(4096, 4096, 3)
img = Image.fromarray(rgb, "RGB")
with open(sys.argv[1], "wb") as out:
    for f in req["hue"]:
        out.write(np.asarray(F.adjust_hue(img, f)).tobytes())
    for f in req["other"]:
        for fn in (F.adjust_saturation, F.adjust_contrast, F.adjust_brightness):
            out.write(np.asarray(fn(img, f)).tobytes())
