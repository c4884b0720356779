"""Every finding agrees with itself, on three small stored studies trained and measured once.

- ``demo``: a reduced demo (two competing features, width-1 bottleneck) with crossed init and
  data seeds, a setup variant, an intervention variant with matched controls, forks and a
  nudge: every question but TOK is measured;
- ``small``: 6 runs (3 init x 2 data seeds): the questions that need more data say so;
- ``seq``: a tiny language-model study (5 one-layer transformers), for TOK;
- ``one``: logistic regression at a wide margin (convex): every run ends on the linear solution, a
  one-cluster population. (A full-width hidden layer is no such null: its runs weigh the XOR
  feature on the conflicting probes a little or not at all, a real spread of behaviour. One
  data seed: with two, a run and its sibling of another data order end almost alike and pairs
  of siblings read as small clusters.)

For every finding: each number printed in the verdict is one of the finding's numbers (headline,
interval, details, or a threshold the headline or the module states) at the printed precision;
the headline lies in its interval; a measured finding has a finite headline; a finding not
measured says why; no verdict prints "nan"; the plot draws the numbers the details hold.
"""

from __future__ import annotations

import math
import re
from types import ModuleType

import numpy as np
import pytest
from matplotlib.figure import Figure

from pathdep import Study
from pathdep.analyses import ANALYSES, a, b, c, d, e, f, g, h, lmc, profile, stats, t, tok
from pathdep.analyses.finding import Finding
from pathdep.measure import MeasureOptions, measure_study
from tests.helpers import SEQ

PROCESS = {
    "task": "two_features", "model": "mlp", "steps": 150, "batch_size": 64,
    "task_args": {"n_train": 512, "n_test": 200, "n_probe": 200},
    "model_args": {"hidden": [1, 16], "activations": ["identity", "relu"]},
    "optimizer": {"name": "adam", "lr": 1e-2},
    "checkpoints": {"every": 50},
}
DEMO = {
    "name": "demo", "process": PROCESS,
    "seeds": {"init": 6, "data": [0, 1]},
    "variants": [
        {"name": "lr_3e-3", "set": {"optimizer.lr": 3e-3}, "seeds": {"init": 3, "data": [0]}},
        {"name": "lin_0_50_s0.3", "seeds": {"init": 6, "data": [0]},
         "set": {"intervention": {"kind": "counterexamples_f1", "start": 0, "end": 50, "strength": 0.3}}},
    ],
    "forks": [
        {"name": "k0", "parent": "base-i1-d0", "step": 0, "data_seeds": [11, 12]},
        {"name": "k50", "parent": "base-i1-d0", "step": 50, "data_seeds": [11, 12]},
        {"name": "nudge", "parent": "base-i0-d0", "toward": "base-i3-d0", "step": 50, "lambdas": [0.25, 0.75],
         "data_seeds": [0]},
    ],
}
SMALL = {"name": "small", "process": PROCESS | {"steps": 100}, "seeds": {"init": 3, "data": [0, 1]}}
ONE = {"name": "one", "seeds": {"init": 12, "data": [0]},
       "process": PROCESS | {"steps": 100, "task_args": PROCESS["task_args"] | {"margin": 1.0},
                             "model_args": {"hidden": [], "activations": []}}}  # convex: every run ends alike
SEQ_STUDY = SEQ | {"seeds": {"init": 5}}
OPTIONS = MeasureOptions(n_alpha=5, max_cohort=6, max_examples=100)
MODULES: dict[str, ModuleType] = {"A": a, "B": b, "C": c, "D": d, "E": e, "F": f, "G": g, "H": h, "T": t,
                                  "LMC": lmc, "TOK": tok}


def _build(spec, tmp_path_factory, which=None):
    study = Study.from_dict(spec, store=tmp_path_factory.mktemp(spec["name"]))
    study.run()
    measure_study(study, which=which, options=OPTIONS)
    return study, profile(study)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return _build(DEMO, tmp_path_factory)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return _build(SMALL, tmp_path_factory)


@pytest.fixture(scope="module")
def one(tmp_path_factory):
    return _build(ONE, tmp_path_factory)


@pytest.fixture(scope="module")
def seq(tmp_path_factory):
    return _build(SEQ_STUDY, tmp_path_factory, which=["properties", "behaviour"])


STUDIES = ["demo", "small", "one", "seq"]

# --- numbers in words ------------------------------------------------------------------------------
# a number: not glued to a word or a decimal point before it (so names such as "xor_0_50_s0.1" hold
# none); a trailing % (percent) or x (a ratio); a sentence may end after it
NUMBER = re.compile(r"(?<![\w.])([-+]?)(\d+(?:\.\d+)?(?:e[-+]?\d+)?)(%|x)?(?!\w|\.\d)")


def printed_numbers(text: str) -> list[str]:
    """The numbers a sentence prints, as written."""
    return [m.group(0) for m in NUMBER.finditer(text)]


def _sources(obj, numbers: list[float], words: set[str]) -> None:
    """Every number held by ``obj`` (values, recursively) and every number written in its strings."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            _sources(k, numbers, words)
            _sources(v, numbers, words)
    elif isinstance(obj, (list, tuple, np.ndarray)):
        for v in obj:
            _sources(v, numbers, words)
    elif isinstance(obj, str):
        words.update(w.lstrip("+") for w in printed_numbers(obj))
    elif isinstance(obj, (bool, np.bool_)) or obj is None:
        return
    elif isinstance(obj, (int, float, np.integer, np.floating)):
        numbers.append(float(obj))


def _module_constants(id: str) -> list[float]:
    """The thresholds an analysis states: upper-case numbers of its module and of the shared statistics."""
    mods = [stats, *([MODULES[id]] if id in MODULES else [])]
    return [float(v) for m in mods for k, v in vars(m).items() if k.isupper() and isinstance(v, (int, float))]


def _matches(word: str, numbers: list[float], words: set[str]) -> bool:
    """Is the printed ``word`` one of ``numbers`` at the printed precision (or written in a source)?"""
    if word.lstrip("+") in words:
        return True
    m = NUMBER.fullmatch(word)
    sign, digits, suffix = m.group(1), m.group(2), m.group(3)
    shown = float(sign.replace("+", "") + digits)
    scale = 100.0 if suffix == "%" else 1.0
    if "e" in digits:
        return any(math.isclose(x * scale, shown, rel_tol=1e-2) for x in numbers)
    decimals = len(digits.split(".")[1]) if "." in digits else 0
    if decimals == 0 and suffix != "%":  # a count or a step: exactly
        return any(abs(x - shown) < 1e-9 * max(1.0, abs(shown)) for x in numbers)
    tol = 0.5 * 10.0**-decimals + 1e-9
    return any(abs(x * scale - shown) <= tol for x in numbers if math.isfinite(x))


def unexplained_numbers(finding: Finding) -> list[str]:
    """The numbers in the verdict that none of the finding's own numbers explains."""
    numbers: list[float] = _module_constants(finding.id)
    words: set[str] = set()
    _sources([finding.value, finding.ci, finding.details, finding.headline], numbers, words)
    return [w for w in printed_numbers(finding.verdict) if not _matches(w, numbers, words)]


def test_the_number_finder_reads_numbers_not_names():
    text = "xor_0_50_s0.1 moved by -0.125 (+0.020) at step-150: 94%, 1.21x, λ=0.25; top-2 reaches 0.9."
    assert printed_numbers(text) == ["-0.125", "+0.020", "150", "94%", "1.21x", "0.25", "2", "0.9"]
    fake = Finding("A", "sd", 0.5, (0.1, 0.9), "sd 0.50, share 94%, 3 of 8, p = 0.0212",
                   {"share": 0.9412, "k": 3, "n": 8, "p": 0.02124})
    assert unexplained_numbers(fake) == []
    wrong = Finding("A", "sd", 0.5, (0.1, 0.9), "sd 0.51, share 93%, +0.014, 4 of 8", {"share": 0.9412, "k": 3, "n": 8})
    assert unexplained_numbers(wrong) == ["0.51", "93%", "+0.014", "4"]


# --- every finding of every study ------------------------------------------------------------------
@pytest.mark.parametrize("name", STUDIES)
def test_every_verdict_prints_only_the_findings_own_numbers(name, request):
    _, prof = request.getfixturevalue(name)
    bad = {fd.id: (unexplained_numbers(fd), fd.verdict) for fd in prof if fd.measured and unexplained_numbers(fd)}
    assert not bad


@pytest.mark.parametrize("name", STUDIES)
def test_every_headline_is_finite_and_inside_its_interval(name, request):
    _, prof = request.getfixturevalue(name)
    for fd in prof:
        assert not re.search(r"\b(nan|inf)\b", fd.verdict, re.IGNORECASE), (fd.id, fd.verdict)
        if not fd.measured:
            assert fd.value is None and fd.ci is None, fd.id
            reason = fd.verdict.removeprefix("not measured in this study: ")
            assert reason != fd.verdict and len(reason) > 10, (fd.id, fd.verdict)
            continue
        assert fd.value is not None and math.isfinite(fd.value), (fd.id, fd.value, fd.verdict)
        if fd.ci is not None:
            lo, hi = fd.ci
            assert not (math.isnan(lo) or math.isnan(hi)), (fd.id, fd.ci)  # an end may be "never" (inf)
            assert lo - 1e-9 <= fd.value <= hi + 1e-9, (fd.id, fd.value, fd.ci)


def _intervals(details, path=""):
    """(where, value, interval) for every ``X`` with an ``X_ci`` beside it in nested details."""
    if not isinstance(details, dict):
        return
    for k, v in details.items():
        if isinstance(v, dict):
            yield from _intervals(v, f"{path}{k}.")
        elif str(k).endswith("_ci") and v is not None and isinstance(details.get(k[:-3]), (int, float)):
            yield f"{path}{k}", details[k[:-3]], v


@pytest.mark.parametrize("name", STUDIES)
def test_every_secondary_number_lies_in_its_own_interval(name, request):
    _, prof = request.getfixturevalue(name)
    for fd in prof:
        for where, value, (lo, hi) in _intervals(fd.details):
            assert lo - 1e-9 <= value <= hi + 1e-9, (fd.id, where, value, (lo, hi))
    if prof["T"].measured:
        det = prof["T"].details
        for key, ci in (("agreement_over_time", "ci_over_time"), ("agreement_between_runs", "ci_between_runs")):
            assert det[ci][0] - 1e-9 <= det[key] <= det[ci][1] + 1e-9, (key, det[key], det[ci])


@pytest.mark.parametrize("name", STUDIES)
def test_findings_without_enough_data_name_the_declared_minimum(name, request):
    _, prof = request.getfixturevalue(name)
    for fd in prof:
        m = re.search(r"needs >= (\d+) (.+?) \(got (\d+)\)", fd.verdict)
        if m:
            assert not fd.measured and int(m.group(3)) < int(m.group(1)), fd.verdict
            if fd.id in ANALYSES:
                assert int(m.group(1)) in ANALYSES[fd.id].needs.values(), (fd.id, ANALYSES[fd.id].needs)


# --- each study's own answers ----------------------------------------------------------------------
def test_the_reduced_demo_measures_every_question(demo):
    _, prof = demo
    for fd in prof:
        if fd.id not in ("TOK", "GF"):
            assert fd.measured, (fd.id, fd.verdict)
    assert prof["C"].value >= 2  # the demo's two solution types


def test_the_small_study_declares_what_it_lacks(small):
    _, prof = small
    for id in ("C", "D", "E", "H"):  # 6 runs of 3 init seeds
        assert prof[id].verdict == f"not measured in this study: needs >= {ANALYSES[id].needs['runs']} runs (got 6)"
    assert "needs >= 2 setup variants" in prof["B"].verdict
    assert "needs >= 5 intervened runs with a matched control (got 0)" in prof["F"].verdict
    assert prof["A"].measured and prof["T"].measured
    assert "data order (main + interaction)" in prof["A"].verdict  # 3 x 2 crossed seeds: split measured
    assert prof["A"].details["inits_changed"] == "not measured: the final clusters (C) need >= 8 runs (got 6)"


def test_the_one_cluster_study_reads_as_one_population(one):
    study, prof = one
    props = study.read_table("properties")
    final = props[(props["name"] == "reliance") & (props["step"] == study.spec.process.steps)]["value"]
    assert (final == 1).all()  # every run ends on the linear solution
    assert prof["C"].value == 1
    assert not prof["D"].measured and "one cluster" in prof["D"].verdict
    for id in ("E", "H"):
        assert not prof[id].measured and "same reliance" in prof[id].verdict, prof[id].verdict
    why = prof["A"].details["data_order"]
    assert why.startswith("not measured: needs >= 2 init seeds crossed with >= 2 data seeds"), why


def test_the_language_model_study_answers_tok(seq):
    _, prof = seq
    assert prof["TOK"].measured, prof["TOK"].verdict


def test_headlines_are_the_numbers_their_details_hold(demo, seq):
    _, prof = demo
    det = {id: prof[id].details for id in ("A", "B", "G", "H", "T", "F")}
    a_ = det["A"]
    assert prof["A"].value == pytest.approx(np.sqrt(max(a_["raw_std"] ** 2 - a_["noise_std"] ** 2, 0)))
    assert prof["B"].value == pytest.approx(det["B"]["between"] / det["B"]["within"])
    assert prof["T"].value == pytest.approx(det["T"]["agreement_over_time"] - det["T"]["agreement_between_runs"])
    assert prof["H"].value == det["H"]["scores"]["static"] and list(prof["H"].ci) == det["H"]["score_ci"]["static"]
    name = prof["G"].headline.removesuffix(", mid-training vs final")
    assert prof["G"].value == pytest.approx(det["G"][f"{name} by step"][det["G"]["mid_step"]], abs=5e-5)
    pooled = det["F"]["pooled"]
    assert prof["F"].value == (pooled["persistence"] if pooled["immediate_detected"] else pooled["final"])
    tok_ = seq[1]["TOK"]
    assert tok_.value == tok_.details["spearman_final"]


# --- the numbers against their definitions, from the stored tables --------------------------------
def test_data_order_count_matches_the_stored_solution_types(demo):
    study, prof = demo
    props = study.read_table("properties")
    final = props[(props["name"] == "reliance") & (props["step"] == study.spec.process.steps)].set_index("run")["value"]
    runs = study.runs()
    base = runs[(runs["variant"] == "base") & runs["fork"].isna()]
    kind = {(r.init_seed, r.data_seed): final[r.run] > 0.5 for r in base.itertuples()}  # linear or XOR solution
    inits = sorted({i for i, _ in kind})
    changed = sum(len({kind[(i, s)] for s in (0, 1)}) > 1 for i in inits)
    det = prof["A"].details
    assert det["inits_changed"] == changed and det["inits_crossed"] == len(inits)
    assert f"{changed} of {len(inits)} inits" in prof["A"].verdict
    assert det["share_init[reliance]"] + det["share_data_total[reliance]"] == pytest.approx(1)
    assert "data order (main + interaction)" in prof["A"].verdict


def test_intervention_effects_are_signed_as_intervened_minus_control(demo):
    study, prof = demo
    props = study.read_table("properties")
    rel = props[props["name"] == "reliance"].set_index(["run", "step"])["value"]
    runs = study.runs().set_index("run")
    last = study.spec.process.steps
    imm, fin = [], []
    for run in runs.index[runs["variant"] == "lin_0_50_s0.3"]:
        control = f"base-i{runs.at[run, 'init_seed']}-d{runs.at[run, 'data_seed']}"
        imm.append(rel[(run, 50)] - rel[(control, 50)])
        fin.append(rel[(run, last)] - rel[(control, last)])
    fd = prof["F"]
    v = fd.details["variants"]["lin_0_50_s0.3"]
    assert v["immediate"] == pytest.approx(np.mean(imm)) and v["final"] == pytest.approx(np.mean(fin))
    pooled = fd.details["pooled"]
    assert pooled["immediate"] == pytest.approx(np.mean(imm)) and pooled["final"] == pytest.approx(np.mean(fin))
    assert f"{np.mean(imm):+.3f}" in fd.verdict and f"{np.mean(fin):+.3f}" in fd.verdict
    for effect, detected in ((pooled["immediate"], pooled["immediate_detected"]),
                             (pooled["final"], pooled["final_detected"])):
        if detected:
            side = "low reliance (the XOR solution)" if effect < 0 else "high reliance (the linear solution)"
            assert f"toward {side}" in fd.verdict
    if pooled["immediate_detected"]:
        assert fd.value == pytest.approx(np.mean(fin) / np.mean(imm))
    else:
        assert "no immediate effect" in fd.verdict and fd.value == pytest.approx(np.mean(fin))


# --- the plot draws the finding's numbers ----------------------------------------------------------
def _drawn(fd: Finding) -> np.ndarray:
    """Every value the finding's plot draws on either axis (line points, bar sizes, scatter points)."""
    fig = Figure()
    ax = fig.add_subplot()
    fd.plot(ax)
    ys = [line.get_ydata() for line in ax.get_lines()] + [line.get_xdata() for line in ax.get_lines()]
    ys += [[p.get_height() for p in ax.patches], [p.get_width() for p in ax.patches]]
    ys += [col.get_offsets().ravel() for col in ax.collections if len(col.get_offsets())]
    return np.concatenate([np.ravel(np.asarray(y, dtype=float)) for y in ys if len(y)])


def _drawn_includes(fd: Finding, values) -> list[float]:
    drawn = _drawn(fd)
    return [v for v in values if not np.isclose(drawn, v, atol=1e-9).any()]


def test_plots_draw_the_numbers_of_the_details(demo):
    _, prof = demo
    det = prof["T"].details
    cka = [v for k, v in det.items() if k.startswith("cka[")]
    assert not _drawn_includes(prof["T"], [det["agreement_over_time"], det["agreement_between_runs"],
                                           *[x["over_time"] for x in cka], *[x["between_runs"] for x in cka]])
    assert not _drawn_includes(prof["H"], list(prof["H"].details["scores"].values()))
    variants = prof["F"].details["variants"].values()
    assert not _drawn_includes(prof["F"], [v[k] for v in variants for k in ("immediate", "final")])
    assert not _drawn_includes(prof["G"], [prof["G"].value])
    fig = Figure()
    ax = fig.add_subplot()
    prof["A"].plot(ax)  # one point per run: their spread is the raw sd the verdict prints
    runs = prof["A"].details["runs"]
    points = [line.get_ydata() for line in ax.get_lines() if len(line.get_ydata()) == runs]
    assert points and np.std(points[0], ddof=1) == pytest.approx(prof["A"].details["raw_std"])
