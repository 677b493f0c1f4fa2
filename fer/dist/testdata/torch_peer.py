"""One rank of a Gloo process group, in PyTorch, for fer's interoperability
test: joins with init_process_group("gloo", init_method="env://") (RANK,
WORLD_SIZE, MASTER_ADDR, MASTER_PORT from the environment), runs the same
collectives as fer's `torch_peer` test role and prints their results as
JSON. The fer rank(s) of the group run the same sequence."""
import json
import sys
from datetime import timedelta

import torch
import torch.distributed as dist


def main():
    dist.init_process_group("gloo", timeout=timedelta(seconds=60))
    r, w = dist.get_rank(), dist.get_world_size()
    x = torch.tensor([float(r + 1), 2.0 * (r + 1)])
    dist.all_reduce(x)  # sum
    m = torch.tensor([float(r)], dtype=torch.float64)
    dist.all_reduce(m, op=dist.ReduceOp.MAX)
    b = torch.full((3,), float(10 + r))
    dist.broadcast(b, src=w - 1)
    dist.barrier()
    print(json.dumps({"rank": r, "world": w, "sum": x.tolist(), "max": m.tolist(), "bcast": b.tolist()}))
    sys.stdout.flush()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
