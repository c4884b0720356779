"""The ``pathdep`` command line. Each command group lives in its own module of this package.

Errors a user can cause (:class:`pathdep.errors.PathdepError`) are printed on one line and end the
process with their exit code (2 for a malformed spec or argument); no traceback.
"""

from __future__ import annotations

import os
import sys

import typer

app = typer.Typer(
    name="pathdep",
    help="Measure path dependence in neural-network training.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def configure_threads() -> None:
    """One torch thread unless PATHDEP_THREADS says otherwise.

    Small models on a few cores run 10-100x slower with several OpenMP threads fighting over
    them; populations are batched, so one thread already keeps a core busy.
    """
    import torch

    torch.set_num_threads(int(os.environ.get("PATHDEP_THREADS", "1")))


def _register() -> None:
    from pathdep.cli import commands  # noqa: F401  (registers run, ls, demo)

    for optional in ("measure", "report", "sources", "verify"):
        try:
            __import__(f"pathdep.cli.{optional}")
        except ModuleNotFoundError as e:
            if e.name != f"pathdep.cli.{optional}":
                raise


def main() -> None:
    from pathdep.errors import PathdepError

    configure_threads()
    _register()
    try:
        app(standalone_mode=False)
    except PathdepError as e:
        typer.secho(f"error: {e}", err=True, fg="red")
        sys.exit(e.exit_code)
    except typer.Abort:
        sys.exit(130)
    except Exception as e:  # click usage errors
        import click

        if isinstance(e, click.ClickException):
            e.show()
            sys.exit(e.exit_code)
        raise
