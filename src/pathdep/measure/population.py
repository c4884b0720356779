"""Small helpers that build and evaluate populations of members (runs, pairs, interpolation points).

A *member* is one set of parameters with the run axis first; every measurement builds the
members it needs (copies, interpolations, ablations) as one population and evaluates it in as
few ``apply`` calls as memory allows. ``chunk`` is always a number of members per call.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from pathdep.models.base import Model, Params, capture
from pathdep.tasks.base import Split, Task

Progress = Callable[[int, int], None]

#: Activation floats one forward call may hold (2 MiB in float32). Measured on CPU: calls whose
#: activations stay in cache run 2-4x faster per member than one huge call.
DEFAULT_BUDGET = 2**19


def stable_seed(*parts: object) -> int:
    """A seed (0 <= seed < 2**63) from the text of ``parts``: the same in every process and platform.

    Measurements that draw random numbers seed them with ``stable_seed(measurement, run, step)``,
    so a table recomputed from the same store is identical (Python's ``hash`` of a string
    changes between processes; sha256 does not).

    >>> stable_seed("sharpness", "base-i0-d0", 100) == stable_seed("sharpness", "base-i0-d0", 100)
    True
    >>> stable_seed("sharpness", "base-i0-d0", 100) != stable_seed("sharpness", "base-i0-d0", 200)
    True
    """
    text = "\x1f".join(str(p) for p in parts)  # unit separator: ("a", "bc") and ("ab", "c") differ
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


def by_name(params: Params) -> Params:
    """The same parameters in name order (every iteration over a population's tensors uses it)."""
    return dict(sorted(params.items()))


def size(params: Params) -> int:
    """Number of members (the run axis) of a population."""
    return next(iter(params.values())).shape[0]


def take(params: Params, idx: Tensor) -> Params:
    """Members ``idx`` (1-D long) of a population, in that order."""
    return {k: v.index_select(0, idx) for k, v in params.items()}


def check_same_layout(a: Params, b: Params, what: str = "params") -> None:
    """Raise :class:`~pathdep.errors.IncompatibleError` unless ``a`` and ``b`` share keys and shapes.

    Shapes are compared without the run axis. The message names the first offending key.
    """
    from pathdep.errors import IncompatibleError

    missing = sorted(set(a) ^ set(b))
    if missing:
        k = missing[0]
        side = "first" if k in a else "second"
        raise IncompatibleError(f"{what}: key {k!r} is only in the {side}; keys must be the same")
    for k in a:
        if a[k].shape[1:] != b[k].shape[1:]:
            raise IncompatibleError(
                f"{what}: {k!r} has shape {tuple(a[k].shape[1:])} in the first and {tuple(b[k].shape[1:])} in the second"
            )


def activation_floats(model: Model, params: Params, split: Split) -> int:
    """Activation floats per member and example of one forward pass (measured on 2 examples)."""
    one = {k: v[:1] for k, v in params.items()}
    x = split.x[:2].unsqueeze(0)
    with capture(None) as acts:
        model.apply(one, x)
    return max(1, sum(t.numel() for t in acts.values()) // 2)


def auto_chunk(model: Model, params: Params, split: Split, budget: int = DEFAULT_BUDGET) -> int:
    """Members per call so that one call's activations stay within ``budget`` floats."""
    per_member = activation_floats(model, params, split) * len(split)
    return max(1, budget // per_member)


def chunks(n: int, chunk: int) -> Iterator[Tensor]:
    """Consecutive index blocks ``[0, chunk), [chunk, 2 chunk), ...`` covering ``range(n)``."""
    for start in range(0, n, chunk):
        yield torch.arange(start, min(n, start + chunk))


def loss_and_correct(task: Task, model: Model, params: Params, split: Split) -> dict[str, Tensor]:
    """Mean loss and accuracy of every member on ``split`` (float64, each (R,)); no margins."""
    return task.mean_loss_and_accuracy(model, params, split)


@torch.inference_mode()
def evaluate_members(
    task: Task,
    model: Model,
    make: Callable[[Tensor], Params],
    n: int,
    split: Split,
    chunk: int,
    progress: Progress | None = None,
    mean: bool = False,
) -> dict[str, Tensor]:
    """``task.evaluate`` on members ``make(idx)`` for ``idx`` in blocks of ``chunk``; each value (n, N).

    ``make`` builds the parameters of the members it is given (copies, interpolations, ...), so
    no more than ``chunk`` members exist at once. With ``mean``, only the mean ``loss`` and
    ``correct`` of each member are computed (each (n,)).
    """
    parts: dict[str, list[Tensor]] = {}
    done = 0
    for idx in chunks(n, chunk):
        params = make(idx)
        ev = loss_and_correct(task, model, params, split) if mean else task.evaluate(model, params, split)
        for key, val in ev.items():
            parts.setdefault(key, []).append(val)
        done += len(idx)
        if progress is not None:
            progress(done, n)
    return {k: torch.cat(v) for k, v in parts.items()}
