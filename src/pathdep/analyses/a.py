"""A: how much do final models differ across seeds?

Headline: the standard deviation across seeds of the main probe's accuracy with the
example-sampling noise removed. A finite probe set makes runs look different even when they are
not: with correctness c (runs R x examples N), the run-by-example interaction (what is left after
removing run and example means) has variance s2_int, and a run's observed accuracy carries
s2_int / N of it. The between-run variance is Var_r(acc_r) - s2_int / N (the random-effects
two-way ANOVA estimator). The interval resamples runs and examples jointly (multi-bootstrap).

When the population crosses init seeds with data-order seeds, the variance of the solution
property is split into init, data-order and interaction shares (two-way ANOVA, method of moments).
"""

from __future__ import annotations

import numpy as np

from pathdep.analyses import stats
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


def seed_sources(y: np.ndarray) -> dict[str, float]:
    """Shares of variance of ``y`` (I init seeds x D data seeds) from init, data order and their
    interaction (random-effects two-way ANOVA without replication; components clipped at 0).

    >>> y = np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 0.0], [1.0, 1.0]])  # only init matters
    >>> seed_sources(y)["init"]
    1.0
    """
    i, d = y.shape
    resid = y - y.mean(1, keepdims=True) - y.mean(0, keepdims=True) + y.mean()
    ms_res = float((resid**2).sum() / ((i - 1) * (d - 1)))
    v_init = max(0.0, (d * y.mean(1).var(ddof=1) - ms_res) / d)
    v_data = max(0.0, (i * y.mean(0).var(ddof=1) - ms_res) / i)
    total = v_init + v_data + ms_res
    if total == 0:
        return {"init": 0.0, "data": 0.0, "interaction": 0.0}
    return {"init": v_init / total, "data": v_data / total, "interaction": ms_res / total}


def _crossed(seeds, values: np.ndarray) -> np.ndarray | None:
    """The values as an (init x data) table when every combination is present, else None."""
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


@analysis("A")
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
    sol = data.prop(data.solution_property, runs, step)
    table = _crossed(data.seeds(runs), sol)
    if table is not None:
        details |= {f"share_{k}[{data.solution_property}]": v for k, v in seed_sources(table).items()}
    details |= _pairwise_summaries(data, runs)
    verdict = (f"final {probe} accuracy varies across seeds with sd {value:.3f} beyond probe-set noise "
               f"(raw sd {details['raw_std']:.3f}, noise alone {details['noise_std']:.3f})")
    if table is not None:
        verdict += (f"; of the {data.solution_property} variance, init seed {details[f'share_init[{data.solution_property}]']:.0%}, "
                    f"data order {details[f'share_data[{data.solution_property}]']:.0%}, "
                    f"interaction {details[f'share_interaction[{data.solution_property}]']:.0%}")
    acc, se = c.mean(1), np.sqrt(comp["noise"])

    def plot(ax) -> None:
        order = np.argsort(acc)
        ax.errorbar(np.arange(acc.size), acc[order], yerr=2 * se, fmt="o", ms=3, lw=1, color="C0",
                    label="run accuracy ± 2 noise sd")
        ax.axhspan(acc.mean() - 2 * se, acc.mean() + 2 * se, color="0.85", label="probe-set noise alone")
        ax.set_xlabel("runs, sorted")
        ax.set_ylabel(f"final accuracy on {probe}")
        ax.legend(fontsize=8, loc="best")

    return Finding("A", f"seed sd of {probe} accuracy (probe noise removed)", value, ci, verdict, details, plot)

