"""F: how much do early interventions change the final model?

Every run of an intervention variant is matched with the control run of the plain variant that
shares its init and data-order seeds. On the solution property: the *immediate effect* is the
intervened-minus-control difference at the first checkpoint at or after the intervention ends;
the *final effect* is the difference at the last step; *persistence* = mean final effect / mean
immediate effect (0: washed out; 1: kept; above 1: amplified). Headline: persistence pooled over
all interventions, each run's effects signed by the direction of its intervention's immediate
effect; intervals resample matched pairs. Per variant, the dose-response over window and strength.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pathdep.analyses import stats
from pathdep.analyses.data import NotMeasured, StudyData, analysis
from pathdep.analyses.finding import Finding


def persistence(immediate: np.ndarray, final: np.ndarray) -> float:
    """Mean final effect over mean immediate effect (NaN when there is no immediate effect)."""
    m = float(np.mean(immediate))
    return float(np.mean(final) / m) if m != 0 else float("nan")


def effect_summary(immediate: np.ndarray, final: np.ndarray, rng: np.random.Generator,
                   n_boot: int = 1000) -> dict[str, object]:
    """Means and bootstrap intervals (over matched pairs) of both effects and of persistence."""
    n = immediate.size
    idx = rng.integers(0, n, size=(n_boot, n))  # (n_boot, n)
    imm_b, fin_b = immediate[idx].mean(1), final[idx].mean(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        pers_b = np.where(imm_b != 0, fin_b / imm_b, np.nan)
    imm_ci = stats.percentile_ci(imm_b)
    return {
        "n": n, "immediate": float(immediate.mean()), "immediate_ci": imm_ci,
        "final": float(final.mean()), "final_ci": stats.percentile_ci(fin_b),
        "persistence": persistence(immediate, final), "persistence_ci": stats.percentile_ci(pers_b),
        "immediate_detected": bool(imm_ci[0] > 0 or imm_ci[1] < 0),
    }


def _matched(data: StudyData) -> pd.DataFrame:
    """One row per intervened run: its variant, window, strength and matched control run."""
    r = data.runs
    treated = r[r["fork"].isna() & r["intervention"].notna()]
    if treated.empty:
        raise NotMeasured("the study has no intervention variants (set intervention.* in a [[variants]] entry)")
    controls = r[r["fork"].isna() & r["intervention"].isna()]
    control_variant = "base" if (controls["variant"] == "base").any() else controls["variant"].value_counts().index[0]
    key = controls[controls["variant"] == control_variant].set_index(["init_seed", "data_seed"])["run"]
    rows = []
    for t in treated.itertuples(index=False):
        ctrl = key.get((t.init_seed, t.data_seed))
        if ctrl is not None:
            iv = t.intervention
            rows.append({"run": t.run, "control": ctrl, "variant": t.variant, "kind": iv["kind"],
                         "start": iv["start"], "end": iv["end"], "strength": iv["strength"]})
    if not rows:
        raise NotMeasured(f"no intervened run has a control in variant {control_variant!r} with the same seeds")
    return pd.DataFrame(rows)


def _first_steps_at_or_after(data: StudyData, runs: list[str], ends: list[int]) -> list[int]:
    """For each run, its first property step at or after the given step."""
    index = data.props_wide.index
    out = []
    for run, end in zip(runs, ends):
        have = np.array([s for r, s in index if r == run])
        later = have[have >= end]
        if later.size == 0:
            raise NotMeasured(f"run {run!r} has no checkpoint at or after step {end}")
        out.append(int(later.min()))
    return out


@analysis("F")
def analyse_f(data: StudyData) -> Finding:
    """Immediate vs final effect of interventions, against matched controls."""
    m = _matched(data)
    sol, last = data.solution_property, data.final_step
    treated_runs, controls = list(m["run"]), list(m["control"])
    after = _first_steps_at_or_after(data, treated_runs, list(m["end"]))
    imm = (data.props_at(treated_runs, after, [sol]) - data.props_at(controls, after, [sol]))[:, 0]  # (n,)
    ends = [last] * len(m)
    fin = (data.props_at(treated_runs, ends, [sol]) - data.props_at(controls, ends, [sol]))[:, 0]  # (n,)
    rng = data.rng(0xF)
    per_variant = {}
    sign = np.ones(len(m))
    for v, idx in m.groupby("variant").indices.items():
        first = m.iloc[idx[0]]
        summary = effect_summary(imm[idx], fin[idx], rng) | {
            "kind": first["kind"], "start": int(first["start"]), "end": int(first["end"]), "strength": float(first["strength"])}
        per_variant[v] = summary
        sign[idx] = np.sign(summary["immediate"]) or 1.0
    pooled = effect_summary(sign * imm, sign * fin, rng)
    treated = data.prop(sol, list(m["run"]), last)
    dip, p_dip = stats.dip_test(treated)
    details = {"property": sol, "variants": per_variant, "pooled": pooled, "final_dip_p": p_dip}
    if pooled["immediate_detected"]:
        verdict = (f"interventions move {sol} by {pooled['immediate']:+.3f} right after the window and "
                   f"{pooled['final']:+.3f} at the end: persistence {pooled['persistence']:.2f}")
    else:
        verdict = f"no immediate effect on {sol} detected (mean {pooled['immediate']:+.3f}), so persistence is undefined"
    verdict += f"; final outcomes of intervened runs are {'bimodal' if p_dip < 0.05 else 'not detectably bimodal'}"
    names = list(per_variant)
    xs = {f: np.array([per_variant[v][f] for v in names], dtype=float) for f in ("strength", "start")}
    axis = max(xs, key=lambda f: np.ptp(xs[f]))  # the dose that varies most across variants

    def plot(ax) -> None:  # one row per variant, by the dose that varies most: labels never overlap
        other = "start" if axis == "strength" else "strength"
        rows = sorted(names, key=lambda v: (per_variant[v][axis], per_variant[v][other], v))
        y = np.arange(len(rows))
        for j, (f, style) in enumerate((("immediate", "o"), ("final", "s"))):
            x = np.array([per_variant[v][f] for v in rows], dtype=float)
            err = np.abs(np.array([per_variant[v][f"{f}_ci"] for v in rows], dtype=float).T - x)
            ax.errorbar(x, y + (0.15 if j else -0.15), xerr=err, fmt=style, ms=5, capsize=2, lw=1,
                        label=f"{f} effect (95% CI)", mfc="none" if f == "immediate" else None)
        ax.set_yticks(y, [f"{v}\nsteps {per_variant[v]['start']}-{per_variant[v]['end']}, "
                          f"strength {per_variant[v]['strength']:g}" for v in rows], fontsize=7)
        ax.invert_yaxis()
        ax.axvline(0, color="0.6", lw=1)
        ax.set_xlabel(f"Δ {sol}, intervened minus matched control")
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)

    return Finding("F", "persistence (final / immediate effect)", pooled["persistence"],
                   pooled["persistence_ci"], verdict, details, plot)
