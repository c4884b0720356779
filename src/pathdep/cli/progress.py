"""A rich progress display that library code drives through its ``progress(label, done, total)`` callback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

LABELS = {"train": "training (run-steps)"}


@contextmanager
def progress_bars(console: Console | None = None) -> Iterator:
    """Yields a callback ``(label, done, total)``; each label gets its own bar with an ETA."""
    bars = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
        console=console, transient=False,
    )
    tasks: dict[str, int] = {}

    def update(label: str, done: int, total: int) -> None:
        if label not in tasks:
            tasks[label] = bars.add_task(LABELS.get(label, label), total=total)
        bars.update(tasks[label], completed=done, total=total)

    with bars:
        yield update
