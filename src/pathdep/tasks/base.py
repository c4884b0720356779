"""What a task provides: training data, probe sets, a loss, and the properties of a solution.

A task is built once from its (validated) arguments and is deterministic: its data never depends
on a run's seeds. Runs differ only in what they draw from their own streams (init, data order,
intervention), which the engine passes in explicitly.

Shapes: ``x`` is (N, *in_shape); ``y`` is (N,) class indices (float 0/1 for binary tasks).
Population tensors add a leading run axis R.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from torch import Tensor
from torch.nn import functional as F

from pathdep.models.base import Model, Params


@dataclass(frozen=True)
class Split:
    """Examples and labels; ``extra`` holds aligned per-example tensors (e.g. what feature 2 says)."""

    x: Tensor
    y: Tensor
    extra: dict[str, Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.y.shape[0]


@dataclass(frozen=True, eq=False)
class Task:
    """A supervised task. Subclasses may override :meth:`train_loss` (e.g. policy gradient)."""

    name: str
    train: Split
    test: Split
    probes: dict[str, Split]
    n_outputs: int  # logits per example (1 for binary tasks)
    loss_kind: Literal["bce", "ce"] = "ce"
    solution_property: str = "test_acc"  # the property whose value is a run's "solution type"
    solution_ends: tuple[str, str] | None = None  # what a low and a high solution property mean
    doc: str = ""

    @property
    def in_shape(self) -> tuple[int, ...]:
        return tuple(self.train.x.shape[1:])

    # --- loss and predictions -------------------------------------------------------------
    def loss(self, logits: Tensor, y: Tensor) -> Tensor:
        """Per-example loss: logits (R, B, C) or (R, B, 1), y (R, B) -> (R, B)."""
        if self.loss_kind == "bce":
            return F.binary_cross_entropy_with_logits(logits.squeeze(-1), y.float(), reduction="none")
        return F.cross_entropy(logits.flatten(0, -2), y.flatten().long(), reduction="none").view(y.shape)

    def predict(self, logits: Tensor) -> Tensor:
        """Predicted labels: (R, B, C) -> (R, B) long."""
        if self.loss_kind == "bce":
            return (logits.squeeze(-1) > 0).long()
        return logits.argmax(-1)

    def margin(self, logits: Tensor, y: Tensor) -> Tensor:
        """Signed margin of the true label: (R, B). Positive means correct."""
        if self.loss_kind == "bce":
            s = 2 * y.float() - 1
            return s * logits.squeeze(-1)
        true = logits.gather(-1, y.long().unsqueeze(-1)).squeeze(-1)
        other = logits.scatter(-1, y.long().unsqueeze(-1), float("-inf")).amax(-1)
        return true - other

    # --- training ---------------------------------------------------------------------------
    def batch(self, idx: Tensor) -> tuple[Tensor, Tensor]:
        """Training batch of a population: idx (R, B) -> x (R, B, *in), y (R, B)."""
        return self.train.x[idx], self.train.y[idx]

    def train_loss(self, model: Model, params: Params, x: Tensor, y: Tensor) -> Tensor:
        """Per-run mean training loss (R,). The engine sums it over runs and backpropagates."""
        return self.loss(model.apply(params, x), y).mean(dim=1)

    def intervene(self, kind: str, x: Tensor, y: Tensor, strength: float, u: Tensor) -> tuple[Tensor, Tensor]:
        """Change a population's batch (x (R, B, ...), y (R, B)) during an intervention window.

        ``u`` (R, B) is uniform noise from the intervention's own stream; an example is usually
        touched when ``u < strength``. Kinds a task supports are listed in ``intervention_kinds``.
        """
        raise NotImplementedError(f"task {self.name!r} supports no interventions")

    intervention_kinds: ClassVar[tuple[str, ...]] = ()

    # --- evaluation -------------------------------------------------------------------------
    def evaluate(self, model: Model, params: Params, split: Split) -> dict[str, Tensor]:
        """Per-example loss, prediction, correctness, margin on a split: each (R, N)."""
        x = split.x.unsqueeze(0).expand(population(params), *split.x.shape)
        logits = model.apply(params, x)
        y = split.y.unsqueeze(0).expand(logits.shape[0], -1)
        pred = self.predict(logits)
        return {
            "loss": self.loss(logits, y),
            "pred": pred,
            "correct": (pred == y.long()).float(),
            "margin": self.margin(logits, y),
        }

    def mean_loss_and_accuracy(self, model: Model, params: Params, split: Split) -> dict[str, Tensor]:
        """Mean loss and accuracy of each run on a split, float64 (R,) each; no per-example tensors."""
        x = split.x.unsqueeze(0).expand(population(params), *split.x.shape)
        logits = model.apply(params, x)
        y = split.y.unsqueeze(0).expand(logits.shape[0], *split.y.shape)
        return {
            "loss": self.loss(logits, y).double().flatten(1).mean(1),
            "correct": (self.predict(logits) == y.long()).double().flatten(1).mean(1),
        }

    def properties(self, model: Model, params: Params) -> dict[str, Tensor]:
        """Scalar properties of each run, each (R,): accuracies, losses and task-specific ones."""
        out: dict[str, Tensor] = {}
        for split_name, split in {"train": self.train, "test": self.test, **self.probes}.items():
            ev = self.evaluate(model, params, split)
            out[f"{split_name}_loss"] = ev["loss"].mean(1)
            out[f"{split_name}_acc"] = ev["correct"].mean(1)
        out.update(self.extra_properties(model, params))
        return out

    def extra_properties(self, model: Model, params: Params) -> dict[str, Tensor]:
        """Task-specific properties (override)."""
        return {}


def population(params: Params) -> int:
    return next(iter(params.values())).shape[0]


TaskBuilder = Callable[..., Task]
