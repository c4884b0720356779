"""Pairwise behaviour statistics against scipy / scikit-learn, pair by pair."""

import numpy as np
import pytest
import torch
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import cohen_kappa_score

from pathdep.measure.behaviour import agreement, error_kappa, evaluate_behaviour, pair_matrices, pair_rows
from pathdep.models.mlp import MLP
from pathdep.tasks.base import Split, Task


@pytest.fixture
def ev():
    """Behaviour of 5 members on 200 examples, with ties in the losses and 4 classes."""
    g = torch.Generator().manual_seed(0)
    loss = torch.rand(5, 200, generator=g).round(decimals=1)  # many ties
    pred = torch.randint(0, 4, (5, 200), generator=g)
    pred[1] = torch.where(torch.rand(200, generator=g) < 0.7, pred[0], pred[1])  # 1 agrees with 0 often
    y = torch.randint(0, 4, (200,), generator=g)
    correct = (pred == y).float()
    return {"loss": loss, "pred": pred, "correct": correct, "margin": torch.zeros(5, 200)}


def test_all_pairs_equal_per_pair_references(ev):
    m = pair_matrices(ev)
    for i in range(5):
        for j in range(5):
            li, lj = ev["loss"][i].double().numpy(), ev["loss"][j].double().numpy()
            assert m["loss_pearson"][i, j].item() == pytest.approx(pearsonr(li, lj)[0], abs=1e-10)
            assert m["loss_spearman"][i, j].item() == pytest.approx(spearmanr(li, lj)[0], abs=1e-10)
            assert m["agreement"][i, j].item() == pytest.approx(float((ev["pred"][i] == ev["pred"][j]).float().mean()))
            wrong_i, wrong_j = 1 - ev["correct"][i].numpy(), 1 - ev["correct"][j].numpy()
            assert m["error_kappa"][i, j].item() == pytest.approx(cohen_kappa_score(wrong_i, wrong_j), abs=1e-10)


def test_rows_are_the_diagonal_of_the_matrices(ev):
    other = {k: v.roll(2, 0) for k, v in ev.items()}
    full = pair_matrices(ev, other)
    rows = pair_rows(ev, other)
    for k in rows:
        assert torch.allclose(rows[k], full[k].diagonal(), atol=1e-12), k


def test_kappa_is_zero_for_independent_errors_and_one_for_the_same_errors():
    g = torch.Generator().manual_seed(1)
    correct = (torch.rand(2, 200_000, generator=g) > 0.3).float()
    k = error_kappa(correct)
    assert abs(k[0, 1].item()) < 0.01
    assert k[0, 0].item() == pytest.approx(1.0)
    assert torch.isnan(error_kappa(torch.ones(2, 10)))[0, 1]  # no errors at all: undefined


def test_agreement_of_identical_and_of_complementary_predictions():
    pred = torch.tensor([[0, 1, 1, 0], [1, 0, 0, 1]])
    assert agreement(pred).tolist() == [[1.0, 0.0], [0.0, 1.0]]


def test_evaluate_behaviour_is_task_evaluate_per_member():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(30, 4, generator=g)
    task = Task("toy", Split(x, (x[:, 0] > 0).long()), Split(x, (x[:, 1] > 0).long()), {}, 3, "ce")
    model = MLP(d_in=4, hidden=(6,), d_out=3)
    params = model.init_population([0, 1, 2])
    got = evaluate_behaviour(task, model, params, task.test, chunk=2)
    for r in range(3):
        one = task.evaluate(model, {k: v[r : r + 1] for k, v in params.items()}, task.test)
        for key in got:
            assert torch.allclose(got[key][r], one[key][0]), key
    margins = got["margin"]
    assert ((margins > 0) == got["correct"].bool()).all()
    assert np.isfinite(margins.numpy()).all()
