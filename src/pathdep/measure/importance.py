"""Component importance: how much the probe loss rises when one component is ablated.

A **component** is a slice of a named activation: ``Component(hook, n_units, axis)`` says that
the activation hooked as ``hook`` has ``n_units`` units along ``axis`` (counted without the run
axis; axis 0 is the batch axis). By default every hook but ``logits`` is a component layer with
its units on axis 1 (the hidden units of an MLP, the channels of a CNN). A model can list its
own with ``components() -> list[Component]`` (e.g. attention heads on the head axis of a
per-head activation). Nothing here knows any architecture.

Ablations replace a unit's activation by 0 (``zero``) or by its mean over the probe examples
(``mean``, the mean of the same run). Unit ``-1`` stands for the whole layer (every unit ablated
at once). The ablated copies of all runs and units of a layer are one population: member
``r * (U + 1) + u`` is run r with unit u ablated (u = U: the whole layer), and a per-member mask
is applied through :func:`pathdep.models.base.edit`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from pathdep.errors import PathdepError
from pathdep.measure.population import Progress, auto_chunk, chunks, size, take
from pathdep.models.base import Model, Params, capture, edit
from pathdep.tasks.base import Split, Task

ABLATIONS = ("zero", "mean")
WHOLE_LAYER = -1


@dataclass(frozen=True)
class Component:
    """``n_units`` units of activation ``hook`` along ``axis`` (without the run axis)."""

    hook: str
    n_units: int
    axis: int = 1


def components(model: Model, params: Params, x: Tensor) -> list[Component]:
    """The model's own ``components()`` if it has them; else every hook but ``logits``, axis 1."""
    own = getattr(model, "components", None)
    if callable(own):
        comps = [c if isinstance(c, Component) else Component(*c) for c in own()]
        for c in comps:
            if c.hook not in model.hook_names:
                raise PathdepError(
                    f"Component {c.hook!r} of {type(model).__name__} is not one of its hook names; components() "
                    f"must list (hook name, n_units, unit axis without the run axis), e.g. ('h0', 32, 1)."
                )
        return comps
    one = {k: v[:1] for k, v in params.items()}
    with capture(None) as acts, torch.no_grad():
        model.apply(one, x[:1].unsqueeze(0))
    return [Component(h, t.shape[2]) for h, t in acts.items() if h != "logits" and t.dim() >= 3]


def _mask_shape(t: Tensor, axis: int) -> list[int]:
    shape = [1] * t.dim()
    shape[0], shape[axis + 1] = t.shape[0], t.shape[axis + 1]
    return shape


@torch.no_grad()
def ablation_effects(
    task: Task,
    model: Model,
    params: Params,
    split: Split,
    *,
    ablations: tuple[str, ...] = ABLATIONS,
    chunk: int | None = None,
    progress: Progress | None = None,
) -> dict[tuple[str, str], Tensor]:
    """Rise in mean loss on ``split`` per run and unit: {(hook, ablation): (R, U + 1)}.

    Column u < U is unit u ablated alone; the last column is the whole layer ablated. Ablated
    copies are evaluated ``chunk`` at a time (default: as many as fit the cache budget).
    """
    x = split.x
    chunk = chunk or auto_chunk(model, params, split)
    n_runs = size(params)
    comps = components(model, params, x)
    with capture({c.hook for c in comps}) as acts:
        clean = task.evaluate(model, params, split)["loss"].double().mean(1)  # (R,)
    means = {c.hook: acts[c.hook].mean(1, keepdim=True) for c in comps}  # (R, 1, ...)
    out: dict[tuple[str, str], Tensor] = {}
    total, done = len(comps) * len(ablations), 0
    for comp in comps:
        u1 = comp.n_units + 1
        keep = torch.ones(u1, comp.n_units)
        keep[: comp.n_units].fill_diagonal_(0)
        keep[comp.n_units] = 0  # (U + 1, U): row u ablates unit u; last row ablates all
        for kind in ablations:
            losses = []
            for idx in chunks(n_runs * u1, chunk):
                run = idx // u1
                mask = keep[idx % u1]  # (m, U)
                fill = means[comp.hook].index_select(0, run) if kind == "mean" else None

                def ablate(t: Tensor, mask=mask, fill=fill, comp=comp) -> Tensor:
                    m = mask.view(_mask_shape(t, comp.axis)).to(t.dtype)
                    return t * m if fill is None else t * m + fill * (1 - m)

                with edit({comp.hook: ablate}):
                    ev = task.evaluate(model, take(params, run), split)
                losses.append(ev["loss"].double().mean(1))
            out[(comp.hook, kind)] = torch.cat(losses).view(n_runs, u1) - clean[:, None]
            done += 1
            if progress is not None:
                progress(done, total)
    return out
