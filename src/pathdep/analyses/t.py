"""T: consistency over time vs consistency between runs, on one scale.

Prediction agreement on the probe examples (every probe, concatenated):

- *over time*: a run's mid-training checkpoint (the stored step nearest half of training) against
  its own final checkpoint, averaged over runs;
- *between runs*: two different runs' final checkpoints, averaged over pairs.

Headline: over time minus between runs (positive: a run agrees more with its own past than with
another seed's end). The interval resamples runs and examples jointly (multi-bootstrap). The same
two numbers for CKA, per layer, are in the details when stored. Each bar of the plot has its
interval in the details: ``ci_over_time`` and ``ci_between_runs`` (agreement, from the same
resamples as the headline), and ``over_time_ci`` / ``between_runs_ci`` per CKA layer (runs
resampled).

Least data: 5 runs (the intervals resample runs; see A) and 2 checkpoints (a mid-training one
besides the end).
"""

from __future__ import annotations

import warnings

import numpy as np

from pathdep.analyses import stats
from pathdep.analyses.data import NotMeasured, StudyData, analysis
from pathdep.analyses.finding import Finding


def time_vs_runs(mid: np.ndarray, final: np.ndarray, runs: np.ndarray | None = None,
                 weights: np.ndarray | None = None) -> tuple[float, float]:
    """(agreement of each run's mid and final predictions, agreement between different runs' finals).

    mid, final (R, N). A resample is given as ``runs`` (indices, repeats allowed; pairs of one run
    with itself are skipped) and ``weights`` (N,) example counts, so no resampled copy is built.
    """
    r_all, n = final.shape
    runs = np.arange(r_all) if runs is None else runs
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    over_time = float(((mid == final).astype(float) @ w)[runs].mean() / w.sum())
    agree = np.zeros((r_all, r_all))
    for c in np.unique(final):  # one matrix product per class
        onehot = (final == c).astype(float)  # (R, N)
        agree += (onehot * w) @ onehot.T
    agree = agree[np.ix_(runs, runs)] / w.sum()
    off = runs[:, None] != runs[None, :]
    return over_time, float(agree[off].mean()) if off.any() else float("nan")


def bootstrap_both(pm: np.ndarray, pf: np.ndarray, rng: np.random.Generator,
                   n_boot: int = 300) -> np.ndarray:
    """(over time, between runs) on ``n_boot`` joint resamples of runs and examples: (n_boot, 2).

    The same resamples as :func:`pathdep.analyses.stats.multi_bootstrap` draws, so the headline's
    interval (their difference) and each bar's interval come from one set of resamples.
    """
    r_all, n = pm.shape
    r = rng.integers(0, r_all, size=(n_boot, r_all))
    e = rng.integers(0, n, size=(n_boot, n))
    return np.array([time_vs_runs(pm, pf, r[b], np.bincount(e[b], minlength=n)) for b in range(n_boot)])


def _cka_pair(data: StudyData, runs: list[str], mid: int, rng: np.random.Generator,
              n_boot: int = 300) -> dict[str, object]:
    """Per layer: mean within-run CKA (mid vs final) and between-run CKA (final vs final), each with
    an interval over resampled runs."""
    t = data.table("cka")
    if t is None:
        return {}
    pos, last = {r: i for i, r in enumerate(runs)}, data.final_step
    t = t[t["run_a"].isin(pos) & t["run_b"].isin(pos)]
    idx = rng.integers(0, len(runs), size=(n_boot, len(runs)))  # (n_boot, R)
    out = {}
    for layer, g in t.groupby("layer"):
        w = g[(g.run_a == g.run_b) & (g.step_a == mid) & (g.step_b == last)]
        b = g[(g.run_a != g.run_b) & (g.step_a == last) & (g.step_b == last)]
        if not (len(w) and len(b)):
            continue
        within = np.full(len(runs), np.nan)
        within[w["run_a"].map(pos).to_numpy()] = w["cka"].to_numpy(dtype=float)
        between = np.full((len(runs), len(runs)), np.nan)
        i, j = b["run_a"].map(pos).to_numpy(), b["run_b"].map(pos).to_numpy()
        between[i, j] = between[j, i] = b["cka"].to_numpy(dtype=float)
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a resample without a measured pair
            w_boot = np.nanmean(within[idx], axis=1)
            b_boot = np.array([np.nanmean(between[np.ix_(k, k)][k[:, None] != k[None, :]]) for k in idx])
        off = ~np.eye(len(runs), dtype=bool)
        out[f"cka[{layer}]"] = {"over_time": float(np.nanmean(within)), "between_runs": float(np.nanmean(between[off])),
                                "over_time_ci": stats.percentile_ci(w_boot),
                                "between_runs_ci": stats.percentile_ci(b_boot)}
    return out


@analysis("T", tables=("behaviour",), min_runs=5, min_checkpoints=2)
def analyse_t(data: StudyData) -> Finding:
    """Mid-vs-final within runs against final-vs-final between runs (see the module docstring)."""
    runs, last = data.reference, data.final_step
    steps = np.array([s for s in data.behaviour_steps(runs) if s < last])
    if steps.size == 0:
        raise NotMeasured("behaviour is stored only at the final step")
    mid = int(steps[np.argmin(np.abs(steps - last / 2))])
    pm, pf = data.predictions(runs, mid), data.predictions(runs, last)  # (R, N) each
    over, between = time_vs_runs(pm, pf)
    value = over - between

    rng = data.rng(0x7)
    boot = bootstrap_both(pm, pf, rng)  # (n_boot, 2)
    ci = stats.percentile_ci(boot[:, 0] - boot[:, 1])
    details = {"mid_step": mid, "agreement_over_time": over, "agreement_between_runs": between,
               "ci_over_time": stats.percentile_ci(boot[:, 0]), "ci_between_runs": stats.percentile_ci(boot[:, 1]),
               "interval": "95% percentile, runs and examples resampled jointly (300 resamples)"}
    details |= _cka_pair(data, runs, mid, rng)
    if ci[0] > 0:
        reading = "the middle of a run says more about its end than another seed does"
    elif ci[1] >= 0:
        reading = "the run's own middle is not detectably closer to its end than another seed's end is"
    else:
        reading = "runs agree more with each other than with their own middle"
    verdict = (f"a run's step-{mid} predictions agree {over:.1%} with its own end; two runs' ends agree "
               f"{between:.1%}: {reading}")
    cka_items = [(k, v) for k, v in details.items() if k.startswith("cka[")]

    def plot(ax) -> None:
        def interval(d: dict, side: str) -> object:  # an interval the details carry for one bar, if any
            return next((d[k] for k in (f"ci_{side}", f"{side}_ci", f"agreement_{side}_ci") if k in d), None)

        def err(values: list[float], cis: list[object]) -> np.ndarray | None:  # (2, bars) or None; NaN: no bar
            if all(c is None for c in cis):
                return None
            lo_hi = np.array([c if c is not None else (np.nan, np.nan) for c in cis], dtype=float)  # (bars, 2)
            return np.abs(lo_hi.T - np.array(values, dtype=float))

        labels = ["agreement", *[k for k, _ in cka_items]]
        over_v = [over, *[v["over_time"] for _, v in cka_items]]
        betw_v = [between, *[v["between_runs"] for _, v in cka_items]]
        over_ci = [interval(details, "over_time"), *[interval(v, "over_time") for _, v in cka_items]]
        betw_ci = [interval(details, "between_runs"), *[interval(v, "between_runs") for _, v in cka_items]]
        x = np.arange(len(labels))
        ax.bar(x - 0.2, over_v, 0.4, yerr=err(over_v, over_ci), capsize=3,
               label=f"over time (step {mid} vs final, same run)")
        ax.bar(x + 0.2, betw_v, 0.4, yerr=err(betw_v, betw_ci), capsize=3, label="between runs (final vs final)")
        ax.set_xticks(x, labels, fontsize=8)
        ax.set_ylim(0, 1.25)
        ax.set_ylabel("agreement / CKA" + ("" if err(over_v, over_ci) is None else " (bars: 95% CI)"))
        ax.legend(fontsize=8, loc="upper center", ncol=2)

    return Finding("T", "agreement over time minus between runs", value, ci, verdict, details, plot)
