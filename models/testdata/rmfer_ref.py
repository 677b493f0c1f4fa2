#!/usr/bin/env python3
"""PyTorch reference for the RMFER tests in fer/models (rmfer_test.go).

usage: /usr/bin/python3 rmfer_ref.py OUTDIR

RMFERNet below is the public code's model (yunseongcho/RMFER,
models/efficientnet.py, class EfficientNet) written out with its parameter
names: the backbone is nn.Sequential(*list(timm_model.children())[:-1]) as
the repository's notebook builds it with the authors' timm version
(conv_stem, bn1, act1, blocks, conv_head, bn2, act2, global_pool), the
projection head nn.Sequential(Linear, ReLU, Linear), classifier_main and
classifier_att Linears. get_cos_sim_mat, self_masking_matrix, get_att_mat
and forward follow the code op for op; the ACL functions follow the sketch
in models/model.py (get_positive / get_negative with torch.quantile, and
contrastive_loss). The EfficientNet-B2 itself is make_fixtures.py's
TFEfficientNet (timm tf_efficientnet_b2 layout).

Files written to OUTDIR:
  rmfer.pth            state_dict of RMFERNet(7 classes), seed 2024
  rmfer_ial.pt         IAL head on given features f (three masking variants):
                       outputs, loss and gradients
  rmfer_io.pt          the whole model on 64x64 images: eval and train outputs,
                       loss, gradients, BatchNorm running statistics
  rmfer_acl.pt         ACL on one anchor with 10+10 candidates: the sketch's
                       selection masks, loss, gradients, running statistics
  rmfer_lightning.ckpt the model as a Lightning checkpoint (model.* keys)
  enet_Best_overall/   save_model's four whole pickled modules
  enet_b2_8.pt         an HSEmotion-style whole pickled timm model (8 classes,
                       alphabetical), classifier set so input i scores class i
  enet_b2_8_io.pt      its inputs and eval logits
  enet_b2_backbone_8emo.pth, enet_b2_classifier_8emo.pth
                       the RMFER notebook's split of it
"""
import copy
import os
import sys
import types

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import TFEfficientNet  # noqa: E402

torch.set_num_threads(1)


class SelectAdaptivePool2d(nn.Module):
    """timm's global pool with flatten (no parameters)."""

    def forward(self, x):
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)


def sequential_backbone(tf):
    """nn.Sequential(*list(model.children())[:-1]) of the authors' timm."""
    return nn.Sequential(tf.conv_stem, tf.bn1, nn.SiLU(inplace=True), tf.blocks,
                         tf.conv_head, tf.bn2, nn.SiLU(inplace=True), SelectAdaptivePool2d())


class RMFERNet(nn.Module):
    def __init__(self, emotions, self_masking=True, scale=1.0, replace=-10e6, thres_per=0.1):
        super().__init__()
        tf = TFEfficientNet(num_classes=emotions)
        self.backbone = sequential_backbone(tf)
        # the code loads the same classifier file into both heads
        self.classifier_att = copy.deepcopy(tf.classifier)
        self.classifier_main = copy.deepcopy(tf.classifier)
        self.projection_head = nn.Sequential(
            nn.Linear(in_features=1408, out_features=1408), nn.ReLU(),
            nn.Linear(in_features=1408, out_features=1408))
        self.self_masking = self_masking
        self.scale = scale
        self.replace = replace
        self.thres_per = thres_per

    def get_feature(self, x):
        return self.backbone(x)

    def get_cos_sim_mat(self, f, scale=None):
        if not scale:
            scale = self.scale
        z = self.projection_head(f)
        sim_mat = torch.matmul(z, z.T)
        norms = torch.norm(z, dim=1)
        norms = norms.view(1, -1)
        cos_sim_mat = sim_mat / torch.matmul(norms.T, norms)
        return cos_sim_mat / scale

    def self_masking_matrix(self, matrix):
        n = matrix.shape[0]
        idx = (torch.arange(n), torch.arange(n))  # np.diag_indices(n)
        matrix[idx[0], idx[1]] = (self.replace * torch.ones(n, dtype=matrix.dtype)).to(matrix.device).detach()
        return matrix

    def get_att_mat(self, matrix, self_masking):
        if self_masking:
            matrix = self.self_masking_matrix(matrix)
        return nn.Softmax(dim=1)(matrix)

    def heads(self, origin_feature):
        """forward() after get_feature, also returning z."""
        origin_output_tensor = self.classifier_main(origin_feature)
        cos_sim_mat = self.get_cos_sim_mat(origin_feature)
        att_mat = self.get_att_mat(cos_sim_mat, self.self_masking)
        attention_feature = torch.matmul(att_mat, origin_feature)
        attention_output_tensor = self.classifier_att(attention_feature)
        return origin_output_tensor, attention_output_tensor, att_mat

    def forward(self, x):
        origin_feature = self.get_feature(x)
        o, a, att = self.heads(origin_feature)
        return o, a, att, origin_feature

    # --- ACL sketch (models/model.py) ---
    def get_positive(self, anchor, samples):
        with torch.no_grad():
            images = torch.cat([anchor, samples])
            f = self.get_feature(images)
            S = self.get_cos_sim_mat(f)
            threshold = torch.quantile(S[0][1:], 1 - self.thres_per)
        return S[0][1:] > threshold

    def get_negative(self, anchor, samples):
        with torch.no_grad():
            images = torch.cat([anchor, samples])
            f = self.get_feature(images)
            S = self.get_cos_sim_mat(f)
            threshold = torch.quantile(S[0][1:], self.thres_per)
        return S[0][1:] < threshold

    def contrastive_loss(self, anchor, positives, negatives):
        images = torch.cat([anchor, positives, negatives])
        f = self.get_feature(images)
        S = self.get_cos_sim_mat(f)
        low = torch.exp(S[0][1:]).sum()
        up = torch.exp(S[0][1:1 + len(positives)]).sum()
        return -torch.log(up / low)


def randomize_bn(m, gen):
    """non-trivial running statistics, so eval mode is tested too"""
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.1, 0.1, generator=gen)
                mod.running_var.uniform_(0.5, 1.5, generator=gen)


def grads(m, names):
    ps = dict(m.named_parameters())
    return {"grad." + n: ps[n].grad.detach().clone() for n in names}


GRAD_NAMES = ["backbone.0.weight", "backbone.3.2.1.conv_dw.weight", "backbone.4.weight",
              "backbone.5.bias", "projection_head.0.weight", "projection_head.2.bias",
              "classifier_main.weight", "classifier_att.weight", "classifier_att.bias"]


def ial(out, model):
    """IAL head on leaf features, three masking variants."""
    torch.manual_seed(11)
    f0 = torch.randn(8, 1408) * 0.5 + 0.2
    labels = torch.tensor([0, 1, 2, 3, 4, 5, 6, 0])
    res = {"f": f0, "labels": labels}
    for name, mask, replace, scale in [("code", True, -10e6, 0.25), ("nomask", False, -10e6, 0.25),
                                       ("paper", True, 1e-6, 0.5)]:
        m = copy.deepcopy(model)
        m.self_masking, m.replace, m.scale = mask, replace, scale
        m.zero_grad()
        f = f0.clone().requires_grad_(True)
        o, a, att = m.heads(f)
        z = m.projection_head(f)
        loss = F.cross_entropy(o, labels) + 0.7 * F.cross_entropy(a, labels)
        loss.backward()
        res.update({name + ".logits": o.detach(), name + ".att_logits": a.detach(), name + ".attention": att.detach(),
                    name + ".z": z.detach(), name + ".loss": loss.detach(), name + ".grad.f": f.grad.detach()})
        names = ["projection_head.0.bias", "classifier_main.weight", "classifier_main.bias",
                 "classifier_att.weight", "classifier_att.bias"]
        if name == "code":  # the 1408x1408 ones once
            names += ["projection_head.0.weight", "projection_head.2.weight"]
        for n in names:
            res[name + ".grad." + n] = dict(m.named_parameters())[n].grad.detach().clone()
    torch.save(res, os.path.join(out, "rmfer_ial.pt"))


def end_to_end(out, sd):
    m = RMFERNet(7, scale=0.5)
    m.load_state_dict(sd)
    torch.manual_seed(12)
    x = torch.randn(6, 3, 64, 64)
    labels = torch.tensor([0, 3, 6, 2, 2, 5])
    res = {"input": x, "labels": labels}
    m.eval()
    with torch.no_grad():
        o, a, att, f = m(x)
        res.update({"eval.logits": o, "eval.att_logits": a, "eval.attention": att, "eval.features": f,
                    "eval.origin_only": m.classifier_main(m.get_feature(x))})
    m.train()
    o, a, att, f = m(x)
    loss = F.cross_entropy(o, labels) + 0.7 * F.cross_entropy(a, labels)
    loss.backward()
    res.update({"train.logits": o.detach(), "train.att_logits": a.detach(), "train.attention": att.detach(),
                "train.features": f.detach(), "train.loss": loss.detach(),
                "train.running_mean": m.backbone[1].running_mean.clone(),
                "train.running_var": m.backbone[5].running_var.clone()})
    res.update({"train." + k: v for k, v in grads(m, GRAD_NAMES).items()})
    torch.save(res, os.path.join(out, "rmfer_io.pt"))


def acl(out, sd):
    m = RMFERNet(7, scale=0.5, thres_per=0.2)
    m.load_state_dict(sd)
    m.train()
    torch.manual_seed(13)
    anchor = torch.randn(1, 3, 64, 64)
    pos = torch.randn(10, 3, 64, 64) + 0.3 * anchor
    neg = torch.randn(10, 3, 64, 64)
    pmask = m.get_positive(anchor, pos)
    nmask = m.get_negative(anchor, neg)
    loss = m.contrastive_loss(anchor, pos[pmask], neg[nmask])
    loss.backward()
    res = {"anchor": anchor, "positives": pos, "negatives": neg, "pos_mask": pmask.long(),
           "neg_mask": nmask.long(), "loss": loss.detach(),
           "running_mean": m.backbone[1].running_mean.clone(),
           "running_var": m.backbone[5].running_var.clone()}
    res.update(grads(m, ["backbone.0.weight", "backbone.4.weight", "projection_head.0.weight",
                         "projection_head.2.weight"]))
    torch.save(res, os.path.join(out, "rmfer_acl.pt"))


def public_checkpoints(out, model):
    sd = model.state_dict()
    torch.save({"epoch": 3, "global_step": 120, "pytorch-lightning_version": "2.1.0",
                "state_dict": {"model." + k: v for k, v in sd.items()}, "loops": {}},
               os.path.join(out, "rmfer_lightning.ckpt"))
    d = os.path.join(out, "enet_Best_overall")
    os.makedirs(d, exist_ok=True)
    # save_model: f"{model_name}_backbone_{epoch:04}.pth" with epoch "Best_overall"
    torch.save(model.backbone, os.path.join(d, "enet_backbone_Best_overall.pth"))
    torch.save(model.projection_head, os.path.join(d, "enet_projection_Best_overall.pth"))
    torch.save(model.classifier_main, os.path.join(d, "enet_classifier_main_Best_overall.pth"))
    torch.save(model.classifier_att, os.path.join(d, "enet_classifier_att_Best_overall.pth"))


def timm_classes():
    """Give the reference classes timm's module paths, so the pickle names
    what HSEmotion's enet_b2_8.pt names (timm.models.efficientnet.EfficientNet, ...)."""
    import make_fixtures as mf
    spec = {"timm.models.efficientnet": {"EfficientNet": mf.TFEfficientNet},
            "timm.models._efficientnet_blocks": {"DepthwiseSeparableConv": mf.DepthwiseSeparable,
                                                 "InvertedResidual": mf.InvertedResidual,
                                                 "SqueezeExcite": mf.SqueezeExcite},
            "timm.layers.conv2d_same": {"Conv2dSame": mf.Conv2dSame}}
    for modname, classes in spec.items():
        parts = modname.split(".")
        for i in range(1, len(parts) + 1):
            sys.modules.setdefault(".".join(parts[:i]), types.ModuleType(".".join(parts[:i])))
        mod = sys.modules[modname]
        for name, cls in classes.items():
            cls.__module__, cls.__qualname__, cls.__name__ = modname, name, name
            setattr(mod, name, cls)


def hsemotion(out):
    timm_classes()
    torch.manual_seed(2025)
    m = TFEfficientNet(num_classes=8)
    gen = torch.Generator().manual_seed(5)
    randomize_bn(m, gen)
    m.eval()
    torch.manual_seed(14)
    x = torch.randn(8, 3, 64, 64)
    with torch.no_grad():
        f = m.pooled(m.stage_outputs(x)).double()
        # classifier with logits 8*I: input i scores HSEmotion class i
        w = 8.0 * torch.linalg.solve(f @ f.T, f)
        m.classifier.weight.copy_(w.float())
        m.classifier.bias.zero_()
        logits = m(x)
    assert (logits.argmax(1) == torch.arange(8)).all(), logits
    torch.save(m, os.path.join(out, "enet_b2_8.pt"))
    torch.save({"input": x, "logits": logits}, os.path.join(out, "enet_b2_8_io.pt"))
    # the RMFER notebook's split
    torch.save(sequential_backbone(m), os.path.join(out, "enet_b2_backbone_8emo.pth"))
    torch.save(m.classifier, os.path.join(out, "enet_b2_classifier_8emo.pth"))


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(2024)
    model = RMFERNet(7)
    randomize_bn(model, torch.Generator().manual_seed(3))
    sd = copy.deepcopy(model.state_dict())
    torch.save(sd, os.path.join(out, "rmfer.pth"))
    ial(out, model)
    end_to_end(out, sd)
    acl(out, sd)
    public_checkpoints(out, model)
    hsemotion(out)


if __name__ == "__main__":
    main()
