"""Reproducibility and safety of the store: same bits, resume after SIGKILL, damage, locks."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tomli_w

from pathdep import Study
from pathdep.errors import CheckpointError, StoreError
from pathdep.store import read_checkpoint
from tests.helpers import file_hashes, tiny

SLOW = tiny(**{"name": "slow", "process.steps": 1500, "process.checkpoints": {"every": 100},
               "seeds.init": 8, "process.task_args.n_train": 512})


def _write_spec(path: Path, spec: dict) -> Path:
    path.write_text(tomli_w.dumps(spec))
    return path


def _cli(*args: str) -> subprocess.Popen:
    env = os.environ | {"PATHDEP_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "pathdep", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def test_same_spec_gives_identical_checkpoint_files(tmp_path):
    hashes = []
    for k in range(2):
        study = Study.from_dict(tiny(forks=[{"name": "f", "parent": "base-i0-d0", "step": 20, "data_seeds": [1]}]),
                                store=tmp_path / str(k))
        study.run()
        hashes.append(file_hashes(study.root))
    assert len(hashes[0]) == 3 * 4 + 3  # 3 runs x 4 checkpoints + the fork's 3
    assert hashes[0] == hashes[1]


@pytest.mark.slow
def test_sigkill_then_resume_gives_the_uninterrupted_result(tmp_path):
    spec = _write_spec(tmp_path / "slow.toml", SLOW)
    reference = tmp_path / "reference"
    assert _cli("run", str(spec), "--store", str(reference)).wait() == 0
    want = file_hashes(reference / "slow")

    store = tmp_path / "killed"
    manifest = store / "slow" / "runs" / "base-i7-d0" / "manifest.json"
    for kill_after in (0.0, 3, 9):  # right at start-up, then after some checkpoints
        proc = _cli("run", str(spec), "--store", str(store))
        deadline = time.time() + 120
        while time.time() < deadline:
            n = manifest.read_text().count('"step"') if manifest.is_file() else 0
            if n > kill_after or proc.poll() is not None:
                break
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert file_hashes(store / "slow") != want  # really interrupted
    assert _cli("run", str(spec), "--store", str(store)).wait() == 0
    assert file_hashes(store / "slow") == want


def test_damaged_checkpoint_is_named_and_resume_falls_back(tmp_path, caplog):
    study = Study.from_dict(tiny(), store=tmp_path)
    study.run()
    want = file_hashes(study.root)
    final = study.root / "runs" / "base-i2-d0" / "step_000060.safetensors"
    final.write_bytes(final.read_bytes()[:-100])  # truncated
    with pytest.raises(CheckpointError, match="step_000060.safetensors is damaged"):
        study.load("base-i2-d0", 60)
    with pytest.raises(CheckpointError, match="does not match its manifest"):
        read_checkpoint(final)
    middle = study.root / "runs" / "base-i1-d0" / "step_000040.safetensors"
    data = bytearray(middle.read_bytes())
    data[-5] ^= 0xFF  # one flipped bit
    middle.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="step_000040.safetensors is damaged"):
        study.load("base-i1-d0", 40)
    Study.from_dict(tiny(), store=tmp_path).run()  # retrains base-i2-d0 from 40, base-i1-d0 from 20
    assert "step_000060.safetensors is damaged" in caplog.text
    assert "Retraining run 'base-i1-d0' from step 20" in caplog.text
    assert file_hashes(study.root) == want  # both repaired bit for bit
    assert study.load("base-i1-d0", 40).keys() == study.load("base-i2-d0", 60).keys()


def test_rerunning_a_finished_study_trains_nothing(tmp_path):
    Study.from_dict(tiny(), store=tmp_path).run()
    mtimes = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file() and p.name != ".lock"}
    totals = []
    Study.from_dict(tiny(), store=tmp_path).run(progress=lambda label, done, total: totals.append(total))
    assert set(totals) == {0}
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes


def test_changed_spec_into_same_store_is_refused_and_nothing_changes(tmp_path):
    Study.from_dict(tiny(), store=tmp_path).run()
    before = file_hashes(tmp_path, "*")
    with pytest.raises(StoreError, match="different spec"):
        Study.from_dict(tiny(**{"process.optimizer.lr": 1e-2}), store=tmp_path).run()
    assert file_hashes(tmp_path, "*") == before


@pytest.mark.slow
def test_second_process_on_the_same_study_is_refused(tmp_path):
    spec = _write_spec(tmp_path / "slow.toml", SLOW)
    first = _cli("run", str(spec), "--store", str(tmp_path / "s"))
    lock = tmp_path / "s" / "slow" / "runs"
    deadline = time.time() + 60
    while not lock.exists() and time.time() < deadline:
        time.sleep(0.02)
    second = _cli("run", str(spec), "--store", str(tmp_path / "s"))
    out, err = second.communicate(timeout=120)
    first.kill()
    first.wait()
    assert second.returncode == 1
    assert "locked by another pathdep process" in err and "Traceback" not in err


def test_store_holds_only_safetensors_json_and_parquet(tmp_path):
    study = Study.from_dict(tiny(), store=tmp_path)
    study.run()
    import pandas as pd

    study.write_table("t", pd.DataFrame({"a": [1]}))
    suffixes = {p.suffix for p in tmp_path.rglob("*") if p.is_file() and p.name != ".lock"}
    assert suffixes == {".safetensors", ".json", ".parquet"}
    params, meta = read_checkpoint(study.root / "runs" / "base-i0-d0" / "step_000020.safetensors")
    assert meta["run"] == "base-i0-d0" and meta["step"] == "20" and meta["process"]["task"] == "two_features"
    assert set(params) == {"fc0.weight", "fc0.bias", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}
