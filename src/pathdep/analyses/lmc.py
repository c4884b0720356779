"""LMC: linear mode connectivity, instability analysis and model soups.

Barrier definition (as measured): max over alpha of L(theta_alpha) - ((1 - alpha) L(theta_0) +
alpha L(theta_1)), for loss and for error, on the test split, between final checkpoints.

- The barrier matrix of the seed population, raw and after alignment, and its basins: average
  linkage cut at the 2% error barrier that defines "connected", so clusters exist only where the
  mean barrier between them exceeds 2% (and within each it is at most 2%); otherwise the
  population is one basin. Each barrier row names its alignment ("none", "weight_matching",
  "activation_matching"; stores from before the ``alignment`` column hold weight matching as
  ``aligned``); the aligned numbers are those of the alignment with the lowest mean error
  barrier, and the verdict says so plainly when an alignment raised a barrier above the raw one
  (alignment optimises weights or activations, not loss).
- Instability: for each fork step k, the mean error barrier between children of one parent forked
  at k with different data orders; the runs are *stable* from the first k from which every later
  fork's barrier stays at most 2% error (the threshold of Frankle et al.).
- Soups: uniform and greedy soup accuracy minus the best member's, per soup group.

Headline: the mean raw error barrier between final runs of the population; the interval
resamples runs (95% percentile bootstrap; its coverage of the population's mean barrier is
checked in tests/test_interval_coverage.py).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pathdep.analyses import stats
from pathdep.analyses.data import NotMeasured, StudyData, analysis
from pathdep.analyses.finding import Finding, side_by_side
from pathdep.measure.align import ALIGNMENTS, raised_note
from pathdep.measure.connectivity import alignment_of

STABLE_ERROR = 0.02


def barrier_matrix(table: pd.DataFrame, runs: list[str], column: str) -> np.ndarray:
    """Symmetric (R, R) matrix of a barrier column over pairs of ``runs`` (NaN where absent, 0 diagonal)."""
    pos = {r: i for i, r in enumerate(runs)}
    t = table[table["run_a"].isin(pos) & table["run_b"].isin(pos)]
    m = np.full((len(runs), len(runs)), np.nan)
    i = t["run_a"].map(pos).to_numpy()
    j = t["run_b"].map(pos).to_numpy()
    m[i, j] = m[j, i] = t[column].to_numpy(dtype=float)
    np.fill_diagonal(m, 0.0)
    return m


def off_diagonal_mean(m: np.ndarray, idx: np.ndarray | None = None) -> float:
    """Mean over pairs of different runs (of a resample ``idx``; repeated runs are skipped)."""
    idx = np.arange(m.shape[0]) if idx is None else idx
    sub = m[np.ix_(idx, idx)]
    keep = idx[:, None] != idx[None, :]
    return float(np.nanmean(sub[keep])) if keep.any() else float("nan")


def _alignments(by: dict[str, pd.DataFrame], raw_t: pd.DataFrame, runs: list[str]) -> tuple[str | None, dict, list[str]]:
    """The alignment with the lowest mean error barrier, every alignment's mean barriers, and a note
    for each mean barrier an alignment raised above the raw one."""
    means = {a: {q: off_diagonal_mean(barrier_matrix(t, runs, f"{q}_barrier")) for q in ("error", "loss")}
             for a, t in by.items()}
    raw = {q: off_diagonal_mean(barrier_matrix(raw_t, runs, f"{q}_barrier")) for q in ("error", "loss")}
    notes = [n for a in ALIGNMENTS if a in means
             if (n := raised_note(a, {f"{q} barrier": (means[a][q], raw[q]) for q in ("loss", "error")})) is not None]
    best = min(means, key=lambda a: (np.nan_to_num(means[a]["error"], nan=np.inf), a)) if means else None
    details = {f"{q}_barrier[{a}]": m[q] for a, m in means.items() for q in ("error", "loss")}
    return best, details, notes


def stable_from(fork_steps: np.ndarray, barriers: np.ndarray, threshold: float = STABLE_ERROR) -> float:
    """First fork step from which every later fork's barrier is <= threshold; NaN if none."""
    order = np.argsort(fork_steps)
    s, b = fork_steps[order], barriers[order]
    ok = np.flip(np.cumprod(np.flip(b <= threshold))).astype(bool)
    return float(s[ok.argmax()]) if ok.any() else float("nan")


def _instability(data: StudyData, bar: pd.DataFrame) -> dict[str, object] | None:
    r = data.runs
    kids = r[r["fork"].notna() & r["toward"].isna()]
    if kids.empty:
        return None
    rows = []
    for fork, g in kids.groupby("fork"):
        names = list(g["run"])
        if len(names) < 2:
            continue
        m = barrier_matrix(bar, names, "error_barrier")
        rows.append({"fork": fork, "step": int(g["fork_step"].iloc[0]), "children": len(names),
                     "error_barrier": off_diagonal_mean(m),
                     "loss_barrier": off_diagonal_mean(barrier_matrix(bar, names, "loss_barrier"))})
    if not rows:
        return None
    df = pd.DataFrame(rows).groupby("step", as_index=False).agg(
        {"error_barrier": "mean", "loss_barrier": "mean", "children": "sum"})
    df = df.dropna(subset=["error_barrier"])
    if df.empty:
        return None
    return {"fork_steps": df["step"].tolist(), "error_barrier": df["error_barrier"].tolist(),
            "loss_barrier": df["loss_barrier"].tolist(),
            "stable_from_step": stable_from(df["step"].to_numpy(), df["error_barrier"].to_numpy())}


def _soup_gains(data: StudyData) -> dict[str, float]:
    s = data.table("soups")
    if s is None:
        return {}
    s = s[(s["step"] == data.final_step) & (s["split"] == "test")]
    out = {}
    for group, g in s.groupby("group" if "group" in s else lambda _: "all"):
        acc = g.set_index("kind")["acc"]
        if "best_member" in acc:
            for kind in ("uniform", "greedy"):
                if kind in acc:
                    out[f"{kind}_gain[{group}]"] = float(acc[kind] - acc["best_member"])
    return out


@analysis("LMC", tables=("barriers",), min_runs=5)  # the interval resamples runs (as A's)
def analyse_lmc(data: StudyData) -> Finding:
    """Barrier matrices, their clusters, instability vs fork step, soup gains."""
    bar = data.need("barriers")
    bar = bar[(bar["step"] == data.final_step) & (bar["split"] == "test")]
    kind = alignment_of(bar)
    raw_t = bar[kind == "none"]
    paired = set(raw_t["run_a"]) | set(raw_t["run_b"])
    runs = [r for r in data.reference if r in paired]  # barriers may be measured on a cohort's first runs only
    best, by_alignment, raised = _alignments({a: t for a, t in bar.groupby(kind) if a != "none"}, raw_t, runs)
    aligned_t = bar[kind == best]
    raw = barrier_matrix(raw_t, runs, "error_barrier")
    if len(runs) < 2 or np.isnan(raw).all():
        raise NotMeasured("no test-split barriers between the population's final runs")
    ci, _ = stats.bootstrap(lambda i: off_diagonal_mean(raw, i), len(runs), data.rng(0x1C))
    value = off_diagonal_mean(raw)
    details: dict[str, object] = {"definition": "max_a [L(theta_a) - ((1-a) L(theta_0) + a L(theta_1))], test split",
                                  "loss_barrier_raw": off_diagonal_mean(barrier_matrix(raw_t, runs, "loss_barrier"))}
    complete = ~np.isnan(raw).any(1)
    cl = stats.choose_k_distances(raw[np.ix_(complete, complete)], STABLE_ERROR)
    details |= {"clusters_raw": cl.k, "silhouette_raw": cl.silhouette, "clusters_criterion": cl.criterion}
    aligned = None
    if len(aligned_t):
        aligned = barrier_matrix(aligned_t, runs, "error_barrier")
        details |= {"alignment": best, "error_barrier_aligned": off_diagonal_mean(aligned),
                    "loss_barrier_aligned": off_diagonal_mean(barrier_matrix(aligned_t, runs, "loss_barrier")),
                    **by_alignment, "alignment_notes": raised}
        ok = ~np.isnan(aligned).any(1)
        cla = stats.choose_k_distances(aligned[np.ix_(ok, ok)], STABLE_ERROR)
        details |= {"clusters_aligned": cla.k, "silhouette_aligned": cla.silhouette}
    inst = _instability(data, raw_t)
    if inst:
        details["instability"] = inst
    details |= _soup_gains(data)
    verdict = f"final runs are separated by a mean error barrier of {value:.3f}"
    if aligned is not None:
        others = [a.replace("_", " ") for a in sorted(set(kind) - {"none", best})]
        verdict += (f" ({details['error_barrier_aligned']:.3f} after {best.replace('_', ' ')}"
                    + (f", the lower of it and {', '.join(others)})" if others else ")"))
        verdict += "".join(f"; {n}" for n in raised)
    verdict += f"; barrier clusters: {cl.k}"
    if inst:
        k = inst["stable_from_step"]
        verdict += (f"; children forked from step {k:g} on stay connected" if np.isfinite(k)
                    else "; forked children never stay connected (error barrier > 2%)")
    gain = details.get("greedy_gain[base]", details.get("greedy_gain[all]"))
    if gain is not None:
        verdict += f"; greedy soup vs best member: {gain:+.3f} test accuracy"
    order = np.argsort(cl.labels, kind="stable") if complete.all() else np.arange(len(runs))

    def plot(ax) -> None:
        heat, side = side_by_side(ax, (1, 1)) if inst else (ax, None)
        im = heat.imshow(raw[np.ix_(order, order)], cmap="magma", vmin=0, interpolation="nearest")
        heat.set_xlabel("run (sorted by barrier cluster)")
        heat.set_ylabel("run")
        heat.figure.colorbar(im, ax=heat, label="error barrier (raw)", shrink=0.8)
        if side is not None:
            side.plot(inst["fork_steps"], inst["error_barrier"], "o-", ms=3, color="C2", label="children forked at k")
            side.axhline(STABLE_ERROR, color="0.6", ls="--", lw=1, label=f"connected ({STABLE_ERROR:g})")
            side.set_xlabel("fork step k")
            side.set_ylabel("children's error barrier")
            side.margins(y=0.15)
            side.legend(fontsize=8, loc="upper right")

    return Finding("LMC", "mean error barrier between final runs (raw)", value, ci, verdict, details, plot)
