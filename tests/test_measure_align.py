"""Permutations keep the function; weight and activation matching recover planted permutations."""

import pytest
import torch

from pathdep.errors import PathdepError
from pathdep.measure.align import (activation_matching, apply_permutation, identity_perms, permute_activations,
                                   weight_matching)
from pathdep.models.base import PermutationSpec, capture
from pathdep.models.cnn import CNN
from pathdep.models.mlp import MLP
from pathdep.models.transformer import Transformer
from pathdep.tasks import TASKS


def random_perms(spec, params, seed):
    g = torch.Generator().manual_seed(seed)
    r = next(iter(params.values())).shape[0]
    return {p: torch.stack([torch.randperm(n.shape[1], generator=g) for _ in range(r)])
            for p, n in identity_perms(spec, params).items()}


@pytest.fixture(scope="module")
def trained():
    """Two MLPs trained on scikit-learn's digits (full batch, Adam, 150 steps)."""
    task = TASKS["digits"].build(TASKS["digits"].args())
    model = MLP(d_in=64, hidden=(24, 16), d_out=10)
    params = {k: v.clone().requires_grad_(True) for k, v in model.init_population([0, 1]).items()}
    opt = torch.optim.Adam(params.values(), lr=0.01)
    x = task.train.x.unsqueeze(0).expand(2, *task.train.x.shape)
    y = task.train.y.unsqueeze(0).expand(2, -1)
    for _ in range(150):
        opt.zero_grad()
        task.train_loss(model, params, x, y).sum().backward()
        opt.step()
    params = {k: v.detach() for k, v in params.items()}
    acc = task.evaluate(model, params, task.test)["correct"].mean(1)
    assert (acc > 0.9).all()  # really trained
    return task, model, params


def test_applying_a_permutation_never_changes_the_function(trained):
    task, model, params = trained
    perms = random_perms(model.permutation_spec, params, 0)
    permuted = apply_permutation(model.permutation_spec, params, perms)
    x = task.test.x.unsqueeze(0).expand(2, *task.test.x.shape)
    assert not torch.equal(permuted["fc0.weight"], params["fc0.weight"])
    assert torch.allclose(model.apply(permuted, x), model.apply(params, x), atol=1e-5)


def test_a_cnn_permutation_keeps_its_function():
    model = CNN(in_shape=(1, 20), channels=(6, 5), kernels=(3, 3), strides=(1, 2), paddings=(1, 0), d_out=3)
    params = model.init_population([0, 1, 2])
    perms = random_perms(model.permutation_spec, params, 1)
    x = torch.randn(3, 7, 1, 20)
    permuted = apply_permutation(model.permutation_spec, params, perms)
    assert torch.allclose(model.apply(permuted, x), model.apply(params, x), atol=1e-5)


def test_weight_matching_recovers_a_planted_permutation_of_a_trained_mlp(trained):
    task, model, params = trained
    spec = model.permutation_spec
    planted = random_perms(spec, params, 3)
    shuffled = apply_permutation(spec, params, planted)
    found = weight_matching(spec, params, shuffled)
    restored = apply_permutation(spec, shuffled, found)
    for k in params:
        assert torch.equal(restored[k], params[k]), k
    for p in planted:  # found undoes planted: found = planted^-1 for every member
        assert torch.equal(planted[p].gather(1, found[p]), torch.arange(planted[p].shape[1]).expand_as(found[p]))
    x = task.test.x.unsqueeze(0).expand(2, *task.test.x.shape)
    assert torch.allclose(model.apply(restored, x), model.apply(shuffled, x), atol=1e-5)


def undoes(planted, found):
    """(P, n) bool: found[p] undoes planted[p] at each unit (planted^-1 for every member)."""
    return planted.gather(1, found) == torch.arange(planted.shape[1]).expand_as(found)


def live_units(model, params, x):
    """{perm: (P, n) bool} units whose activation varies over x (dead units match in any order)."""
    spec = model.permutation_spec
    names = {h for uses in spec.activations.values() for h, _ in uses}
    with capture(names) as acts:
        model.apply(params, x.unsqueeze(0).expand(2, *x.shape))
    out = {}
    for p, uses in spec.activations.items():
        h, ax = uses[0]
        t = acts[h].movedim(ax + 1, 1).flatten(2)  # (P, n, samples)
        out[p] = t.std(2) > 0
    return out


def test_activation_matching_recovers_a_planted_permutation(trained):
    task, model, params = trained
    spec = model.permutation_spec
    planted = random_perms(spec, params, 4)
    shuffled = apply_permutation(spec, params, planted)
    found = activation_matching(model, params, shuffled, task.test.x)
    for p, live in live_units(model, params, task.test.x).items():
        assert live.float().mean() > 0.7
        assert undoes(planted[p], found[p])[live].all(), p
    restored = apply_permutation(spec, shuffled, found)
    x = task.test.x.unsqueeze(0).expand(2, *task.test.x.shape)
    assert torch.allclose(model.apply(restored, x), model.apply(params, x), atol=1e-5)


def test_activation_matching_of_a_model_with_itself_is_the_identity(trained):
    task, model, params = trained
    found = activation_matching(model, params, params, task.test.x)
    for p, live in live_units(model, params, task.test.x).items():
        assert (found[p] == torch.arange(found[p].shape[1]))[live].all(), p


def test_activation_matching_in_chunks_of_pairs_equals_all_pairs_at_once(trained):
    task, model, params = trained
    a = {k: torch.stack([v[0], v[1], v[0]]) for k, v in params.items()}
    b = {k: torch.stack([v[1], v[0], v[1]]) for k, v in params.items()}
    together = activation_matching(model, a, b, task.test.x)
    one_by_one = activation_matching(model, a, b, task.test.x, chunk=1)
    for p in together:
        assert torch.equal(together[p], one_by_one[p])
        assert torch.equal(together[p][0], together[p][2])  # the same pair gives the same answer


@pytest.fixture(scope="module")
def cnn_params():
    """Two small 1-D CNNs: random init plus a random offset, so no unit is dead or repeated."""
    model = CNN(in_shape=(1, 20), channels=(6, 5), kernels=(3, 3), strides=(1, 2), paddings=(1, 0), d_out=3)
    g = torch.Generator().manual_seed(9)
    params = {k: v + 0.2 * torch.randn(v.shape, generator=g) for k, v in model.init_population([0, 1]).items()}
    return model, params, torch.randn(200, 1, 20, generator=g)


def test_weight_and_activation_matching_recover_a_planted_cnn_permutation(cnn_params):
    model, params, x = cnn_params
    spec = model.permutation_spec
    planted = random_perms(spec, params, 7)
    shuffled = apply_permutation(spec, params, planted)
    for found in (weight_matching(spec, params, shuffled), activation_matching(model, params, shuffled, x)):
        for p, live in live_units(model, params, x).items():
            assert undoes(planted[p], found[p])[live].all(), p
        restored = apply_permutation(spec, shuffled, found)
        assert torch.allclose(model.apply(restored, x.expand(2, *x.shape)), model.apply(params, x.expand(2, *x.shape)), atol=1e-5)


def small_transformer():
    model = Transformer(d_vocab=10, n_ctx=8, d_model=16, n_layers=2, n_heads=2, d_mlp=12)
    g = torch.Generator().manual_seed(5)
    params = {k: v + 0.1 * torch.randn(v.shape, generator=g) for k, v in model.init_population([0, 1]).items()}
    return model, params, torch.randint(0, 10, (64, 8), generator=g)


@pytest.mark.parametrize("family", ["mlp", "cnn", "transformer"])
def test_the_spec_names_how_a_permutation_moves_each_activation(family, cnn_params):
    """Activations of the permuted network = the original's, permuted as the spec's activations say."""
    if family == "mlp":
        model = MLP(d_in=5, hidden=(7, 6), d_out=3)
        params, x = model.init_population([0, 1]), torch.randn(30, 5)
    elif family == "cnn":
        model, params, x = cnn_params
    else:
        model, params, x = small_transformer()
    spec = model.permutation_spec
    assert set(spec.activations) == set(spec.axes)
    perms = random_perms(spec, params, 11)
    names = {h for uses in spec.activations.values() for h, _ in uses}
    with capture(names) as before:
        model.apply(params, x.expand(2, *x.shape))
    with capture(names) as after:
        model.apply(apply_permutation(spec, params, perms), x.expand(2, *x.shape))
    moved = permute_activations(spec, before, perms)
    for h in names:
        assert not torch.allclose(after[h], before[h], atol=1e-4) or before[h].std() == 0, h
        assert torch.allclose(after[h], moved[h], atol=1e-5), h


def test_activation_matching_recovers_planted_transformer_heads_and_mlp_units():
    model, params, x = small_transformer()
    spec = model.permutation_spec
    planted = random_perms(spec, params, 6)
    shuffled = apply_permutation(spec, params, planted)
    found = activation_matching(model, params, shuffled, x)
    for p in spec.axes:
        assert undoes(planted[p], found[p]).all(), p
    restored = apply_permutation(spec, shuffled, found)
    for k in params:
        assert torch.equal(restored[k], params[k]), k


def test_activation_matching_needs_the_activations_of_every_permutation(trained):
    task, model, params = trained

    class Bare(MLP):
        @property
        def permutation_spec(self):
            return PermutationSpec(MLP.permutation_spec.fget(self).axes)

    bare = Bare(d_in=64, hidden=(24, 16), d_out=10)
    with pytest.raises(PathdepError, match="'P0'.*'activations'"):
        activation_matching(bare, params, params, task.test.x)


def test_activation_matching_refuses_a_spec_whose_order_leaves_a_permutation_no_evidence():
    model, params, x = small_transformer()
    spec = model.permutation_spec
    first = "blocks.0.qk"  # its activations q, k also carry the heads axis, not solved yet
    reordered = PermutationSpec(spec.axes, {first: spec.activations[first],
                                            **{p: u for p, u in spec.activations.items() if p != first}})

    class Reordered(Transformer):
        @property
        def permutation_spec(self):
            return reordered

    m = Reordered(d_vocab=10, n_ctx=8, d_model=16, n_layers=2, n_heads=2, d_mlp=12)
    with pytest.raises(PathdepError, match="'blocks.0.qk'"):
        activation_matching(m, params, params, x)


def test_batched_weight_matching_equals_one_pair_at_a_time(trained):
    _, model, params = trained
    spec = model.permutation_spec
    a = {k: torch.stack([v[0], v[1], v[0]]) for k, v in params.items()}
    b = {k: torch.stack([v[1], v[0], v[0] * 0.5]) for k, v in params.items()}
    together = weight_matching(spec, a, b)
    for i in range(3):
        alone = weight_matching(spec, {k: v[i : i + 1] for k, v in a.items()}, {k: v[i : i + 1] for k, v in b.items()})
        for p in together:
            assert torch.equal(together[p][i], alone[p][0])


def test_weight_matching_brings_two_runs_closer(trained):
    _, model, params = trained
    a = {k: v[:1] for k, v in params.items()}
    b = {k: v[1:] for k, v in params.items()}
    aligned = apply_permutation(model.permutation_spec, b, weight_matching(model.permutation_spec, a, b))
    dist = lambda p: sum((p[k] - a[k]).pow(2).sum() for k in a)  # noqa: E731
    assert dist(aligned) < 0.9 * dist(b)


def test_transformer_permutations_keep_the_function_and_weight_matching_undoes_them():
    from pathdep.models.transformer import Transformer

    model = Transformer(d_vocab=10, n_ctx=8, d_model=16, n_layers=2, n_heads=2, d_mlp=12)
    g = torch.Generator().manual_seed(5)
    params = {k: v + 0.1 * torch.randn(v.shape, generator=g) for k, v in model.init_population([0, 1]).items()}
    spec = model.permutation_spec
    planted = random_perms(spec, params, 6)
    shuffled = apply_permutation(spec, params, planted)
    x = torch.randint(0, 10, (2, 5, 8), generator=g)
    assert torch.allclose(model.apply(shuffled, x), model.apply(params, x), atol=1e-5)
    restored = apply_permutation(spec, shuffled, weight_matching(spec, params, shuffled))
    for k in params:
        assert torch.equal(restored[k], params[k]), k
