"""Induction heads: next-token prediction on sequences made of one random block repeated.

Each sequence of ``seq_len + 1`` tokens is a block of L distinct random tokens (L uniform in
[min_block, max_block]) repeated to fill it; the model sees the first ``seq_len`` and predicts the
next token at every position. Tokens of the first block cannot be predicted; from position L on,
every next token is the one that followed the current token's previous occurrence, which an
induction head (a previous-token head in one layer composed with a head in a later layer) copies.
Because L varies, no head at a fixed offset solves the task.

Properties of a run (each (R,)), on the ``test`` split (same distribution, held-out sequences):

- ``test_first_loss`` / ``test_repeated_loss`` (and ``_acc``): mean next-token loss (accuracy)
  in the first block / in the repeats (``long_blocks_*`` the same on the probe);
- ``induction.{l}.{h}``: attention of head h of layer l from position t to the positions whose
  previous token equals token t (the tokens after its earlier occurrences), averaged over t >= L;
- ``prev_token.{l}.{h}``: attention from t to t - 1, averaged over t >= 1;
- ``induction_score`` / ``prev_token_score``: the largest head score (``induction_score`` is the
  solution type: high for an induction circuit, low for anything else).

The ``long_blocks`` probe uses block lengths beyond the training range, a check that a run copies
by content, not by position. :func:`phase_change` reads the step of the drop from a property's
values over checkpoints.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor

from pathdep.errors import PathdepError
from pathdep.models.base import Model, Params, capture
from pathdep.tasks.base import Split
from pathdep.tasks.sequence import SequenceTask, shift


class InductionArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    vocab: int = Field(64, ge=2, description="number of token ids")
    seq_len: int = Field(40, ge=4, description="tokens the model sees per sequence")
    min_block: int = Field(5, ge=2, description="shortest repeated block")
    max_block: int = Field(20, ge=2, description="longest repeated block")
    n_train: int = Field(8192, ge=1, description="training sequences")
    n_test: int = Field(256, ge=1, description="held-out sequences (properties are read on them)")
    n_score: int = Field(256, ge=1, description="test sequences used for attention scores")
    seed: int = Field(0, description="seed of the data itself (not of any run)")

    @model_validator(mode="after")
    def _check(self) -> InductionArgs:
        if not self.min_block <= self.max_block < self.seq_len:
            raise ValueError(
                f"block lengths must satisfy min_block <= max_block < seq_len; "
                f"got {self.min_block}, {self.max_block}, {self.seq_len}"
            )
        if self.max_block > self.vocab:
            raise ValueError(f"max_block ({self.max_block}) must be <= vocab ({self.vocab}): block tokens are distinct")
        return self


def repeated_blocks(n: int, length: int, vocab: int, lo: int, hi: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """Sequences (n, length) of a block of distinct tokens repeated, and block lengths (n,) in [lo, hi]."""
    block_len = torch.randint(lo, hi + 1, (n,), generator=gen)  # (n,)
    blocks = torch.rand(n, vocab, generator=gen).argsort(dim=1)[:, :hi]  # (n, hi) distinct per row
    pos = torch.arange(length).unsqueeze(0) % block_len.unsqueeze(1)  # (n, length)
    return blocks.gather(1, pos), block_len


def _split(n: int, args: InductionArgs, lo: int, hi: int, gen: torch.Generator) -> Split:
    seqs, block_len = repeated_blocks(n, args.seq_len + 1, args.vocab, lo, hi, gen)
    s = shift(seqs)
    repeated = torch.arange(args.seq_len).unsqueeze(0) >= block_len.unsqueeze(1)  # (n, T)
    return Split(s.x, s.y, {"block_len": block_len, "first": ~repeated, "repeated": repeated})


def induction_targets(x: Tensor) -> Tensor:
    """(N, T, T) bool: key k is an induction target of query t (k <= t, k >= 1, x[k-1] == x[t])."""
    prev = torch.cat([torch.full_like(x[:, :1], -1), x[:, :-1]], dim=1)  # (N, T): token before k
    same = prev.unsqueeze(1) == x.unsqueeze(2)  # (N, Tq, Tk)
    return same & torch.ones(x.shape[1], x.shape[1], dtype=torch.bool).tril()


def head_scores(pattern: Tensor, targets: Tensor) -> Tensor:
    """Mean attention on target keys over queries that have one: pattern (R, N, H, T, T) -> (R, H)."""
    t = targets.to(pattern.dtype)  # (N, T, T)
    mass = (pattern * t.unsqueeze(1)).sum(-1)  # (R, N, H, T)
    has = (t.sum(-1) > 0).to(pattern.dtype)  # (N, T)
    return (mass * has.unsqueeze(1)).sum((1, 3)) / has.sum()


def previous_token_targets(n: int, t: int) -> Tensor:
    """(n, T, T) bool: key t - 1 for every query t >= 1."""
    return torch.ones(t, t, dtype=torch.bool).tril(-1).triu(-1).expand(n, t, t)


@dataclass(frozen=True, eq=False)
class InductionTask(SequenceTask):
    """See the module docstring."""

    n_score: int = 256

    def extra_properties(self, model: Model, params: Params) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        x = self.test.x[: self.n_score]  # (N, T)
        ind, prev = induction_targets(x), previous_token_targets(*x.shape)
        names = {f"blocks.{l}.attn.hook_pattern" for l in range(getattr(model, "n_layers", 0))}
        with torch.no_grad(), capture(names) as acts:
            model.apply(params, x.unsqueeze(0).expand(_runs(params), -1, -1))
        ind_all, prev_all = [], []
        for l in range(len(names)):
            pattern = acts[f"blocks.{l}.attn.hook_pattern"]  # (R, N, H, T, T)
            s_ind, s_prev = head_scores(pattern, ind), head_scores(pattern, prev)  # (R, H)
            for h in range(pattern.shape[2]):
                out[f"induction.{l}.{h}"], out[f"prev_token.{l}.{h}"] = s_ind[:, h], s_prev[:, h]
            ind_all.append(s_ind)
            prev_all.append(s_prev)
        if ind_all:
            out["induction_score"] = torch.cat(ind_all, 1).amax(1)
            out["prev_token_score"] = torch.cat(prev_all, 1).amax(1)
        return out

    def loss_by_position(self, model: Model, params: Params) -> Tensor:
        """Mean test loss at each position, (R, T): the per-position curve."""
        with torch.no_grad():
            loss = self.evaluate(model, params, self.test)["loss"]  # (R, N*T)
        return loss.view(loss.shape[0], *self.test.x.shape).mean(1)


def _runs(params: Params) -> int:
    return next(iter(params.values())).shape[0]


def phase_change(steps: Sequence[int], values: Tensor, low: float = 0.2, high: float = 0.8) -> dict[str, Tensor]:
    """When a property moves from its first to its last value, per run.

    ``values`` (R, S) at checkpoint ``steps`` (S,). ``step`` is where the curve first crosses the
    midpoint between its first and last value (linear interpolation between checkpoints);
    ``width`` is the number of steps between its crossings of ``low`` and ``high`` of the total
    change (a sharp phase change has a small width, a smooth decline a wide one). NaN where the
    curve does not move.

    >>> v = torch.tensor([[4.0, 4.0, 4.0, 0.5, 0.4]])
    >>> phase_change([0, 10, 20, 30, 40], v)["step"]
    tensor([25.1429], dtype=torch.float64)
    """
    s = torch.as_tensor(list(steps), dtype=torch.float64)  # (S,)
    v = values.double()
    frac = (v - v[:, :1]) / (v[:, -1:] - v[:, :1])  # (R, S): 0 at the start, 1 at the end
    return {"step": _crossing(s, frac, 0.5), "width": _crossing(s, frac, high) - _crossing(s, frac, low)}


def _crossing(s: Tensor, frac: Tensor, level: float) -> Tensor:
    """First step (interpolated) where ``frac`` (R, S) reaches ``level``; NaN if never."""
    above = frac >= level  # (R, S)
    first = torch.where(above.any(1), above.double().argmax(1), torch.tensor(-1))  # (R,)
    i = first.clamp(min=1)
    f0, f1 = frac.gather(1, (i - 1).unsqueeze(1)).squeeze(1), frac.gather(1, i.unsqueeze(1)).squeeze(1)
    t = ((level - f0) / (f1 - f0)).clamp(0, 1)
    out = s[i - 1] + t * (s[i] - s[i - 1])
    out = torch.where(first == 0, s[0], out)
    return torch.where((first < 0) | ~torch.isfinite(frac).all(1), torch.nan, out)


def build(args: InductionArgs) -> InductionTask:
    gen = torch.Generator().manual_seed(args.seed)
    train = _split(args.n_train, args, args.min_block, args.max_block, gen)
    test = _split(args.n_test, args, args.min_block, args.max_block, gen)
    long_lo = args.max_block + 1
    probes = {}
    if long_lo < args.seq_len and long_lo <= args.vocab:
        hi = min(args.seq_len - 1, args.vocab, long_lo + (args.max_block - args.min_block))
        probes["long_blocks"] = _split(args.n_test, args, long_lo, hi, gen)
    return InductionTask(
        name="induction",
        train=Split(train.x, train.y),
        test=test,
        probes=probes,
        n_outputs=args.vocab,
        loss_kind="ce",
        solution_property="induction_score",
        doc=__doc__.splitlines()[0],
        n_score=min(args.n_score, args.n_test),
    )


def phase_changes(curves: pd.DataFrame, column: str = "test_repeated_loss") -> pd.DataFrame:
    """Per run: the phase-change ``step`` and ``width`` of one property's curve over checkpoints.

    ``curves`` has columns run, step and ``column`` (as :func:`pathdep.tasks.sequence.property_curves`
    returns); every run needs the same checkpoint steps.
    """
    wide = curves.pivot(index="run", columns="step", values=column).sort_index(axis=1)
    if wide.isna().any().any():
        raise PathdepError(f"phase_changes needs the same checkpoint steps for every run; column {column!r} has gaps.")
    found = phase_change(list(wide.columns), torch.tensor(wide.to_numpy()))
    return pd.DataFrame({"run": wide.index, "step": found["step"].numpy(), "width": found["width"].numpy()})
