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
from pathdep.cli.common import (FactoryOpt, StoreOpt, StudyArg, at_least, check_file, check_probe_files, check_tables,
                                open_study)
from pathdep.errors import bad_value
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
    only: Annotated[list[str] | None, typer.Option("--only", help="a table to compute (repeatable); default all",
                                                   callback=check_tables)] = None,
    n_alpha: Annotated[int | None, typer.Option(help="interpolation points per pair, ends included",
                                                callback=at_least("--n-alpha", 2))] = None,
    step: Annotated[list[int] | None, typer.Option("--step", help="a checkpoint step to measure (repeatable); default all")] = None,
    max_cohort: Annotated[int | None, typer.Option(help="runs per cohort in barriers and soups (0: all)",
                                                   callback=at_least("--max-cohort", 2, "all runs"))] = None,
    max_examples: Annotated[int | None, typer.Option(help="examples per split for barriers and importance (0: all)",
                                                     callback=at_least("--max-examples", 1, "every example"))] = None,
    probes: Annotated[list[str] | None, typer.Option(
        "--probes", help="your own probe set NAME=FILE (.safetensors or .npz with x and y; repeatable; a bare FILE "
        "is 'test'), stored with the study and measured from now on")] = None,
    factory: FactoryOpt = None,
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

    probes = check_probe_files(probes)
    s = open_study(study, store, factory)
    if probes:
        if not hasattr(s, "set_probes"):
            raise bad_value("--probes", ",".join(f"{k}={v}" for k, v in probes.items()),
                            "probe sets of a trained study; a recorded study takes them in Recorder(probes=...)")
        overlap = s.set_probes(probes)
        console.print(f"probe sets stored with {s.name}: " + ", ".join(f"{k} ({v} in the training data)" for k, v in overlap.items()))
    opts = options_of(s)
    if n_alpha is not None:
        opts = dataclasses.replace(opts, n_alpha=n_alpha)
    if step:
        opts = dataclasses.replace(opts, steps=tuple(step))
    if max_cohort is not None:
        opts = dataclasses.replace(opts, max_cohort=max_cohort or None)
    if max_examples is not None:
        opts = dataclasses.replace(opts, max_examples=max_examples or None)
    from pathdep.cli.commands import _log_to_console

    _log_to_console()  # notes on runs left out, or measured at fewer steps
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
    ckpt_a: Annotated[Path, typer.Argument(help="checkpoint file (safetensors)",
                                           callback=check_file("CKPT_A", "a checkpoint file (safetensors)"))],
    ckpt_b: Annotated[Path, typer.Argument(help="checkpoint file of the same architecture and task",
                                           callback=check_file("CKPT_B", "a checkpoint file (safetensors)"))],
    n_alpha: Annotated[int, typer.Option(help="interpolation points, ends included", callback=at_least("--n-alpha", 2))] = 21,
    layers: Annotated[str | None, typer.Option(help="also a cross-layer CKA table of these layers: 'all' or e.g. h0,h1")] = None,
) -> None:
    """Barriers (raw, weight-matched, activation-matched), CKA per layer and behaviour agreement of two checkpoints.

    A note follows the barriers when an alignment raised a test barrier: alignment optimises
    weight distance or activation correlation, not loss.
    """
    from pathdep.measure import compare as compare_checkpoints

    res = compare_checkpoints(ckpt_a, ckpt_b, n_alpha=n_alpha, layers=layers)
    _show(_barriers_by_alignment(res.barriers), f"barriers: {res.definition}")
    for note in res.notes:
        console.print(f"note: {note}", soft_wrap=True)
    _show(res.cka, "representation similarity")
    _show(res.behaviour, "behaviour")
    if layers is not None:
        _show(res.best_matches(), "cross-layer linear CKA on the test split (rows: A's layers, columns: B's; * best match)")


def _barriers_by_alignment(bars: pd.DataFrame) -> pd.DataFrame:
    """One row per split and barrier (loss, error), one column per alignment (none first)."""
    long = bars.melt(id_vars=["split", "alignment"], value_vars=["loss_barrier", "error_barrier"], var_name="barrier")
    wide = long.pivot_table(index=["split", "barrier"], columns="alignment", values="value", sort=False)
    cols = [c for c in ("none", "weight_matching", "activation_matching") if c in wide.columns]
    return wide[cols].rename(columns={"none": "raw"}).reset_index().rename_axis(columns=None)
