"""The delivery thread of a job session: runs callbacks, event streams and future results.

Everything that runs user code, or may block on it, runs here, one item at a time, in the
order the dispatcher queued it: never on the thread of a caller (a ``job.hold()`` runs no
unrelated callback, whatever locks its caller holds) and never on the dispatcher's thread (so
a callback may wait for jobs: the dispatcher goes on reading states meanwhile).
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import InvalidStateError as FutureStateError
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loguru import logger

from containertracker.errors import ContainerTrackerError
from containertracker.models import JobInfo, JobState
from containertracker.tracker import JobTracker

if TYPE_CHECKING:
    from containertracker.sessions._jobs import Job

__all__ = [
    "Delivery",
    "JobEvent",
    "StateCallback",
    "Subscriber",
    "completion",
    "deliver_event",
    "resolve_future",
]

StateCallback = Callable[["Job", JobState, JobState], None]
"""``callback(job, old_state, new_state)``; ``old_state`` is ``JobState.UNSET`` for the first
state of a job run through the session."""


@dataclass(frozen=True)
class JobEvent:
    """A job's state changed (as :meth:`JobSession.events` streams it)."""

    job: Job
    old_state: JobState
    """The state before (``JobState.UNSET`` for the first state of a job run here)."""
    new_state: JobState
    sub_state: str
    """The sub-state read with ``new_state`` (e.g. ``held``, ``terminated``)."""


Subscriber = Callable[[JobEvent | None], None]
"""An event stream's ``push``: called with each event, and None at the end; never blocks."""


class Delivery:
    """A queue of items (functions) and the one thread that runs them in order. An item
    that raises is logged (loguru) and the next one runs."""

    def __init__(self, session: str) -> None:
        self._log = logger.bind(session=session)
        self._condition = threading.Condition()
        self._queue: deque[Callable[[], None]] = deque()
        self._stopping = False
        self._thread = threading.Thread(
            target=self._run, name=f"containertracker-delivery-{session}", daemon=True
        )
        self._thread.start()

    def put(self, item: Callable[[], None]) -> None:
        """Queue ``item``; it runs after every item queued before it. Never blocks on user
        code (only on the queue's own short lock)."""
        with self._condition:
            self._queue.append(item)
            self._condition.notify()

    def on_thread(self) -> bool:
        """Whether the caller runs on the delivery thread (inside a callback)."""
        return threading.current_thread() is self._thread

    def close(self) -> None:
        """Run what is queued, then end the thread (see :meth:`join`). Idempotent."""
        with self._condition:
            self._stopping = True
            self._condition.notify()

    def join(self) -> None:
        """Wait for the thread to end; from the thread itself (a callback closing the
        session), return at once."""
        if not self.on_thread():
            self._thread.join()

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._queue and not self._stopping:
                    self._condition.wait()
                if not self._queue:
                    return
                item = self._queue.popleft()
            try:
                item()
            except Exception:
                # Items log their own callbacks' failures; this is a bug in an item.
                self._log.opt(exception=True).error("a job session's delivery failed")


def deliver_event(
    log: Any,
    event: JobEvent,
    callbacks: tuple[StateCallback, ...],
    subscribers: tuple[Subscriber, ...],
) -> Callable[[], None]:
    """The item that hands ``event`` to ``callbacks`` (each that raises is logged on
    ``log``, a loguru logger, and the next one runs), then to ``subscribers``."""

    def deliver() -> None:
        for callback in callbacks:
            try:
                callback(event.job, event.old_state, event.new_state)
            except Exception:
                log.opt(exception=True).error(
                    "state-change callback {!r} failed for job {} ({} -> {})",
                    callback,
                    event.job.id,
                    event.old_state.name,
                    event.new_state.name,
                )
        for push in subscribers:
            push(event)

    return deliver


def completion(tracker: JobTracker, job: Job, future: Future[JobInfo]) -> Callable[[], None]:
    """The item that completes ``future`` with the job's JobInfo (or the error reading it)."""

    def complete() -> None:
        if future.done():
            return
        try:
            info = tracker.job_info(job.id)
        except ContainerTrackerError as exc:
            resolve_future(future, None, exc)
        else:
            resolve_future(future, info, None)

    return complete


def resolve_future(
    future: Future[JobInfo], info: JobInfo | None, error: BaseException | None
) -> None:
    """Complete ``future`` unless it is done (or cancelled) already."""
    with contextlib.suppress(FutureStateError):
        if error is not None:
            future.set_exception(error)
        elif info is not None:
            future.set_result(info)
