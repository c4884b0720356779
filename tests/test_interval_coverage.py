"""Every interval of the findings C, E and LMC, and the resampling machinery under them, covers
the true value at its stated rate: populations where the truth is known are simulated and the
interval is computed many times. Measured coverage must reach nominal minus a margin for
Monte Carlo error (95% nominal: >= 0.88; 90% nominal: >= 0.84)."""

import numpy as np
import pytest

from pathdep.analyses import c, e, lmc, stats

SIMS = 150


def coverage(hits: list[bool]) -> float:
    return float(np.mean(hits))


@pytest.mark.parametrize("draw", ["normal", "exponential"])
def test_bootstrap_mean_interval_covers_at_95_percent(draw):
    rng = np.random.default_rng(0)
    truth = 1.0
    hits = []
    for _ in range(SIMS):
        x = rng.normal(truth, 2.0, 30) if draw == "normal" else rng.exponential(truth, 30)
        (lo, hi), _ = stats.bootstrap(lambda i: x[i].mean(), x.size, rng, n_boot=300)
        hits.append(lo <= truth <= hi)
    assert coverage(hits) >= 0.88


def test_multi_bootstrap_covers_the_grand_mean_over_runs_and_examples():
    # score = mu + run effect + example effect + noise: the grand mean mu is what another draw of
    # seeds and of probe examples would estimate; resampling runs only would miss the examples' part
    rng = np.random.default_rng(1)
    mu, runs, examples = 0.5, 16, 80
    hits, hits_runs_only = [], []
    for _ in range(SIMS):
        m = (mu + rng.normal(0, 0.05, (runs, 1)) + rng.normal(0, 0.2, (1, examples))
             + rng.normal(0, 0.1, (runs, examples)))
        (lo, hi), _ = stats.multi_bootstrap(lambda r, x: m[np.ix_(r, x)].mean(), runs, examples, rng, n_boot=200)
        hits.append(lo <= mu <= hi)
        (lo, hi), _ = stats.bootstrap(lambda r: m[r].mean(), runs, rng, n_boot=200)
        hits_runs_only.append(lo <= mu <= hi)
    assert coverage(hits) >= 0.88
    assert coverage(hits_runs_only) < 0.7  # the reason for resampling examples too


def test_lmc_mean_barrier_interval_covers_the_population_mean_barrier():
    # barrier(i, j) = |u_i - u_j| + measurement noise, u ~ N(0, 1): the mean barrier between two
    # runs of the population is E|u_i - u_j| = 2 / sqrt(pi)
    rng = np.random.default_rng(2)
    truth, n = 2 / np.sqrt(np.pi), 20
    hits = []
    for _ in range(SIMS):
        u = rng.normal(size=n)
        noise = rng.normal(0, 0.05, (n, n))
        m = np.abs(u[:, None] - u[None]) + (noise + noise.T) / 2
        np.fill_diagonal(m, 0)
        (lo, hi), _ = stats.bootstrap(lambda i: lmc.off_diagonal_mean(m, i), n, rng, n_boot=300)
        hits.append(lo <= truth <= hi)
    assert coverage(hits) >= 0.88


def _planted(k: int, rng: np.random.Generator, n_each: int, dim: int = 30) -> np.ndarray:
    centres = [np.zeros(dim), np.full(dim, 1.2), np.r_[np.full(dim // 2, 1.2), np.full(dim // 2, -1.2)]][:k]
    return np.concatenate([ctr + rng.normal(0, 1, (n_each, dim)) for ctr in centres])


@pytest.mark.parametrize("k", [1, 2, 3])
def test_cluster_count_interval_contains_the_planted_number_of_clusters(k):
    rng = np.random.default_rng(3 + k)
    hits = []
    for _ in range(12):
        x = _planted(k, rng, 30 // k + 2)
        found = stats.choose_k(x, rng, n_null=19).k
        lo, hi = c.k_interval(found, c.subsample_k(x, rng, n_sub=10, n_null=19))
        assert lo == int(lo) and hi == int(hi) and lo <= found <= hi
        hits.append(lo <= k <= hi)
    assert coverage(hits) >= 0.84  # stated: 90%


def _hits(p: np.ndarray, runs: int, rng: np.random.Generator) -> np.ndarray:
    """Held-out correctness of each run at each step, correct with probability p[t]: (T, R)."""
    return (rng.random((p.size, runs)) < p[:, None]).astype(float)


def test_earliest_step_interval_covers_the_step_where_the_population_reaches_the_level():
    rng = np.random.default_rng(6)
    steps = np.array([0, 10, 20, 50, 100, 200])
    p = np.array([0.5, 0.7, 0.8, 0.95, 0.97, 1.0])  # the population reaches 0.9 at step 50
    hits = []
    for _ in range(SIMS):
        h = _hits(p, 40, rng)
        value = e.earliest(steps, h.mean(1), e.REACH)
        if not np.isfinite(value):
            hits.append(False)
            continue
        lo, hi = e.step_interval(steps, e.resampled_curves(h, np.zeros(40), "classify", rng, 300), value)
        assert lo <= value <= hi
        hits.append(lo <= 50 <= hi)
    assert coverage(hits) >= 0.84  # stated: 90%


def test_final_score_interval_covers_the_population_score_when_the_level_is_never_reached():
    rng = np.random.default_rng(7)
    p = np.array([0.5, 0.7, 0.8])  # never reaches 0.9: the headline is the final score
    hits = []
    for _ in range(SIMS):
        h = _hits(p, 40, rng)
        curves = e.resampled_curves(h, np.zeros(40), "classify", rng, 300)
        lo, hi = e.score_interval(curves[:, -1], float(h[-1].mean()))
        hits.append(lo <= 0.8 <= hi)
    assert coverage(hits) >= 0.84  # stated: 90%


@pytest.mark.parametrize("runs, examples, sd_run", [(16, 300, 0.5), (32, 500, 0.3)])
def test_a_seed_sd_interval_covers_the_true_spread(runs, examples, sd_run):
    """A's headline: the seed sd of a probe accuracy with probe noise removed, its interval a
    multi-bootstrap over runs and examples. Runs differ by a logit shift a_r ~ N(0, sd_run),
    examples by difficulty; the truth is the sd over the run population of each run's expected
    accuracy on the example population. Measured: 0.95 and 0.96 (0.84 at sd_run = 1, 16 runs)."""
    from pathdep.analyses.a import variance_components

    rng = np.random.default_rng(runs)
    difficulty = rng.normal(1.0, 1.0, 2000)  # the example population
    shift = rng.normal(0, sd_run, 4000)  # the run population
    truth = float(np.std((1 / (1 + np.exp(-(shift[:, None] + difficulty[None])))).mean(1)))  # (4000,) runs
    hits, reps = 0, 60
    for _ in range(reps):
        p = 1 / (1 + np.exp(-(rng.normal(0, sd_run, runs)[:, None] + rng.choice(difficulty, examples)[None])))
        c = (rng.random((runs, examples)) < p).astype(float)  # (R, N) correctness
        ci, _ = stats.multi_bootstrap(
            lambda r, e: np.sqrt(max(variance_components(c[np.ix_(r, e)])["runs"], 0.0)), runs, examples, rng,
            n_boot=200)
        hits += ci[0] <= truth <= ci[1]
    assert hits / reps >= 0.85
