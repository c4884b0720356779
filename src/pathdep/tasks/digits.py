"""scikit-learn's handwritten digits (8x8 images, 10 classes), shipped inside the package.

Pixels are scaled to [0, 1]. The split is fixed by ``seed``. Probes: ``test`` plus ``noisy``
(test images with Gaussian pixel noise), an out-of-distribution set on which runs disagree more.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field

from pathdep.tasks.base import Split, Task


class DigitsArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    test_fraction: float = Field(0.3, gt=0, lt=1)
    noise: float = Field(0.3, ge=0, description="std of pixel noise on the 'noisy' probe")
    image: bool = Field(False, description="keep (1, 8, 8) image shape for convolutional models")
    seed: int = 0


def build(args: DigitsArgs) -> Task:
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.data, dtype=torch.float32) / 16.0  # (1797, 64)
    y = torch.tensor(data.target, dtype=torch.long)
    gen = torch.Generator().manual_seed(args.seed)
    order = torch.randperm(len(y), generator=gen)
    n_test = int(round(args.test_fraction * len(y)))
    test_i, train_i = order[:n_test], order[n_test:]
    if args.image:
        x = x.view(-1, 1, 8, 8)
    noisy = (x[test_i] + args.noise * torch.randn(x[test_i].shape, generator=gen)).clamp(0, 1)
    return Task(
        name="digits",
        train=Split(x[train_i], y[train_i]),
        test=Split(x[test_i], y[test_i]),
        probes={"noisy": Split(noisy, y[test_i])},
        n_outputs=10,
        loss_kind="ce",
        solution_property="noisy_acc",
        doc=__doc__.splitlines()[0],
    )
