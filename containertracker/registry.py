"""The allocator registry: backend names -> functions that build JobTrackers.

Built-in backends are registered by dotted path and imported only when first used, so
``import containertracker`` never imports an engine SDK.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Mapping
from typing import Any

from containertracker.errors import InvalidArgumentError
from containertracker.tracker import JobTracker

__all__ = ["Allocator", "new_job_tracker", "register_job_tracker", "registered_job_trackers"]

Allocator = Callable[[str, Mapping[str, Any] | None], JobTracker]
"""``allocator(session_name, params) -> JobTracker``."""

_lock = threading.Lock()
_allocators: dict[str, Allocator | str] = {
    "docker": "containertracker.backends.docker:new_docker_tracker",
    "podman": "containertracker.backends.podman:new_podman_tracker",
    "remote": "containertracker.remote.client:new_remote_tracker",
}


def register_job_tracker(name: str, allocator: Allocator | str) -> None:
    """Register (or replace) the allocator for backend ``name``.

    ``allocator`` is a callable or a ``"module:function"`` path imported on first use.
    """
    if not name:
        raise InvalidArgumentError("a job tracker needs a non-empty name")
    with _lock:
        _allocators[name] = allocator


def registered_job_trackers() -> list[str]:
    """Names of all registered backends, sorted."""
    with _lock:
        return sorted(_allocators)


def new_job_tracker(name: str, session: str, params: Mapping[str, Any] | None = None) -> JobTracker:
    """Build a JobTracker of backend ``name`` for session ``session``.

    ``params`` override the ``CONTAINERTRACKER_*`` settings (keys are Settings field names).

    Raises:
        InvalidArgumentError: unknown backend name or bad params.
        DrmCommunicationError: the engine cannot be reached.
    """
    with _lock:
        allocator = _allocators.get(name)
    if allocator is None:
        raise InvalidArgumentError(
            f"no job tracker named {name!r}; registered: {', '.join(registered_job_trackers())}"
        )
    if isinstance(allocator, str):
        module_name, _, attr = allocator.partition(":")
        allocator = getattr(importlib.import_module(module_name), attr)
        with _lock:
            _allocators[name] = allocator
    return allocator(session, params)
