"""Modular addition: the data, the Fourier measurements against a naive DFT, and a tiny grokking run."""

import math

import pytest
import torch

from pathdep import Study
from pathdep.errors import PathdepError
from pathdep.tasks import TASKS
from pathdep.tasks.modular import ModularArgs, build, fourier_power, fourier_summary, frequency_shares, key_frequencies


def naive_power(w: torch.Tensor, p: int) -> torch.Tensor:
    """sum over rows of (w . cos_k)^2 + (w . sin_k)^2 for k = 0 .. p // 2: w (rows, p) -> (p // 2 + 1,)."""
    t = torch.arange(p, dtype=torch.float64)
    out = []
    for k in range(p // 2 + 1):
        c = (w.double() * torch.cos(2 * math.pi * k * t / p)).sum(-1)
        s = (w.double() * torch.sin(2 * math.pi * k * t / p)).sum(-1)
        out.append((c.square() + s.square()).sum())
    return torch.stack(out).float()


def test_fourier_power_equals_a_naive_dft_on_every_token_axis():
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(3, 6, 13, generator=gen)  # (R, d, p)
    got = fourier_power(w, 13)
    for r in range(3):
        torch.testing.assert_close(got[r], naive_power(w[r], 13), rtol=1e-4, atol=1e-4)
    # tokens on axis 0 (an embedding (p, d)) and extra tokens beyond p ignored
    w_e = torch.cat([w.transpose(1, 2), torch.randn(3, 1, 6, generator=gen)], dim=1)  # (R, p + 1, d)
    torch.testing.assert_close(fourier_power(w_e, 13, token_axis=0), got)
    with pytest.raises(PathdepError, match="p=17"):
        fourier_power(w, 17)


def test_a_planted_embedding_reveals_its_key_frequencies():
    p, d = 31, 40
    t = torch.arange(p, dtype=torch.float32)
    gen = torch.Generator().manual_seed(1)
    # run 0 uses frequencies 3 (strong) and 11; run 1 uses 7 only; both with a constant offset and a little noise
    rows0 = [2.0 * torch.cos(2 * math.pi * 3 * t / p + ph) for ph in torch.rand(d // 2, generator=gen) * 6]
    rows0 += [1.0 * torch.sin(2 * math.pi * 11 * t / p + ph) for ph in torch.rand(d // 2, generator=gen) * 6]
    rows1 = [torch.cos(2 * math.pi * 7 * t / p + ph) for ph in torch.rand(d, generator=gen) * 6]
    w = torch.stack([torch.stack(rows0), torch.stack(rows1)]) + 5.0  # (2, d, p)
    w = w + 0.01 * torch.randn(w.shape, generator=gen)
    shares = frequency_shares(fourier_power(w, p))  # (2, 15)
    torch.testing.assert_close(shares.sum(-1), torch.ones(2))
    key = key_frequencies(shares, mass=0.95)
    assert torch.nonzero(key[0]).flatten().add(1).tolist() == [3, 11]
    assert torch.nonzero(key[1]).flatten().add(1).tolist() == [7]
    summary = fourier_summary(shares, mass=0.95)
    assert summary["dominant_freq"].tolist() == [3.0, 7.0]
    assert summary["n_key_freqs"].tolist() == [2.0, 1.0]
    assert summary["freq_power/3"][0] == pytest.approx(0.8, abs=0.01)  # 2^2 : 1^2
    assert summary["fourier_eff_freqs"][1] == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize("kind", ["sum", "onehot"])
def test_the_task_reads_the_weights_the_first_nonlinearity_sees(kind):
    from pathdep.models import MLP

    p, gen = 13, torch.Generator().manual_seed(3)
    task = build(ModularArgs(p=p, input=kind))
    t = torch.arange(p, dtype=torch.float32)
    planted = torch.stack([torch.cos(2 * math.pi * 4 * t / p + ph) for ph in torch.rand(6, generator=gen) * 6])  # (6, p)
    if kind == "sum":  # a linear embedding of width 6, then a ReLU layer mixing it
        model = MLP(d_in=p, hidden=(6, 8), d_out=p, activations=("identity", "relu"))
        params = model.init_population([0, 1])
        params["fc0.weight"] = planted.expand(2, 6, p).clone()
    else:  # the ReLU layer reads a's and b's columns directly
        model = MLP(d_in=2 * p, hidden=(6,), d_out=p)
        params = model.init_population([0, 1])
        params["fc0.weight"] = torch.cat([planted, planted.roll(1, 1)], dim=1).expand(2, 6, 2 * p).clone()
    props = task.properties(model, params)
    assert props["dominant_freq"].tolist() == [4.0, 4.0]
    assert props["n_key_freqs"].tolist() == [1.0, 1.0]
    assert (props["freq_power/4"] > 0.999).all()


def test_the_pairs_cover_everything_once_and_mirrors_share_a_side():
    for kind, width in (("onehot", 2 * 11), ("sum", 11), ("tokens", 3)):
        task = build(ModularArgs(p=11, train_fraction=0.5, input=kind))
        assert task.train.x.shape[1] == width
        a = torch.cat([task.train.extra["a"], task.test.extra["a"]])
        b = torch.cat([task.train.extra["b"], task.test.extra["b"]])
        assert sorted((a * 11 + b).tolist()) == list(range(121))
        assert torch.equal(torch.cat([task.train.y, task.test.y]), (a + b) % 11)
    train = {(int(a), int(b)) for a, b in zip(task.train.extra["a"], task.train.extra["b"])}
    assert all((b, a) in train for a, b in train)
    onehot = build(ModularArgs(p=11, input="onehot"))
    assert torch.equal(onehot.train.x[:, :11].argmax(1), onehot.train.extra["a"])
    assert torch.equal(onehot.train.x[:, 11:].argmax(1), onehot.train.extra["b"])
    assert "modular" in TASKS.names()


@pytest.mark.slow
def test_a_tiny_run_memorises_then_generalises(tmp_path):
    study = Study.from_dict(
        {
            "name": "tiny_modular",
            "process": {
                "task": "modular",
                "task_args": {"p": 23, "train_fraction": 0.7, "input": "sum"},
                "model": "mlp",
                "model_args": {"hidden": [32, 128], "activations": ["identity", "relu"]},
                "steps": 1200,
                "batch_size": 100000,
                "optimizer": {"name": "adamw", "lr": 1e-2, "weight_decay": 1.0},
                "checkpoints": {"steps": [300]},
            },
            "seeds": {"init": 2},
        },
        store=tmp_path,
    )
    study.run()
    runs = list(study.runs()["run"])
    model = study.model()
    with torch.no_grad():
        mid = study.task.properties(model, study.load_population(runs, 300))
        end = study.task.properties(model, study.load_population(runs, 1200))
    assert (mid["train_acc"] == 1).all() and (mid["test_acc"] < 0.15).all()  # memorised, not generalised
    assert (end["test_acc"] > mid["test_acc"] + 0.2).all()  # then generalises (chance: 1/23)
    assert (end["fourier_eff_freqs"] < mid["fourier_eff_freqs"]).all()  # the embedding concentrates
    shares = torch.stack([end[f"freq_power/{k}"] for k in range(1, 12)], dim=1)
    torch.testing.assert_close(shares.sum(1), torch.ones(2))
