"""Next-token prediction tasks: every position of a sequence is scored.

``x`` is (N, T) token ids and ``y`` is (N, T) the next token at each position; the model's logits
are (R, B, T, V). The per-example loss the engine trains on is the mean over the T positions of a
sequence. :meth:`SequenceTask.evaluate` scores every token: its tensors are (R, N * T), position
``t`` of sequence ``n`` at column ``n * T + t``, so per-example measurements (agreement, loss
correlations, behaviour tables) work on tokens unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
import torch
from torch import Tensor
from torch.nn import functional as F

from pathdep.models.base import Model, Params
from pathdep.tasks.base import Split, Task, population

EVAL_ELEMENTS = 1 << 24  # logits elements per evaluation chunk (64 MiB of float32)


def token_loss(logits: Tensor, y: Tensor) -> Tensor:
    """Cross-entropy of every token: logits (..., V), y (...) -> (...)."""
    return F.cross_entropy(logits.flatten(0, -2), y.flatten().long(), reduction="none").view(y.shape)


def token_margin(logits: Tensor, y: Tensor) -> Tensor:
    """Logit of the true token minus the largest other logit: logits (..., V), y (...) -> (...)."""
    true = logits.gather(-1, y.long().unsqueeze(-1)).squeeze(-1)
    other = logits.scatter(-1, y.long().unsqueeze(-1), float("-inf")).amax(-1)
    return true - other


@dataclass(frozen=True, eq=False)
class SequenceTask(Task):
    """A token-level task: loss per sequence for training, per token for evaluation.

    :meth:`properties` gives each split's mean token loss and accuracy (``train`` on its first
    ``eval_train`` sequences only) and, for every (N, T) bool tensor ``m`` in a split's ``extra``,
    the same two means over the tokens it selects: ``{split}_{m}_loss`` and ``{split}_{m}_acc``.
    """

    eval_train: int = 256

    def properties(self, model: Model, params: Params) -> dict[str, Tensor]:
        n = self.eval_train
        splits = {"train": Split(self.train.x[:n], self.train.y[:n]), "test": self.test, **self.probes}
        out: dict[str, Tensor] = {}
        with torch.no_grad():
            for name, split in splits.items():
                ev = self.evaluate(model, params, split)  # (R, N*T) each
                out[f"{name}_loss"], out[f"{name}_acc"] = ev["loss"].mean(1), ev["correct"].mean(1)
                for key, mask in token_masks(split).items():
                    cols = mask.flatten()
                    out[f"{name}_{key}_loss"] = ev["loss"][:, cols].mean(1)
                    out[f"{name}_{key}_acc"] = ev["correct"][:, cols].mean(1)
        out.update(self.extra_properties(model, params))
        return out

    def mean_loss_and_accuracy(self, model: Model, params: Params, split: Split) -> dict[str, Tensor]:
        """Mean token loss and accuracy of each run, float64 (R,) each (evaluated in chunks)."""
        ev = self.evaluate(model, params, split)
        return {"loss": ev["loss"].double().mean(1), "correct": ev["correct"].double().mean(1)}

    def loss(self, logits: Tensor, y: Tensor) -> Tensor:
        """Mean token cross-entropy of each sequence: logits (R, B, T, V), y (R, B, T) -> (R, B)."""
        return token_loss(logits, y).mean(-1)

    def evaluate(self, model: Model, params: Params, split: Split) -> dict[str, Tensor]:
        """Per-token loss, prediction, correctness and margin: each (R, N * T)."""
        logits_chunks = self.logits(model, params, split.x)
        r = population(params)
        out: dict[str, list[Tensor]] = {"loss": [], "pred": [], "correct": [], "margin": []}
        start = 0
        for logits in logits_chunks:  # (R, b, T, V)
            y = split.y[start : start + logits.shape[1]].unsqueeze(0).expand(r, -1, -1)  # (R, b, T)
            start += logits.shape[1]
            pred = logits.argmax(-1)
            out["loss"].append(token_loss(logits, y).flatten(1))
            out["pred"].append(pred.flatten(1))
            out["correct"].append((pred == y).float().flatten(1))
            out["margin"].append(token_margin(logits, y).flatten(1))
        return {k: torch.cat(v, dim=1) for k, v in out.items()}

    def logits(self, model: Model, params: Params, x: Tensor) -> list[Tensor]:
        """Logits of every run on x (N, T), in chunks of sequences: a list of (R, b, T, V)."""
        r = population(params)
        n, t = x.shape
        per_seq = r * t * self.n_outputs
        chunk = max(1, EVAL_ELEMENTS // per_seq)
        return [model.apply(params, x[i : i + chunk].unsqueeze(0).expand(r, -1, -1)) for i in range(0, n, chunk)]


def shift(seqs: Tensor) -> Split:
    """Inputs and next-token targets of sequences (N, T + 1): x = seqs[:, :-1], y = seqs[:, 1:]."""
    return Split(seqs[:, :-1].contiguous(), seqs[:, 1:].contiguous())


def token_masks(split: Split) -> dict[str, Tensor]:
    """The (N, T) bool tensors of a split's ``extra``: named subsets of its tokens."""
    shape = tuple(split.x.shape)
    return {k: v for k, v in split.extra.items() if v.dtype == torch.bool and tuple(v.shape) == shape}


def property_curves(study, runs: list[str] | None = None, progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """Every property of every run at every checkpoint step: one row per (run, step).

    ``study`` is a :class:`pathdep.Study` (runs of one architecture). Each step is one population
    (all the runs that have it), so the cost is one ``properties`` call per checkpoint step.
    """
    names = list(runs) if runs is not None else list(study.runs()["run"])
    task, model = study.task_of(names[0]), study.model(names[0])
    by_step: dict[int, list[str]] = {}
    for run in names:
        for step in study.steps(run):
            by_step.setdefault(step, []).append(run)
    rows: list[dict] = []
    for i, (step, members) in enumerate(sorted(by_step.items())):
        props = task.properties(model, study.load_population(members, step))
        rows += [{"run": run, "step": step} | {k: float(v[j]) for k, v in props.items()} for j, run in enumerate(members)]
        if progress is not None:
            progress(i + 1, len(by_step))
    return pd.DataFrame(rows)
