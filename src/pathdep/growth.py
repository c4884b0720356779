"""Growing a study: what a changed spec keeps, adds, continues and replaces of the runs in a store.

Every stored run carries its definition (:func:`pathdep.spec.run_definitions`). A new spec
compares each of its runs with the stored one of the same name:

- same definition: **kept** (a run cut short resumes where it stopped);
- only ``steps`` grew, under a schedule that continues exactly
  (:func:`pathdep.spec.continues_exactly`): **continued** from its last checkpoint, which gives
  the bits of a run trained to the new length from the start;
- anything else: **changed**; refused (:class:`pathdep.errors.ChangedRunsError`, naming every
  changed field, old -> new) unless ``replace``, which retrains those runs from scratch.

Runs without a stored checkpoint are **added**. Stored runs the spec no longer names are
**retired**: they stay on disk, untouched, and are no longer runs of the study.

>>> old = {"process": {"task": "t", "steps": 10, "batch_size": 8}, "init_seed": 0, "data_seed": 0}
>>> new = {"process": {"task": "t", "steps": 20, "batch_size": 8}, "init_seed": 0, "data_seed": 0}
>>> g = plan_growth({"a": old}, {"a": new, "b": new}, {"a": True, "b": True}, label="Study 's'", replace=False)
>>> g.continued, g.added
({'a': (10, 20)}, ('b',))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from pathdep.errors import ChangedRunsError
from pathdep.spec import ProcessSpec

ABSENT = "(absent)"  # how a field one definition lacks is shown
_UNSTORED = object()


@dataclass(frozen=True)
class Change:
    """One field (dotted path of a run's definition) that differs, and the runs it differs in."""

    path: str
    old: Any
    new: Any
    runs: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.path}: {_show(self.old)} -> {_show(self.new)} ({_names(self.runs)})"


@dataclass(frozen=True)
class Growth:
    """How a spec meets the runs already stored for its study (run names, in plan order)."""

    kept: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    continued: dict[str, tuple[int, int]] = field(default_factory=dict)  # run: (old steps, new steps)
    replaced: tuple[str, ...] = ()
    retired: tuple[str, ...] = ()
    changes: tuple[Change, ...] = ()  # why the replaced runs differ

    def lines(self) -> list[str]:
        """A human summary, one line per kind of run (empty for a study new to the store)."""
        out = []
        if self.kept:
            out.append(f"kept {len(self.kept)} stored run(s) whose definition is unchanged")
        if self.added and (self.kept or self.continued or self.replaced or self.retired):
            out.append(f"adding {len(self.added)} new run(s): {_names(self.added)}")
        if self.continued:
            grown = {f"{a} -> {b}" for a, b in self.continued.values()}
            out.append(f"continuing {len(self.continued)} run(s) whose steps grew ({', '.join(sorted(grown))}): "
                       f"{_names(tuple(self.continued))}")
        if self.replaced:
            out.append(f"replacing {len(self.replaced)} changed run(s), retrained from scratch: "
                       + "; ".join(str(c) for c in self.changes))
        if self.retired:
            out.append(f"{len(self.retired)} stored run(s) are no longer in the spec; they stay on disk "
                       f"but are not part of the study: {_names(self.retired)}")
        return out


def plan_growth(
    stored: dict[str, dict[str, Any] | None],
    new: dict[str, dict[str, Any]],
    exact: dict[str, bool],
    *,
    label: str,
    replace: bool,
) -> Growth:
    """Compare stored definitions (runs with a checkpoint; None: not recorded) with a spec's.

    ``new`` maps every run of the spec to its definition, in plan order; ``exact[run]`` says
    whether its schedule continues exactly; ``label`` names the study in messages. Raises
    :class:`ChangedRunsError` for changed runs unless ``replace``.
    """
    kept, added, replaced, continued = [], [], [], {}
    for run, want in new.items():
        have = stored.get(run, _UNSTORED)
        if have is _UNSTORED:
            added.append(run)
        elif have == want:
            kept.append(run)
        elif have is not None and exact[run] and _grown(have, want):
            continued[run] = (have["process"]["steps"], want["process"]["steps"])
        else:
            replaced.append(run)
    changes = _changes({r: stored[r] for r in replaced}, new)
    if replaced and not replace:
        raise ChangedRunsError(
            f"{label} was trained from a different spec: {len(replaced)} stored run(s) would no longer "
            f"match it: {'; '.join(str(c) for c in changes)}.{_why_not_continued(replaced, stored, new, exact)} "
            "Nothing was changed; rerun with --replace (Study.run(replace=True)) to retrain them from scratch, "
            "or use another study name or --store."
        )
    retired = tuple(r for r in stored if r not in new)
    return Growth(tuple(kept), tuple(added), continued, tuple(replaced), retired, tuple(changes))


def _grown(have: dict[str, Any], want: dict[str, Any]) -> bool:
    """Whether ``want`` is ``have`` with a larger ``steps`` and nothing else changed."""
    cut = lambda d: d | {"process": {k: v for k, v in d["process"].items() if k != "steps"}}  # noqa: E731
    return cut(have) == cut(want) and want["process"]["steps"] > have["process"]["steps"]


def _why_not_continued(runs, stored, new, exact) -> str:
    """A hint for runs whose steps grew but whose schedule cannot be continued exactly."""
    grew = [r for r in runs if stored[r] is not None and not exact[r] and _grown(stored[r], new[r])]
    if not grew:
        return ""
    return (f" The steps of {_names(tuple(grew))} grew, but their learning-rate schedule spans the total steps, "
            "so they cannot be continued exactly.")


def _changes(stored: dict[str, dict[str, Any] | None], new: dict[str, dict[str, Any]]) -> list[Change]:
    """Every differing field of the given runs, grouped by (path, old, new)."""
    grouped: dict[tuple[str, str, str], list[str]] = {}
    values: dict[tuple[str, str, str], tuple[Any, Any]] = {}
    for run, have in stored.items():
        if have is None:
            diffs = [("definition", "(not recorded)", "(this spec's)")]
        else:
            a, b = dotted(_full(have)), dotted(_full(new[run]))
            diffs = [(k, a.get(k, ABSENT), b.get(k, ABSENT)) for k in sorted(a.keys() | b.keys())
                     if a.get(k, ABSENT) != b.get(k, ABSENT)]
        for path, old, now in diffs:
            key = (path, repr(old), repr(now))
            grouped.setdefault(key, []).append(run)
            values[key] = (old, now)
    return [Change(k[0], *values[k], tuple(runs)) for k, runs in grouped.items()]


def _full(definition: dict[str, Any]) -> dict[str, Any]:
    """A definition with the defaults it leaves out filled back in, for reading."""
    out = dict(definition)
    try:
        out["process"] = ProcessSpec.model_validate(definition["process"]).model_dump(mode="json")
    except (ValidationError, KeyError, TypeError):
        pass  # a parent's prefix has no steps, or the stored process no longer validates: as stored
    if isinstance(definition.get("fork"), dict):
        fork = dict(definition["fork"])
        for key in ("parent", "toward"):
            if isinstance(fork.get(key), dict):
                fork[key] = _full(fork[key])
        out["fork"] = fork
    return out


def dotted(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested dict as one level of dotted keys (an empty dict stays a value).

    >>> dotted({"process": {"steps": 4, "optimizer": {"lr": 0.1}}, "seeds": {}})
    {'process.steps': 4, 'process.optimizer.lr': 0.1, 'seeds': {}}
    """
    out: dict[str, Any] = {}
    for k, v in d.items():
        path = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out |= dotted(v, path + ".")
        else:
            out[path] = v
    return out


def _show(v: Any) -> str:
    return v if v is ABSENT else repr(v)


def _names(runs: tuple[str, ...], limit: int = 6) -> str:
    shown = ", ".join(runs[:limit])
    return shown + (f" and {len(runs) - limit} more" if len(runs) > limit else "")
