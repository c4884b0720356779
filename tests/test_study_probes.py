"""A trained study measured on the user's own probe sets: stored with it, checked against its
training data, part of what the measurement was computed from."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from pathdep.cli import _register, invoke
from pathdep.errors import PathdepError, StoreError
from pathdep.measure import measure_study
from pathdep.measure.measurement import measurement_status
from pathdep.measure.study import MeasureOptions
from pathdep.study import Study
from pathdep.verify import verify_study
from tests.helpers import file_hashes, tiny

_register()

SPEC = tiny(**{"name": "own", "process.steps": 20, "process.checkpoints.every": 10, "seeds.init": 2})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    store = tmp_path_factory.mktemp("store")
    Study.from_dict(SPEC, store).run()
    return store


def _fresh(trained, tmp_path) -> Study:
    """A copy of the trained study, so each test changes its own store."""
    import shutil

    shutil.copytree(trained, tmp_path / "s")
    return Study.open(tmp_path / "s", "own")


def _user(seed: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 11, generator=g), torch.randint(0, 2, (n,), generator=g).float()


def test_a_set_is_measured_beside_the_tasks_own_on_exactly_its_examples(trained, tmp_path):
    study = _fresh(trained, tmp_path)
    own = set(study.task.probes)
    x, y = _user(0, 17)
    assert study.set_probes({"mine": (x, y)}) == {"mine": 0}  # random inputs: none in the training data
    beh = measure_study(study, which=["behaviour"], options=MeasureOptions())["behaviour"]
    assert set(beh["probe"]) == {"test", "mine", *own}
    model = study.model("base-i0-d0")
    params = {k: v.unsqueeze(0) for k, v in study.load("base-i0-d0", 20).items()}
    with torch.no_grad():
        logits = model.apply(params, x.unsqueeze(0))[0].squeeze(-1)
    want = torch.nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="none")
    rows = beh[(beh["probe"] == "mine") & (beh["run"] == "base-i0-d0") & (beh["step"] == 20)].sort_values("example")
    np.testing.assert_allclose(rows["loss"].to_numpy(), want.numpy(), rtol=1e-5, atol=1e-6)


def test_a_set_named_test_replaces_the_test_split(trained, tmp_path):
    study = _fresh(trained, tmp_path)
    study.set_probes(_user(1, 9))  # one set alone is 'test'
    beh = measure_study(study, which=["behaviour"], options=MeasureOptions())["behaviour"]
    test = beh[(beh["probe"] == "test") & (beh["run"] == "base-i0-d0") & (beh["step"] == 20)]
    assert len(test) == 9


def test_examples_from_the_training_split_are_counted_and_warned(trained, tmp_path, caplog):
    study = _fresh(trained, tmp_path)
    train = study.task.train
    x, y = _user(2, 10)
    x = torch.cat([x, train.x[[4, 8, 15]]])  # 3 planted training examples
    y = torch.cat([y, train.y[[4, 8, 15]]])
    with caplog.at_level(logging.WARNING, logger="pathdep"):
        overlap = study.set_probes({"leaky": (x, y), "clean": _user(3, 6)})
    assert overlap == {"leaky": 3, "clean": 0} == Study.open(tmp_path / "s", "own").probe_overlap
    warned = [r.getMessage() for r in caplog.records if "training data" in r.getMessage()]
    assert len(warned) == 1 and "leaky: 3 of 13" in warned[0] and "clean" not in warned[0]


def test_new_sets_make_the_measurement_stale_and_a_damaged_file_is_named(trained, tmp_path):
    study = _fresh(trained, tmp_path)
    measure_study(study, which=["properties"], options=MeasureOptions())
    assert measurement_status(study).state == "complete"
    study.set_probes({"mine": _user(0, 5)})
    status = measurement_status(study)
    assert status.state == "stale" and "probe sets were added" in status.reasons[0]
    measure_study(study, which=["properties"], options=MeasureOptions())
    assert measurement_status(study).state == "complete"
    study.set_probes({"mine": _user(1, 5)})
    assert "probe sets changed" in measurement_status(study).reasons[0]
    path = tmp_path / "s" / "own" / "probes.safetensors"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="do not match the sha256"):
        Study.open(tmp_path / "s", "own").task
    assert verify_study(tmp_path / "s", "own").damaged == ["probes.safetensors: sha256 does not match its record "
                                                            "(give the probe sets again)"]


def test_sets_that_do_not_fit_the_task_are_refused_before_anything_is_stored(trained, tmp_path):
    study = _fresh(trained, tmp_path)
    with pytest.raises(PathdepError, match=r"'mine' must have x \(N, 11\).*Got x \(5, 3\)"):
        study.set_probes({"mine": (torch.zeros(5, 3), torch.zeros(5))})
    with pytest.raises(PathdepError, match="not be 'train'"):
        study.set_probes({"train": _user(0, 5)})
    assert not (tmp_path / "s" / "own" / "probes.json").exists()


def test_measure_probes_from_the_command_line(trained, tmp_path, capsys):
    study = _fresh(trained, tmp_path)
    store = str(tmp_path / "s")
    x, y = _user(4, 8)
    save_file({"x": x, "y": y}, str(tmp_path / "ood2.safetensors"))
    np.savez(tmp_path / "bad.npz", x=np.zeros((4, 3), np.float32), y=np.zeros(4, np.float32))
    before = file_hashes(tmp_path / "s", "**/*")
    for args, words in [
        (["--probes", f"ood2={tmp_path / 'nope.npz'}"], ["--probes", "does not exist"]),
        (["--probes", f"={tmp_path / 'ood2.safetensors'}"], ["--probes", "NAME=FILE"]),
        (["--probes", f"train={tmp_path / 'ood2.safetensors'}"], ["not be 'train'"]),
        (["--probes", f"b={tmp_path / 'bad.npz'}"], ["'b' must have x (N, 11)"]),
    ]:
        capsys.readouterr()
        assert invoke(["measure", "own", "--store", store, "--only", "behaviour", *args]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and all(w in err for w in words), err
    assert file_hashes(tmp_path / "s", "**/*") == before  # nothing stored changed
    assert invoke(["measure", "own", "--store", store, "--only", "behaviour",
                   "--probes", f"ood2={tmp_path / 'ood2.safetensors'}"]) == 0
    beh = study.read_table("behaviour")
    assert len(beh[(beh["probe"] == "ood2") & (beh["run"] == "base-i1-d0") & (beh["step"] == 20)]) == 8
