"""Optimizers on stacked parameters, and their per-run state.

Adam, AdamW and SGD are elementwise, so torch.optim applied to a stacked (R, ...) tensor is exactly
R independent optimizers with torch.optim's semantics. Only the learning-rate schedule is shared by
the population (all runs of one population share their process).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from pathdep.spec import OptimizerSpec, ProcessSpec


def make_optimizer(spec: OptimizerSpec, params: list[Tensor]) -> torch.optim.Optimizer:
    kw = dict(lr=spec.lr, weight_decay=spec.weight_decay, foreach=False)  # fused kernels break packing invariance
    if spec.name == "sgd":
        return torch.optim.SGD(params, momentum=spec.momentum, **kw)
    cls = torch.optim.Adam if spec.name == "adam" else torch.optim.AdamW
    return cls(params, betas=spec.betas, eps=spec.eps, **kw)


def lr_at(process: ProcessSpec, step: int) -> float:
    """Learning rate used for the update at ``step`` (linear warmup, then constant or cosine)."""
    lr, warm = process.optimizer.lr, process.warmup_steps
    if step < warm:
        return lr * (step + 1) / warm
    if process.schedule == "cosine":
        t = (step - warm) / max(process.steps - warm, 1)
        return lr * 0.5 * (1 + math.cos(math.pi * t))
    return lr


def export_state(opt: torch.optim.Optimizer, names: list[str], run: int) -> dict[str, Tensor]:
    """Run ``run``'s slice of the optimizer state: {"<state>/<param>": tensor}."""
    out: dict[str, Tensor] = {}
    for name, p in zip(names, opt.param_groups[0]["params"]):
        for key, value in opt.state.get(p, {}).items():
            if isinstance(value, Tensor):
                out[f"{key}/{name}"] = value[run].clone() if value.dim() > 0 else value.clone()
    return out


def import_state(opt: torch.optim.Optimizer, names: list[str], per_run: list[dict[str, Tensor]]) -> None:
    """Load per-run optimizer states (as exported) into a population optimizer."""
    if not per_run[0]:
        return
    for name, p in zip(names, opt.param_groups[0]["params"]):
        keys = [k.split("/", 1)[0] for k in per_run[0] if k.split("/", 1)[1] == name]
        state = {}
        for key in keys:
            vals = [s[f"{key}/{name}"] for s in per_run]
            if vals[0].dim() == 0:  # shared scalar (Adam's step count)
                if any(not torch.equal(v, vals[0]) for v in vals):
                    raise ValueError(f"runs of one population disagree on optimizer {key!r}")
                state[key] = vals[0].clone()
            else:
                state[key] = torch.stack(vals)
        opt.state[p] = state
