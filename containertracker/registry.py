"""The allocator registry: backend names -> functions that build JobTrackers.

The engine backends (``docker``, ``podman``, ``swarm``) are engine classes named by dotted path; the
registry builds the :class:`~containertracker.core.tracker.ContainerTracker` over them from
the settings, so an adapter only implements :class:`~containertracker.core.engine.Engine`.
Every path is imported only when its backend is first used, so ``import containertracker``
never imports an engine SDK.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias

from containertracker.errors import InvalidArgumentError
from containertracker.settings import Settings
from containertracker.tracker import JobTracker

if TYPE_CHECKING:
    # Types only: the core loads with the first tracker, not with the package (it needs
    # POSIX file locks, which a client-only install on Windows lacks).
    from containertracker.core.engine import Engine
    from containertracker.core.tracker import ContainerTracker

__all__ = ["Allocator", "new_job_tracker", "register_job_tracker", "registered_job_trackers"]

Allocator = Callable[[str, Mapping[str, Any] | None], JobTracker]
"""``allocator(session_name, params) -> JobTracker``."""

EngineFactory: TypeAlias = "Callable[[str | None, float], Engine]"
"""``factory(engine_url, request_timeout) -> Engine``: an adapter class's constructor."""


def _engine_allocator(factory_path: str) -> Allocator:
    """An allocator of ContainerTrackers over the engine that ``factory_path``
    (``"module:EngineFactory"``, imported on first use) connects to."""

    def allocate(session: str, params: Mapping[str, Any] | None) -> JobTracker:
        settings = Settings.from_params(params)
        make_engine: EngineFactory = _resolve(factory_path)
        return _container_tracker(
            make_engine(settings.engine_url, settings.request_timeout), session, settings
        )

    return allocate


def _container_tracker(engine: Engine, session: str, settings: Settings) -> ContainerTracker:
    """A ContainerTracker for ``session`` over ``engine``, configured by ``settings``.

    Raises:
        DrmCommunicationError: the engine cannot be reached.
    """
    # Imported here: the core (threads, state store, scheduler) loads with the first
    # tracker, not with the package.
    from containertracker.core.tracker import ContainerTracker

    return ContainerTracker(
        engine,
        session,
        state_dir=settings.state_dir,
        stop_grace=settings.stop_grace,
        pull_policy=settings.pull_policy,
        resync_interval=settings.resync_interval,
        host_path_roots=settings.host_path_roots,
        monitor_all_containers=settings.monitor_all_containers,
    )


def _resolve(path: str) -> Any:
    """The object ``"module:attribute"`` names, importing the module."""
    module_name, _, attr = path.partition(":")
    return getattr(importlib.import_module(module_name), attr)


_lock = threading.Lock()
_allocators: dict[str, Allocator | str] = {
    "docker": _engine_allocator("containertracker.backends.docker:DockerEngine"),
    "podman": _engine_allocator("containertracker.backends.podman:PodmanEngine"),
    "swarm": _engine_allocator("containertracker.backends.swarm:SwarmEngine"),
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
        allocator = _resolve(allocator)
        with _lock:
            _allocators[name] = allocator
    return allocator(session, params)
