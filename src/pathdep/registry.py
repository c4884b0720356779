"""Registries of tasks and model families: names to (argument schema, builder).

Adding a task or a model is one :func:`register` call (a new row), never an ``elif``.
Users add their own the same way from Python before building a study.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel


@dataclass(frozen=True)
class Entry:
    """A registered builder and the pydantic model that validates its arguments."""

    name: str
    args: type[BaseModel]
    build: Callable[..., Any]
    doc: str = ""


class Registry:
    """A named table of builders.

    >>> from pydantic import BaseModel
    >>> class NoArgs(BaseModel): pass
    >>> r = Registry("task")
    >>> r.register("toy", NoArgs, lambda args: "built", "a toy")
    >>> r.names()
    ['toy']
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, args: type[BaseModel], build: Callable[..., Any], doc: str = "") -> None:
        self._entries[name] = Entry(name, args, build, doc)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __getitem__(self, name: str) -> Entry:
        return self._entries[name]

    def entries(self) -> list[Entry]:
        return [self._entries[n] for n in self.names()]


TASKS = Registry("task")
MODELS = Registry("model")
