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

# `pathdep measure STUDY` then `pathdep report STUDY`, in one fresh process (one import of the package)
MEASURE_AND_REPORT = """
import sys
from pathdep.cli import main
store, study = sys.argv[1:]
for command in ("measure", "report"):
    sys.argv = ["pathdep", command, study, "--store", store]
    main()
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
    names = [sorted(f.name for f in (root / "tables").glob("*.parquet")) for root in roots]
    assert names[0] == names[1] == sorted(f"{t}.parquet" for t in TABLES)
    for name in names[0]:
        a, b = (pd.read_parquet(root / "tables" / name) for root in roots)
        assert len(a) > 0, name
        pd.testing.assert_frame_equal(a, b, check_exact=True, obj=name)
        assert (roots[0] / "tables" / name).read_bytes() == (roots[1] / "tables" / name).read_bytes(), name
    static = pd.read_parquet(roots[0] / "tables" / "static.parquet")
    assert (static["measure"] == "sharpness").any()  # the randomised measurement is among them
    profiles = [(root / "report" / "profile.json").read_text() for root in roots]
    assert '"findings"' in profiles[0]
    assert profiles[0] == profiles[1]
