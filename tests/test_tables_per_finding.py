"""Each finding needs only the tables it reads.

One reduced demo study (the one of test_findings_consistent, every question but TOK measured) is
trained once; for each finding a copy of its store is measured with exactly the tables the
analysis declares (``analysis.tables``: one table of each entry), and the finding must be
measured; measured again with one of those tables left out, it must be "not measured" naming the
table. TOK asks its question of a language model: a tiny one, measured with ``behaviour`` alone.
"""

from __future__ import annotations

import shutil

import pytest
from typer.testing import CliRunner

from pathdep import Study
from pathdep.analyses import ANALYSES
from pathdep.analyses.data import COVERAGE
from pathdep.cli import _register, app
from pathdep.measure import measure_study
from tests.helpers import SEQ
from tests.test_findings_consistent import DEMO, OPTIONS

_register()
EVERY = [id for id in ANALYSES if id != "TOK"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("trained")
    Study.from_dict(DEMO, store=root).run()
    seq = tmp_path_factory.mktemp("seq")
    Study.from_dict(SEQ | {"seeds": {"init": 5}}, store=seq).run()
    return {"demo": root, "seq": seq}


def _measured(trained, tmp_path, study: str, which: list[str]):
    store = tmp_path / "-".join(which or ["none"])
    shutil.copytree(trained[study], store)
    s = Study.open(store, study)
    if which:
        measure_study(s, which=which, options=OPTIONS)
    return s


def _one_each(tables: tuple[tuple[str, ...], ...]) -> list[str]:
    return [names[0] for names in tables]


def test_every_analysis_declares_the_measured_tables_it_reads():
    for id, fn in ANALYSES.items():
        assert fn.tables, id
        assert all(n in COVERAGE for names in fn.tables for n in names), id
    assert ANALYSES["LMC"].tables == (("barriers",),)  # barriers suffice
    assert ANALYSES["G"].tables == (("importance", "cka"),)  # either curve


@pytest.mark.parametrize("id", EVERY)
def test_a_finding_is_measured_from_its_own_tables_alone(id, trained, tmp_path):
    fn = ANALYSES[id]
    need = _one_each(fn.tables)
    study = _measured(trained, tmp_path, "demo", need)
    assert sorted(study.measurement()["tables"]) == sorted(need)
    finding = fn(study)
    assert finding.measured, (id, need, finding.verdict)
    for left_out in need:
        rest = [t for t in need if t != left_out]
        short = fn(_measured(trained, tmp_path, "demo", rest))
        assert not short.measured
        assert f"{left_out!r}" in short.verdict and "table" in short.verdict, (id, left_out, short.verdict)


def test_either_table_of_an_alternative_will_do(trained, tmp_path):
    for table in ("importance", "cka"):
        assert ANALYSES["G"](_measured(trained, tmp_path, "demo", [table])).measured, table
    assert ANALYSES["H"](_measured(trained, tmp_path, "demo", ["behaviour", "properties", "static"])).measured
    short = ANALYSES["G"](_measured(trained, tmp_path, "demo", ["barriers"]))
    assert short.verdict == ("not measured in this study: neither the 'importance' nor the 'cka' table is stored "
                             "(run `pathdep measure demo --only importance --only cka`)")


def test_tok_reads_behaviour_alone(trained, tmp_path):
    assert ANALYSES["TOK"](_measured(trained, tmp_path, "seq", ["behaviour"])).measured
    short = ANALYSES["TOK"](_measured(trained, tmp_path, "seq", ["properties"]))
    assert not short.measured and "'behaviour' table is missing" in short.verdict


def test_measure_only_barriers_from_the_cli_gives_lmc_the_numbers_of_a_full_measurement(trained, tmp_path):
    store = tmp_path / "cli"
    shutil.copytree(trained["demo"], store)
    res = CliRunner().invoke(app, ["measure", "demo", "--store", str(store), "--only", "barriers",
                                   "--n-alpha", "5", "--max-cohort", "6", "--max-examples", "100"])
    assert res.exit_code == 0, res.output
    alone = ANALYSES["LMC"](Study.open(store, "demo"))
    full = ANALYSES["LMC"](_measured(trained, tmp_path, "demo", list(COVERAGE)))
    assert alone.measured and full.measured
    assert alone.value == full.value and alone.ci == full.ci
    assert full.verdict.startswith(alone.verdict)  # the soups table (not read alone) adds the soup gain
    assert "greedy soup" in full.verdict and "greedy soup" not in alone.verdict
