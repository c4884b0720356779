"""H: does a static measure of the final solutions predict which one training finds?

Two sets of predictors of the final outcome (the target of E: cluster, or solution property),
each scored on held-out runs (grouped 5-fold by init seed):

- *static*: measures of the final solution alone: every ``static`` measure at the last step
  (weight norm, distance from init, effective ranks, sharpness) and the size of the important
  circuit (the fewest components holding 90% of the positive ablation effect);
- *early order*: what the run had learned first: every scalar property at the run's half-way
  point (the first checkpoint whose training loss has fallen half the way from its start to its end).

Headline: the held-out score of the static measures; details compare it with early order and
with both together (what early order adds). Intervals resample runs' held-out outcomes. A
held-out R^2 below 0 (worse than predicting the mean) reads "no predictive power"; an accuracy
whose interval reaches chance reads "not above chance".

Least data: 10 runs of 5 init seeds. The held-out scores come from grouped 5-fold by init seed:
5 folds need 5 init groups, and with 10 runs each fold holds out 2 and fits on 8 (with fewer,
a fit on 2 or 3 runs predicts nothing and the R^2 runs to large negative values).
"""

from __future__ import annotations

import numpy as np

from pathdep.analyses import stats
from pathdep.analyses.data import NotMeasured, StudyData, analysis
from pathdep.analyses.e import resampled_scores, target_of
from pathdep.analyses.finding import Finding

CIRCUIT_SHARE = 0.9


def circuit_size(imp: np.ndarray, share: float = CIRCUIT_SHARE) -> np.ndarray:
    """Fewest components whose positive ablation effects sum to ``share`` of the total: (R, U) -> (R,)."""
    pos = np.sort(np.clip(imp, 0, None), axis=-1)[:, ::-1]  # (R, U) descending
    total = pos.sum(-1, keepdims=True)
    reached = np.cumsum(pos, -1) >= share * np.where(total > 0, total, np.inf)
    return np.where(total[:, 0] > 0, reached.argmax(-1) + 1, 0).astype(float)


def half_way_steps(steps: np.ndarray, loss: np.ndarray) -> np.ndarray:
    """First step whose loss has fallen half the way from the first to the last value: (R, T) -> (R,)."""
    half = (loss[:, :1] + loss[:, -1:]) / 2
    return steps[np.argmax(loss <= half, axis=1)]


def reading(score: float, ci: tuple[float, float], chance: float, kind: str) -> str:
    """A held-out score in words: the number, or why it means nothing.

    >>> reading(-29.4, (-133.0, -10.4), 0.0, "regress")
    'no predictive power (held-out R² < 0)'
    >>> reading(0.81, (0.7, 0.9), 0.5, "classify")
    '0.81'
    >>> reading(0.55, (0.4, 0.7), 0.5, "classify")
    '0.55 (not above chance)'
    """
    if kind == "regress" and score < 0:
        return "no predictive power (held-out R² < 0)"
    if not ci[0] > chance:
        return f"{score:.2f} (not above chance)"
    return f"{score:.2f}"


def _static_features(data: StudyData, runs: list[str]) -> tuple[np.ndarray, list[str]]:
    cols, names = [], []
    st = data.table("static")
    if st is not None:
        st = st[(st["step"] == data.final_step) & st["run"].isin(runs)]
        wide = st.pivot_table(index="run", columns="measure", values="value").reindex(runs)
        wide = wide.loc[:, wide.notna().all()]
        cols.append(wide.to_numpy(dtype=float))
        names += list(wide.columns)
    imp = data.table("importance")
    if imp is not None and not imp.empty:
        ablation = "mean" if (imp["ablation"] == "mean").any() else imp["ablation"].iloc[0]
        sub = imp[(imp["step"] == data.final_step) & (imp["ablation"] == ablation) & (imp["probe"] == "test")
                  & imp["run"].isin(runs) & imp["unit"].notna() & (imp["unit"] >= 0)]
        wide = sub.pivot_table(index="run", columns=["layer", "unit"], values="delta_loss").reindex(runs)
        if len(sub) and wide.notna().all().all():
            cols.append(circuit_size(wide.to_numpy(dtype=float))[:, None])
            names.append("circuit_size")
    if not names:
        raise NotMeasured("no static measures or importance at the last step")
    return np.concatenate(cols, axis=1), names


def _early_features(data: StudyData, runs: list[str]) -> tuple[np.ndarray, np.ndarray]:
    steps, loss = data.prop_curves("train_loss", runs)
    at = half_way_steps(steps, loss)  # (R,)
    return data.props_at(runs, list(at)), at  # (R, P), (R,)


@analysis("H", tables=("behaviour", "properties", ("static", "importance")), min_runs=10, min_inits=5)
def analyse_h(data: StudyData) -> Finding:
    """Static measures vs early learning order as held-out predictors of the outcome."""
    runs = data.reference
    target, kind, what = target_of(data)
    if kind == "regress" and np.ptp(target) == 0:
        raise NotMeasured(f"every run ends with the same {data.solution_property}: nothing to predict")
    static, static_names = _static_features(data, runs)
    early, at = _early_features(data, runs)
    groups = data.seeds(runs)["init_seed"].to_numpy()
    sets = {"static": static, "early order": early, "both": np.concatenate([static, early], axis=1)}
    held = {n: stats.held_out_predictions(x, target, kind, groups) for n, x in sets.items()}
    hits = np.stack([(h.pred == target).astype(float) if kind == "classify" else -(h.pred - target) ** 2
                     for h in held.values()])  # (3, R)
    rng = data.rng(0x8)
    boot = np.stack([resampled_scores(hits, target, kind, rng.integers(0, len(runs), len(runs))) for _ in range(500)])
    cis = {n: stats.percentile_ci(boot[:, j]) for j, n in enumerate(sets)}
    scores = {n: h.score for n, h in held.items()}
    chance = held["static"].chance
    metric = "accuracy" if kind == "classify" else "R²"
    details = {"target": what, "metric": metric, "chance": chance, "static_measures": static_names,
               "half_way_step_median": float(np.median(at)), "scores": scores,
               "score_ci": {n: list(c) for n, c in cis.items()}, "early_adds": scores["both"] - scores["static"]}
    words = {n: reading(scores[n], cis[n], chance, kind) for n in sets}
    verdict = (f"held-out {metric} predicting the {what}: static measures {words['static']}, "
               f"early learning order {words['early order']}, both {words['both']} (chance {chance:.2f})")

    def plot(ax) -> None:
        names = list(scores)
        y = np.array([scores[n] for n in names])
        err = np.abs(np.array([cis[n] for n in names]).T - y)
        ax.bar(names, y, yerr=err, capsize=4, color=["C0", "C1", "C2"])
        ax.axhline(chance, color="C3", ls=":", lw=1, label="chance")
        ax.set_ylabel(f"held-out {metric}")
        ax.legend(fontsize=8)

    return Finding("H", f"held-out {metric} of static measures", scores["static"], cis["static"], verdict, details, plot)
