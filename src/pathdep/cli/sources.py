"""``pathdep import-suite`` and ``pathdep suites``: checkpoint suites from the Hugging Face hub."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pathdep.cli import app
from pathdep.cli.common import StoreOpt, at_least, check_dir_out, check_file, check_name
from pathdep.cli.progress import progress_bars
from pathdep.errors import SpecError
from pathdep.study import DEFAULT_STORE

console = Console()


def parse_ints(text: str, what: str, have: tuple[int, ...]) -> list[int]:
    """``"1,2,5-7"`` -> [1, 2, 5, 6, 7]; ``"all"`` -> every published value; ranges keep only published values.

    >>> parse_ints("1,3-5", "seeds", (1, 2, 3, 4, 5, 9))
    [1, 3, 4, 5]
    """
    if text.strip() == "all":
        return list(have)
    out: list[int] = []
    try:
        for part in text.split(","):
            lo, sep, hi = part.strip().partition("-")
            out += [v for v in have if int(lo) <= v <= int(hi)] if sep else [int(lo)]
    except ValueError:
        raise SpecError(f"The '--{what}' option must be integers and ranges like '1,2,5-7' or 'all'. Got {text!r} instead.") from None
    return out


def read_text(option: str, path: Path) -> str:
    """The UTF-8 text of a file an option names; a clear error if it is not that."""
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise SpecError(f"The {option!r} option must name a UTF-8 text file. Got {str(path)!r} (not UTF-8 at byte {e.start}).") from None


@app.command("import-suite")
def import_suite(
    suite: Annotated[str, typer.Argument(help="suite name (see `pathdep suites`)")],
    seeds: Annotated[str, typer.Option("--seeds", help="seeds, e.g. '1,2,3', '1-9' or 'all'")],
    steps: Annotated[str, typer.Option("--steps", help="steps, e.g. '0,1000,143000', '0-2000' or 'all'")],
    store: StoreOpt = DEFAULT_STORE,
    cache_dir: Annotated[Path | None, typer.Option("--cache-dir", help="hub cache (default: $HF_HUB_CACHE)",
                                                   callback=check_dir_out("--cache-dir"))] = None,
    study: Annotated[str | None, typer.Option("--study", help="study name (default: the suite name)",
                                              callback=check_name("--study"))] = None,
    offline: Annotated[bool, typer.Option("--offline", help="read only the local hub cache")] = False,
    text: Annotated[Path | None, typer.Option("--text", help="probe text file (default: a built-in text)",
                                              callback=check_file("--text", "a UTF-8 text file"))] = None,
    seq_len: Annotated[int, typer.Option("--seq-len", help="probe window length in tokens",
                                         callback=at_least("--seq-len", 2))] = 32,
) -> None:
    """Import checkpoints (SEEDS x STEPS) of a hub SUITE into the store as a study: runs are the seeds."""
    from pathdep.sources.hf import import_suite as run_import
    from pathdep.sources.suites import get_suite

    row = get_suite(suite)
    chosen_seeds, chosen_steps = parse_ints(seeds, "seeds", row.seeds), parse_ints(steps, "steps", row.steps)
    probe_text = read_text("--text", text) if text is not None else None
    with progress_bars(console) as bar:
        s = run_import(row, chosen_seeds, chosen_steps, store, study=study, cache_dir=cache_dir,
                       local_files_only=True if offline else None, seq_len=seq_len,
                       text=probe_text,
                       progress=lambda done, total: bar("import (checkpoints)", done, total))
    console.print(f"study [bold]{s.name}[/]: {len(s.runs())} runs x {len(chosen_steps)} steps → {s.root}")
    console.print(f"next: pathdep measure {s.name} --store {store}")


@app.command()
def suites() -> None:
    """List the checkpoint suites `pathdep import-suite` knows."""
    from pathdep.sources.suites import SUITES

    table = Table(title="hub checkpoint suites")
    for col in ("suite", "repo (seed)", "revision (step)", "seeds", "steps", "about"):
        table.add_column(col)
    for s in SUITES.values():
        table.add_row(s.name, s.repo, s.revision, f"{len(s.seeds)}: {s.seeds[0]}..{s.seeds[-1]}",
                      f"{len(s.steps)}: {s.steps[0]}..{s.steps[-1]}", s.doc)
    console.print(table)
