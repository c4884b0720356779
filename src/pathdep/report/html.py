"""One self-contained HTML page of a profile: inline CSS, plots as base64 PNG, no scripts, no links out."""

from __future__ import annotations

import base64
import html
import json
from importlib import resources
from typing import Any

from pathdep.analyses.finding import Finding, Profile, jsonable


def fmt(v: Any) -> str:
    """A number as a short string (3 significant digits), anything else as text."""
    if v is None:
        return "—"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, (int, float)):
        return f"{v:.3g}" if isinstance(v, float) else str(v)
    return str(v)


def headline_text(f: Finding) -> str:
    if not f.measured or f.value is None:
        return "not measured"
    ci = f" [{fmt(f.ci[0])}, {fmt(f.ci[1])}]" if f.ci is not None else ""
    return f"{fmt(f.value)}{ci}"


def _rounded(v: Any) -> Any:
    """Floats to 4 significant digits, inside lists and dicts too (for display only)."""
    if isinstance(v, float):
        return float(f"{v:.4g}")
    if isinstance(v, list):
        return [_rounded(x) for x in v]
    if isinstance(v, dict):
        return {k: _rounded(x) for k, x in v.items()}
    return v


def _details_rows(details: dict[str, Any]) -> str:
    rows = []
    for k, v in _rounded(jsonable(details)).items():
        if isinstance(v, (dict, list)):
            text = json.dumps(v, separators=(", ", ": "))
            if len(text) > 400:
                text = text[:400] + " …"
            cell = f'<span class="mono">{html.escape(text)}</span>'
        else:
            cell = html.escape(fmt(v))
        rows.append(f"<tr><th>{html.escape(k)}</th><td>{cell}</td></tr>")
    return "\n".join(rows)


def _finding_section(f: Finding, png: bytes | None) -> str:
    cls = "finding" + ("" if f.measured else " unmeasured")
    img = (f'<img alt="plot of finding {f.id}" data-finding="{f.id}" '
           f'src="data:image/png;base64,{base64.b64encode(png).decode()}">' if png else
           '<p class="q">No plot.</p>')
    details = (f"<details open><summary>Details</summary><table>{_details_rows(f.details)}</table></details>"
               if f.details else "")
    body = f'<div class="grid"><div>{img}</div><div>{details}</div></div>' if f.measured else ""
    return f"""
<section class="{cls}" id="finding-{f.id}" data-finding="{f.id}">
  <h2>{f.id} <span class="tag">{'measured' if f.measured else 'not measured'}</span></h2>
  <p class="q">{html.escape(f.question)}</p>
  <div><span class="headline">{html.escape(f.headline or 'headline')}: <b>{html.escape(headline_text(f))}</b></span></div>
  <p class="verdict">{html.escape(f.verdict)}</p>
  {body}
</section>"""


def _summary(profile: Profile) -> str:
    rows = "\n".join(
        f'<tr><td><a href="#finding-{f.id}">{f.id}</a></td><td>{html.escape(f.question)}</td>'
        f'<td>{html.escape(f.headline)}</td><td class="num">{html.escape(headline_text(f))}</td></tr>'
        for f in profile)
    return (f'<div class="summary"><table><tr><th>id</th><th>question</th><th>headline</th>'
            f'<th>value [95% CI]</th></tr>{rows}</table></div>')


def _warnings(lines: list[str]) -> str:
    if not lines:
        return ""
    items = "".join(f"<li>{html.escape(w)}</li>" for w in lines)
    return (f'<div class="warnings" role="alert" style="color:#b00020;border:2px solid #b00020;padding:0.5em 1em">'
            f"<ul>{items}</ul></div>")


def render_html(profile: Profile, pngs: dict[str, bytes | None], warnings: list[str] | None = None) -> str:
    """The report page of ``profile``, with ``pngs[id]`` as each finding's plot and ``warnings``
    (e.g. a partial or stale measurement) in red at the top."""
    css = resources.files("pathdep.report").joinpath("style.css").read_text()
    meta = profile.meta
    sub = ", ".join(f"{k}: {fmt(v) if not isinstance(v, list) else ', '.join(map(str, v)) or '—'}"
                    for k, v in meta.items() if k not in ("description", "tables"))
    desc = f"<p>{html.escape(meta['description'])}</p>" if meta.get("description") else ""
    sections = "\n".join(_finding_section(f, pngs.get(f.id)) for f in profile)
    tables = ", ".join(meta.get("tables", [])) or "none"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>pathdep profile: {html.escape(profile.study)}</title>
<style>{css}</style></head>
<body><main>
<h1>Path-dependence profile: {html.escape(profile.study)}</h1>
{_warnings(warnings or [])}
<p class="sub">{html.escape(sub)}</p>
{desc}
{_summary(profile)}
{sections}
<footer>Computed from the stored measurement tables ({html.escape(tables)}); intervals are 95% bootstrap
percentile intervals. Re-rendering reads these tables and never trains or measures.</footer>
</main></body></html>
"""
