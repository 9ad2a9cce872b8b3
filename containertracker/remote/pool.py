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
    is asked for, the least recently used idle one is closed (its jobs live on; it is
    reopened when asked for again).

    A pool confined to host directories (:meth:`confine_host_paths`, which the server does
    with its ``allowed_host_paths``) hands out only trackers that confine their jobs' host
    paths to below them (``host_path_roots``), however it was built.
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
        self._opening: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._roots: tuple[str, ...] | None = None

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
        with self._lock:
            self._roots = wanted
            unconfined = [s for s, t in self._trackers.items() if not self._confines(t)]
            if any(self._busy[s] for s in unconfined):
                raise InvalidStateError("cannot confine host paths while requests are served")
            closing = [self._trackers.pop(s) for s in unconfined]
        for tracker in closing:
            _close(tracker)

    def _confines(self, tracker: JobTracker) -> bool:
        """Whether ``tracker`` keeps host paths below this pool's roots (if it has any)."""
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
    ) -> TrackerPool:
        """A pool opening ``new_job_tracker(backend, session, params)`` per session, with
        the pool's host path roots (``host_path_roots``, or those given later to
        :meth:`confine_host_paths`) as the trackers' ``host_path_roots``."""

        def open_tracker(session: str) -> JobTracker:
            roots = pool.host_path_roots
            extra = {} if roots is None else {"host_path_roots": list(roots)}
            return new_job_tracker(backend, session, {**(params or {}), **extra})

        pool = cls(open_tracker, default_session)
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
                    tracker = self._insert(session, self._confined(self._open(session)))
        try:
            yield tracker
        finally:
            with self._lock:
                self._busy[session] -= 1
                if not self._busy[session]:
                    del self._busy[session]

    def _confined(self, tracker: JobTracker) -> JobTracker:
        """``tracker``, unless it does not confine host paths as this pool must (closed)."""
        if not self._confines(tracker):
            _close(tracker)
            raise DeniedByDrmsError(
                "this server confines host paths to "
                f"{', '.join(self._roots or ()) or 'nothing'}, but its backend's tracker "
                "does not (host_path_roots); refusing to serve it"
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

    def _opening_lock(self, session: str) -> threading.Lock:
        with self._lock:
            return self._opening.setdefault(session, threading.Lock())

    def _insert(self, session: str, tracker: JobTracker) -> JobTracker:
        """Add a newly opened tracker, marked busy, evicting idle ones to make room; if the
        session is open already, keep that tracker (marked busy) and close the new one.

        Why the latter: an eviction discards the session's opening lock, so a request that
        took the old lock before and one that took the new lock after can both open it.
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
                        raise TryLaterError(
                            f"all {self._max} sessions this server keeps open are busy"
                        )
                    evicted.append(self._trackers.pop(idle))
                    self._opening.pop(idle, None)
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
