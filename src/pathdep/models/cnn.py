"""Small convolutional network over stacked parameters (PyTorch ``nn.Conv1d``/``nn.Conv2d`` layout and init).

Convolution layers ``conv{i}`` (ReLU after each, hooked as ``h{i}`` with shape (R, B, C, *spatial))
followed by one linear ``head`` over the flattened feature map (hooked as ``logits``). Inputs are
(R, B, *in_shape) with ``in_shape`` = (L,) (one channel), (C, L) for 1-D or (C, H, W) for 2-D.

Every convolution is written as unfold + one ``baddbmm`` over the run axis: each run's patches are
multiplied by its own weight matrix in a batched matmul whose per-run reduction does not depend on
how many runs share the call. That keeps a run's bits identical whatever the population size, which
``torch.vmap`` over ``conv1d`` does not (its grouped convolution picks its algorithm from the
population size).

``head.weight`` is stored as (n_out, C, *spatial_out) rather than flat, so that the channel
permutation of the last convolution is one axis of it; reshaped to (n_out, -1) it is the weight of
the equivalent ``nn.Linear`` after ``flatten``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from pathdep.errors import bad_value
from pathdep.models.base import Params, PermutationSpec, hook, init_population
from pathdep.models.mlp import ACTIVATIONS


def conv_out_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output length of a convolution along one axis (as ``nn.Conv1d`` computes it)."""
    return (size + 2 * padding - kernel) // stride + 1


def unfold_patches(x: Tensor, kernel: int, stride: int, padding: int, n_spatial: int) -> Tensor:
    """Sliding windows of a channels-last population: x (R, B, *S, C) -> (R, B, *S_out, C, k, ..., k)."""
    if padding:
        pad: list[int] = [0, 0]  # the channel axis (last) is not padded
        for _ in range(n_spatial):
            pad += [padding, padding]
        x = nn.functional.pad(x, pad)
    for d in range(n_spatial):
        x = x.unfold(2 + d, kernel, stride)  # window axis appended last
    return x


def conv_population(x: Tensor, w: Tensor, b: Tensor, stride: int, padding: int) -> Tensor:
    """Convolve each run's input with its own kernel, channels-last.

    x (R, B, *S, C_in), w (R, C_out, C_in, *k), b (R, C_out) -> (R, B, *S_out, C_out).
    Cross-correlation as in ``torch.nn.functional.conv1d``/``conv2d`` (groups=1, dilation=1).
    """
    n_spatial = w.dim() - 3
    r, bsz = x.shape[:2]
    patches = unfold_patches(x, w.shape[-1], stride, padding, n_spatial)  # (R, B, *S_out, C_in, *k)
    s_out = patches.shape[2 : 2 + n_spatial]
    flat = patches.reshape(r, -1, math.prod(w.shape[2:]))  # (R, B*prod(S_out), C_in*prod(k))
    wm = w.reshape(r, w.shape[1], -1).transpose(1, 2)  # (R, C_in*prod(k), C_out)
    out = torch.baddbmm(b.unsqueeze(1), flat, wm)  # (R, B*prod(S_out), C_out)
    return out.view(r, bsz, *s_out, w.shape[1])


@dataclass(frozen=True)
class CNN:
    """``len(channels)`` convolutions (each followed by ``activation``), then a linear head.

    >>> m = CNN(in_shape=(40,), channels=(8, 8), kernels=(5, 3), strides=(2, 2), paddings=(1, 1), d_out=10)
    >>> p = m.init_population([0, 1])
    >>> tuple(p["conv0.weight"].shape), tuple(p["head.weight"].shape)
    ((2, 8, 1, 5), (2, 10, 8, 10))
    >>> tuple(m.apply(p, torch.zeros(2, 3, 40)).shape)
    (2, 3, 10)
    """

    in_shape: tuple[int, ...]
    channels: tuple[int, ...]
    kernels: tuple[int, ...]
    strides: tuple[int, ...]
    paddings: tuple[int, ...]
    d_out: int
    activation: str = "relu"

    def __post_init__(self) -> None:
        n = len(self.channels)
        assert len(self.kernels) == len(self.strides) == len(self.paddings) == n, "one kernel/stride/padding per layer"
        assert 1 <= len(self.in_shape) <= 3, "in_shape is (L,), (C, L) or (C, H, W)"

    @property
    def n_spatial(self) -> int:
        return max(len(self.in_shape) - 1, 1)

    @property
    def in_channels(self) -> int:
        return 1 if len(self.in_shape) == 1 else self.in_shape[0]

    @property
    def spatial_sizes(self) -> tuple[tuple[int, ...], ...]:
        """Spatial shape of the input and of every layer's output."""
        sizes = [tuple(self.in_shape[-self.n_spatial :])]
        for k, s, p in zip(self.kernels, self.strides, self.paddings):
            sizes.append(tuple(conv_out_size(n, k, s, p) for n in sizes[-1]))
        return tuple(sizes)

    @property
    def hook_names(self) -> tuple[str, ...]:
        return tuple(f"h{i}" for i in range(len(self.channels))) + ("logits",)

    @property
    def permutation_spec(self) -> PermutationSpec:
        """P{i} permutes the output channels of conv i (and the input channels of what reads them)."""
        n = len(self.channels)
        axes = {}
        for i in range(n):
            reader = (f"conv{i + 1}.weight", 1) if i < n - 1 else ("head.weight", 1)
            axes[f"P{i}"] = ((f"conv{i}.weight", 0), (f"conv{i}.bias", 0), reader)
        return PermutationSpec(axes, {f"P{i}": ((f"h{i}", 1),) for i in range(n)})  # h{i} (B, C, *S)

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes: dict[str, tuple[int, ...]] = {}
        c_in = self.in_channels
        for i, (c, k) in enumerate(zip(self.channels, self.kernels)):
            shapes[f"conv{i}.weight"] = (c, c_in, *(k,) * self.n_spatial)
            shapes[f"conv{i}.bias"] = (c,)
            c_in = c
        shapes["head.weight"] = (self.d_out, c_in, *self.spatial_sizes[-1])
        shapes["head.bias"] = (self.d_out,)
        return shapes

    def init(self, gen: torch.Generator) -> Params:
        """PyTorch's default conv/linear init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), weight then bias per layer."""
        params: Params = {}
        shapes = self.param_shapes()
        for name in [f"conv{i}" for i in range(len(self.channels))] + ["head"]:
            wshape = shapes[f"{name}.weight"]
            fan_in = math.prod(wshape[1:])
            w = torch.empty(wshape[0], fan_in)  # same fan-in as the real layer, so the same draws
            nn.init.kaiming_uniform_(w, a=math.sqrt(5), generator=gen)
            bound = 1 / math.sqrt(fan_in)
            params[f"{name}.weight"] = w.view(wshape)
            params[f"{name}.bias"] = torch.empty(wshape[0]).uniform_(-bound, bound, generator=gen)
        return params

    def init_population(self, seeds: list[int]) -> Params:
        return init_population(self, seeds)

    def apply(self, params: Params, x: Tensor) -> Tensor:
        r, bsz = x.shape[:2]
        h = x.reshape(r, bsz, self.in_channels, *self.spatial_sizes[0])  # (R, B, C, *S)
        h = h.movedim(2, -1)  # channels-last (R, B, *S, C)
        act = ACTIVATIONS[self.activation]
        for i, (s, p) in enumerate(zip(self.strides, self.paddings)):
            h = act(conv_population(h, params[f"conv{i}.weight"], params[f"conv{i}.bias"], s, p))
            h = hook(f"h{i}", h.movedim(-1, 2)).movedim(2, -1)  # hooked as (R, B, C, *S_out)
        feats = h.movedim(-1, 2).reshape(r, bsz, -1)  # (R, B, C*prod(S_out)), channel-major like flatten
        w = params["head.weight"].flatten(2)  # (R, n_out, C*prod(S_out))
        logits = torch.baddbmm(params["head.bias"].unsqueeze(1), feats, w.transpose(1, 2))  # (R, B, n_out)
        return hook("logits", logits)


class CNNArgs(BaseModel):
    """Arguments of the ``cnn`` model; defaults are the MNIST-1D reference CNN (25 channels, kernels 5/3/3, stride 2)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    channels: tuple[int, ...] = Field((25, 25, 25), min_length=1, description="output channels per conv layer")
    kernels: tuple[int, ...] = Field((5, 3, 3), min_length=1, description="kernel size per conv layer")
    strides: tuple[int, ...] = Field((2, 2, 2), min_length=1, description="stride per conv layer")
    paddings: tuple[int, ...] = Field((1, 1, 1), min_length=1, description="zero padding per conv layer")
    activation: str = Field("relu", description="after every conv layer")

    def model_post_init(self, _: object) -> None:
        n = len(self.channels)
        for name in ("kernels", "strides", "paddings"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} needs one entry per conv layer ({n}), got {len(getattr(self, name))}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; choose from {sorted(ACTIVATIONS)}")
        if min(self.channels) < 1 or min(self.kernels) < 1 or min(self.strides) < 1 or min(self.paddings) < 0:
            raise ValueError("channels, kernels and strides must be >= 1 and paddings >= 0")


def build_cnn(args: CNNArgs, in_shape: tuple[int, ...], n_outputs: int) -> CNN:
    """A :class:`CNN` for inputs of shape ``in_shape``; errors name the field that does not fit."""
    if not 1 <= len(in_shape) <= 3:
        raise bad_value("process.model", "cnn", f"a model for the task's inputs {tuple(in_shape)} (cnn takes (L,), (C, L) or (C, H, W))")
    model = CNN(
        in_shape=tuple(in_shape),
        channels=tuple(args.channels),
        kernels=tuple(args.kernels),
        strides=tuple(args.strides),
        paddings=tuple(args.paddings),
        d_out=n_outputs,
        activation=args.activation,
    )
    sizes = model.spatial_sizes
    if min(min(s) for s in sizes) < 1:
        raise bad_value("process.model_args.kernels", list(args.kernels), f"small enough for inputs {tuple(in_shape)} (spatial sizes {list(sizes)})")
    return model
