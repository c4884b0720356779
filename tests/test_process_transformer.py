"""The small transformer: oracle forward, permutation symmetry, packing invariance, ablation."""

import math

import pytest
import torch
from torch.nn import functional as F

from pathdep.errors import PathdepError
from pathdep.models import capture
from pathdep.models.base import stack, unstack
from pathdep.models.transformer import Transformer, TransformerArgs, build_transformer
from pathdep.registry import MODELS


def _model(d_mlp: int = 0, **kw) -> Transformer:
    """Weights at std 0.3 so that attention is far from uniform and every head matters."""
    return Transformer(d_vocab=11, n_ctx=9, d_model=16, n_layers=2, n_heads=4, d_mlp=d_mlp, init_std=0.3, **kw)


def _tokens(r: int, b: int = 3, t: int = 9, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 11, (r, b, t), generator=torch.Generator().manual_seed(seed))


def _reference(m: Transformer, p: dict, x: torch.Tensor) -> torch.Tensor:
    """One run, written the plain way: nn.functional layers and torch's own causal attention."""
    t = x.shape[-1]
    h = p["embed.W_E"][x] + p["pos_embed.W_pos"][:t]  # (B, T, d)
    for l in range(m.n_layers):
        a = f"blocks.{l}"
        n = F.layer_norm(h, (m.d_model,), p[f"{a}.ln1.w"], p[f"{a}.ln1.b"])
        q, k, v = (torch.einsum("btd,hde->bhte", n, p[f"{a}.attn.W_{c}"]) for c in "QKV")
        z = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, dh)
        h = h + torch.einsum("bhte,hed->btd", z, p[f"{a}.attn.W_O"])
        if m.d_mlp:
            n = F.layer_norm(h, (m.d_model,), p[f"{a}.ln2.w"], p[f"{a}.ln2.b"])
            post = F.gelu(n @ p[f"{a}.mlp.W_in"] + p[f"{a}.mlp.b_in"])
            h = h + post @ p[f"{a}.mlp.W_out"] + p[f"{a}.mlp.b_out"]
    h = F.layer_norm(h, (m.d_model,), p["ln_final.w"], p["ln_final.b"])
    return h @ p["unembed.W_U"] + p["unembed.b_U"]


def _perturbed(m: Transformer, seeds: list[int]) -> dict:
    """A population with non-trivial LayerNorm gains and biases (init has ones and zeros)."""
    p = m.init_population(seeds)
    g = torch.Generator().manual_seed(99)
    return {k: v + 0.3 * torch.randn(v.shape, generator=g) if k.endswith((".w", ".b", "b_in", "b_out", "b_U")) else v
            for k, v in p.items()}


@pytest.mark.parametrize("d_mlp", [0, 24])
def test_forward_matches_plain_reference(d_mlp):
    m = _model(d_mlp)
    p = _perturbed(m, [0, 1, 2])
    x = _tokens(3)
    out = m.apply(p, x)
    assert out.shape == (3, 3, 9, 11)
    for r, pr in enumerate(unstack(p)):
        torch.testing.assert_close(out[r], _reference(m, pr, x[r]), atol=1e-5, rtol=1e-5)


def _permute(spec, params, perms):
    out = dict(params)
    for name, uses in spec.axes.items():
        for pname, axis in uses:
            out[pname] = out[pname].index_select(axis + 1, perms[name])  # +1: the run axis
    return out


@pytest.mark.parametrize("d_mlp", [0, 24])
def test_random_permutation_under_the_spec_keeps_the_function(d_mlp):
    m = _model(d_mlp)
    p = _perturbed(m, [0, 1])
    spec = m.permutation_spec
    shapes = m.param_shapes()
    g = torch.Generator().manual_seed(5)
    perms = {}
    for name, uses in spec.axes.items():
        sizes = {shapes[pn][ax] for pn, ax in uses}
        assert len(sizes) == 1, f"{name} acts on axes of different sizes {sizes}"
        perms[name] = torch.randperm(sizes.pop(), generator=g)
    q = _permute(spec, p, perms)
    changed = [k for k in p if not torch.equal(p[k], q[k])]
    assert len(changed) >= len(p) - 1  # every tensor is touched (b_U has no permutable axis)
    x = _tokens(2)
    torch.testing.assert_close(m.apply(q, x), m.apply(p, x), atol=1e-5, rtol=1e-5)
    # a permutation outside the symmetry (rows of W_Q only) does change the function
    bad = dict(p)
    bad["blocks.1.attn.W_Q"] = p["blocks.1.attn.W_Q"].index_select(2, torch.randperm(16, generator=g))
    assert not torch.allclose(m.apply(bad, x), m.apply(p, x), atol=1e-4)


def _train(m: Transformer, seeds: list[int], steps: int = 5):
    p = {k: v.clone().requires_grad_() for k, v in m.init_population(seeds).items()}
    opt = torch.optim.Adam(p.values(), lr=1e-2)
    x = _tokens(1, b=4, t=9, seed=1).expand(len(seeds), -1, -1)
    grads = None
    for _ in range(steps):
        logits = m.apply(p, x)
        loss = F.cross_entropy(logits[:, :, :-1].flatten(0, 2), x[:, :, 1:].flatten(), reduction="none")
        opt.zero_grad()
        loss.view(len(seeds), -1).mean(1).sum().backward()
        grads = {k: v.grad.clone() for k, v in p.items()}
        opt.step()
    return logits.detach(), grads, {k: v.detach() for k, v in p.items()}


@pytest.mark.parametrize("d_mlp", [0, 24])
def test_a_runs_bits_do_not_depend_on_the_population(d_mlp):
    m = _model(d_mlp)
    alone = _train(m, [7])
    packed = _train(m, [3, 7, 1, 2])
    for a, b in zip(alone, packed):
        if isinstance(a, dict):
            for k in a:
                assert torch.equal(a[k][0], b[k][1]), k
        else:
            assert torch.equal(a[0], b[1])


def test_hooks_have_documented_shapes_and_names():
    m = _model(24)
    p = m.init_population([0, 1])
    with capture() as acts:
        m.apply(p, _tokens(2, t=7))
    assert set(acts) == set(m.hook_names)
    assert acts["blocks.1.attn.hook_pattern"].shape == (2, 3, 4, 7, 7)
    assert acts["blocks.0.attn.hook_z"].shape == (2, 3, 7, 4, 4)
    assert acts["blocks.0.mlp.hook_post"].shape == (2, 3, 7, 24)
    assert acts["blocks.1.hook_resid_post"].shape == (2, 3, 7, 16)
    pat = acts["blocks.0.attn.hook_pattern"]
    torch.testing.assert_close(pat.sum(-1), torch.ones(2, 3, 4, 7))
    assert pat.triu(1).abs().max() == 0  # causal


def test_causal_future_tokens_do_not_change_earlier_logits():
    m = _model(24)
    p = m.init_population([0])
    x = _tokens(1)
    y = x.clone()
    y[..., 5:] = (y[..., 5:] + 1) % 11
    a, b = m.apply(p, x), m.apply(p, y)
    assert torch.equal(a[..., :5, :], b[..., :5, :])
    assert not torch.allclose(a[..., 5:, :], b[..., 5:, :])


def test_head_mask_zero_equals_removing_the_heads_output_weights():
    m = _model(24)
    p = _perturbed(m, [0, 1])
    x = _tokens(2)
    mask = torch.ones(2, 2, 4)
    mask[0, 1, 2] = 0  # run 0: ablate head 2 of layer 1
    mask[1, 0, :] = 0  # run 1: ablate all of layer 0
    q = {k: v.clone() for k, v in p.items()}
    q["blocks.1.attn.W_O"][0, 2] = 0
    q["blocks.0.attn.W_O"][1] = 0
    torch.testing.assert_close(m.apply(p, x, head_mask=mask), m.apply(q, x))
    assert torch.equal(m.apply(p, x, head_mask=torch.ones(2, 4)), m.apply(p, x))
    heads = [("blocks.0.attn.hook_z", 4, 2), ("blocks.1.attn.hook_z", 4, 2)]
    mlps = [(f"blocks.{l}.mlp.hook_post", m.d_mlp, 2) for l in range(2)] if m.d_mlp else []
    assert m.components() == heads + mlps
    with pytest.raises(PathdepError, match="head_mask"):
        m.apply(p, x, head_mask=torch.ones(4, 2))


def test_pool_last_reads_out_the_last_position():
    full = _model(24)
    pooled = _model(24, pool="last")
    p = full.init_population([0, 1])
    x = _tokens(2)
    torch.testing.assert_close(pooled.apply(p, x), full.apply(p, x)[:, :, -1])


def test_init_is_normal_002_and_drawn_from_the_generator_only():
    m = Transformer(d_vocab=50, n_ctx=40, d_model=64, n_layers=1, n_heads=4)
    a = m.init(torch.Generator().manual_seed(3))
    b = m.init(torch.Generator().manual_seed(3))
    assert all(torch.equal(a[k], b[k]) for k in a)
    w = torch.cat([a[k].flatten() for k in a if "W_" in k])
    assert abs(w.std().item() - 0.02) < 0.001 and abs(w.mean().item()) < 0.001
    assert torch.equal(a["blocks.0.ln1.w"], torch.ones(64)) and torch.equal(a["unembed.b_U"], torch.zeros(50))
    pop = m.init_population([3, 4])
    assert torch.equal(pop["embed.W_E"][0], a["embed.W_E"])


def test_registry_builds_from_args_and_rejects_bad_ones():
    entry = MODELS["transformer"]
    m = entry.build(entry.args(n_layers=1, d_model=32, n_heads=2, d_mlp=64), (40,), 64)
    assert (m.n_ctx, m.d_vocab, m.d_vocab_out, m.d_head) == (40, 64, 64, 16)
    with pytest.raises(ValueError, match="multiple of n_heads"):
        TransformerArgs(d_model=30, n_heads=4)
    with pytest.raises(ValueError):
        TransformerArgs(n_layer=2)  # misspelt field
    with pytest.raises(PathdepError, match="n_ctx"):
        build_transformer(TransformerArgs(n_ctx=10), (40,), 64)
    with pytest.raises(PathdepError, match="Token ids"):
        m.apply(m.init_population([0]), torch.full((1, 2, 5), 64))
    with pytest.raises(PathdepError, match="n_ctx"):
        m.apply(m.init_population([0]), torch.zeros(1, 2, 41, dtype=torch.long))
    assert math.isclose(sum(math.prod(s) for s in m.param_shapes().values()),
                        sum(v[0].numel() for v in m.init_population([0]).values()))
    assert stack(unstack(m.init_population([0, 1])))["embed.W_E"].shape == (2, 64, 32)
