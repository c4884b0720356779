"""Permutation alignment of hidden units, driven only by a model's :class:`PermutationSpec`.

A permutation ``perm`` (n,) of a spec axis acts on every parameter axis listed for it:
``aligned[name] = params[name].index_select(axis, perm)``, so unit i of the aligned model is unit
``perm[i]`` of the original. Permuting the units of a hidden layer consistently (its producer's
rows and its consumer's columns) never changes the function the network computes.

- **Weight matching** (Ainsworth et al., 2023, "Git Re-Basin"): coordinate descent over the
  spec's permutations; each step solves one linear assignment problem that maximises
  ``sum_{(w, axis)} <W_a, P W_b>`` with every other permutation held fixed.
- **Activation matching**: for each permutation, the assignment that maximises the summed
  correlation between the matched units' activations on the same examples. The model says which
  activation each permutation reorders (``model.permutation_hooks``: {perm: hook name}); the
  unit axis of a hooked activation is the first axis after the batch axis. Units whose
  activation is constant on the examples (dead ReLUs) carry no signal and match in any order.

All functions work on populations of pairs: ``params_a`` and ``params_b`` have a leading pair
axis P and the permutations found are (P, n) long tensors. The cost matrices of all pairs are
one batched product; the assignment solver (``scipy.optimize.linear_sum_assignment``) runs once
per pair and permutation, as it has no batched form.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from pathdep.errors import PathdepError
from pathdep.measure.population import check_same_layout, size
from pathdep.models.base import Model, Params, PermutationSpec, capture

Perms = dict[str, Tensor]  # {perm name: (P, n) long}


def perm_sizes(spec: PermutationSpec, params: Params) -> dict[str, int]:
    """Number of units each permutation of ``spec`` acts on (read from ``params``, run axis first)."""
    out: dict[str, int] = {}
    for p, uses in spec.axes.items():
        lengths = {params[name].shape[axis + 1] for name, axis in uses}
        if len(lengths) != 1:
            raise PathdepError(f"Permutation {p!r} acts on axes of different lengths {sorted(lengths)}.")
        out[p] = lengths.pop()
    return out


def identity_perms(spec: PermutationSpec, params: Params) -> Perms:
    """The identity permutation of every spec axis, for every member: each (P, n)."""
    n_members = size(params)
    return {p: torch.arange(n).expand(n_members, n).clone() for p, n in perm_sizes(spec, params).items()}


def _permute_axis(t: Tensor, axis: int, perm: Tensor) -> Tensor:
    """t (P, ...) with ``axis`` (counted without P) reordered by ``perm`` (P, n) per member."""
    ax = axis + 1
    shape = [1] * t.dim()
    shape[0], shape[ax] = perm.shape[0], perm.shape[1]
    idx = perm.view(shape).expand(*t.shape[:ax], perm.shape[1], *t.shape[ax + 1 :])
    return torch.gather(t, ax, idx)


def apply_permutation(spec: PermutationSpec, params: Params, perms: Mapping[str, Tensor], skip: str | None = None) -> Params:
    """Reorder hidden units of every member: params (P, ...), perms {name: (P, n) or (n,)}.

    Permutations missing from ``perms`` (and ``skip``) are left as the identity. Exact: it only
    moves numbers.
    """
    n_members = size(params)
    out = dict(params)
    for p, uses in spec.axes.items():
        if p == skip or p not in perms:
            continue
        perm = perms[p].long()
        perm = perm.expand(n_members, -1) if perm.dim() == 1 else perm
        for name, axis in uses:
            out[name] = _permute_axis(out[name], axis, perm)
    return out


def _unit_rows(t: Tensor, axis: int) -> Tensor:
    """t (P, ...) -> (P, n, rest) with the unit ``axis`` (counted without P) first."""
    t = t.movedim(axis + 1, 1)
    return t.reshape(t.shape[0], t.shape[1], -1)


def _solve(cost: Tensor) -> Tensor:
    """Maximum-weight assignment for each cost matrix (P, n, n): (P, n) long column of each row."""
    c = cost.detach().double().cpu().numpy()
    cols = np.stack([linear_sum_assignment(c[i], maximize=True)[1] for i in range(c.shape[0])])
    return torch.from_numpy(cols).long()


def weight_matching(
    spec: PermutationSpec, params_a: Params, params_b: Params, *, max_iter: int = 100, seed: int = 0
) -> Perms:
    """Permutations that align each member of ``params_b`` to the same member of ``params_a``.

    Coordinate descent: the permutations are visited in an order drawn from ``seed`` each sweep;
    it stops when a sweep improves no pair's objective. Apply the result with
    ``apply_permutation(spec, params_b, perms)``.

    A permuted network computes the same function, and weight matching finds the permutation back:

    >>> from pathdep.models.mlp import MLP
    >>> mlp = MLP(d_in=4, hidden=(8,), d_out=2)
    >>> a = mlp.init_population([0])                                     # one member: (1, ...)
    >>> shuffled = {"P0": torch.randperm(8, generator=torch.Generator().manual_seed(1))[None]}  # (1, 8)
    >>> b = apply_permutation(mlp.permutation_spec, a, shuffled)
    >>> x = torch.randn(1, 16, 4, generator=torch.Generator().manual_seed(2))
    >>> torch.allclose(mlp.apply(a, x), mlp.apply(b, x), atol=1e-6)
    True
    >>> found = weight_matching(mlp.permutation_spec, a, b)
    >>> aligned = apply_permutation(mlp.permutation_spec, b, found)
    >>> all(torch.equal(aligned[k], a[k]) for k in a)
    True
    """
    check_same_layout(params_a, params_b, "weight matching")
    perms = identity_perms(spec, params_b)
    names = sorted(spec.axes)
    rng = np.random.default_rng(seed)
    a = {k: v.double() for k, v in params_a.items()}
    b = {k: v.double() for k, v in params_b.items()}
    for _ in range(max_iter):
        improved = False
        for p in rng.permutation(names):
            others = apply_permutation(spec, b, perms, skip=str(p))
            n = perms[p].shape[1]
            cost = torch.zeros(size(a), n, n, dtype=torch.float64)
            for name, axis in spec.axes[p]:
                cost += _unit_rows(a[name], axis) @ _unit_rows(others[name], axis).transpose(1, 2)  # (P, n, n)
            new = _solve(cost)
            old_score = cost.gather(2, perms[p].unsqueeze(2)).sum((1, 2))
            new_score = cost.gather(2, new.unsqueeze(2)).sum((1, 2))
            improved |= bool((new_score > old_score + 1e-12 * old_score.abs().clamp_min(1)).any())
            perms[p] = new
        if not improved:
            break
    return perms


def _correlation(xa: Tensor, xb: Tensor) -> Tensor:
    """Correlation of every unit of xa (P, M, n) with every unit of xb (P, M, n): (P, n, n)."""
    za = xa.double() - xa.double().mean(1, keepdim=True)
    zb = xb.double() - xb.double().mean(1, keepdim=True)
    za = za / za.norm(dim=1, keepdim=True).clamp_min(1e-12)
    zb = zb / zb.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return za.transpose(1, 2) @ zb


def activation_matching(
    model: Model, params_a: Params, params_b: Params, x: Tensor, hooks: Mapping[str, str] | None = None
) -> Perms:
    """Permutations of ``params_b``'s units that maximise activation correlation with ``params_a``.

    x (N, *in_shape) examples seen by both; ``hooks`` {perm: hook name} defaults to
    ``model.permutation_hooks``.
    """
    check_same_layout(params_a, params_b, "activation matching")
    hooks = hooks if hooks is not None else getattr(model, "permutation_hooks", None)
    if hooks is None:
        raise PathdepError(
            f"Activation matching needs to know which activation each permutation reorders; "
            f"{type(model).__name__} has no 'permutation_hooks' and none were given."
        )
    names = set(hooks.values())
    acts = []
    for params in (params_a, params_b):
        with capture(names) as rec, torch.no_grad():
            model.apply(params, x.unsqueeze(0).expand(size(params), *x.shape))
        acts.append({h: _unit_rows(t, 1).transpose(1, 2) for h, t in rec.items()})  # (P, samples, n)
    perms: Perms = {}
    for p, h in hooks.items():
        xa, xb = acts[0][h], acts[1][h]  # (P, M, n): units last, every other axis a sample
        perms[p] = _solve(_correlation(xa, xb))
    return perms
