"""MNIST-1D: 1-D signals of the ten digits under padding, scaling, translation, shear and noise.

Generated locally with ``mnist1d.data.make_dataset`` (the canonical 4000/1000 split at the
default ``n = 5000``, ``seed = 42``); nothing is downloaded or cached. Inputs are (40,) signals
(one channel for the ``cnn`` model). Probes: ``noisy`` (stronger correlated and i.i.d. noise) and
``shifted`` (translations beyond the training range), both fresh draws of the same generator.
"""

from __future__ import annotations

import random

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from pathdep.tasks.base import Split, Task


class MNIST1DArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    n: int = Field(5000, ge=20, description="examples generated (train + test), the generator's num_samples")
    train_split: float = Field(0.8, gt=0, lt=1, description="fraction of the n examples used for training")
    seed: int = Field(42, description="seed of the data itself (42 is the published dataset's)")
    n_probe: int = Field(1000, ge=10, description="examples in each probe set")
    probe_noise: float = Field(0.4, ge=0, description="correlated-noise scale of the 'noisy' probe (train: 0.25)")
    probe_iid_noise: float = Field(0.02, ge=0, description="i.i.d. noise scale of the 'noisy' probe (train: 0.02)")
    probe_translation: int = Field(72, ge=1, le=72, description="max translation of the 'shifted' probe (train: 48)")


def generate(**changes: object) -> dict[str, np.ndarray]:
    """``make_dataset`` with some of its arguments changed, leaving global random state untouched.

    The generator seeds and draws from numpy's and Python's global streams; their states are
    restored afterwards so that building a task never changes anything else's randomness.
    """
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    for k, v in changes.items():
        if not hasattr(args, k):
            raise KeyError(k)
        setattr(args, k, v)
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        return make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)


def _split(x: np.ndarray, y: np.ndarray) -> Split:
    return Split(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.long))


def build(args: MNIST1DArgs) -> Task:
    data = generate(num_samples=args.n, train_split=args.train_split, seed=args.seed)
    # probes: all examples go to the "test" half (train_split 0); seeds differ from the data's
    noisy = generate(
        num_samples=args.n_probe, train_split=0.0, seed=args.seed + 1,
        corr_noise_scale=args.probe_noise, iid_noise_scale=args.probe_iid_noise,
    )
    shifted = generate(num_samples=args.n_probe, train_split=0.0, seed=args.seed + 2, max_translation=args.probe_translation)
    return Task(
        name="mnist1d",
        train=_split(data["x"], data["y"]),
        test=_split(data["x_test"], data["y_test"]),
        probes={"noisy": _split(noisy["x_test"], noisy["y_test"]), "shifted": _split(shifted["x_test"], shifted["y_test"])},
        n_outputs=10,
        loss_kind="ce",
        solution_property="noisy_acc",
        doc=__doc__.splitlines()[0],
    )
