"""JobSession: runs jobs in one tracker session and hands back Job objects."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Collection

from containertracker.errors import InvalidStateError, JobNotFoundError
from containertracker.models import JobInfo, JobTemplate
from containertracker.sessions._delivery import StateCallback
from containertracker.sessions._dispatch import Dispatcher
from containertracker.sessions._events import DEFAULT_LIMIT, EventStream
from containertracker.sessions._jobs import STARTED, TERMINATED, ArrayJob, Job
from containertracker.sessions._waiting import wait_any, wait_any_async
from containertracker.tracker import ClosesOnExit, ContactStringer, JobTracker

__all__ = ["JobSession"]


class JobSession(ClosesOnExit):
    """A DRMAA2 job session: the jobs of one tracker session (label ``drmaa2_jobsession``).
    Made by :class:`SessionManager`.

    The JobSessions of one name that one manager opened share one dispatcher (and tracker):
    it follows the session's jobs (those run or listed through any of them) and drives every
    wait, callback, future and event stream, so a transition is one event however many times
    the session is open. Thread-safe. ``close()`` (or leaving a ``with`` block) removes this
    object's callbacks and ends its event streams; closing the last JobSession of the name
    stops following and closes the tracker (waits under way raise InvalidStateError). Jobs
    keep running; every later call on this object raises InvalidStateError.
    """

    def __init__(
        self, dispatcher: Dispatcher, release: Callable[[JobSession], None] | None = None
    ) -> None:
        """A handle on ``dispatcher``'s session; ``release(self)`` is called once at close
        (the manager closes the dispatcher after its last handle; without ``release``, the
        session closes it)."""
        self._dispatcher = dispatcher
        self._release = release
        self._lock = threading.Lock()
        self._closed = False
        self._removers: list[Callable[[], None]] = []
        self._streams: weakref.WeakSet[EventStream] = weakref.WeakSet()

    # -- attributes ---------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The session's name: the tracker's session (the jobs' ``drmaa2_jobsession``)."""
        return self._dispatcher.name

    @property
    def contact(self) -> str:
        """How to reach the session again (the tracker's contact string; "" if it has none)."""
        tracker = self._dispatcher.tracker
        return tracker.contact() if isinstance(tracker, ContactStringer) else ""

    @property
    def tracker(self) -> JobTracker:
        """The session's JobTracker (for what the session layer does not cover)."""
        return self._dispatcher.tracker

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
        job_id = self.tracker.add_job(jt)
        job, _ = self._dispatcher.follow(job_id, announce=True, template=jt)
        self._dispatcher.refresh(job_id)
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
        array_id = self.tracker.add_array_job(jt, begin, end, step, max_parallel)
        jobs = self._follow_ids(self.tracker.list_array_jobs(array_id), announce=True)
        return ArrayJob(self._dispatcher, array_id, jobs, jt)

    def get_jobs(self, filter: JobInfo | None = None) -> list[Job]:
        """The session's jobs (finished ones until reaped) that match ``filter`` (DRMAA2
        semantics: every field set in the filter must match; None or ``JobInfo()``: all).

        Every job returned is followed from now on (its current state is no event); the
        others are not.
        """
        self._check_open()
        jobs: list[Job] = []
        for job_id in self.tracker.list_jobs():
            ticket = self._dispatcher.ticket(job_id)  # followed: this read competes
            try:
                info = self.tracker.job_info(job_id)
            except JobNotFoundError:
                continue  # deleted meanwhile (a followed one: the dispatcher sees it)
            if filter is not None and not filter.matches(info):
                continue
            job, new_ticket = self._dispatcher.follow(job_id, announce=False)
            ticket = ticket or new_ticket
            if ticket is None:
                # Followed since the read began: another read may be newer; read again.
                self._dispatcher.refresh(job_id)
            else:
                self._dispatcher.offer(job_id, ticket, info.state, info.sub_state)
            jobs.append(job)
        return jobs

    def get_job_array(self, array_id: str) -> ArrayJob:
        """The array job ``array_id`` of this session (its tasks followed from now on).

        Raises:
            JobNotFoundError: no such array job in the session (an InvalidArgumentError).
        """
        self._check_open()
        jobs = self._follow_ids(self.tracker.list_array_jobs(array_id), announce=False)
        return ArrayJob(self._dispatcher, array_id, jobs)

    def get_job_categories(self) -> list[str]:
        """The job categories (images) a template may name."""
        self._check_open()
        return self.tracker.list_job_categories()

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
        return wait_any(self._dispatcher, jobs, STARTED, timeout)[0]

    def wait_any_terminated(self, jobs: Collection[Job], timeout: float | None = None) -> Job:
        """Block until one of ``jobs`` is DONE or FAILED (its outputs complete); return it.
        As :meth:`wait_any_started` otherwise."""
        self._check_open()
        return wait_any(self._dispatcher, jobs, TERMINATED, timeout)[0]

    async def wait_any_started_async(
        self, jobs: Collection[Job], timeout: float | None = None
    ) -> Job:
        """:meth:`wait_any_started` for asyncio: no thread waits."""
        self._check_open()
        return (await wait_any_async(self._dispatcher, jobs, STARTED, timeout))[0]

    async def wait_any_terminated_async(
        self, jobs: Collection[Job], timeout: float | None = None
    ) -> Job:
        """:meth:`wait_any_terminated` for asyncio: no thread waits."""
        self._check_open()
        return (await wait_any_async(self._dispatcher, jobs, TERMINATED, timeout))[0]

    # -- events -------------------------------------------------------------------------------

    def on_state_change(self, callback: StateCallback) -> Callable[[], None]:
        """Call ``callback(job, old_state, new_state)`` once per change of state of every
        job the session follows, from now on, until removed (the function returned) or this
        JobSession is closed.

        Changes come from the engine's events (through the tracker's change feed; polled
        when it has none). Callbacks run outside every lock, one at a time, in order of the
        changes, on the session's delivery thread: never on the thread of a call such as
        ``job.hold()``. One that raises is logged (loguru) and the others still run. A
        terminal state is reported once the job's outputs are complete.

        A callback may control and wait for jobs (the dispatcher reads states on its own
        thread meanwhile), but later callbacks, event streams and futures wait for it: do
        not block in it on something they deliver (``job.future().result()`` in a callback
        waits forever).
        """
        self._check_open()
        remove = self._dispatcher.add_callback(callback)
        with self._lock:
            self._removers.append(remove)
        return remove

    def events(self, limit: int = DEFAULT_LIMIT) -> EventStream:
        """An async iterator (and async context manager) of the state changes of the
        session's jobs from this call on (as :meth:`on_state_change` sees them); it ends
        when this JobSession is closed. Call it from a coroutine: the events are handed to
        the running loop.

        A consumer that breaks out of ``async for`` needs no clean-up: a stream nobody
        references is unsubscribed. Up to ``limit`` events are buffered for a consumer that
        falls behind; past that the stream is ended: the consumer reads the events buffered,
        then ``__anext__`` raises InvalidStateError saying it fell behind (nothing is lost
        silently).

        Raises:
            InvalidStateError: no running event loop, or the session is closed.
        """
        self._check_open()
        stream = EventStream(self._dispatcher, limit)
        with self._lock:
            self._streams.add(stream)
        return stream

    # -- closing ------------------------------------------------------------------------------

    def close(self) -> None:
        """Remove this object's callbacks, end its event streams; closing the last
        JobSession of the name (of its manager) stops following the jobs and closes the
        tracker (waits under way raise InvalidStateError). Jobs keep running. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            removers, self._removers = self._removers, []
            streams = list(self._streams)
        for remove in removers:
            remove()
        for stream in streams:
            stream.end()
        if self._release is not None:
            self._release(self)
        else:
            self._dispatcher.close()
            self._dispatcher.join()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def __repr__(self) -> str:
        return f"JobSession({self.name!r}{', closed' if self._closed else ''})"

    # -- internals ----------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise InvalidStateError(f"the job session {self.name!r} is closed")
        self._dispatcher.check_open()

    def _follow_ids(self, job_ids: list[str], *, announce: bool) -> list[Job]:
        """Jobs for ``job_ids``, followed, each read once (unless followed already)."""
        jobs = []
        fresh = []
        for job_id in job_ids:
            job, ticket = self._dispatcher.follow(job_id, announce=announce)
            jobs.append(job)
            if ticket is not None:
                fresh.append(job_id)
        for job_id in fresh:
            self._dispatcher.refresh(job_id)
        return jobs
