"""Cross-layer linear CKA: against a per-pair reference, invariances, and `pathdep compare --layers`."""

import subprocess
import sys

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


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    import tomli_w
    from typer.testing import CliRunner

    from pathdep.cli import _register, app
    from pathdep.store import checkpoint_name, run_dir
    from tests.helpers import tiny

    _register()
    tmp = tmp_path_factory.mktemp("xl")
    spec = tmp / "tiny.toml"
    spec.write_text(tomli_w.dumps(tiny(**{"process.steps": 20, "process.checkpoints": {"every": 20}, "seeds.init": 2})))
    done = CliRunner().invoke(app, ["run", str(spec), "--store", str(tmp / "s")])
    assert done.exit_code == 0, done.output
    return [run_dir(tmp / "s", "tiny", f"base-i{i}-d0") / checkpoint_name(20) for i in range(2)]


def test_compare_cross_layer_equals_cka_of_captured_activations(ckpts):
    from pathdep.measure import compare
    from pathdep.models.base import capture
    from pathdep.spec import build_process
    from pathdep.store import read_checkpoint

    a, b = ckpts
    res = compare(a, b, n_alpha=3, layers="h1,h0")
    assert list(res.cross_layer.index) == ["h1", "h0"] and list(res.cross_layer.columns) == ["h1", "h0"]
    (pa, meta), (pb, _) = read_checkpoint(a), read_checkpoint(b)
    task, model = build_process(meta["process"])
    acts = []
    for p in (pa, pb):
        with capture({"h0", "h1"}) as got, torch.no_grad():
            model.apply({k: v.unsqueeze(0) for k, v in p.items()}, task.test.x.unsqueeze(0))
        acts.append({k: v[0] for k, v in got.items()})
    for la in ("h0", "h1"):
        for lb in ("h0", "h1"):
            assert res.cross_layer.loc[la, lb] == pytest.approx(_naive_cka(acts[0][la], acts[1][lb]), abs=1e-9)
    assert compare(a, b, n_alpha=3).cross_layer is None
    with pytest.raises(PathdepError, match=r"'layers'.*h0, h1, logits. Got 'h7'"):
        compare(a, b, layers="h0,h7")


def test_cli_compare_layers_all_prints_the_table_with_best_matches(ckpts):
    from typer.testing import CliRunner

    from pathdep.cli import app

    a, b = ckpts
    runner = CliRunner()
    plain = runner.invoke(app, ["compare", str(a), str(b), "--n-alpha", "3"])
    assert plain.exit_code == 0, plain.output
    assert "cross-layer" not in plain.output
    both = runner.invoke(app, ["compare", str(a), str(b), "--n-alpha", "3", "--layers", "all"])
    assert both.exit_code == 0, both.output
    assert both.output.startswith(plain.output) and "cross-layer" in both.output[len(plain.output):]
    same = runner.invoke(app, ["compare", str(a), str(a), "--n-alpha", "3", "--layers", "all"])
    assert same.exit_code == 0, same.output
    rows = [line for line in same.output.splitlines() if "*" in line and "│" in line]
    assert len(rows) == 3  # h0, h1, logits: each its own best match, CKA 1
    for name, line in zip(("h0", "h1", "logits"), rows):
        cells = [c.strip() for c in line.split("│") if c.strip()]
        assert cells[0] == name and cells[-1] == name and "1.0000 *" in cells
    bad = subprocess.run([sys.executable, "-m", "pathdep", "compare", str(a), str(b), "--layers", "h9"],
                         capture_output=True, text=True)
    out = (bad.stdout + bad.stderr).strip()
    assert bad.returncode == 2 and "'layers'" in out and "h9" in out and "Traceback" not in out, out
