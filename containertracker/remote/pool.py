"""The trackers a server serves: one per session, opened on first use, idle ones evicted."""

from __future__ import annotations

import contextlib
import os
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
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

_MAX_SESSIONS = 64
"""Trackers a pool keeps open by default: each holds an engine connection and its event
watcher and scheduler threads, so their number must be bounded whatever sessions clients
name; 64 is far more than a server's teams use at once."""


@dataclass(frozen=True)
class _Confinement:
    """What a server requires of the trackers it serves (its ``allowed_host_paths`` and
    ``monitor_all_containers`` settings)."""

    host_path_roots: tuple[str, ...]
    """Resolved directories every job host path must lie below (empty: no host paths)."""
    monitor_all_containers: bool
    """False: trackers' monitoring must show trackers' containers only."""

    def admits(self, tracker: JobTracker) -> bool:
        """Whether ``tracker`` is at least this confined: its ``host_path_roots`` lie below
        ours, and its monitoring shows trackers' containers only unless we allow all."""
        shows_all = getattr(tracker, "monitor_all_containers", True) is not False
        if shows_all and not self.monitor_all_containers:
            return False
        theirs = getattr(tracker, "host_path_roots", None)
        return theirs is not None and all(
            any(PurePosixPath(root).is_relative_to(mine) for mine in self.host_path_roots)
            for root in theirs
        )

    def tightened(self, other: _Confinement) -> _Confinement:
        """What admits only trackers both this and ``other`` admit: host paths only where
        both allow them, monitoring of every container only if both allow it."""
        common = (
            _inner(mine, theirs)
            for mine in self.host_path_roots
            for theirs in other.host_path_roots
        )
        return _Confinement(
            tuple(dict.fromkeys(root for root in common if root is not None)),
            self.monitor_all_containers and other.monitor_all_containers,
        )

    def tracker_params(self) -> dict[str, Any]:
        """The params that make a backend's tracker exactly this confined."""
        return {
            "host_path_roots": list(self.host_path_roots),
            "monitor_all_containers": self.monitor_all_containers,
        }

    def refusal(self) -> DeniedByDrmsError:
        """The error for a tracker that :meth:`admits` refuses."""
        wanted = [f"host paths to {', '.join(self.host_path_roots) or 'nothing'}"]
        if not self.monitor_all_containers:
            wanted.append("monitoring to trackers' containers")
        return DeniedByDrmsError(
            f"this server confines {' and '.join(wanted)}, but its backend's tracker "
            "does not (host_path_roots, monitor_all_containers); refusing to serve it"
        )


def _inner(a: str, b: str) -> str | None:
    """Of two directories, the one lying below (or at) the other; None if neither does."""
    if PurePosixPath(a).is_relative_to(b):
        return a
    if PurePosixPath(b).is_relative_to(a):
        return b
    return None


class TrackerPool:
    """The trackers a server serves, one per session, opened on first use.

    ``open_tracker(session)`` builds a tracker; requests without a session header get
    ``default_session``. At most ``max_sessions`` trackers stay open: when another session
    is asked for, the least recently used idle one is closed (its jobs live on, but its
    scheduling waits until it is reopened, when asked for again, or another tracker of the
    session is open: a known limit, see the README). A session whose only requests are
    long polls that may be cut short (``using(..., waiting=True)``: the change feed) counts
    as idle, though the truly idle go first: long polls never lock other sessions out.

    Once confined (:meth:`confine`, which the server's app does with its settings), a pool
    hands out only trackers as confined as the server requires (host path roots, monitoring
    of trackers' containers only), however it was built; confining it again only tightens.
    """

    def __init__(
        self,
        open_tracker: Callable[[str], JobTracker],
        default_session: str,
        *,
        max_sessions: int = _MAX_SESSIONS,
    ) -> None:
        self._open_tracker = open_tracker
        self.default_session = default_session
        self._max_sessions = max_sessions
        self._trackers: OrderedDict[str, JobTracker] = OrderedDict()
        """Open trackers, least recently used first."""
        self._busy: Counter[str] = Counter()
        """Requests in flight per session: their trackers are never evicted."""
        self._waiting: Counter[str] = Counter()
        """Evictable long polls in flight per session: such trackers are evicted after the
        idle ones (closing a tracker wakes its polls, which then answer TryLaterError)."""
        self._opening: dict[str, tuple[threading.Lock, int]] = {}
        """Per session being opened: the lock its openers take, and how many hold or wait
        for it (dropped at 0: failed opens and sessions of any name leave nothing behind)."""
        self._lock = threading.Lock()
        self._closed = False
        self._confinement: _Confinement | None = None
        """What trackers must be to be handed out; None: anything."""

    def confine(
        self, host_path_roots: Sequence[str | os.PathLike[str]], *, monitor_all_containers: bool
    ) -> None:
        """From now on, hand out only trackers whose ``host_path_roots`` lie below
        ``host_path_roots`` (resolved; ``[]``: trackers that allow no host path) and, unless
        ``monitor_all_containers``, whose monitoring shows trackers' containers only. Open
        trackers that are not are closed (they are reopened, confined, when asked for
        again).

        Confinements only ever tighten: a pool confined before (by another app serving it)
        stays as confined as every call asked, so no later one can loosen an earlier one.

        Raises:
            InvalidStateError: such a tracker is serving a request right now (the pool is
                confined all the same: trackers it opens from now on are).
        """
        roots = hostfs.normalize_roots(host_path_roots)
        assert roots is not None
        asked = _Confinement(roots, monitor_all_containers)
        with self._lock:
            earlier = self._confinement
            confinement = asked if earlier is None else earlier.tightened(asked)
            self._confinement = confinement
            unconfined = [s for s, t in self._trackers.items() if not confinement.admits(t)]
            if any(self._busy[s] for s in unconfined):
                raise InvalidStateError("cannot confine trackers while requests are served")
            closing = [self._trackers.pop(s) for s in unconfined]
        for tracker in closing:
            _close(tracker)

    @classmethod
    def for_backend(
        cls,
        backend: str,
        default_session: str,
        params: dict[str, Any] | None = None,
        *,
        max_sessions: int = _MAX_SESSIONS,
    ) -> TrackerPool:
        """A pool opening ``new_job_tracker(backend, session, params)`` per session, at most
        ``max_sessions`` at once. Once the pool is confined (:meth:`confine`), its trackers
        are opened with the confinement's ``host_path_roots`` and ``monitor_all_containers``
        over ``params``: exactly as confined as required."""

        def open_confined(session: str) -> JobTracker:
            confinement = pool._confinement
            extra = {} if confinement is None else confinement.tracker_params()
            return new_job_tracker(backend, session, {**(params or {}), **extra})

        pool = cls(open_confined, default_session, max_sessions=max_sessions)
        return pool

    @contextlib.contextmanager
    def using(self, session: str, *, waiting: bool = False) -> Iterator[JobTracker]:
        """The tracker of ``session`` for the duration of a request (blocking: opens it if
        needed, so call it from a worker thread).

        ``waiting``: the request is a long poll that may be cut short (the change feed's),
        so the tracker stays evictable meanwhile: another session that needs room closes
        it, which wakes the poll. An :class:`InvalidStateError` the block raises after such
        an eviction (a closed tracker's) becomes :class:`TryLaterError`: the poll's client
        asks again and reaches the session's reopened tracker.

        Raises:
            InvalidArgumentError: an empty session name.
            TryLaterError: every open session has a request in flight that is not an
                evictable long poll; or, with ``waiting``, the tracker was evicted under
                the block.
            DeniedByDrmsError: the pool is closed, or the tracker it opened is not as
                confined as the pool must hand out.
            DrmCommunicationError: the backend cannot be reached.
        """
        if not session:
            raise InvalidArgumentError("the session name must not be empty")
        counter = self._waiting if waiting else self._busy
        tracker = self._reuse(session, counter)
        if tracker is None:
            # Opening talks to the engine: under a per-session lock, not the pool's.
            with self._opening_lock(session):
                tracker = self._reuse(session, counter)
                if tracker is None:
                    self._check_room()  # before building a tracker only to close it again
                    opened = self._refuse_unconfined(self._open_tracker(session))
                    tracker = self._add(session, opened, counter)
        try:
            yield tracker
        except InvalidStateError as exc:
            if waiting and self._evicted(session, tracker):
                raise TryLaterError(
                    f"session {session!r} was closed to make room for another one while "
                    "this request waited; ask again"
                ) from exc
            raise
        finally:
            self._release(counter, session)

    @contextlib.contextmanager
    def any_tracker(self, sessions: Sequence[str]) -> Iterator[JobTracker | None]:
        """For the block, a tracker to look across the engine with (blocking: call it from
        a worker thread): one already open, of whichever session (the most recently used;
        it stays open meanwhile, but this use does not make it more recent), else the
        tracker of the first of ``sessions``, opened as :meth:`using` does; None if none
        is open and ``sessions`` is empty. So a look across the engine never opens the
        tracker (its scheduling, its threads) of a session the caller did not name.

        Raises:
            DeniedByDrmsError: the pool is closed.
            TryLaterError, DrmCommunicationError: as :meth:`using`, opening a tracker.
        """
        with self._lock:
            if self._closed:
                raise DeniedByDrmsError("the server is shutting down")
            session = next(reversed(self._trackers), None)
            if session is not None:
                self._busy[session] += 1
                tracker = self._trackers[session]
        if session is None:
            if not sessions:
                yield None
                return
            with self.using(sessions[0]) as opened:
                yield opened
            return
        try:
            yield tracker
        finally:
            self._release(self._busy, session)

    def _release(self, counter: Counter[str], session: str) -> None:
        """One use of ``session``'s tracker counted in ``counter`` has ended."""
        with self._lock:
            counter[session] -= 1
            if not counter[session]:
                del counter[session]

    def _evicted(self, session: str, tracker: JobTracker) -> bool:
        """Whether ``tracker`` of ``session`` was evicted (closed to make room, or as not
        confined enough), not closed by the pool's shutdown."""
        with self._lock:
            return not self._closed and self._trackers.get(session) is not tracker

    def _refuse_unconfined(self, tracker: JobTracker) -> JobTracker:
        """``tracker``, if it is as confined as this pool must hand out; else closed.

        Raises:
            DeniedByDrmsError: ``tracker`` is not confined enough (the pool's backend is
                misconfigured, not the request).
        """
        confinement = self._confinement
        if confinement is not None and not confinement.admits(tracker):
            _close(tracker)
            raise confinement.refusal()
        return tracker

    def _reuse(self, session: str, counter: Counter[str]) -> JobTracker | None:
        """The open tracker of ``session``, counted in ``counter`` (busy or waiting); None if
        it is not open."""
        with self._lock:
            if self._closed:
                raise DeniedByDrmsError("the server is shutting down")
            tracker = self._trackers.get(session)
            if tracker is not None:
                self._trackers.move_to_end(session)
                counter[session] += 1
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
        evicted (:meth:`_add` checks again: others may open sessions meanwhile).

        Raises:
            TryLaterError: the pool is full of sessions with requests in flight.
        """
        with self._lock:
            if len(self._trackers) >= self._max_sessions and self._victim() is None:
                raise self._all_busy()

    def _victim(self) -> str | None:
        """The session to evict for room: the least recently used one without requests,
        else the least recently used one whose requests are all evictable long polls; None
        if every one has other requests in flight. Hold ``_lock``."""
        evictable = [s for s in self._trackers if not self._busy[s]]  # least recent first
        return next((s for s in evictable if not self._waiting[s]), None) or next(
            iter(evictable), None
        )

    def _all_busy(self) -> TryLaterError:
        return TryLaterError(f"all {self._max_sessions} sessions this server keeps open are busy")

    def _add(
        self, session: str, tracker: JobTracker, counter: Counter[str] | None = None
    ) -> JobTracker:
        """Add a newly opened tracker, counted in ``counter`` (default: busy; or waiting), evicting
        others to make room: the least recently used idle ones, else the least recently
        used of those with only evictable long polls (closing wakes them); if the session
        is open already, keep that tracker (counted) and close the new one.

        Why the latter: openers of one session share its opening lock while any of them
        holds or waits for it, so this should not happen; if it ever did, the pool would
        still keep one tracker per session and leak no threads.
        """
        counter = self._busy if counter is None else counter
        evicted: list[JobTracker] = []
        try:
            with self._lock:
                if self._closed:
                    raise DeniedByDrmsError("the server is shutting down")
                existing = self._trackers.get(session)
                if existing is not None:
                    self._trackers.move_to_end(session)
                    counter[session] += 1
                    evicted.append(tracker)
                    return existing
                while len(self._trackers) >= self._max_sessions:
                    victim = self._victim()
                    if victim is None:
                        raise self._all_busy()
                    evicted.append(self._trackers.pop(victim))
                self._trackers[session] = tracker
                counter[session] += 1
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
