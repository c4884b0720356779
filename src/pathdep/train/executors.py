"""Executors that train populations in parallel workers (``concurrent.futures`` interface).

``local_executor(n)`` gives n worker processes on this machine; :class:`RayExecutor` fans out over
a Ray cluster. Each worker uses one torch thread. Results are the same bits as a serial run.

    study.run(executor=local_executor(2))
    study.run(executor=RayExecutor(address="auto"))
"""

from __future__ import annotations

from collections.abc import Callable
import multiprocessing
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from typing import Any


class RayExecutor(Executor):
    """``submit`` runs a function as a Ray task (one CPU, one torch thread) and returns a Future."""

    def __init__(self, address: str | None = None, **init_kwargs: Any) -> None:
        import ray

        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, log_to_driver=False, **init_kwargs)
        self._ray = ray
        self._remote = ray.remote(num_cpus=1)(_call_single_threaded)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        return self._remote.remote(fn, *args, **kwargs).future()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._ray.shutdown()


def _call_single_threaded(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    import torch

    torch.set_num_threads(1)
    return fn(*args, **kwargs)


def local_executor(workers: int) -> ProcessPoolExecutor:
    """``workers`` fresh worker processes (spawned, one torch thread each)."""
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_one_thread)


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)
