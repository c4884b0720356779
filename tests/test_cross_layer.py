"""Cross-layer linear CKA: against a per-pair reference, invariances, and `pathdep compare --layers`."""

import pytest
import torch

from pathdep.errors import PathdepError
from pathdep.measure.similarity import cross_layer_cka


def _naive_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Gram-matrix linear CKA of one pair (the textbook definition): x (N, d), y (N, e)."""
    x, y = x.double().flatten(1), y.double().flatten(1)
    n = x.shape[0]
    h = torch.eye(n, dtype=torch.float64) - 1.0 / n
    k, l = h @ x @ x.T @ h, h @ y @ y.T @ h
    return float((k * l).sum() / ((k * k).sum() * (l * l).sum()).sqrt())


def _layers(gen, n=30, widths=(5, 12, 40, 3)):
    return {f"h{i}": torch.randn(n, w, generator=gen) for i, w in enumerate(widths)}


def test_matches_naive_reference_on_layers_of_different_widths():
    g = torch.Generator().manual_seed(0)
    a = _layers(g)  # one layer (40) wider than N (30)
    b = {"e0": torch.randn(30, 7, generator=g), "e1": torch.randn(30, 2, 3, generator=g), "e2": a["h1"] @ torch.randn(12, 9, generator=g)}
    m = cross_layer_cka(a, b)
    assert m.shape == (4, 3)
    ref = torch.tensor([[_naive_cka(x, y) for y in b.values()] for x in a.values()], dtype=torch.float64)
    torch.testing.assert_close(m, ref, rtol=1e-9, atol=1e-12)


def test_invariant_to_rotation_and_isotropic_scaling():
    g = torch.Generator().manual_seed(1)
    a = _layers(g)
    rot = {k: v @ torch.linalg.qr(torch.randn(v.shape[1], v.shape[1], generator=g))[0] for k, v in a.items()}
    scaled = {k: 3.7 * v for k, v in a.items()}
    for other in (rot, scaled):
        torch.testing.assert_close(cross_layer_cka(a, other).diagonal(), torch.ones(4, dtype=torch.float64))
        torch.testing.assert_close(cross_layer_cka(a, other), cross_layer_cka(a))


def test_self_matrix_has_unit_diagonal_and_is_symmetric():
    m = cross_layer_cka(_layers(torch.Generator().manual_seed(2)))
    torch.testing.assert_close(m.diagonal(), torch.ones(4, dtype=torch.float64))
    torch.testing.assert_close(m, m.T)
    off = m[~torch.eye(4, dtype=torch.bool)]
    assert float(off.max()) < 0.9  # independent random layers are not identified with each other


def test_different_examples_are_refused():
    g = torch.Generator().manual_seed(3)
    with pytest.raises(PathdepError, match="same examples"):
        cross_layer_cka({"a": torch.randn(10, 3, generator=g)}, {"b": torch.randn(11, 3, generator=g)})
