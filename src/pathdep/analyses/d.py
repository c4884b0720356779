"""D: are clusters stable through training; does a nudge decay or stick?

Stability: at each step t a run belongs to the final cluster whose centroid (mean final behaviour
vector) its behaviour vector at t correlates with most; scale-free, so early small-margin
checkpoints are compared by direction. A run is *settled from t* when its membership equals its
final cluster at t and every later step. Headline: the earliest step from which at least 90% of
runs are settled; the interval resamples runs.

Nudge test: children of forks with ``toward`` start from (1 - lam) parent + lam toward at step k
and train on. For each lam, the fraction of children that end in the toward run's final cluster;
outcomes are *bimodal* (decay or stick, nothing in between) when the children's solution
property, placed on the parent-to-toward scale, fails the dip test of unimodality.
"""

from __future__ import annotations

import numpy as np

from pathdep.analyses import stats
from pathdep.analyses.c import final_clustering
from pathdep.analyses.data import NotMeasured, StudyData, analysis
from pathdep.analyses.finding import Finding, side_by_side

SETTLED = 0.9


def _corr_rows(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of x (R, N) with each row of c (K, N): (R, K)."""
    xs = x - x.mean(-1, keepdims=True)
    cs = c - c.mean(-1, keepdims=True)
    xs = xs / np.maximum(np.linalg.norm(xs, axis=-1, keepdims=True), 1e-12)
    cs = cs / np.maximum(np.linalg.norm(cs, axis=-1, keepdims=True), 1e-12)
    return xs @ cs.T


def centroids(final: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Mean final behaviour vector of each cluster: (K, N)."""
    return np.stack([final[labels == k].mean(0) for k in range(labels.max() + 1)])


def membership(vectors: np.ndarray, cents: np.ndarray) -> np.ndarray:
    """Nearest centroid by correlation of each run at each step: vectors (T, R, N) -> (T, R)."""
    return np.stack([_corr_rows(v, cents).argmax(-1) for v in vectors])


def settled_from(member: np.ndarray, final_labels: np.ndarray) -> np.ndarray:
    """(T, R) booleans: the run is in its final cluster at step t and at every later step."""
    same = member == final_labels[None, :]  # (T, R)
    return np.flip(np.cumprod(np.flip(same, 0), 0), 0).astype(bool)


def earliest(steps: np.ndarray, frac: np.ndarray, level: float = SETTLED) -> float:
    """First step whose fraction is >= level and stays so; NaN if never."""
    ok = np.flip(np.cumprod(np.flip(frac >= level))).astype(bool)
    return float(steps[ok.argmax()]) if ok.any() else float("nan")


def _nudge(data: StudyData, cents: np.ndarray, labels: np.ndarray, runs: list[str]) -> dict[str, object] | None:
    r = data.runs
    kids = r[r["toward"].notna() & r["lam"].notna()]
    if kids.empty:
        return None
    step, sol_name = data.final_step, data.solution_property
    names = list(kids["run"])
    try:
        member = membership(data.behaviour_vectors(names, step)[None], cents)[0]
        sol = data.prop(sol_name, names, step)
        ends = {run: data.prop(sol_name, [run], step)[0] for run in set(kids["parent"]) | set(kids["toward"])}
    except NotMeasured as e:
        return {"nudge": f"not measured: {e}"}
    ref = dict(zip(runs, labels))
    target = np.array([ref.get(t, -1) for t in kids["toward"]])
    lams = kids["lam"].to_numpy(dtype=float)
    grid = np.unique(lams)
    frac = np.array([np.mean(member[lams == g] == target[lams == g]) for g in grid])
    lo = np.array([ends[p] for p in kids["parent"]])
    hi = np.array([ends[t] for t in kids["toward"]])
    with np.errstate(invalid="ignore", divide="ignore"):
        pos = np.where(hi != lo, (sol - lo) / (hi - lo), np.nan)
    dip, p = stats.dip_test(pos)
    parent_cluster = np.array([ref.get(q, -1) for q in kids["parent"]])
    return {"lambdas": grid.tolist(), "fraction_to_toward": frac.tolist(), "children": len(names),
            "position_dip_p": p, "positions": pos.tolist(), "bimodal": bool(p < 0.05),
            "toward_in_other_cluster": bool(np.all(parent_cluster != target))}


@analysis("D", tables=("behaviour",), min_runs=8, min_checkpoints=3)  # C's clusters; a step between start and end
def analyse_d(data: StudyData) -> Finding:
    """Stability of cluster membership through training and the nudge test."""
    runs = data.reference
    cl = final_clustering(data)
    if cl.k < 2:
        raise NotMeasured("the final runs form one cluster (C), so there is no membership to keep")
    steps = np.array([s for s in data.behaviour_steps(runs) if s <= data.final_step])
    vecs = np.stack([data.behaviour_vectors(runs, int(s)) for s in steps])  # (T, R, N)
    cents = centroids(vecs[-1], cl.labels)
    settled = settled_from(membership(vecs, cents), cl.labels)  # (T, R)
    frac = settled.mean(1)
    value = earliest(steps, frac)
    rng = data.rng(0xD)
    samples = np.array([earliest(steps, settled[:, rng.integers(0, len(runs), len(runs))].mean(1)) for _ in range(500)])
    ci = stats.percentile_ci(samples)
    details: dict[str, object] = {"steps": steps.tolist(), "fraction_settled": frac.tolist(), "clusters": cl.k,
                                  "never_settled_in_bootstrap": float(np.mean(np.isnan(samples)))}
    nudge = _nudge(data, cents, cl.labels, runs)
    verdict = (f"{SETTLED:.0%} of runs are in their final cluster from step {value:g} on" if np.isfinite(value)
               else f"fewer than {SETTLED:.0%} of runs settle in their final cluster before the end")
    if nudge and "lambdas" in nudge:
        details["nudge"] = nudge
        pairs = ", ".join(f"λ={g:g}: {f:.0%}" for g, f in zip(nudge["lambdas"], nudge["fraction_to_toward"]))
        verdict += (f"; nudged children ending in the target's cluster: {pairs}; outcomes "
                    + ("bimodal (decay or stick)" if nudge["bimodal"] else "not detectably bimodal"))
        if not nudge["toward_in_other_cluster"]:
            verdict += " (the nudge target ends in the parent's own cluster, so this nudge tests nothing)"
    elif nudge:
        details["nudge"] = nudge["nudge"]

    def plot(ax) -> None:
        has_nudge = bool(nudge and "lambdas" in nudge)
        main, side = side_by_side(ax) if has_nudge else (ax, None)
        main.plot(steps, frac, "o-", ms=3, label="runs settled in their final cluster")
        main.axhline(SETTLED, color="0.6", ls="--", lw=1, label=f"{SETTLED:.0%}")
        main.set_xlabel("step t")
        main.set_ylabel("fraction of runs settled from t")
        main.set_ylim(-0.02, 1.02)
        main.legend(fontsize=8, loc="lower right")
        if side is not None:
            side.plot(nudge["lambdas"], nudge["fraction_to_toward"], "s-", color="C3", ms=4)
            side.set_xlabel("nudge λ toward the other run")
            side.set_ylabel("children ending in the target's cluster")
            side.set_ylim(-0.05, 1.05)
            side.yaxis.set_label_position("right")
            side.yaxis.tick_right()

    return Finding("D", f"earliest step with {SETTLED:.0%} of runs settled", value, ci, verdict, details, plot)
