"""The PSI/J executor on real engines: discovery, callbacks from the change feed, cancel in
every state, attach from another executor, pre/post-launch, the wall-clock limit.

psij-python's own executor tests run in scripts/test-psij; these cover what they do not.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import psij
import pytest
from psij import Job, JobAttributes, JobSpec, JobState, JobStatus

import containertracker
from containertracker import JobTemplate
from containertracker.psij import (
    DEFAULT_IMAGE,
    ContainerTrackerExecutorConfig,
    ContainerTrackerJobExecutor,
)
from tests.conftest import check_engine, engine_params

pytestmark = pytest.mark.only_engines("docker", "podman")

LIMIT = timedelta(seconds=120)  # a bound on hangs, not a speed check

Factory = Callable[[], ContainerTrackerJobExecutor]


@pytest.fixture
def executors(backend: str, state_dir: Path, session_name: str) -> Iterator[Factory]:
    """New executors of the test's session, found through psij's plugin lookup; all closed,
    the session's jobs removed."""
    check_engine(backend, state_dir)
    made: list[ContainerTrackerJobExecutor] = []

    def factory() -> ContainerTrackerJobExecutor:
        config = ContainerTrackerExecutorConfig(
            session=session_name, params=engine_params(backend, state_dir)
        )
        executor = psij.JobExecutor.get_instance("containertracker", url=backend, config=config)
        assert isinstance(executor, ContainerTrackerJobExecutor)
        made.append(executor)
        return executor

    yield factory
    for executor in made:
        executor.close()
    with containertracker.new_job_tracker(
        backend, session_name, engine_params(backend, state_dir)
    ) as tracker:
        for job_id in tracker.list_jobs():
            if not tracker.job_state(job_id)[0].terminal:
                tracker.job_control(job_id, "terminate")
            tracker.delete_job(job_id)


def test_a_job_runs_and_callbacks_follow_its_states(executors: Factory, tmp_path: Path) -> None:
    ex = executors()
    seen: list[JobState] = []
    done = threading.Event()

    def callback(job: Job, status: JobStatus) -> None:
        seen.append(status.state)
        if status.final:
            done.set()

    ex.set_job_status_callback(callback)
    out = tmp_path / "out"
    job = Job(
        JobSpec(
            "/bin/bash",
            ["-c", 'echo "$GREETING $(pwd)"'],
            environment={"GREETING": "hi"},
            directory=tmp_path,
            stdout_path=out,
        )
    )
    ex.submit(job)
    assert job.native_id is not None and job.native_id in ex.list()
    status = job.wait(timeout=LIMIT)
    assert status is not None and status.state == JobState.COMPLETED and status.exit_code == 0
    assert done.wait(LIMIT.total_seconds())
    assert seen == [JobState.QUEUED, JobState.ACTIVE, JobState.COMPLETED]
    assert out.read_text() == f"hi {tmp_path}\n"


def test_a_failing_job_reports_its_exit_code(executors: Factory) -> None:
    job = Job(JobSpec("/bin/bash", ["-c", "exit 7"]))
    executors().submit(job)
    status = job.wait(timeout=LIMIT)
    assert status is not None and (status.state, status.exit_code) == (JobState.FAILED, 7)


def test_cancel_works_in_every_state(
    executors: Factory, backend: str, state_dir: Path, session_name: str
) -> None:
    ex = executors()
    tracker = ex.tracker
    # held (QUEUED for psij): submitted held through the tracker, attached, cancelled
    held_id = tracker.add_job(
        JobTemplate(job_category=DEFAULT_IMAGE, remote_command="true", submit_as_hold=True)
    )
    held = Job()
    ex.attach(held, held_id)
    assert held.status.state == JobState.QUEUED
    held.cancel()
    # running
    running = Job(JobSpec("/bin/sleep", ["60"]))
    ex.submit(running)
    running.wait(target_states=[JobState.ACTIVE], timeout=LIMIT)
    running.cancel()
    # suspended (still ACTIVE for psij)
    suspended = Job(JobSpec("/bin/sleep", ["60"]))
    ex.submit(suspended)
    suspended.wait(target_states=[JobState.ACTIVE], timeout=LIMIT)
    assert suspended.native_id is not None
    tracker.job_control(suspended.native_id, "suspend")
    suspended.cancel()
    for job in (held, running, suspended):
        status = job.wait(timeout=LIMIT)
        assert status is not None and status.state == JobState.CANCELED, job
    # final: cancel changes nothing
    finished = Job(JobSpec("/bin/true"))
    ex.submit(finished)
    assert finished.wait(timeout=LIMIT) is not None
    finished.cancel()
    assert finished.status.state == JobState.COMPLETED


def test_another_executor_attaches_to_a_finished_job(executors: Factory) -> None:
    job = Job(JobSpec("/bin/bash", ["-c", "exit 3"]))
    executors().submit(job)
    assert job.wait(timeout=LIMIT) is not None
    assert job.native_id is not None
    again = Job()
    executors().attach(again, job.native_id[:12])  # an id prefix, as docker ps shows it
    status = again.wait(timeout=LIMIT)
    assert status is not None and (status.state, status.exit_code) == (JobState.FAILED, 3)
    assert again.native_id == job.native_id


def test_pre_and_post_launch_are_sourced_around_the_job(executors: Factory, tmp_path: Path) -> None:
    pre, post, out = tmp_path / "pre.sh", tmp_path / "post.sh", tmp_path / "out"
    pre.write_text("export FROM_PRE=pre\n")
    post.write_text("echo post\n")
    job = Job(
        JobSpec(
            "/bin/bash",
            ["-c", 'echo "job $FROM_PRE"; exit 4'],
            stdout_path=out,
            pre_launch=pre,
            post_launch=post,
        )
    )
    executors().submit(job)
    status = job.wait(timeout=LIMIT)
    assert status is not None and (status.state, status.exit_code) == (JobState.FAILED, 4)
    assert out.read_text() == "job pre\npost\n"


def test_duration_is_the_wall_clock_limit(executors: Factory) -> None:
    job = Job(
        JobSpec("/bin/sleep", ["60"], attributes=JobAttributes(duration=timedelta(seconds=1)))
    )
    executors().submit(job)
    status = job.wait(timeout=LIMIT)
    assert status is not None and status.state == JobState.FAILED
    assert status.message is not None and "wall" in status.message.lower()
