"""ContainerTracker: the DRMAA2 JobTracker semantics, written once over any :class:`Engine`.

What needs a live tracker (any tracker of the session, in any process on this host): starting
queued array tasks as slots free up, starting jobs at their ``start_time``, releasing held
jobs that are throttled, terminating jobs at their ``deadline_time`` or ``WALLCLOCK_TIME``,
and writing output files and stage-out copies as soon as a job ends. Everything else is read
from the engine at call time, so a tracker opened later (or in another process) sees every
job, its state, template, array membership and hold state, and catches up on the work above.
"""

from __future__ import annotations

import contextlib
import dataclasses
import getpass
import os
import re
import socket
import tarfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import CancelledError, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal
from urllib.parse import quote

from loguru import logger

from containertracker.core import hostfs, labels, outputs
from containertracker.core.convert import (
    SubmitContext,
    container_state,
    job_info_from_record,
    needs_machines,
    template_to_spec,
)
from containertracker.core.decision import held
from containertracker.core.engine import (
    ACTIVE_STATUSES,
    ContainerRecord,
    ContainerSpec,
    ContainerSummary,
    CreatedNotStartedError,
    Engine,
    EngineInfo,
    ImageNotFoundError,
)
from containertracker.core.plan import Plan
from containertracker.core.scheduler import Scheduler
from containertracker.core.statestore import StateStore, Submission
from containertracker.core.watch import EventWatcher
from containertracker.errors import (
    ContainerTrackerError,
    DrmCommunicationError,
    InvalidArgumentError,
    InvalidStateError,
    JobNotFoundError,
    WaitTimeoutError,
)
from containertracker.models import CPU, OS, JobInfo, JobState, JobTemplate, Machine
from containertracker.settings import PullPolicy
from containertracker.tracker import (
    MAX_ARRAY_TASKS,
    ClosesOnExit,
    ControlAction,
    JobChanges,
    check_changes_args,
    control_action,
    refuse_calls_when_closed,
)

__all__ = ["ContainerTracker"]

_STOP_SLACK = 10.0
"""How much longer than the stop grace a stop may take (the engine's own work)."""
_CONTAINER_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
"""What an engine resolves to one container: an id, an id prefix or a name."""
_IMAGE_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/@-]*")
"""What may name an image (the engines check the exact grammar)."""
_CREATE_THREADS = 8
"""Parallel container creations per array submission (engines create faster so)."""
_TERMINAL = (JobState.DONE, JobState.FAILED)


def _created_started(spec: ContainerSpec, plan: Plan) -> tuple[ContainerSpec, Plan]:
    """The spec and plan of a job to be created started: its plan label says so (which
    every scheduler and hold reads)."""
    plan = dataclasses.replace(plan, created_started=True)
    return dataclasses.replace(spec, labels={**spec.labels, labels.PLAN: plan.to_label()}), plan


def _with_submission_labels(
    spec: ContainerSpec, submission: Submission, store: StateStore
) -> ContainerSpec:
    """The spec with the labels naming the submission that creates the container and the
    state directory it is recorded in (whose schedulers alone start the job)."""
    job_labels = {**spec.labels, labels.SUBMISSION: submission.id, labels.STATE_DIR: store.identity}
    return dataclasses.replace(spec, labels=job_labels)


@refuse_calls_when_closed
class ContainerTracker(ClosesOnExit):
    """A DRMAA2 JobTracker whose jobs are containers of one engine, grouped by session.

    Thread-safe. Closing the tracker stops its background threads; jobs keep running, and
    every later call raises InvalidStateError.
    """

    def __init__(
        self,
        engine: Engine,
        session: str,
        *,
        state_dir: Path,
        stop_grace: float = 10.0,
        pull_policy: PullPolicy = PullPolicy.NEVER,
        resync_interval: float = 2.0,
        host_path_roots: Sequence[str | os.PathLike[str]] | None = None,
        monitor_all_containers: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Connect the tracker to ``engine`` and start its event and scheduler threads.

        ``host_path_roots``: directories below which every host path of a job must resolve
        (its input, output and error files, stage-in sources, stage-out destinations); None
        allows any, ``[]`` none (``/dev/null`` is always allowed).

        ``monitor_all_containers``: the Monitorer calls see every container on the engine;
        False: only containers of trackers (those with a session label), as a server shows.

        ``clock``: the wall clock (epoch seconds) that start times, deadlines, claims and
        retries are measured by; tests of the scheduling logic pass a fake one.

        Raises:
            DrmCommunicationError: the engine cannot be reached.
        """
        self._engine = engine
        self._session = session
        self._stop_grace = stop_grace
        self._pull_policy = pull_policy
        self._resync_interval = resync_interval
        self._host_path_roots = hostfs.normalize_roots(host_path_roots)
        self._monitor_all = monitor_all_containers
        self._clock = clock
        self._engine_info = engine.info()
        self._images_seen: set[str] = set()
        """Images the engine had when a submission checked (see :meth:`_ensure_image`)."""
        self._store = StateStore(
            state_dir, scope=StateStore.scope_of(engine.name, engine.url, session)
        )
        self._log = logger.bind(backend=engine.name, session=session)
        self._closed = threading.Event()
        self._scheduler = Scheduler(
            engine,
            session,
            self._store,
            finalize=self._finalize_quietly,
            resync_interval=resync_interval,
            stop_grace=stop_grace,
            clock=clock,
        )
        self._watcher = EventWatcher(
            engine,
            {labels.SESSION: session},
            on_event=self._scheduler.on_event,
            on_reconnect=self._scheduler.kick,  # job ends may have been missed
        )

    # -- JobTracker ---------------------------------------------------------------------------

    def list_jobs(self) -> list[str]:
        """Ids of every job of the session (finished ones until deleted), in one engine call."""
        return [row.id for row in self._engine.list_containers({labels.SESSION: self._session})]

    def list_array_jobs(self, array_id: str) -> list[str]:
        """The task ids of an array job, in task order.

        Raises:
            JobNotFoundError: no array job ``array_id`` in this session.
        """
        rows = self._array_rows(array_id)
        if not rows:
            raise JobNotFoundError(f"no array job {array_id!r} in session {self._session!r}")
        return [row.id for row in rows]

    def add_job(self, jt: JobTemplate) -> str:
        """Create the job's container and start it (unless held or given a later start time).

        Returns the container id. On any error nothing is left behind; a call interrupted
        for good (its process killed) is rolled back by the next tracker of the session.

        A job that nothing could hold back (not held, no start time, no input file, no output
        file to create before it runs) is created already started, in one engine call where
        the engine allows (a swarm): a hold is refused from the moment it exists ("being
        started"). Any other job is created, then started by the scheduler; one held
        (``hold``) before that start stays QUEUED_HELD.

        Raises:
            InvalidArgumentError: a template field is wrong, or the image is not present.
            UnsupportedAttributeError: a template field cannot be honoured.
        """
        spec, plan = template_to_spec(jt, self._submit_context(jt))
        outputs.check(plan, self._host_path_roots)
        self._ensure_image(spec.image)
        if plan.may_start_at_creation:
            spec, plan = _created_started(spec, plan)
        created: list[str] = []
        prepared: list[str] = []
        with self._submission(uuid.uuid4().hex[:16], created, prepared) as submission:
            spec = _with_submission_labels(spec, submission, self._store)
            if plan.created_started:
                self._create_started(spec, plan, created)
                return created[0]
            created.append(self._create(spec))
            # Once the container exists: a template the engine refuses leaves no file behind.
            prepared += outputs.prepare(plan)
            if not (plan.hold or plan.start_at):
                self._scheduler.start(created[0], plan)
        return created[0]

    def add_array_job(
        self, jt: JobTemplate, begin: int, end: int, step: int = 1, max_parallel: int = 0
    ) -> str:
        """Create one task per index of ``range(begin, end + 1, step)``; return the array id.

        Each task gets ``TASK_ID`` as environment variable and label. At most ``max_parallel``
        tasks (0 = all) run at once; the others are QUEUED and started as slots free up.
        Returns once every task exists and the first have started. On any error every task
        is removed again (tasks of a throttled array may have run by then).

        Raises:
            InvalidArgumentError: bad bounds, step or max_parallel, or a bad template.
        """
        if step < 1:
            raise InvalidArgumentError(f"step must be at least 1, not {step}")
        if end < begin:
            raise InvalidArgumentError(f"end ({end}) must not be smaller than begin ({begin})")
        if max_parallel < 0:
            raise InvalidArgumentError(
                f"max_parallel must be 0 (no limit) or more, not {max_parallel}"
            )
        tasks = (end - begin) // step + 1
        if tasks > MAX_ARRAY_TASKS:
            raise InvalidArgumentError(
                f"an array job has at most {MAX_ARRAY_TASKS} tasks, not {tasks}; "
                "split it into several array jobs"
            )
        array_id = uuid.uuid4().hex[:16]
        context = self._submit_context(
            jt, task_id=begin, array_id=array_id, max_parallel=max_parallel
        )
        # The template and the image are checked once, before any task exists; each task's
        # spec is built when the task is created (a large template times many tasks never
        # sits in memory at once).
        spec, _ = template_to_spec(jt, context)
        self._ensure_image(spec.image)
        del spec
        task_ids = range(begin, end + 1, step)
        outputs.check_tasks(jt, context, task_ids, self._host_path_roots)
        created: list[str] = []
        prepared: list[str] = []
        with self._submission(array_id, created, prepared) as submission:

            def create_task(task_id: int) -> str:
                spec, plan = template_to_spec(jt, dataclasses.replace(context, task_id=task_id))
                # Per task: the index may change the path.
                outputs.check(plan, self._host_path_roots)
                job_id = self._create(_with_submission_labels(spec, submission, self._store))
                try:
                    prepared.extend(outputs.prepare(plan))
                except BaseException:
                    self._remove_created([job_id])  # not in `created` yet
                    raise
                return job_id

            # No other scheduler starts the tasks of a submission under way, so they are
            # created without the session lock, and this call sees the first ones start.
            first = max_parallel or len(task_ids)
            self._create_all(create_task, task_ids[:first], created)
            failures = self._scheduler.start_submitted(submission.id, created)
            if failures:
                raise failures[0]
            # The rest of a throttled array is created while its first tasks run (as a plain
            # thread-pool script would): the scheduler starts each one as a slot frees up.
            self._create_all(create_task, task_ids[first:], created, throttled=array_id)
        return array_id

    def job_state(self, job_id: str) -> tuple[JobState, str]:
        """The job's DRMAA2 state and sub-state (e.g. ``held``, ``out of memory``).

        Raises:
            JobNotFoundError: no such job in this session.
        """
        return self._state_of(self._record(job_id))

    def job_info(self, job_id: str) -> JobInfo:
        """Everything known about the job now.

        Raises:
            JobNotFoundError: no such job in this session.
        """
        return self._job_info_of(self._record(job_id))

    def job_template(self, job_id: str) -> JobTemplate:
        """The template the job was submitted with (read from its ``drmaa2jobtemplate`` label).

        Raises:
            JobNotFoundError: no such job in this session.
            InvalidArgumentError: the container carries no template label.
        """
        template = self._template_of(self._record(job_id))
        if template is None:
            raise InvalidArgumentError(f"label '{labels.TEMPLATE}' not found on job {job_id}")
        return template

    def job_info_and_template(self, job_id: str) -> tuple[JobInfo, JobTemplate | None]:
        """:meth:`job_info` and :meth:`job_template` (None where the container carries no
        template, or one that cannot be read) from one look at the job: what a view listing
        many jobs needs of each.

        Raises:
            JobNotFoundError: no such job in this session.
        """
        record = self._record(job_id)
        try:
            template = self._template_of(record)
        except ValueError:
            template = None  # a label another tool wrote: the job is shown without it
        return self._job_info_of(record), template

    def output_tail(
        self, job_id: str, which: Literal["output", "error"], max_bytes: int
    ) -> outputs.OutputTail:
        """The last ``max_bytes`` of the job's output (or error) file as it is now: the file
        once the job has ended and its outputs are written, before that the engine's log of
        what goes into it (so it shows a running job's output as it comes).

        Only the file its template named, only below this tracker's ``host_path_roots``, never
        through a symlink, only a regular file (see :func:`outputs.tail`).

        Raises:
            JobNotFoundError: no such job in this session.
            InvalidArgumentError: the job has no such file, it cannot be read, or
                ``max_bytes`` is not positive.
            DeniedByDrmsError: the file lies outside ``host_path_roots``.
        """
        if max_bytes < 1:
            raise InvalidArgumentError(f"max_bytes must be at least 1, not {max_bytes}")
        record = self._record(job_id)
        written = record.status not in ACTIVE_STATUSES and self._store.marks(record.id).finalized
        return outputs.tail(
            self._engine,
            record.id,
            Plan.from_labels(record.labels),
            self._host_path_roots,
            which=which,
            written=written,
            max_bytes=max_bytes,
        )

    def job_control(self, job_id: str, action: ControlAction) -> None:
        """Suspend, resume, hold, release or terminate a job.

        Returns once the change has happened: a terminated job reads FAILED, a suspended job
        SUSPENDED, a released job QUEUED or RUNNING.

        Raises:
            InvalidArgumentError: unknown action.
            InvalidStateError: the action does not fit the job's state (the message says which
                states it needs).
            JobNotFoundError: no such job in this session.
        """
        record = self._record(job_id)
        state, _ = self._state_of(record)
        match action:
            case "suspend":
                self._require_state(job_id, action, state, JobState.RUNNING)
                self._engine.pause(record.id)
            case "resume":
                self._require_state(job_id, action, state, JobState.SUSPENDED)
                self._engine.unpause(record.id)
            case "hold":
                self._require_state(job_id, action, state, JobState.QUEUED)
                self._require_own_state_dir(record, action)
                if not self._scheduler.hold(record.id, Plan.from_labels(record.labels)):
                    raise InvalidStateError(
                        f"cannot hold job {job_id}: it is being started (RUNNING), and only "
                        "QUEUED jobs can be held"
                    )
            case "release":
                self._require_state(job_id, action, state, JobState.QUEUED_HELD)
                self._require_own_state_dir(record, action)
                self._scheduler.release(record.id)
            case "terminate":
                if state in (JobState.QUEUED, JobState.QUEUED_HELD):
                    self._require_own_state_dir(record, action)
                self._terminate(record, state)
            case _:
                control_action(action)  # raises: not one of the five

    def wait(self, job_id: str, timeout: float | None, *states: JobState) -> JobState:
        """Block until the job is in one of ``states`` (none given: DONE or FAILED).

        Driven by engine events, so it returns promptly. When it returns a terminal state the
        job's output files and stage-out copies are complete.

        Args:
            job_id: the job: its id, a unique id prefix or its name.
            timeout: seconds; ``None`` waits forever, 0 checks once.
            states: the states to wait for.

        Returns:
            The state reached.

        Raises:
            WaitTimeoutError: the timeout passed first (also a builtin ``TimeoutError``).
            DrmCommunicationError: the engine stayed unreachable until the timeout (while
                it is away, wait keeps retrying).
            InvalidStateError: the job ended in a state not wanted, so it can never get there.
            JobNotFoundError: the job does not exist (or was deleted while waiting).
            InvalidArgumentError: a negative timeout.
            InvalidStateError: also when the tracker is closed (before or while waiting).
        """
        if timeout is not None and timeout < 0:
            raise InvalidArgumentError(f"timeout must be None, 0 or positive, not {timeout}")
        wanted = frozenset(states or _TERMINAL)
        deadline = None if timeout is None else time.monotonic() + timeout
        record, seen = self._resolve_for_wait(job_id, deadline)
        while True:
            state, settled = self._state_for_wait(record)
            if settled and state in wanted:
                return state
            if settled and state.terminal:
                raise InvalidStateError(
                    f"job {job_id} ended {state.name}, so it can never reach "
                    f"{'/'.join(sorted(s.name for s in wanted))}"
                )
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeoutError(
                    f"timeout while waiting for job state: job {job_id} is still {state.name} "
                    f"after {timeout} s"
                )
            record, seen = self._look_after_change(record.id, seen, job_id, deadline)

    def _resolve_for_wait(self, job_id: str, deadline: float | None) -> tuple[ContainerRecord, int]:
        """For :meth:`wait`: the job ``job_id`` names (its id, a unique id prefix or its
        name), looked at under its full id, with the event generation read before that look.

        Events name containers by their full id only: a prefix or a name is resolved by a
        first look, and the job looked at once more under its full id, so that an event
        between the two looks is not missed.

        Raises:
            as :meth:`_look_for_wait`.
        """
        seen = self._watcher.generation(job_id)
        record = self._look_for_wait(job_id, job_id, deadline)
        if record.id != job_id:
            seen = self._watcher.generation(record.id)
            record = self._look_for_wait(record.id, job_id, deadline)
        return record, seen

    def _look_after_change(
        self, full_id: str, seen: int, job_id: str, deadline: float | None
    ) -> tuple[ContainerRecord, int]:
        """For :meth:`wait`: sleep until the job's container has an event after generation
        ``seen`` (or the resync interval, or the deadline, has passed: an event may have
        been lost), then look at the job again; returns it with the new generation.

        Raises:
            as :meth:`_look_for_wait`.
        """
        self._watcher.wait_for_change(full_id, seen, self._time_to_next_look(deadline))
        seen = self._watcher.generation(full_id)
        return self._look_for_wait(full_id, job_id, deadline), seen

    def _look_for_wait(self, ref: str, job_id: str, deadline: float | None) -> ContainerRecord:
        """For :meth:`wait` on ``job_id``: the job's record now (``ref``: its id, or what
        the caller named it by), looked up again and again while the engine is away (e.g.
        restarting), until ``deadline``.

        Raises:
            InvalidStateError: the tracker was closed (before or while retrying).
            DrmCommunicationError: the engine was still away at the deadline.
            JobNotFoundError: no such job in this session.
        """
        while True:
            if self._closed.is_set():
                raise InvalidStateError(f"the tracker was closed while waiting for job {job_id}")
            try:
                return self._record(ref)
            except DrmCommunicationError:
                if deadline is not None and time.monotonic() >= deadline:
                    raise
                self._closed.wait(self._time_to_next_look(deadline))

    def _state_for_wait(self, record: ContainerRecord) -> tuple[JobState, bool]:
        """For :meth:`wait`: the job's state, and whether it is settled (a wait may return
        it, or give up on it).

        A job that reads FAILED (terminated, overdue) while its container is still stopping
        is not settled: its outputs come when the container has ended. An ended job's
        outputs are complete before its state is settled (written here, or waited for if a
        scheduler is writing them); its state is then read again, as a failed stage-out
        makes the job FAILED.
        """
        state, _ = self._state_of(record)
        if not state.terminal:
            return state, True
        if record.status in ACTIVE_STATUSES:
            return state, False
        self._finalize(record)
        return self._state_of(record)[0], True

    def _time_to_next_look(self, deadline: float | None) -> float:
        """Seconds a wait sleeps before it looks at the job again, even without an event: the
        resync interval (in case an event was lost), or less if the deadline comes first."""
        if deadline is None:
            return self._resync_interval
        return min(self._resync_interval, max(0.0, deadline - time.monotonic()))

    def changes(self, since: int | None, timeout: float) -> JobChanges:
        """The session's jobs with an engine event after cursor ``since`` (the ChangeFeed
        contract: ``since=None`` gives the cursor of now; else waits up to ``timeout`` s for
        one). Jobs' creations count (the engine's create event), and so do their removals.

        Only the session's containers' events are seen (the event stream is filtered by the
        session label). ``complete`` is False when the event stream reconnected after
        ``since`` (events of its outage are lost), when more than 4096 containers changed
        since (the record is bounded), or when ``since`` came from another tracker object.

        Raises:
            InvalidArgumentError: ``since`` is not None nor an integer >= 0, or ``timeout``
                is not a number >= 0.
            InvalidStateError: the tracker is closed, before or while waiting.
        """
        check_changes_args(since, timeout)
        if since is None:
            return JobChanges(self._watcher.cursor(), [], True)
        cursor, job_ids, complete = self._watcher.changes(since, timeout)
        if self._closed.is_set():
            raise InvalidStateError("the tracker was closed while waiting for changes")
        return JobChanges(cursor, job_ids, complete)

    def delete_job(self, job_id: str) -> None:
        """Remove a finished job's container, after its outputs are written (a job that reads
        FAILED while its container is still stopping is waited for, up to the stop grace).

        Raises:
            InvalidStateError: the job is not DONE or FAILED.
            JobNotFoundError: no such job in this session.
        """
        record = self._record(job_id)
        state, _ = self._state_of(record)
        if not state.terminal:
            raise InvalidStateError(
                f"job is not in an end-state: job {job_id} is {state.name}; terminate it first"
            )
        if record.status in ACTIVE_STATUSES:
            # FAILED (terminated, overdue) but still stopping: its outputs come at its end.
            with contextlib.suppress(WaitTimeoutError):
                self.wait(job_id, self._stop_grace + _STOP_SLACK)
            record = self._record(job_id)
        self._finalize(record)
        self._engine.remove(record.id)
        self._store.forget(record.id)

    def list_job_categories(self) -> list[str]:
        """Local image names usable as ``job_category``."""
        return sorted(set(self._engine.images()))

    # -- optional capabilities ----------------------------------------------------------------

    @property
    def host_path_roots(self) -> tuple[str, ...] | None:
        """The resolved directories jobs' host paths must lie below (None: anywhere)."""
        return self._host_path_roots

    @property
    def monitor_all_containers(self) -> bool:
        """Whether the Monitorer calls see every container on the engine (False: only
        containers of trackers)."""
        return self._monitor_all

    def contact(self) -> str:
        """``<engine url>?session=<session>``."""
        return f"{self._engine.url}?session={quote(self._session)}"

    def open_monitoring_session(self, name: str) -> None:
        """Monitoring keeps no state, so this only succeeds."""

    def close_monitoring_session(self, name: str) -> None:
        """Monitoring keeps no state, so this only succeeds."""

    def get_all_job_ids(self, filter: JobInfo | None = None) -> list[str]:
        """Ids of every container on the engine (any session or tool; only trackers' ones
        unless ``monitor_all_containers``) matching ``filter``."""
        rows = [
            row
            for row in self._engine.list_containers({})
            if self._monitor_all or labels.SESSION in row.labels
        ]
        if filter is None or filter == JobInfo():
            return [row.id for row in rows]
        matching = []
        for row in rows:
            try:
                info = self._job_info_of(self._engine.inspect(row.id))
            except JobNotFoundError:
                continue  # removed meanwhile
            if filter.matches(info):
                matching.append(row.id)
        return matching

    def session_names(self) -> list[str]:
        """The sessions that have jobs on the engine (the session label of every container
        a tracker made, whatever ``monitor_all_containers`` says), sorted: one engine call."""
        rows = self._engine.list_containers({})
        return sorted({row.labels[labels.SESSION] for row in rows if labels.SESSION in row.labels})

    def get_all_queue_names(self, filter: list[str] | None = None) -> list[str]:
        """Container engines have no queues: always ``[]``."""
        return []

    def get_all_machines(self, filter: list[str] | None = None) -> list[Machine]:
        """Every machine the engine runs jobs on (a single-host engine's host; every node of
        a swarm, with its availability), only those ``filter`` names if given."""
        machines = [self._machine_of(info) for info in self._engine.machines()]
        return [m for m in machines if filter is None or m.name in filter]

    def job_info_from_monitor(self, job_id: str) -> JobInfo:
        """JobInfo of any container on the engine, in or outside this session (only trackers'
        containers unless ``monitor_all_containers``: others are JobNotFoundError)."""
        record = self._inspect(job_id)
        if not self._monitor_all and labels.SESSION not in record.labels:
            raise JobNotFoundError(f"no job {job_id!r} among the containers of trackers")
        return self._job_info_of(record)

    def machine(self) -> Machine:
        """The engine's host (a swarm's: the manager's) as a DRMAA2 Machine."""
        return self._machine_of(self._engine_info)

    def _machine_of(self, info: EngineInfo) -> Machine:
        """A machine of the engine as a DRMAA2 Machine."""
        version = ".".join(info.kernel_version.split("-")[0].split(".")[:2])
        return Machine(
            name=info.host_name,
            available=info.available,
            sockets=1,
            cores_per_socket=info.cpus,
            threads_per_core=1,
            physical_memory=info.memory,
            virtual_memory=info.memory,
            architecture=CPU.from_machine(info.architecture),
            os=OS.from_engine(info.os_type),
            os_version=version,
            extension={"engine": f"{self._engine.name} {info.engine_version}"},
        )

    def close(self) -> None:
        """Stop the background threads and the engine connection; jobs keep running.

        Idempotent. Afterwards every other method raises InvalidStateError (a wait under way
        in another thread ends with it too).
        """
        if self._closed.is_set():
            return
        self._closed.set()
        self._watcher.close()
        self._scheduler.close()
        self._engine.close()

    # -- internals ----------------------------------------------------------------------------

    def _submit_context(
        self,
        jt: JobTemplate,
        task_id: int | None = None,
        array_id: str | None = None,
        max_parallel: int = 0,
    ) -> SubmitContext:
        """The facts of a submission of ``jt`` now: its time by the tracker's clock (which the
        scheduler measures start times and deadlines with too), and the engine's machines
        only when the template asks for placement (listing them is an engine call)."""
        return SubmitContext(
            session=self._session,
            engine=self._engine_info,
            now=datetime.fromtimestamp(self._clock(), UTC),
            cwd=os.getcwd(),
            home=str(Path.home()),
            submission_host=socket.gethostname(),
            owner=getpass.getuser(),
            task_id=task_id,
            array_id=array_id,
            max_parallel=max_parallel,
            machines=tuple(self._engine.machines()) if needs_machines(jt) else (),
            stop_grace=self._stop_grace,
        )

    def _inspect(self, job_id: str) -> ContainerRecord:
        """Inspect any container by the id a caller gave.

        Raises:
            JobNotFoundError: no container has that id, or no container could (e.g. ``.``).
        """
        # Why check: the SDKs put the id into the URL path unescaped, so "." or "x/.." would
        # address another endpoint (GET /containers/./json is the container list).
        if not _CONTAINER_REF.fullmatch(job_id):
            raise JobNotFoundError(
                f"no job {job_id!r}: a job id is the hex id add_job returned "
                "(letters, digits, '_', '.', '-')"
            )
        return self._engine.inspect(job_id)

    def _record(self, job_id: str) -> ContainerRecord:
        """Inspect a job of this session."""
        record = self._inspect(job_id)
        if record.labels.get(labels.SESSION) != self._session:
            raise JobNotFoundError(f"no job {job_id!r} in session {self._session!r}")
        return record

    def _array_rows(self, array_id: str) -> list[ContainerSummary]:
        rows = self._engine.list_containers(
            {labels.SESSION: self._session, labels.ARRAY_ID: array_id}
        )
        return sorted(rows, key=lambda row: int(row.labels.get(labels.TASK_ID, "0")))

    def _state_of(self, record: ContainerRecord) -> tuple[JobState, str]:
        marks = self._store.marks(record.id)
        plan = Plan.from_labels(record.labels)
        state, sub_state = container_state(
            record.status,
            record.exit_code,
            record.oom_killed,
            held=held(plan, marks),
            failure=marks.failure,
            engine_message=record.error,
        )
        if state is JobState.QUEUED and marks.last_error:
            sub_state = f"waiting for the engine, start retried (last error: {marks.last_error})"
        elif state is JobState.QUEUED and plan.start_at and plan.start_at > self._clock():
            sub_state = f"waiting for start time {datetime.fromtimestamp(plan.start_at, UTC)}"
        elif (
            state is JobState.QUEUED
            and record.status == "created"
            and record.labels.get(labels.MAX_PARALLEL, "0") != "0"
        ):
            limit = record.labels[labels.MAX_PARALLEL]
            sub_state = f"waiting for a free slot (max_parallel {limit})"
        return state, sub_state

    @staticmethod
    def _template_of(record: ContainerRecord) -> JobTemplate | None:
        """The template a container's label carries; None if it carries none."""
        raw = record.labels.get(labels.TEMPLATE)
        return JobTemplate.from_label(raw) if raw else None

    def _job_info_of(self, record: ContainerRecord) -> JobInfo:
        state, sub_state = self._state_of(record)
        info = job_info_from_record(record, state, sub_state, self._engine_info.host_name)
        failure = self._store.marks(record.id).failure
        return info.model_copy(update={"annotation": failure}) if failure else info

    def _require_own_state_dir(self, record: ContainerRecord, action: str) -> None:
        """Refuse to change whether a job that has not started will start, when its submitter
        used another state directory: holds, releases and terminations before the start are
        marks there, which the trackers that start the job read, and this tracker cannot
        write them (a mark here would be ignored, and the job start anyway)."""
        if not self._store.owns(record.labels):
            raise InvalidStateError(
                f"cannot {action} job {record.id} from this tracker: it was submitted by a "
                "tracker with another state directory, whose trackers start it; use a tracker "
                "with that CONTAINERTRACKER_STATE_DIR"
            )

    @staticmethod
    def _require_state(job_id: str, action: str, state: JobState, needed: JobState) -> None:
        if state is not needed:
            raise InvalidStateError(
                f"cannot {action} job {job_id}: it is {state.name}, and only {needed.name} "
                f"jobs can be {'held' if action == 'hold' else action + 'ed'}"
            )

    def _terminate(self, record: ContainerRecord, state: JobState) -> None:
        if state.terminal:
            raise InvalidStateError(
                f"cannot terminate job {record.id}: it already ended {state.name}"
            )
        previous = self._store.marks(record.id)
        try:
            if state in (JobState.QUEUED, JobState.QUEUED_HELD):
                # Marked before looking: a scheduler starting the job right now reads the mark
                # after its start and stops the job itself, so it never runs on.
                self._store.update(
                    record.id, failure="terminated before it started", terminated=True
                )
                if self._engine.inspect(record.id).status == "created":
                    return
            self._store.update(record.id, failure="terminated", terminated=True)
            self._engine.stop(record.id, self._stop_grace)
        except BaseException:
            self._store.update(record.id, failure=previous.failure, terminated=previous.terminated)
            raise

    @contextlib.contextmanager
    def _submission(
        self, submission_id: str, created: list[str], prepared: list[str]
    ) -> Iterator[Submission]:
        """Record a submission under way for its block, in which the containers it creates
        (ids appended to ``created``, each labelled with the submission) are made, and their
        output files (those it created appended to ``prepared``).

        If the block fails, they are removed again; if some could not be (or the failure may
        have left a container unknown to ``created``), the record is left for a scheduler to
        roll the submission back. If this process dies, its record is unlocked by the kernel,
        and the next tracker of the session rolls it back (see the scheduler).
        """
        submission = self._store.open_submission(self._session, submission_id)
        try:
            yield submission
        except BaseException as exc:
            # Only an engine's refusal is sure to have made no container: anything else (an
            # interrupt, a broken connection) may have left one the engine made anyway.
            known = isinstance(exc, ContainerTrackerError) and not exc.transient
            removed = self._remove_created(created)
            outputs.unprepare(prepared)
            submission.close(complete=removed and known)
            raise
        else:
            submission.close(complete=True)
        finally:
            self._scheduler.end_submission(submission.id)

    def _ensure_image(self, image: str) -> None:
        """Make sure the job's image is present (pulling it if the pull policy says so), before
        anything of a submission is built or created.

        Raises:
            InvalidArgumentError: the image is not present and may not be pulled.
        """
        # Checked before it goes into an engine URL (an image lookup by name): "." or ".."
        # segments would address another endpoint.
        if not _IMAGE_REF.fullmatch(image) or {".", ".."} & set(image.split("/")):
            raise InvalidArgumentError(
                f"JobCategory {image!r} is not an image reference ([registry/]name[:tag][@digest])"
            )
        # An image seen present is not looked up again (one engine call more per submission,
        # as many as the swarm's add_job needs in all): the creation is what counts, and it
        # still fails clearly should the image be gone since (see _create), or on a swarm the
        # node placed on rejects the task (FAILED, "No such image"), as a node without the
        # image always did (the manager's image was never the one that runs). Only images
        # the engine has are remembered, so they are few; an absent one is looked up every
        # time (it may be built or loaded next).
        if self._pull_policy is PullPolicy.ALWAYS:
            self._engine.pull(image)
        elif image in self._images_seen:
            return
        elif not self._engine.has_image(image):
            if self._pull_policy is PullPolicy.NEVER:
                raise self._missing_image(image)
            self._engine.pull(image)
        self._images_seen.add(image)

    def _missing_image(self, image: str) -> InvalidArgumentError:
        return InvalidArgumentError(
            f"image {image!r} (the JobCategory) is not present on the "
            f"{self._engine.name} engine; list_job_categories() lists the local images "
            "(build or load the image, or set CONTAINERTRACKER_PULL_POLICY=missing)"
        )

    def _create(self, spec: ContainerSpec, *, start: bool = False) -> str:
        """Create a container (started, with ``start``), its image checked already by
        :meth:`_ensure_image` or seen present before. An image gone since is pulled and the
        creation tried again if the pull policy is ``missing``.

        Raises:
            InvalidArgumentError: the image is not present (and may not be pulled).
            CreatedNotStartedError: as :meth:`Engine.create`.
        """
        try:
            return self._engine.create(spec, start=start)
        except ImageNotFoundError:  # removed since it was checked
            self._images_seen.discard(spec.image)
            if self._pull_policy is not PullPolicy.MISSING:
                raise self._missing_image(spec.image) from None
        self._engine.pull(spec.image)
        try:
            return self._engine.create(spec, start=start)
        except ImageNotFoundError:
            raise self._missing_image(spec.image) from None

    def _create_started(self, spec: ContainerSpec, plan: Plan, created: list[str]) -> None:
        """Create a job's container already started (its plan says so) and record its claim
        (:meth:`Scheduler.created_started`), within its submission: its id is appended to
        ``created`` as soon as it exists, also when its start failed (then the submission
        removes it, and the start's error is raised).

        Raises:
            InvalidArgumentError: a stage-in source changed, or the engine refused the job.
            ContainerTrackerError: the engine could not start it.
        """
        outputs.verify_stage_in(plan)  # right before the start, as a scheduler's start does
        try:
            created.append(self._create(spec, start=True))
        except CreatedNotStartedError as exc:
            created.append(exc.container_id)
            raise exc.error from exc.error.__cause__
        self._scheduler.created_started(created[-1])

    def _create_all(
        self,
        create_task: Callable[[int], str],
        task_ids: Sequence[int],
        created: list[str],
        *,
        throttled: str | None = None,
    ) -> None:
        """Create a container per task by ``create_task(task_id)`` (which makes its spec just
        before, so specs do not pile up in memory), appending their ids to ``created`` as
        they come.

        The first alone: a template the engine refuses then fails once, not once per task.
        The rest in parallel (engines create faster so); after an error no further creation
        starts, and the first error is raised when the running ones returned. ``throttled``
        (the rest of a throttled array, whose first tasks run): the scheduler hears of every
        batch of new tasks, so that a slot freed before they existed is filled, and is woken
        once at the end.
        """
        if not task_ids:
            return
        created.append(create_task(task_ids[0]))
        with ThreadPoolExecutor(
            max_workers=_CREATE_THREADS, thread_name_prefix="containertracker-create"
        ) as pool:
            futures = [pool.submit(create_task, task_id) for task_id in task_ids[1:]]
            errors: list[ContainerTrackerError] = []
            for done, future in enumerate(futures, start=2):
                if errors:
                    future.cancel()
                try:
                    created.append(future.result())
                except ContainerTrackerError as exc:
                    errors.append(exc)
                except CancelledError:
                    pass
                if throttled is not None and done % _CREATE_THREADS == 0:
                    self._scheduler.tasks_created(throttled)
        if throttled is not None:
            self._scheduler.kick()
        if errors:
            raise errors[0]

    def _remove_created(self, job_ids: list[str]) -> bool:
        """Remove containers of a failed submission (best effort, errors logged); returns
        whether every one was removed."""
        removed = True
        for job_id in job_ids:
            try:
                self._engine.remove(job_id)
                self._store.forget(job_id)
            except ContainerTrackerError as exc:
                removed = False
                self._log.warning("could not remove {} after a failed submission: {}", job_id, exc)
        return removed

    def _finalize(self, record: ContainerRecord) -> None:
        """Write output files and stage-out copies of an ended job, once; return when they
        are written (by this call or another, in any process)."""
        if record.status in ACTIVE_STATUSES:
            return  # not over yet (a stop under way, a restart due): outputs come at its end
        plan = Plan.from_labels(record.labels)
        if not plan.needs_finalizing or self._store.marks(record.id).finalized:
            return
        with self._store.job_lock("finalize", record.id):
            if self._store.marks(record.id).finalized:
                return
            failure = ""
            try:
                outputs.write(self._engine, record.id, plan, self._host_path_roots)
            except (ContainerTrackerError, OSError, tarfile.TarError) as exc:
                failure = f"stage-out failed: {exc}"
                self._log.warning("job {}: {}", record.id, failure)
            changes: dict[str, object] = {"finalized": True}
            if failure and not self._store.marks(record.id).failure:
                changes["failure"] = failure
            self._store.update(record.id, **changes)

    def _finalize_quietly(self, job_id: str) -> None:
        """Finalize an ended job in the background (errors are logged, and retried by the
        next scheduler pass or wait)."""
        try:
            self._finalize(self._engine.inspect(job_id))
        except ContainerTrackerError as exc:
            self._log.debug("finalizing {} failed: {}", job_id, exc)
