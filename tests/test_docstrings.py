"""Every docstring example in the package runs and prints what it shows."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import pathdep

MODULES = sorted(m.name for m in pkgutil.walk_packages(pathdep.__path__, "pathdep.") if not m.name.endswith("__main__"))


def test_the_package_has_docstring_examples_to_run():
    examples = sum(len(t.examples) for name in MODULES for t in doctest.DocTestFinder().find(importlib.import_module(name)))
    assert examples >= 150


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # an example that writes a store writes it here
    results = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS, report=True)
    assert results.failed == 0, f"{results.failed} of {results.attempted} examples of {name} failed"
