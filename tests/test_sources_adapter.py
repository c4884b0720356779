"""The nn.Module adapter on tiny random transformers models (GPT-NeoX, GPT-2, BERT).

Oracles: each module called on its own; the module's own ``hidden_states``; the same module with
an MLP unit removed by hand; the architecture's permutation symmetry.
"""

import pytest
import torch
import transformers

from pathdep.measure.align import apply_permutation
from pathdep.models.base import capture, edit
from pathdep.sources.module import transformer_model

VOCAB, D, LAYERS, HEADS, D_MLP, CTX = 128, 16, 2, 2, 24, 32


def tiny_config(kind: str):
    """Config of a tiny random model of ``kind`` ("gpt_neox", "gpt2" or "bert")."""
    builders = {
        "gpt_neox": lambda: transformers.GPTNeoXConfig(
            vocab_size=VOCAB, hidden_size=D, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
            intermediate_size=D_MLP, max_position_embeddings=CTX, bos_token_id=0, eos_token_id=0),
        "gpt2": lambda: transformers.GPT2Config(
            vocab_size=VOCAB, n_embd=D, n_layer=LAYERS, n_head=HEADS, n_inner=D_MLP, n_positions=CTX,
            bos_token_id=0, eos_token_id=0),
        "bert": lambda: transformers.BertConfig(
            vocab_size=VOCAB, hidden_size=D, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
            intermediate_size=D_MLP, max_position_embeddings=CTX),
    }
    return builders[kind]()


CLASSES = {"gpt_neox": "GPTNeoXForCausalLM", "gpt2": "GPT2LMHeadModel", "bert": "BertForMaskedLM"}
MLP_DOWN = {  # (the down projection's weight, the axis of the MLP units in it)
    "gpt_neox": ("gpt_neox.layers.{l}.mlp.dense_4h_to_h.weight", 1),
    "gpt2": ("transformer.h.{l}.mlp.c_proj.weight", 0),
    "bert": ("bert.encoder.layer.{l}.output.dense.weight", 1),
}


def tiny_model(kind: str, seed: int):
    torch.manual_seed(seed)  # test fixture: random weights of a known seed
    return getattr(transformers, CLASSES[kind])(tiny_config(kind)).eval()


def _population(kind: str, n: int = 3):
    modules = [tiny_model(kind, 10 + s) for s in range(n)]
    model = transformer_model(tiny_model(kind, 0), modules[0].config)
    return modules, model, model.stack([dict(m.named_parameters()) for m in modules])


@pytest.mark.parametrize("kind", list(CLASSES))
def test_apply_over_a_population_equals_each_module_and_hooks_equal_hidden_states(kind):
    modules, model, params = _population(kind)
    x = torch.randint(0, VOCAB, (3, 4, 9), generator=torch.Generator().manual_seed(1))
    with capture(None) as acts, torch.no_grad():
        logits = model.apply(params, x)
    blocks = [h for h in model.hooks if h.rsplit(".", 1)[-1].isdigit()]
    assert len(blocks) == LAYERS
    for r, m in enumerate(modules):
        with torch.no_grad():
            out = m(x[r], output_hidden_states=True)
        torch.testing.assert_close(logits[r], out.logits, rtol=1e-5, atol=1e-5)
        hs = out.hidden_states  # embeddings, then after each block (the last one after the final norm)
        torch.testing.assert_close(acts[model.hooks[0]][r], hs[0])
        for l, name in enumerate(blocks[:-1]):
            torch.testing.assert_close(acts[name][r], hs[l + 1], rtol=1e-5, atol=1e-5)
        last = model.hooks[-1] if kind != "bert" else blocks[-1]
        torch.testing.assert_close(acts[last][r], hs[-1], rtol=1e-5, atol=1e-5)
    assert acts["logits"].shape == (3, 4, 9, VOCAB)


@pytest.mark.parametrize("kind", list(CLASSES))
def test_mlp_unit_permutation_leaves_the_function_unchanged(kind):
    _, model, params = _population(kind, 2)
    spec = model.permutation_spec
    assert sorted(spec.axes) == [f"mlp{l}" for l in range(LAYERS)]
    gen = torch.Generator().manual_seed(3)
    perms = {p: torch.stack([torch.randperm(D_MLP, generator=gen) for _ in range(2)]) for p in spec.axes}
    permuted = apply_permutation(spec, params, perms)
    assert not torch.equal(permuted[spec.axes["mlp0"][0][0]], params[spec.axes["mlp0"][0][0]])
    x = torch.randint(0, VOCAB, (2, 3, 7), generator=gen)
    with torch.no_grad():
        torch.testing.assert_close(model.apply(permuted, x), model.apply(params, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", list(CLASSES))
def test_an_edit_of_an_mlp_unit_equals_removing_the_unit_from_the_weights(kind):
    modules, model, params = _population(kind, 2)
    layer, unit = 1, 5
    act = model.components()[layer][0]
    x = torch.randint(0, VOCAB, (2, 3, 7), generator=torch.Generator().manual_seed(4))

    def zero_unit(t):  # (R, B, T, d_mlp)
        t = t.clone()
        t[..., unit] = 0
        return t

    with edit({act: zero_unit}), capture({act}) as acts, torch.no_grad():
        edited = model.apply(params, x)
    assert (acts[act][..., unit] == 0).all()
    name, axis = MLP_DOWN[kind]
    name = name.format(l=layer)
    cut = {k: v.clone() for k, v in params.items()}
    cut[name].select(axis + 1, unit).zero_()  # the unit's outgoing weights
    with torch.no_grad():
        torch.testing.assert_close(edited, model.apply(cut, x), rtol=1e-5, atol=1e-5)
        assert not torch.allclose(edited, model.apply(params, x))


def test_readout_reads_one_position_and_components_list_the_mlp_units():
    modules, _, _ = _population("bert", 1)
    model = transformer_model(tiny_model("bert", 0), modules[0].config, readout=3)
    params = model.stack([dict(modules[0].named_parameters())])
    x = torch.randint(0, VOCAB, (1, 2, 7), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        out = model.apply(params, x)
        torch.testing.assert_close(out[0], modules[0](x[0]).logits[:, 3], rtol=1e-5, atol=1e-5)
    assert model.components() == [(f"bert.encoder.layer.{l}.intermediate.intermediate_act_fn", D_MLP, 2)
                                  for l in range(LAYERS)]
