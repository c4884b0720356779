"""Same store, same profile: two fresh processes measuring and reporting one store agree bit for bit.

safetensors lists a checkpoint's tensors in an order that changes from process to process, and
Python's string hashing changes with PYTHONHASHSEED; neither may reach a table or the profile.
"""

import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from helpers import tiny
from pathdep import Study
from pathdep.measure.study import TABLES
from pathdep.store import read_measurement

# `pathdep measure STUDY` then `pathdep report STUDY`, in one fresh process (one import of the package)
MEASURE_AND_REPORT = """
import sys
from pathdep.cli import _register, configure_threads, invoke
configure_threads()
_register()
store, study = sys.argv[1:]
for command in ("measure", "report"):
    code = invoke([command, study, "--store", store])
    if code:
        sys.exit(code)
"""


def spec() -> dict:
    """A small study with every kind of cohort: seeds, a setup variant and a fork."""
    s = tiny(**{"seeds.init": 3, "seeds.data": [0, 1]})
    s["variants"] = [{"name": "lr_1e-2", "set": {"optimizer.lr": 1e-2}, "seeds": {"init": 2, "data": [0]}}]
    s["forks"] = [{"name": "k20", "parent": "base-i0-d0", "step": 20, "data_seeds": [11, 12]}]
    s["measure"] = {"n_alpha": 5, "max_examples": 100}
    return s


@pytest.mark.slow
def test_two_processes_measuring_one_store_write_identical_tables_and_profiles(tmp_path):
    study = Study.from_dict(spec(), store=tmp_path / "trained")
    study.run()
    stores = [tmp_path / f"copy{i}" for i in (1, 2)]
    procs = []
    for i, store in enumerate(stores):
        shutil.copytree(tmp_path / "trained", store)
        env = {**os.environ, "PYTHONHASHSEED": str(11 + 1000 * i), "PATHDEP_THREADS": "1"}
        procs.append(subprocess.Popen([sys.executable, "-c", MEASURE_AND_REPORT, str(store), study.name], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
    roots = [store / study.name for store in stores]
    manifests = [read_measurement(store, study.name) for store in stores]  # the committed sets
    assert sorted(manifests[0]["tables"]) == sorted(manifests[1]["tables"]) == sorted(TABLES)
    files = [{t: root / "tables" / e["file"] for t, e in m["tables"].items()} for root, m in zip(roots, manifests)]
    for name in TABLES:
        a, b = (pd.read_parquet(f[name]) for f in files)
        assert len(a) > 0, name
        pd.testing.assert_frame_equal(a, b, check_exact=True, obj=name)
        assert files[0][name].read_bytes() == files[1][name].read_bytes(), name
    assert manifests[0]["bases"] == manifests[1]["bases"]  # measured from the same checkpoints and options
    static = pd.read_parquet(files[0]["static"])
    assert (static["measure"] == "sharpness").any()  # the randomised measurement is among them
    profiles = [(root / "report" / "profile.json").read_text() for root in roots]
    assert '"findings"' in profiles[0]
    assert profiles[0] == profiles[1]
