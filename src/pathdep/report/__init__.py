"""The report of a profile: one self-contained HTML page, ``profile.json`` and a terminal table.

:func:`render` accepts a study (its profile is computed from the stored tables) or a profile.
Rendering only reads stored measurements: it never trains or measures. Every view opens with each
question's place on its spectrum between low and high path dependence and a bottom line
(:mod:`pathdep.analyses.spectrum`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from pathdep.analyses import StudyData
from pathdep.analyses import profile as make_profile
from pathdep.analyses.finding import Profile
from pathdep.analyses.spectrum import bottom_line
from pathdep.report.figures import plot_png, training_curves
from pathdep.report.html import headline_text, render_html
from pathdep.store import write_atomic


@dataclass(frozen=True)
class Report:
    """What :func:`render` wrote, and the profile it rendered."""

    html: Path
    json: Path
    profile: Profile

    def table(self) -> Table:
        return terminal_table(self.profile)

    @property
    def bottom_line(self) -> str:
        return bottom_line(self.profile)


PLACE_STYLE = {"low": "green", "mixed": "yellow", "high": "red", "not measured": "dim"}


def terminal_table(profile: Profile) -> Table:
    """The findings as a rich table (print it with ``rich.console.Console().print``)."""
    t = Table(title=f"path-dependence profile: {profile.study}", show_lines=False)
    t.add_column("id", style="bold")
    t.add_column("headline")
    t.add_column("value [95% CI]", justify="right")
    t.add_column("place", no_wrap=True)
    t.add_column("verdict", overflow="fold", max_width=70)
    for f in profile:
        place = f"[{PLACE_STYLE.get(f.place, 'dim')}]{escape(f.place)}[/]"
        t.add_row(f.id, escape(f.headline or "—"), headline_text(f), place, escape(f.verdict),
                  style=None if f.measured else "dim")
    t.caption = escape(bottom_line(profile))
    return t


def render(study_or_profile: Any, out_dir: str | Path, progress: Callable[[int, int], None] | None = None,
           others: list[Profile] | None = None, warnings: list[str] | None = None) -> Report:
    """Write ``report.html`` and ``profile.json`` of a study (or of a profile) into ``out_dir``.

    ``others``: profiles of other studies, for the general factor (GF) across studies;
    ``warnings``: lines shown in red at the top of the page (e.g. partial or stale tables).
    A study's page also shows every run's training curves.

    Usage: ``render(Study.open("store", "demo"), "store/demo/report").html``.
    """
    if isinstance(study_or_profile, Profile):
        prof, curves = study_or_profile, None
    else:
        data = StudyData.of(study_or_profile)
        prof = make_profile(data, progress, others=others)
        curves = training_curves(data)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pngs = {f.id: plot_png(f) for f in prof}
    html_path, json_path = out / "report.html", out / "profile.json"
    write_atomic(html_path, render_html(prof, pngs, warnings, curves).encode())
    write_atomic(json_path, (prof.to_json() + "\n").encode())
    return Report(html_path, json_path, prof)


__all__ = ["Report", "render", "terminal_table"]
