"""The PSI/J executor over a real ContainerTracker on the in-memory engine (no engine): the
change feed moves psij states and fires callbacks, attach, cancel of a held job, cancel races,
failed state reads, and executors freeing their threads when dropped."""

from __future__ import annotations

import gc
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from psij import (
    InvalidJobException,
    Job,
    JobAttributes,
    JobSpec,
    JobState,
    JobStatus,
    SubmitException,
)

import containertracker
from containertracker import JobTemplate
from containertracker.core.tracker import ContainerTracker
from containertracker.errors import DrmCommunicationError
from containertracker.models import JobState as TrackerState
from containertracker.psij import ContainerTrackerExecutorConfig, ContainerTrackerJobExecutor
from containertracker.testing import MemoryEngine
from containertracker.tracker import JobChanges

IMAGE = "img:1"
LIMIT = timedelta(seconds=30)  # a bound on hangs, not a speed check


@pytest.fixture
def engine() -> MemoryEngine:
    return MemoryEngine(images=[IMAGE])


class HookedTracker(ContainerTracker):
    """A ContainerTracker whose next ``job_state`` call from an executor's status thread first
    runs ``before_state`` (once): a test acts exactly between two steps of a status update."""

    before_state: Callable[[str], None] | None = None

    def job_state(self, job_id: str) -> tuple[TrackerState, str]:
        hook = self.before_state
        if hook is not None and threading.current_thread().name.endswith("-status"):
            self.before_state = None
            hook(job_id)
        return super().job_state(job_id)


@pytest.fixture
def trackers() -> list[HookedTracker]:
    """The trackers the executors of the test opened, in order."""
    return []


@pytest.fixture
def memory_backend(engine: MemoryEngine, tmp_path: Path, trackers: list[HookedTracker]) -> str:
    name = f"ct-test-memory-{uuid.uuid4().hex[:8]}"

    def open_tracker(session: str, params: object) -> HookedTracker:
        trackers.append(HookedTracker(engine.connect(), session, state_dir=tmp_path))
        return trackers[-1]

    containertracker.register_job_tracker(name, open_tracker)
    return name


@pytest.fixture
def executor(memory_backend: str) -> Iterator[ContainerTrackerJobExecutor]:
    ex = ContainerTrackerJobExecutor(
        url=memory_backend, config=ContainerTrackerExecutorConfig(image=IMAGE)
    )
    yield ex
    ex.close()


def test_engine_events_drive_states_and_callbacks(
    executor: ContainerTrackerJobExecutor, engine: MemoryEngine
) -> None:
    seen: list[JobState] = []
    executor.set_job_status_callback(lambda job, status: seen.append(status.state))
    job = Job(JobSpec("/bin/true"))
    executor.submit(job)
    assert job.native_id is not None
    assert job.wait(target_states=[JobState.ACTIVE], timeout=LIMIT) is not None
    engine.exit(job.native_id, 0)  # only the engine's event can tell the executor
    status = job.wait(timeout=LIMIT)
    assert status is not None and (status.state, status.exit_code) == (JobState.COMPLETED, 0)
    assert seen == [JobState.QUEUED, JobState.ACTIVE, JobState.COMPLETED]


def test_every_job_attached_to_an_id_follows_it(
    executor: ContainerTrackerJobExecutor, engine: MemoryEngine
) -> None:
    job = Job(JobSpec("/bin/false"))
    executor.submit(job)
    assert job.native_id is not None
    attached = Job()
    executor.attach(attached, job.native_id)
    engine.exit(job.native_id, 3)
    for j in (job, attached):
        status: JobStatus | None = j.wait(timeout=LIMIT)
        assert status is not None and (status.state, status.exit_code) == (JobState.FAILED, 3)


def test_a_held_job_is_cancelled(executor: ContainerTrackerJobExecutor) -> None:
    held_id = executor.tracker.add_job(
        JobTemplate(job_category=IMAGE, remote_command="true", submit_as_hold=True)
    )
    job = Job()
    executor.attach(job, held_id)
    assert job.status.state == JobState.QUEUED
    job.cancel()
    status = job.wait(timeout=LIMIT)
    assert status is not None and status.state == JobState.CANCELED


def test_a_refused_template_is_an_invalid_job_and_the_job_stays_new(
    executor: ContainerTrackerJobExecutor,
) -> None:
    job = Job(
        JobSpec(
            "/bin/true",
            attributes=JobAttributes(custom_attributes={"containertracker.image": "missing:1"}),
        )
    )
    with pytest.raises(InvalidJobException):
        executor.submit(job)
    assert job.status.state == JobState.NEW and job.executor is None


def _active_job(executor: ContainerTrackerJobExecutor) -> tuple[Job, str]:
    job = Job(JobSpec("/bin/sleep"))
    executor.submit(job)
    assert job.native_id is not None
    assert job.wait(target_states=[JobState.ACTIVE], timeout=LIMIT) is not None
    return job, job.native_id


def test_a_cancel_during_a_status_update_reads_canceled(
    executor: ContainerTrackerJobExecutor, engine: MemoryEngine, trackers: list[HookedTracker]
) -> None:
    # The cancel lands after the status thread began an update and before it reads the state;
    # the container is then removed by hand, so only the executor's own record of the cancel
    # can tell the end was asked for.
    job, native_id = _active_job(executor)

    def cancel_then_remove(job_id: str) -> None:
        job.cancel()
        engine.connect().remove(job_id)

    trackers[0].before_state = cancel_then_remove
    executor._stale.put(native_id)  # what an engine event does
    status = job.wait(timeout=LIMIT)
    assert status is not None and status.state == JobState.CANCELED


def test_a_job_that_ended_on_its_own_before_a_cancel_keeps_its_end(
    executor: ContainerTrackerJobExecutor, engine: MemoryEngine, trackers: list[HookedTracker]
) -> None:
    # The job fails on its own, then is cancelled (too late: it is over) before the executor
    # has read its end (the read that would have failed, so the one after the cancel decides).
    job, native_id = _active_job(executor)

    def end_then_cancel(job_id: str) -> None:
        engine.exit(job_id, 3)
        job.cancel()
        raise DrmCommunicationError("engine away for a moment")

    trackers[0].before_state = end_then_cancel
    executor._stale.put(native_id)  # what an engine event does
    status = job.wait(timeout=LIMIT)
    assert status is not None and (status.state, status.exit_code) == (JobState.FAILED, 3)


def test_a_failed_state_read_is_retried(
    executor: ContainerTrackerJobExecutor, engine: MemoryEngine, trackers: list[HookedTracker]
) -> None:
    # The only event of the job's end is met by a failed read: no later event comes, so
    # without a retry the job never reads final.
    job, native_id = _active_job(executor)

    def fail(job_id: str) -> None:
        raise DrmCommunicationError("engine away for a moment")

    trackers[0].before_state = fail
    engine.exit(native_id, 0)
    status = job.wait(timeout=LIMIT)
    assert status is not None and status.state == JobState.COMPLETED


def test_a_job_terminated_by_another_tracker_reads_canceled(
    executor: ContainerTrackerJobExecutor, engine: MemoryEngine, tmp_path: Path
) -> None:
    job, native_id = _active_job(executor)
    other = ContainerTracker(engine.connect(), "psij", state_dir=tmp_path)  # another process's view
    try:
        other.job_control(native_id, containertracker.tracker.TERMINATE)
    finally:
        other.close()
    status = job.wait(timeout=LIMIT)
    assert status is not None and status.state == JobState.CANCELED


def test_dropped_executors_free_their_threads(memory_backend: str) -> None:
    before = set(threading.enumerate())
    for _ in range(3):
        ex = ContainerTrackerJobExecutor(
            url=memory_backend, config=ContainerTrackerExecutorConfig(image=IMAGE)
        )
        job = Job(JobSpec("/bin/true"))
        ex.submit(job)
        job.cancel()
        assert job.wait(timeout=LIMIT) is not None
        del ex, job
    gc.collect()
    started = [t for t in threading.enumerate() if t not in before]
    for thread in started:
        thread.join(LIMIT.total_seconds())
    assert [t.name for t in started if t.is_alive()] == []


def test_an_unreachable_engine_at_submit_is_a_transient_submit_error(
    executor: ContainerTrackerJobExecutor, engine: MemoryEngine
) -> None:
    engine.fail_next("create", DrmCommunicationError("engine away for a moment"))
    job = Job(JobSpec("/bin/true"))
    with pytest.raises(SubmitException) as raised:
        executor.submit(job)
    assert raised.value.transient and job.executor is None


def test_a_feed_that_fails_at_open_closes_the_tracker(engine: MemoryEngine, tmp_path: Path) -> None:
    opened: list[ContainerTracker] = []
    closed: list[ContainerTracker] = []

    class BrokenFeed(ContainerTracker):
        def changes(self, since: int | None, timeout: float) -> JobChanges:
            raise DrmCommunicationError("engine away")

        def close(self) -> None:
            closed.append(self)
            super().close()

    def open_tracker(session: str, params: object) -> ContainerTracker:
        opened.append(BrokenFeed(engine.connect(), session, state_dir=tmp_path))
        return opened[-1]

    name = f"ct-test-memory-{uuid.uuid4().hex[:8]}"
    containertracker.register_job_tracker(name, open_tracker)
    with pytest.raises(DrmCommunicationError):
        ContainerTrackerJobExecutor(url=name, config=ContainerTrackerExecutorConfig(image=IMAGE))
    assert closed == opened and len(opened) == 1
