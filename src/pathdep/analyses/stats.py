"""The statistics every analysis shares: resampling intervals, tests, clustering, prediction.

Pure functions over numpy arrays. Randomness comes from an explicit ``numpy.random.Generator``.

- :func:`bootstrap` / :func:`multi_bootstrap`: percentile intervals, resampling runs (and, in the
  multi-bootstrap of the MultiBERTs work, runs and probe examples jointly).
- :func:`permutation_test`: one-sided p-value of a statistic under shuffled group labels.
- :func:`dip_test`: Hartigan's dip test of unimodality.
- :func:`choose_k_gmm` / :func:`choose_k_distances`: the number of clusters by a stated criterion,
  returning one cluster on a population without clusters.
- :func:`held_out_predictions`: leave-runs-out (grouped k-fold) predictions and their score.
- :func:`fit_transition`: is a curve's drop abrupt (sigmoid) or smooth, by BIC.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Stat = Callable[[np.ndarray], float]


def one_thread():
    """Run scikit-learn's OpenMP/BLAS code on one thread: on small problems several threads only
    fight (k-means inits and mixtures ran ~10x slower with two)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1)


def percentile_ci(samples: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The central ``level`` percentile interval of bootstrap samples (NaNs ignored)."""
    s = np.asarray(samples, dtype=float)
    s = s[np.isfinite(s)]
    if s.size == 0:
        return (float("nan"), float("nan"))
    a = (1 - level) / 2
    lo, hi = np.quantile(s, [a, 1 - a])
    return (float(lo), float(hi))


def bootstrap(stat: Stat, n: int, rng: np.random.Generator, n_boot: int = 1000,
              level: float = 0.95) -> tuple[tuple[float, float], np.ndarray]:
    """Percentile interval of ``stat(idx)`` over resamples ``idx`` of ``range(n)`` with replacement.

    >>> x = np.arange(10.0)
    >>> (lo, hi), _ = bootstrap(lambda i: x[i].mean(), 10, np.random.default_rng(0), 200)
    >>> lo < 4.5 < hi
    True
    """
    idx = rng.integers(0, n, size=(n_boot, n))  # (n_boot, n)
    samples = np.array([stat(i) for i in idx])
    return percentile_ci(samples, level), samples


def multi_bootstrap(stat: Callable[[np.ndarray, np.ndarray], float], n_runs: int, n_examples: int,
                    rng: np.random.Generator, n_boot: int = 500,
                    level: float = 0.95) -> tuple[tuple[float, float], np.ndarray]:
    """Percentile interval of ``stat(run_idx, example_idx)`` resampling runs and examples jointly.

    Both the runs (the seeds one happened to train) and the probe examples (the finite probe set
    one happened to draw) are samples; the interval accounts for both.
    """
    r = rng.integers(0, n_runs, size=(n_boot, n_runs))
    e = rng.integers(0, n_examples, size=(n_boot, n_examples))
    samples = np.array([stat(r[b], e[b]) for b in range(n_boot)])
    return percentile_ci(samples, level), samples


def permutation_test(stat: Callable[[np.ndarray], float], labels: np.ndarray, rng: np.random.Generator,
                     n_perm: int = 1000) -> tuple[float, float]:
    """Observed ``stat(labels)`` and the one-sided p-value P(stat(shuffled) >= observed).

    The p-value counts the observed labelling among the permutations, so it is never 0.
    """
    labels = np.asarray(labels)
    observed = float(stat(labels))
    perm = np.array([stat(rng.permutation(labels)) for _ in range(n_perm)])
    p = (1 + np.sum(perm >= observed - 1e-12)) / (1 + n_perm)
    return observed, float(p)


def dip_test(x: np.ndarray) -> tuple[float, float]:
    """Hartigan's dip statistic and its p-value (small p: not unimodal). NaN below 4 values.

    >>> rng = np.random.default_rng(0)
    >>> one = rng.normal(size=200)                                       # one mode
    >>> two = np.concatenate([rng.normal(-3, 1, 100), rng.normal(3, 1, 100)])  # two modes
    >>> dip_test(one)[1] > 0.5, dip_test(two)[1] < 0.01
    (True, True)
    """
    import diptest

    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    if x.size < 4:
        return float("nan"), float("nan")
    if np.ptp(x) == 0:
        return 0.0, 1.0
    dip, p = diptest.diptest(x)
    return float(dip), float(p)


def agreement_matrix(pred: np.ndarray) -> np.ndarray:
    """Fraction of examples on which two runs predict the same label: pred (R, N) -> (R, R).

    One matrix product over one-hot predictions, not a loop over pairs.
    """
    classes = np.unique(pred)
    onehot = (pred[None] == classes[:, None, None]).astype(float)  # (C, R, N)
    return np.einsum("crn,csn->rs", onehot, onehot) / pred.shape[1]


# --- clustering ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Clustering:
    """Cluster labels (0..k-1, largest cluster first), the chosen k and the criterion per k."""

    labels: np.ndarray  # (n,)
    k: int
    scores: dict[int, float]  # criterion per candidate k (BIC, lower is better; or silhouette)
    criterion: str
    silhouette: float  # of the chosen labelling (nan when k == 1)


def _relabel_by_size(labels: np.ndarray) -> np.ndarray:
    order = np.argsort(-np.bincount(labels), kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return rank[labels]


def embed(x: np.ndarray, dims: int = 3) -> np.ndarray:
    """The first ``dims`` principal components of rows of ``x`` (n, f), scaled by PC1's spread."""
    x = np.asarray(x, dtype=float)
    xc = x - x.mean(0)
    u, s, _ = np.linalg.svd(xc, full_matrices=False)
    d = max(1, min(dims, int(np.sum(s > 1e-9 * max(s[0], 1e-300))) if s.size else 1))
    z = u[:, :d] * s[:d]  # (n, d)
    scale = z[:, 0].std() if z.shape[0] > 1 else 1.0
    return z / scale if scale > 0 else z


GMM_MIN_DELTA_BIC = 10.0  # "very strong" evidence (Kass & Raftery) needed to prefer k > 1


SILHOUETTE_MIN = 0.5  # Kaufman & Rousseeuw: above 0.5 a "reasonable structure has been found"


def choose_k_gmm(x: np.ndarray, rng: np.random.Generator, k_max: int = 6, dims: int = 3) -> Clustering:
    """Clusters of the rows of ``x`` (n, f) by a Gaussian mixture on its top principal components.

    Criterion: the k in 1..k_max with the lowest BIC, kept only if its BIC is more than
    ``GMM_MIN_DELTA_BIC`` below the BIC of one cluster and its silhouette exceeds
    ``SILHOUETTE_MIN`` (with few runs a full-covariance mixture can win on BIC by fitting
    near-singular components to noise); otherwise k = 1. A population without clusters
    therefore comes back as one cluster.
    """
    from sklearn.metrics import silhouette_score
    from sklearn.mixture import GaussianMixture

    x = np.asarray(x, dtype=float)
    n = x.shape[0]
    one = Clustering(np.zeros(n, dtype=int), 1, {1: float("nan")}, "gmm-bic", float("nan"))
    if n < 4 or np.allclose(x, x[0]):
        return one
    z = embed(x, dims)
    seed = int(rng.integers(2**31 - 1))
    scores: dict[int, float] = {}
    fits = {}
    with one_thread():
        for k in range(1, min(k_max, n // 2) + 1):
            gm = GaussianMixture(k, covariance_type="full", reg_covar=1e-4, n_init=3, random_state=seed).fit(z)
            scores[k] = float(gm.bic(z))
            fits[k] = gm
    best = min(scores, key=scores.get)  # type: ignore[arg-type]
    if best == 1 or scores[1] - scores[best] <= GMM_MIN_DELTA_BIC:
        return Clustering(one.labels, 1, scores, "gmm-bic", float("nan"))
    labels = _relabel_by_size(fits[best].predict(z))
    if np.unique(labels).size < 2:
        return Clustering(one.labels, 1, scores, "gmm-bic", float("nan"))
    silhouette = float(silhouette_score(z, labels))
    if silhouette <= SILHOUETTE_MIN:
        return Clustering(one.labels, 1, scores, "gmm-bic", silhouette)
    return Clustering(labels, int(np.unique(labels).size), scores, "gmm-bic", silhouette)


def choose_k_distances(d: np.ndarray, k_max: int = 6) -> Clustering:
    """Clusters of a dissimilarity matrix ``d`` (n, n) by average linkage.

    Criterion: the k in 2..k_max with the highest silhouette, kept only if that silhouette
    exceeds ``SILHOUETTE_MIN``; otherwise k = 1.
    """
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform
    from sklearn.metrics import silhouette_score

    d = np.asarray(d, dtype=float)
    d = np.maximum((d + d.T) / 2, 0)
    np.fill_diagonal(d, 0)
    n = d.shape[0]
    one = Clustering(np.zeros(n, dtype=int), 1, {}, "silhouette", float("nan"))
    if n < 4 or np.allclose(d, 0):
        return one
    tree = linkage(squareform(d, checks=False), method="average")
    scores: dict[int, float] = {}
    cands = {}
    for k in range(2, min(k_max, n - 1) + 1):
        lab = fcluster(tree, k, criterion="maxclust") - 1
        if np.unique(lab).size < 2:
            continue
        scores[k] = float(silhouette_score(d, lab, metric="precomputed"))
        cands[k] = lab
    if not scores:
        return one
    best = max(scores, key=scores.get)  # type: ignore[arg-type]
    if scores[best] <= SILHOUETTE_MIN:
        return Clustering(one.labels, 1, scores, "silhouette", float("nan"))
    labels = _relabel_by_size(cands[best])
    return Clustering(labels, int(np.unique(labels).size), scores, "silhouette", scores[best])


# --- leave-runs-out prediction ---------------------------------------------------------------


@dataclass(frozen=True)
class HeldOut:
    """Out-of-fold predictions of held-out runs and their score (accuracy, or R^2)."""

    pred: np.ndarray  # (n,)
    score: float
    chance: float  # majority-class rate (classification) or 0 (R^2 of the mean)
    kind: str


def _folds(groups: np.ndarray, n_splits: int) -> list[np.ndarray]:
    """Test-index arrays of a grouped k-fold: whole groups (e.g. init seeds) are held out together."""
    uniq = np.unique(groups)
    k = min(n_splits, uniq.size)
    assign = {g: i % k for i, g in enumerate(uniq)}
    fold = np.array([assign[g] for g in groups])
    return [np.flatnonzero(fold == i) for i in range(k)]


def held_out_predictions(x: np.ndarray, y: np.ndarray, kind: str, groups: np.ndarray | None = None,
                         n_splits: int = 5) -> HeldOut:
    """Predict ``y`` (n,) from features ``x`` (n, f) for runs held out of the fit.

    ``kind`` is "classify" (standardised features, L2 logistic regression with its penalty chosen
    by an inner 3-fold CV; score = accuracy) or
    "regress" (standardised features, ridge with its penalty chosen by internal CV; score = R^2
    of the held-out predictions against the mean). Runs in the same group never straddle a fold.
    """
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV, RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.asarray(x, dtype=float).reshape(len(y), -1)
    y = np.asarray(y)
    n = y.shape[0]
    groups = np.arange(n) if groups is None else np.asarray(groups)
    pred = np.empty(n, dtype=float)
    for test in _folds(groups, n_splits):
        train = np.setdiff1d(np.arange(n), test)
        if kind == "classify":
            classes = np.unique(y[train])
            if classes.size < 2:
                pred[test] = classes[0] if classes.size else 0
                continue
            if np.bincount(np.unique(y[train], return_inverse=True)[1]).min() >= 3:
                lr = LogisticRegressionCV(Cs=np.logspace(-3, 2, 6), cv=3, max_iter=2000)
            else:
                lr = LogisticRegression(C=1.0, max_iter=2000)
            model = make_pipeline(StandardScaler(), lr)
        elif kind == "regress":
            model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 4, 15)))
        else:
            raise ValueError(f"kind must be 'classify' or 'regress', got {kind!r}")
        if x.shape[1] > train.size:
            # exact for L2-penalised linear models (the fit lies in the span of the training rows),
            # and much faster with thousands of features and tens of runs
            model.steps.insert(1, ("pca", PCA(n_components=train.size, random_state=0)))
        with warnings.catch_warnings(), one_thread():  # (and scikit-learn's notices of changing defaults)
            warnings.simplefilter("ignore", FutureWarning)
            model.fit(x[train], y[train])
            pred[test] = model.predict(x[test])
    if kind == "classify":
        chance = float(np.bincount(np.unique(y, return_inverse=True)[1]).max() / n)
        return HeldOut(pred, float(np.mean(pred == y)), chance, kind)
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    score = 1 - float(np.sum((y - pred) ** 2)) / ss_tot if ss_tot > 0 else float("nan")
    return HeldOut(pred, score, 0.0, kind)


# --- abrupt transitions ----------------------------------------------------------------------


@dataclass(frozen=True)
class Transition:
    """Whether a curve drops abruptly: the sigmoid fit and the BIC margin over smooth fits."""

    abrupt: bool
    t0: float  # centre of the fitted sigmoid
    width: float  # 10%-90% width of the sigmoid (4.39 scale units)
    delta_bic: float  # BIC(best smooth) - BIC(sigmoid); > 0 favours the sigmoid


TRANSITION_MIN_DELTA_BIC = 10.0
TRANSITION_MAX_WIDTH = 0.2  # fraction of the curve's span


def _bic(resid: np.ndarray, n_params: int) -> float:
    n = resid.size
    rss = max(float(np.sum(resid**2)), 1e-300)
    return n * np.log(rss / n) + n_params * np.log(n)


def fit_transition(t: np.ndarray, y: np.ndarray, max_points: int = 200) -> Transition:
    """Sigmoid-like drop vs smooth decline of ``y`` over ``t`` (e.g. log training loss), by BIC.

    Smooth candidates: exponential decay ``a + b exp(-t/tau)`` and power law ``a + b (1+t)^-c``.
    Abrupt candidate: ``a + b / (1 + exp((t - t0)/s))``. The curve is called abrupt when the
    sigmoid's BIC is more than ``TRANSITION_MIN_DELTA_BIC`` below the best smooth one, its centre
    lies inside the curve and its 10-90% width is under ``TRANSITION_MAX_WIDTH`` of the span.
    Long curves are first averaged into ``max_points`` bins.
    """
    from scipy.optimize import curve_fit

    t = np.asarray(t, dtype=float)
    y = np.asarray(y, dtype=float)
    if t.size > max_points:
        edges = np.linspace(0, t.size, max_points + 1).astype(int)
        t = np.array([t[a:b].mean() for a, b in zip(edges[:-1], edges[1:])])
        y = np.array([y[a:b].mean() for a, b in zip(edges[:-1], edges[1:])])
    span = float(t[-1] - t[0]) or 1.0
    ts = (t - t[0]) / span  # (n,) in [0, 1]
    lo, hi = float(y.min()), float(y.max())
    amp = max(hi - lo, 1e-12)

    def sig(u, a, b, t0, s):
        return a + b / (1 + np.exp(np.clip((u - t0) / s, -50, 50)))

    def expo(u, a, b, tau):
        return a + b * np.exp(-u / tau)

    def power(u, a, b, c):
        return a + b * (1 + 100 * u) ** (-c)

    def best_fit(f, starts, bounds):
        best = None
        for p0 in starts:
            try:
                p, _ = curve_fit(f, ts, y, p0=p0, bounds=bounds, maxfev=4000)
            except (RuntimeError, ValueError):
                continue
            r = y - f(ts, *p)
            if best is None or np.sum(r**2) < np.sum(best[1] ** 2):
                best = (p, r)
        return best

    wide = (-np.inf, np.inf)
    smooth = [
        best_fit(expo, [(lo, amp, tau) for tau in (0.03, 0.2, 1.0)], ([wide[0]] * 2 + [1e-4], [wide[1]] * 2 + [10.0])),
        best_fit(power, [(lo, amp, c) for c in (0.3, 1.0)], ([wide[0]] * 2 + [1e-3], [wide[1]] * 2 + [10.0])),
    ]
    smooth_bic = min((_bic(r, 3) for fit in smooth if fit is not None for p, r in [fit]), default=np.inf)
    k = max(1, ts.size // 20)
    smoothed = np.convolve(y, np.ones(k) / k, mode="same")  # (n,)
    steepest = float(ts[k + np.argmax(np.abs(np.diff(smoothed[k:-k or None])))]) if ts.size > 2 * k + 1 else 0.5
    starts = [(lo, amp, c, 0.02) for c in (steepest, 0.25, 0.5, 0.75)]
    sfit = best_fit(sig, starts, ([-np.inf, -np.inf, -0.5, 1e-4], [np.inf, np.inf, 1.5, 2.0]))
    if sfit is None:
        return Transition(False, float("nan"), float("nan"), float("nan"))
    (a, b, t0, s), r = sfit
    delta = float(smooth_bic - _bic(r, 4))
    width = 4.39 * s
    abrupt = delta > TRANSITION_MIN_DELTA_BIC and 0.02 < t0 < 0.98 and width < TRANSITION_MAX_WIDTH
    return Transition(bool(abrupt), float(t[0] + t0 * span), float(width * span), delta)
