"""``pathdep measure`` and ``pathdep compare``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pathdep.cli import app
from pathdep.cli.common import StoreOpt, StudyArg, open_study
from pathdep.cli.progress import progress_bars
from pathdep.study import DEFAULT_STORE

console = Console()


def _show(df: pd.DataFrame, title: str) -> None:
    table = Table(title=title)
    for col in df.columns:
        table.add_column(str(col), justify="right" if df[col].dtype.kind in "fi" else "left")
    for _, row in df.iterrows():
        table.add_row(*[f"{v:.4f}" if isinstance(v, float) else str(v) for v in row])
    console.print(table)


@app.command()
def measure(
    study: StudyArg,
    store: StoreOpt = DEFAULT_STORE,
    only: Annotated[list[str] | None, typer.Option("--only", help="a table to compute (repeatable); default all")] = None,
    n_alpha: Annotated[int | None, typer.Option(help="interpolation points per pair, ends included")] = None,
    step: Annotated[list[int] | None, typer.Option("--step", help="a checkpoint step to measure (repeatable); default all")] = None,
    max_cohort: Annotated[int | None, typer.Option(help="runs per cohort in barriers and soups (0: all)")] = None,
    max_examples: Annotated[int | None, typer.Option(help="examples per split for barriers and importance (0: all)")] = None,
) -> None:
    """Measure the finished runs of STUDY and write its tables (behaviour, CKA, barriers, soups, ...).

    Options left out come from the spec's [measure] section (or the defaults: 21 points, every
    step, 32 runs per cohort, every example). The tables are committed as one set, with the
    checkpoints and options they came from; a study being trained (locked) is refused.
    """
    import dataclasses

    from pathdep import store as st
    from pathdep.measure import measure_study
    from pathdep.measure.measurement import measurement_status
    from pathdep.measure.study import options_of

    s = open_study(study, store)
    opts = options_of(s)
    if n_alpha is not None:
        opts = dataclasses.replace(opts, n_alpha=n_alpha)
    if step:
        opts = dataclasses.replace(opts, steps=tuple(step))
    if max_cohort is not None:
        opts = dataclasses.replace(opts, max_cohort=max_cohort or None)
    if max_examples is not None:
        opts = dataclasses.replace(opts, max_examples=max_examples or None)
    with progress_bars(console) as bar:
        tables = measure_study(s, which=only or None, options=opts, progress=bar)
    summary = pd.DataFrame({"table": list(tables), "rows": [len(df) for df in tables.values()]})
    _show(summary, f"{s.name}: tables committed to {st.measurement_path(s.store, s.name)}")
    status = measurement_status(s, check_files=False)
    for reason in status.reasons:
        console.print(f"[bold red]{escape(reason)}[/]")
    console.print(f"measurement: {status.state}")


@app.command()
def compare(
    ckpt_a: Annotated[Path, typer.Argument(help="checkpoint file (safetensors)")],
    ckpt_b: Annotated[Path, typer.Argument(help="checkpoint file of the same architecture and task")],
    n_alpha: Annotated[int, typer.Option(help="interpolation points, ends included")] = 21,
) -> None:
    """Barrier (raw and aligned), CKA per layer and behaviour agreement of two checkpoints."""
    from pathdep.measure import compare as compare_checkpoints

    res = compare_checkpoints(ckpt_a, ckpt_b, n_alpha=n_alpha)
    _show(res.barriers, f"barriers: {res.definition}")
    _show(res.cka, "representation similarity")
    _show(res.behaviour, "behaviour")
