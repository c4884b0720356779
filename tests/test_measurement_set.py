"""Measurement tables are one committed set: a killed `measure` never leaves a mix that reads as complete."""

import shutil
import subprocess
import sys
import textwrap

import pandas as pd
import pytest
from typer.testing import CliRunner

from pathdep import store as st
from pathdep.cli import _register, app
from pathdep.measure import TABLES, MeasureOptions, measure_study
from pathdep.measure.measurement import measurement_status
from pathdep.study import Study
from tests.helpers import tiny

_register()
runner = CliRunner()
SPEC = tiny(**{"process.steps": 40})  # checkpoints 0, 20, 40 of 3 runs

# A `pathdep measure` that SIGKILLs itself at one moment of its writes (argv: point, n).
KILLER = textwrap.dedent("""
    import os, signal, sys
    import pathdep.store as st
    point, n = sys.argv[1], int(sys.argv[2])
    seen = [0]
    write, replace = st.write_atomic, os.replace

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    def write_atomic(path, data):
        if path.suffix == ".parquet" and path.parent.name.startswith("gen-"):
            if point == "tables" and seen[0] == n:
                die()
            if point == "torn" and seen[0] == n:  # half a table in its temp file, then death
                path.with_name(f".{path.name}.tmp-{os.getpid()}").write_bytes(data[: len(data) // 2])
                die()
            seen[0] += 1
        if path.name == "measurement.json" and point == "before_manifest":
            die()
        write(path, data)
        if path.name == "measurement.json" and point == "after_manifest":
            die()

    def os_replace(src, dst):
        if str(dst).endswith("measurement.json") and point == "mid_manifest":
            die()  # the new manifest is complete in its temp file, not yet renamed
        replace(src, dst)

    st.write_atomic, os.replace = write_atomic, os_replace
    from pathdep.cli import main
    sys.argv = ["pathdep", *sys.argv[3:]]
    main()
""")


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A trained study measured once (n_alpha 3), and the tables a second measurement (n_alpha 5) gives."""
    root = tmp_path_factory.mktemp("ms")
    study = Study.from_dict(SPEC, store=root / "store")
    study.run()
    measure_study(study, options=MeasureOptions(n_alpha=3))
    shutil.copytree(root / "store", root / "ref")
    measure_study(Study.from_dict(SPEC, store=root / "ref"), options=MeasureOptions(n_alpha=5))
    hashes = {k: {n: e["sha256"] for n, e in st.read_measurement(root / d, "tiny")["tables"].items()}
              for k, d in (("old", "store"), ("new", "ref"))}
    return root / "store", hashes


def _copy(base, tmp_path):
    shutil.copytree(base[0], tmp_path / "store")
    return Study.open(tmp_path / "store", "tiny")


def _killed_measure(store, point, n=0):
    args = [sys.executable, "-c", KILLER, point, str(n), "measure", "tiny", "--store", str(store), "--n-alpha", "5"]
    return subprocess.run(args, capture_output=True, text=True)


def _committed_set(study, hashes):
    """'old' or 'new': which whole measurement the committed tables are (never a mix)."""
    manifest = study.measurement()
    got = {n: e["sha256"] for n, e in manifest["tables"].items()}
    # 'static' (its sharpness estimate) is not yet the same bits in two measurements, so a new set is
    # recognised by every other table's hash and by all its files lying in one generation
    same = {k: {n for n in TABLES if got[n] == h[n]} for k, h in hashes.items()}
    matches = [k for k, names in same.items() if names >= set(TABLES) - {"static"}]
    assert len(matches) == 1, f"the committed tables are a mix: {same}"
    assert len({e["file"].split("/")[0] for e in manifest["tables"].values()}) == 1
    assert matches == ["new"] or got == hashes["old"]
    alphas = study.read_table("interpolation")["alpha"].nunique()  # reading verifies every sha256
    assert alphas == {"old": 3, "new": 5}[matches[0]]
    for name in TABLES:
        assert not study.read_table(name).empty
    return matches[0]


@pytest.mark.parametrize(("point", "n", "expect"), [
    ("mid_manifest", 0, "old"), ("after_manifest", 0, "new"),  # killed amid the table writes: below
])
def test_measure_killed_at_any_point_leaves_one_whole_committed_set(base, tmp_path, point, n, expect):
    study = _copy(base, tmp_path)
    done = _killed_measure(study.store, point, n)
    assert done.returncode == -9, done.stderr
    assert _committed_set(study, base[1]) == expect
    status = measurement_status(study)
    assert status.state == "complete", status.reasons


def test_the_next_measure_cleans_what_a_killed_one_left(base, tmp_path):
    study = _copy(base, tmp_path)
    assert _killed_measure(study.store, "torn", 8).returncode == -9  # the last table half written
    tables = st.tables_dir(study.store, "tiny")
    assert len(list(tables.glob("gen-2/*.parquet"))) == 8 and len(list(tables.glob("gen-2/.*.tmp-*"))) == 1
    assert _committed_set(study, base[1]) == "old" and measurement_status(study).state == "complete"
    measure_study(study, options=MeasureOptions(n_alpha=5))
    assert _committed_set(study, base[1]) == "new"
    assert not list(tables.rglob("*.tmp-*"))
    assert sorted(p.name for p in tables.glob("gen-*")) == ["gen-1", "gen-3"]  # this set and the one before


def test_report_after_a_measure_killed_amid_its_table_writes_reads_the_previous_set(base, tmp_path):
    study = _copy(base, tmp_path)
    assert _killed_measure(study.store, "tables", 4).returncode == -9  # 4 of 9 new tables written
    assert _committed_set(study, base[1]) == "old" and measurement_status(study).state == "complete"
    res = runner.invoke(app, ["report", "tiny", "--store", str(study.store)])
    assert res.exit_code == 0, res.output
    html = (study.root / "report" / "report.html").read_text()
    assert 'class="warnings"' not in html and "measurement is" not in res.output


def test_partial_measurement_is_reported_in_red_and_listed(base, tmp_path):
    study = _copy(base, tmp_path)
    measure_study(study, runs=["base-i0-d0", "base-i1-d0"], options=MeasureOptions(n_alpha=3))
    status = measurement_status(study)
    assert status.state == "partial"
    assert "measured 2 of 3 planned runs; not measured: base-i2-d0" in status.reasons[0]
    listing = runner.invoke(app, ["ls", "--store", str(study.store)])
    assert "3/3 runs finished, measurement: partial: measured 2 of 3" in listing.output
    res = runner.invoke(app, ["report", "tiny", "--store", str(study.store)])
    assert res.exit_code == 0, res.output
    html = (study.root / "report" / "report.html").read_text()
    top = html[: html.index('<div class="summary">')]
    assert 'class="warnings"' in top and "not measured: base-i2-d0" in top
    assert ".warnings { background: #fdecec; border: 1px solid #e0a3a3; color: #a11b1b" in html  # in red
    assert "The measurement is partial" in res.output


def test_steps_missing_from_a_measurement_make_it_partial(base, tmp_path):
    study = _copy(base, tmp_path)
    files = st.RunFiles(st.run_dir(study.store, "tiny", "base-i1-d0"))
    entries = files.manifest()
    hidden = {k: v for k, v in entries.items() if k != st.checkpoint_name(20)}
    st.write_json(files.manifest_path, {"format": 1, "checkpoints": hidden})  # as if not yet written
    measure_study(study, options=MeasureOptions(n_alpha=3))
    st.write_json(files.manifest_path, {"format": 1, "checkpoints": entries})
    status = measurement_status(study)
    assert status.state == "partial" and "base-i1-d0@20" in status.reasons[0]


def test_changed_checkpoint_or_spec_makes_the_measurement_stale(base, tmp_path):
    study = _copy(base, tmp_path)
    files = st.RunFiles(st.run_dir(study.store, "tiny", "base-i2-d0"))
    params, optim, log = st.decode_checkpoint(files.read(40))
    params = {k: v + 1 for k, v in params.items()}
    files.write(40, st.encode_checkpoint(params, optim, log, {"run": "base-i2-d0", "step": "40"}))
    status = measurement_status(study)
    assert status.state == "stale" and "base-i2-d0@40" in status.reasons[0]
    assert "stale" in runner.invoke(app, ["ls", "--store", str(study.store)]).output
    measure_study(study, options=MeasureOptions(n_alpha=3))
    assert measurement_status(study).state == "complete"
    # a spec whose training differs (another lr) under the same name: stale as well
    other = Study.from_dict(tiny(**{"process.steps": 40, "process.optimizer.lr": 1e-3}), store=study.store)
    assert measurement_status(other).state == "stale"
    assert "the spec changed" in measurement_status(other).reasons[0]


def test_files_beside_or_damaged_in_the_committed_set_are_mixed(base, tmp_path):
    study = _copy(base, tmp_path)
    tables = st.tables_dir(study.store, "tiny")
    gen = next(tables.glob("gen-*"))
    shutil.copy(gen / "cka.parquet", gen / "stray.parquet")
    status = measurement_status(study)
    assert status.state == "mixed" and "stray.parquet" in status.reasons[0]
    (gen / "stray.parquet").unlink()
    data = bytearray((gen / "soups.parquet").read_bytes())
    data[len(data) // 2] ^= 1
    (gen / "soups.parquet").write_bytes(bytes(data))
    assert measurement_status(study).state == "mixed"
    with pytest.raises(st.StoreError, match="does not match its sha256"):
        study.read_table("soups")


def test_no_manifest_means_nothing_measured_and_loose_tables_are_ignored(base, tmp_path):
    study = _copy(base, tmp_path)
    tables = st.tables_dir(study.store, "tiny")
    shutil.copy(next(tables.glob("gen-*")) / "properties.parquet", tables / "properties.parquet")
    (tables / "measurement.json").unlink()
    status = measurement_status(study)
    assert status.state == "none" and "ignored: properties.parquet" in status.reasons[1]
    assert not study.has_table("properties")
    with pytest.raises(st.StoreError, match="no table 'properties'"):
        study.read_table("properties")
    assert "measurement: none" in runner.invoke(app, ["ls", "--store", str(study.store)]).output


def test_measure_is_refused_while_the_study_is_locked(base, tmp_path):
    study = _copy(base, tmp_path)
    before = st.read_measurement(study.store, "tiny")
    with st.locked(study.root):  # as `pathdep run` holds it while training
        res = runner.invoke(app, ["measure", "tiny", "--store", str(study.store)])
    assert res.exit_code == 1
    assert isinstance(res.exception, st.StoreError) and "is locked by another pathdep process" in str(res.exception)
    assert st.read_measurement(study.store, "tiny") == before


def test_a_subset_of_tables_keeps_the_others_with_their_own_basis(base, tmp_path):
    study = _copy(base, tmp_path)
    before = study.measurement()["tables"]
    measure_study(study, which=["barriers", "interpolation"], options=MeasureOptions(n_alpha=5))
    after = study.measurement()["tables"]
    assert after["properties"] == before["properties"] and after["barriers"] != before["barriers"]
    assert len(study.measurement()["bases"]) == 2 and measurement_status(study).state == "complete"
    assert study.read_table("interpolation")["alpha"].nunique() == 5


def test_tables_outside_the_measurement_are_listed_without_a_basis(base, tmp_path):
    study = _copy(base, tmp_path)
    study.write_table("cache", pd.DataFrame({"a": [1, 2]}))
    assert study.read_table("cache")["a"].tolist() == [1, 2]
    assert study.measurement()["tables"]["cache"]["basis"] is None
    measure_study(study, which=["soups"])
    assert study.has_table("cache") and measurement_status(study).state == "complete"


def test_measure_started_while_run_trains_is_refused_and_changes_nothing(tmp_path):
    grown = tiny(**{"process.steps": 40, "seeds.init": 4}, name="live")
    refusals = []

    def progress(label, done, total):  # called by `run` while it trains, holding the lock
        if 0 < done < total and not refusals:
            with pytest.raises(st.StoreError, match="is locked by another pathdep process") as e:
                measure_study(Study.open(tmp_path, "live"))
            refusals.append(str(e.value))

    Study.from_dict(grown, store=tmp_path).run(progress=progress)
    assert len(refusals) == 1 and "\n" not in refusals[0]
    assert st.read_measurement(tmp_path, "live") is None
    assert measurement_status(Study.open(tmp_path, "live")).state == "none"


def test_a_manifest_naming_a_file_outside_its_tables_is_refused(base, tmp_path):
    study = _copy(base, tmp_path)
    path = st.measurement_path(study.store, "tiny")
    manifest = st.read_measurement(study.store, "tiny")
    manifest["tables"]["cka"]["file"] = "../study.json"
    st.write_json(path, manifest)
    with pytest.raises(st.StoreError, match="outside its tables directory"):
        study.read_table("cka")
    assert measurement_status(study).state == "mixed"
