"""The PSI/J executor over a real ContainerTracker on the in-memory engine (no engine): the
change feed moves psij states and fires callbacks, attach, cancel of a held job."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from psij import InvalidJobException, Job, JobAttributes, JobSpec, JobState, JobStatus

import containertracker
from containertracker import JobTemplate
from containertracker.core.tracker import ContainerTracker
from containertracker.psij import ContainerTrackerExecutorConfig, ContainerTrackerJobExecutor
from containertracker.testing import MemoryEngine

IMAGE = "img:1"
LIMIT = timedelta(seconds=30)  # a bound on hangs, not a speed check


@pytest.fixture
def engine() -> MemoryEngine:
    return MemoryEngine(images=[IMAGE])


@pytest.fixture
def executor(engine: MemoryEngine, tmp_path: Path) -> Iterator[ContainerTrackerJobExecutor]:
    backend = f"ct-test-memory-{uuid.uuid4().hex[:8]}"
    containertracker.register_job_tracker(
        backend, lambda session, params: ContainerTracker(engine, session, state_dir=tmp_path)
    )
    ex = ContainerTrackerJobExecutor(
        url=backend, config=ContainerTrackerExecutorConfig(image=IMAGE)
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
