"""End to end on a tiny real study: train, measure, profile, render; the HTML opened in Chromium."""

import json
import re
import shutil
import subprocess
from dataclasses import replace

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
    assert html.count('src="data:image/png;base64,') == sum(f.measured for f in rep.profile)


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
  const m = document.createElement('pre'); m.id = 'check';
  m.textContent = JSON.stringify({images: imgs.length, decoded: ok, findings: ids});
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
    assert check["images"] == sum(f.measured for f in rep.profile) and check["decoded"] == check["images"]


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
