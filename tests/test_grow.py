"""Growing a study: a changed spec keeps unchanged runs, trains only what is new, continues runs
whose steps grew exactly, and refuses (nothing written) to change stored runs."""

import json
import subprocess
import sys

import pytest
import torch
import tomli_w
from typer.testing import CliRunner

from pathdep import Study
from pathdep.cli import _register, app
from pathdep.errors import ChangedRunsError, SpecError
from pathdep.measure import measure_study
from pathdep.measure.study import MeasureOptions
from pathdep.spec import continues_exactly, parse_spec, plan_runs, run_hashes
from pathdep.store import checkpoint_name, decode_checkpoint, run_dir
from pathdep.train.optim import lr_at
from tests.helpers import file_hashes, tiny

_register()
runner = CliRunner()


def small(**changes) -> dict:
    """Two runs of 20 steps, checkpoints every 10 (tiny() with dotted changes on top)."""
    return tiny(**{"process.steps": 20, "process.checkpoints.every": 10, "seeds.init": 2, **changes})


def train(spec: dict, store, replace: bool = False) -> tuple[Study, int]:
    """Train ``spec`` into ``store``; returns the study and the run-steps it trained."""
    study = Study.from_dict(spec, store=store)
    totals = []
    study.run(progress=lambda label, done, total: totals.append(total), replace=replace)
    return study, totals[-1]


def run_files(store, study="tiny") -> dict[str, str]:
    return file_hashes(store / study / "runs", "*")


def tensors(study: Study, run: str, step: int) -> dict[str, torch.Tensor]:
    params, optim, log = decode_checkpoint(study._files(run).read(step))
    return {**{f"p/{k}": v for k, v in params.items()}, **{f"o/{k}": v for k, v in optim.items()}, "log": log}


def assert_same_bits(a: Study, b: Study, run: str, steps) -> None:
    for step in steps:
        ta, tb = tensors(a, run, step), tensors(b, run, step)
        assert ta.keys() == tb.keys()
        for k in ta:
            assert torch.equal(ta[k], tb[k]), (run, step, k)


def test_run_hash_leaves_defaults_and_names_out_and_follows_the_parent():
    spec = small(forks=[{"name": "k10", "parent": "base-i0-d0", "step": 10, "data_seeds": [1]}])
    hashes = run_hashes(plan_runs(parse_spec(spec)))
    assert len(set(hashes.values())) == len(hashes) == 3
    same = run_hashes(plan_runs(parse_spec(small(**{"process.schedule": "constant"}, forks=spec["forks"]))))
    assert same == hashes  # a default written out changes nothing
    renamed = small(forks=[{**spec["forks"][0], "name": "branch"}])
    assert run_hashes(plan_runs(parse_spec(renamed)))["branch-d1"] == hashes["k10-d1"]  # a name is no bit
    faster = run_hashes(plan_runs(parse_spec(small(**{"process.optimizer.lr": 1e-2}, forks=spec["forks"]))))
    assert all(faster[r] != hashes[r] for r in hashes)  # the fork child follows its parent's change
    longer = run_hashes(plan_runs(parse_spec(small(**{"process.steps": 40}, forks=spec["forks"]))))
    assert all(longer[r] != hashes[r] for r in hashes)  # a run's own length is part of its definition


def test_only_a_schedule_that_ignores_the_total_steps_continues_exactly():
    for schedule, exact in (("constant", True), ("cosine", False)):
        short, long = (parse_spec(small(**{"process.schedule": schedule, "process.warmup_steps": 3,
                                           "process.steps": n})).process for n in (20, 40))
        assert continues_exactly(short) is continues_exactly(long) is exact
        same = all(lr_at(short, step) == lr_at(long, step) for step in range(20))
        assert same is exact  # the learning rate of the first 20 steps is the same whatever the length


def test_more_init_seeds_train_only_the_new_runs_and_keep_the_old_files(tmp_path):
    train(small(**{"seeds.init": 4}), tmp_path)
    old = measure_study(Study.from_dict(small(**{"seeds.init": 4}), store=tmp_path), which=["properties"])
    before, tables = run_files(tmp_path), file_hashes(tmp_path / "tiny" / "tables", "*")
    study = Study.from_dict(small(**{"seeds.init": 6}), store=tmp_path)
    growth = study.growth()
    assert growth.kept == ("base-i0-d0", "base-i1-d0", "base-i2-d0", "base-i3-d0")
    assert growth.added == ("base-i4-d0", "base-i5-d0") and not growth.continued and not growth.replaced
    assert any(line.startswith("kept 4 stored run(s)") for line in growth.lines())
    study, trained = train(small(**{"seeds.init": 6}), tmp_path)
    assert trained == 2 * 20
    after = run_files(tmp_path)
    assert {k: after[k] for k in before} == before  # every old file byte-identical
    assert {k.split("/")[0] for k in after.keys() - before.keys()} == {"base-i4-d0", "base-i5-d0"}
    assert file_hashes(tmp_path / "tiny" / "tables", "*") == tables  # measurements are left as they were
    assert len(old["properties"]) > 0
    fresh, _ = train(small(**{"seeds.init": 6}), tmp_path / "fresh")  # the new runs are what one study of 6 holds
    assert_same_bits(study, fresh, "base-i5-d0", [0, 10, 20])


def test_adding_a_variant_and_a_fork_trains_only_those(tmp_path):
    train(small(), tmp_path)
    before = run_files(tmp_path)
    grown = small(variants=[{"name": "fast", "set": {"optimizer.lr": 1e-2}}],
                  forks=[{"name": "k10", "parent": "base-i1-d0", "step": 10, "data_seeds": [3]}])
    study, trained = train(grown, tmp_path)
    assert trained == 2 * 20 + 10  # two variant runs from init, one fork child from step 10
    after = run_files(tmp_path)
    assert {k: after[k] for k in before} == before
    assert {k.split("/")[0] for k in after.keys() - before.keys()} == {"fast-i0-d0", "fast-i1-d0", "k10-d3"}
    fresh, _ = train(grown, tmp_path / "fresh")
    assert_same_bits(study, fresh, "k10-d3", [10, 20])
    assert_same_bits(study, fresh, "fast-i1-d0", [20])


def test_grown_steps_continue_to_the_bits_of_a_run_trained_that_long(tmp_path):
    fork = [{"name": "k50", "parent": "base-i0-d0", "step": 50, "data_seeds": [1]}]
    spec = lambda steps: small(**{"process.steps": steps, "process.checkpoints.every": 50}, forks=fork)  # noqa: E731
    train(spec(100), tmp_path)
    before = run_files(tmp_path)
    study = Study.from_dict(spec(200), store=tmp_path)
    assert study.growth().continued == {"base-i0-d0": (100, 200), "base-i1-d0": (100, 200), "k50-d1": (100, 200)}
    study, trained = train(spec(200), tmp_path)
    assert trained == 3 * 100  # only the new steps
    after = run_files(tmp_path)
    checkpoints = {k: v for k, v in before.items() if k.endswith(".safetensors")}
    assert {k: after[k] for k in checkpoints} == checkpoints  # the first 100 steps are not rewritten
    fresh, _ = train(spec(200), tmp_path / "fresh")
    for run in ("base-i0-d0", "base-i1-d0", "k50-d1"):
        assert study.steps(run) == fresh.steps(run)
        assert_same_bits(study, fresh, run, study.steps(run))
        last = checkpoint_name(200)
        mine, theirs = run_dir(tmp_path, "tiny", run) / last, run_dir(fresh.store, "tiny", run) / last
        assert mine.read_bytes() == theirs.read_bytes()
    assert study.runs().set_index("run")["run_hash"].to_dict() == fresh.runs().set_index("run")["run_hash"].to_dict()


def test_grown_steps_under_a_cosine_schedule_are_refused_then_replaced(tmp_path):
    cosine = {"process.schedule": "cosine"}
    train(small(**cosine), tmp_path)
    before = file_hashes(tmp_path, "*")
    with pytest.raises(ChangedRunsError) as err:
        train(small(**cosine, **{"process.steps": 40}), tmp_path)
    assert "process.steps: 20 -> 40 (base-i0-d0, base-i1-d0)" in str(err.value)
    assert "schedule spans the total steps" in str(err.value) and err.value.exit_code == 2
    assert file_hashes(tmp_path, "*") == before
    study, trained = train(small(**cosine, **{"process.steps": 40}), tmp_path, replace=True)
    assert trained == 2 * 40  # retrained from scratch
    fresh, _ = train(small(**cosine, **{"process.steps": 40}), tmp_path / "fresh")
    assert study.steps("base-i0-d0") == [0, 10, 20, 30, 40]
    assert_same_bits(study, fresh, "base-i0-d0", [0, 20, 40])


def test_a_changed_lr_is_refused_naming_the_field_and_nothing_is_written(tmp_path):
    forks = [{"name": "k10", "parent": "base-i0-d0", "step": 10, "data_seeds": [1]}]
    train(small(forks=forks), tmp_path)
    before = file_hashes(tmp_path, "*")
    changed = small(**{"process.optimizer.lr": 1e-2, "seeds.init": 3}, forks=forks)
    with pytest.raises(ChangedRunsError) as err:
        train(changed, tmp_path)
    msg = str(err.value)
    assert "process.optimizer.lr: 0.003 -> 0.01 (base-i0-d0, base-i1-d0, k10-d1)" in msg
    assert "fork.parent.process.optimizer.lr: 0.003 -> 0.01 (k10-d1)" in msg
    assert "--replace" in msg and "\n" not in msg and err.value.exit_code == 2
    assert file_hashes(tmp_path, "*") == before  # not even the new run base-i2-d0 was started
    study, trained = train(changed, tmp_path, replace=True)
    assert trained == 3 * 20 + 10
    fresh, _ = train(changed, tmp_path / "fresh")
    for run in ("base-i0-d0", "k10-d1"):
        assert_same_bits(study, fresh, run, [20])


def test_runs_left_out_of_the_spec_stay_on_disk_outside_the_study(tmp_path):
    train(small(**{"seeds.init": 3}), tmp_path)
    before = run_files(tmp_path)
    study = Study.from_dict(small(), store=tmp_path)
    assert study.growth().retired == ("base-i2-d0",)
    assert "no longer in the spec" in study.growth().lines()[-1]
    study, trained = train(small(), tmp_path)
    assert trained == 0 and list(study.runs()["run"]) == ["base-i0-d0", "base-i1-d0"]
    assert run_files(tmp_path) == before  # nothing deleted
    again, trained = train(small(**{"seeds.init": 3}), tmp_path)  # brought back: its definition is unchanged
    assert trained == 0 and again.growth().kept == ("base-i0-d0", "base-i1-d0", "base-i2-d0")


def test_cli_run_twice_with_an_edited_spec_prints_what_was_kept_and_added(tmp_path):
    path, store = tmp_path / "tiny.toml", tmp_path / "s"
    path.write_text(tomli_w.dumps(small()))
    assert runner.invoke(app, ["run", str(path), "--store", str(store)]).exit_code == 0
    path.write_text(tomli_w.dumps(small(**{"seeds.init": 3})))
    again = runner.invoke(app, ["run", str(path), "--store", str(store)])
    assert again.exit_code == 0, again.output
    assert "kept 2 stored run(s)" in again.output and "adding 1 new run(s): base-i2-d0" in again.output
    before = file_hashes(store, "*")
    path.write_text(tomli_w.dumps(small(**{"seeds.init": 3, "process.optimizer.lr": 1e-2})))
    refused = subprocess.run([sys.executable, "-m", "pathdep", "run", str(path), "--store", str(store)],
                             capture_output=True, text=True)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "process.optimizer.lr: 0.003 -> 0.01" in refused.stderr and refused.stdout == ""
    assert file_hashes(store, "*") == before


def test_records_without_definitions_grow_by_the_spec_they_were_trained_from(tmp_path):
    train(small(), tmp_path)
    for record in (tmp_path / "tiny" / "runs").glob("*/record.json"):  # as written before definitions existed
        data = json.loads(record.read_text())
        del data["definition"]
        record.write_text(json.dumps(data))
    study = Study.from_dict(small(**{"seeds.init": 3}), store=tmp_path)
    assert study.growth().kept == ("base-i0-d0", "base-i1-d0") and study.growth().added == ("base-i2-d0",)
    with pytest.raises(ChangedRunsError, match=r"process.optimizer.lr: 0.003 -> 0.01 \(base-i0-d0, base-i1-d0\)"):
        Study.from_dict(small(**{"process.optimizer.lr": 1e-2}), store=tmp_path).growth()


class _Stop(Exception):
    pass


def _interrupt_after(n: int):
    def progress(label, done, total):
        if done >= n:
            raise _Stop
    return progress


@pytest.fixture(scope="module")
def partly_trained(tmp_path_factory):
    """base-i0/i1 finished (40 steps), base-i2 stopped after step 25 (checkpoints 0, 10, 20)."""
    store = tmp_path_factory.mktemp("partly")
    spec = small(**{"process.steps": 40})
    train(spec, store)
    study = Study.from_dict(small(**{"process.steps": 40, "seeds.init": 3}), store=store)
    with pytest.raises(_Stop):
        study.run(progress=_interrupt_after(25))
    assert study.steps("base-i2-d0") == [0, 10, 20]
    return study


def test_measure_steps_of_unfinished_runs_measures_what_they_have(partly_trained, caplog):
    study = partly_trained
    with caplog.at_level("WARNING", logger="pathdep"):
        tables = measure_study(study, which=["properties", "behaviour_pairs", "cka", "barriers"],
                               options=MeasureOptions(n_alpha=3, steps=(0, 20, 30)))
    props = tables["properties"]
    assert sorted(set(props.loc[props.run == "base-i2-d0", "step"])) == [0, 20]
    assert sorted(set(props.loc[props.run == "base-i0-d0", "step"])) == [0, 20, 30, 40]  # and its final step
    want = study.task.properties(study.model("base-i2-d0"), study.load_population(["base-i2-d0"], 20))
    got = props[(props.run == "base-i2-d0") & (props.step == 20)].set_index("name")["value"]
    assert all(got[k] == pytest.approx(float(v[0]), abs=1e-12) for k, v in want.items())
    pairs = tables["behaviour_pairs"]
    same_step = pairs[(pairs.step_a == 20) & (pairs.step_b == 20)]
    assert {"base-i2-d0"} <= set(same_step.run_a) | set(same_step.run_b)  # compared with others at step 20
    within = pairs[pairs.run_a == pairs.run_b]
    assert "base-i2-d0" not in set(within.run_a) and set(within.step_b) == {40}  # no final step to compare to
    cka = tables["cka"]
    assert "base-i2-d0" not in set(cka.run_a) | set(cka.run_b)  # CKA is against the final step
    assert set(tables["barriers"].run_a) | set(tables["barriers"].run_b) == {"base-i0-d0", "base-i1-d0"}
    assert "'base-i2-d0' is not finished (last checkpoint 20 of 40); it lacks step(s) [30]" in caplog.text


def test_measure_without_steps_leaves_unfinished_runs_out_with_a_note(partly_trained, caplog):
    with caplog.at_level("WARNING", logger="pathdep"):
        tables = measure_study(partly_trained, which=["properties"])
    assert set(tables["properties"].run) == {"base-i0-d0", "base-i1-d0"}
    assert "'base-i2-d0' is not finished" in caplog.text and "with --step" in caplog.text


def test_measure_a_step_that_is_no_checkpoint_is_a_clear_error(partly_trained):
    before = file_hashes(partly_trained.root, "*")
    for step in (7, -1, 50):
        with pytest.raises(SpecError, match=rf"measure step {step} is not a checkpoint step of study 'tiny': "
                                            r"expected one of 0, 10, 20, 30, 40 \(--step"):
            measure_study(partly_trained, options=MeasureOptions(steps=(0, step)))
    assert file_hashes(partly_trained.root, "*") == before
    done = runner.invoke(app, ["measure", "tiny", "--store", str(partly_trained.store), "--step", "7"])
    assert isinstance(done.exception, SpecError) and "measure step 7" in str(done.exception)
