"""The population engine: R runs of one process trained as one batched computation.

Every run's parameters are slices of stacked tensors (R, ...); a training step is one forward
pass of the population, one backward pass of the summed per-run losses (runs share no
parameters, so each receives exactly its own gradient) and one elementwise optimizer update.
A run's bits never depend on which other runs it was stacked with: the model's batched
matmuls, the per-run losses and the optimizer are all computed run by run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from pathdep.models.base import Model, Params
from pathdep.spec import ProcessSpec
from pathdep.tasks.base import Task
from pathdep.train.optim import export_state, import_state, lr_at, make_optimizer
from pathdep.train.streams import DataOrder, generator, intervention_noise


@dataclass
class RunState:
    """One run at one step: params (no run axis), optimizer state and the loss of every step so far."""

    step: int
    params: dict[str, Tensor]
    optim: dict[str, Tensor] = field(default_factory=dict)
    log: Tensor = field(default_factory=lambda: torch.zeros(0))  # (step,) training loss per step


OnCheckpoint = Callable[[int, list[RunState]], None]


def train_population(
    task: Task,
    model: Model,
    process: ProcessSpec,
    data_seeds: list[int],
    start: list[RunState],
    on_checkpoint: OnCheckpoint,
    progress: Callable[[int], None] | None = None,
) -> list[RunState]:
    """Train runs from their start states (all at the same step) to ``process.steps``.

    ``on_checkpoint(step, states)`` is called at every checkpoint step after the start.
    ``progress(n)`` is called with the number of run-steps just done.
    """
    step0 = start[0].step
    if any(s.step != step0 for s in start):
        raise ValueError("runs of one population must start at the same step")
    if len(start) == 1:
        # torch sends a batch-of-one bmm backward to another kernel whose sums round differently;
        # a twin keeps a lone run on the batched kernels, so its bits match any population's.
        twin = train_population(task, model, process, data_seeds * 2, start * 2, _first(on_checkpoint), _half(progress))
        return twin[:1]
    names = list(start[0].params)
    params: Params = {k: torch.stack([s.params[k] for s in start]).requires_grad_(True) for k in names}
    opt = make_optimizer(process.optimizer, list(params.values()))
    import_state(opt, names, [s.optim for s in start])
    log = torch.full((len(start), process.steps), float("nan"))
    log[:, :step0] = torch.stack([s.log[:step0] for s in start]) if step0 else log[:, :0]
    order = DataOrder(len(task.train), process.batch_size, data_seeds)
    checkpoints = set(process.checkpoint_steps())

    for step in range(step0, process.steps):
        losses = _step(task, model, process, params, opt, order, data_seeds, step)
        log[:, step] = losses
        if step + 1 in checkpoints:
            on_checkpoint(step + 1, _states(step + 1, params, opt, names, log))
        if progress is not None:
            progress(len(start))
    return _states(process.steps, params, opt, names, log)


def _first(on_checkpoint: OnCheckpoint) -> OnCheckpoint:
    return lambda step, states: on_checkpoint(step, states[:1])


def _half(progress: Callable[[int], None] | None) -> Callable[[int], None] | None:
    return None if progress is None else (lambda n: progress(n // 2))


def _step(task, model, process, params, opt, order, data_seeds, step) -> Tensor:
    """One update of the whole population; returns the per-run batch losses (R,)."""
    idx = order.indices(step)  # (R, B)
    x, y = task.batch(idx)  # (R, B, ...), (R, B)
    iv = process.intervention
    if iv is not None and iv.start <= step < iv.end:
        u = intervention_noise(iv.seed, data_seeds, step, idx.shape[1])  # (R, B)
        x, y = task.intervene(iv.kind, x, y, iv.strength, u)
    for group in opt.param_groups:
        group["lr"] = lr_at(process, step)
    losses = task.train_loss(model, params, x, y)  # (R,)
    grads = torch.autograd.grad(losses.sum(), list(params.values()))
    for p, g in zip(params.values(), grads):
        p.grad = g
    opt.step()
    return losses.detach()


def _states(step: int, params: Params, opt, names: list[str], log: Tensor) -> list[RunState]:
    n = log.shape[0]
    return [
        RunState(
            step=step,
            params={k: params[k].detach()[r].clone() for k in names},
            optim=export_state(opt, names, r),
            log=log[r, :step].clone(),
        )
        for r in range(n)
    ]


def fresh_state(model: Model, init_seed: int) -> RunState:
    """A run at step 0: its init drawn from its own init generator."""

    return RunState(step=0, params=model.init(generator("init", init_seed)))
