"""How much of a population's spread comes from the init seed and how much from the data order.

A study that crosses I init seeds with D data-order seeds gives one run per cell of an (I, D)
table. Two views of that table, both pure functions over numpy arrays:

- :func:`crossed_components`: the random-effects two-way decomposition of a scalar outcome (method
  of moments). With one run per cell the interaction cannot be told apart from a residual, so it
  is reported as one component; training is deterministic given the two seeds, so that residual
  holds nothing but the interaction. Data order acts mostly *through* the interaction (an order
  seed does not push every init the same way), so its influence is the main effect plus the
  interaction, ``data_total``.
- :func:`changed_inits`: which inits end with a different outcome (e.g. final cluster) under
  another of the data orders tried, and :func:`wilson` for the interval of that count.

>>> y = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 0.0], [1.0, 1.0]])  # two inits flip, in opposite ways
>>> s = crossed_components(y)
>>> s["data_main"], s["data_total"] > 0.5
(0.0, True)
>>> changed_inits(y).tolist()
[True, True, False, False]
"""

from __future__ import annotations

import math

import numpy as np


def crossed_components(y: np.ndarray) -> dict[str, float]:
    """Shares of the variance of ``y`` (I inits x D data seeds, one value per cell, I, D >= 2).

    Mean squares: rows ``ms_i = D var(row means)``, columns ``ms_d = I var(column means)``,
    residual ``ms_r`` (what is left after both means, (I-1)(D-1) degrees of freedom). Components:
    init ``(ms_i - ms_r) / D``, data-order main effect ``(ms_d - ms_r) / I`` (each clipped at 0)
    and interaction ``ms_r``. Returns the shares ``init``, ``data_main``, ``interaction`` and
    ``data_total`` = data_main + interaction (so init + data_total = 1), all 0 when y is constant.
    """
    y = np.asarray(y, dtype=float)
    i, d = y.shape
    if i < 2 or d < 2:
        raise ValueError(f"The 'y' parameter of crossed_components must be at least 2 x 2. Got {y.shape} instead.")
    resid = y - y.mean(1, keepdims=True) - y.mean(0, keepdims=True) + y.mean()  # (I, D)
    ms_r = float((resid**2).sum() / ((i - 1) * (d - 1)))
    v_init = max(0.0, (d * y.mean(1).var(ddof=1) - ms_r) / d)
    v_data = max(0.0, (i * y.mean(0).var(ddof=1) - ms_r) / i)
    total = v_init + v_data + ms_r
    if total <= 0:
        return {"init": 0.0, "data_main": 0.0, "interaction": 0.0, "data_total": 0.0}
    shares = {"init": v_init / total, "data_main": v_data / total, "interaction": ms_r / total}
    return shares | {"data_total": shares["data_main"] + shares["interaction"]}


def changed_inits(outcome: np.ndarray) -> np.ndarray:
    """Inits whose outcome differs between data orders: outcome (I, D) labels -> (I,) booleans."""
    outcome = np.asarray(outcome)
    return (outcome != outcome[:, :1]).any(1)


def wilson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion k / n (near-nominal coverage even at k = 0 or n).

    >>> lo, hi = wilson(0, 32)
    >>> lo, round(hi, 3)
    (0.0, 0.107)
    >>> [round(b * 32, 1) for b in wilson(9, 32)]
    [5.0, 14.5]
    """
    from scipy.stats import norm

    if n <= 0:
        raise ValueError(f"The 'n' parameter of wilson must be positive. Got {n} instead.")
    z = float(norm.ppf(0.5 + level / 2))
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    lo = 0.0 if k == 0 else max(0.0, centre - half)
    hi = 1.0 if k == n else min(1.0, centre + half)
    return (lo, hi)
