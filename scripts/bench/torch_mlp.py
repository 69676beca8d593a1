# SPDX-License-Identifier: BSD-3-Clause
"""PyTorch CPU training throughput of an nsplit model, for scripts/bench/compute.sh.

usage: torch_mlp.py [--model mlp:784-512-256-10] [--batch 64] [--threads 1] [--steps S]
                    [--warmup 20] [--data DIR] [--lr 0.02] [--momentum 0.9] [--seed 1]

The same model (scripts/torch_model.py), batch, thread count and data as nsplit: Fashion-MNIST
in memory as x/255, a seeded shuffle per epoch, SGD with momentum, softmax cross-entropy. S
defaults to one epoch (60000 // batch steps). Only the training loop after `warmup` untimed
steps is timed; gathering each batch is inside it, as it is for nsplit. Prints one JSON line.
"""

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import torch_model as tm  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="mlp:784-512-256-10")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=0)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--lr", type=float, default=0.02)
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    import torch
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model, in_shape = tm.build(args.model)
    model.train()
    x_np, y_np = tm.load_fashion_mnist(args.data, "train", in_shape)
    x_all, y_all = torch.from_numpy(x_np), torch.from_numpy(y_np)
    n = len(y_np)
    per_epoch = n // args.batch
    steps = args.steps or per_epoch
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
    rng = np.random.default_rng(args.seed)
    order = None
    cursor = per_epoch
    loss_first = loss_last = None
    t0 = None

    for step in range(args.warmup + steps):
        if step == args.warmup:
            t0 = time.perf_counter()
        if cursor == per_epoch:
            order = torch.from_numpy(rng.permutation(n))
            cursor = 0
        idx = order[cursor * args.batch:(cursor + 1) * args.batch]
        cursor += 1
        xb, yb = x_all[idx], y_all[idx]
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
        if step == args.warmup:
            loss_first = loss.item()
    loss_last = loss.item()
    wall = time.perf_counter() - t0

    print(json.dumps({
        "bench": "torch", "model": args.model, "batch": args.batch, "threads": args.threads,
        "steps": steps, "warmup": args.warmup, "wall_s": round(wall, 4),
        "samples_per_s": round(steps * args.batch / wall, 1),
        "loss_first": round(loss_first, 4), "loss_last": round(loss_last, 4),
        "torch": torch.__version__,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
