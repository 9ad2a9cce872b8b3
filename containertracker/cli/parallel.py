"""Calls over many jobs at once, bounded: an array's tasks should not wait in line."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Final, TypeVar

__all__ = ["AT_ONCE", "in_parallel"]

AT_ONCE: Final = 8
"""Calls under way at most at any moment (the engine or server serves them side by side)."""

_T = TypeVar("_T")
_R = TypeVar("_R")


def in_parallel(call: Callable[[_T], _R], items: Sequence[_T]) -> list[_R]:
    """``[call(item) for item in items]``, up to :data:`AT_ONCE` calls at a time; results in
    the order of ``items``.

    Why: a call may wait for its job (a terminate for the container to stop, a delete for a
    stopping job's outputs) or for a round trip to a server.

    Raises:
        Exception: the first exception a call raised, in the order of ``items`` (no further
            call starts; those under way finish first). Ctrl-C likewise starts no further call.
    """
    if len(items) <= 1:
        return [call(item) for item in items]
    pool = ThreadPoolExecutor(
        max_workers=min(AT_ONCE, len(items)), thread_name_prefix="containertracker-cli"
    )
    try:
        return list(pool.map(call, items))
    finally:
        pool.shutdown(cancel_futures=True)
