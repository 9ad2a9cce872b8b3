"""The engine restarts under running and queued jobs.

Backend-specific because the engines differ here: dockerd owns its containers (they die
with it, unless its live-restore is on), while the Podman service is a stateless API in front
of conmon-supervised containers (they run on). Either way, jobs still waiting to start stay
QUEUED while the engine is away and run once it is back.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from containertracker import JobState, JobTemplate
from containertracker.core.plan import Plan

ROOT = Path(__file__).resolve().parents[2]


def _stop_engine(engine: str) -> None:
    """Stop the engine's daemon (SIGTERM) and wait until it has exited.

    dockerd stops its containers (SIGTERM, SIGKILL after their grace) before it exits. It is
    found by its pid file, not its name: the lab swarm's node daemons are dockerd processes
    too, and must live on.
    """
    if engine == "docker":
        pids = [int(Path("/var/run/docker.pid").read_text())]
    else:
        found = subprocess.run(
            ["pgrep", "-f", "[p]odman system service"], capture_output=True, text=True
        )
        pids = [int(pid) for pid in found.stdout.split()]
    for pid in pids:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while any(Path(f"/proc/{pid}").exists() for pid in pids):
        assert time.monotonic() < deadline, f"{engine} did not exit within 60 s"
        time.sleep(0.2)


def _start_engines() -> None:
    subprocess.run([str(ROOT / "scripts" / "setup-engines")], check=True, timeout=300)


def _restart_dockerd() -> None:
    _stop_engine("docker")
    _start_engines()


def _restart_podman_service() -> None:
    _stop_engine("podman")
    _start_engines()


@pytest.mark.only_engines("docker")
def test_daemon_restart_under_running_jobs(tracker, image) -> None:
    """After a dockerd restart, states are true (killed jobs FAILED) and a wait returns."""
    job_id = tracker.add_job(JobTemplate(remote_command="sleep", args=("300",), job_category=image))
    outcome: list[object] = []
    waiter = threading.Thread(target=lambda: outcome.append(tracker.wait(job_id, 120)), daemon=True)
    waiter.start()
    _restart_dockerd()
    waiter.join(timeout=90)
    assert not waiter.is_alive(), "wait hung across the daemon restart"
    assert outcome == [JobState.FAILED]
    assert tracker.job_state(job_id)[0] is JobState.FAILED
    assert tracker.job_info(job_id).finish_time is not None


@pytest.mark.only_engines("podman")
def test_service_restart_under_running_jobs(tracker, image) -> None:
    """The Podman service is stateless: jobs run on through its restart and a wait returns."""
    job_id = tracker.add_job(JobTemplate(remote_command="sleep", args=("5",), job_category=image))
    outcome: list[object] = []
    waiter = threading.Thread(target=lambda: outcome.append(tracker.wait(job_id, 120)), daemon=True)
    waiter.start()
    _restart_podman_service()
    waiter.join(timeout=90)
    assert not waiter.is_alive(), "wait hung across the service restart"
    assert outcome == [JobState.DONE]


@pytest.mark.local_only
@pytest.mark.only_engines("docker", "podman")
def test_queued_tasks_run_after_an_engine_restart(tracker, image, backend, session_name) -> None:
    """A throttled array's task whose start falls while the engine is away is not FAILED
    ("could not start: cannot talk to the engine"): it stays QUEUED saying why, its start is
    retried, and the whole array runs once the engine is back. (Task 1 holds the only slot;
    dockerd kills it on the way down, Podman's tasks run on.)"""
    template = JobTemplate(
        remote_command="sh",
        args=("-c", "if [ $TASK_ID = 1 ]; then sleep 300; else sleep 1; fi"),
        job_category=image,
    )
    array_id = tracker.add_array_job(template, 1, 5, 1, max_parallel=1)
    ids = tracker.list_array_jobs(array_id)
    second = ids[1]
    plan = Plan.from_labels(tracker._engine.inspect(second).labels)
    store = tracker._store
    _stop_engine(backend)
    try:
        # A scheduler's claim and start of the waiting task (as when task 1's end frees its
        # slot), while the engine cannot be reached.
        claimed_at = time.time()
        with store.session_lock(session_name):
            store.claim(session_name, [second], claimed_at)
        assert not tracker._scheduler._start_or_record(second, plan, claimed_at)
        marks = store.marks(second)
        assert marks.failure == "" and marks.claimed_at is None
        assert marks.retry_after is not None and marks.last_error
    finally:
        _start_engines()
    state, sub_state = tracker.job_state(second)
    if state is JobState.QUEUED:  # (unless the retry has started it already)
        assert "waiting for the engine" in sub_state
    if not tracker.job_state(ids[0])[0].terminal:
        tracker.job_control(ids[0], "terminate")
    assert [tracker.wait(job_id, 120) for job_id in ids[1:]] == [JobState.DONE] * 4
    annotations = [tracker.job_info(job_id).annotation for job_id in ids]
    assert not [a for a in annotations if a.startswith("could not start")]
