"""What every model family provides: functional forward over stacked parameters.

A model is a frozen description of an architecture. Its parameters live outside it, as a dict of
tensors whose first axis is the run axis, so that a population of ``R`` runs is one computation:

    params: dict[str, Tensor]   # each (R, *shape): run r's tensor is params[name][r]
    model.apply(params, x)      # x (R, B, *in_shape) -> logits (R, B, *out_shape)

A single run is a population of one. Pairs, interpolation points and soups are populations too:
stack their parameters and call ``apply`` once.

Every intermediate activation passes through :func:`hook` under a stable name, so measurements can
read any of them with :func:`capture` (the hook is removed when the ``with`` block ends).
The permutation structure of a family is data (:class:`PermutationSpec`), as in git-re-basin.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

Params = dict[str, Tensor]

_RECORDER: ContextVar[dict[str, Tensor] | None] = ContextVar("pathdep_recorder", default=None)
_WANTED: ContextVar[frozenset[str] | None] = ContextVar("pathdep_wanted", default=None)
_EDITS: ContextVar[Mapping[str, Callable[[Tensor], Tensor]] | None] = ContextVar("pathdep_edits", default=None)


def hook(name: str, t: Tensor) -> Tensor:
    """Name an activation: edited inside an :func:`edit` block, recorded inside :func:`capture`; returns it."""
    edits = _EDITS.get()
    if edits is not None and name in edits:
        t = edits[name](t)
    rec = _RECORDER.get()
    if rec is not None:
        wanted = _WANTED.get()
        if wanted is None or name in wanted:
            rec[name] = t
    return t


@contextmanager
def capture(names: set[str] | frozenset[str] | None = None) -> Iterator[dict[str, Tensor]]:
    """Record the named activations of every ``apply`` called inside the block.

    >>> from pathdep.models.mlp import MLP
    >>> m = MLP(d_in=3, hidden=(4,), d_out=2)
    >>> p = m.init_population([0, 1])
    >>> with capture({"h0"}) as acts:
    ...     _ = m.apply(p, torch.zeros(2, 5, 3))
    >>> tuple(acts["h0"].shape)
    (2, 5, 4)
    """
    acts: dict[str, Tensor] = {}
    t1 = _RECORDER.set(acts)
    t2 = _WANTED.set(frozenset(names) if names is not None else None)
    try:
        yield acts
    finally:
        _RECORDER.reset(t1)
        _WANTED.reset(t2)


@contextmanager
def edit(fns: Mapping[str, Callable[[Tensor], Tensor]]) -> Iterator[None]:
    """Replace named activations by ``fns[name](activation)`` in every ``apply`` inside the block.

    Ablations and other interventions on activations use this (the edit is removed when the
    block ends). The edited tensor keeps the run axis first.

    >>> from pathdep.models.mlp import MLP
    >>> m = MLP(d_in=3, hidden=(4,), d_out=2)
    >>> p = m.init_population([0])
    >>> with edit({"h0": torch.zeros_like}):
    ...     out = m.apply(p, torch.randn(1, 5, 3))
    >>> bool(torch.allclose(out, p["fc1.bias"].unsqueeze(1).expand(1, 5, 2)))
    True
    """
    token = _EDITS.set(dict(fns))
    try:
        yield
    finally:
        _EDITS.reset(token)


@dataclass(frozen=True)
class PermutationSpec:
    """Which parameter axes, and which activation axes, each hidden-unit permutation acts on.

    ``axes["P0"] = (("fc0.weight", 0), ("fc0.bias", 0), ("fc1.weight", 1))`` says permutation P0
    reorders rows of fc0 and columns of fc1. ``activations["P0"] = (("h0", 1),)`` says it reorders
    axis 1 of the hooked activation ``h0`` (B, n): the activations activation matching reads.
    Axes are counted WITHOUT the run axis (an activation's axis 0 is its batch axis). The order of
    ``activations`` is the order activation matching solves the permutations in: an activation
    serves as evidence for a permutation once every other permutation acting on it is solved.
    """

    axes: Mapping[str, tuple[tuple[str, int], ...]] = field(default_factory=dict)
    activations: Mapping[str, tuple[tuple[str, int], ...]] = field(default_factory=dict)

    def perms_of(self, param: str) -> dict[int, str]:
        """{axis: permutation name} for one parameter."""
        return {ax: p for p, uses in self.axes.items() for (n, ax) in uses if n == param}

    def perms_of_activation(self, hook_name: str) -> dict[int, str]:
        """{axis: permutation name} for one hooked activation."""
        return {ax: p for p, uses in self.activations.items() for (n, ax) in uses if n == hook_name}


@runtime_checkable
class Model(Protocol):
    """A model family instance (hashable, frozen)."""

    @property
    def hook_names(self) -> tuple[str, ...]: ...

    @property
    def permutation_spec(self) -> PermutationSpec: ...

    def init(self, gen: torch.Generator) -> Params:
        """One run's parameters (no run axis), drawn only from ``gen``."""
        ...

    def apply(self, params: Params, x: Tensor) -> Tensor:
        """Logits for a population: params (R, ...), x (R, B, ...) -> (R, B, ...)."""
        ...


def representation_hooks(model: Model) -> tuple[str, ...]:
    """The hooks representation similarity reads: the model's ``representation_hooks`` if it
    declares them (e.g. a transformer's residual stream), else every hook."""
    return tuple(getattr(model, "representation_hooks", model.hook_names))


def stack(runs: list[Params]) -> Params:
    """Stack per-run parameter dicts into a population (new leading run axis)."""
    return {k: torch.stack([p[k] for p in runs]) for k in runs[0]}


def unstack(params: Params) -> list[Params]:
    """Split a population into per-run dicts (views)."""
    n = next(iter(params.values())).shape[0]
    return [{k: v[r] for k, v in params.items()} for r in range(n)]


def init_population(model: Model, seeds: list[int]) -> Params:
    """Stacked init of one run per seed; run r's tensors depend only on ``seeds[r]``."""
    return stack([model.init(torch.Generator().manual_seed(int(s))) for s in seeds])


def population_size(params: Params) -> int:
    return next(iter(params.values())).shape[0]
