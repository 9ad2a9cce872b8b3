"""The dispatcher of a JobSession: one thread that follows the session's jobs.

It knows the last state it saw of every job it follows and turns each change into exactly
one :class:`JobEvent` (``old_state`` -> ``new_state``), whoever saw it first:

* the dispatcher thread, woken by the tracker's :class:`~containertracker.tracker.ChangeFeed`
  (each changed job is read once; when the feed says ``complete`` is False, every followed
  job is), or, for a tracker without a feed, polling every followed unfinished job once per
  the tracker's resync interval;
* a caller whose own action may change a job without any engine event (a ``hold``, a
  ``release``, a termination before the start): it reads the job once itself.

Reads race (a caller's and the dispatcher's), so each takes a ticket before it reads, and an
observation is applied only if no later-ticketed one was applied before it: a stale read
never undoes a newer one, and a transition is recorded once, under the lock. A terminal
state is recorded only once *settled* (``tracker.wait(job, 0)`` returned: the job's output
files and stage-out copies are complete), so everything that reacts to a job's end may read
its outputs. Terminal states are final; a job deleted is *gone*.

What reacts, in this order per change:

* waiters (threads, asyncio futures) are notified under the lock, by setting an event or
  scheduling ``loop.call_soon_threadsafe`` (nothing that blocks or runs user code);
* callbacks, event streams and ``Job.future()`` results run outside the lock, one item at a
  time and in order of the changes, on the thread that applied the change (the dispatcher,
  or the caller whose action showed it): whoever finds the delivery queue idle drains it
  (so a callback may itself control jobs without deadlock). A callback that raises is
  logged (loguru) and delivery goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import Future
from concurrent.futures import InvalidStateError as FutureStateError
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from loguru import logger

from containertracker.errors import (
    ContainerTrackerError,
    InvalidArgumentError,
    InvalidStateError,
    JobNotFoundError,
    UnsupportedOperationError,
    WaitTimeoutError,
)
from containertracker.models import JobInfo, JobState
from containertracker.tracker import ChangeFeed, JobTracker

if TYPE_CHECKING:
    from containertracker.sessions._jobs import Job

__all__ = ["SAFETY_RESYNC", "Dispatcher", "JobEvent", "StateCallback"]

SAFETY_RESYNC: Final = 30.0
"""Seconds between re-reads of every followed unfinished job while a change feed drives the
dispatcher: a change made by another process without any engine event (a hold, a release
of a throttled job, a termination before the start) shows within this time."""

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


_Notify = Callable[["Job | None", JobState, BaseException | None], None]
_Outcome = tuple["Job | None", JobState, BaseException | None]


class _Watch:
    """A waiter for any of some jobs to reach one of ``states``. ``notify(job, state, error)``
    is called once, under the dispatcher's lock: it must not block."""

    __slots__ = ("done", "entries", "notify", "states")

    def __init__(self, states: frozenset[JobState], notify: _Notify) -> None:
        self.states = states
        self.notify = notify
        self.done = False
        self.entries: list[_Tracked] = []
        """What it watches (to unregister it from)."""

    def fire(self, job: Job | None, state: JobState, error: BaseException | None) -> None:
        if not self.done:
            self.done = True
            self.notify(job, state, error)


@dataclass(eq=False)
class _Tracked:
    """What the dispatcher knows of one followed job."""

    job: Job
    announce: bool
    """Whether its first state is an event (from UNSET): a job run through the session."""
    state: JobState | None = None
    sub_state: str = ""
    applied: int = 0
    """The ticket of the observation applied last."""
    gone: bool = False
    callbacks: tuple[StateCallback, ...] = ()
    watches: set[_Watch] = field(default_factory=set)
    future: Future[JobInfo] | None = None

    @property
    def ended(self) -> bool:
        return self.gone or (self.state is not None and self.state.terminal)


class Dispatcher:
    """Follows jobs of one tracker session; see the module docstring.

    Args:
        tracker: the session's tracker (the dispatcher reads it; the JobSession closes it).
        session: the session's name (for the thread's name and messages).
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
        self._watches: set[_Watch] = set()
        self._callbacks: tuple[StateCallback, ...] = ()
        self._subscribers: tuple[Callable[[JobEvent | None], None], ...] = ()
        self._queue: deque[Callable[[], None]] = deque()
        self._delivering = False
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
        self._thread = threading.Thread(
            target=self._run, name=f"containertracker-session-{session}", daemon=True
        )
        self._thread.start()

    @property
    def driven_by_feed(self) -> bool:
        """Whether a change feed drives the dispatcher (else it polls)."""
        return self._feed is not None

    # -- following ----------------------------------------------------------------------------

    def follow(self, job: Job, *, announce: bool) -> tuple[Job, int]:
        """Follow ``job`` (unless a Job of that id is followed already: that one is kept) and
        take a ticket for a read the caller makes next (see :meth:`offer`).

        Returns:
            The followed Job of that id, and the ticket.
        """
        with self._lock:
            self._check_open()
            tracked = self._tracked.get(job.id)
            if tracked is None:
                tracked = self._tracked[job.id] = _Tracked(job, announce)
            return tracked.job, next(self._tickets)

    def job(self, job_id: str) -> Job | None:
        """The followed Job of that id, if any."""
        with self._lock:
            tracked = self._tracked.get(job_id)
            return None if tracked is None else tracked.job

    def state_of(self, job_id: str) -> tuple[JobState | None, str]:
        """The last state (and sub-state) seen of a followed job; None: not read yet, or not
        followed."""
        with self._lock:
            tracked = self._tracked.get(job_id)
            return (None, "") if tracked is None else (tracked.state, tracked.sub_state)

    def refresh(self, job_id: str) -> None:
        """Read a followed job now (in the caller's thread) and apply what was read; then
        deliver what is due. Errors of the read are logged, not raised (the job is read again
        at the dispatcher's next round)."""
        self._observe(job_id)
        self._deliver()

    def offer(self, job_id: str, ticket: int, state: JobState, sub_state: str) -> None:
        """Apply a state the caller read after taking ``ticket`` (from :meth:`follow`); a
        terminal one is settled first. Then deliver what is due."""
        try:
            settled = self._settle(job_id, state, sub_state)
        except JobNotFoundError:
            self._gone(job_id)
        except ContainerTrackerError as exc:
            self._retry_later(job_id, exc)
        else:
            if settled is not None:
                self._apply(job_id, ticket, *settled)
        self._deliver()

    def forget(self, job_id: str) -> None:
        """The job was deleted: waiters on it raise JobNotFoundError; it is read no more."""
        self._gone(job_id)
        self._deliver()

    # -- callbacks, streams, futures ------------------------------------------------------------

    def add_callback(
        self, callback: StateCallback, job_id: str | None = None
    ) -> Callable[[], None]:
        """Call ``callback(job, old, new)`` for every change of every followed job (or of job
        ``job_id``) from now on; returns a function that removes it again."""
        with self._lock:
            self._check_open()
            if job_id is None:
                self._callbacks += (callback,)
            else:
                self._tracked[job_id].callbacks += (callback,)

        def remove() -> None:
            with self._lock:
                if job_id is None:
                    self._callbacks = _without(self._callbacks, callback)
                elif job_id in self._tracked:
                    tracked = self._tracked[job_id]
                    tracked.callbacks = _without(tracked.callbacks, callback)

        return remove

    def subscribe(self, push: Callable[[JobEvent | None], None]) -> Callable[[], None]:
        """``push(event)`` for every change from now on, in order, and ``push(None)`` once at
        close; ``push`` must not block. Returns a function that unsubscribes."""
        with self._lock:
            self._check_open()
            self._subscribers += (push,)

        def remove() -> None:
            with self._lock:
                self._subscribers = _without(self._subscribers, push)

        return remove

    def future(self, job_id: str) -> Future[JobInfo]:
        """A Future completed with the job's JobInfo once it ended (its outputs complete), or
        with the error that prevented it (the job was deleted, the session closed)."""
        with self._lock:
            self._check_open()
            tracked = self._tracked[job_id]
            if tracked.future is None or tracked.future.cancelled():
                tracked.future = Future()
                if tracked.gone:
                    _resolve_future(tracked.future, None, _deleted(job_id))
                elif tracked.ended:
                    self._queue.append(self._completion(tracked.job, tracked.future))
            future = tracked.future
        self._deliver()
        return future

    # -- waiting ------------------------------------------------------------------------------

    def wait_any(
        self, jobs: Collection[Job], states: frozenset[JobState], timeout: float | None
    ) -> tuple[Job, JobState]:
        """Block until one of ``jobs`` is in one of ``states`` (as this dispatcher last saw
        it); ``timeout`` seconds (None: forever, 0: look once).

        Raises:
            InvalidArgumentError: no jobs, a job this session does not follow, a negative
                timeout.
            JobNotFoundError: one of the jobs was deleted.
            WaitTimeoutError: the timeout passed first.
            InvalidStateError: the session was closed (before or while waiting).
        """
        _check_timeout(timeout)
        reached = threading.Event()
        outcome: list[tuple[Job | None, JobState, BaseException | None]] = []

        def notify(job: Job | None, state: JobState, error: BaseException | None) -> None:
            outcome.append((job, state, error))
            reached.set()

        watch = self._watch(jobs, states, notify, immediate=timeout == 0)
        if isinstance(watch, _Watch):
            try:
                reached.wait(timeout)
            finally:
                self._unwatch(watch)  # no notification after this
            if not outcome:
                raise _timeout(jobs, states, timeout)
            job, state, error = outcome[0]
        else:
            job, state, error = watch
        if error is not None:
            raise error
        assert job is not None
        return job, state

    async def wait_any_async(
        self, jobs: Collection[Job], states: frozenset[JobState], timeout: float | None
    ) -> tuple[Job, JobState]:
        """:meth:`wait_any` as a coroutine: no thread waits; the dispatcher resolves an
        asyncio future through ``loop.call_soon_threadsafe``."""
        _check_timeout(timeout)
        loop = asyncio.get_running_loop()
        done: asyncio.Future[tuple[Job, JobState]] = loop.create_future()

        def notify(job: Job | None, state: JobState, error: BaseException | None) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                loop.call_soon_threadsafe(_resolve_async, done, job, state, error)

        watch = self._watch(jobs, states, notify, immediate=timeout == 0)
        if not isinstance(watch, _Watch):
            job, state, error = watch
            if error is not None:
                raise error
            assert job is not None
            return job, state
        try:
            async with asyncio.timeout(timeout):
                return await done
        except TimeoutError:
            if done.done() and not done.cancelled():
                return done.result()
            raise _timeout(jobs, states, timeout) from None
        finally:
            self._unwatch(watch)

    def _watch(
        self,
        jobs: Iterable[Job],
        states: frozenset[JobState],
        notify: _Notify,
        *,
        immediate: bool,
    ) -> _Watch | _Outcome:
        """Register a watch on ``jobs``, unless one of them is in ``states`` already (or
        gone): then that outcome is returned and ``notify`` never called. With
        ``immediate``, nothing is registered: a WaitTimeoutError is raised when no job
        qualifies."""
        with self._lock:
            self._check_open()
            tracked = [self._followed(job) for job in jobs]
            if not tracked:
                raise InvalidArgumentError("no jobs to wait for")
            for entry in tracked:
                if entry.gone:
                    return entry.job, JobState.UNSET, _deleted(entry.job.id)
                if entry.state in states:
                    return entry.job, entry.state, None
            if immediate:
                raise _timeout([t.job for t in tracked], states, 0)
            watch = _Watch(states, notify)
            watch.entries = tracked
            for entry in tracked:
                entry.watches.add(watch)
            self._watches.add(watch)
        return watch

    def _unwatch(self, watch: _Watch) -> None:
        with self._lock:
            watch.done = True
            self._watches.discard(watch)
            for entry in watch.entries:
                entry.watches.discard(watch)

    def _followed(self, job: Job) -> _Tracked:
        tracked = self._tracked.get(job.id)
        if tracked is None or tracked.job.session_name != job.session_name:
            raise InvalidArgumentError(
                f"job {job.id} is not a job of job session {self._session!r}"
            )
        return tracked

    # -- closing ------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop following: every waiter raises InvalidStateError, pending futures get it,
        event streams end. Idempotent; :meth:`join` waits for the thread."""
        if self._closed.is_set():
            return
        closed = InvalidStateError(f"the job session {self._session!r} is closed")
        with self._lock:
            self._closed.set()
            for watch in self._watches:
                watch.fire(None, JobState.UNSET, closed)
            self._watches.clear()
            for tracked in self._tracked.values():
                if tracked.future is not None:
                    _resolve_future(tracked.future, None, closed)
            subscribers, self._subscribers = self._subscribers, ()
        for push in subscribers:
            push(None)

    def join(self) -> None:
        """Wait for the dispatcher thread to end (the tracker must be closed, which wakes a
        blocked feed); from the dispatcher thread itself (a callback), return at once."""
        if threading.current_thread() is not self._thread:
            self._thread.join()

    def _check_open(self) -> None:
        if self._closed.is_set():
            raise InvalidStateError(f"the job session {self._session!r} is closed")

    # -- the thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        next_full_read = time.monotonic() + self._safety_interval
        while not self._closed.is_set():
            try:
                job_ids = self._next_round()
                if self._feed is not None and time.monotonic() >= next_full_read:
                    next_full_read = time.monotonic() + self._safety_interval
                    job_ids = self._unfinished()
                for job_id in job_ids:
                    if self._closed.is_set():
                        break
                    self._observe(job_id)
                self._deliver()
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

    def _next_round(self) -> list[str]:
        """The ids to read next: after the feed's next answer (or a polling pause)."""
        if self._feed is None:
            self._closed.wait(self._interval)
            self._everything = True
        else:
            try:
                changes = self._feed.changes(self._cursor, self._interval)
            except UnsupportedOperationError:
                self._log.info("the tracker's change feed is gone: polling from now on")
                self._feed = None
                return self._unfinished()
            except InvalidArgumentError:
                # A cursor the feed no longer knows (a server restarted): start again.
                self._cursor = self._feed.changes(None, 0).cursor
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
            return [i for i, t in self._tracked.items() if not t.ended]

    def _take_rechecks(self) -> set[str]:
        rechecks, self._recheck = self._recheck, set()
        return rechecks

    # -- observing ----------------------------------------------------------------------------

    def _observe(self, job_id: str) -> None:
        """Read a followed, unfinished job and apply its state."""
        with self._lock:
            tracked = self._tracked.get(job_id)
            if tracked is None or tracked.ended:
                return
            ticket = next(self._tickets)
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
        again at the next round)."""
        if not state.terminal:
            return state, sub_state
        with self._lock:
            tracked = self._tracked.get(job_id)
            if tracked is None or tracked.ended:
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
        delivery) and wakes the waiters it satisfies."""
        with self._lock:
            tracked = self._tracked.get(job_id)
            if tracked is None or tracked.ended or ticket <= tracked.applied:
                return  # stale: a read that began later was applied already
            tracked.applied = ticket
            old = tracked.state
            tracked.sub_state = sub_state
            if old is state:
                return
            tracked.state = state
            if old is not None or tracked.announce:
                event = JobEvent(tracked.job, old or JobState.UNSET, state, sub_state)
                callbacks = self._callbacks + tracked.callbacks
                self._queue.append(self._delivery(event, callbacks, self._subscribers))
            for watch in list(tracked.watches):
                if state in watch.states:
                    watch.fire(tracked.job, state, None)
            if state.terminal and tracked.future is not None:
                self._queue.append(self._completion(tracked.job, tracked.future))

    def _gone(self, job_id: str) -> None:
        with self._lock:
            tracked = self._tracked.get(job_id)
            if tracked is None or tracked.gone:
                return
            tracked.gone = True
            self._recheck.discard(job_id)
            error = _deleted(job_id)
            for watch in list(tracked.watches):
                watch.fire(tracked.job, JobState.UNSET, error)
            if tracked.future is not None:
                _resolve_future(tracked.future, None, error)

    # -- delivery -----------------------------------------------------------------------------

    def _delivery(
        self,
        event: JobEvent,
        callbacks: tuple[StateCallback, ...],
        subscribers: tuple[Callable[[JobEvent | None], None], ...],
    ) -> Callable[[], None]:
        def deliver() -> None:
            for callback in callbacks:
                try:
                    callback(event.job, event.old_state, event.new_state)
                except Exception:
                    self._log.opt(exception=True).error(
                        "state-change callback {!r} failed for job {} ({} -> {})",
                        callback,
                        event.job.id,
                        event.old_state.name,
                        event.new_state.name,
                    )
            for push in subscribers:
                push(event)

        return deliver

    def _completion(self, job: Job, future: Future[JobInfo]) -> Callable[[], None]:
        def complete() -> None:
            if future.done():
                return
            try:
                info = self._tracker.job_info(job.id)
            except ContainerTrackerError as exc:
                _resolve_future(future, None, exc)
            else:
                _resolve_future(future, info, None)

        return complete

    def _deliver(self) -> None:
        """Run the queued deliveries, in order, unless another thread is running them (it
        runs these too)."""
        with self._lock:
            if self._delivering:
                return
            self._delivering = True
        try:
            while True:
                with self._lock:
                    if not self._queue:
                        self._delivering = False
                        return
                    item = self._queue.popleft()
                item()
        except BaseException:
            with self._lock:
                self._delivering = False
            raise


_Items = tuple[Callable[..., None], ...]


def _without(items: _Items, item: object) -> _Items:
    """``items`` without the first occurrence of ``item``."""
    for index, present in enumerate(items):
        if present is item or present == item:
            return items[:index] + items[index + 1 :]
    return items


def _deleted(job_id: str) -> JobNotFoundError:
    return JobNotFoundError(f"job {job_id} was deleted (reaped)")


def _check_timeout(timeout: float | None) -> None:
    if timeout is not None and not timeout >= 0:
        raise InvalidArgumentError(f"timeout must be None, 0 or positive, not {timeout}")


def _timeout(
    jobs: Collection[Job], states: frozenset[JobState], timeout: float | None
) -> WaitTimeoutError:
    wanted = "/".join(sorted(s.name for s in states))
    which = f"job {next(iter(jobs)).id}" if len(jobs) == 1 else f"none of {len(jobs)} jobs"
    return WaitTimeoutError(f"timeout while waiting: {which} reached {wanted} within {timeout} s")


def _resolve_future(
    future: Future[JobInfo], info: JobInfo | None, error: BaseException | None
) -> None:
    """Complete ``future`` unless it is done (or cancelled) already."""
    with contextlib.suppress(FutureStateError):
        if error is not None:
            future.set_exception(error)
        elif info is not None:
            future.set_result(info)


def _resolve_async(
    future: asyncio.Future[tuple[Job, JobState]],
    job: Job | None,
    state: JobState,
    error: BaseException | None,
) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        assert job is not None
        future.set_result((job, state))
