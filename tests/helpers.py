"""Small specs shared by tests."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

TINY = {
    "name": "tiny",
    "process": {
        "task": "two_features",
        "task_args": {"n_train": 256, "n_test": 200, "n_probe": 200},
        "model": "mlp",
        "model_args": {"hidden": [1, 16], "activations": ["identity", "relu"]},
        "steps": 60,
        "batch_size": 32,
        "optimizer": {"name": "adam", "lr": 3e-3},
        "checkpoints": {"every": 20},
    },
    "seeds": {"init": 3, "data": [0]},
}


SEQ = {
    "name": "seq",
    "process": {
        "task": "induction", "task_args": {"n_train": 64, "n_test": 16},
        "model": "transformer", "model_args": {"n_layers": 1, "d_model": 16, "n_heads": 2},
        "steps": 20, "batch_size": 8, "checkpoints": {"every": 5},
    },
    "seeds": {"init": 3},
}


def tiny(**changes) -> dict:
    """A copy of TINY with dotted changes, e.g. tiny(**{"process.steps": 10})."""
    spec = copy.deepcopy(TINY)
    for key, value in changes.items():
        cur = spec
        parts = key.split(".")
        for p in parts[:-1]:
            cur = cur.setdefault(p, {})
        if value is DELETE:
            cur.pop(parts[-1], None)
        else:
            cur[parts[-1]] = value
    return spec


DELETE = object()


def file_hashes(root: Path, pattern: str = "*.safetensors") -> dict[str, str]:
    """{relative path: sha256} of every matching file below root."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(Path(root).rglob(pattern))
        if p.is_file() and p.name != ".lock"
    }


def properties_at(study, step: int) -> dict:
    """Every run's task properties at ``step``: {name: (R,)}."""
    import torch

    runs = list(study.runs()["run"])
    with torch.no_grad():
        return study.task.properties(study.model(runs[0]), study.load_population(runs, step))
