# Learning rates of torch.optim.lr_scheduler stepped once per epoch, for
# config_test.go's TestSchedulesMatchTorch. Usage: /usr/bin/python3 schedules.py
import torch

def lrs(base, make, n=8):
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=base)
    s = make(opt)
    out = []
    for _ in range(n):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        s.step()
    return out

print("step", lrs(0.1, lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.1)))
print("exponential", lrs(3e-6, lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.98)))
print("cosine", lrs(0.1, lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=8, eta_min=0.001)))
