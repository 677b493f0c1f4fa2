#!/usr/bin/python3
"""Reference for models.ScaledDotProductAttention's matmul path: the
sequence of timm's Attention.forward (q scaled by head_dim ** -0.5, then
q @ k^T, softmax over the keys, @ v), on seeded q, k, v [2, 3, 5, 4] and
v with a different last dimension [2, 3, 5, 6]. Writes one torch.save
dict to the path given: q, k, v, out, probs.

usage: /usr/bin/python3 attention_ref.py OUT.pt
"""
import sys

import torch


def attention(q, k, v):
    scale = q.shape[-1] ** -0.5
    attn = (q * scale) @ k.transpose(-2, -1)
    probs = attn.softmax(dim=-1)
    return probs @ v, probs


def main():
    torch.manual_seed(7)
    q = torch.randn(2, 3, 5, 4)
    k = torch.randn(2, 3, 5, 4)
    v = torch.randn(2, 3, 5, 6)
    out, probs = attention(q, k, v)
    torch.save({"q": q, "k": k, "v": v, "out": out, "probs": probs}, sys.argv[1])


if __name__ == "__main__":
    main()
