"""E: how well does a mid-training checkpoint predict the final model?

Target: the run's final cluster (C) when there are clusters, else its final solution property.
Features at step t: the behaviour vector at t (soft correctness on every probe) and every scalar
property at t. For each t, a model is fitted on some runs and scored on held-out runs (grouped
5-fold by init seed, so a run's siblings with another data order never help predict it):
accuracy for clusters, R^2 for the property. The final step is on the curve too: there the
target is read from the features themselves, so its score is the ceiling the held-out fit
reaches (about 1 when the target is learnable from this many runs).

Headline: the earliest step from which the held-out score stays >= 0.9 at every later
checkpoint. Its interval is the 5th-95th percentile (order statistics, so measured steps) of
that step over 500 resamples of runs' held-out outcomes, a resample that never stays >= 0.9
counting as later than every step (an upper end of ``inf``: "possibly never"), widened to
contain the headline. When the score never stays >= 0.9, the headline is the score at the final
step with its percentile interval over the same resamples. Both intervals' coverage is checked
in tests/test_interval_coverage.py (nominal 90%).

Nothing to predict: with one cluster, a final property whose spread across runs (standard
deviation) is within its *probe noise* is not predicted. Probe noise is the standard error of a
rate read off the finite probe set: sqrt(p (1 - p) / n), with p the runs' mean final property
(a rate in [0, 1]) and n the number of examples of the main probe (the one carrying the
solution type). Properties outside [0, 1] are not rates, and only a constant one is "nothing".

Needs >= 8 runs from >= 5 init seeds: the grouped 5-fold needs 5 groups to hold out, and each
fit then learns from >= 6 runs (with 3 runs an R^2 of -243 was seen).
"""

from __future__ import annotations

import numpy as np

from pathdep.analyses import stats
from pathdep.analyses.c import final_clustering
from pathdep.analyses.d import earliest
from pathdep.analyses.data import NotMeasured, StudyData, analysis
from pathdep.analyses.finding import Finding

REACH = 0.9
MIN_RUNS = 8
MIN_GROUPS = 5
N_RESAMPLES = 500


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


def resampled_curves(hits: np.ndarray, target: np.ndarray, kind: str, rng: np.random.Generator,
                     n: int = N_RESAMPLES) -> np.ndarray:
    """Score curves (n, T) on ``n`` resamples of runs (with replacement) of per-run held-out hits (T, R)."""
    idx = rng.integers(0, hits.shape[1], size=(n, hits.shape[1]))  # (n, R)
    if kind == "classify":
        return hits[:, idx].mean(-1).T
    return np.stack([resampled_scores(hits, target, kind, i) for i in idx])


def probe_noise(values: np.ndarray, n_examples: int) -> float:
    """Standard error of a rate in [0, 1] read off ``n_examples`` probe examples, at the runs'
    mean rate: sqrt(p (1 - p) / n). NaN when ``values`` are not rates.

    >>> round(probe_noise(np.array([0.9, 0.9]), 900), 4)
    0.01
    """
    v = np.asarray(values, dtype=float)
    if v.size == 0 or v.min() < 0 or v.max() > 1 or n_examples < 1:
        return float("nan")
    p = float(v.mean())
    return float(np.sqrt(p * (1 - p) / n_examples))


def target_of(data: StudyData) -> tuple[np.ndarray, str, str]:
    """What E and H predict: (target (R,), kind, description)."""
    cl = final_clustering(data)
    if cl.k > 1:
        return cl.labels, "classify", f"final cluster (of {cl.k})"
    return data.prop(data.solution_property, data.reference, data.final_step), "regress", f"final {data.solution_property}"


def step_features(data: StudyData, runs: list[str], step: int) -> np.ndarray:
    """Behaviour vector and scalar properties of each run at ``step``: (R, F)."""
    return np.concatenate([data.behaviour_vectors(runs, step), data.props_at(runs, [step] * len(runs))], axis=1)


def _nothing_to_predict(data: StudyData, target: np.ndarray) -> None:
    """Raise NotMeasured when the one-cluster target does not vary beyond probe noise."""
    name = data.solution_property
    if np.ptp(target) == 0:
        raise NotMeasured(f"nothing to predict: every run ends with the same {name}")
    n = data.behaviour(data.reference[:1], data.final_step, "margin", data.main_probe).shape[1]
    noise = probe_noise(target, n)
    spread = float(np.std(target, ddof=1))
    if np.isfinite(noise) and spread <= noise:
        raise NotMeasured(f"nothing to predict: runs do not differ beyond noise (spread of final {name} "
                          f"{spread:.2g} against probe noise {noise:.2g} from {n} examples)")


def step_interval(steps: np.ndarray, curves: np.ndarray, value: float) -> tuple[float, float]:
    """5th-95th percentile (order statistics) of the earliest step over resampled curves (B, T),
    "never" counting as ``inf``, widened to contain ``value``."""
    first = np.array([earliest(steps, c, REACH) for c in curves])
    first = np.where(np.isnan(first), np.inf, first)
    lo = float(np.quantile(first, 0.05, method="lower"))
    hi = float(np.quantile(first, 0.95, method="higher"))
    return min(lo, value), max(hi, value)


def score_interval(samples: np.ndarray, value: float) -> tuple[float, float]:
    """Percentile interval (90%) of resampled scores, widened to contain ``value``."""
    lo, hi = stats.percentile_ci(samples, 0.9)
    return min(lo, value), max(hi, value)


@analysis("E", tables=("behaviour", "properties"), min_runs=MIN_RUNS, min_inits=MIN_GROUPS, min_checkpoints=2)  # grouped 5-fold, each fit on >= 6 runs
def analyse_e(data: StudyData) -> Finding:
    """Held-out predictivity of the final outcome from each checkpoint (see the module docstring)."""
    runs = data.reference
    groups = data.seeds(runs)["init_seed"].to_numpy()
    n_groups = np.unique(groups).size
    target, kind, what = target_of(data)
    if kind == "regress":
        _nothing_to_predict(data, target)
    steps = np.array([s for s in data.behaviour_steps(runs) if s <= data.final_step])
    if steps.size < 2:
        raise NotMeasured("behaviour is stored at fewer than 2 steps")
    scores, hits, chance = predictivity_curve([step_features(data, runs, int(s)) for s in steps], target, kind, groups)
    curves = resampled_curves(hits, target, kind, data.rng(0xE))  # (B, T)
    band = np.nanquantile(curves, [0.025, 0.975], axis=0)  # (2, T)
    metric = "accuracy" if kind == "classify" else "R²"
    first = earliest(steps, scores, REACH)
    if np.isfinite(first):
        value, ci = first, step_interval(steps, curves, first)
        headline = f"earliest step with held-out {metric} >= {REACH} to the end"
    else:
        value, ci = float(scores[-1]), score_interval(curves[:, -1], float(scores[-1]))
        headline = f"held-out {metric} at the final step (never stays >= {REACH})"
    mid = int(np.argmin(np.abs(steps - data.final_step / 2)))
    details = {"target": what, "metric": metric, "chance": chance, "steps": steps.tolist(), "scores": scores.tolist(),
               "score_at_mid": float(scores[mid]), "mid_step": int(steps[mid]), "score_at_init": float(scores[0]),
               "score_at_final": float(scores[-1]), "earliest_step": first,
               "held_out": f"grouped 5-fold by init seed ({n_groups} seeds)",
               "interval": "5th-95th percentile over 500 resamples of runs' held-out outcomes"}
    verdict = (f"the {what} is predicted from held-out checkpoints with {metric} {scores[0]:.2f} at init, "
               f"{scores[mid]:.2f} at step {steps[mid]} (chance {chance:.2f}); ")
    if np.isfinite(first):
        verdict += f"{metric} reaches {REACH} at step {first:g} and stays there to the end"
    else:
        above = steps[scores >= REACH]
        verdict += (f"{metric} never stays >= {REACH}: {scores[-1]:.2f} at the final step"
                    + (f" (it touches {REACH} at step {above[0]:g})" if above.size else ""))

    def plot(ax) -> None:
        ax.fill_between(steps, band[0], band[1], color="C0", alpha=0.2, lw=0)
        ax.plot(steps, scores, "o-", ms=3, label=f"held-out {metric}")
        ax.axhline(REACH, color="0.6", ls="--", lw=1, label=f"{REACH}")
        ax.axhline(chance, color="C3", ls=":", lw=1, label="chance")
        ax.set_xlabel("checkpoint step t")
        ax.set_ylabel(f"{metric} predicting the {what}")
        ax.legend(fontsize=8, loc="lower right")

    return Finding("E", headline, value, ci, verdict, details, plot)
