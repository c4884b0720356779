"""The store: run records, checkpoints (safetensors) and tables (Parquet) in a directory.

Layout (every path comes from one of the small functions below)::

    STORE/<study>/study.json                 name, spec hash, resolved spec
    STORE/<study>/spec.toml                  the spec as the user wrote it
    STORE/<study>/.lock                      held while a process trains the study
    STORE/<study>/runs/<run>/record.json     the run's plan (process, seeds, fork)
    STORE/<study>/runs/<run>/step_000100.safetensors
    STORE/<study>/runs/<run>/manifest.json   sha256 of every complete checkpoint, written last
    STORE/<study>/tables/<name>.parquet      measurements

Every file is written atomically (temp file, fsync, rename). A checkpoint counts only once the
manifest lists it, and is verified against its sha256 whenever it is read; nothing is ever
unpickled. A checkpoint file holds one run: ``param/<name>``, ``optim/<state>/<name>`` and
``log/loss`` tensors, and one metadata entry ``pathdep``: JSON of ``run``, ``step`` and ``process``
(the resolved process, itself JSON).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
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

# --- paths -----------------------------------------------------------------------------------


def study_dir(store: Path, study: str) -> Path:
    return Path(store) / study


def run_dir(store: Path, study: str, run: str) -> Path:
    return study_dir(store, study) / "runs" / run


def checkpoint_name(step: int) -> str:
    return f"step_{step:06d}.safetensors"


def tables_dir(store: Path, study: str) -> Path:
    return study_dir(store, study) / "tables"


# --- atomic writes ---------------------------------------------------------------------------


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the new one, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


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


def write_table(store: Path, study: str, name: str, df: pd.DataFrame) -> Path:
    path = tables_dir(store, study) / f"{name}.parquet"
    write_atomic(path, df.to_parquet(index=False))
    return path


def read_table(store: Path, study: str, name: str) -> pd.DataFrame:
    path = tables_dir(store, study) / f"{name}.parquet"
    if not path.is_file():
        raise StoreError(f"Study {study!r} has no table {name!r} ({path}); run `pathdep measure {study}` first.")
    return pd.read_parquet(path)


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

    def write_table(self, name: str, df: pd.DataFrame) -> Path:
        return write_table(self.store, self.name, name, df)

    def read_table(self, name: str) -> pd.DataFrame:
        return read_table(self.store, self.name, name)

    def has_table(self, name: str) -> bool:
        return (tables_dir(self.store, self.name) / f"{name}.parquet").is_file()


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
    return sorted(p.name for p in store.iterdir() if (p / "study.json").is_file())
