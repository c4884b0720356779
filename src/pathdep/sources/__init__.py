"""Checkpoints from elsewhere: Hugging Face hub suites and a user's own training loop.

They enter at the store; from there on an external study is measured and reported like any other.
transformers is imported only when a hub model is loaded.
"""

from pathdep.sources.external import ExternalStudy
from pathdep.sources.hf import import_suite
from pathdep.sources.module import ModuleModel
from pathdep.sources.recorder import Recorder
from pathdep.sources.suites import SUITES, Suite, get_suite


__all__ = ["SUITES", "ExternalStudy", "ModuleModel", "Recorder", "Suite", "get_suite", "import_suite"]
