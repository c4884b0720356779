"""Hub suites through the real transformers loading code, against a hub cache built on disk.

The cache has the layout huggingface_hub writes (``models--Org--name/refs/<revision>`` holding a
commit hash, ``snapshots/<commit>/config.json`` and ``model.safetensors``), filled with tiny random
models saved by ``save_pretrained``; everything is read offline (``local_files_only=True``).
"""

import hashlib
import re

import pytest
import torch
import transformers
from safetensors.torch import load_file
from tokenizers import Tokenizer, models, pre_tokenizers
from typer.testing import CliRunner

from pathdep import Study
from pathdep.cli import _register, app
from pathdep.errors import PathdepError
from pathdep.measure import measure_study
from pathdep.measure.study import MeasureOptions
from pathdep.sources import ExternalStudy, import_suite
from pathdep.sources.hf import cached_revisions, load_module, repo_folder
from pathdep.sources.probes import DEFAULT_TEXT, masked_position
from pathdep.tasks.sequence import SequenceTask
from tests.test_sources_adapter import VOCAB, tiny_model

_register()
WORDS = sorted(set(re.findall(r"\w+|[^\w\s]", DEFAULT_TEXT)))


def word_tokenizer() -> transformers.PreTrainedTokenizerFast:
    """A word-level tokenizer of the default probe text ([UNK]=0, [MASK]=1, then the words)."""
    vocab = {"[UNK]": 0, "[MASK]": 1, **{w: i + 2 for i, w in enumerate(WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", mask_token="[MASK]")


def put_in_cache(cache, repo: str, revision: str, module, tokenizer=None):
    """Save ``module`` as ``repo`` at ``revision`` in the hub cache layout; returns the snapshot dir."""
    commit = hashlib.sha1(f"{repo}@{revision}".encode()).hexdigest()
    folder = cache / repo_folder(repo)
    snapshot = folder / "snapshots" / commit
    module.save_pretrained(snapshot)
    if tokenizer is not None:
        tokenizer.save_pretrained(snapshot)
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / revision).write_text(commit)
    return snapshot


def _seed(seed: int, step: int) -> int:
    return 1000 * seed + step


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """A cache holding PolyPythia-named tiny GPT-NeoX runs (seeds 1, 2 at steps 0, 512; seed 3 at 0 only),
    CRFM-named tiny GPT-2 runs and MultiBERTs-named tiny BERT checkpoints."""
    cache = tmp_path_factory.mktemp("hub")
    tok = word_tokenizer()
    for seed, steps in ((1, (0, 512)), (2, (0, 512)), (3, (0,))):
        for step in steps:
            put_in_cache(cache, f"EleutherAI/pythia-70m-seed{seed}", f"step{step}",
                         tiny_model("gpt_neox", _seed(seed, step)), tok)
    for seed, name in ((21, "alias"), (49, "battlestar")):
        for step in (0, 400000):
            put_in_cache(cache, f"stanford-crfm/{name}-gpt2-small-x{seed}", f"checkpoint-{step}",
                         tiny_model("gpt2", _seed(seed, step)))
    for seed in (0, 1):
        for step in (0, 20000):
            put_in_cache(cache, f"google/multiberts-seed_{seed}-step_{step // 1000}k", "main",
                         tiny_model("bert", _seed(seed, step)))
    return cache


def test_loaded_model_equals_the_model_built_from_the_saved_weights(hub):
    repo = "EleutherAI/pythia-70m-seed2"
    loaded = load_module(repo, "step512", cache_dir=hub, local_files_only=True)
    assert isinstance(loaded, transformers.GPTNeoXForCausalLM)
    snapshot = hub / repo_folder(repo) / "snapshots" / (hub / repo_folder(repo) / "refs" / "step512").read_text()
    direct = transformers.GPTNeoXForCausalLM(transformers.GPTNeoXConfig.from_pretrained(snapshot)).eval()
    saved = load_file(str(snapshot / "model.safetensors"))
    saved["lm_head.weight"] = saved.pop("embed_out.weight")  # GPT-NeoX files keep the original head name
    direct.load_state_dict(saved, strict=True)
    x = torch.randint(0, VOCAB, (2, 9), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(loaded(x).logits, direct(x).logits)
        assert not torch.equal(loaded(x).logits, tiny_model("gpt_neox", _seed(2, 0))(x).logits)


def test_a_missing_revision_names_the_repo_the_revision_and_what_is_there(hub):
    with pytest.raises(PathdepError, match=r"'EleutherAI/pythia-70m-seed3'.*'step512'.*\['step0'\]"):
        load_module("EleutherAI/pythia-70m-seed3", "step512", cache_dir=hub, local_files_only=True)
    with pytest.raises(PathdepError, match=r"'EleutherAI/pythia-70m-seed4'.*no revisions of it"):
        load_module("EleutherAI/pythia-70m-seed4", "step0", cache_dir=hub, local_files_only=True)
    with pytest.raises(PathdepError, match=r"'pythia-70m-seeds' has no step 7; its steps are \[0, 1, 2, 4"):
        import_suite("pythia-70m-seeds", [1], [7], hub / "store", cache_dir=hub, local_files_only=True)
    assert cached_revisions("EleutherAI/pythia-70m-seed1", hub) == ["step0", "step512"]


@pytest.fixture(scope="module")
def pythia(hub, tmp_path_factory):
    store = tmp_path_factory.mktemp("store")
    import_suite("pythia-70m-seeds", [1, 2], [0, 512], store, cache_dir=hub, local_files_only=True, seq_len=8)
    return store


def test_import_writes_the_suite_as_a_study_of_seeds_and_steps(pythia, hub):
    study = Study.open(pythia, "pythia-70m-seeds")
    assert isinstance(study, ExternalStudy)
    runs = study.runs()
    assert list(runs["run"]) == ["seed1", "seed2"] and list(runs["init_seed"]) == [1, 2]
    assert study.steps("seed2") == [0, 512] and study.final_step("seed2") == 512
    assert study.train_log("seed1").empty
    want = dict(tiny_model("gpt_neox", _seed(2, 512)).named_parameters())
    got = study.load("seed2", 512)
    assert set(got) == set(want) and all(torch.equal(got[k], want[k]) for k in want)
    # the probe text went through the cached tokenizer
    task = study.task
    assert isinstance(task, SequenceTask)
    ids = word_tokenizer()(DEFAULT_TEXT, add_special_tokens=False)["input_ids"]
    assert task.test.x[0].tolist() == ids[:8] and task.test.y[0].tolist() == ids[1:9]
    # the model rebuilt from the stored config computes what the saved module computes
    x = task.test.x[:3]
    pop = study.load_population(["seed1", "seed2"], 512)
    with torch.no_grad():
        logits = study.model().apply(pop, x.unsqueeze(0).expand(2, *x.shape))
        for r, seed in enumerate((1, 2)):
            torch.testing.assert_close(logits[r], tiny_model("gpt_neox", _seed(seed, 512))(x).logits, rtol=1e-5, atol=1e-5)


def test_import_resumes_and_refuses_another_suite_under_the_same_name(pythia, hub):
    study = import_suite("pythia-70m-seeds", [1, 2], [0, 512], pythia, cache_dir=hub, local_files_only=True)
    assert study.steps("seed1") == [0, 512]
    with pytest.raises(PathdepError, match="'suite'"):
        import_suite("crfm-gpt2-small", [21], [0], pythia, study="pythia-70m-seeds", cache_dir=hub,
                     local_files_only=True, tokens=list(range(40)))


def test_measurements_on_an_imported_suite(pythia):
    study = Study.open(pythia, "pythia-70m-seeds")
    tables = measure_study(study, which=["properties", "behaviour", "cka", "importance"],
                           options=MeasureOptions(n_alpha=3))
    task, props = study.task, tables["properties"]
    got = props[(props["run"] == "seed1") & (props["step"] == 512) & (props["name"] == "test_loss")]["value"]
    with torch.no_grad():  # oracle: the saved module's mean next-token loss on the probe windows
        logits = tiny_model("gpt_neox", _seed(1, 512))(task.test.x).logits
    want = torch.nn.functional.cross_entropy(logits.flatten(0, 1), task.test.y.flatten())
    assert float(got.iloc[0]) == pytest.approx(float(want), rel=1e-5)
    beh = tables["behaviour"]
    assert len(beh[(beh["run"] == "seed1") & (beh["step"] == 0) & (beh["probe"] == "test")]) == task.test.y.numel()
    cka = tables["cka"]
    assert ((cka["cka"] > -1e-6) & (cka["cka"] < 1 + 1e-6)).all() and len(cka) > 0
    imp = tables["importance"]
    assert set(imp["layer"]) == {f"gpt_neox.layers.{l}.mlp.act" for l in range(2)}
    assert imp["delta_loss"].abs().max() > 0


def test_masked_lm_suite_scores_the_masked_middle_token(hub, tmp_path):
    tokens = torch.randint(2, VOCAB, (40,), generator=torch.Generator().manual_seed(7))
    study = import_suite("multiberts-steps", [0, 1], [0, 20000], tmp_path, cache_dir=hub, local_files_only=True,
                         tokens=tokens, seq_len=6, mask_token_id=1)
    task = study.task
    mid = masked_position(6)
    assert task.test.x.shape == (35, 6) and (task.test.x[:, mid] == 1).all()
    assert torch.equal(task.test.y, tokens[mid : mid + 35])
    props = task.properties(study.model(), study.load_population(["seed0", "seed1"], 20000))
    with torch.no_grad():
        logits = tiny_model("bert", _seed(1, 20000))(task.test.x).logits[:, mid]
    want = (logits.argmax(-1) == task.test.y).double().mean()
    assert float(props["test_acc"][1]) == pytest.approx(float(want))


def test_cli_imports_a_suite_offline(hub, tmp_path):
    runner = CliRunner()
    text = tmp_path / "probe.txt"
    text.write_text(" ".join(reversed(WORDS)))
    tok = word_tokenizer()
    for seed, name in ((21, "alias"), (49, "battlestar")):  # a tokenizer for these repos' final checkpoint
        put_in_cache(hub, f"stanford-crfm/{name}-gpt2-small-x{seed}", "checkpoint-400000",
                     tiny_model("gpt2", _seed(seed, 400000)), tok)
    res = runner.invoke(app, ["import-suite", "crfm-gpt2-small", "--seeds", "21,49", "--steps", "0,400000",
                              "--store", str(tmp_path / "s"), "--cache-dir", str(hub), "--offline",
                              "--text", str(text), "--seq-len", "4"])
    assert res.exit_code == 0, res.output
    study = Study.open(tmp_path / "s", "crfm-gpt2-small")
    assert list(study.runs()["run"]) == ["seed21", "seed49"] and study.steps("seed49") == [0, 400000]
    assert study.task.test.x[0].tolist() == tok(text.read_text(), add_special_tokens=False)["input_ids"][:4]
    res = runner.invoke(app, ["import-suite", "crfm-gpt2-small", "--seeds", "22", "--steps", "0",
                              "--store", str(tmp_path / "s"), "--cache-dir", str(hub), "--offline"])
    assert res.exit_code != 0 and "no seed 22" in str(res.exception)
