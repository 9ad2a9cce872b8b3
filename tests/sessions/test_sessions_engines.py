"""The session layer over every backend (real engines, and through the remote client and
server): the layer sees only the JobTracker protocol, so the same tests hold everywhere.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import as_completed
from pathlib import Path
from typing import Any

import pytest

import containertracker
from containertracker import (
    InvalidArgumentError,
    InvalidStateError,
    JobInfo,
    JobState,
    JobTemplate,
    WaitTimeoutError,
)
from containertracker.core.tracker import ContainerTracker
from containertracker.sessions import Job, SessionManager
from tests.conftest import (
    REMOTE_PREFIX,
    SESSION_PREFIX,
    TEST_IMAGE,
    check_engine,
    engine_of,
    engine_params,
    remote_url,
)

UNSET, QUEUED, RUNNING = JobState.UNSET, JobState.QUEUED, JobState.RUNNING
SUSPENDED, DONE, FAILED = JobState.SUSPENDED, JobState.DONE, JobState.FAILED
WAIT = 60.0
_ROOT = Path(__file__).resolve().parent.parent.parent


def jt(*command: str, **fields: Any) -> JobTemplate:
    return JobTemplate(
        remote_command=command[0], args=command[1:], job_category=TEST_IMAGE, **fields
    )


@pytest.fixture
def params(backend: str, state_dir: Path, tmp_path: Path) -> dict[str, Any]:
    """Settings of a SessionManager for the backend under test. Session names are kept in a
    state directory of the test's own (the trackers of local backends use it too)."""
    check_engine(backend, state_dir)
    names = tmp_path / "state"
    if backend.startswith(REMOTE_PREFIX):
        url = remote_url(engine_of(backend), state_dir)
        return {"remote_url": url, "state_dir": names, "resync_interval": 1}
    return engine_params(backend, names)


@pytest.fixture
def manager(backend: str, params: dict[str, Any], state_dir: Path) -> Iterator[SessionManager]:
    """A SessionManager of the backend; at the end every job of every session it knows is
    removed."""
    with SessionManager(_name(backend), params) as manager:
        yield manager
        names = manager.get_job_session_names()
    engine = engine_of(backend)
    for name in names:
        with containertracker.new_job_tracker(
            engine, name, engine_params(engine, state_dir)
        ) as tracker:
            assert isinstance(tracker, ContainerTracker)
            for job_id in tracker.list_jobs():
                tracker._engine.remove(job_id)


def _name(backend: str) -> str:
    return "remote" if backend.startswith(REMOTE_PREFIX) else backend


def session_name(label: str) -> str:
    """A name the suite's cleanup recognises (``ct-test-``), unique to the test."""
    return f"{SESSION_PREFIX}{label}-{uuid.uuid4().hex[:8]}"


def test_run_job_wait_and_read_its_output(manager: SessionManager, tmp_path: Path) -> None:
    """run_job, wait_terminated, then stdout()/stderr() read the job's files; the Job is
    readable, equal by id and its state reported once it ended."""
    with manager.create_job_session(session_name("run")) as session:
        ok = session.run_job(jt("sh", "-c", "echo hello", output_path=str(tmp_path / "ok.out")))
        bad = session.run_job(
            jt("sh", "-c", "echo oops >&2; exit 3", error_path=str(tmp_path / "bad.err"))
        )
        assert ok.wait_terminated(WAIT) is DONE
        assert bad.wait_terminated(WAIT) is FAILED
        assert ok.stdout() == "hello\n" and bad.stderr() == "oops\n"
        with pytest.raises(InvalidArgumentError):
            ok.stderr()
        assert bad.get_info().exit_status == 3
        assert ok.get_state() == (DONE, "") and ok.session_name == session.name
        assert "DONE" in repr(ok) and ok == session.get_jobs(JobInfo(id=ok.id))[0]


def test_bulk_jobs_run_at_most_max_parallel_and_wait_any(manager: SessionManager) -> None:
    """run_bulk_jobs with max_parallel 2: two tasks start, the other two wait for a slot;
    wait_any_started/terminated follow the tasks; the array's controls act on every task."""
    with manager.create_job_session(session_name("bulk")) as session:
        array = session.run_bulk_jobs(jt("sleep", "600"), 1, 4, max_parallel=2)
        assert len(array) == 4 and session.get_job_array(array.id) == array
        first = session.wait_any_started(array.jobs, WAIT)
        second = session.wait_any_started([j for j in array.jobs if j != first], WAIT)
        waiting = [j for j in array.jobs if j not in (first, second)]
        assert [job.state for job in waiting] == [QUEUED, QUEUED]
        with pytest.raises(WaitTimeoutError):
            session.wait_any_started(waiting, 0)
        first.terminate()
        assert session.wait_any_terminated(array.jobs, WAIT) == first
        third = session.wait_any_started(waiting, WAIT)
        (last,) = (j for j in waiting if j != third)
        assert last.state is QUEUED
        assert set(array.terminate()) == {second, third, last}
        assert array.wait_terminated(WAIT) == [FAILED] * 4
        assert array.progress() == {FAILED: 4}


def test_wait_any_over_held_and_finished_jobs(manager: SessionManager) -> None:
    """wait_any_terminated returns the job that ended, not a held one; a held job starts
    once released, and wait_any_started sees it."""
    with manager.create_job_session(session_name("any")) as session:
        held = session.run_job(jt("sleep", "600", submit_as_hold=True))
        quick = session.run_job(jt("true"))
        assert session.wait_any_terminated([held, quick], WAIT) == quick
        with pytest.raises(WaitTimeoutError):
            session.wait_any_started([held], 0)
        held.release()
        assert session.wait_any_started([held], WAIT) == held
        held.terminate()
        assert held.wait_terminated(WAIT) is FAILED


@pytest.mark.not_on_engines(
    "swarm", refused_by="tests/swarm/test_swarm.py::test_suspend_is_refused"
)
def test_callbacks_fire_once_per_transition(manager: SessionManager) -> None:
    """suspend, resume and terminate: each transition reaches the session's and the job's
    callbacks exactly once, from the engine's events and the session's own reads alike."""
    session = manager.create_job_session(session_name("callbacks"))
    assert session.event_driven  # every backend here has a change feed (a Go server has none)
    seen: list[tuple[JobState, JobState]] = []
    mine: list[tuple[JobState, JobState]] = []
    session.on_state_change(lambda job, old, new: seen.append((old, new)))
    job = session.run_job(jt("sleep", "600"))
    job.on_state_change(lambda job, old, new: mine.append((old, new)))
    job.suspend()
    assert job.state is SUSPENDED
    job.resume()
    job.terminate()
    assert job.wait_terminated(WAIT) is FAILED
    session.close()  # its dispatcher has delivered everything once this returns
    assert seen == [(UNSET, RUNNING), (RUNNING, SUSPENDED), (SUSPENDED, RUNNING), (RUNNING, FAILED)]
    assert mine == seen[1:]


def test_a_session_is_reopened_by_another_process(
    manager: SessionManager, backend: str, params: dict[str, Any]
) -> None:
    """A session created here is opened by name in a new process, which finds its job,
    terminates it and waits for its end; this process then sees it FAILED."""
    name = session_name("reopen")
    with manager.create_job_session(name) as session:
        job = session.run_job(jt("sleep", "600"))
        job.wait_started(WAIT)
    script = """
import json, sys
from containertracker.sessions import SessionManager
backend, params, name = json.loads(sys.argv[1])
with SessionManager(backend, params) as manager:
    assert name in manager.get_job_session_names()
    session = manager.open_job_session(name)
    (job,) = session.get_jobs()
    job.terminate()
    print(job.id, job.wait_terminated(60).name)
"""
    argument = json.dumps([_name(backend), {k: str(v) for k, v in params.items()}, name])
    done = subprocess.run(
        [sys.executable, "-c", script, argument],
        capture_output=True,
        text=True,
        cwd=_ROOT,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [job.id, "FAILED"]
    with manager.open_job_session(name) as session:
        assert session.get_jobs(JobInfo(state=FAILED)) == [job]


def test_get_jobs_filters(manager: SessionManager) -> None:
    """get_jobs: every job of the session, or those matching the filter's set fields."""
    with manager.create_job_session(session_name("filters")) as session:
        done, failed = session.run_job(jt("true")), session.run_job(jt("sh", "-c", "exit 4"))
        for job in (done, failed):
            job.wait_terminated(WAIT)
        assert set(session.get_jobs()) == {done, failed}
        assert session.get_jobs(JobInfo(state=DONE)) == [done]
        assert session.get_jobs(JobInfo(exit_status=4)) == [failed]
        assert session.get_jobs(JobInfo(state=RUNNING)) == []


def test_asyncio_gather_and_futures_over_an_array(manager: SessionManager) -> None:
    """asyncio.gather over an array's wait_terminated_async, and job.future() with
    as_completed, both complete with the tasks' ends."""
    with manager.create_job_session(session_name("async")) as session:
        array = session.run_bulk_jobs(jt("sh", "-c", "exit $((TASK_ID % 2))"), 1, 4)

        async def gather() -> list[JobState]:
            return list(await asyncio.gather(*(j.wait_terminated_async(WAIT) for j in array)))

        futures = {job.future(): job for job in array.jobs}
        assert asyncio.run(gather()) == [FAILED, DONE, FAILED, DONE]
        exits = {futures[f].id: f.result().exit_status for f in as_completed(futures, WAIT)}
        assert exits == {job.id: (n + 1) % 2 for n, job in enumerate(array.jobs)}


def test_destroy_job_session(manager: SessionManager) -> None:
    """destroy_job_session refuses running jobs; forced, it terminates and reaps them and
    forgets the session."""
    name = session_name("destroy")
    session = manager.create_job_session(name)
    job: Job = session.run_job(jt("sleep", "600"))
    with pytest.raises(InvalidStateError):
        manager.destroy_job_session(name)
    assert job.state in (QUEUED, RUNNING)
    manager.destroy_job_session(name, force=True)
    assert session.closed and name not in manager.get_job_session_names()
    with pytest.raises(InvalidArgumentError):
        manager.open_job_session(name)
