"""End to end on a tiny real study: train, measure, profile, render; the HTML opened in Chromium."""

import json
import re
import shutil
import subprocess
from dataclasses import replace

import numpy as np
import pytest
from typer.testing import CliRunner

from pathdep import Study
from pathdep.analyses import ANALYSES, profile
from pathdep.analyses.finding import Profile
from pathdep.report import render

SPEC = {
    "name": "tiny",
    "description": "a tiny two-features study for the report tests",
    "process": {
        "task": "two_features", "model": "mlp", "steps": 120, "batch_size": 64,
        "task_args": {"n_train": 256, "n_test": 200, "n_probe": 200},
        "model_args": {"hidden": [1, 16], "activations": ["identity", "relu"]},
        "optimizer": {"name": "adam", "lr": 1e-2},
        "checkpoints": {"every": 40, "log": True},
    },
    "seeds": {"init": 10, "data": [0]},  # H and E need 10 runs of 5 init seeds
    "variants": [
        {"name": "lr_low", "set": {"optimizer.lr": 3e-3}, "seeds": {"init": 3, "data": [0]}},
        {"name": "push", "set": {"intervention.kind": "counterexamples_f2", "intervention.start": 0,
                                 "intervention.end": 40, "intervention.strength": 0.3}, "seeds": {"init": 5, "data": [0]}},
    ],
    "forks": [
        {"name": "fork_k8", "parent": "base-i0-d0", "step": 8, "data_seeds": [1, 2]},
        {"name": "fork_k80", "parent": "base-i0-d0", "step": 80, "data_seeds": [1, 2]},
    ],
}
PLAIN = {k: v for k, v in SPEC.items() if k not in ("variants", "forks")} | {"name": "plain"}


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    from pathdep.measure import MeasureOptions, measure_study

    store = tmp_path_factory.mktemp("store")
    study = Study.from_dict(SPEC, store=store)
    study.run()
    measure_study(study, options=MeasureOptions(n_alpha=5))
    return study


def _mtimes(study):
    return {p: p.stat().st_mtime_ns for p in study.root.rglob("*") if p.is_file() and "report" not in p.parts}


@pytest.mark.slow
def test_every_finding_is_filled_and_rerendering_reads_only(measured, tmp_path):
    before = _mtimes(measured)
    rep = render(measured, tmp_path / "r1")
    for id in set(ANALYSES) - {"TOK"}:
        f = rep.profile[id]
        assert f.measured, (id, f.verdict)
        assert f.value is not None and f.verdict
    assert not rep.profile["GF"].measured  # one study: no general factor
    assert not rep.profile["TOK"].measured  # not a language model
    rep2 = render(measured, tmp_path / "r2")
    assert _mtimes(measured) == before  # nothing trained, measured or rewritten
    assert rep.json.read_text() == rep2.json.read_text()  # same stored tables, same numbers
    back = Profile.from_json(rep.json.read_text())
    assert [f.id for f in back] == [f.id for f in rep.profile]
    assert back["C"].value == rep.profile["C"].value
    html = rep.html.read_text()
    assert "<script" not in html and "http://" not in html and "https://" not in html  # works offline
    # one plot per measured finding, plus every run's training curves
    assert html.count('src="data:image/png;base64,') == sum(f.measured for f in rep.profile) + 1
    assert 'id="training-curves"' in html and 'id="spectrum"' in html


@pytest.mark.slow
def test_questions_without_inputs_are_marked_not_measured(tmp_path):
    from pathdep.measure import MeasureOptions, measure_study

    study = Study.from_dict(PLAIN, store=tmp_path / "store")
    study.run()
    empty = profile(study)  # nothing measured yet: every finding says so, none raises
    assert all(not f.measured and "not measured" in f.verdict for f in empty)
    measure_study(study, which=["properties", "behaviour"])
    prof = profile(study)
    for id in ("B", "F", "LMC"):  # no variants, no interventions, no barriers
        assert not prof[id].measured and "not measured in this study" in prof[id].verdict
    assert prof["A"].measured and prof["T"].measured
    rep = render(prof, tmp_path / "out")  # a profile renders as well as a study
    assert "not measured" in rep.html.read_text()


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if exe is None:
        raise RuntimeError("Chromium is needed for this test: apt-get install -y chromium")
    return exe


CHECK = """<script>
window.addEventListener('load', () => {
  const imgs = [...document.images];
  const ok = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
  const ids = [...document.querySelectorAll('section[data-finding]')].map(s => s.dataset.finding);
  const wide = [...document.querySelectorAll('section.finding')].filter(s => s.scrollWidth > s.clientWidth + 1)
    .map(s => s.id);  // a card whose content overflows it
  const cells = [...document.querySelectorAll('table.details')].filter(t =>
    t.getBoundingClientRect().right > t.closest('section').getBoundingClientRect().right + 1).length;
  const chips = [...document.querySelectorAll('#spectrum .chip')].map(c => c.dataset.place);
  const m = document.createElement('pre'); m.id = 'check';
  m.textContent = JSON.stringify({images: imgs.length, decoded: ok, findings: ids, overflowing: wide,
                                  details_out: cells, chips: chips});
  document.body.appendChild(m);
});
</script></body>"""


@pytest.mark.slow
def test_the_report_renders_every_finding_and_plot_in_headless_chromium(measured, tmp_path):
    rep = render(measured, tmp_path / "out")
    page = tmp_path / "checked.html"  # the report plus a probe script; the report itself has none
    page.write_text(rep.html.read_text().replace("</body>", CHECK))
    out = subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
         "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="check">(.*?)</pre>', out.stdout)
    assert found, out.stderr[-2000:]
    check = json.loads(found.group(1).replace("&quot;", '"'))
    expected_ids = [f.id for f in rep.profile]
    assert check["findings"] == expected_ids
    assert check["images"] == sum(f.measured for f in rep.profile) + 1 and check["decoded"] == check["images"]
    assert check["overflowing"] == [] and check["details_out"] == 0  # nothing spills out of its card
    assert check["chips"] == [f.place for f in rep.profile]  # every question placed at the top, GF last


@pytest.mark.slow
def test_cli_report_writes_html_json_and_prints_the_table(measured, tmp_path):
    from pathdep.cli import _register, app

    _register()
    res = CliRunner().invoke(app, ["report", measured.name, "--store", str(measured.store), "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "report.html").is_file()
    prof = json.loads((tmp_path / "profile.json").read_text())
    assert [f["id"] for f in prof["findings"]] == [*ANALYSES, "GF"]
    for id in ANALYSES:
        assert re.search(rf"│ {id}\s", res.output), id
    assert "This study sits" in res.output and all(f["place"] for f in prof["findings"])  # the bottom line
    assert str(tmp_path / "report.html") in res.output.replace("\n", "")


def test_gf_across_studies_from_the_cli(measured, tmp_path):
    """Two other studies' stored profiles (the measured one's values, scaled and shifted) enter GF."""
    from pathdep.analyses.finding import Profile
    from pathdep.cli import _register, app

    _register()
    base = render(measured, measured.root / "report").profile
    for k, name in enumerate(["other1", "other2"], start=1):
        findings = tuple(replace(f, value=None if f.value is None else f.value * (1 + k) + k) for f in base)
        path = measured.store / name / "report" / "profile.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(Profile(name, findings, base.meta).to_json())
    args = ["report", measured.name, "--store", str(measured.store), "--out", str(tmp_path)]
    res = CliRunner().invoke(app, [*args, "--with", "other1", "--with", "other2"])
    assert res.exit_code == 0, res.output
    gf = next(f for f in json.loads((tmp_path / "profile.json").read_text())["findings"] if f["id"] == "GF")
    # every headline moves together across the three studies: one factor holds all the variance
    assert gf["measured"] and gf["value"] == pytest.approx(1.0)
    missing = CliRunner().invoke(app, [*args, "--with", "ghost"])
    assert missing.exit_code != 0 and "'ghost' has no report" in str(missing.exception)


# --- the place of each question on its spectrum, the bottom line, GF, the page's pieces (no training) ---

from pathdep.analyses import spectrum  # noqa: E402
from pathdep.analyses.finding import Finding, not_measured  # noqa: E402
from pathdep.analyses.gf import analyse_gf, null_shares  # noqa: E402


def _f(id, value, ci=None, **details):
    return Finding(id, "headline", value, ci, "verdict", details)


def test_every_question_has_one_rule_and_every_rule_reads_the_finding():
    assert set(spectrum.RULES) == set(ANALYSES)
    for id, rule in spectrum.RULES.items():
        assert rule.text.startswith(f"{id}: low if ") and "high if" in rule.text and rule.text.endswith(("mixed", ")"))
        assert all(k.split(".")[0] in ("value", "ci", "details") for k in rule.keys())


@pytest.mark.parametrize("finding, place", [
    (_f("LMC", 0.3, (0.25, 0.35)), "high"),
    (_f("LMC", 0.005, (0.001, 0.01)), "low"),
    (_f("LMC", 0.05, (0.01, 0.2)), "mixed"),  # an uncertain number is mixed, whatever its point value
    (_f("LMC", 0.5, None), "high"),  # no interval: the point value
    (_f("C", 1.0, (1.0, 3.0)), "low"),  # C reads the chosen k
    (_f("C", 3.0, (1.0, 3.0)), "high"),
    (_f("D", 50.0, (25.0, 75.0), steps=[0, 100, 200]), "high"),  # settled within the first half
    (_f("D", 190.0, (185.0, 200.0), steps=[0, 100, 200]), "low"),
    (_f("D", float("nan"), (float("nan"), float("nan")), steps=[0, 200]), "low"),  # never settles
    (_f("D", 50.0, (25.0, 75.0)), "not measured"),  # the final step it divides by is absent
    (_f("E", 50.0, (40.0, 190.0), steps=[0, 200]), "mixed"),
    (_f("H", 0.9, (0.8, 1.0), chance=0.5, score_ci={"early order": [0.8, 1.0]}), "high"),  # skill [0.6, 1]
    (_f("H", 0.9, (0.8, 1.0), chance=0.5, score_ci={"early order": [0.45, 0.55]}), "low"),  # skill [-0.1, 0.1]
    (_f("H", 0.9, (0.8, 1.0), chance=0.5), "not measured"),  # a key the rule reads is absent
    (_f("TOK", 0.95, (0.92, 0.97)), "low"),  # runs learn tokens alike
    (_f("T", 0.0, (-0.01, 0.01)), "low"),
    (_f("F", 1.3, (0.8, 2.0), pooled={"persistence_ci": [0.8, 2.0]}), "high"),  # effects stick
    (_f("F", 0.05, (0.0, 0.1), pooled={"persistence_ci": [0.0, 0.1]}), "low"),  # effects wash out
    (_f("F", -0.1, (-0.2, 0.0), pooled={"persistence_ci": None}), "not measured"),  # no immediate effect
    (not_measured("A", "no behaviour table"), "not measured"),
])
def test_place_follows_the_rule_from_the_interval(finding, place):
    assert finding.place == place
    assert finding.place_rule == spectrum.RULES[finding.id].text


def test_place_survives_json_and_follows_the_numbers():
    prof = Profile("s", (_f("LMC", 0.3, (0.25, 0.35)), _f("C", 1.0, (1.0, 1.0)), not_measured("F", "none")))
    back = Profile.from_json(prof.to_json())
    assert [(f.place, f.place_rule) for f in back] == [(f.place, f.place_rule) for f in prof]
    stored = json.loads(prof.to_json())
    assert [f["place"] for f in stored["findings"]] == ["high", "low", "not measured"]
    assert stored["bottom_line"] == spectrum.bottom_line(prof) and "read high (LMC), 1 low (C)" in stored["bottom_line"]
    moved = replace(prof["C"], value=3.0, ci=(2.0, 4.0))  # a changed number moves the place with it
    assert moved.place == "high"
    nan = _f("LMC", float("nan"), (float("nan"), 0.3))  # NaN in memory reads as None (null) in JSON
    assert nan.place == Finding.from_dict(json.loads(json.dumps(nan.to_dict()))).place == "not measured"


def test_bottom_line_counts_the_places():
    fs = [_f("A", 0.3, (0.2, 0.4)), _f("C", 2.0, (2.0, 2.0)), _f("LMC", 0.05, (0.01, 0.2)),
          _f("T", 0.0, (-0.01, 0.01)), not_measured("F", "none"), not_measured("GF", "one study")]
    text = spectrum.bottom_line(fs)
    assert text.startswith("This study sits between low and high path dependence: 2 of 4 measured questions read high (A, C)")
    assert "1 mixed (LMC)" in text and "1 low (T)" in text and "Not measured: F." in text and "GF" not in text
    low = spectrum.bottom_line([_f("LMC", 0.0, (0.0, 0.01)), _f("C", 1.0, (1.0, 1.0))])
    assert low.startswith("This study sits toward low path dependence: 2 of 2 measured questions read low (LMC, C)")


def _profiles(matrix, ids=("A", "B", "C", "LMC", "T", "G")):
    return [Profile(f"s{i}", tuple(_f(id, float(v), (float(v), float(v))) for id, v in zip(ids, row)))
            for i, row in enumerate(matrix)]


def test_gf_finds_a_planted_general_factor():
    rng = np.random.default_rng(1)
    factor = rng.standard_normal(12)  # each study's level of path dependence
    scale = rng.uniform(0.5, 2.0, 6)  # every question reads it on its own scale
    x = factor[:, None] * scale + 0.01 * rng.standard_normal((12, 6))
    gf = analyse_gf(_profiles(x))
    assert gf.value > 0.99 and gf.ci[0] > 0.95 and gf.place == "high"
    assert gf.details["questions"] == ["A", "B", "C", "LMC", "T", "G"] and "rests on 12 studies" in gf.details["caveat"]
    copies = analyse_gf(_profiles(factor[:4, None] * scale))  # scaled copies: one component holds everything
    assert copies.value == pytest.approx(1.0) and "fewer than 5 the interval is wide" in copies.verdict


def test_gf_on_independent_profiles_reads_the_null():
    x = np.random.default_rng(2).standard_normal((40, 6))
    gf = analyse_gf(_profiles(x))
    # many studies, 6 unrelated questions: the share tends to 1/6 (plus a small-sample excess)
    assert abs(gf.value - gf.details["share_null_mean"]) < 0.08
    assert gf.ci[0] <= gf.details["share_null_mean"] <= gf.ci[1] + 0.02
    assert gf.place != "high"
    many = null_shares(400, 6, n=200)
    assert abs(many.mean() - 1 / 6) < 0.03  # the null expectation for many studies: 1 / (number of questions)
    few = null_shares(4, 6, n=200)
    assert few.min() >= 1 / 3 - 1e-9  # 4 standardised studies span 3 dimensions: the share is at least 1/3


def test_gf_uses_only_questions_measured_in_every_study():
    prof = _profiles(np.random.default_rng(3).standard_normal((5, 6)))
    prof[0] = Profile("s0", tuple(not_measured(f.id, "x") if f.id == "B" else f for f in prof[0]))
    gf = analyse_gf(prof)
    assert "B" not in gf.details["questions"] and len(gf.details["questions"]) == 5
    assert not analyse_gf(prof[:2]).measured  # two studies: not measured
    assert not analyse_gf([prof[0], prof[1], prof[1]]).measured  # a study given twice counts once
    assert analyse_gf([*prof, prof[2]]).details["studies"] == [p.study for p in prof]


def test_the_page_shows_warnings_places_and_readable_details():
    from pathdep.report.html import label, render_html

    f = Finding("F", "persistence", 0.1, (0.0, 0.15), "verdict",
                {"variants": {"xor_0_50_s0.1": {"immediate": -0.02, "immediate_ci": [-0.05, 0.0], "final": -0.125}},
                 "pooled": {"persistence": 0.1, "persistence_ci": [0.0, 0.15]},
                 "p_value": 0.0312345, "steps": list(range(40)), "ci_over_time": [0.1, 0.2]})
    prof = Profile("s", (f, _f("C", 2.0, (2.0, 2.0)), not_measured("TOK", "no tokens")))
    page = render_html(prof, {}, warnings=["the 'barriers' table is stale"])
    assert page.index('class="warnings"') < page.index("<h1>")
    assert "the &#x27;barriers&#x27; table is stale" in page
    # each place three times: the chips at the top, the summary table, the finding's own card
    assert page.count('data-place="low"') == 3 and page.count('data-place="high"') == 3
    assert "This study sits" in page and html_escape(spectrum.RULES["F"].text) in page
    assert "xor_0_50_s0.1" in page and "[-0.05, 0]" in page  # a variant's row, its interval formatted
    assert "0.0312" in page and "0.0312345" not in page  # numbers formatted
    assert "… (40 values; all in profile.json)" in page  # long lists truncated
    assert '{"' not in page  # no raw JSON blob
    assert label("loss_barrier[test,raw]") == "loss barrier (test, raw)"
    assert label("lr_1e-2") == "lr_1e-2"  # a variant's name stays as written


def html_escape(s):
    import html

    return html.escape(s)


def test_gf_examples_are_small_studies_of_different_processes():
    from pathlib import Path

    paths = sorted((Path(__file__).parents[1] / "examples" / "gf").glob("*.toml"))
    assert len(paths) >= 3
    studies = [Study.from_toml(p, store="unused") for p in paths]
    assert len({s.spec.process.task for s in studies}) == len(studies)
    for p, s in zip(paths, studies):
        assert s.name == p.stem and 8 <= len(s.plan) <= 32 and s.spec.process.steps <= 500
