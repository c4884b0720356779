"""The shared statistics, on planted populations whose answer is known."""

import numpy as np
import pytest

from pathdep.analyses import stats


def test_bootstrap_interval_covers_truth_at_nominal_rate():
    # 300 simulated studies of 25 runs each; the 90% interval of the mean should cover the true
    # mean in about 90% of them (percentile intervals undercover slightly at small n).
    rng = np.random.default_rng(0)
    covered = 0
    sims = 300
    for _ in range(sims):
        x = rng.normal(1.0, 2.0, size=25)
        (lo, hi), _ = stats.bootstrap(lambda i: x[i].mean(), x.size, rng, n_boot=300, level=0.9)
        covered += lo <= 1.0 <= hi
    assert 0.82 <= covered / sims <= 0.96


def test_multi_bootstrap_is_wider_than_runs_only_when_examples_are_noisy():
    rng = np.random.default_rng(1)
    runs, examples = 20, 200
    difficulty = rng.normal(0, 1, size=examples)  # shared per-example effect
    m = difficulty[None, :] + rng.normal(0, 0.1, size=(runs, examples))  # (R, N)
    stat = lambda r, e: m[np.ix_(r, e)].mean()  # noqa: E731
    (lo_j, hi_j), _ = stats.multi_bootstrap(stat, runs, examples, rng, n_boot=300)
    (lo_r, hi_r), _ = stats.bootstrap(lambda r: m[r].mean(), runs, rng, n_boot=300)
    assert (hi_j - lo_j) > 3 * (hi_r - lo_r)
    assert lo_j <= m.mean() <= hi_j


def test_permutation_test_detects_a_planted_group_difference_and_not_a_null_one():
    rng = np.random.default_rng(2)
    labels = np.repeat([0, 1], 15)
    shifted = rng.normal(0, 1, 30) + 2.0 * labels
    null = rng.normal(0, 1, 30)
    diff = lambda x: lambda lab: x[lab == 1].mean() - x[lab == 0].mean()  # noqa: E731
    _, p_shift = stats.permutation_test(diff(shifted), labels, rng, n_perm=500)
    _, p_null = stats.permutation_test(diff(null), labels, rng, n_perm=500)
    assert p_shift < 0.01
    assert p_null > 0.01
    assert p_shift >= 1 / 501  # never exactly zero


def test_dip_test_separates_bimodal_from_unimodal():
    rng = np.random.default_rng(3)
    bimodal = np.concatenate([rng.normal(0, 0.05, 30), rng.normal(1, 0.05, 30)])
    unimodal = rng.normal(0, 1, 60)
    assert stats.dip_test(bimodal)[1] < 0.01
    assert stats.dip_test(unimodal)[1] > 0.05
    assert stats.dip_test(np.ones(10)) == (0.0, 1.0)


def _blobs(rng, centres, n_each, dim=50, spread=1.0):
    return np.concatenate([c + rng.normal(0, spread, size=(n_each, dim)) for c in centres])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_split_test_finds_two_planted_clusters_and_one_when_there_is_one(seed):
    rng = np.random.default_rng(seed)
    dim = 50
    centre = np.zeros(dim)
    far = np.full(dim, 2.0)
    two = _blobs(rng, [centre, far], 16, dim)
    c2 = stats.choose_k(two, rng)
    assert c2.k == 2
    truth = np.repeat([0, 1], 16)
    agree = max(np.mean(c2.labels == truth), np.mean(c2.labels != truth))
    assert agree == 1.0
    assert c2.silhouette > 0.5
    assert c2.p_value <= stats.SPLIT_LEVEL

    one = _blobs(rng, [centre], 32, dim)
    assert stats.choose_k(one, rng).k == 1
    uniform = rng.uniform(0, 1, size=(32, 5))  # a continuum, not clusters
    assert stats.choose_k(uniform, rng).k == 1


@pytest.mark.parametrize("seed", [0, 1])
def test_split_test_finds_three_planted_clusters(seed):
    rng = np.random.default_rng(10 + seed)
    dim = 40
    centres = [np.zeros(dim), np.full(dim, 1.5), np.r_[np.full(dim // 2, 1.5), np.full(dim // 2, -1.5)]]
    x = _blobs(rng, centres, 12, dim)
    c = stats.choose_k(x, rng)
    assert c.k == 3
    truth = np.repeat([0, 1, 2], 12)
    assert len({(a, b) for a, b in zip(truth, c.labels)}) == 3  # a relabelling of the truth


def test_choose_k_is_deterministic_given_the_generator():
    rng = np.random.default_rng(12)
    x = _blobs(rng, [np.zeros(20), np.full(20, 1.0)], 10, 20)
    a = stats.choose_k(x, np.random.default_rng(3))
    b = stats.choose_k(x, np.random.default_rng(3))
    assert a.k == b.k and (a.labels == b.labels).all() and a.p_value == b.p_value


def test_barrier_basins_need_barriers_above_the_threshold_between_them():
    rng = np.random.default_rng(4)
    lab = np.repeat([0, 1, 2], 6)
    d = np.where(lab[:, None] == lab[None, :], 0.05, 1.0) + rng.uniform(0, 0.05, (18, 18))
    c = stats.choose_k_distances(d, 0.5)
    assert c.k == 3
    assert len({(a, b) for a, b in zip(lab, c.labels)}) == 3  # a relabelling of the truth
    assert c.scores[3] > 0.5  # the least mean barrier between two basins exceeds the threshold
    # two basins: 0.3 between, 0.005 within, at the 2% error threshold of "connected"
    two = np.repeat([0, 1], 8)
    d2 = np.where(two[:, None] == two[None, :], 0.005, 0.3) + rng.uniform(0, 0.004, (16, 16))
    c2 = stats.choose_k_distances(d2, 0.02)
    assert c2.k == 2 and len({(a, b) for a, b in zip(two, c2.labels)}) == 2
    for k in range(2):
        within = d2[np.ix_(c2.labels == k, c2.labels == k)]
        assert within[~np.eye(within.shape[0], dtype=bool)].mean() <= 0.02


@pytest.mark.parametrize("seed", range(5))
def test_small_barriers_form_one_basin_however_they_are_arranged(seed):
    rng = np.random.default_rng(40 + seed)
    n = int(rng.integers(8, 40))
    grid = rng.integers(0, 3, size=(n, n)) / 540  # entries {0, 1, 2}/540, as a measured convex control gave
    assert stats.choose_k_distances(grid, 0.02).k == 1
    tiny = rng.uniform(0, 0.006, size=(n, n))  # every barrier <= 0.006
    lab = np.repeat([0, 1], n)[:n]
    blocky = np.where(lab[:, None] == lab[None, :], 0.0, 0.019)  # structured, but all below threshold
    assert stats.choose_k_distances(tiny, 0.02).k == 1
    assert stats.choose_k_distances(blocky, 0.02).k == 1


def test_runs_all_separated_by_high_barriers_are_each_their_own_basin():
    rng = np.random.default_rng(9)
    d = rng.uniform(0.2, 0.4, size=(10, 10))
    c = stats.choose_k_distances(d, 0.02)
    assert c.k == 10


def test_held_out_prediction_is_near_one_when_predictable_and_chance_when_random():
    rng = np.random.default_rng(5)
    n = 40
    y = np.repeat([0, 1], n // 2)
    x = rng.normal(size=(n, 30))
    x[:, :5] += 1.5 * (2 * y - 1)[:, None]  # the outcome is written, noisily, in a few features
    good = stats.held_out_predictions(x, y, "classify")
    assert good.score >= 0.95
    scores = [stats.held_out_predictions(rng.normal(size=(n, 30)), y, "classify").score for _ in range(5)]
    assert abs(np.mean(scores) - 0.5) < 0.15
    # regression: R^2 near 1 for a linear target, near or below 0 for noise
    target = x[:, 1] * 2 + 0.05 * rng.normal(size=n)
    assert stats.held_out_predictions(x, target, "regress").score > 0.9
    assert stats.held_out_predictions(x, rng.normal(size=n), "regress").score < 0.2


def test_groups_are_never_split_across_train_and_test():
    groups = np.repeat(np.arange(7), 3)
    folds = stats._folds(groups, 5)
    seen = np.concatenate(folds)
    assert sorted(seen) == list(range(21))
    for test in folds:
        inside = set(groups[test])
        outside = set(groups[np.setdiff1d(np.arange(21), test)])
        assert not inside & outside


def test_transition_detects_a_planted_sigmoid_drop_but_not_a_smooth_decay():
    rng = np.random.default_rng(6)
    t = np.arange(1000.0)
    sharp = 2.0 - 1.5 / (1 + np.exp(-(t - 600) / 10)) + rng.normal(0, 0.03, t.size)
    smooth = 0.5 + 1.5 * np.exp(-t / 200) + rng.normal(0, 0.03, t.size)
    power = 0.3 + 2.0 * (1 + t) ** -0.5 + rng.normal(0, 0.03, t.size)
    tr = stats.fit_transition(t, sharp)
    assert tr.abrupt
    assert abs(tr.t0 - 600) < 20
    assert not stats.fit_transition(t, smooth).abrupt
    assert not stats.fit_transition(t, power).abrupt
