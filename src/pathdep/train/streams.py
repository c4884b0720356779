"""Seeded streams: every random choice of a run comes from a generator derived from its seeds.

The data order of a run is a pure function of (data seed, epoch): no generator state needs to be
saved, a resumed run draws exactly what it would have drawn, and a fork that keeps its parent's
data seed replays its parent's batches.
"""

from __future__ import annotations

import hashlib

import torch
from torch import Tensor


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from a tuple of parts (stable across processes and machines).

    >>> derive_seed("data-order", 0, 1) == derive_seed("data-order", 0, 1) != derive_seed("data-order", 0, 2)
    True
    """
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def generator(*parts: object) -> torch.Generator:
    return torch.Generator().manual_seed(derive_seed(*parts))


class DataOrder:
    """Per-run minibatch indices: each epoch a fresh permutation from the run's own seed.

    >>> order = DataOrder(n=10, batch_size=4, seeds=[0, 1])
    >>> tuple(order.indices(0).shape)
    (2, 4)
    """

    def __init__(self, n: int, batch_size: int, seeds: list[int]) -> None:
        self.n, self.seeds = n, list(seeds)
        self.batch_size = min(batch_size, n)
        self.steps_per_epoch = n // self.batch_size
        self._epoch = -1
        self._perms: Tensor | None = None

    def indices(self, step: int) -> Tensor:
        """Indices of the batch used at ``step``: (R, B) long."""
        if self.batch_size == self.n:  # full batch: no order to choose
            return torch.arange(self.n).expand(len(self.seeds), self.n)
        epoch, pos = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            self._perms = torch.stack(
                [torch.randperm(self.n, generator=generator("data-order", s, epoch)) for s in self.seeds]
            )  # (R, N)
            self._epoch = epoch
        assert self._perms is not None
        return self._perms[:, pos * self.batch_size : (pos + 1) * self.batch_size]


def intervention_noise(seed: int, data_seeds: list[int], step: int, batch: int) -> Tensor:
    """Uniform noise (R, B) that decides which examples an intervention touches at ``step``."""
    return torch.stack([torch.rand(batch, generator=generator("intervention", seed, d, step)) for d in data_seeds])
