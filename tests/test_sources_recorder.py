"""A user's own torch training loop recorded into a store, then measured like a trained study."""

import pytest
import torch
from torch import nn

from pathdep import Study
from pathdep.errors import IncompatibleError, PathdepError
from pathdep.measure import measure_study
from pathdep.measure.study import MeasureOptions
from pathdep.registry import TASKS
from pathdep.sources import ExternalStudy, Recorder

TASK_ARGS = {"n_train": 256, "n_test": 128, "n_probe": 64}
STEPS = [0, 10, 20, 30]


def _task():
    entry = TASKS["two_features"]
    return entry.build(entry.args.model_validate(TASK_ARGS))


def _net(seed: int) -> nn.Sequential:
    torch.manual_seed(seed)  # the user's loop, not library code
    return nn.Sequential(nn.Linear(11, 8), nn.ReLU(), nn.Linear(8, 1))


def _train_and_record(rec: Recorder, seeds: list[int]) -> dict[str, nn.Sequential]:
    task = _task()
    nets = {}
    for seed in seeds:
        net = _net(seed)
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        gen = torch.Generator().manual_seed(100 + seed)
        for step in range(STEPS[-1] + 1):
            if step in STEPS:
                with torch.no_grad():
                    loss = nn.functional.binary_cross_entropy_with_logits(net(task.train.x).squeeze(-1), task.train.y.float())
                rec.save(f"seed{seed}", step, net, loss=float(loss), init_seed=seed, data_seed=seed)
            if step == STEPS[-1]:
                break
            idx = torch.randint(0, len(task.train), (32,), generator=gen)
            out = net(task.train.x[idx]).squeeze(-1)
            loss = nn.functional.binary_cross_entropy_with_logits(out, task.train.y[idx].float())
            opt.zero_grad()
            loss.backward()
            opt.step()
        nets[f"seed{seed}"] = net
    return nets


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    store = tmp_path_factory.mktemp("rec") / "store"
    rec = Recorder(store, "mine", task="two_features", task_args=TASK_ARGS, model="mlp",
                   model_args={"hidden": [8]}, keys="order")
    nets = _train_and_record(rec, [0, 1, 2])
    # a copy of seed0 under another name: any measure between the two must be the identity value
    rec.save("copy0", STEPS[-1], nets["seed0"])
    return store, nets


def test_recorded_checkpoints_equal_the_modules_and_reopen_through_study_open(recorded):
    store, nets = recorded
    study = Study.open(store, "mine")
    assert isinstance(study, ExternalStudy)
    assert list(study.runs()["run"]) == ["copy0", "seed0", "seed1", "seed2"]
    assert study.steps("seed1") == STEPS and study.final_step("seed1") == STEPS[-1]
    p = study.load("seed2", STEPS[-1])
    assert torch.equal(p["fc0.weight"], nets["seed2"][0].weight) and torch.equal(p["fc1.bias"], nets["seed2"][2].bias)
    log = study.train_log("seed0")
    assert list(log["step"]) == STEPS and log["loss"].iloc[-1] < log["loss"].iloc[0]
    # the family model over the stacked population computes what each torch module computes
    pop = study.load_population(["seed0", "seed1", "seed2"], STEPS[-1])
    x = study.task.test.x
    logits = study.model().apply(pop, x.unsqueeze(0).expand(3, *x.shape))
    with torch.no_grad():
        for r, name in enumerate(["seed0", "seed1", "seed2"]):
            torch.testing.assert_close(logits[r], nets[name](x), rtol=1e-5, atol=1e-6)


def test_measure_study_runs_on_a_recorded_study(recorded):
    store, nets = recorded
    study = Study.open(store, "mine")
    tables = measure_study(study, which=["properties", "cka", "barriers", "behaviour", "behaviour_pairs"],
                           options=MeasureOptions(n_alpha=5))
    props = tables["properties"]
    acc = props[(props["run"] == "seed1") & (props["step"] == STEPS[-1]) & (props["name"] == "test_acc")]["value"]
    task = study.task
    with torch.no_grad():
        want = ((nets["seed1"](task.test.x).squeeze(-1) > 0).long() == task.test.y.long()).double().mean()
    assert float(acc.iloc[0]) == pytest.approx(float(want))
    cka = tables["cka"]
    same = cka[(cka["run_a"] == "copy0") & (cka["run_b"] == "seed0") | (cka["run_a"] == "seed0") & (cka["run_b"] == "copy0")]
    assert len(same) > 0 and (same["cka"] - 1).abs().max() < 1e-6
    other = cka[(cka["run_a"] == "seed0") & (cka["run_b"] == "seed1") & (cka["layer"] == "h0")]
    assert (other["cka"] < 0.999).all()
    bars = tables["barriers"]
    pair = bars[((bars["run_a"] == "copy0") & (bars["run_b"] == "seed0")) & ~bars["aligned"]]
    assert pair["loss_barrier"].abs().max() < 1e-6
    bp = tables["behaviour_pairs"]
    agree = bp[(bp["run_a"] == "copy0") & (bp["run_b"] == "seed0") & (bp["step_a"] == STEPS[-1])]["agreement"]
    assert (agree == 1).all() and len(agree) > 0
    assert study.has_table("cka") and len(study.read_table("cka")) == len(cka)


def test_recorder_refuses_wrong_parameters_and_a_different_definition(tmp_path):
    rec = Recorder(tmp_path, "s", task="two_features", task_args=TASK_ARGS, model="mlp", model_args={"hidden": [8]})
    with pytest.raises(IncompatibleError, match="lack 'fc0.weight'.*keys='order'"):
        rec.save("seed0", 0, _net(0))  # nn.Sequential names without keys="order"
    wide = nn.Sequential(nn.Linear(11, 9), nn.ReLU(), nn.Linear(9, 1))
    with pytest.raises(IncompatibleError, match=r"'fc0.weight' has shape \(9, 11\); the model expects \(8, 11\)"):
        Recorder(tmp_path, "s", task="two_features", task_args=TASK_ARGS, model="mlp", model_args={"hidden": [8]},
                 keys="order").save("seed0", 0, wide)
    with pytest.raises(PathdepError, match="'model'"):
        Recorder(tmp_path, "s", task="two_features", task_args=TASK_ARGS, model="mlp", model_args={"hidden": [16]})
    with pytest.raises(PathdepError, match="'run' parameter"):
        rec.save("../evil", 0, {})
    with pytest.raises(PathdepError, match="module-level function"):
        Recorder(tmp_path, "t", task="two_features", model=lambda: _net(0))


def make_net() -> nn.Module:
    """A module-level factory (importable as tests.test_sources_recorder:make_net)."""
    return nn.Sequential(nn.Linear(11, 6), nn.Tanh(), nn.Linear(6, 1))


def test_factory_model_records_and_applies_like_the_module(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(__import__("pathlib").Path(__file__).parent))
    import test_sources_recorder as mod

    rec = Recorder(tmp_path, "fac", task="two_features", task_args=TASK_ARGS, model=mod.make_net, hooks=("1",))
    nets = []
    for seed in range(2):
        torch.manual_seed(seed)
        nets.append(mod.make_net())
        rec.save(f"seed{seed}", 0, nets[-1])
    study = Study.open(tmp_path, "fac", factories={"test_sources_recorder:make_net": mod.make_net})
    model = study.model()
    assert model.hook_names == ("1", "logits")
    x = study.task.test.x[:20]
    from pathdep.models import capture

    with capture({"1"}) as acts, torch.no_grad():
        out = model.apply(study.load_population(["seed0", "seed1"], 0), x.unsqueeze(0).expand(2, *x.shape))
    with torch.no_grad():
        for r, net in enumerate(nets):
            torch.testing.assert_close(out[r], net(x))
            torch.testing.assert_close(acts["1"][r], net[1](net[0](x)))
