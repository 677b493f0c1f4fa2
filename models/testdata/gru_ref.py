"""PyTorch reference for fer's GRU (models/gru.go) and its initialisation.

usage: gru_ref.py OUT.pt
Writes one torch.save dict:
  init.<name>   nn.GRU(5, 7, num_layers=2, batch_first=True) right after
                torch.manual_seed(7): PyTorch's initial weights
  gru.<name>    random weights (seed 11) the forward test loads
  x             input [3, 4, 5] (batch_first)
  y             nn.GRU output [3, 4, 7] with those weights, eval mode
  y_seq1        output for x[:, :1] (a one-step sequence)
"""
import sys

import torch
import torch.nn as nn


def main(out):
    torch.manual_seed(7)
    init = nn.GRU(5, 7, num_layers=2, batch_first=True)
    d = {"init." + k: v.detach().clone() for k, v in init.state_dict().items()}
    torch.manual_seed(11)
    gru = nn.GRU(5, 7, num_layers=2, batch_first=True)
    with torch.no_grad():
        for p in gru.parameters():
            p.uniform_(-0.8, 0.8)
    gru.eval()
    x = torch.randn(3, 4, 5)
    with torch.no_grad():
        y, _ = gru(x)
        y1, _ = gru(x[:, :1].contiguous())
    d.update({"gru." + k: v.detach().clone() for k, v in gru.state_dict().items()})
    d.update({"x": x, "y": y, "y_seq1": y1})
    torch.save(d, out)


if __name__ == "__main__":
    main(sys.argv[1])
