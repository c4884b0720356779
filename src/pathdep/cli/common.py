"""What the command modules share: the --store option and opening a study by name or spec."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pathdep.study import Study

StoreOpt = Annotated[Path, typer.Option("--store", "-s", help="store directory")]
StudyArg = Annotated[str, typer.Argument(help="study name in the store (or its spec TOML)")]


def open_study(study: str, store: Path) -> Study:
    """A study by name in ``store``, or from a spec file (its runs must be trained already)."""
    path = Path(study)
    if path.suffix == ".toml" and path.is_file():
        return Study.from_toml(path, store)
    return Study.open(store, study)
