"""Checks of ``pathdep run``'s parallelism options, made before anything is planned or written.

A Ray address is checked by resolving its host and opening a TCP connection with a timeout, so
an unreachable cluster is one clear error in seconds instead of retries for ever.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import Any

from pathdep.errors import SpecError, bad_value

MAX_WORKERS = 256
CONNECT_TIMEOUT_S = 5.0
RAY_EXPECTED = "'auto', 'local' or HOST:PORT of a running Ray cluster"


def check_workers(workers: int) -> int:
    if not 0 <= workers <= MAX_WORKERS:
        raise bad_value("--workers", workers, f"a count of worker processes in [0, {MAX_WORKERS}] "
                        f"(this machine has {os.cpu_count()} cores)")
    return workers


def check_ray(address: str | None) -> str | None:
    """``address`` if it is 'auto', 'local', or a HOST:PORT that accepts a connection."""
    if address is None or address in ("auto", "local"):
        return address
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise bad_value("--ray", address, RAY_EXPECTED + " (a port in 1..65535)")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except socket.gaierror as e:
        raise bad_value("--ray", address, f"{RAY_EXPECTED}; the host cannot be resolved ({e.strerror})") from None
    except OSError as e:
        reason = "timed out" if isinstance(e, TimeoutError) else (e.strerror or str(e))
        raise bad_value("--ray", address, f"{RAY_EXPECTED}; connecting failed ({reason})") from None
    return address


def ray_executor(cls: Callable[..., Any], address: str) -> Any:
    """``cls(address=...)`` (a :class:`pathdep.train.RayExecutor`), or a clear error if no cluster answers."""
    try:
        return cls(address=None if address == "local" else address)
    except (ConnectionError, TimeoutError, RuntimeError, ValueError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise SpecError(f"The '--ray' option must be {RAY_EXPECTED}. Got {address!r}: {first}") from None
