"""The ``containertracker`` PSI/J executor: psij jobs as containers, on any tracker backend.

Built on the public ``JobTracker`` protocol and its ``ChangeFeed`` only: ``submit`` is
``add_job``, ``cancel`` is ``job_control(TERMINATE)``, ``list`` is ``list_jobs``, and one
thread per executor follows ``tracker.changes`` (the engine's events) to move psij job states
and fire status callbacks; nothing polls.
"""

from __future__ import annotations

import queue
import threading
import uuid
from collections.abc import Mapping
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
    params). The tracker is opened here and kept until ``close`` (psij has no close; the
    feed thread is a daemon, so an executor never keeps a process alive).

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
        self._tracker: JobTracker = tracker
        self._feed: ChangeFeed = tracker
        self._lock = threading.Lock()
        # full native id -> the psij jobs following it (a submitted one and any attached to
        # it), until their final status
        self._jobs: dict[str, list[Job]] = {}
        self._canceled: set[str] = set()  # ids this executor cancelled: FAILED reads CANCELED
        self._closed = threading.Event()
        self._cursor = self._feed.changes(None, 0).cursor  # before any job is followed
        # Ids whose state to read. One thread reads them and sets every status after QUEUED:
        # psij's Job.status setter is not atomic (two threads setting one job could fire a
        # callback twice), and it runs callbacks, which may submit (psij's throttling
        # example does, holding its own lock), so it must run under no lock of ours.
        self._stale: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        name = f"psij-containertracker-{uuid.uuid4().hex[:8]}"
        self._threads = [
            threading.Thread(target=self._follow, name=f"{name}-feed", daemon=True),
            threading.Thread(target=self._update, name=f"{name}-status", daemon=True),
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
        except (InvalidStateError, JobNotFoundError):
            pass  # already over, or removed: the status read below says which
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
        if self._closed.is_set():
            return
        self._closed.set()
        self._stale.put(None)
        _close(self._tracker)  # wakes the feed thread's blocked call
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

    def _follow(self) -> None:
        """The feed thread: read the state of every followed job the engine's events touch."""
        cursor: int | None = self._cursor
        while not self._closed.is_set():
            try:
                changes = self._feed.changes(cursor, _FEED_TIMEOUT)
            except InvalidStateError:
                return  # the tracker was closed
            except DrmCommunicationError as e:
                # The engine is away; the tracker reconnects. A fresh cursor then reads
                # complete=False, so every followed job is read again.
                logger.warning("psij executor: change feed unavailable: {}", e)
                self._closed.wait(1.0)
                cursor = None
                continue
            except ContainerTrackerError as e:
                logger.error("psij executor: change feed failed: {}", e)
                self._closed.wait(1.0)
                cursor = None
                continue
            with self._lock:
                followed = set(self._jobs)
            if cursor is None or not changes.complete:
                changed = list(followed)
            else:
                changed = [job_id for job_id in changes.job_ids if job_id in followed]
            cursor = changes.cursor
            for job_id in changed:
                self._stale.put(job_id)

    def _update(self) -> None:
        """The status thread: read each stale job's state and set its psij status."""
        while True:
            job_id = self._stale.get()
            if job_id is None or self._closed.is_set():
                return
            try:
                self._refresh(job_id)
            except Exception:
                # Never let one job's surprise end the thread every other job's status (and
                # callbacks) depend on.
                logger.exception("psij executor: cannot update job {}", job_id)

    def _refresh(self, native_id: str) -> None:
        """Read the job's state and move the status of the psij jobs following it there
        (callbacks fire in ``Job.status``'s setter, which also fills in states a job went
        through unseen)."""
        with self._lock:
            canceled = native_id in self._canceled
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
                status = status_from_info(info, canceled)
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
                if canceled
                else JobStatus(JobState.FAILED, message=f"job {native_id} no longer exists")
            )
        except ContainerTrackerError as e:
            logger.warning("psij executor: cannot read job {}: {}", native_id, e)
            return
        if status is None:
            return
        with self._lock:
            jobs = list(self._jobs.get(native_id, ()))
            if status.final:
                self._jobs.pop(native_id, None)
                self._canceled.discard(native_id)
        for job in jobs:
            if ran:
                self._set_job_status(job, JobStatus(JobState.ACTIVE))
            self._set_job_status(job, status)


def _close(tracker: object) -> None:
    close = getattr(tracker, "close", None)
    if callable(close):
        close()
