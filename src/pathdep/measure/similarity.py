"""Representation similarity: linear CKA, debiased linear CKA and orthogonal Procrustes distance.

Inputs are activations of a population on the same N examples, ``x`` (R, N, *features)
(flattened to (R, N, d)). Everything is computed from feature cross-products: for centred
``X`` (N, d) and ``Y`` (N, e) with Gram matrices ``K = X X^T`` and ``L = Y Y^T``,

- biased HSIC: ``tr(K H L H) = ||X^T Y||_F^2`` (X, Y centred);
- linear CKA (Kornblith et al., 2019): ``||X^T Y||_F^2 / (||X^T X||_F ||Y^T Y||_F)``;
- debiased CKA (Nguyen et al., 2021): the same ratio with the unbiased HSIC estimator of
  Song et al. (2012), ``HSIC_u(K, L) = [tr(K~ L~) + 1^T K~ 1 1^T L~ 1 / ((n-1)(n-2))
  - 2/(n-2) 1^T K~ L~ 1] / (n (n-3))`` where ``K~`` is ``K`` with its diagonal zeroed. With
  centred features and ``k_i = ||x_i||^2`` it reads ``tr(K~ L~) = ||X^T Y||^2 - k.l``,
  ``1^T K~ 1 = -sum(k)`` and ``1^T K~ L~ 1 = k.l`` (the estimator does not change when a
  constant vector is added to every feature row, so centring is free);
- orthogonal Procrustes distance (Ding et al., 2021; Williams et al., 2021): with ``X``, ``Y``
  centred and scaled to unit Frobenius norm, ``sqrt(2 - 2 ||X^T Y||_*)`` (nuclear norm), the
  distance after the best rotation of one onto the other.

All pairs of members are one matrix product: concatenating the populations along features,
``[X_1 ... X_R]^T [Y_1 ... Y_S]`` holds every ``X_i^T Y_j`` as a block. Features wider than
N are first replaced by an N-wide representation with the same Gram matrix (thin SVD), which
changes none of the three measures.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from pathdep.errors import PathdepError

MEASURES = ("cka", "cka_debiased", "procrustes")

#: Float64 elements one block of cross-products may hold.
BLOCK_BUDGET = 2**26


@dataclass(frozen=True)
class _Prepared:
    x: Tensor  # (R, N, d) centred, float64
    k: Tensor  # (R, N) squared row norms of x
    self_fro2: Tensor  # (R,) ||x^T x||_F^2
    sq_norm: Tensor  # (R,) ||x||_F^2


def _prepare(x: Tensor, dtype: torch.dtype) -> _Prepared:
    x = x.flatten(2).to(dtype)  # (R, N, d)
    x = x - x.mean(1, keepdim=True)
    n, d = x.shape[1], x.shape[2]
    if d > n:  # same Gram matrix, N features: X = U S V^T -> U S
        u, s, _ = torch.linalg.svd(x, full_matrices=False)
        x = u * s.unsqueeze(1)
    gram = x.transpose(1, 2) @ x  # (R, d, d)
    return _Prepared(x, x.pow(2).sum(2), gram.pow(2).sum((1, 2)), x.pow(2).sum((1, 2)))


def _from_terms(
    a: _Prepared, b: _Prepared, cross_fro2: Tensor, k_dot: Tensor, nuclear: Tensor | None, ia, ib
) -> dict[str, Tensor]:
    """Combine cross terms (any shape) with the per-member terms indexed by ``ia``, ``ib``."""
    n = a.x.shape[1]
    out = {"cka": cross_fro2 / (a.self_fro2[ia] * b.self_fro2[ib]).sqrt()}

    def hsic_u(fro2: Tensor, kk: Tensor, sum_ka: Tensor, sum_kb: Tensor) -> Tensor:
        return (fro2 - kk + sum_ka * sum_kb / ((n - 1) * (n - 2)) - 2 * kk / (n - 2)) / (n * (n - 3))

    ska, skb = a.k.sum(1), b.k.sum(1)
    self_a = hsic_u(a.self_fro2, a.k.pow(2).sum(1), ska, ska)
    self_b = hsic_u(b.self_fro2, b.k.pow(2).sum(1), skb, skb)
    cross = hsic_u(cross_fro2, k_dot, ska[ia], skb[ib])
    out["cka_debiased"] = cross / (self_a[ia] * self_b[ib]).sqrt()
    if nuclear is not None:
        cos = nuclear / (a.sq_norm[ia] * b.sq_norm[ib]).sqrt()
        out["procrustes"] = (2 - 2 * cos).clamp_min(0).sqrt()
    return out


def similarity_matrix(
    xa: Tensor, xb: Tensor | None = None, *, procrustes: bool = True, dtype: torch.dtype = torch.float64
) -> dict[str, Tensor]:
    """CKA, debiased CKA and Procrustes distance between every member of ``xa`` and of ``xb``.

    xa (R, N, ...), xb (S, N, ...) (default: ``xa``) -> each (R, S). The cross-products of all
    pairs come from one matrix product per block of rows of ``xa``; with ``xb`` omitted only the
    blocks on and above the diagonal are computed and the rest mirrored (the measures are
    symmetric).

    >>> x = torch.randn(3, 50, 8)
    >>> s = similarity_matrix(x)
    >>> bool(torch.allclose(s["cka"].diagonal(), torch.ones(3, dtype=torch.float64)))
    True
    """
    symmetric = xb is None
    a = _prepare(xa, dtype)
    b = a if symmetric else _prepare(xb, dtype)
    if a.x.shape[1] != b.x.shape[1]:
        raise PathdepError(f"both sides need the same examples; got N={a.x.shape[1]} and N={b.x.shape[1]}")
    r, n, d = a.x.shape
    s, e = b.x.shape[0], b.x.shape[2]
    rows = max(1, BLOCK_BUDGET // max(1, s * d * e))
    if symmetric:  # small enough blocks that skipping the lower triangle pays
        rows = min(rows, max(1, -(-r // 8)))
    out = {k: torch.full((r, s), float("nan"), dtype=dtype) for k in MEASURES[: 3 if procrustes else 2]}
    for start in range(0, r, rows):
        ia = torch.arange(start, min(r, start + rows))
        ib = torch.arange(start if symmetric else 0, s)
        za = a.x[ia].permute(1, 0, 2).reshape(n, -1)  # (N, r'*d)
        zb = b.x[ib].permute(1, 0, 2).reshape(n, -1)  # (N, s'*e)
        blocks = (za.T @ zb).view(len(ia), d, len(ib), e).permute(0, 2, 1, 3)  # (r', s', d, e)
        nuclear = torch.linalg.svdvals(blocks).sum(-1) if procrustes else None
        k_dot = a.k[ia] @ b.k[ib].T  # (r', s')
        vals = _from_terms(a, b, blocks.pow(2).sum((-1, -2)), k_dot, nuclear, ia[:, None], ib[None, :])
        for key, val in vals.items():
            out[key][start : start + len(ia), ib] = val
            if symmetric:
                out[key][ib[:, None], ia[None, :]] = val.T
    return out


def similarity_paired(
    xa: Tensor, xb: Tensor, *, procrustes: bool = True, dtype: torch.dtype = torch.float64
) -> dict[str, Tensor]:
    """The same measures between member i of ``xa`` and member i of ``xb``: each (P,).

    xa (P, N, ...), xb (P, N, ...); one batched matrix product (the diagonal of :func:`similarity_matrix`).
    """
    if xa.shape[0] != xb.shape[0]:
        raise PathdepError(f"paired similarity needs as many members on each side; got {xa.shape[0]} and {xb.shape[0]}")
    a, b = _prepare(xa, dtype), _prepare(xb, dtype)
    cross = a.x.transpose(1, 2) @ b.x  # (P, d, e)
    nuclear = torch.linalg.svdvals(cross).sum(-1) if procrustes else None
    idx = torch.arange(xa.shape[0])
    return _from_terms(a, b, cross.pow(2).sum((1, 2)), (a.k * b.k).sum(1), nuclear, idx, idx)


def cka(xa: Tensor, xb: Tensor | None = None, *, debiased: bool = False) -> Tensor:
    """Linear CKA (or debiased linear CKA) of every member pair: (R, S). See :func:`similarity_matrix`.

    ``xa`` (R, N, d) and ``xb`` (S, N, e): the activations of R and S members on the same N examples.
    CKA is 1 under a rotation and an isotropic scaling of the features, and lower for unrelated ones:

    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.randn(1, 50, 8, generator=g)
    >>> q, _ = torch.linalg.qr(torch.randn(8, 8, generator=g))  # an orthogonal matrix
    >>> round(cka(x, 3 * x @ q).item(), 6), round(cka(x, torch.randn(1, 50, 8, generator=g)).item(), 2)
    (1.0, 0.19)
    """
    return similarity_matrix(xa, xb, procrustes=False)["cka_debiased" if debiased else "cka"]


def cross_layer_cka(acts_a: dict[str, Tensor], acts_b: dict[str, Tensor] | None = None, *,
                    dtype: torch.dtype = torch.float64) -> Tensor:
    """Linear CKA between every representation of model A and every one of model B: (La, Lb).

    ``acts_a`` maps A's La layer names to activations (N, ...) on N examples, ``acts_b`` B's
    Lb layers on the same examples (default: ``acts_a``); widths may differ. Each layer is
    centred (and, when wider than N, replaced by an N-wide matrix with the same Gram matrix);
    then all layers of a side are concatenated along features, so every cross-product
    ``X_l^T Y_m`` is a block of one matrix product ``[X_1 ... X_La]^T [Y_1 ... Y_Lb]`` and its
    squared Frobenius norm a segment sum. Rows and columns follow the dicts' order.

    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.randn(40, 6, generator=g)
    >>> m = cross_layer_cka({"h0": x, "h1": torch.randn(40, 3, generator=g)}, {"h0": 2 * x})
    >>> tuple(m.shape), round(m[0, 0].item(), 6)
    ((2, 1), 1.0)
    """
    if not acts_a:
        raise PathdepError("cross_layer_cka needs at least one layer of model A; got none")
    za, seg_a, self_a = _concat_layers(acts_a, dtype)
    zb, seg_b, self_b = (za, seg_a, self_a) if acts_b is None else _concat_layers(acts_b, dtype)
    if za.shape[0] != zb.shape[0]:
        raise PathdepError(f"both models need the same examples; got N={za.shape[0]} and N={zb.shape[0]}")
    sq = (za.T @ zb).pow(2)  # (sum d, sum e)
    rows = torch.zeros(len(self_a), sq.shape[1], dtype=dtype).index_add_(0, seg_a, sq)  # (La, sum e)
    cross = torch.zeros(len(self_a), len(self_b), dtype=dtype).index_add_(1, seg_b, rows)  # (La, Lb)
    return cross / (self_a[:, None] * self_b[None, :]).sqrt()


def _concat_layers(acts: dict[str, Tensor], dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor]:
    """Prepared layers side by side: features (N, sum d), the layer of each feature (sum d,), ||X^T X||_F^2 (L,)."""
    prepared = [_prepare(x.reshape(x.shape[0], -1).unsqueeze(0), dtype) for x in acts.values()]
    feats = torch.cat([p.x[0] for p in prepared], dim=1)
    seg = torch.cat([torch.full((p.x.shape[2],), i, dtype=torch.long) for i, p in enumerate(prepared)])
    return feats, seg, torch.cat([p.self_fro2 for p in prepared])
