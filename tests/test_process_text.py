"""Character-level LM on stdlib source: corpus, behaviour masks, a tiny run, per-token analyses."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import pearsonr, spearmanr

from pathdep import Study
from pathdep.analyses.tokens import curve_shapes, logprob_scatter, token_loss_pca, token_losses
from pathdep.models.transformer import Transformer
from pathdep.tasks.text import VOCAB, TextArgs, behaviour_masks, build, decode, encode

SMALL = dict(seq_len=48, train_chars=20_000, test_chars=5_000, n_test=32)


def test_encoding_uses_the_fixed_vocabulary():
    assert len(VOCAB) == 96 and VOCAB[0] == "\n"
    assert decode(encode("x\t= 'é'\n")) == "x    = '?'\n"
    assert encode("~ ").tolist() == [VOCAB.index("~"), VOCAB.index(" ")]


def test_corpus_is_deterministic_and_held_out_text_comes_from_other_files():
    a, b = build(TextArgs(**SMALL)), build(TextArgs(**SMALL))
    assert a.corpus_sha256 == b.corpus_sha256 and torch.equal(a.train.x, b.train.x)
    assert len(a.corpus_files) >= 2 and list(a.corpus_files) == sorted(a.corpus_files)
    assert a.train.x.shape[1] == 48 and torch.equal(a.train.x[:, 1:], a.train.y[:, :-1])
    train_text = decode(torch.cat([a.train.x[:, :24].flatten()]))
    assert decode(a.test.x[0]) not in train_text


def test_behaviour_masks_follow_their_definitions():
    text = "def f(a, [b]):\n    return X.y(c)\n"
    seq = encode(text)
    x, y = seq[:-1].unsqueeze(0), seq[1:].unsqueeze(0)
    m = behaviour_masks(x, y)
    chosen = lambda name: "".join(text[t + 1] for t in m[name][0].nonzero().squeeze(1).tolist())  # noqa: E731
    assert chosen("closing") == "]))"  # ']' of [b], ')' of f(...), ')' of y(c)
    assert chosen("indent") == "    "
    assert chosen("after_newline") == " "  # the last newline is the final token: no target
    assert chosen("capital") == "X"
    unmatched = encode("a)b(c")
    assert not behaviour_masks(unmatched[:-1].unsqueeze(0), unmatched[1:].unsqueeze(0))["closing"].any()


def test_copy_probe_repeats_a_random_name_and_masks_its_second_copy():
    task = build(TextArgs(**SMALL))
    probe = task.probes["copy"]
    for n in range(5):
        full = decode(torch.cat([probe.x[n], probe.y[n, -1:]]))
        name = full.rsplit("print(", 1)[1][:-1]
        assert len(name) == 8 and name.isalpha() and full.endswith(f"\n{name} = 1\nprint({name})")
        assert decode(probe.y[n][probe.extra["copied"][n]]) == name[1:]


@pytest.mark.slow
def test_tiny_char_lm_learns_but_does_not_copy():
    task = build(TextArgs(**SMALL))
    assert task.test.extra["indent"].sum() > 20 and task.test.extra["closing"].sum() > 5
    m = Transformer(d_vocab=96, n_ctx=48, d_model=32, n_layers=1, n_heads=2, d_mlp=64)
    p = {k: v.requires_grad_() for k, v in m.init_population([0, 1]).items()}
    opt = torch.optim.Adam(p.values(), lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    before = task.properties(m, {k: v.detach() for k, v in p.items()})
    for _ in range(120):
        loss = task.train_loss(m, p, *task.batch(torch.randint(0, len(task.train), (2, 32), generator=gen)))
        opt.zero_grad()
        loss.sum().backward()
        opt.step()
    after = task.properties(m, {k: v.detach() for k, v in p.items()})
    assert torch.allclose(before["test_loss"], torch.tensor(math.log(96)), atol=0.1)  # uniform at init
    assert (after["test_loss"] < math.log(96) - 0.6).all()
    assert (after["copy_copied_acc"] < 0.3).all()  # one small layer cannot copy a random name


def test_logprob_scatter_matches_scipy():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(500, generator=g) * 4
    b = a + torch.randn(500, generator=g)
    s = logprob_scatter(a, b)
    assert s["pearson"] == pytest.approx(pearsonr(a.numpy(), b.numpy())[0], abs=1e-6)
    assert s["spearman"] == pytest.approx(spearmanr(a.numpy(), b.numpy())[0], abs=1e-6)
    naive = np.mean([(x < 0.5 and y > 2.5) or (y < 0.5 and x > 2.5) for x, y in zip(a.tolist(), b.tolist())])
    assert s["disagree"] == pytest.approx(naive)


def test_token_pca_matches_numpy_and_separates_two_groups_of_runs():
    g = torch.Generator().manual_seed(1)
    base = torch.rand(6, 40, generator=g)  # (S, N)
    group = torch.zeros(40)
    group[:20] = 1.0
    losses = torch.stack([base + (1 if r < 2 else -1) * group + 0.01 * torch.randn(6, 40, generator=g) for r in range(4)])
    pca = token_loss_pca(losses, k=2)
    x = losses.reshape(24, 40).double().numpy()
    x = x - x.mean(0)
    sv = np.linalg.svd(x, compute_uv=False)
    assert pca.explained.numpy() == pytest.approx((sv**2 / (sv**2).sum())[:2], rel=1e-9)
    pc1 = pca.scores[..., 0]  # (R, S): runs 0, 1 on one side, runs 2, 3 on the other
    assert (pc1[:2].sign() == -pc1[2:].sign()).all() and pca.explained[0] > 0.5


def test_curve_shapes_tell_sharp_from_smooth_and_flat():
    steps = list(range(0, 1001, 10))
    s = torch.tensor(steps, dtype=torch.float64)
    sharp = 3 - 2.5 * torch.sigmoid((s - 500) / 15)
    smooth = 3 - 2.5 * (1 - torch.exp(-s / 400))
    flat = 3 - 0.1 * s / 1000
    shapes = curve_shapes(steps, torch.stack([sharp, smooth, flat], 1))
    assert shapes["kind"].tolist() == [2, 1, 0]
    assert shapes["step"][0].item() == pytest.approx(500, abs=2)


def test_token_losses_from_a_study_are_cached_and_consistent(tmp_path):
    spec = {
        "name": "lm_tiny",
        "process": {
            "task": "char_lm", "task_args": SMALL | {"n_test": 8},
            "model": "transformer", "model_args": {"n_layers": 1, "d_model": 16, "n_heads": 2},
            "steps": 20, "batch_size": 8, "checkpoints": {"every": 10},
        },
        "seeds": {"init": 2, "data": [0]},
    }
    study = Study.from_dict(spec, store=tmp_path)
    study.run()
    runs, steps, losses = token_losses(study, max_tokens=96)
    assert steps == [0, 10, 20] and losses.shape == (2, 3, 96)
    direct = study.task.evaluate(study.model(), study.load_population(runs, 20), study.task.test)["loss"][:, :96]
    torch.testing.assert_close(losses[:, 2], direct)
    assert study.has_table("token_losses_test")
    again = token_losses(study, max_tokens=96)
    assert again[0] == runs and torch.equal(again[2].float(), losses.float())
