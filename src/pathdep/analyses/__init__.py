"""Analyses: one module per question of the path-dependence profile, each a Finding of stored tables.

>>> sorted(ANALYSES)
['A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'LMC', 'T', 'TOK']

:func:`profile` answers every question of one study; :func:`analyse_gf` takes several profiles.
Analyses only read the study's tables (and training logs); they never train or measure.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pathdep.analyses.a import analyse_a
from pathdep.analyses.b import analyse_b
from pathdep.analyses.c import analyse_c
from pathdep.analyses.d import analyse_d
from pathdep.analyses.data import NotMeasured, StudyData
from pathdep.analyses.e import analyse_e
from pathdep.analyses.f import analyse_f
from pathdep.analyses.finding import QUESTIONS, Finding, Profile, not_measured
from pathdep.analyses.g import analyse_g
from pathdep.analyses.gf import analyse_gf
from pathdep.analyses.h import analyse_h
from pathdep.analyses.lmc import analyse_lmc
from pathdep.analyses.t import analyse_t
from pathdep.analyses.tok import analyse_tok

ANALYSES: dict[str, Callable[[Any], Finding]] = {
    "A": analyse_a, "B": analyse_b, "C": analyse_c, "D": analyse_d, "E": analyse_e, "F": analyse_f,
    "G": analyse_g, "H": analyse_h, "T": analyse_t, "LMC": analyse_lmc, "TOK": analyse_tok,
}


def profile(study: Any, progress: Callable[[int, int], None] | None = None,
            others: list[Profile] | None = None) -> Profile:
    """Every finding of ``study`` in question order; GF from this profile and ``others``.

    A question whose inputs the study lacks comes back marked "not measured in this study".
    """
    data = StudyData.of(study)
    findings = []
    for i, fn in enumerate(ANALYSES.values()):
        findings.append(fn(data))
        if progress is not None:
            progress(i + 1, len(ANALYSES) + 1)
    meta = _meta(data)
    own = Profile(data.name, tuple(findings), meta)
    findings.append(analyse_gf([own, *(others or [])]))
    if progress is not None:
        progress(len(ANALYSES) + 1, len(ANALYSES) + 1)
    return Profile(data.name, tuple(findings), meta)


def _meta(data: StudyData) -> dict[str, Any]:
    runs = data.runs
    spec = data.study.spec
    return {
        "runs": len(runs), "variants": sorted(runs["variant"].unique()),
        "forks": sorted(runs["fork"].dropna().unique()), "steps": data.final_step,
        "task": spec.process.task, "model": spec.process.model, "description": spec.description,
        "tables": [t for t in ("properties", "behaviour", "behaviour_pairs", "cka", "barriers", "soups",
                               "importance", "static") if data.table(t) is not None],
    }


__all__ = ["ANALYSES", "QUESTIONS", "Finding", "NotMeasured", "Profile", "StudyData", "analyse_a", "analyse_b",
           "analyse_c", "analyse_d", "analyse_e", "analyse_f", "analyse_g", "analyse_gf", "analyse_h",
           "analyse_lmc", "analyse_t", "not_measured", "profile"]
