"""Soups (greedy never worse than its best ingredient) and static measures against definitions."""

import hashlib

import pytest
import torch

from pathdep.errors import PathdepError
from pathdep.measure.population import stable_seed
from pathdep.measure.soups import greedy_soup, uniform_soup
from pathdep.measure.static import dist_from_init, effective_rank, hessian_trace, static_measures, weight_norm
from pathdep.models.mlp import MLP
from pathdep.tasks import TASKS
from pathdep.tasks.base import Split, Task


def finetune(model, task, start, seeds, steps):
    """Children of one parent: each trains from ``start`` on its own random mini-batches."""
    r = len(seeds)
    params = {k: v.expand(r, *v.shape[1:]).clone().requires_grad_(True) for k, v in start.items()}
    opt = torch.optim.SGD(params.values(), lr=0.1)
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    for _ in range(steps):
        idx = torch.stack([torch.randint(0, len(task.train), (32,), generator=g) for g in gens])
        x, y = task.batch(idx)
        opt.zero_grad()
        task.train_loss(model, params, x, y).sum().backward()
        opt.step()
    return {k: v.detach() for k, v in params.items()}


@pytest.mark.parametrize("seed", [0, 1])
def test_greedy_soup_is_never_worse_on_held_out_than_its_best_ingredient(seed):
    task = TASKS["digits"].build(TASKS["digits"].args())
    model = MLP(d_in=64, hidden=(32,), d_out=10)
    parent = finetune(model, task, model.init_population([seed]), [seed], 30)
    children = finetune(model, task, parent, [10 + seed + i for i in range(6)], 40)
    # add a bad ingredient: an untrained run
    ingredients = {k: torch.cat([children[k], model.init_population([99])[k]]) for k in children}
    soup = greedy_soup(task, model, ingredients, task.test)
    best = float(soup.ingredient_acc.max())
    got = float(task.evaluate(model, soup.params, task.test)["correct"].double().mean())
    assert got == pytest.approx(soup.held_out_acc)
    assert got >= best
    assert 6 not in soup.members  # the untrained run never helps
    assert soup.members[0] == int(soup.ingredient_acc.argmax())
    expected = uniform_soup({k: v[list(soup.members)] for k, v in ingredients.items()})
    for k in expected:
        assert torch.allclose(soup.params[k], expected[k])


def test_uniform_soup_is_the_mean_and_a_soup_of_copies_is_the_model():
    model = MLP(d_in=3, hidden=(4,), d_out=2)
    p = model.init_population([0, 1, 2])
    soup = uniform_soup(p)
    for k in p:
        assert torch.allclose(soup[k][0], p[k].mean(0))
    copies = {k: v[:1].expand(3, *v.shape[1:]) for k, v in p.items()}
    for k, v in uniform_soup(copies).items():
        assert torch.equal(v, p[k][:1])


def test_norms_and_effective_rank_follow_their_definitions():
    model = MLP(d_in=5, hidden=(4,), d_out=3)
    p = model.init_population([0, 1])
    init = model.init_population([5, 6])
    flat = lambda q, r: torch.cat([v[r].flatten() for v in q.values()]).double()  # noqa: E731
    for r in range(2):
        assert weight_norm(p)[r].item() == pytest.approx(flat(p, r).norm().item())
        assert dist_from_init(p, init)[r].item() == pytest.approx((flat(p, r) - flat(init, r)).norm().item())
    eye = torch.eye(4)[None] * 3.0
    rank_one = torch.outer(torch.arange(1.0, 5.0), torch.ones(6))[None]
    assert effective_rank(eye).item() == pytest.approx(4.0)
    assert effective_rank(rank_one).item() == pytest.approx(1.0, abs=1e-6)
    s = torch.tensor([3.0, 1.0])
    q = s / s.sum()
    assert effective_rank(torch.diag(s)[None]).item() == pytest.approx(torch.exp(-(q * q.log()).sum()).item())
    measures = static_measures(
        Task("t", Split(torch.randn(10, 5), torch.zeros(10).long()), Split(torch.randn(4, 5), torch.zeros(4).long()), {}, 3),
        model, p, init,
    )
    assert set(measures) == {"weight_norm", "dist_from_init", "effective_rank/fc0.weight", "effective_rank/fc1.weight", "sharpness"}


def test_hutchinson_trace_uses_exact_hessian_vector_products_and_is_unbiased():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 3, generator=g)
    task = Task("t", Split(x, (x[:, 0] > 0).float()), Split(x, (x[:, 0] > 0).float()), {}, 1, "bce")
    model = MLP(d_in=3, hidden=(3,), d_out=1, activations=("tanh",))
    params = model.init_population([0, 1])
    n_samples, seeds = 2000, [7, 8]
    est = hessian_trace(task, model, params, n_samples=n_samples, seed=seeds)
    names = sorted(params)  # vectors are drawn parameter by parameter in name order
    shapes = [params[k].shape[1:] for k in names]
    sizes = [s.numel() for s in shapes]
    for r in range(2):

        def loss(flat):
            parts = {k: t.view(1, *s) for k, t, s in zip(names, flat.split(sizes), shapes)}
            return task.train_loss(model, parts, task.train.x[None], task.train.y[None]).sum()

        flat = torch.cat([params[k][r].flatten() for k in names])
        h = torch.autograd.functional.hessian(loss, flat).double()  # (n_params, n_params)
        # the same Rademacher vectors, drawn in the same order from the member's own generator
        gen = torch.Generator().manual_seed(seeds[r])
        quad = []
        for _ in range(n_samples):
            v = torch.cat([(torch.randint(0, 2, s, generator=gen) * 2 - 1).flatten() for s in shapes]).double()
            quad.append(v @ h @ v)
        assert est[r].item() == pytest.approx(torch.stack(quad).mean().item(), rel=1e-4)
        off = h - torch.diag(h.diagonal())
        std_err = (2 * off.pow(2).sum() / n_samples).sqrt().item()  # exact sd of the Rademacher estimator
        assert abs(est[r].item() - h.trace().item()) < 4 * std_err
    alone = hessian_trace(task, model, {k: v[1:] for k, v in params.items()}, n_samples=n_samples, seed=[8])
    assert alone[0].item() == est[1].item()  # a member's estimate ignores the others
    shared = hessian_trace(task, model, params, n_samples=50, seed=7)
    assert shared[0].item() == hessian_trace(task, model, params, n_samples=50, seed=[7, 3])[0].item()
    with pytest.raises(PathdepError, match="one per member"):
        hessian_trace(task, model, params, seed=[1, 2, 3])


def test_static_measures_do_not_depend_on_the_order_of_the_parameter_dict():
    """A checkpoint read in another process lists its tensors in another order: same numbers, bit for bit."""
    task = TASKS["digits"].build(TASKS["digits"].args())
    model = MLP(d_in=64, hidden=(16, 8), d_out=10)
    params, init = model.init_population([0, 1, 2]), model.init_population([3, 4, 5])
    params = {k: v + 0.1 * torch.randn(v.shape, generator=torch.Generator().manual_seed(1)) for k, v in params.items()}
    orders = [sorted(params), sorted(params, reverse=True), [*sorted(params)[1::2], *sorted(params)[::2]]]
    assert len({tuple(o) for o in orders}) == 3
    got = [static_measures(task, model, {k: params[k] for k in o}, {k: init[k] for k in reversed(o)}, seed=[5, 6, 7])
           for o in orders]
    for other in got[1:]:
        assert list(other) == list(got[0])  # the same measures in the same order
        for name in got[0]:
            assert torch.equal(other[name], got[0][name]), name
    assert not torch.equal(got[0]["sharpness"], static_measures(task, model, params, init, seed=[5, 6, 8])["sharpness"])


def test_stable_seeds_differ_by_measurement_run_and_step():
    parts = [("sharpness", "base-i0-d0", 100), ("sharpness", "base-i0-d0", 200), ("sharpness", "base-i1-d0", 100),
             ("other", "base-i0-d0", 100), ("ab", "c", 1), ("a", "bc", 1)]
    seeds = [stable_seed(*p) for p in parts]
    assert len(set(seeds)) == len(parts) and all(0 <= s < 2**63 for s in seeds)
    # sha256 of the parts' text, so a fixed value: the same in every process, unlike hash()
    assert stable_seed("sharpness", "base-i0-d0", 100) == int(hashlib.sha256(b"sharpness\x1fbase-i0-d0\x1f100").hexdigest()[:16], 16) >> 1
