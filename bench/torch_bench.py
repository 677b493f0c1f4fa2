#!/usr/bin/python3
"""PyTorch side of `fercli bench --compare` (Debian's PyTorch 1.13 and
torchvision 0.14: run it with /usr/bin/python3, not the python3 on PATH).

Two ways to use it:

  /usr/bin/python3 bench/torch_bench.py serve
      Server mode, driven by fercli: one JSON request per line on stdin, one
      JSON reply per line on stdout ({"ok": true, ...} or {"ok": false,
      "error": ...}). fercli alternates fer and PyTorch steps in rounds so
      that background load hits both frameworks alike.

  /usr/bin/python3 bench/torch_bench.py MODEL [--batch N --size HxW --frames T
      --steps S --warmup W --threads N --amp --workers N --phases forward,train,data]
      Stand-alone: times the same phases for PyTorch only (the data phase
      needs --data-root, a fixture written by fercli or bench.WriteFixture).

What is timed, matching fer's side (bench/model.go, bench/data.go):
  forward  model.eval(), torch.no_grad(), one forward of a fixed random batch;
  train    model.train(), zero_grad, forward, cross_entropy, loss.item(),
           backward, optimizer.step() (SGD momentum 0.9 wd 1e-4, or Adam);
  data     DataLoader(num_workers=W, shuffle, drop_last) over the JPEG
           fixture: PIL decode, RandomResizedCrop(scale 0.08-1, ratio 3/4-4/3),
           RandomHorizontalFlip, ToTensor, collate. Clips follow Former-DFER's
           pipeline: 8x2 segment sampling of 16 frames, one crop and flip per
           clip; a frame index that repeats is decoded once, as fer does.

The models: torchvision resnet18/resnet50/vgg16; IR-50 and EfficientNet-B2
are imported from models/testdata/make_fixtures.py (the reference modules of
fer's backbone tests); SmallCNN and STT are written below after fer's
models/smallcnn.go and models/stt.go ("joint" attention, the default);
MT-VGG-RNN and MT-ArcRes after models/mtvgg.go and models/mtarc.go, trained
with the multi-task loss of fer/multitask.go (1 - mean CCC + CE or ArcFace
+ BCE) on per-frame targets, every frame labelled.
"""
import argparse
import json
import math
import os
import platform
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision import transforms
import torchvision.transforms.functional as TF
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
REF_DIR = os.path.join(HERE, "..", "models", "testdata")


def rmfer_ref():
    """RMFERNet (the public RMFER model with its ACL sketch) from the RMFER
    tests' reference script."""
    sys.path.insert(0, os.path.abspath(REF_DIR))
    try:
        import rmfer_ref
    finally:
        sys.path.pop(0)
    return rmfer_ref


def ref_modules():
    """IR50 and TFEfficientNet from the backbone tests' reference script
    (it sets the thread count on import; callers set it again)."""
    sys.path.insert(0, os.path.abspath(REF_DIR))
    try:
        import make_fixtures  # noqa: E402
    finally:
        sys.path.pop(0)
    return make_fixtures


# ------------------------------------------------------------ SmallCNN ----
class ConvBNReLU(nn.Module):
    def __init__(self, cin, cout, pool):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.pool = pool

    def forward(self, x):
        x = F.relu(self.bn(self.conv(x)), inplace=True)
        return F.max_pool2d(x, 2, 2) if self.pool else x


class SmallCNNStage(nn.Module):
    def __init__(self, cin, cout, pool):
        super().__init__()
        self.conv1 = ConvBNReLU(cin, cout, False)
        self.conv2 = ConvBNReLU(cout, cout, pool)

    def forward(self, x):
        return self.conv2(self.conv1(x))


class SmallCNN(nn.Module):
    """fer's models/smallcnn.go: pooled stem (W), three stages of two
    conv-bn-relu units (2W, 4W, 8W; the first two pooled), global average
    pool, dropout, fc. fercli sends fer's default width."""

    def __init__(self, num_classes=7, width=24, dropout=0.2):
        super().__init__()
        w = width
        self.stem = ConvBNReLU(3, w, True)
        self.stage1 = SmallCNNStage(w, 2 * w, True)
        self.stage2 = SmallCNNStage(2 * w, 4 * w, True)
        self.stage3 = SmallCNNStage(4 * w, 8 * w, False)
        self.dropout = dropout
        self.fc = nn.Linear(8 * w, num_classes)

    def forward(self, x):
        for m in (self.stem, self.stage1, self.stage2, self.stage3):
            x = m(x)
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        x = F.dropout(x, self.dropout, self.training)
        return self.fc(x)


# ----------------------------------------------------------------- STT ----
def drop_path(x, p, training):
    if p == 0 or not training:
        return x
    keep = (torch.rand((x.shape[0],) + (1,) * (x.dim() - 1), dtype=x.dtype, device=x.device) < 1 - p)
    return x * (keep.to(x.dtype) / (1 - p))


class Attention(nn.Module):
    """timm Attention written with matmul + softmax, as models/stt.go."""

    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        S, L, D = x.shape
        H = self.heads
        qkv = self.qkv(x).reshape(S, L, 3, H, D // H).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        q = q * (1.0 / math.sqrt(D // H))
        attn = (q @ k.transpose(-2, -1)).softmax(-1)
        ctx = (attn @ v).transpose(1, 2).reshape(S, L, D)
        return self.proj(ctx)


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class STTBlock(nn.Module):
    """Joint block: x + DropPath(SA(LN1 x) + TA(LN1 x)); x + DropPath(MLP(LN2 x))."""

    def __init__(self, dim, heads, hidden, dp):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.temporal_attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, hidden)
        self.dp = dp

    def spatial(self, h, T, N):
        B, _, D = h.shape
        cls = h[:, :1].unsqueeze(1).expand(B, T, 1, D).reshape(B * T, 1, D)
        pt = h[:, 1:].reshape(B * T, N, D)
        out = self.attn(torch.cat([cls, pt], 1))
        cls_o = out[:, :1].reshape(B, T, D).mean(1, keepdim=True)
        return torch.cat([cls_o, out[:, 1:].reshape(B, T * N, D)], 1)

    def temporal(self, h, T, N):
        B, _, D = h.shape
        pt = h[:, 1:].reshape(B, T, N, D).permute(0, 2, 1, 3).reshape(B * N, T, D)
        out = self.temporal_attn(pt).reshape(B, N, T, D).permute(0, 2, 1, 3).reshape(B, T * N, D)
        return torch.cat([torch.zeros(B, 1, D, dtype=h.dtype, device=h.device), out], 1)

    def forward(self, x, T, N):
        h = self.norm1(x)
        x = x + drop_path(self.spatial(h, T, N) + self.temporal(h, T, N), self.dp, self.training)
        return x + drop_path(self.mlp(self.norm2(x)), self.dp, self.training)


class STT(nn.Module):
    """models/stt.go with its defaults: ResNet-18 to layer3, 1x1 patch conv to
    512-d tokens, CLS + spatial and temporal position embeddings, 4 joint
    blocks of 8 heads, MLP 4x, drop-path rising to 0.1, LayerNorm, head."""

    def __init__(self, num_classes=7, frames=16, image_size=112, dim=512, depth=4, heads=8,
                 mlp_ratio=4.0, drop_path_rate=0.1):
        super().__init__()
        r = torchvision.models.resnet18()
        self.backbone = nn.Sequential(r.conv1, r.bn1, r.relu, r.maxpool, r.layer1, r.layer2, r.layer3)
        g = image_size
        for _ in range(4):
            g = (g + 1) // 2
        self.grid = g
        self.frames = frames
        self.patch_embed = nn.Conv2d(256, dim, 1)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, g * g + 1, dim) * 0.02)
        self.time_embed = nn.Parameter(torch.randn(1, frames, dim) * 0.02)
        hidden = int(mlp_ratio * dim)
        self.blocks = nn.ModuleList([
            STTBlock(dim, heads, hidden, drop_path_rate * i / (depth - 1) if depth > 1 else 0.0)
            for i in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x):
        B, T, C, H, W = x.shape
        N = self.grid * self.grid
        f = self.backbone(x.reshape(B * T, C, H, W))
        tok = self.patch_embed(f).flatten(2).transpose(1, 2) + self.pos_embed[:, 1:]
        tok = (tok.reshape(B, T, N, -1) + self.time_embed.unsqueeze(2)).reshape(B, T * N, -1)
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(B, 1, -1)
        x = torch.cat([cls, tok], 1)
        for blk in self.blocks:
            x = blk(x, T, N)
        return self.head(self.norm(x)[:, 0])


class WithHead(nn.Module):
    def __init__(self, body, dim, classes):
        super().__init__()
        self.backbone = body
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        return self.head(self.backbone(x))


# ------------------------------------------------ Aff-Wild2 multi-task ----
class MTVGGRNN(nn.Module):
    """models/mtvgg.go with its MT-VGG-RNN defaults: VGG-16 conv stack,
    adaptive 7x7 pool, fc6 4096 + ReLU, dropout 0.5, 2-layer GRU(128),
    head 2 + C + 8 per frame (va tanh)."""

    def __init__(self, classes=7, aus=8, hidden=4096, gru=128):
        super().__init__()
        self.features = torchvision.models.vgg16().features
        self.fc6 = nn.Linear(512 * 7 * 7, hidden)
        self.gru = nn.GRU(hidden, gru, num_layers=2, batch_first=True)
        self.head = nn.Linear(gru, 2 + classes + aus)
        self.classes = classes

    def forward(self, x):
        B, T = x.shape[:2]
        h = self.features(x.flatten(0, 1))
        h = torch.flatten(F.adaptive_avg_pool2d(h, 7), 1)
        h = F.dropout(F.relu(self.fc6(h)), 0.5, self.training)
        h, _ = self.gru(h.reshape(B, T, -1))
        y = self.head(h)
        C = self.classes
        return {"va": torch.tanh(y[..., :2]), "logits": y[..., 2:2 + C], "au": y[..., 2 + C:]}


class MTArcRes(nn.Module):
    """models/mtarc.go: ResNet-50 pooled features -> head 2 + 8 (va tanh,
    AU logits) and ArcFace class centres (cosines; logits = s cos)."""

    def __init__(self, classes=7, aus=8, s=64.0):
        super().__init__()
        self.backbone = torchvision.models.resnet50()
        self.backbone.fc = nn.Identity()
        self.head = nn.Linear(2048, 2 + aus)
        self.arc = nn.Parameter(torch.empty(classes, 2048))
        nn.init.xavier_uniform_(self.arc)
        self.s = s

    def forward(self, x):
        f = self.backbone(x)
        y = self.head(f)
        cos = F.linear(F.normalize(f), F.normalize(self.arc))
        return {"va": torch.tanh(y[:, :2]), "logits": cos * self.s, "au": y[:, 2:], "cos": cos}


def ccc(p, t):
    mp, mt = p.mean(), t.mean()
    vp, vt = ((p - mp) ** 2).mean(), ((t - mt) ** 2).mean()
    cov = ((p - mp) * (t - mt)).mean()
    return 2 * cov / (vp + vt + (mp - mt) ** 2 + 1e-8)


def arcface_logits(cos, y, s=64.0, m=0.5):
    """losses/arcface.go (the arcface-pytorch ArcMarginProduct formula)."""
    sine = (1 - cos * cos).clamp(1e-7, 1).sqrt()
    phi = cos * math.cos(m) - sine * math.sin(m)
    phi = torch.where(cos > math.cos(math.pi - m), phi, cos - math.sin(math.pi - m) * m)
    onehot = F.one_hot(y, cos.shape[-1]).to(cos.dtype)
    return s * (cos + onehot * (phi - cos))


def mt_loss(out, t):
    va, ty = out["va"].reshape(-1, 2), t["va"].reshape(-1, 2)
    l_va = 1 - (ccc(va[:, 0], ty[:, 0]) + ccc(va[:, 1], ty[:, 1])) / 2
    y = t["label"].reshape(-1)
    if "cos" in out:
        z = arcface_logits(out["cos"].reshape(y.shape[0], -1), y)
    else:
        z = out["logits"].reshape(y.shape[0], -1)
    l_ex = F.cross_entropy(z, y)
    au = out["au"].reshape(-1, out["au"].shape[-1])
    l_au = F.binary_cross_entropy_with_logits(au, t["au"].reshape(au.shape))
    return l_va + l_ex + l_au


MT_MODELS = ("mt-vgg-rnn", "mt-arcres")

# bench/model.go's RMFER row: one RMset anchor with this many positive and
# negative candidates (its SAM radius comes in the request, sam_rho)
RMFER_CANDIDATES = 10


class RMFERStep:
    """RMFER's phase-2 objective on a labelled batch and one RMset group,
    as fer's models/rmferreg.go computes it: L_pre = CE(main) + CE(att)
    (lambda1 = 1) + L_ACL (lambda2 = 1), the ACL selection (get_positive /
    get_negative, no gradient) made in the first SAM pass and reused in
    the second, as fer does."""

    def __init__(self, model, x, y, anchor, pos, neg):
        self.m, self.x, self.y = model, x, y
        self.anchor, self.pos, self.neg = anchor, pos, neg
        self.sel = None

    def loss(self):
        main, att, _, _ = self.m(self.x)
        l_pre = F.cross_entropy(main, self.y) + F.cross_entropy(att, self.y)
        if self.sel is None:
            self.sel = (self.m.get_positive(self.anchor, self.pos), self.m.get_negative(self.anchor, self.neg))
        p, n = self.sel
        return l_pre + self.m.contrastive_loss(self.anchor, self.pos[p], self.neg[n])


def qcs_reference():
    """QCSNet, the reference module of fer's QCS tests (qcs_reference.py:
    the public code's modules and names; it builds the never-called ones
    too, which get no gradient and no optimiser state)."""
    sys.path.insert(0, os.path.abspath(REF_DIR))
    try:
        import qcs_reference as q  # noqa: E402
    finally:
        sys.path.pop(0)
    return q


def qcs_loss(base, cross, y, y2):
    """main_QCS_*.py: the mean of the 8 cross-entropies, in the code's
    order (base a, p, n, n2, then cross)."""
    terms = [F.cross_entropy(o, y if i % 4 < 2 else y2) for i, o in enumerate(list(base) + list(cross))]
    loss = terms[0]
    for t in terms[1:]:
        loss = loss + t
    return loss / len(terms)


class SAM:
    """SAM(adaptive=False) over a base optimiser, as QCS's
    data_processing/sam.py and RMFER's optimizer/SAM.py: first_step moves to
    w + rho g/(|g| + 1e-12) and zeroes the gradients, second_step moves back
    and updates."""

    def __init__(self, params, base, rho):
        self.params, self.base, self.rho, self.e = [p for p in params], base, rho, {}

    @torch.no_grad()
    def first_step(self):
        grads = [p.grad for p in self.params if p.grad is not None]
        norm = torch.norm(torch.stack([g.norm(p=2) for g in grads]), p=2)
        scale = self.rho / (norm + 1e-12)
        for p in self.params:
            if p.grad is None:
                continue
            e = p.grad * scale
            p.add_(e)
            self.e[p] = e
        self.base.zero_grad(set_to_none=False)

    @torch.no_grad()
    def second_step(self):
        for p, e in self.e.items():
            p.sub_(e)
        self.e = {}
        self.base.step()


def build_model(name, classes, frames, size, width=24):
    if name == "qcs":
        q = qcs_reference()
        return q.QCSNet(dict(q.DEFAULT, classes=classes))  # QCS_7cls_raf_db.py
    if name == "resnet18":
        return torchvision.models.resnet18(num_classes=classes)
    if name == "resnet50":
        return torchvision.models.resnet50(num_classes=classes)
    if name == "vgg16":
        return torchvision.models.vgg16(num_classes=classes)
    if name == "ir50":
        return WithHead(ref_modules().IR50(stages=3, output_layer=False, resize=112), 256, classes)
    if name == "effnet_b2":
        return ref_modules().TFEfficientNet(num_classes=classes)
    if name == "smallcnn":
        return SmallCNN(classes, width)
    if name == "stt":
        return STT(classes, frames=frames, image_size=size)
    if name == "mt-vgg-rnn":
        return MTVGGRNN(classes)
    if name == "mt-arcres":
        return MTArcRes(classes)
    if name == "rmfer":
        return rmfer_ref().RMFERNet(classes)
    raise ValueError("unknown model %r (resnet18, resnet50, vgg16, ir50, effnet_b2, stt, smallcnn, mt-vgg-rnn, mt-arcres, qcs, rmfer)" % name)


# ---------------------------------------------------------------- BLAS ----
def blas_info():
    """The libblas.so.3 this process loaded (the mapped file, links
    resolved) and its openblas_get_parallel(): 0 sequential, 1 pthreads,
    2 OpenMP, -1 not OpenBLAS."""
    import ctypes
    path = ""
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 6 and os.path.basename(parts[5]).startswith("libblas.so"):
                path = parts[5]
                break
    parallel = -1
    if path:
        try:
            parallel = int(ctypes.CDLL(path).openblas_get_parallel())
        except (OSError, AttributeError):
            pass
    return path, parallel


# -------------------------------------------------------------- memory ----
def proc_status():
    rss = peak = -1
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1]) * 1024
    return rss, peak


def reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


# ---------------------------------------------------------- model bench ----
class ModelBench:
    def __init__(self, req):
        torch.set_num_threads(int(req["threads"]))
        torch.manual_seed(int(req.get("seed", 0)))
        dev = req.get("device", "cpu")
        if dev.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeError("device %s: this PyTorch (%s) has no CUDA" % (dev, torch.__version__))
        self.device = torch.device(dev)
        name, frames = req["model"], int(req.get("frames", 0))
        h, w = int(req["height"]), int(req["width"])
        self.model = build_model(name, int(req.get("classes", 7)), frames, h, int(req.get("smallcnn_width", 24))).to(self.device)
        torch.set_num_threads(int(req["threads"]))  # make_fixtures sets it on import
        b = int(req["batch"])
        shape = (b, frames, 3, h, w) if frames > 0 else (b, 3, h, w)
        self.x = torch.randn(*shape, device=self.device)
        self.y = torch.randint(0, int(req.get("classes", 7)), (b,), device=self.device)
        self.mt = None
        if name in MT_MODELS:
            # per-frame targets, every frame labelled (bench/model.go)
            lead = (b, frames) if frames > 0 else (b,)
            self.mt = {"label": torch.randint(0, int(req.get("classes", 7)), lead, device=self.device),
                       "va": torch.rand(*lead, 2, device=self.device) * 2 - 1,
                       "au": torch.randint(0, 2, lead + (8,), device=self.device).float()}
        if req["optimizer"] == "sgd":
            o = req["sgd"]
            self.opt = torch.optim.SGD(self.model.parameters(), lr=o["lr"], momentum=o["momentum"], weight_decay=o["weight_decay"])
        elif req["optimizer"] == "adam":
            self.opt = torch.optim.Adam(self.model.parameters(), lr=req["adam"]["lr"])
        else:
            raise ValueError("optimizer %r: want sgd or adam" % req["optimizer"])
        self.quad = None
        self.sam = None
        if name == "qcs":
            # a quadruplet batch (bench/model.go): anchors x, positives and
            # negatives; y' = (y + U{1..C-1}) mod C; SAM over the optimiser
            C = int(req.get("classes", 7))
            self.quad = [self.x] + [torch.randn(*shape, device=self.device) for _ in range(3)]
            self.y2 = (self.y + torch.randint(0, C - 1, (b,), device=self.device) + 1) % C
            self.params_used = self.model.used_params()
        if float(req.get("sam_rho", 0)) > 0:
            self.sam = SAM(self.model.parameters(), self.opt, float(req["sam_rho"]))
        self.rmfer = None
        if name == "rmfer":
            if self.opt.__class__ is not torch.optim.Adam or self.sam is None:
                raise ValueError("rmfer trains with SAM over Adam (the request needs adam and sam_rho)")
            k = RMFER_CANDIDATES
            self.rmfer = RMFERStep(self.model, self.x, self.y, torch.randn(1, 3, h, w, device=self.device),
                                   torch.randn(k, 3, h, w, device=self.device), torch.randn(k, 3, h, w, device=self.device))
        self.amp = bool(req.get("amp", False))
        self.amp_dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}[
            req.get("amp_dtype") or ("float16" if self.device.type == "cuda" else "bfloat16")]
        # loss scaling only where float16 needs it (bfloat16 has float32's range)
        self.scaler = torch.cuda.amp.GradScaler() if self.amp and self.device.type == "cuda" and self.amp_dtype == torch.float16 else None
        self.params = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        if self.quad is not None:
            self.params = self.params_used  # fer does not build the never-called modules

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp)

    def sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def forward_step(self):
        with torch.no_grad(), self.autocast():
            self.model(self.x)

    def qcs_sam_step(self):
        """fer.SAMStep on a quadruplet batch: zero_grad, forward, loss,
        backward, first_step; forward, loss, backward, second_step."""
        self.opt.zero_grad(set_to_none=False)
        base, cross = self.model(*self.quad)
        loss = qcs_loss(base, cross, self.y, self.y2)
        loss.item()
        loss.backward()
        self.sam.first_step()
        base, cross = self.model(*self.quad)
        loss = qcs_loss(base, cross, self.y, self.y2)
        loss.item()
        loss.backward()
        self.sam.second_step()

    def rmfer_step(self):
        """fer.SAMStep: two forward/backward passes, the loss read once."""
        r = self.rmfer
        r.sel = None  # a new RMset group each step: select anew
        self.opt.zero_grad(set_to_none=False)
        loss = r.loss()
        loss.item()
        loss.backward()
        self.sam.first_step()  # zeroes the gradients
        r.loss().backward()
        self.sam.second_step()

    def train_step(self):
        if self.rmfer is not None:
            return self.rmfer_step()
        if self.quad is not None:
            if self.amp:
                raise ValueError("--amp with a SAM step is not timed")
            return self.qcs_sam_step()
        self.opt.zero_grad(set_to_none=False)  # fer zeroes in place, as torch 1.13's default
        with self.autocast():
            out = self.model(self.x)
            loss = mt_loss(out, self.mt) if self.mt is not None else F.cross_entropy(out, self.y)
        loss.item()  # fer reads the loss every step
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            loss.backward()
            self.opt.step()

    def timed(self, step, warmup, steps):
        for _ in range(warmup):
            step()
            self.sync()
        out = []
        for _ in range(steps):
            t0 = time.perf_counter()
            step()
            self.sync()
            out.append(time.perf_counter() - t0)
        return out

    def op_counts(self, phase):
        """Outermost aten ops of one step by name (ops an aten op calls are
        part of it; autograd's node events are not ops), as fer's
        fer.CountFLOPs counts them."""
        from torch.autograd import profiler
        step = self.forward_step if phase == "forward" else self.train_step
        self.model.train(phase == "train")
        with profiler.profile() as prof:
            step()
        counts = {}
        for e in prof.function_events:
            if not e.name.startswith("aten::"):
                continue
            p = e.cpu_parent
            while p is not None and not p.name.startswith("aten::"):
                p = p.cpu_parent
            if p is None:
                counts[e.name] = counts.get(e.name, 0) + 1
        return counts

    def forward(self, warmup, steps):
        self.model.eval()
        return self.timed(self.forward_step, warmup, steps)

    def train(self, warmup, steps):
        self.model.train()
        return self.timed(self.train_step, warmup, steps)


# ----------------------------------------------------------- data bench ----
def segment_indices(n, segments, duration, rng):
    """Former-DFER's _get_train_indices + get(): one random offset per
    segment, duration consecutive frames from it, clamped at the end."""
    avg = (n - duration + 1) // segments
    if avg > 0:
        offs = [k * avg + int(rng.integers(avg)) for k in range(segments)]
    elif n > segments:
        offs = sorted(int(rng.integers(n - duration + 1)) for _ in range(segments))
    else:
        offs = [0] * segments
    idx = []
    for p in offs:
        for _ in range(duration):
            idx.append(p)
            if p < n - 1:
                p += 1
    return idx


class DFEWClips(torch.utils.data.Dataset):
    """DFEW layout (Clip/clip_224x224/<id>/*.jpg, EmoLabel_DataSplit/
    train(single-labeled)/set_1.csv) with Former-DFER's training pipeline."""

    def __init__(self, root, frames, size):
        import numpy  # noqa: F401  (numpy RNG per sample)
        csv = os.path.join(root, "EmoLabel_DataSplit", "train(single-labeled)", "set_1.csv")
        self.items = []
        with open(csv) as f:
            for line in f.read().split("\n")[1:]:
                if line.strip():
                    v, l = line.split(",")
                    d = os.path.join(root, "Clip", "clip_224x224", "%05d" % int(v))
                    files = sorted(os.path.join(d, x) for x in os.listdir(d) if x.lower().endswith((".jpg", ".jpeg", ".png")))
                    self.items.append((files, int(l) - 1))
        if frames % 2 == 0:
            self.segments, self.duration = frames // 2, 2
        else:
            self.segments, self.duration = frames, 1
        self.size = size
        self.crop = transforms.RandomResizedCrop(size)

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        import numpy as np
        rng = np.random.default_rng()
        files, label = self.items[i]
        idx = segment_indices(len(files), self.segments, self.duration, rng)
        params = None
        flip = bool(torch.rand(1) < 0.5)
        done = {}
        out = []
        for k in idx:
            if k not in done:
                img = Image.open(files[k]).convert("RGB")
                if params is None:
                    params = self.crop.get_params(img, self.crop.scale, self.crop.ratio)
                img = TF.resized_crop(img, *params, [self.size, self.size], transforms.InterpolationMode.BILINEAR)
                if flip:
                    img = TF.hflip(img)
                done[k] = TF.to_tensor(img)
            out.append(done[k])
        return torch.stack(out), label


class DataBench:
    def __init__(self, req):
        torch.set_num_threads(int(req.get("threads", 1)))
        size = int(req["size"])
        if req["clips"]:
            ds = DFEWClips(req["root"], int(req["frames"]), size)
        else:
            ds = torchvision.datasets.ImageFolder(req["root"], transform=transforms.Compose([
                transforms.RandomResizedCrop(size), transforms.RandomHorizontalFlip(), transforms.ToTensor()]))
        g = torch.Generator()
        g.manual_seed(int(req.get("seed", 0)))
        # persistent_workers=False: the workers stop when an iterator is
        # dropped, so nothing loads in the background while fer is timed.
        self.loader = torch.utils.data.DataLoader(ds, batch_size=int(req["batch"]), shuffle=True, drop_last=True,
                                                  num_workers=int(req["workers"]), generator=g)

    def run(self, skip, steps):
        it = iter(self.loader)

        def nxt():
            nonlocal it
            try:
                return next(it)
            except StopIteration:
                it = iter(self.loader)
                return next(it)

        for _ in range(skip):
            nxt()
        out = []
        for _ in range(steps):
            t0 = time.perf_counter()
            nxt()
            out.append(time.perf_counter() - t0)
        del it
        return out


# -------------------------------------------------------------- server ----
def serve():
    out = sys.stdout
    sys.stdout = sys.stderr  # stray prints must not corrupt the protocol
    mb = db = None
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            req = json.loads(line)
            op = req["op"]
            if op == "quit":
                break
            if op == "hello":
                blas, parallel = blas_info()
                rep = {"torch": torch.__version__, "torchvision": torchvision.__version__,
                       "python": platform.python_version(), "threads": torch.get_num_threads(),
                       "mkldnn": torch.backends.mkldnn.is_available(),
                       "blas": blas, "blas_parallel": parallel}
            elif op == "model":
                mb = None
                mb = ModelBench(req)
                rep = {"params": mb.params, "threads": torch.get_num_threads()}
            elif op in ("forward", "train"):
                if mb is None:
                    raise RuntimeError("no model: send a model request first")
                f = mb.forward if op == "forward" else mb.train
                rep = {"times": f(int(req["warmup"]), int(req["steps"]))}
            elif op == "ops":
                if mb is None:
                    raise RuntimeError("no model: send a model request first")
                rep = {"ops": mb.op_counts(req["phase"])}
            elif op == "data_open":
                mb = None
                db = DataBench(req)
                rep = {}
            elif op == "data":
                if db is None:
                    raise RuntimeError("no data set: send a data_open request first")
                rep = {"times": db.run(int(req["skip"]), int(req["steps"]))}
            elif op == "reset_peak":
                reset_peak()
                rep = {}
            elif op == "mem":
                rss, peak = proc_status()
                gpu = torch.cuda.max_memory_allocated() if torch.cuda.is_available() and mb is not None and mb.device.type == "cuda" else -1
                rep = {"rss": rss, "peak_rss": peak, "gpu": gpu}
            else:
                raise ValueError("unknown op %r" % op)
            rep["ok"] = True
        except Exception as e:  # reported to fercli, which stops the run
            rep = {"ok": False, "error": "%s: %s" % (type(e).__name__, e)}
        out.write(json.dumps(rep) + "\n")
        out.flush()


# ---------------------------------------------------------- stand-alone ----
DEFAULTS = {  # bench/model.go's Models
    "resnet18": (16, 112, 0, "sgd"), "resnet50": (8, 112, 0, "sgd"), "vgg16": (8, 112, 0, "sgd"),
    "ir50": (8, 112, 0, "adam"), "effnet_b2": (8, 112, 0, "adam"), "stt": (2, 112, 16, "sgd"),
    "smallcnn": (32, 48, 0, "sgd"),
}


def median(xs):
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        return serve()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", choices=sorted(DEFAULTS))
    ap.add_argument("--batch", type=int)
    ap.add_argument("--size", help="HxW")
    ap.add_argument("--frames", type=int)
    ap.add_argument("--optimizer", choices=["sgd", "adam"])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--amp", action="store_true")
    ap.add_argument("--phases", default="forward,train")
    ap.add_argument("--data-root", help="fixture for the data phase (written by fercli bench --keep-fixture)")
    a = ap.parse_args()
    b, s, fr, opt = DEFAULTS[a.model]
    b = a.batch or b
    h = w = s
    if a.size:
        h, w = (int(v) for v in a.size.lower().split("x"))
    fr = fr if a.frames is None else a.frames
    req = {"model": a.model, "batch": b, "height": h, "width": w, "frames": fr, "classes": 7, "device": a.device,
           "optimizer": a.optimizer or opt, "amp": a.amp, "threads": a.threads, "seed": 0,
           "sgd": {"lr": 0.01, "momentum": 0.9, "weight_decay": 1e-4}, "adam": {"lr": 1e-4}}
    print("torch %s, torchvision %s, %d threads; %s batch %d %dx%d%s %s amp=%s" % (
        torch.__version__, torchvision.__version__, a.threads, a.model, b, h, w,
        " %d frames" % fr if fr else "", req["optimizer"], a.amp))
    phases = a.phases.split(",")
    if "forward" in phases or "train" in phases:
        mb = ModelBench(req)
        print("parameters: %d" % mb.params)
        for ph in ("forward", "train"):
            if ph in phases:
                ts = getattr(mb, ph)(a.warmup, a.steps)
                print("%-8s median %.4f s  min %.4f  max %.4f  %.1f samples/s" % (ph, median(ts), min(ts), max(ts), b / median(ts)))
    if "data" in phases:
        if not a.data_root:
            sys.exit("the data phase needs --data-root")
        db = DataBench({"clips": fr > 0, "root": a.data_root, "size": h, "frames": fr, "batch": b,
                        "workers": a.workers, "threads": a.threads})
        ts = db.run(a.warmup, a.steps)
        items = b * fr if fr else b
        print("data     median %.4f s  min %.4f  max %.4f  %.1f %s/s" % (median(ts), min(ts), max(ts), items / median(ts), "frames" if fr else "images"))


if __name__ == "__main__":
    main()
