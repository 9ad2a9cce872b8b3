"""The DRMAA2 JobTracker contract and its optional capabilities, as runtime-checkable Protocols.

They mirror drmaa2os' ``pkg/jobtracker`` interfaces (``JobTracker``, ``Closer``,
``ContactStringer``, ``JobTemplater``, ``Monitorer``) in Python naming. Any object with these
methods is a tracker; ``isinstance(t, Monitorer)`` tells whether a tracker offers monitoring.
:class:`ChangeFeed` is ours: which jobs changed, event-driven, for one waiter over many jobs.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Literal, Protocol, Self, TypeVar, get_args, runtime_checkable

from containertracker.errors import InvalidArgumentError, InvalidStateError
from containertracker.models import JobInfo, JobState, JobTemplate, Machine

__all__ = [
    "CONTROL_ACTIONS",
    "HOLD",
    "MAX_ARRAY_TASKS",
    "RELEASE",
    "RESUME",
    "SUSPEND",
    "TERMINATE",
    "ChangeFeed",
    "Closer",
    "ClosesOnExit",
    "ContactStringer",
    "ControlAction",
    "JobChanges",
    "JobTemplater",
    "JobTracker",
    "Monitorer",
    "check_changes_args",
    "control_action",
    "refuse_calls_when_closed",
]

ControlAction = Literal["terminate", "suspend", "resume", "hold", "release"]
TERMINATE: Final = "terminate"
SUSPEND: Final = "suspend"
RESUME: Final = "resume"
HOLD: Final = "hold"
RELEASE: Final = "release"
CONTROL_ACTIONS: Final[tuple[ControlAction, ...]] = get_args(ControlAction)

MAX_ARRAY_TASKS: Final = 10_000
"""Most tasks one array job may have (each is a container); every tracker refuses more."""


def control_action(action: str) -> ControlAction:
    """``action`` as a ControlAction.

    Raises:
        InvalidArgumentError: not one of the five actions.
    """
    if action not in CONTROL_ACTIONS:
        raise InvalidArgumentError(
            f"unknown job control action {action!r}; use {', '.join(CONTROL_ACTIONS)}"
        )
    return action


@runtime_checkable
class JobTracker(Protocol):
    """Runs jobs described by JobTemplates and reports on them, within one session."""

    def list_jobs(self) -> list[str]:
        """Ids of every job of the session, finished ones included until deleted."""
        ...

    def list_array_jobs(self, array_id: str) -> list[str]:
        """Ids of an array job's tasks, in task order.

        Raises:
            JobNotFoundError: no array job with this id in the session.
        """
        ...

    def add_job(self, jt: JobTemplate) -> str:
        """Submit one job and return its id; the job is started unless held or delayed."""
        ...

    def add_array_job(
        self, jt: JobTemplate, begin: int, end: int, step: int = 1, max_parallel: int = 0
    ) -> str:
        """Submit one task per index in ``range(begin, end + 1, step)``; return the array id.

        At most ``max_parallel`` tasks run at once (0 = no limit).
        """
        ...

    def job_state(self, job_id: str) -> tuple[JobState, str]:
        """The job's current state and a sub-state text (may be empty)."""
        ...

    def job_info(self, job_id: str) -> JobInfo:
        """Everything known about the job now."""
        ...

    def job_control(self, job_id: str, action: ControlAction) -> None:
        """Apply terminate, suspend, resume, hold or release to the job.

        Raises:
            InvalidStateError: the action does not fit the job's current state.
        """
        ...

    def wait(self, job_id: str, timeout: float | None, *states: JobState) -> JobState:
        """Block until the job is in one of ``states`` (default: DONE or FAILED).

        ``timeout`` is in seconds; ``None`` waits forever and 0 checks once.

        Raises:
            WaitTimeoutError: the timeout passed first.
        """
        ...

    def delete_job(self, job_id: str) -> None:
        """Forget a finished job (remove its container).

        Raises:
            InvalidStateError: the job is not DONE or FAILED.
        """
        ...

    def list_job_categories(self) -> list[str]:
        """The job categories (container images) a template may name."""
        ...

    def __enter__(self) -> Self:
        """A tracker is a context manager; leaving the block closes it."""
        ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


@runtime_checkable
class Closer(Protocol):
    """A tracker holding resources that :meth:`close` releases."""

    def close(self) -> None:
        """Release connections and background threads; jobs keep running."""
        ...


class ClosesOnExit:
    """Mixin for a :class:`Closer`: it is its own context manager, and leaving the ``with``
    block calls ``close()`` (whether the block ended normally or by an exception)."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


_Class = TypeVar("_Class", bound=type)


def refuse_calls_when_closed(cls: _Class) -> _Class:
    """Class decorator for a Closer: once closed, every public method but ``close`` raises.

    The instances must have a ``_closed`` :class:`threading.Event` that ``close`` sets. A call
    after ``close()`` raises :class:`~containertracker.errors.InvalidStateError` (it is the
    tracker's state that forbids it) saying the tracker is closed; ``close`` itself stays
    idempotent. Methods are wrapped once, when the class is defined.
    """
    for name, member in list(vars(cls).items()):
        if not name.startswith("_") and name != "close" and inspect.isfunction(member):
            setattr(cls, name, _refusing_when_closed(member))
    return cls


def _refusing_when_closed(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self._closed.is_set():
            raise InvalidStateError(
                f"the tracker is closed: {method.__name__}() cannot be called after close(); "
                "open a new tracker with new_job_tracker()"
            )
        return method(self, *args, **kwargs)

    return guarded


@runtime_checkable
class ContactStringer(Protocol):
    """A tracker that can say how to reach its session again."""

    def contact(self) -> str:
        """A string naming the engine endpoint and session of this tracker."""
        ...


@runtime_checkable
class JobTemplater(Protocol):
    """A tracker that can return the template a job was submitted with."""

    def job_template(self, job_id: str) -> JobTemplate:
        """The JobTemplate of the job (as stored with the job)."""
        ...


@runtime_checkable
class Monitorer(Protocol):
    """Read-only monitoring of everything on the engine, not just the session's jobs."""

    def open_monitoring_session(self, name: str) -> None:
        """Open a named monitoring session (no state is kept)."""
        ...

    def close_monitoring_session(self, name: str) -> None:
        """Close a monitoring session."""
        ...

    def get_all_job_ids(self, filter: JobInfo | None = None) -> list[str]:
        """Ids of every container on the engine that matches the DRMAA2 JobInfo filter."""
        ...

    def get_all_queue_names(self, filter: list[str] | None = None) -> list[str]:
        """Queue names (container engines have none: always empty)."""
        ...

    def get_all_machines(self, filter: list[str] | None = None) -> list[Machine]:
        """The machines running jobs (the engine's host), optionally only those named."""
        ...

    def job_info_from_monitor(self, job_id: str) -> JobInfo:
        """JobInfo of any container on the engine, in or outside the session."""
        ...


@dataclass(frozen=True)
class JobChanges:
    """What :meth:`ChangeFeed.changes` answers."""

    cursor: int
    """Pass it back as ``since`` next time."""
    job_ids: list[str]
    """Full ids of the session's jobs with an engine event after ``since`` (each once, least
    recently changed first), deleted jobs included: their removal is a change too."""
    complete: bool
    """False: changes may have been missed (the event stream reconnected after ``since``, or
    ``since`` is too old or not this tracker's): re-read every job you follow."""


@runtime_checkable
class ChangeFeed(Protocol):
    """A tracker that can say which of its session's jobs changed, driven by engine events:
    one waiter for many jobs, instead of a wait per job or a look at every job."""

    def changes(self, since: int | None, timeout: float) -> JobChanges:
        """The session's jobs with an engine event (created, started, ended, paused, removed,
        ...) after cursor ``since``.

        ``since=None`` returns at once the cursor of now (no ids, complete): take it before
        reading the jobs you follow, so that nothing between is missed. Otherwise returns at
        once if some job changed after ``since`` (or changes may have been missed: then
        ``complete`` is False, the ids maybe empty); else blocks up to ``timeout`` seconds
        (``inf``: no limit) for one, and at the timeout returns no ids (complete). A cursor
        is only meaningful to the tracker object that gave it; another's reads as incomplete.

        Raises:
            InvalidArgumentError: ``since`` is not an integer >= 0, or ``timeout`` is
                negative or NaN.
            InvalidStateError: the tracker is closed (a close wakes blocked callers, which
                raise it too).
        """
        ...


def check_changes_args(since: object, timeout: object) -> None:
    """Check the arguments of :meth:`ChangeFeed.changes` as every implementation does.

    Raises:
        InvalidArgumentError: ``since`` is not None nor an integer >= 0, or ``timeout`` is
            not a number >= 0.
    """
    if since is not None and (isinstance(since, bool) or not isinstance(since, int) or since < 0):
        raise InvalidArgumentError(
            f"since must be None or a cursor (an integer >= 0), not {since!r}"
        )
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout >= 0:
        raise InvalidArgumentError(f"timeout must be a number of seconds >= 0, not {timeout!r}")
