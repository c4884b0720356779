"""Any ``nn.Module`` as a pathdep model: a functional forward over stacked parameters.

:class:`ModuleModel` keeps one template module (never mutated) and runs it on a population with
``torch.func.vmap`` over ``torch.func.functional_call``: ``params`` holds the module's parameters
(``named_parameters`` names) with a leading run axis R, and ``apply(params, x)`` maps x (R, B, ...)
to logits (R, B, ...), exactly as calling each run's module on its own slice would.

Activations of named submodules are exposed through :func:`pathdep.models.hook` under the
submodule's path (e.g. ``gpt_neox.layers.0``). Forward hooks registered inside the vmapped
function store each output in a local dict that the function returns; the stored tensors (with
the run axis) are then passed to ``hook(name, t)`` outside vmap, in the order the modules ran.
When an :func:`pathdep.models.edit` changes one of them, the forward is run again with the
edited tensor injected at that module (a forward hook that returns it), so everything downstream
sees the edit: ablations work on adapted modules as on built-in families.

What is known of an architecture is data (:data:`ARCHITECTURES`, keyed by the Hugging Face
``config.model_type``): where its blocks, embedding output, final norm and MLP activations are,
and the permutation of MLP hidden units (rows of the up projection and its bias, columns of the
down projection), which leaves the function unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from pathdep.errors import PathdepError
from pathdep.models.base import Params, PermutationSpec, hook


@dataclass(frozen=True)
class Architecture:
    """Where things are in one transformers architecture; ``{l}`` stands for the layer index."""

    embed: str  # the module whose output is hidden_states[0]
    blocks: str  # the nn.ModuleList of blocks
    final: str | None  # the final norm (its output is hidden_states[-1] when present)
    mlp_act: str  # the MLP nonlinearity of layer l
    mlp_axes: tuple[tuple[str, int], ...]  # the axes one MLP-unit permutation of layer l acts on


ARCHITECTURES: dict[str, Architecture] = {
    "gpt_neox": Architecture(
        "gpt_neox.emb_dropout", "gpt_neox.layers", "gpt_neox.final_layer_norm", "gpt_neox.layers.{l}.mlp.act",
        (("gpt_neox.layers.{l}.mlp.dense_h_to_4h.weight", 0), ("gpt_neox.layers.{l}.mlp.dense_h_to_4h.bias", 0),
         ("gpt_neox.layers.{l}.mlp.dense_4h_to_h.weight", 1)),
    ),
    "gpt2": Architecture(  # GPT-2 uses Conv1D: weights are (in, out)
        "transformer.drop", "transformer.h", "transformer.ln_f", "transformer.h.{l}.mlp.act",
        (("transformer.h.{l}.mlp.c_fc.weight", 1), ("transformer.h.{l}.mlp.c_fc.bias", 0),
         ("transformer.h.{l}.mlp.c_proj.weight", 0)),
    ),
    "bert": Architecture(
        "bert.embeddings", "bert.encoder.layer", None, "bert.encoder.layer.{l}.intermediate.intermediate_act_fn",
        (("bert.encoder.layer.{l}.intermediate.dense.weight", 0), ("bert.encoder.layer.{l}.intermediate.dense.bias", 0),
         ("bert.encoder.layer.{l}.output.dense.weight", 1)),
    ),
}


def _first(out: Any) -> Tensor:
    return out[0] if isinstance(out, tuple) else out


def _logits(out: Any) -> Tensor:
    return out.logits if hasattr(out, "logits") else _first(out)


@dataclass(frozen=True, eq=False)
class ModuleModel:
    """A template module run functionally over stacked parameters; see the module docstring.

    ``readout`` picks one sequence position of the output (a masked-LM probe reads the masked
    position): logits (R, B, T, V) become (R, B, V). ``components_`` lists (hook, units, axis)
    for ablations; ``permutation_spec.activations`` names the activation axes each permutation reorders.

    >>> net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    >>> m = ModuleModel.of(net, hooks=("1",))
    >>> p = m.stack([net.state_dict(), net.state_dict()])
    >>> tuple(m.apply(p, torch.zeros(2, 5, 3)).shape)
    (2, 5, 2)
    """

    module: nn.Module
    hooks: tuple[str, ...]
    readout: int | None = None
    permutation_spec: PermutationSpec = field(default_factory=PermutationSpec)
    components_: tuple[tuple[str, int, int], ...] = ()

    @classmethod
    def of(cls, module: nn.Module, hooks: tuple[str, ...] | None = None, **kw: Any) -> ModuleModel:
        """Adapt ``module`` (put in eval mode). Default hooks: every leaf submodule."""
        module.eval()
        names = dict(module.named_modules())
        hooks = tuple(hooks) if hooks is not None else tuple(n for n, m in names.items() if n and not list(m.children()))
        missing = [h for h in hooks if h not in names]
        if missing:
            raise PathdepError(f"Module {type(module).__name__} has no submodule {missing[0]!r} to hook; "
                               f"its submodules are {sorted(n for n in names if n)[:20]}.")
        return cls(module, hooks, **kw)

    @property
    def hook_names(self) -> tuple[str, ...]:
        return (*self.hooks, "logits")

    def components(self) -> list[tuple[str, int, int]]:
        return list(self.components_)

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Names and shapes of one run's parameters (tied parameters appear once)."""
        return {k: tuple(v.shape) for k, v in self.module.named_parameters()}

    def params_of(self, module: nn.Module) -> Params:
        """One run's parameters read from a module of this architecture (detached float copies)."""
        return {k: v.detach().clone() for k, v in module.named_parameters()}

    def stack(self, states: list[Mapping[str, Tensor]]) -> Params:
        """A population from per-run state dicts (only this model's parameter names are kept)."""
        names = self.param_shapes()
        return {k: torch.stack([s[k].detach() for s in states]) for k in names}

    def init(self, gen: torch.Generator) -> Params:
        raise PathdepError(f"An adapted {type(self.module).__name__} has no init of its own; its parameters "
                           "come from the checkpoints it was imported or recorded with.")

    # --- forward ---------------------------------------------------------------------------
    def _forward(self, params: Params, x: Tensor, inject: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """One vmapped forward: logits (R, B, ...) and every hooked output (R, ...), in run order."""
        mods = dict(self.module.named_modules())

        def one(p: Params, xi: Tensor, inj: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
            store: dict[str, Tensor] = {}

            def grab(name: str) -> Callable:
                def fn(_m: nn.Module, _inp: Any, out: Any) -> Any:
                    if name in inj:  # replace the output, keeping a tuple's other entries
                        out = (inj[name], *out[1:]) if isinstance(out, tuple) else inj[name]
                    store[name] = _first(out)
                    return out

                return fn

            handles = [mods[n].register_forward_hook(grab(n)) for n in self.hooks]
            try:
                out = functional_call(self.module, p, (xi,))
            finally:
                for h in handles:
                    h.remove()
            logits = _logits(out)
            if self.readout is not None:
                logits = logits[:, self.readout]  # (B, V)
            return logits, store

        return vmap(one)(params, x, inject)

    def apply(self, params: Params, x: Tensor) -> Tensor:
        """Logits of every run: params (R, ...), x (R, B, ...) -> (R, B, ...)."""
        inject: dict[str, Tensor] = {}
        logits, acts = self._forward(params, x, inject)
        done: set[str] = set()
        while True:
            for name in [n for n in acts if n not in done]:  # in the order the modules ran
                done.add(name)
                t = acts[name]
                edited = hook(name, t)
                if edited is not t:  # an edit: rerun with it injected so downstream sees it
                    inject[name] = edited
                    logits, acts = self._forward(params, x, inject)
                    break
            else:
                return hook("logits", logits)


# --- transformers models -----------------------------------------------------------------------


def transformer_layout(module: nn.Module, config: Any) -> dict[str, Any]:
    """Hooks, components, permutation spec (parameter and activation axes) of a transformers model.

    Known architectures (:data:`ARCHITECTURES`) get the embedding output, every block's output,
    every MLP activation and the final norm, and a permutation of MLP units per layer; others get
    the outputs of their largest block list and no permutation.
    """
    arch = ARCHITECTURES.get(getattr(config, "model_type", ""))
    names = dict(module.named_modules())
    n_layers = int(getattr(config, "num_hidden_layers", 0) or getattr(config, "n_layer", 0))
    if arch is None:
        lists = [n for n, m in names.items() if isinstance(m, nn.ModuleList) and len(m) == n_layers]
        hooks = tuple(f"{lists[0]}.{i}" for i in range(n_layers)) if lists else ()
        return {"hooks": hooks}
    hooks: list[str] = [arch.embed]
    axes: dict[str, tuple[tuple[str, int], ...]] = {}
    comps, acts = [], {}
    for l in range(n_layers):
        act = arch.mlp_act.format(l=l)
        width = _mlp_width(module, arch, l)
        hooks += [act, f"{arch.blocks}.{l}"]
        comps.append((act, width, 2))  # (B, T, d_mlp): units on axis 2 without the run axis
        axes[f"mlp{l}"] = tuple((p.format(l=l), ax) for p, ax in arch.mlp_axes)
        acts[f"mlp{l}"] = ((act, 2),)  # (B, T, d_mlp): units on axis 2
    if arch.final is not None:
        hooks.append(arch.final)
    return {"hooks": tuple(hooks), "permutation_spec": PermutationSpec(axes, acts), "components_": tuple(comps)}


def _mlp_width(module: nn.Module, arch: Architecture, layer: int) -> int:
    name, axis = arch.mlp_axes[1]  # the up projection's bias: (d_mlp,)
    return dict(module.named_parameters())[name.format(l=layer)].shape[axis]


def transformer_model(module: nn.Module, config: Any, readout: int | None = None) -> ModuleModel:
    """A :class:`ModuleModel` of a transformers model with its architecture's hooks and symmetries.

    Attention runs in transformers' eager implementation: plain matmuls that vmap batches over
    runs (the fused CPU attention kernel has no batching rule and would loop over runs).
    """
    if hasattr(module, "set_attn_implementation"):
        module.set_attn_implementation("eager")
    return ModuleModel.of(module, readout=readout, **transformer_layout(module, config))
