"""A: how much do final models differ across seeds?

Headline: the standard deviation across seeds of the main probe's accuracy with the
example-sampling noise removed. A finite probe set makes runs look different even when they are
not: with correctness c (runs R x examples N), the run-by-example interaction (what is left after
removing run and example means) has variance s2_int, and a run's observed accuracy carries
s2_int / N of it. The between-run variance is Var_r(acc_r) - s2_int / N (the random-effects
two-way ANOVA estimator). The interval resamples runs and examples jointly (multi-bootstrap).

When the population crosses init seeds with data-order seeds (:mod:`pathdep.analyses.variance`):

- the variance of the solution property is split into init and data order, where data order's
  share is its main effect *plus* its interaction with the init (one run per cell: the
  interaction is confounded with any residual, which deterministic training does not have). An
  order seed does not push every init the same way, so the main effect alone is near 0 even
  where data order decides the outcome;
- the count of inits whose final cluster (C; one cluster: none can change) differs under another
  of the data orders tried, with a Wilson interval over inits.

Least data: 5 runs. The interval resamples runs; a resample of n runs takes one of
C(2n - 1, n) distinct values (10 at n = 3, 126 at n = 5), too few below 5 for a percentile
interval. The data-order split needs 2 init seeds crossed with 2 data seeds, and the count of
changed inits as many runs as C's clusters need (else each is reported as not measured in the
details).
"""

from __future__ import annotations

import numpy as np

from pathdep.analyses import stats, variance
from pathdep.analyses.c import analyse_c, final_clustering
from pathdep.analyses.data import StudyData, analysis
from pathdep.analyses.finding import Finding
from pathdep.measure.connectivity import alignment_of


def variance_components(c: np.ndarray) -> dict[str, float]:
    """Between-run variance of a per-example score ``c`` (R, N) with example noise separated.

    Returns ``raw`` (variance of run means), ``noise`` (what a finite probe set alone would give)
    and ``runs`` (raw - noise; may be slightly negative when runs do not differ).
    """
    r, n = c.shape
    acc = c.mean(1)  # (R,)
    raw = float(acc.var(ddof=1))
    resid = c - c.mean(1, keepdims=True) - c.mean(0, keepdims=True) + c.mean()  # (R, N)
    s2_int = float((resid**2).sum() / ((r - 1) * (n - 1)))
    return {"raw": raw, "noise": s2_int / n, "runs": raw - s2_int / n}


def _crossed(seeds, values: np.ndarray) -> np.ndarray | None:
    """The values (R,) as an (init x data) table (I, D) when every combination is present, else None."""
    inits, datas = sorted(seeds["init_seed"].unique()), sorted(seeds["data_seed"].unique())
    if len(inits) < 2 or len(datas) < 2 or len(seeds) != len(inits) * len(datas):
        return None
    table = np.full((len(inits), len(datas)), np.nan)
    for (i, d), v in zip(seeds.itertuples(index=False), values):
        table[inits.index(i), datas.index(d)] = v
    return None if np.isnan(table).any() else table


def _pairwise_summaries(data: StudyData, runs: list[str]) -> dict[str, float]:
    """Mean pairwise agreement, CKA and barriers between different runs at the final step."""
    out: dict[str, float] = {}
    step, keep = data.final_step, set(runs)
    pairs = data.table("behaviour_pairs")
    if pairs is not None:
        p = pairs[(pairs.step_a == step) & (pairs.step_b == step) & (pairs.run_a != pairs.run_b)
                  & pairs.run_a.isin(keep) & pairs.run_b.isin(keep)]
        for probe, g in p.groupby("probe"):
            out[f"agreement[{probe}]"] = float(g["agreement"].mean())
            out[f"error_kappa[{probe}]"] = float(g["error_kappa"].mean())
    cka = data.table("cka")
    if cka is not None:
        c = cka[(cka.step_a == step) & (cka.step_b == step) & (cka.run_a != cka.run_b)
                & cka.run_a.isin(keep) & cka.run_b.isin(keep)]
        for layer, g in c.groupby("layer"):
            out[f"cka[{layer}]"] = float(g["cka"].mean())
    bar = data.table("barriers")
    if bar is not None:
        b = bar[(bar.step == step) & bar.run_a.isin(keep) & bar.run_b.isin(keep) & (bar.split == "test")]
        for alignment, g in b.groupby(alignment_of(b)):
            tag = "raw" if alignment == "none" else alignment
            out[f"loss_barrier[test,{tag}]"] = float(g["loss_barrier"].mean())
            out[f"error_barrier[test,{tag}]"] = float(g["error_barrier"].mean())
    return out


def _data_order(data: StudyData, runs: list[str]) -> tuple[dict[str, object], str]:
    """Details and verdict clause of the init / data-order split (see the module docstring)."""
    name = data.solution_property
    seeds = data.seeds(runs)
    table = _crossed(seeds, data.prop(name, runs, data.final_step))  # (I, D)
    if table is None:
        inits, datas = seeds["init_seed"].nunique(), seeds["data_seed"].nunique()
        why = (f"not measured: needs >= 2 init seeds crossed with >= 2 data seeds, every pair trained "
               f"(got {inits} x {datas}, {len(runs)} runs)")
        return {"data_order": why}, ""
    details: dict[str, object] = {"data_seeds": int(table.shape[1])}
    if np.ptp(table) > 0:
        shares = variance.crossed_components(table)
        details |= {f"share_{c}[{name}]": v for c, v in shares.items()}
        details["interaction_note"] = "one run per init x data cell: the interaction includes any residual"
        verdict = (f"; of the {name} variance, init seed {shares['init']:.0%} and data order (main + interaction) "
                   f"{shares['data_total']:.0%} (main {shares['data_main']:.0%}, "
                   f"interaction {shares['interaction']:.0%})")
    else:
        details["data_order"] = f"every run ends with the same {name}: no variance to split"
        verdict = f"; every run ends with the same {name}"
    need = analyse_c.needs.get("runs", 2)
    if len(runs) < need:
        details["inits_changed"] = f"not measured: the final clusters (C) need >= {need} runs (got {len(runs)})"
        return details, verdict
    cl = final_clustering(data)
    changed = variance.changed_inits(_crossed(seeds, cl.labels.astype(float)))  # (I,)
    k, n = int(changed.sum()), int(changed.size)
    lo, hi = variance.wilson(k, n)
    details |= {"outcome": f"final cluster (of {cl.k})", "inits_changed": k, "inits_crossed": n,
                "inits_changed_fraction": k / n, "inits_changed_fraction_ci": [lo, hi],
                "inits_changed_interval": "Wilson 95%, over inits"}
    verdict += (f"; {k} of {n} inits ({k / n:.0%}, 95% CI {lo:.0%} to {hi:.0%}) change final cluster under "
                f"another of {table.shape[1]} data orders")
    return details, verdict


@analysis("A", tables=("behaviour", "properties"), min_runs=5)
def analyse_a(data: StudyData) -> Finding:
    """Spread across seeds of the final models (see the module docstring)."""
    runs, step, probe = data.reference, data.final_step, data.main_probe
    c = data.behaviour(runs, step, "correct", probe)  # (R, N)
    comp = variance_components(c)
    rng = data.rng(0xA)
    ci, _ = stats.multi_bootstrap(
        lambda r, e: np.sqrt(max(variance_components(c[np.ix_(r, e)])["runs"], 0.0)), *c.shape, rng, n_boot=300)
    value = float(np.sqrt(max(comp["runs"], 0.0)))
    details: dict[str, object] = {
        "probe": probe, "runs": len(runs), "examples": c.shape[1], "mean_acc": float(c.mean()),
        "raw_std": float(np.sqrt(comp["raw"])), "noise_std": float(np.sqrt(comp["noise"])),
    }
    for p in data.probes[1:]:
        details[f"std_without_noise[{p}]"] = float(np.sqrt(max(
            variance_components(data.behaviour(runs, step, "correct", p))["runs"], 0.0)))
    order_details, order_verdict = _data_order(data, runs)
    details |= order_details
    details |= _pairwise_summaries(data, runs)
    verdict = (f"final {probe} accuracy varies across seeds with sd {value:.3f} beyond probe-set noise "
               f"(raw sd {details['raw_std']:.3f}, noise alone {details['noise_std']:.3f})") + order_verdict
    acc, se = c.mean(1), np.sqrt(comp["noise"])

    def plot(ax) -> None:
        order = np.argsort(acc)
        ax.axhspan(acc.mean() - 2 * se, acc.mean() + 2 * se, color="0.88", lw=0,
                   label=f"mean ± 2 sd of probe-set noise alone (sd {se:.3f})")
        ax.axhline(acc.mean(), color="0.45", lw=1, label=f"mean over runs ({acc.mean():.3f})")
        ax.errorbar(np.arange(acc.size), acc[order], yerr=2 * se, fmt="o", ms=3, lw=1, color="C0",
                    label="one run (± 2 noise sd)")
        ax.set_xlabel(f"runs, sorted by accuracy ({acc.size} runs)")
        ax.set_ylabel(f"final accuracy on {probe}")
        ax.margins(y=0.08)
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)

    return Finding("A", f"seed sd of {probe} accuracy (probe noise removed)", value, ci, verdict, details, plot)

