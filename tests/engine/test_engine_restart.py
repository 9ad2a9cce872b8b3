"""The engine restarts under running jobs.

Backend-specific because the engines differ here: dockerd owns its containers (they die
with it), while the Podman service is a stateless API in front of conmon-supervised
containers (they run on).
"""

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
    waiter = threading.Thread(target=lambda: outcome.append(tracker.wait(job_id, 120)), daemon=True)
    waiter.start()
    subprocess.run(["pkill", "-TERM", "-x", "dockerd"], check=True)
    # dockerd stops its containers (SIGTERM, SIGKILL after their grace) before it exits.
    subprocess.run(
        ["sh", "-c", "while pgrep -x dockerd >/dev/null; do sleep 0.2; done"], timeout=60
    )
    subprocess.run([str(ROOT / "scripts" / "setup-engines")], check=True, timeout=300)
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
    subprocess.run(["pkill", "-TERM", "-f", "[p]odman system service"], check=True)
    subprocess.run(
        ["sh", "-c", "while pgrep -f '[p]odman system service' >/dev/null; do sleep 0.2; done"],
        timeout=60,
    )
    subprocess.run([str(ROOT / "scripts" / "setup-engines")], check=True, timeout=300)
    waiter.join(timeout=90)
    assert not waiter.is_alive(), "wait hung across the service restart"
    assert outcome == [JobState.DONE]
