"""What a spec would cost to train, estimated before its runs are planned; refused above stated limits.

The estimate is arithmetic over the spec's sections (no run is listed, nothing is allocated):

- ``runs``: variants x init seeds x data seeds, plus every fork child;
- ``run_steps``: the optimiser steps of all runs together (a fork child trains from its fork step);
- ``work``: run-steps x examples per step x parameters, a proxy for the multiply-adds of training
  (the batch is capped at the train set, and the parameters are counted on torch's ``meta`` device);
- ``memory``: parameters, gradients and Adam moments (float32) of the largest population.

On one CPU thread the demo (265 runs, 1.3e5 run-steps, 9e8 work) trains in about 30 s; the
examples shipped with pathdep stay below 1e13 work. :data:`LIMITS` refuses what would take days, or hang in planning, unless
the caller passes ``force=True`` (``pathdep run --force``).

>>> from pathdep.spec import parse_spec
>>> spec = parse_spec({"name": "tiny", "process": {"task": "two_features", "steps": 10, "batch_size": 8,
...                    "model_args": {"hidden": [4]}}, "seeds": {"init": 3}})
>>> estimate(spec).runs, estimate(spec).run_steps
(3, 30)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from pathdep.errors import SpecError
from pathdep.spec import ProcessSpec, StudySpec, build_process, process_of, resolve_process

POPULATION = 256  # runs trained together (Study.run's max_population)
BYTES_PER_PARAM = 16  # float32 parameters, gradients and two Adam moments
LIMITS = {"runs": 10_000, "run_steps": 10**9, "work": 10**14, "memory": 16 * 2**30}
WHAT = {"runs": "runs", "run_steps": "optimiser steps over all runs",
        "work": "run-steps x batch x parameters", "memory": "of parameters and optimiser state in one population"}
FIELDS = {"runs": "seeds, variants and forks", "run_steps": "process.steps and the number of runs",
          "work": "process.steps, batch_size, model_args and the number of runs",
          "memory": "model_args and the number of runs of one process"}


@dataclass(frozen=True)
class Cost:
    """The size of a plan: runs, optimiser steps over all runs, run-steps x batch x parameters, and
    the parameter and optimiser memory of the largest population."""

    runs: int
    run_steps: int
    work: float
    memory: float = 0.0


def sizes(process: ProcessSpec) -> tuple[int, int]:
    """(examples per step, the batch capped at the train set; parameters of one run) of ``process``.

    The parameters are counted without allocating them.
    """
    task, model = build_process(process)
    shapes = getattr(model, "param_shapes", None)
    if callable(shapes):
        n = sum(math.prod(s) for s in shapes().values())
    else:
        with torch.device("meta"):
            n = sum(math.prod(v.shape) for v in model.init(torch.Generator()).values())
    return min(process.batch_size, len(task.train)), n


def _count(seeds: int | list[int]) -> int:
    return seeds if isinstance(seeds, int) else len(seeds)


def estimate(spec: StudySpec) -> Cost:
    """The cost of training every run of ``spec`` from scratch (see the module docstring)."""
    groups = [(spec.process, _count(s.init) * _count(s.data), 0) for s in [spec.seeds]] + [
        (resolve_process(spec.process, v.set, f"variants.{v.name}"), _count((v.seeds or spec.seeds).init)
         * _count((v.seeds or spec.seeds).data), 0) for v in spec.variants]
    groups += [(resolve_process(process_of(spec, f.parent), f.set, f"forks.{f.name}"),
                len(f.lambdas or [None]) * len(f.data_seeds), f.step) for f in spec.forks]
    runs, run_steps, work, memory = 0, 0, 0.0, 0.0
    for proc, n, start in groups:  # (process, runs, first step trained)
        batch, params = sizes(proc)
        runs, run_steps = runs + n, run_steps + n * (proc.steps - start)
        work += n * (proc.steps - start) * batch * params
        memory = max(memory, min(n, POPULATION) * params * BYTES_PER_PARAM)
    return Cost(runs, run_steps, work, memory)


def _shown(key: str, value: float) -> str:
    return f"{value / 2**30:.3g} GiB" if key == "memory" else f"{value:.3g}"


def check_cost(spec: StudySpec, force: bool = False) -> Cost:
    """The estimate, or a :class:`SpecError` naming the first limit it passes (unless ``force``)."""
    cost = estimate(spec)
    for key, limit in LIMITS.items():
        value = getattr(cost, key)
        if value > limit and not force:
            raise SpecError(
                f"Study {spec.name!r} would train {_shown(key, value)} {WHAT[key]}, above the limit of {_shown(key, limit)} "
                f"(set by {FIELDS[key]}); nothing was written. Shrink the spec, or pass --force "
                f"(force=True) to train it anyway."
            )
    return cost
