"""Docker-specific: the daemon restarts under running jobs (only Docker runs as a daemon
we can restart here; the Podman service is stateless and covered by its own test)."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest

from containertracker import JobState, JobTemplate

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.only_engines("docker")
def test_daemon_restart_under_running_jobs(tracker, image) -> None:
    """After a dockerd restart, states are true (killed jobs FAILED) and a wait returns."""
    job_id = tracker.add_job(JobTemplate(remote_command="sleep", args=("300",), job_category=image))
    outcome: list[object] = []
    waiter = threading.Thread(target=lambda: outcome.append(tracker.wait(job_id, 120)))
    waiter.start()
    subprocess.run(["pkill", "-TERM", "-x", "dockerd"], check=True)
    subprocess.run([str(ROOT / "scripts" / "start-dockerd")], check=True, timeout=120)
    waiter.join(timeout=90)
    assert not waiter.is_alive(), "wait hung across the daemon restart"
    assert outcome == [JobState.FAILED]
    assert tracker.job_state(job_id)[0] is JobState.FAILED
    assert tracker.job_info(job_id).finish_time is not None
