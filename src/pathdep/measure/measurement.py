"""A measurement as one committed unit: what its tables were computed from, and whether that still holds.

:func:`measure_study` commits its tables with a *basis* (:func:`basis`): the study's spec hash,
the :class:`~pathdep.measure.study.MeasureOptions`, the planned and the measured steps of every
run, the sha256 of every checkpoint read and of the study's own probe sets
(:mod:`pathdep.probe_sets`). :func:`measurement_status` compares a study's committed measurement
with its store now:

- ``none``: nothing committed (a store without ``tables/measurement.json`` has no measurement;
  loose table files of older versions are ignored);
- ``complete``: every planned run and step is measured, from the checkpoints and spec there now;
- ``partial``: some planned runs or steps were not measured (unfinished or added runs);
- ``stale``: a checkpoint or the spec changed since the tables were computed;
- ``mixed``: table files are missing, damaged, or lie beside the committed set unlisted.

>>> MeasurementStatus("partial", ["partial: measured 2 of 4 planned runs"]).ok
False
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pathdep import store as st

STATES = ("none", "complete", "partial", "stale", "mixed")
_WORST = {"mixed": 4, "stale": 3, "partial": 2, "complete": 1, "none": 0}
_SHOWN = 4  # runs or checkpoints named in a reason before "+N more"


@dataclass(frozen=True)
class MeasurementStatus:
    """The state of a study's committed measurement (one of :data:`STATES`) and why."""

    state: str
    reasons: list[str] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.state == "complete"

    def line(self) -> str:
        """One line for a listing: the state, and its first reason when not complete."""
        if self.state == "complete":
            return f"complete ({len(self.tables)} tables)"
        return self.reasons[0] if self.reasons else self.state


def spec_hash(study: Any) -> str:
    """The hash of what a study's checkpoints were made from (the spec, or an external study's meta)."""
    spec = getattr(study, "spec", None)
    if hasattr(spec, "spec_hash"):
        return spec.spec_hash()
    meta = getattr(study, "meta", {})
    return st.sha256(json.dumps(meta, sort_keys=True, default=str).encode())[:16]


def planned_steps(study: Any, steps: list[int] | tuple[int, ...] | None) -> dict[str, list[int]]:
    """{run: the checkpoint steps a measurement with option ``steps`` should cover}, every planned run.

    A run's final step is always planned; a fork child's steps start at its fork step. External
    studies (no checkpoint schedule) plan the steps their runs have.
    """
    out = {}
    for r in study.plan:
        schedule = getattr(r.process, "checkpoint_steps", None)
        have = ([s for s in schedule() if s >= getattr(r, "fork_step", 0)] if schedule is not None
                else study.steps(r.name))
        keep = set(have if steps is None else steps)
        out[r.name] = [s for s in have if s in keep or s == have[-1]]  # (a run without steps plans none)
    return out


def _options_json(options: Any) -> dict[str, Any]:
    d = dataclasses.asdict(options)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def basis(study: Any, measured: dict[str, list[int]], options: Any) -> dict[str, Any]:
    """What tables measuring ``measured`` ({run: steps}) with ``options`` are computed from."""
    opts = _options_json(options)
    checkpoints = []
    for run, steps in measured.items():
        entries = study._files(run).manifest()
        for step in sorted(set(steps) | ({0} if st.checkpoint_name(0) in entries else set())):
            checkpoints.append([run, step, entries[st.checkpoint_name(step)]["sha256"]])
    return {"spec_hash": spec_hash(study), "probes": getattr(study, "probes_sha256", None), "options": opts,
            "planned": planned_steps(study, opts["steps"]),
            "measured": {r: list(s) for r, s in measured.items()}, "checkpoints": checkpoints}


def _more(items: list[str]) -> str:
    shown = ", ".join(items[:_SHOWN])
    return shown + (f" (+{len(items) - _SHOWN} more)" if len(items) > _SHOWN else "")


def _basis_problems(study: Any, b: dict[str, Any], manifests: dict[str, dict]) -> tuple[list[str], list[str]]:
    """(stale reasons, partial reasons) of one basis against the store now."""
    stale, partial = [], []
    now = spec_hash(study)
    if b["spec_hash"] != now:
        stale.append(f"the spec changed since the measurement (hash {b['spec_hash']} then, {now} now)")
    probes = getattr(study, "probes_sha256", None)
    if b.get("probes") != probes:
        stale.append("the study's own probe sets changed since the measurement" if probes and b.get("probes") else
                     "probe sets were added since the measurement" if probes else
                     "the probe sets the measurement used are gone")
    changed = []
    for run, step, digest in b["checkpoints"]:
        if run not in manifests:
            try:
                manifests[run] = study._files(run).manifest()
            except st.StoreError:
                manifests[run] = {}
        entry = manifests[run].get(st.checkpoint_name(step))
        if entry is None or entry["sha256"] != digest:
            changed.append(f"{run}@{step}")
    if changed:
        stale.append(f"{len(changed)} checkpoint(s) changed or vanished since the measurement: {_more(changed)}")
    planned = planned_steps(study, b["options"]["steps"])
    measured = b["measured"]
    unmeasured = [r for r in planned if r not in measured]
    if unmeasured:
        partial.append(f"measured {len(planned) - len(unmeasured)} of {len(planned)} planned runs; "
                       f"not measured: {_more(unmeasured)}")
    missing = [f"{r}@{s}" for r in planned if r in measured for s in planned[r] if s not in measured[r]]
    if missing:
        partial.append(f"{len(missing)} planned checkpoint step(s) not measured: {_more(missing)}")
    return stale, partial


def _file_problems(study: Any, manifest: dict[str, Any], check_files: bool) -> list[str]:
    """Listed files missing or damaged, and table files beside the committed set."""
    root = st.tables_dir(study.store, study.name)
    out, listed = [], set()
    for name, entry in manifest["tables"].items():
        listed.add(entry["file"])
        try:
            if check_files:
                st.table_bytes(study.store, study.name, entry)
            elif not (root / entry["file"]).is_file():
                out.append(f"table {name!r} is listed but its file {entry['file']} is missing")
        except st.StoreError:
            out.append(f"table {name!r} ({entry['file']}) is missing or does not match its sha256")
    dirs = {Path(f).parent.as_posix() for f in listed} - {st.EXTRA_DIR}
    strays = [p.relative_to(root).as_posix() for d in sorted(dirs) for p in sorted((root / d).glob("*.parquet"))]
    retired = set(manifest.get("retired", []))
    strays = [s for s in strays if s not in listed | retired] + [p.name for p in sorted(root.glob("*.parquet"))]
    if strays:
        out.append(f"{len(strays)} table file(s) not in the committed measurement: {_more(strays)}")
    return out


def measurement_status(study: Any, check_files: bool = True, manifest: Any = False) -> MeasurementStatus:
    """Whether ``study``'s committed measurement is complete, partial, stale, mixed or none.

    ``check_files`` verifies every table file's sha256 (else only that it exists). ``manifest``:
    the manifest to judge (default: the study's committed, or pinned, one).
    """
    if manifest is False:
        manifest = study.measurement()
    root = st.tables_dir(study.store, study.name)
    loose = sorted(p.name for p in root.glob("*.parquet")) if root.is_dir() else []
    measured_tables = {n: e for n, e in (manifest or {}).get("tables", {}).items() if e.get("basis")}
    if not measured_tables:
        reasons = [f"none: nothing measured: no committed measurement; run `pathdep measure {study.name}`"]
        if loose:
            reasons.append(f"none: {len(loose)} table file(s) outside a committed measurement are ignored: {_more(loose)}")
        return MeasurementStatus("none", reasons)
    found: list[tuple[str, str]] = []  # (state, reason)
    manifests: dict[str, dict] = {}

    def worse(new: str, why: list[str]) -> None:
        found.extend((new, w) for w in why)

    by_basis: dict[str, list[str]] = {}
    for name, entry in measured_tables.items():
        by_basis.setdefault(entry["basis"], []).append(name)
    for bid, names in by_basis.items():
        stale, partial = _basis_problems(study, manifest["bases"][bid], manifests)
        which = "" if len(by_basis) == 1 else f"tables {', '.join(names)}: "
        worse("stale", [which + s for s in stale])
        worse("partial", [which + p for p in partial])
    worse("mixed", _file_problems(study, manifest, check_files))
    found.sort(key=lambda f: -_WORST[f[0]])  # the worst first
    state = found[0][0] if found else "complete"
    return MeasurementStatus(state, [f"{s}: {why}" for s, why in found], sorted(manifest["tables"]))
