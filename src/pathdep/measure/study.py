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
  on ``train``, ``test`` and every probe, without alignment and after each alignment of the
  options (``alignment`` column: "none", "weight_matching", "activation_matching"; ``aligned``
  is True for the aligned rows; ``definition`` column:
  :data:`~pathdep.measure.connectivity.BARRIER_DEFINITION`);
- ``soups``: uniform, greedy and best-member soups of each cohort at the
  final step (``group`` = cohort name);
- ``importance``: zero and mean ablation of every hidden unit and layer at every checkpoint (no
  rows, the same columns, for a model without hidden units such as logistic regression);
- ``static``: weight norm, distance from init, effective ranks and sharpness at every checkpoint
  (sharpness's random vectors seeded from the measurement, the run and the step).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property

import pandas as pd
import torch

from pathdep import store as st
from pathdep.errors import PathdepError, SpecError
from pathdep.measure import behaviour as bh
from pathdep.measure import connectivity as cn
from pathdep.measure import importance as imp
from pathdep.measure import measurement as mm
from pathdep.measure import similarity as sim
from pathdep.measure import soups as sp
from pathdep.measure import static as stc
from pathdep.measure.align import align, can_match_activations, probe_batch
from pathdep.measure.population import stable_seed, take
from pathdep.models.base import Model, Params, capture, representation_hooks
from pathdep.tasks.base import Split, Task


Progress = Callable[[str, int, int], None]  # (label, done, total), as Study.run reports
log = logging.getLogger("pathdep")


@dataclass(frozen=True)
class MeasureOptions:
    """What :func:`measure_study` measures beyond the defaults.

    - ``n_alpha``: interpolation points per pair, ends included;
    - ``steps``: checkpoint steps of the per-step tables (default: every checkpoint of every
      finished run; a finished run's final step is always measured). With steps, unfinished runs
      are measured too, at the steps they have (see :func:`select_groups`);
    - ``max_cohort``: at most this many runs of each cohort (first in plan order) enter the
      barrier and soup tables (None: all);
    - ``max_examples``: at most this many examples of each split (its first ones) in the two
      costly tables, interpolation/barriers and importance (None: all);
    - ``alignment``: the alignments barriers are measured after, besides none: "weight" (weight
      matching) and "activation" (activation matching, on the first training examples of
      :func:`~pathdep.measure.align.probe_batch`; skipped for models without permutations, such
      as logistic regression, or whose permutation spec names no activations).
    """

    n_alpha: int = 21
    steps: tuple[int, ...] | None = None
    max_cohort: int | None = 32
    max_examples: int | None = None
    alignment: tuple[str, ...] = ("weight", "activation")


@dataclass
class Group:
    """Runs that share a task and an architecture; ``steps[run]`` the checkpoints measured.

    ``runs`` are finished (their last measured step is their final step, the reference of the
    within-run and final-step tables); ``partial`` runs are not, and enter only the per-step
    tables, at the steps they have.
    """

    task: Task
    model: Model
    runs: list[str]
    steps: dict[str, list[int]] = field(default_factory=dict)
    partial: list[str] = field(default_factory=list)

    def final(self, run: str) -> int:
        return self.steps[run][-1]

    def all_steps(self) -> list[int]:
        return sorted({s for st in self.steps.values() for s in st})

    def keep_steps(self, wanted: Iterable[int]) -> None:
        """Forget checkpoints not in ``wanted`` (each run keeps its final step)."""
        keep = set(wanted)
        self.steps = {r: [s for s in st if s in keep or s == st[-1]] for r, st in self.steps.items()}

    def at(self, step: int) -> list[str]:
        """Runs (finished or partial) with a checkpoint at ``step``, in plan order."""
        return [r for r, st in self.steps.items() if step in st]


def probe_splits(task: Task) -> dict[str, Split]:
    """The splits behaviour is recorded on: ``test`` and every task probe."""
    return {"test": task.test, **task.probes}


def eval_splits(task: Task) -> dict[str, Split]:
    """The splits connectivity and soups are evaluated on: ``train`` and the probe splits."""
    return {"train": task.train, **probe_splits(task)}


def groups(study, runs: Iterable[str] | None = None) -> list[Group]:
    """Finished runs of ``study`` (or of ``runs``) grouped by (task, architecture), in plan order."""
    return select_groups(study, runs)[0]


def select_groups(study, runs: Iterable[str] | None = None,
                  steps: Iterable[int] | None = None) -> tuple[list[Group], list[str]]:
    """The runs to measure, grouped by (task, architecture), and notes on what was left out.

    Without ``steps``: finished runs at every checkpoint; unfinished runs are left out (noted).
    With ``steps``: every run at those of ``steps`` it has, a finished run also at its final
    step; an unfinished run enters only the per-step tables (noted). A step that is no
    checkpoint of any run (scheduled or stored) raises :class:`~pathdep.errors.SpecError`.
    """
    wanted = list(study.runs()["run"]) if runs is None else list(runs)
    have = {run: study.steps(run) for run in wanted}
    keep = None if steps is None else set(steps)
    scheduled = _scheduled(study, wanted) if keep is not None else {}
    if keep is not None:
        _check_steps(study.name, keep, have, scheduled)
    out: dict[tuple, Group] = {}
    notes = []
    for run in wanted:
        got = have[run]
        final = study.final_step(run)
        finished = bool(got) and got[-1] == final
        measured = got if keep is None else [s for s in got if s in keep or (finished and s == final)]
        if not finished:
            notes.append(_unfinished_note(run, got, final, keep, scheduled.get(run, []), measured))
        if not measured or (keep is None and not finished):
            continue
        task, model = study.task_of(run), study.model(run)
        g = out.setdefault((id(task), model), Group(task, model, []))
        (g.runs if finished else g.partial).append(run)
        g.steps[run] = measured
    return list(out.values()), notes


def _scheduled(study, runs: list[str]) -> dict[str, list[int]]:
    """{run: the checkpoint steps its schedule promises} for trained runs (imported runs have none)."""
    out, wanted = {}, set(runs)
    for plan in getattr(study, "plan", []):
        steps = getattr(plan.process, "checkpoint_steps", None)
        if plan.name in wanted and callable(steps):
            out[plan.name] = [s for s in steps() if s >= plan.fork_step]
    return out


def _check_steps(study: str, keep: set[int], have: dict[str, list[int]], scheduled: dict[str, list[int]]) -> None:
    known = sorted({s for run, got in have.items() for s in [*got, *scheduled.get(run, [])]})
    for step in sorted(keep):
        if step not in known:
            shown = known if len(known) <= 12 else [*known[:6], "...", *known[-3:]]
            raise SpecError(f"The measure step {step} is not a checkpoint step of study {study!r}: expected one of "
                            f"{', '.join(map(str, shown)) or 'none yet'} (--step, or the [measure] steps of its spec).")


def _unfinished_note(run: str, got: list[int], final: int, keep: set[int] | None, scheduled: list[int],
                     measured: list[int]) -> str:
    head = f"run {run!r} is not finished (last checkpoint {got[-1] if got else 'none'} of {final})"
    if keep is None:
        return f"{head}: left out; measure it with --step to include the steps it has."
    missing = sorted((keep & set(scheduled)) - set(got))
    lacks = f"; it lacks step(s) {missing}" if missing else ""
    if not measured:
        return f"{head}{lacks}: left out, it has none of the steps asked for."
    return (f"{head}{lacks}: measured at {measured} in the per-step tables only "
            "(not against its final step, nor in barriers and soups).")


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
        within = [i for i, r in enumerate(runs) if r not in g.partial and g.final(r) != step]  # every step vs the final
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
            runs = [r for r in g.at(step) if finals.get(r, step) != step]  # partial runs have no final
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


#: Option names of :attr:`MeasureOptions.alignment` and the ``alignment`` they record.
ALIGNMENT_OPTIONS = {"weight": "weight_matching", "activation": "activation_matching"}


def alignments(model: Model, opts: MeasureOptions) -> list[str]:
    """The ``alignment`` values barriers are measured under: "none" first, then each option the
    model supports, in the options' order."""
    out = ["none"]
    for name in opts.alignment:
        if name not in ALIGNMENT_OPTIONS:
            raise PathdepError(f"The 'alignment' option must list names from {list(ALIGNMENT_OPTIONS)}. Got {name!r} instead.")
        if name == "activation" and not can_match_activations(model.permutation_spec):
            continue
        out.append(ALIGNMENT_OPTIONS[name])
    return list(dict.fromkeys(out))


def _connectivity(study, g: Group, opts: MeasureOptions) -> tuple[pd.DataFrame, pd.DataFrame]:
    curves, bars = [], []
    kinds = alignments(g.model, opts)
    train_x = _head(g.task.train, opts.max_examples).x
    for cohort, runs in cohorts(study, g, opts.max_cohort).items():
        if len(runs) < 2:
            continue
        step = g.final(runs[0])
        params = study.load_population(runs, step)
        pairs = cn.all_pairs(len(runs))
        pa, pb = take(params, pairs[:, 0]), take(params, pairs[:, 1])
        match_x = probe_batch(g.model, params, train_x) if "activation_matching" in kinds else None
        for alignment in kinds:
            b = align(alignment, g.model, pa, pb, match_x)
            for split_name, split in eval_splits(g.task).items():
                res = cn.pair_barriers(g.task, g.model, pa, b, _head(split, opts.max_examples), opts.n_alpha)
                meta = {"step": step, "split": split_name, "aligned": alignment != "none", "alignment": alignment,
                        "group": cohort}
                bars.append(_pairs_frame(runs, pairs, **meta, loss_barrier=res["loss_barrier"].numpy(),
                                         error_barrier=res["error_barrier"].numpy()))
                k = len(res["alpha"])
                rep = pairs.repeat_interleave(k, 0)
                curves.append(_pairs_frame(runs, rep, **meta, alpha=res["alpha"].repeat(len(pairs)).numpy(),
                                           loss=res["loss"].flatten().numpy(), error=res["error"].flatten().numpy()))
    bar_cols = ["run_a", "run_b", "step", "split", "aligned", "alignment", "loss_barrier", "error_barrier", "group"]
    cur_cols = ["run_a", "run_b", "step", "split", "aligned", "alignment", "alpha", "loss", "error", "group"]
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


IMPORTANCE_COLUMNS = {"run": "object", "step": "int64", "probe": "object", "layer": "object", "unit": "int64",
                      "ablation": "object", "delta_loss": "float64"}


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
    if not rows:  # a model without components (e.g. logistic regression): no rows, the same columns
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in IMPORTANCE_COLUMNS.items()})
    return pd.concat(rows, ignore_index=True)


def _root_run(info: pd.DataFrame, run: str) -> str:
    parent = info.loc[run, "parent"]
    return run if not isinstance(parent, str) or not parent else _root_run(info, parent)


def _static(study, g: Group) -> pd.DataFrame:
    info = study.runs().set_index("run")
    roots = [_root_run(info, r) for r in g.steps]
    init = dict(zip(g.steps, (study.load(root, 0) for root in roots)))
    rows = []
    for step in g.all_steps():
        runs = g.at(step)
        params = study.load_population(runs, step)
        init_pop = {k: torch.stack([init[r][k] for r in runs]) for k in params}
        seeds = [stable_seed("sharpness", r, step) for r in runs]
        for name, val in stc.static_measures(g.task, g.model, params, init_pop, seed=seeds).items():
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
    every finished run; with ``options.steps``, unfinished runs too, see :func:`select_groups`);
    ``options`` (:class:`MeasureOptions`) sets interpolation points, steps, cohort size and
    examples (default: the study spec's ``[measure]`` section). Notes on runs left out go to the
    ``pathdep`` logger. Returns the tables written.

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
    gs, notes = select_groups(study, runs, options.steps)
    for note in notes:
        log.warning(note)
    if not gs:
        what = "finished runs" if options.steps is None else f"runs with a checkpoint at steps {sorted(options.steps)}"
        raise PathdepError(f"Study {study.name!r} has no {what} to measure; train it first (pathdep run).")
    parts: dict[str, list[pd.DataFrame]] = {w: [] for w in which}
    total = len(gs) * len(which)
    done = 0
    for g in gs:
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
