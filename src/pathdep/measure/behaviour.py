"""Behaviour of checkpoints on fixed examples, and how alike two checkpoints behave.

A checkpoint's behaviour on a probe set is four per-example vectors: loss, predicted label,
correctness and signed margin of the true label. Members (runs, steps, ...) are rows, examples
columns: every pairwise statistic below compares all rows of ``a`` with all rows of ``b`` with
matrix products, never a loop over pairs.

Statistics, for members ``i`` (of ``a``) and ``j`` (of ``b``), each (M, S):

- ``loss_pearson``: Pearson correlation of per-example losses;
- ``loss_spearman``: Spearman correlation (Pearson of average ranks, ties averaged);
- ``agreement``: fraction of examples with the same predicted label;
- ``error_kappa``: Cohen's kappa of the two error indicators (the "error consistency" of
  Geirhos et al., 2020): ``(p_obs - p_exp) / (1 - p_exp)`` where ``p_obs`` is the fraction of
  examples on which both are right or both wrong and ``p_exp = q_i q_j + (1 - q_i)(1 - q_j)``
  is what independent errors at error rates ``q_i``, ``q_j`` would give. 0 means errors overlap
  as by chance, 1 that the same examples are missed. NaN where undefined (both error-free, or
  both always wrong).

Correlations are NaN where a member's losses are constant.
"""

from __future__ import annotations

import torch
from scipy.stats import rankdata
from torch import Tensor

from pathdep.measure.population import Progress, auto_chunk, evaluate_members, size, take
from pathdep.models.base import Model, Params
from pathdep.tasks.base import Split, Task

PAIR_STATS = ("loss_pearson", "loss_spearman", "agreement", "error_kappa")


def evaluate_behaviour(
    task: Task, model: Model, params: Params, split: Split, chunk: int | None = None, progress: Progress | None = None
) -> dict[str, Tensor]:
    """Per-example loss, pred, correct, margin of every member on ``split``: each (M, N).

    Members are evaluated ``chunk`` at a time (default: as many as fit the cache budget).

    >>> from pathdep.models.mlp import MLP
    >>> from pathdep.tasks.base import Split, Task
    >>> t = Task("toy", Split(torch.zeros(4, 3), torch.zeros(4)), Split(torch.zeros(5, 3), torch.ones(5)), {}, 1, "bce")
    >>> m = MLP(d_in=3, hidden=(2,), d_out=1)
    >>> tuple(evaluate_behaviour(t, m, m.init_population([0, 1]), t.test)["margin"].shape)
    (2, 5)
    """
    chunk = chunk or auto_chunk(model, params, split)
    return evaluate_members(task, model, lambda idx: take(params, idx), size(params), split, chunk, progress)


def _standardize(x: Tensor) -> Tensor:
    """Rows centred and scaled to unit norm: (M, N) float64."""
    x = x.double()
    x = x - x.mean(1, keepdim=True)
    return x / x.norm(dim=1, keepdim=True)


def pearson(a: Tensor, b: Tensor | None = None) -> Tensor:
    """Pearson correlation of every row of ``a`` (M, N) with every row of ``b`` (S, N): (M, S)."""
    za = _standardize(a)
    zb = za if b is None else _standardize(b)
    return (za @ zb.T).clamp(-1, 1)


def ranks(x: Tensor) -> Tensor:
    """Average ranks (1-based, ties averaged) along each row of (M, N)."""
    return torch.from_numpy(rankdata(x.detach().double().cpu().numpy(), axis=1, method="average"))


def spearman(a: Tensor, b: Tensor | None = None) -> Tensor:
    """Spearman rank correlation of every row of ``a`` with every row of ``b``: (M, S)."""
    return pearson(ranks(a), None if b is None else ranks(b))


def agreement(pred_a: Tensor, pred_b: Tensor | None = None) -> Tensor:
    """Fraction of examples with equal predicted labels, rows of ``pred_a`` vs rows of ``pred_b``.

    pred (M, N) integer labels -> (M, S). One matrix product over one-hot labels.

    >>> agreement(torch.tensor([[0, 1, 1, 0], [0, 1, 0, 0]]))
    tensor([[1.0000, 0.7500],
            [0.7500, 1.0000]], dtype=torch.float64)
    """
    pred_b = pred_a if pred_b is None else pred_b
    n_classes = int(max(pred_a.max(), pred_b.max())) + 1
    oa = torch.nn.functional.one_hot(pred_a.long(), n_classes).flatten(1).double()  # (M, N*C)
    ob = torch.nn.functional.one_hot(pred_b.long(), n_classes).flatten(1).double()  # (S, N*C)
    return (oa @ ob.T) / pred_a.shape[1]


def error_kappa(correct_a: Tensor, correct_b: Tensor | None = None) -> Tensor:
    """Cohen's kappa of error indicators (error overlap beyond independence): (M, S)."""
    ea = 1 - correct_a.double()  # (M, N) 1 where wrong
    eb = ea if correct_b is None else 1 - correct_b.double()
    n = ea.shape[1]
    both_wrong = ea @ eb.T / n
    both_right = (1 - ea) @ (1 - eb).T / n
    qa, qb = ea.mean(1, keepdim=True), eb.mean(1, keepdim=True).T  # (M, 1), (1, S)
    p_obs = both_wrong + both_right
    p_exp = qa * qb + (1 - qa) * (1 - qb)
    denom = 1 - p_exp
    out = (p_obs - p_exp) / denom
    return torch.where(denom.abs() < 1e-12, torch.full_like(out, float("nan")), out)


def pair_matrices(ev_a: dict[str, Tensor], ev_b: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
    """All four pairwise statistics between members of two behaviour dicts: each (M, S)."""
    get = (lambda k: None) if ev_b is None else (lambda k: ev_b[k])
    return {
        "loss_pearson": pearson(ev_a["loss"], get("loss")),
        "loss_spearman": spearman(ev_a["loss"], get("loss")),
        "agreement": agreement(ev_a["pred"], get("pred")),
        "error_kappa": error_kappa(ev_a["correct"], get("correct")),
    }


def pair_rows(ev_a: dict[str, Tensor], ev_b: dict[str, Tensor]) -> dict[str, Tensor]:
    """The four statistics between row i of ``ev_a`` and row i of ``ev_b``: each (P,).

    The diagonal of :func:`pair_matrices`, computed row-wise (for step-vs-final comparisons).
    """
    za, zb = _standardize(ev_a["loss"]), _standardize(ev_b["loss"])
    ra, rb = _standardize(ranks(ev_a["loss"])), _standardize(ranks(ev_b["loss"]))
    ea, eb = 1 - ev_a["correct"].double(), 1 - ev_b["correct"].double()  # (P, N)
    qa, qb = ea.mean(1), eb.mean(1)
    p_obs = (ea * eb + (1 - ea) * (1 - eb)).mean(1)
    p_exp = qa * qb + (1 - qa) * (1 - qb)
    kappa = (p_obs - p_exp) / (1 - p_exp)
    return {
        "loss_pearson": (za * zb).sum(1).clamp(-1, 1),
        "loss_spearman": (ra * rb).sum(1).clamp(-1, 1),
        "agreement": (ev_a["pred"] == ev_b["pred"]).double().mean(1),
        "error_kappa": torch.where((1 - p_exp).abs() < 1e-12, torch.full_like(kappa, float("nan")), kappa),
    }
