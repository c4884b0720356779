"""What the command modules share: the --store option, opening a study by name or spec, and the
checks of option values (each refusal names the option, the value and what was expected)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from pathdep.errors import bad_value
from pathdep.names import valid_name
from pathdep.study import Study


def check_store(store: Path) -> Path:
    """``store`` if it is a directory or can become one: no part of it may be a file."""
    for part in (store, *store.parents):
        if part.exists():
            if not part.is_dir():
                what = "is a file" if part == store else f"lies under the file {str(part)!r}"
                raise bad_value("--store", str(store), f"a directory (or a path where one can be created); it {what}")
            break
    return store


def check_dir_out(option: str) -> Callable[[Path | None], Path | None]:
    """A check that an output directory option does not name a file."""

    def check(path: Path | None) -> Path | None:
        if path is not None:
            for part in (path, *path.parents):
                if part.exists():
                    if not part.is_dir():
                        raise bad_value(option, str(path), f"a directory (or a path where one can be created); "
                                        f"{str(part)!r} is a file")
                    break
        return path

    return check


def check_file(option: str, what: str) -> Callable[[Path | None], Path | None]:
    """A check that ``option`` names an existing file (not a directory)."""

    def check(path: Path | None) -> Path | None:
        if path is not None and not path.is_file():
            found = "is a directory" if path.is_dir() else "does not exist"
            raise bad_value(option, str(path), f"{what}; it {found}")
        return path

    return check


def at_least(option: str, low: int, zero_means: str | None = None) -> Callable[[int | None], int | None]:
    """A check that an integer option is >= ``low`` (or 0, when 0 has a meaning)."""
    expected = f"an integer >= {low}" + (f", or 0 for {zero_means}" if zero_means else "")

    def check(value: int | None) -> int | None:
        if value is not None and value < low and not (zero_means and value == 0):
            raise bad_value(option, value, expected)
        return value

    return check


def check_name(option: str) -> Callable[[str | None], str | None]:
    def check(value: str | None) -> str | None:
        return None if value is None else valid_name(option, value)

    return check


def check_names(option: str) -> Callable[[list[str] | None], list[str] | None]:
    def check(values: list[str] | None) -> list[str] | None:
        return None if values is None else [valid_name(option, v) for v in values]

    return check


def check_study_arg(value: str) -> str:
    """A study name, or a path to its spec (``.toml``)."""
    if value.endswith(".toml"):
        return value
    return valid_name("STUDY", value)


def check_factory(values: list[str] | None) -> list[str] | None:
    for v in values or ():
        mod, sep, fn = v.partition(":")
        if not (mod and sep and fn):
            raise bad_value("--factory", v, "'package.module:function'")
    return values


StoreOpt = Annotated[Path, typer.Option("--store", "-s", help="store directory", callback=check_store)]
StudyArg = Annotated[str, typer.Argument(help="study name in the store (or its spec TOML)", callback=check_study_arg)]
FactoryOpt = Annotated[list[str] | None, typer.Option(
    "--factory", callback=check_factory,
    help="a model factory 'package.module:function' that you trust, for an imported or recorded study "
         "whose study.json names it (repeatable); pathdep never imports code a store names")]


def trusted_factories(names: list[str] | None) -> dict[str, Callable]:
    """The factories the user named on the command line, imported because the user asked."""
    from pathdep.sources.external import import_factory

    return {n: import_factory(n) for n in names or ()}


def open_study(study: str, store: Path, factories: list[str] | None = None) -> Study:
    """A study by name in ``store``, or from a spec file (its runs must be trained already)."""
    if study.endswith(".toml"):
        return Study.from_toml(Path(study), store, force=True)  # reading: its cost was accepted when trained
    return Study.open(store, valid_name("STUDY", study), factories=trusted_factories(factories))


def check_tables(values: list[str] | None) -> list[str] | None:
    """``--only`` values: names of measurement tables."""
    from pathdep.measure import TABLES

    for v in values or ():
        if v not in TABLES:
            raise bad_value("--only", v, f"one of the tables {list(TABLES)}")
    return values


def check_probe_files(values: list[str] | None) -> dict[str, Path] | None:
    """``--probes NAME=FILE`` (repeatable; a bare FILE is the set ``test``) as {name: existing file}."""
    if not values:
        return None
    out: dict[str, Path] = {}
    for value in values:
        name, _, file = value.partition("=") if "=" in value else ("test", "=", value)
        path = Path(file)
        if not name or not file or name in out:
            raise bad_value("--probes", value, "NAME=FILE with a probe set name given once (or a bare FILE, the set 'test')")
        if not path.is_file() or path.suffix not in (".safetensors", ".npz"):
            found = "does not exist" if not path.exists() else "is not a .safetensors or .npz file"
            raise bad_value("--probes", value, f"a .safetensors or .npz file holding 'x' and 'y'; {str(path)!r} {found}")
        out[name] = path
    return out
