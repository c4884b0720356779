"""``pathdep import-suite`` and ``pathdep suites``: checkpoint suites from the Hugging Face hub."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
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
    with one_progress_bar(), progress_bars(console) as bar:
        s = run_import(row, chosen_seeds, chosen_steps, store, study=study, cache_dir=cache_dir,
                       local_files_only=True if offline else None, seq_len=seq_len,
                       text=probe_text,
                       progress=lambda done, total: bar("import (checkpoints)", done, total))
    console.print(f"study [bold]{s.name}[/]: {len(s.runs())} runs x {len(chosen_steps)} steps → {s.root}")
    console.print(f"next: pathdep measure {s.name} --store {store}")


@contextmanager
def one_progress_bar() -> Iterator[None]:
    """Silence transformers' and huggingface_hub's own tqdm bars (downloads, weight loading) while
    pathdep's bar shows the import; put both back as they were afterwards."""
    try:
        from huggingface_hub import utils as hub
        from transformers.utils import logging as tf
    except ImportError:  # the import itself reports the missing extra
        yield
        return
    hub_was_off, tf_was_on = hub.are_progress_bars_disabled(), tf.is_progress_bar_enabled()
    tf.disable_progress_bar()
    hub.disable_progress_bars()
    try:
        yield
    finally:
        if tf_was_on:
            tf.enable_progress_bar()  # (this turns huggingface_hub's bars on too)
        (hub.disable_progress_bars if hub_was_off else hub.enable_progress_bars)()


SHOWN_REPOS = 5  # repositories listed per suite before "..."


def repos_cell(suite) -> str:
    """Every seed's real repository name, one a line (the first and last few of a long list)."""
    names = suite.repos()
    if len(names) > SHOWN_REPOS:
        names = [*names[:2], f"... ({len(names) - 3} more)", names[-1]]
    if "{kstep}" in suite.repo:
        first, last = (suite.repo_of(suite.seeds[0], s).rsplit("-", 1)[-1] for s in (suite.steps[0], suite.steps[-1]))
        names.append(f"(one repository per step: {first} ... {last})")
    return "\n".join(escape(n) for n in names)


def revisions_cell(suite) -> str:
    """The revision of the first and the last step (one line when every step has the same)."""
    first, last = suite.revision_of(suite.steps[0]), suite.revision_of(suite.steps[-1])
    return escape(first if first == last else f"{first} ... {last}")


def seeds_cell(suite) -> str:
    """How many seeds, and the ``--seeds`` value that imports them all."""
    if len(suite.seeds) == 1:
        return f"1 run: --seeds {suite.seeds[0]}"
    return f"{len(suite.seeds)}: --seeds {suite.seeds_option()}"


@app.command()
def suites() -> None:
    """List the checkpoint suites `pathdep import-suite` knows: every run's hub repository and the
    --seeds value that imports them."""
    from pathdep.sources.suites import SUITES

    table = Table(title="hub checkpoint suites", show_lines=True)
    longest = max(len(name) for s in SUITES.values() for name in s.repos())
    table.add_column("suite", overflow="fold")
    table.add_column("runs (hub repository of each seed)", overflow="fold", min_width=longest)  # names whole
    for col in ("revisions (steps)", "seeds", "steps", "about"):
        table.add_column(col, overflow="fold")
    for s in SUITES.values():
        steps = str(s.steps[0]) if len(s.steps) == 1 else f"{len(s.steps)}: {s.steps[0]}..{s.steps[-1]}"
        table.add_row(s.name, repos_cell(s), revisions_cell(s), seeds_cell(s), steps, escape(s.doc))
    console.print(table)
