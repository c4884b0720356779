"""``pathdep run``, ``pathdep ls`` and ``pathdep demo``."""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pathdep.cli import app
from pathdep.cli.common import StoreOpt, check_name
from pathdep.cli.options import check_ray, check_workers, ray_executor
from pathdep.cli.progress import progress_bars
from pathdep.study import DEFAULT_STORE, Study
from pathdep import store as st
from pathdep.errors import PathdepError, StoreError
from pathdep.measure.measurement import measurement_status

console = Console()


def _log_to_console() -> None:
    from rich.logging import RichHandler

    logger = logging.getLogger("pathdep")
    if not logger.handlers:
        logger.addHandler(RichHandler(console=Console(stderr=True), show_path=False))
        logger.setLevel(logging.INFO)


def train(study: Study, workers: int = 0, ray: str | None = None, replace: bool = False) -> None:
    """Train a study with progress bars and print its summary table."""
    from pathdep.train import RayExecutor, local_executor

    _log_to_console()
    growth = study.growth(replace)  # a refused change stops here, before anything is printed or written
    executor = (ray_executor(RayExecutor, ray) if ray else local_executor(workers) if workers > 1 else None)
    if _nothing_to_do(study, growth):  # before the tasks are built: a large study takes minutes
        if executor is not None:
            executor.shutdown()
        console.print(f"study [bold]{escape(study.name)}[/]: nothing to do: all {len(study.plan)} runs finished "
                      f"→ {study.root} (their summary: `pathdep ls {escape(study.name)} --store {study.store}`)")
        return
    console.print(f"study [bold]{study.name}[/]: {len(study.plan)} runs → {study.root}")
    for line in growth.lines():
        console.print(line, highlight=False)
    try:
        with progress_bars(console) as bar:
            study.run(progress=bar, executor=executor, replace=replace)
    finally:
        if executor is not None:
            executor.shutdown()
    print_summary(study)


def _nothing_to_do(study: Study, growth) -> bool:
    """Whether the spec adds, continues, replaces and retires no run and every planned run is
    stored finished, each checkpoint matching its manifest (the store is read; no task is built)."""
    if growth.added or growth.continued or growth.replaced or growth.retired:
        return False
    try:
        for r in study.plan:
            files = st.RunFiles(st.run_dir(study.store, study.name, r.name))
            steps = files.steps()
            if steps[-1:] != [r.process.steps]:
                return False
            for step in steps:
                files.read(step)  # verified against its sha256
    except StoreError:  # a damaged or missing checkpoint: `run` retrains it
        return False
    return True


def print_summary(study: Study) -> None:
    """The final solution property of every finished run, per variant or fork.

    A task that declares two solution types (``solution_ends``: what a low and a high value
    mean) gets them named and the runs split at 0.2 and 0.8; any other a plain histogram.
    """
    summary = study.summary()
    if summary.empty:
        console.print("no finished runs")
        return
    task = study.task
    prop, ends = task.solution_property, getattr(task, "solution_ends", None)
    columns = ["variant or fork", "runs", "test acc", "mean", "histogram"]
    if ends:
        title = f"final {prop}, the solution type (low: {ends[0]}, high: {ends[1]}), per variant"
        columns.append("<.2|mid|>.8")
    else:
        title = f"final {prop} per variant"
    table = Table(title=f"{escape(study.name)}: {escape(title)}")
    for col in columns:
        table.add_column(col, no_wrap=True)
    for variant, df in summary.groupby("group", sort=False):
        values = df[prop].to_numpy()
        row = [variant, str(len(df)), f"{df['test_acc'].mean():.3f}", f"{values.mean():.3f}", spark(values)]
        if ends:
            unit = values.min() >= 0 and values.max() <= 1
            row.append(f"{(values < 0.2).sum()}|{((values >= 0.2) & (values <= 0.8)).sum()}|{(values > 0.8).sum()}"
                       if unit else "–")
        table.add_row(*row)
    console.print(table)


def spark(values: np.ndarray, bins: int = 10) -> str:
    """A one-line histogram: a count per tenth of [0, 1], or of the values' range when they leave it."""
    lo, hi = (0.0, 1.0) if values.min() >= 0 and values.max() <= 1 else (float(values.min()), float(values.max()))
    counts, _ = np.histogram(values, bins=bins, range=(lo, hi if hi > lo else lo + 1))
    ticks = " ▁▂▃▄▅▆▇█"
    top = max(counts.max(), 1)
    return "".join(ticks[int(np.ceil(c / top * 8))] for c in counts)


@app.command()
def run(
    spec: Annotated[Path, typer.Argument(help="study spec (TOML)")],
    store: StoreOpt = DEFAULT_STORE,
    workers: Annotated[int, typer.Option(help="train populations in this many worker processes",
                                         callback=check_workers)] = 0,
    ray: Annotated[str | None, typer.Option(help="Ray cluster address ('auto', 'local' or host:port)",
                                            callback=check_ray)] = None,
    replace: Annotated[bool, typer.Option("--replace", help="retrain stored runs this spec changes, from scratch")] = False,
    force: Annotated[bool, typer.Option("--force", help="train even a spec above the cost limits (pathdep.cost)")] = False,
) -> None:
    """Plan the runs of SPEC, train them (resuming where they stopped) and print a summary.

    Every population of runs is one batched computation; --workers or --ray train several
    populations at once. The checkpoints are the same bits either way.

    Run an edited spec into the same store to grow the study: unchanged runs are kept, new ones
    trained, runs whose steps grew under a constant schedule continued; a change to stored runs
    is refused with the list of changed fields unless --replace.
    """
    train(Study.from_toml(spec, store, force=force), workers, ray, replace)


@app.command()
def ls(
    study: Annotated[str | None, typer.Argument(help="a study to list the runs of", callback=check_name("STUDY"))] = None,
    store: StoreOpt = DEFAULT_STORE,
) -> None:
    """List the studies of a store (runs finished, measurement complete / partial / stale / none),
    or the runs and checkpoints of one study. Damaged studies and runs are named, not fatal."""
    if study is None:
        names = st.list_studies(store)
        if not names:
            console.print(f"no studies in {store}")
        for name in names:
            console.print(_study_line(store, name))
        return
    s = Study.open(store, study)
    table = Table(title=f"{study} in {store}")
    for col in ("run", "variant", "init", "data", "fork", "checkpoints", "last step"):
        table.add_column(col)
    damaged = False
    for _, r in s.runs().iterrows():
        fork = "—" if pd.isna(r.fork) or r.fork == "" else str(r.fork)  # a run trained from init has no fork
        try:
            steps = s.steps(r.run)
        except StoreError as e:
            table.add_row(r.run, r.variant, str(r.init_seed), str(r.data_seed), fork, "[red]damaged[/]", "-")
            console.print(f"[red]{escape(str(e))}[/]")
            damaged = True
            continue
        table.add_row(r.run, r.variant, str(r.init_seed), str(r.data_seed), fork,
                      str(len(steps)), str(steps[-1] if steps else "-"))
    console.print(table)
    console.print(f"measurement: {escape(measurement_status(s, check_files=False).line())}")
    if isinstance(s, Study) and not damaged:
        print_summary(s)


def _study_line(store: Path, name: str) -> str:
    """One study's line in the store listing; damage is named (run `pathdep verify`)."""
    try:
        s = Study.open(store, name)
        plan = s.plan
    except PathdepError as e:
        return f"{name}: [red]damaged: {escape(str(e))}[/] (see `pathdep verify {name}`)"
    done, damaged = 0, []
    for r in plan:
        try:
            done += s.steps(r.name)[-1:] == [r.process.steps]
        except StoreError:
            damaged.append(r.name)
    line = f"{name}: {done}/{len(plan)} runs finished"
    if damaged:
        line += f", [red]{len(damaged)} damaged: {', '.join(damaged)}[/] (see `pathdep verify {name}`)"
    try:
        status = measurement_status(s, check_files=False)
    except StoreError as e:
        return line + f", measurement: [red]damaged: {escape(str(e))}[/]"
    style = "green" if status.ok else "yellow" if status.state == "none" else "red"
    return line + f", measurement: [{style}]{escape(status.line())}[/]"


def demo_spec_path() -> Path:
    return Path(str(resources.files("pathdep") / "examples" / "demo.toml"))


@app.command()
def demo(store: StoreOpt = DEFAULT_STORE) -> None:
    """Train the built-in demo study, measure it, write its report and print where it is."""
    study = Study.from_toml(demo_spec_path(), store)
    train(study)
    finish = _optional_stage("pathdep.cli.report", "finish_demo")
    if finish is not None:
        finish(study)
    else:
        console.print(f"results: {study.root}")


def _optional_stage(module: str, name: str):
    try:
        mod = __import__(module, fromlist=[name])
    except ModuleNotFoundError:
        return None
    return getattr(mod, name, None)
