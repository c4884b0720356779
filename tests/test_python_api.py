"""The profile in Python (study.profile(), Profile.to_frame()) and the measurement functions
exported by `pathdep`, whose docstring examples run here as doctests."""

import doctest
import math
import subprocess
import sys

import pytest
import torch
from torch import nn

import pathdep
from pathdep import Study
from pathdep.analyses import profile as make_profile
from pathdep.analyses.finding import QUESTIONS, Finding, Profile

EXPORTED = ["cka", "similarity_matrix", "barrier", "weight_matching", "apply_permutation", "agreement", "uniform_soup", "dip_test"]
WITH_EXAMPLES = ["cka", "barrier", "weight_matching", "agreement", "uniform_soup", "dip_test"]
TASK_ARGS = {"n_train": 256, "n_test": 128, "n_probe": 64}


def _run_doctests(obj, name, globs):
    tests = doctest.DocTestFinder(recurse=False).find(obj, name, globs=dict(globs))
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for t in tests:
        runner.run(t)
    return runner.summarize(verbose=False), sum(len(t.examples) for t in tests)


@pytest.mark.parametrize("name", WITH_EXAMPLES)
def test_exported_measurements_have_examples_that_pass(name):
    fn = getattr(pathdep, name)
    module = sys.modules[fn.__module__]
    results, n_examples = _run_doctests(fn, name, module.__dict__)
    assert n_examples >= 1 and results.attempted == n_examples and results.failed == 0


def test_exports_are_the_library_functions_and_import_pathdep_stays_light():
    from pathdep.analyses import stats
    from pathdep.measure import align, connectivity, similarity

    assert (pathdep.cka, pathdep.barrier, pathdep.weight_matching, pathdep.dip_test) == (
        similarity.cka, connectivity.barrier, align.weight_matching, stats.dip_test)
    assert set(EXPORTED) | {"Profile", "Finding"} <= set(pathdep.__all__)
    assert all(callable(getattr(pathdep, n)) for n in pathdep.__all__ if n not in {"MODELS", "TASKS"})
    with pytest.raises(AttributeError, match="no attribute 'loss_barrierz'"):
        pathdep.loss_barrierz  # noqa: B018
    code = "import sys, pathdep; print(sorted(m for m in ('sklearn', 'scipy.optimize', 'pathdep.measure') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"


def test_finding_tracker_and_package_docstrings_pass():
    from pathdep.analyses import finding
    from pathdep.report import trackers

    for mod in (finding, trackers, pathdep):
        results = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
        assert results.attempted >= 2 and results.failed == 0, mod.__name__


def _check_frame(prof):
    df = prof.to_frame()
    assert list(df.columns) == ["id", "question", "headline", "value", "low", "high", "place", "verdict", "measured"]
    assert df["id"].tolist() == [f.id for f in prof]
    for f, row in zip(prof, df.itertuples(index=False)):
        assert row.question == QUESTIONS[f.id] and row.verdict == f.verdict and row.measured == f.measured
        for got, want in ((row.value, f.value), (row.low, f.ci and f.ci[0]), (row.high, f.ci and f.ci[1])):
            assert (math.isnan(got) and (want is None or not math.isfinite(want))) or got == want
        assert row.place == getattr(f, "place", None)
    return df


def test_profile_of_a_trained_study_is_the_reports_profile_as_a_tidy_frame(tmp_path):
    from pathdep.measure import measure_study

    study = Study.from_dict({"name": "api", "process": {"task": "two_features", "task_args": TASK_ARGS, "steps": 20,
                             "batch_size": 16, "model_args": {"hidden": [4]}, "checkpoints": {"every": 10}},
                             "seeds": {"init": 8}}, store=tmp_path / "store")
    study.run()
    measure_study(study, which=["properties", "behaviour", "behaviour_pairs"])
    prof = study.profile()
    assert isinstance(prof, Profile) and prof.to_dict() == make_profile(study).to_dict()
    df = _check_frame(prof)
    assert df["measured"].any() and not df["measured"].all()  # some findings measured, others not (tables absent)
    assert df.loc[df["measured"], "value"].notna().any()


def test_profile_of_a_recorded_study(tmp_path):
    from pathdep.measure import measure_study
    from pathdep.sources import ExternalStudy, Recorder

    rec = Recorder(tmp_path, "mine", task="two_features", task_args=TASK_ARGS, model="mlp", model_args={"hidden": [4]}, keys="order")
    for seed in range(4):
        torch.manual_seed(seed)  # the user's loop
        net = nn.Sequential(nn.Linear(11, 4), nn.ReLU(), nn.Linear(4, 1))
        rec.save(f"seed{seed}", 0, net, loss=0.7, init_seed=seed)
        with torch.no_grad():
            for p in net.parameters():
                p.mul_(0.5)
        rec.save(f"seed{seed}", 10, net, loss=0.5, init_seed=seed)
    study = Study.open(tmp_path, "mine")
    assert isinstance(study, ExternalStudy)
    measure_study(study, which=["properties", "behaviour", "behaviour_pairs"])
    prof = study.profile()
    assert prof.study == "mine" and [f.id for f in prof] == [f.id for f in make_profile(study)]
    _check_frame(prof)


def test_to_frame_of_planted_findings():
    prof = Profile("p", (Finding("A", "seed sd", 0.25, (0.2, 0.3), "runs differ"),
                         Finding("C", "clusters", float("nan"), None, "no number"),
                         Finding("E", "earliest step", 100.0, (float("-inf"), 200.0), "early")))
    df = prof.to_frame()
    assert df["value"].tolist()[0::2] == [0.25, 100.0] and math.isnan(df["value"][1])
    assert df["low"][0] == 0.2 and df["high"][0] == 0.3 and math.isnan(df["low"][1]) and math.isnan(df["low"][2])
    assert df["high"][2] == 200.0 and df["headline"].tolist() == ["seed sd", "clusters", "earliest step"]
