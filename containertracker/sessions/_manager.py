"""SessionManager (job sessions by name, capabilities) and MonitoringSession."""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from enum import IntEnum
from typing import Any, Final

from containertracker.errors import (
    ContainerTrackerError,
    InvalidArgumentError,
    InvalidStateError,
    JobNotFoundError,
    UnsupportedOperationError,
    WaitTimeoutError,
)
from containertracker.models import JobInfo, JobState, Machine
from containertracker.registry import new_job_tracker, registered_job_trackers
from containertracker.sessions._delivery import StateCallback
from containertracker.sessions._dispatch import Dispatcher
from containertracker.sessions._jobs import MonitoredJob
from containertracker.sessions._names import SessionNames, check_session_name
from containertracker.sessions._session import JobSession
from containertracker.settings import Settings
from containertracker.tracker import Closer, ClosesOnExit, JobTracker, Monitorer

__all__ = ["Capability", "MonitoringSession", "SessionManager"]

_DESTROY_THREADS: Final = 8
"""Jobs terminated and reaped at once by ``destroy_job_session``."""
_STOP_SLACK: Final = 60.0
"""How much longer than the stop grace ``destroy_job_session`` waits for a terminated job."""


class Capability(IntEnum):
    """DRMAA2 capabilities, with the integers of the Go ``drmaa2interface.Capability``."""

    ADVANCE_RESERVATION = 0
    RESERVE_SLOTS = 1
    CALLBACK = 2
    BULK_JOBS_MAXPARALLEL = 3
    JT_EMAIL = 4
    JT_STAGING = 5
    JT_DEADLINE = 6
    JT_MAXSLOTS = 7
    JT_ACCOUNTINGID = 8
    RT_STARTNOW = 9
    RT_DURATION = 10
    RT_MACHINEOS = 11
    RT_MACHINEARCH = 12

    @classmethod
    def parse(cls, capability: Capability | str) -> Capability:
        """A Capability from itself, its Python name (any case) or its Go name
        (``"BulkJobsMaxParallel"``).

        Raises:
            InvalidArgumentError: no such capability.
        """
        if isinstance(capability, Capability):
            return capability
        wanted = str(capability).replace("_", "").lower()
        for member in cls:
            if member.name.replace("_", "").lower() == wanted:
                return member
        raise InvalidArgumentError(
            f"unknown DRMAA2 capability {capability!r}; one of {', '.join(m.name for m in cls)}"
        )


# What the layer itself provides on any tracker: event notification (from the change feed,
# or polled). Nothing else is promised for a backend whose tracker is not known here: a
# registered tracker may ignore max_parallel or template fields, and the remote client cannot
# know which server (containertracker's, or a drmaa2os Go server) is behind it.
_ANY_TRACKER: Final = frozenset({Capability.CALLBACK})
_CONTAINER_TRACKER: Final = _ANY_TRACKER | {
    Capability.BULK_JOBS_MAXPARALLEL,
    Capability.JT_DEADLINE,
    Capability.JT_MAXSLOTS,
    Capability.JT_ACCOUNTINGID,
}
"""What containertracker's own trackers honour (the scheduler throttles array tasks,
terminates at the deadline, limits CPUs by max_slots, labels the accounting id)."""
_CAPABILITIES: Final[Mapping[str, frozenset[Capability]]] = {
    "docker": _CONTAINER_TRACKER | {Capability.JT_STAGING},
    "podman": _CONTAINER_TRACKER | {Capability.JT_STAGING},
    # A swarm refuses stage-in and stage-out: the nodes do not share the host's files.
    "swarm": _CONTAINER_TRACKER,
    # The server may be any (containertracker's, a drmaa2os Go server ignoring max_parallel)
    # and may refuse host paths: only what the client itself provides is promised.
    "remote": _ANY_TRACKER,
}
"""What each backend is known to honour (the README's table); any other backend gets
``_ANY_TRACKER``. Never: reservations (no container engine has them), e-mail (refused)."""

_KNOWN_SHOWN: Final = 10
"""Session names an "unknown session" error lists at most."""


class SessionManager(ClosesOnExit):
    """DRMAA2's session manager over one backend (``docker``, ``podman``, ``swarm``,
    ``remote`` or any registered one): job sessions by name, monitoring, capabilities.

    Session names persist on the host, in the state directory (``state_dir``) under
    ``job-sessions/``, per backend and engine (or server) URL as given in ``params``: a
    session created in one process is opened by name in another. A session whose jobs exist
    although it was never created here (by the CLI, another host, drmaa2os' Docker tracker)
    is opened too, and remembered from then on.

    Args:
        backend: the backend's name, as for :func:`~containertracker.new_job_tracker`.
        params: settings for every tracker this manager opens (``engine_url``,
            ``remote_url``, ``state_dir``, ``resync_interval``, ...).

    Raises:
        InvalidArgumentError: unknown backend or bad params.
    """

    def __init__(self, backend: str = "docker", params: Mapping[str, Any] | None = None) -> None:
        if backend not in registered_job_trackers():
            raise InvalidArgumentError(
                f"no job tracker named {backend!r}; registered: "
                f"{', '.join(registered_job_trackers())}"
            )
        self._backend = backend
        self._params = dict(params or {})
        self._settings = Settings.from_params(params)
        url = self._settings.remote_url if backend == "remote" else self._settings.engine_url
        self._names = SessionNames(self._settings.state_dir, f"{backend}\0{url or ''}")
        self._lock = threading.Lock()
        self._sessions: list[JobSession] = []
        self._dispatchers: dict[str, Dispatcher] = {}
        """The dispatcher of each session name opened, shared by its JobSessions."""
        self._monitors: list[MonitoringSession] = []
        self._notifications: dict[object, tuple[StateCallback, list[Callable[[], None]]]] = {}
        """register_event_notification's callbacks, by registration: each with the functions
        that remove it from the dispatchers it was added to."""
        self._closed = threading.Event()

    # -- the DRMS -----------------------------------------------------------------------------

    @property
    def drms_name(self) -> str:
        """``containertracker-<backend>``."""
        return f"containertracker-{self._backend}"

    @property
    def drms_version(self) -> str:
        """containertracker's version."""
        from containertracker import __version__

        return __version__

    @property
    def backend(self) -> str:
        """The backend's name."""
        return self._backend

    def supports(self, capability: Capability | str) -> bool:
        """Whether this backend is known to offer a DRMAA2 capability (see the README's
        table): callbacks everywhere; bulk jobs with max_parallel, deadlines, max slots and
        accounting ids on docker, podman and swarm; staging on docker and podman;
        reservations and e-mail nowhere. ``remote`` and other backends promise only
        callbacks (what lies behind them is not known).

        Raises:
            InvalidArgumentError: not a DRMAA2 capability.
        """
        wanted = Capability.parse(capability)
        return wanted in _CAPABILITIES.get(self._backend, _ANY_TRACKER)

    # -- job sessions -------------------------------------------------------------------------

    def create_job_session(self, name: str = "", contact: str = "") -> JobSession:
        """Create and open the job session ``name`` (empty: a new unique name).

        ``contact``: another engine (or server) URL than the manager's, as a session's
        :attr:`JobSession.contact` gives it (``<url>?session=<name>``); kept with the name.

        Raises:
            InvalidArgumentError: a bad name, or a session of that name exists (recorded
                here, or with jobs on the engine: open it).
        """
        self._check_open()
        name = check_session_name(name or f"session-{uuid.uuid4().hex[:12]}")
        if self._names.get(name) is not None:
            raise InvalidArgumentError(
                f"job session {name!r} exists already: open_job_session() opens it"
            )
        tracker = self._tracker(name, contact)
        try:
            if tracker.list_jobs():
                raise InvalidArgumentError(
                    f"job session {name!r} exists already (it has jobs): "
                    "open_job_session() opens it"
                )
            if not self._names.add(name, contact):
                raise InvalidArgumentError(f"job session {name!r} was just created elsewhere")
            return self._open(name, tracker)
        except BaseException:
            _close(tracker)
            raise

    def open_job_session(self, name: str) -> JobSession:
        """Open the existing job session ``name`` (created earlier by any process on this
        host, or having jobs on the engine).

        Raises:
            InvalidArgumentError: no such session.
        """
        self._check_open()
        check_session_name(name)
        entry = self._names.get(name)
        tracker = self._tracker(name, entry.contact if entry else "")
        try:
            if entry is None:
                if not tracker.list_jobs():
                    raise InvalidArgumentError(f"no job session {name!r} ({self._known()})")
                self._names.add(name, "")  # jobs of it exist: remember it from now on
            return self._open(name, tracker)
        except BaseException:
            _close(tracker)
            raise

    def destroy_job_session(self, name: str, *, force: bool = False) -> None:
        """Destroy the job session ``name``: its finished jobs are reaped (containers
        removed), its name forgotten, and the JobSessions this manager opened of it closed.

        A session with unfinished jobs is refused unless ``force``: then they are terminated
        (and reaped once they read FAILED).

        Raises:
            InvalidArgumentError: no such session.
            InvalidStateError: unfinished jobs and not ``force`` (nothing was changed).
        """
        self._check_open()
        check_session_name(name)
        entry = self._names.get(name)
        tracker = self._tracker(name, entry.contact if entry else "")
        try:
            job_ids = tracker.list_jobs()
            if entry is None and not job_ids:
                raise InvalidArgumentError(f"no job session {name!r}")
            unfinished = [i for i in job_ids if not _state(tracker, i).terminal]
            if unfinished and not force:
                raise InvalidStateError(
                    f"job session {name!r} has {len(unfinished)} unfinished job(s); terminate "
                    "them first, or destroy_job_session(name, force=True) terminates them"
                )
            grace = self._settings.stop_grace + _STOP_SLACK
            with ThreadPoolExecutor(
                _DESTROY_THREADS, thread_name_prefix="containertracker-destroy"
            ) as pool:
                for future in [pool.submit(_reap, tracker, i, grace) for i in job_ids]:
                    future.result()
        finally:
            _close(tracker)
        with self._lock:
            doomed = [s for s in self._sessions if s.name == name]
        for session in doomed:
            session.close()
        self._names.remove(name)

    def get_job_session_names(self) -> list[str]:
        """The names of the job sessions kept on this host for this backend and engine (or
        server), sorted: those created (or opened by their jobs) through any SessionManager
        here and not destroyed. Sessions made otherwise (the CLI, other hosts) are listed
        once opened."""
        self._check_open()
        return self._names.names()

    def register_event_notification(self, callback: StateCallback) -> Callable[[], None]:
        """DRMAA2's event notification: ``callback(job, old_state, new_state)`` once per
        transition of the jobs of every job session this manager opens, now or later (see
        :meth:`JobSession.on_state_change`), however many times a session is open. Returns
        a function that removes it everywhere."""
        with self._lock:
            self._check_open()
            # Under the lock: a session being opened gets it exactly once (here or at _open).
            removers = [d.add_callback(callback) for d in self._dispatchers.values()]
            registration = object()
            self._notifications[registration] = (callback, removers)

        def remove() -> None:
            with self._lock:
                _, removers = self._notifications.pop(registration, (callback, []))
                for remove_one in removers:
                    remove_one()

        return remove

    # -- monitoring ---------------------------------------------------------------------------

    def open_monitoring_session(self, name: str = "") -> MonitoringSession:
        """A monitoring session: every job (container) on the engine, its machines and
        queues, read only.

        Raises:
            UnsupportedOperationError: the backend's tracker offers no monitoring.
        """
        self._check_open()
        name = check_session_name(name or "monitoring")
        tracker = self._tracker(name, "")
        if not isinstance(tracker, Monitorer):
            _close(tracker)
            raise UnsupportedOperationError(f"the {self._backend} backend offers no monitoring")
        monitor = MonitoringSession(name, tracker, on_close=self._forget_monitor)
        with self._lock:
            if not self._closed.is_set():
                self._monitors.append(monitor)
                return monitor
        monitor.close()
        raise InvalidStateError("the session manager is closed")

    # -- closing ------------------------------------------------------------------------------

    def close(self) -> None:
        """Close every session this manager opened (jobs keep running). Idempotent; every
        later call raises InvalidStateError."""
        with self._lock:
            self._closed.set()  # under the lock: no session is opened after this
            sessions, monitors = list(self._sessions), list(self._monitors)
        for session in sessions:
            session.close()
        for monitor in monitors:
            monitor.close()

    def __repr__(self) -> str:
        return f"SessionManager({self._backend!r})"

    # -- internals ----------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed.is_set():
            raise InvalidStateError("the session manager is closed")

    def _tracker(self, name: str, contact: str) -> JobTracker:
        params = dict(self._params)
        if contact:
            # A contact string is a tracker's: "<engine or server url>?session=<name>".
            url = contact.split("?", 1)[0]
            params["remote_url" if self._backend == "remote" else "engine_url"] = url
        return new_job_tracker(self._backend, name, params)

    def _open(self, name: str, tracker: JobTracker) -> JobSession:
        """A JobSession of ``name`` on the name's dispatcher; a new dispatcher takes
        ``tracker`` over, else ``tracker`` is closed."""
        with self._lock:
            self._check_open()
            shared = self._dispatchers.get(name)
            if shared is not None:
                session = self._handle(shared)
        if shared is not None:
            _close(tracker)
            return session
        # Made outside the lock (it reads the feed's cursor); another thread may have
        # opened the name meanwhile: then the one made first is used.
        made = Dispatcher(tracker, name, self._settings.resync_interval)
        with self._lock:
            shared = None if self._closed.is_set() else self._dispatchers.get(name)
            if not self._closed.is_set() and shared is None:
                self._dispatchers[name] = made
                for callback, removers in self._notifications.values():
                    removers.append(made.add_callback(callback))
                return self._handle(made)
            if shared is not None:
                session = self._handle(shared)
        made.close()
        made.join()
        if shared is None:
            raise InvalidStateError("the session manager is closed")
        return session

    def _handle(self, dispatcher: Dispatcher) -> JobSession:
        """A JobSession on ``dispatcher``, kept (under the lock)."""
        session = JobSession(dispatcher, self._release_session)
        self._sessions.append(session)
        return session

    def _release_session(self, session: JobSession) -> None:
        """``session`` closed: its dispatcher is closed with the last JobSession on it."""
        with self._lock:
            if session in self._sessions:
                self._sessions.remove(session)
            dispatcher = session._dispatcher
            if any(s._dispatcher is dispatcher for s in self._sessions):
                return
            if self._dispatchers.get(session.name) is dispatcher:
                del self._dispatchers[session.name]
        dispatcher.close()
        dispatcher.join()

    def _known(self) -> str:
        """The known session names, for an error (at most a few)."""
        known = self._names.names()
        shown = ", ".join(repr(n) for n in known[:_KNOWN_SHOWN]) or "none"
        more = f" and {len(known) - _KNOWN_SHOWN} more" if len(known) > _KNOWN_SHOWN else ""
        return f"known: {shown}{more}"

    def _forget_monitor(self, monitor: MonitoringSession) -> None:
        with self._lock:
            if monitor in self._monitors:
                self._monitors.remove(monitor)


class MonitoringSession(ClosesOnExit):
    """DRMAA2's monitoring session: every job on the engine, not only a session's, and the
    engine's machines and queues; read only. Made by
    :meth:`SessionManager.open_monitoring_session`."""

    def __init__(
        self,
        name: str,
        tracker: Monitorer,
        on_close: Callable[[MonitoringSession], None] | None = None,
    ) -> None:
        self._name = name
        self._tracker = tracker
        self._on_close = on_close
        self._closed = False
        tracker.open_monitoring_session(name)

    @property
    def name(self) -> str:
        """The monitoring session's name."""
        return self._name

    def get_all_jobs(self, filter: JobInfo | None = None) -> list[MonitoredJob]:
        """Every job (container) on the engine matching ``filter`` (DRMAA2 semantics), read
        only."""
        self._check_open()
        return [MonitoredJob(self._tracker, i) for i in self._tracker.get_all_job_ids(filter)]

    def get_all_machines(self, names: list[str] | None = None) -> list[Machine]:
        """The machines the engine runs jobs on (only those ``names`` names, if given)."""
        self._check_open()
        return self._tracker.get_all_machines(names)

    def get_all_queues(self, names: list[str] | None = None) -> list[str]:
        """Queue names: container engines have none (always empty)."""
        self._check_open()
        return self._tracker.get_all_queue_names(names)

    def close(self) -> None:
        """Close the monitoring session and its tracker. Idempotent."""
        if self._closed:
            return
        self._closed = True
        # Nothing is kept per monitoring session: closing the tracker is what counts.
        with contextlib.suppress(ContainerTrackerError):
            self._tracker.close_monitoring_session(self._name)
        _close(self._tracker)
        if self._on_close is not None:
            self._on_close(self)

    def _check_open(self) -> None:
        if self._closed:
            raise InvalidStateError(f"the monitoring session {self._name!r} is closed")

    def __repr__(self) -> str:
        return f"MonitoringSession({self._name!r})"


def _close(tracker: object) -> None:
    if isinstance(tracker, Closer):
        tracker.close()


def _state(tracker: JobTracker, job_id: str) -> JobState:
    try:
        return tracker.job_state(job_id)[0]
    except JobNotFoundError:
        return JobState.DONE  # deleted meanwhile: nothing left to stop


def _reap(tracker: JobTracker, job_id: str, grace: float) -> None:
    """Terminate the job if it runs on, wait for its end (outputs complete), delete it."""
    try:
        if not tracker.job_state(job_id)[0].terminal:
            with contextlib.suppress(InvalidStateError):  # it ended meanwhile
                tracker.job_control(job_id, "terminate")
        with contextlib.suppress(WaitTimeoutError):  # delete_job says why if it cannot go
            tracker.wait(job_id, grace)
        tracker.delete_job(job_id)
    except JobNotFoundError:
        pass  # deleted meanwhile
