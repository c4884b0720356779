"""A recorded study measured on the user's own probe sets, and overlap with declared training data."""

import json
import logging

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn
from torch.utils.data import TensorDataset

from pathdep import Study
from pathdep.errors import PathdepError, StoreError
from pathdep.measure import measure_study
from pathdep.measure.study import MeasureOptions
from pathdep.sources import Recorder
from pathdep.sources.probes import example_hashes

TASK_ARGS = {"n_train": 64, "n_test": 32, "n_probe": 32}
ARGS = dict(task="two_features", task_args=TASK_ARGS, model="mlp", model_args={"hidden": [4]}, keys="order")


def _net(seed: int) -> nn.Sequential:
    torch.manual_seed(seed)  # the user's loop, not library code
    return nn.Sequential(nn.Linear(11, 4), nn.ReLU(), nn.Linear(4, 1))


def _user_data(seed: int, n: int):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 11, generator=g), torch.randint(0, 2, (n,), generator=g).float()


@pytest.fixture()
def probe_files(tmp_path):
    x, y = _user_data(2, 9)
    save_file({"x": x, "y": y}, str(tmp_path / "ood.safetensors"))
    xe, ye = _user_data(3, 7)
    np.savez(tmp_path / "extra.npz", x=xe.numpy(), y=ye.numpy())
    return {"ood": (x, y), "extra": (xe, ye)}


def test_recorded_study_is_measured_on_exactly_the_users_examples(tmp_path, probe_files, caplog):
    test = _user_data(1, 23)
    probes = {"test": test, "ood": TensorDataset(*probe_files["ood"]), "extra": tmp_path / "extra.npz"}
    with caplog.at_level(logging.WARNING, logger="pathdep"):
        rec = Recorder(tmp_path / "s", "mine", probes=probes, train_data=_user_data(0, 50), **ARGS)
    assert not [r for r in caplog.records if "training data" in r.getMessage()]  # no overlap, no warning
    nets = {f"seed{i}": _net(i) for i in range(2)}
    for run, net in nets.items():
        rec.save(run, 0, net)
    study = Study.open(tmp_path / "s", "mine")
    assert study.probe_overlap == {"test": 0, "ood": 0, "extra": 0}
    assert (tmp_path / "s" / "mine" / "probes.safetensors").is_file()
    beh = measure_study(study, which=["behaviour"], options=MeasureOptions())["behaviour"]
    assert set(beh["probe"]) == {"test", "ood", "extra"}
    for probe, (x, y) in {"test": test, **probe_files}.items():
        for run, net in nets.items():
            rows = beh[(beh["probe"] == probe) & (beh["run"] == run)].sort_values("example")
            assert len(rows) == len(y)
            with torch.no_grad():
                want = nn.functional.binary_cross_entropy_with_logits(net(x).squeeze(-1), y, reduction="none")
            np.testing.assert_allclose(rows["loss"].to_numpy(), want.numpy(), rtol=1e-5, atol=1e-6)


def test_overlap_of_k_examples_is_reported_as_k_with_a_warning(tmp_path, caplog):
    test, ood = _user_data(1, 20), _user_data(2, 10)
    x0, y0 = _user_data(0, 40)
    train = (torch.cat([x0, test[0][[3, 5, 7, 11, 19]], ood[0][[0, 0, 9]]]), torch.cat([y0, test[1][[3, 5, 7, 11, 19]], ood[1][[0, 0, 9]]]))
    with caplog.at_level(logging.WARNING, logger="pathdep"):
        Recorder(tmp_path, "mine", probes={"test": test, "ood": ood}, train_data=train, **ARGS)
    study = Study.open(tmp_path, "mine")
    assert study.probe_overlap == {"test": 5, "ood": 2}
    assert json.loads((tmp_path / "mine" / "study.json").read_text())["probe_overlap"] == {"test": 5, "ood": 2}
    warned = [r.getMessage() for r in caplog.records if "training data" in r.getMessage()]
    assert len(warned) == 1 and "test: 5 of 20" in warned[0] and "ood: 2 of 10" in warned[0]
    # hashes instead of data: the same counts
    Recorder(tmp_path, "other", probes={"test": test, "ood": ood}, train_hashes=example_hashes(test[0][:4]), **ARGS)
    assert Study.open(tmp_path, "other").probe_overlap == {"test": 4, "ood": 0}


def test_the_tasks_own_splits_are_checked_against_declared_training_data(tmp_path, caplog):
    from pathdep.registry import TASKS

    entry = TASKS["two_features"]
    own = entry.build(entry.args.model_validate(TASK_ARGS))
    with caplog.at_level(logging.WARNING, logger="pathdep"):
        Recorder(tmp_path, "mine", train_data=(own.test.x[:6], own.test.y[:6]), **ARGS)
    overlap = Study.open(tmp_path, "mine").probe_overlap
    assert overlap["test"] == 6 and set(overlap) == {"test", *own.probes}
    assert any("test: 6 of 32" in r.getMessage() for r in caplog.records)


def test_bad_probe_sets_are_refused_before_anything_is_stored(tmp_path):
    with pytest.raises(PathdepError, match="must name a 'test' set"):
        Recorder(tmp_path, "a", probes={"ood": _user_data(0, 5)}, **ARGS)
    with pytest.raises(PathdepError, match=r"'test' must have x \(N, 11\).*Got x \(5, 3\)"):
        Recorder(tmp_path, "a", probes=(torch.zeros(5, 3), torch.zeros(5)), **ARGS)
    with pytest.raises(PathdepError, match="reads the probe set 'ood'"):  # two_features' properties need it
        Recorder(tmp_path, "b", probes=_user_data(0, 5), **ARGS)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    Recorder(tmp_path, "c", probes={"test": _user_data(0, 5), "ood": _user_data(1, 5)}, **ARGS)
    before = (tmp_path / "c" / "probes.safetensors").read_bytes()
    with pytest.raises(StoreError, match="'task'"):
        Recorder(tmp_path, "c", probes={"test": _user_data(0, 6), "ood": _user_data(1, 5)}, **ARGS)
    assert (tmp_path / "c" / "probes.safetensors").read_bytes() == before


def test_the_report_shows_the_overlap(tmp_path):
    from typer.testing import CliRunner

    from pathdep.cli import _register, app

    test, ood = _user_data(1, 20), _user_data(2, 10)
    rec = Recorder(tmp_path, "mine", probes={"test": test, "ood": ood}, train_data=(test[0][:3], test[1][:3]), **ARGS)
    for i in range(2):
        rec.save(f"seed{i}", 0, _net(i))
    measure_study(Study.open(tmp_path, "mine"), which=["properties", "behaviour"], options=MeasureOptions())
    _register()
    done = CliRunner().invoke(app, ["report", "mine", "--store", str(tmp_path)])
    assert done.exit_code == 0, done.output
    assert "not held out" in " ".join(done.output.split()) and "test: 3" in done.output
    assert "not held out" in (tmp_path / "mine" / "report" / "report.html").read_text()


def test_verify_names_damaged_probe_sets_of_a_recorded_study(tmp_path):
    from pathdep.verify import verify_study

    Recorder(tmp_path, "mine", probes={"test": _user_data(1, 8), "ood": _user_data(2, 4)}, **ARGS)
    assert verify_study(tmp_path, "mine").damaged == []
    path = tmp_path / "mine" / "probes.safetensors"
    data = bytearray(path.read_bytes())
    data[-2] ^= 0xFF
    path.write_bytes(bytes(data))
    assert verify_study(tmp_path, "mine").damaged == ["probes.safetensors: sha256 does not match its record "
                                                      "(give the probe sets again)"]
