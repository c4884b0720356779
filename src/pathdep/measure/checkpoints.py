"""Compare two checkpoint files: barriers (raw, weight- and activation-matched), CKA per layer,
behaviour agreement and, when asked for, CKA across layers (which layer of B matches each of A).

Both files must hold the same architecture and task (the ``process`` metadata) and the same
parameter keys and shapes; this is checked before anything is computed, and the first
difference is named in an :class:`~pathdep.errors.IncompatibleError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from pathdep.errors import IncompatibleError, PathdepError, SpecError
from pathdep.measure import behaviour as bh
from pathdep.measure import connectivity as cn
from pathdep.measure import similarity as sim
from pathdep.measure.align import align, probe_batch, raised_note
from pathdep.measure.study import MeasureOptions, alignments, eval_splits, probe_splits
from pathdep.models.base import Params, capture, representation_hooks

#: Process fields that fix what a checkpoint computes and on which data.
IDENTITY_FIELDS = ("model", "model_args", "task", "task_args")


@dataclass(frozen=True)
class Comparison:
    """The result of :func:`compare`: three small tables, and the cross-layer CKA table when asked for."""

    barriers: pd.DataFrame  # split, alignment, aligned, loss_barrier, error_barrier
    cka: pd.DataFrame  # layer, probe, cka, cka_debiased, procrustes
    behaviour: pd.DataFrame  # probe, loss_pearson, loss_spearman, agreement, error_kappa
    definition: str = cn.BARRIER_DEFINITION
    cross_layer: pd.DataFrame | None = None  # linear CKA on the test split: index A's layers, columns B's layers

    def best_matches(self) -> pd.DataFrame:
        """The cross-layer table as text, each row's best match in B marked with ``*``; a ``best`` column names it."""
        if self.cross_layer is None:
            raise PathdepError("This comparison has no cross-layer table; call compare(..., layers='all').")
        best = self.cross_layer.idxmax(axis=1)
        text = self.cross_layer.apply(lambda row: [f"{v:.4f}" + (" *" if col == best[row.name] else "")
                                                   for col, v in row.items()], axis=1, result_type="expand")
        text.columns = self.cross_layer.columns
        return text.assign(best=best).rename_axis("layer").reset_index()

    @property
    def notes(self) -> list[str]:
        """One sentence for each alignment that raised a test-split barrier above the raw one."""
        test = self.barriers[self.barriers["split"] == "test"].set_index("alignment")
        out = []
        for alignment in test.index.drop("none", errors="ignore"):
            pairs = {f"test {q} barrier": (float(test.loc[alignment, f"{q}_barrier"]), float(test.loc["none", f"{q}_barrier"]))
                     for q in ("loss", "error")}
            note = raised_note(alignment, pairs)
            if note:
                out.append(note)
        return out


def check_compatible(a: Params, b: Params, proc_a: dict[str, Any], proc_b: dict[str, Any], names=("A", "B")) -> None:
    """Raise :class:`IncompatibleError` at the first difference in keys, shapes or process identity."""
    only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    if only_a or only_b:
        key, where = (only_a[0], names[0]) if only_a else (only_b[0], names[1])
        other = names[1] if where == names[0] else names[0]
        raise IncompatibleError(f"Parameter {key!r} is in checkpoint {where} but not in checkpoint {other}.")
    for key in sorted(a):
        if a[key].shape != b[key].shape:
            raise IncompatibleError(
                f"Parameter {key!r} has shape {tuple(a[key].shape)} in checkpoint {names[0]} "
                f"and {tuple(b[key].shape)} in checkpoint {names[1]}."
            )
    ida, idb = _identity(proc_a), _identity(proc_b)
    for fld in IDENTITY_FIELDS:
        va, vb = ida[fld], idb[fld]
        if va != vb:
            raise IncompatibleError(
                f"The 'process.{fld}' of checkpoint {names[0]} is {va!r} but {vb!r} in checkpoint {names[1]}; "
                f"only checkpoints of one architecture and task can be compared."
            )


def _identity(proc: dict[str, Any]) -> dict[str, Any]:
    """The identity fields of a process, with arguments validated (so defaults compare equal)."""
    from pathdep.registry import MODELS, TASKS

    out: dict[str, Any] = {}
    for kind, registry in (("model", MODELS), ("task", TASKS)):
        name, args = proc.get(kind), proc.get(f"{kind}_args") or {}
        out[kind] = name
        if name in registry:
            validated = registry[name].args.model_validate(args).model_dump(mode="json")
            out[f"{kind}_args"] = validated
        else:
            out[f"{kind}_args"] = args
    return out


def _read(path: str | Path) -> tuple[Params, dict[str, Any]]:
    from pathdep.store import read_checkpoint

    params, meta = read_checkpoint(path)
    process = meta.get("process")
    if not isinstance(process, dict):
        raise IncompatibleError(f"Checkpoint {str(path)!r} has no 'process' metadata; cannot tell its architecture.")
    return params, process


def compare(ckpt_a: str | Path, ckpt_b: str | Path, *, n_alpha: int = 21,
            layers: str | Sequence[str] | None = None) -> Comparison:
    """Barriers (raw, weight-matched and, where the model's permutation spec allows it,
    activation-matched on the first training examples), per-layer CKA and behaviour statistics
    of two checkpoints.

    ``layers`` (``"all"``, a comma-separated string or a list of representation names) adds
    :attr:`Comparison.cross_layer`: linear CKA between each of those layers of A and each of
    B on the test split, for telling which layer of B matches which of A.
    """
    from pathdep.spec import build_process

    a, proc_a = _read(ckpt_a)
    b, proc_b = _read(ckpt_b)
    check_compatible(a, b, proc_a, proc_b, (str(ckpt_a), str(ckpt_b)))
    task, model = build_process(proc_a)
    wanted = _layers(model, layers)  # checked before anything is computed
    pa = {k: v.unsqueeze(0) for k, v in a.items()}  # populations of one
    pb = {k: v.unsqueeze(0) for k, v in b.items()}
    bars = []
    kinds = alignments(model, MeasureOptions())
    match_x = probe_batch(model, pa, task.train.x) if "activation_matching" in kinds else None
    for alignment in kinds:
        other = align(alignment, model, pa, pb, match_x)
        for split_name, split in eval_splits(task).items():
            res = cn.pair_barriers(task, model, pa, other, split, n_alpha)
            bars.append({"split": split_name, "alignment": alignment, "aligned": alignment != "none",
                         "loss_barrier": float(res["loss_barrier"][0]), "error_barrier": float(res["error_barrier"][0])})
    both = {k: torch.cat([pa[k], pb[k]]) for k in pa}
    cross = None
    cka_rows, beh_rows = [], []
    for probe, split in probe_splits(task).items():
        with capture(set(representation_hooks(model))) as acts, torch.no_grad():
            model.apply(both, split.x.unsqueeze(0).expand(2, *split.x.shape))
        for layer, x in acts.items():
            s = sim.similarity_paired(x[:1], x[1:])
            cka_rows.append({"layer": layer, "probe": probe, **{k: float(v[0]) for k, v in s.items()}})
        if wanted and probe == "test":
            m = sim.cross_layer_cka({k: acts[k][0] for k in wanted}, {k: acts[k][1] for k in wanted})
            cross = pd.DataFrame(m.numpy(), index=pd.Index(wanted, name="layer"), columns=list(wanted))
        ev = bh.evaluate_behaviour(task, model, both, split)
        rows = bh.pair_rows({k: v[:1] for k, v in ev.items()}, {k: v[1:] for k, v in ev.items()})
        beh_rows.append({"probe": probe, **{k: float(v[0]) for k, v in rows.items()}})
    return Comparison(pd.DataFrame(bars), pd.DataFrame(cka_rows), pd.DataFrame(beh_rows), cross_layer=cross)


def _layers(model, layers: str | Sequence[str] | None) -> tuple[str, ...]:
    """The representation names ``layers`` selects ("all", "h0,h1" or a list); () for None."""
    if layers is None:
        return ()
    have = representation_hooks(model)
    if isinstance(layers, str):
        layers = have if layers.strip() == "all" else [p.strip() for p in layers.split(",") if p.strip()]
    unknown = [name for name in layers if name not in have]
    if unknown or not layers:
        raise SpecError(f"The 'layers' parameter of compare (--layers) must be 'all' or a comma-separated list of "
                        f"{', '.join(have)}. Got {','.join(unknown) or ''!r} instead.")
    return tuple(dict.fromkeys(layers))
