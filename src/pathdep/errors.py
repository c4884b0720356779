"""The one exception family of pathdep.

Every error a user can cause is a :class:`PathdepError`; the CLI prints its message on one
line and exits with :attr:`PathdepError.exit_code` instead of showing a traceback.
"""

from __future__ import annotations


class PathdepError(Exception):
    """Base class of every error pathdep raises on purpose."""

    exit_code = 1


class SpecError(PathdepError):
    """A study spec (or an argument that plays its part) is malformed."""

    exit_code = 2


class StoreError(PathdepError):
    """A store is locked, belongs to another spec, or holds damaged files."""


class CheckpointError(StoreError):
    """A checkpoint file is missing, truncated or does not match its manifest hash."""


class ChangedRunsError(StoreError):
    """A spec would change the definition of runs already stored for its study."""

    exit_code = 2


class TrustError(PathdepError):
    """A store names code to run (a model factory) that the caller did not pass explicitly."""

    exit_code = 2


class IncompatibleError(PathdepError):
    """Two checkpoints cannot be compared (different keys, shapes or architecture)."""

    exit_code = 2


def bad_value(field: str, value: object, expected: str) -> SpecError:
    """The one wording of a bad value, in scikit-learn's style.

    >>> str(bad_value("optimizer.lr", -1, "a float > 0"))
    "The 'optimizer.lr' field must be a float > 0. Got -1 instead."
    >>> str(bad_value("--workers", -1, "a count >= 0"))
    "The '--workers' option must be a count >= 0. Got -1 instead."
    """
    kind = "option" if field.startswith("-") else "argument" if field.isupper() else "field"
    return SpecError(f"The {field!r} {kind} must be {expected}. Got {value!r} instead.")
