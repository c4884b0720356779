"""Is a population of runs one cluster or several? A split test calibrated against a one-cluster null.

The statistic is the 2-means *cluster index* of the population's top principal components,
``CI = W2 / W1``: the within-cluster sum of squares of the best split into two, over the total
sum of squares (small: two tight groups far apart). Its null distribution is simulated, as in
SigClust (Liu, Hayes, Nobel & Marron 2008, "Statistical significance of clustering for
high-dimension, low-sample size data"): one Gaussian population of the same size ``n`` whose
sample covariance equals the observed one (a uniformly random configuration of n points,
whitened, then scaled along each principal axis by the observed spread). Conditioning on the
sample covariance makes the null exact for the top PCs of high-dimensional noise, whose sample
covariance is what the PCA picked. The p-value counts the observed index among ``n_null``
simulated ones, so a test at level 0.05 calls a one-cluster population split in at most 5% of
cases, whatever the scale of the spread (probe-level noise or large differences alike).

A Gaussian null is not enough where runs spread continuously but not Gaussianly (a skewed
latent, or many runs at a ceiling): the split is also tested along its own axis, against the
closest unimodal law (:func:`unimodal_fit`, :func:`unimodal_p_value`); see
:func:`pathdep.analyses.stats.split_test`.

Everything is batched over populations (P) and starts (I): arrays are (P, I, n, d).

>>> rng = np.random.default_rng(0)
>>> two = np.concatenate([rng.normal(0, 1, (12, 3)), rng.normal(8, 1, (12, 3))])[None]  # (1, 24, 3)
>>> ci, labels = two_means(two, rng)
>>> bool(split_p_value(two, ci, rng)[0] <= 0.05)
True
"""

from __future__ import annotations

import numpy as np

N_NULL = 99  # simulated one-cluster populations per test: p-values in steps of 0.01
N_INIT = 3  # k-means++ starts per split; the lowest within-cluster sum of squares is kept
N_ITER = 15  # Lloyd steps per start


def _sq_dist(z: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Squared distances of points z (P, 1, n, d) to centres c (P, I, K, d): (P, I, n, K), as
    |z|^2 - 2 z.c + |c|^2 (no (P, I, n, K, d) temporary; used to assign points, not to sum)."""
    return (z**2).sum(-1)[..., None] - 2 * z @ np.swapaxes(c, -1, -2) + (c**2).sum(-1)[:, :, None]


def two_means(z: np.ndarray, rng: np.random.Generator, n_init: int = N_INIT,
              n_iter: int = N_ITER) -> tuple[np.ndarray, np.ndarray]:
    """The best 2-means split of each population z (P, n, d): cluster index W2/W1 (P,), labels (P, n).

    k-means++ starts, a fixed number of Lloyd steps (so a population's result never depends on the
    others in the batch). A population with no spread has index 1.
    """
    p, n, d = z.shape
    zz = z[:, None]  # (P, 1, n, d)
    first = rng.integers(0, n, size=(p, n_init))
    c1 = z[np.arange(p)[:, None], first]  # (P, I, d)
    d1 = ((zz - c1[:, :, None]) ** 2).sum(-1)  # (P, I, n)
    cum = np.cumsum(d1, -1)
    u = rng.random((p, n_init, 1)) * cum[..., -1:]
    second = np.minimum((cum < u).sum(-1), n - 1)  # sampled with probability proportional to d1
    c = np.stack([c1, z[np.arange(p)[:, None], second]], 2)  # (P, I, 2, d)
    for _ in range(n_iter):
        lab = _sq_dist(zz, c).argmin(-1)  # (P, I, n)
        onehot = (lab[..., None] == np.arange(2)).astype(float)  # (P, I, n, 2)
        size = onehot.sum(2)  # (P, I, 2)
        new = np.swapaxes(onehot, -1, -2) @ zz / np.maximum(size, 1)[..., None]
        c = np.where(size[..., None] > 0, new, c)
    lab = _sq_dist(zz, c).argmin(-1)  # (P, I, n)
    onehot = (lab[..., None] == np.arange(2)).astype(float)
    mu = np.swapaxes(onehot, -1, -2) @ zz / np.maximum(onehot.sum(2), 1)[..., None]  # (P, I, 2, d)
    own = np.take_along_axis(mu, lab[..., None], 2)  # (P, I, n, d): each point's cluster mean
    within = ((zz - own) ** 2).sum((-1, -2))  # (P, I), summed exactly about the cluster means
    best = within.argmin(1)
    total = ((z - z.mean(1, keepdims=True)) ** 2).sum((1, 2))  # (P,)
    ci = np.where(total > 0, within[np.arange(p), best] / np.where(total > 0, total, 1), 1.0)
    return ci, lab[np.arange(p), best]


def null_like(z: np.ndarray, n_null: int, rng: np.random.Generator) -> np.ndarray:
    """One-cluster populations with the sample covariance of each population z (P, n, d) (its
    columns uncorrelated, as principal components are): uniformly random whitened configurations
    scaled by z's spread along each axis. Returns (P, n_null, n, d)."""
    p, n, d = z.shape
    g = rng.standard_normal((p, n_null, n, d))
    g -= g.mean(2, keepdims=True)
    u, _, vt = np.linalg.svd(g, full_matrices=False)  # u @ vt: the whitened (orthonormal) configuration
    return (u @ vt) * np.sqrt(n) * z.std(1)[:, None, None]


def split_p_value(z: np.ndarray, ci: np.ndarray, rng: np.random.Generator, n_null: int = N_NULL) -> np.ndarray:
    """P(null cluster index <= observed), counting the observed one, for each population z (P, n, d)
    with cluster index ci (P,); never below 1 / (n_null + 1)."""
    p, n, d = z.shape
    null_ci, _ = two_means(null_like(z, n_null, rng).reshape(p * n_null, n, d), rng)
    return (1 + np.sum(null_ci.reshape(p, n_null) <= ci[:, None], 1)) / (1 + n_null)


def silhouette(z: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Mean silhouette of each population's labelling (Euclidean): z (P, n, d), labels (P, n) -> (P,).

    A run's silhouette is (b - a) / max(a, b), with a its mean distance to the other runs of its
    cluster and b the least mean distance to another cluster's runs; runs alone in their cluster
    count 0 (scikit-learn's convention). NaN for a population with a single cluster.
    """
    dist = np.sqrt(((z[:, :, None] - z[:, None]) ** 2).sum(-1))  # (P, n, n)
    k = int(labels.max()) + 1
    onehot = (labels[..., None] == np.arange(k)).astype(float)  # (P, n, K)
    size = onehot.sum(1)  # (P, K)
    sums = dist @ onehot  # (P, n, K): summed distance of each run to each cluster
    own = np.take_along_axis(size, labels, 1)  # (P, n)
    a = np.take_along_axis(sums, labels[..., None], 2)[..., 0] / np.maximum(own - 1, 1)
    mean_to = np.where(size[:, None] > 0, sums / np.maximum(size[:, None], 1), np.inf)  # (P, n, K)
    np.put_along_axis(mean_to, labels[..., None], np.inf, 2)
    b = mean_to.min(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = np.where(own > 1, (b - a) / np.maximum(a, b), 0.0)
    return np.where((size > 0).sum(1) > 1, s.mean(1), np.nan)


# --- the split axis, tested for unimodality (stats.split_test) --------------------------------


def split_axis(z: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each population's runs z (P, n, d) projected on the line through its two split centres,
    standardised: (P, n)."""
    one = labels[..., None].astype(float)  # (P, n, 1)
    mu1 = (z * one).sum(1) / np.maximum(one.sum(1), 1)
    mu0 = (z * (1 - one)).sum(1) / np.maximum((1 - one).sum(1), 1)
    y = np.einsum("pnd,pd->pn", z, mu1 - mu0)
    y = y - y.mean(1, keepdims=True)
    sd = y.std(1, keepdims=True)
    return y / np.where(sd > 0, sd, 1)



def _hull(x: np.ndarray, f: np.ndarray, lower: bool) -> np.ndarray:
    """Indices of the lower convex (or upper concave) hull of the points (x, f), x sorted."""
    sign = 1 if lower else -1
    keep: list[int] = []
    for i in range(x.size):
        while len(keep) >= 2:
            a, b = keep[-2], keep[-1]
            cross = (x[b] - x[a]) * (f[i] - f[a]) - (f[b] - f[a]) * (x[i] - x[a])
            if sign * cross > 0:
                break
            keep.pop()
        keep.append(i)
    return np.array(keep)


def unimodal_fit(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The closest unimodal law to the values y (n,): its piecewise-linear CDF as knots (x, F).

    The mode is the middle of the shortest interval holding half the values; the CDF is the
    greatest convex minorant of the empirical CDF left of it and the least concave majorant right
    of it (the Grenander estimates of an increasing and a decreasing density), so a pile of values
    stays a pile and a gap between two groups is filled.
    """
    x = np.sort(y)
    n = x.size
    f = np.r_[0.0, (np.arange(1, n - 1) + 0.5) / n, 1.0]  # (n,)
    h = n // 2
    i = int(np.argmin(x[h:] - x[:n - h]))
    m = int(np.clip(np.searchsorted(x, (x[i] + x[i + h]) / 2), 1, n - 2))
    left, right = _hull(x[:m + 1], f[:m + 1], True), m + _hull(x[m:], f[m:], False)
    knots = np.r_[left, right[1:]]
    return x[knots], f[knots]


def unimodal_p_value(y: np.ndarray, rng: np.random.Generator, n_null: int = N_NULL) -> np.ndarray:
    """P(unimodal null index <= observed) of the exact 1-d 2-means index of each row of y (P, n),
    the null drawn from :func:`unimodal_fit` of that row (the unimodal null)."""
    p, n = y.shape
    u = rng.random((p, n_null, n))
    null = np.empty((p, n_null, n))
    for j in range(p):
        xk, fk = unimodal_fit(y[j])
        null[j] = np.interp(u[j], fk, xk)
    return (1 + np.sum(index_1d(null) <= index_1d(y)[:, None], 1)) / (1 + n_null)


def index_1d(y: np.ndarray) -> np.ndarray:
    """The exact 2-means cluster index W2/W1 of each row of y (..., n): the best cut of the sorted values."""
    s = np.sort(y, -1)
    n = s.shape[-1]
    c1, c2 = np.cumsum(s, -1), np.cumsum(s**2, -1)
    m = np.arange(1, n)  # points left of the cut
    left = c2[..., :-1] - c1[..., :-1] ** 2 / m
    right = (c2[..., -1:] - c2[..., :-1]) - (c1[..., -1:] - c1[..., :-1]) ** 2 / (n - m)
    total = c2[..., -1] - c1[..., -1] ** 2 / n
    return np.where(total > 0, (left + right).min(-1) / np.where(total > 0, total, 1), 1.0)
