"""Draw figures into PNG bytes, off-screen (Agg), without pyplot's global figure state.

:func:`plot_png` draws a finding's plot; :func:`training_curves` draws every run of the seed
population over training, coloured by its final cluster, from the stored training logs and
properties table.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from pathdep.analyses.data import NotMeasured, StudyData
from pathdep.analyses.finding import Finding

MAX_CURVE_RUNS = 64  # runs drawn in the training curves (the first of the seed population)


def _png(draw: Callable[[Figure], None], size: tuple[float, float], dpi: int) -> bytes:
    fig = Figure(figsize=size, dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    draw(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


def plot_png(finding: Finding, size: tuple[float, float] = (6.4, 4.0), dpi: int = 110) -> bytes | None:
    """The finding's figure as PNG bytes (its own bytes if it carries them; None if it has no plot)."""
    if finding.plot is None:
        return None
    if isinstance(finding.plot, bytes):
        return finding.plot

    def draw(fig: Figure) -> None:
        finding.plot(fig.add_subplot())  # a plot may replace its axes by several (side_by_side)
        fig.suptitle(f"{finding.id}: {finding.headline}", fontsize=10, x=0.01, ha="left")

    return _png(draw, size, dpi)


def smooth(y: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average along the last axis (the first values average what they have).

    >>> smooth(np.array([1.0, 3.0, 5.0, 7.0]), 2).tolist()
    [1.0, 2.0, 4.0, 6.0]
    """
    if window <= 1:
        return y
    c = np.cumsum(y, axis=-1)
    out = c.copy()
    out[..., window:] = c[..., window:] - c[..., :-window]
    n = np.minimum(np.arange(1, y.shape[-1] + 1), window)
    return out / n


def _curves(data: StudyData) -> dict[str, Any] | None:
    """What the training-curves figure draws, or None when the study lacks it."""
    from pathdep.analyses.c import final_clustering

    try:
        runs = data.reference[:MAX_CURVE_RUNS]
        steps, prop = data.prop_curves(data.solution_property, runs)  # (T,), (R, T)
    except NotMeasured:
        return None
    try:
        labels = final_clustering(data).labels[:len(runs)]
    except (NotMeasured, ValueError):  # no behaviour stored, or too few runs to cluster: one colour
        labels = np.zeros(len(runs), dtype=int)
    logs = [data.study.train_log(r) for r in runs]
    n = min((len(g) for g in logs), default=0)
    loss = np.stack([g["loss"].to_numpy(dtype=float)[:n] for g in logs]) if n > 1 else None  # (R, n)
    return {"runs": runs, "steps": steps, "prop": prop, "labels": labels, "loss": loss, "name": data.solution_property}


def training_curves(data: StudyData, size: tuple[float, float] = (10.0, 3.2), dpi: int = 100) -> bytes | None:
    """Loss and the solution property over steps of every run of the seed population, coloured by
    its final cluster (C); None when the properties table is absent."""
    c = _curves(StudyData.of(data))
    if c is None:
        return None

    def draw(fig: Figure) -> None:
        a, b = fig.subplots(1, 2)
        k = int(c["labels"].max()) + 1
        colour = [f"C{lab}" for lab in c["labels"]]
        if c["loss"] is not None:
            n = c["loss"].shape[1]
            sm = smooth(c["loss"], max(1, n // 50))
            for y, col in zip(sm, colour):
                a.plot(np.arange(n), y, color=col, lw=0.8, alpha=0.6)
            a.set_yscale("log")
            a.set_ylabel("training loss (smoothed)")
        else:
            a.text(0.5, 0.5, "no training log stored", ha="center", va="center", transform=a.transAxes)
        a.set_xlabel("step")
        for y, col in zip(c["prop"], colour):
            b.plot(c["steps"], y, color=col, lw=0.8, alpha=0.6, marker="o", ms=2)
        b.set_xlabel("step")
        b.set_ylabel(c["name"])
        names = [f"final cluster {j} ({int((c['labels'] == j).sum())} runs)" for j in range(k)] if k > 1 else [
            f"all {len(c['runs'])} runs (one cluster)"]
        handles = [b.plot([], [], color=f"C{j}", lw=2, label=name)[0] for j, name in enumerate(names)]
        b.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False)
        fig.suptitle(f"training curves of {len(c['runs'])} runs", fontsize=10, x=0.01, ha="left")

    return _png(draw, size, dpi)
