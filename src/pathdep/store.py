"""The store: run records, checkpoints (safetensors) and tables (Parquet) in a directory.

Layout (every path comes from one of the small functions below)::

    STORE/<study>/study.json                 name, spec hash, resolved spec
    STORE/<study>/spec.toml                  the spec as the user wrote it
    STORE/<study>/.lock                      held while a process trains the study
    STORE/<study>/runs/<run>/record.json     the run's plan (process, seeds, fork)
    STORE/<study>/runs/<run>/step_000100.safetensors
    STORE/<study>/runs/<run>/manifest.json   sha256 of every complete checkpoint, written last
    STORE/<study>/tables/measurement.json    the committed measurement: table files, sha256s, basis
    STORE/<study>/tables/gen-N/<name>.parquet  measurement tables (one generation per measurement)
    STORE/<study>/tables/extra/<name>-<hash>.parquet  tables outside the measurement (caches)

Every file is written atomically (temp file, fsync, rename). A checkpoint counts only once the
manifest lists it, and is verified against its sha256 whenever it is read; nothing is ever
unpickled. A checkpoint file holds one run: ``param/<name>``, ``optim/<state>/<name>`` and
``log/loss`` tensors, and one metadata entry ``pathdep``: JSON of ``run``, ``step`` and ``process``
(the resolved process, itself JSON).
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import Tensor

from pathdep.errors import CheckpointError, StoreError
from pathdep.names import RUN_MAX_LENGTH, is_name, valid_name

# --- paths -----------------------------------------------------------------------------------


def study_dir(store: Path, study: str) -> Path:
    return Path(store) / valid_name("study", study)


def run_dir(store: Path, study: str, run: str) -> Path:
    return study_dir(store, study) / "runs" / valid_name("run", run, RUN_MAX_LENGTH)


def checkpoint_name(step: int) -> str:
    return f"step_{step:06d}.safetensors"


def tables_dir(store: Path, study: str) -> Path:
    return study_dir(store, study) / "tables"


# --- atomic writes ---------------------------------------------------------------------------


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the new one, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:  # a full disk or an interrupt: leave no partial temp file behind
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError) and e.filename is None:  # say which file (a full disk does not)
            raise OSError(e.errno, e.strerror, str(path)) from e
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


_TEMP = re.compile(r"\..+\.tmp-(\d+)")


def temp_pid(path: Path) -> int | None:
    """The writer's pid of a temp file :func:`write_atomic` left, or None for any other file."""
    m = _TEMP.fullmatch(path.name)
    return int(m.group(1)) if m else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _live_temp(path: Path) -> bool:
    pid = temp_pid(path)
    return pid is not None and _alive(pid)


def clean_temp(root: Path) -> list[Path]:
    """Delete the temp files interrupted writes left under ``root`` (those of dead pids only).

    Call it holding the study's lock, so that no live writer of the study can own them.
    Returns the deleted paths.
    """
    gone = []
    for path in Path(root).rglob(".*.tmp-*"):
        pid = temp_pid(path)
        if pid is not None and path.is_file() and not _alive(pid):
            path.unlink()
            gone.append(path)
    return gone


def write_json(path: Path, obj: Any) -> None:
    write_atomic(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise StoreError(f"{path} is not valid JSON ({e}); the store is damaged.") from None


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- checkpoints -----------------------------------------------------------------------------


def encode_checkpoint(
    params: dict[str, Tensor], optim: dict[str, Tensor], log: Tensor, meta: dict[str, str]
) -> bytes:
    """One run's state as safetensors bytes (deterministic for equal inputs)."""
    tensors = {f"param/{k}": v.contiguous() for k, v in params.items()}
    tensors.update({f"optim/{k}": v.contiguous() for k, v in optim.items()})
    tensors["log/loss"] = log.contiguous()
    # one metadata entry: safetensors keeps metadata in a hash map whose order varies by process
    return st_save(tensors, metadata={"pathdep": json.dumps(meta, sort_keys=True)})


def decode_checkpoint(data: bytes) -> tuple[dict[str, Tensor], dict[str, Tensor], Tensor]:
    """(params, optimizer state, loss log) of one checkpoint's bytes, each dict in name order.

    safetensors returns tensors in an order that varies between processes; sorting them makes
    everything that iterates over a checkpoint's parameters the same in every process.
    """
    tensors = dict(sorted(st_load(data).items()))
    params = {k.removeprefix("param/"): v for k, v in tensors.items() if k.startswith("param/")}
    optim = {k.removeprefix("optim/"): v for k, v in tensors.items() if k.startswith("optim/")}
    return params, optim, tensors.get("log/loss", torch.zeros(0))


def read_checkpoint(path: str | Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Params and metadata of a checkpoint file, verified against its run's manifest if present.

    The metadata's ``process`` entry is decoded from JSON.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint {str(path)!r} does not exist.")
    data = path.read_bytes()
    manifest = path.parent / "manifest.json"
    if manifest.is_file():
        entry = read_json(manifest).get("checkpoints", {}).get(path.name)
        if entry is not None and entry["sha256"] != sha256(data):
            raise CheckpointError(f"Checkpoint {path} does not match its manifest sha256: the file is damaged.")
    try:
        params, _, _ = decode_checkpoint(data)
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get("pathdep", "{}"))
    except Exception as e:  # safetensors raises its own error types on bad headers
        raise CheckpointError(f"Checkpoint {path} cannot be read as safetensors ({e}).") from None
    if isinstance(meta.get("process"), str):
        meta["process"] = json.loads(meta["process"])
    return params, meta


class RunFiles:
    """The checkpoints of one run on disk."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    def manifest(self) -> dict[str, dict[str, Any]]:
        if not self.manifest_path.is_file():
            return {}
        return read_json(self.manifest_path).get("checkpoints", {})

    def steps(self) -> list[int]:
        """Steps listed in the manifest (complete checkpoints), ascending."""
        return sorted(e["step"] for e in self.manifest().values())

    def write(self, step: int, data: bytes) -> None:
        """Write a checkpoint, then commit it to the manifest (the manifest is written last)."""
        name = checkpoint_name(step)
        write_atomic(self.root / name, data)
        entries = self.manifest()
        entries[name] = {"step": step, "sha256": sha256(data)}
        write_json(self.manifest_path, {"format": 1, "checkpoints": entries})

    def read(self, step: int) -> bytes:
        """Bytes of a complete checkpoint, verified; raises :class:`CheckpointError` otherwise."""
        name = checkpoint_name(step)
        entry = self.manifest().get(name)
        path = self.root / name
        if entry is None:
            raise CheckpointError(f"Run {self.root.name!r} has no complete checkpoint at step {step} ({path}).")
        if not path.is_file():
            raise CheckpointError(f"Checkpoint {path} is listed in the manifest but missing.")
        data = path.read_bytes()
        if sha256(data) != entry["sha256"]:
            raise CheckpointError(
                f"Checkpoint {path} is damaged: its sha256 does not match the manifest (truncated or altered)."
            )
        return data

    def resume_point(self, warn=None) -> tuple[int, bytes] | None:
        """The newest checkpoint before the first damaged one: training on from it rewrites, bit
        for bit, every later checkpoint, the damaged ones included. None: start from the beginning.

        A manifest that is not valid JSON is moved aside to ``manifest.json.damaged`` (every
        checkpoint is then retrained); damage is reported through ``warn``.
        """
        try:
            steps = self.steps()
        except StoreError as e:
            if warn is not None:
                warn(f"{e} Retraining run {self.root.name!r} from the start.")
            os.replace(self.manifest_path, self.manifest_path.with_name("manifest.json.damaged"))
            return None
        good = None
        for step in steps:
            try:
                good = step, self.read(step)
            except CheckpointError as e:
                if warn is not None:
                    back = f"step {good[0]}" if good else "the start"
                    warn(f"{e} Retraining run {self.root.name!r} from {back}.")
                break
        return good

    def latest_good(self, warn=None) -> tuple[int, bytes] | None:
        """The newest checkpoint that verifies; damaged ones are reported through ``warn``."""
        for step in reversed(self.steps()):
            try:
                return step, self.read(step)
            except CheckpointError as e:
                if warn is not None:
                    warn(f"{e} Falling back to the previous checkpoint.")
        return None


# --- tables ----------------------------------------------------------------------------------
#
# A study's tables are one committed set: ``tables/measurement.json`` names every table file and
# its sha256, and what each table was computed from (its ``basis``: the spec hash, the options,
# the checkpoints with their sha256, the planned and the measured steps of every run). A
# measurement writes its tables into a fresh generation directory ``tables/gen-N/`` and commits
# the manifest last, atomically; readers read only tables the committed manifest lists, verified
# against their sha256. Files the manifest does not list are never read. A study without the
# manifest has no measurement (loose ``tables/*.parquet`` files are ignored).

MEASUREMENT_FILE = "measurement.json"
EXTRA_DIR = "extra"


def measurement_path(store: Path, study: str) -> Path:
    return tables_dir(store, study) / MEASUREMENT_FILE


def read_measurement(store: Path, study: str) -> dict[str, Any] | None:
    """The committed measurement manifest of a study, or None when nothing was measured."""
    path = measurement_path(store, study)
    if not path.is_file():
        return None
    m = read_json(path)
    if not isinstance(m, dict) or not isinstance(m.get("tables"), dict) or not isinstance(m.get("bases"), dict):
        raise StoreError(f"{path} is not a measurement manifest (no 'tables' and 'bases'); the store is damaged.")
    return m


def _generation(root: Path) -> Path:
    """A fresh generation directory under ``root`` (tables/): one past every one there."""
    numbers = [int(p.name[4:]) for p in root.glob("gen-*") if p.name[4:].isdigit()]
    path = root / f"gen-{max(numbers, default=0) + 1}"
    path.mkdir(parents=True)
    return path


@contextmanager
def _manifest_update(store: Path, study: str) -> Iterator[dict[str, Any]]:
    """Read, change and commit the measurement manifest under a short lock of its own (a damaged
    manifest, which no reader accepts, is replaced)."""
    root = tables_dir(store, study)
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            manifest = read_measurement(store, study)
        except StoreError:
            manifest = None
        manifest = manifest or {"format": 1, "tables": {}, "bases": {}}
        yield manifest
        used = {e["basis"] for e in manifest["tables"].values() if e.get("basis")}
        manifest["bases"] = {k: v for k, v in manifest["bases"].items() if k in used}
        write_json(measurement_path(store, study), manifest)
    finally:
        os.close(fd)


def basis_id(basis: dict[str, Any]) -> str:
    """Content hash naming a basis (what tables were computed from)."""
    return sha256(json.dumps(basis, sort_keys=True, separators=(",", ":")).encode())[:16]


def commit_measurement(
    store: Path, study: str, tables: dict[str, pd.DataFrame], basis: dict[str, Any]
) -> dict[str, Any]:
    """Write ``tables`` as one generation, then commit them to the manifest with their ``basis``.

    Tables of the previous manifest that are not in ``tables`` stay listed with their own basis.
    The caller holds the study's lock (:func:`locked`). Returns the committed manifest.
    """
    root = tables_dir(store, study)
    root.mkdir(parents=True, exist_ok=True)
    gen = _generation(root)
    entries = {}
    for name, df in tables.items():
        data = df.to_parquet(index=False)
        write_atomic(gen / f"{name}.parquet", data)
        entries[name] = {"file": f"{gen.name}/{name}.parquet", "sha256": sha256(data), "rows": len(df)}
    bid = basis_id(basis)
    with _manifest_update(store, study) as manifest:
        previous = {e["file"] for e in manifest["tables"].values()}
        manifest["bases"][bid] = basis
        for name, e in entries.items():
            manifest["tables"][name] = e | {"basis": bid}
        # files only the previous manifest lists stay one commit longer, for readers still on it
        manifest["retired"] = sorted(previous - {e["file"] for e in manifest["tables"].values()})
    _collect(root, keep={e["file"] for e in manifest["tables"].values()} | previous)
    return manifest


def _collect(root: Path, keep: set[str]) -> None:
    """Delete table files under ``root`` that no manifest in ``keep`` lists, and empty generations."""
    for path in list(root.glob("gen-*/*")) + list(root.glob(f"{EXTRA_DIR}/*")):
        if path.relative_to(root).as_posix() not in keep and path.is_file() and not _live_temp(path):
            path.unlink()
    for gen in root.glob("gen-*"):
        if gen.is_dir() and not any(gen.iterdir()):
            gen.rmdir()


def write_table(store: Path, study: str, name: str, df: pd.DataFrame) -> Path:
    """Add one table outside any measurement (a derived table or a cache) to the manifest.

    Its entry has no basis: it is not part of the measured set and never makes it stale.
    """
    data = df.to_parquet(index=False)
    digest = sha256(data)
    rel = f"{EXTRA_DIR}/{name}-{digest[:16]}.parquet"
    path = tables_dir(store, study) / rel
    write_atomic(path, data)
    with _manifest_update(store, study) as manifest:
        manifest["tables"][name] = {"file": rel, "sha256": digest, "rows": len(df), "basis": None}
    return path


def table_bytes(store: Path, study: str, entry: dict[str, Any]) -> bytes:
    """The bytes of a manifest entry's file, verified against its sha256."""
    rel = Path(str(entry.get("file", "")))
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise StoreError(f"{MEASUREMENT_FILE} of study {study!r} names the table file {str(rel)!r} outside "
                         "its tables directory; the store is damaged.")
    path = tables_dir(store, study) / rel
    if not path.is_file():
        raise StoreError(f"Table file {path} is listed in {MEASUREMENT_FILE} but missing; the store is damaged "
                         f"(run `pathdep verify {study}`, then `pathdep measure {study}`).")
    data = path.read_bytes()
    if sha256(data) != entry["sha256"]:
        raise StoreError(f"Table file {path} does not match its sha256 in {MEASUREMENT_FILE}: the file is damaged "
                         f"(run `pathdep measure {study}` to measure again).")
    return data


def read_table(store: Path, study: str, name: str, manifest: dict[str, Any] | None = None) -> pd.DataFrame:
    """A table of the committed measurement (or of ``manifest``), verified against its sha256."""
    manifest = read_measurement(store, study) if manifest is None else manifest
    entry = (manifest or {}).get("tables", {}).get(name)
    if entry is None:
        raise StoreError(f"Study {study!r} has no table {name!r} in its committed measurement; "
                         f"run `pathdep measure {study}` first.")
    return pd.read_parquet(io.BytesIO(table_bytes(store, study, entry)))


# --- reading a study -------------------------------------------------------------------------


class StoredStudy:
    """Reading a study's checkpoints and tables: shared by trained, imported and recorded studies.

    Subclasses provide ``store``, ``name`` and ``_files(run)`` (which names a missing run clearly).
    """

    store: Path
    name: str

    def _files(self, run: str) -> RunFiles:
        raise NotImplementedError

    @property
    def root(self) -> Path:
        return study_dir(self.store, self.name)

    def profile(self, others: list | None = None):
        """The path-dependence profile from the stored tables (what ``pathdep report`` shows), a
        :class:`pathdep.analyses.finding.Profile`; ``others``: other studies' profiles, for GF."""
        from pathdep.analyses import profile  # the analyses read stores: imported where asked

        return profile(self, others=others)

    def steps(self, run: str) -> list[int]:
        """Complete checkpoint steps of ``run``, ascending."""
        return self._files(run).steps()

    def load(self, run: str, step: int) -> dict[str, Tensor]:
        """One run's parameters at ``step`` (no run axis), verified against the manifest."""
        params, _, _ = decode_checkpoint(self._files(run).read(step))
        return params

    def load_population(self, runs: list[str], step: int) -> dict[str, Tensor]:
        """Several runs' parameters at ``step``, stacked in the given order: each (R, ...)."""
        per_run = [self.load(r, step) for r in runs]
        return {k: torch.stack([p[k] for p in per_run]) for k in per_run[0]}

    _pinned: tuple[dict[str, Any] | None] | None = None

    def write_table(self, name: str, df: pd.DataFrame) -> Path:
        """Add one table outside the measurement (see :func:`write_table`)."""
        return write_table(self.store, self.name, name, df)

    def measurement(self) -> dict[str, Any] | None:
        """The committed measurement manifest (the pinned one inside :meth:`pinned`), or None."""
        return self._pinned[0] if self._pinned is not None else read_measurement(self.store, self.name)

    @contextmanager
    def pinned(self) -> Iterator[dict[str, Any] | None]:
        """Read every table from one manifest, even if a measurement commits meanwhile."""
        manifest = read_measurement(self.store, self.name)
        self._pinned = (manifest,)
        try:
            yield manifest
        finally:
            self._pinned = None

    def read_table(self, name: str) -> pd.DataFrame:
        """A table of the committed measurement, verified against its sha256."""
        return read_table(self.store, self.name, name, self.measurement() or {})

    def has_table(self, name: str) -> bool:
        """Whether the committed measurement lists a table ``name``."""
        return name in (self.measurement() or {}).get("tables", {})


# --- locking ---------------------------------------------------------------------------------


@contextmanager
def locked(study_root: Path) -> Iterator[None]:
    """Hold the study's write lock; a second process is refused with a clear error."""
    study_root.mkdir(parents=True, exist_ok=True)
    path = study_root / ".lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise StoreError(
                f"Study {study_root.name!r} in {study_root.parent} is locked by another pathdep process "
                f"(pid {holder}); wait for it to finish or use another --store."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)


def read_study_meta(store: Path, name: str) -> dict[str, Any]:
    """The ``study.json`` of a study in ``store``; a clear error listing the studies there if absent."""
    path = study_dir(Path(store), name) / "study.json"
    if not path.is_file():
        have = list_studies(Path(store))
        raise StoreError(f"Store {str(store)!r} has no study {name!r}; it holds {have or 'no studies'}.")
    return read_json(path)


def list_studies(store: Path) -> list[str]:
    store = Path(store)
    if not store.is_dir():
        return []
    return sorted(p.name for p in store.iterdir() if is_name(p.name) and (p / "study.json").is_file())
