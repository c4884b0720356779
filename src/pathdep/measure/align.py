"""Permutation alignment of hidden units, driven only by a model's :class:`PermutationSpec`.

A permutation ``perm`` (n,) of a spec axis acts on every parameter axis listed for it:
``aligned[name] = params[name].index_select(axis, perm)``, so unit i of the aligned model is unit
``perm[i]`` of the original. Permuting the units of a hidden layer consistently (its producer's
rows and its consumer's columns) never changes the function the network computes.

- **Weight matching** (Ainsworth et al., 2023, "Git Re-Basin"): coordinate descent over the
  spec's permutations; each step solves one linear assignment problem that maximises
  ``sum_{(w, axis)} <W_a, P W_b>`` with every other permutation held fixed.
- **Activation matching** (Entezari et al., 2022; Ainsworth et al., 2023): for each permutation,
  the assignment that maximises the summed correlation between the matched units' activations on
  the same examples. The spec says which activation axes each permutation reorders
  (``spec.activations``); every other axis of such an activation (batch, positions, pixels) is a
  sample. Permutations are solved in the spec's order, and an activation is evidence for a
  permutation only once every other permutation acting on it is solved (its axes are then put in
  the solved order first): a transformer's heads are matched on their attention patterns before
  their q/k/v dimensions are matched within the matched heads. Units whose activation is
  constant on the examples (dead ReLUs) carry no signal and match in any order.

All functions work on populations of pairs: ``params_a`` and ``params_b`` have a leading pair
axis P and the permutations found are (P, n) long tensors. The cost matrices of all pairs are
one batched product; the assignment solver (``scipy.optimize.linear_sum_assignment``) runs once
per pair and permutation, as it has no batched form.

Neither alignment looks at the loss: weight matching minimises weight distance and activation
matching maximises activation correlation, so the barrier after alignment can exceed the raw one
(:func:`raised_note` says so in words). :func:`align` applies one of :data:`ALIGNMENTS` by name.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from pathdep.errors import PathdepError
from pathdep.measure.population import DEFAULT_BUDGET, check_same_layout, chunks, size, take
from pathdep.models.base import Model, Params, PermutationSpec, capture

Perms = dict[str, Tensor]  # {perm name: (P, n) long}
Order = list[tuple[str, list[tuple[str, int]]]]  # [(perm, [(hook, unit axis), ...]), ...] in solving order


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
    """Correlation of every unit of xa (P, n, M) with every unit of xb (P, n, M) over the M samples: (P, n, n)."""
    za = xa.double()
    za = za - za.mean(2, keepdim=True)
    za = za / za.norm(dim=2, keepdim=True).clamp_min(1e-12)
    zb = xb.double()
    zb = zb - zb.mean(2, keepdim=True)
    zb = zb / zb.norm(dim=2, keepdim=True).clamp_min(1e-12)
    return za @ zb.transpose(1, 2)


def permute_activations(spec: PermutationSpec, acts: Mapping[str, Tensor], perms: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Captured activations {hook: (P, B, ...)} as the permuted network would produce them.

    ``acts`` of ``params`` permuted by ``perms`` (each (P, n)) equal the activations of
    ``apply_permutation(spec, params, perms)`` on the same examples; hooks and permutations the
    spec does not link are left as they are.
    """
    out = dict(acts)
    for p, uses in spec.activations.items():
        if p not in perms:
            continue
        for h, axis in uses:
            if h in out:
                out[h] = _permute_axis(out[h], axis, perms[p].long().expand(out[h].shape[0], -1))
    return out


def _solve_order(spec: PermutationSpec) -> Order:
    """Each permutation of ``spec.activations`` in order, with the activation axes that are its
    evidence: those of activations whose other permutations are solved before it."""
    missing = [p for p in spec.axes if p not in spec.activations]
    if missing:
        raise PathdepError(f"Activation matching needs to know which activation each permutation reorders; "
                           f"the permutation spec names none for {missing[0]!r} (its 'activations').")
    solved: set[str] = set()
    order = []
    for p, uses in spec.activations.items():
        evidence = [(h, ax) for h, ax in uses
                    if all(q in solved for a, q in spec.perms_of_activation(h).items() if a != ax)]
        if not evidence:
            raise PathdepError(f"The permutation spec gives permutation {p!r} no activation whose other "
                               f"permutations are solved before it; reorder its 'activations'.")
        order.append((p, evidence))
        solved.add(p)
    return order


def _hooked(model: Model, params: Params, x: Tensor, names: set[str]) -> dict[str, Tensor]:
    """The named activations of every member on examples x (N, *in_shape): {hook: (P, N, ...)}."""
    with capture(names) as rec, torch.no_grad():
        model.apply(params, x.unsqueeze(0).expand(size(params), *x.shape))
    return dict(rec)


def _match_chunk(model: Model, order: Order, params_a: Params, params_b: Params, x: Tensor) -> Perms:
    """Activation matching of one block of pairs: each permutation solved in ``order``."""
    names = {h for _, uses in order for h, _ in uses}
    spec = model.permutation_spec
    acts_a, acts_b = _hooked(model, params_a, x, names), _hooked(model, params_b, x, names)
    perms: Perms = {}
    for p, evidence in order:
        cost = torch.zeros(())
        for h, axis in evidence:
            xb = acts_b[h]
            for other_axis, q in spec.perms_of_activation(h).items():  # put B's other solved axes in A's order
                if q != p:
                    xb = _permute_axis(xb, other_axis, perms[q])
            cost = cost + _correlation(_unit_rows(acts_a[h], axis), _unit_rows(xb, axis))  # (P, n, samples) -> (P, n, n)
        perms[p] = _solve(cost)
    return perms


def _floats_per_example(model: Model, params: Params, x: Tensor, order: Order) -> int:
    """Floats of the activations matching reads, per member and example (measured on 2 examples)."""
    names = {h for _, uses in order for h, _ in uses}
    one = _hooked(model, {k: v[:1] for k, v in params.items()}, x[:2], names)
    return max(1, sum(t.numel() for t in one.values()) // len(x[:2]))


#: Activation matching in a study reads at most this many examples (the first ones) ...
MATCH_EXAMPLES = 1000
#: ... and fewer where one model's matched activations would exceed this many floats (a sequence
#: example holds one activation per position: 1000 sequences of a small transformer are ~6e7 floats).
MATCH_FLOATS = 2**22


def probe_batch(model: Model, params: Params, x: Tensor, max_examples: int = MATCH_EXAMPLES,
                max_floats: int = MATCH_FLOATS) -> Tensor:
    """The first examples of x (N, *in_shape) that activation matching reads: at most
    ``max_examples``, and few enough (but at least 2) that one member's matched activations hold
    at most ``max_floats`` floats."""
    order = _solve_order(model.permutation_spec)
    if not order:
        return x[:max_examples]
    return x[: max(2, min(max_examples, max_floats // _floats_per_example(model, params, x, order)))]


def activation_matching(
    model: Model, params_a: Params, params_b: Params, x: Tensor, *, chunk: int | None = None
) -> Perms:
    """Permutations of ``params_b``'s units that maximise activation correlation with ``params_a``.

    params_a, params_b (P, ...): pairs of members; x (N, *in_shape): the examples both see (a
    probe batch, e.g. training examples). Which activation each permutation reorders comes from
    ``model.permutation_spec.activations``. Pairs are processed ``chunk`` at a time (default: as
    many as keep the captured activations near :data:`~pathdep.measure.population.DEFAULT_BUDGET`
    floats per model). Apply the result with ``apply_permutation(spec, params_b, perms)``.

    >>> from pathdep.models.mlp import MLP
    >>> m = MLP(d_in=3, hidden=(5,), d_out=2)
    >>> p = m.init_population([0])
    >>> activation_matching(m, p, p, torch.randn(50, 3))["P0"]
    tensor([[0, 1, 2, 3, 4]])
    """
    check_same_layout(params_a, params_b, "activation matching")
    n = size(params_a)
    if size(params_b) != n:
        raise PathdepError(f"Both populations of activation matching must have as many members; got {n} and {size(params_b)}.")
    order = _solve_order(model.permutation_spec)
    if not order:  # nothing to permute
        return {}
    if chunk is None:
        chunk = max(1, DEFAULT_BUDGET // (_floats_per_example(model, params_a, x, order) * len(x)))
    parts: dict[str, list[Tensor]] = {}
    for idx in chunks(n, chunk):
        for p, perm in _match_chunk(model, order, take(params_a, idx), take(params_b, idx), x).items():
            parts.setdefault(p, []).append(perm)
    return {p: torch.cat(v) for p, v in parts.items()}


#: The ``alignment`` of a barrier: the permutation applied to its second endpoint first.
ALIGNMENTS = ("none", "weight_matching", "activation_matching")


def can_match_activations(spec: PermutationSpec) -> bool:
    """Whether ``spec`` has permutations and names the activations of each (activation matching
    needs them; without permutations every alignment is the identity, which weight matching
    already records)."""
    return bool(spec.axes) and all(p in spec.activations for p in spec.axes)


def align(alignment: str, model: Model, params_a: Params, params_b: Params, x: Tensor | None = None) -> Params:
    """``params_b`` (P, ...) permuted to align with ``params_a`` by one of :data:`ALIGNMENTS`.

    ``x`` (N, *in_shape): the examples activation matching reads (unused otherwise).
    """
    spec = model.permutation_spec
    if alignment == "none":
        return params_b
    if alignment == "weight_matching":
        return apply_permutation(spec, params_b, weight_matching(spec, params_a, params_b))
    if alignment == "activation_matching":
        if x is None:
            raise PathdepError("Activation matching needs examples to read activations on; got x=None.")
        return apply_permutation(spec, params_b, activation_matching(model, params_a, params_b, x))
    raise PathdepError(f"The 'alignment' parameter of align must be one of {list(ALIGNMENTS)}. Got {alignment!r} instead.")


#: What each alignment optimises instead of the loss: why an aligned barrier can exceed the raw one.
OBJECTIVES = {"weight_matching": "it minimises weight distance, not loss",
              "activation_matching": "it maximises activation correlation, not loss"}


def raised_note(alignment: str, barriers: Mapping[str, tuple[float, float]]) -> str | None:
    """A plain sentence naming each barrier {what: (aligned, raw)} the alignment left higher than
    without alignment; None when it raised none.

    >>> raised_note("weight_matching", {"loss barrier": (0.701, 0.613), "error barrier": (0.1, 0.2)})
    'weight matching raised the loss barrier (0.701 vs 0.613 raw): it minimises weight distance, not loss'
    """
    raised = [f"the {what} ({a:.3f} vs {r:.3f} raw)" for what, (a, r) in barriers.items() if a > r + 1e-9]
    if not raised:
        return None
    return f"{alignment.replace('_', ' ')} raised {' and '.join(raised)}: {OBJECTIVES[alignment]}"
