"""`pathdep verify`, and `pathdep run` verifying and repairing every checkpoint later work depends on."""

import os
import subprocess
import sys

import pytest
import tomli_w
from typer.testing import CliRunner

from pathdep import store as st
from pathdep.cli import _register, app
from pathdep.errors import SpecError, StoreError
from pathdep.measure import MeasureOptions, measure_study
from pathdep.study import Study
from pathdep.verify import verify_study
from tests.helpers import file_hashes, tiny

_register()
runner = CliRunner()
FORKED = tiny(forks=[{"name": "fork20", "parent": "base-i0-d0", "step": 20, "data_seeds": [1]}])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A trained study with a fork (checkpoints 0, 20, 40, 60), and the hashes of all its files."""
    store = tmp_path_factory.mktemp("v") / "store"
    study = Study.from_dict(FORKED, store=store)
    study.run()
    return store, file_hashes(store, "*")


def _copy(trained, tmp_path):
    import shutil

    shutil.copytree(trained[0], tmp_path / "store")
    return tmp_path / "store"


def _flip(path, at=-5):
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def _ckpt(store, run, step):
    return st.run_dir(store, "tiny", run) / st.checkpoint_name(step)


def _spec(tmp_path, spec):
    path = tmp_path / "spec.toml"
    path.write_text(tomli_w.dumps(spec))
    return str(path)


def test_verify_names_every_damaged_file_and_run_repairs_them_bit_for_bit(trained, tmp_path):
    store = _copy(trained, tmp_path)
    clean = runner.invoke(app, ["verify", "--store", str(store)])
    assert clean.exit_code == 0 and "every checksum matches" in clean.output
    _flip(_ckpt(store, "base-i1-d0", 20))  # a middle checkpoint: measurement needs it, resume does not
    _flip(_ckpt(store, "base-i0-d0", 20))  # the fork point of fork20-d1
    _ckpt(store, "fork20-d1", 60).unlink()
    res = runner.invoke(app, ["verify", "tiny", "--store", str(store)])
    assert res.exit_code == 1 and "3 damaged file(s) in tiny" in str(res.exception)
    for name in ("base-i1-d0/step_000020", "base-i0-d0/step_000020", "fork20-d1/step_000060"):
        assert name in res.output
    assert "fork20-d1/step_000060.safetensors: missing" in res.output
    done = runner.invoke(app, ["run", _spec(tmp_path, FORKED), "--store", str(store)])
    assert done.exit_code == 0, done.output
    assert file_hashes(store, "*") == trained[1]  # every file as trained uninterrupted
    assert verify_study(store, "tiny").ok


def test_run_retrains_a_run_whose_manifest_is_not_json_and_ls_lists_the_rest(trained, tmp_path):
    store = _copy(trained, tmp_path)
    Study.from_dict(tiny(name="other", **{"process.steps": 20}), store=store).run()
    bad = st.run_dir(store, "tiny", "base-i2-d0") / "manifest.json"
    bad.write_text("{not json")
    (store / "broken").mkdir()
    (store / "broken" / "study.json").write_text("{")
    listing = runner.invoke(app, ["ls", "--store", str(store)])
    assert listing.exit_code == 0, listing.output
    assert "other: 3/3 runs finished" in listing.output and "broken: damaged:" in listing.output
    assert verify_study(store, "broken").damaged == ["study.json: not valid JSON"]
    assert "tiny: 3/4 runs finished, 1 damaged: base-i2-d0" in listing.output
    runs = runner.invoke(app, ["ls", "tiny", "--store", str(store)])
    assert runs.exit_code == 0 and "damaged" in runs.output and "base-i1-d0" in runs.output
    assert verify_study(store, "tiny").damaged == [
        "runs/base-i2-d0/manifest.json: not valid JSON (`pathdep run` retrains the run)"]
    Study.from_dict(FORKED, store=store).run()
    assert {k: v for k, v in file_hashes(store / "tiny", "*").items() if not k.endswith(".damaged")} == {
        k.removeprefix("tiny/"): v for k, v in trained[1].items() if k.startswith("tiny/")}
    assert (bad.parent / "manifest.json.damaged").read_text() == "{not json"


def test_run_removes_temp_files_of_dead_writers_only(trained, tmp_path):
    store = _copy(trained, tmp_path)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    run = st.run_dir(store, "tiny", "base-i0-d0")
    stale = run / f".step_000040.safetensors.tmp-{dead.stdout.strip()}"
    live = run / f".manifest.json.tmp-{os.getpid()}"  # a writer that still runs
    stale.write_bytes(b"half a checkpoint")
    live.write_bytes(b"{")
    assert "2 temp file(s)" in verify_study(store, "tiny").notes[0] and verify_study(store, "tiny").ok
    Study.from_dict(FORKED, store=store).run()
    assert not stale.exists() and live.exists()
    live.unlink()
    assert file_hashes(store, "*") == trained[1]


def test_a_failing_run_writes_nothing(tmp_path):
    spec = tiny(**{"process.init_from": str(tmp_path / "missing.safetensors")})
    res = runner.invoke(app, ["run", _spec(tmp_path, spec), "--store", str(tmp_path / "s")])
    assert isinstance(res.exception, SpecError) and res.exception.exit_code == 2
    line = str(res.exception)
    assert "\n" not in line and "The 'init_from' field of variant 'base'" in line and "missing.safetensors" in line
    assert not (tmp_path / "s").exists()


def test_verify_names_damaged_tables_and_a_new_measure_repairs_them(trained, tmp_path):
    store = _copy(trained, tmp_path)
    study = Study.open(store, "tiny")
    measure_study(study, which=["properties", "soups"], options=MeasureOptions(n_alpha=3))
    check = verify_study(store, "tiny")
    assert check.ok and check.tables == 2 and check.checkpoints == 4 * 3 + 3
    _flip(st.tables_dir(store, "tiny") / "gen-1" / "soups.parquet", at=100)
    res = runner.invoke(app, ["verify", "--store", str(store)])
    assert res.exit_code == 1 and "tables/gen-1/soups.parquet (table 'soups'): sha256 does not match" in res.output
    with pytest.raises(StoreError, match="soups.parquet does not match its sha256"):
        study.read_table("soups")
    measure_study(study, which=["soups"], options=MeasureOptions(n_alpha=3))
    assert verify_study(store, "tiny").ok
    st.measurement_path(store, "tiny").write_text("[]")
    assert verify_study(store, "tiny").damaged == [
        "tables/measurement.json: not a valid measurement manifest (measure again)"]
    measure_study(study, which=["soups"], options=MeasureOptions(n_alpha=3))
    assert verify_study(store, "tiny").ok and list(study.measurement()["tables"]) == ["soups"]


def test_verify_of_an_unknown_study_names_the_studies_there(trained, tmp_path):
    res = runner.invoke(app, ["verify", "nope", "--store", str(trained[0])])
    assert res.exit_code == 1 and "has no study 'nope'; it holds ['tiny']" in str(res.exception)
