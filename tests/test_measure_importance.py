"""Ablations through activation edits equal the same ablation written into the weights."""

import pytest
import torch

from pathdep.errors import PathdepError
from pathdep.measure.importance import WHOLE_LAYER, Component, ablation_effects, components
from pathdep.models.base import capture
from pathdep.models.mlp import MLP
from pathdep.tasks.base import Split, Task


@pytest.fixture
def setup():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(80, 5, generator=g)
    y = (x[:, 0] + x[:, 1] ** 2 > 1).long()
    task = Task("toy", Split(x, y), Split(x[:60], y[:60]), {}, 2, "ce")
    model = MLP(d_in=5, hidden=(6, 4), d_out=2, activations=("tanh", "relu"))
    return task, model, model.init_population([0, 1, 2])


def loss_with_weights(task, model, params, split):
    return task.evaluate(model, params, split)["loss"].double().mean(1)


def test_unit_ablations_equal_editing_the_consuming_weights(setup):
    """Zeroing unit j of h_i = zeroing column j of fc_{i+1}; mean ablation also moves the bias."""
    task, model, params = setup
    split = task.test
    effects = ablation_effects(task, model, params, split, chunk=5)
    clean = loss_with_weights(task, model, params, split)
    x = split.x.unsqueeze(0).expand(3, *split.x.shape)
    with capture({"h0", "h1"}) as acts:
        model.apply(params, x)
    for i, width in enumerate(model.hidden):
        w_name, b_name = f"fc{i + 1}.weight", f"fc{i + 1}.bias"
        mean = acts[f"h{i}"].mean(1)  # (R, width)
        for unit in [*range(width), WHOLE_LAYER]:
            cols = list(range(width)) if unit == WHOLE_LAYER else [unit]
            col = unit if unit != WHOLE_LAYER else width
            for kind in ("zero", "mean"):
                edited = {k: v.clone() for k, v in params.items()}
                if kind == "mean":
                    edited[b_name] += (params[w_name][:, :, cols] * mean[:, None, cols]).sum(2)
                edited[w_name][:, :, cols] = 0
                expected = loss_with_weights(task, model, edited, split) - clean
                assert torch.allclose(effects[(f"h{i}", kind)][:, col], expected, atol=1e-5), (i, unit, kind)


def test_batched_over_runs_equals_one_run_at_a_time(setup):
    task, model, params = setup
    together = ablation_effects(task, model, params, task.test)
    for r in range(3):
        alone = ablation_effects(task, model, {k: v[r : r + 1] for k, v in params.items()}, task.test, chunk=1)
        for key in together:
            assert torch.allclose(together[key][r], alone[key][0], atol=1e-7), key


def test_components_default_to_hidden_hooks_and_can_be_declared(setup):
    task, model, params = setup
    assert components(model, params, task.test.x) == [Component("h0", 6), Component("h1", 4)]

    class Declared(MLP):
        def components(self):
            return [("h1", 4, 1)]

    declared = Declared(d_in=5, hidden=(6, 4), d_out=2, activations=("tanh", "relu"))
    assert list(ablation_effects(task, declared, params, task.test)) == [("h1", "zero"), ("h1", "mean")]

    class Wrong(MLP):
        def components(self):
            return [("layer1", 4)]

    with pytest.raises(PathdepError, match="'layer1'.*not one of its hook names"):
        components(Wrong(d_in=5, hidden=(6, 4), d_out=2), params, task.test.x)


def test_cnn_channel_ablation_equals_zeroing_the_reader_weights():
    """Components default to hooked channels (axis 1 after the batch axis) for convolutional nets."""
    from pathdep.models.cnn import CNN

    g = torch.Generator().manual_seed(3)
    x = torch.randn(40, 1, 12, generator=g)
    y = (x.mean((1, 2)) > 0).long()
    task = Task("toy", Split(x, y), Split(x, y), {}, 2, "ce")
    model = CNN(in_shape=(1, 12), channels=(4, 3), kernels=(3, 3), strides=(1, 2), paddings=(1, 0), d_out=2)
    params = model.init_population([0, 1])
    assert components(model, params, x) == [Component("h0", 4), Component("h1", 3)]
    effects = ablation_effects(task, model, params, task.test, ablations=("zero",))
    clean = loss_with_weights(task, model, params, task.test)
    for c in range(4):
        edited = {k: v.clone() for k, v in params.items()}
        edited["conv1.weight"][:, :, c] = 0  # (R, C_out, C_in, k): channel c of h0 is never read
        expected = loss_with_weights(task, model, edited, task.test) - clean
        assert torch.allclose(effects[("h0", "zero")][:, c], expected, atol=1e-6)
