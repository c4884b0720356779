"""Interpolation curves and barriers: definition, symmetry, convexity, batched vs per-pair."""

import pytest
import torch

from pathdep.errors import PathdepError
from pathdep.measure.connectivity import BARRIER_DEFINITION, all_pairs, alpha_grid, barrier, curves, pair_barriers
from pathdep.models.mlp import MLP
from pathdep.tasks.base import Split, Task


def train(model, task, seeds, steps=150, lr=0.02):
    """A small population trained full-batch with Adam on the stacked parameters."""
    params = {k: v.clone().requires_grad_(True) for k, v in model.init_population(seeds).items()}
    opt = torch.optim.Adam(params.values(), lr=lr)
    r = len(seeds)
    x = task.train.x.unsqueeze(0).expand(r, *task.train.x.shape)
    y = task.train.y.unsqueeze(0).expand(r, -1)
    for _ in range(steps):
        opt.zero_grad()
        task.train_loss(model, params, x, y).sum().backward()
        opt.step()
    return {k: v.detach() for k, v in params.items()}


def toy_task(n_outputs=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(300, 6, generator=g)
    logit = x[:, 0] - 0.5 * x[:, 1] + 0.3 * torch.randn(300, generator=g)
    y = (logit > 0).float()
    split = lambda a, b: Split(x[a:b], y[a:b])  # noqa: E731
    return Task("toy", split(0, 200), split(200, 300), {"probe": split(150, 250)}, 1, "bce")


@pytest.fixture(scope="module")
def mlp_runs():
    task = toy_task()
    model = MLP(d_in=6, hidden=(12, 12), d_out=1)
    return task, model, train(model, task, [0, 1, 2, 3])


def test_barrier_of_a_model_with_itself_is_zero(mlp_runs):
    task, model, params = mlp_runs
    res = pair_barriers(task, model, params, params, task.test, 11)
    assert torch.all(res["loss_barrier"].abs() < 1e-6)
    assert torch.all(res["error_barrier"] == 0)
    assert torch.allclose(res["loss"], res["loss"][:, :1].expand_as(res["loss"]), atol=1e-6)


def test_barrier_is_symmetric(mlp_runs):
    task, model, params = mlp_runs
    pairs = all_pairs(4)
    a = {k: v[pairs[:, 0]] for k, v in params.items()}
    b = {k: v[pairs[:, 1]] for k, v in params.items()}
    ab = pair_barriers(task, model, a, b, task.train, 21)
    ba = pair_barriers(task, model, b, a, task.train, 21)
    assert torch.allclose(ab["loss_barrier"], ba["loss_barrier"], atol=1e-5)
    assert torch.allclose(ab["error_barrier"], ba["error_barrier"], atol=1e-9)
    assert torch.allclose(ab["loss"], ba["loss"].flip(1), atol=1e-5)
    assert (ab["loss_barrier"] >= 0).all()


def test_barrier_of_a_convex_model_is_zero():
    """Logistic regression (an MLP without hidden layers) has a convex loss: no barrier on train."""
    task = toy_task()
    model = MLP(d_in=6, hidden=(), d_out=1)
    params = train(model, task, [0, 1, 2], steps=40, lr=0.3)
    pairs = all_pairs(3)
    a = {k: v[pairs[:, 0]] for k, v in params.items()}
    b = {k: v[pairs[:, 1]] * torch.tensor([1.0, 3.0, -0.5]).view(-1, *[1] * (v.dim() - 1)) for k, v in params.items()}
    res = pair_barriers(task, model, a, b, task.train, 21)
    assert res["loss_barrier"].abs().max() < 1e-6
    # the same pairs through a non-convex model do have a barrier
    mlp = MLP(d_in=6, hidden=(8,), d_out=1)
    p2 = train(mlp, task, [0, 1])
    res2 = pair_barriers(task, mlp, {k: v[:1] for k, v in p2.items()}, {k: v[1:] for k, v in p2.items()}, task.train)
    assert res2["loss_barrier"].item() > 1e-3


def test_barrier_follows_its_definition():
    alphas = alpha_grid(5)
    curve = torch.tensor([[1.0, 2.0, 2.5, 2.0, 3.0], [0.0, -1.0, -1.0, -1.0, 0.0]])
    expected = [max(c[i] - ((1 - a) * c[0] + a * c[-1]) for i, a in enumerate(alphas.tolist())) for c in curve.tolist()]
    assert barrier(curve, alphas).tolist() == pytest.approx(expected)
    assert "max_alpha" in BARRIER_DEFINITION


def test_population_equals_per_pair_loop_and_chunking(mlp_runs):
    task, model, params = mlp_runs
    pairs = all_pairs(4)
    a = {k: v[pairs[:, 0]] for k, v in params.items()}
    b = {k: v[pairs[:, 1]] for k, v in params.items()}
    alphas = alpha_grid(7)
    batched = curves(task, model, a, b, task.test, alphas)
    chunked = curves(task, model, a, b, task.test, alphas, chunk=5)
    for p in range(len(pairs)):
        for k, alpha in enumerate(alphas.tolist()):
            theta = {n: ((1 - alpha) * a[n][p].double() + alpha * b[n][p].double()).float()[None] for n in a}
            ev = task.evaluate(model, theta, task.test)
            assert batched["loss"][p, k].item() == pytest.approx(ev["loss"].double().mean().item(), abs=1e-6)
            assert batched["error"][p, k].item() == pytest.approx(1 - ev["correct"].double().mean().item(), abs=1e-12)
    assert torch.allclose(batched["loss"], chunked["loss"], atol=1e-6)


def test_renormalize_sees_every_interpolated_member(mlp_runs):
    task, model, params = mlp_runs
    seen = []

    def renorm(p):
        seen.append(next(iter(p.values())).shape[0])
        return {k: v * 0 for k, v in p.items()}  # a visible effect: every member outputs 0

    res = curves(task, model, params, params, task.test, alpha_grid(3), chunk=4, renormalize=renorm)
    assert sum(seen) == 4 * 3
    assert torch.allclose(res["loss"], torch.full((4, 3), torch.log(torch.tensor(2.0)).item(), dtype=torch.float64))


def test_bad_alphas_and_mismatched_endpoints_are_refused(mlp_runs):
    task, model, params = mlp_runs
    with pytest.raises(PathdepError, match="n_alpha"):
        alpha_grid(1)
    with pytest.raises(PathdepError, match="alphas"):
        curves(task, model, params, params, task.test, torch.tensor([0.2, 1.0]))
    with pytest.raises(PathdepError, match="as many members"):
        curves(task, model, params, {k: v[:2] for k, v in params.items()}, task.test, alpha_grid(3))
