"""One self-contained HTML page of a profile: inline CSS, plots as base64 PNG, no scripts, no links out.

The page opens with any warnings (in red), the place of every question on its spectrum between low
and high path dependence (a row of chips, each with its rule), and a bottom-line paragraph; then
the summary table, the training curves and one card per finding.
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
from importlib import resources
from typing import Any

from pathdep.analyses import spectrum
from pathdep.analyses.finding import Finding, Profile, jsonable

MAX_ITEMS = 6  # list items shown in a details cell before "…"
MAX_TEXT = 160  # characters of a long value shown before "…"


def fmt(v: Any) -> str:
    """A number as a short string (3 significant digits), anything else as text.

    >>> fmt(0.123456), fmt(12), fmt(None), fmt(1234567.0), fmt(float("nan"))
    ('0.123', '12', '—', '1.23e+06', '—')
    """
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, float)):
        return f"{v + 0.0:.3g}" if isinstance(v, float) else str(v)  # + 0.0: no "-0"
    return str(v)


def headline_text(f: Finding) -> str:
    """The headline value with its interval; "—" for a measured finding without a number (see its verdict)."""
    if not f.measured:
        return "not measured"
    if f.value is None or math.isnan(f.value):
        return "—"
    ci = f" [{fmt(f.ci[0])}, {fmt(f.ci[1])}]" if f.ci is not None else ""
    return f"{fmt(f.value)}{ci}"


def label(key: str) -> str:
    """A details key as a human label: ``loss_barrier[test,raw]`` -> ``loss barrier (test, raw)``.

    Keys that are data (a variant or run name such as ``lr_1e-2``) are kept as they are.

    >>> label("share_init[reliance]"), label("pc1_loadings"), label("cka[h0]"), label("xor_0_50_s0.1")
    ('share init (reliance)', 'PC1 loadings', 'CKA (h0)', 'xor_0_50_s0.1')
    """
    name, bracket, rest = key.partition("[")
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*(_[A-Za-z][A-Za-z0-9]*)*", name):
        return key
    words = [w.upper() if w.lower() in ACRONYMS else w for w in name.replace("_", " ").split()]
    inner = f" ({rest.rstrip(']').replace(',', ', ')})" if bracket else ""
    return " ".join(words) + inner


ACRONYMS = ("cka", "ci", "bic", "pc1", "ood", "sd", "lr")


def _is_interval(key: str, v: Any) -> bool:
    return (isinstance(v, list) and len(v) == 2 and all(isinstance(x, (int, float)) or x is None for x in v)
            and key.lower().rstrip("]").endswith("ci"))


def _short(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + " …"


def _series(items: list[tuple[str, Any]]) -> str:
    shown = ", ".join(f"{k}: {fmt(x)}" for k, x in items[:MAX_ITEMS])
    return shown + (f", … ({len(items)} values; all in profile.json)" if len(items) > MAX_ITEMS else "")


def _text(key: str, v: Any) -> str:
    """A scalar, an interval, a list of scalars or a step series as one short line of text."""
    if _is_interval(key, v):
        return f"[{fmt(v[0])}, {fmt(v[1])}]"
    if isinstance(v, list) and all(not isinstance(x, (list, dict)) for x in v):
        if not v:
            return "—"
        shown = ", ".join(fmt(x) for x in v[:MAX_ITEMS])
        return shown + (f", … ({len(v)} values; all in profile.json)" if len(v) > MAX_ITEMS else "")
    if isinstance(v, dict) and v and all(_numeric(k) and not isinstance(x, (list, dict)) for k, x in v.items()):
        return _series(list(v.items()))
    if isinstance(v, (list, dict)):
        return _short(json.dumps(v))
    return _short(fmt(v))


def _numeric(k: str) -> bool:
    try:
        float(k)
    except ValueError:
        return False
    return True


def _cell(key: str, v: Any, depth: int = 0) -> str:
    """A details value as HTML: short text, or a small nested table for a dict of named values."""
    if isinstance(v, dict) and v and depth < 1 and not all(_numeric(k) for k in v):
        inherit = key.lower().endswith("ci")  # the items of an interval dict are intervals
        name = label if _is_fields(v) else str  # a dict of fields, or of values keyed by data (study, variant)
        rows = "".join(f"<tr><th>{html.escape(name(str(k)))}</th><td>{_cell(key if inherit else str(k), x, depth + 1)}"
                       "</td></tr>" for k, x in v.items())
        return f'<table class="nested">{rows}</table>'
    return html.escape(_text(key, v))


def _is_fields(v: dict[str, Any]) -> bool:
    """A dict of named fields (values of several kinds) rather than one kind of value keyed by data."""
    return len({type(x).__name__ if not isinstance(x, (int, float)) or isinstance(x, bool) else "number"
                for x in v.values()}) > 1


def _is_records(v: Any) -> bool:
    """A dict of dicts (e.g. one row of numbers per variant): shown as a full-width table."""
    return isinstance(v, dict) and len(v) > 0 and all(isinstance(x, dict) and x for x in v.values())


def records_table(key: str, rows: dict[str, dict[str, Any]]) -> str:
    """Rows of named values as one table: a row per outer key, a column per inner key."""
    cols: list[str] = []
    for r in rows.values():
        cols += [c for c in r if c not in cols]
    head = "".join(f"<th>{html.escape(label(c))}</th>" for c in cols)
    body = "".join(f"<tr><th>{html.escape(str(name))}</th>"
                   + "".join(f'<td class="num">{html.escape(_text(c, r.get(c)))}</td>' for c in cols) + "</tr>"
                   for name, r in rows.items())
    caption = ", ".join(label(f) for f in key.split(", "))
    return (f'<div class="records"><p class="caption">{html.escape(caption)}</p>'
            f'<table><tr><th></th>{head}</tr>{body}</table></div>')


def grouped(details: dict[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, dict[str, Any]]]]:
    """Split off keys ``field[group]`` whose fields share a set of groups, as tables (group -> field -> value).

    >>> rest, tables = grouped({"p": 1, "within[a]": 0.1, "within[b]": 0.2, "mean[a]": 1, "mean[b]": 2})
    >>> rest, tables["within, mean"]
    ({'p': 1}, {'a': {'within': 0.1, 'mean': 1}, 'b': {'within': 0.2, 'mean': 2}})
    """
    parts: dict[str, dict[str, Any]] = {}
    for k, v in details.items():
        m = re.fullmatch(r"([A-Za-z][\w]*)\[(.+)\]", k)
        if m and not isinstance(v, (list, dict)):
            parts.setdefault(m.group(1), {})[m.group(2)] = v
    by_groups: dict[tuple[str, ...], list[str]] = {}
    for field, g in parts.items():
        by_groups.setdefault(tuple(g), []).append(field)
    tables, taken = {}, set()
    for groups, fields in by_groups.items():
        if len(groups) >= 2 and (len(fields) >= 2 or len(groups) >= 3):
            tables[", ".join(fields)] = {g: {f: parts[f][g] for f in fields} for g in groups}
            taken |= {f"{f}[{g}]" for f in fields for g in groups}
    return {k: v for k, v in details.items() if k not in taken}, tables


def details_table(details: dict[str, Any]) -> tuple[str, str]:
    """A finding's details as (a two-column table of labels and values, full-width tables of records)."""
    plain, tables = grouped(jsonable(details))
    rows = "\n".join(f"<tr><th>{html.escape(label(str(k)))}</th><td>{_cell(str(k), v)}</td></tr>"
                      for k, v in plain.items() if not _is_records(v))
    wide = "".join(records_table(str(k), v) for k, v in plain.items() if _is_records(v))
    wide += "".join(records_table(k, v) for k, v in tables.items())
    return f'<table class="details">{rows}</table>', wide


def _finding_section(f: Finding, png: bytes | None) -> str:
    cls = "finding" + ("" if f.measured else " unmeasured")
    img = (f'<img alt="plot of finding {f.id}" data-finding="{f.id}" '
           f'src="data:image/png;base64,{base64.b64encode(png).decode()}">' if png else
           '<p class="q">No plot.</p>')
    side, wide = details_table(f.details) if f.details else ("", "")
    details = f"<details open><summary>Details</summary>{side}</details>" if f.details else ""
    wide = f'<div class="wide">{wide}</div>' if wide else ""
    body = (f'<div class="grid"><div>{img}</div><div class="side">{details}</div></div>{wide}'
            if f.measured else "")
    place = _chip(f, link=False)
    return f"""
<section class="{cls}" id="finding-{f.id}" data-finding="{f.id}">
  <h2>{f.id} {place}</h2>
  <p class="q">{html.escape(f.question)}</p>
  <div><span class="headline">{html.escape(f.headline or 'headline')}: <b>{html.escape(headline_text(f))}</b></span></div>
  <p class="verdict">{html.escape(f.verdict)}</p>
  <p class="rule">Place on the spectrum: {html.escape(f.place_rule)}</p>
  {body}
</section>"""


def _chip(f: Finding, link: bool = True) -> str:
    cls = "place-" + f.place.replace(" ", "-")
    text = f"{f.id} · {f.place}" if link else f.place
    inner = f'<a href="#finding-{f.id}">{html.escape(text)}</a>' if link else html.escape(text)
    return f'<span class="chip {cls}" title="{html.escape(f.place_rule)}" data-place="{html.escape(f.place)}">{inner}</span>'


def spectrum_block(profile: Profile) -> str:
    """The chips of every question's place, the bottom line and the rules that placed them."""
    study = [f for f in profile if f.id != "GF"]
    gf = [f for f in profile if f.id == "GF"]
    chips = "".join(_chip(f) for f in study)
    gf_chip = f'<span class="apart">across studies:</span>{_chip(gf[0])}' if gf else ""
    rules = "".join(f"<tr><td>{html.escape(f.place_rule)}</td><td>{html.escape(f.place)}</td></tr>" for f in profile)
    return f"""<div class="spectrum" id="spectrum">
  <div class="chips">{chips}{gf_chip}</div>
  <p class="bottom-line">{html.escape(spectrum.bottom_line(profile))}</p>
  <details><summary>How each place is decided (low / mixed / high path dependence)</summary>
  <table class="rules"><tr><th>rule (an uncertain number lands in "mixed")</th><th>place</th></tr>{rules}</table>
  </details>
</div>"""


def _summary(profile: Profile) -> str:
    rows = "\n".join(
        f'<tr><td><a href="#finding-{f.id}">{f.id}</a></td><td>{html.escape(f.question)}</td>'
        f'<td>{html.escape(f.headline)}</td><td class="num">{html.escape(headline_text(f))}</td>'
        f'<td>{_chip(f, link=False)}</td></tr>'
        for f in profile)
    return (f'<div class="summary"><table><tr><th>id</th><th>question</th><th>headline</th>'
            f'<th>value [95% CI]</th><th>place</th></tr>{rows}</table></div>')


def _figure_section(id: str, title: str, png: bytes | None, note: str) -> str:
    if png is None:
        return ""
    return f"""
<section class="finding figure" id="{id}">
  <h2>{html.escape(title)}</h2>
  <p class="q">{html.escape(note)}</p>
  <img alt="{html.escape(title)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">
</section>"""


def render_html(profile: Profile, pngs: dict[str, bytes | None], warnings: list[str] | None = None,
                curves: bytes | None = None) -> str:
    """The report page of ``profile``, with ``pngs[id]`` as each finding's plot.

    ``warnings``: lines shown in red at the top (e.g. measurement tables that are partial or stale);
    ``curves``: the PNG of every run's training curves, shown after the summary.
    """
    css = resources.files("pathdep.report").joinpath("style.css").read_text()
    meta = profile.meta
    sub = ", ".join(f"{k}: {fmt(v) if not isinstance(v, list) else ', '.join(map(str, v)) or '—'}"
                    for k, v in meta.items() if k not in ("description", "tables"))
    desc = f"<p>{html.escape(meta['description'])}</p>" if meta.get("description") else ""
    warn = ("<div class=\"warnings\" role=\"alert\"><ul>" + "".join(f"<li>{html.escape(w)}</li>" for w in warnings)
            + "</ul></div>") if warnings else ""
    sections = "\n".join(_finding_section(f, pngs.get(f.id)) for f in profile)
    tables = ", ".join(meta.get("tables", [])) or "none"
    curves_html = _figure_section(
        "training-curves", "Training curves", curves,
        "Every run of the seed population over training: loss (smoothed) and the solution property, "
        "coloured by the run's final cluster (C).")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>pathdep profile: {html.escape(profile.study)}</title>
<style>{css}</style></head>
<body><main>
{warn}
<h1>Path-dependence profile: {html.escape(profile.study)}</h1>
<p class="sub">{html.escape(sub)}</p>
{desc}
{spectrum_block(profile)}
{_summary(profile)}
{curves_html}
{sections}
<footer>Computed from the stored measurement tables ({html.escape(tables)}); intervals are 95% bootstrap
percentile intervals. Re-rendering reads these tables and never trains or measures.</footer>
</main></body></html>
"""
