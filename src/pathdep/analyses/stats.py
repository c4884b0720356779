"""The statistics every analysis shares: resampling intervals, tests, clustering, prediction.

Pure functions over numpy arrays. Randomness comes from an explicit ``numpy.random.Generator``.

- :func:`bootstrap` / :func:`multi_bootstrap`: percentile intervals, resampling runs (and, in the
  multi-bootstrap of the MultiBERTs work, runs and probe examples jointly).
- :func:`permutation_test`: one-sided p-value of a statistic under shuffled group labels.
- :func:`dip_test`: Hartigan's dip test of unimodality.
- :func:`choose_k` / :func:`choose_k_distances`: the number of clusters by a criterion calibrated
  against a one-cluster null (:mod:`pathdep.analyses.clusters`), or, for a barrier matrix, by the
  threshold that defines "connected"; one cluster on a population without clusters.
- :func:`held_out_predictions`: leave-runs-out (grouped k-fold) predictions and their score.
- :func:`fit_transition`: is a curve's drop abrupt (sigmoid) or smooth, by BIC.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pathdep.analyses import clusters

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

    Coverage (tests/test_interval_coverage.py): at 95% nominal, the mean of 30 normal or
    exponential values, and the mean pairwise barrier of 20 runs, are covered in >= 88% of
    simulated populations.

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
    one happened to draw) are samples; the interval accounts for both. Coverage of the grand mean
    of a runs x examples random-effects population at 95% nominal: >= 88% in simulation (where
    resampling runs alone covers < 70%; tests/test_interval_coverage.py).
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
    scores: dict[int, float]  # criterion per candidate k (cluster index, lower is better; or barrier)
    criterion: str
    silhouette: float  # of the chosen labelling (nan when k == 1)
    p_value: float = float("nan")  # of the top-level split against the one-cluster Gaussian null
    unimodal_p: float = float("nan")  # of the runs along the top-level split's axis against unimodal nulls


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
    d = max(1, min(dims, int(np.sum(s > 1e-6 * max(s[0], 1e-300))) if s.size else 1))  # float32 precision
    z = u[:, :d] * s[:d]  # (n, d)
    scale = z[:, 0].std() if z.shape[0] > 1 else 1.0
    return z / scale if scale > 0 else z


SILHOUETTE_MIN = 0.5  # Kaufman & Rousseeuw: above 0.5 a "reasonable structure has been found"
SPLIT_LEVEL = 0.05  # a split must beat the one-cluster null at this level
MIN_SPLIT = 8  # runs a population needs before it is tested for a split (2-means of fewer is noise)


@dataclass(frozen=True)
class SplitTest:
    """The split test of each of P populations (see :mod:`pathdep.analyses.clusters`)."""

    split: np.ndarray  # (P,) bool: p <= SPLIT_LEVEL and unimodal_p <= SPLIT_LEVEL
    labels: np.ndarray  # (P, n) the 2-means split
    index: np.ndarray  # (P,) cluster index W2 / W1
    p: np.ndarray  # (P,) p-value against the one-cluster Gaussian null
    unimodal_p: np.ndarray  # (P,) of the runs projected on the split axis against unimodal nulls


def split_test(z: np.ndarray, rng: np.random.Generator, n_null: int = clusters.N_NULL) -> SplitTest:
    """Does each population z (P, n, d) (embedded, see :func:`embed`) split in two beyond chance?

    Two one-cluster nulls, both at level ``SPLIT_LEVEL``. (1) The 2-means cluster index must lie
    below the simulated Gaussian null of the same sample covariance (SigClust, ``p``). (2) The runs
    projected on the line through the two split centres must not look like one unimodal spread
    (``unimodal_p``, the smaller of twice the dip test's p-value and the unimodal null's):
    either Hartigan's dip test rejects at half the level (its p-value is calibrated against the
    uniform law, the least favourable unimodal one, so it holds for any unimodal spread but has
    little power on unbalanced groups), or the exact 1-d cluster index beats a null drawn from
    the closest unimodal law (:func:`clusters.unimodal_fit`: Grenander fits either side of the
    mode, which keep a skewed tail or a pile at a ceiling, but fill a gap between groups).

    The Gaussian null alone reads skewed continua as clusters: with the silhouette guard, 12-38%
    of exponential, lognormal and gamma(2) continua of 8-64 runs were called split, 28-49% of
    saturating ones (most runs near a ceiling) and 12-82% of uniform ones; with (2), at most 4%
    (see :func:`choose_k`). Tried and dropped: a null matching the skewness per component (gamma
    laws) left 12-18%; a smoothed bootstrap at Silverman's critical bandwidth left 22-38% on
    saturating continua (one bandwidth smooths the pile at the ceiling away); the dip test alone
    at 0.025 found 3% of 2:1 groups 6 noise sds apart at 16 runs (with (2): 24%).
    """
    index, labels = clusters.two_means(z, rng)
    p = clusters.split_p_value(z, index, rng, n_null)
    y = clusters.split_axis(z, labels)  # (P, n)
    dip_p = np.array([dip_test(row)[1] for row in y])  # (P,)
    unimodal_p = np.minimum(2 * dip_p, clusters.unimodal_p_value(y, rng, n_null))
    return SplitTest((p <= SPLIT_LEVEL) & (unimodal_p <= SPLIT_LEVEL), labels, index, p, unimodal_p)


def _split_tree(x: np.ndarray, rng: np.random.Generator, k_max: int, dims: int, n_null: int,
                root: SplitTest | None = None) -> tuple[list[np.ndarray], float, float, float]:
    """Labellings (n,) after each accepted split (1, 2, ... parts), the top split's index, p and unimodal p.
    ``root``: the top split's test, when already computed (batched over populations)."""
    n = x.shape[0]
    parts, untested = [np.arange(n)], [True]
    labellings = [np.zeros(n, dtype=int)]
    index = p = unimodal_p = float("nan")
    while len(parts) < k_max and any(untested):
        i = max((j for j in range(len(parts)) if untested[j]), key=lambda j: parts[j].size)
        idx = parts[i]
        untested[i] = False
        if idx.size < MIN_SPLIT or np.allclose(x[idx], x[idx[0]]):
            continue
        first = len(parts) == 1
        test = root if first and root is not None else split_test(embed(x[idx], dims)[None], rng, n_null)
        if first:
            index, p, unimodal_p = float(test.index[0]), float(test.p[0]), float(test.unimodal_p[0])
        if test.split[0]:
            lab = test.labels[0]
            parts[i:i + 1] = [idx[lab == 0], idx[lab == 1]]
            untested[i:i + 1] = [True, True]
            labels = np.zeros(n, dtype=int)
            for k, part in enumerate(parts):
                labels[part] = k
            labellings.append(labels)
    return labellings, index, p, unimodal_p


def choose_k(x: np.ndarray, rng: np.random.Generator, k_max: int = 6, dims: int = 3,
             n_null: int = clusters.N_NULL) -> Clustering:
    """Clusters of the rows of ``x`` (n, f) by repeated two-way splits, each tested against a null.

    The population's top ``dims`` principal components are split by 2-means, and the split is
    kept only if its cluster index lies below the one-cluster Gaussian null and the runs along the
    split axis do not look like one unimodal spread (both at level 0.05; :func:`split_test`).
    Each part of at least ``MIN_SPLIT`` runs is tested the same way on its own principal
    components, largest first, until no part splits or there are ``k_max``. Of the labellings
    this gives (2, 3, ... parts) the one with the highest silhouette is kept if that silhouette
    exceeds ``SILHOUETTE_MIN`` (clusters must be separated: a continuum that is merely not
    Gaussian, e.g. uniform, fails the null but not this); otherwise k = 1. A population without
    clusters is one cluster in at least 95% of cases, whatever its size or scale of spread
    (probe-level noise included), Gaussian or not. Measured false-cluster rates (200 nulls each of
    8 / 16 / 32 / 64 runs, a latent along one direction of 50-400 features plus noise of sd 0.1):
    Gaussian, isotropic or elongated, 0 / 0 / 0 / 0%; exponential, lognormal(0, 1), gamma(2) and
    saturating tanh(N(1.5, 0.75)) latents <= 3%; uniform 1 / 4 / 4 / 2% (the uniform law is the
    dip test's least favourable). Power (two groups 6 noise sds apart along one direction of 10
    features): balanced 25 / 68 / 97 / 100% (Gaussian null alone: 31 / 79 / 98 / 100%); 2:1
    3 / 24 / 57 / 94% (alone: 26 / 77 / 96 / 100%); 8 sds apart at 2:1, 7 / 55 / 95 / 100%
    (alone: 71 / 99 / 100 / 100%). Unbalanced groups need more runs than before.
    Deterministic given ``rng``.

    ``scores`` holds the top split's cluster index (key 2) against 1 for one cluster; ``p_value``
    its p-value against the Gaussian null, ``unimodal_p`` against the unimodal nulls along its axis.
    """
    return choose_k_many(np.asarray(x, dtype=float)[None], rng, k_max, dims, n_null)[0]


def choose_k_many(xs: np.ndarray, rng: np.random.Generator, k_max: int = 6, dims: int = 3,
                  n_null: int = clusters.N_NULL) -> list[Clustering]:
    """:func:`choose_k` of each of P populations of equal size, xs (P, n, f); the top splits are
    tested in one batch (most populations without clusters stop there)."""
    xs = np.asarray(xs, dtype=float)
    n = xs.shape[1]
    root = None
    out = []
    with one_thread():  # small SVDs: threads only fight (50x slower seen on a loaded machine)
        if n >= MIN_SPLIT:
            z = [embed(x, dims) for x in xs]
            if len({zi.shape for zi in z}) == 1:
                root = split_test(np.stack(z), rng, n_null)
        for i, x in enumerate(xs):
            mine = None if root is None else SplitTest(root.split[i:i + 1], root.labels[i:i + 1],
                                                       root.index[i:i + 1], root.p[i:i + 1],
                                                       root.unimodal_p[i:i + 1])
            labellings, index, p, unimodal_p = _split_tree(x, rng, k_max, dims, n_null, mine)
            out.append(_best_labelling(x, labellings, index, p, unimodal_p, dims))
    return out


def _best_labelling(x: np.ndarray, labellings: list[np.ndarray], index: float, p: float, unimodal_p: float,
                    dims: int) -> Clustering:
    """The labelling with the highest silhouette above SILHOUETTE_MIN, else one cluster."""
    scores = {1: 1.0} if np.isnan(index) else {1: 1.0, 2: index}
    best, best_sil = labellings[0], float("nan")
    if len(labellings) > 1:
        z = embed(x, dims)[None]
        sils = [float(clusters.silhouette(z, lab[None])[0]) for lab in labellings[1:]]
        j = int(np.argmax(sils))
        if sils[j] > SILHOUETTE_MIN:
            best, best_sil = labellings[1 + j], sils[j]
    labels = _relabel_by_size(best)
    return Clustering(labels, int(labels.max()) + 1, scores, "two-means split test", best_sil, p, unimodal_p)


choose_k_gmm = choose_k  # the former name, kept for callers


def choose_k_distances(d: np.ndarray, threshold: float) -> Clustering:
    """Basins of a barrier (dissimilarity) matrix ``d`` (n, n): groups separated by more than ``threshold``.

    Criterion: average linkage cut at ``threshold``. Every two resulting clusters have a mean
    between-cluster dissimilarity above ``threshold`` and every cluster a mean within-cluster one
    at most ``threshold`` (average linkage merges in increasing order of mean dissimilarity), so
    runs are split only where the matrix says they are not connected; when every entry is at most
    ``threshold`` there is one basin, however its small values are arranged. ``scores`` maps k to
    the least mean dissimilarity between two clusters (the margin above ``threshold``).
    """
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform
    from sklearn.metrics import silhouette_score

    d = np.asarray(d, dtype=float)
    d = np.maximum((d + d.T) / 2, 0)
    np.fill_diagonal(d, 0)
    n = d.shape[0]
    criterion = f"average linkage cut at {threshold:g}"
    if n < 2 or d.max() <= threshold:
        return Clustering(np.zeros(n, dtype=int), 1, {}, criterion, float("nan"))
    tree = linkage(squareform(d, checks=False), method="average")
    labels = _relabel_by_size(fcluster(tree, threshold, criterion="distance") - 1)
    k = int(labels.max()) + 1
    if k == 1:
        return Clustering(labels, 1, {}, criterion, float("nan"))
    between = min(float(d[np.ix_(labels == a, labels == b)].mean()) for a in range(k) for b in range(a + 1, k))
    sil = float(silhouette_score(d, labels, metric="precomputed")) if k < n else float("nan")
    return Clustering(labels, k, {k: between}, criterion, sil)


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
