"""The population engine against torch.optim on single models, packing invariance, forks."""

import pytest
import torch
from torch import nn

from pathdep import Study
from pathdep.spec import parse_spec, plan_runs, build_process
from pathdep.train import fresh_state, train_population
from pathdep.train.streams import DataOrder
from tests.helpers import tiny


def _reference_run(task, model, process, init_params, data_seed):
    """One run trained the plain way: nn.Sequential + torch.optim, same init and batches."""
    net = nn.Sequential(nn.Linear(11, 1), nn.Linear(1, 16), nn.ReLU(), nn.Linear(16, 1))
    with torch.no_grad():
        for i, j in enumerate([0, 1, 3]):
            net[j].weight.copy_(init_params[f"fc{i}.weight"])
            net[j].bias.copy_(init_params[f"fc{i}.bias"])
    o = process.optimizer
    opt = {
        "adam": lambda p: torch.optim.Adam(p, lr=o.lr, weight_decay=o.weight_decay),
        "adamw": lambda p: torch.optim.AdamW(p, lr=o.lr, weight_decay=o.weight_decay),
        "sgd": lambda p: torch.optim.SGD(p, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay),
    }[o.name](net.parameters())
    order = DataOrder(len(task.train), process.batch_size, [data_seed])
    for step in range(process.steps):
        idx = order.indices(step)[0]
        loss = nn.functional.binary_cross_entropy_with_logits(net(task.train.x[idx]).squeeze(-1), task.train.y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {f"fc{i}.{w}": getattr(net[j], w).detach() for i, j in enumerate([0, 1, 3]) for w in ("weight", "bias")}


@pytest.mark.parametrize("optimizer", [
    {"name": "adam", "lr": 3e-3},
    {"name": "adamw", "lr": 3e-3, "weight_decay": 0.1},
    {"name": "sgd", "lr": 0.02, "momentum": 0.9, "weight_decay": 1e-3},
])
def test_population_equals_per_run_torch_optim(optimizer):
    spec = parse_spec(tiny(**{"process.optimizer": optimizer, "process.steps": 100}))
    process = spec.process
    task, model = build_process(process)
    seeds = [(0, 0), (1, 3), (2, 1)]  # (init, data) per run
    start = [fresh_state(model, i) for i, _ in seeds]
    final = train_population(task, model, process, [d for _, d in seeds], start, lambda s, st: None)
    for (i, d), s0, s1 in zip(seeds, start, final):
        ref = _reference_run(task, model, process, s0.params, d)
        for k in ref:
            torch.testing.assert_close(s1.params[k], ref[k], rtol=0, atol=1e-6)


def _final_tensors(study, run):
    return study.load(run, study.final_step(run))


def test_run_does_not_depend_on_its_population(tmp_path):
    """Run i5 trained alone, among 4 and among 16 gives the same bits at every checkpoint."""
    results = []
    for k, seeds in enumerate([[5], [2, 5, 7, 9], list(range(16))]):
        study = Study.from_dict(tiny(**{"seeds.init": seeds}), store=tmp_path / str(k))
        study.run()
        results.append({s: study.load("base-i5-d0", s) for s in study.steps("base-i5-d0")})
    for other in results[1:]:
        assert other.keys() == results[0].keys()
        for step in results[0]:
            for name, t in results[0][step].items():
                assert torch.equal(t, other[step][name]), (step, name)


def test_fork_with_parent_data_seed_reproduces_parent(tmp_path):
    spec = tiny(forks=[{"name": "same", "parent": "base-i1-d0", "step": 20, "data_seeds": [0, 7]}])
    study = Study.from_dict(spec, store=tmp_path)
    study.run()
    parent = _final_tensors(study, "base-i1-d0")
    same, other = _final_tensors(study, "same-d0"), _final_tensors(study, "same-d7")
    assert all(torch.equal(parent[k], same[k]) for k in parent)
    assert not all(torch.equal(parent[k], other[k]) for k in parent)
    assert study.steps("same-d0") == [20, 40, 60]
    # a fork's first checkpoint is its parent's state at the fork step
    assert all(torch.equal(study.load("same-d7", 20)[k], study.load("base-i1-d0", 20)[k]) for k in parent)
    # the loss log continues the parent's up to the fork step
    assert study.train_log("same-d7").loss[:20].tolist() == study.train_log("base-i1-d0").loss[:20].tolist()


def test_nudge_fork_starts_part_way_toward_another_run(tmp_path):
    spec = tiny(forks=[{"name": "nudge", "parent": "base-i0-d0", "step": 20, "data_seeds": [0],
                        "toward": "base-i1-d0", "lambdas": [0.0, 0.5, 1.0]}])
    study = Study.from_dict(spec, store=tmp_path)
    study.run()
    a, b = study.load("base-i0-d0", 20), study.load("base-i1-d0", 20)
    for lam in (0.0, 0.5, 1.0):
        start = study.load(f"nudge-l{lam:g}-d0", 20)
        for k in a:
            torch.testing.assert_close(start[k], (1 - lam) * a[k] + lam * b[k], rtol=0, atol=1e-7)
    # lambda 0 is the parent itself, continued with its own data order
    assert all(torch.equal(_final_tensors(study, "nudge-l0-d0")[k], _final_tensors(study, "base-i0-d0")[k]) for k in a)


def test_intervention_acts_only_in_its_window(tmp_path):
    iv = {"kind": "counterexamples_f2", "start": 20, "end": 40, "strength": 0.5}
    spec = tiny(variants=[{"name": "push", "set": {"intervention": iv}},
                          {"name": "zero", "set": {"intervention": iv | {"strength": 0.0}}}])
    study = Study.from_dict(spec, store=tmp_path)
    study.run()
    base, push, zero = (f"{v}-i0-d0" for v in ("base", "push", "zero"))
    same = lambda r1, r2, s: all(torch.equal(study.load(r1, s)[k], study.load(r2, s)[k]) for k in study.load(r1, s))
    assert same(base, push, 20)          # before the window nothing differs
    assert not same(base, push, 40)      # in the window the batches change
    assert same(base, zero, 60)          # strength 0 changes nothing at all
    assert study.runs().set_index("run").loc[push, "intervention"]["kind"] == "counterexamples_f2"


def test_unsupported_intervention_kind_is_refused():
    from pathdep.errors import SpecError

    with pytest.raises(SpecError, match="intervention.kind.*counterexamples_f1.*Got 'shuffle'"):
        Study.from_dict(tiny(**{"process.intervention": {"kind": "shuffle", "start": 0, "end": 10}}))


def test_data_order_is_a_function_of_seed_and_step():
    a = DataOrder(100, 10, [3, 4])
    b = DataOrder(100, 10, [4])
    assert torch.equal(a.indices(37)[1], b.indices(37)[0])
    epoch = torch.cat([a.indices(s)[0] for s in range(10)])
    assert sorted(epoch.tolist()) == list(range(100))  # each epoch visits every example once
    assert not torch.equal(a.indices(0)[0], a.indices(10)[0])  # reshuffled every epoch


def test_init_from_a_run_of_another_study_in_the_store(tmp_path):
    from pathdep.errors import SpecError

    Study.from_dict(tiny(), store=tmp_path).run()
    child = Study.from_dict(tiny(**{"name": "child", "process.init_from": "tiny/base-i2-d0@40"}), store=tmp_path)
    child.run()
    start, source = child.load("base-i0-d0", 0), Study.open(tmp_path, "tiny").load("base-i2-d0", 40)
    assert all(torch.equal(start[k], source[k]) for k in source)
    missing = Study.from_dict(tiny(**{"name": "orphan", "process.init_from": "tiny/base-i2-d0@45"}), store=tmp_path)
    with pytest.raises(SpecError, match="'init_from' field .*step_000045.safetensors' does not exist"):
        missing.run()
    assert not (tmp_path / "orphan").exists()  # nothing written
