"""Every malformed input to the command line: one line naming what is wrong, exit code 2, no
traceback, and not one byte of the store changed.

The table drives ``pathdep.cli.invoke`` (the boundary ``pathdep`` itself runs) in-process against
one small trained store shared by all cases; a few cases run the real ``pathdep`` process.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import tomli_w
import torch
from torch import nn

from pathdep.cli import _register, invoke
from pathdep.errors import SpecError, TrustError
from pathdep.names import valid_name
from pathdep.sources import Recorder
from pathdep.study import Study
from tests.helpers import tiny

_register()

TASK_ARGS = {"n_train": 256, "n_test": 128, "n_probe": 64}
SPEC = tiny(**{"process.steps": 20, "process.checkpoints.every": 10})


def make_net() -> nn.Module:
    """A module-level model factory for a recorded study."""
    return nn.Sequential(nn.Linear(11, 6), nn.Tanh(), nn.Linear(6, 1))


def other_net() -> nn.Module:
    return make_net()


FACTORY = f"{make_net.__module__}:make_net"
OTHER = f"{other_net.__module__}:other_net"


def spec(**changes) -> dict:
    out = json.loads(json.dumps(SPEC))
    for key, value in changes.items():
        cur = out
        *parents, last = key.split(".")
        for p in parents:
            cur = cur.setdefault(p, {})
        cur[last] = value
    return out


# (case id, spec changes, what the one line must contain): each is `pathdep run` of that spec
SPECS = [
    ("lr-negative", {"process.optimizer.lr": -1}, ["process.optimizer.lr", "-1", "greater than 0"]),
    ("lr-zero", {"process.optimizer.lr": 0.0}, ["process.optimizer.lr", "greater than 0"]),
    ("lr-1e300", {"process.optimizer.lr": 1e300}, ["process.optimizer.lr", "1e+300", "less than or equal to 10"]),
    ("lr-inf", {"process.optimizer.lr": float("inf")}, ["process.optimizer.lr", "inf", "finite"]),
    ("lr-nan", {"process.optimizer.lr": float("nan")}, ["process.optimizer.lr", "nan", "finite"]),
    ("lr-bool", {"process.optimizer.lr": True}, ["process.optimizer.lr", "True", "valid number"]),
    ("lr-text", {"process.optimizer.lr": "fast"}, ["process.optimizer.lr", "'fast'", "valid number"]),
    ("steps-zero", {"process.steps": 0}, ["process.steps", "0", "greater than 0"]),
    ("steps-negative", {"process.steps": -5}, ["process.steps", "-5", "greater than 0"]),
    ("steps-1e12", {"process.steps": 10**12}, ["process.steps", "1000000000000", "less than or equal to 10000000"]),
    ("steps-int64", {"process.steps": 2**63 - 1}, ["process.steps", "9223372036854775807", "less than or equal"]),
    ("steps-bool", {"process.steps": True}, ["process.steps", "True", "valid integer"]),
    ("steps-float", {"process.steps": 2.5}, ["process.steps", "2.5", "valid integer"]),
    ("steps-text", {"process.steps": "ten"}, ["process.steps", "'ten'", "valid integer"]),
    ("batch-zero", {"process.batch_size": 0}, ["process.batch_size", "0", "greater than 0"]),
    ("batch-bool", {"process.batch_size": True}, ["process.batch_size", "True", "valid integer"]),
    ("warmup-negative", {"process.warmup_steps": -1}, ["process.warmup_steps", "-1", "greater than or equal to 0"]),
    ("warmup-too-long", {"process.warmup_steps": 20}, ["process.warmup_steps", "20", "below steps (20)"]),
    ("every-zero", {"process.checkpoints.every": 0}, ["process.checkpoints.every", "0", "greater than 0"]),
    ("every-bool", {"process.checkpoints.every": True}, ["process.checkpoints.every", "True", "valid integer"]),
    ("ckpt-steps-negative", {"process.checkpoints.steps": [-1]}, ["process.checkpoints.steps", "-1", ">= 0"]),
    ("ckpt-steps-beyond", {"process.checkpoints.steps": [1000]}, ["process.checkpoints.steps", "1000", "at most the last step"]),
    ("ckpt-log-int", {"process.checkpoints.log": 1}, ["process.checkpoints.log", "1", "valid boolean"]),
    ("momentum-one", {"process.optimizer.momentum": 1.0}, ["process.optimizer.momentum", "1.0", "less than 1"]),
    ("betas-out", {"process.optimizer.betas": [1.0, 0.9]}, ["process.optimizer.betas", "[0, 1)"]),
    ("betas-bool", {"process.optimizer.betas": [0.9, True]}, ["process.optimizer.betas[1]", "True", "valid number"]),
    ("optimizer-name", {"process.optimizer.name": "rmsprop"}, ["process.optimizer.name", "'rmsprop'", "'sgd'"]),
    ("eps-zero", {"process.optimizer.eps": 0.0}, ["process.optimizer.eps", "greater than 0"]),
    ("weight-decay-negative", {"process.optimizer.weight_decay": -1.0}, ["process.optimizer.weight_decay", "-1.0"]),
    ("schedule", {"process.schedule": "linear"}, ["process.schedule", "'linear'", "'constant'"]),
    ("task", {"process.task": "nope"}, ["process.task", "'nope'", "unknown task"]),
    ("model", {"process.model": "nope"}, ["process.model", "'nope'", "unknown model"]),
    ("task-args", {"process.task_args.n_train": -1}, ["process.task_args.n_train", "-1"]),
    ("model-args", {"process.model_args.hidden": [0, 16]}, ["process.model_args.hidden", "[0, 16]"]),
    ("unknown-field", {"colour": "red"}, ["Unknown field 'colour'", "'red'"]),
    ("unknown-process-field", {"process.stepz": 3}, ["Unknown field 'process.stepz'", "3"]),
    ("seeds-zero", {"seeds.init": 0}, ["seeds.init", "0", ">= 1"]),
    ("seeds-negative", {"seeds.init": -1}, ["seeds.init", "-1", ">= 1"]),
    ("seeds-bool", {"seeds.init": True}, ["seeds.init", "True", "valid integer"]),
    ("seeds-repeat", {"seeds.init": [0, 0]}, ["seeds.init", "[0, 0]", "without repeats"]),
    ("seeds-empty", {"seeds.data": []}, ["seeds.data", "[]", "non-empty"]),
    ("seeds-negative-seed", {"seeds.data": [-1]}, ["seeds.data[0]", "-1", "greater than or equal to 0"]),
    ("seeds-bool-in-list", {"seeds.init": [0, True]}, ["seeds.init[1]", "True", "valid integer"]),
    ("seeds-million", {"seeds.init": 1_000_000}, ["would train 1e+06 runs", "limit of 1e+04", "--force"]),
    ("run-steps-limit", {"seeds.init": 9999, "process.steps": 10**6}, ["optimiser steps over all runs", "--force"]),
    ("work-limit", {"process.steps": 10**6, "process.model_args.hidden": [1, 4096, 4096],
                    "process.model_args.activations": ["identity", "relu", "relu"]},
     ["run-steps x batch x parameters", "limit of 1e+14", "--force"]),
    ("memory-limit", {"process.model_args.hidden": [1, 10**9]}, ["134 GiB of parameters and optimiser state", "16 GiB"]),
    ("task-args-bool", {"process.task_args.n_train": True}, ["process.task_args.n_train", "True", "not a boolean"]),
    ("task-args-inf", {"process.task_args.margin": float("inf")}, ["process.task_args.margin", "inf", "finite"]),
    ("model-args-bool", {"process.model_args.hidden": [True, 16]}, ["process.model_args.hidden[0]", "True", "not a boolean"]),
    ("name-long", {"name": "s" * 300}, ["'name'", "1-100", "sss..."]),
    ("name-escape", {"name": "../escaped"}, ["'name'", "'../escaped'", "letters, digits"]),
    ("name-hidden", {"name": ".hidden"}, ["'name'", "'.hidden'", "starting with a letter or digit"]),
    ("name-slash", {"name": "a/b"}, ["'name'", "'a/b'"]),
    ("name-empty", {"name": ""}, ["'name'", "''"]),
    ("variant-long", {"variants": [{"name": "v" * 300}]}, ["variants[0].name", "1-100"]),
    ("variant-escape", {"variants": [{"name": "../v"}]}, ["variants[0].name", "'../v'"]),
    ("variant-base", {"variants": [{"name": "base"}]}, ["variants[0].name", "unique", "'base'"]),
    ("variant-set-inf", {"variants": [{"name": "v", "set": {"optimizer.lr": float("inf")}}]},
     ["variants[0].set→process.optimizer.lr", "inf", "finite"]),
    ("variant-set-field", {"variants": [{"name": "v", "set": {"nosuch.field": 1}}]}, ["variants[0].set", "'nosuch.field'"]),
    ("fork-parent", {"forks": [{"name": "f", "parent": "ghost", "step": 10, "data_seeds": [1]}]},
     ["forks[0].parent", "'ghost'", "base-i0-d0"]),
    ("fork-step", {"forks": [{"name": "f", "parent": "base-i0-d0", "step": 7, "data_seeds": [1]}]},
     ["forks[0].step", "7", "[0, 10, 20]"]),
    ("fork-escape", {"forks": [{"name": "../f", "parent": "base-i0-d0", "step": 10, "data_seeds": [1]}]},
     ["forks[0].name", "'../f'"]),
    ("fork-lambdas", {"forks": [{"name": "f", "parent": "base-i0-d0", "step": 10, "data_seeds": [1], "lambdas": [0.5]}]},
     ["forks[0]", "'toward'"]),
    ("intervention-window", {"process.intervention": {"kind": "x", "start": 5, "end": 5}},
     ["process.intervention", "end > start"]),
    ("measure-cohort", {"measure.max_cohort": 1}, ["measure.max_cohort", "1", "greater than or equal to 2"]),
    ("measure-alpha", {"measure.n_alpha": 1}, ["measure.n_alpha", "1", "greater than or equal to 2"]),
    ("measure-steps", {"measure.steps": [-1]}, ["measure.steps[0]", "-1", "greater than or equal to 0"]),
]

# (case id, argv with {placeholders}, what the one line must contain)
ARGS = [
    # parser errors
    ("no-such-command", ["frobnicate"], ["No such command 'frobnicate'", "run", "measure"]),
    ("no-such-option", ["ls", "--bogus"], ["No such option: --bogus", "--store"]),
    ("workers-text", ["run", "{spec}", "--workers", "two"], ["'--workers'", "'two'", "valid integer"]),
    ("workers-negative", ["run", "{spec}", "--workers", "-1", "--store", "{store}"], ["'--workers'", "-1", "[0, 256]"]),
    ("workers-huge", ["run", "{spec}", "--workers", "100000", "--store", "{store}"], ["'--workers'", "100000"]),
    ("missing-seeds", ["import-suite", "pythia-14m-seeds", "--steps", "0"], ["Missing option '--seeds'"]),
    ("missing-steps", ["import-suite", "pythia-14m-seeds", "--seeds", "1"], ["Missing option '--steps'"]),
    ("run-no-spec", ["run"], ["Missing argument 'spec'"]),
    ("measure-no-study", ["measure"], ["Missing argument 'study'"]),
    ("report-no-study", ["report"], ["Missing argument 'study'"]),
    ("compare-no-args", ["compare"], ["Missing argument 'ckpt_a'"]),
    ("compare-one-arg", ["compare", "{ckpt}"], ["Missing argument 'ckpt_b'"]),
    ("n-alpha-text", ["measure", "tiny", "--store", "{store}", "--n-alpha", "x"], ["'--n-alpha'", "'x'"]),
    ("step-text", ["measure", "tiny", "--store", "{store}", "--step", "x"], ["'--step'", "'x'"]),
    ("cohort-float", ["measure", "tiny", "--store", "{store}", "--max-cohort", "1.5"], ["'--max-cohort'", "'1.5'"]),
    ("report-bogus", ["report", "tiny", "--bogus"], ["No such option: --bogus", "--out"]),
    ("seq-len-text", ["import-suite", "pythia-14m-seeds", "--seeds", "1", "--steps", "0", "--seq-len", "abc"],
     ["'--seq-len'", "'abc'"]),
    ("suites-extra", ["suites", "extra"], ["unexpected extra argument", "extra"]),
    ("ls-extra", ["ls", "tiny", "extra"], ["unexpected extra argument", "extra"]),
    ("demo-workers", ["demo", "--workers", "2"], ["No such option: --workers"]),
    ("ray-no-value", ["run", "{spec}", "--ray"], ["'--ray'", "requires an argument"]),
    # spec files that are not specs
    ("spec-missing", ["run", "{dir}/nope.toml", "--store", "{store}"], ["nope.toml", "does not exist"]),
    ("spec-directory", ["run", "{dir}", "--store", "{store}"], ["is a directory", "expected a TOML file"]),
    ("spec-binary", ["run", "{bin}", "--store", "{store}"], ["is not UTF-8 text", "expected a TOML file"]),
    ("spec-not-toml", ["run", "{file}", "--store", "{store}"], ["not valid TOML"]),
    ("spec-unreadable", ["run", "/proc/self/mem", "--store", "{store}"], ["'/proc/self/mem'", "cannot be read"]),
    ("spec-no-process", ["run", "{specs}/no-process.toml", "--store", "{store}"], ["'process'", "required"]),
    ("measure-spec-missing", ["measure", "{dir}/ghost.toml", "--store", "{store}"], ["ghost.toml", "does not exist"]),
    # --store
    ("ls-store-file", ["ls", "--store", "{file}"], ["'--store'", "{file}", "is a file"]),
    ("run-store-file", ["run", "{spec}", "--store", "{file}"], ["'--store'", "{file}", "a directory"]),
    ("measure-store-file", ["measure", "tiny", "--store", "{file}"], ["'--store'", "is a file"]),
    ("report-store-under-file", ["report", "tiny", "--store", "{file}/sub"], ["'--store'", "lies under the file"]),
    ("demo-store-file", ["demo", "--store", "{file}"], ["'--store'", "is a file"]),
    ("import-store-file", ["import-suite", "pythia-14m-seeds", "--seeds", "1", "--steps", "0", "--store", "{file}"],
     ["'--store'", "is a file"]),
    ("run-store-refused", ["run", "{spec}", "--store", "/sys/pathdep-store"], ["/sys/pathdep-store", "Cannot write"]),
    # study names
    ("ls-escape", ["ls", "../x", "--store", "{store}"], ["'STUDY'", "'../x'", "letters, digits"]),
    ("ls-hidden", ["ls", ".hidden", "--store", "{store}"], ["'STUDY'", "'.hidden'"]),
    ("ls-long", ["ls", "s" * 300, "--store", "{store}"], ["'STUDY'", "1-100"]),
    ("measure-escape", ["measure", "../tiny", "--store", "{store}"], ["'STUDY'", "'../tiny'"]),
    ("measure-slash", ["measure", "tiny/runs", "--store", "{store}"], ["'STUDY'", "'tiny/runs'"]),
    ("report-escape", ["report", "../../etc", "--store", "{store}"], ["'STUDY'", "'../../etc'"]),
    ("report-long", ["report", "r" * 300, "--store", "{store}"], ["'STUDY'", "1-100"]),
    # measure options
    ("step-not-checkpoint", ["measure", "tiny", "--store", "{store}", "--step", "7"], ["measure step 7", "0, 10, 20", "--step"]),
    ("step-negative", ["measure", "tiny", "--store", "{store}", "--step", "-1"], ["measure step -1", "0, 10, 20", "--step"]),
    ("step-beyond", ["measure", "tiny", "--store", "{store}", "--step", "0", "--step", "30"], ["measure step 30", "--step"]),
    ("cohort-negative", ["measure", "tiny", "--store", "{store}", "--max-cohort", "-3"], ["'--max-cohort'", "-3", ">= 2"]),
    ("cohort-one", ["measure", "tiny", "--store", "{store}", "--max-cohort", "1"], ["'--max-cohort'", "1", "0 for all runs"]),
    ("examples-negative", ["measure", "tiny", "--store", "{store}", "--max-examples", "-5"], ["'--max-examples'", "-5", ">= 1"]),
    ("n-alpha-one", ["measure", "tiny", "--store", "{store}", "--n-alpha", "1"], ["'--n-alpha'", "1", ">= 2"]),
    ("only-unknown", ["measure", "tiny", "--store", "{store}", "--only", "nosuch"], ["'--only'", "'nosuch'", "barriers"]),
    ("only-escape", ["measure", "tiny", "--store", "{store}", "--only", "../../x"], ["'--only'", "'../../x'"]),
    ("factory-shape", ["measure", "rec", "--store", "{store}", "--factory", "nocolon"], ["'--factory'", "'nocolon'"]),
    ("factory-missing", ["measure", "rec", "--store", "{store}", "--factory", "no_such_module_x:f"],
     ["'no_such_module_x:f'", "cannot be imported"]),
    ("factory-untrusted", ["measure", "rec", "--store", "{store}"], [FACTORY, "--factory", "does not import"]),
    ("factory-other", ["measure", "rec", "--store", "{store}", "--factory", OTHER], [FACTORY, "--factory"]),
    ("ls-store-under-file", ["ls", "--store", "{file}/s"], ["'--store'", "lies under the file"]),
    # report options
    ("out-file", ["report", "tiny", "--store", "{store}", "--out", "{file}"], ["'--out'", "{file}", "is a file"]),
    ("out-under-file", ["report", "tiny", "--store", "{store}", "--out", "{file}/r"], ["'--out'", "is a file"]),
    ("with-escape", ["report", "tiny", "--store", "{store}", "--with", "../x"], ["'--with'", "'../x'"]),
    ("with-empty", ["report", "tiny", "--store", "{store}", "--with", ""], ["'--with'", "''"]),
    # compare
    ("compare-dir", ["compare", "{dir}", "{ckpt}"], ["'CKPT_A'", "is a directory"]),
    ("compare-missing", ["compare", "{dir}/none.safetensors", "{ckpt}"], ["'CKPT_A'", "does not exist"]),
    ("compare-dir-b", ["compare", "{ckpt}", "{store}"], ["'CKPT_B'", "is a directory"]),
    ("compare-alpha", ["compare", "{ckpt}", "{ckpt}", "--n-alpha", "1"], ["'--n-alpha'", "1", ">= 2"]),
    # import-suite
    ("suite-unknown", ["import-suite", "nosuch", "--seeds", "1", "--steps", "0", "--store", "{store}"],
     ["'suite'", "'nosuch'", "pythia-14m-seeds"]),
    ("suite-seeds-text", ["import-suite", "pythia-14m-seeds", "--seeds", "x", "--steps", "0", "--store", "{store}"],
     ["'--seeds'", "'x'", "1,2,5-7"]),
    ("suite-seed-unknown", ["import-suite", "pythia-14m-seeds", "--seeds", "99999", "--steps", "0", "--store", "{store}"],
     ["no seed 99999"]),
    ("suite-step-unknown", ["import-suite", "pythia-14m-seeds", "--seeds", "1", "--steps", "7", "--store", "{store}"],
     ["no step 7"]),
    ("suite-study-escape", ["import-suite", "pythia-14m-seeds", "--seeds", "1", "--steps", "0", "--store", "{store}",
                            "--study", "../escaped_study"], ["'--study'", "'../escaped_study'"]),
    ("suite-study-hidden", ["import-suite", "pythia-14m-seeds", "--seeds", "1", "--steps", "0", "--store", "{store}",
                            "--study", ".x"], ["'--study'", "'.x'"]),
    ("suite-study-long", ["import-suite", "pythia-14m-seeds", "--seeds", "1", "--steps", "0", "--store", "{store}",
                          "--study", "p" * 300], ["'--study'", "1-100"]),
    ("suite-text-missing", ["import-suite", "pythia-14m-seeds", "--seeds", "1", "--steps", "0", "--store", "{store}",
                            "--text", "{dir}/missing.txt"], ["'--text'", "missing.txt", "does not exist"]),
    ("suite-text-dir", ["import-suite", "pythia-14m-seeds", "--seeds", "1", "--steps", "0", "--store", "{store}",
                        "--text", "{dir}"], ["'--text'", "is a directory"]),
    ("suite-text-binary", ["import-suite", "pythia-14m-seeds", "--seeds", "1", "--steps", "0", "--store", "{store}",
                           "--text", "{bin}", "--offline"], ["'--text'", "UTF-8"]),
    ("suite-seq-len", ["import-suite", "pythia-14m-seeds", "--seeds", "1", "--steps", "0", "--seq-len", "0"],
     ["'--seq-len'", "0", ">= 2"]),
    ("suite-cache-file", ["import-suite", "pythia-14m-seeds", "--seeds", "1", "--steps", "0", "--cache-dir", "{file}"],
     ["'--cache-dir'", "is a file"]),
    # --ray
    ("ray-unresolvable", ["run", "{spec}", "--store", "{store}", "--ray", "no.such.host.invalid:1"],
     ["'--ray'", "no.such.host.invalid:1", "cannot be resolved"]),
    ("ray-refused", ["run", "{spec}", "--store", "{store}", "--ray", "127.0.0.1:1"], ["'--ray'", "127.0.0.1:1", "connecting failed"]),
    ("ray-port", ["run", "{spec}", "--store", "{store}", "--ray", "host:99999"], ["'--ray'", "'host:99999'", "1..65535"]),
    ("ray-shape", ["run", "{spec}", "--store", "{store}", "--ray", "cluster"], ["'--ray'", "'cluster'", "HOST:PORT"]),
]

# a real `pathdep` process (the script's own boundary) whose Ray client finds no cluster
PROCESSES = [
    ("process-ray-auto", ["run", "{spec}", "--store", "{store}", "--ray", "auto"], ["'--ray'", "'auto'", "Ray"]),
]


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, Path]:
    """A store with a trained study ('tiny') and a recorded one whose model is a factory ('rec'),
    and the files the cases point at."""
    root = tmp_path_factory.mktemp("bad")
    store, specs, work = root / "store", root / "specs", root / "work"
    specs.mkdir()
    work.mkdir()
    (specs / "tiny.toml").write_text(tomli_w.dumps(SPEC))
    Study.from_toml(specs / "tiny.toml", store).run()
    rec = Recorder(store, "rec", task="two_features", task_args=TASK_ARGS, model=make_net, hooks=("1",))
    gen = torch.Generator().manual_seed(0)
    for run in ("seed0", "seed1"):
        net = make_net()
        for p in net.parameters():
            p.data = torch.randn(p.shape, generator=gen)
        rec.save(run, 0, net)
    for name, changes, _ in SPECS:
        (specs / f"{name}.toml").write_text(tomli_w.dumps(spec(**changes)))
    no_process = spec()
    del no_process["process"]
    (specs / "no-process.toml").write_text(tomli_w.dumps(no_process))
    (work / "notes.txt").write_text("not a spec = = =\n")
    (work / "blob.bin").write_bytes(bytes(range(256)) * 4)
    (work / "empty").mkdir()
    return {"store": store, "specs": specs, "spec": specs / "tiny.toml", "file": work / "notes.txt",
            "bin": work / "blob.bin", "dir": work / "empty",
            "ckpt": store / "tiny" / "runs" / "base-i0-d0" / "step_000010.safetensors", "root": root}


def tree(root: Path) -> dict[str, str]:
    """{path: sha256} of every file below ``root`` (the store's whole state)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def fill(args: list[str], env: dict[str, Path]) -> list[str]:
    return [a.format(**{k: str(v) for k, v in env.items()}) for a in args]


def check_one_line(code: int, out: str, err: str, must: list[str]) -> None:
    lines = err.strip().splitlines()
    assert code == 2, (code, out, err)
    assert "Traceback" not in out + err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for part in must:
        assert part in lines[0], (part, lines[0])


ALL = [(n, ["run", f"{{specs}}/{n}.toml", "--store", "{store}"], m) for n, _, m in SPECS] + ARGS


def test_the_table_covers_every_command_and_enough_inputs():
    commands = {args[0] for _, args, _ in ALL + PROCESSES}
    assert {"run", "ls", "demo", "measure", "compare", "report", "import-suite", "suites"} <= commands
    assert len(ALL) + len(PROCESSES) >= 100
    assert len({n for n, _, _ in ALL + PROCESSES}) == len(ALL) + len(PROCESSES)


@pytest.mark.parametrize("name,args,must", ALL, ids=[n for n, _, _ in ALL])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(env, capsys, name, args, must):
    before = tree(env["root"])
    code = invoke(fill(args, env))
    out, err = capsys.readouterr()
    check_one_line(code, out, err, fill(must, env))
    assert tree(env["root"]) == before
    assert not (env["root"] / "escaped_study").exists()


@pytest.mark.parametrize("name,args,must", PROCESSES, ids=[n for n, _, _ in PROCESSES])
def test_bad_input_to_the_pathdep_process(env, name, args, must):
    before = tree(env["root"])
    done = subprocess.run([sys.executable, "-m", "pathdep", *fill(args, env)], capture_output=True, text=True, timeout=120)
    check_one_line(done.returncode, done.stdout, done.stderr, fill(must, env))
    assert tree(env["root"]) == before


@pytest.mark.parametrize("code", ["ENOSPC", "EROFS", "EACCES", "EDQUOT"])
@pytest.mark.parametrize("command", ["run", "measure", "report"])
def test_a_refused_write_is_one_line_naming_the_file(env, tmp_path, capsys, monkeypatch, command, code):
    """The operating system's refusals (a full disk, a read-only or foreign store) at the CLI boundary.

    As root, permissions do not stop writes; the refusal is raised where every write of the store
    and the report goes (``write_atomic``), as the kernel would report it. A real refusal for root is the
    ``run-store-refused`` case of the table (/sys).
    """
    import errno
    import os

    from pathdep import store as st

    def refuse(path, data):
        raise OSError(getattr(errno, code), os.strerror(getattr(errno, code)), str(path))

    import pathdep.report

    monkeypatch.setattr(st, "write_atomic", refuse)
    monkeypatch.setattr(pathdep.report, "write_atomic", refuse)
    store = tmp_path / "s"
    args = {"run": ["run", str(env["spec"]), "--store", str(store)],
            "measure": ["measure", "tiny", "--store", str(env["store"]), "--only", "properties"],
            "report": ["report", "tiny", "--store", str(env["store"]), "--out", str(tmp_path / "r")]}[command]
    before = tree(env["root"])
    result = invoke(args)
    out, err = capsys.readouterr()
    check_one_line(result, out, err, ["Cannot write or read", code, "--store"])
    assert tree(env["root"]) == before


def test_import_suite_study_cannot_escape_the_store(env, tmp_path):
    """The library refuses the name before it loads anything (no network needed)."""
    from pathdep.sources import import_suite

    with pytest.raises(SpecError, match="'study'"):
        import_suite("pythia-14m-seeds", [1], [0], tmp_path / "s", study="../escaped_study")
    with pytest.raises(SpecError, match="'study'"):
        Recorder(tmp_path / "s", "../escaped", task="two_features", model="mlp")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value", ["", ".", "..", "../x", "a/b", "a\\b", ".hidden", "-flag", "x" * 101, "a b", "é", None, 3])
def test_names_that_cannot_become_paths(value):
    with pytest.raises(SpecError, match="'study'"):
        valid_name("study", value)


@pytest.mark.parametrize("value", ["a", "seeds-8", "pythia-14m.v2", "A_b+c", "9" * 100])
def test_names_that_can(value):
    assert valid_name("study", value) == value


def test_a_store_named_factory_is_refused_and_a_passed_one_builds_the_model(env):
    study = Study.open(env["store"], "rec")
    with pytest.raises(TrustError, match=f"{FACTORY}.*--factory"):
        study.model()
    trusted = Study.open(env["store"], "rec", factories={FACTORY: make_net})
    assert trusted.model().hook_names == ("1", "logits")


def test_a_tampered_study_json_imports_nothing(env, tmp_path, capsys):
    """study.json naming 'this:d' (a module that prints on import) is refused; 'this' is never imported."""
    import shutil

    store = tmp_path / "s"
    shutil.copytree(env["store"] / "rec", store / "rec")
    meta_path = store / "rec" / "study.json"
    meta = json.loads(meta_path.read_text())
    meta["model"]["factory"] = "this:d"
    meta_path.write_text(json.dumps(meta))
    sys.modules.pop("this", None)
    code = invoke(["measure", "rec", "--store", str(store)])
    out, err = capsys.readouterr()
    check_one_line(code, out, err, ["'this:d'", "--factory this:d"])
    assert "Beautiful is better" not in out + err and "this" not in sys.modules


def test_an_explicit_factory_measures_the_recorded_study(env, tmp_path, capsys):
    import shutil

    store = tmp_path / "s"
    shutil.copytree(env["store"] / "rec", store / "rec")
    code = invoke(["measure", "rec", "--store", str(store), "--only", "properties", "--factory", FACTORY])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    from pathdep.store import read_table

    assert not read_table(store, "rec", "properties").empty  # committed and readable


def test_force_trains_a_spec_above_the_limits(tmp_path, capsys):
    """The limit is the only thing --force changes: the same spec is refused without it."""
    from pathdep import cost

    small = spec(**{"seeds.init": 2})
    path = tmp_path / "s.toml"
    path.write_text(tomli_w.dumps(small))
    limits = dict(cost.LIMITS)
    try:
        cost.LIMITS["runs"] = 1
        assert invoke(["run", str(path), "--store", str(tmp_path / "st")]) == 2
        assert "limit of 1" in capsys.readouterr().err
        assert not (tmp_path / "st").exists()
        assert invoke(["run", str(path), "--store", str(tmp_path / "st"), "--force"]) == 0
    finally:
        cost.LIMITS.update(limits)
    assert Study.open(tmp_path / "st", "tiny").steps("base-i1-d0") == [0, 10, 20]
