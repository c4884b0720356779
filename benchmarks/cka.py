"""All-pairs CKA: pathdep's batched computation vs the ``torch-cka`` package's per-pair approach.

Features: 32 runs of an MLP with 4 hidden layers (width 128) on 2000 examples. pathdep computes
linear and debiased CKA of all 32 x 32 pairs of runs for each layer from one product of feature
cross-products (``similarity_matrix``). ``torch-cka`` (0.21) computes, for each pair of models
and each layer, Gram matrices and three unbiased HSIC estimates with N x N products
(``CKA._HSIC``, the function its ``CKA.compare`` calls); it is timed on the same features for a
sample of pairs and scaled to the 496 distinct pairs (its cost is the same for every pair).
The two debiased CKA values are checked against each other.

    python benchmarks/cka.py [--runs 32] [--width 128] [--examples 2000] [--sample-pairs 6]
"""

from __future__ import annotations

import argparse
import time
from types import SimpleNamespace

import torch
from torch_cka import CKA

from pathdep.measure.similarity import similarity_matrix
from pathdep.models.base import capture
from pathdep.models.mlp import MLP


def features(runs: int, width: int, examples: int) -> list[torch.Tensor]:
    """Activations of 4 hidden layers: each (runs, examples, width)."""
    model = MLP(d_in=40, hidden=(width,) * 4, d_out=10)
    params = model.init_population(list(range(runs)))
    x = torch.randn(examples, 40, generator=torch.Generator().manual_seed(0))
    with capture({f"h{i}" for i in range(4)}) as acts, torch.no_grad():
        model.apply(params, x.unsqueeze(0).expand(runs, *x.shape))
    return [acts[f"h{i}"] for i in range(4)]


def torch_cka_pair(x: torch.Tensor, y: torch.Tensor) -> float:
    """One pair, one layer, exactly as ``torch_cka.CKA.compare`` does it for one batch.

    ``_HSIC`` moves its vector of ones with ``.to(self.device)``; a dtype in place of the device
    runs the same formula in float64 (used only for the accuracy check).
    """
    me = SimpleNamespace(device="cpu" if x.dtype == torch.float32 else x.dtype)
    k = x @ x.t()
    k.fill_diagonal_(0.0)
    l = y @ y.t()
    l.fill_diagonal_(0.0)
    return CKA._HSIC(me, k, l) / (CKA._HSIC(me, k, k) ** 0.5 * CKA._HSIC(me, l, l) ** 0.5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=32)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--examples", type=int, default=2000)
    ap.add_argument("--sample-pairs", type=int, default=6)
    args = ap.parse_args()
    torch.set_num_threads(1)
    feats = features(args.runs, args.width, args.examples)
    n_pairs = args.runs * (args.runs - 1) // 2

    t = time.perf_counter()
    ours = [similarity_matrix(f, procrustes=False) for f in feats]
    t_ours = time.perf_counter() - t
    t = time.perf_counter()
    for f in feats:
        similarity_matrix(f)
    t_ours_proc = time.perf_counter() - t

    sample = [(i, (i * 7 + 3) % args.runs) for i in range(args.sample_pairs)]
    sample = [(i, j) for i, j in sample if i != j]
    t = time.perf_counter()
    theirs = [[torch_cka_pair(f[i], f[j]) for f in feats] for i, j in sample]
    t_sample = time.perf_counter() - t
    t_theirs = t_sample / len(sample) * n_pairs
    diff = max(abs(theirs[p][l] - ours[l]["cka_debiased"][i, j].item()) for p, (i, j) in enumerate(sample) for l in range(4))
    i, j = sample[0]
    diff64 = max(abs(torch_cka_pair(f[i].double(), f[j].double()) - o["cka_debiased"][i, j].item()) for f, o in zip(feats, ours))

    print(f"all-pairs CKA: {args.runs} runs ({n_pairs} pairs) x 4 layers x {args.examples} examples, width {args.width}, 1 thread")
    print(f"  pathdep, linear + debiased CKA, all pairs           {t_ours:9.2f} s")
    print(f"  pathdep, + Procrustes distance                      {t_ours_proc:9.2f} s")
    print(f"  torch-cka per pair (debiased CKA; {len(sample)} pairs timed,")
    print(f"    {t_sample / len(sample):.2f} s per pair, scaled to {n_pairs} pairs)          {t_theirs:9.2f} s")
    print(f"  ratio torch-cka / pathdep                           {t_theirs / t_ours:8.0f}x")
    print(f"  max |debiased CKA difference| on the timed pairs    {diff:9.1e}  (torch-cka runs in float32)")
    print(f"  the same with torch-cka's formula in float64        {diff64:9.1e}")


if __name__ == "__main__":
    main()
