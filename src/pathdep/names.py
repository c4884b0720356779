"""The one rule for names that become paths: study, variant, fork and run names.

A name is 1 to :data:`MAX_LENGTH` characters: letters, digits, ``_``, ``.``, ``+`` and ``-``,
starting with a letter or a digit. So a name is never empty, never ``.`` or ``..``, never hidden,
holds no path separator, and fits in one file-name component on every file system. The spec, the
store's path functions and the command line all check names here, so no name can lead a write
outside its store.

>>> valid_name("study", "seeds-8")
'seeds-8'
>>> valid_name("--study", "../escaped")
Traceback (most recent call last):
...
pathdep.errors.SpecError: The '--study' option must be a name of 1-100 letters, digits, '_', '.', '+' or '-', starting with a letter or digit. Got '../escaped' instead.
"""

from __future__ import annotations

import re

from pathdep.errors import bad_value

MAX_LENGTH = 100
RUN_MAX_LENGTH = 200  # run names add seeds and lambdas to a variant or fork name
NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$"
EXPECTED = "a name of 1-{n} letters, digits, '_', '.', '+' or '-', starting with a letter or digit"


def is_name(value: object, max_length: int = MAX_LENGTH) -> bool:
    """Whether ``value`` is a valid name (see the module docstring)."""
    return isinstance(value, str) and len(value) <= max_length and re.match(NAME_RE, value) is not None


def valid_name(kind: str, value: object, max_length: int = MAX_LENGTH) -> str:
    """``value`` if it is a valid name; otherwise a :class:`pathdep.errors.SpecError` naming ``kind``."""
    if not is_name(value, max_length):
        shown = value if not isinstance(value, str) or len(value) <= 120 else value[:60] + "..." + value[-20:]
        suffix = f" (it has {len(value)} characters)" if isinstance(value, str) and len(value) > max_length else ""
        raise bad_value(kind, shown, EXPECTED.format(n=max_length) + suffix)
    return value
