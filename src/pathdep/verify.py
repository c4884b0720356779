"""Verify a store: every checkpoint and every table against the sha256 its manifest records.

:func:`verify_study` reads a study's files directly (never through its spec), so a damaged
``study.json`` or run manifest is reported, not raised. Damage is what a reader would refuse: a
manifest that is not valid JSON, a listed file that is missing or fails its sha256. Notes are
harmless leftovers: temp files of interrupted writes, checkpoint files no manifest lists yet.

>>> import tempfile
>>> verify_study(tempfile.mkdtemp(), "none").damaged
['study.json: missing']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pathdep import store as st
from pathdep.errors import StoreError


@dataclass
class StudyCheck:
    """What :func:`verify_study` found in one study."""

    study: str
    runs: int = 0
    checkpoints: int = 0  # listed checkpoints that verified
    tables: int = 0  # listed tables that verified
    damaged: list[str] = field(default_factory=list)  # "path: why", relative to the study
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.damaged


def _check_runs(root: Path, out: StudyCheck) -> None:
    runs = sorted(p for p in (root / "runs").glob("*") if p.is_dir()) if (root / "runs").is_dir() else []
    out.runs = len(runs)
    for run in runs:
        files = st.RunFiles(run)
        rel = run.relative_to(root).as_posix()
        try:
            listed = files.manifest()
        except StoreError:
            out.damaged.append(f"{rel}/manifest.json: not valid JSON (`pathdep run` retrains the run)")
            continue
        for name, entry in sorted(listed.items()):
            try:
                files.read(entry["step"])
                out.checkpoints += 1
            except StoreError:
                why = "missing" if not (run / name).is_file() else "sha256 does not match the manifest"
                out.damaged.append(f"{rel}/{name}: {why} (`pathdep run` retrains it)")
        loose = sorted(p.name for p in run.glob("step_*.safetensors") if p.name not in listed)
        if loose:
            out.notes.append(f"{rel}: {len(loose)} checkpoint file(s) not in the manifest (uncommitted): {loose[:3]}")


def _check_tables(store: Path, name: str, out: StudyCheck) -> None:
    try:
        manifest = st.read_measurement(store, name)
    except StoreError:
        out.damaged.append(f"tables/{st.MEASUREMENT_FILE}: not a valid measurement manifest (measure again)")
        return
    for table, entry in sorted((manifest or {}).get("tables", {}).items()):
        try:
            st.table_bytes(store, name, entry)
            out.tables += 1
        except StoreError:
            path = st.tables_dir(store, name) / entry["file"]
            why = "missing" if not path.is_file() else "sha256 does not match the manifest"
            out.damaged.append(f"tables/{entry['file']} (table {table!r}): {why} (measure again)")


def _check_probes(root: Path, meta: dict, out: StudyCheck) -> None:
    """The user's probe sets, where a study has them, against the sha256 recorded for them."""
    record = root / "probes.json"
    try:
        listed = st.read_json(record) if record.is_file() else (meta.get("task") or {}).get("probes")
    except StoreError:
        out.damaged.append("probes.json: not valid JSON (give the probe sets again)")
        return
    if not listed:
        return
    path = root / listed.get("file", "probes.safetensors")
    if not path.is_file() or st.sha256(path.read_bytes()) != listed.get("sha256"):
        why = "missing" if not path.is_file() else "sha256 does not match its record"
        out.damaged.append(f"{path.name}: {why} (give the probe sets again)")


def verify_study(store: str | Path, name: str) -> StudyCheck:
    """Check every checksum of study ``name`` in ``store``: run manifests, checkpoints, tables, probe sets."""
    store = Path(store)
    root = st.study_dir(store, name)
    out = StudyCheck(name)
    if not (root / "study.json").is_file():
        out.damaged.append("study.json: missing")
        return out
    try:
        _check_probes(root, st.read_json(root / "study.json"), out)
    except StoreError:
        out.damaged.append("study.json: not valid JSON")
    _check_runs(root, out)
    _check_tables(store, name, out)
    temps = [p for p in root.rglob(".*.tmp-*") if st.temp_pid(p) is not None]
    if temps:
        out.notes.append(f"{len(temps)} temp file(s) of interrupted writes (the next `pathdep run` removes them)")
    return out


def verify_store(store: str | Path, names: list[str] | None = None) -> list[StudyCheck]:
    """:func:`verify_study` of ``names`` (default: every study of the store)."""
    return [verify_study(store, n) for n in (st.list_studies(Path(store)) if names is None else names)]
