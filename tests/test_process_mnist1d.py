"""MNIST-1D: generated locally, equal to the package's own generator, probes harder than test, a tiny run learns."""

import random

import numpy as np
import pytest
import torch

from pathdep import Study
from pathdep.tasks import TASKS
from pathdep.tasks.mnist1d import MNIST1DArgs, build
from tests.helpers import properties_at


@pytest.mark.slow
def test_data_is_the_packages_generator_and_leaves_global_random_state_alone():
    from mnist1d.data import get_dataset_args, make_dataset

    np.random.seed(123)
    random.seed(123)
    before_np, before_py = np.random.get_state()[1].copy(), random.getstate()
    task = build(MNIST1DArgs(n=300, n_probe=100))
    assert np.array_equal(np.random.get_state()[1], before_np) and random.getstate() == before_py

    args = get_dataset_args()
    args.num_samples = 300
    ref = make_dataset(args)  # the published recipe (seed 42), called directly
    torch.testing.assert_close(task.train.x, torch.tensor(ref["x"], dtype=torch.float32))
    assert torch.equal(task.test.y, torch.tensor(ref["y_test"]))
    assert task.train.x.shape == (240, 40) and task.test.x.shape == (60, 40)
    assert {k: tuple(v.x.shape) for k, v in task.probes.items()} == {"noisy": (100, 40), "shifted": (100, 40)}
    # probes are fresh draws, not copies of the test set
    assert not torch.equal(task.probes["noisy"].x[:60], task.test.x)
    assert "mnist1d" in TASKS.names()


@pytest.mark.slow
@pytest.mark.parametrize("model,model_args", [("mlp", {"hidden": [32, 32]}), ("cnn", {"channels": [8, 8, 8]})])
def test_a_tiny_run_learns_and_the_probes_are_harder(tmp_path, model, model_args):
    study = Study.from_dict(
        {
            "name": "tiny_mnist1d",
            "process": {
                "task": "mnist1d",
                "task_args": {"n": 2000, "n_probe": 400},
                "model": model,
                "model_args": model_args,
                "steps": 300,
                "batch_size": 100,
                "optimizer": {"name": "adam", "lr": 1e-2},
            },
            "seeds": {"init": 2},
        },
        store=tmp_path,
    )
    study.run()
    start, end = properties_at(study, 0), properties_at(study, 300)
    assert (end["train_loss"] < 0.6 * start["train_loss"]).all()
    assert (end["test_acc"] > 0.35).all()  # chance is 0.1
    assert (end["noisy_acc"] < end["test_acc"]).all() and (end["shifted_acc"] < end["test_acc"]).all()
