"""A study whose checkpoints came from elsewhere: a hub suite or a user's own training loop.

An external study lives in a store like any other (``STORE/<study>/runs/<run>/step_*.safetensors``
with a manifest, ``tables/*.parquet``); its ``study.json`` has a ``source`` entry instead of a
spec, and says how to rebuild its model and its task:

- ``model``: ``{"kind": "hf", "auto_class", "config", "readout"}`` (a transformers model built from
  its config), ``{"kind": "family", "name", "args"}`` (a pathdep model family) or
  ``{"kind": "factory", "factory": "package.module:function"}`` (an ``nn.Module`` factory, called
  only when the reader passes it: ``factories={"package.module:function": function}``, or
  ``--factory package.module:function`` on the command line; a store never makes pathdep import
  the code it names);
- ``task``: ``{"kind": "tokens", ...}`` (a probe text stored as ``probes.safetensors``, see
  :mod:`pathdep.sources.probes`) or ``{"kind": "registry", "name", "args"}`` (a pathdep task).

:class:`ExternalStudy` has the reading API of :class:`pathdep.Study` (runs, steps, load,
load_population, task, model, train_log, final_step, tables), so measurements, analyses and the
report work on it unchanged. ``pathdep.Study.open`` returns one when ``study.json`` has a source.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from safetensors.torch import load_file
from torch import Tensor

from pathdep import store as st
from pathdep.errors import SpecError, StoreError, TrustError
from pathdep.models.base import Model, Params
from pathdep.registry import MODELS, TASKS
from pathdep.tasks.base import Task

PROBES_FILE = "probes.safetensors"
TRAIN_LOG_FILE = "train_log.json"


@dataclass(frozen=True)
class ExternalProcess:
    """What the report shows of an external study's process."""

    task: str
    model: str
    steps: int  # the last step any run has


@dataclass(frozen=True)
class ExternalSpec:
    name: str
    process: ExternalProcess
    description: str = ""


@dataclass(frozen=True)
class ExternalRun:
    """A run as ``Study.plan`` lists it (name and process), for commands that walk the plan."""

    name: str
    process: ExternalProcess


# --- writing (shared by the hub import and the recorder) ------------------------------------------


def claim_study(store: Path, name: str, meta: dict[str, Any], same: tuple[str, ...]) -> dict[str, Any]:
    """Write ``study.json`` unless it exists; an existing one must agree on the ``same`` keys."""
    path = st.study_dir(store, name) / "study.json"
    if path.is_file():
        old = st.read_json(path)
        for key in same:
            if old.get(key) != meta.get(key):
                raise StoreError(
                    f"Store {str(store)!r} already holds a study {name!r} whose {key!r} is {_brief(old.get(key))}, "
                    f"not {_brief(meta.get(key))}; nothing was changed. Use another study name or --store."
                )
        return old
    st.write_json(path, meta)
    return meta


def _brief(v: Any) -> str:
    s = json.dumps(v, sort_keys=True, default=str)
    return s if len(s) <= 80 else s[:77] + "..."


def write_record(store: Path, study: str, record: dict[str, Any]) -> None:
    path = st.run_dir(store, study, record["run"]) / "record.json"
    if not path.is_file():
        st.write_json(path, record)


def run_record(run: str, variant: str, init_seed: int | None = None, data_seed: int | None = None,
               **extra: Any) -> dict[str, Any]:
    """The record of a run trained from init (no fork, no intervention)."""
    return {"run": run, "variant": variant, "init_seed": init_seed, "data_seed": data_seed, "fork": None,
            "parent": None, "fork_step": 0, "toward": None, "lam": None, "intervention": None, **extra}


def write_checkpoint(store: Path, study: str, run: str, step: int, params: Params, meta: dict[str, Any]) -> None:
    """One run's parameters at ``step`` in pathdep's format (atomic, then committed to the manifest)."""
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in params.items()}
    full = {"run": run, "step": str(step), **{k: json.dumps(v, sort_keys=True) for k, v in meta.items()}}
    st.RunFiles(st.run_dir(store, study, run)).write(step, st.encode_checkpoint(tensors, {}, torch.zeros(0), full))


# --- rebuilding models and tasks -----------------------------------------------------------------


Factories = Mapping[str, Callable[[], torch.nn.Module]]
AUTO_CLASSES = ("AutoModelForCausalLM", "AutoModelForMaskedLM")


def _hf_model(spec: dict[str, Any], task: Task, factories: Factories) -> Model:
    import transformers

    from pathdep.sources.module import transformer_model

    if spec.get("auto_class") not in AUTO_CLASSES:
        raise StoreError(f"The model's 'auto_class' in study.json must be one of {list(AUTO_CLASSES)}. "
                         f"Got {spec.get('auto_class')!r} instead; the store is damaged.")
    config = transformers.AutoConfig.for_model(**spec["config"])
    module = getattr(transformers, spec["auto_class"]).from_config(config)
    return transformer_model(module.float(), config, readout=spec.get("readout"))


def _family_model(spec: dict[str, Any], task: Task, factories: Factories) -> Model:
    if spec.get("name") not in MODELS:
        raise StoreError(f"The model family {spec.get('name')!r} in study.json is not one of {MODELS.names()}.")
    entry = MODELS[spec["name"]]
    return entry.build(entry.args.model_validate(spec.get("args") or {}), task.in_shape, task.n_outputs)


def _factory_model(spec: dict[str, Any], task: Task, factories: Factories) -> Model:
    from pathdep.sources.module import ModuleModel

    return ModuleModel.of(trusted_factory(spec.get("factory"), factories)(), hooks=spec.get("hooks"))


def trusted_factory(name: Any, factories: Factories) -> Callable[[], torch.nn.Module]:
    """The factory the caller passed for the ``name`` a store gives; a :class:`TrustError` otherwise.

    A store is data: the ``module:function`` it names is never imported on its say-so.
    """
    if isinstance(name, str) and name in factories:
        return factories[name]
    raise TrustError(
        f"The study's model is built by the factory {name!r} named in its study.json; pathdep does not import "
        f"code a store names. If you trust it, pass it explicitly: --factory {name} on the command line, or "
        f"factories={{{name!r}: function}} to pathdep.Study.open in Python."
    )


def import_factory(path: str) -> Callable[[], torch.nn.Module]:
    """The function named ``package.module:qualname`` (only for a name the user gave, never a store's)."""
    mod, _, qual = path.partition(":")
    if not mod or not qual:
        raise SpecError(f"The model factory {path!r} must be written 'package.module:function'.")
    try:
        obj: Any = importlib.import_module(mod)
        for part in qual.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        raise SpecError(f"The model factory {path!r} cannot be imported; it must be a module-level function "
                           "('package.module:function') importable where the study is read.") from None
    return obj


MODEL_KINDS: dict[str, Callable[[dict[str, Any], Task, Factories], Model]] = {
    "hf": _hf_model, "family": _family_model, "factory": _factory_model,
}


def _token_task(spec: dict[str, Any], root: Path) -> Task:
    from pathdep.sources.probes import token_task

    return token_task(load_file(str(root / PROBES_FILE))["tokens"], spec)


def _registry_task(spec: dict[str, Any], root: Path) -> Task:
    entry = TASKS[spec["name"]]
    task = entry.build(entry.args.model_validate(spec.get("args") or {}))
    if spec.get("probes"):  # the user's own probe sets, stored with the study
        from pathdep.sources.probes import decode_splits, with_user_probes

        path = root / PROBES_FILE
        data = path.read_bytes() if path.is_file() else b""
        if st.sha256(data) != spec["probes"].get("sha256"):
            raise StoreError(f"The probe sets {str(path)!r} are missing or do not match the sha256 in study.json; "
                             "the store is damaged.")
        task = with_user_probes(task, decode_splits(data))
    return task


TASK_KINDS: dict[str, Callable[[dict[str, Any], Path], Task]] = {"tokens": _token_task, "registry": _registry_task}


# --- the study ----------------------------------------------------------------------------------------


def _natural(name: str) -> list[Any]:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


class ExternalStudy(st.StoredStudy):
    """An imported or recorded study in a store; the reading API of :class:`pathdep.Study`."""

    def __init__(self, store: str | Path, name: str, meta: dict[str, Any], factories: Factories | None = None) -> None:
        self.store = Path(store)
        self.meta = meta
        self._name = name
        self.factories = dict(factories or {})

    @classmethod
    def open(cls, store: str | Path, name: str, factories: Factories | None = None) -> ExternalStudy:
        """The study ``name`` of ``store``; ``factories`` maps the factory names a caller trusts to functions."""
        meta = st.read_study_meta(Path(store), name)
        if "source" not in meta:
            raise StoreError(f"Study {name!r} in {str(store)!r} was trained from a spec; open it with pathdep.Study.open.")
        return cls(store, name, meta, factories)

    # --- identity ----------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._name

    @property
    def source(self) -> str:
        return self.meta["source"]

    @property
    def spec(self) -> ExternalSpec:
        """A summary for reports: task and model kinds, and the last step of any run."""
        last = max((self.final_step(r) for r in self._records), default=0)
        m, t = self.meta["model"], self.meta["task"]
        process = ExternalProcess(t.get("name", t["kind"]), m.get("name") or m.get("auto_class") or m["kind"], last)
        return ExternalSpec(self.name, process, self.meta.get("description", ""))

    @property
    def plan(self) -> list[ExternalRun]:
        process = self.spec.process
        return [ExternalRun(r, ExternalProcess(process.task, process.model, self.final_step(r))) for r in self._records]

    # --- runs and checkpoints -------------------------------------------------------------------
    @property
    def _records(self) -> dict[str, dict[str, Any]]:
        runs = st.study_dir(self.store, self.name) / "runs"
        recs = [st.read_json(p) for p in runs.glob("*/record.json")] if runs.is_dir() else []
        return {r["run"]: r for r in sorted(recs, key=lambda r: _natural(r["run"]))}

    def runs(self) -> pd.DataFrame:
        """One row per run: run, variant, init_seed, data_seed, fork, parent, ... (and the source's fields)."""
        return pd.DataFrame(list(self._records.values()))

    def _files(self, run: str) -> st.RunFiles:
        if not (st.run_dir(self.store, self.name, run) / "record.json").is_file():
            have = list(self._records)
            raise StoreError(f"Study {self.name!r} has no run {run!r}; its runs are {have[:10] or 'none yet'}.")
        return st.RunFiles(st.run_dir(self.store, self.name, run))

    def final_step(self, run: str) -> int:
        """The last checkpoint of ``run`` (an external run is finished at whatever it has)."""
        steps = self.steps(run)
        return steps[-1] if steps else 0

    def train_log(self, run: str) -> pd.DataFrame:
        """Training losses the source reported (columns step, loss; empty for hub suites)."""
        path = st.run_dir(self.store, self.name, run) / TRAIN_LOG_FILE
        self._files(run)
        if not path.is_file():
            return pd.DataFrame({"step": pd.Series(dtype=int), "loss": pd.Series(dtype=float)})
        log = st.read_json(path)
        steps = sorted(log, key=int)
        return pd.DataFrame({"step": [int(s) for s in steps], "loss": [float(log[s]) for s in steps]})

    # --- task and model --------------------------------------------------------------------------
    @cached_property
    def task(self) -> Task:
        spec = self.meta["task"]
        if spec.get("kind") not in TASK_KINDS:
            raise StoreError(f"The task kind {spec.get('kind')!r} in study.json is not one of {list(TASK_KINDS)}.")
        return TASK_KINDS[spec["kind"]](spec, self.root)

    def task_of(self, run: str) -> Task:
        return self.task

    @cached_property
    def _model(self) -> Model:
        spec = self.meta["model"]
        if spec.get("kind") not in MODEL_KINDS:
            raise StoreError(f"The model kind {spec.get('kind')!r} in study.json is not one of {list(MODEL_KINDS)}.")
        return MODEL_KINDS[spec["kind"]](spec, self.task, self.factories)

    def model(self, run: str | None = None) -> Model:
        """The model every run of the study shares (one object, so runs group together)."""
        return self._model

    @property
    def probe_overlap(self) -> dict[str, int] | None:
        """Examples of each probe set found in the training data the recorder was told of (None: none declared)."""
        return self.meta.get("probe_overlap")


def save_tokens(root: Path, tokens: Tensor) -> None:
    """Store a study's probe tokens (n,) once."""
    from safetensors.torch import save

    st.write_atomic(root / PROBES_FILE, save({"tokens": tokens.long().contiguous()}))
