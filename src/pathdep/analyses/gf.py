"""GF: a general factor across studies.

Given the profiles of several studies, each study becomes a vector of its headline values; only
the questions measured, with a number, in every study enter (and only those whose values differ
between studies). Each question is standardised across studies, and the share of the total
variance on the first principal component is the size of a general "path-dependence" factor.

What "no general factor" looks like depends on the numbers of studies S and questions F: for
independent questions and many studies the share tends to 1 / F, but with few studies it is much
larger (S standardised profiles span at most S - 1 dimensions, so the share is at least
1 / min(F, S - 1)). The finding therefore carries the share among independent Gaussian profiles
of the same shape (simulated, fixed seed): its mean and 95th percentile. The interval resamples
studies (bootstrap); it rests on few studies and is wide below :data:`FEW_STUDIES`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pathdep.analyses import stats
from pathdep.analyses.finding import Finding, Profile, not_measured, side_by_side

MIN_STUDIES = 3
FEW_STUDIES = 5  # below this many studies the bootstrap interval is wide
N_NULL = 2000


def pc1_share(x: np.ndarray) -> float:
    """Share of variance on the first principal component of standardised columns of x (S, F).

    >>> x = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])  # one factor: scaled copies
    >>> round(pc1_share(x), 6)
    1.0
    """
    sd = x.std(0, ddof=1)
    keep = sd > 0
    if keep.sum() < 2:
        return float("nan")
    z = (x[:, keep] - x[:, keep].mean(0)) / sd[keep]
    s = np.linalg.svd(z, compute_uv=False)
    return float(s[0] ** 2 / np.sum(s**2))


def null_shares(n_studies: int, n_questions: int, n: int = N_NULL, seed: int = 0) -> np.ndarray:
    """PC1 shares of ``n`` sets of independent Gaussian profiles (n_studies, n_questions): (n,)."""
    rng = np.random.default_rng([seed, n_studies, n_questions])
    z = rng.standard_normal((n, n_studies, n_questions))
    z = (z - z.mean(1, keepdims=True)) / z.std(1, ddof=1, keepdims=True)
    s = np.linalg.svd(z, compute_uv=False)  # (n, min(S, F))
    return s[:, 0] ** 2 / (s**2).sum(1)


def profile_matrix(profiles: Sequence[Profile]) -> tuple[np.ndarray, list[str]]:
    """Headline values (S, F) of the findings measured, with a number, in every profile."""
    ids = [f.id for f in profiles[0] if f.id != "GF"]
    common = [i for i in ids if all(_value(p, i) is not None for p in profiles)]
    return np.array([[_value(p, i) for i in common] for p in profiles], dtype=float).reshape(len(profiles), -1), common


def _value(p: Profile, id: str) -> float | None:
    try:
        f = p[id]
    except KeyError:
        return None
    return f.value if f.measured and f.value is not None and np.isfinite(f.value) else None


def analyse_gf(profiles: Sequence[Profile]) -> Finding:
    """Share of variance on PC1 of several studies' profiles (see the module docstring).

    A study given twice (by name) counts once.
    """
    first: dict[str, Profile] = {}
    for p in profiles:
        first.setdefault(p.study, p)
    profiles = list(first.values())
    n = len(profiles)
    if n < MIN_STUDIES:
        return not_measured("GF", f"needs the profiles of at least {MIN_STUDIES} studies (got {n})")
    x, ids = profile_matrix(profiles)
    varies = x.std(0, ddof=1) > 0 if x.size else np.zeros(0, dtype=bool)
    x, ids = x[:, varies], [i for i, v in zip(ids, varies) if v]
    if len(ids) < 2:
        return not_measured("GF", "fewer than 2 questions are measured in every study and differ between them")
    value = pc1_share(x)
    ci, _ = stats.bootstrap(lambda i: pc1_share(x[i]), n, np.random.default_rng(n), n_boot=500)
    null = null_shares(n, len(ids))
    z = (x - x.mean(0)) / x.std(0, ddof=1)
    _, _, vt = np.linalg.svd(z, full_matrices=False)
    loadings = vt[0] * np.sign(vt[0].sum() or 1.0)  # (F,) sign fixed: mostly positive
    scores = z @ loadings  # (S,) each study on the first component
    names = [p.study for p in profiles]
    caveat = (f"rests on {n} studies" + (f"; with fewer than {FEW_STUDIES} the interval is wide" if n < FEW_STUDIES
                                          else ""))
    details = {"studies": names, "questions": ids, "pc1_loadings": dict(zip(ids, loadings.tolist())),
               "pc1_scores": dict(zip(names, scores.tolist())), "share_if_unrelated_many_studies": 1 / len(ids),
               "share_null_mean": float(null.mean()), "share_null_q95": float(np.quantile(null, 0.95)),
               "caveat": caveat}
    verdict = (f"the first principal component of {n} studies' profiles ({len(ids)} questions) holds {value:.0%} of "
               f"the variance; independent questions would give {null.mean():.0%} on average with {n} studies "
               f"(95th percentile {details['share_null_q95']:.0%}); {caveat}")

    def plot(ax) -> None:
        left, right = side_by_side(ax, (1, 1))
        left.bar(ids, loadings, color="C0")
        left.axhline(0, color="0.6", lw=1)
        left.set_ylabel("loading on PC1")
        left.set_xlabel("question")
        order = np.argsort(scores)
        right.barh(np.arange(n), scores[order], color="C1")
        right.set_yticks(np.arange(n), [names[i] for i in order], fontsize=8)
        right.axvline(0, color="0.6", lw=1)
        right.set_xlabel("study's score on PC1")

    return Finding("GF", "share of variance on PC1", value, ci, verdict, details, plot)
