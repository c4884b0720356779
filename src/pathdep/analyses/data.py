"""Read-only views of a study's stored measurements, shaped as arrays for the analyses.

:class:`StudyData` reads each table once and hands out arrays: behaviour vectors (runs x
examples), property curves (runs x steps), the reference population. Analyses never train or
measure; when an input is absent they raise :class:`NotMeasured`, which the analysis turns into a
finding marked "not measured in this study".

Each analysis declares in its decorator the tables it reads and the least data it needs
(``@analysis("LMC", tables=("barriers",), min_runs=5)``); the kinds of data it can ask for are
the rows of :data:`COUNTS`. A study with less gets "not measured: the 'barriers' table is
missing" or "not measured: needs >= 5 runs (got 3)" instead of a number computed from too
little. The runs and steps a study's measurement covers come from what was committed with its
tables (:attr:`StudyData.measured`), so a finding needs no table it does not read.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from pathdep.analyses.finding import Finding, not_measured


class NotMeasured(Exception):
    """An analysis's inputs are absent from the study; the message says which and why."""


def soft_correctness(margin: np.ndarray) -> np.ndarray:
    """2 sigmoid(margin) - 1 in (-1, 1): the signed confidence in the true label of each example.

    A behaviour vector built from it is continuous (unlike 0/1 correctness) and bounded (unlike
    raw margins, whose scale grows with training).
    """
    return np.tanh(np.asarray(margin, dtype=float) / 2)


class StudyData:
    """A study's tables and run records, read once. Build with :meth:`of`."""

    def __init__(self, study: Any) -> None:
        self.study = study
        self._tables: dict[str, pd.DataFrame | None] = {}
        self._cache: dict[str, Any] = {}
        self._groups: dict[str, dict[tuple[str, int], pd.DataFrame]] = {}

    @classmethod
    def of(cls, study: Any) -> StudyData:
        return study if isinstance(study, StudyData) else cls(study)

    @property
    def name(self) -> str:
        return self.study.name

    def cached(self, key: str, compute: Callable[[], Any]) -> Any:
        """A value shared by several analyses of one study (e.g. the final clustering)."""
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    # --- records and tables ------------------------------------------------------------------
    @cached_property
    def runs(self) -> pd.DataFrame:
        return self.study.runs()

    def table(self, name: str) -> pd.DataFrame | None:
        if name not in self._tables:
            self._tables[name] = self.study.read_table(name) if self.study.has_table(name) else None
        return self._tables[name]

    def need(self, name: str) -> pd.DataFrame:
        t = self.table(name)
        if t is None or t.empty:
            raise NotMeasured(f"the {name!r} table is missing (run `pathdep measure {self.name}`)")
        return t

    @cached_property
    def measured(self) -> dict[str, set[int]]:
        """{run: steps} the study's measurement covers, as committed with its tables: the measured
        steps of the first table of :data:`COVERAGE` stored (so a study measured with only the
        tables one finding reads knows its runs); for tables committed without that record, the
        runs and steps of the ``properties`` table."""
        manifest = self.study.measurement() if hasattr(self.study, "measurement") else None
        entries, bases = (manifest or {}).get("tables", {}), (manifest or {}).get("bases", {})
        for name in COVERAGE:
            basis = bases.get((entries.get(name) or {}).get("basis") or "")
            if basis and isinstance(basis.get("measured"), dict):
                return {str(r): {int(s) for s in steps} for r, steps in basis["measured"].items()}
        out: dict[str, set[int]] = {}
        props = self.table("properties")
        if props is None or props.empty:
            raise NotMeasured(f"nothing is measured (run `pathdep measure {self.name}`)")
        for run, step in zip(props["run"], props["step"]):
            out.setdefault(str(run), set()).add(int(step))
        return out

    def measured_at(self, step: int) -> set[str]:
        """Runs the measurement covers at ``step``."""
        return {run for run, steps in self.measured.items() if step in steps}

    @cached_property
    def reference(self) -> list[str]:
        """The population of seeds: runs trained from init (no fork), of the plain variant
        ("base", else the most populous variant without an intervention), measured at the end."""
        r = self.runs
        plain = r[r["fork"].isna() & r["intervention"].isna()]
        if plain.empty:
            raise NotMeasured("the study has no runs trained from init without an intervention")
        variant = "base" if (plain["variant"] == "base").any() else plain["variant"].value_counts().index[0]
        names = list(plain.loc[plain["variant"] == variant, "run"])
        measured = self.measured_at(self.final_step)
        names = [n for n in names if n in measured]
        if len(names) < 2:
            raise NotMeasured(needs(2, f"runs of variant {variant!r} measured at the final step", len(names)))
        return names

    @cached_property
    def setup_variants(self) -> dict[str, list[str]]:
        """Runs trained from init without an intervention, by variant, measured at the final step;
        only variants with 2 or more such runs (a within-variant spread needs a pair)."""
        r = self.runs
        plain = r[r["fork"].isna() & r["intervention"].isna()]
        plain = plain[plain["run"].isin(self.measured_at(self.final_step))]
        out = {str(v): list(g["run"]) for v, g in plain.groupby("variant")}
        return {v: runs for v, runs in sorted(out.items()) if len(runs) >= 2}

    @cached_property
    def matched(self) -> pd.DataFrame:
        """One row per intervened run with its variant, window, strength and matched control: the
        run of the plain variant ("base", else the most populous) with the same init and data seeds."""
        columns = ["run", "control", "variant", "kind", "start", "end", "strength"]
        r = self.runs
        treated = r[r["fork"].isna() & r["intervention"].notna()]
        controls = r[r["fork"].isna() & r["intervention"].isna()]
        if treated.empty or controls.empty:
            return pd.DataFrame(columns=columns)
        counts = controls["variant"].value_counts()
        control_variant = "base" if "base" in counts.index else counts.index[0]
        key = controls[controls["variant"] == control_variant].set_index(["init_seed", "data_seed"])["run"]
        rows = []
        for t in treated.itertuples(index=False):
            ctrl = key.get((t.init_seed, t.data_seed))
            if ctrl is not None:
                iv = t.intervention
                rows.append([t.run, ctrl, t.variant, iv["kind"], iv["start"], iv["end"], iv["strength"]])
        return pd.DataFrame(rows, columns=columns)

    @cached_property
    def checkpoints(self) -> list[int]:
        """Steps at which the measurement covers every reference run."""
        steps = [self.measured.get(run, set()) for run in self.reference]
        return sorted(set.intersection(*steps)) if steps else []

    @cached_property
    def final_step(self) -> int:
        """The last step of the study's process (the step the runs' final checkpoints share)."""
        return int(self.study.spec.process.steps)

    @cached_property
    def solution_property(self) -> str:
        return self.study.task.solution_property

    @cached_property
    def probes(self) -> list[str]:
        """Behaviour probes, task probes first (they carry the solution type), then ``test``."""
        return self.probe_order(self.need("behaviour")["probe"].unique())

    def probe_order(self, have: Any) -> list[str]:
        """The probes of ``have`` (names a table holds), task probes first, then ``test``, then the rest."""
        have = {str(p) for p in have}
        order = [*self.study.task.probes, "test"]
        return [p for p in order if p in have] + sorted(have - set(order))

    @property
    def main_probe(self) -> str:
        return self.probes[0]

    # --- arrays ------------------------------------------------------------------------------
    def _behaviour_at(self, probe: str, step: int) -> pd.DataFrame:
        if "behaviour" not in self._groups:
            self._groups["behaviour"] = dict(iter(self.need("behaviour").groupby(["probe", "step"])))
        got = self._groups["behaviour"].get((probe, step))
        if got is None:
            raise NotMeasured(f"no behaviour on probe {probe!r} at step {step}")
        return got

    def behaviour(self, runs: list[str], step: int, column: str, probe: str) -> np.ndarray:
        """One behaviour column as a (R, N) array, runs in the given order."""
        sub = self._behaviour_at(probe, step)
        wide = sub.pivot(index="run", columns="example", values=column)
        missing = [r for r in runs if r not in wide.index]
        if missing:
            raise NotMeasured(f"no behaviour of run {missing[0]!r} at step {step}")
        return wide.loc[runs].to_numpy(dtype=float)

    def behaviour_vectors(self, runs: list[str], step: int, probes: list[str] | None = None) -> np.ndarray:
        """Soft correctness on every probe, concatenated: (R, sum of probe sizes)."""
        return np.concatenate(
            [soft_correctness(self.behaviour(runs, step, "margin", p)) for p in probes or self.probes], axis=1)

    def predictions(self, runs: list[str], step: int, probes: list[str] | None = None) -> np.ndarray:
        """Predicted labels on every probe, concatenated: (R, N)."""
        return np.concatenate([self.behaviour(runs, step, "pred", p) for p in probes or self.probes], axis=1)

    def behaviour_steps(self, runs: list[str]) -> list[int]:
        """Steps at which every one of ``runs`` has behaviour on the main probe."""
        b = self.need("behaviour")
        b = b[(b["probe"] == self.main_probe) & b["run"].isin(runs)]
        counts = b.groupby("step")["run"].nunique()
        return sorted(int(s) for s, c in counts.items() if c == len(set(runs)))

    @cached_property
    def props_wide(self) -> pd.DataFrame:
        """Every property, one row per (run, step), one column per property name."""
        return self.need("properties").pivot_table(index=["run", "step"], columns="name", values="value")

    def prop(self, name: str, runs: list[str], step: int) -> np.ndarray:
        """A property of each run at ``step``: (R,)."""
        return self.props_at(runs, [step] * len(runs), [name])[:, 0]

    def props_at(self, runs: list[str], steps: list[int], names: list[str] | None = None) -> np.ndarray:
        """Properties (all, or ``names``) of run i at steps[i]: (R, P)."""
        wide = self.props_wide
        keys = list(zip(runs, (int(s) for s in steps)))
        missing = [k for k in keys if k not in wide.index]
        if missing:
            raise NotMeasured(f"no properties of run {missing[0][0]!r} at step {missing[0][1]}")
        names = list(wide.columns) if names is None else names
        absent = [n for n in names if n not in wide.columns]
        if absent:
            raise NotMeasured(f"no property {absent[0]!r} is stored")
        return wide.loc[keys, names].to_numpy(dtype=float)

    def prop_curves(self, name: str, runs: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """A property over the steps every run has: steps (T,), values (R, T)."""
        p = self.need("properties")
        sub = p[(p["name"] == name) & p["run"].isin(runs)]
        wide = sub.pivot(index="run", columns="step", values="value").dropna(axis=1)
        if wide.shape[1] == 0 or set(wide.index) != set(runs):
            raise NotMeasured(f"no curve of property {name!r} for every run")
        return wide.columns.to_numpy(dtype=int), wide.loc[runs].to_numpy(dtype=float)

    def prop_names(self) -> list[str]:
        return list(self.props_wide.columns)

    def seeds(self, runs: list[str]) -> pd.DataFrame:
        """init_seed and data_seed of ``runs``, in order."""
        return self.runs.set_index("run").loc[runs, ["init_seed", "data_seed"]]

    def rng(self, salt: int) -> np.random.Generator:
        """A generator for one analysis's resampling: fixed per study and analysis, so a report
        re-renders to the same numbers."""
        return np.random.default_rng([salt, len(self.name), *map(ord, self.name)])


def needs(n: int, noun: str, got: int, hint: str = "") -> str:
    """The reason of a finding with too little data: ``needs >= 10 runs (got 3)``."""
    return f"needs >= {n} {noun} (got {got})" + (f": {hint}" if hint and got == 0 else "")


@dataclass(frozen=True)
class Count:
    """One kind of data an analysis may need a least amount of: its noun, how a study's amount is
    counted, and what to add when a study has none."""

    noun: str
    of: Callable[[StudyData], int]
    hint: str = ""


COVERAGE = ("properties", "behaviour", "behaviour_pairs", "cka", "interpolation", "barriers", "soups",
            "importance", "static")  # the measured tables, in the order the runs and steps they cover are read

COUNTS: dict[str, Count] = {
    "runs": Count("runs", lambda d: len(d.reference), "train runs from init ([seeds])"),
    "inits": Count("init seeds", lambda d: int(d.seeds(d.reference)["init_seed"].nunique())),
    "checkpoints": Count("checkpoints", lambda d: len(d.checkpoints),
                         "keep checkpoints during training ([process.checkpoints])"),
    "setup_variants": Count("setup variants of >= 2 runs", lambda d: len(d.setup_variants),
                            "add [[variants]] that change the setup"),
    "setup_runs": Count("runs in setup variants of >= 2 runs", lambda d: sum(map(len, d.setup_variants.values())),
                        "add [[variants]] that change the setup"),
    "matched": Count("intervened runs with a matched control", lambda d: len(d.matched),
                     "set intervention.* in a [[variants]] entry with the control's seeds"),
}


def missing_tables(data: StudyData, tables: tuple[tuple[str, ...], ...]) -> str | None:
    """Why ``data`` lacks a table of ``tables`` (each entry: a table, or tables any one of which
    will do), or None when every entry has a stored, non-empty table (or no store is behind
    ``data``: arrays it hands out from memory)."""
    if getattr(data, "study", None) is None:
        return None
    for names in tables:
        if not any(data.table(n) is not None and not data.table(n).empty for n in names):
            what = (f"the {names[0]!r} table is missing" if len(names) == 1 else
                    "neither the " + " nor the ".join(repr(n) for n in names) + " table is stored")
            return f"{what} (run `pathdep measure {data.name} --only {' --only '.join(names)}`)"
    return None


def analysis(id: str, applies: Callable[[StudyData], None] | None = None,
             tables: tuple[str | tuple[str, ...], ...] = (),
             **minimum: int) -> Callable[[Callable[[StudyData], Finding]], Callable[[Any], Finding]]:
    """Make ``fn(data) -> Finding`` an analysis of a study: it accepts a Study or a StudyData, and
    a missing input becomes a finding marked "not measured in this study" with the reason.

    ``tables`` declares the measurement tables the analysis reads and cannot do without (an
    entry that is a tuple of tables: any one of them will do); tables it only adds details
    from are not named. ``minimum`` declares the least data it needs, as ``min_<kind>=n`` for
    the kinds of :data:`COUNTS`. They are checked after ``applies`` (which raises
    :class:`NotMeasured` when the question does not apply to the study at all): the tables
    first, then the minimums in the order given. The declarations are kept on the analysis as
    ``.tables`` and ``.needs``:

    >>> @analysis("X", tables=("behaviour", ("static", "importance")), min_runs=10, min_inits=5)
    ... def analyse_x(data): ...
    >>> analyse_x.tables
    (('behaviour',), ('static', 'importance'))
    >>> analyse_x.needs
    {'runs': 10, 'inits': 5}
    """
    wanted = {k.removeprefix("min_"): int(v) for k, v in minimum.items()}
    unknown = [k for k in minimum if not k.startswith("min_") or k.removeprefix("min_") not in COUNTS]
    if unknown:
        raise ValueError(f"The keyword arguments of analysis({id!r}) must be minimums from "
                         f"{['min_' + c for c in COUNTS]}. Got {unknown[0]!r} instead.")
    reads = tuple((t,) if isinstance(t, str) else tuple(t) for t in tables)
    strange = [n for names in reads for n in names if n not in COVERAGE]
    if strange:
        raise ValueError(f"The 'tables' parameter of analysis({id!r}) must name tables from {list(COVERAGE)}. "
                         f"Got {strange[0]!r} instead.")

    def wrap(fn: Callable[[StudyData], Finding]) -> Callable[[Any], Finding]:
        @functools.wraps(fn)
        def run(study: Any) -> Finding:
            data = StudyData.of(study)
            try:
                if applies is not None:
                    applies(data)
                lacking = missing_tables(data, reads)
                if lacking is not None:
                    return not_measured(id, lacking)
                for kind, n in wanted.items():
                    count = COUNTS[kind]
                    got = count.of(data)
                    if got < n:
                        return not_measured(id, needs(n, count.noun, got, count.hint))
                return fn(data)
            except NotMeasured as e:
                return not_measured(id, str(e))

        run.tables = reads  # type: ignore[attr-defined]
        run.needs = dict(wanted)  # type: ignore[attr-defined]
        return run

    return wrap
