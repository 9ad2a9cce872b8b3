"""JobSession: runs jobs in one tracker session and hands back Job objects."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from types import TracebackType
from typing import Self

from containertracker.errors import InvalidStateError, JobNotFoundError, WaitTimeoutError
from containertracker.models import JobInfo, JobState, JobTemplate
from containertracker.sessions._dispatch import Dispatcher, JobEvent, StateCallback
from containertracker.sessions._jobs import STARTED, TERMINATED, ArrayJob, Job
from containertracker.tracker import Closer, ContactStringer, ControlAction, JobTracker

__all__ = ["JobSession"]


class JobSession:
    """A DRMAA2 job session: the jobs of one tracker session (label ``drmaa2_jobsession``),
    run and followed through one tracker. Made by :class:`SessionManager`.

    One dispatcher thread follows the session's jobs (those it ran or listed) and drives
    every wait, callback, future and event stream; see the README's "Sessions and jobs".
    Thread-safe. ``close()`` (or leaving a ``with`` block) stops following and closes the
    tracker; jobs keep running; every later call raises InvalidStateError.
    """

    def __init__(
        self,
        name: str,
        tracker: JobTracker,
        *,
        resync_interval: float,
        callbacks: Sequence[StateCallback] = (),
        on_close: Callable[[JobSession], None] | None = None,
    ) -> None:
        """Follow ``tracker``'s session ``name`` (the session takes the tracker over and
        closes it). ``resync_interval``: the tracker's, the polling period when the tracker
        has no change feed. ``callbacks`` are registered as :meth:`on_state_change`.

        Raises:
            ContainerTrackerError: the tracker's change feed could not be reached.
        """
        self._name = name
        self._tracker = tracker
        self._on_close = on_close
        self._closed = False
        self._dispatcher = Dispatcher(tracker, name, resync_interval)
        for callback in callbacks:
            self._dispatcher.add_callback(callback)

    # -- attributes ---------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The session's name: the tracker's session (the jobs' ``drmaa2_jobsession``)."""
        return self._name

    @property
    def contact(self) -> str:
        """How to reach the session again (the tracker's contact string; "" if it has none)."""
        return self._tracker.contact() if isinstance(self._tracker, ContactStringer) else ""

    @property
    def tracker(self) -> JobTracker:
        """The session's JobTracker (for what the session layer does not cover)."""
        return self._tracker

    @property
    def event_driven(self) -> bool:
        """Whether a change feed drives waits and callbacks (else the session polls every
        followed unfinished job once per the tracker's resync interval)."""
        return self._dispatcher.driven_by_feed

    # -- running ------------------------------------------------------------------------------

    def run_job(self, jt: JobTemplate) -> Job:
        """Submit ``jt`` and return its Job (followed from now on; its first state is an
        event from UNSET).

        Raises:
            InvalidArgumentError, UnsupportedAttributeError: the template (as ``add_job``).
        """
        self._check_open()
        job, _ = self._dispatcher.follow(Job(self, self._tracker.add_job(jt), jt), announce=True)
        self._dispatcher.refresh(job.id)
        return job

    def run_bulk_jobs(
        self, jt: JobTemplate, begin: int, end: int, step: int = 1, max_parallel: int = 0
    ) -> ArrayJob:
        """Submit an array job: a task per index of ``range(begin, end + 1, step)``, at most
        ``max_parallel`` running at once (0: no limit). Each task is followed; its first
        state is an event from UNSET.

        Raises:
            InvalidArgumentError: bad bounds, step, max_parallel or template.
        """
        self._check_open()
        array_id = self._tracker.add_array_job(jt, begin, end, step, max_parallel)
        jobs = self._follow_ids(self._tracker.list_array_jobs(array_id), announce=True)
        return ArrayJob(self, array_id, jobs, jt)

    def get_jobs(self, filter: JobInfo | None = None) -> list[Job]:
        """The session's jobs (finished ones until reaped) that match ``filter`` (DRMAA2
        semantics: every field set in the filter must match; None or ``JobInfo()``: all).

        Every job listed is followed from now on (its current state is no event).
        """
        self._check_open()
        jobs: list[Job] = []
        for job_id in self._tracker.list_jobs():
            job, ticket = self._dispatcher.follow(Job(self, job_id), announce=False)
            try:
                info = self._tracker.job_info(job_id)
            except JobNotFoundError:
                self._dispatcher.forget(job_id)  # deleted meanwhile
                continue
            self._dispatcher.offer(job_id, ticket, info.state, info.sub_state)
            if filter is None or filter.matches(info):
                jobs.append(job)
        return jobs

    def get_job_array(self, array_id: str) -> ArrayJob:
        """The array job ``array_id`` of this session (its tasks followed from now on).

        Raises:
            JobNotFoundError: no such array job in the session (an InvalidArgumentError).
        """
        self._check_open()
        jobs = self._follow_ids(self._tracker.list_array_jobs(array_id), announce=False)
        return ArrayJob(self, array_id, jobs)

    def get_job_categories(self) -> list[str]:
        """The job categories (images) a template may name."""
        self._check_open()
        return self._tracker.list_job_categories()

    # -- waiting ------------------------------------------------------------------------------

    def wait_any_started(self, jobs: Collection[Job], timeout: float | None = None) -> Job:
        """Block until one of ``jobs`` runs or has run (see :meth:`Job.wait_started`);
        return it. One waiter for all of them: no thread per job.

        ``timeout`` in seconds; None waits forever, 0 looks once at the session's view.

        Raises:
            InvalidArgumentError: ``jobs`` is empty or holds a job of another session.
            WaitTimeoutError: the timeout passed first.
            JobNotFoundError: one of the jobs was deleted.
            InvalidStateError: the session was closed (before or while waiting).
        """
        self._check_open()
        return self._dispatcher.wait_any(jobs, STARTED, timeout)[0]

    def wait_any_terminated(self, jobs: Collection[Job], timeout: float | None = None) -> Job:
        """Block until one of ``jobs`` is DONE or FAILED (its outputs complete); return it.
        As :meth:`wait_any_started` otherwise."""
        self._check_open()
        return self._dispatcher.wait_any(jobs, TERMINATED, timeout)[0]

    async def wait_any_started_async(
        self, jobs: Collection[Job], timeout: float | None = None
    ) -> Job:
        """:meth:`wait_any_started` for asyncio: no thread waits."""
        self._check_open()
        return (await self._dispatcher.wait_any_async(jobs, STARTED, timeout))[0]

    async def wait_any_terminated_async(
        self, jobs: Collection[Job], timeout: float | None = None
    ) -> Job:
        """:meth:`wait_any_terminated` for asyncio: no thread waits."""
        self._check_open()
        return (await self._dispatcher.wait_any_async(jobs, TERMINATED, timeout))[0]

    # -- events -------------------------------------------------------------------------------

    def on_state_change(self, callback: StateCallback) -> Callable[[], None]:
        """Call ``callback(job, old_state, new_state)`` once per change of state of every
        job the session follows, from now on; returns a function that removes it.

        Changes come from the engine's events (through the tracker's change feed; polled
        when it has none). Callbacks run outside every lock, one at a time, in order of the
        changes, on the session's dispatcher thread (or on the thread whose control call,
        e.g. ``job.hold()``, showed the change); one that raises is logged (loguru) and the
        others still run. A terminal state is reported once the job's outputs are complete.
        """
        self._check_open()
        return self._dispatcher.add_callback(callback)

    def events(self) -> AsyncIterator[JobEvent]:
        """An async iterator of the state changes of the session's jobs from this call on
        (as :meth:`on_state_change` sees them); it ends when the session is closed. Call it
        from a coroutine: the events are handed to the running loop.

        Raises:
            InvalidStateError: no running event loop, or the session is closed.
        """
        self._check_open()
        return _EventStream(self._dispatcher)

    # -- closing ------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop following the jobs and close the tracker; jobs keep running. Waits under way
        raise InvalidStateError, event streams end. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._dispatcher.close()
        if isinstance(self._tracker, Closer):
            self._tracker.close()
        self._dispatcher.join()
        if self._on_close is not None:
            self._on_close(self)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"JobSession({self._name!r}{', closed' if self._closed else ''})"

    # -- for Job and ArrayJob -----------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise InvalidStateError(f"the job session {self._name!r} is closed")

    def _follow_ids(self, job_ids: list[str], *, announce: bool) -> list[Job]:
        """Jobs for ``job_ids``, followed, each read once (unless followed already)."""
        jobs = []
        for job_id in job_ids:
            job, _ = self._dispatcher.follow(Job(self, job_id), announce=announce)
            jobs.append(job)
        for job in jobs:
            if self._dispatcher.state_of(job.id)[0] is None:
                self._dispatcher.refresh(job.id)
        return jobs

    def _control(self, job: Job, action: ControlAction) -> None:
        """Apply ``action`` to ``job``, then read it: a hold, a release or a termination
        before the start changes the state without any engine event."""
        self._check_open()
        self._tracker.job_control(job.id, action)
        self._dispatcher.refresh(job.id)

    def _reap(self, job: Job) -> None:
        self._check_open()
        self._tracker.delete_job(job.id)
        self._dispatcher.forget(job.id)

    def _wait_all(self, jobs: Sequence[Job], timeout: float | None) -> list[JobState]:
        deadline = None if timeout is None else time.monotonic() + timeout
        states = []
        for job in jobs:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            states.append(self._dispatcher.wait_any([job], TERMINATED, left)[1])
        return states

    async def _wait_all_async(self, jobs: Sequence[Job], timeout: float | None) -> list[JobState]:
        waits = [self._dispatcher.wait_any_async([job], TERMINATED, None) for job in jobs]
        try:
            async with asyncio.timeout(timeout):
                done = await asyncio.gather(*waits)
        except TimeoutError:
            raise WaitTimeoutError(
                f"timeout while waiting: not every task of the array ended within {timeout} s"
            ) from None
        return [state for _, state in done]


class _EventStream:
    """The async iterator :meth:`JobSession.events` returns: subscribed at creation, fed
    through ``loop.call_soon_threadsafe``, ended by the session's close."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            raise InvalidStateError(
                "events() hands events to a running asyncio loop: call it from a coroutine"
            ) from None
        self._queue: asyncio.Queue[JobEvent | None] = asyncio.Queue()
        self._ended = False
        self._unsubscribe = dispatcher.subscribe(self._push)

    def _push(self, event: JobEvent | None) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, event)
        except RuntimeError:  # the loop is closed: nobody listens
            self._unsubscribe()

    def __aiter__(self) -> _EventStream:
        return self

    async def __anext__(self) -> JobEvent:
        if self._ended:
            raise StopAsyncIteration
        event = await self._queue.get()
        if event is None:
            self._ended = True
            raise StopAsyncIteration
        return event

    async def aclose(self) -> None:
        """Stop receiving events."""
        self._ended = True
        self._unsubscribe()
