"""Record a user's own training loop into a pathdep store.

>>> import tempfile
>>> from torch import nn
>>> rec = Recorder(tempfile.mkdtemp(), "mine", task="two_features", model="mlp",
...                model_args={"hidden": [4]}, keys="order")
>>> net = nn.Sequential(nn.Linear(11, 4), nn.ReLU(), nn.Linear(4, 1))
>>> rec.save("seed0", 0, net)
>>> rec.study().steps("seed0")
[0]

The model is a pathdep model family (``model="mlp"`` with ``model_args``) or an ``nn.Module``
factory (a module-level function, so the study can be read again: ``pathdep measure --factory
package.module:function``, or ``Study.open(store, name, factories=...)``); the task
is a registered pathdep task (``task`` and ``task_args``) whose probe sets the measurements use.
Each :meth:`Recorder.save` writes one checkpoint atomically and commits it to the run's manifest.

Evaluation data: by default the task's own splits are measured. ``probes=`` gives the user's own
sets instead (``(x, y)``, a ``Dataset`` or a .safetensors/.npz file with ``x`` and ``y``; one set,
or a dict naming ``test`` and any others), stored with the study as ``probes.safetensors``.
``train_data=(x, y)`` (or ``train_hashes=``, from :func:`pathdep.sources.probes.example_hashes`)
declares what the loop trained on: the examples of each measured set found in it are counted
(``study.probe_overlap``, in ``study.json``) and a warning is logged when any are.

Parameter names: a family's parameters have pathdep names (``fc0.weight``, ...). A module whose
``named_parameters`` differ is accepted with ``keys="order"`` (the i-th parameter is the family's
i-th; shapes must agree) or ``keys={module name: family name}``; otherwise the names must match.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from pathdep import store as st
from pathdep.errors import IncompatibleError, PathdepError
from pathdep.models.base import Model, Params
from pathdep.registry import MODELS, TASKS
from pathdep.sources.probes import ProbeData, Probes
from pathdep.spec import valid_name
from pathdep.tasks.base import Task
from pathdep.sources import probes as pr
from pathdep.sources.external import (
    MODEL_KINDS, PROBES_FILE, TRAIN_LOG_FILE, ExternalStudy, claim_study, run_record, write_checkpoint, write_record,
)

Keys = Mapping[str, str] | Literal["order"] | None


def _factory_path(fn: Callable[[], nn.Module]) -> str:
    qual = getattr(fn, "__qualname__", "")
    if "<" in qual or not getattr(fn, "__module__", None):
        raise PathdepError(f"The 'model' factory {fn!r} must be a module-level function (a lambda or a nested "
                           "function cannot be found again when the study is read).")
    return f"{fn.__module__}:{qual}"


class Recorder:
    """Writes checkpoints of a user's runs into ``store`` as the study ``study``; see the module docstring."""

    def __init__(
        self,
        store: str | Path,
        study: str,
        *,
        task: str,
        task_args: dict[str, Any] | None = None,
        model: str | Callable[[], nn.Module],
        model_args: dict[str, Any] | None = None,
        hooks: tuple[str, ...] | None = None,
        keys: Keys = None,
        description: str = "",
        probes: Probes | None = None,
        train_data: ProbeData | None = None,
        train_hashes: Iterable[str] | None = None,
    ) -> None:
        if task not in TASKS:
            raise PathdepError(f"The 'task' parameter of Recorder must be one of {TASKS.names()}. Got {task!r} instead.")
        if isinstance(model, str):
            if model not in MODELS:
                raise PathdepError(f"The 'model' parameter of Recorder must be one of {MODELS.names()} or an nn.Module "
                                   f"factory. Got {model!r} instead.")
            model_spec = {"kind": "family", "name": model,
                          "args": MODELS[model].args.model_validate(model_args or {}).model_dump(mode="json")}
        else:
            model_spec = {"kind": "factory", "factory": _factory_path(model), "hooks": list(hooks) if hooks else None}
        task_spec = {"kind": "registry", "name": task,
                     "args": TASKS[task].args.model_validate(task_args or {}).model_dump(mode="json")}
        self.store, self.name, self.keys = Path(store), study, keys
        self.factories = {} if isinstance(model, str) else {model_spec["factory"]: model}
        ev = _evaluation_data(task, task_spec["args"], model_spec, self.factories, probes, train_data, train_hashes)
        if ev.probes is not None:
            task_spec["probes"] = ev.probes
        meta = {"name": study, "source": "recorder", "description": description, "model": model_spec, "task": task_spec}
        if ev.overlap is not None:
            meta["probe_overlap"] = ev.overlap
        root = st.study_dir(self.store, study)
        with st.locked(root):
            if ev.blob is not None and not (root / "study.json").is_file():
                st.write_atomic(root / PROBES_FILE, ev.blob)
            old = claim_study(self.store, study, meta, ("source", "model", "task"))
            if ev.overlap is not None and old.get("probe_overlap") != ev.overlap:
                st.write_json(root / "study.json", old | {"probe_overlap": ev.overlap})
        if ev.overlap is not None:
            pr.warn_overlap(study, ev.overlap, ev.sizes)
        self._study = ExternalStudy.open(self.store, study, self.factories)
        self._shapes = _shapes(self._study)

    def study(self) -> ExternalStudy:
        """The study as recorded so far (reading API of :class:`pathdep.Study`)."""
        return ExternalStudy.open(self.store, self.name, self.factories)

    def save(self, run: str, step: int, module_or_params: nn.Module | Mapping[str, Tensor],
             loss: float | None = None, *, init_seed: int | None = None, data_seed: int | None = None) -> None:
        """Write ``run``'s parameters at ``step`` (a module or a dict of tensors, no run axis).

        ``loss`` (the training loss at that step) goes into the run's training log.
        """
        if step < 0:
            raise PathdepError(f"The 'step' parameter of Recorder.save must be >= 0. Got {step} instead.")
        if not valid_name(run):
            raise PathdepError(f"The 'run' parameter of Recorder.save must start with a letter or digit, then letters, digits, '_', '.', '+' "
                               f"or '-'. Got {run!r} instead.")
        params = self._params(module_or_params)
        write_record(self.store, self.name, run_record(run, "base", init_seed, data_seed, source="recorder"))
        write_checkpoint(self.store, self.name, run, step, params, {"source": {"kind": "recorder", "study": self.name}})
        if loss is not None:
            self.log_loss(run, {step: loss})

    def log_loss(self, run: str, losses: Mapping[int, float]) -> None:
        """Add ``{step: training loss}`` of ``run`` (saved already) to its training log."""
        path = st.run_dir(self.store, self.name, run) / TRAIN_LOG_FILE
        log = st.read_json(path) if path.is_file() else {}
        log |= {str(int(s)): float(v) for s, v in losses.items()}
        st.write_json(path, log)

    def _params(self, obj: nn.Module | Mapping[str, Tensor]) -> Params:
        got = dict(obj.named_parameters()) if isinstance(obj, nn.Module) else dict(obj)
        got = {k: v.detach().clone().float() for k, v in got.items()}
        renamed = _rename(got, self._shapes, self.keys)
        for k, shape in self._shapes.items():
            if k not in renamed:
                raise IncompatibleError(f"The parameters saved for study {self.name!r} lack {k!r} (shape {shape}); "
                                        f"they have {sorted(got)}. Pass keys='order' or a name mapping if only the names differ.")
            if tuple(renamed[k].shape) != shape:
                raise IncompatibleError(f"Parameter {k!r} has shape {tuple(renamed[k].shape)}; the model expects {shape}.")
        extra = sorted(set(renamed) - set(self._shapes))
        if extra:
            raise IncompatibleError(f"Parameter {extra[0]!r} is not one of the model's: {sorted(self._shapes)}.")
        return renamed


@dataclass(frozen=True)
class _Evaluation:
    """What a Recorder stores about its evaluation data."""

    probes: dict[str, Any] | None = None  # the task spec's "probes" entry (file, sha256, set sizes)
    blob: bytes | None = None  # the probe sets as safetensors bytes
    overlap: dict[str, int] | None = None  # examples of each measured set found in the declared training data
    sizes: dict[str, int] = field(default_factory=dict)  # examples of each measured set


def _evaluation_data(task: str, args: dict[str, Any], model_spec: dict[str, Any], factories, probes: Probes | None,
                     train_data: ProbeData | None, train_hashes: Iterable[str] | None) -> _Evaluation:
    """The user's probe sets (validated, encoded) and their overlap with the declared training data."""
    declared = train_data is not None or train_hashes is not None
    if probes is None and not declared:
        return _Evaluation()
    built = TASKS[task].build(TASKS[task].args.model_validate(args))
    splits = pr.user_splits(probes, built) if probes is not None else None
    spec = blob = None
    if splits is not None:
        _check_properties(pr.with_user_probes(built, splits), MODEL_KINDS[model_spec["kind"]](model_spec, built, factories))
        blob = pr.encode_splits(splits)
        spec = {"file": PROBES_FILE, "sha256": st.sha256(blob), "sets": {k: len(v) for k, v in splits.items()}}
    measured = {k: v for k, v in (splits or {"test": built.test, **built.probes}).items() if k != "train"}
    overlap = pr.probe_overlap(measured, _train_set(built, train_data, train_hashes)) if declared else None
    return _Evaluation(spec, blob, overlap, {k: len(v) for k, v in measured.items()})


def _train_set(task, train_data: ProbeData | None, train_hashes: Iterable[str] | None) -> set[str]:
    """Hashes of the training examples the user declared (data in the task's dtype, and given hashes)."""
    out = set(train_hashes or ())
    if train_data is not None:
        out |= set(pr.example_hashes(pr.as_split(train_data, task.train, "train_data").x))
    return out


def _check_properties(task: Task, model: Model) -> None:
    """Fail before anything is stored, not at measurement time, when the task's own properties read a
    probe set the user left out."""
    try:
        params = {k: v.unsqueeze(0) for k, v in model.init(torch.Generator().manual_seed(0)).items()}
        with torch.no_grad():
            task.extra_properties(model, params)
    except KeyError as e:
        raise PathdepError(f"Task {task.name!r} reads the probe set {e.args[0]!r} for its properties; give a set of that "
                           f"name in 'probes' (got {sorted(task.probes)} besides 'test').") from None


def _shapes(study: ExternalStudy) -> dict[str, tuple[int, ...]]:
    """Parameter names and shapes (in order) of the study's model."""
    model = study.model()
    shapes = getattr(model, "param_shapes", None)
    if callable(shapes):
        return shapes()
    return {k: tuple(v.shape) for k, v in model.init(torch.Generator().manual_seed(0)).items()}


def _rename(got: Params, shapes: dict[str, tuple[int, ...]], keys: Keys) -> Params:
    if keys is None:
        return got
    if keys == "order":
        if len(got) != len(shapes):
            raise IncompatibleError(f"keys='order' needs as many parameters as the model has ({len(shapes)}: "
                                    f"{list(shapes)}); got {len(got)}: {list(got)}.")
        return dict(zip(shapes, got.values()))
    if isinstance(keys, Mapping):
        return {keys.get(k, k): v for k, v in got.items()}
    raise PathdepError(f"The 'keys' parameter of Recorder must be None, 'order' or a mapping. Got {json.dumps(str(keys))} instead.")
