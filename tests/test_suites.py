"""Hub suites as a user meets them: the table of `pathdep suites`, the published lists, one progress bar."""

from __future__ import annotations

import transformers
from huggingface_hub import utils as hub_utils
from typer.testing import CliRunner

from pathdep.cli import _register, app
from pathdep.cli.sources import one_progress_bar, parse_ints
from pathdep.sources.suites import MULTIBERTS_STEPS, SUITES
from tests.test_sources_adapter import tiny_model
from tests.test_sources_hf import put_in_cache, word_tokenizer

_register()
runner = CliRunner()


def test_multiberts_steps_are_the_hub_repositories_of_the_first_five_runs():
    # google/multiberts-seed_{0..4}-step_{k}k: the model cards count 28 checkpoints "captured during
    # the course of pre-training" (140 for 5 runs): 20k..200k every 20k (10) and 300k..2000k every
    # 100k (18); the hub holds step_0k besides (the initialisation, its own model card)
    assert len(MULTIBERTS_STEPS) == 29 and len([s for s in MULTIBERTS_STEPS if s > 0]) == 28
    assert MULTIBERTS_STEPS[0] == 0 and MULTIBERTS_STEPS[-1] == 2_000_000
    assert [s for s in MULTIBERTS_STEPS if 0 < s <= 200_000] == list(range(20_000, 200_001, 20_000))
    assert [s for s in MULTIBERTS_STEPS if s > 200_000] == list(range(300_000, 2_000_001, 100_000))
    suite = SUITES["multiberts-steps"]
    assert suite.steps == MULTIBERTS_STEPS and suite.seeds == (0, 1, 2, 3, 4)
    assert suite.repo_of(4, 2_000_000) == "google/multiberts-seed_4-step_2000k"
    assert suite.repo_of(0, 0) == "google/multiberts-seed_0-step_0k"


def test_crfm_runs_have_their_published_names():
    small, medium = SUITES["crfm-gpt2-small"].repos(), SUITES["crfm-gpt2-medium"].repos()
    assert small == [f"stanford-crfm/{n}-gpt2-small-x{s}" for n, s in
                     (("alias", 21), ("battlestar", 49), ("caprica", 81), ("darkmatter", 343), ("expanse", 777))]
    assert medium == [f"stanford-crfm/{n}-gpt2-medium-x{s}" for n, s in
                      (("arwen", 21), ("beren", 49), ("celebrimbor", 81), ("durin", 343), ("eowyn", 777))]


def test_the_seeds_option_shown_imports_exactly_the_published_seeds():
    for suite in SUITES.values():
        assert parse_ints(suite.seeds_option(), "seeds", suite.seeds) == list(suite.seeds), suite.name


def test_suites_lists_real_repository_names_and_the_seeds_to_pass():
    res = runner.invoke(app, ["suites"], env={"COLUMNS": "250"})
    assert res.exit_code == 0, res.output
    out = res.output
    for repo in (*SUITES["crfm-gpt2-small"].repos(), *SUITES["crfm-gpt2-medium"].repos(),
                 "EleutherAI/pythia-70m", "EleutherAI/pythia-70m-seed1", "EleutherAI/pythia-70m-seed9",
                 "google/multiberts-seed_24", "google/multiberts-seed_4-step_2000k"):
        assert repo in out, repo
    assert "{name}" not in out and "{seed}" not in out and "21..777" not in out
    pythia = next(line for line in out.splitlines() if " pythia-70m " in line)
    assert "--seeds 1234" in pythia
    crfm = next(line for line in out.splitlines() if " crfm-gpt2-small " in line)
    assert "--seeds 21,49,81,343,777" in crfm and "checkpoint-0 ... checkpoint-400000" in crfm


def test_hub_progress_bars_are_silenced_during_import_and_restored_after(tmp_path, capfd):
    saved = tmp_path / "model"
    tiny_model("gpt2", 1).save_pretrained(saved)
    capfd.readouterr()
    with one_progress_bar():
        assert hub_utils.are_progress_bars_disabled() and not transformers.utils.logging.is_progress_bar_enabled()
        transformers.AutoModelForCausalLM.from_pretrained(saved)
    quiet = capfd.readouterr().err
    assert not hub_utils.are_progress_bars_disabled() and transformers.utils.logging.is_progress_bar_enabled()
    transformers.AutoModelForCausalLM.from_pretrained(saved)
    loud = capfd.readouterr().err
    assert "Loading weights" in loud and "Loading weights" not in quiet  # the bar it silences is real
    hub_utils.disable_progress_bars()  # a user's own choice stays as it was
    try:
        with one_progress_bar():
            pass
        assert hub_utils.are_progress_bars_disabled()
    finally:
        hub_utils.enable_progress_bars()


def test_import_suite_shows_no_transformers_bar(tmp_path):
    hub = tmp_path / "hub"
    for step in (0, 400000):
        put_in_cache(hub, "stanford-crfm/alias-gpt2-small-x21", f"checkpoint-{step}", tiny_model("gpt2", step),
                     word_tokenizer() if step else None)
    res = runner.invoke(app, ["import-suite", "crfm-gpt2-small", "--seeds", "21", "--steps", "0,400000",
                              "--store", str(tmp_path / "s"), "--cache-dir", str(hub), "--offline", "--seq-len", "4"])
    assert res.exit_code == 0, res.output
    assert "Loading weights" not in res.output and "it/s" not in res.output
    assert "1 runs x 2 steps" in res.output
