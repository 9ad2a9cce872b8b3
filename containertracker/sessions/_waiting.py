"""Waiting for jobs of a session: one watch per wait, however many jobs it covers.

A wait registers a :class:`Watch` with the dispatcher (``Dispatcher.watch``), which fires it,
under its lock, when one of the jobs reaches one of the wanted states: a blocking wait sets
an event, an asyncio wait schedules its future's result through
``loop.call_soon_threadsafe``. No thread per waiting job, and nothing that blocks or runs
user code under the dispatcher's lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING

from containertracker.errors import InvalidArgumentError, WaitTimeoutError
from containertracker.models import JobState

if TYPE_CHECKING:
    from containertracker.sessions._dispatch import Dispatcher
    from containertracker.sessions._jobs import Job

__all__ = [
    "Notify",
    "Outcome",
    "Watch",
    "check_timeout",
    "wait_all",
    "wait_all_async",
    "wait_any",
    "wait_any_async",
]

Notify = Callable[["Job | None", JobState, BaseException | None], None]
Outcome = tuple["Job | None", JobState, BaseException | None]
"""A wait's end: the job and the state it reached, or the error that ended the wait."""


class Watch:
    """A waiter for any of some jobs to reach one of ``states``. ``notify(job, state, error)``
    is called once, under the dispatcher's lock: it must not block."""

    __slots__ = ("done", "entries", "notify", "states")

    def __init__(self, states: frozenset[JobState], notify: Notify) -> None:
        self.states = states
        self.notify = notify
        self.done = False
        self.entries: list[object] = []
        """What it watches (for the dispatcher to unregister it from)."""

    def fire(self, job: Job | None, state: JobState, error: BaseException | None) -> None:
        if not self.done:
            self.done = True
            self.notify(job, state, error)


def wait_any(
    watcher: Dispatcher, jobs: Collection[Job], states: frozenset[JobState], timeout: float | None
) -> tuple[Job, JobState]:
    """Block until one of ``jobs`` is in one of ``states`` (as the dispatcher last saw it);
    ``timeout`` seconds (None: forever, 0: look once).

    Raises:
        InvalidArgumentError: no jobs, a job the session does not follow, a negative timeout.
        JobNotFoundError: one of the jobs was deleted.
        WaitTimeoutError: the timeout passed first.
        InvalidStateError: the session was closed (before or while waiting).
    """
    check_timeout(timeout)
    reached = threading.Event()
    outcome: list[Outcome] = []

    def notify(job: Job | None, state: JobState, error: BaseException | None) -> None:
        outcome.append((job, state, error))
        reached.set()

    watch = watcher.watch(jobs, states, notify, immediate=timeout == 0)
    if isinstance(watch, Watch):
        try:
            reached.wait(timeout)
        finally:
            watcher.unwatch(watch)  # no notification after this
        if not outcome:
            raise timeout_error(jobs, states, timeout)
        watch = outcome[0]
    return _result(watch)


async def wait_any_async(
    watcher: Dispatcher, jobs: Collection[Job], states: frozenset[JobState], timeout: float | None
) -> tuple[Job, JobState]:
    """:func:`wait_any` as a coroutine: no thread waits; the dispatcher resolves an asyncio
    future through ``loop.call_soon_threadsafe``."""
    check_timeout(timeout)
    loop = asyncio.get_running_loop()
    done: asyncio.Future[tuple[Job, JobState]] = loop.create_future()

    def notify(job: Job | None, state: JobState, error: BaseException | None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
            loop.call_soon_threadsafe(_resolve_async, done, (job, state, error))

    watch = watcher.watch(jobs, states, notify, immediate=timeout == 0)
    if not isinstance(watch, Watch):
        return _result(watch)
    try:
        async with asyncio.timeout(timeout):
            return await done
    except TimeoutError:
        if done.done() and not done.cancelled():
            return done.result()
        raise timeout_error(jobs, states, timeout) from None
    finally:
        watcher.unwatch(watch)


def wait_all(
    watcher: Dispatcher, jobs: Sequence[Job], states: frozenset[JobState], timeout: float | None
) -> list[JobState]:
    """Block until every job is in one of ``states``; ``timeout`` is for all of them
    together. Returns their states, in order."""
    deadline = None if timeout is None else time.monotonic() + timeout
    reached = []
    for job in jobs:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        reached.append(wait_any(watcher, [job], states, left)[1])
    return reached


async def wait_all_async(
    watcher: Dispatcher, jobs: Sequence[Job], states: frozenset[JobState], timeout: float | None
) -> list[JobState]:
    """:func:`wait_all` as a coroutine."""
    waits = [wait_any_async(watcher, [job], states, None) for job in jobs]
    try:
        async with asyncio.timeout(timeout):
            done = await asyncio.gather(*waits)
    except TimeoutError:
        raise WaitTimeoutError(
            f"timeout while waiting: not every one of {len(jobs)} jobs got there within {timeout} s"
        ) from None
    return [state for _, state in done]


def check_timeout(timeout: float | None) -> None:
    if timeout is not None and not timeout >= 0:
        raise InvalidArgumentError(f"timeout must be None, 0 or positive, not {timeout}")


def timeout_error(
    jobs: Collection[Job], states: frozenset[JobState], timeout: float | None
) -> WaitTimeoutError:
    wanted = "/".join(sorted(s.name for s in states))
    which = f"job {next(iter(jobs)).id}" if len(jobs) == 1 else f"none of {len(jobs)} jobs"
    return WaitTimeoutError(f"timeout while waiting: {which} reached {wanted} within {timeout} s")


def _result(outcome: Outcome) -> tuple[Job, JobState]:
    job, state, error = outcome
    if error is not None:
        raise error
    assert job is not None
    return job, state


def _resolve_async(future: asyncio.Future[tuple[Job, JobState]], outcome: Outcome) -> None:
    if future.done():
        return
    job, state, error = outcome
    if error is not None:
        future.set_exception(error)
    else:
        assert job is not None
        future.set_result((job, state))
