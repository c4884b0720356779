"""All-pairs 21-point loss/error barriers: one population vs a per-pair loop, side by side.

16 runs give 120 pairs; each pair is evaluated at 21 points of the line between its endpoints
on the train, test and probe splits. The population way builds every (pair, alpha) member and
evaluates them in cache-sized chunks (``pathdep.measure.connectivity.pair_barriers``); the loop
way is how it is usually written: for each pair, for each alpha, interpolate one model and
evaluate it. Both give the same barriers (checked).

    python benchmarks/barriers.py [--runs 16] [--n-alpha 21]
"""

from __future__ import annotations

import argparse
import time

import torch

from pathdep.measure.connectivity import all_pairs, alpha_grid, pair_barriers
from pathdep.models.mlp import MLP
from pathdep.tasks import TASKS
from pathdep.tasks.base import Split

CONFIGS = {
    # name: (task, model widths, activations, examples per split (None: the whole split))
    "demo 11-1-32-1, 128 ex/split": ("two_features", (1, 32), ("identity", "relu"), 128),
    "demo 11-1-32-1, full splits": ("two_features", (1, 32), ("identity", "relu"), None),
    "digits 64-32-32-10, 128 ex/split": ("digits", (32, 32), None, 128),
    "digits 64-32-32-10, full splits": ("digits", (32, 32), None, None),
}


def trained(task, model, runs: int, steps: int = 200):
    """A population trained full-batch with Adam, so the barriers are those of real solutions."""
    params = {k: v.clone().requires_grad_(True) for k, v in model.init_population(list(range(runs))).items()}
    opt = torch.optim.Adam(params.values(), lr=0.01)
    x = task.train.x.unsqueeze(0).expand(runs, *task.train.x.shape)
    y = task.train.y.unsqueeze(0).expand(runs, -1)
    for _ in range(steps):
        opt.zero_grad()
        task.train_loss(model, params, x, y).sum().backward()
        opt.step()
    return {k: v.detach() for k, v in params.items()}


def population(task, model, params, pairs, splits, n_alpha):
    a = {k: v[pairs[:, 0]] for k, v in params.items()}
    b = {k: v[pairs[:, 1]] for k, v in params.items()}
    return {name: pair_barriers(task, model, a, b, split, n_alpha)["loss_barrier"] for name, split in splits.items()}


@torch.no_grad()
def loop(task, model, params, pairs, splits, n_alpha):
    alphas = alpha_grid(n_alpha).tolist()
    out = {}
    for name, split in splits.items():
        x, y = split.x.unsqueeze(0), split.y.unsqueeze(0)
        bars = []
        for i, j in pairs.tolist():
            losses = []
            for alpha in alphas:
                theta = {k: ((1 - alpha) * v[i] + alpha * v[j]).unsqueeze(0) for k, v in params.items()}
                logits = model.apply(theta, x)
                losses.append(task.loss(logits, y).mean().item())
                (task.predict(logits) == y.long()).float().mean().item()  # the error, as the population computes it
            line = [(1 - a) * losses[0] + a * losses[-1] for a in alphas]
            bars.append(max(l - m for l, m in zip(losses, line)))
        out[name] = torch.tensor(bars, dtype=torch.float64)
    return out


def best_of(fn, reps: int = 3) -> tuple[float, object]:
    times, res = [], None
    for _ in range(reps):
        t = time.perf_counter()
        res = fn()
        times.append(time.perf_counter() - t)
    return min(times), res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=16)
    ap.add_argument("--n-alpha", type=int, default=21)
    args = ap.parse_args()
    torch.set_num_threads(1)
    pairs = all_pairs(args.runs)
    print(f"{args.runs} runs, {len(pairs)} pairs, {args.n_alpha} points, splits train+test+probes; best of 3, 1 thread")
    print(f"{'config':34s} {'population s':>13s} {'per-pair loop s':>16s} {'ratio':>7s} {'max |diff|':>11s}")
    trained_cache = {}
    for name, (task_name, hidden, acts, n_ex) in CONFIGS.items():
        task = TASKS[task_name].build(TASKS[task_name].args())
        model = MLP(d_in=task.train.x[0].numel(), hidden=hidden, d_out=task.n_outputs, activations=acts)
        if model not in trained_cache:
            trained_cache[model] = trained(task, model, args.runs)
        params = trained_cache[model]
        splits = {"train": task.train, "test": task.test, **task.probes}
        splits = {k: Split(v.x[:n_ex], v.y[:n_ex]) for k, v in splits.items()}
        t_pop, got = best_of(lambda: population(task, model, params, pairs, splits, args.n_alpha))
        t_loop, ref = best_of(lambda: loop(task, model, params, pairs, splits, args.n_alpha), reps=1)
        diff = max((got[s] - ref[s]).abs().max().item() for s in splits)
        print(f"{name:34s} {t_pop:13.3f} {t_loop:16.3f} {t_loop / t_pop:6.1f}x {diff:11.1e}")


if __name__ == "__main__":
    main()
