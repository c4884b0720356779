"""CKA, debiased CKA and Procrustes distance against definitions and naive numpy references."""

import numpy as np
import pytest
import torch
from scipy.linalg import orthogonal_procrustes
from scipy.stats import ortho_group

from pathdep.errors import PathdepError
from pathdep.measure.similarity import cka, similarity_matrix, similarity_paired


def np_linear_cka(x, y):
    """Kornblith et al.: centred Gram matrices, HSIC = tr(K H L H)."""
    n = x.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    k, l = x @ x.T, y @ y.T
    hsic = lambda a, b: np.trace(a @ h @ b @ h)  # noqa: E731
    return hsic(k, l) / np.sqrt(hsic(k, k) * hsic(l, l))


def np_unbiased_hsic(k, l):
    """Song et al. (2012), eq. 5, on uncentred Gram matrices."""
    n = k.shape[0]
    k, l = k.copy(), l.copy()
    np.fill_diagonal(k, 0)
    np.fill_diagonal(l, 0)
    one = np.ones(n)
    term = np.trace(k @ l) + (one @ k @ one) * (one @ l @ one) / ((n - 1) * (n - 2)) - 2 / (n - 2) * one @ k @ l @ one
    return term / (n * (n - 3))


def np_debiased_cka(x, y):
    k, l = x @ x.T, y @ y.T
    return np_unbiased_hsic(k, l) / np.sqrt(np_unbiased_hsic(k, k) * np_unbiased_hsic(l, l))


def np_procrustes(x, y):
    """Distance after the best orthogonal map of centred, unit-norm x onto y (scipy's solver)."""
    x = x - x.mean(0)
    y = y - y.mean(0)
    x, y = x / np.linalg.norm(x), y / np.linalg.norm(y)
    if x.shape[1] < y.shape[1]:
        x = np.pad(x, ((0, 0), (0, y.shape[1] - x.shape[1])))
    elif y.shape[1] < x.shape[1]:
        y = np.pad(y, ((0, 0), (0, x.shape[1] - y.shape[1])))
    r, _ = orthogonal_procrustes(x, y)
    return np.linalg.norm(x @ r - y)


@pytest.fixture
def feats():
    g = torch.Generator().manual_seed(0)
    base = torch.randn(60, 5, generator=g)
    # three related representations of 60 examples with 8 features, not centred
    return torch.stack([base @ torch.randn(5, 8, generator=g) + torch.randn(60, 8, generator=g) * s + 3 for s in (0.1, 1, 3)])


def test_cka_of_a_representation_with_itself_is_one(feats):
    s = similarity_matrix(feats)
    assert torch.allclose(s["cka"].diagonal(), torch.ones(3, dtype=torch.float64))
    assert torch.allclose(s["cka_debiased"].diagonal(), torch.ones(3, dtype=torch.float64))
    assert s["procrustes"].diagonal().abs().max() < 1e-6


def test_invariant_to_orthogonal_maps_isotropic_scaling_and_neuron_permutation(feats):
    x, y = feats[0], feats[1]
    q = torch.from_numpy(ortho_group.rvs(8, random_state=1)).float()
    perm = torch.randperm(8, generator=torch.Generator().manual_seed(2))
    variants = [y @ q, 7.5 * y, y[:, perm], 0.01 * (y @ q)[:, perm] + 4]
    ref = similarity_matrix(x[None], y[None])
    for v in variants:
        got = similarity_matrix(x[None], v[None])
        for key in ("cka", "cka_debiased", "procrustes"):
            assert torch.allclose(got[key], ref[key], atol=1e-5), key


def test_not_invariant_to_a_general_invertible_linear_map(feats):
    x, y = feats[0], feats[1]
    a = torch.eye(8)
    a[0, 0] = 50.0  # invertible, far from orthogonal
    a[1, 0] = 3.0
    ref = cka(x[None], y[None])
    got = cka(x[None], (y @ a)[None])
    assert (got - ref).abs().item() > 0.05


def test_plain_and_debiased_cka_and_procrustes_match_numpy(feats):
    s = similarity_matrix(feats)
    f = feats.double().numpy()
    for i in range(3):
        for j in range(3):
            assert s["cka"][i, j].item() == pytest.approx(np_linear_cka(f[i], f[j]), abs=1e-10)
            assert s["cka_debiased"][i, j].item() == pytest.approx(np_debiased_cka(f[i], f[j]), abs=1e-10)
            assert s["procrustes"][i, j].item() == pytest.approx(np_procrustes(f[i], f[j]), abs=1e-6)


def test_wider_than_examples_and_different_widths_match_numpy():
    g = torch.Generator().manual_seed(3)
    xa = torch.randn(2, 12, 40, generator=g)  # 40 features > 12 examples
    xb = torch.randn(3, 12, 5, generator=g)
    s = similarity_matrix(xa, xb)
    assert s["cka"].shape == (2, 3)
    for i in range(2):
        for j in range(3):
            a, b = xa[i].double().numpy(), xb[j].double().numpy()
            assert s["cka"][i, j].item() == pytest.approx(np_linear_cka(a, b), abs=1e-10)
            assert s["cka_debiased"][i, j].item() == pytest.approx(np_debiased_cka(a, b), abs=1e-10)
            assert s["procrustes"][i, j].item() == pytest.approx(np_procrustes(a, b), abs=1e-6)


def test_batched_equals_per_pair_loop_and_paired_is_the_diagonal(feats):
    more = torch.cat([feats, feats.flip(2) * 2, torch.randn(1, 60, 8)])  # 7 members
    full = similarity_matrix(more)
    for i in range(7):
        for j in range(7):
            one = similarity_matrix(more[i : i + 1], more[j : j + 1])
            for key in full:  # Procrustes is sqrt(2 - 2 cos): rounding near 0 shows as ~1e-8
                tol = 1e-7 if key == "procrustes" else 1e-9
                assert full[key][i, j].item() == pytest.approx(one[key].item(), abs=tol)
    paired = similarity_paired(more, more.roll(1, 0))
    idx = torch.arange(7)
    for key in full:
        assert torch.allclose(paired[key], full[key][idx, (idx - 1) % 7], atol=1e-9)


def test_row_blocks_do_not_change_the_result(feats, monkeypatch):
    import pathdep.measure.similarity as sim

    whole = sim.similarity_matrix(feats)
    monkeypatch.setattr(sim, "BLOCK_BUDGET", 1)  # one row of members per block
    blocked = sim.similarity_matrix(feats)
    for key in whole:
        assert torch.allclose(whole[key], blocked[key], rtol=0, atol=1e-12)


def test_mismatched_examples_are_refused(feats):
    with pytest.raises(PathdepError, match="same examples"):
        similarity_matrix(feats, feats[:, :10])
