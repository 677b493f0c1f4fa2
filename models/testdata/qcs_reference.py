#!/usr/bin/env python3
"""PyTorch reference of QCS and DCS for the Go tests in fer/models (qcs_test.go).

usage: /usr/bin/python3 qcs_reference.py OUTDIR [CASE ...]
       /usr/bin/python3 qcs_reference.py --published OUTDIR [IMAGE ...]

Our own modules, written from the public code (github.com/birdwcp/QCS,
models/QCS_*.py, DCS_*.py, vit_model_{7,8}cls.py, ir50.py, utils.py) with its
parameter names, construction order and forward operations, made
configurable (width, classes, dropout, variants) so the tests can also run
reduced sizes. Like the public classes they build modules their forward never
calls (IR-50's output_layer; the ViTs' patch_embed, eca_block, CON1,
IRLinear1/2 and per-block Conv1d; DCS_8cls_affectnet's fusion), so the saved
state_dicts carry those keys and the random stream is the code's.

For every case it writes, into OUTDIR:
  <case>.pth     the weights, built right after torch.manual_seed(seed), saved
                 in one of the forms the public code writes (bare or nested
                 under 'state_dict', with or without DataParallel's 'module.',
                 older embed_q/k/v or newer embed_1/2/3 names; one as a full
                 training checkpoint with optimizer state and pickled
                 recorder objects);
  <case>_io.pt   inputs and labels, eval-mode base logits of the anchors, a
                 training-mode forward (base and cross logits, CSA weights,
                 tanh(theta)), the loss, the gradients of every
                 CrossAttention parameter and a few others, and the first
                 BatchNorm's running statistics;
and qcs_meta.json (configs, seeds, parameter counts). Case "csa" checks the
four attention functions of utils.py alone; case qcs_rafdb also writes its
IR-50 as face.evoLVe's ir50.pth names it (legacy torch.save format).

With --published it writes reduced stand-ins of the released files for the
CLI tests (make_published below).
"""
import copy
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(max(1, os.cpu_count() or 1))

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import BottleneckIR  # noqa: E402  (face.evoLVe bottleneck_IR)


# ------------------------------------------------------------- IR-50 ----
class Backbone(nn.Module):
    """ir50.py Backbone(50, 0.0, 'ir'): input layer, the (never used) output
    layer, then body1..body3; forward resizes to `resize` (nearest)."""

    def __init__(self, resize=112, units=(3, 4, 14)):
        super().__init__()
        self.resize = resize
        self.input_layer = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64))
        self.output_layer = nn.Sequential(nn.BatchNorm2d(512), nn.Dropout(0.0), nn.Flatten(),
                                          nn.Linear(512 * 7 * 7, 512), nn.BatchNorm1d(512))
        cin = 64
        for s, (depth, n) in enumerate(zip((64, 128, 256), units)):
            mods = []
            for u in range(n):
                mods.append(BottleneckIR(cin, depth, 2 if u == 0 else 1))
                cin = depth
            setattr(self, "body%d" % (s + 1), nn.Sequential(*mods))

    def forward(self, x):
        x = F.interpolate(x, size=self.resize)
        x = self.input_layer(x)
        x1 = self.body1(x)
        x2 = self.body2(x1)
        x3 = self.body3(x2)
        return x1, x2, x3


# -------------------------------------------------------- ViT (vit_model) ----
class PatchEmbed(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Conv2d(256, 768, kernel_size=1)  # literal sizes, as the code
        self.norm = nn.Identity()

    def forward(self, x):
        return self.norm(self.proj(x).flatten(2).transpose(1, 2))


class Mlp(nn.Module):
    def __init__(self, dim, hidden, drop=0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x):
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class Attention(nn.Module):
    def __init__(self, dim, in_chans, num_heads, proj_drop):
        super().__init__()
        self.num_heads = num_heads
        self.img_chanel = in_chans + 1
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.attn_drop = nn.Dropout(0.0)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x):
        x_img = x[:, :self.img_chanel, :]
        B, N, C = x_img.shape
        qkv = self.qkv(x_img).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q @ k.transpose(-2, -1)) * self.scale
        attn = self.attn_drop(attn.softmax(dim=-1))
        x_img = (attn @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj_drop(self.proj(x_img))


class Block(nn.Module):
    def __init__(self, dim, in_chans, num_heads, mlp_ratio, drop, proj_drop):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.img_chanel = in_chans + 1
        self.conv = nn.Conv1d(self.img_chanel, self.img_chanel, 1)  # never called
        self.attn = Attention(dim, in_chans, num_heads, proj_drop)
        self.drop_path = nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)

    def forward(self, x):
        x_img = x + self.drop_path(self.attn(self.norm1(x)))
        return x_img + self.drop_path(self.mlp(self.norm2(x_img)))


class ClassificationHead(nn.Module):
    def __init__(self, dim, classes):
        super().__init__()
        self.linear = nn.Linear(dim, classes)

    def forward(self, x):
        return self.linear(x.view(x.size(0), -1))


class eca_block(nn.Module):  # the second (channel=196) definition: kernel 5
    def __init__(self, channel=196, b=1, gamma=2):
        super().__init__()
        k = int(abs((math.log(channel, 2) + b) / gamma))
        k = k if k % 2 else k + 1
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv = nn.Conv1d(1, 1, kernel_size=k, padding=(k - 1) // 2, bias=False)
        self.sigmoid = nn.Sigmoid()


class SE_block(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.linear1 = nn.Linear(dim, dim)
        self.relu = nn.ReLU()
        self.linear2 = nn.Linear(dim, dim)
        self.sigmod = nn.Sigmoid()

    def forward(self, x):
        return x * self.sigmod(self.linear2(self.relu(self.linear1(x))))


def _init_vit_weights(m):
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=.01)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Conv2d):
        nn.init.kaiming_normal_(m.weight, mode="fan_out")
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.zeros_(m.bias)
        nn.init.ones_(m.weight)


class VisionTransformer(nn.Module):
    """VisionTransformer(depth, drop_ratio) with in_c tokens; proj_drop is
    drop_ratio in vit_model_8cls.py and 0 (attn_drop_ratio) in 7cls."""

    def __init__(self, in_c, num_classes, dim, depth, heads, mlp_ratio, drop_ratio, proj_drop_is_drop):
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, in_c + 1, dim))
        self.pos_drop = nn.Dropout(p=drop_ratio)
        self.se_block = SE_block(dim)
        self.patch_embed = PatchEmbed()
        self.head = ClassificationHead(dim, num_classes)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.dist_token = None
        self.pos_drop = nn.Dropout(p=drop_ratio)
        self.eca_block = eca_block()
        self.CON1 = nn.Conv2d(256, 768, kernel_size=1, stride=1, bias=False)
        self.IRLinear1 = nn.Linear(1024, 768)
        self.IRLinear2 = nn.Linear(768, 512)
        self.eca_block = eca_block()
        pd = drop_ratio if proj_drop_is_drop else 0.0
        self.blocks = nn.Sequential(*[Block(dim, in_c, heads, mlp_ratio, drop_ratio, pd) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pre_logits = nn.Identity()
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.apply(_init_vit_weights)

    def forward(self, x):
        cls_token = self.cls_token.expand(x.shape[0], -1, -1)
        x = torch.cat((cls_token, x), dim=1)
        x = self.pos_drop(x + self.pos_embed)
        x = self.blocks(x)
        x = self.norm(x)
        cls, tokens = self.pre_logits(x[:, 0]), x[:, 1:x.shape[1]]
        return self.head(self.se_block(cls)), tokens


# ------------------------------------------------------- CSA (utils.py) ----
def _shifted(a, b):
    D = torch.cdist(a, b, p=2)
    return D - torch.min(D)


def _sim(a, b):
    D = _shifted(a, b)
    return torch.max(D) - D


def attn_qcs(QK1, QK2, QK3, QK4, k, use_s=True, use_d=True):
    """Attn_QCS_SD (use_s and use_d), Attn_QCS_S (use_s), Attn_QCS_D (use_d)."""
    if use_s:
        S_2x1, S_4x3 = _sim(QK2, QK1), _sim(QK4, QK3)
    if use_d:
        D_3x1, D_4x2 = _shifted(QK3, QK1), _shifted(QK4, QK2)
    if use_s and use_d:
        k = k + 1

    def comb(S, D):
        if S is not None and D is not None:
            return F.softmax(S + k * D, dim=-1)
        return F.softmax(S if S is not None else D, dim=-1)

    S = [None] * 4
    D = [None] * 4
    if use_s:
        S[0] = torch.sum(F.normalize(S_2x1, p=2, dim=2), dim=1)
        S[3] = torch.sum(F.normalize(S_4x3, p=2, dim=1), dim=2)
        S[1] = torch.sum(F.normalize(S_2x1.transpose(1, 2), p=2, dim=2), dim=1)
        S[2] = torch.sum(F.normalize(S_4x3.transpose(1, 2), p=2, dim=1), dim=2)
    if use_d:
        D[0] = torch.sum(F.normalize(D_3x1, p=2, dim=2), dim=1)
        D[3] = torch.sum(F.normalize(D_4x2, p=2, dim=1), dim=2)
        D[1] = torch.sum(F.normalize(D_4x2, p=2, dim=2), dim=1)
        D[2] = torch.sum(F.normalize(D_3x1, p=2, dim=1), dim=2)
    return [comb(S[i], D[i]) for i in range(4)]


def attn_dcs_s(f_K1, f_Q2):
    S = _sim(f_Q2, f_K1)
    m1 = F.softmax(torch.sum(F.normalize(S, p=2, dim=2), dim=1), dim=-1)
    m2 = F.softmax(torch.sum(F.normalize(S, p=2, dim=1), dim=2), dim=-1)
    return m1, m2


# --------------------------------------------- CrossAttention and Fusion ----
class CrossAttention(nn.Module):
    """QCS_*.py CrossAttention (theta, four branches) or DCS_*.py's (two)."""

    def __init__(self, dim, qcs=True, csa="SD", pre_norm=False):
        super().__init__()
        self.qcs, self.csa, self.pre_norm = qcs, csa, pre_norm
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.proj = nn.Linear(dim, dim * 2)
        self.mlp = Mlp(dim, dim * 4, 0)
        if qcs:
            self.theta = nn.Parameter(torch.tensor(0.), requires_grad=True)

    def forward(self, *xs):
        B, N, C = xs[0].shape
        xn = [self.norm1(x) for x in xs]
        qk, v = [], []
        for x in xn:
            qkv = self.proj(x).reshape(B, N, 2, C).permute(2, 0, 1, 3)
            qk.append(qkv[0])
            v.append(qkv[1])
        k = None
        if self.qcs:
            k = torch.tanh(self.theta)
            maps = attn_qcs(*qk, k, use_s="S" in self.csa, use_d="D" in self.csa)
        else:
            maps = list(attn_dcs_s(qk[0], qk[1]))
        outs = []
        for i, x in enumerate(xs):
            w = torch.reshape(maps[i], shape=(B, N, 1))
            if self.pre_norm:  # DCS_8cls_*: residual on the raw tokens
                y = x + w * v[i]
                outs.append(y + self.mlp(self.norm2(y)))
            else:  # x = norm1(x) was overwritten: residual on the normalised tokens
                y = self.norm2(xn[i] + w * v[i])
                outs.append(y + self.mlp(y))
        return outs, maps, k


def bilinear_pooling(f1, f2):
    f1, f2 = f1.permute(0, 2, 1), f2.permute(0, 2, 1)
    B, C, N1 = f1.size()
    X = torch.bmm(f1, f2.transpose(1, 2)) / N1
    X = torch.reshape(X, (B, C * C))
    X = torch.sign(X) * torch.sqrt(torch.abs(X) + 1e-5)
    return 100 * F.normalize(X)


class Fusion(nn.Module):
    def __init__(self, dim, num_classes):
        super().__init__()
        self.classifier = nn.Linear(dim * dim, num_classes)  # 768*768 in the code

    def forward(self, x, attn):
        return self.classifier(torch.flatten(bilinear_pooling(x, attn), 1))


# ------------------------------------------------------- the QCS model ----
class QCSNet(nn.Module):
    """pyramid_trans_expr of QCS_*.py / DCS_*.py (cfg keys as QCSConfig)."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        dim, C = cfg["dim"], cfg["classes"]
        g = cfg["resize"]
        for _ in range(4):
            g = (g - 1) // 2 + 1
        self.N = g * g
        vit = dict(in_c=3 * self.N, num_classes=C, dim=dim, heads=cfg["heads"], mlp_ratio=4.0,
                   proj_drop_is_drop=cfg["proj_drop"])
        self.VIT_base = VisionTransformer(depth=2, drop_ratio=cfg["base_drop"], **vit)
        self.VIT_cross = VisionTransformer(depth=1, drop_ratio=cfg["cross_drop"], **vit)
        self.ir_back = Backbone(cfg["resize"], cfg["units"])
        self.conv1 = nn.Conv2d(64, 64, kernel_size=3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(128, 128, kernel_size=3, stride=2, padding=1)
        self.conv3 = nn.Conv2d(256, 256, kernel_size=3, stride=2, padding=1)
        self.embed_1 = nn.Sequential(nn.Conv2d(64, dim, kernel_size=3, stride=2, padding=1),
                                     nn.Conv2d(dim, dim, kernel_size=3, stride=2, padding=1))
        self.embed_2 = nn.Sequential(nn.Conv2d(128, dim, kernel_size=3, stride=2, padding=1))
        self.embed_3 = nn.Module()
        self.embed_3.proj = nn.Conv2d(256, dim, kernel_size=1)  # PatchEmbed's proj (768 in the code)
        qcs = cfg["variant"] == "qcs"
        for i in range(3):
            setattr(self, "cross_attention_%d" % (i + 1),
                    CrossAttention(dim, qcs=qcs, csa=cfg["csa"], pre_norm=cfg["pre_norm"]))
        if cfg["fusion"] in ("unused", "head"):
            self.fusion = Fusion(dim, C)
        self.trace = {}

    UNUSED = ("ir_back.output_layer.", "patch_embed.", "eca_block.", "CON1.", "IRLinear1.", "IRLinear2.", ".conv.")

    def used_params(self):
        n = 0
        for name, p in self.named_parameters():
            if any(u in name for u in self.UNUSED):
                continue
            if name.startswith("fusion.") and self.cfg["fusion"] != "head":
                continue
            n += p.numel()
        return n

    def base(self, x):
        x1, x2, x3 = self.ir_back(x)
        x1, x2, x3 = self.conv1(x1), self.conv2(x2), self.conv3(x3)
        o1 = self.embed_1(x1).flatten(2).transpose(1, 2)
        o2 = self.embed_2(x2).flatten(2).transpose(1, 2)
        o3 = self.embed_3.proj(x3).flatten(2).transpose(1, 2)
        return self.VIT_base(torch.cat([o1, o2, o3], dim=1))

    def forward(self, *xs):
        if len(xs) == 1:
            return self.base(xs[0])[0]
        base, x0 = zip(*[self.base(x) for x in xs])
        N = self.N
        parts = [torch.split(x, [N, N, N], dim=1) for x in x0]
        attn = [[] for _ in xs]
        self.trace = {"maps": [], "k": []}
        for s in range(3):
            outs, maps, k = getattr(self, "cross_attention_%d" % (s + 1))(*[p[s] for p in parts])
            for i, o in enumerate(outs):
                attn[i].append(o)
            self.trace["maps"].append(maps)
            self.trace["k"].append(k)
        attn_o = [torch.cat(a, dim=1) for a in attn]
        z = [x0[i] + attn_o[i] for i in range(len(xs))]
        if self.cfg["fusion"] == "head":
            cross = [self.fusion(z[i], attn_o[i]) for i in range(len(xs))]
        else:
            cross = [self.VIT_cross(zi)[0] for zi in z]
        return list(base), cross


def old_names(sd):
    out = {}
    for k, v in sd.items():
        for new, old in (("embed_1.", "embed_q."), ("embed_2.", "embed_k."), ("embed_3.", "embed_v.")):
            if k.startswith(new):
                k = old + k[len(new):]
        out[k] = v
    return out


class RecorderMeter_loss(object):
    """Stands in for main_QCS_*.py's pickled recorder (a __main__ class
    holding numpy arrays) inside the training checkpoint."""

    def __init__(self, total_epoch):
        self.total_epoch = total_epoch
        self.current_epoch = 0
        self.epoch_losses = np.zeros((total_epoch, 4), dtype=np.float32)


class RecorderMeter_matrix(object):
    def __init__(self, total_epoch):
        self.total_epoch = total_epoch
        self.epoch_accuracy = np.zeros((total_epoch, 2), dtype=np.float32)
        self.y_pred = np.arange(6)


def save_weights(m, path, form):
    sd = m.state_dict()
    if form == "bare_old":
        torch.save(old_names(sd), path)
    elif form == "bare_new":
        torch.save(sd, path)
    elif form == "nested_new_module":
        torch.save({"epoch": 3, "state_dict": {"module." + k: v for k, v in sd.items()}}, path)
    elif form == "training_old_module":
        # what main_*.py's save_checkpoint writes: the DataParallel
        # state_dict, best_acc as a tensor, the SAM(Adam) state after a step,
        # and the recorder objects
        twin = copy.deepcopy(m)
        opt = torch.optim.Adam(twin.parameters(), lr=1e-5)
        twin.train()
        x = torch.randn(2, 3, 32, 32)
        twin.base(x)[0].sum().backward()
        opt.step()
        osd = opt.state_dict()
        for g in osd["param_groups"]:
            g["rho"], g["adaptive"] = 0.05, False
        torch.save({"epoch": 7, "state_dict": {"module." + k: v for k, v in old_names(sd).items()},
                    "best_acc": torch.tensor(64.4), "optimizer": osd,
                    "recorder_m": RecorderMeter_matrix(7), "recorder": RecorderMeter_loss(7)}, path)
    else:
        raise ValueError(form)


CROSS_PARAMS = ("norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias", "proj.weight", "proj.bias",
                "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias", "theta")
OTHER_GRADS = ("ir_back.input_layer.0.weight", "embed_1.0.weight", "embed_3.proj.bias", "VIT_base.pos_embed",
               "VIT_base.blocks.0.attn.qkv.weight", "VIT_base.head.linear.weight", "VIT_cross.cls_token",
               "VIT_cross.head.linear.weight", "fusion.classifier.bias")

DEFAULT = dict(variant="qcs", classes=7, csa="SD", dim=768, heads=8, resize=112, base_drop=0.0, cross_drop=0.0,
               proj_drop=False, pre_norm=False, fusion="", units=(3, 4, 14))
SMALL = dict(dim=64, resize=64, units=(1, 2, 2))
CASES = {
    # QCS_7cls_raf_db.py exactly (224-pixel inputs, batch 2). To keep the
    # test suite's CPU time down only the gradients of the cross branch
    # (and of VIT_base) are computed here: autograd.grad stops before the
    # backbone. Also writes ir50 in face.evoLVe's layout from its ir_back.
    "qcs_rafdb": dict(cfg={}, batch=2, img=224, seed=11, form="bare_old", full_backward=False),
    # reduced width and backbone; distance-only CSA, fusion head, FERPlus dropout
    "qcs_small": dict(cfg=dict(SMALL, classes=8, csa="D", cross_drop=0.2, proj_drop=True, fusion="head"),
                      batch=3, img=72, seed=21, form="nested_new_module"),
    # DCS_8cls_affectnet.py's settings, reduced
    "dcs_affectnet8": dict(cfg=dict(SMALL, variant="dcs", classes=8, base_drop=0.2, cross_drop=0.5,
                                    proj_drop=True, pre_norm=True, fusion="unused"),
                           batch=3, img=64, seed=31, form="training_old_module"),
    # DCS_7cls_raf_db.py's settings, reduced
    "dcs_rafdb": dict(cfg=dict(SMALL, variant="dcs", cross_drop=0.2), batch=2, img=64, seed=41, form="bare_new"),
}


def make_case(name, out):
    case = CASES[name]
    cfg = dict(DEFAULT, **case["cfg"])
    seed = case["seed"]
    torch.manual_seed(seed)
    m = QCSNet(cfg)
    save_weights(m, os.path.join(out, name + ".pth"), case["form"])
    if name == "qcs_rafdb":
        save_ir50_evolve(m.ir_back, os.path.join(out, "ir50_evolve_layout.pth"))
    nb = 4 if cfg["variant"] == "qcs" else 2
    B, S = case["batch"], case["img"]
    torch.manual_seed(seed + 1)
    xs = [torch.randn(B, 3, S, S) for _ in range(nb)]
    y = torch.randint(0, cfg["classes"], (B,))
    y2 = (y + torch.randint(1, cfg["classes"], (B,))) % cfg["classes"]
    io = {"label": y, "label_neg": y2}
    for i, x in enumerate(xs):
        io["input%d" % i] = x
    m.eval()
    with torch.no_grad():
        io["eval.logits"] = m(xs[0])
    m.train()
    torch.manual_seed(seed + 2)  # dropout masks
    base, cross = m(*xs)
    ce = nn.CrossEntropyLoss()
    terms = [ce(base[i], y if i < 2 else y2) for i in range(nb)] + [ce(cross[i], y if i < 2 else y2) for i in range(nb)]
    loss = terms[0]
    for t in terms[1:]:
        loss = loss + t
    loss = loss / len(terms)
    params = dict(m.named_parameters())
    if case.get("full_backward", True):
        loss.backward()
        grads = {k: p.grad for k, p in params.items()}
    else:
        keys = [k for k in params if k.startswith(("cross_attention_", "VIT_cross.", "VIT_base."))
                and not any(u in k for u in QCSNet.UNUSED)]
        gs = torch.autograd.grad(loss, [params[k] for k in keys])
        grads = dict(zip(keys, gs))
    io["train.loss"] = loss.detach()
    for i in range(nb):
        io["train.base%d" % i] = base[i].detach()
        io["train.cross%d" % i] = cross[i].detach()
    for s in range(3):
        for i in range(nb):
            io["train.map%d.%d" % (s, i)] = m.trace["maps"][s][i].detach()
        if m.trace["k"][s] is not None:
            io["train.k%d" % s] = m.trace["k"][s].detach()
    for s in range(3):
        for p in CROSS_PARAMS:
            key = "cross_attention_%d.%s" % (s + 1, p)
            if key in params:
                io["grad." + key] = grads[key]
    for key in OTHER_GRADS:
        if grads.get(key) is not None:
            io["grad." + key] = grads[key]
    io["train.running_mean"] = m.ir_back.input_layer[1].running_mean
    io["train.running_var"] = m.ir_back.input_layer[1].running_var
    torch.save(io, os.path.join(out, name + "_io.pt"))
    return {"cfg": cfg, "seed": seed, "batch": B, "img": S, "form": case["form"],
            "units": list(cfg["units"]), "full_backward": case.get("full_backward", True),
            "params_used": m.used_params(), "params_total": sum(p.numel() for p in m.parameters()),
            "loss": loss.item()}


def make_csa(out):
    torch.manual_seed(5)
    B, N, C = 3, 49, 768
    io = {}
    qk = [torch.randn(B, N, C, requires_grad=True) for _ in range(4)]
    theta = torch.tensor(0.3, requires_grad=True)
    w = [torch.randn(B, N) for _ in range(4)]
    for i in range(4):
        io["qk%d" % i] = qk[i].detach()
        io["w%d" % i] = w[i]
    io["theta"] = theta.detach()
    for name, use_s, use_d in (("SD", True, True), ("S", True, False), ("D", False, True)):
        for t in qk + [theta]:
            t.grad = None
        maps = attn_qcs(*qk, torch.tanh(theta), use_s=use_s, use_d=use_d)
        sum(((mp * wi).sum() for mp, wi in zip(maps, w))).backward()
        for i in range(4):
            io["%s.map%d" % (name, i)] = maps[i].detach()
            io["%s.grad%d" % (name, i)] = qk[i].grad.clone()
        if name == "SD":
            io["SD.grad_theta"] = theta.grad.clone()
    for t in qk:
        t.grad = None
    m1, m2 = attn_dcs_s(qk[0], qk[1])
    ((m1 * w[0]).sum() + (m2 * w[1]).sum()).backward()
    io["DCS.map0"], io["DCS.map1"] = m1.detach(), m2.detach()
    io["DCS.grad0"], io["DCS.grad1"] = qk[0].grad.clone(), qk[1].grad.clone()
    torch.save(io, os.path.join(out, "csa_io.pt"))
    return {"seed": 5}


def save_ir50_evolve(bb, path):
    """The backbone as face.evoLVe's IR_50 checkpoint names it (body.0..23,
    stage 4 included, + output_layer) in the legacy torch.save format of its
    2019 releases. Its stage 4 draws random numbers: call it before
    reseeding."""
    evolve, offset = {}, {"body1": 0, "body2": 3, "body3": 7}
    for k, v in bb.state_dict().items():
        head, _, rest = k.partition(".")
        if head in offset:
            u, _, tail = rest.partition(".")
            k = "body.%d.%s" % (offset[head] + int(u), tail)
        evolve[k] = v
    stage4 = [BottleneckIR(256, 512, 2), BottleneckIR(512, 512, 1), BottleneckIR(512, 512, 1)]
    for u, unit in enumerate(stage4):
        for k, v in unit.state_dict().items():
            evolve["body.%d.%s" % (21 + u, k)] = v
    torch.save(evolve, path, _use_new_zipfile_serialization=False)


# Reduced-size stand-ins for the files the public code releases, for the
# CLI tests of cmd/fercli (`qcs_reference.py --published OUTDIR IMAGE...`):
# QCS_7cls_raf_db.py's model at width 32, 32-pixel backbone input and one IR
# unit per stage, saved as main_QCS_raf_db.py's save_checkpoint writes it
# (QCS_RAF-DB.pth), an IR-50 of the same reduced shape as ir50.py's
# Backbone names it, in the legacy torch.save format (ir50.pth), and the
# class probabilities QCS_RAF-DB.pth gives each IMAGE through the RAF-DB
# test transforms of main_QCS_raf_db.py (published.json).
PUBLISHED = dict(dim=32, resize=32, units=(1, 1, 1))


def make_published(out, images):
    import torchvision.transforms as T
    from PIL import Image

    os.makedirs(out, exist_ok=True)
    cfg = dict(DEFAULT, **PUBLISHED)
    torch.manual_seed(51)
    m = QCSNet(cfg)
    save_weights(m, os.path.join(out, "QCS_RAF-DB.pth"), "training_old_module")
    torch.manual_seed(52)
    bb = Backbone(cfg["resize"], cfg["units"])
    torch.save(bb.state_dict(), os.path.join(out, "ir50.pth"), _use_new_zipfile_serialization=False)
    test = T.Compose([T.Resize((224, 224)), T.ToTensor(),
                      T.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])])
    probs = {}
    m.eval()
    with torch.no_grad():
        for path in images:
            with open(path, "rb") as f:
                x = test(Image.open(f).convert("RGB")).unsqueeze(0)
            probs[path] = F.softmax(m(x), dim=1)[0].tolist()
    meta = {"cfg": {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()},
            "ir50_input_layer_weight_sum": bb.input_layer[0].weight.sum().item(),
            "probs": probs, "torch": torch.__version__}
    with open(os.path.join(out, "published.json"), "w") as f:
        json.dump(meta, f, indent=1)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    if sys.argv[1] == "--published":
        if len(sys.argv) < 3:
            sys.exit(__doc__)
        make_published(sys.argv[2], sys.argv[3:])
        return
    out = sys.argv[1]
    names = sys.argv[2:] or list(CASES) + ["csa"]
    os.makedirs(out, exist_ok=True)
    meta = {"torch": torch.__version__}
    for name in names:
        if name == "csa":
            meta[name] = make_csa(out)
        elif name in CASES:
            meta[name] = make_case(name, out)
        else:
            sys.exit("unknown case %r; known: %s" % (name, ", ".join(list(CASES) + ["csa"])))
    with open(os.path.join(out, "qcs_meta.json"), "w") as f:
        json.dump(meta, f, indent=1)


if __name__ == "__main__":
    main()
