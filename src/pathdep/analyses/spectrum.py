"""Where a study sits on each question's spectrum between low and high path dependence.

Each question is placed *low*, *mixed* or *high* (or *not measured*) by one rule, a row of
:data:`RULES`: which number of the finding it reads (``value``, ``ci`` or a ``details`` key,
written as a dotted path), optionally divided by another number, and two thresholds. A rule reads
an interval: the finding's CI (or a two-number detail) when it has one, else the point value, so
an uncertain number lands in *mixed*: the place is *high* only when the whole interval passes the
high threshold, *low* only when the whole interval passes the low one. A number a rule needs that
the finding lacks makes the place *not measured*.

>>> from pathdep.analyses.finding import Finding
>>> Finding("LMC", "mean error barrier", 0.3, (0.25, 0.35), "...").place
'high'
>>> Finding("LMC", "mean error barrier", 0.05, (0.01, 0.09), "...").place
'mixed'
>>> print(RULES["LMC"].text)
LMC: low if mean error barrier between final runs (CI upper) < 0.02, high if (CI lower) > 0.1, else mixed
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

LOW, MIXED, HIGH, NOT_MEASURED = "low", "mixed", "high", "not measured"
PLACES = (LOW, MIXED, HIGH, NOT_MEASURED)
SCORE = {LOW: 0.0, MIXED: 0.5, HIGH: 1.0}  # a place as a number, for the bottom line
_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


@dataclass(frozen=True)
class Rule:
    """How one question is placed: ``low`` and ``high`` are (operator, threshold) on the number read.

    ``reads``: ``"ci"``, ``"value"`` or ``"details.KEY[.KEY|.INDEX]"``; ``per``: a path the number is
    divided by (e.g. the final step, to read a step as a fraction of training); ``skill``: a path
    to a chance level c, the number becomes (x - c) / (1 - c); ``never``: the number a measured
    finding without one stands for (D and E: "never reaches" is later than any step).
    A "<" / "<=" test must hold for the interval's upper end, a ">" / ">=" test for its lower end.
    """

    id: str
    what: str  # the number read, in words
    reads: str
    low: tuple[str, float]
    high: tuple[str, float]
    per: str | None = None
    skill: str | None = None
    never: float | None = None
    note: str = ""

    def keys(self) -> list[str]:
        """Every path of the finding this rule reads."""
        return [p for p in ("value", self.reads, self.per, self.skill) if p is not None and (p != "value" or self.never)]

    @property
    def text(self) -> str:
        """The rule in one line, written from its thresholds."""
        (lo_op, lo), (hi_op, hi) = self.low, self.high
        point = self.reads == "value"
        lo_end = "" if point else (" (CI upper)" if lo_op.startswith("<") else " (CI lower)")
        hi_end = "" if point else ("(CI upper) " if hi_op.startswith("<") else "(CI lower) ")
        note = f" ({self.note})" if self.note else ""
        return f"{self.id}: low if {self.what}{lo_end} {lo_op} {lo:g}, high if {hi_end}{hi_op} {hi:g}, else mixed{note}"


NEVER = "never counts as after the end"
# One row per question. Thresholds are in the headline's own units unless ``per`` or ``skill`` say otherwise.
RULES: dict[str, Rule] = {r.id: r for r in (
    Rule("A", "seed sd of probe accuracy", "ci", ("<", 0.02), (">", 0.05)),
    Rule("B", "between / within-variant disagreement", "ci", ("<", 1.1), (">", 1.25)),
    Rule("C", "number of clusters", "value", ("<=", 1), (">=", 2)),
    Rule("D", "settling step / final step", "ci", (">", 0.9), ("<=", 0.5), per="details.steps.-1", never=math.inf,
         note=NEVER),
    Rule("E", "predictable-from step / final step", "ci", (">", 0.9), ("<=", 0.5), per="details.steps.-1",
         never=math.inf, note=NEVER),
    Rule("F", "persistence of interventions", "details.pooled.persistence_ci", ("<", 0.2), (">", 0.5),
         note="not placed when no immediate effect is detected: persistence is then undefined"),
    Rule("G", "survival of mid-training structure beyond what runs share", "details.survival_ci", ("<", 0.1),
         (">", 0.3), note="top-k overlap as skill over chance, or CKA(mid, own end) minus CKA between runs' ends"),
    Rule("H", "early learning order's held-out skill over chance", "details.score_ci.early order",
         ("<", 0.2), (">", 0.5), skill="details.chance", note="skill = (score - chance) / (1 - chance)"),
    Rule("T", "agreement over time minus between runs", "ci", ("<", 0.02), (">", 0.05)),
    Rule("LMC", "mean error barrier between final runs", "ci", ("<", 0.02), (">", 0.1)),
    Rule("TOK", "per-token Spearman between runs", "ci", (">", 0.9), ("<", 0.5)),
)}
# GF is placed apart: it says whether one factor runs through several studies, not where one study sits.
GF_TEXT = ("GF: high (one general factor) if PC1 share (CI lower) > the 95th percentile of the share among "
           "independent profiles (details.share_null_q95), low if (CI upper) <= their mean "
           "(details.share_null_mean), else mixed")


def read(finding: Any, path: str) -> Any:
    """The value at a dotted ``path`` of a finding ("value", "ci", "details.a.b.-1"); None if absent."""
    head, *rest = path.split(".")
    obj: Any = getattr(finding, head, None)
    for key in rest:
        if isinstance(obj, Mapping):
            obj = obj.get(key)
        elif isinstance(obj, (list, tuple)) and key.lstrip("-").isdigit() and -len(obj) <= int(key) < len(obj):
            obj = obj[int(key)]
        else:
            return None
    return obj


def _number(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def interval(finding: Any, rule: Rule) -> tuple[float, float] | None:
    """The interval (lo, hi) a rule judges, after ``per`` and ``skill``; None if a number is absent."""
    got = read(finding, rule.reads)
    if rule.reads == "ci" and got is None:  # no interval: the point value
        got = finding.value
    if isinstance(got, (list, tuple)) and len(got) == 2:
        lo, hi = _number(got[0]), _number(got[1])
    else:
        lo = hi = _number(got)
    if rule.never is not None:
        if _number(finding.value) is None:  # the point estimate says "never"
            lo = hi = rule.never
        lo, hi = (rule.never if lo is None else lo), (rule.never if hi is None else hi)
    if lo is None or hi is None:
        return None
    if rule.per is not None:
        scale = _number(read(finding, rule.per))
        if scale is None or scale <= 0:
            return None
        lo, hi = lo / scale, hi / scale
    if rule.skill is not None:
        c = _number(read(finding, rule.skill))
        if c is None or c >= 1:
            return None
        lo, hi = (lo - c) / (1 - c), (hi - c) / (1 - c)
    return lo, hi


def _passes(iv: tuple[float, float], test: tuple[str, float]) -> bool:
    op, x = test
    return _OPS[op](iv[1] if op.startswith("<") else iv[0], x)


def judge(iv: tuple[float, float], low: tuple[str, float], high: tuple[str, float]) -> str:
    """low / high when the whole interval passes that test (high wins if both do), else mixed."""
    return HIGH if _passes(iv, high) else LOW if _passes(iv, low) else MIXED


def place_of(finding: Any) -> tuple[str, str]:
    """(place, the rule's text) of a finding; "not measured" when it is, or when a number is absent."""
    if finding.id == "GF":
        return _place_gf(finding), GF_TEXT
    rule = RULES.get(finding.id)
    if rule is None:
        return NOT_MEASURED, f"{finding.id}: no rule places this question"
    if not finding.measured:
        return NOT_MEASURED, rule.text
    iv = interval(finding, rule)
    return (NOT_MEASURED if iv is None else judge(iv, rule.low, rule.high)), rule.text


def _place_gf(finding: Any) -> str:
    if not finding.measured:
        return NOT_MEASURED
    iv = interval(finding, Rule("GF", "PC1 share", "ci", ("<=", 0.0), (">", 0.0)))
    q95, mean = _number(read(finding, "details.share_null_q95")), _number(read(finding, "details.share_null_mean"))
    if iv is None or q95 is None or mean is None:
        return NOT_MEASURED
    return judge(iv, ("<=", mean), (">", q95))


def bottom_line(findings: Iterable[Any]) -> str:
    """One paragraph: where the study sits, from the places of its findings (GF apart).

    >>> from pathdep.analyses.finding import Finding
    >>> fs = [Finding("C", "k", 2.0, (2.0, 2.0), ""), Finding("LMC", "b", 0.3, (0.2, 0.4), ""),
    ...       Finding("T", "t", 0.0, (-0.01, 0.01), "")]
    >>> bottom_line(fs)
    'This study sits toward high path dependence: 2 of 3 measured questions read high (C, LMC), 1 low (T).'
    """
    by: dict[str, list[str]] = {p: [] for p in PLACES}
    gf = None
    for f in findings:
        if f.id == "GF":
            gf = f
            continue
        by[f.place or place_of(f)[0]].append(f.id)
    placed = [i for p in (LOW, MIXED, HIGH) for i in by[p]]
    if not placed:
        text = "No question is measured in this study, so it is not placed on the spectrum."
    else:
        mean = sum(SCORE[p] * len(by[p]) for p in (LOW, MIXED, HIGH)) / len(placed)
        lean = ("toward high path dependence" if mean >= 2 / 3 else "toward low path dependence" if mean <= 1 / 3
                else "between low and high path dependence")
        parts = [f"{len(by[p])} {p} ({', '.join(by[p])})" for p in (HIGH, MIXED, LOW) if by[p]]
        first = parts[0].replace(" ", f" of {len(placed)} measured questions read ", 1)
        text = f"This study sits {lean}: " + ", ".join([first, *parts[1:]]) + "."
    if by[NOT_MEASURED]:
        text += f" Not measured: {', '.join(by[NOT_MEASURED])}."
    if gf is not None and gf.measured and gf.value is not None:
        text += f" Across studies (GF), the first component holds {gf.value:.0%} of the variance ({gf.place})."
    return text
