"""`pathdep report --log`: the profile, figures, report and training curves in W&B (offline),
MLflow (file store) and TensorBoard (event files), each read back with the tracker's own code."""

import json
import math
import os
import struct
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from pathdep import Study
from pathdep.analyses.finding import Profile

SPEC = {"name": "tiny", "process": {"task": "two_features", "task_args": {"n_train": 256, "n_test": 128, "n_probe": 64},
        "steps": 20, "batch_size": 16, "model_args": {"hidden": [4]}, "checkpoints": {"every": 10}},
        "seeds": {"init": 8}}


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    from pathdep.measure import measure_study

    study = Study.from_dict(SPEC, store=tmp_path_factory.mktemp("trk") / "store")
    study.run()
    measure_study(study, which=["properties", "behaviour", "behaviour_pairs"])
    return study


@pytest.fixture(scope="module")
def plotted(measured):
    """The findings that have a figure (study.profile() computes the same profile the report shows)."""
    ids = {f.id for f in measured.profile() if f.plot is not None}
    assert ids
    return ids


def _report(study, tracker, out):
    from pathdep.cli import _register, app

    _register()
    res = CliRunner().invoke(app, ["report", study.name, "--store", str(study.store), "--out", str(out), "--log", tracker])
    assert res.exit_code == 0, res.output
    profile = Profile.from_json((out / "profile.json").read_text())
    return res.output, profile


def _expected_metrics(profile):
    out = {}
    for f in profile:
        for key, v in (("value", f.value), ("low", f.ci and f.ci[0]), ("high", f.ci and f.ci[1])):
            if isinstance(v, float) and math.isfinite(v):
                out[f"{f.id}/{key}"] = v
    return out


def _curves(study):
    return {r: study.train_log(r) for r in study.runs()["run"]}


def _wandb_records(path):
    """Records of a W&B offline run file (a LevelDB-style log of wandb's protobuf Records)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, buf, out = 7, 32768, b"", []
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # block trailer
            pos += block - pos % block
            continue
        _, n, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0:
            break
        chunk, pos = data[pos + 7:pos + 7 + n], pos + 7 + n
        buf = chunk if kind in (1, 2) else buf + chunk  # full/first start a record, middle/last extend it
        if kind in (1, 4):
            rec = pb.Record()
            rec.ParseFromString(buf)
            out.append(rec)
    return out


def test_wandb_offline_run_holds_config_summary_curves_table_and_report(measured, plotted, tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)  # offline is pathdep's default
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wb"))
    output, profile = _report(measured, "wandb", tmp_path / "report")
    (run_dir,) = (tmp_path / "wb" / "wandb").glob("offline-run-*")
    assert str(run_dir) in output.replace("\n", "")
    for _ in range(200):  # wandb's service process writes the run file behind the run: wait for its exit record
        records = _wandb_records(next(run_dir.glob("run-*.wandb")))
        kinds = [r.WhichOneof("record_type") for r in records]
        if "exit" in kinds:
            break
        time.sleep(0.05)
    run = records[kinds.index("run")].run
    config = {u.key: json.loads(u.value_json) for u in run.config.update}
    assert config["process"]["steps"] == 20 and config["seeds"]["init"] == 8 and run.display_name == "tiny"

    summary = {}
    for r in records:
        if r.WhichOneof("record_type") == "summary":
            for u in r.summary.update:
                summary["/".join(u.nested_key) or u.key] = json.loads(u.value_json)
    expected = _expected_metrics(profile)
    assert expected and {k: summary[k] for k in expected} == pytest.approx(expected)
    assert all(summary[f"{f.id}/verdict"] == f.verdict for f in profile)

    history = [{"/".join(i.nested_key) or i.key: json.loads(i.value_json) for i in r.history.item}
               for r in records if r.WhichOneof("record_type") == "history"]
    for run_name, log in _curves(measured).items():
        got = {h["train_step"]: h[f"train_loss/{run_name}"] for h in history if f"train_loss/{run_name}" in h}
        assert got == pytest.approx(dict(zip(log["step"].tolist(), log["loss"].tolist())))
    (table_file,) = (run_dir / "files" / "media" / "table").glob("profile_*.table.json")
    table = json.loads(table_file.read_text())
    assert [row[table["columns"].index("id")] for row in table["data"]] == [f.id for f in profile]
    images = {p.name.split("_")[0] for p in (run_dir / "files" / "media" / "images" / "figures").glob("*.png")}
    assert images == plotted
    arts = [r.artifact for r in records if r.WhichOneof("record_type") == "artifact" and r.artifact.type == "report"]
    assert {e.path for e in arts[0].manifest.contents} == {"report.html", "profile.json"}


def test_mlflow_file_store_holds_params_metrics_tags_and_artifacts(measured, plotted, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    _, profile = _report(measured, "mlflow", tmp_path / "report")
    assert "MLFLOW_ALLOW_FILE_STORE" not in os.environ  # allowed only while pathdep logged

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # to read the file store back
    client = MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("pathdep").experiment_id])
    assert run.info.run_name == "tiny" and run.info.status == "FINISHED"
    assert run.data.params["process.steps"] == "20" and run.data.params["seeds.init"] == "8"
    expected = _expected_metrics(profile)
    assert {k: run.data.metrics[k] for k in expected} == pytest.approx(expected)
    assert all(run.data.tags[f"{f.id}.verdict"] == f.verdict for f in profile)
    for run_name, log in _curves(measured).items():
        hist = client.get_metric_history(run.info.run_id, f"train_loss/{run_name}")
        assert sorted((m.step, m.value) for m in hist) == pytest.approx(list(zip(log["step"], log["loss"])))
    arts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"report", "figures", "spec.json", "profile.json"} <= arts
    assert {a.path for a in client.list_artifacts(run.info.run_id, "report")} == {"report/report.html", "report/profile.json"}
    figures = {a.path for a in client.list_artifacts(run.info.run_id, "figures")}
    assert figures == {f"figures/{fid}.png" for fid in plotted}
    table = json.loads(open(client.download_artifacts(run.info.run_id, "profile.json", str(tmp_path))).read())
    assert [row[table["columns"].index("id")] for row in table["data"]] == [f.id for f in profile]


def test_tensorboard_event_files_hold_metrics_curves_text_and_figures(measured, plotted, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "report"
    output, profile = _report(measured, "tensorboard", out)
    logdir = out / "tensorboard" / "tiny"
    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    scalars = set(acc.Tags()["scalars"])
    expected = _expected_metrics(profile)
    assert expected and {k: acc.Scalars(k)[0].value for k in expected} == pytest.approx(expected, rel=1e-6)
    for run_name, log in _curves(measured).items():
        ev = acc.Scalars(f"train_loss/{run_name}")
        assert [e.step for e in ev] == log["step"].tolist()
        assert [e.value for e in ev] == pytest.approx(log["loss"].tolist(), rel=1e-6)
    assert not {k for k in scalars if not k.startswith("train_loss/")} - set(expected)
    texts = set(acc.Tags()["tensors"])
    assert {"config", "profile"} | {f"{f.id}/verdict" for f in profile} <= {t.removesuffix("/text_summary") for t in texts}
    assert set(acc.Tags()["images"]) == {f"figures/{fid}" for fid in plotted}
    assert sorted(p.name for p in (logdir / "report").iterdir()) == ["profile.json", "report.html"]


def test_unknown_tracker_and_missing_library_are_one_line_with_exit_2(measured, tmp_path):
    from pathdep.errors import SpecError
    from pathdep.report.trackers import require

    with pytest.raises(SpecError, match=r"The '--log' (field|option) must be one of \['mlflow', 'tensorboard', 'wandb'\]\. Got 'neptune'"):
        require(["neptune"])
    code = ("import sys; sys.modules['wandb'] = None; from pathdep.cli import main; "
            f"sys.argv = ['pathdep', 'report', 'tiny', '--store', {str(measured.store)!r}, '--out', {str(tmp_path / 'r')!r}, "
            "'--log', 'wandb']; main()")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip() == "error: --log wandb needs the 'wandb' package: pip install pathdep[trackers]"
    assert not (tmp_path / "r").exists()  # nothing written


def test_mlflow_and_tensorboard_default_to_folders_of_the_report(measured, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from pathdep.report.trackers import log_profile

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = tmp_path / "report"
    out.mkdir()
    prof = Profile.from_json(json.dumps(measured.profile().to_dict()))  # read back from JSON: no figures
    where = log_profile(["mlflow", "tensorboard"], prof, measured, out)
    assert where["mlflow"].startswith((out / "mlruns").resolve().as_uri()) and where["tensorboard"] == str(out / "tensorboard" / "tiny")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(tracking_uri=(out / "mlruns").resolve().as_uri())
    (run,) = client.search_runs([client.get_experiment_by_name("pathdep").experiment_id])
    assert {k: run.data.metrics[k] for k in _expected_metrics(prof)} == pytest.approx(_expected_metrics(prof))
    assert not client.list_artifacts(run.info.run_id, "figures")


def test_a_recorded_study_logs_its_source_as_config_and_its_recorded_losses(tmp_path):
    import torch
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch import nn

    from pathdep.report.trackers import log_profile
    from pathdep.sources import Recorder

    rec = Recorder(tmp_path / "store", "mine", task="two_features", model="mlp", model_args={"hidden": [4]}, keys="order")
    torch.manual_seed(0)  # the user's loop
    net = nn.Sequential(nn.Linear(11, 4), nn.ReLU(), nn.Linear(4, 1))
    rec.save("seed0", 0, net, loss=0.75, init_seed=0)
    rec.log_loss("seed0", {1: 0.5, 2: 0.25})
    study = Study.open(tmp_path / "store", "mine")
    logdir = log_profile(["tensorboard"], Profile("mine", ()), study, tmp_path / "report")["tensorboard"]
    acc = EventAccumulator(logdir, size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("train_loss/seed0")] == [(0, 0.75), (1, 0.5), (2, 0.25)]
    config = acc.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert json.loads(config.strip("`\n"))["source"] == "recorder"
