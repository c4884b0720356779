"""Per-token analyses of language-model populations: which tokens runs learn alike, and when.

Inputs are per-token losses (nats), as :meth:`pathdep.tasks.sequence.SequenceTask.evaluate`
returns them: ``losses`` (R, S, N) for R runs at S checkpoint steps and N tokens.

- :func:`logprob_scatter`: how alike two runs' per-token log-probabilities are (Pearson and
  Spearman correlation, share of tokens where one run is confident and the other is not).
- :func:`token_loss_pca`: principal components of per-token loss vectors over all (run, step)
  rows; runs that learn the same tokens in the same order trace the same path.
- :func:`curve_shapes`: each token's loss curve over steps classified as ``sharp`` (an S-shaped
  drop inside a small part of training), ``smooth`` or ``flat``.

:func:`token_losses` computes the (R, S, N) array from a study (one population forward pass per
step) and caches it as the study table ``token_losses_{split}``. The ``plot_*`` functions draw
one figure each on a given matplotlib axis.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from pathdep.errors import PathdepError
from pathdep.tasks.base import Split
from pathdep.tasks.induction import phase_change


def _pearson(a: Tensor, b: Tensor) -> float:
    a, b = a.double() - a.double().mean(), b.double() - b.double().mean()
    return float((a @ b) / (a.norm() * b.norm()))


def _ranks(x: Tensor) -> Tensor:
    """Average ranks (ties share their mean rank): (N,) -> (N,) float64."""
    from scipy.stats import rankdata

    return torch.from_numpy(rankdata(x.double().numpy())).double()


def logprob_scatter(loss_a: Tensor, loss_b: Tensor, confident: float = 0.5) -> dict[str, float]:
    """Agreement of two runs' per-token log-probabilities: loss_a, loss_b (N,) in nats.

    ``disagree`` is the share of tokens on which one run has loss < ``confident`` and the other
    loss > 2 nats more than that (one has learned the token, the other has not).

    >>> a = torch.tensor([0.1, 1.0, 3.0, 0.2])
    >>> logprob_scatter(a, a)["pearson"]
    1.0
    """
    if loss_a.shape != loss_b.shape or loss_a.dim() != 1:
        raise PathdepError(f"logprob_scatter needs two (N,) loss vectors. Got {tuple(loss_a.shape)} and {tuple(loss_b.shape)}.")
    hi = confident + 2.0
    one_way = ((loss_a < confident) & (loss_b > hi)) | ((loss_b < confident) & (loss_a > hi))
    return {
        "pearson": round(_pearson(loss_a, loss_b), 12),
        "spearman": round(_pearson(_ranks(loss_a), _ranks(loss_b)), 12),
        "disagree": float(one_way.double().mean()),
        "mean_abs_diff": float((loss_a - loss_b).abs().mean()),
    }


@dataclass(frozen=True)
class TokenPCA:
    """Principal components of per-token loss vectors.

    ``scores`` (R, S, k): each (run, step) row projected on the components; ``components``
    (k, N); ``explained`` (k,): share of the total variance of each component.
    """

    scores: Tensor
    components: Tensor
    explained: Tensor


def token_loss_pca(losses: Tensor, k: int = 3) -> TokenPCA:
    """PCA over all (run, step) rows of ``losses`` (R, S, N), centred on their mean row."""
    r, s, n = losses.shape
    x = losses.reshape(r * s, n).double()
    x = x - x.mean(0, keepdim=True)
    u, sv, vh = torch.linalg.svd(x, full_matrices=False)
    k = min(k, sv.shape[0])
    var = sv**2
    return TokenPCA(
        scores=(u[:, :k] * sv[:k]).reshape(r, s, k),
        components=vh[:k],
        explained=var[:k] / var.sum(),
    )


def curve_shapes(
    steps: Sequence[int], losses: Tensor, min_drop: float = 0.5, sharp_fraction: float = 0.2, log_steps: bool = False
) -> dict[str, Tensor]:
    """Classify each token's loss curve: losses (S, N) at ``steps`` -> per token (N,).

    ``drop``: first minus last loss; ``step``: where the curve crosses half its drop; ``width``:
    steps between 20% and 80% of the drop (see :func:`pathdep.tasks.induction.phase_change`);
    ``kind``: 0 ``flat`` (drop < ``min_drop``), 1 ``smooth``, 2 ``sharp`` (width at most
    ``sharp_fraction`` of the training span). With ``log_steps`` the time axis is log(1 + step)
    (for log-spaced checkpoints); ``step`` and ``width`` are then in those units. Use
    :data:`KINDS` for the names.
    """
    curves = losses.T.double()  # (N, S)
    if log_steps:
        steps = torch.log1p(torch.as_tensor(list(steps), dtype=torch.float64)).tolist()
    found = phase_change(steps, curves)
    drop = curves[:, 0] - curves[:, -1]
    span = float(max(steps) - min(steps))
    kind = torch.ones(curves.shape[0], dtype=torch.long)
    kind[found["width"] <= sharp_fraction * span] = 2
    kind[drop < min_drop] = 0
    return {"drop": drop, "step": found["step"], "width": found["width"], "kind": kind}


KINDS = ("flat", "smooth", "sharp")


def token_losses(
    study,
    split: str = "test",
    runs: list[str] | None = None,
    max_tokens: int = 4096,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[str], list[int], Tensor]:
    """Per-token losses of ``runs`` at every checkpoint step they share: (runs, steps, (R, S, N)).

    The first ``max_tokens`` tokens of the split (whole sequences) are scored. The result is cached
    as the study table ``token_losses_{split}`` (columns run, step, token, loss) and read back
    from it when present for the same runs.
    """
    task = study.task
    data: Split = task.test if split == "test" else task.probes.get(split)  # type: ignore[assignment]
    if data is None:
        raise PathdepError(f"The 'split' argument must be 'test' or one of {sorted(task.probes)}. Got {split!r} instead.")
    names = sorted(runs if runs is not None else study.runs()["run"])
    table = f"token_losses_{split}"
    if study.has_table(table):
        df = study.read_table(table)
        if sorted(df["run"].unique()) == names:
            return _from_long(df)
    steps = sorted(set.intersection(*(set(study.steps(r)) for r in names)))
    n_seq = max(1, max_tokens // data.x.shape[1])
    sub = Split(data.x[:n_seq], data.y[:n_seq])
    model = study.model(names[0])
    out = []
    for i, step in enumerate(steps):
        with torch.no_grad():
            out.append(task.evaluate(model, study.load_population(names, step), sub)["loss"])  # (R, N)
        if progress is not None:
            progress(i + 1, len(steps))
    losses = torch.stack(out, dim=1)  # (R, S, N)
    study.write_table(table, _to_long(names, steps, losses))
    return names, steps, losses


def _to_long(runs: list[str], steps: list[int], losses: Tensor) -> pd.DataFrame:
    r, s, n = losses.shape
    idx = np.indices((r, s, n)).reshape(3, -1)
    return pd.DataFrame({
        "run": np.asarray(runs)[idx[0]], "step": np.asarray(steps)[idx[1]], "token": idx[2],
        "loss": losses.reshape(-1).numpy(),
    })


def _from_long(df: pd.DataFrame) -> tuple[list[str], list[int], Tensor]:
    runs, steps = sorted(df["run"].unique()), sorted(df["step"].unique())
    n = int(df["token"].max()) + 1
    df = df.sort_values(["run", "step", "token"])
    return list(runs), [int(s) for s in steps], torch.tensor(df["loss"].to_numpy()).view(len(runs), len(steps), n)


# --- plots (one axis each) ----------------------------------------------------------------------
def plot_logprob_scatter(ax, loss_a: Tensor, loss_b: Tensor, label_a: str = "run a", label_b: str = "run b") -> None:
    """Per-token log-probabilities of two runs against each other (hexbin, log counts)."""
    ax.hexbin(-loss_a.numpy(), -loss_b.numpy(), gridsize=40, bins="log", cmap="viridis", mincnt=1)
    lo = float(min(-loss_a.max(), -loss_b.max()))
    ax.plot([lo, 0], [lo, 0], c="w", lw=0.6, ls="--")
    stats = logprob_scatter(loss_a, loss_b)
    ax.set(xlabel=f"log p, {label_a}", ylabel=f"log p, {label_b}",
           title=f"Spearman {stats['spearman']:.2f}, one-way {stats['disagree']:.1%}")


def plot_token_pca(ax, pca: TokenPCA, runs: Sequence[str]) -> None:
    """Each run's path through the first two principal components of per-token losses."""
    for i, run in enumerate(runs):
        ax.plot(pca.scores[i, :, 0], pca.scores[i, :, 1], marker=".", ms=3, lw=0.8, label=run)
    ax.set(xlabel=f"PC1 ({pca.explained[0]:.0%})", ylabel=f"PC2 ({pca.explained[1]:.0%})",
           title="per-token losses, runs x steps")


def plot_curve_shapes(ax, steps: Sequence[int], losses: Tensor, shapes: dict[str, Tensor], per_kind: int = 6) -> None:
    """A few token loss curves of each kind (sharp, smooth), drawn against log steps."""
    x = np.maximum(np.asarray(steps, dtype=float), 1)
    for kind, colour in ((2, "C3"), (1, "C0")):
        chosen = (shapes["kind"] == kind).nonzero().squeeze(1)[:per_kind]
        for j, tok in enumerate(chosen.tolist()):
            ax.plot(x, losses[:, tok].numpy(), c=colour, lw=0.8, alpha=0.8, label=KINDS[kind] if j == 0 else None)
    ax.set(xscale="log", xlabel="step", ylabel="token loss (nats)", title="sharp vs smooth token curves")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(frameon=False)
