"""Induction heads: data, head scores and phase-change reading against definitions; a tiny run."""

import math

import pytest
import torch

from pathdep import Study
from pathdep.models.transformer import Transformer
from pathdep.tasks.induction import (
    InductionArgs,
    build,
    head_scores,
    induction_targets,
    phase_change,
    phase_changes,
    previous_token_targets,
)
from pathdep.tasks.sequence import property_curves

SMALL = dict(vocab=32, seq_len=24, min_block=4, max_block=10, n_train=2048, n_test=128)


def test_sequences_are_one_block_of_distinct_tokens_repeated():
    task = build(InductionArgs(**SMALL))
    x, y, ex = task.test.x, task.test.y, task.test.extra
    assert x.shape == (128, 24) and torch.equal(x[:, 1:], y[:, :-1])
    for n in range(20):
        L = int(ex["block_len"][n])
        assert 4 <= L <= 10
        seq = torch.cat([x[n], y[n, -1:]]).tolist()
        assert len(set(seq[:L])) == L
        assert all(seq[i] == seq[i - L] for i in range(L, 25))
        assert ex["repeated"][n].tolist() == [t >= L for t in range(24)]
    assert set(task.probes["long_blocks"].extra["block_len"].tolist()) > {11}
    with pytest.raises(ValueError, match="max_block"):
        InductionArgs(seq_len=10, max_block=12)


def test_induction_targets_match_a_naive_loop():
    x = torch.randint(0, 5, (3, 12), generator=torch.Generator().manual_seed(0))
    got = induction_targets(x)
    for n in range(3):
        for t in range(12):
            for k in range(12):
                assert bool(got[n, t, k]) == (1 <= k <= t and bool(x[n, k - 1] == x[n, t]))


def test_head_scores_are_one_for_a_perfect_head_and_the_uniform_share_otherwise():
    task = build(InductionArgs(**SMALL))
    x = task.test.x[:16]
    ind = induction_targets(x).float()  # (N, T, T)
    perfect = ind / ind.sum(-1, keepdim=True).clamp(min=1)  # all mass on the targets
    uniform = torch.ones(24, 24).tril() / torch.arange(1, 25).unsqueeze(1)  # (T, T)
    pattern = torch.stack([perfect, uniform.expand(16, 24, 24)], dim=1).unsqueeze(0)  # (1, N, 2, T, T)
    s = head_scores(pattern, ind.bool())
    assert s[0, 0] == pytest.approx(1.0, abs=1e-6)
    has = ind.sum(-1) > 0  # (N, T)
    naive = sum(float(ind[n, t].sum() / (t + 1)) for n in range(16) for t in range(24) if has[n, t]) / int(has.sum())
    assert s[0, 1] == pytest.approx(naive, rel=1e-5)
    prev = previous_token_targets(16, 24).float()
    assert head_scores(prev.unsqueeze(0).unsqueeze(2), prev.bool())[0, 0] == pytest.approx(1.0)


def test_phase_change_finds_the_midpoint_and_width_of_a_logistic_drop():
    steps = torch.arange(0, 1001, 5)
    centre, scale = torch.tensor([[300.0], [620.0]]), torch.tensor([[10.0], [60.0]])
    curves = 4.0 - 3.9 * torch.sigmoid((steps - centre) / scale)  # (2, S): sharp and smooth drops
    flat = torch.full((1, len(steps)), 2.0)
    found = phase_change(steps.tolist(), torch.cat([curves, flat]))
    assert found["step"][:2].tolist() == pytest.approx([300.0, 620.0], abs=1.0)
    # a logistic rises from 0.2 to 0.8 of its range over 2 * scale * ln 4 steps
    assert found["width"][:2].tolist() == pytest.approx([20 * math.log(4), 120 * math.log(4)], rel=0.05)
    assert math.isnan(found["step"][2])


@pytest.mark.slow
def test_tiny_two_layer_model_forms_an_induction_head_and_one_layer_does_not():
    task = build(InductionArgs(**SMALL))
    gen = torch.Generator().manual_seed(0)
    batches = [torch.randint(0, 2048, (1, 32), generator=gen) for _ in range(250)]
    final, curves = {}, {}
    for n_layers in (1, 2):
        m = Transformer(d_vocab=32, n_ctx=24, d_model=32, n_layers=n_layers, n_heads=2)
        p = {k: v.requires_grad_() for k, v in m.init_population([1]).items()}
        opt = torch.optim.Adam(p.values(), lr=5e-3)
        curve = []
        for step, idx in enumerate(batches):
            if step % 25 == 0:
                curve.append(task.properties(m, {k: v.detach() for k, v in p.items()})["test_repeated_loss"])
            loss = task.train_loss(m, p, *task.batch(idx))
            opt.zero_grad()
            loss.sum().backward()
            opt.step()
        final[n_layers] = task.properties(m, {k: v.detach() for k, v in p.items()})
        curves[n_layers] = torch.stack(curve, 1)  # (1, S)
    two, one = final[2], final[1]
    assert two["induction_score"] > 0.8 and two["test_repeated_loss"] < 0.3
    assert two["prev_token_score"] > 0.25  # the previous-token half of the circuit
    assert one["induction_score"] < 0.4 and one["test_repeated_loss"] > 1.5
    assert (two["test_first_loss"] > 3.0).all()  # the first block stays unpredictable
    step = phase_change(list(range(0, 250, 25)), curves[2])["step"]
    assert 100 < step.item() < 225


def test_study_curves_and_phase_changes_per_run(tmp_path):
    spec = {
        "name": "ind_tiny",
        "process": {
            "task": "induction", "task_args": SMALL | {"n_test": 32},
            "model": "transformer", "model_args": {"n_layers": 1, "d_model": 16, "n_heads": 2},
            "steps": 40, "batch_size": 16, "optimizer": {"name": "adam", "lr": 1e-2},
            "checkpoints": {"every": 10},
        },
        "seeds": {"init": 2, "data": [0]},
    }
    study = Study.from_dict(spec, store=tmp_path)
    study.run()
    curves = property_curves(study)
    assert len(curves) == 2 * 5 and set(curves["step"]) == {0, 10, 20, 30, 40}
    assert {"induction.0.1", "test_repeated_loss", "long_blocks_loss"} <= set(curves.columns)
    first = curves[curves.step == 0]["test_repeated_loss"]
    last = curves[curves.step == 40]["test_repeated_loss"]
    assert (last.to_numpy() < first.to_numpy()).all()  # it learns something about the repeats
    pc = phase_changes(curves)
    assert list(pc["run"]) == sorted(study.runs()["run"]) and pc["step"].between(0, 40).all()
