"""The trackers a server serves: one per session, opened on first use, idle ones evicted."""

from __future__ import annotations

import contextlib
import os
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator, Sequence
from pathlib import PurePosixPath
from typing import Any

from containertracker.core import hostfs
from containertracker.errors import (
    DeniedByDrmsError,
    InvalidArgumentError,
    InvalidStateError,
    TryLaterError,
)
from containertracker.registry import new_job_tracker
from containertracker.tracker import Closer, JobTracker

__all__ = ["TrackerPool"]


class TrackerPool:
    """The trackers a server serves, one per session, opened on first use.

    ``open(session)`` builds a tracker; requests without a session header get
    ``default_session``. At most ``max_sessions`` trackers stay open: when another session
    is asked for, the least recently used idle one is closed (its jobs live on, but its
    scheduling waits until it is reopened, when asked for again, or another tracker of the
    session is open: a known limit, see the README).

    A pool confined to host directories (:meth:`confine_host_paths`, which the server does
    with its ``allowed_host_paths``) hands out only trackers that confine their jobs' host
    paths to below them (``host_path_roots``), however it was built; one confined to
    trackers' containers (:meth:`confine_monitoring`, which the server does unless
    ``monitor_all_containers``) only trackers whose monitoring shows no other containers.
    """

    def __init__(
        self,
        open: Callable[[str], JobTracker],
        default_session: str,
        *,
        max_sessions: int = 64,
    ) -> None:
        self._open = open
        self.default_session = default_session
        self._max = max_sessions
        self._trackers: OrderedDict[str, JobTracker] = OrderedDict()
        """Open trackers, least recently used first."""
        self._busy: Counter[str] = Counter()
        """Requests in flight per session: their trackers are never evicted."""
        self._opening: dict[str, tuple[threading.Lock, int]] = {}
        """Per session being opened: the lock its openers take, and how many hold or wait
        for it (dropped at 0: failed opens and sessions of any name leave nothing behind)."""
        self._lock = threading.Lock()
        self._closed = False
        self._roots: tuple[str, ...] | None = None
        self._monitor_trackers_only = False

    @property
    def host_path_roots(self) -> tuple[str, ...] | None:
        """The directories this pool's trackers must confine host paths to (None: any)."""
        return self._roots

    def confine_host_paths(self, roots: Sequence[str | os.PathLike[str]]) -> None:
        """From now on, hand out only trackers whose ``host_path_roots`` lie below ``roots``
        (resolved; ``[]``: trackers that allow no host path). Open trackers that do not are
        closed (they are reopened, confined, when asked for again).

        Raises:
            InvalidStateError: such a tracker is serving a request right now.
        """
        wanted = hostfs.normalize_roots(roots)
        assert wanted is not None
        self._confine(lambda: setattr(self, "_roots", wanted))

    def confine_monitoring(self) -> None:
        """From now on, hand out only trackers whose Monitorer calls show trackers'
        containers only (``monitor_all_containers`` False). Open trackers that show all are
        closed (they are reopened, confined, when asked for again).

        Raises:
            InvalidStateError: such a tracker is serving a request right now.
        """
        self._confine(lambda: setattr(self, "_monitor_trackers_only", True))

    def _confine(self, tighten: Callable[[], None]) -> None:
        """Apply ``tighten`` (under the pool's lock) and close the trackers it rules out."""
        with self._lock:
            tighten()
            unconfined = [s for s, t in self._trackers.items() if not self._confines(t)]
            if any(self._busy[s] for s in unconfined):
                raise InvalidStateError("cannot confine trackers while requests are served")
            closing = [self._trackers.pop(s) for s in unconfined]
        for tracker in closing:
            _close(tracker)

    def _confines(self, tracker: JobTracker) -> bool:
        """Whether ``tracker`` is as confined as this pool must hand out: host paths below
        the pool's roots (if it has any), monitoring of trackers' containers only (if so)."""
        shows_all = getattr(tracker, "monitor_all_containers", True) is not False
        if self._monitor_trackers_only and shows_all:
            return False
        if self._roots is None:
            return True
        theirs = getattr(tracker, "host_path_roots", None)
        return theirs is not None and all(
            any(PurePosixPath(root).is_relative_to(mine) for mine in self._roots) for root in theirs
        )

    @classmethod
    def for_backend(
        cls,
        backend: str,
        default_session: str,
        params: dict[str, Any] | None = None,
        *,
        host_path_roots: Sequence[str | os.PathLike[str]] | None = None,
        max_sessions: int = 64,
    ) -> TrackerPool:
        """A pool opening ``new_job_tracker(backend, session, params)`` per session, with
        the pool's host path roots (``host_path_roots``, or those given later to
        :meth:`confine_host_paths`) as the trackers' ``host_path_roots``, and
        ``monitor_all_containers`` False once :meth:`confine_monitoring` was called; at most
        ``max_sessions`` trackers open at once."""

        def open_tracker(session: str) -> JobTracker:
            roots = pool.host_path_roots
            extra: dict[str, Any] = {} if roots is None else {"host_path_roots": list(roots)}
            if pool._monitor_trackers_only:
                extra["monitor_all_containers"] = False
            return new_job_tracker(backend, session, {**(params or {}), **extra})

        pool = cls(open_tracker, default_session, max_sessions=max_sessions)
        if host_path_roots is not None:
            pool.confine_host_paths(host_path_roots)
        return pool

    @contextlib.contextmanager
    def using(self, session: str) -> Iterator[JobTracker]:
        """The tracker of ``session`` for the duration of a request (blocking: opens it if
        needed, so call it from a worker thread).

        Raises:
            InvalidArgumentError: an empty session name.
            TryLaterError: every open session has a request in flight.
            DeniedByDrmsError: the pool is closed.
            DrmCommunicationError: the backend cannot be reached.
        """
        if not session:
            raise InvalidArgumentError("the session name must not be empty")
        tracker = self._acquire(session)
        if tracker is None:
            # Opening talks to the engine: under a per-session lock, not the pool's.
            with self._opening_lock(session):
                tracker = self._acquire(session)
                if tracker is None:
                    self._check_room()  # before building a tracker only to close it again
                    tracker = self._insert(session, self._confined(self._open(session)))
        try:
            yield tracker
        finally:
            with self._lock:
                self._busy[session] -= 1
                if not self._busy[session]:
                    del self._busy[session]

    def _confined(self, tracker: JobTracker) -> JobTracker:
        """``tracker``, unless it is not as confined as this pool must hand out (closed)."""
        if not self._confines(tracker):
            _close(tracker)
            wanted = []
            if self._roots is not None:
                wanted.append(f"host paths to {', '.join(self._roots) or 'nothing'}")
            if self._monitor_trackers_only:
                wanted.append("monitoring to trackers' containers")
            raise DeniedByDrmsError(
                f"this server confines {' and '.join(wanted)}, but its backend's tracker "
                "does not (host_path_roots, monitor_all_containers); refusing to serve it"
            )
        return tracker

    def _acquire(self, session: str) -> JobTracker | None:
        """The open tracker of ``session``, marked busy; None if it is not open."""
        with self._lock:
            if self._closed:
                raise DeniedByDrmsError("the server is shutting down")
            tracker = self._trackers.get(session)
            if tracker is not None:
                self._trackers.move_to_end(session)
                self._busy[session] += 1
            return tracker

    @contextlib.contextmanager
    def _opening_lock(self, session: str) -> Iterator[None]:
        """Hold ``session``'s opening lock; the last one to leave drops it."""
        with self._lock:
            lock, users = self._opening.get(session, (threading.Lock(), 0))
            self._opening[session] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._lock:
                users = self._opening[session][1] - 1
                if users:
                    self._opening[session] = (lock, users)
                else:
                    del self._opening[session]

    def _check_room(self) -> None:
        """Refuse to open another session while every open one is busy and none can be
        evicted (:meth:`_insert` checks again: others may open sessions meanwhile).

        Raises:
            TryLaterError: the pool is full of sessions with requests in flight.
        """
        with self._lock:
            if len(self._trackers) >= self._max and all(self._busy[s] for s in self._trackers):
                raise self._full()

    def _full(self) -> TryLaterError:
        return TryLaterError(f"all {self._max} sessions this server keeps open are busy")

    def _insert(self, session: str, tracker: JobTracker) -> JobTracker:
        """Add a newly opened tracker, marked busy, evicting idle ones to make room; if the
        session is open already, keep that tracker (marked busy) and close the new one.

        Why the latter: openers of one session share its opening lock while any of them
        holds or waits for it, so this should not happen; if it ever did, the pool would
        still keep one tracker per session and leak no threads.
        """
        evicted: list[JobTracker] = []
        try:
            with self._lock:
                if self._closed:
                    raise DeniedByDrmsError("the server is shutting down")
                existing = self._trackers.get(session)
                if existing is not None:
                    self._trackers.move_to_end(session)
                    self._busy[session] += 1
                    evicted.append(tracker)
                    return existing
                while len(self._trackers) >= self._max:
                    idle = next((s for s in self._trackers if not self._busy[s]), None)
                    if idle is None:
                        raise self._full()
                    evicted.append(self._trackers.pop(idle))
                self._trackers[session] = tracker
                self._busy[session] += 1
        except BaseException:
            evicted.append(tracker)
            raise
        finally:
            for old in evicted:
                _close(old)
        return tracker

    def close(self) -> None:
        """Close every tracker (their pending waits end); later requests are refused."""
        with self._lock:
            self._closed = True
            trackers = list(self._trackers.values())
            self._trackers.clear()
        for tracker in trackers:
            _close(tracker)


def _close(tracker: JobTracker) -> None:
    if isinstance(tracker, Closer):
        tracker.close()
