"""B: how sensitive is the outcome to small setup changes?

Runs trained from init are grouped by setup variant (variants with interventions belong to F).
The dissimilarity of two runs is the fraction of probe examples on which their final predictions
differ. Headline: mean dissimilarity between runs of different variants over the mean within a
variant; 1 means a setup change moves runs no further apart than a new seed does. The p-value
shuffles variant labels (permutation test); the interval resamples runs within each variant.

Least data: 2 setup variants of at least 2 runs each (a within-variant mean needs a pair) and 7
runs in them. The permutation test can only reach p < 0.05 when the runs split into variants of
these sizes in more than 20 distinct ways: 2 + 5 runs split 21 ways, 3 + 3 only 10, 2 + 2 + 2 15.
A setup whose runs all make identical predictions leaves the ratio undefined (0 within).
"""

from __future__ import annotations

import numpy as np

from pathdep.analyses import stats
from pathdep.analyses.data import NotMeasured, StudyData, analysis
from pathdep.analyses.finding import Finding


def disagreement(pred: np.ndarray) -> np.ndarray:
    """Fraction of examples on which two runs' predictions differ: pred (R, N) -> (R, R)."""
    return 1.0 - stats.agreement_matrix(pred)


def between_within(d: np.ndarray, labels: np.ndarray, same_run: np.ndarray | None = None) -> float:
    """Mean of ``d`` over pairs with different labels / mean over pairs with the same label.

    ``same_run`` (R, R) marks pairs that are one run twice (after resampling); they are skipped.
    """
    off = ~np.eye(len(labels), dtype=bool) if same_run is None else ~same_run
    same = (labels[:, None] == labels[None, :]) & off
    diff = (labels[:, None] != labels[None, :]) & off
    if not same.any() or not diff.any():
        return float("nan")
    within = d[same].mean()
    return float(d[diff].mean() / within) if within > 0 else float("inf")


def _variant_runs(data: StudyData) -> tuple[list[str], np.ndarray, list[str]]:
    """The runs of every setup variant, their variant index (R,) and the variant names."""
    variants = list(data.setup_variants)
    runs = [r for v in variants for r in data.setup_variants[v]]
    labels = np.concatenate([np.full(len(data.setup_variants[v]), k) for k, v in enumerate(variants)])
    return runs, labels, variants


@analysis("B", tables=("behaviour", "properties"), min_setup_variants=2, min_setup_runs=7)
def analyse_b(data: StudyData) -> Finding:
    """Between- vs within-variant dissimilarity of the final models (see the module docstring)."""
    runs, labels, variants = _variant_runs(data)
    d = disagreement(data.predictions(runs, data.final_step))  # (R, R)
    if not np.isfinite(between_within(d, labels)):
        raise NotMeasured("the runs within every setup make identical final predictions, so the "
                          "between / within ratio is undefined")
    rng = data.rng(0xB)
    ratio, p = stats.permutation_test(lambda lab: between_within(d, lab), labels, rng, n_perm=999)
    groups = [np.flatnonzero(labels == k) for k in range(len(variants))]

    def resampled(_: np.ndarray) -> float:
        idx = np.concatenate([rng.choice(g, g.size) for g in groups])
        return between_within(d[np.ix_(idx, idx)], labels[idx], idx[:, None] == idx[None, :])

    ci, _ = stats.bootstrap(resampled, len(runs), rng, n_boot=300)
    sol = data.prop(data.solution_property, runs, data.final_step)
    off = ~np.eye(len(runs), dtype=bool)
    same_variant = labels[:, None] == labels[None, :]
    details = {"p_value": p, "variants": variants, "runs": len(runs),
               "between": float(d[~same_variant].mean()), "within": float(d[same_variant & off].mean())}
    for k, v in enumerate(variants):
        same = (labels[:, None] == k) & (labels[None, :] == k) & off
        details[f"within[{v}]"] = float(d[same].mean())
        details[f"{data.solution_property}_mean[{v}]"] = float(sol[labels == k].mean())
        details[f"{data.solution_property}_sd[{v}]"] = float(sol[labels == k].std(ddof=1))
    sensitive = p < 0.05
    verdict = (f"runs of different setups differ {ratio:.2f}x as much as runs of one setup "
               f"(permutation p = {p:.3f}): " + ("setup changes move the outcome beyond seed noise"
                                                   if sensitive else "no sensitivity beyond seed noise detected"))

    def plot(ax) -> None:  # runs sorted by variant, then by solution type, so clusters show as blocks
        order = np.lexsort((sol, labels))
        im = ax.imshow(d[np.ix_(order, order)], cmap="viridis", vmin=0, interpolation="nearest")
        edges = np.cumsum([g.size for g in groups])[:-1] - 0.5
        for e in edges:
            ax.axhline(e, color="r", lw=1.5)
            ax.axvline(e, color="r", lw=1.5)
        mids = np.cumsum([g.size for g in groups]) - np.array([g.size for g in groups]) / 2 - 0.5
        ax.set_xticks(mids, variants, rotation=30, fontsize=8)
        ax.set_yticks(mids, variants, fontsize=8)
        ax.set_xlabel(f"runs by variant, then by final {data.solution_property}", fontsize=8)
        ax.figure.colorbar(im, ax=ax, label="prediction disagreement")

    return Finding("B", "between / within-variant disagreement", ratio, ci, verdict, details, plot)
