"""The functional CNN: matches torch.nn.Conv1d/Conv2d, keeps each run's bits whatever the population, permutes cleanly."""

import math

import pytest
import torch
from torch import nn

from pathdep.errors import PathdepError
from pathdep.models import MODELS, capture
from pathdep.models.cnn import CNN, CNNArgs, build_cnn

CNN1D = CNN(in_shape=(40,), channels=(6, 5, 4), kernels=(5, 3, 3), strides=(2, 2, 2), paddings=(1, 1, 1), d_out=10)
CNN2D = CNN(in_shape=(1, 8, 8), channels=(5, 4), kernels=(3, 3), strides=(1, 2), paddings=(1, 1), d_out=10)


def reference(model: CNN) -> nn.Sequential:
    """The same architecture from torch.nn layers."""
    conv = nn.Conv1d if model.n_spatial == 1 else nn.Conv2d
    layers: list[nn.Module] = []
    c_in = model.in_channels
    for c, k, s, p in zip(model.channels, model.kernels, model.strides, model.paddings):
        layers += [conv(c_in, c, k, s, p), nn.ReLU()]
        c_in = c
    n_flat = c_in * math.prod(model.spatial_sizes[-1])
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(n_flat, model.d_out))


def copy_into(net: nn.Sequential, params: dict) -> None:
    """Copy one run's params (no run axis) into the reference net."""
    layers = [m for m in net if isinstance(m, (nn.Conv1d, nn.Conv2d))] + [net[-1]]
    names = [f"conv{i}" for i in range(len(layers) - 1)] + ["head"]
    with torch.no_grad():
        for layer, name in zip(layers, names):
            layer.weight.copy_(params[f"{name}.weight"].reshape(layer.weight.shape))
            layer.bias.copy_(params[f"{name}.bias"])


@pytest.mark.parametrize("model", [CNN1D, CNN2D], ids=["1d", "2d"])
def test_matches_torch_nn_with_copied_weights(model):
    params = model.init_population([0, 1, 2])
    x = torch.randn(3, 7, *model.in_shape, generator=torch.Generator().manual_seed(0))
    with capture() as acts:
        out = model.apply(params, x)
    for r in range(3):
        net = reference(model)
        copy_into(net, {k: v[r] for k, v in params.items()})
        xr = x[r].reshape(7, model.in_channels, *model.spatial_sizes[0])
        torch.testing.assert_close(out[r], net(xr), rtol=1e-5, atol=1e-5)
        h = xr
        for i, layer in enumerate(m for m in net if isinstance(m, (nn.Conv1d, nn.Conv2d))):
            h = torch.relu(layer(h))
            torch.testing.assert_close(acts[f"h{i}"][r], h, rtol=1e-5, atol=1e-5)
    assert set(acts) == set(model.hook_names)


@pytest.mark.parametrize("model", [CNN1D, CNN2D], ids=["1d", "2d"])
def test_init_is_torch_default_from_the_generator(model):
    params = model.init(torch.Generator().manual_seed(7))
    net = reference(model)
    gen = torch.Generator().manual_seed(7)
    for layer in [m for m in net if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear))]:
        # what reset_parameters does, drawn from our generator
        nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=gen)
        bound = 1 / math.sqrt(layer.weight[0].numel())
        nn.init.uniform_(layer.bias, -bound, bound, generator=gen)
    copied = reference(model)
    copy_into(copied, params)
    for a, b in zip(net.parameters(), copied.parameters()):
        assert torch.equal(a, b)


def _forward_and_grads(model: CNN, params: dict, x: torch.Tensor, idx: list[int]):
    p = {k: v[idx].clone().requires_grad_(True) for k, v in params.items()}
    out = model.apply(p, x[idx])
    y = (torch.arange(out.shape[1]) % 10).expand(out.shape[:2])  # (R, B), the same labels for every run
    per_run = nn.functional.cross_entropy(out.transpose(1, 2), y, reduction="none").mean(1)  # (R,)
    grads = torch.autograd.grad(per_run.sum(), list(p.values()))
    return out.detach(), dict(zip(p, grads))


@pytest.mark.parametrize("model", [CNN1D, CNN2D], ids=["1d", "2d"])
def test_a_run_has_the_same_bits_in_populations_of_1_4_16(model):
    params = model.init_population(list(range(16)))
    x = torch.randn(16, 32, *model.in_shape, generator=torch.Generator().manual_seed(1))
    out16, g16 = _forward_and_grads(model, params, x, list(range(16)))
    out4, g4 = _forward_and_grads(model, params, x, [5, 6, 7, 8])
    out1, g1 = _forward_and_grads(model, params, x, [6])
    assert torch.equal(out16[5:9], out4) and torch.equal(out16[6:7], out1)
    for k in params:
        assert torch.equal(g16[k][5:9], g4[k]), k
        assert torch.equal(g16[k][6:7], g1[k]), k


@pytest.mark.parametrize("model", [CNN1D, CNN2D], ids=["1d", "2d"])
def test_permuting_channels_by_the_spec_keeps_the_function(model):
    params = model.init_population([3, 4])
    gen = torch.Generator().manual_seed(2)
    spec = model.permutation_spec
    perms = {name: torch.randperm(c, generator=gen) for name, c in zip(spec.axes, model.channels)}
    permuted = {}
    for k, v in params.items():
        for axis, name in spec.perms_of(k).items():
            v = v.index_select(axis + 1, perms[name])  # +1: the run axis
        permuted[k] = v
    assert not torch.equal(permuted["conv0.weight"], params["conv0.weight"])
    x = torch.randn(2, 9, *model.in_shape, generator=gen)
    torch.testing.assert_close(model.apply(permuted, x), model.apply(params, x), rtol=1e-5, atol=1e-5)


def test_registered_builder_and_its_errors():
    entry = MODELS["cnn"]
    model = entry.build(entry.args(channels=(4, 4), kernels=(3, 3), strides=(1, 2), paddings=(1, 1)), (1, 8, 8), 10)
    assert model.spatial_sizes == ((8, 8), (8, 8), (4, 4))
    with pytest.raises(PathdepError, match="kernels"):
        build_cnn(CNNArgs(kernels=(5, 3, 30)), (40,), 10)
    with pytest.raises(ValueError, match="one entry per conv layer"):
        CNNArgs(kernels=(5, 3))
