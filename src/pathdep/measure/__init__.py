"""Measurements: pure functions of checkpoints (populations, run axis first) and probe data.

One small module per quantity: :mod:`behaviour`, :mod:`similarity` (CKA, Procrustes),
:mod:`connectivity` (interpolation, barriers), :mod:`align` (weight and activation matching),
:mod:`soups`, :mod:`importance` (ablations), :mod:`static` (norms, rank, sharpness). :mod:`study`
runs them all over a study and writes its tables; :mod:`checkpoints` compares two checkpoint files.
"""

from pathdep.measure.align import activation_matching, apply_permutation, weight_matching
from pathdep.measure.behaviour import evaluate_behaviour, pair_matrices, pair_rows
from pathdep.measure.checkpoints import Comparison, compare
from pathdep.measure.connectivity import BARRIER_DEFINITION, barrier, curves, pair_barriers
from pathdep.measure.importance import Component, ablation_effects
from pathdep.measure.measurement import MeasurementStatus, measurement_status
from pathdep.measure.similarity import cka, similarity_matrix, similarity_paired
from pathdep.measure.soups import greedy_soup, uniform_soup
from pathdep.measure.static import static_measures
from pathdep.measure.study import TABLES, MeasureOptions, measure_study

__all__ = [
    "BARRIER_DEFINITION", "TABLES", "Comparison", "Component", "MeasureOptions", "MeasurementStatus",
    "ablation_effects", "activation_matching", "measurement_status",
    "apply_permutation", "barrier", "evaluate_behaviour", "cka", "compare", "curves", "greedy_soup", "measure_study",
    "pair_barriers", "pair_matrices", "pair_rows", "similarity_matrix", "similarity_paired", "static_measures",
    "uniform_soup", "weight_matching",
]
