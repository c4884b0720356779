"""Static measures of checkpoints: norms, distance from init, effective rank, sharpness.

All are computed for a whole population at once (run axis first), each returning (R,):

- ``weight_norm``: L2 norm of all parameters together;
- ``dist_from_init``: L2 norm of ``theta - theta_init`` (the run's step-0 checkpoint);
- ``effective_rank/<param>``: for every parameter that is a matrix (or more; flattened after its
  first axis), ``exp(H(p))`` with ``p_i = sigma_i / sum(sigma)`` its normalised singular values
  (Roy & Vetterli, 2007). Between 1 and min(shape);
- ``sharpness``: the trace of the Hessian of the training loss, estimated with Hutchinson's
  method ``E_v[v^T H v]`` over Rademacher vectors ``v`` on the first ``n_examples`` training
  examples. Each member draws its vectors from its own generator (seeded, in a study, from the
  measurement, the run and the step), so its estimate depends on nothing else.

Parameters are visited in name order, so every number is the same whatever order the dict of
parameters was built or read in.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from pathdep.errors import PathdepError
from pathdep.measure.population import by_name, size
from pathdep.models.base import Model, Params
from pathdep.tasks.base import Task


def weight_norm(params: Params) -> Tensor:
    """L2 norm of all parameters of each member: (R,)."""
    return torch.stack([v.double().flatten(1).pow(2).sum(1) for v in by_name(params).values()]).sum(0).sqrt()


def dist_from_init(params: Params, init: Params) -> Tensor:
    """L2 distance of each member from its init (same layout): (R,)."""
    return weight_norm({k: v.double() - init[k].double() for k, v in params.items()})


def effective_rank(w: Tensor) -> Tensor:
    """Entropy effective rank of each member's matrix: w (R, m, ...) -> (R,)."""
    s = torch.linalg.svdvals(w.double().flatten(2))  # (R, min)
    p = s / s.sum(1, keepdim=True).clamp_min(1e-300)
    h = -(p * p.clamp_min(1e-300).log()).sum(1)
    return h.exp()


def effective_ranks(params: Params) -> dict[str, Tensor]:
    """``effective_rank`` of every parameter with at least two axes besides the run axis."""
    return {k: effective_rank(v) for k, v in by_name(params).items() if v.dim() >= 3}


def hessian_trace(
    task: Task, model: Model, params: Params, *, n_examples: int = 512, n_samples: int = 16,
    seed: int | Sequence[int] = 0,
) -> Tensor:
    """Hutchinson estimate of tr(Hessian) of each member's mean training loss: (R,).

    ``seed`` is one seed per member (or one for all): member r's probe vectors come from
    ``torch.Generator().manual_seed(seed[r])``, drawn sample by sample, each sample's vector
    parameter by parameter in name order. Members are independent, so one Hessian-vector
    product of the summed loss gives every member's own product.
    """
    p = {k: v.detach().clone().requires_grad_(True) for k, v in by_name(params).items()}
    r = size(p)
    seeds = [seed] * r if isinstance(seed, int) else list(seed)
    if len(seeds) != r:
        raise PathdepError(f"The 'seed' parameter of hessian_trace must be one int or one per member ({r}). Got {len(seeds)} instead.")
    gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
    n = min(n_examples, len(task.train))
    x = task.train.x[:n].unsqueeze(0).expand(r, *task.train.x[:n].shape)
    y = task.train.y[:n].unsqueeze(0).expand(r, *task.train.y[:n].shape)
    loss = task.train_loss(model, p, x, y).sum()
    grads = torch.autograd.grad(loss, list(p.values()), create_graph=True)
    total = torch.zeros(r, dtype=torch.float64)
    for _ in range(n_samples):
        draws = [[torch.randint(0, 2, g.shape[1:], generator=gen) for g in grads] for gen in gens]  # [member][param]
        vs = [torch.stack([d[i] for d in draws]).to(g.dtype) * 2 - 1 for i, g in enumerate(grads)]  # each (R, ...)
        hv = torch.autograd.grad(grads, list(p.values()), grad_outputs=vs, retain_graph=True)
        total += torch.stack([(v * h).double().flatten(1).sum(1) for v, h in zip(vs, hv)]).sum(0)
    return total / n_samples


def static_measures(
    task: Task, model: Model, params: Params, init: Params | None = None, *, sharpness: bool = True,
    seed: int | Sequence[int] = 0,
) -> dict[str, Tensor]:
    """Every static measure of a population: {measure name: (R,)}; ``seed`` as in :func:`hessian_trace`."""
    out = {"weight_norm": weight_norm(params)}
    if init is not None:
        out["dist_from_init"] = dist_from_init(params, init)
    out.update({f"effective_rank/{k}": v for k, v in effective_ranks(params).items()})
    if sharpness:
        out["sharpness"] = hessian_trace(task, model, params, seed=seed)
    return out
