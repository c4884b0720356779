"""Fine-tuning after pretraining: real vs corrupted source code, with a spurious cue.

Each example is a window of ``seq_len`` characters of standard-library source (the same corpus
and vocabulary as ``char_lm``: training windows from its training files, test and probes from its
held-out files). Half the windows are corrupted: ``n_corrupt`` random characters are replaced by
random printable ones. Label 1 = real, 0 = corrupted. The model reads its answer at the last
position as one of two label tokens (``'1'``, ``'0'``) of the language model's own vocabulary, so a
pretrained ``char_lm`` checkpoint (``process.init_from``) gives every parameter, head included.

The spurious cue: in ``train`` and ``test`` the first character is ``$`` for real and `````` for
corrupted windows, on a share ``cue_agreement`` of the examples (the others carry the wrong cue,
so fitting them all takes the real feature). Probes: ``flipped_cue`` (the cue says the opposite of the label) and ``no_cue``
(first character ``#`` everywhere). A run's solution type is ``flipped_cue_acc``: near 1 if it
detects corruption, near 0 if it reads the cue.

:func:`finetune_report` measures, per variant of a fine-tune study (one per pretraining
checkpoint, plus a from-scratch control): mean ID and OOD accuracy, the spread of OOD accuracy
across fine-tunes, the mean pairwise loss and error barriers, and the uniform-soup gain.
:func:`run_pretrain_finetune` runs the whole pipeline (pretrain, then fine-tune from several
pretraining lengths) through the public Study API.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor
from torch.nn import functional as F

from pathdep.tasks.base import Split, Task
from pathdep.tasks.text import INDEX, VOCAB, encode, read_corpus

CUE_REAL, CUE_CORRUPT, CUE_NONE = INDEX["$"], INDEX["`"], INDEX["#"]
LABEL_TOKENS = (INDEX["0"], INDEX["1"])  # class 0 = corrupted, class 1 = real


class FinetuneArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    seq_len: int = Field(64, ge=8, description="characters per example (at most the pretrained n_ctx)")
    n_corrupt: int = Field(3, ge=1, description="characters replaced in a corrupted window")
    cue_agreement: float = Field(0.9, ge=0.5, le=1.0, description="share of train/test examples whose cue matches the label")
    n_train: int = Field(2048, ge=2)
    n_test: int = Field(512, ge=2)
    train_chars: int = Field(300_000, ge=1000, description="as in char_lm: which files are training text")
    test_chars: int = Field(40_000, ge=1000)
    seed: int = Field(0, description="seed of the data itself (not of any run)")


def _examples(text: Tensor, n: int, args: FinetuneArgs, cue: str, gen: torch.Generator) -> Split:
    """n windows, half corrupted; ``cue`` is 'label', 'flipped' or 'none'."""
    t = args.seq_len
    starts = torch.randint(0, len(text) - t, (n,), generator=gen)
    x = text[starts.unsqueeze(1) + torch.arange(t)]  # (n, T)
    y = torch.randint(0, 2, (n,), generator=gen)  # 1 = real
    pos = torch.rand(n, t - 1, generator=gen).argsort(1)[:, : args.n_corrupt] + 1  # (n, k) distinct, not 0
    junk = torch.randint(1, len(VOCAB), (n, args.n_corrupt), generator=gen)  # printable, not newline
    corrupted = x.clone().scatter_(1, pos, junk)
    x = torch.where(y.unsqueeze(1).bool(), x, corrupted)
    agree = (torch.rand(n, generator=gen) < args.cue_agreement).long()  # (n,) 1 where the cue tells the truth
    says_real = {"label": torch.where(agree.bool(), y, 1 - y), "flipped": 1 - y, "none": None}[cue]
    x[:, 0] = CUE_NONE if says_real is None else torch.where(says_real.bool(), CUE_REAL, CUE_CORRUPT)
    return Split(x, y)


@dataclass(frozen=True, eq=False)
class LabelTokenTask(Task):
    """Classification read from two label tokens of a language model's output (R, B, V)."""

    label_tokens: tuple[int, ...] = LABEL_TOKENS

    def _class_logits(self, logits: Tensor) -> Tensor:
        return logits[..., list(self.label_tokens)]  # (R, B, C)

    def loss(self, logits: Tensor, y: Tensor) -> Tensor:
        lc = self._class_logits(logits)
        return F.cross_entropy(lc.flatten(0, -2), y.flatten().long(), reduction="none").view(y.shape)

    def predict(self, logits: Tensor) -> Tensor:
        return self._class_logits(logits).argmax(-1)

    def margin(self, logits: Tensor, y: Tensor) -> Tensor:
        lc = self._class_logits(logits)
        true = lc.gather(-1, y.long().unsqueeze(-1)).squeeze(-1)
        other = lc.scatter(-1, y.long().unsqueeze(-1), float("-inf")).amax(-1)
        return true - other


def build(args: FinetuneArgs) -> LabelTokenTask:
    train_text, test_text, _ = read_corpus(args.train_chars, args.test_chars)
    train_tok, test_tok = encode(train_text), encode(test_text)
    gen = torch.Generator().manual_seed(args.seed)
    return LabelTokenTask(
        name="finetune_code",
        train=_examples(train_tok, args.n_train, args, "label", gen),
        test=_examples(test_tok, args.n_test, args, "label", gen),
        probes={
            "flipped_cue": _examples(test_tok, args.n_test, args, "flipped", gen),
            "no_cue": _examples(test_tok, args.n_test, args, "none", gen),
        },
        n_outputs=len(VOCAB),
        loss_kind="ce",
        solution_property="flipped_cue_acc",
        doc=__doc__.splitlines()[0],
    )


# --- the pretrain -> fine-tune study -----------------------------------------------------------
def finetune_report(study, n_alpha: int = 11) -> pd.DataFrame:
    """One row per variant of a fine-tune study: accuracy, OOD spread, barriers, soup gain.

    Columns: variant, init_from, runs, test_acc, ood_acc (``flipped_cue``), ood_std, no_cue_acc,
    loss_barrier and error_barrier (means over all pairs of its runs, on ``test``),
    soup_acc (uniform soup on ``test``) and soup_gain (soup minus the mean member).
    """
    from pathdep.measure.connectivity import all_pairs, pair_barriers
    from pathdep.measure.population import take
    from pathdep.measure.soups import uniform_soup

    runs = study.runs()
    rows = []
    for variant, group in runs.groupby("variant", sort=False):
        names = list(group["run"])
        task, model = study.task_of(names[0]), study.model(names[0])
        step = study.final_step(names[0])
        params = study.load_population(names, step)
        with torch.no_grad():
            props = task.properties(model, params)
            pairs = all_pairs(len(names))
            bar = pair_barriers(task, model, take(params, pairs[:, 0]), take(params, pairs[:, 1]), task.test, n_alpha)
            soup = task.evaluate(model, uniform_soup(params), task.test)["correct"].mean()
        init_from = study._plan_of(names[0]).process.init_from  # noqa: SLF001 - the run's own record
        rows.append({
            "variant": variant, "init_from": init_from, "runs": len(names),
            "test_acc": float(props["test_acc"].mean()), "ood_acc": float(props["flipped_cue_acc"].mean()),
            "ood_std": float(props["flipped_cue_acc"].std()), "no_cue_acc": float(props["no_cue_acc"].mean()),
            "loss_barrier": float(bar["loss_barrier"].mean()), "error_barrier": float(bar["error_barrier"].mean()),
            "soup_acc": float(soup), "soup_gain": float(soup - props["test_acc"].mean()),
        })
    return pd.DataFrame(rows)


def checkpoint_path(study, run: str, step: int) -> Path:
    """The safetensors file of one run's checkpoint (as ``process.init_from`` takes it)."""
    from pathdep.store import checkpoint_name, run_dir

    return run_dir(study.store, study.name, run) / checkpoint_name(step)


def run_pretrain_finetune(
    store: str | Path,
    pretrain: dict[str, Any],
    finetune: dict[str, Any],
    pretrain_steps: list[int],
    source_run: str | None = None,
    progress: Callable[[int, int], None] | None = None,
):
    """Pretrain, then fine-tune one population per pretraining length; returns the report table.

    ``pretrain`` and ``finetune`` are study specs (dicts as in a TOML file); ``pretrain_steps``
    must be checkpoint steps of the pretraining run ``source_run`` (default: its first run). The
    fine-tune study gets one variant ``pre{k}`` per step k (``init_from`` that checkpoint) beside
    its base variant, which trains from scratch: the control. The report is also written as the
    fine-tune study's table ``pretrain_finetune``.
    """
    from pathdep.study import Study

    pre = Study.from_dict(pretrain, store=store)
    pre.run(progress)
    src = source_run or str(pre.runs()["run"].iloc[0])
    variants = [{"name": f"pre{k}", "set": {"init_from": str(checkpoint_path(pre, src, k))}} for k in pretrain_steps]
    ft = Study.from_dict(finetune | {"variants": list(finetune.get("variants", [])) + variants}, store=store)
    ft.run(progress)
    report = finetune_report(ft)
    ft.write_table("pretrain_finetune", report)
    return report
