"""Hugging Face hub suites into a pathdep store.

A checkpoint is loaded with the transformers code a user would run,
``AutoModelForCausalLM.from_pretrained(repo, revision=..., cache_dir=..., local_files_only=...)``
(or ``AutoModelForMaskedLM``), in float32, and written as one pathdep checkpoint: its
``named_parameters`` (tied parameters once) under their transformers names, with metadata
recording the repo, the revision and the model's config. An imported suite is a study whose runs
are the seeds (``seed1``, ...) and whose checkpoints are the revisions' steps.

Offline use: with ``local_files_only=True`` (or ``HF_HUB_OFFLINE=1``) only the local hub cache is
read (``cache_dir``, default ``$HF_HUB_CACHE``). A revision that is not there is reported with the
revisions the cache does hold.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from pathdep import store as st
from pathdep.errors import IncompatibleError, PathdepError
from pathdep.sources.external import ExternalStudy, claim_study, run_record, save_tokens, write_checkpoint, write_record
from pathdep.sources.probes import DEFAULT_TEXT, readout
from pathdep.sources.suites import CAUSAL, MASKED, Suite, check_selection, get_suite

OBJECTIVE = {CAUSAL: "causal", MASKED: "masked"}
Progress = Callable[[int, int], None]


def hub_cache(cache_dir: str | Path | None = None) -> Path:
    """The hub cache directory used: ``cache_dir`` or huggingface_hub's default."""
    if cache_dir is not None:
        return Path(cache_dir)
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def repo_folder(repo: str) -> str:
    """The cache folder of a model repo: ``models--Org--name``."""
    return "models--" + repo.replace("/", "--")


def cached_revisions(repo: str, cache_dir: str | Path | None = None) -> list[str]:
    """The revisions (branches, tags) the local cache holds for ``repo``."""
    refs = hub_cache(cache_dir) / repo_folder(repo) / "refs"
    if not refs.is_dir():
        return []
    return sorted(str(p.relative_to(refs)) for p in refs.rglob("*") if p.is_file())


def _offline(local_files_only: bool | None) -> bool:
    if local_files_only is not None:
        return local_files_only
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")


def load_module(repo: str, revision: str, auto_class: str = CAUSAL, *, cache_dir: str | Path | None = None,
                local_files_only: bool | None = None) -> nn.Module:
    """The transformers model of ``repo`` at ``revision`` in float32, eval mode.

    Raises :class:`PathdepError` naming the repo, the revision and what is available when it
    cannot be loaded.
    """
    import transformers

    offline = _offline(local_files_only)
    if offline:
        have = cached_revisions(repo, cache_dir)
        if revision not in have:
            raise PathdepError(
                f"Repo {repo!r} has no revision {revision!r} in the hub cache {str(hub_cache(cache_dir))!r} "
                f"(offline); the cache holds {have or 'no revisions of it'}."
            )
    try:
        module = getattr(transformers, auto_class).from_pretrained(
            repo, revision=revision, cache_dir=None if cache_dir is None else str(cache_dir),
            local_files_only=offline, dtype=torch.float32,
        )
    except OSError as e:  # transformers reports missing repos and revisions as OSError
        have = cached_revisions(repo, cache_dir)
        raise PathdepError(f"Repo {repo!r} at revision {revision!r} cannot be loaded ({str(e).splitlines()[0]}); "
                           f"the local cache holds {have or 'no revisions of it'}.") from None
    return module.eval()


def load_tokenizer(repo: str, revision: str, *, cache_dir: str | Path | None = None,
                   local_files_only: bool | None = None) -> Any | None:
    """The repo's tokenizer at ``revision``, or None when there is none to load."""
    import transformers

    try:
        return transformers.AutoTokenizer.from_pretrained(
            repo, revision=revision, cache_dir=None if cache_dir is None else str(cache_dir),
            local_files_only=_offline(local_files_only))
    except (OSError, ValueError, TypeError):
        return None


def _probe_tokens(suite: Suite, seed: int, step: int, text: str | None, tokens: Sequence[int] | Tensor | None,
                  cache_dir, local_files_only) -> tuple[Tensor, int | None]:
    """Probe token ids (n,) and the mask token id (from the tokenizer when there is one)."""
    repo, rev = suite.repo_of(seed, step), suite.revision_of(step)
    tok = load_tokenizer(repo, rev, cache_dir=cache_dir, local_files_only=local_files_only)
    mask_id = getattr(tok, "mask_token_id", None) if tok is not None else None
    if tokens is not None:
        return torch.as_tensor(tokens, dtype=torch.long).flatten(), mask_id
    if tok is None:
        raise PathdepError(f"Repo {repo!r} at revision {rev!r} has no tokenizer in the cache to encode the probe "
                           "text; pass the probe as token ids (tokens=...).")
    return torch.tensor(tok(text or DEFAULT_TEXT, add_special_tokens=False)["input_ids"], dtype=torch.long), mask_id


def import_suite(
    suite: str | Suite,
    seeds: Sequence[int],
    steps: Sequence[int],
    store: str | Path,
    *,
    study: str | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool | None = None,
    text: str | None = None,
    tokens: Sequence[int] | Tensor | None = None,
    seq_len: int = 32,
    mask_token_id: int | None = None,
    progress: Progress | None = None,
) -> ExternalStudy:
    """Import checkpoints (seeds x steps) of a hub suite into ``store`` as a study; returns it.

    Runs are named ``seed{seed}``; a checkpoint already in the store is not loaded again, so an
    interrupted import resumes. The probe task is ``text`` (default: a short built-in text)
    encoded with the suite's tokenizer, or ``tokens`` given directly; ``seq_len`` is the window
    length. Example (needs the checkpoints in the hub cache or a network)::

        study = import_suite("pythia-70m-seeds", seeds=[1, 2, 3], steps=[0, 1000, 143000], store="runs/")
    """
    suite = get_suite(suite) if isinstance(suite, str) else suite
    seeds, steps = [int(s) for s in seeds], sorted(int(s) for s in steps)
    if not seeds or not steps:
        raise PathdepError("import_suite needs at least one seed and one step.")
    check_selection(suite, seeds, steps)
    store, name = Path(store), study or suite.name
    root = st.study_dir(store, name)
    todo = [(seed, step) for seed in seeds for step in steps
            if step not in st.RunFiles(st.run_dir(store, name, suite.run_name(seed))).steps()]
    first = load_module(suite.repo_of(seeds[0], steps[-1]), suite.revision_of(steps[-1]), suite.auto_class,
                        cache_dir=cache_dir, local_files_only=local_files_only)
    with st.locked(root):
        meta = _study_meta(suite, name, first, seq_len, mask_token_id)
        if not (root / "probes.safetensors").is_file():
            probe, mask_id = _probe_tokens(suite, seeds[0], steps[-1], text, tokens, cache_dir, local_files_only)
            meta["task"]["mask_token_id"] = mask_token_id if mask_token_id is not None else mask_id
            claim_study(store, name, meta, ("source", "suite"))
            save_tokens(root, probe)
        else:
            claim_study(store, name, meta, ("source", "suite"))
        shapes = {k: v.shape for k, v in first.named_parameters()}
        for i, (seed, step) in enumerate(todo):
            _import_one(suite, seed, step, store, name, shapes, cache_dir, local_files_only)
            if progress is not None:
                progress(i + 1, len(todo))
    return ExternalStudy.open(store, name)


def _study_meta(suite: Suite, name: str, module: nn.Module, seq_len: int, mask_token_id: int | None) -> dict[str, Any]:
    config = module.config
    task = {"kind": "tokens", "name": "probe_text", "objective": OBJECTIVE[suite.auto_class], "seq_len": seq_len,
            "vocab": int(module.get_output_embeddings().weight.shape[0]), "mask_token_id": mask_token_id}
    model = {"kind": "hf", "auto_class": suite.auto_class, "config": config.to_dict(), "readout": readout(task)}
    return {"name": name, "source": "hf", "suite": suite.name, "description": suite.doc, "model": model, "task": task}


def _import_one(suite: Suite, seed: int, step: int, store: Path, name: str, shapes: dict[str, torch.Size],
                cache_dir, local_files_only) -> None:
    repo, rev = suite.repo_of(seed, step), suite.revision_of(step)
    module = load_module(repo, rev, suite.auto_class, cache_dir=cache_dir, local_files_only=local_files_only)
    params = {k: v.detach() for k, v in module.named_parameters()}
    for k, v in params.items():
        if k not in shapes or shapes[k] != v.shape:
            raise IncompatibleError(f"Repo {repo!r} at revision {rev!r} does not match the study's architecture: "
                                    f"parameter {k!r} has shape {tuple(v.shape)}, expected {tuple(shapes.get(k, ()))}.")
    run = suite.run_name(seed)
    init, data = (seed if "init" in suite.varies else 0), (seed if "data" in suite.varies else 0)
    write_record(store, name, run_record(run, suite.name, init, data, source="hf", repo=suite.repo_of(seed, suite.steps[-1])))
    meta = {"source": {"kind": "hf", "suite": suite.name, "repo": repo, "revision": rev},
            "hf_config": module.config.to_dict()}
    write_checkpoint(store, name, run, step, params, meta)
