"""The inner functions of each analysis, on planted populations whose answer is known, and against
naive reference implementations written here."""

import itertools

import numpy as np
import pytest

from pathdep.analyses import a, b, d, e, f, g, gf, h, lmc, stats, t, variance
from pathdep.analyses.data import StudyData, analysis
from pathdep.analyses.finding import Finding, Profile, not_measured


# --- A -------------------------------------------------------------------------------------------
def test_example_noise_is_separated_from_real_differences_between_runs():
    rng = np.random.default_rng(0)
    runs, n = 40, 300
    # every run has accuracy 0.7 in expectation: over many simulated studies, finite probe sets make
    # them look different (raw > 0) but the estimate of real differences averages to ~0
    sims = [a.variance_components((rng.random((runs, n)) < 0.7).astype(float)) for _ in range(60)]
    raw = np.mean([v["raw"] for v in sims])
    assert abs(raw - 0.7 * 0.3 / n) < 0.15 * 0.7 * 0.3 / n
    assert abs(np.mean([v["runs"] for v in sims])) < 0.1 * raw
    assert abs(np.mean([v["noise"] for v in sims]) - 0.7 * 0.3 / n) < 0.05 * 0.7 * 0.3 / n

    p_r = rng.uniform(0.5, 0.9, runs)  # real differences: Var = 0.4^2 / 12
    diff = (rng.random((runs, n)) < p_r[:, None]).astype(float)
    est = a.variance_components(diff)["runs"]
    assert abs(est - np.var(p_r, ddof=1)) < 0.3 * np.var(p_r, ddof=1)


def test_crossed_components_attribute_variance_to_the_seed_that_carries_it():
    rng = np.random.default_rng(1)
    init_eff = rng.normal(0, 1, 16)[:, None]
    data_eff = rng.normal(0, 1, 4)[None, :]
    only_init = variance.crossed_components(init_eff + 0.01 * rng.normal(size=(16, 4)))
    assert only_init["init"] > 0.95 and only_init["data_total"] < 0.02
    only_data = variance.crossed_components(np.repeat(data_eff, 16, 0) + 0.01 * rng.normal(size=(16, 4)))
    assert only_data["data_main"] > 0.95 and only_data["init"] < 0.02
    noise = variance.crossed_components(rng.normal(size=(16, 4)))
    assert noise["interaction"] > 0.6
    for s in (only_init, only_data, noise):
        assert abs(s["init"] + s["data_main"] + s["interaction"] - 1) < 1e-9
        assert s["data_total"] == pytest.approx(s["data_main"] + s["interaction"])


def _planted_flips(rng, inits=32, flips=9):
    """(inits, 4) outcomes 0/1: ``flips`` inits change outcome with the data order, with equal
    column means (no main effect of data order); the rest keep one outcome, half 0 and half 1."""
    patterns = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1],  # each set of rows
                         [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1],  # has column sums (1, 1, 1, 1)
                         [1, 1, 1, 0], [0, 0, 0, 1]])[:flips]
    steady = np.repeat((np.arange(inits - flips) % 2)[:, None], 4, 1)
    table = np.concatenate([patterns, steady])
    return table[rng.permutation(inits)]


def test_data_order_acting_through_the_interaction_is_counted_with_its_main_effect():
    rng = np.random.default_rng(12)
    outcome = _planted_flips(rng)
    assert np.ptp(outcome.mean(0)) == 0  # planted: no main effect of data order at all
    y = outcome + 0.01 * rng.normal(size=outcome.shape)  # the solution property: 0/1 plus probe noise
    s = variance.crossed_components(y)
    assert s["data_main"] < 0.01  # the main effect alone reads "data order does not matter" ...
    within = y.var(1, ddof=1).mean()  # ... but the spread across data orders within one init is real
    between = y.mean(1).var(ddof=1) - within / y.shape[1]
    assert s["data_total"] == pytest.approx(within / (within + between), abs=0.03)
    assert s["data_total"] > 0.2 and s["interaction"] > 0.2
    changed = variance.changed_inits(outcome)
    assert changed.sum() == 9 and changed.size == 32
    lo, hi = variance.wilson(9, 32)
    assert lo * 32 < 9 < hi * 32 and 3 < lo * 32 and hi * 32 < 17


def test_data_order_without_effect_counts_no_changed_init_with_a_tight_interval():
    rng = np.random.default_rng(13)
    outcome = np.repeat(rng.integers(0, 2, 32)[:, None], 4, 1)  # every init keeps its outcome
    y = outcome + 0.01 * rng.normal(size=outcome.shape)
    s = variance.crossed_components(y)
    assert s["init"] > 0.99 and s["data_total"] < 0.01
    changed = variance.changed_inits(outcome)
    assert changed.sum() == 0
    lo, hi = variance.wilson(0, 32)
    assert lo == 0 and hi * 32 < 4  # includes 0, and rules out more than 4 of 32


def test_wilson_interval_covers_the_changed_fraction_at_its_stated_level():
    rng = np.random.default_rng(14)
    for p in (0.0, 0.05, 0.28, 0.5):
        k = rng.binomial(32, p, size=2000)
        cover = np.mean([lo <= p <= hi for lo, hi in (variance.wilson(int(x), 32) for x in k)])
        assert cover >= 0.92, (p, cover)


# --- B -------------------------------------------------------------------------------------------
def test_disagreement_matches_a_naive_pairwise_loop():
    rng = np.random.default_rng(2)
    pred = rng.integers(0, 3, size=(6, 50))
    got = b.disagreement(pred)
    for i, j in itertools.product(range(6), repeat=2):
        assert np.isclose(got[i, j], np.mean(pred[i] != pred[j]))


def test_between_within_ratio_is_above_one_only_for_a_real_variant_effect():
    rng = np.random.default_rng(3)
    labels = np.repeat([0, 1], 10)
    x = rng.normal(size=(20, 5)) + 3.0 * labels[:, None]
    dist = np.linalg.norm(x[:, None] - x[None], axis=-1)
    assert b.between_within(dist, labels) > 2
    null = rng.normal(size=(20, 5))
    dnull = np.linalg.norm(null[:, None] - null[None], axis=-1)
    assert 0.7 < b.between_within(dnull, labels) < 1.3


# --- D -------------------------------------------------------------------------------------------
def test_settled_from_matches_a_naive_definition():
    rng = np.random.default_rng(4)
    member = rng.integers(0, 2, size=(7, 9))
    final = member[-1]
    got = d.settled_from(member, final)
    for tt, r in itertools.product(range(7), range(9)):
        assert got[tt, r] == all(member[s, r] == final[r] for s in range(tt, 7))
    assert d.earliest(np.arange(5) * 10, np.array([0.1, 0.95, 0.5, 0.92, 1.0])) == 30
    assert np.isnan(d.earliest(np.arange(3), np.array([0.1, 0.2, 0.3])))


def test_membership_follows_the_direction_of_planted_behaviour():
    rng = np.random.default_rng(5)
    n = 200
    proto = rng.normal(size=(2, n))
    labels = np.repeat([0, 1], 5)
    final = proto[labels] + 0.1 * rng.normal(size=(10, n))
    early = 0.05 * proto[labels] + 0.01 * rng.normal(size=(10, n))  # small scale, same direction
    member = d.membership(np.stack([early, final]), d.centroids(final, labels))
    assert (member == labels).all()


# --- E -------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_predictivity_is_near_one_for_a_predictable_outcome_and_chance_for_a_random_one():
    rng = np.random.default_rng(6)
    runs, feats = 40, 20
    outcome = np.repeat([0, 1], runs // 2)
    steps = []
    for strength in (0.0, 0.0, 0.5, 2.0, 3.0):  # the outcome becomes visible from the 4th step
        x = rng.normal(size=(runs, feats))
        x[:, :4] += strength * (2 * outcome - 1)[:, None]
        steps.append(x)
    scores, hits, chance = e.predictivity_curve(steps, outcome, "classify")
    assert scores[-1] >= 0.95 and scores[3] >= 0.9
    assert d.earliest(np.arange(5), scores, e.REACH) == 3
    assert hits.shape == (5, runs)
    random_outcome = rng.permutation(outcome)
    rscores, _, _ = e.predictivity_curve(steps[-2:], random_outcome, "classify")
    assert abs(rscores.mean() - 0.5) < 0.2
    assert chance == 0.5


def test_resampled_scores_on_the_identity_resample_equal_the_scores():
    rng = np.random.default_rng(7)
    y = rng.normal(size=30)
    x = [y[:, None] + 0.1 * rng.normal(size=(30, 3)), rng.normal(size=(30, 3))]
    scores, hits, _ = e.predictivity_curve(x, y, "regress")
    assert np.allclose(e.resampled_scores(hits, y, "regress", np.arange(30)), scores)
    assert scores[0] > 0.9 and scores[1] < 0.2


# --- F -------------------------------------------------------------------------------------------
def test_persistence_is_near_zero_when_the_effect_washes_out_and_near_one_when_it_stays():
    rng = np.random.default_rng(8)
    imm = 0.3 + 0.05 * rng.normal(size=40)
    washed = f.effect_summary(imm, 0.05 * rng.normal(size=40), rng)
    assert washed["immediate_detected"]
    assert abs(washed["persistence"]) < 0.1
    lo, hi = washed["persistence_ci"]
    assert lo <= 0 <= hi
    kept = f.effect_summary(imm, imm + 0.05 * rng.normal(size=40), rng)
    assert abs(kept["persistence"] - 1) < 0.1
    none = f.effect_summary(0.05 * rng.normal(size=40), 0.05 * rng.normal(size=40), rng)
    assert not none["immediate_detected"]
    assert none["persistence"] is None and none["persistence_ci"] is None  # no immediate effect: no ratio
    few = f.effect_summary(imm[:3], imm[:3], rng)
    assert few["immediate_ci"] is None and few["persistence"] is None  # below the least data: no interval


def test_effects_keep_their_sign_and_say_which_solution_they_push_toward():
    rng = np.random.default_rng(15)
    imm = -0.02 + 0.005 * rng.normal(size=16)  # a small push toward low reliance that grows
    fin = -0.125 + 0.02 * rng.normal(size=16)
    s = f.effect_summary(imm, fin, rng)
    assert s["immediate"] < 0 and s["final"] < 0 and s["immediate_ci"][1] < 0 and s["final_ci"][1] < 0
    assert s["persistence"] == pytest.approx(fin.mean() / imm.mean()) and s["persistence"] > 1
    ends = ("the XOR solution", "the linear solution")
    assert f.direction(s["final"], "reliance", ends) == "toward low reliance (the XOR solution)"
    text = f._effects(s, "reliance", ends)
    assert f"{s['immediate']:+.3f}" in text and f"{s['final']:+.3f}" in text and "+0." not in text


# --- G -------------------------------------------------------------------------------------------
def test_topk_overlap_matches_naive_sets():
    rng = np.random.default_rng(9)
    imp = rng.normal(size=(5, 4, 20))
    got = g.topk_overlap(imp, 3)
    for tt, r in itertools.product(range(5), range(4)):
        top_t = set(np.argsort(-imp[tt, r])[:3])
        top_f = set(np.argsort(-imp[-1, r])[:3])
        assert np.isclose(got[tt, r], len(top_t & top_f) / 3)
    assert np.allclose(got[-1], 1.0)


# --- H -------------------------------------------------------------------------------------------
def test_circuit_size_and_half_way_steps_match_their_definitions():
    imp = np.array([[5.0, 3.0, 1.0, 1.0, -2.0], [1.0, 1.0, 1.0, 1.0, 1.0], [0.0, -1.0, 0.0, 0.0, 0.0]])
    # 90% of 10 = 9 -> 5+3+1 = 9 (3 components); 90% of 5 -> 5 components; no positive effect -> 0
    assert h.circuit_size(imp).tolist() == [3.0, 5.0, 0.0]
    steps = np.array([0, 10, 20, 30])
    loss = np.array([[1.0, 0.9, 0.4, 0.0], [1.0, 0.5, 0.2, 0.0]])
    assert h.half_way_steps(steps, loss).tolist() == [20, 10]


# --- T -------------------------------------------------------------------------------------------
def test_agreement_matrix_and_time_vs_runs_match_naive_loops():
    rng = np.random.default_rng(10)
    final = rng.integers(0, 2, size=(5, 40))
    mid = np.where(rng.random((5, 40)) < 0.9, final, 1 - final)
    a_m = stats.agreement_matrix(final)
    for i, j in itertools.product(range(5), repeat=2):
        assert np.isclose(a_m[i, j], np.mean(final[i] == final[j]))
    over, between = t.time_vs_runs(mid, final)
    assert np.isclose(over, np.mean(mid == final))
    naive = np.mean([np.mean(final[i] == final[j]) for i in range(5) for j in range(5) if i != j])
    assert np.isclose(between, naive)
    runs, ex = np.array([0, 0, 3, 4]), rng.integers(0, 40, 40)  # a resample, passed as indices and counts
    o_w, b_w = t.time_vs_runs(mid, final, runs, np.bincount(ex, minlength=40))
    sub_m, sub_f = mid[np.ix_(runs, ex)], final[np.ix_(runs, ex)]
    assert np.isclose(o_w, np.mean(sub_m == sub_f))
    pairs = [(i, j) for i in range(4) for j in range(4) if runs[i] != runs[j]]
    assert np.isclose(b_w, np.mean([np.mean(sub_f[i] == sub_f[j]) for i, j in pairs]))


# --- LMC -----------------------------------------------------------------------------------------
def test_barrier_matrix_is_symmetric_and_stable_from_follows_the_threshold():
    import pandas as pd

    tab = pd.DataFrame({"run_a": ["x", "x", "y"], "run_b": ["y", "z", "z"], "error_barrier": [0.1, 0.2, 0.3]})
    m = lmc.barrier_matrix(tab, ["x", "y", "z"], "error_barrier")
    assert np.allclose(m, m.T) and m[0, 1] == 0.1 and m[1, 2] == 0.3 and np.all(np.diag(m) == 0)
    assert np.isclose(lmc.off_diagonal_mean(m), 0.2)
    ks = np.array([0, 50, 10, 100])
    assert lmc.stable_from(ks, np.array([0.3, 0.01, 0.2, 0.0])) == 50
    assert lmc.stable_from(ks, np.array([0.3, 0.01, 0.2, 0.05])) != lmc.stable_from(ks, np.array([0.3, 0.01, 0.2, 0.0]))
    assert np.isnan(lmc.stable_from(ks, np.array([0.3, 0.1, 0.2, 0.05])))


# --- GF ------------------------------------------------------------------------------------------
def _profile(name, values):
    return Profile(name, tuple(Finding(k, k, v, None, "") for k, v in values.items()) + (not_measured("GF", "x"),))


def test_general_factor_is_large_for_one_planted_factor_and_small_without():
    rng = np.random.default_rng(11)
    factor = rng.normal(size=12)
    ids = ["A", "B", "C", "D"]
    one = [_profile(f"s{i}", {k: factor[i] * (1 + j) + 0.05 * rng.normal() for j, k in enumerate(ids)}) for i in range(12)]
    res = gf.analyse_gf(one)
    assert res.measured and res.value > 0.95
    lo, hi = res.ci
    assert lo <= res.value <= hi
    indep = [_profile(f"s{i}", {k: rng.normal() for k in ids}) for i in range(12)]
    assert gf.analyse_gf(indep).value < 0.6
    assert not gf.analyse_gf(one[:2]).measured


def test_profile_json_round_trip_keeps_every_field_but_the_plot():
    prof = Profile("s", (Finding("A", "sd", 0.5, (0.1, 0.9), "v", {"x": np.float64(1.5), "bad": float("nan")},
                                 plot=lambda ax: None), not_measured("F", "no interventions")), {"runs": 3})
    back = Profile.from_json(prof.to_json())
    assert back["A"].value == 0.5 and back["A"].ci == (0.1, 0.9) and back["A"].details == {"x": 1.5, "bad": None}
    assert back["A"].plot is None and not back["F"].measured and back.meta == {"runs": 3}


# --- least data ----------------------------------------------------------------------------------
class _Runs(StudyData):
    """A StudyData whose reference population is given (no store behind it)."""

    def __init__(self, runs, inits):
        super().__init__(study=None)
        self.__dict__["reference"] = runs
        self._inits = inits

    def seeds(self, runs):
        import pandas as pd

        return pd.DataFrame({"init_seed": self._inits, "data_seed": 0}, index=runs)


def test_an_analysis_with_less_than_its_declared_data_says_what_it_needs():
    calls = []

    @analysis("X", min_runs=10, min_inits=5)
    def analyse_x(data):
        calls.append(len(data.reference))
        return Finding("X", "x", 1.0, None, "measured")

    assert analyse_x.needs == {"runs": 10, "inits": 5}
    few = analyse_x(_Runs([f"r{i}" for i in range(3)], [0, 1, 2]))
    assert not few.measured and few.verdict == "not measured in this study: needs >= 10 runs (got 3)"
    one_init = analyse_x(_Runs([f"r{i}" for i in range(12)], [0] * 12))
    assert one_init.verdict == "not measured in this study: needs >= 5 init seeds (got 1)"
    assert calls == []  # never computed from too little
    enough = analyse_x(_Runs([f"r{i}" for i in range(12)], [i % 6 for i in range(12)]))
    assert enough.measured and calls == [12]
    with pytest.raises(ValueError, match="min_seeds"):
        analysis("X", min_seeds=3)


def test_every_analysis_declares_its_least_data():
    from pathdep.analyses import ANALYSES

    for id, fn in ANALYSES.items():
        assert fn.needs and all(n >= 1 for n in fn.needs.values()), id
    assert ANALYSES["H"].needs == {"runs": 10, "inits": 5}  # grouped 5-fold by init seed
    assert ANALYSES["E"].needs["runs"] >= 8 and ANALYSES["E"].needs["inits"] >= 5  # each fit on >= 6 runs


def test_a_held_out_r2_below_zero_reads_as_no_predictive_power():
    assert h.reading(-29.4, (-133.0, -10.4), 0.0, "regress") == "no predictive power (held-out R² < 0)"
    assert h.reading(0.42, (0.1, 0.6), 0.0, "regress") == "0.42"
    assert h.reading(0.55, (0.45, 0.7), 0.5, "classify") == "0.55 (not above chance)"
    assert h.reading(0.9, (0.8, 1.0), 0.5, "classify") == "0.90"


def test_g_survival_counts_only_what_runs_do_not_share():
    from pathdep.analyses.g import survival

    rng = np.random.default_rng(5)
    alike = np.ones((8, 3))  # every run keeps its middle (CKA 1) ...
    same_end = np.ones((8, 8))  # ... and every run ends as every other (a convex problem)
    value, ci = survival(alike, 1, None, same_end, rng)
    assert value == pytest.approx(0.0) and ci[0] <= 0.0 <= ci[1] + 1e-12
    apart = np.full((8, 8), 0.4)  # runs end apart, each keeps its own middle
    value, ci = survival(alike, 1, None, apart, rng)
    assert value == pytest.approx(0.6) and ci[0] > 0.3
    overlap = np.full((8, 3), 0.12)  # top-k overlap at chance
    assert survival(overlap, 1, 0.12, None, rng)[0] == pytest.approx(0.0)
    assert survival(np.ones((8, 3)), 1, 0.12, None, rng)[0] == pytest.approx(1.0)
    assert survival(alike, 1, None, None, rng) is None
