"""A study: the runs a spec describes, trained into a store, and read back for measurement.

>>> import tempfile
>>> study = Study.from_dict({"name": "tiny", "process": {"task": "two_features", "steps": 4,
...     "batch_size": 8, "model_args": {"hidden": [4]}}, "seeds": {"init": 2}}, store=tempfile.mkdtemp())
>>> study.run()
>>> study.steps("base-i1-d0")
[0, 4]
"""

from __future__ import annotations


import logging
import re
import shutil
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, as_completed
from itertools import groupby
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import Tensor

from pathdep import store as st
from pathdep.cost import check_cost
from pathdep.errors import SpecError, StoreError
from pathdep.models.base import Model
from pathdep.growth import Growth, plan_growth
from pathdep.spec import (RunPlan, StudySpec, build_process, content_hash, continues_exactly, load_toml, parse_spec,
                          plan_runs, run_definitions)
from pathdep.tasks.base import Task
from pathdep.train.engine import RunState, fresh_state, train_population

log = logging.getLogger("pathdep")

DEFAULT_STORE = Path("pathdep-store")
Progress = Callable[[str, int, int], None]  # (label, done, total)


class Study(st.StoredStudy):
    """The runs of one spec in one store. Construct with :meth:`from_toml`, :meth:`from_dict` or :meth:`open`.

    A spec whose estimated cost passes :data:`pathdep.cost.LIMITS` is refused before its runs
    are planned, unless ``force=True``.
    """

    def __init__(self, spec: StudySpec, store: str | Path | None = None, source: str | None = None,
                 force: bool = False) -> None:
        check_cost(spec, force)
        self.spec = spec
        self.store = Path(store) if store is not None else DEFAULT_STORE
        self.source = source
        self.plan = plan_runs(spec)
        self._by_name = {r.name: r for r in self.plan}
        self._definitions = run_definitions(self.plan)
        self._check_interventions()

    # --- construction --------------------------------------------------------------------
    @classmethod
    def from_toml(cls, path: str | Path, store: str | Path | None = None, force: bool = False) -> Study:
        return cls(load_toml(path), store, Path(path).read_text(), force=force)

    @classmethod
    def from_dict(cls, data: dict[str, Any], store: str | Path | None = None, force: bool = False) -> Study:
        return cls(parse_spec(data), store, force=force)

    @classmethod
    def open(cls, store: str | Path, name: str, factories: Mapping[str, Callable[[], Any]] | None = None) -> Study:
        """A study already in a store, from its saved spec.

        An imported or recorded study whose model is a factory is built only by a factory the caller
        passes: ``factories={"package.module:function": function}`` (a store's code is never imported).
        """
        meta = st.read_study_meta(Path(store), name)
        if "source" in meta:  # imported or recorded checkpoints (pathdep.sources)
            from pathdep.sources.external import ExternalStudy

            return ExternalStudy.open(store, name, factories)
        return cls(parse_spec(meta["spec"]), store, force=True)  # its cost was accepted when it was created

    # --- identity --------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.spec.name

    def _check_interventions(self) -> None:
        for r in self.plan:
            iv = r.process.intervention
            if iv is not None:
                task, _ = build_process(r.process)
                if iv.kind not in task.intervention_kinds:
                    raise SpecError(
                        f"The 'intervention.kind' field of variant {r.variant!r} must be one of "
                        f"{list(task.intervention_kinds)} for task {task.name!r}. Got {iv.kind!r} instead."
                    )

    # --- training ---------------------------------------------------------------------------
    def run(self, progress: Progress | None = None, max_population: int = 256, executor: Executor | None = None,
            replace: bool = False) -> None:
        """Train every run that is not finished, resuming from the last good checkpoint.

        A study already in the store grows (:mod:`pathdep.growth`): unchanged runs are kept, new
        ones trained, runs whose steps grew continued; runs this spec would change are refused
        (:class:`~pathdep.errors.ChangedRunsError`, nothing written) unless ``replace``.

        Runs of one process are trained as populations of up to ``max_population``. With an
        ``executor`` (``concurrent.futures.ProcessPoolExecutor``, :func:`pathdep.train.local_executor`, :class:`pathdep.train.RayExecutor`,
        anything with ``submit``) the populations are trained in parallel workers; the results are
        the same bits, since a run never depends on its population.
        """
        self._check_plan()  # nothing is written before the plan is known to be trainable
        with st.locked(self.root):
            for path in st.clean_temp(self.root):
                log.info(f"Removed {path}, a temp file an interrupted write left.")
            self._claim_store(replace)
            states = {r.name: self._resume_state(r) for r in self.plan}
            todo = [r for r in self.plan if states[r.name] is None or states[r.name].step < r.process.steps]
            left = {r.name: r.process.steps - (states[r.name].step if states[r.name] else r.fork_step) for r in todo}
            total, done = sum(left.values()), [0]

            def advance(n: int) -> None:
                done[0] += n
                if progress:
                    progress("train", done[0], total)

            advance(0)
            for phase in ([r for r in todo if r.fork is None], [r for r in todo if r.fork is not None]):
                groups = list(self._groups(phase, states, max_population))
                if executor is None:
                    for group in groups:
                        self._train_group(group, states, advance)
                    continue
                spec = self.spec.model_dump(mode="json")
                jobs = {executor.submit(_train_job, str(self.store), spec, [r.name for r in g]): g for g in groups}
                for job in as_completed(jobs):
                    job.result()
                    advance(sum(left[r.name] for r in jobs[job]))

    def _claim_store(self, replace: bool = False) -> Growth:
        """Check this spec against the stored study, then record it (the study's runs are the spec's)."""
        growth = self.growth(replace)
        meta = self.root / "study.json"
        for run in growth.replaced:  # the manifest first: an interrupted removal leaves a run with no checkpoint
            files = self._files(run)
            files.manifest_path.unlink(missing_ok=True)
            shutil.rmtree(files.root)
        if not meta.is_file() or st.read_json(meta)["spec"] != self.spec.model_dump(mode="json"):
            spec = self.spec.model_dump(mode="json")
            st.write_json(meta, {"name": self.name, "spec_hash": self.spec.spec_hash(), "spec": spec})
            if self.source is not None:
                st.write_atomic(self.root / "spec.toml", self.source.encode())
        for run in growth.continued:  # the record names the new length before any step beyond the old one
            self._write_record(self._by_name[run])
        return growth

    def growth(self, replace: bool = False) -> Growth:
        """What training this spec would keep, add, continue, replace and retire of the stored runs.

        Reads the store only. Raises :class:`~pathdep.errors.ChangedRunsError` (listing every
        changed field, old -> new) when the spec changes stored runs, unless ``replace``.
        """
        stored = self._stored_definitions()
        exact = {r.name: continues_exactly(r.process) for r in self.plan}
        return plan_growth(stored, self._definitions, exact, label=f"Study {self.name!r} in store {str(self.store)!r}",
                           replace=replace)

    def _stored_definitions(self) -> dict[str, dict[str, Any] | None]:
        """{run: definition} of every stored run with a checkpoint: from its record, or else from
        the spec the study was last trained from (records written before definitions existed)."""
        meta_path, runs = self.root / "study.json", self.root / "runs"
        if not meta_path.is_file():
            return {}
        meta = st.read_json(meta_path)
        if "spec" not in meta:
            raise StoreError(f"Store {str(self.store)!r} holds an imported study named {self.name!r}; "
                             "nothing was changed. Rename the study or use another --store.")
        try:
            old = run_definitions(plan_runs(parse_spec(meta["spec"])))
        except SpecError:
            old = {}
        out: dict[str, dict[str, Any] | None] = {}
        for path in sorted(runs.iterdir()) if runs.is_dir() else []:
            try:
                stored = st.RunFiles(path).steps()
            except StoreError:
                continue  # a damaged manifest: the run is retrained from the start (see _resume_state)
            if not stored:
                continue  # nothing stored yet: a new run
            record = st.read_json(path / "record.json") if (path / "record.json").is_file() else {}
            out[path.name] = record.get("definition") or old.get(path.name)
        return out

    def _files(self, run: str) -> st.RunFiles:
        self._plan_of(run)
        return st.RunFiles(st.run_dir(self.store, self.name, run))

    def _check_plan(self) -> None:
        """Raise :class:`SpecError` if a run cannot start: each ``init_from`` must name a readable
        checkpoint whose shared params fit the run's model."""
        distinct = {(r.process.init_from, r.process.model_dump_json()): r for r in self.plan if r.process.init_from}
        for (ref, _), r in distinct.items():
            _, model = build_process(r.process)
            try:
                _load_init(fresh_state(model, r.init_seed).params, resolve_checkpoint(self.store, ref))
            except StoreError as e:
                raise SpecError(f"The 'init_from' field of variant {r.variant!r} must name a readable checkpoint "
                                f"(a .safetensors file or STUDY/RUN@STEP). Got {ref!r} instead: {e}") from None

    def _resume_state(self, r: RunPlan) -> RunState | None:
        """The state to train ``r`` on from: every checkpoint is verified, and training restarts
        before the first damaged one (which it rewrites bit for bit)."""
        found = self._files(r.name).resume_point(warn=log.warning)
        if found is None:
            return None
        params, optim, loss_log = st.decode_checkpoint(found[1])
        return RunState(found[0], params, optim, loss_log)

    def _start_state(self, r: RunPlan, have: RunState | None) -> RunState:
        if have is not None:
            return have
        if r.fork is None:
            task, model = build_process(r.process)
            state = fresh_state(model, r.init_seed)
            if r.process.init_from:
                state.params = _load_init(state.params, resolve_checkpoint(self.store, r.process.init_from))
            return state
        params, optim, loss_log = st.decode_checkpoint(self._files(r.parent).read(r.fork_step))
        if r.toward is not None and r.lam:
            other, _, _ = st.decode_checkpoint(self._files(r.toward).read(r.fork_step))
            params = {k: torch.lerp(v, other[k], r.lam) for k, v in params.items()}
        return RunState(r.fork_step, params, optim, loss_log)

    def _groups(self, runs: list[RunPlan], states, max_population: int):
        """Runs that can share one population: same process, same fork, same start step."""

        def key(r: RunPlan) -> tuple:
            start = states[r.name].step if states[r.name] else r.fork_step
            return (r.process.model_dump_json(), r.fork or "", start)

        for _, grp in groupby(sorted(runs, key=key), key=key):
            grp = list(grp)
            for i in range(0, len(grp), max_population):
                yield grp[i : i + max_population]

    def _train_group(self, group: list[RunPlan], states, advance) -> None:
        process = group[0].process
        task, model = build_process(process)
        start = [self._start_state(r, states[r.name]) for r in group]
        for r, s in zip(group, start):
            self._write_record(r)
            if states[r.name] is None:  # the run's own first checkpoint (init, or the fork point)
                self._write_checkpoint(r, s)

        def on_checkpoint(step: int, run_states: list[RunState]) -> None:
            for r, s in zip(group, run_states):
                self._write_checkpoint(r, s)

        train_population(task, model, process, [r.data_seed for r in group], start, on_checkpoint, advance)

    def _write_record(self, r: RunPlan) -> None:
        path = st.run_dir(self.store, self.name, r.name) / "record.json"
        record = _record(r, self._definitions[r.name])
        if not path.is_file() or st.read_json(path) != record:
            st.write_json(path, record)

    def _write_checkpoint(self, r: RunPlan, s: RunState) -> None:
        meta = {"run": r.name, "step": str(s.step), "process": r.process.model_dump_json()}
        self._files(r.name).write(s.step, st.encode_checkpoint(s.params, s.optim, s.log, meta))

    # --- reading ----------------------------------------------------------------------------
    def runs(self) -> pd.DataFrame:
        """One row per planned run."""
        rows = [_record(r, self._definitions[r.name]) for r in self.plan]
        return pd.DataFrame(rows).drop(columns=["process", "definition"])

    def train_log(self, run: str) -> pd.DataFrame:
        """The training loss at every step (of the latest checkpoint)."""
        steps = self.steps(run)
        if not steps:
            return pd.DataFrame({"step": [], "loss": []})
        _, _, loss_log = st.decode_checkpoint(self._files(run).read(steps[-1]))
        return pd.DataFrame({"step": range(len(loss_log)), "loss": loss_log.numpy()})

    @property
    def task(self) -> Task:
        return self._with_probes(build_process(self.spec.process)[0])

    def model(self, run: str | None = None) -> Model:
        proc = self._plan_of(run).process if run is not None else self.spec.process
        return build_process(proc)[1]

    def task_of(self, run: str) -> Task:
        """The task ``run`` is measured on: its process's task, with the study's own probe sets."""
        return self._with_probes(build_process(self._plan_of(run).process)[0])

    # --- the user's own probe sets (pathdep.probe_sets) -------------------------------------
    def set_probes(self, probes: Any) -> dict[str, int]:
        """Measure this study on the user's own probe sets too, from now on (:mod:`pathdep.probe_sets`).

        ``probes``: ``{name: (x, y) | Dataset | file}`` (one set alone is ``test``). The sets replace
        any stored before. Returns, per set, how many of its examples are in the training data.
        """
        from pathdep import probe_sets as ps

        splits = ps.parse_sets(probes, build_process(self.spec.process)[0])
        tasks = [build_process(group[0].process)[0] for group in _by_process(self.plan)]
        for task in tasks[1:]:  # every variant's task must take the sets
            ps.parse_sets({k: (v.x, v.y) for k, v in splits.items()}, task)
        with st.locked(self.root):
            overlap = ps.store_sets(self.root, splits, tasks)
        self._probes = None
        return overlap

    @property
    def probe_overlap(self) -> dict[str, int] | None:
        """Examples of each of the user's probe sets found in the training data (None: no sets)."""
        from pathdep import probe_sets as ps

        meta = ps.read_meta(self.root)
        return None if meta is None else meta["overlap"]

    @property
    def probes_sha256(self) -> str | None:
        """The sha256 of the user's stored probe sets (None: none), part of what a measurement reads."""
        from pathdep import probe_sets as ps

        meta = ps.read_meta(self.root)
        return None if meta is None else meta["sha256"]

    _probes: tuple[str | None, dict[str, Any] | None] | None = None

    def _with_probes(self, task: Task) -> Task:
        from pathdep import probe_sets as ps

        digest = self.probes_sha256
        if self._probes is None or self._probes[0] != digest:
            self._probes = (digest, ps.read_sets(self.root))
        return task if self._probes[1] is None else ps.with_added_probes(task, self._probes[1])

    def final_step(self, run: str) -> int:
        return self._plan_of(run).process.steps

    def _plan_of(self, run: str) -> RunPlan:
        if run not in self._by_name:
            raise StoreError(f"Study {self.name!r} has no run {run!r}; runs are named like {self.plan[0].name!r}.")
        return self._by_name[run]

    def summary(self) -> pd.DataFrame:
        """Final properties of every finished run: one row per run, one column per property."""
        rows = []
        for variant_runs in _by_process(self.plan):
            finished = [r.name for r in variant_runs if self.steps(r.name)[-1:] == [r.process.steps]]
            if not finished:
                continue
            task, model = build_process(variant_runs[0].process)
            with torch.no_grad():
                props = task.properties(model, self.load_population(finished, variant_runs[0].process.steps))
            for i, run in enumerate(finished):
                plan = self._by_name[run]
                rows.append({"run": run, "variant": plan.variant, "group": plan.fork or plan.variant}
                            | {k: float(v[i]) for k, v in props.items()})
        return pd.DataFrame(rows)


def _train_job(store: str, spec: dict[str, Any], runs: list[str]) -> None:
    """Train one population in a worker (the driver holds the study's lock)."""
    study = Study(parse_spec(spec), store, force=True)
    group = [study._plan_of(r) for r in runs]
    study._train_group(group, {r.name: study._resume_state(r) for r in group}, lambda n: None)


def _by_process(plan: list[RunPlan]) -> list[list[RunPlan]]:
    out: dict[str, list[RunPlan]] = {}
    for r in plan:
        out.setdefault(r.process.model_dump_json(), []).append(r)
    return list(out.values())


def _record(r: RunPlan, definition: dict[str, Any]) -> dict[str, Any]:
    iv = r.process.intervention
    return {
        "run": r.name, "variant": r.variant, "init_seed": r.init_seed, "data_seed": r.data_seed,
        "fork": r.fork, "parent": r.parent, "fork_step": r.fork_step, "toward": r.toward, "lam": r.lam,
        "intervention": iv.model_dump(mode="json") if iv else None,
        "run_hash": content_hash(definition), "definition": definition, "process": r.process.model_dump(mode="json"),
    }


def resolve_checkpoint(store: Path, ref: str) -> Path:
    """A checkpoint file from a path, or from ``STUDY/RUN@STEP`` naming a run of a study in ``store``.

    >>> resolve_checkpoint(Path("s"), "char_lm/base-i0-d0@1200")
    PosixPath('s/char_lm/runs/base-i0-d0/step_001200.safetensors')
    """
    m = re.fullmatch(r"([^/@]+)/([^/@]+)@(\d+)", ref)
    if m is None:
        return Path(ref)
    study, run, step = m.groups()
    return st.run_dir(store, study, run) / st.checkpoint_name(int(step))


def _load_init(params: dict[str, Tensor], path: Path) -> dict[str, Tensor]:
    """Replace params present in a checkpoint (same name and shape); the rest keep their init."""
    ckpt, _ = st.read_checkpoint(path)  # verified against its run's manifest
    out = dict(params)
    for k, v in ckpt.items():
        if k in out:
            if out[k].shape != v.shape:
                raise SpecError(
                    f"The 'init_from' checkpoint {path!r} has {k!r} of shape {tuple(v.shape)}; "
                    f"the model expects {tuple(out[k].shape)}."
                )
            out[k] = v.clone()
    return out


