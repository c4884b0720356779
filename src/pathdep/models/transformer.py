"""Small decoder-only transformer over stacked parameters (TransformerLens names and layouts).

Parameters (each with a leading run axis R in a population; shapes below are one run's):

    embed.W_E (V, d)            pos_embed.W_pos (n_ctx, d)
    blocks.{l}.ln1.w, .b (d)    blocks.{l}.attn.W_Q, W_K, W_V (H, d, d_head)   W_O (H, d_head, d)
    blocks.{l}.ln2.w, .b (d)    blocks.{l}.mlp.W_in (d, d_mlp)  b_in (d_mlp)  W_out (d_mlp, d)  b_out (d)
    ln_final.w, .b (d)          unembed.W_U (d, V_out)  b_U (V_out)

``ln2`` and ``mlp`` exist only when ``d_mlp > 0`` (``d_mlp = 0`` is attention-only). Blocks are
pre-LayerNorm with a causal mask and learned positions; attention has no Q/K/V/O biases. Init is
N(0, init_std) for every matrix, zeros for biases, ones for LayerNorm gains.

Input is (R, B, T) token ids with T <= n_ctx. With ``pool = "none"`` the output is next-token
logits (R, B, T, V_out); with ``pool = "last"`` only the last position is read out, (R, B, V_out),
which makes the model a sequence classifier (a plain ``ce`` task works on it unchanged).

Hook points (shapes in a population):

    hook_embed, blocks.{l}.hook_resid_pre (R, B, T, d); hook_pos_embed (R, 1, T, d)
    blocks.{l}.ln1.hook_normalized                                     (R, B, T, d)
    blocks.{l}.attn.hook_q / hook_k / hook_v / hook_z                  (R, B, T, H, d_head)
    blocks.{l}.attn.hook_attn_scores / hook_pattern                    (R, B, H, T, T)
    blocks.{l}.hook_attn_out, blocks.{l}.hook_resid_mid                (R, B, T, d)
    blocks.{l}.ln2.hook_normalized, blocks.{l}.hook_mlp_out            (R, B, T, d)
    blocks.{l}.mlp.hook_pre / hook_post                                (R, B, T, d_mlp)
    blocks.{l}.hook_resid_post, ln_final.hook_normalized               (R, B, T, d)
    logits                                                             (R, B, T, V_out) or (R, B, V_out)

Head ablation: :meth:`Transformer.components` lists the ablatable units as
``[("blocks.{l}.attn", n_heads), ...]``; ``apply(params, x, head_mask=m)`` with ``m`` of shape
(R, n_layers, n_heads) (or (n_layers, n_heads), shared by all runs) multiplies each head's output
``hook_z`` by its mask entry: 0 removes the head (zero ablation), 1 keeps it. A population of
ablations is a population: repeat one run's params and give each copy its own mask row.

Permutation symmetries (:attr:`Transformer.permutation_spec`): one permutation of the residual
stream (``resid``, acting on every d axis, LayerNorm gains and biases included, since LayerNorm
commutes with a coordinate permutation), per layer one permutation of the heads
(``blocks.{l}.heads``), one permutation of the query/key dimensions shared by all heads of the
layer (``blocks.{l}.qk``), one of the value/output dimensions (``blocks.{l}.ov``), and one of the
MLP hidden units (``blocks.{l}.mlp``). The spec lists whole tensor axes, so head dimensions are
permuted alike in every head of a layer; each head's own permutation is also a symmetry, but
matching heads first is what weight matching needs, and within a head Q/K (and V/O) are related
by any invertible map, not only a permutation. The spec also names the activation axes each
permutation reorders: activation matching solves ``resid`` on the residual stream, the heads of a
layer on their attention patterns, then the head dimensions on q, k, v and z, and the MLP units
on their pre- and post-activations.

Every product is one batched matmul over the run axis (``bmm``/``baddbmm``/``matmul`` with the
run axis folded into the batch), so a run's forward and gradient bits do not depend on how many
runs share the call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor
from torch.nn import functional as F

from pathdep.errors import PathdepError, bad_value
from pathdep.models.base import Params, PermutationSpec, hook, init_population

LN_EPS = 1e-5


@dataclass(frozen=True)
class Transformer:
    """Decoder-only transformer; see the module docstring.

    >>> m = Transformer(d_vocab=10, n_ctx=8, d_model=16, n_layers=1, n_heads=2)
    >>> p = m.init_population([0, 1])
    >>> tuple(m.apply(p, torch.zeros(2, 3, 8, dtype=torch.long)).shape)
    (2, 3, 8, 10)
    """

    d_vocab: int
    n_ctx: int
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    d_head: int | None = None  # default d_model // n_heads
    d_mlp: int = 0  # 0: attention-only
    d_vocab_out: int | None = None  # default d_vocab
    pool: Literal["none", "last"] = "none"
    init_std: float = 0.02

    def __post_init__(self) -> None:
        if self.d_head is None:
            if self.d_model % self.n_heads:
                raise bad_value("d_model", self.d_model, f"a multiple of n_heads={self.n_heads} (or set d_head)")
            object.__setattr__(self, "d_head", self.d_model // self.n_heads)
        if self.d_vocab_out is None:
            object.__setattr__(self, "d_vocab_out", self.d_vocab)

    # --- structure as data ------------------------------------------------------------------
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """One run's parameter names and shapes, in init order."""
        d, h, dh, m = self.d_model, self.n_heads, self.d_head, self.d_mlp
        shapes: dict[str, tuple[int, ...]] = {"embed.W_E": (self.d_vocab, d), "pos_embed.W_pos": (self.n_ctx, d)}
        for l in range(self.n_layers):
            p = f"blocks.{l}"
            shapes |= {f"{p}.ln1.w": (d,), f"{p}.ln1.b": (d,)}
            shapes |= {f"{p}.attn.W_{n}": (h, d, dh) for n in "QKV"}
            shapes[f"{p}.attn.W_O"] = (h, dh, d)
            if m:
                shapes |= {f"{p}.ln2.w": (d,), f"{p}.ln2.b": (d,)}
                shapes |= {f"{p}.mlp.W_in": (d, m), f"{p}.mlp.b_in": (m,)}
                shapes |= {f"{p}.mlp.W_out": (m, d), f"{p}.mlp.b_out": (d,)}
        shapes |= {"ln_final.w": (d,), "ln_final.b": (d,)}
        shapes |= {"unembed.W_U": (d, self.d_vocab_out), "unembed.b_U": (self.d_vocab_out,)}
        return shapes

    @property
    def hook_names(self) -> tuple[str, ...]:
        names = ["hook_embed", "hook_pos_embed"]
        for l in range(self.n_layers):
            p = f"blocks.{l}"
            names += [f"{p}.hook_resid_pre", f"{p}.ln1.hook_normalized"]
            names += [f"{p}.attn.{n}" for n in ("hook_q", "hook_k", "hook_v", "hook_attn_scores", "hook_pattern", "hook_z")]
            names.append(f"{p}.hook_attn_out")
            if self.d_mlp:
                names += [f"{p}.hook_resid_mid", f"{p}.ln2.hook_normalized", f"{p}.mlp.hook_pre"]
                names += [f"{p}.mlp.hook_post", f"{p}.hook_mlp_out"]
            names.append(f"{p}.hook_resid_post")
        return (*names, "ln_final.hook_normalized", "logits")

    @property
    def representation_hooks(self) -> tuple[str, ...]:
        """The activations representation similarity compares: the residual stream after each block."""
        return tuple(f"blocks.{l}.hook_resid_post" for l in range(self.n_layers))

    @property
    def permutation_spec(self) -> PermutationSpec:
        shapes = self.param_shapes()
        resid = [("embed.W_E", 1), ("pos_embed.W_pos", 1), ("unembed.W_U", 0)]
        resid += [(n, 0) for n in shapes if n.endswith((".w", ".b", "mlp.b_out"))]
        resid += [(n, 0) for n in shapes if n.endswith("mlp.W_in")]
        resid += [(n, 1) for n in shapes if n.endswith(("attn.W_Q", "attn.W_K", "attn.W_V", "mlp.W_out"))]
        resid += [(n, 2) for n in shapes if n.endswith("attn.W_O")]
        axes: dict[str, tuple[tuple[str, int], ...]] = {"resid": tuple(resid)}
        resid_hooks = [n for n in self.hook_names if n.endswith(self._RESID_HOOKS)]
        acts: dict[str, tuple[tuple[str, int], ...]] = {"resid": tuple((n, 2) for n in resid_hooks)}  # (B, T, d)
        for l in range(self.n_layers):
            a = f"blocks.{l}.attn"
            axes[f"blocks.{l}.heads"] = tuple((f"{a}.W_{n}", 0) for n in "QKVO")
            axes[f"blocks.{l}.qk"] = ((f"{a}.W_Q", 2), (f"{a}.W_K", 2))
            axes[f"blocks.{l}.ov"] = ((f"{a}.W_V", 2), (f"{a}.W_O", 1))
            # heads first, read from the pattern (B, H, T, T); then the head dims of q, k, v, z (B, T, H, dh)
            acts[f"blocks.{l}.heads"] = ((f"{a}.hook_pattern", 1), *((f"{a}.hook_{n}", 2) for n in "qkvz"))
            acts[f"blocks.{l}.qk"] = ((f"{a}.hook_q", 3), (f"{a}.hook_k", 3))
            acts[f"blocks.{l}.ov"] = ((f"{a}.hook_v", 3), (f"{a}.hook_z", 3))
            if self.d_mlp:
                mlp = f"blocks.{l}.mlp"
                axes[f"blocks.{l}.mlp"] = ((f"{mlp}.W_in", 1), (f"{mlp}.b_in", 0), (f"{mlp}.W_out", 0))
                acts[f"blocks.{l}.mlp"] = ((f"{mlp}.hook_pre", 2), (f"{mlp}.hook_post", 2))  # (B, T, d_mlp)
        return PermutationSpec(axes, acts)

    #: Hooks that carry the residual stream (B, T, d), which the ``resid`` permutation reorders.
    _RESID_HOOKS = ("hook_embed", "hook_pos_embed", "hook_resid_pre", "ln1.hook_normalized", "hook_attn_out",
                    "hook_resid_mid", "ln2.hook_normalized", "hook_mlp_out", "hook_resid_post", "ln_final.hook_normalized")

    def components(self) -> list[tuple[str, int, int]]:
        """Ablatable units as ``(hook, n_units, unit axis without the run axis)``: the heads of each
        layer (axis 2 of ``hook_z`` (B, T, H, d_head)) and, with an MLP, its hidden units."""
        heads = [(f"blocks.{l}.attn.hook_z", self.n_heads, 2) for l in range(self.n_layers)]
        mlps = [(f"blocks.{l}.mlp.hook_post", self.d_mlp, 2) for l in range(self.n_layers)] if self.d_mlp else []
        return heads + mlps

    # --- parameters -------------------------------------------------------------------------
    def init(self, gen: torch.Generator) -> Params:
        """N(0, init_std) matrices, zero biases, unit LayerNorm gains; drawn only from ``gen``."""
        params: Params = {}
        for name, shape in self.param_shapes().items():
            if name.endswith(".w"):
                params[name] = torch.ones(shape)
            elif name.endswith((".b", ".b_in", ".b_out", ".b_U")):
                params[name] = torch.zeros(shape)
            else:
                params[name] = torch.randn(shape, generator=gen) * self.init_std
        return params

    def init_population(self, seeds: list[int]) -> Params:
        return init_population(self, seeds)

    # --- forward ----------------------------------------------------------------------------
    def apply(self, params: Params, x: Tensor, head_mask: Tensor | None = None) -> Tensor:
        """Logits of a population: x (R, B, T) token ids -> (R, B, T, V_out), or (R, B, V_out) pooled."""
        r, b, t = x.shape
        if t > self.n_ctx:
            raise PathdepError(f"The sequence length must be at most n_ctx={self.n_ctx}. Got {t} instead.")
        mask = self._head_mask(head_mask, r)
        resid = self._embed(params, x)  # (R, B, T, d)
        causal = torch.full((t, t), float("-inf")).triu(1)  # (T, T): 0 where query t sees key <= t
        for l in range(self.n_layers):
            p = f"blocks.{l}"
            resid = hook(f"{p}.hook_resid_pre", resid)
            normed = hook(f"{p}.ln1.hook_normalized", _layer_norm(resid, params[f"{p}.ln1.w"], params[f"{p}.ln1.b"]))
            attn_out = self._attention(params, l, normed, causal, None if mask is None else mask[:, l])
            resid = resid + hook(f"{p}.hook_attn_out", attn_out)
            if self.d_mlp:
                resid = hook(f"{p}.hook_resid_mid", resid)
                normed = hook(f"{p}.ln2.hook_normalized", _layer_norm(resid, params[f"{p}.ln2.w"], params[f"{p}.ln2.b"]))
                resid = resid + hook(f"{p}.hook_mlp_out", self._mlp(params, l, normed))
            resid = hook(f"{p}.hook_resid_post", resid)
        if self.pool == "last":
            resid = resid[:, :, -1:]  # (R, B, 1, d)
        normed = hook("ln_final.hook_normalized", _layer_norm(resid, params["ln_final.w"], params["ln_final.b"]))
        logits = _linear(normed, params["unembed.W_U"], params["unembed.b_U"])  # (R, B, T', V_out)
        return hook("logits", logits[:, :, 0] if self.pool == "last" else logits)

    def _head_mask(self, head_mask: Tensor | None, r: int) -> Tensor | None:
        if head_mask is None:
            return None
        shape = (self.n_layers, self.n_heads)
        if tuple(head_mask.shape[-2:]) != shape or head_mask.dim() not in (2, 3):
            raise PathdepError(
                f"The 'head_mask' argument must have shape (R, {shape[0]}, {shape[1]}) or {shape}. "
                f"Got {tuple(head_mask.shape)} instead."
            )
        return head_mask.expand(r, *shape)

    def _embed(self, params: Params, x: Tensor) -> Tensor:
        w_e = params["embed.W_E"]  # (R, V, d)
        r, v, d = w_e.shape
        if x.min() < 0 or x.max() >= v:
            raise PathdepError(f"Token ids must be in [0, {v}). Got values in [{int(x.min())}, {int(x.max())}] instead.")
        offsets = (torch.arange(r) * v).view(r, 1, 1)
        tok = hook("hook_embed", F.embedding(x + offsets, w_e.reshape(r * v, d)))  # (R, B, T, d)
        pos = hook("hook_pos_embed", params["pos_embed.W_pos"][:, : x.shape[2]].unsqueeze(1))  # (R, 1, T, d)
        return tok + pos

    def _attention(self, params: Params, l: int, h: Tensor, causal: Tensor, mask: Tensor | None) -> Tensor:
        a = f"blocks.{l}.attn"
        r, b, t, d = h.shape
        nh, dh = self.n_heads, self.d_head
        w_qkv = torch.cat([params[f"{a}.W_Q"], params[f"{a}.W_K"], params[f"{a}.W_V"]], dim=1)  # (R, 3H, d, dh)
        w_qkv = w_qkv.permute(0, 2, 1, 3).reshape(r, d, 3 * nh * dh)  # (R, d, 3*H*dh)
        qkv = torch.bmm(h.reshape(r, b * t, d), w_qkv).view(r, b, t, 3, nh, dh)
        q = hook(f"{a}.hook_q", qkv[:, :, :, 0])  # (R, B, T, H, dh)
        k = hook(f"{a}.hook_k", qkv[:, :, :, 1])
        v = hook(f"{a}.hook_v", qkv[:, :, :, 2])
        qh = q.permute(0, 1, 3, 2, 4).reshape(r * b * nh, t, dh)  # (R*B*H, T, dh)
        kh = k.permute(0, 1, 3, 4, 2).reshape(r * b * nh, dh, t)  # (R*B*H, dh, T)
        scores = torch.baddbmm(causal, qh, kh, alpha=1 / math.sqrt(dh)).view(r, b, nh, t, t)  # (R, B, H, T, T)
        scores = hook(f"{a}.hook_attn_scores", scores)
        pattern = hook(f"{a}.hook_pattern", torch.softmax(scores, dim=-1))
        vh = v.permute(0, 1, 3, 2, 4).reshape(r * b * nh, t, dh)
        z = torch.bmm(pattern.view(r * b * nh, t, t), vh).view(r, b, nh, t, dh).transpose(2, 3)  # (R, B, T, H, dh)
        if mask is not None:
            z = z * mask.view(r, 1, 1, nh, 1)
        z = hook(f"{a}.hook_z", z)
        w_o = params[f"{a}.W_O"].reshape(r, nh * dh, d)  # (R, H*dh, d)
        return torch.bmm(z.reshape(r, b * t, nh * dh), w_o).view(r, b, t, d)

    def _mlp(self, params: Params, l: int, h: Tensor) -> Tensor:
        m = f"blocks.{l}.mlp"
        pre = hook(f"{m}.hook_pre", _linear(h, params[f"{m}.W_in"], params[f"{m}.b_in"]))
        post = hook(f"{m}.hook_post", F.gelu(pre))
        return _linear(post, params[f"{m}.W_out"], params[f"{m}.b_out"])


def _layer_norm(x: Tensor, w: Tensor, b: Tensor) -> Tensor:
    """Per-run affine LayerNorm over the last axis: x (R, ..., d), w and b (R, d)."""
    shape = (w.shape[0],) + (1,) * (x.dim() - 2) + (w.shape[1],)
    return F.layer_norm(x, x.shape[-1:], eps=LN_EPS) * w.view(shape) + b.view(shape)


def _linear(x: Tensor, w: Tensor, b: Tensor) -> Tensor:
    """x (R, ..., d_in) @ w (R, d_in, d_out) + b (R, d_out), one ``baddbmm`` over the run axis."""
    r = x.shape[0]
    flat = x.reshape(r, -1, x.shape[-1])  # (R, N, d_in)
    return torch.baddbmm(b.unsqueeze(1), flat, w).view(*x.shape[:-1], w.shape[-1])


class TransformerArgs(BaseModel):
    """Arguments of the ``transformer`` model family (the task gives sequence length and vocabulary)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    n_layers: int = Field(2, ge=1, description="number of blocks")
    d_model: int = Field(64, ge=1, description="residual stream width")
    n_heads: int = Field(4, ge=1, description="attention heads per block")
    d_head: int | None = Field(None, ge=1, description="per-head width; default d_model // n_heads")
    d_mlp: int = Field(0, ge=0, description="MLP hidden width; 0 = attention-only")
    n_ctx: int | None = Field(None, ge=1, description="longest sequence; default the task's sequence length")
    d_vocab: int | None = Field(None, ge=1, description="input vocabulary; default the task's n_outputs")
    pool: Literal["none", "last"] = Field("none", description="'last': classify from the last position")
    init_std: float = Field(0.02, gt=0, description="std of the normal init of every matrix")

    @model_validator(mode="after")
    def _check_heads(self) -> TransformerArgs:
        if self.d_head is None and self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be a multiple of n_heads ({self.n_heads}), or set d_head")
        return self


def build_transformer(args: TransformerArgs, in_shape: tuple[int, ...], n_outputs: int) -> Transformer:
    """Registry builder: ``in_shape`` is (T,) token ids; outputs are ``n_outputs`` logits per position."""
    if len(in_shape) != 1:
        raise bad_value("process.task", in_shape, "a task whose examples are token sequences of shape (T,)")
    n_ctx = args.n_ctx or in_shape[0]
    if n_ctx < in_shape[0]:
        raise bad_value("model_args.n_ctx", n_ctx, f"at least the task's sequence length {in_shape[0]}")
    return Transformer(
        d_vocab=args.d_vocab or n_outputs,
        n_ctx=n_ctx,
        d_model=args.d_model,
        n_layers=args.n_layers,
        n_heads=args.n_heads,
        d_head=args.d_head,
        d_mlp=args.d_mlp,
        d_vocab_out=n_outputs,
        pool=args.pool,
        init_std=args.init_std,
    )
