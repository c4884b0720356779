"""Measure a whole study: every measurement table, computed batched over runs, steps and pairs.

:func:`measure_study` reads the finished runs of a :class:`~pathdep.study.Study`, groups them by
(task, architecture) — only runs of one group can be paired — and commits these tables as one
set (:mod:`~pathdep.measure.measurement`; schemas in the package docs):

- ``properties``: every scalar of ``task.properties`` at every checkpoint of every run;
- ``behaviour``: per-example loss, pred, correct, margin at every checkpoint, on ``test`` and
  every task probe;
- ``behaviour_pairs``: the pairwise statistics of :mod:`~pathdep.measure.behaviour` for all
  pairs of runs at each step, and within each run for every step against its final step;
- ``cka``: CKA, debiased CKA and Procrustes distance of every hooked layer, for all pairs of
  runs at the final step and within each run for every step against the final step;
- ``interpolation`` and ``barriers``: all pairs of runs of each cohort (:func:`cohorts`: a
  variant's runs trained from init, or one fork's children; ``group`` column) at the final step,
  on ``train``, ``test`` and every probe, without and with weight-matching alignment
  (``definition`` column: :data:`~pathdep.measure.connectivity.BARRIER_DEFINITION`);
- ``soups``: uniform, greedy and best-member soups of each cohort at the
  final step (``group`` = cohort name);
- ``importance``: zero and mean ablation of every hidden unit and layer at every checkpoint;
- ``static``: weight norm, distance from init, effective ranks and sharpness at every checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property

import pandas as pd
import torch

from pathdep import store as st
from pathdep.errors import PathdepError
from pathdep.measure import behaviour as bh
from pathdep.measure import connectivity as cn
from pathdep.measure import importance as imp
from pathdep.measure import measurement as mm
from pathdep.measure import similarity as sim
from pathdep.measure import soups as sp
from pathdep.measure import static as stc
from pathdep.measure.align import apply_permutation, weight_matching
from pathdep.measure.population import take
from pathdep.models.base import Model, Params, capture, representation_hooks
from pathdep.tasks.base import Split, Task


Progress = Callable[[str, int, int], None]  # (label, done, total), as Study.run reports


@dataclass(frozen=True)
class MeasureOptions:
    """What :func:`measure_study` measures beyond the defaults.

    - ``n_alpha``: interpolation points per pair, ends included;
    - ``steps``: checkpoint steps of the per-step tables (default: every checkpoint; a run's final
      step is always measured);
    - ``max_cohort``: at most this many runs of each cohort (first in plan order) enter the
      barrier and soup tables (None: all);
    - ``max_examples``: at most this many examples of each split (its first ones) in the two
      costly tables, interpolation/barriers and importance (None: all).
    """

    n_alpha: int = 21
    steps: tuple[int, ...] | None = None
    max_cohort: int | None = 32
    max_examples: int | None = None


@dataclass
class Group:
    """Finished runs that share a task and an architecture; ``steps[run]`` their checkpoints."""

    task: Task
    model: Model
    runs: list[str]
    steps: dict[str, list[int]] = field(default_factory=dict)

    def final(self, run: str) -> int:
        return self.steps[run][-1]

    def all_steps(self) -> list[int]:
        return sorted({s for r in self.runs for s in self.steps[r]})

    def keep_steps(self, wanted: Iterable[int]) -> None:
        """Forget checkpoints not in ``wanted`` (each run keeps its final step)."""
        keep = set(wanted)
        self.steps = {r: [s for s in st if s in keep or s == st[-1]] for r, st in self.steps.items()}

    def at(self, step: int) -> list[str]:
        """Runs with a checkpoint at ``step``, in group order."""
        return [r for r in self.runs if step in self.steps[r]]


def probe_splits(task: Task) -> dict[str, Split]:
    """The splits behaviour is recorded on: ``test`` and every task probe."""
    return {"test": task.test, **task.probes}


def eval_splits(task: Task) -> dict[str, Split]:
    """The splits connectivity and soups are evaluated on: ``train`` and the probe splits."""
    return {"train": task.train, **probe_splits(task)}


def groups(study, runs: Iterable[str] | None = None) -> list[Group]:
    """Finished runs of ``study`` (or of ``runs``) grouped by (task, architecture), in plan order."""
    wanted = list(study.runs()["run"]) if runs is None else list(runs)
    out: dict[tuple, Group] = {}
    for run in wanted:
        steps = study.steps(run)
        if not steps or steps[-1] != study.final_step(run):
            continue
        task, model = study.task_of(run), study.model(run)
        key = (id(task), model)
        out.setdefault(key, Group(task, model, [])).runs.append(run)
        out[key].steps[run] = steps
    return list(out.values())


def _pairs_frame(runs: list[str], pairs: torch.Tensor, **cols) -> pd.DataFrame:
    return pd.DataFrame({"run_a": [runs[i] for i in pairs[:, 0]], "run_b": [runs[j] for j in pairs[:, 1]], **cols})


# --- per-step tables ------------------------------------------------------------------------------


def _properties(study, g: Group) -> pd.DataFrame:
    rows = []
    for step in g.all_steps():
        runs = g.at(step)
        with torch.no_grad():
            props = g.task.properties(g.model, study.load_population(runs, step))
        for name, val in props.items():
            rows.append(pd.DataFrame({"run": runs, "step": step, "name": name, "value": val.double().numpy()}))
    return pd.concat(rows, ignore_index=True)


def _behaviour(study, g: Group) -> tuple[pd.DataFrame, dict]:
    """The behaviour table, and the evaluations {(probe, step): (runs, ev)} for the pair table."""
    rows, evs = [], {}
    for step in g.all_steps():
        runs = g.at(step)
        params = study.load_population(runs, step)
        for probe, split in probe_splits(g.task).items():
            ev = bh.evaluate_behaviour(g.task, g.model, params, split)
            evs[(probe, step)] = (runs, ev)
            r, n = ev["loss"].shape
            rows.append(pd.DataFrame({
                "run": [x for x in runs for _ in range(n)], "step": step, "probe": probe,
                "example": list(range(n)) * r,
                "loss": ev["loss"].flatten().numpy(), "pred": ev["pred"].flatten().numpy(),
                "correct": ev["correct"].flatten().bool().numpy(), "margin": ev["margin"].flatten().numpy(),
            }))
    return pd.concat(rows, ignore_index=True), evs


def _behaviour_pairs(g: Group, evs: dict) -> pd.DataFrame:
    rows = []
    for (probe, step), (runs, ev) in evs.items():
        if len(runs) > 1:  # all pairs of runs at this step
            pairs = cn.all_pairs(len(runs))
            mats = bh.pair_matrices(ev)
            vals = {k: m[pairs[:, 0], pairs[:, 1]].numpy() for k, m in mats.items()}
            rows.append(_pairs_frame(runs, pairs, step_a=step, step_b=step, probe=probe, **vals))
        within = [i for i, r in enumerate(runs) if g.final(r) != step]  # every step vs the final step
        if within:
            finals = [g.final(runs[i]) for i in within]
            ev_a = {k: v[within] for k, v in ev.items()}
            ev_b = _rows_at(evs, probe, [runs[i] for i in within], finals)
            vals = {k: v.numpy() for k, v in bh.pair_rows(ev_a, ev_b).items()}
            names = [runs[i] for i in within]
            rows.append(pd.DataFrame({"run_a": names, "step_a": step, "run_b": names, "step_b": finals,
                                      "probe": probe, **vals}))
    return pd.concat(rows, ignore_index=True)[["run_a", "step_a", "run_b", "step_b", "probe", *bh.PAIR_STATS]]


def _rows_at(evs: dict, probe: str, runs: list[str], steps: list[int]) -> dict[str, torch.Tensor]:
    """Behaviour rows of (run, step) pairs gathered from ``evs``."""
    out: dict[str, list[torch.Tensor]] = {}
    for run, step in zip(runs, steps):
        names, ev = evs[(probe, step)]
        i = names.index(run)
        for k, v in ev.items():
            out.setdefault(k, []).append(v[i])
    return {k: torch.stack(v) for k, v in out.items()}


def _activations(g: Group, params: Params, split: Split) -> dict[str, torch.Tensor]:
    x = split.x.unsqueeze(0).expand(next(iter(params.values())).shape[0], *split.x.shape)
    with capture(set(representation_hooks(g.model))) as acts, torch.no_grad():
        g.model.apply(params, x)
    return acts


def _cka(study, g: Group) -> pd.DataFrame:
    rows = []
    finals = {r: g.final(r) for r in g.runs}
    for probe, split in probe_splits(g.task).items():
        final_acts = {}
        for step in sorted(set(finals.values())):
            runs = [r for r in g.runs if finals[r] == step]
            acts = _activations(g, study.load_population(runs, step), split)
            final_acts.update({(r, h): acts[h][i] for h in acts for i, r in enumerate(runs)})
            if len(runs) > 1:
                pairs = cn.all_pairs(len(runs))
                for layer, x in acts.items():
                    s = sim.similarity_matrix(x)
                    vals = {k: v[pairs[:, 0], pairs[:, 1]].numpy() for k, v in s.items()}
                    rows.append(_pairs_frame(runs, pairs, step_a=step, step_b=step, layer=layer, probe=probe, **vals))
        for step in g.all_steps():
            runs = [r for r in g.at(step) if finals[r] != step]
            if not runs:
                continue
            acts = _activations(g, study.load_population(runs, step), split)
            for layer, x in acts.items():
                s = sim.similarity_paired(x, torch.stack([final_acts[(r, layer)] for r in runs]))
                rows.append(pd.DataFrame({"run_a": runs, "step_a": step, "run_b": runs,
                                          "step_b": [finals[r] for r in runs], "layer": layer, "probe": probe,
                                          **{k: v.numpy() for k, v in s.items()}}))
    cols = ["run_a", "step_a", "run_b", "step_b", "layer", "probe", *sim.MEASURES]
    return pd.concat(rows, ignore_index=True)[cols] if rows else pd.DataFrame(columns=cols)


# --- final-step tables ----------------------------------------------------------------------------


def cohorts(study, g: Group, max_runs: int | None = None) -> dict[str, list[str]]:
    """Runs compared pairwise for barriers and soups: {cohort name: runs}.

    A cohort is the runs of one variant trained from init (named by the variant) or the
    children of one fork (named by the fork); its runs share a process and so a final step.
    At most ``max_runs`` of each, first in plan order.
    """
    info = study.runs().set_index("run")
    out: dict[str, list[str]] = {}
    for run in g.runs:
        fork = info.loc[run, "fork"]
        out.setdefault(fork if isinstance(fork, str) and fork else info.loc[run, "variant"], []).append(run)
    return {k: v[:max_runs] for k, v in out.items()}


def _head(split: Split, n: int | None) -> Split:
    return split if n is None or n >= len(split) else Split(split.x[:n], split.y[:n], {k: v[:n] for k, v in split.extra.items()})


def _connectivity(study, g: Group, opts: MeasureOptions) -> tuple[pd.DataFrame, pd.DataFrame]:
    curves, bars = [], []
    for cohort, runs in cohorts(study, g, opts.max_cohort).items():
        if len(runs) < 2:
            continue
        step = g.final(runs[0])
        params = study.load_population(runs, step)
        pairs = cn.all_pairs(len(runs))
        pa, pb = take(params, pairs[:, 0]), take(params, pairs[:, 1])
        perms = weight_matching(g.model.permutation_spec, pa, pb)
        for aligned, b in ((False, pb), (True, apply_permutation(g.model.permutation_spec, pb, perms))):
            for split_name, split in eval_splits(g.task).items():
                res = cn.pair_barriers(g.task, g.model, pa, b, _head(split, opts.max_examples), opts.n_alpha)
                meta = {"step": step, "split": split_name, "aligned": aligned, "group": cohort}
                bars.append(_pairs_frame(runs, pairs, **meta, loss_barrier=res["loss_barrier"].numpy(),
                                         error_barrier=res["error_barrier"].numpy()))
                k = len(res["alpha"])
                rep = pairs.repeat_interleave(k, 0)
                curves.append(_pairs_frame(runs, rep, **meta, alpha=res["alpha"].repeat(len(pairs)).numpy(),
                                           loss=res["loss"].flatten().numpy(), error=res["error"].flatten().numpy()))
    bar_cols = ["run_a", "run_b", "step", "split", "aligned", "loss_barrier", "error_barrier", "group"]
    cur_cols = ["run_a", "run_b", "step", "split", "aligned", "alpha", "loss", "error", "group"]
    barriers = pd.concat(bars, ignore_index=True)[bar_cols] if bars else pd.DataFrame(columns=bar_cols)
    barriers["definition"] = cn.BARRIER_DEFINITION
    interp = pd.concat(curves, ignore_index=True)[cur_cols] if curves else pd.DataFrame(columns=cur_cols)
    return interp, barriers


def halves(split: Split) -> tuple[Split, Split]:
    """The first and second half of a split: soups are chosen on one and reported on the other."""
    n = len(split) // 2
    part = lambda sl: Split(split.x[sl], split.y[sl], {k: v[sl] for k, v in split.extra.items()})  # noqa: E731
    return part(slice(0, n)), part(slice(n, None))


def _soups(study, g: Group, opts: MeasureOptions) -> pd.DataFrame:
    """Soups chosen on the first half of ``test`` (greedy order, best member); the ``test`` rows
    are the second half, which no choice has seen."""
    rows = []
    select, held_out = halves(g.task.test)
    splits = eval_splits(g.task) | {"test": held_out}
    for group, members in cohorts(study, g, opts.max_cohort).items():
        step = g.final(members[0])
        params = study.load_population(members, step)
        greedy = sp.greedy_soup(g.task, g.model, params, select)
        best = take(params, torch.tensor([greedy.order[0]]))
        kinds = {"uniform": (sp.uniform_soup(params), len(members)),
                 "greedy": (greedy.params, len(greedy.members)), "best_member": (best, 1)}
        for kind, (soup, n) in kinds.items():
            for split_name, split in splits.items():
                with torch.no_grad():
                    ev = g.task.evaluate(g.model, soup, split)
                rows.append({"step": step, "group": group, "kind": kind, "split": split_name, "n_ingredients": n,
                             "acc": float(ev["correct"].double().mean()), "loss": float(ev["loss"].double().mean())})
    return pd.DataFrame(rows, columns=["step", "group", "kind", "split", "acc", "loss", "n_ingredients"])


def _importance(study, g: Group, opts: MeasureOptions) -> pd.DataFrame:
    rows = []
    for step in g.all_steps():
        runs = g.at(step)
        params = study.load_population(runs, step)
        for probe, split in probe_splits(g.task).items():
            effects = imp.ablation_effects(g.task, g.model, params, _head(split, opts.max_examples))
            for (layer, kind), delta in effects.items():
                r, u1 = delta.shape
                units = list(range(u1 - 1)) + [imp.WHOLE_LAYER]
                rows.append(pd.DataFrame({"run": [x for x in runs for _ in range(u1)], "step": step, "probe": probe,
                                          "layer": layer, "unit": units * r, "ablation": kind,
                                          "delta_loss": delta.flatten().numpy()}))
    return pd.concat(rows, ignore_index=True)


def _root_run(info: pd.DataFrame, run: str) -> str:
    parent = info.loc[run, "parent"]
    return run if not isinstance(parent, str) or not parent else _root_run(info, parent)


def _static(study, g: Group) -> pd.DataFrame:
    info = study.runs().set_index("run")
    roots = [_root_run(info, r) for r in g.runs]
    init = dict(zip(g.runs, (study.load(root, 0) for root in roots)))
    rows = []
    for step in g.all_steps():
        runs = g.at(step)
        params = study.load_population(runs, step)
        init_pop = {k: torch.stack([init[r][k] for r in runs]) for k in params}
        for name, val in stc.static_measures(g.task, g.model, params, init_pop).items():
            rows.append(pd.DataFrame({"run": runs, "step": step, "measure": name, "value": val.numpy()}))
    return pd.concat(rows, ignore_index=True)


class _Context:
    """One group's measurement, with the pieces two tables share computed once."""

    def __init__(self, study, g: Group, opts: MeasureOptions) -> None:
        self.study, self.g, self.opts = study, g, opts

    @cached_property
    def behaviour(self) -> tuple[pd.DataFrame, dict]:
        return _behaviour(self.study, self.g)

    @cached_property
    def connectivity(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        return _connectivity(self.study, self.g, self.opts)


BUILDERS: dict[str, Callable[[_Context], pd.DataFrame]] = {
    "properties": lambda c: _properties(c.study, c.g),
    "behaviour": lambda c: c.behaviour[0],
    "behaviour_pairs": lambda c: _behaviour_pairs(c.g, c.behaviour[1]),
    "cka": lambda c: _cka(c.study, c.g),
    "interpolation": lambda c: c.connectivity[0],
    "barriers": lambda c: c.connectivity[1],
    "soups": lambda c: _soups(c.study, c.g, c.opts),
    "importance": lambda c: _importance(c.study, c.g, c.opts),
    "static": lambda c: _static(c.study, c.g),
}

TABLES = tuple(BUILDERS)


# --- entry point ---------------------------------------------------------------------------------


def options_of(study) -> MeasureOptions:
    """The study spec's ``[measure]`` section as options (defaults for studies without one)."""
    section = getattr(getattr(study, "spec", None), "measure", None)
    if section is None or not hasattr(section, "model_dump"):
        return MeasureOptions()
    return MeasureOptions(**section.model_dump())


def measure_study(
    study,
    *,
    which: Iterable[str] | None = None,
    runs: Iterable[str] | None = None,
    options: MeasureOptions | None = None,
    progress: Progress | None = None,
) -> dict[str, pd.DataFrame]:
    """Compute the measurement tables of ``study`` and commit them to its store as one set.

    ``which`` picks tables (default: all of :data:`TABLES`); ``runs`` restricts the runs (default:
    every finished run); ``options`` (:class:`MeasureOptions`) sets interpolation points, steps,
    cohort size and examples (default: the study spec's ``[measure]`` section). Returns the tables written.

    The study's lock is held throughout (a study being trained is refused), and the tables are
    committed with what they were computed from (:mod:`~pathdep.measure.measurement`): a
    measurement interrupted at any moment leaves the previous committed set intact.
    """
    if options is None:
        options = options_of(study)
    which = list(TABLES if which is None else which)
    unknown = [w for w in which if w not in TABLES]
    if unknown:
        raise PathdepError(f"The 'which' parameter of measure_study must name tables from {list(TABLES)}. Got {unknown[0]!r} instead.")
    with st.locked(study.root):
        st.clean_temp(st.tables_dir(study.store, study.name))
        return _measure_locked(study, which, runs, options, progress)


def _measure_locked(study, which: list[str], runs, options: MeasureOptions, progress) -> dict[str, pd.DataFrame]:
    gs = groups(study, runs)
    if not gs:
        raise PathdepError(f"Study {study.name!r} has no finished runs to measure; train it first (pathdep run).")
    parts: dict[str, list[pd.DataFrame]] = {w: [] for w in which}
    total = len(gs) * len(which)
    done = 0
    for g in gs:
        if options.steps is not None:
            g.keep_steps(options.steps)
        ctx = _Context(study, g, options)
        for name in which:
            parts[name].append(BUILDERS[name](ctx))
            done += 1
            if progress is not None:
                progress("measure", done, total)
    tables = {name: pd.concat(dfs, ignore_index=True) for name, dfs in parts.items()}
    measured = {r: g.steps[r] for g in gs for r in g.runs}
    st.commit_measurement(study.store, study.name, tables, mm.basis(study, measured, options))
    return tables
