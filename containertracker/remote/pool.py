"""The trackers a server serves: one per session, opened on first use, idle ones evicted."""

from __future__ import annotations

import contextlib
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

from containertracker.errors import DeniedByDrmsError, InvalidArgumentError, TryLaterError
from containertracker.registry import new_job_tracker
from containertracker.tracker import Closer, JobTracker

__all__ = ["TrackerPool"]


class TrackerPool:
    """The trackers a server serves, one per session, opened on first use.

    ``open(session)`` builds a tracker; requests without a session header get
    ``default_session``. At most ``max_sessions`` trackers stay open: when another session
    is asked for, the least recently used idle one is closed (its jobs live on; it is
    reopened when asked for again).
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

    @classmethod
    def for_backend(
        cls, backend: str, default_session: str, params: dict[str, Any] | None = None
    ) -> TrackerPool:
        """A pool opening ``new_job_tracker(backend, session, params)`` per session."""
        return cls(lambda session: new_job_tracker(backend, session, params), default_session)

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
                    tracker = self._insert(session, self._open(session))
        try:
            yield tracker
        finally:
            with self._lock:
                self._busy[session] -= 1
                if not self._busy[session]:
                    del self._busy[session]

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
        """Add a newly opened tracker, marked busy, evicting idle ones to make room."""
        evicted: list[JobTracker] = []
        try:
            with self._lock:
                if self._closed:
                    raise DeniedByDrmsError("the server is shutting down")
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
