"""The model zoo: functional families over stacked parameters, each with its permutation spec."""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pathdep.models.base import Model, Params, PermutationSpec, capture, hook, init_population, stack, unstack
from pathdep.models.cnn import CNN, CNNArgs, build_cnn
from pathdep.models.mlp import ACTIVATIONS, MLP
from pathdep.models.transformer import Transformer, TransformerArgs, build_transformer
from pathdep.registry import MODELS


class MLPArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    hidden: tuple[int, ...] = Field((32, 32), description="hidden widths; [] for a linear (logistic) model")
    activations: tuple[str, ...] | None = Field(None, description="one per hidden layer; default relu")

    @field_validator("hidden")
    @classmethod
    def _widths(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if any(w < 1 for w in v):
            raise ValueError("hidden widths must be >= 1")
        return v

    @field_validator("activations")
    @classmethod
    def _known(cls, v: tuple[str, ...] | None) -> tuple[str, ...] | None:
        unknown = [a for a in v or () if a not in ACTIVATIONS]
        if unknown:
            raise ValueError(f"unknown activation {unknown[0]!r}; choose from {sorted(ACTIVATIONS)}")
        return v

    @model_validator(mode="after")
    def _one_per_layer(self) -> "MLPArgs":
        if self.activations is not None and len(self.activations) != len(self.hidden):
            raise ValueError(f"needs one activation per hidden layer ({len(self.hidden)}), got {len(self.activations)}")
        return self


def build_mlp(args: MLPArgs, in_shape: tuple[int, ...], n_outputs: int) -> MLP:
    return MLP(d_in=math.prod(in_shape), hidden=tuple(args.hidden), d_out=n_outputs, activations=args.activations)


MODELS.register("mlp", MLPArgs, build_mlp, "multi-layer perceptron (nn.Linear layout and init)")
MODELS.register("cnn", CNNArgs, build_cnn, "small 1-D/2-D convolutional net (nn.Conv layout and init)")
MODELS.register("transformer", TransformerArgs, build_transformer, "decoder-only transformer (TransformerLens names)")

__all__ = ["CNN", "MLP", "Transformer", "MODELS", "Model", "Params", "PermutationSpec", "capture", "hook", "init_population", "stack", "unstack"]
