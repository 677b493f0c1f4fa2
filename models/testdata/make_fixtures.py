#!/usr/bin/env python3
"""PyTorch reference fixtures for the Go backbone tests in fer/models.

usage: /usr/bin/python3 make_fixtures.py OUTDIR [MODEL ...]

For every model it writes, into OUTDIR:
  <model>.pth      state_dict saved by torch.save, built right after
                   torch.manual_seed(seed) so the Go side can also check that
                   its default initialisation draws the same numbers;
  <model>_io.pt    a dict of tensors: the input, eval-mode outputs (logits,
                   pooled features, stage outputs) and one training-mode
                   forward/backward (logits, loss weights, gradient of the
                   first conv, running statistics of the first BatchNorm);
and one meta.json with parameter counts (computed here by PyTorch), seeds and
input shapes. Extra files exercise the checkpoint reader: a legacy
(non-zip) save, a nested {"state_dict": {"module.<key>": ...}} checkpoint,
a float16 copy, a deliberately broken state_dict, strided/offset views and
scalars, and two files it must refuse (a pickled whole module, TorchScript).

torchvision has ResNet-18/50 and VGG-16. IR-50 (face.evoLVe "ir" units as
trimmed by QCS/POSTER++) and timm's tf_efficientnet_b2 have no twin here, so
this file carries small reference modules written from the structure of
the public code (see SPEC.md sections 2.1 and 3.1); their parameter names
follow those repositories' state_dict keys.
"""
import json
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

torch.set_num_threads(max(1, os.cpu_count() or 1))


# ---------------------------------------------------------------- IR-50 ----
class BottleneckIR(nn.Module):
    """face.evoLVe bottleneck_IR: BN -> conv3x3 -> PReLU -> conv3x3(stride) -> BN,
    plus a shortcut that subsamples (MaxPool2d(1, stride)) when the width is
    unchanged and projects (conv1x1 + BN) otherwise."""

    def __init__(self, cin, depth, stride):
        super().__init__()
        if cin == depth:
            self.shortcut_layer = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(
                nn.Conv2d(cin, depth, 1, stride, bias=False), nn.BatchNorm2d(depth))
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(cin),
            nn.Conv2d(cin, depth, 3, 1, 1, bias=False),
            nn.PReLU(depth),
            nn.Conv2d(depth, depth, 3, stride, 1, bias=False),
            nn.BatchNorm2d(depth))

    def forward(self, x):
        return self.res_layer(x) + self.shortcut_layer(x)


class IR50(nn.Module):
    """IR-50 with stages body1..bodyN (QCS builds 3; face.evoLVe has 4 plus an
    embedding head 'output_layer'). QCS resizes every input to 112x112 with
    nearest interpolation before the input layer."""

    UNITS = [3, 4, 14, 3]
    DEPTHS = [64, 128, 256, 512]

    def __init__(self, stages=3, output_layer=False, resize=112, unused_output_layer=False):
        super().__init__()
        self.resize = resize
        self.input_layer = nn.Sequential(
            nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64))
        if output_layer or unused_output_layer:
            self.output_layer = nn.Sequential(
                nn.BatchNorm2d(512), nn.Dropout(0.0), nn.Flatten(),
                nn.Linear(512 * 7 * 7, 512), nn.BatchNorm1d(512))
        if not output_layer:
            # QCS's ir50.py builds the output layer (drawing its initial
            # weights) and never calls it: with unused_output_layer the
            # random stream is QCS's, and the layer is not kept
            self.output_layer = None
        cin = 64
        self.stages = stages
        for s in range(stages):
            units = []
            for u in range(self.UNITS[s]):
                units.append(BottleneckIR(cin, self.DEPTHS[s], 2 if u == 0 else 1))
                cin = self.DEPTHS[s]
            setattr(self, "body%d" % (s + 1), nn.Sequential(*units))

    def stage_outputs(self, x):
        if self.resize:
            x = F.interpolate(x, size=self.resize)
        x = self.input_layer(x)
        outs = []
        for s in range(self.stages):
            x = getattr(self, "body%d" % (s + 1))(x)
            outs.append(x)
        return outs

    def pooled(self, outs):
        if self.output_layer is not None:
            return self.output_layer(outs[-1])
        return torch.flatten(F.adaptive_avg_pool2d(outs[-1], 1), 1)

    def forward(self, x):
        return self.pooled(self.stage_outputs(x))


# ------------------------------------------------------ EfficientNet-B2 ----
def make_divisible(v, divisor=8, round_limit=0.9):
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < round_limit * v:
        new_v += divisor
    return new_v


class Conv2dSame(nn.Conv2d):
    """TensorFlow 'SAME' padding computed from the input size (asymmetric:
    the extra pixel goes right/bottom)."""

    def forward(self, x):
        ih, iw = x.shape[-2:]
        kh, kw = self.weight.shape[-2:]
        sh, sw = self.stride
        ph = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pw = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def conv_same(cin, cout, k, stride=1, groups=1, bias=False):
    if stride == 1 and (k - 1) % 2 == 0:  # static symmetric padding is the same
        return nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=bias)
    return Conv2dSame(cin, cout, k, stride, 0, groups=groups, bias=bias)


class SqueezeExcite(nn.Module):
    def __init__(self, chs, rd):
        super().__init__()
        self.conv_reduce = nn.Conv2d(chs, rd, 1, bias=True)
        self.conv_expand = nn.Conv2d(rd, chs, 1, bias=True)

    def forward(self, x):
        s = x.mean((2, 3), keepdim=True)
        s = self.conv_expand(F.silu(self.conv_reduce(s)))
        return x * torch.sigmoid(s)


def drop_path(x, p, training):
    """timm DropPath: per-sample Bernoulli(1-p) mask, scaled by 1/(1-p)."""
    if p == 0 or not training:
        return x
    keep = 1 - p
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    return x * mask.div_(keep)


class DepthwiseSeparable(nn.Module):
    def __init__(self, cin, cout, k, stride, eps, dp):
        super().__init__()
        self.dp = dp
        self.has_skip = stride == 1 and cin == cout
        self.conv_dw = conv_same(cin, cin, k, stride, groups=cin)
        self.bn1 = nn.BatchNorm2d(cin, eps=eps)
        self.se = SqueezeExcite(cin, round(cin * 0.25))
        self.conv_pw = conv_same(cin, cout, 1)
        self.bn2 = nn.BatchNorm2d(cout, eps=eps)

    def forward(self, x):
        y = F.silu(self.bn1(self.conv_dw(x)))
        y = self.bn2(self.conv_pw(self.se(y)))
        return drop_path(y, self.dp, self.training) + x if self.has_skip else y


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, k, stride, exp, eps, dp):
        super().__init__()
        self.dp = dp
        mid = make_divisible(cin * exp)
        self.has_skip = stride == 1 and cin == cout
        self.conv_pw = conv_same(cin, mid, 1)
        self.bn1 = nn.BatchNorm2d(mid, eps=eps)
        self.conv_dw = conv_same(mid, mid, k, stride, groups=mid)
        self.bn2 = nn.BatchNorm2d(mid, eps=eps)
        self.se = SqueezeExcite(mid, round(cin * 0.25))  # timm: se from block input
        self.conv_pwl = conv_same(mid, cout, 1)
        self.bn3 = nn.BatchNorm2d(cout, eps=eps)

    def forward(self, x):
        y = F.silu(self.bn1(self.conv_pw(x)))
        y = F.silu(self.bn2(self.conv_dw(y)))
        y = self.bn3(self.conv_pwl(self.se(y)))
        return drop_path(y, self.dp, self.training) + x if self.has_skip else y


class TFEfficientNet(nn.Module):
    """timm tf_efficientnet_bN layout (B2: width 1.1, depth 1.2)."""

    # block type, repeats, kernel, stride, expansion, output channels (B0)
    ARCH = [("ds", 1, 3, 1, 1, 16), ("ir", 2, 3, 2, 6, 24), ("ir", 2, 5, 2, 6, 40),
            ("ir", 3, 3, 2, 6, 80), ("ir", 3, 5, 1, 6, 112), ("ir", 4, 5, 2, 6, 192),
            ("ir", 1, 3, 1, 6, 320)]

    def __init__(self, width=1.1, depth=1.2, num_classes=1000, eps=1e-3,
                 drop_rate=0.0, drop_path_rate=0.0):
        super().__init__()
        self.drop_rate = drop_rate
        rc = lambda c: make_divisible(c * width)
        stem = rc(32)
        self.conv_stem = conv_same(3, stem, 3, 2)
        self.bn1 = nn.BatchNorm2d(stem, eps=eps)
        # timm's EfficientNetBuilder.__init__ calls se_layer(8, rd_ratio=1.0)
        # to probe its signature and drops the module; its two convs' default
        # init advances the generator, so the probe is drawn here too. With
        # it, torch.manual_seed(s); TFEfficientNet() equals timm's
        # create_model("tf_efficientnet_b2_ns") tensor for tensor (checked
        # against timm aa4b5850 on torch 1.13).
        SqueezeExcite(8, 8)
        cin = stem
        stages = []
        total = sum(int(math.ceil(a[1] * depth)) for a in self.ARCH)
        idx = 0
        for bt, r, k, s, e, c in self.ARCH:
            cout = rc(c)
            blocks = []
            for i in range(int(math.ceil(r * depth))):
                stride = s if i == 0 else 1
                dp = drop_path_rate * idx / total
                if bt == "ds":
                    blocks.append(DepthwiseSeparable(cin, cout, k, stride, eps, dp))
                else:
                    blocks.append(InvertedResidual(cin, cout, k, stride, e, eps, dp))
                cin = cout
                idx += 1
            stages.append(nn.Sequential(*blocks))
        self.blocks = nn.Sequential(*stages)
        head = rc(1280)
        self.conv_head = conv_same(cin, head, 1)
        self.bn2 = nn.BatchNorm2d(head, eps=eps)
        self.classifier = nn.Linear(head, num_classes)
        # timm _init_weight_goog, visited in named_modules() order
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
                nn.init.normal_(m.weight, 0, math.sqrt(2.0 / fan_out))
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                r = 1.0 / math.sqrt(m.weight.size(0))
                nn.init.uniform_(m.weight, -r, r)
                nn.init.zeros_(m.bias)

    def stage_outputs(self, x):
        x = F.silu(self.bn1(self.conv_stem(x)))
        outs = []
        for st in self.blocks:
            x = st(x)
            outs.append(x)
        return outs

    def pooled(self, outs):
        x = F.silu(self.bn2(self.conv_head(outs[-1])))
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)

    def forward(self, x):
        x = self.pooled(self.stage_outputs(x))
        return self.classifier(F.dropout(x, self.drop_rate, self.training))


# --------------------------------------------------- torchvision helpers ----
def resnet_stages(m, x):
    x = m.maxpool(m.relu(m.bn1(m.conv1(x))))
    outs = []
    for layer in (m.layer1, m.layer2, m.layer3, m.layer4):
        x = layer(x)
        outs.append(x)
    return outs


def resnet_pooled(m, outs):
    return torch.flatten(m.avgpool(outs[-1]), 1)


def vgg_stages(m, x):
    outs = []
    for layer in m.features:
        x = layer(x)
        if isinstance(layer, nn.MaxPool2d):
            outs.append(x)
    return outs


def vgg_pooled(m, outs):
    x = torch.flatten(m.avgpool(outs[-1]), 1)
    return m.classifier[:5](x)  # fc6, ReLU, Dropout, fc7, ReLU


# ------------------------------------------------------------- models ----
# name: (constructor, input shape, stage fn, pooled fn, first conv, first BN)
MODELS = {
    "resnet18": (lambda: torchvision.models.resnet18(), (2, 3, 64, 64),
                 resnet_stages, resnet_pooled, "conv1", "bn1"),
    "resnet50": (lambda: torchvision.models.resnet50(), (2, 3, 64, 64),
                 resnet_stages, resnet_pooled, "conv1", "bn1"),
    "vgg16": (lambda: torchvision.models.vgg16(), (2, 3, 64, 64),
              vgg_stages, vgg_pooled, "features.0", None),
    # QCS resizes to 112; 64 keeps the test fast and exercises the same path
    "ir50": (lambda: IR50(stages=3, resize=64, unused_output_layer=True), (2, 3, 48, 48),
             lambda m, x: m.stage_outputs(x), lambda m, o: m.pooled(o),
             "input_layer.0", "input_layer.1"),
    "ir50_full": (lambda: IR50(stages=4, output_layer=True, resize=0), (1, 3, 112, 112),
                  lambda m, x: m.stage_outputs(x), lambda m, o: m.pooled(o),
                  "input_layer.0", "input_layer.1"),
    # dropout 0.3 (TF's rate for B2) and drop path 0.2 in the training check,
    # so the Go side must draw the same masks
    "effnet_b2": (lambda: TFEfficientNet(drop_rate=0.3, drop_path_rate=0.2), (4, 3, 66, 57),
                  lambda m, x: m.stage_outputs(x), lambda m, o: m.pooled(o),
                  "conv_stem", "bn1"),
}
# Parameter counts only (no weights written): VGG-Face is VGG-16 with a
# 2622-way head.
COUNT_ONLY = {"vggface": lambda: torchvision.models.vgg16(num_classes=2622, init_weights=False)}
TRAIN_CHECK = {"resnet18", "resnet50", "vgg16", "ir50", "effnet_b2"}


def module(m, dotted):
    for part in dotted.split("."):
        m = getattr(m, part) if not part.isdigit() else m[int(part)]
    return m


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def make(name, out, seed):
    ctor, shape, stages_fn, pooled_fn, conv_name, bn_name = MODELS[name]
    torch.manual_seed(seed)
    m = ctor()
    torch.save(m.state_dict(), os.path.join(out, name + ".pth"))
    meta = {"seed": seed, "params": n_params(m), "input": list(shape),
            "first_conv": conv_name, "first_bn": bn_name}

    torch.manual_seed(seed + 1)
    x = torch.randn(*shape)
    io = {"input": x}
    m.eval()
    with torch.no_grad():
        outs = stages_fn(m, x)
        pooled = pooled_fn(m, outs)
        io["eval.out"] = m(x)
        io["eval.pooled"] = pooled
        for i, o in enumerate(outs):
            io["eval.stage%d" % (i + 1)] = o
    meta["stages"] = [list(o.shape) for o in outs]

    if name in TRAIN_CHECK:
        m.train()
        w = torch.randn(io["eval.out"].shape)
        torch.manual_seed(seed + 2)  # dropout masks
        y = m(x)
        (y * w).sum().backward()
        io["train.w"] = w
        io["train.out"] = y.detach()
        io["train.grad"] = module(m, conv_name).weight.grad
        if bn_name:
            io["train.running_mean"] = module(m, bn_name).running_mean
            io["train.running_var"] = module(m, bn_name).running_var
        meta["train_seed"] = seed + 2
    torch.save(io, os.path.join(out, name + "_io.pt"))

    if name == "resnet18":
        # the checkpoint-format files hold the stem and stage 1 only (what
        # ResNetConfig{Depth: 18, NumStages: 1} builds), to stay small
        full = torch.load(os.path.join(out, name + ".pth"))  # as built
        sd = {k: v for k, v in full.items() if k.startswith(("conv1.", "bn1.", "layer1."))}
        torch.save(sd, os.path.join(out, "stage1.pth"))
        torch.save(sd, os.path.join(out, "stage1_legacy.pth"),
                   _use_new_zipfile_serialization=False)
        nested = {"epoch": 7, "best_acc": 0.5, "arch": "resnet18",
                  "state_dict": {"module." + k: v for k, v in sd.items()}}
        torch.save(nested, os.path.join(out, "stage1_nested.pth"))
        broken = dict(sd)
        del broken["layer1.1.bn2.bias"]
        broken["extra.weight"] = torch.zeros(3)
        broken["conv1.weight"] = torch.zeros(64, 3, 3, 3)
        torch.save(broken, os.path.join(out, "stage1_broken.pth"))
        half = {k: (v.half() if v.is_floating_point() else v) for k, v in sd.items()}
        torch.save(half, os.path.join(out, "stage1_half.pth"))
        # a whole module pickled with torch.save(model) (as HSEmotion's
        # enet_b2_*.pt), and its state_dict to compare with
        small = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                              nn.Sequential(nn.Flatten(), nn.Linear(4, 2)))
        torch.save(small, os.path.join(out, "whole_module.pth"))
        torch.save(small.state_dict(), os.path.join(out, "whole_module_sd.pth"))
        # files the reader must refuse with a clear message
        torch.jit.save(torch.jit.script(nn.Linear(2, 2)), os.path.join(out, "torchscript.pt"))
        torch.save([torch.zeros(2)], os.path.join(out, "list.pth"))
        # views: a transposed (non-contiguous) tensor and two tensors sharing
        # one storage at different offsets
        base = torch.arange(24, dtype=torch.float32)
        torch.save({"t": base.view(4, 6).t(), "a": base[2:8], "b": base[10:22].view(3, 4),
                    "scalar": torch.tensor(3.5), "long": torch.arange(5)},
                   os.path.join(out, "views.pth"))
    return meta


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    names = sys.argv[2:] or list(MODELS) + list(COUNT_ONLY)
    os.makedirs(out, exist_ok=True)
    meta = {"torch": torch.__version__, "torchvision": torchvision.__version__}
    for name in names:
        if name in COUNT_ONLY:
            meta[name] = {"params": n_params(COUNT_ONLY[name]())}
        elif name in MODELS:
            meta[name] = make(name, out, 1000 + 10 * list(MODELS).index(name))
        else:
            sys.exit("unknown model %r; known: %s" % (name, ", ".join(list(MODELS) + list(COUNT_ONLY))))
    with open(os.path.join(out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)


if __name__ == "__main__":
    main()
