"""The helpers psij-python's executor tests import (``from _test_tools import ...``).

Written for containertracker: scripts/test-psij copies this file next to psij-python's tests
(the sdist does not ship psij's own). Executors are built by ``conftest.make_executor``, so
every job goes to the run's throw-away tracker session, removed at the end.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import conftest
from executor_test_params import ExecutorTestParams
from psij import Job, JobExecutor, JobState, JobStatus

_TIMEOUT = timedelta(minutes=2)


def _get_executor_instance(ep: ExecutorTestParams, job: Job | None = None) -> JobExecutor:
    """A new executor for ``ep``; ``job``'s spec gets ``ep``'s launcher."""
    if job is not None and job.spec is not None:
        job.spec.launcher = ep.launcher
    return conftest.make_executor(ep.executor, ep.url)


def _get_timeout(ep: ExecutorTestParams) -> timedelta:
    """How long a test waits for a job before it fails (not a speed check: a bound on hangs)."""
    return _TIMEOUT


def _make_test_dir() -> None:
    """~/.psij/test, where the tests make their temporary directories."""
    (Path.home() / ".psij" / "test").mkdir(parents=True, exist_ok=True)


def assert_completed(job: Job, status: JobStatus | None, attached: bool = False) -> None:
    """``status`` is COMPLETED; otherwise fail with the status and the job's outputs."""
    assert status is not None, f"{job} did not end in time"
    if status.state == JobState.COMPLETED:
        return
    details = [f"{job} ended {status.state} (exit code {status.exit_code}): {status.message}"]
    if not attached and job.spec is not None:
        for path in (job.spec.stdout_path, job.spec.stderr_path):
            if path is not None and Path(path).is_file():
                details.append(f"{path}:\n{Path(path).read_text(errors='replace')}")
    raise AssertionError("\n".join(details))
