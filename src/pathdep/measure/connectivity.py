"""Linear mode connectivity: loss and error along the straight line between two checkpoints.

For a pair (theta_0, theta_1) and alpha in ``alphas`` (which must start at 0 and end at 1), the
member ``theta_alpha = (1 - alpha) theta_0 + alpha theta_1`` is evaluated on a split. Every pair
and every alpha is one member of a single population, evaluated in as few forward calls as
memory allows. The barrier has ONE definition (:data:`BARRIER_DEFINITION`), used for the loss
and for the error (1 - accuracy):

    barrier = max_alpha [ L(theta_alpha) - ((1 - alpha) L(theta_0) + alpha L(theta_1)) ]

It is 0 at the endpoints, so a barrier is never negative; it is 0 for a convex loss.

Models with statistics that depend on the weights (BatchNorm) need them re-estimated at each
interpolated point: pass ``renormalize``, a function that takes the population of interpolated
members (run axis first) and returns it with re-estimated statistics (e.g. running means and
variances recomputed on training batches). No built-in model needs it.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import torch
from torch import Tensor

from pathdep.errors import PathdepError
from pathdep.measure.population import Progress, auto_chunk, check_same_layout, evaluate_members, size
from pathdep.models.base import Model, Params
from pathdep.tasks.base import Split, Task

BARRIER_DEFINITION = "max_alpha [L(theta_alpha) - ((1 - alpha) L(theta_0) + alpha L(theta_1))]"

Renormalize = Callable[[Params], Params]


def alpha_grid(n_alpha: int) -> Tensor:
    """``n_alpha`` evenly spaced points from 0 to 1 (float64), ``n_alpha`` >= 2."""
    if n_alpha < 2:
        raise PathdepError(f"The 'n_alpha' parameter must be an int >= 2. Got {n_alpha!r} instead.")
    return torch.linspace(0, 1, n_alpha, dtype=torch.float64)


def _check_alphas(alphas: Tensor) -> None:
    if alphas.ndim != 1 or len(alphas) < 2 or float(alphas[0]) != 0.0 or float(alphas[-1]) != 1.0:
        raise PathdepError(f"The 'alphas' parameter must be a 1-D grid from 0 to 1. Got {alphas.tolist()!r} instead.")


def interpolate(params_a: Params, params_b: Params, alphas: Tensor, members: Tensor) -> Params:
    """Interpolated members: member m is pair ``m // K`` at alpha ``alphas[m % K]``.

    params_a, params_b (P, ...) -> (len(members), ...), ``(1 - alpha) a + alpha b`` in the
    parameters' dtype (symmetric in (a, alpha) <-> (b, 1 - alpha)).
    """
    k = len(alphas)
    pair, ai = members // k, members % k
    out: Params = {}
    for name, a in params_a.items():
        w = alphas[ai].to(a.dtype).view(-1, *([1] * (a.dim() - 1)))  # (m, 1, ...)
        pa, pb = a.index_select(0, pair), params_b[name].index_select(0, pair)
        out[name] = (1 - w) * pa + w * pb
    return out


def curves(
    task: Task,
    model: Model,
    params_a: Params,
    params_b: Params,
    split: Split,
    alphas: Tensor,
    *,
    chunk: int | None = None,
    renormalize: Renormalize | None = None,
    progress: Progress | None = None,
) -> dict[str, Tensor]:
    """Mean loss and error along the line from member p of ``params_a`` to member p of ``params_b``.

    Returns ``{"loss": (P, K), "error": (P, K)}`` for the K ``alphas``. All P*K points form one
    population, evaluated ``chunk`` members at a time (default: as many as fit in memory).
    """
    _check_alphas(alphas)
    check_same_layout(params_a, params_b, "interpolation endpoints")
    p, k = size(params_a), len(alphas)
    if size(params_b) != p:
        raise PathdepError(f"Both endpoint populations must have as many members; got {p} and {size(params_b)}.")
    chunk = chunk or auto_chunk(model, params_a, split)

    def make(idx: Tensor) -> Params:
        pts = interpolate(params_a, params_b, alphas, idx)
        return renormalize(pts) if renormalize is not None else pts

    ev = evaluate_members(task, model, make, p * k, split, chunk, progress, mean=True)
    return {"loss": ev["loss"].view(p, k), "error": 1 - ev["correct"].view(p, k)}


def barrier(curve: Tensor, alphas: Tensor) -> Tensor:
    """:data:`BARRIER_DEFINITION` of curves (P, K) sampled at ``alphas`` (K,): (P,).

    >>> barrier(torch.tensor([[1.0, 3.0, 1.0]]), torch.tensor([0.0, 0.5, 1.0]))
    tensor([2.], dtype=torch.float64)
    """
    _check_alphas(alphas)
    a = alphas.to(torch.float64)
    curve = curve.to(torch.float64)
    line = (1 - a) * curve[:, :1] + a * curve[:, -1:]  # (P, K)
    return (curve - line).amax(1)


def pair_barriers(
    task: Task,
    model: Model,
    params_a: Params,
    params_b: Params,
    split: Split,
    n_alpha: int = 21,
    *,
    chunk: int | None = None,
    renormalize: Renormalize | None = None,
    progress: Progress | None = None,
) -> dict[str, Tensor]:
    """Curves and barriers for member pairs: ``loss``, ``error`` (P, K), ``loss_barrier``,
    ``error_barrier`` (P,), ``alpha`` (K,)."""
    alphas = alpha_grid(n_alpha)
    c = curves(task, model, params_a, params_b, split, alphas, chunk=chunk, renormalize=renormalize, progress=progress)
    return {
        **c,
        "alpha": alphas,
        "loss_barrier": barrier(c["loss"], alphas),
        "error_barrier": barrier(c["error"], alphas),
    }


def all_pairs(n: int) -> Tensor:
    """Index pairs (i, j), i < j, of ``n`` members: (n (n - 1) / 2, 2) long, row-major order."""
    return torch.triu_indices(n, n, offset=1).T.contiguous()


def alignment_of(table: pd.DataFrame) -> pd.Series:
    """The ``alignment`` of every row of a barriers or interpolation table ("none",
    "weight_matching", "activation_matching"); tables written before that column existed hold
    only the boolean ``aligned``, which meant weight matching."""
    if "alignment" in table:
        return table["alignment"]
    return table["aligned"].astype(bool).map({False: "none", True: "weight_matching"})
