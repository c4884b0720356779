"""TOK: the per-token view of a language-model population (token-level tasks only).

Reads the per-token losses of the ``behaviour`` table (probe ``test``; for a token-level task
each "example" is one token) and answers which tokens runs learn alike, and when:

- the Spearman correlation of two runs' per-token log-probabilities, at mid-training and at the
  end, averaged over pairs of runs (headline: at the end; interval: bootstrap over runs and
  tokens jointly);
- the share of variance on the first principal component of per-token loss vectors over all
  (run, step) rows: one dominant direction means runs learn the same tokens in the same order;
- each token's loss curve (mean over runs) classified as sharp (an S-shaped drop within 20% of
  training), smooth or flat (:func:`pathdep.analyses.tokens.curve_shapes`).

Least data: a token-level task and 5 runs (the interval resamples runs; see A).
"""

from __future__ import annotations

import io

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy.stats import rankdata

from pathdep.analyses import stats, tokens
from pathdep.analyses.data import NotMeasured, StudyData, analysis
from pathdep.analyses.finding import Finding

MAX_RUNS = 8  # pairs of at most this many runs enter the correlations


def mean_pair_spearman(losses: np.ndarray) -> float:
    """Mean Spearman correlation over all pairs of rows: losses (R, N) -> float."""
    ranks = np.apply_along_axis(rankdata, 1, losses)
    corr = np.corrcoef(ranks)
    return float(corr[np.triu_indices(len(ranks), 1)].mean())


def token_level(data: StudyData) -> None:
    """TOK asks its question of language models only."""
    from pathdep.tasks.sequence import SequenceTask

    if not isinstance(data.study.task, SequenceTask):
        raise NotMeasured("the task is not token-level (no language model)")


@analysis("TOK", applies=token_level, tables=("behaviour",), min_runs=5)
def analyse_tok(data: StudyData) -> Finding:
    """Per-token agreement, PCA and curve shapes (see the module docstring)."""
    runs = data.reference[:MAX_RUNS]
    steps = data.behaviour_steps(runs)
    losses = np.stack([data.behaviour(runs, s, "loss", "test") for s in steps], axis=1)  # (R, S, N)
    mid = int(np.argmin(np.abs(np.asarray(steps) - steps[-1] / 2)))
    final, middle = losses[:, -1], losses[:, mid]
    value = mean_pair_spearman(final)

    def stat(r: np.ndarray, e: np.ndarray) -> float:
        return mean_pair_spearman(final[np.unique(r)][:, e]) if len(np.unique(r)) > 1 else np.nan

    ci, _ = stats.multi_bootstrap(stat, *final.shape, data.rng(0x70), n_boot=200)
    pca = tokens.token_loss_pca(torch.from_numpy(losses))
    shapes = tokens.curve_shapes(steps, torch.from_numpy(losses.mean(0)), log_steps=True)  # (S, N) mean over runs
    counts = {k: int((shapes["kind"] == i).sum()) for i, k in enumerate(tokens.KINDS)}
    details = {"runs": len(runs), "tokens": losses.shape[2], "steps": steps, "mid_step": steps[mid],
               "spearman_mid": mean_pair_spearman(middle), "spearman_final": value,
               "pc1_share": float(pca.explained[0]), "curve_kinds": counts}
    verdict = (f"two runs' per-token log-probs correlate at Spearman {details['spearman_mid']:.2f} at step "
               f"{steps[mid]} and {value:.2f} at the end; PC1 of per-token losses holds {pca.explained[0]:.0%} "
               f"of the variance; token curves: {counts['sharp']} sharp, {counts['smooth']} smooth, {counts['flat']} flat")
    return Finding("TOK", "per-token Spearman between runs (final)", value, ci, verdict, details,
                   plot=_figure(runs, steps, losses, pca, shapes))


def _figure(runs, steps, losses: np.ndarray, pca, shapes) -> bytes:
    fig = Figure(figsize=(13, 3.8), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    a, b, c = fig.subplots(1, 3)
    t = torch.from_numpy(losses)
    tokens.plot_logprob_scatter(a, t[0, -1], t[1, -1], runs[0], runs[1])
    tokens.plot_token_pca(b, pca, runs)
    tokens.plot_curve_shapes(c, steps, t.mean(0), shapes)
    fig.suptitle("TOK: per-token log-probs of two runs · runs through PCA of token losses · token loss curves",
                 fontsize=10, x=0.01, ha="left")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
