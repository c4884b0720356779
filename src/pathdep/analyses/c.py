"""C: do runs fall into distinct clusters or a continuum?

Each final model becomes a behaviour vector: its soft correctness 2 sigmoid(margin) - 1 on every
probe example. The number of clusters is chosen by a Gaussian mixture on the vectors' top principal
components (lowest BIC, kept only if it beats one cluster by more than 10; see
:func:`pathdep.analyses.stats.choose_k_gmm`), so a population without clusters is one cluster.
Hartigan's dip test asks whether the solution-type property is unimodal. The interval of k is the
5-95% range of k over subsamples of 80% of the runs (resampling with replacement would plant
duplicate runs, which a mixture reads as tight clusters).
"""

from __future__ import annotations

import numpy as np

from pathdep.analyses import stats
from pathdep.analyses.data import StudyData, analysis
from pathdep.analyses.finding import Finding


def final_clustering(data: StudyData) -> stats.Clustering:
    """The clustering of the reference runs' final behaviour (shared with D, E and H)."""
    return data.cached("final_clustering", lambda: stats.choose_k_gmm(
        data.behaviour_vectors(data.reference, data.final_step), data.rng(0xC)))


def subsample_k(x: np.ndarray, rng: np.random.Generator, n_sub: int = 20, frac: float = 0.8) -> np.ndarray:
    """The chosen k on ``n_sub`` subsamples (without replacement) of ``frac`` of the rows of ``x``."""
    m = min(x.shape[0], max(4, int(round(frac * x.shape[0]))))
    return np.array([stats.choose_k_gmm(x[rng.choice(x.shape[0], m, replace=False)], rng).k for _ in range(n_sub)])


@analysis("C", min_runs=8)  # false-cluster rate calibrated on nulls of 8 to 64 runs
def analyse_c(data: StudyData) -> Finding:
    """Clusters of final behaviour, dip test on the solution property (see the module docstring)."""
    runs, step = data.reference, data.final_step
    x = data.behaviour_vectors(runs, step)  # (R, N)
    cl = final_clustering(data)
    ks = subsample_k(x, data.rng(0xC1))
    sol_name = data.solution_property
    sol = data.prop(sol_name, runs, step)
    dip, p_dip = stats.dip_test(sol)
    details: dict[str, object] = {
        "criterion": "Gaussian mixture on top-3 PCs of behaviour; lowest BIC, must beat k=1 by > 10 "
                     "and have silhouette > 0.5",
        "bic": cl.scores, "silhouette": cl.silhouette, "dip": dip, "dip_p": p_dip,
        "cluster_sizes": np.bincount(cl.labels).tolist(), "runs": len(runs),
        "k_subsamples": np.bincount(ks).tolist(),
    }
    for k in range(cl.k):
        details[f"{sol_name}_mean[cluster {k}]"] = float(sol[cl.labels == k].mean())
    shape = "distinct clusters" if cl.k > 1 else "one population (no clusters)"
    verdict = (f"{cl.k} cluster{'s' if cl.k > 1 else ''} of final behaviour: {shape}"
               + (f", silhouette {cl.silhouette:.2f}" if cl.k > 1 else "")
               + f"; {sol_name} is " + ("bimodal" if p_dip < 0.05 else "not detectably bimodal")
               + f" (dip test p = {p_dip:.3g})")
    z = stats.embed(x, 1)[:, 0]

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

    return Finding("C", "number of clusters", float(cl.k), (float(np.quantile(ks, 0.05)), float(np.quantile(ks, 0.95))),
                   verdict, details, plot)
