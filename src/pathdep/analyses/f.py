"""F: how much do early interventions change the final model?

Every run of an intervention variant is matched with the control run of the plain variant that
shares its init and data-order seeds. On the solution property, signed as intervened minus
control: the *immediate effect* is the difference at the first checkpoint at or after the
intervention ends; the *final effect* is the difference at the last step; *persistence* = mean
final effect / mean immediate effect (0: washed out; 1: kept; above 1: amplified; negative:
reversed), defined only where the immediate effect is detected (its interval excludes 0).
Intervals resample matched pairs. The sign says toward which solution type the intervention
pushes (the task's ``solution_ends`` name what a low and a high property mean).

Headline: persistence pooled over every matched pair; when no immediate effect is detected, the
pooled final effect instead (a late effect without an immediate one has no persistence). Per
variant, the same numbers over window and strength.

Least data: 5 matched pairs (the intervals resample pairs, as A's resample runs); a variant with
fewer is reported without intervals and without persistence.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pathdep.analyses import stats
from pathdep.analyses.data import NotMeasured, StudyData, analysis
from pathdep.analyses.finding import Finding

MIN_PAIRS = 5


def persistence(immediate: np.ndarray, final: np.ndarray) -> float:
    """Mean final effect over mean immediate effect (NaN when there is no immediate effect)."""
    m = float(np.mean(immediate))
    return float(np.mean(final) / m) + 0.0 if m != 0 else float("nan")  # + 0.0: no "-0.00"


def effect_summary(immediate: np.ndarray, final: np.ndarray, rng: np.random.Generator,
                   n_boot: int = 1000) -> dict[str, object]:
    """Signed means and bootstrap intervals (over matched pairs) of both effects and of persistence.

    immediate, final (n,): intervened minus control. Persistence and its interval are None unless
    the immediate effect is detected; below ``MIN_PAIRS`` pairs there are no intervals at all.
    """
    n = immediate.size
    out: dict[str, object] = {"n": n, "immediate": float(immediate.mean()) + 0.0, "final": float(final.mean()) + 0.0,
                              "immediate_ci": None, "final_ci": None, "immediate_detected": False,
                              "final_detected": False, "persistence": None, "persistence_ci": None}
    if n < MIN_PAIRS:
        return out
    idx = rng.integers(0, n, size=(n_boot, n))  # (n_boot, n)
    imm_b, fin_b = immediate[idx].mean(1), final[idx].mean(1)
    imm_ci, fin_ci = stats.percentile_ci(imm_b), stats.percentile_ci(fin_b)
    out |= {"immediate_ci": imm_ci, "final_ci": fin_ci,
            "immediate_detected": bool(imm_ci[0] > 0 or imm_ci[1] < 0),
            "final_detected": bool(fin_ci[0] > 0 or fin_ci[1] < 0)}
    if out["immediate_detected"]:
        with np.errstate(invalid="ignore", divide="ignore"):
            pers_b = np.where(imm_b != 0, fin_b / imm_b, np.nan) + 0.0
        out |= {"persistence": persistence(immediate, final), "persistence_ci": stats.percentile_ci(pers_b)}
    return out


def direction(effect: float, prop: str, ends: tuple[str, str] | None) -> str:
    """Words for the direction of a signed effect: "toward low reliance (the XOR solution)".

    >>> direction(-0.1, "reliance", ("the XOR solution", "the linear solution"))
    'toward low reliance (the XOR solution)'
    >>> direction(0.2, "noisy_acc", None)
    'toward high noisy_acc'
    """
    side = 0 if effect < 0 else 1
    return f"toward {('low', 'high')[side]} {prop}" + (f" ({ends[side]})" if ends else "")


def _matched(data: StudyData) -> pd.DataFrame:
    """One row per intervened run: its variant, window, strength and matched control run."""
    m = data.matched
    if m.empty:
        raise NotMeasured("the study has no intervened runs with a matched control (set intervention.* in a "
                          "[[variants]] entry with the control's seeds)")
    return m


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


def _interval(ci: tuple[float, float] | None) -> str:
    return "" if ci is None else f" (95% CI {ci[0]:+.3f} to {ci[1]:+.3f})"


def _effects(summary: dict[str, object], prop: str, ends: tuple[str, str] | None) -> str:
    """The verdict's clause for one set of signed effects (see :func:`effect_summary`)."""
    imm, fin = summary["immediate"], summary["final"]
    imm_ci, fin_ci = (_interval(summary[f"{k}_ci"]) for k in ("immediate", "final"))
    if summary["immediate_detected"]:
        text = (f"move {prop} by {imm:+.3f}{imm_ci} right after the window, {direction(imm, prop, ends)}, and by "
                f"{fin:+.3f}{fin_ci} at the end: persistence {summary['persistence']:.2f}")
    else:
        text = (f"show no immediate effect detected on {prop} ({imm:+.3f}{imm_ci}), so no persistence; "
                f"at the end {fin:+.3f}{fin_ci}")
    if summary["final_detected"]:
        return text + f", a lasting push {direction(fin, prop, ends)}"
    return text + ", no lasting effect detected"


@analysis("F", tables=("properties",), min_matched=MIN_PAIRS)
def analyse_f(data: StudyData) -> Finding:
    """Signed immediate vs final effects of interventions, against matched controls."""
    m = _matched(data)
    sol, last = data.solution_property, data.final_step
    ends = getattr(data.study.task, "solution_ends", None)
    treated_runs, controls = list(m["run"]), list(m["control"])
    after = _first_steps_at_or_after(data, treated_runs, list(m["end"]))
    imm = (data.props_at(treated_runs, after, [sol]) - data.props_at(controls, after, [sol]))[:, 0]  # (n,)
    ends_at = [last] * len(m)
    fin = (data.props_at(treated_runs, ends_at, [sol]) - data.props_at(controls, ends_at, [sol]))[:, 0]  # (n,)
    rng = data.rng(0xF)
    per_variant = {}
    for v, idx in m.groupby("variant").indices.items():
        first = m.iloc[idx[0]]
        summary = effect_summary(imm[idx], fin[idx], rng)
        pushes = (direction(summary["final"], sol, ends) if summary["final_detected"] else
                  "no lasting push detected" if summary["final_ci"] else
                  f"too few pairs to tell (needs >= {MIN_PAIRS})")
        per_variant[v] = summary | {"kind": first["kind"], "start": int(first["start"]), "end": int(first["end"]),
                                    "strength": float(first["strength"]), "pushes": pushes}
    pooled = effect_summary(imm, fin, rng)
    signs = {np.sign(s["immediate"]) for s in per_variant.values() if s["immediate_detected"]}
    treated = data.prop(sol, treated_runs, last)
    dip, p_dip = stats.dip_test(treated)
    details = {"property": sol, "effect": "intervened minus matched control",
               "interval": f"95% percentile bootstrap over matched pairs (none below {MIN_PAIRS} pairs)",
               "variants": per_variant,
               "pooled": pooled, "final_dip_p": p_dip, "directions_agree": len(signs) <= 1}
    if ends:
        details |= {"low_means": ends[0], "high_means": ends[1]}
    verdict = f"interventions (pooled over {len(m)} matched pairs) " + _effects(pooled, sol, ends)
    if len(signs) > 1:
        verdict += "; variants push in opposite directions, so the pooled effects mix them"
    if np.isfinite(p_dip):
        verdict += f"; final outcomes of intervened runs are {'bimodal' if p_dip < 0.05 else 'not detectably bimodal'}"
    if pooled["immediate_detected"]:
        headline, value, ci = "persistence (final / immediate effect)", pooled["persistence"], pooled["persistence_ci"]
    else:
        headline, value, ci = f"final effect on {sol} (no immediate effect)", pooled["final"], pooled["final_ci"]
    names = list(per_variant)
    xs = {f: np.array([per_variant[v][f] for v in names], dtype=float) for f in ("strength", "start")}
    axis = max(xs, key=lambda f: np.ptp(xs[f]))  # the dose that varies most across variants

    def plot(ax) -> None:  # one row per variant, by the dose that varies most: labels never overlap
        other = "start" if axis == "strength" else "strength"
        rows = sorted(names, key=lambda v: (per_variant[v][axis], per_variant[v][other], v))
        y = np.arange(len(rows))
        for j, (f, style) in enumerate((("immediate", "o"), ("final", "s"))):
            x = np.array([per_variant[v][f] for v in rows], dtype=float)
            err = np.abs(np.array([per_variant[v][f"{f}_ci"] or (np.nan, np.nan) for v in rows], dtype=float).T - x)
            ax.errorbar(x, y + (0.15 if j else -0.15), xerr=err, fmt=style, ms=5, capsize=2, lw=1,
                        label=f"{f} effect (95% CI)", mfc="none" if f == "immediate" else None)
        ax.set_yticks(y, [f"{v}\nsteps {per_variant[v]['start']}-{per_variant[v]['end']}, "
                          f"strength {per_variant[v]['strength']:g}" for v in rows], fontsize=7)
        ax.invert_yaxis()
        ax.axvline(0, color="0.6", lw=1)
        ax.set_xlabel(f"Δ {sol}, intervened minus matched control")
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)

    return Finding("F", headline, value, ci, verdict, details, plot)
