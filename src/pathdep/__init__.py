"""pathdep: measure path dependence in neural-network training.

>>> import pathdep
>>> sorted(pathdep.TASKS.names())[:2]
['digits', 'two_features']
"""

from pathdep import models, tasks  # noqa: F401  (registers the built-in families and tasks)
from pathdep.errors import PathdepError, SpecError, StoreError
from pathdep.registry import MODELS, TASKS
from pathdep.spec import StudySpec, load_toml, parse_spec
from pathdep.study import Study

__all__ = ["MODELS", "TASKS", "PathdepError", "SpecError", "StoreError", "Study", "StudySpec", "load_toml", "parse_spec"]
