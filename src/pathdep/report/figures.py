"""Draw a finding's plot into PNG bytes, off-screen (Agg), without pyplot's global figure state."""

from __future__ import annotations

import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from pathdep.analyses.finding import Finding


def plot_png(finding: Finding, size: tuple[float, float] = (6.4, 4.0), dpi: int = 110) -> bytes | None:
    """The finding's figure as PNG bytes (its own bytes if it carries them; None if it has no plot)."""
    if finding.plot is None:
        return None
    if isinstance(finding.plot, bytes):
        return finding.plot
    fig = Figure(figsize=size, dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    finding.plot(ax)
    ax.set_title(f"{finding.id}: {finding.headline}", fontsize=10, loc="left")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()
