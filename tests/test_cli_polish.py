"""The command line's small courtesies: --version and -h, help as written, ls without nan, Ctrl-C, the
run summary's words, and a finished study rerun."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from importlib.metadata import version

import tomli_w
from typer.testing import CliRunner

from pathdep.cli import _register, app
from tests.helpers import tiny

_register()
runner = CliRunner()
WIDE = {"COLUMNS": "200"}


def _spec(tmp_path, spec: dict, name: str = "spec.toml"):
    path = tmp_path / name
    path.write_text(tomli_w.dumps(spec))
    return path


def test_version_and_short_help():
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.output.strip() == f"pathdep {version('pathdep')}"
    for args in (["-h"], ["run", "-h"], ["measure", "-h"]):
        res = runner.invoke(app, args, env=WIDE)
        assert res.exit_code == 0 and "Usage: pathdep" in res.output, args
    assert "--version" in runner.invoke(app, ["-h"], env=WIDE).output


def _commands():
    import typer.main

    group = typer.main.get_command(app)
    return group, group.commands


def test_every_command_help_shows_its_brackets_and_no_bool_type():
    _, commands = _commands()
    for name, cmd in commands.items():
        res = runner.invoke(app, [name, "--help"], env=WIDE)
        assert res.exit_code == 0, name
        out = " ".join(res.output.split())
        assert "<bool>" not in out, name
        written = " ".join([cmd.help or ""] + [getattr(p, "help", None) or "" for p in cmd.params])
        for bracket in re.findall(r"\[[a-z_.]+\]", written.replace("\\[", "[")):
            assert bracket in out, (name, bracket)
    measure = " ".join(runner.invoke(app, ["measure", "--help"], env=WIDE).output.split())
    assert "from the spec's [measure] section" in measure
    run = " ".join(runner.invoke(app, ["run", "--help"], env=WIDE).output.split())
    assert re.search(r"--replace\s+retrain stored runs", run)  # a flag: no value type between


def test_ls_shows_no_nan_for_runs_without_a_fork(tmp_path):
    spec = tiny(**{"process.steps": 20, "process.checkpoints": {"every": 10},
                   "forks": [{"name": "k10", "parent": "base-i0-d0", "step": 10, "data_seeds": [5]}]})
    store = tmp_path / "s"
    assert runner.invoke(app, ["run", str(_spec(tmp_path, spec)), "--store", str(store)]).exit_code == 0
    res = runner.invoke(app, ["ls", "tiny", "--store", str(store)], env=WIDE)
    assert res.exit_code == 0, res.output
    assert not re.search(r"│\s*nan\s*│", res.output)
    rows = {line.split("│")[1].strip(): line for line in res.output.splitlines() if line.startswith("│")}
    assert "—" in rows["base-i1-d0"] and "k10" in rows["k10-d5"]


def test_a_finished_study_rerun_says_nothing_to_do_and_ls_keeps_the_summary(tmp_path):
    spec, store = _spec(tmp_path, tiny(**{"process.steps": 20})), tmp_path / "s"
    first = runner.invoke(app, ["run", str(spec), "--store", str(store)], env=WIDE)
    assert first.exit_code == 0 and "per variant" in first.output
    again = runner.invoke(app, ["run", str(spec), "--store", str(store)], env=WIDE)
    assert again.exit_code == 0, again.output
    assert "nothing to do: all 3 runs finished" in again.output
    assert "per variant" not in again.output and "training" not in again.output  # no summary built
    listing = runner.invoke(app, ["ls", "tiny", "--store", str(store)], env=WIDE)
    assert "final reliance, the solution type" in " ".join(listing.output.split())
    grown = runner.invoke(app, ["run", str(_spec(tmp_path, tiny(**{"process.steps": 20, "seeds.init": 4}), "b.toml")),
                                "--store", str(store)], env=WIDE)
    assert grown.exit_code == 0 and "nothing to do" not in grown.output and "per variant" in grown.output


def test_the_summary_names_solution_types_only_for_a_task_that_declares_two(tmp_path):
    two = runner.invoke(app, ["run", str(_spec(tmp_path, tiny(**{"process.steps": 20}))), "--store",
                              str(tmp_path / "a")], env=WIDE)
    assert two.exit_code == 0, two.output
    assert "the solution type (low: the XOR solution, high: the linear solution)" in " ".join(two.output.split())
    assert "<.2|mid|>.8" in two.output
    digits = {"name": "dig", "seeds": {"init": 2},
              "process": {"task": "digits", "model": "mlp", "model_args": {"hidden": [8]}, "steps": 10,
                          "batch_size": 32}}
    one = runner.invoke(app, ["run", str(_spec(tmp_path, digits, "d.toml")), "--store", str(tmp_path / "b")], env=WIDE)
    assert one.exit_code == 0, one.output
    assert "final noisy_acc per variant" in " ".join(one.output.split())
    assert "solution type" not in one.output and "<.2|mid|>.8" not in one.output


def test_ctrl_c_during_run_says_that_a_rerun_resumes(tmp_path):
    spec = _spec(tmp_path, tiny(**{"process.steps": 200_000, "process.checkpoints": {"every": 50}}))
    store = tmp_path / "s"
    args = [sys.executable, "-m", "pathdep", "run", str(spec), "--store", str(store)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=os.environ | {"COLUMNS": "200"})
    deadline = time.monotonic() + 60
    while not list(store.glob("tiny/runs/*/manifest.json")) and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert f"interrupted; `pathdep run {spec} --store {store}` resumes from the last checkpoint" in err
    assert "Traceback" not in err
