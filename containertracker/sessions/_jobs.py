"""Job, ArrayJob and MonitoredJob: the objects a JobSession (or MonitoringSession) hands out."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Final

from containertracker.errors import (
    ContainerTrackerError,
    InvalidArgumentError,
    InvalidStateError,
    UnsupportedOperationError,
)
from containertracker.models import JobInfo, JobState, JobTemplate
from containertracker.sessions._waiting import wait_all, wait_all_async, wait_any, wait_any_async
from containertracker.tracker import JobTemplater, Monitorer

if TYPE_CHECKING:
    from containertracker.sessions._delivery import StateCallback
    from containertracker.sessions._dispatch import Dispatcher
    from containertracker.tracker import ControlAction

__all__ = ["STARTED", "TERMINATED", "ArrayJob", "Job", "MonitoredJob"]

TERMINATED: Final = frozenset({JobState.DONE, JobState.FAILED})
STARTED: Final = frozenset(
    {
        JobState.RUNNING,
        JobState.SUSPENDED,
        JobState.REQUEUED,
        JobState.REQUEUED_HELD,
        JobState.DONE,
        JobState.FAILED,
    }
)
"""What ``wait_started`` waits for: running, or having run (as drmaa2os' WaitStarted, a job
that ended without running counts: it can start no more)."""

_CONTROL_THREADS: Final = 8
"""Tasks of an array controlled at once."""


class _SessionObject:
    """What a Job and an ArrayJob share: an id in a session, a template, equality (and hash)
    by class and id."""

    def __init__(
        self, dispatcher: Dispatcher, object_id: str, template: JobTemplate | None
    ) -> None:
        self._dispatcher = dispatcher
        self._id = object_id
        self._template = template

    @property
    def id(self) -> str:
        """The id (the tracker's)."""
        return self._id

    @property
    def session_name(self) -> str:
        """The name of the job session it belongs to."""
        return self._dispatcher.name

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is type(self)
            and isinstance(other, _SessionObject)
            and (other._id == self._id)
        )

    def __hash__(self) -> int:
        return hash(self._id)


class Job(_SessionObject):
    """A job of a :class:`JobSession` (DRMAA2 ``Job``).

    Equal (and hashed) by id. Reads (``get_state``, ``get_info``) ask the tracker now; waits,
    callbacks and futures follow the session's dispatcher, driven by engine events. A Job
    belongs to its session name, not to one JobSession object: it works while any JobSession
    of that name its manager opened is open, and every call raises InvalidStateError once
    they are all closed. Made by a JobSession, never directly.
    """

    def __init__(
        self, dispatcher: Dispatcher, job_id: str, template: JobTemplate | None = None
    ) -> None:
        super().__init__(dispatcher, job_id, template)
        self._final: tuple[JobState, str] | None = None
        """The terminal state (and sub-state) once the job ended: see Dispatcher._apply."""
        self._gone = False
        """Whether the job was deleted."""
        self._future: Future[JobInfo] | None = None
        """What :meth:`future` returns (the dispatcher makes and completes it)."""

    @property
    def template(self) -> JobTemplate:
        """The template the job was submitted with (for an array task, with its ``TASK_ID``;
        read from the tracker once, for a job this session did not run).

        Raises:
            UnsupportedOperationError: the tracker cannot return templates (no JobTemplater).
        """
        if self._template is None:
            tracker = self._dispatcher.tracker
            if not isinstance(tracker, JobTemplater):
                raise UnsupportedOperationError("this backend's tracker keeps no job templates")
            self._template = tracker.job_template(self._id)
        return self._template

    def get_state(self) -> tuple[JobState, str]:
        """The job's state and sub-state now (asked from the tracker).

        Raises:
            JobNotFoundError: the job was deleted.
        """
        self._dispatcher.check_open()
        return self._dispatcher.tracker.job_state(self._id)

    @property
    def state(self) -> JobState:
        """The job's state now (:meth:`get_state` without the sub-state)."""
        return self.get_state()[0]

    def get_info(self) -> JobInfo:
        """Everything known about the job now (the tracker's JobInfo)."""
        self._dispatcher.check_open()
        return self._dispatcher.tracker.job_info(self._id)

    # -- control ------------------------------------------------------------------------------

    def suspend(self) -> None:
        """Suspend the running job (pause its container). Raises InvalidStateError unless
        RUNNING; UnsupportedOperationError on a swarm."""
        self._dispatcher.control(self, "suspend")

    def resume(self) -> None:
        """Resume the suspended job. Raises InvalidStateError unless SUSPENDED."""
        self._dispatcher.control(self, "resume")

    def hold(self) -> None:
        """Hold the queued job: it does not start until released. Raises InvalidStateError
        unless QUEUED."""
        self._dispatcher.control(self, "hold")

    def release(self) -> None:
        """Release the held job. Raises InvalidStateError unless QUEUED_HELD."""
        self._dispatcher.control(self, "release")

    def terminate(self) -> None:
        """Terminate the unfinished job; returns once it reads FAILED. Raises
        InvalidStateError when it ended already."""
        self._dispatcher.control(self, "terminate")

    def reap(self) -> None:
        """Delete the finished job (its container); waits on it then raise JobNotFoundError.

        Raises:
            InvalidStateError: the job is not DONE or FAILED.
        """
        self._dispatcher.reap(self)

    # -- waiting ------------------------------------------------------------------------------

    def wait_started(self, timeout: float | None = None) -> JobState:
        """Block until the job runs or has run (any of :data:`STARTED`; a job that ended
        without running returns FAILED); return that state.

        ``timeout`` in seconds; None waits forever, 0 looks once at the session's view.

        Raises:
            WaitTimeoutError: the timeout passed first (also a builtin TimeoutError).
            JobNotFoundError: the job was deleted.
            InvalidStateError: the session was closed (before or while waiting).
        """
        return wait_any(self._dispatcher, [self], STARTED, timeout)[1]

    def wait_terminated(self, timeout: float | None = None) -> JobState:
        """Block until the job is DONE or FAILED and its output files are complete; return
        that state. ``timeout`` and errors as :meth:`wait_started`."""
        return wait_any(self._dispatcher, [self], TERMINATED, timeout)[1]

    async def wait_started_async(self, timeout: float | None = None) -> JobState:
        """:meth:`wait_started` for asyncio: no thread waits."""
        return (await wait_any_async(self._dispatcher, [self], STARTED, timeout))[1]

    async def wait_terminated_async(self, timeout: float | None = None) -> JobState:
        """:meth:`wait_terminated` for asyncio: no thread waits."""
        return (await wait_any_async(self._dispatcher, [self], TERMINATED, timeout))[1]

    def future(self) -> Future[JobInfo]:
        """A :class:`concurrent.futures.Future` completed with the job's final JobInfo when
        it ends (its outputs complete), so ``as_completed`` works; with JobNotFoundError if
        it is deleted first, InvalidStateError if the session is closed first. The same
        Future on every call (a new one after a cancel)."""
        return self._dispatcher.future(self)

    def on_state_change(self, callback: StateCallback) -> Callable[[], None]:
        """Call ``callback(job, old_state, new_state)`` once per change of this job's state
        from now on (see :meth:`JobSession.on_state_change`); returns a function that
        removes it."""
        return self._dispatcher.add_callback(callback, self)

    # -- output -------------------------------------------------------------------------------

    def stdout(self) -> str:
        """The job's output file (its template's ``output_path``, as the tracker resolved it)
        read on this host; complete once :meth:`wait_terminated` returned. Bytes that are not
        UTF-8 are replaced.

        Raises:
            InvalidArgumentError: the job has no output file.
            OSError: the file cannot be read here (e.g. a remote server's file system).
        """
        return self._read_output("output_path", "no output file (its template set no output_path)")

    def stderr(self) -> str:
        """The job's error file (``error_path``), as :meth:`stdout`.

        Raises:
            InvalidArgumentError: the job has no error file (none set, or ``join_files`` put
                its stderr into the output file).
        """
        return self._read_output(
            "error_path",
            "no error file (its template set no error_path, or join_files put stderr into "
            "the output file: read stdout())",
        )

    def _read_output(self, key: str, missing: str) -> str:
        path = self.get_info().extension.get(key)
        if not path:
            raise InvalidArgumentError(f"job {self._id} has {missing}")
        return Path(path).read_bytes().decode("utf-8", errors="replace")

    def __repr__(self) -> str:
        state, _ = self._dispatcher.state_of(self)
        shown = state.name if state is not None else "?"
        return f"Job({self._id[:12]!r}, session={self.session_name!r}, state={shown})"


class ArrayJob(_SessionObject):
    """An array job of a :class:`JobSession` (DRMAA2 ``ArrayJob``): its tasks as Jobs, in
    task order. Control actions apply to every task, concurrently."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        array_id: str,
        jobs: list[Job],
        template: JobTemplate | None = None,
    ) -> None:
        super().__init__(dispatcher, array_id, template)
        self._jobs = tuple(jobs)

    @property
    def jobs(self) -> list[Job]:
        """The tasks, in task order."""
        return list(self._jobs)

    @property
    def template(self) -> JobTemplate:
        """The template of the array (that of its first task, for an array this session did
        not submit)."""
        if self._template is None:
            self._template = self._jobs[0].template
        return self._template

    def suspend(self) -> list[Job]:
        """Suspend every running task; see :meth:`terminate` for what is returned."""
        return self._control("suspend")

    def resume(self) -> list[Job]:
        """Resume every suspended task."""
        return self._control("resume")

    def hold(self) -> list[Job]:
        """Hold every queued task."""
        return self._control("hold")

    def release(self) -> list[Job]:
        """Release every held task."""
        return self._control("release")

    def terminate(self) -> list[Job]:
        """Terminate every unfinished task, concurrently.

        Each action applies to the tasks in a state it fits; a task it does not fit
        (InvalidStateError: e.g. already ended, for ``terminate``) is skipped.

        Returns:
            The tasks the action was applied to.

        Raises:
            InvalidStateError: it fitted no task.
            ContainerTrackerError: any other error of a task (the first one; the other
                tasks were still acted on).
        """
        return self._control("terminate")

    def _control(self, action: ControlAction) -> list[Job]:
        # A closed session is said so, not hidden as "no task in a state that allows it".
        self._dispatcher.check_open()

        def apply(job: Job) -> Job | None:
            try:
                self._dispatcher.control(job, action)
            except InvalidStateError:
                return None
            return job

        with ThreadPoolExecutor(
            max_workers=max(1, min(_CONTROL_THREADS, len(self._jobs))),
            thread_name_prefix="containertracker-array-control",
        ) as pool:
            futures = [pool.submit(apply, job) for job in self._jobs]
        acted: list[Job] = []
        errors: list[ContainerTrackerError] = []
        for future in futures:
            try:
                job = future.result()
            except ContainerTrackerError as exc:
                errors.append(exc)
            else:
                if job is not None:
                    acted.append(job)
        if errors:
            raise errors[0]
        if not acted:
            raise InvalidStateError(
                f"cannot {action} array job {self._id}: no task is in a state that allows it"
            )
        return acted

    def wait_terminated(self, timeout: float | None = None) -> list[JobState]:
        """Block until every task is DONE or FAILED (outputs complete); return their states,
        in task order. ``timeout`` is for all of them together.

        Raises:
            WaitTimeoutError: the timeout passed first.
        """
        return wait_all(self._dispatcher, self._jobs, TERMINATED, timeout)

    async def wait_terminated_async(self, timeout: float | None = None) -> list[JobState]:
        """:meth:`wait_terminated` for asyncio: no thread waits."""
        return await wait_all_async(self._dispatcher, self._jobs, TERMINATED, timeout)

    def progress(self) -> dict[JobState, int]:
        """How many tasks are in each state, as the session last saw them (no engine call);
        only states with tasks are keys."""
        counts: dict[JobState, int] = {}
        for job in self._jobs:
            state = self._dispatcher.state_of(job)[0] or JobState.UNDETERMINED
            counts[state] = counts.get(state, 0) + 1
        return counts

    def __len__(self) -> int:
        return len(self._jobs)

    def __iter__(self) -> Iterator[Job]:
        return iter(self._jobs)

    def __repr__(self) -> str:
        counts = ", ".join(f"{s.name}={n}" for s, n in sorted(self.progress().items()))
        return (
            f"ArrayJob({self._id!r}, session={self.session_name!r}, "
            f"tasks={len(self._jobs)}, {counts})"
        )


class MonitoredJob:
    """A job seen by a :class:`MonitoringSession`: any container on the engine, read only
    (DRMAA2's monitoring jobs cannot be controlled or waited for)."""

    def __init__(self, monitor: Monitorer, job_id: str) -> None:
        self._monitor = monitor
        self._id = job_id

    @property
    def id(self) -> str:
        """The job (container) id."""
        return self._id

    def get_info(self) -> JobInfo:
        """The job's JobInfo now."""
        return self._monitor.job_info_from_monitor(self._id)

    def get_state(self) -> tuple[JobState, str]:
        """The job's state and sub-state now."""
        info = self.get_info()
        return info.state, info.sub_state

    def __repr__(self) -> str:
        return f"MonitoredJob({self._id[:12]!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MonitoredJob) and other._id == self._id

    def __hash__(self) -> int:
        return hash(self._id)
