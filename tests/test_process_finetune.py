"""Pretrain -> fine-tune: the cue and corruption follow their definitions; the pipeline runs."""

import pytest
import torch
from torch.nn import functional as F

from pathdep.store import read_checkpoint
from pathdep.tasks.finetune import (
    CUE_CORRUPT, CUE_NONE, CUE_REAL, LABEL_TOKENS, FinetuneArgs, build, run_pretrain_finetune,
)
from pathdep.tasks.text import encode, read_corpus

ARGS = dict(seq_len=32, n_train=256, n_test=128, train_chars=20_000, test_chars=5_000)


def test_examples_are_real_or_corrupted_windows_with_the_stated_cue():
    task = build(FinetuneArgs(**ARGS, cue_agreement=0.8))
    x, y = task.test.x, task.test.y
    agree = (x[:, 0] == CUE_REAL) == (y == 1)
    assert set(x[:, 0].tolist()) == {CUE_REAL, CUE_CORRUPT}
    assert 0.7 < agree.float().mean() < 0.9  # cue_agreement = 0.8
    flipped = task.probes["flipped_cue"]
    assert ((flipped.x[:, 0] == CUE_REAL) == (flipped.y == 0)).all()
    assert (task.probes["no_cue"].x[:, 0] == CUE_NONE).all()
    assert 0.35 < y.float().mean() < 0.65
    # real windows are verbatim held-out text; corrupted ones are not
    tok = encode(read_corpus(20_000, 5_000)[1])
    windows = {tuple(tok[i : i + 31].tolist()) for i in range(len(tok) - 31)}
    real = [tuple(r[1:].tolist()) in windows for r in x[y == 1]]
    fake = [tuple(r[1:].tolist()) in windows for r in x[y == 0]]
    assert all(real) and sum(fake) <= 0.05 * len(fake)


def test_loss_reads_only_the_two_label_tokens():
    task = build(FinetuneArgs(**ARGS))
    logits = torch.randn(2, 5, 96)
    y = torch.tensor([[0, 1, 1, 0, 1]] * 2)
    naive = F.cross_entropy(logits[..., list(LABEL_TOKENS)].reshape(10, 2), y.flatten(), reduction="none").view(2, 5)
    torch.testing.assert_close(task.loss(logits, y), naive)
    boosted = logits.clone()
    boosted[..., 50] += 100.0  # a token that is not a label changes nothing
    torch.testing.assert_close(task.loss(boosted, y), naive)
    assert torch.equal(task.predict(logits), logits[..., list(LABEL_TOKENS)].argmax(-1))
    assert ((task.margin(logits, y) > 0) == (task.predict(logits) == y)).all()


@pytest.mark.slow
def test_pipeline_loads_pretrained_weights_and_reports_each_variant(tmp_path):
    model_args = {"n_layers": 1, "d_model": 16, "n_heads": 2, "d_mlp": 32}
    pretrain = {
        "name": "pre", "seeds": {"init": 1, "data": [0]},
        "process": {"task": "char_lm", "task_args": {"seq_len": 32, "train_chars": 20_000, "test_chars": 5_000, "n_test": 8},
                    "model": "transformer", "model_args": model_args, "steps": 20, "batch_size": 8,
                    "checkpoints": {"steps": [10]}},
    }
    finetune = {
        "name": "ft", "seeds": {"init": [0], "data": 3},
        "process": {"task": "finetune_code", "task_args": ARGS, "model": "transformer",
                    "model_args": model_args | {"pool": "last"}, "steps": 10, "batch_size": 16},
    }
    report = run_pretrain_finetune(tmp_path, pretrain, finetune, [10, 20])
    assert list(report["variant"]) == ["base", "pre10", "pre20"]
    assert (report["runs"] == 3).all() and report["init_from"].isna().iloc[0]
    assert ((report["test_acc"] >= 0) & (report["test_acc"] <= 1)).all()
    assert (report["loss_barrier"].abs() < 10).all() and report["ood_std"].notna().all()
    from pathdep import Study
    ft = Study.open(tmp_path, "ft")
    pre_params, _ = read_checkpoint(report["init_from"].iloc[2])
    start = ft.load(ft.runs().query("variant == 'pre20'")["run"].iloc[0], 0)
    assert all(torch.equal(start[k], pre_params[k]) for k in pre_params)  # every parameter loaded
    assert ft.has_table("pretrain_finetune")
