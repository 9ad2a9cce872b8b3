"""The dispatcher of a job session: one thread that follows the session's jobs.

One dispatcher per session name per :class:`SessionManager`, shared by the JobSessions of
that name it opened (and by their Jobs): a transition is one event however many JobSession
objects show it. It knows the last state it saw of every job it follows and turns each
change into exactly one :class:`JobEvent` (``old_state`` -> ``new_state``), whoever saw it
first:

* the dispatcher thread, woken by the tracker's :class:`~containertracker.tracker.ChangeFeed`
  (each changed job is read once; when the feed says ``complete`` is False, every followed
  unfinished job is, a few at a time on a small pool of readers), or, for a tracker without
  a feed, polling every followed unfinished job once per the tracker's resync interval;
* a caller whose own action may change a job without any engine event (a ``hold``, a
  ``release``, a termination before the start): it reads the job once itself.

Reads race (a caller's and the dispatcher's), so each takes a ticket before it reads, and an
observation is applied only if no later-ticketed one was applied before it: a stale read
never undoes a newer one, and a transition is recorded once, under the lock. A terminal
state is recorded only once *settled* (``tracker.wait(job, 0)`` returned: the job's output
files and stage-out copies are complete), so everything that reacts to a job's end may read
its outputs; settling runs on the readers' pool, and while a job is still settling the feed
is asked again after a short, growing pause rather than at its next answer. Terminal states
are final; a job deleted is *gone*. A job that ended and that nothing waits on, calls back
for or holds a future of is followed no more (its final state is kept on the Job).

What reacts, in this order per change:

* waiters (threads, asyncio futures) are notified under the lock, by setting an event or
  scheduling ``loop.call_soon_threadsafe`` (nothing that blocks or runs user code);
* callbacks, event streams and ``Job.future()`` results are queued, in order of the
  changes, for the session's delivery thread (:mod:`._delivery`): never run by a caller's
  thread nor by the dispatcher's. A callback that raises is logged (loguru) and delivery
  goes on.
"""

from __future__ import annotations

import functools
import itertools
import threading
import time
from collections.abc import Callable, Collection
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Final

from loguru import logger

from containertracker.errors import (
    ContainerTrackerError,
    InvalidArgumentError,
    InvalidStateError,
    JobNotFoundError,
    UnsupportedOperationError,
    WaitTimeoutError,
)
from containertracker.models import JobInfo, JobState, JobTemplate
from containertracker.sessions._delivery import (
    Delivery,
    JobEvent,
    StateCallback,
    Subscriber,
    completion,
    deliver_event,
    resolve_future,
)
from containertracker.sessions._jobs import Job
from containertracker.sessions._waiting import Notify, Outcome, Watch, timeout_error
from containertracker.tracker import ChangeFeed, Closer, ControlAction, JobTracker

__all__ = ["SAFETY_RESYNC", "Dispatcher"]

SAFETY_RESYNC: Final = 30.0
"""Seconds between re-reads of every followed unfinished job while a change feed drives the
dispatcher: a change made by another process without any engine event (a hold, a release
of a throttled job, a termination before the start) shows within this time."""

_READERS: Final = 8
"""Jobs read (and settled) at once in a round of the dispatcher: a full re-read over the
remote backend is that many HTTP calls at a time, not one after the other."""
_FIRST_RECHECK: Final = 0.05
"""Seconds before a job still settling (its outputs being written) is read again; doubled
each time, up to the tracker's resync interval."""


@dataclass(eq=False)
class _Tracked:
    """What the dispatcher knows of one followed, unfinished job."""

    job: Job
    announce: bool
    """Whether its first state is an event (from UNSET): a job run through the session."""
    state: JobState | None = None
    sub_state: str = ""
    applied: int = 0
    """The ticket of the observation applied last."""
    callbacks: tuple[StateCallback, ...] = ()
    watches: set[Watch] = field(default_factory=set)


class Dispatcher:
    """Follows the jobs of one tracker session; see the module docstring. The Jobs it hands
    out act through it (control, waits, futures).

    Args:
        tracker: the session's tracker; the dispatcher takes it over (closes it).
        session: the session's name.
        interval: the tracker's resync interval: the polling period without a feed, and the
            longest a feed round blocks.
        safety_interval: see :data:`SAFETY_RESYNC`.

    Raises:
        ContainerTrackerError: the feed's first cursor could not be read.
    """

    def __init__(
        self,
        tracker: JobTracker,
        session: str,
        interval: float,
        safety_interval: float = SAFETY_RESYNC,
    ) -> None:
        self._tracker = tracker
        self._session = session
        self._interval = interval
        self._safety_interval = safety_interval
        self._lock = threading.Lock()
        self._tracked: dict[str, _Tracked] = {}
        self._tickets = itertools.count(1)
        self._recheck: set[str] = set()
        self._everything = False
        self._watches: set[Watch] = set()
        self._callbacks: tuple[StateCallback, ...] = ()
        self._subscribers: tuple[Subscriber, ...] = ()
        self._closed = threading.Event()
        self._log = logger.bind(session=session)
        self._feed: ChangeFeed | None = None
        self._cursor = 0
        if isinstance(tracker, ChangeFeed):
            # The cursor is taken before any job is read: nothing after it is missed.
            try:
                self._cursor = tracker.changes(None, 0).cursor
                self._feed = tracker
            except UnsupportedOperationError:
                pass  # a remote server without the feed: poll
        self._delivery = Delivery(session)
        self._readers = ThreadPoolExecutor(
            _READERS, thread_name_prefix=f"containertracker-reader-{session}"
        )
        self._thread = threading.Thread(
            target=self._run, name=f"containertracker-session-{session}", daemon=True
        )
        self._thread.start()

    @property
    def name(self) -> str:
        """The session's name."""
        return self._session

    @property
    def tracker(self) -> JobTracker:
        """The session's tracker."""
        return self._tracker

    @property
    def driven_by_feed(self) -> bool:
        """Whether a change feed drives the dispatcher (else it polls)."""
        return self._feed is not None

    # -- following ----------------------------------------------------------------------------

    def follow(
        self, job_id: str, *, announce: bool, template: JobTemplate | None = None
    ) -> tuple[Job, int | None]:
        """Follow job ``job_id`` (unless it is followed already: its Job is kept).

        Returns:
            The Job, and a ticket for a read the caller made *before* this call (see
            :meth:`offer`), or None when the job was followed already (another thread may
            have read it since: the caller's read may be stale, :meth:`refresh` instead).
        """
        with self._lock:
            self._check_open()
            tracked = self._tracked.get(job_id)
            if tracked is not None:
                return tracked.job, None
            tracked = self._tracked[job_id] = _Tracked(Job(self, job_id, template), announce)
            return tracked.job, next(self._tickets)

    def ticket(self, job_id: str) -> int | None:
        """A ticket for a read of a followed job the caller makes next; None if not
        followed."""
        with self._lock:
            return next(self._tickets) if job_id in self._tracked else None

    def state_of(self, job: Job) -> tuple[JobState | None, str]:
        """The last state (and sub-state) seen of a job; None: not read yet."""
        with self._lock:
            tracked = self._tracked.get(job.id)
            if tracked is None:
                return job._final or (None, "")
            return tracked.state, tracked.sub_state

    def refresh(self, job_id: str) -> None:
        """Read a followed job now (in the caller's thread) and apply what was read. Errors
        of the read are logged, not raised (the job is read again at the next round)."""
        self._observe(job_id)

    def offer(self, job_id: str, ticket: int, state: JobState, sub_state: str) -> None:
        """Apply a state the caller read after taking ``ticket``; a terminal one is settled
        first."""
        try:
            settled = self._settle(job_id, state, sub_state)
        except JobNotFoundError:
            self._gone(job_id)
        except ContainerTrackerError as exc:
            self._retry_later(job_id, exc)
        else:
            if settled is not None:
                self._apply(job_id, ticket, *settled)

    def forget(self, job: Job) -> None:
        """The job was deleted: waiters on it raise JobNotFoundError; it is read no more."""
        job._gone = True
        self._gone(job.id)

    # -- what Jobs do -------------------------------------------------------------------------

    def control(self, job: Job, action: ControlAction) -> None:
        """Apply ``action`` to ``job``, then read it: a hold, a release or a termination
        before the start changes the state without any engine event."""
        self.check_open()
        self._tracker.job_control(job.id, action)
        self.refresh(job.id)

    def reap(self, job: Job) -> None:
        """Delete the job; it is followed no more."""
        self.check_open()
        self._tracker.delete_job(job.id)
        self.forget(job)

    # -- callbacks, streams, futures ------------------------------------------------------------

    def add_callback(self, callback: StateCallback, job: Job | None = None) -> Callable[[], None]:
        """Call ``callback(job, old, new)`` for every change of every followed job (or of
        ``job``) from now on; returns a function that removes it again."""
        with self._lock:
            self._check_open()
            tracked = None if job is None else self._tracked.get(job.id)
            if job is None:
                self._callbacks += (callback,)
            elif tracked is not None:
                tracked.callbacks += (callback,)
            # else: the job ended (or is gone): it changes no more

        def remove() -> None:
            with self._lock:
                if job is None:
                    self._callbacks = _without(self._callbacks, callback)
                elif tracked is not None:
                    tracked.callbacks = _without(tracked.callbacks, callback)

        return remove

    def subscribe(self, push: Subscriber) -> Callable[[], None]:
        """``push(event)`` (on the delivery thread) for every change from now on, in order,
        and ``push(None)`` once at close; ``push`` must not block. Returns a function that
        unsubscribes."""
        with self._lock:
            self._check_open()
            self._subscribers += (push,)

        def remove() -> None:
            with self._lock:
                self._subscribers = _without(self._subscribers, push)

        return remove

    def after_queued(self, item: Callable[[], None]) -> None:
        """Run ``item`` on the delivery thread after everything queued so far (not at all
        once the dispatcher is closed)."""
        with self._lock:
            if not self._closed.is_set():
                self._delivery.put(item)

    def future(self, job: Job) -> Future[JobInfo]:
        """A Future completed with the job's JobInfo once it ended (its outputs complete), or
        with the error that prevented it (the job was deleted, the session closed)."""
        with self._lock:
            self._check_open()
            if job._future is None or job._future.cancelled():
                future: Future[JobInfo] = Future()
                job._future = future
                tracked = self._tracked.get(job.id)
                if job._gone:
                    resolve_future(future, None, _deleted(job.id))
                elif tracked is None or tracked.job is not job:
                    # It ended (no longer followed): its JobInfo is read on the delivery thread.
                    self._delivery.put(completion(self._tracker, job, future))
            return job._future

    # -- waiting (for ._waiting) ---------------------------------------------------------------

    def watch(
        self,
        jobs: Collection[Job],
        states: frozenset[JobState],
        notify: Notify,
        *,
        immediate: bool,
    ) -> Watch | Outcome:
        """Register a watch of ``jobs`` for ``states``, or return the outcome at once (a job
        is in ``states`` already, or gone); with ``immediate``, register nothing and raise
        WaitTimeoutError when no job qualifies.

        Raises:
            InvalidArgumentError: no jobs, or a job of another session.
            InvalidStateError: the session is closed.
            WaitTimeoutError: with ``immediate``, or every job ended outside ``states``.
        """
        with self._lock:
            self._check_open()
            if not jobs:
                raise InvalidArgumentError("no jobs to wait for")
            tracked = []
            for job in jobs:
                if job._dispatcher is not self:
                    raise InvalidArgumentError(
                        f"job {job.id} is not a job of job session {self._session!r}"
                    )
                if job._gone:
                    return job, JobState.UNSET, _deleted(job.id)
                entry = self._tracked.get(job.id)
                state = job._final[0] if entry is None and job._final else None
                if entry is not None:
                    state = entry.state
                    tracked.append(entry)
                if state in states:
                    return job, state, None
            if immediate or not tracked:  # not tracked: every job ended, none as wanted
                raise timeout_error(jobs, states, 0 if immediate else None)
            watch = Watch(states, notify)
            watch.entries = list(tracked)
            for entry in tracked:
                entry.watches.add(watch)
            self._watches.add(watch)
        return watch

    def unwatch(self, watch: Watch) -> None:
        """Unregister ``watch``: it fires no more."""
        with self._lock:
            watch.done = True
            self._watches.discard(watch)
            for entry in watch.entries:
                assert isinstance(entry, _Tracked)
                entry.watches.discard(watch)

    # -- closing ------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop following: every waiter raises InvalidStateError, pending futures get it,
        event streams end once what was queued for them is delivered; closes the tracker.
        Idempotent; :meth:`join` waits for the threads."""
        closed = InvalidStateError(f"the job session {self._session!r} is closed")
        with self._lock:
            if self._closed.is_set():
                return
            self._closed.set()
            for watch in self._watches:
                watch.fire(None, JobState.UNSET, closed)
            self._watches.clear()
            for tracked in self._tracked.values():
                if tracked.job._future is not None:
                    resolve_future(tracked.job._future, None, closed)
            subscribers, self._subscribers = self._subscribers, ()
        for push in subscribers:
            self._delivery.put(functools.partial(push, None))
        self._delivery.close()
        if isinstance(self._tracker, Closer):
            self._tracker.close()  # wakes a blocked feed

    def join(self) -> None:
        """Wait for the threads to end (what was queued is delivered); from one of them (a
        callback), return at once."""
        if threading.current_thread() is not self._thread:
            self._thread.join()
        self._delivery.join()

    def check_open(self) -> None:
        """Raise InvalidStateError once closed."""
        self._check_open()

    def _check_open(self) -> None:
        if self._closed.is_set():
            raise InvalidStateError(f"the job session {self._session!r} is closed")

    # -- the thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        next_full_read = time.monotonic() + self._safety_interval
        pause = _FIRST_RECHECK
        while not self._closed.is_set():
            try:
                job_ids = self._next_round(pause)
                with self._lock:
                    # Rechecks pending (a job still settling): ask again soon, then later.
                    pause = min(pause * 2, self._interval) if self._recheck else _FIRST_RECHECK
                if self._feed is not None and time.monotonic() >= next_full_read:
                    next_full_read = time.monotonic() + self._safety_interval
                    job_ids = self._unfinished()
                # Reads (and settling) on the pool: one slow job does not hold the others.
                for _ in self._readers.map(self._observe, job_ids):
                    pass
            except ContainerTrackerError as exc:
                if self._closed.is_set():
                    break
                # The feed failed (the engine or server away): try again, then read all.
                self._log.warning("following the session's jobs failed, retrying: {}", exc)
                self._everything = True
                self._closed.wait(self._interval)
            except Exception:  # a bug: logged, and the session keeps following
                self._log.opt(exception=True).error("the job session's dispatcher failed")
                self._closed.wait(self._interval)
        self._readers.shutdown(wait=True, cancel_futures=True)

    def _next_round(self, pause: float) -> list[str]:
        """The ids to read next: after the feed's next answer (or a polling pause); with
        rechecks pending, the feed is asked to answer within ``pause``."""
        if self._feed is None:
            with self._lock:
                waiting = bool(self._recheck)
            self._closed.wait(pause if waiting else self._interval)
            self._everything = True
        else:
            with self._lock:
                timeout = pause if self._recheck else self._interval
            try:
                changes = self._feed.changes(self._cursor, timeout)
            except UnsupportedOperationError:
                self._log.info("the tracker's change feed is gone: polling from now on")
                self._feed = None
                return self._unfinished()
            self._cursor = changes.cursor
            if changes.complete and not self._everything:
                with self._lock:
                    changed = [i for i in changes.job_ids if i in self._tracked]
                    return list(dict.fromkeys(changed + sorted(self._take_rechecks())))
        return self._unfinished()

    def _unfinished(self) -> list[str]:
        with self._lock:
            self._everything = False
            self._take_rechecks()
            return list(self._tracked)

    def _take_rechecks(self) -> set[str]:
        rechecks, self._recheck = self._recheck, set()
        return rechecks

    # -- observing ----------------------------------------------------------------------------

    def _observe(self, job_id: str) -> None:
        """Read a followed, unfinished job and apply its state."""
        if self._closed.is_set():
            return
        ticket = self.ticket(job_id)
        if ticket is None:
            return
        try:
            state, sub_state = self._tracker.job_state(job_id)
            settled = self._settle(job_id, state, sub_state)
        except JobNotFoundError:
            self._gone(job_id)
            return
        except ContainerTrackerError as exc:
            self._retry_later(job_id, exc)
            return
        if settled is not None:
            self._apply(job_id, ticket, *settled)

    def _settle(self, job_id: str, state: JobState, sub_state: str) -> tuple[JobState, str] | None:
        """The state to record: a terminal one only once its outputs are complete (the
        tracker's ``wait`` returns it); None while the job is still stopping (it is read
        again soon: see :meth:`_next_round`)."""
        if not state.terminal:
            return state, sub_state
        with self._lock:
            if job_id not in self._tracked:
                return None
        try:
            final = self._tracker.wait(job_id, 0)
        except WaitTimeoutError:
            with self._lock:
                self._recheck.add(job_id)
            return None
        if final is not state:  # e.g. a stage-out failed: DONE became FAILED
            return self._tracker.job_state(job_id)
        return state, sub_state

    def _retry_later(self, job_id: str, exc: ContainerTrackerError) -> None:
        if self._closed.is_set():
            return
        self._log.debug("reading job {} failed, read again next round: {}", job_id, exc)
        with self._lock:
            self._recheck.add(job_id)

    def _apply(self, job_id: str, ticket: int, state: JobState, sub_state: str) -> None:
        """Record a state read with ``ticket``: a change becomes one event (queued for
        delivery) and wakes the waiters it satisfies. A job that ended is followed no more:
        every watch on it fired, its callbacks can see no other change, its future's
        completion is queued; its final state stays on the Job."""
        with self._lock:
            tracked = self._tracked.get(job_id)
            if tracked is None or ticket <= tracked.applied:
                return  # stale: a read that began later was applied already
            tracked.applied = ticket
            old = tracked.state
            tracked.sub_state = sub_state
            if old is state:
                return
            tracked.state = state
            job = tracked.job
            if old is not None or tracked.announce:
                event = JobEvent(job, old or JobState.UNSET, state, sub_state)
                callbacks = self._callbacks + tracked.callbacks
                self._delivery.put(deliver_event(self._log, event, callbacks, self._subscribers))
            for watch in list(tracked.watches):
                if state in watch.states:
                    watch.fire(job, state, None)
            if state.terminal:
                job._final = (state, sub_state)
                del self._tracked[job_id]
                self._recheck.discard(job_id)
                if job._future is not None:
                    self._delivery.put(completion(self._tracker, job, job._future))

    def _gone(self, job_id: str) -> None:
        with self._lock:
            tracked = self._tracked.pop(job_id, None)
            self._recheck.discard(job_id)
            if tracked is None:
                return
            tracked.job._gone = True
            error = _deleted(job_id)
            for watch in list(tracked.watches):
                watch.fire(tracked.job, JobState.UNSET, error)
            if tracked.job._future is not None:
                resolve_future(tracked.job._future, None, error)


_Items = tuple[Callable[..., None], ...]


def _without(items: _Items, item: object) -> _Items:
    """``items`` without the first occurrence of ``item``."""
    for index, present in enumerate(items):
        if present is item or present == item:
            return items[:index] + items[index + 1 :]
    return items


def _deleted(job_id: str) -> JobNotFoundError:
    return JobNotFoundError(f"job {job_id} was deleted (reaped)")
