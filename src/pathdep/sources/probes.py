"""Probe sets stored with an external study: token-level tasks of imported language models, and
a user's own evaluation data for a recorded study.

The training data of a hub suite is not at hand, so its task is a fixed probe text, encoded once
with the suite's tokenizer (or given as token ids) and stored with the study:

- ``causal``: windows of ``seq_len + 1`` tokens (stride ``seq_len``); every position is scored
  on the next token (a :class:`~pathdep.tasks.sequence.SequenceTask`: per-token loss, prediction,
  correctness and margin, each token one example);
- ``masked``: windows of ``seq_len`` tokens (stride 1) whose middle token is replaced by the mask
  token; the example is that one position and its label the original token (a plain ``ce`` task;
  the model reads out the middle position).

``train`` and ``test`` are the same windows (there is no held-out split of a probe text).

A recorded study may instead be measured on the user's own probe sets (``Recorder(...,
probes=...)``): tensors, a ``Dataset`` or files, stored as ``probes.safetensors`` and swapped for
the task's test and probe splits (:func:`with_user_probes`). Examples are compared with declared
training data by a hash of their bytes (:func:`example_hashes`, :func:`probe_overlap`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load, load_file, save
from torch import Tensor
from torch.utils.data import Dataset

from pathdep.errors import PathdepError, SpecError
from pathdep.spec import valid_name
from pathdep.tasks.base import Split, Task
from pathdep.tasks.sequence import SequenceTask, shift

#: A short English probe text (written for this package) used when none is given.
DEFAULT_TEXT = (
    "The river runs past the old mill and under the stone bridge before it reaches the sea. "
    "In the morning the baker opens the shop, and the first customers buy bread, milk and eggs. "
    "Two plus three is five, and five plus five is ten. The cat sat on the mat; the dog sat on the rug. "
    "When it rains, people carry umbrellas, and when the sun shines, children play in the park. "
    "She said that she would come back tomorrow, but he was not sure that she would. "
    "A B C D E F G, one two three four five six seven, Monday Tuesday Wednesday Thursday Friday. "
    "The committee met on Tuesday to discuss the budget for the next year and agreed to meet again in June."
)


def windows(tokens: Tensor, length: int, stride: int) -> Tensor:
    """Overlapping windows of a 1-D token tensor: (n,) -> (W, length)."""
    if tokens.numel() < length:
        raise PathdepError(f"The probe text has {tokens.numel()} tokens; it needs at least {length} "
                           f"(seq_len {length}). Give a longer text or a smaller seq_len.")
    return tokens.unfold(0, length, stride).contiguous()


def causal_task(tokens: Tensor, seq_len: int, vocab: int) -> SequenceTask:
    """Next-token prediction on every position of the probe windows: x, y (N, seq_len)."""
    split = shift(windows(tokens.long(), seq_len + 1, seq_len))
    return SequenceTask(name="probe_text", train=split, test=split, probes={}, n_outputs=vocab,
                        doc="next-token prediction on a fixed probe text")


def masked_task(tokens: Tensor, seq_len: int, vocab: int, mask_token_id: int | None) -> Task:
    """The middle token of each window masked and predicted: x (N, seq_len), y (N,)."""
    if mask_token_id is None:
        raise PathdepError("A masked-LM probe needs the 'mask_token_id' (the tokenizer's [MASK] id); "
                           "the cache has no tokenizer to read it from, so pass it explicitly.")
    x = windows(tokens.long(), seq_len, 1).clone()
    mid = masked_position(seq_len)
    y = x[:, mid].clone()
    x[:, mid] = mask_token_id
    split = Split(x, y)
    return Task(name="probe_text_masked", train=split, test=split, probes={}, n_outputs=vocab, loss_kind="ce",
                doc="masked-token prediction on a fixed probe text")


def masked_position(seq_len: int) -> int:
    return seq_len // 2


def causal_readout(seq_len: int) -> None:
    return None


#: objective -> (task builder from (tokens, args), the position the model reads out)
OBJECTIVES: dict[str, tuple[Callable[[Tensor, dict[str, Any]], Task], Callable[[int], int | None]]] = {
    "causal": (lambda t, a: causal_task(t, a["seq_len"], a["vocab"]), causal_readout),
    "masked": (lambda t, a: masked_task(t, a["seq_len"], a["vocab"], a.get("mask_token_id")), masked_position),
}


def token_task(tokens: Tensor, args: dict[str, Any]) -> Task:
    """The probe task of ``args['objective']`` ("causal" or "masked") over ``tokens`` (n,)."""
    return OBJECTIVES[args["objective"]][0](tokens, args)


def readout(args: dict[str, Any]) -> int | None:
    return OBJECTIVES[args["objective"]][1](args["seq_len"])


# --- a user's own probe sets (recorded studies) ---------------------------------------------------

#: One probe set as a user gives it: tensors or arrays (x, y), a torch ``Dataset`` of (x, y)
#: items, or a file (.safetensors or .npz) holding ``x`` and ``y``.
ProbeData = Any
#: Named probe sets (``{"test": ..., "ood": ...}``), or one set (it becomes ``test``).
Probes = Any

log = logging.getLogger("pathdep")


def as_split(data: ProbeData, like: Split, name: str) -> Split:
    """One probe set as a :class:`Split` with the dtypes and example shape of ``like`` (a task split)."""
    if isinstance(data, (str, Path)):
        x, y = _read_file(Path(data), name)
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = (torch.as_tensor(np.asarray(v)) if not isinstance(v, Tensor) else v for v in data)
    elif isinstance(data, Dataset) or (hasattr(data, "__getitem__") and hasattr(data, "__len__")):
        items = [data[i] for i in range(len(data))]
        if not items:
            raise SpecError(f"The probe set {name!r} is an empty Dataset.")
        x = torch.stack([torch.as_tensor(np.asarray(i[0])) if not isinstance(i[0], Tensor) else i[0] for i in items])
        y = torch.stack([torch.as_tensor(i[1]) for i in items])
    else:
        raise SpecError(f"The probe set {name!r} must be a pair (x, y), a torch Dataset of (x, y) items, or a "
                           f".safetensors or .npz file with 'x' and 'y'. Got {type(data).__name__} instead.")
    x, y = x.detach().to(like.x.dtype).contiguous(), y.detach().reshape(-1).to(like.y.dtype).contiguous()
    if tuple(x.shape[1:]) != tuple(like.x.shape[1:]) or x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise SpecError(f"The probe set {name!r} must have x (N, {', '.join(map(str, like.x.shape[1:]))}) and y (N,) "
                           f"with N >= 1. Got x {tuple(x.shape)} and y {tuple(y.shape)} instead.")
    return Split(x, y)


def _read_file(path: Path, name: str) -> tuple[Tensor, Tensor]:
    if not path.is_file():
        raise SpecError(f"The probe file {str(path)!r} (set {name!r}) does not exist.")
    if path.suffix == ".safetensors":
        data = load_file(str(path))
    elif path.suffix == ".npz":
        with np.load(path) as npz:
            data = {k: torch.from_numpy(npz[k]) for k in npz.files}
    else:
        raise SpecError(f"The probe file {str(path)!r} must end in .safetensors or .npz. Got {path.suffix!r} instead.")
    if "x" not in data or "y" not in data:
        raise SpecError(f"The probe file {str(path)!r} must hold 'x' and 'y'; it holds {sorted(data)}.")
    return data["x"], data["y"]


def user_splits(probes: Probes, task: Task) -> dict[str, Split]:
    """The user's named probe sets in the task's dtypes; one set given alone is ``test``, and ``test`` is required."""
    named = dict(probes) if isinstance(probes, Mapping) else {"test": probes}
    if "test" not in named:
        raise SpecError(f"The 'probes' parameter must name a 'test' set (it replaces the task's test split). "
                           f"Got sets {sorted(named)} instead.")
    for name in named:
        if not valid_name(str(name)) or "/" in str(name):
            raise SpecError(f"A probe set name must start with a letter or digit, then letters, digits, '_', '.', "
                               f"'+' or '-'. Got {name!r} instead.")
    return {str(k): as_split(v, task.train, str(k)) for k, v in named.items()}


def with_user_probes(task: Task, splits: Mapping[str, Split]) -> Task:
    """``task`` measured on the user's sets: ``test`` replaces its test split, ``train`` (if given) its
    training split, and the other sets replace its probe sets. A solution property read from a set
    the user did not give falls back to ``test_acc``."""
    probes = {k: v for k, v in splits.items() if k not in ("test", "train")}
    prop = task.solution_property
    keep = prop.rsplit("_", 1)[0] in {"train", "test", *probes} or not prop.endswith(("_acc", "_loss"))
    return dataclasses.replace(task, test=splits["test"], train=splits.get("train", task.train), probes=probes,
                               solution_property=prop if keep else "test_acc",
                               solution_ends=task.solution_ends if keep else None)


def encode_splits(splits: Mapping[str, Split]) -> bytes:
    """The probe sets as safetensors bytes (``{name}/x``, ``{name}/y``), deterministic for equal inputs."""
    return save({f"{k}/{part}": getattr(s, part).contiguous() for k, s in sorted(splits.items()) for part in ("x", "y")})


def decode_splits(data: bytes) -> dict[str, Split]:
    tensors = load(data)
    names = sorted({k.rsplit("/", 1)[0] for k in tensors})
    return {n: Split(tensors[f"{n}/x"], tensors[f"{n}/y"]) for n in names}


def example_hashes(x: Tensor) -> list[str]:
    """A hash of each example's bytes: x (N, ...) -> N hex strings (convert x to the task's dtype first).

    >>> a = torch.zeros(3, 2); a[1] = 1
    >>> h = example_hashes(a)
    >>> h[0] == h[2] != h[1]
    True
    """
    rows = x.detach().to("cpu").contiguous().reshape(x.shape[0], -1)
    return [hashlib.blake2b(r.numpy().tobytes(), digest_size=16).hexdigest() for r in rows]


def probe_overlap(splits: Mapping[str, Split], train: set[str]) -> dict[str, int]:
    """How many examples of each probe set have the hash of a declared training example."""
    return {name: sum(h in train for h in example_hashes(s.x)) for name, s in splits.items()}


def overlap_note(study: str, overlap: Mapping[str, int] | None, sizes: Mapping[str, int] | None = None) -> str | None:
    """One sentence when any probe set overlaps the declared training data (None otherwise)."""
    hit = {k: v for k, v in (overlap or {}).items() if v}
    if not hit:
        return None
    which = ", ".join(f"{k}: {v}" + (f" of {sizes[k]}" if sizes and k in sizes else "") for k, v in hit.items())
    return (f"Study {study!r}: probe examples are in the training data you declared ({which}); "
            "measurements on them are not held out.")


def warn_overlap(study: str, overlap: Mapping[str, int], sizes: Mapping[str, int]) -> None:
    """A warning through the ``pathdep`` logger when any probe set overlaps the declared training data."""
    note = overlap_note(study, overlap, sizes)
    if note:
        log.warning(note)
