# Reference updates from torch.optim (PyTorch 1.13, Debian's /usr/bin/python3)
# for optim_test.go. Usage: /usr/bin/python3 torch_ref.py > torch_ref.json
# The problem is a 4->3 linear least-squares fit with data given by small
# integer formulas, so Go builds exactly the same float32 tensors.
import json
import torch

STEPS = 5


def data():
    x = [[((i * 7 + j * 3) % 11 - 5) / 4.0 for j in range(4)] for i in range(5)]
    y = [[((i * 2 + j * 5) % 9 - 4) / 3.0 for j in range(3)] for i in range(5)]
    w = [[((i * 5 + j * 2) % 7 - 3) / 10.0 for j in range(4)] for i in range(3)]
    b = [((i * 3) % 5 - 2) / 10.0 for i in range(3)]
    t = lambda v: torch.tensor(v, dtype=torch.float32)
    return t(x), t(y), t(w), t(b)


def linear():
    x, y, w, b = data()
    return w, b, lambda: ((x @ w.t() + b - y) ** 2).mean()


# The "wide" problem: a 29x37 weight and a 29 bias (1,102 values, so the
# updates run through the vectorised kernels and their tails), with an
# elementwise loss whose gradient needs no BLAS: sum(S * (w - T)^2) +
# sum((b - Tb)^2).
def wide():
    f = lambda r, c, g: torch.tensor([[g(i, j) for j in range(c)] for i in range(r)], dtype=torch.float32)
    s = f(29, 37, lambda i, j: ((i + 2 * j) % 5 + 1) / 4.0)
    t = f(29, 37, lambda i, j: ((i * 5 + j * 3) % 13 - 6) / 8.0)
    w = f(29, 37, lambda i, j: ((i * 3 + j * 7) % 9 - 4) / 16.0)
    tb = f(1, 29, lambda _, j: ((j * 5) % 11 - 5) / 8.0).view(29)
    b = f(1, 29, lambda _, j: ((j * 3) % 7 - 3) / 8.0).view(29)
    return w, b, lambda: (s * (w - t) ** 2).sum() + ((b - tb) ** 2).sum()


def run(name, make_opt, clip=0.0, sam_rho=0.0, problem=linear, steps=STEPS):
    w, b, loss_fn = problem()
    w.requires_grad_(True)
    b.requires_grad_(True)
    opt = make_opt([w, b])
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn()
        losses.append(loss.item())
        loss.backward()
        if sam_rho > 0:
            # sam.py (davda54) first_step / second_step, non-adaptive
            with torch.no_grad():
                norm = torch.norm(torch.stack([p.grad.norm(p=2) for p in [w, b]]), p=2)
                scale = sam_rho / (norm + 1e-12)
                old = [w.clone(), b.clone()]
                for p in [w, b]:
                    p.add_(p.grad * scale)
            opt.zero_grad()
            loss_fn().backward()
            with torch.no_grad():
                w.copy_(old[0])
                b.copy_(old[1])
        if clip > 0:
            torch.nn.utils.clip_grad_norm_([w, b], clip)
        opt.step()
    return {"name": name, "problem": problem.__name__, "losses": losses,
            "w": w.detach().flatten().tolist(), "b": b.detach().tolist()}


cases = [
    run("sgd", lambda p: torch.optim.SGD(p, lr=0.1)),
    run("sgd_momentum_wd", lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=1e-2)),
    run("sgd_nesterov_dampening", lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.8, nesterov=True)),
    run("sgd_dampening", lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, dampening=0.3)),
    run("adam", lambda p: torch.optim.Adam(p, lr=0.01)),
    run("adam_wd", lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    run("adamw", lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.05)),
    run("sgd_clip", lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9), clip=0.5),
    run("adam_sam", lambda p: torch.optim.Adam(p, lr=0.01), sam_rho=0.05),
    run("wide_adam", lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=0.01), problem=wide, steps=8),
    run("wide_adamw", lambda p: torch.optim.AdamW(p, lr=0.01, betas=(0.8, 0.99), weight_decay=0.05), problem=wide, steps=8),
    run("wide_sgd", lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9, nesterov=True, weight_decay=1e-3), problem=wide, steps=8),
    run("wide_sgd_dampening", lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9, dampening=0.1), problem=wide, steps=8),
]
print(json.dumps({"torch": torch.__version__, "steps": STEPS, "cases": cases}, indent=1))
