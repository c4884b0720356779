"""The ``pathdep`` command line. Each command group lives in its own module of this package.

Errors a user can cause are printed on one line and end the process with an exit code, never a
traceback: a malformed spec, argument or option exits 2 (:class:`pathdep.errors.PathdepError`
subclasses carry their own code, usage errors of the parser exit 2), and so does a store the
operating system refuses to write (full disk, read-only or foreign file system, permissions).
:func:`invoke` is that boundary; ``main`` (the ``pathdep`` script) calls it.
"""

from __future__ import annotations

import errno
import os
import shlex
import sys
from typing import Annotated, Any

import typer
from rich.markup import escape
from typer.core import TyperCommand, TyperGroup


class _PlainHelp:
    """Help as written: brackets in help text are shown, not read as rich markup (``[measure]``),
    and a flag shows no value type (``--replace``, not ``--replace <bool>``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.help:
            self.help = escape(self.help)

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)  # type: ignore[misc]
        for p in params:
            if getattr(p, "is_flag", False) and p.metavar is None:
                p.metavar = ""
            if getattr(p, "help", None) and not getattr(p, "_help_escaped", False):
                p.help, p._help_escaped = escape(p.help), True
        return params


class _Command(_PlainHelp, TyperCommand):
    pass


class _Group(_PlainHelp, TyperGroup):
    pass


class _Typer(typer.Typer):
    def command(self, *args: Any, cls: type | None = None, **kwargs: Any) -> Any:
        return super().command(*args, cls=cls or _Command, **kwargs)


app = _Typer(
    name="pathdep",
    help="Measure path dependence in neural-network training.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=_Group,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def version() -> str:
    """The installed pathdep's version."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("pathdep")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"pathdep {version()}")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: Annotated[bool, typer.Option("--version", help="print the version and exit", is_eager=True,
                                               callback=_print_version)] = False,
) -> None:
    """Measure path dependence in neural-network training."""


INTERRUPTED = 130  # the exit code of a command stopped by Ctrl-C (128 + SIGINT)

# what rerunning an interrupted command does (the same command line, run again)
RESUMES = {
    "run": "resumes from the last checkpoint",
    "demo": "resumes from the last checkpoint",
    "measure": "measures again (the tables committed before are intact)",
    "import-suite": "resumes with the checkpoints not yet imported",
}

# errors the operating system reports for a store or file the user pointed at
OS_ERRORS = {
    errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted", errno.ENAMETOOLONG: "the file name is too long",
    errno.ENOTDIR: "a part of the path is not a directory", errno.EISDIR: "it is a directory",
    errno.ENOENT: "no such file or directory", errno.EFBIG: "the file is too large",
    errno.EIO: "input/output error",
}


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


def _click_errors() -> tuple[type[BaseException], ...]:
    """Usage-error classes: typer's vendored click (typer >= 0.22) and click itself (older typer)."""
    found: list[type[BaseException]] = []
    try:
        from typer._click.exceptions import ClickException

        found.append(ClickException)
    except ImportError:
        pass
    try:
        import click

        found.append(click.ClickException)
    except ImportError:
        pass
    return tuple(found)


def _aborts() -> tuple[type[BaseException], ...]:
    found: list[type[BaseException]] = [typer.Abort, KeyboardInterrupt]
    try:
        import click

        found.append(click.exceptions.Abort)
    except ImportError:
        pass
    return tuple(found)


def usage_line(e: BaseException) -> str:
    """One line for a parser error: what was wrong, the value given and where the options are listed."""
    msg = e.format_message().rstrip(".")  # type: ignore[attr-defined]
    cause = e.__cause__
    if cause is not None and hasattr(cause, "errors"):  # typer coerces values with pydantic
        errs = cause.errors()
        if errs and "input" in errs[0]:
            msg += f". Got {errs[0]['input']!r} instead"
    ctx = getattr(e, "ctx", None)
    command = getattr(ctx, "command", None)
    if command is not None:
        if hasattr(command, "commands") and msg.startswith("No such command"):
            msg += f"; the commands are {', '.join(sorted(command.commands))}"
        elif type(e).__name__ == "NoSuchOption" and not getattr(e, "possibilities", None):
            opts = sorted(o for p in command.params for o in getattr(p, "opts", ()) if o.startswith("--"))
            msg += f"; the options of '{ctx.command_path}' are {', '.join(opts) or 'none'}"
        return f"{msg} (see '{ctx.command_path} --help')."
    return msg + "."


def os_line(e: OSError) -> str:
    """One line for an operating-system refusal: the path, the reason and what to do."""
    where = f"{e.filename!r}" if e.filename else "a file"
    return (f"Cannot write or read {where}: {OS_ERRORS[e.errno]} ({errno.errorcode[e.errno]}: {e.strerror}). "
            "Free space, or choose a store or path you can write (--store, --out).")


def interrupted_line(argv: list[str]) -> str:
    """What Ctrl-C leaves behind, and what running the same command again does."""
    command = next((a for a in argv if not a.startswith("-")), "")
    again = RESUMES.get(command)
    if again is None:
        return "interrupted"
    return f"interrupted; `{shlex.join(['pathdep', *argv])}` {again}"


def _fail(message: str, code: int) -> int:
    for line in message.splitlines() or [""]:  # a spec with several faults: one line each
        typer.secho(f"error: {line}", err=True, fg="red")
    return code


def invoke(argv: list[str] | None = None) -> int:
    """Run the command line on ``argv`` (default ``sys.argv[1:]``) and return its exit code.

    Errors a user can cause become one line on stderr (see the module docstring); anything else
    is a bug and keeps its traceback.
    """
    from pathdep.errors import PathdepError

    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        result = app(args=argv, prog_name="pathdep", standalone_mode=False)
    except PathdepError as e:
        return _fail(str(e), e.exit_code)
    except _click_errors() as e:
        if type(e).__name__ == "NoArgsIsHelpError":
            e.show()
            return 0
        return _fail(usage_line(e), 2)
    except _aborts():
        typer.secho(interrupted_line(argv), err=True, fg="yellow")
        return INTERRUPTED
    except OSError as e:
        if e.errno == errno.EPIPE:
            return 1
        if e.errno not in OS_ERRORS:
            raise
        return _fail(os_line(e), 2)
    if result == INTERRUPTED:  # typer >= 0.22 turns Ctrl-C into this exit code (older ones raise Abort)
        typer.secho(interrupted_line(argv), err=True, fg="yellow")
    return result if isinstance(result, int) else 0


def main() -> None:
    configure_threads()
    _register()
    sys.exit(invoke())
