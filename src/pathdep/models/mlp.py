"""Multi-layer perceptron over stacked parameters (PyTorch ``nn.Linear`` layout and init).

Layer i maps width ``w[i]`` to ``w[i+1]`` with ``fc{i}.weight`` of shape (w[i+1], w[i]). Hidden layer
i is followed by ``activations[i]`` ("relu", "gelu", "tanh" or "identity") and is hooked as ``h{i}``;
the output is hooked as ``logits``. A population step is one ``baddbmm`` per layer, which gives each
run the same bits whatever the population size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from pathdep.models.base import Params, PermutationSpec, hook, init_population

ACTIVATIONS = {
    "relu": torch.relu,
    "gelu": nn.functional.gelu,
    "tanh": torch.tanh,
    "identity": lambda t: t,
}


@dataclass(frozen=True)
class MLP:
    """``d_in -> hidden[0] -> ... -> d_out``; inputs are flattened after the batch axis.

    >>> m = MLP(d_in=11, hidden=(1, 32), d_out=1, activations=("identity", "relu"))
    >>> p = m.init_population([0, 1, 2])
    >>> tuple(p["fc0.weight"].shape), tuple(m.apply(p, torch.zeros(3, 8, 11)).shape)
    ((3, 1, 11), (3, 8, 1))
    """

    d_in: int
    hidden: tuple[int, ...]
    d_out: int
    activations: tuple[str, ...] | None = None  # one per hidden layer; default all "relu"

    def __post_init__(self) -> None:
        acts = self.activations or ("relu",) * len(self.hidden)
        object.__setattr__(self, "activations", tuple(acts))
        assert len(acts) == len(self.hidden), "one activation per hidden layer"

    @property
    def widths(self) -> tuple[int, ...]:
        return (self.d_in, *self.hidden, self.d_out)

    @property
    def hook_names(self) -> tuple[str, ...]:
        return tuple(f"h{i}" for i in range(len(self.hidden))) + ("logits",)

    @property
    def permutation_spec(self) -> PermutationSpec:
        axes = {
            f"P{i}": ((f"fc{i}.weight", 0), (f"fc{i}.bias", 0), (f"fc{i + 1}.weight", 1))
            for i in range(len(self.hidden))
        }
        return PermutationSpec(axes, {f"P{i}": ((f"h{i}", 1),) for i in range(len(self.hidden))})

    def init(self, gen: torch.Generator) -> Params:
        """PyTorch's default ``nn.Linear`` init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
        params: Params = {}
        for i, (a, b) in enumerate(zip(self.widths[:-1], self.widths[1:])):
            w = torch.empty(b, a)
            nn.init.kaiming_uniform_(w, a=math.sqrt(5), generator=gen)
            bias = torch.empty(b).uniform_(-1 / math.sqrt(a), 1 / math.sqrt(a), generator=gen)
            params[f"fc{i}.weight"], params[f"fc{i}.bias"] = w, bias
        return params

    def init_population(self, seeds: list[int]) -> Params:
        return init_population(self, seeds)

    def apply(self, params: Params, x: Tensor) -> Tensor:
        h = x.flatten(2)  # (R, B, d_in)
        n = len(self.widths) - 1
        for i in range(n):
            w, b = params[f"fc{i}.weight"], params[f"fc{i}.bias"]  # (R, out, in), (R, out)
            h = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))  # (R, B, out)
            if i < n - 1:
                h = hook(f"h{i}", ACTIVATIONS[self.activations[i]](h))
        return hook("logits", h)
