"""Interpolation curves and barriers: definition, symmetry, convexity, batched vs per-pair."""

import pytest
import torch

from pathdep.errors import PathdepError
from pathdep.measure.connectivity import BARRIER_DEFINITION, all_pairs, alpha_grid, barrier, curves, pair_barriers
from pathdep.models.mlp import MLP
from pathdep.tasks.base import Split, Task


def train(model, task, seeds, steps=150, lr=0.02):
    """A small population trained full-batch with Adam on the stacked parameters."""
    params = {k: v.clone().requires_grad_(True) for k, v in model.init_population(seeds).items()}
    opt = torch.optim.Adam(params.values(), lr=lr)
    r = len(seeds)
    x = task.train.x.unsqueeze(0).expand(r, *task.train.x.shape)
    y = task.train.y.unsqueeze(0).expand(r, -1)
    for _ in range(steps):
        opt.zero_grad()
        task.train_loss(model, params, x, y).sum().backward()
        opt.step()
    return {k: v.detach() for k, v in params.items()}


def toy_task(n_outputs=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(300, 6, generator=g)
    logit = x[:, 0] - 0.5 * x[:, 1] + 0.3 * torch.randn(300, generator=g)
    y = (logit > 0).float()
    split = lambda a, b: Split(x[a:b], y[a:b])  # noqa: E731
    return Task("toy", split(0, 200), split(200, 300), {"probe": split(150, 250)}, 1, "bce")


@pytest.fixture(scope="module")
def mlp_runs():
    task = toy_task()
    model = MLP(d_in=6, hidden=(12, 12), d_out=1)
    return task, model, train(model, task, [0, 1, 2, 3])


def test_barrier_of_a_model_with_itself_is_zero(mlp_runs):
    task, model, params = mlp_runs
    res = pair_barriers(task, model, params, params, task.test, 11)
    assert torch.all(res["loss_barrier"].abs() < 1e-6)
    assert torch.all(res["error_barrier"] == 0)
    assert torch.allclose(res["loss"], res["loss"][:, :1].expand_as(res["loss"]), atol=1e-6)


def test_barrier_is_symmetric(mlp_runs):
    task, model, params = mlp_runs
    pairs = all_pairs(4)
    a = {k: v[pairs[:, 0]] for k, v in params.items()}
    b = {k: v[pairs[:, 1]] for k, v in params.items()}
    ab = pair_barriers(task, model, a, b, task.train, 21)
    ba = pair_barriers(task, model, b, a, task.train, 21)
    assert torch.allclose(ab["loss_barrier"], ba["loss_barrier"], atol=1e-5)
    assert torch.allclose(ab["error_barrier"], ba["error_barrier"], atol=1e-9)
    assert torch.allclose(ab["loss"], ba["loss"].flip(1), atol=1e-5)
    assert (ab["loss_barrier"] >= 0).all()


def test_barrier_of_a_convex_model_is_zero():
    """Logistic regression (an MLP without hidden layers) has a convex loss: no barrier on train."""
    task = toy_task()
    model = MLP(d_in=6, hidden=(), d_out=1)
    params = train(model, task, [0, 1, 2], steps=40, lr=0.3)
    pairs = all_pairs(3)
    a = {k: v[pairs[:, 0]] for k, v in params.items()}
    b = {k: v[pairs[:, 1]] * torch.tensor([1.0, 3.0, -0.5]).view(-1, *[1] * (v.dim() - 1)) for k, v in params.items()}
    res = pair_barriers(task, model, a, b, task.train, 21)
    assert res["loss_barrier"].abs().max() < 1e-6
    # the same pairs through a non-convex model do have a barrier
    mlp = MLP(d_in=6, hidden=(8,), d_out=1)
    p2 = train(mlp, task, [0, 1])
    res2 = pair_barriers(task, mlp, {k: v[:1] for k, v in p2.items()}, {k: v[1:] for k, v in p2.items()}, task.train)
    assert res2["loss_barrier"].item() > 1e-3


def test_barrier_follows_its_definition():
    alphas = alpha_grid(5)
    curve = torch.tensor([[1.0, 2.0, 2.5, 2.0, 3.0], [0.0, -1.0, -1.0, -1.0, 0.0]])
    expected = [max(c[i] - ((1 - a) * c[0] + a * c[-1]) for i, a in enumerate(alphas.tolist())) for c in curve.tolist()]
    assert barrier(curve, alphas).tolist() == pytest.approx(expected)
    assert "max_alpha" in BARRIER_DEFINITION


def test_population_equals_per_pair_loop_and_chunking(mlp_runs):
    task, model, params = mlp_runs
    pairs = all_pairs(4)
    a = {k: v[pairs[:, 0]] for k, v in params.items()}
    b = {k: v[pairs[:, 1]] for k, v in params.items()}
    alphas = alpha_grid(7)
    batched = curves(task, model, a, b, task.test, alphas)
    chunked = curves(task, model, a, b, task.test, alphas, chunk=5)
    for p in range(len(pairs)):
        for k, alpha in enumerate(alphas.tolist()):
            theta = {n: ((1 - alpha) * a[n][p].double() + alpha * b[n][p].double()).float()[None] for n in a}
            ev = task.evaluate(model, theta, task.test)
            assert batched["loss"][p, k].item() == pytest.approx(ev["loss"].double().mean().item(), abs=1e-6)
            assert batched["error"][p, k].item() == pytest.approx(1 - ev["correct"].double().mean().item(), abs=1e-12)
    assert torch.allclose(batched["loss"], chunked["loss"], atol=1e-6)


def test_renormalize_sees_every_interpolated_member(mlp_runs):
    task, model, params = mlp_runs
    seen = []

    def renorm(p):
        seen.append(next(iter(p.values())).shape[0])
        return {k: v * 0 for k, v in p.items()}  # a visible effect: every member outputs 0

    res = curves(task, model, params, params, task.test, alpha_grid(3), chunk=4, renormalize=renorm)
    assert sum(seen) == 4 * 3
    assert torch.allclose(res["loss"], torch.full((4, 3), torch.log(torch.tensor(2.0)).item(), dtype=torch.float64))


def test_bad_alphas_and_mismatched_endpoints_are_refused(mlp_runs):
    task, model, params = mlp_runs
    with pytest.raises(PathdepError, match="n_alpha"):
        alpha_grid(1)
    with pytest.raises(PathdepError, match="alphas"):
        curves(task, model, params, params, task.test, torch.tensor([0.2, 1.0]))
    with pytest.raises(PathdepError, match="as many members"):
        curves(task, model, params, {k: v[:2] for k, v in params.items()}, task.test, alpha_grid(3))


# --- barriers after alignment ---------------------------------------------------------------------


def shuffled_copy(model, params, seed):
    """params with every hidden axis of every member randomly permuted (the same function)."""
    from pathdep.measure.align import apply_permutation, identity_perms

    g = torch.Generator().manual_seed(seed)
    spec = model.permutation_spec
    perms = {p: torch.stack([torch.randperm(n.shape[1], generator=g) for _ in range(n.shape[0])])
             for p, n in identity_perms(spec, params).items()}
    return apply_permutation(spec, params, perms)


@pytest.mark.parametrize("alignment", ["weight_matching", "activation_matching"])
def test_the_aligned_barrier_of_a_permuted_copy_is_zero(mlp_runs, alignment):
    from pathdep.measure.align import align

    task, model, params = mlp_runs
    copy = shuffled_copy(model, params, 1)
    raw = pair_barriers(task, model, params, copy, task.test, 11)
    assert raw["loss_barrier"].max() > 0.05  # the raw line between a net and its permuted copy can climb
    b = align(alignment, model, params, copy, task.train.x)
    res = pair_barriers(task, model, params, b, task.test, 11)
    assert res["loss_barrier"].abs().max() < 1e-5
    assert (res["error_barrier"] == 0).all()


def test_alignment_of_reads_old_tables_as_weight_matching():
    import pandas as pd

    from pathdep.measure.connectivity import alignment_of

    old = pd.DataFrame({"aligned": [False, True, True]})
    assert alignment_of(old).tolist() == ["none", "weight_matching", "weight_matching"]
    new = old.assign(alignment=["none", "weight_matching", "activation_matching"])
    assert alignment_of(new).tolist() == ["none", "weight_matching", "activation_matching"]


def test_unknown_alignment_is_refused(mlp_runs):
    from pathdep.measure.align import align

    task, model, params = mlp_runs
    with pytest.raises(PathdepError, match="'alignment' parameter of align.*'greedy'"):
        align("greedy", model, params, params, task.train.x)


# --- the LMC finding says which alignment gave each number ----------------------------------------


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    from pathdep import Study
    from pathdep.measure import MeasureOptions, measure_study
    from tests.helpers import tiny

    study = Study.from_dict(tiny(**{"seeds.init": 5}), store=tmp_path_factory.mktemp("store"))  # LMC's least data
    study.run()
    tables = measure_study(study, which=["properties", "barriers"], options=MeasureOptions(n_alpha=3))
    return study, tables["barriers"]


def plant(bars, values):
    """The barriers table with every test row set to values[alignment] = (loss, error)."""
    out = bars.copy()
    for alignment, (loss, error) in values.items():
        rows = (out["split"] == "test") & (out["alignment"] == alignment)
        out.loc[rows, ["loss_barrier", "error_barrier"]] = [loss, error]
    return out


def test_lmc_names_the_alignment_and_says_when_one_raised_the_barrier(tiny_study):
    from pathdep.analyses import lmc

    study, bars = tiny_study
    assert set(bars["alignment"]) == {"none", "weight_matching", "activation_matching"}
    study.write_table("barriers", plant(bars, {"none": (0.61, 0.10), "weight_matching": (0.70, 0.12),
                                               "activation_matching": (0.20, 0.05)}))
    f = lmc.analyse_lmc(study)
    assert f.value == pytest.approx(0.10)
    assert f.details["alignment"] == "activation_matching"
    assert f.details["error_barrier_aligned"] == pytest.approx(0.05)
    assert f.details["loss_barrier[weight_matching]"] == pytest.approx(0.70)
    assert "(0.050 after activation matching, the lower of it and weight matching)" in f.verdict
    note = ("weight matching raised the loss barrier (0.700 vs 0.610 raw) and the error barrier (0.120 vs 0.100 raw): "
            "it minimises weight distance, not loss")
    assert f.details["alignment_notes"] == [note]
    assert f"; {note}" in f.verdict


def test_lmc_without_a_raised_barrier_adds_no_note_and_reads_old_tables(tiny_study):
    from pathdep.analyses import lmc

    study, bars = tiny_study
    fine = plant(bars, {"none": (0.61, 0.10), "weight_matching": (0.30, 0.04), "activation_matching": (0.40, 0.06)})
    study.write_table("barriers", fine)
    f = lmc.analyse_lmc(study)
    assert "raised" not in f.verdict and f.details["alignment_notes"] == []
    assert "(0.040 after weight matching, the lower of it and activation matching)" in f.verdict
    old = fine[fine["alignment"] != "activation_matching"].drop(columns="alignment")  # a store from before the column
    study.write_table("barriers", old)
    f = lmc.analyse_lmc(study)
    assert f.details["alignment"] == "weight_matching" and "(0.040 after weight matching)" in f.verdict


def test_the_measure_options_and_spec_choose_the_alignments(tiny_study):
    from pathdep.errors import SpecError
    from pathdep.measure import MeasureOptions, measure_study
    from pathdep.spec import parse_spec
    from tests.helpers import tiny

    study, _ = tiny_study
    bars = measure_study(study, which=["barriers"], options=MeasureOptions(n_alpha=3, alignment=("activation",)))["barriers"]
    assert list(dict.fromkeys(bars["alignment"])) == ["none", "activation_matching"]
    with pytest.raises(PathdepError, match="'alignment' option.*'procrustes'"):
        measure_study(study, which=["barriers"], options=MeasureOptions(alignment=("procrustes",)))
    assert parse_spec(tiny(**{"measure.alignment": ["weight"]})).measure.alignment == ("weight",)
    assert parse_spec(tiny()).measure.alignment == ("weight", "activation")
    with pytest.raises(SpecError, match=r"'measure.alignment\[0\]' field must be 'weight' or 'activation'"):
        parse_spec(tiny(**{"measure.alignment": ["procrustes"]}))


def test_a_model_without_hidden_units_records_one_identity_alignment():
    from pathdep.measure import MeasureOptions
    from pathdep.measure.align import align
    from pathdep.measure.study import alignments

    logreg = MLP(d_in=6, hidden=(), d_out=1)
    assert alignments(logreg, MeasureOptions()) == ["none", "weight_matching"]
    assert alignments(MLP(d_in=6, hidden=(4,), d_out=1), MeasureOptions()) == ["none", "weight_matching", "activation_matching"]
    params = logreg.init_population([0, 1])
    same = align("weight_matching", logreg, params, {k: v.flip(0) for k, v in params.items()})
    assert all(torch.equal(same[k], params[k].flip(0)) for k in params)  # nothing to permute
