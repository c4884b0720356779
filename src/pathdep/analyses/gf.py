"""GF: a general factor across studies.

Given the profiles of several studies, each study becomes a vector of its headline values (the
findings every study measured); each finding is standardised across studies, and the share of the
total variance on the first principal component is the size of a general "path-dependence"
factor (1 / number of findings when the findings are unrelated). The interval resamples studies.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pathdep.analyses import stats
from pathdep.analyses.finding import Finding, Profile, not_measured

MIN_STUDIES = 3


def pc1_share(x: np.ndarray) -> float:
    """Share of variance on the first principal component of standardised columns of x (S, F)."""
    sd = x.std(0, ddof=1)
    keep = sd > 0
    if keep.sum() < 2:
        return float("nan")
    z = (x[:, keep] - x[:, keep].mean(0)) / sd[keep]
    s = np.linalg.svd(z, compute_uv=False)
    return float(s[0] ** 2 / np.sum(s**2))


def profile_matrix(profiles: Sequence[Profile]) -> tuple[np.ndarray, list[str]]:
    """Headline values (S, F) of the findings measured, with a number, in every profile."""
    ids = [f.id for f in profiles[0] if f.id != "GF"]
    common = [i for i in ids if all(_value(p, i) is not None for p in profiles)]
    return np.array([[_value(p, i) for i in common] for p in profiles], dtype=float), common


def _value(p: Profile, id: str) -> float | None:
    try:
        f = p[id]
    except KeyError:
        return None
    return f.value if f.measured and f.value is not None and np.isfinite(f.value) else None


def analyse_gf(profiles: Sequence[Profile]) -> Finding:
    """Share of variance on PC1 of several studies' profiles (see the module docstring)."""
    if len(profiles) < MIN_STUDIES:
        return not_measured("GF", f"needs the profiles of at least {MIN_STUDIES} studies (got {len(profiles)})")
    x, ids = profile_matrix(profiles)
    if len(ids) < 2:
        return not_measured("GF", "fewer than 2 findings are measured in every study")
    value = pc1_share(x)
    rng = np.random.default_rng(len(profiles))
    ci, _ = stats.bootstrap(lambda i: pc1_share(x[i]), x.shape[0], rng, n_boot=500)
    z = (x - x.mean(0)) / np.where(x.std(0, ddof=1) > 0, x.std(0, ddof=1), 1)
    loadings = np.linalg.svd(z, full_matrices=False)[2][0]  # (F,)
    details = {"studies": [p.study for p in profiles], "findings": ids, "pc1_loadings": loadings.tolist(),
               "share_if_unrelated": 1 / len(ids)}
    verdict = (f"the first principal component of {len(profiles)} studies' profiles holds {value:.0%} of the variance "
               f"(unrelated findings would give {1 / len(ids):.0%})")

    def plot(ax) -> None:
        ax.bar(ids, loadings, color="C0")
        ax.axhline(0, color="0.6", lw=1)
        ax.set_ylabel("loading on PC1")

    return Finding("GF", "share of variance on PC1", value, ci, verdict, details, plot)
