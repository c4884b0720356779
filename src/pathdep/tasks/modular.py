"""Modular addition (grokking): predict (a + b) mod p from a fraction of all p*p pairs.

The split is over unordered pairs: (a, b) and (b, a) are both in train or both in test.
Inputs, by ``input``: ``onehot`` concatenates one-hot a and b (2p,); ``sum`` adds them (p,), so an
MLP whose first layer is linear (``activations = ["identity", "relu"]``) is a shared embedding of a
and b, summed; ``tokens`` gives the sequence [a, b, =] (=: token p) for a transformer with
``pool = "last"``. Trained full batch with AdamW and weight decay, runs first memorise the
training pairs, then form a Fourier circuit and generalise.

Properties beyond accuracies, from the weights through which the first nonlinearity reads the
tokens (see :meth:`ModularAddition.embedding_weights`): the share of their Fourier power at each
frequency ``freq_power/<k>`` (k = 1 .. (p-1)/2, summing to 1), the **key frequencies** (the
fewest top frequencies that hold ``key_mass`` of the power; their set is a run's solution type),
``n_key_freqs``, ``dominant_freq`` (the solution property: the frequency with the most power),
``fourier_eff_freqs`` (the effective number of frequencies, 1 / sum(share^2)) and ``top5_power``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from pathdep.errors import PathdepError
from pathdep.models.base import Model, Params
from pathdep.tasks.base import Split, Task

# where each model family keeps the weights that read the input tokens: (param name, token axis)
EMBEDDING_WEIGHTS: dict[str, int] = {"fc0.weight": -1, "embed.W_E": 0}


class ModularArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    p: int = Field(97, ge=3, description="the modulus (a prime keeps every frequency distinct)")
    train_fraction: float = Field(0.4, gt=0, lt=1, description="fraction of the unordered pairs {a, b} used for training")
    input: Literal["onehot", "sum", "tokens"] = Field("onehot", description="how (a, b) is fed to the model")
    key_mass: float = Field(0.6, gt=0, le=1, description="power share the key frequencies hold together")
    seed: int = Field(0, description="seed of the train/test split (not of any run)")


# --- pure measurements over tensors -----------------------------------------------------------
def fourier_power(w: Tensor, p: int, token_axis: int = -1) -> Tensor:
    """Power of each frequency along the token axis of a population of weights.

    w (R, ..., p, ...) with the p input tokens on ``token_axis`` (counted without the run axis
    when >= 0) -> (R, p // 2 + 1): |DFT|^2 summed over every other axis; entry k is frequency k
    (for real weights, bin k holds the power of both +k and -k).

    >>> x = torch.arange(7.0)
    >>> w = torch.cos(2 * torch.pi * 2 * x / 7).reshape(1, 1, 7)  # a pure frequency 2
    >>> fourier_power(w, 7).argmax(-1).item()
    2
    """
    axis = token_axis if token_axis < 0 else token_axis + 1
    w = w.movedim(axis, -1)
    if w.shape[-1] < p:
        raise PathdepError(f"The token axis of the weights must have at least p={p} entries. Got {w.shape[-1]} instead.")
    f = torch.fft.rfft(w[..., :p].double(), dim=-1)  # (R, ..., p//2+1)
    return f.abs().square().flatten(1, -2).sum(1).float()  # (R, p//2+1)


def frequency_shares(power: Tensor) -> Tensor:
    """Share of the non-constant power at each frequency 1..K: (R, K+1) -> (R, K), rows sum to 1."""
    ac = power[:, 1:]
    return ac / ac.sum(-1, keepdim=True).clamp_min(1e-30)


def key_frequencies(shares: Tensor, mass: float) -> Tensor:
    """The fewest top frequencies holding at least ``mass`` of the power: (R, K) -> bool (R, K).

    >>> key_frequencies(torch.tensor([[0.1, 0.5, 0.3, 0.1]]), 0.7).tolist()
    [[False, True, True, False]]
    """
    ordered, order = shares.sort(-1, descending=True)
    before = ordered.cumsum(-1) - ordered  # power of the frequencies ranked above each one
    keep_sorted = before < mass - 1e-6  # still needed to reach the mass
    return torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)


def fourier_summary(shares: Tensor, mass: float) -> dict[str, Tensor]:
    """Scalar Fourier properties of each run from its frequency shares (R, K); each (R,)."""
    key = key_frequencies(shares, mass)
    out = {
        "n_key_freqs": key.sum(-1).float(),
        "dominant_freq": (shares.argmax(-1) + 1).float(),
        "fourier_eff_freqs": 1.0 / shares.square().sum(-1),
        "top5_power": shares.topk(min(5, shares.shape[-1]), dim=-1).values.sum(-1),
    }
    out.update({f"freq_power/{k + 1}": shares[:, k] for k in range(shares.shape[-1])})
    return out


# --- the task ---------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class ModularAddition(Task):
    """See the module docstring. ``p`` and ``key_mass`` are kept for the Fourier properties."""

    p: int = 97
    key_mass: float = 0.6

    def embedding_weights(self, model: Model, params: Params) -> tuple[Tensor, int]:
        """The weights through which the first nonlinearity reads the tokens, and their token axis.

        ``fc0.weight`` for an MLP, ``fc1.weight @ fc0.weight`` when its first layer is linear (the
        ``sum`` input's embedding followed by the first ReLU layer), ``embed.W_E`` for a
        transformer. For ``onehot`` the columns of a and of b are stacked as two rows per unit.
        """
        for name, axis in EMBEDDING_WEIGHTS.items():
            if name not in params:
                continue
            w = params[name]
            acts = getattr(model, "activations", None)
            if name == "fc0.weight" and acts and acts[0] == "identity" and "fc1.weight" in params:
                w = torch.bmm(params["fc1.weight"], w)  # (R, h1, d_in)
            if name == "fc0.weight" and w.shape[-1] == 2 * self.p:  # (R, h, 2p): a's and b's columns
                w = w.unflatten(-1, (2, self.p))  # (R, h, 2, p)
            return w, axis
        raise PathdepError(
            f"The modular task reads Fourier structure from one of {sorted(EMBEDDING_WEIGHTS)}; "
            f"the model's parameters are {sorted(params)}."
        )

    def extra_properties(self, model: Model, params: Params) -> dict[str, Tensor]:
        w, axis = self.embedding_weights(model, params)
        shares = frequency_shares(fourier_power(w.detach(), self.p, axis))
        return fourier_summary(shares, self.key_mass)


def encode(a: Tensor, b: Tensor, p: int, kind: str) -> Tensor:
    """Model inputs for pairs (a, b): (N,) each -> (N, 2p), (N, p) float or (N, 3) long."""
    if kind == "tokens":
        return torch.stack([a, b, torch.full_like(a, p)], dim=1)
    oa = torch.nn.functional.one_hot(a, p).float()
    ob = torch.nn.functional.one_hot(b, p).float()
    return torch.cat([oa, ob], dim=1) if kind == "onehot" else oa + ob


def split_pairs(p: int, train_fraction: float, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """All ordered pairs (a, b) and a train mask that keeps (a, b) and (b, a) on the same side.

    Returns a, b (p*p,) and ``train`` (p*p,) bool: a ``train_fraction`` of the unordered pairs
    {a, b}, chosen by ``seed``, so commutativity alone gives no test accuracy.
    """
    a, b = torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij")
    a, b = a.flatten(), b.flatten()  # (p*p,)
    key = torch.minimum(a, b) * p + torch.maximum(a, b)  # the unordered pair
    unordered = key.unique()  # (p*(p+1)/2,), sorted
    n_train = int(round(train_fraction * len(unordered)))
    if not 0 < n_train < len(unordered):
        raise PathdepError(
            f"The 'task_args.train_fraction' field must leave train and test pairs for p={p}. Got {train_fraction} instead."
        )
    chosen = unordered[torch.randperm(len(unordered), generator=torch.Generator().manual_seed(seed))[:n_train]]
    return a, b, torch.isin(key, chosen)


def build(args: ModularArgs) -> ModularAddition:
    p = args.p
    a, b, train = split_pairs(p, args.train_fraction, args.seed)
    x, y = encode(a, b, p, args.input), (a + b) % p
    split = lambda m: Split(x[m], y[m], {"a": a[m], "b": b[m]})  # noqa: E731
    return ModularAddition(
        name="modular",
        train=split(train),
        test=split(~train),
        probes={},
        n_outputs=p,
        loss_kind="ce",
        solution_property="dominant_freq",
        doc=__doc__.splitlines()[0],
        p=p,
        key_mass=args.key_mass,
    )
