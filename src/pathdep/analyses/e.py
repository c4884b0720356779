"""E: how well does a mid-training checkpoint predict the final model?

Target: the run's final cluster (C) when there are clusters, else its final solution property.
Features at step t: the behaviour vector at t (soft correctness on every probe) and every scalar
property at t. For each t, a model is fitted on some runs and scored on held-out runs (grouped
5-fold by init seed, so a run's siblings with another data order never help predict it):
accuracy for clusters, R^2 for the property. Headline: the earliest t whose held-out score
reaches 0.9; the interval resamples runs' held-out outcomes.
"""

from __future__ import annotations

import numpy as np

from pathdep.analyses import stats
from pathdep.analyses.c import final_clustering
from pathdep.analyses.d import earliest
from pathdep.analyses.data import NotMeasured, StudyData, analysis
from pathdep.analyses.finding import Finding

REACH = 0.9


def predictivity_curve(features: list[np.ndarray], target: np.ndarray, kind: str,
                       groups: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """Held-out score of predicting ``target`` (R,) from each step's features (R, F_t).

    Returns the scores (T,), per-run held-out hits (T, R) (1/0 correctness, or negative squared
    error for regression) and the chance level.
    """
    scores, hits, chance = [], [], 0.0
    for x in features:
        h = stats.held_out_predictions(x, target, kind, groups)
        scores.append(h.score)
        hits.append((h.pred == target).astype(float) if kind == "classify" else -(h.pred - target) ** 2)
        chance = h.chance
    return np.array(scores), np.stack(hits), chance


def resampled_scores(hits: np.ndarray, target: np.ndarray, kind: str, idx: np.ndarray) -> np.ndarray:
    """The score curve (T,) on a resample ``idx`` of runs, from per-run held-out hits (T, R)."""
    if kind == "classify":
        return hits[:, idx].mean(1)
    ss_tot = np.sum((target[idx] - target[idx].mean()) ** 2)
    return 1 + hits[:, idx].sum(1) / ss_tot if ss_tot > 0 else np.full(hits.shape[0], np.nan)


def target_of(data: StudyData) -> tuple[np.ndarray, str, str]:
    """What E and H predict: (target (R,), kind, description)."""
    cl = final_clustering(data)
    if cl.k > 1:
        return cl.labels, "classify", f"final cluster (of {cl.k})"
    return data.prop(data.solution_property, data.reference, data.final_step), "regress", f"final {data.solution_property}"


def step_features(data: StudyData, runs: list[str], step: int) -> np.ndarray:
    """Behaviour vector and scalar properties of each run at ``step``: (R, F)."""
    return np.concatenate([data.behaviour_vectors(runs, step), data.props_at(runs, [step] * len(runs))], axis=1)


@analysis("E", min_runs=10, min_inits=5, min_checkpoints=2)  # grouped 5-fold: 5 init groups, 2 runs a fold
def analyse_e(data: StudyData) -> Finding:
    """Held-out predictivity of the final outcome from each checkpoint (see the module docstring)."""
    runs = data.reference
    target, kind, what = target_of(data)
    if kind == "regress" and np.ptp(target) == 0:
        raise NotMeasured(f"every run ends with the same {data.solution_property}: nothing to predict")
    steps = np.array([s for s in data.behaviour_steps(runs) if s <= data.final_step])
    if steps.size < 2:
        raise NotMeasured("behaviour is stored at fewer than 2 steps")
    groups = data.seeds(runs)["init_seed"].to_numpy()
    scores, hits, chance = predictivity_curve([step_features(data, runs, int(s)) for s in steps], target, kind, groups)
    value = earliest(steps, scores, REACH)
    rng = data.rng(0xE)
    curves = np.stack([resampled_scores(hits, target, kind, rng.integers(0, len(runs), len(runs))) for _ in range(500)])
    ci = stats.percentile_ci(np.array([earliest(steps, c, REACH) for c in curves]))
    band = np.nanquantile(curves, [0.025, 0.975], axis=0)  # (2, T)
    metric = "accuracy" if kind == "classify" else "R²"
    mid = int(np.argmin(np.abs(steps - data.final_step / 2)))
    details = {"target": what, "metric": metric, "chance": chance, "steps": steps.tolist(), "scores": scores.tolist(),
               "score_at_mid": float(scores[mid]), "mid_step": int(steps[mid]), "score_at_init": float(scores[0]),
               "held_out": "grouped 5-fold by init seed"}
    verdict = (f"the {what} is predicted from held-out checkpoints with {metric} {scores[0]:.2f} at init, "
               f"{scores[mid]:.2f} at step {steps[mid]} (chance {chance:.2f}); "
               + (f"{metric} reaches {REACH} from step {value:g}" if np.isfinite(value) else f"never reaches {REACH}"))

    def plot(ax) -> None:
        ax.fill_between(steps, band[0], band[1], color="C0", alpha=0.2, lw=0)
        ax.plot(steps, scores, "o-", ms=3, label=f"held-out {metric}")
        ax.axhline(REACH, color="0.6", ls="--", lw=1, label=f"{REACH}")
        ax.axhline(chance, color="C3", ls=":", lw=1, label="chance")
        ax.set_xlabel("checkpoint step t")
        ax.set_ylabel(f"{metric} predicting the {what}")
        ax.legend(fontsize=8, loc="lower right")

    return Finding("E", f"earliest step with held-out {metric} >= {REACH}", value, ci, verdict, details, plot)
