"""measure_study over a trained store, cross-checked against the measurement functions; compare()."""

import pytest
import torch

from pathdep import Study
from pathdep.errors import IncompatibleError, PathdepError
from pathdep.measure import TABLES, MeasureOptions, compare, measure_study
from pathdep.measure.connectivity import BARRIER_DEFINITION, pair_barriers
from pathdep.measure.similarity import similarity_matrix
from pathdep.models.base import capture
from pathdep.store import checkpoint_name, run_dir
from tests.helpers import tiny

COLUMNS = {
    "properties": ["run", "step", "name", "value"],
    "behaviour": ["run", "step", "probe", "example", "loss", "pred", "correct", "margin"],
    "behaviour_pairs": ["run_a", "step_a", "run_b", "step_b", "probe", "loss_pearson", "loss_spearman", "agreement", "error_kappa"],
    "cka": ["run_a", "step_a", "run_b", "step_b", "layer", "probe", "cka", "cka_debiased", "procrustes"],
    "interpolation": ["run_a", "run_b", "step", "split", "aligned", "alignment", "alpha", "loss", "error", "group"],
    "barriers": ["run_a", "run_b", "step", "split", "aligned", "alignment", "loss_barrier", "error_barrier", "group",
                 "definition"],
    "soups": ["step", "group", "kind", "split", "acc", "loss", "n_ingredients"],
    "importance": ["run", "step", "probe", "layer", "unit", "ablation", "delta_loss"],
    "static": ["run", "step", "measure", "value"],
}


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """3 runs + 2 fork children, 60 steps, checkpoints every 20; every table measured."""
    spec = tiny(forks=[{"name": "fk", "parent": "base-i0-d0", "step": 20, "data_seeds": [1, 2]}])
    study = Study.from_dict(spec, store=tmp_path_factory.mktemp("store"))
    study.run()
    return study, measure_study(study, options=MeasureOptions(n_alpha=5))


RUNS = ["base-i0-d0", "base-i1-d0", "base-i2-d0", "fk-d1", "fk-d2"]


def test_every_table_is_written_with_its_columns(measured):
    study, tables = measured
    assert set(tables) == set(TABLES) == set(COLUMNS)
    for name, cols in COLUMNS.items():
        stored = study.read_table(name)
        assert list(stored.columns) == cols, name
        assert len(stored) == len(tables[name]) > 0, name
    bars = tables["barriers"]
    # pairs within cohorts: base (3 runs: 3 pairs) and fork fk (2 children: 1 pair)
    assert len(bars) == 4 * 3 * 3  # x (train, test, ood) x (none, weight_matching, activation_matching)
    assert bars.groupby("alignment").size().to_dict() == {"none": 12, "weight_matching": 12, "activation_matching": 12}
    assert (bars["aligned"] == (bars["alignment"] != "none")).all()
    assert set(zip(bars.run_a, bars.run_b, bars.group)) == {
        ("base-i0-d0", "base-i1-d0", "base"), ("base-i0-d0", "base-i2-d0", "base"),
        ("base-i1-d0", "base-i2-d0", "base"), ("fk-d1", "fk-d2", "fk")}
    assert (bars["definition"] == BARRIER_DEFINITION).all()
    assert (bars[["loss_barrier", "error_barrier"]] >= 0).all().all()
    props = tables["properties"]
    assert set(props["name"]) >= {"test_acc", "ood_acc", "reliance"}
    assert set(props.loc[props.run == "fk-d1", "step"]) == {20, 40, 60}


def test_barriers_equal_a_direct_computation(measured):
    study, tables = measured
    task, model = study.task, study.model()
    a, b = study.load_population(["fk-d1"], 60), study.load_population(["fk-d2"], 60)
    direct = pair_barriers(task, model, a, b, task.probes["ood"], 5)
    bars = tables["barriers"]
    row = bars[(bars.run_a == "fk-d1") & (bars.run_b == "fk-d2") & (bars.split == "ood") & ~bars.aligned]
    assert row["loss_barrier"].item() == pytest.approx(direct["loss_barrier"].item(), abs=1e-6)
    assert row["error_barrier"].item() == pytest.approx(direct["error_barrier"].item(), abs=1e-9)
    curve = tables["interpolation"]
    pts = curve[(curve.run_a == "fk-d1") & (curve.run_b == "fk-d2") & (curve.split == "ood") & ~curve.aligned]
    assert pts["alpha"].tolist() == pytest.approx([0, 0.25, 0.5, 0.75, 1])
    assert pts["loss"].to_numpy() == pytest.approx(direct["loss"][0].numpy(), abs=1e-6)


def test_cka_and_behaviour_equal_a_direct_computation(measured):
    study, tables = measured
    task, model = study.task, study.model()
    params = study.load_population(RUNS, 60)
    with capture({"h1"}) as acts:
        model.apply(params, task.test.x.unsqueeze(0).expand(5, *task.test.x.shape))
    direct = similarity_matrix(acts["h1"])
    cka = tables["cka"]
    row = cka[(cka.run_a == "base-i0-d0") & (cka.run_b == "fk-d1") & (cka.layer == "h1") & (cka.probe == "test")
              & (cka.step_a == 60)]
    assert row["cka"].item() == pytest.approx(direct["cka"][0, 3].item(), abs=1e-9)
    assert row["cka_debiased"].item() == pytest.approx(direct["cka_debiased"][0, 3].item(), abs=1e-9)
    within = cka[(cka.run_a == cka.run_b)]
    assert set(within["step_b"]) == {60} and 60 not in set(within["step_a"])
    assert set(within.loc[within.run_a == "fk-d1", "step_a"]) == {20, 40}
    beh = tables["behaviour"]
    ev = task.evaluate(model, study.load_population(["fk-d1"], 40), task.probes["ood"])
    mine = beh[(beh.run == "fk-d1") & (beh.step == 40) & (beh.probe == "ood")].sort_values("example")
    assert mine["loss"].to_numpy() == pytest.approx(ev["loss"][0].numpy(), abs=1e-6)
    assert (mine["correct"].to_numpy() == ev["correct"][0].bool().numpy()).all()


def test_soups_and_importance_and_static(measured):
    _, tables = measured
    soups = tables["soups"]
    assert set(soups["group"]) == {"base", "fk"}
    held = soups[(soups.split == "test")].set_index(["group", "kind"])
    assert held.loc[("fk", "uniform"), "n_ingredients"] == 2
    # soups are chosen on the first half of test; the "test" rows are the second half
    from pathdep.measure.study import halves

    study = measured[0]
    first, second = halves(study.task.test)
    assert len(first) + len(second) == len(study.task.test) and torch.equal(second.x, study.task.test.x[len(first):])
    kids = ["fk-d1", "fk-d2"]
    uniform = {k: v.mean(0, keepdim=True) for k, v in study.load_population(kids, study.final_step(kids[0])).items()}
    ev = study.task.evaluate(study.model(kids[0]), uniform, second)
    assert held.loc[("fk", "uniform"), "acc"] == pytest.approx(float(ev["correct"].double().mean()))
    imp = tables["importance"]
    assert set(imp["ablation"]) == {"zero", "mean"} and set(imp["layer"]) == {"h0", "h1"}
    assert set(imp.loc[imp.layer == "h1", "unit"]) == set(range(16)) | {-1}
    static = tables["static"]
    init_dist = static[(static.measure == "dist_from_init") & (static.step == 0)]
    assert (init_dist["value"] == 0).all()
    fork_start = static[(static.measure == "dist_from_init") & (static.run == "fk-d1") & (static.step == 20)]
    parent_at = static[(static.measure == "dist_from_init") & (static.run == "base-i0-d0") & (static.step == 20)]
    assert fork_start["value"].item() == pytest.approx(parent_at["value"].item())  # measured from the parent's init


def test_unknown_table_is_refused(measured):
    study, _ = measured
    with pytest.raises(PathdepError, match="'which' parameter.*'cka2'"):
        measure_study(study, which=["cka2"])


def ckpt(study, run, step):
    return run_dir(study.store, study.name, run) / checkpoint_name(step)


def test_compare_two_checkpoint_files_matches_the_study_tables(measured):
    study, tables = measured
    res = compare(ckpt(study, "base-i0-d0", 60), ckpt(study, "base-i2-d0", 60), n_alpha=5)
    bars = tables["barriers"]
    for _, row in res.barriers.iterrows():
        ref = bars[(bars.run_a == "base-i0-d0") & (bars.run_b == "base-i2-d0") & (bars.split == row.split)
                   & (bars.alignment == row.alignment)]
        assert row.loss_barrier == pytest.approx(ref["loss_barrier"].item(), abs=1e-6)
    assert set(res.cka["layer"]) == {"h0", "h1", "logits"}
    pairs = tables["behaviour_pairs"]
    ref = pairs[(pairs.run_a == "base-i0-d0") & (pairs.run_b == "base-i2-d0") & (pairs.step_a == 60) & (pairs.probe == "ood")]
    got = res.behaviour.set_index("probe").loc["ood"]
    assert got["agreement"] == pytest.approx(ref["agreement"].item())
    assert got["loss_spearman"] == pytest.approx(ref["loss_spearman"].item(), abs=1e-9)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"process.model_args.hidden": [1, 8]}, r"Parameter 'fc1.bias' has shape \(8,\) in checkpoint .*other.* and \(16,\) in checkpoint .*tiny"),
        ({"process.model_args": {"hidden": [1, 16, 4], "activations": ["identity", "relu", "relu"]}},
         r"Parameter 'fc3.bias' is in checkpoint .*step_000002.safetensors but not in checkpoint"),
        ({"process.model_args.activations": ["identity", "tanh"]}, r"'process.model_args' of checkpoint"),
    ],
)
def test_incompatible_checkpoints_are_refused_before_any_computation(measured, tmp_path, change, message, monkeypatch):
    study, _ = measured
    other = Study.from_dict(tiny(**{"name": "other", "process.steps": 2, **change}), store=tmp_path)
    other.run()
    import pathdep.measure.checkpoints as cmp

    monkeypatch.setattr(cmp, "align", lambda *a, **k: pytest.fail("computed before checking"))
    with pytest.raises(IncompatibleError, match=message):
        compare(ckpt(other, "base-i0-d0", 2), ckpt(study, "base-i0-d0", 60))
    assert IncompatibleError.exit_code == 2


def test_options_choose_steps_cohort_size_and_examples(measured):
    """(Runs last: it overwrites three tables of the shared study.)"""
    study, _ = measured
    opts = MeasureOptions(n_alpha=3, steps=(20,), max_cohort=2, max_examples=50)
    tables = measure_study(study, which=["static", "barriers", "importance"], options=opts)
    assert set(tables["static"]["step"]) == {20, 60}  # the final step is always measured
    bars = tables["barriers"]
    assert set(zip(bars.run_a, bars.run_b)) == {("base-i0-d0", "base-i1-d0"), ("fk-d1", "fk-d2")}
    task, model = study.task, study.model()
    a, b = study.load_population(["base-i0-d0"], 60), study.load_population(["base-i1-d0"], 60)
    head = type(task.test)(task.test.x[:50], task.test.y[:50])
    direct = pair_barriers(task, model, a, b, head, 3)
    row = bars[(bars.run_a == "base-i0-d0") & (bars.split == "test") & ~bars.aligned]
    assert row["loss_barrier"].item() == pytest.approx(direct["loss_barrier"].item(), abs=1e-6)
    imp = tables["importance"]
    assert set(imp["step"]) == {20, 60}
    one = imp[(imp.run == "fk-d2") & (imp.step == 60) & (imp.probe == "ood") & (imp.layer == "h1") & (imp.unit == -1)
              & (imp.ablation == "zero")]
    ood = task.probes["ood"]
    params = study.load_population(["fk-d2"], 60)
    zeroed = {**params, "fc2.weight": torch.zeros_like(params["fc2.weight"])}  # h1 ablated = no input to fc2
    delta = (task.evaluate(model, zeroed, type(ood)(ood.x[:50], ood.y[:50]))["loss"].double().mean()
             - task.evaluate(model, params, type(ood)(ood.x[:50], ood.y[:50]))["loss"].double().mean())
    assert one["delta_loss"].item() == pytest.approx(delta.item(), abs=1e-6)
