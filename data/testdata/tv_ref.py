"""Reference for data's pipeline tests: torchvision 0.14 on PIL images.

Reads a JSON request on stdin:
  {"cases": [{"image": PATH, "region": [x0, y0, x1, y1] or null,
              "spec": [<the YAML pipeline items, as JSON>],
              "trace": [{"op": NAME, "params": {...}}, ...]}, ...]}
and writes, for each case, the float32 C×H×W tensor (raw little-endian)
that torchvision's transforms make of the image: deterministic steps are
torchvision's own transform classes built from the spec item (so the
spec's meaning is checked too); random steps are torchvision's
functional ops applied with the parameters fer drew (trace), exactly as
the transform classes' forward() would apply them.
"""
import json
import sys

import torch
import torchvision.transforms as T
import torchvision.transforms.functional as F
from PIL import Image

NAMES = {"random_horizontal_flip": "hflip", "rotation": "random_rotation"}
IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


def split(item):
    if isinstance(item, str):
        return NAMES.get(item, item), None
    (k, v), = item.items()
    return NAMES.get(k, k), v


def kwargs(arg, first):
    if arg is None:
        return {}
    if isinstance(arg, dict):
        return dict(arg)
    return {first: arg}


def size_arg(v):
    return v if isinstance(v, int) else list(v)


def apply_image(name, arg, p, img):
    if name == "resize":
        kw = kwargs(arg, "size")
        kw["size"] = size_arg(kw["size"])
        kw.pop("interpolation", None)
        return T.Resize(**kw)(img)
    if name == "center_crop":
        return T.CenterCrop(size_arg(kwargs(arg, "size")["size"]))(img)
    if name == "random_crop":
        kw = kwargs(arg, "size")
        kw["size"] = size_arg(kw["size"])
        t = T.RandomCrop(**kw)
        # RandomCrop.forward with the drawn top/left
        if t.padding is not None:
            img = F.pad(img, t.padding, t.fill, t.padding_mode)
        _, h, w = F.get_dimensions(img)
        if t.pad_if_needed and w < t.size[1]:
            img = F.pad(img, [t.size[1] - w, 0], t.fill, t.padding_mode)
        if t.pad_if_needed and h < t.size[0]:
            img = F.pad(img, [0, t.size[0] - h], t.fill, t.padding_mode)
        return F.crop(img, p["top"], p["left"], t.size[0], t.size[1])
    if name == "hflip":
        return F.hflip(img) if p["flip"] else img
    if name == "random_rotation":
        t = T.RandomRotation(**kwargs(arg, "degrees"))
        return F.rotate(img, p["angle"], t.interpolation, t.expand, t.center, t.fill)
    if name == "color_jitter":
        if isinstance(arg, list):
            t = T.ColorJitter(*arg)
        elif isinstance(arg, dict):
            t = T.ColorJitter(**arg)
        elif arg is None:
            t = T.ColorJitter()
        else:
            t = T.ColorJitter(arg)
        # ColorJitter.forward with the drawn order and factors
        for fn_id in p["order"]:
            if fn_id == 0 and t.brightness is not None:
                img = F.adjust_brightness(img, p["brightness"])
            elif fn_id == 1 and t.contrast is not None:
                img = F.adjust_contrast(img, p["contrast"])
            elif fn_id == 2 and t.saturation is not None:
                img = F.adjust_saturation(img, p["saturation"])
            elif fn_id == 3 and t.hue is not None:
                img = F.adjust_hue(img, p["hue"])
        return img
    if name == "grayscale":
        return T.Grayscale(**kwargs(arg, "num_output_channels"))(img)
    if name == "random_grayscale":
        if p["gray"]:
            c, _, _ = F.get_dimensions(img)
            return F.rgb_to_grayscale(img, num_output_channels=c)
        return img
    if name == "random_choice":
        kw = kwargs(arg, "transforms")
        sub_name, sub_arg = split(kw["transforms"][p["index"]])
        return apply_image(sub_name, sub_arg, p.get("params"), img)
    raise ValueError(name)


def apply_tensor(name, arg, p, x):
    if name == "normalize":
        if isinstance(arg, str):
            mean, std = {"imagenet": IMAGENET}[arg]
        else:
            mean, std = arg["mean"], arg["std"]
        return T.Normalize(mean, std)(x)
    if name == "random_erasing":
        if not p["erase"]:
            return x
        v = torch.tensor(p["value"], dtype=torch.float32)
        c = x.shape[-3]
        if v.numel() in (1, c):
            v = v[:, None, None]
        else:
            v = v.reshape(c, p["h"], p["w"])
        return F.erase(x, p["i"], p["j"], p["h"], p["w"], v)
    raise ValueError(name)


def run(case):
    img = Image.open(case["image"]).convert("RGB")
    if case.get("region"):
        img = img.crop(tuple(case["region"]))
    items = [split(it) for it in case["spec"]]
    if "to_tensor" not in [n for n, _ in items]:
        items.append(("to_tensor", None))
    trace = case["trace"]
    assert [n for n, _ in items] == [t["op"] for t in trace], (items, trace)
    x = img
    for (name, arg), t in zip(items, trace):
        p = t.get("params")
        if name == "to_tensor":
            x = F.to_tensor(x)
        elif isinstance(x, torch.Tensor):
            x = apply_tensor(name, arg, p, x)
        else:
            x = apply_image(name, arg, p, x)
    return x


def main():
    req = json.load(sys.stdin)
    out = sys.stdout.buffer
    for case in req["cases"]:
        x = run(case)
        shape = list(x.shape)
        out.write(json.dumps(shape).encode() + b"\n")
        out.write(x.contiguous().numpy().astype("<f4").tobytes())


if __name__ == "__main__":
    main()
