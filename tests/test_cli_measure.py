"""``pathdep measure`` and ``pathdep compare`` driven as a user drives them."""

import re
import subprocess
import sys

import pytest
import tomli_w
from typer.testing import CliRunner

from pathdep import Study
from pathdep.cli import _register, app
from pathdep.store import checkpoint_name, run_dir
from tests.helpers import tiny

_register()
runner = CliRunner()


@pytest.mark.slow
def test_measure_then_compare(tmp_path):
    spec = tmp_path / "tiny.toml"
    spec.write_text(tomli_w.dumps(tiny()))
    store = tmp_path / "s"
    assert runner.invoke(app, ["run", str(spec), "--store", str(store)]).exit_code == 0
    done = runner.invoke(app, ["measure", "tiny", "--store", str(store), "--only", "barriers", "--only", "cka",
                               "--n-alpha", "3"])
    assert done.exit_code == 0, done.output
    assert "barriers" in done.output and "cka" in done.output and "soups" not in done.output
    study = Study.open(store, "tiny")
    assert study.has_table("barriers") and study.has_table("cka") and not study.has_table("soups")
    bars = study.read_table("barriers")
    assert len(bars) == 3 * 3 * 3  # pairs x (train, test, ood) x (none, weight, activation matching)
    a = run_dir(store, "tiny", "base-i0-d0") / checkpoint_name(60)
    b = run_dir(store, "tiny", "base-i1-d0") / checkpoint_name(60)
    shown = runner.invoke(app, ["compare", str(a), str(b), "--n-alpha", "3"])
    assert shown.exit_code == 0, shown.output
    for word in ("loss_barrier", "error_barrier", "max_alpha", "raw", "weight_matching", "activation_matching",
                 "cka_debiased", "agreement", "error_kappa", "h1", "ood"):
        assert word in shown.output, word
    pair = bars[(bars.run_a == "base-i0-d0") & (bars.run_b == "base-i1-d0") & (bars.split == "test")]
    pair = pair.set_index("alignment")[["loss_barrier", "error_barrier"]]
    raised = bool((pair.drop("none") > pair.loc["none"] + 1e-9).to_numpy().any())
    assert ("note:" in shown.output) == raised

def test_compare_prints_each_alignment_and_a_note_when_alignment_raised_the_barrier(monkeypatch, tmp_path):
    import pandas as pd

    import pathdep.measure as measure
    from pathdep.measure.checkpoints import Comparison

    bars = pd.DataFrame({"split": ["test"] * 3, "alignment": ["none", "weight_matching", "activation_matching"],
                         "aligned": [False, True, True], "loss_barrier": [0.613, 0.701, 0.25],
                         "error_barrier": [0.10, 0.05, 0.04]})
    empty = pd.DataFrame({"layer": [], "probe": []})
    monkeypatch.setattr(measure, "compare", lambda *a, **k: Comparison(bars, empty, pd.DataFrame({"probe": []})))
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"  # the arguments must name files
    a.touch()
    b.touch()
    shown = runner.invoke(app, ["compare", str(a), str(b)])
    assert shown.exit_code == 0, shown.output
    lines = [l for l in shown.output.splitlines() if "loss_barrier" in l]
    assert len(lines) == 1 and re.findall(r"\d\.\d+", lines[0]) == ["0.6130", "0.7010", "0.2500"]
    notes = [l for l in shown.output.splitlines() if l.startswith("note:")]
    assert notes == ["note: weight matching raised the test loss barrier (0.701 vs 0.613 raw): it minimises weight "
                     "distance, not loss"]


@pytest.mark.slow
def test_compare_of_incompatible_checkpoints_is_one_line_and_exit_code_2(tmp_path):
    for name, hidden in (("a", [1, 16]), ("b", [1, 8])):
        Study.from_dict(tiny(**{"name": name, "process.steps": 2, "process.model_args.hidden": hidden}), store=tmp_path).run()
    a = run_dir(tmp_path, "a", "base-i0-d0") / checkpoint_name(2)
    b = run_dir(tmp_path, "b", "base-i0-d0") / checkpoint_name(2)
    done = subprocess.run([sys.executable, "-m", "pathdep", "compare", str(a), str(b)], capture_output=True, text=True)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("error: Parameter 'fc1.bias' has shape (16,)") and "(8,)" in done.stderr
