"""A Finding answers one question of the path-dependence profile; a Profile holds a study's findings.

A finding carries one headline statistic with its confidence interval, a verdict in words,
secondary numbers (``details``), a plot, and its place on the question's spectrum between low and
high path dependence (``place``, with the rule that placed it: :mod:`pathdep.analyses.spectrum`). The plot is either a function that draws on a
matplotlib ``Axes`` (built from stored data by the analysis) or the PNG bytes of a figure.
Everything but the plot is JSON-serialisable (:meth:`Finding.to_dict`, :meth:`Profile.to_json`).

>>> f = not_measured("F", "the study has no intervention variants")
>>> f.measured, f.verdict, f.place
(False, 'not measured in this study: the study has no intervention variants', 'not measured')
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pathdep.analyses.spectrum import bottom_line, place_of

QUESTIONS: dict[str, str] = {
    "A": "How much do final models differ across seeds?",
    "B": "How sensitive is the outcome to small setup changes?",
    "C": "Do runs fall into distinct clusters or a continuum?",
    "D": "Are clusters stable through training; does a nudge decay or stick?",
    "E": "How well does a mid-training checkpoint predict the final model?",
    "F": "How much do early interventions change the final model?",
    "G": "Do early circuits survive to the end?",
    "H": "Does a static measure of the final solutions predict which one training finds?",
    "T": "Consistency over time vs consistency between runs",
    "LMC": "Linear mode connectivity, instability analysis, model soups",
    "GF": "A general factor across studies",
    "TOK": "Which tokens do runs learn alike, and when? (language models)",
}

PlotFn = Callable[[Any], None]  # draws on a matplotlib Axes


@dataclass(frozen=True)
class Finding:
    """The answer to one question: a headline number with its interval, a verdict and a plot."""

    id: str
    headline: str  # name of the headline statistic
    value: float | None
    ci: tuple[float, float] | None
    verdict: str
    details: dict[str, Any] = field(default_factory=dict)
    plot: PlotFn | bytes | None = None
    measured: bool = True
    # low / mixed / high / not measured, and the rule that says so: always computed from the numbers
    # above (also after dataclasses.replace or from_dict), so a place never disagrees with them
    place: str = field(init=False, default="")
    place_rule: str = field(init=False, default="")

    def __post_init__(self) -> None:
        place, rule = place_of(self)
        object.__setattr__(self, "place", place)
        object.__setattr__(self, "place_rule", rule)

    @property
    def question(self) -> str:
        return QUESTIONS.get(self.id, self.id)

    def to_dict(self) -> dict[str, Any]:
        """Everything but the plot, as plain JSON values (NaN and infinities become None)."""
        return {
            "id": self.id,
            "question": self.question,
            "headline": self.headline,
            "value": jsonable(self.value),
            "ci": jsonable(self.ci),
            "verdict": self.verdict,
            "details": jsonable(self.details),
            "measured": self.measured,
            "place": self.place,
            "place_rule": self.place_rule,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Finding:
        ci = d.get("ci")
        return cls(
            id=d["id"],
            headline=d["headline"],
            value=d.get("value"),
            ci=tuple(ci) if ci is not None else None,  # type: ignore[arg-type]
            verdict=d["verdict"],
            details=d.get("details", {}),
            measured=d.get("measured", True),
        )


def not_measured(id: str, reason: str, headline: str = "") -> Finding:
    """The finding of a question whose inputs the study does not have."""
    return Finding(id=id, headline=headline, value=None, ci=None,
                   verdict=f"not measured in this study: {reason}", measured=False)


@dataclass(frozen=True)
class Profile:
    """The findings of one study, in question order."""

    study: str
    findings: tuple[Finding, ...]
    meta: dict[str, Any] = field(default_factory=dict)

    def __iter__(self) -> Iterator[Finding]:
        return iter(self.findings)

    def to_frame(self) -> Any:
        """One tidy ``pandas.DataFrame`` row per finding: id, question, headline, value, low, high,
        place (on the question's spectrum, where findings have one), verdict, measured.

        >>> Profile("s", (not_measured("F", "no interventions"),)).to_frame()[["id", "value", "measured"]]
          id  value  measured
        0  F    NaN     False
        """
        import pandas as pd

        def num(v: Any) -> float:
            return float(v) if isinstance(v, (int, float)) and v is not None and math.isfinite(v) else math.nan

        rows = [{"id": f.id, "question": f.question, "headline": f.headline, "value": num(f.value),
                 "low": num(f.ci[0]) if f.ci is not None else math.nan,
                 "high": num(f.ci[1]) if f.ci is not None else math.nan,
                 "place": getattr(f, "place", None), "verdict": f.verdict, "measured": f.measured} for f in self]
        return pd.DataFrame(rows, columns=["id", "question", "headline", "value", "low", "high", "place", "verdict",
                                           "measured"])

    def __getitem__(self, id: str) -> Finding:
        for f in self.findings:
            if f.id == id:
                return f
        raise KeyError(id)

    def to_dict(self) -> dict[str, Any]:
        """The findings as JSON values, with the bottom line their places give (read back from the findings)."""
        return {"study": self.study, "meta": jsonable(self.meta), "bottom_line": bottom_line(self.findings),
                "findings": [f.to_dict() for f in self.findings]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Profile:
        return cls(study=d["study"], findings=tuple(Finding.from_dict(f) for f in d["findings"]), meta=d.get("meta", {}))

    @classmethod
    def from_json(cls, text: str) -> Profile:
        return cls.from_dict(json.loads(text))


def side_by_side(ax: Any, width_ratios: tuple[float, ...] = (3, 2)) -> list[Any]:
    """Replace ``ax`` by panels side by side in its place (a plot with a second view beside it,
    never an inset over the first); returns the new axes, left to right."""
    fig, spec = ax.figure, ax.get_subplotspec()
    if spec is None:  # axes placed by hand: split its box
        x0, y0, w, h = ax.get_position().bounds
        ax.remove()
        edges = np.cumsum([0, *width_ratios]) / sum(width_ratios)
        return [fig.add_axes((x0 + w * a + 0.04 * w * (i > 0), y0, w * (b - a) - 0.04 * w, h))
                for i, (a, b) in enumerate(zip(edges[:-1], edges[1:]))]
    ax.remove()
    return [fig.add_subplot(s) for s in spec.subgridspec(1, len(width_ratios), width_ratios=width_ratios, wspace=0.08)]


def jsonable(obj: Any) -> Any:
    """Numpy scalars and arrays to Python values, non-finite floats to None, tuples to lists."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer, int)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        return float(obj) if math.isfinite(obj) else None
    return obj
