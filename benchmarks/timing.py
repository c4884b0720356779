"""Timing shared by the benchmarks: wall and CPU time side by side, median of repetitions, sgemm peak.

Every benchmark that compares pathdep with a peer times both in the same process, one after the
other, with the same number of torch threads, and reports the median of ``reps`` repetitions of
wall time and of process CPU time (user + system, all threads). A ratio is peer time / pathdep
time, so a ratio above 1 means pathdep is faster.

    >>> import torch
    >>> t = timed(lambda: torch.ones(8) @ torch.ones(8), reps=3, warmup=1)
    >>> t.wall_s >= 0 and t.cpu_s >= 0
    True
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Timing:
    """Median wall and CPU seconds of one call, over ``reps`` repetitions."""

    wall_s: float
    cpu_s: float
    reps: int

    def __str__(self) -> str:
        return f"{self.wall_s * 1e3:9.1f} ms wall {self.cpu_s * 1e3:9.1f} ms cpu"


def timed(fn: Callable[[], object], *, reps: int = 3, warmup: int = 1) -> Timing:
    """Median wall and process-CPU time of ``fn()`` over ``reps`` calls, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    walls, cpus = [], []
    for _ in range(reps):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return Timing(statistics.median(walls), statistics.median(cpus), reps)


def sgemm_peak(n: int = 2048, best_of: int = 5) -> float:
    """Float32 matmul throughput in GFLOP/s: an n x n product, best of ``best_of`` after a warm-up."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(best_of):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def ratio_row(what: str, peer: str, peer_t: Timing, ours: Timing, **extra: object) -> dict[str, object]:
    """One row of a peer table: both timings and the ratio peer / pathdep for wall and CPU time."""
    return {"what": what, "peer": peer,
            "peer_wall_s": peer_t.wall_s, "pathdep_wall_s": ours.wall_s,
            "peer_cpu_s": peer_t.cpu_s, "pathdep_cpu_s": ours.cpu_s,
            "ratio_wall": peer_t.wall_s / ours.wall_s, "ratio_cpu": peer_t.cpu_s / ours.cpu_s, **extra}
