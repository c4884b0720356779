"""scikit-learn digits with the MLP and the 2-D CNN: a tiny population learns, the noisy probe is harder."""

import pytest

from pathdep import Study
from tests.helpers import properties_at


@pytest.mark.slow
@pytest.mark.parametrize(
    "model,model_args,image",
    [("mlp", {"hidden": [32]}, False), ("cnn", {"channels": [8, 8], "kernels": [3, 3], "strides": [1, 2], "paddings": [1, 1]}, True)],
)
def test_a_tiny_population_learns_digits(tmp_path, model, model_args, image):
    study = Study.from_dict(
        {
            "name": "tiny_digits",
            "process": {
                "task": "digits",
                "task_args": {"image": image},
                "model": model,
                "model_args": model_args,
                "steps": 200,
                "batch_size": 64,
                "optimizer": {"name": "adam", "lr": 3e-3},
            },
            "seeds": {"init": 3},
        },
        store=tmp_path,
    )
    study.run()
    assert study.task.in_shape == ((1, 8, 8) if image else (64,))
    end = properties_at(study, 200)
    assert (end["test_acc"] > 0.85).all()  # chance is 0.1
    assert (end["noisy_acc"] < end["test_acc"]).all()
