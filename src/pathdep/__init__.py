"""pathdep: measure path dependence in neural-network training.

>>> import pathdep
>>> {"digits", "two_features"} <= set(pathdep.TASKS.names())
True
>>> from pathdep import barrier, cka, dip_test, weight_matching  # the measurements, over tensors
"""

from importlib import import_module

from pathdep import models, tasks  # noqa: F401  (registers the built-in families and tasks)
from pathdep.errors import PathdepError, SpecError, StoreError
from pathdep.registry import MODELS, TASKS
from pathdep.spec import StudySpec, load_toml, parse_spec
from pathdep.study import Study

# The main measurement functions and the profile, imported on first use: they pull in scipy and
# scikit-learn, which `import pathdep` (and every CLI command) should not pay for.
_LAZY = {
    "cka": "pathdep.measure.similarity", "similarity_matrix": "pathdep.measure.similarity",
    "barrier": "pathdep.measure.connectivity", "weight_matching": "pathdep.measure.align",
    "apply_permutation": "pathdep.measure.align", "agreement": "pathdep.measure.behaviour",
    "uniform_soup": "pathdep.measure.soups", "dip_test": "pathdep.analyses.stats",
    "Profile": "pathdep.analyses.finding", "Finding": "pathdep.analyses.finding",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pathdep' has no attribute {name!r}")


__all__ = ["MODELS", "TASKS", "Finding", "PathdepError", "Profile", "SpecError", "StoreError", "Study", "StudySpec",
           "agreement", "apply_permutation", "barrier", "cka", "dip_test", "load_toml", "parse_spec",
           "similarity_matrix", "uniform_soup", "weight_matching"]
