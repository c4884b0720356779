"""C: do runs fall into distinct clusters or a continuum?

Each final model becomes a behaviour vector: its soft correctness 2 sigmoid(margin) - 1 on every
probe example. Clusters are found by repeated two-way splits of the vectors' top 3 principal
components, each kept only if it beats two one-cluster nulls: a Gaussian one of the same size
and spread (the 2-means cluster index below the null's at level 0.05, simulated) and any
unimodal spread along the split axis (dip test at level 0.025, or a null drawn from the
closest unimodal law at 0.05, so that skewed, flat or saturating continua are not read as
clusters); of the labellings so found,
the one with the best silhouette is kept if above 0.5 (see
:func:`pathdep.analyses.stats.choose_k`). A population without clusters is one cluster in at
least 95% of cases, whatever its size, shape or the scale of its spread (measured on Gaussian,
skewed, uniform and saturating nulls of 8-64 runs: tests/test_analyses_null.py). Clusters must
also be distinct in what the runs answer: every two clusters' mean soft correctness differs
by at least 0.02 on average over the probes (one point of probability of the right label),
else the runs are one population for practical purposes (a convex control's runs, split by
their data order, differ by 0.005). Needs >= 8 runs: fewer are never split. Hartigan's dip
test asks whether the solution-type property is unimodal. The interval of k is the range from the 5th to
the 95th percentile (lower and higher order statistics, so whole numbers) of k over 20
subsamples of 80% of the runs (resampling with replacement would plant duplicate runs, which
read as tight clusters), widened to contain k itself; on planted populations (1, 2 or 3
clusters) it contains the true k in at least 90% of cases (tests/test_interval_coverage.py).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from pathdep.analyses import clusters, stats
from pathdep.analyses.data import StudyData, analysis
from pathdep.analyses.finding import Finding

MIN_RUNS = stats.MIN_SPLIT  # fewer runs than this are never tested for a split
MIN_SEPARATION = 0.02  # least mean |difference| of two clusters' soft correctness: 1 point of P(right label)
CRITERION = ("two-way splits of the top-3 PCs of final behaviour by 2-means, each kept only if its cluster "
             "index W2/W1 is below a simulated one-cluster Gaussian null (same size and sample covariance) at "
             f"p <= {stats.SPLIT_LEVEL} and the runs projected on the split axis are not one unimodal spread "
             f"(dip test p <= {stats.SPLIT_LEVEL / 2} or the 1-d index below a closest-unimodal null at "
             f"p <= {stats.SPLIT_LEVEL}); of the labellings so found, the one with the highest silhouette, "
             f"if above {stats.SILHOUETTE_MIN}"
             f"; and only if every two clusters' mean soft correctness differs by >= {MIN_SEPARATION} "
             "on average over the probes")


def separation(x: np.ndarray, labels: np.ndarray) -> float:
    """The least, over pairs of clusters, mean absolute difference of their mean behaviour vectors.

    x (R, N) soft correctness 2 P(right label) - 1, labels (R,). Half of it is the mean difference
    in the probability the two clusters give the right label. Infinite for one cluster.

    >>> x = np.array([[0.9, 0.9], [0.9, 0.8], [-0.9, 0.9], [-0.8, 0.9]])
    >>> round(separation(x, np.array([0, 0, 1, 1])), 3)
    0.9
    """
    k = int(labels.max()) + 1
    centres = np.stack([x[labels == j].mean(0) for j in range(k)])  # (k, N)
    gaps = [np.abs(centres[i] - centres[j]).mean() for i in range(k) for j in range(i + 1, k)]
    return float(min(gaps)) if gaps else float("inf")


def distinct(cl: stats.Clustering, x: np.ndarray, floor: float = MIN_SEPARATION) -> stats.Clustering:
    """``cl``, or one cluster when two of its clusters behave alike within ``floor``
    (:func:`separation`): a split that beats the null but changes the runs' answers by less than
    that is structure without consequence (a convex problem's runs, split by data order, differ
    by 0.005), not distinct solutions."""
    if cl.k == 1 or separation(x, cl.labels) >= floor:
        return cl
    return dataclasses.replace(cl, labels=np.zeros_like(cl.labels), k=1, silhouette=float("nan"))


def split_clustering(data: StudyData) -> stats.Clustering:
    """The reference runs' final behaviour split by :func:`~pathdep.analyses.stats.choose_k` alone."""
    return data.cached("split_clustering", lambda: stats.choose_k(
        data.behaviour_vectors(data.reference, data.final_step), data.rng(0xC)))


def final_clustering(data: StudyData) -> stats.Clustering:
    """The clustering of the reference runs' final behaviour (shared with D, E and H): the splits
    of :func:`split_clustering` whose clusters are :func:`distinct`."""
    return data.cached("final_clustering", lambda: distinct(
        split_clustering(data), data.behaviour_vectors(data.reference, data.final_step)))


def subsample_k(x: np.ndarray, rng: np.random.Generator, n_sub: int = 20, frac: float = 0.8,
                n_null: int = clusters.N_NULL) -> np.ndarray:
    """The chosen k on ``n_sub`` subsamples (without replacement) of ``frac`` of the rows of ``x``."""
    m = min(x.shape[0], max(4, int(round(frac * x.shape[0]))))
    subs = np.stack([x[rng.choice(x.shape[0], m, replace=False)] for _ in range(n_sub)])  # (n_sub, m, N)
    return np.array([distinct(cl, sub).k for cl, sub in zip(stats.choose_k_many(subs, rng, n_null=n_null), subs)])


def k_interval(k: int, ks: np.ndarray) -> tuple[float, float]:
    """Whole-number interval of k: 5th and 95th percentile of subsample k's (lower / higher order
    statistics), widened to contain the full population's k."""
    lo = int(np.quantile(ks, 0.05, method="lower"))
    hi = int(np.quantile(ks, 0.95, method="higher"))
    return float(min(lo, k)), float(max(hi, k))


def dip_phrase(name: str, values: np.ndarray) -> tuple[str, float | None, float | None]:
    """The dip test of a property, in words, with its statistic and p-value (None where it does not apply)."""
    v = values[np.isfinite(values)]
    if v.size < 4:
        return f"dip test not applicable: {v.size} runs with a finite {name}", None, None
    if np.ptp(v) == 0:
        return f"dip test not applicable: {name} is constant", None, None
    dip, p = stats.dip_test(v)
    shape = "bimodal" if p < 0.05 else "not detectably bimodal"
    shown = "p < 0.001" if p < 0.001 else f"p = {p:.3g}"
    return f"{name} is {shape} (dip test {shown})", dip, p


def _split_words(cl: stats.Clustering, split: stats.Clustering, sep: float) -> str:
    """What the top split's test says, in words that agree with the chosen k."""
    if not np.isfinite(cl.p_value):
        return ""
    if cl.k == 1 and split.k > 1:
        return (f" ({split.k} clusters beat a one-cluster null, p = {cl.p_value:.2g}, but their answers differ by "
                f"{sep:.3f} in mean soft correctness, below the {MIN_SEPARATION} that makes them distinct)")
    if cl.k > 1:
        return f" (the first split beats a one-cluster null: p = {cl.p_value:.2g})"
    if cl.p_value <= stats.SPLIT_LEVEL and cl.unimodal_p > stats.SPLIT_LEVEL:
        return (f" (a split beats a one-cluster Gaussian null, p = {cl.p_value:.2g}, but the runs along its axis "
                f"could be one unimodal spread, p = {cl.unimodal_p:.2g}: a continuum)")
    if cl.p_value <= stats.SPLIT_LEVEL:
        return (f" (a split beats a one-cluster Gaussian null, p = {cl.p_value:.2g}, but no labelling separates "
                f"the runs: silhouette <= {stats.SILHOUETTE_MIN}, a continuum)")
    return f" (no split beats a one-cluster null: p = {cl.p_value:.2g})"


@analysis("C", tables=("behaviour", "properties"), min_runs=MIN_RUNS)  # a split of fewer runs cannot be told from noise (nulls of 8-64 runs)
def analyse_c(data: StudyData) -> Finding:
    """Clusters of final behaviour, dip test on the solution property (see the module docstring)."""
    runs, step = data.reference, data.final_step
    x = data.behaviour_vectors(runs, step)  # (R, N)
    cl, split = final_clustering(data), split_clustering(data)
    sep = separation(x, split.labels)
    ks = subsample_k(x, data.rng(0xC1))
    sol_name = data.solution_property
    sol = data.prop(sol_name, runs, step)
    dip_words, dip, p_dip = dip_phrase(sol_name, sol)
    details: dict[str, object] = {
        "criterion": CRITERION, "separation": sep, "min_separation": MIN_SEPARATION, "cluster_index": cl.scores,
        "split_p": cl.p_value, "split_unimodal_p": cl.unimodal_p, "silhouette": cl.silhouette,
        "dip": dip, "dip_p": p_dip, "cluster_sizes": np.bincount(cl.labels).tolist(), "runs": len(runs),
        "k_subsamples": np.bincount(ks).tolist(),
        "interval": "5th-95th percentile of k over 20 subsamples of 80% of the runs, widened to contain k",
    }
    for k in range(cl.k):
        details[f"{sol_name}_mean[cluster {k}]"] = float(sol[cl.labels == k].mean())
    shape = "distinct clusters" if cl.k > 1 else "one population (no clusters)"
    verdict = (f"{cl.k} cluster{'s' if cl.k > 1 else ''} of final behaviour: {shape}"
               + (f", silhouette {cl.silhouette:.2f}" if cl.k > 1 else "")
               + _split_words(cl, split, sep) + f"; {dip_words}")

    def plot(ax) -> None:  # a strip plot: one dot per run, jittered sideways so equal values stay visible
        jitter = np.random.default_rng(0).uniform(-0.3, 0.3, len(sol))
        for k in range(cl.k):
            m = cl.labels == k
            ax.scatter(k + jitter[m], sol[m], s=16, color=f"C{k}", alpha=0.75, edgecolors="none")
        ax.set_xticks(range(cl.k), [f"cluster {k}\n({(cl.labels == k).sum()} runs)" for k in range(cl.k)], fontsize=8)
        ax.set_xlim(-0.6, cl.k - 0.4)
        ax.set_xlabel("final cluster of behaviour (dots jittered sideways)")
        ax.set_ylabel(f"final {sol_name}")
        ax.margins(y=0.08)

    return Finding("C", "number of clusters", float(cl.k), k_interval(cl.k, ks), verdict, details, plot)
