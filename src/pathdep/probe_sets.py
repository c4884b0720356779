"""A trained study's extra probe sets: the user's own evaluation data, stored with the study.

A spec-trained study is measured on its task's splits (``test`` and the task's probe sets). A
researcher who holds out data of their own adds it with :meth:`pathdep.study.Study.set_probes`
(or ``pathdep measure STUDY --probes NAME=FILE``): each set is a pair ``(x, y)`` of tensors or
arrays, a torch ``Dataset`` of ``(x, y)`` items, or a ``.safetensors`` / ``.npz`` file holding
``x`` and ``y``, with the task's example shape. The sets are stored once in the study folder
(``probes.safetensors``, its sha256 and the sets' sizes in ``probes.json``) and every later
measurement uses them, so the same store gives the same tables in any process:

- a set named ``test`` replaces the task's test split; any other name is measured beside the
  task's probe sets (a set named like one of them replaces it); ``train`` is refused (a trained
  study's training data is its spec's);
- the task's training split is known, so every set is checked against it: the examples found in
  it (by a hash of their bytes) are counted in ``probes.json`` (``study.probe_overlap``), a
  warning is logged and the report says so at its top;
- the measurement records the sets' sha256: replacing them makes the committed measurement stale.

>>> import tempfile, torch
>>> from pathdep.study import Study
>>> study = Study.from_dict({"name": "tiny", "process": {"task": "two_features", "steps": 2,
...     "batch_size": 8, "model_args": {"hidden": [4]}}}, store=tempfile.mkdtemp())
>>> x = study.task.test.x[:5]
>>> study.set_probes({"mine": (x, torch.ones(5))})
{'mine': 0}
>>> len(study.task.probes["mine"]), "ood" in study.task.probes  # beside the task's own sets
(5, True)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pathdep import store as st
from pathdep.errors import SpecError, StoreError
from pathdep.sources.probes import Probes, as_split, decode_splits, encode_splits, example_hashes, probe_overlap, warn_overlap
from pathdep.spec import valid_name
from pathdep.tasks.base import Split, Task

PROBES_FILE = "probes.safetensors"
PROBES_META = "probes.json"


def parse_sets(probes: Probes, task: Task) -> dict[str, Split]:
    """The user's named sets in ``task``'s dtypes and example shape; one set given alone is ``test``."""
    named = dict(probes) if isinstance(probes, Mapping) else {"test": probes}
    if not named:
        raise SpecError("The 'probes' parameter must name at least one probe set. Got none instead.")
    for name in named:
        if not valid_name(str(name)) or "/" in str(name) or str(name) == "train":
            raise SpecError(f"A probe set name must start with a letter or digit, then letters, digits, '_', '.', "
                               f"'+' or '-', and not be 'train' (the spec's training data). Got {name!r} instead.")
    return {str(k): as_split(v, task.train, str(k)) for k, v in named.items()}


def with_added_probes(task: Task, splits: Mapping[str, Split]) -> Task:
    """``task`` also measured on ``splits``: ``test`` replaces its test split, others join its probe sets."""
    extra = {k: v for k, v in splits.items() if k != "test"}
    return dataclasses.replace(task, test=splits.get("test", task.test), probes={**task.probes, **extra})


def store_sets(root: Path, splits: Mapping[str, Split], train_tasks: Iterable[Task]) -> dict[str, int]:
    """Write ``splits`` into the study folder ``root`` (atomically: sets first, then their record)
    and return how many examples of each are in the training split of any of ``train_tasks``."""
    train = set().union(*(example_hashes(t.train.x) for t in train_tasks))
    overlap = probe_overlap(splits, train)
    blob = encode_splits(splits)
    st.write_atomic(root / PROBES_FILE, blob)
    st.write_json(root / PROBES_META, {"file": PROBES_FILE, "sha256": st.sha256(blob),
                                       "sets": {k: len(v) for k, v in splits.items()}, "overlap": overlap})
    warn_overlap(root.name, overlap, {k: len(v) for k, v in splits.items()})
    return overlap


def read_meta(root: Path) -> dict[str, Any] | None:
    """The record of a study's stored sets (None: the study has none)."""
    path = root / PROBES_META
    return st.read_json(path) if path.is_file() else None


def read_sets(root: Path) -> dict[str, Split] | None:
    """A study's stored sets, verified against their sha256 (None: the study has none)."""
    meta = read_meta(root)
    if meta is None:
        return None
    path = root / PROBES_FILE
    data = path.read_bytes() if path.is_file() else b""
    if st.sha256(data) != meta.get("sha256"):
        raise StoreError(f"The probe sets {str(path)!r} are missing or do not match the sha256 in "
                            f"{str(root / PROBES_META)!r}; the store is damaged. Give them again with set_probes "
                            "(pathdep measure --probes).")
    return decode_splits(data)
