"""A study's profile, figures, report and training curves logged to an experiment tracker.

``pathdep report STUDY --log wandb`` (or ``mlflow``, ``tensorboard``) sends what the report shows
to the tracker people already use: every finding's headline value and interval as metrics
(``A/value``, ``A/low``, ``A/high``), verdicts as text, the profile as one table
(:meth:`~pathdep.analyses.finding.Profile.to_frame`), each finding's figure as an image, the report
files as artifacts, each run's training loss as a curve (``train_loss/RUN`` over steps), and the
study's spec as the tracker run's config.

Each tracker is one row of :data:`TRACKERS`: the package it needs and a small adapter that writes a
:class:`Logged` bundle. Nothing leaves the machine unless the user configured it:

- W&B runs offline (``WANDB_MODE``, default ``offline``) into ``WANDB_DIR`` (default the report
  directory); ``wandb sync`` uploads the run later;
- MLflow logs to ``MLFLOW_TRACKING_URI`` (default a file store, ``REPORT/mlruns``);
- TensorBoard writes event files to ``REPORT/tensorboard`` (open with ``tensorboard --logdir``).

>>> sorted(TRACKERS)
['mlflow', 'tensorboard', 'wandb']
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pathdep.analyses.finding import Profile
from pathdep.errors import SpecError, bad_value
from pathdep.growth import dotted


@dataclass(frozen=True)
class Logged:
    """What every tracker receives: the same numbers, figures and files the report shows."""

    study: str
    config: dict[str, Any]  # the spec (or an imported/recorded study's source description)
    metrics: dict[str, float]  # {"A/value": ..., "A/low": ..., "A/high": ...}, finite values only
    verdicts: dict[str, str]  # {finding id: verdict}
    table: pd.DataFrame  # one row per finding (Profile.to_frame)
    figures: dict[str, bytes]  # {finding id: PNG}
    files: list[Path]  # the report's files (report.html, profile.json, ...)
    curves: dict[str, pd.DataFrame]  # {run: columns step, loss}


@dataclass(frozen=True)
class Tracker:
    """One experiment tracker: the module it imports and the adapter that writes to it."""

    module: str  # what must be importable
    package: str  # what pip installs
    write: Callable[[Logged, Path], str]  # (bundle, report dir) -> where it wrote


def require(names: Sequence[str]) -> None:
    """Fail with one line (exit code 2) if a name is no tracker or its library is not installed."""
    for name in names:
        if name not in TRACKERS:
            raise bad_value("--log", name, f"one of {sorted(TRACKERS)}")
        tracker = TRACKERS[name]
        if importlib.util.find_spec(tracker.module.split(".")[0]) is None:
            raise SpecError(f"--log {name} needs the {tracker.package!r} package: pip install pathdep[trackers]")


def log_profile(names: Sequence[str], profile: Profile, study: Any, report_dir: str | Path) -> dict[str, str]:
    """Log ``profile`` (of ``study``, whose report is in ``report_dir``) to each tracker in ``names``.

    Returns {tracker: where it wrote}. Figures are drawn from the findings' plots (a profile read
    back from ``profile.json`` has none; its findings are still logged).
    """
    require(names)
    if not names:
        return {}
    bundle = collect(profile, study, Path(report_dir))
    return {name: TRACKERS[name].write(bundle, Path(report_dir)) for name in names}


def collect(profile: Profile, study: Any, report_dir: Path) -> Logged:
    """The bundle every tracker writes, gathered once."""
    from pathdep.report.figures import plot_png

    metrics, verdicts = {}, {}
    for f in profile:
        low, high = f.ci if f.ci is not None else (None, None)
        for key, v in (("value", f.value), ("low", low), ("high", high)):
            if isinstance(v, (int, float)) and math.isfinite(v):
                metrics[f"{f.id}/{key}"] = float(v)
        verdicts[f.id] = f.verdict
    figures = {f.id: png for f in profile if (png := plot_png(f)) is not None}
    files = sorted(p for p in report_dir.iterdir() if p.is_file()) if report_dir.is_dir() else []
    curves = {}
    for run in study.runs()["run"]:
        log = study.train_log(run)
        if len(log):
            curves[str(run)] = log
    return Logged(profile.study, config_of(study), metrics, verdicts, profile.to_frame(), figures, files, curves)


def config_of(study: Any) -> dict[str, Any]:
    """The study's spec as plain JSON values (an external study: its source description)."""
    spec = study.spec
    if hasattr(spec, "model_dump"):  # a trained study's StudySpec
        return spec.model_dump(mode="json")
    meta = getattr(study, "meta", None)  # an ExternalStudy's study.json: source, model, task
    return json.loads(json.dumps(meta if meta is not None else asdict(spec)))


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config as dotted keys with string values (lists as JSON), for key-value trackers.

    >>> flatten({"process": {"steps": 4, "model_args": {"hidden": [4]}}, "name": "x"})
    {'process.steps': '4', 'process.model_args.hidden': '[4]', 'name': 'x'}
    """
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in dotted(config, prefix).items()}


def _tag(name: str) -> str:
    """A run name as a metric-key part (letters, digits, '_', '-', '.')."""
    return re.sub(r"[^\w.-]", "_", name)


def _steps(curves: dict[str, pd.DataFrame]) -> Iterator[tuple[int, dict[str, float]]]:
    """(step, {run: loss}) over the union of steps, ascending."""
    by_step: dict[int, dict[str, float]] = {}
    for run, log in curves.items():
        for s, loss in zip(log["step"], log["loss"]):
            by_step.setdefault(int(s), {})[run] = float(loss)
    yield from sorted(by_step.items())


@contextlib.contextmanager
def _figure_dir(figures: dict[str, bytes]) -> Iterator[Path]:
    """The figures as PNG files ``{id}.png`` in a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="pathdep-figures-") as tmp:
        for fid, png in figures.items():
            (Path(tmp) / f"{fid}.png").write_bytes(png)
        yield Path(tmp)


# --- Weights & Biases ------------------------------------------------------------------------


def _wandb(b: Logged, report_dir: Path) -> str:
    import wandb

    mode = os.environ.get("WANDB_MODE") or "offline"  # never online unless the user asked for it
    run = wandb.init(project=os.environ.get("WANDB_PROJECT") or "pathdep", name=b.study, config=b.config,
                     dir=os.environ.get("WANDB_DIR") or str(report_dir), mode=mode, job_type="report",
                     settings=wandb.Settings(silent=True, console="off", disable_git=True, x_disable_stats=True), reinit="create_new")
    try:
        run.define_metric("train_step")
        run.define_metric("train_loss/*", step_metric="train_step")
        for step, losses in _steps(b.curves):
            run.log({"train_step": step} | {f"train_loss/{_tag(r)}": v for r, v in losses.items()})
        run.log({"profile": wandb.Table(dataframe=b.table.astype(object).where(b.table.notna(), None))}
                | {f"figures/{fid}": wandb.Image(_png_array(png), caption=fid) for fid, png in b.figures.items()})
        run.summary.update(b.metrics | {f"{fid}/verdict": v for fid, v in b.verdicts.items()})
        art = wandb.Artifact(f"{_tag(b.study)}-report", type="report")
        for path in b.files:
            art.add_file(str(path))
        run.log_artifact(art)
        where = str(Path(run.dir).parent)
    finally:
        run.finish()
    return where


def _png_array(png: bytes):
    """PNG bytes as an (H, W, 4) float array."""
    import matplotlib.image

    return matplotlib.image.imread(io.BytesIO(png), format="png")


# --- MLflow ----------------------------------------------------------------------------------


def _mlflow(b: Logged, report_dir: Path) -> str:
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    uri = os.environ.get("MLFLOW_TRACKING_URI") or (report_dir / "mlruns").resolve().as_uri()
    with _file_store_allowed(uri):
        client = MlflowClient(tracking_uri=uri)
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or "pathdep"
        exp = client.get_experiment_by_name(name)
        run_id = client.create_run(exp.experiment_id if exp else client.create_experiment(name), run_name=b.study).info.run_id
        try:
            params = [Param(k, v[:6000]) for k, v in flatten(b.config).items()]
            metrics = [Metric(k, v, 0, 0) for k, v in b.metrics.items()]
            metrics += [Metric(f"train_loss/{_tag(r)}", v, 0, s) for s, losses in _steps(b.curves) for r, v in losses.items()]
            for i in range(0, len(params), 100):  # MLflow's limits per batch: 100 params, 1000 metrics
                client.log_batch(run_id, params=params[i:i + 100])
            for i in range(0, len(metrics), 1000):
                client.log_batch(run_id, metrics=metrics[i:i + 1000])
            for fid, verdict in b.verdicts.items():
                client.set_tag(run_id, f"{fid}.verdict", verdict[:8000])
            client.log_dict(run_id, b.config, "spec.json")
            client.log_table(run_id, b.table, "profile.json")
            for path in b.files:
                client.log_artifact(run_id, str(path), "report")
            with _figure_dir(b.figures) as figs:
                client.log_artifacts(run_id, str(figs), "figures")
        except BaseException:
            client.set_terminated(run_id, "FAILED")
            raise
        client.set_terminated(run_id)
    return f"{uri} (run {run_id})"


@contextlib.contextmanager
def _file_store_allowed(uri: str) -> Iterator[None]:
    """MLflow 3 refuses its file store unless ``MLFLOW_ALLOW_FILE_STORE`` is set; allow it while
    pathdep logs to a ``file:`` URI (restoring the variable after)."""
    if not uri.startswith("file:") or "MLFLOW_ALLOW_FILE_STORE" in os.environ:
        yield
        return
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    try:
        yield
    finally:
        del os.environ["MLFLOW_ALLOW_FILE_STORE"]


# --- TensorBoard -----------------------------------------------------------------------------


def _tensorboard(b: Logged, report_dir: Path) -> str:
    from torch.utils.tensorboard import SummaryWriter

    logdir = report_dir / "tensorboard" / _tag(b.study)
    with SummaryWriter(str(logdir)) as w:
        w.add_text("config", "```\n" + json.dumps(b.config, indent=2) + "\n```", 0)
        for key, v in b.metrics.items():
            w.add_scalar(key, v, 0)
        for fid, verdict in b.verdicts.items():
            w.add_text(f"{fid}/verdict", verdict, 0)
        w.add_text("profile", _markdown(b.table), 0)
        for fid, png in b.figures.items():
            w.add_image(f"figures/{fid}", _png_array(png)[..., :3], 0, dataformats="HWC")
        for step, losses in _steps(b.curves):
            for r, v in losses.items():
                w.add_scalar(f"train_loss/{_tag(r)}", v, step)
    (logdir / "report").mkdir(exist_ok=True)
    for path in b.files:  # TensorBoard has no artifacts: the report travels with the event files
        shutil.copy2(path, logdir / "report" / path.name)
    return str(logdir)


def _markdown(df: pd.DataFrame) -> str:
    """A frame as a Markdown table (TensorBoard renders text as Markdown)."""
    def cell(v: Any) -> str:
        return "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v).replace("|", "\\|")

    rows = [" | ".join(df.columns), " | ".join("---" for _ in df.columns)]
    rows += [" | ".join(cell(v) for v in row) for row in df.itertuples(index=False)]
    return "\n".join(rows)


TRACKERS: dict[str, Tracker] = {
    "wandb": Tracker("wandb", "wandb", _wandb),
    "mlflow": Tracker("mlflow", "mlflow", _mlflow),
    "tensorboard": Tracker("tensorboard", "tensorboard", _tensorboard),
}

__all__ = ["TRACKERS", "Logged", "Tracker", "collect", "log_profile", "require"]
