"""Malformed specs get one clear line naming the field, the value and what was expected."""

import pytest

from pathdep.errors import SpecError
from pathdep.spec import CheckpointSpec, parse_spec, plan_runs
from tests.helpers import DELETE, tiny

BAD = [
    # (changes, words the message must contain)
    ({"process.optimiser": {"lr": 1}}, ["Unknown field", "process.optimiser"]),
    ({"process.steps": "many"}, ["process.steps", "'many'", "integer"]),
    ({"process.optimizer.lr": -0.1}, ["process.optimizer.lr", "-0.1", "greater than 0"]),
    ({"process.steps": 0}, ["process.steps", "0", "greater than 0"]),
    ({"process.batch_size": -4}, ["process.batch_size", "-4"]),
    ({"process.task": "mnist9"}, ["process.task", "unknown task", "'mnist9'", "two_features"]),
    ({"process.model": "resnet"}, ["process.model", "unknown model", "'resnet'", "mlp"]),
    ({"process.optimizer.name": "lion"}, ["process.optimizer.name", "'lion'", "adam"]),
    ({"process.checkpoints.steps": [10, 500]}, ["process.checkpoints.steps", "500", "at most the last step"]),
    ({"process.model_args.hidden": [8, 0]}, ["process.model_args.hidden", "widths must be >= 1"]),
    ({"process.model_args.activations": ["relu", "swish"]}, ["unknown activation", "'swish'"]),
    ({"process.task_args.margin": -1}, ["process.task_args.margin", "-1", "greater than 0"]),
    ({"process.task_args.colour": "red"}, ["Unknown field", "process.task_args.colour"]),
    ({"seeds.init": 0}, ["seeds.init", "must be >= 1"]),
    ({"seeds.data": [1, 1]}, ["seeds.data", "without repeats"]),
    ({"variants": [{"name": "a", "set": {}}, {"name": "a", "set": {}}]}, ["variants[1].name", "unique", "'a'"]),
    ({"variants": [{"name": "v", "set": {"optimizer.lr": 0}}]}, ["variants[0].set", "optimizer.lr", "greater than 0"]),
    ({"variants": [{"name": "v", "set": {"optimizer.speed": 2}}]}, ["Unknown field", "optimizer.speed"]),
    ({"variants": [{"name": "v", "set": {"nonsense.lr": 2}}]}, ["does not name a field", "nonsense.lr"]),
    ({"forks": [{"name": "f", "parent": "base-i9-d0", "step": 20, "data_seeds": [1]}]}, ["forks[0].parent", "'base-i9-d0'"]),
    ({"forks": [{"name": "f", "parent": "base-i0-d0", "step": 25, "data_seeds": [1]}]}, ["forks[0].step", "checkpoint step", "25"]),
    ({"forks": [{"name": "f", "parent": "base-i0-d0", "step": 20, "data_seeds": [1], "lambdas": [0.5]}]}, ["lambdas need a 'toward'"]),
    ({"process.intervention": {"kind": "label_flip", "start": 10, "end": 5}}, ["end > start"]),
    ({"process.intervention": {"kind": "label_flip", "start": 0, "end": 500}}, ["process.intervention.end", "500", "at most the last step (60)"]),
    ({"name": "my study!"}, ["'name'", "'my study!'"]),
    ({"process.steps": DELETE}, ["process.steps", "required"]),
    ({"process.warmup_steps": 100}, ["process.warmup_steps", "100", "below steps (60)"]),
]


@pytest.mark.parametrize("changes,words", BAD, ids=[str(list(c)[0]) + str(i) for i, (c, _) in enumerate(BAD)])
def test_malformed_spec_is_explained(changes, words):
    with pytest.raises(SpecError) as info:
        parse_spec(tiny(**changes))
    message = str(info.value)
    for w in words:
        assert w in message, f"{w!r} not in {message!r}"
    assert "Traceback" not in message


def test_valid_spec_plans_crossed_seeds_variants_and_forks():
    spec = parse_spec(tiny(**{
        "seeds.init": [3, 4], "seeds.data": [0, 1],
        "variants": [{"name": "fast", "set": {"optimizer.lr": 1e-2}}],
        "forks": [{"name": "k20", "parent": "base-i3-d0", "step": 20, "data_seeds": [0, 5]},
                  {"name": "nudge", "parent": "base-i3-d0", "step": 20, "data_seeds": [0],
                   "toward": "base-i4-d0", "lambdas": [0.25, 0.5]}],
    }))
    runs = plan_runs(spec)
    names = [r.name for r in runs]
    assert names[:4] == ["base-i3-d0", "base-i3-d1", "base-i4-d0", "base-i4-d1"]
    assert {r.name for r in runs if r.variant == "fast"} == {"fast-i3-d0", "fast-i3-d1", "fast-i4-d0", "fast-i4-d1"}
    assert [r.process.optimizer.lr for r in runs if r.variant == "fast"] == [1e-2] * 4
    forks = [r for r in runs if r.fork]
    assert [r.name for r in forks] == ["k20-d0", "k20-d5", "nudge-l0.25-d0", "nudge-l0.5-d0"]
    assert all(r.init_seed == 3 and r.parent == "base-i3-d0" and r.fork_step == 20 for r in forks)
    assert len({r.run_hash for r in runs}) == len(runs)


def test_spec_hash_ignores_defaults_but_not_changes():
    a = parse_spec(tiny())
    b = parse_spec(tiny(**{"process.schedule": "constant"}))  # the default, written out
    c = parse_spec(tiny(**{"process.optimizer.lr": 1e-2}))
    assert a.spec_hash() == b.spec_hash() != c.spec_hash()


@pytest.mark.parametrize("spec,total,expected", [
    (CheckpointSpec(every=25), 100, (0, 25, 50, 75, 100)),
    (CheckpointSpec(steps=(3, 7)), 10, (0, 3, 7, 10)),
    (CheckpointSpec(log=True), 20, (0, 1, 2, 4, 8, 16, 20)),
    (CheckpointSpec(log=True, every=1000), 3000, (0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000, 2000, 3000)),
    (CheckpointSpec(), 7, (0, 7)),
])
def test_checkpoint_schedules(spec, total, expected):
    assert spec.resolve(total) == expected


LAX = [
    # what pydantic's lax mode would have read as something else
    ({"process.steps": True}, ["process.steps", "True", "valid integer"]),
    ({"process.steps": 2.0}, ["process.steps", "2.0", "valid integer"]),
    ({"process.optimizer.lr": float("inf")}, ["process.optimizer.lr", "inf", "finite"]),
    ({"process.optimizer.lr": True}, ["process.optimizer.lr", "True", "valid number"]),
    ({"seeds.init": [0, True]}, ["seeds.init[1]", "True", "valid integer"]),
    ({"process.task_args.n_train": True}, ["process.task_args.n_train", "True", "not a boolean"]),
    ({"process.task_args.margin": float("nan")}, ["process.task_args.margin", "nan", "finite"]),
]


@pytest.mark.parametrize("changes,words", LAX, ids=[str(i) for i in range(len(LAX))])
def test_no_lax_coercion_of_numbers(changes, words):
    with pytest.raises(SpecError) as info:
        parse_spec(tiny(**changes))
    assert len(str(info.value).splitlines()) == 1
    for w in words:
        assert w in str(info.value)


def test_an_int_or_list_field_reports_only_the_branch_the_value_chose():
    with pytest.raises(SpecError) as info:
        parse_spec(tiny(**{"seeds.init": [0, -3]}))
    assert str(info.value) == "The 'seeds.init[1]' field must be greater than or equal to 0. Got -3 instead."


def test_the_cost_estimate_counts_what_the_plan_trains():
    """The arithmetic estimate against the plan itself (variants with their own seeds, forks, lambdas)."""
    from pathdep.cost import estimate, sizes

    spec = parse_spec(tiny(**{
        "seeds.init": 3, "seeds.data": [0, 1],
        "variants": [{"name": "wide", "set": {"model_args.hidden": [1, 32]}, "seeds": {"init": [5, 7, 9]}}],
        "forks": [{"name": "k20", "parent": "base-i1-d0", "step": 20, "data_seeds": [2, 3]},
                  {"name": "nudge", "parent": "wide-i5-d0", "step": 40, "data_seeds": [0], "toward": "wide-i7-d0",
                   "lambdas": [0.25, 0.5, 1.0]}],
    }))
    plan = plan_runs(spec)
    cost = estimate(spec)
    assert cost.runs == len(plan) == 6 + 3 + 2 + 3
    assert cost.run_steps == sum(r.process.steps - r.fork_step for r in plan)
    assert cost.work == sum((r.process.steps - r.fork_step) * sizes(r.process)[0] * sizes(r.process)[1] for r in plan)
    from pathdep.spec import build_process

    _, model = build_process(plan[0].process)
    assert sizes(plan[0].process)[1] == sum(v.numel() for v in model.init(__import__("torch").Generator()).values())


def test_fork_references_are_checked_without_listing_the_plan():
    from pathdep.spec import is_planned

    spec = parse_spec(tiny(**{"seeds.init": 4, "seeds.data": [3, 8], "variants": [{"name": "v", "seeds": {"init": [7]}}]}))
    names = {r.name for r in plan_runs(spec)}
    assert all(is_planned(spec, n) for n in names)
    for other in ["base-i4-d3", "base-i0-d0", "v-i0-d3", "v-i07-d3", "ghost-i0-d3", "base-i1-d3x", "base"]:
        assert other not in names and not is_planned(spec, other)
