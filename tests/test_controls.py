"""The two controls that ship with pathdep, reduced to run in seconds, read where they must.

- The convex control (examples/digits_logreg.toml: logistic regression with weight decay, one
  minimum) must read LOW path dependence wherever a question is measured: one cluster, no
  barrier, a run's middle agreeing with its end and with other runs' ends, no seed spread.
- The demo (examples/demo.toml: two competing features behind a width-1 bottleneck, seeds split
  between two solution types) must read HIGH: two clusters, a large barrier, runs that agree with
  their own past far more than with each other.

Each study is trained, measured and profiled once (module fixtures); every assertion is on a
finding's numbers (value, interval, details), so a change to an analysis that breaks either
control fails here.
"""

import math
import tomllib
from pathlib import Path

import pytest
import torch

from pathdep import Study
from pathdep.analyses import profile
from pathdep.measure.study import TABLES, measure_study
from pathdep.models.mlp import MLP

EXAMPLES = Path(__file__).parents[1] / "examples"
CONNECTED = 0.02  # error barrier below which two runs count as linearly connected (Frankle et al.)


def reduced(name: str, changes: dict) -> dict:
    """An example spec without its variants and forks, with dotted ``changes`` applied."""
    spec = tomllib.loads((EXAMPLES / f"{name}.toml").read_text())
    spec.pop("variants", None)
    spec.pop("forks", None)
    for key, value in changes.items():
        *head, last = key.split(".")
        cur = spec
        for h in head:
            cur = cur[h]
        cur[last] = value
    return spec


def measured(spec: dict, store: Path):
    study = Study.from_dict(spec, store=store)
    study.run()
    tables = measure_study(study)
    return study, tables, {f.id: f for f in profile(study)}


@pytest.fixture(scope="module")
def convex(tmp_path_factory):
    steps = 300
    spec = reduced("digits_logreg", {
        "process.steps": steps, "process.checkpoints.every": steps // 4, "seeds.init": 8, "seeds.data": [0, 1],
        "measure": {"steps": [0, 8, 32, 75, 150, 300], "n_alpha": 5, "max_examples": 200},
    })
    return measured(spec, tmp_path_factory.mktemp("convex"))


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    spec = reduced("demo", {
        "process.task_args": {"margin": 0.40, "n_test": 400, "n_probe": 400}, "seeds.init": 8, "seeds.data": [0, 1],
        "measure": {"steps": [0, 50, 100, 200, 300, 500], "n_alpha": 5, "max_examples": 200, "max_cohort": 12},
    })
    return measured(spec, tmp_path_factory.mktemp("demo"))


# --- logistic regression: an MLP with no hidden layer ----------------------------------------------


def test_an_mlp_without_hidden_layers_is_logistic_regression():
    m = MLP(d_in=5, hidden=(), d_out=3)
    p = m.init_population([0, 1])
    assert sorted(p) == ["fc0.bias", "fc0.weight"] and p["fc0.weight"].shape == (2, 3, 5)
    assert m.hook_names == ("logits",) and m.permutation_spec.axes == {}
    x = torch.randn(2, 7, 5)
    expected = torch.einsum("rbi,roi->rbo", x, p["fc0.weight"]) + p["fc0.bias"][:, None]
    assert torch.allclose(m.apply(p, x), expected, atol=1e-6)


def test_the_spec_accepts_no_hidden_layers_and_still_rejects_empty_ones():
    from pathdep.errors import PathdepError

    spec = reduced("digits_logreg", {})
    assert Study.from_dict(spec, store="unused").model().hidden == ()
    spec["process"]["model_args"] = {"hidden": [0]}
    with pytest.raises((PathdepError, ValueError), match="hidden"):
        Study.from_dict(spec, store="unused").model()


def test_every_table_is_measured_on_the_convex_control(convex):
    study, tables, _ = convex
    assert sorted(tables) == sorted(TABLES)
    imp = tables["importance"]  # no hidden units: nothing to ablate, the same columns
    assert imp.empty and list(imp.columns) == ["run", "step", "probe", "layer", "unit", "ablation", "delta_loss"]
    assert set(tables["cka"]["layer"]) == {"logits"}  # the input-output representation
    bars = tables["barriers"]
    raw, aligned = bars[~bars["aligned"]].reset_index(drop=True), bars[bars["aligned"]].reset_index(drop=True)
    assert len(raw) == len(aligned) > 0
    assert (raw["error_barrier"] == aligned["error_barrier"]).all()  # no permutation to align
    static = tables["static"]
    assert {"weight_norm", "dist_from_init", "effective_rank/fc0.weight", "sharpness"} <= set(static["measure"])
    assert static["value"].notna().all()
    assert len(tables["soups"]) > 0 and tables["behaviour"]["run"].nunique() == len(study.runs())


# --- the convex control reads low path dependence ---------------------------------------------------


def test_convex_control_has_one_cluster(convex):
    f = convex[2]["C"]
    assert f.value == 1, f.verdict


def test_convex_control_is_linearly_connected_in_one_basin(convex):
    f = convex[2]["LMC"]
    assert f.value < CONNECTED and f.ci[1] < CONNECTED
    assert f.details["error_barrier_aligned"] < CONNECTED
    assert f.details["loss_barrier_raw"] < 0.01
    assert f.details["uniform_gain[base]"] > -0.01  # averaging the weights of convex solutions costs nothing
    assert f.details["clusters_raw"] == 1, f.verdict  # no barrier above the threshold: one basin


def test_convex_control_is_consistent_over_time_and_between_runs(convex):
    f = convex[2]["T"]
    assert f.details["agreement_over_time"] > 0.98 and f.details["agreement_between_runs"] > 0.98
    assert abs(f.value) < 0.02


def test_convex_control_seeds_do_not_spread_beyond_probe_noise(convex):
    f = convex[2]["A"]
    assert f.value < 0.01 and f.details["raw_std"] < 0.01
    assert f.details["agreement[test]"] > 0.98 and f.details["cka[logits]"] > 0.99


def test_convex_control_keeps_its_representation_from_mid_training(convex):
    assert convex[2]["G"].value > 0.95


def test_convex_control_has_nothing_to_predict(convex):
    findings = convex[2]
    assert not findings["D"].measured  # one cluster: no membership to keep
    assert "nothing to predict" in findings["E"].verdict, findings["E"].verdict


# --- the demo reads high path dependence ------------------------------------------------------------


def test_demo_has_two_clusters_of_opposite_solution_types(demo):
    f = demo[2]["C"]
    assert f.value == 2, f.verdict
    means = sorted(v for k, v in f.details.items() if k.startswith("reliance_mean["))
    assert len(means) == 2 and means[0] < 0.2 and means[1] > 0.8


def test_demo_runs_are_separated_by_large_barriers(demo):
    f = demo[2]["LMC"]
    assert f.value > 0.1 and f.ci[0] > CONNECTED
    assert f.details["clusters_raw"] >= 2
    assert f.details["uniform_gain[base]"] < -0.1  # a soup across solution types breaks


def test_demo_runs_agree_with_their_own_past_more_than_with_each_other(demo):
    f = demo[2]["T"]
    assert f.details["agreement_over_time"] > 0.95 and f.details["agreement_between_runs"] < 0.9
    assert f.value > 0.1 and f.ci[0] > 0


def test_demo_seeds_spread_widely(demo):
    f = demo[2]["A"]
    assert f.value > 0.3 and f.details["agreement[ood]"] < 0.9


def test_demo_outcome_is_decided_during_training_and_predictable_before_the_end(demo):
    findings, final = demo[2], demo[0].spec.process.steps
    assert findings["D"].value < final  # runs settle into their final cluster before the end
    e = findings["E"]
    assert e.value is not None and math.isfinite(e.value) and e.value < final, e.verdict
    h = findings["H"]
    assert h.value > h.details["chance"] + 0.2
