"""Writes the seed corpus of models.FuzzReadStateDict: small torch.save
files of the kinds ReadStateDict reads (zip and legacy format, a nested
checkpoint, a pickled nn.Module, fp16 and int64 tensors, a strided view,
a 0-dim tensor), each as a `go test fuzz v1` file under
testdata/fuzz/FuzzReadStateDict/.

    /usr/bin/python3 models/testdata/fuzz_seeds.py   (from the repository root)
"""
import collections
import io
import os

import torch

OUT = os.path.join(os.path.dirname(__file__), "fuzz", "FuzzReadStateDict")


def go_bytes(b):
    # Go's fuzz corpus format: []byte("...") with Go escapes
    out = []
    for c in b:
        if c == ord('"'):
            out.append('\\"')
        elif c == ord("\\"):
            out.append("\\\\")
        elif 32 <= c < 127:
            out.append(chr(c))
        else:
            out.append("\\x%02x" % c)
    return '[]byte("' + "".join(out) + '")'


def save(name, obj, legacy=False):
    buf = io.BytesIO()
    torch.save(obj, buf, _use_new_zipfile_serialization=not legacy)
    with open(os.path.join(OUT, name), "w") as f:
        f.write("go test fuzz v1\n" + go_bytes(buf.getvalue()) + "\n")


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 2, 1)
        self.bn = torch.nn.BatchNorm2d(2)


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    m = Tiny()
    sd = m.state_dict()
    save("zip_state_dict", sd)
    save("legacy_state_dict", sd, legacy=True)
    save("nested", {"epoch": 3, "state_dict": sd, "args": {"lr": 0.1}})
    save("module", m)
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    save("dtypes_views", collections.OrderedDict([
        ("half", torch.ones(2, 2, dtype=torch.float16)),
        ("long", torch.arange(3)),
        ("view", base.t()),
        ("slice", base[1:, 1:3]),
        ("scalar", torch.tensor(2.5)),
    ]))


if __name__ == "__main__":
    main()
