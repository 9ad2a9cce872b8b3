"""The ``containertracker`` PSI/J executor: psij jobs as containers, on any tracker backend.

Built on the public ``JobTracker`` protocol and its ``ChangeFeed`` only: ``submit`` is
``add_job``, ``cancel`` is ``job_control(TERMINATE)``, ``list`` is ``list_jobs``, and one
thread per executor follows ``tracker.changes`` (the engine's events) to move psij job states
and fire status callbacks; nothing polls.
"""

from __future__ import annotations

import heapq
import queue
import threading
import time
import uuid
import weakref
from collections.abc import Iterable, Mapping
from typing import Any

from loguru import logger
from psij import (
    InvalidJobException,
    Job,
    JobExecutor,
    JobExecutorConfig,
    JobState,
    JobStatus,
    SubmitException,
)

from containertracker.errors import (
    ContainerTrackerError,
    DrmCommunicationError,
    InvalidArgumentError,
    InvalidStateError,
    JobNotFoundError,
    UnsupportedAttributeError,
    WaitTimeoutError,
)
from containertracker.models import JobState as TrackerState
from containertracker.psij._mapping import psij_state, spec_to_template, status_from_info
from containertracker.registry import new_job_tracker, registered_job_trackers
from containertracker.tracker import TERMINATE, ChangeFeed, JobTracker

__all__ = [
    "DEFAULT_IMAGE",
    "DEFAULT_SESSION",
    "ContainerTrackerExecutorConfig",
    "ContainerTrackerJobExecutor",
]

DEFAULT_IMAGE = "containertracker/psij:latest"
"""The job image psij's tests need (bash, date, sleep, cat, env, ...): images/psij."""

DEFAULT_SESSION = "psij"
"""The tracker session jobs go to unless the config names one; executors (and processes)
sharing a session see, list and attach to each other's jobs."""

# How long one change-feed call blocks; only bounds how soon ``close`` is noticed when the
# tracker cannot wake the call (it can: closing it does), not how fast states arrive.
_FEED_TIMEOUT = 30.0

# How long a final status waits for the job's output files (written as the container ends).
_OUTPUT_WAIT = 60.0
_TERMINAL = (TrackerState.DONE, TrackerState.FAILED)

# A state read that fails while the feed is healthy is retried (the feed may never mention
# the job again): first after _RETRY_FIRST seconds, doubling up to _RETRY_MAX, at most
# _RETRY_COUNT times (about three minutes in all), then given up with an error logged.
_RETRY_FIRST = 0.5
_RETRY_MAX = 30.0
_RETRY_COUNT = 10


class ContainerTrackerExecutorConfig(JobExecutorConfig):
    """What the executor runs on: the tracker ``backend`` and its ``params`` (settings such as
    ``engine_url``, ``remote_url``; see the README's Settings), the ``session`` and the default
    ``image`` (a job's ``containertracker.image`` custom attribute overrides it)."""

    def __init__(
        self,
        backend: str = "docker",
        session: str = DEFAULT_SESSION,
        image: str = DEFAULT_IMAGE,
        params: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.backend = backend
        self.session = session
        self.image = image
        self.params: dict[str, Any] = dict(params or {})


def _backend_of(
    url: str | None, config: ContainerTrackerExecutorConfig
) -> tuple[str, dict[str, Any]]:
    """The backend and params that ``url`` selects (see ``ContainerTrackerJobExecutor``)."""
    params = dict(config.params)
    if url is None or url == "":
        return config.backend, params
    if url in registered_job_trackers():
        return url, params
    if url.startswith(("http://", "https://")):
        params["remote_url"] = url
        return "remote", params
    backend, plus, engine_url = url.partition("+")
    if plus and backend in ("docker", "podman", "swarm") and engine_url:
        params["engine_url"] = engine_url
        return backend, params
    raise ValueError(
        f"containertracker executor: cannot read url {url!r}; use a backend name "
        f"({', '.join(registered_job_trackers())}), <backend>+<engine url> (e.g. "
        "podman+unix:///run/podman/podman.sock) or a server's http(s):// url"
    )


class ContainerTrackerJobExecutor(JobExecutor):
    """PSI/J executor running each job as a container through a containertracker tracker.

    ``url``: ``None`` (the config's backend), a registered backend name (``docker``,
    ``podman``, ``swarm``, ``remote``, or one added with ``register_job_tracker``),
    ``<backend>+<engine url>`` or a containertracker server's
    ``http(s)://`` url. ``config``: a ``ContainerTrackerExecutorConfig`` (session, image,
    params). The tracker is opened here and kept until ``close``, or until the executor is
    collected (psij has no close: dropping the executor closes the tracker and ends its
    threads; a psij job still followed holds its executor). The threads are daemons, so an
    executor never keeps a process alive.

    Raises:
        ValueError: a url we cannot read, or a backend without a change feed.
        containertracker errors: the backend cannot be opened (engine unreachable, ...).
    """

    def __init__(self, url: str | None = None, config: JobExecutorConfig | None = None) -> None:
        if config is None:
            config = ContainerTrackerExecutorConfig()
        elif not isinstance(config, ContainerTrackerExecutorConfig):
            # A plain JobExecutorConfig (psij's tests pass one) keeps our defaults.
            plain = config
            config = ContainerTrackerExecutorConfig()
            config.launcher_log_file = plain.launcher_log_file
            config.work_directory = plain.work_directory
        super().__init__(url=url, config=config)
        self._ct_config = config
        backend, params = _backend_of(url, config)
        tracker = new_job_tracker(backend, config.session, params)
        if not isinstance(tracker, ChangeFeed):
            _close(tracker)
            raise ValueError(f"backend {backend!r} has no change feed; the executor needs one")
        try:
            cursor = tracker.changes(None, 0).cursor  # before any job is followed
        except BaseException:
            _close(tracker)
            raise
        self._tracker: JobTracker = tracker
        self._feed: ChangeFeed = tracker
        self._lock = threading.Lock()
        # full native id -> the psij jobs following it (a submitted one and any attached to
        # it), until their final status
        self._jobs: dict[str, list[Job]] = {}
        self._canceled: set[str] = set()  # ids this executor cancelled: FAILED reads CANCELED
        self._retries: dict[str, int] = {}  # id -> failed state reads in a row
        self._closed = threading.Event()
        self._cursor = cursor
        # Ids whose state to read. One thread reads them and sets every status after QUEUED:
        # psij's Job.status setter is not atomic (two threads setting one job could fire a
        # callback twice), and it runs callbacks, which may submit (psij's throttling
        # example does, holding its own lock), so it must run under no lock of ours.
        self._stale: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        # psij has no close(): the threads hold only a weak reference to the executor, and
        # dropping the executor stops them (closes the tracker, which wakes the feed thread,
        # and wakes the status thread) as ``close`` does.
        self._finalizer = weakref.finalize(self, _shut, self._closed, self._stale, tracker)
        self._finalizer.atexit = False  # at exit the daemon threads just stop, as before
        ref = weakref.ref(self)
        name = f"psij-containertracker-{uuid.uuid4().hex[:8]}"
        self._threads = [
            threading.Thread(
                target=_follow,
                args=(ref, tracker, self._closed),
                name=f"{name}-feed",
                daemon=True,
            ),
            threading.Thread(
                target=_update,
                args=(ref, self._stale, self._closed),
                name=f"{name}-status",
                daemon=True,
            ),
        ]
        for thread in self._threads:
            thread.start()

    @property
    def tracker(self) -> JobTracker:
        """The tracker this executor submits to (for what psij has no word for)."""
        return self._tracker

    # ------------------------------------------------------------------ psij API

    def submit(self, job: Job) -> None:
        """Create and start the job's container; its status is QUEUED on return.

        Raises:
            InvalidJobException: the spec cannot run as a container job (see the README's
                mapping table), or the tracker refuses the template.
            SubmitException: an MPI launcher; the engine cannot be reached or refuses.
        """
        spec = self._check_job(job)
        try:
            template = spec_to_template(spec, self._ct_config.image)
        except BaseException:
            job.executor = None  # not submitted: the job may be fixed and submitted again
            raise
        try:
            native_id = self._tracker.add_job(template)
        except (InvalidArgumentError, UnsupportedAttributeError) as e:
            job.executor = None
            raise InvalidJobException(str(e), e) from e
        except DrmCommunicationError as e:
            job.executor = None  # the engine is away: the same job may be submitted later
            raise SubmitException(str(e), e, transient=True) from e
        except ContainerTrackerError as e:
            job.executor = None
            raise SubmitException(str(e), e) from e
        job._native_id = native_id
        self._set_job_status(job, JobStatus(JobState.QUEUED))
        self._follow_job(native_id, job)

    def cancel(self, job: Job) -> None:
        """Terminate the job whatever its state (queued, held, running, suspended): it ends
        CANCELED. A job already final is left as it is.

        Raises:
            SubmitException: the job was never submitted, or the engine cannot be reached.
        """
        native_id = job.native_id
        if native_id is None:
            raise SubmitException("cannot cancel a job that was not submitted")
        if job.status.final:
            return
        with self._lock:
            self._canceled.add(native_id)
        try:
            self._tracker.job_control(native_id, TERMINATE)
        except InvalidStateError:
            # Already over on its own: not cancelled by us, its end reads as it ended.
            with self._lock:
                self._canceled.discard(native_id)
        except JobNotFoundError:
            pass  # removed: the status read below reads CANCELED (we asked for its end)
        except ContainerTrackerError as e:
            raise SubmitException(f"cannot cancel job {native_id}: {e}", e) from e
        self._stale.put(native_id)

    def list(self) -> list[str]:
        """Native ids of every job of the session, whoever submitted it."""
        try:
            return self._tracker.list_jobs()
        except ContainerTrackerError as e:
            raise SubmitException(f"cannot list jobs: {e}", e) from e

    def attach(self, job: Job, native_id: str) -> None:
        """Follow the session's job ``native_id`` (from any executor or process) with ``job``,
        which must be NEW; its status follows the container from now on.

        Raises:
            InvalidJobException: ``job`` is not NEW, or no job of the session has that id.
            SubmitException: the engine cannot be reached.
        """
        if job.status.state != JobState.NEW:
            raise InvalidJobException("Job must be in the NEW state")
        try:
            full_id = self._tracker.job_info(native_id).id or native_id
        except JobNotFoundError as e:
            raise InvalidJobException(f"no job {native_id!r} in this session", e) from e
        except ContainerTrackerError as e:
            raise SubmitException(str(e), e) from e
        job.executor = self
        job._native_id = full_id
        self._set_job_status(job, JobStatus(JobState.QUEUED))
        self._follow_job(full_id, job)

    def close(self) -> None:
        """Stop following jobs and close the tracker; jobs keep running. Idempotent."""
        if not self._finalizer.alive:
            return
        self._finalizer()  # wakes the feed thread's blocked call and the status thread
        for thread in self._threads:
            if thread is not threading.current_thread():  # close() from a callback
                thread.join(timeout=_FEED_TIMEOUT + 5)

    # ------------------------------------------------------------------ states

    def _follow_job(self, native_id: str, job: Job) -> None:
        """Register the job, then have its state read once: an event that came before it was
        registered was skipped by the feed thread, and that read sees its effect."""
        with self._lock:
            self._jobs.setdefault(native_id, []).append(job)
        self._stale.put(native_id)

    def _feed_changed(self, changes_complete: bool, job_ids: Iterable[str]) -> None:
        """Have every followed job among ``job_ids`` read (all of them when the feed's batch
        is not ``changes_complete``)."""
        with self._lock:
            followed = set(self._jobs)
        changed = followed if not changes_complete else followed.intersection(job_ids)
        for job_id in changed:
            self._stale.put(job_id)

    def _was_canceled(self, native_id: str) -> bool:
        """Whether this executor cancelled the job. Read after the job's state: a cancel
        between an earlier read and the state read would make a cancelled job read FAILED."""
        with self._lock:
            return native_id in self._canceled

    def _refresh(self, native_id: str) -> float | None:
        """Read the job's state and move the status of the psij jobs following it there
        (callbacks fire in ``Job.status``'s setter, which also fills in states a job went
        through unseen). Returns the delay after which to read it again when the read failed
        (the feed may not mention the job again), ``None`` otherwise."""
        ran = False
        try:
            state, _sub_state = self._tracker.job_state(native_id)
            status: JobStatus | None
            if state.terminal:
                # A final psij status means "outputs are there" to its users (they read
                # stdout_path next); the tracker's wait returns a terminal state only once
                # the output files are complete, job_state may read it a moment before.
                try:
                    self._tracker.wait(native_id, _OUTPUT_WAIT, *_TERMINAL)
                except WaitTimeoutError:
                    logger.warning("psij executor: outputs of job {} still unwritten", native_id)
                info = self._tracker.job_info(native_id)
                status = status_from_info(info, self._was_canceled(native_id))
                # psij fills in ACTIVE before COMPLETED, not before FAILED or CANCELED (they
                # can follow QUEUED): a job that ran and ended between two reads would skip
                # ACTIVE. The job's start time says it ran.
                ran = info.dispatch_time is not None
            else:
                psij = psij_state(state)
                status = JobStatus(psij) if psij is not None else None
        except JobNotFoundError:
            # Deleted behind our back (by hand, another tool): its end cannot be read.
            status = (
                JobStatus(JobState.CANCELED, message="canceled")
                if self._was_canceled(native_id)
                else JobStatus(JobState.FAILED, message=f"job {native_id} no longer exists")
            )
        except ContainerTrackerError as e:
            with self._lock:
                if native_id not in self._jobs:
                    return None
                tries = self._retries.get(native_id, 0) + 1
                self._retries[native_id] = tries
            if tries > _RETRY_COUNT:
                logger.error("psij executor: giving up on job {}: {}", native_id, e)
                with self._lock:
                    self._retries.pop(native_id, None)
                return None
            logger.warning("psij executor: cannot read job {} (will retry): {}", native_id, e)
            return min(_RETRY_FIRST * float(2 ** (tries - 1)), _RETRY_MAX)
        with self._lock:
            self._retries.pop(native_id, None)
        if status is None:
            return None
        with self._lock:
            jobs = list(self._jobs.get(native_id, ()))
            if status.final:
                self._jobs.pop(native_id, None)
                self._canceled.discard(native_id)
        for job in jobs:
            if ran:
                self._set_job_status(job, JobStatus(JobState.ACTIVE))
            self._set_job_status(job, status)
        return None


def _shut(closed: threading.Event, stale: queue.SimpleQueue[str | None], tracker: object) -> None:
    """Stop an executor's threads (``close``, or the executor collected): holds no reference
    to the executor."""
    closed.set()
    stale.put(None)
    _close(tracker)


def _follow(
    ref: weakref.ReferenceType[ContainerTrackerJobExecutor],
    feed: ChangeFeed,
    closed: threading.Event,
) -> None:
    """The feed thread: read the state of every followed job the engine's events touch. Holds
    the executor only between two feed calls, so dropping it stops the thread."""
    executor = ref()
    if executor is None:
        return
    cursor: int | None = executor._cursor
    del executor
    while not closed.is_set():
        try:
            changes = feed.changes(cursor, _FEED_TIMEOUT)
        except InvalidStateError:
            return  # the tracker was closed
        except DrmCommunicationError as e:
            # The engine is away; the tracker reconnects. A fresh cursor then reads
            # complete=False, so every followed job is read again.
            logger.warning("psij executor: change feed unavailable: {}", e)
            closed.wait(1.0)
            cursor = None
            continue
        except ContainerTrackerError as e:
            logger.error("psij executor: change feed failed: {}", e)
            closed.wait(1.0)
            cursor = None
            continue
        executor = ref()
        if executor is None:
            return
        executor._feed_changed(cursor is not None and changes.complete, changes.job_ids)
        del executor
        cursor = changes.cursor


def _update(
    ref: weakref.ReferenceType[ContainerTrackerJobExecutor],
    stale: queue.SimpleQueue[str | None],
    closed: threading.Event,
) -> None:
    """The status thread: read each stale job's state and set its psij status; a failed read
    is tried again later (``_refresh`` says when). Holds the executor only while it reads."""
    later: list[tuple[float, str]] = []  # (monotonic due time, id), a heap
    while True:
        timeout = max(0.0, later[0][0] - time.monotonic()) if later else None
        try:
            job_id = stale.get(timeout=timeout)
        except queue.Empty:
            job_id = heapq.heappop(later)[1]
        if job_id is None or closed.is_set():
            return
        executor = ref()
        if executor is None:
            return
        try:
            retry = executor._refresh(job_id)
        except Exception:
            # Never let one job's surprise end the thread every other job's status (and
            # callbacks) depend on.
            logger.exception("psij executor: cannot update job {}", job_id)
            retry = None
        del executor
        if retry is not None:
            heapq.heappush(later, (time.monotonic() + retry, job_id))


def _close(tracker: object) -> None:
    close = getattr(tracker, "close", None)
    if callable(close):
        close()
