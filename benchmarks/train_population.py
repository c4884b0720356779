"""Population engine vs a plain per-run PyTorch loop, side by side in one process.

Prints model-steps per second (runs x steps / s) for both, their ratio, and the engine's achieved
matmul FLOP/s as a fraction of this machine's measured float32 matmul throughput (1 thread).

    python benchmarks/train_population.py [--runs 32] [--steps 200]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from pathdep.spec import parse_spec, build_process
from pathdep.train import fresh_state, train_population
from pathdep.train.streams import DataOrder

CONFIGS = {
    # name: (task, task_args, hidden, activations, batch)
    "demo (11-1-32-1, batch 64)": ("two_features", {}, [1, 32], ["identity", "relu"], 64),
    "width 32 (11-32-32-1, batch 64)": ("two_features", {}, [32, 32], None, 64),
    "wide (64-512-512-10 digits, batch 256)": ("digits", {}, [512, 512], None, 256),
}


def matmul_peak(n: int = 1024, reps: int = 20) -> float:
    """Measured float32 matmul FLOP/s on one thread."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t)


def spec_for(task, task_args, hidden, acts, batch, steps):
    return parse_spec({"name": "bench", "process": {
        "task": task, "task_args": task_args, "model": "mlp", "steps": steps, "batch_size": batch,
        "model_args": {"hidden": hidden, "activations": acts}, "optimizer": {"name": "adam", "lr": 1e-3}}})


def engine(spec, runs):
    task, model = build_process(spec.process)
    start = [fresh_state(model, i) for i in range(runs)]
    t = time.perf_counter()
    train_population(task, model, spec.process, list(range(runs)), start, lambda s, st: None)
    return time.perf_counter() - t


def sequential(spec, runs):
    """The naive way: one nn.Module and one torch.optim.Adam per run, trained one after another."""
    task, model = build_process(spec.process)
    widths = model.widths
    t = time.perf_counter()
    for r in range(runs):
        layers = []
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(widths) - 2:
                layers.append(nn.ReLU())
        net = nn.Sequential(nn.Flatten(), *layers)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        order = DataOrder(len(task.train), spec.process.batch_size, [r])
        for step in range(spec.process.steps):
            idx = order.indices(step)[0]
            logits = net(task.train.x[idx])
            loss = task.loss(logits.unsqueeze(0), task.train.y[idx].unsqueeze(0)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return time.perf_counter() - t


def flops_per_step(widths, batch):
    """Matmul FLOPs of one training step of one run (forward + two backward matmuls)."""
    return 6 * batch * sum(a * b for a, b in zip(widths[:-1], widths[1:]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=32)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    peak = matmul_peak()
    print(f"float32 matmul peak ({args.threads} thread): {peak / 1e9:.1f} GFLOP/s; {args.runs} runs x {args.steps} steps")
    print(f"{'config':42s} {'engine':>14s} {'loop':>14s} {'ratio':>7s} {'GFLOP/s':>8s} {'% peak':>7s}")
    for name, (task, targs, hidden, acts, batch) in CONFIGS.items():
        spec = spec_for(task, targs, hidden, acts, batch, args.steps)
        _, model = build_process(spec.process)
        engine(spec_for(task, targs, hidden, acts, batch, 5), 2)  # warm-up
        te, tl = engine(spec, args.runs), sequential(spec, args.runs)
        work = args.runs * args.steps
        achieved = flops_per_step(model.widths, batch) * work / te
        print(f"{name:42s} {work / te:10.0f} st/s {work / tl:10.0f} st/s {tl / te:6.1f}x "
              f"{achieved / 1e9:8.2f} {100 * achieved / peak:6.1f}%")


if __name__ == "__main__":
    main()
