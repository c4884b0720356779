"""G: do early circuits survive to the end?

- Overlap of important components: at each step, a run's top-k components by ablation effect
  (mean ablation when stored, else zero ablation; k = 10% of the components, at least 1) and the
  fraction of them still in its top-k at the final step. Chance is k / (number of components).
- CKA between each step and the final step within a run, per layer.
- Abrupt transitions in the training-loss curve: a sigmoid drop vs smooth decay of log loss,
  chosen by BIC (see :func:`pathdep.analyses.stats.fit_transition`).

Headline: the mean top-k overlap between the mid-training checkpoint and the final one (CKA when
no importance is stored); the interval resamples runs. Survival is path dependence only beyond
what every run shares (a convex problem's runs all keep their middle, and all end alike), so
``survival`` reads the overlap as skill over chance, or a run's CKA(mid, own end) minus the CKA
between different runs' ends; the spectrum places G by it.

Least data: 5 runs (the interval resamples runs; see A) and 3 checkpoints (a mid-training
checkpoint that is neither the start nor the end).
"""

from __future__ import annotations

import numpy as np

from pathdep.analyses import stats
from pathdep.analyses.data import NotMeasured, StudyData, analysis
from pathdep.analyses.finding import Finding

TOP_FRACTION = 0.1
MAX_TRANSITION_RUNS = 16


def topk_overlap(imp: np.ndarray, k: int) -> np.ndarray:
    """Fraction of each run's top-k components at each step that are in its top-k at the last step.

    imp (T, R, U) importance per step, run and component -> (T, R).
    """
    top = np.argsort(-imp, axis=-1, kind="stable")[..., :k]  # (T, R, k)
    final = np.zeros(imp.shape[1:], dtype=bool)  # (R, U)
    np.put_along_axis(final, top[-1], True, axis=-1)
    hit = np.take_along_axis(final[None].repeat(imp.shape[0], 0), top, axis=-1)  # (T, R, k)
    return hit.mean(-1)


def _importance(data: StudyData, runs: list[str]) -> tuple[np.ndarray, np.ndarray, str] | None:
    t = data.table("importance")
    if t is None or t.empty:
        return None
    ablation = "mean" if (t["ablation"] == "mean").any() else t["ablation"].iloc[0]
    probe = data.probe_order(t["probe"].unique())[0]  # the main probe, read from this table alone
    t = t[(t["ablation"] == ablation) & (t["probe"] == probe) & t["run"].isin(runs) & t["unit"].notna() & (t["unit"] >= 0)]
    wide = t.pivot_table(index=["step", "run"], columns=["layer", "unit"], values="delta_loss")
    steps = np.array(sorted(s for s in wide.index.get_level_values(0).unique()
                            if all((s, r) in wide.index for r in runs)))
    if steps.size < 2 or steps[-1] != data.final_step:
        return None
    arr = np.stack([wide.loc[int(s)].loc[runs].to_numpy(dtype=float) for s in steps])  # (T, R, U)
    return steps, np.nan_to_num(arr, nan=-np.inf), f"{ablation} ablation on {probe}"


def _cka_curves(data: StudyData, runs: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per layer: steps (T,) and within-run CKA(t, final) (R, T)."""
    t = data.table("cka")
    if t is None:
        return {}
    t = t[(t["run_a"] == t["run_b"]) & (t["step_b"] == data.final_step) & t["run_a"].isin(runs)]
    if "probe" in t:
        t = t[t["probe"] == data.probe_order(t["probe"].unique())[0]] if len(t) else t
    out = {}
    for layer, g in t.groupby("layer"):
        wide = g.pivot_table(index="run_a", columns="step_a", values="cka").reindex(runs).dropna(axis=1)
        if wide.shape[1]:
            out[str(layer)] = (wide.columns.to_numpy(dtype=int), wide.to_numpy(dtype=float))
    return out


def _between_final_cka(data: StudyData, runs: list[str], layer: str) -> np.ndarray | None:
    """CKA (R, R) of one layer between different runs' final checkpoints (NaN where unmeasured)."""
    t = data.table("cka")
    if t is None:
        return None
    last, pos = data.final_step, {r: i for i, r in enumerate(runs)}
    t = t[(t["layer"].astype(str) == layer) & (t["run_a"] != t["run_b"]) & (t["step_a"] == last)
          & (t["step_b"] == last) & t["run_a"].isin(pos) & t["run_b"].isin(pos)]
    if "probe" in t and len(t):
        t = t[t["probe"] == data.probe_order(t["probe"].unique())[0]]  # as _cka_curves: this table alone
    if t.empty:
        return None
    m = np.full((len(runs), len(runs)), np.nan)
    i, j = t["run_a"].map(pos).to_numpy(), t["run_b"].map(pos).to_numpy()
    m[i, j] = m[j, i] = t["cka"].to_numpy(dtype=float)
    return m


def survival(vals: np.ndarray, mid: int, chance: float | None, between: np.ndarray | None,
             rng: np.random.Generator) -> tuple[float, tuple[float, float]] | None:
    """How much of a run's mid-training structure survives beyond what every run shares, with an
    interval over resampled runs: top-k overlap as skill over chance, (o - c) / (1 - c), or a run's
    CKA(mid, own end) minus the CKA between different runs' ends. None when neither applies.

    vals (R, T); between (R, R) with NaN on the diagonal and where unmeasured.
    """
    if chance is not None:
        skill = (vals[:, mid] - chance) / (1 - chance)
        ci, _ = stats.bootstrap(lambda i: skill[i].mean(), skill.size, rng)
        return float(skill.mean()), ci
    if between is None:
        return None
    np.fill_diagonal(between, np.nan)

    def contrast(i: np.ndarray) -> float:
        b = between[np.ix_(i, i)]
        return float(vals[i, mid].mean() - np.nanmean(b)) if np.isfinite(b).any() else float("nan")

    ci, _ = stats.bootstrap(contrast, vals.shape[0], rng, n_boot=300)
    return contrast(np.arange(vals.shape[0])), ci


def _transitions(data: StudyData, runs: list[str]) -> dict[str, object]:
    fits = []
    for run in runs[:MAX_TRANSITION_RUNS]:
        log = data.study.train_log(run)
        if len(log) >= 20:
            fits.append(stats.fit_transition(log["step"].to_numpy(), np.log(np.maximum(log["loss"].to_numpy(), 1e-12))))
    if not fits:
        return {}
    abrupt = [f for f in fits if f.abrupt]
    return {"runs_fitted": len(fits), "abrupt_fraction": len(abrupt) / len(fits),
            "transition_steps": [round(f.t0) for f in abrupt],
            "criterion": "sigmoid beats exponential and power-law decay of log loss by BIC > 10, 10-90% width < 20% of training"}


@analysis("G", tables=(("importance", "cka"),), min_runs=5, min_checkpoints=3)
def analyse_g(data: StudyData) -> Finding:
    """Survival of important components and representations (see the module docstring)."""
    runs = data.reference
    imp = _importance(data, runs)
    ckas = _cka_curves(data, runs)
    if imp is None and not ckas:
        raise NotMeasured("neither importance (ablation) nor within-run CKA is stored at several steps")
    rng = data.rng(0x6)
    details: dict[str, object] = {}
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # name -> steps, (R, T)
    if imp is not None:
        steps, arr, how = imp
        k = max(1, int(np.ceil(TOP_FRACTION * arr.shape[-1])))
        ov = topk_overlap(arr, k).T  # (R, T)
        curves[f"top-{k} overlap"] = (steps, ov)
        details |= {"importance": how, "k": k, "components": arr.shape[-1], "chance_overlap": k / arr.shape[-1]}
    for layer, (s, c) in ckas.items():
        curves[f"CKA {layer}"] = (s, c)
    name = next(iter(curves))
    steps, vals = curves[name]
    mid = int(np.argmin(np.abs(steps - data.final_step / 2)))
    value = float(vals[:, mid].mean())
    ci, _ = stats.bootstrap(lambda i: vals[i, mid].mean(), vals.shape[0], rng)
    for n, (s, v) in curves.items():
        details[f"{n} by step"] = dict(zip(map(int, s), v.mean(0).round(4).tolist()))
    details |= {"mid_step": int(steps[mid])}
    chance = details.get("chance_overlap") if name.startswith("top-") else None
    between = None if chance is not None else _between_final_cka(data, runs, name.removeprefix("CKA "))
    surv = survival(vals, mid, chance, between, data.rng(0x61))
    if surv is not None:
        details |= {"survival": surv[0], "survival_ci": surv[1],
                    "survival_reads": "top-k overlap as skill over chance" if chance is not None
                    else "CKA(mid, own end) minus CKA between different runs' ends"}
    tr = _transitions(data, runs)
    if tr:
        details["transitions"] = tr
    verdict = f"{name} between step {steps[mid]} and the end: {value:.2f}"
    if imp is not None:
        verdict += f" (chance {details['chance_overlap']:.2f})"
    if surv is not None:
        verdict += f"; beyond what runs share: {round(surv[0], 2) + 0.0:.2f} ({details['survival_reads']})"
    if tr:
        verdict += f"; abrupt loss transitions in {tr['abrupt_fraction']:.0%} of {tr['runs_fitted']} runs"

    def plot(ax) -> None:
        for j, (n, (s, v)) in enumerate(curves.items()):
            ax.plot(s, v.mean(0), "o-", ms=3, color=f"C{j}", label=n)
            ax.fill_between(s, *np.quantile(v, [0.1, 0.9], axis=0), color=f"C{j}", alpha=0.15, lw=0)
        if imp is not None:
            ax.axhline(details["chance_overlap"], color="0.6", ls=":", lw=1, label="chance overlap")
        ax.set_xlabel("step t")
        ax.set_ylabel("similarity of t to the final model")
        ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)

    return Finding("G", f"{name}, mid-training vs final", value, ci, verdict, details, plot)

