"""``pathdep report``: the path-dependence profile of a measured study, as HTML, JSON and a table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from pathdep.cli import app
from pathdep.cli.common import FactoryOpt, StoreOpt, StudyArg, check_dir_out, check_names, open_study
from pathdep.cli.progress import progress_bars
from pathdep.study import DEFAULT_STORE, Study

console = Console()


def write_report(study: Study, out: Path | None = None, others: list[str] = (), log: list[str] = ()) -> Path:
    """Render the study's report (from stored tables only), print its table, return the HTML path.

    ``others`` names studies of the same store whose reports exist: their profiles enter GF;
    ``log`` names experiment trackers to log the profile to (:mod:`pathdep.report.trackers`).
    """
    from pathdep.measure.measurement import measurement_status
    from pathdep.report import render
    from pathdep.report.trackers import log_profile, require

    require(log)  # a missing tracker library is reported before anything is written

    profiles = [stored_profile(study.store, name) for name in others]
    with study.pinned():  # every table from one committed measurement
        status = measurement_status(study)
        warnings = [] if status.ok else [f"The measurement is {status.state}; findings may not cover the study.",
                                         *status.reasons]
        from pathdep.sources.probes import overlap_note

        warnings += [n for n in [overlap_note(study.name, getattr(study, "probe_overlap", None))] if n]
        with progress_bars(console) as bar:
            rep = render(study, out or study.root / "report", progress=lambda d, t: bar("analyses", d, t),
                         others=profiles, warnings=warnings)
    for w in warnings:
        console.print(f"[bold red]{escape(w)}[/]")
    console.print(rep.table())
    console.print(f"report: {rep.html}\nprofile: {rep.json}")
    for name, where in log_profile(log, rep.profile, study, rep.html.parent).items():
        console.print(f"{name}: {where}")
    return rep.html


@app.command()
def report(
    study: StudyArg,
    log: Annotated[list[str] | None, typer.Option("--log", help="also log to wandb, mlflow or tensorboard (repeatable; offline unless configured)")] = None,
    store: StoreOpt = DEFAULT_STORE,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="output directory (default: STUDY/report)",
                                             callback=check_dir_out("--out"))] = None,
    with_: Annotated[list[str] | None, typer.Option("--with", help="another reported study of the store, for GF (repeatable)",
                                                    callback=check_names("--with"))] = None,
    factory: FactoryOpt = None,
) -> None:
    """Write STUDY's path-dependence profile: report.html (self-contained), profile.json, and a table.

    Reads the stored measurement tables only (run `pathdep measure STUDY` first); questions whose
    measurements are absent are listed as not measured. With --with OTHER (three studies or more
    in all), GF reports the general factor across the studies' profiles.
    """
    write_report(open_study(study, store, factory), out, with_ or [], log or [])


def stored_profile(store: Path, name: str):
    """The profile a previous ``pathdep report NAME`` wrote."""
    from pathdep.analyses.finding import Profile
    from pathdep.errors import StoreError

    path = Path(store) / name / "report" / "profile.json"
    if not path.is_file():
        raise StoreError(f"The '--with' study {name!r} has no report in {str(store)!r} ({path}); run `pathdep report {name}` first.")
    return Profile.from_json(path.read_text())


def finish_demo(study: Study) -> None:
    """The end of ``pathdep demo``: measure what is not measured yet, then write the report."""
    from pathdep.measure import TABLES, measure_study

    missing = [t for t in TABLES if not study.has_table(t)]
    if missing:
        with progress_bars(console) as bar:
            measure_study(study, which=missing, progress=bar)
    write_report(study)
