"""Prints torch.utils.data.DistributedSampler's indices (shuffle=False,
drop_last=False) for every (n, world, rank) given on the command line as
n:world, one JSON object per line, for fer's ShardOrder test."""
import json
import sys

from torch.utils.data import DistributedSampler


def main():
    for spec in sys.argv[1:]:
        n, world = map(int, spec.split(":"))
        shards = [list(DistributedSampler(range(n), num_replicas=world, rank=r, shuffle=False)) for r in range(world)]
        print(json.dumps({"n": n, "world": world, "shards": shards}))


if __name__ == "__main__":
    main()
