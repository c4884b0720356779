"""``pathdep verify``: every checksum of a store's checkpoints and tables, and a summary."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pathdep import store as st
from pathdep.cli import app
from pathdep.cli.common import StoreOpt
from pathdep.errors import PathdepError, StoreError
from pathdep.study import DEFAULT_STORE, Study

console = Console()


def _measurement(store, name: str) -> str:
    from pathdep.measure.measurement import measurement_status

    try:
        return measurement_status(Study.open(store, name), check_files=False).state
    except PathdepError:
        return "unreadable"


@app.command()
def verify(
    study: Annotated[str | None, typer.Argument(help="a study of the store (default: every study)")] = None,
    store: StoreOpt = DEFAULT_STORE,
) -> None:
    """Verify every checkpoint and measurement table of STUDY (or of every study) against its sha256.

    Prints a summary per study and names every damaged file; exits with 1 when anything is
    damaged (`pathdep run` retrains damaged checkpoints, `pathdep measure` rewrites tables), 0 when clean.
    """
    from pathdep.verify import verify_store

    if study is not None:
        st.read_study_meta(store, study)  # a clear error naming the studies there
    checks = verify_store(store, None if study is None else [study])
    if not checks:
        console.print(f"no studies in {store}")
        return
    table = Table(title=f"verify {store}")
    for col in ("study", "runs", "checkpoints ok", "tables ok", "damaged", "measurement"):
        table.add_column(col)
    for c in checks:
        table.add_row(c.study, str(c.runs), str(c.checkpoints), str(c.tables),
                      f"[red]{len(c.damaged)}[/]" if c.damaged else "0", _measurement(store, c.study))
    console.print(table)
    for c in checks:
        for d in c.damaged:
            console.print(f"[red]damaged: {escape(c.study)}/{escape(d)}[/]")
        for n in c.notes:
            console.print(f"note: {escape(c.study)}/{escape(n)}")
    bad = [c for c in checks if not c.ok]
    if bad:
        n = sum(len(c.damaged) for c in bad)
        raise StoreError(f"{n} damaged file(s) in {', '.join(c.study for c in bad)}; see the list above.")
    console.print("every checksum matches")
