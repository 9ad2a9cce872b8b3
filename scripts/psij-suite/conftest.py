"""pytest configuration for running psij-python's own tests against containertracker.

Written for containertracker (never copied from psij-python, whose sdist does not ship its
conftest): scripts/test-psij copies this directory next to psij-python's tests.

``--executors NAME[:URL],...`` parametrizes every test that takes ``execparams``. psij's
tests that hard-code ``JobExecutor.get_instance("local")`` (test_callbacks.py,
test_doc_examples.py, test_wait.py) are run against the first executor of ``--executors``:
``get_instance("local", ...)`` is redirected there, so those tests exercise containertracker,
not psij's local executor. Every executor is made for one throw-away tracker session
(``CT_PSIJ_SESSION``, else a random one), whose jobs are all removed when the run ends.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from executor_test_params import ExecutorTestParams
from psij import JobExecutor

from containertracker.psij import ContainerTrackerExecutorConfig, ContainerTrackerJobExecutor

SESSION = os.environ.get("CT_PSIJ_SESSION") or f"ct-test-psij-{uuid.uuid4().hex[:10]}"

_executors: list[JobExecutor] = []
_real_get_instance = JobExecutor.get_instance
_local_target: ExecutorTestParams | None = None


def make_executor(name: str, url: str | None = None) -> JobExecutor:
    """A new executor ``name`` (through psij's own plugin lookup), closed at the end."""
    config = ContainerTrackerExecutorConfig(session=SESSION) if name == "containertracker" else None
    executor = _real_get_instance(name, url=url, config=config)
    _executors.append(executor)
    return executor


def _redirected_get_instance(
    name: str, version_constraint: str | None = None, url: str | None = None, config: Any = None
) -> JobExecutor:
    if name == "local" and _local_target is not None:
        return make_executor(_local_target.executor, _local_target.url)
    return _real_get_instance(name, version_constraint, url, config)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--executors",
        default="containertracker",
        help="comma-separated NAME[:URL] executors to test, e.g. containertracker:podman",
    )


def _params(config: pytest.Config) -> list[ExecutorTestParams]:
    params = []
    for item in str(config.getoption("--executors")).split(","):
        name, _, url = item.strip().partition(":")
        params.append(ExecutorTestParams(executor=name, url=url or None))
    return params


def pytest_configure(config: pytest.Config) -> None:
    global _local_target
    _local_target = _params(config)[0]
    JobExecutor.get_instance = staticmethod(_redirected_get_instance)  # type: ignore[method-assign]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "execparams" in metafunc.fixturenames:
        params = _params(metafunc.config)
        metafunc.parametrize("execparams", params, ids=[str(p) for p in params])


@pytest.fixture(scope="session", autouse=True)
def _remove_the_sessions_jobs() -> Iterator[None]:
    """After the run: close every executor, then terminate and remove the session's jobs."""
    yield
    for executor in _executors:
        if isinstance(executor, ContainerTrackerJobExecutor):
            _cleanup(executor)


def _cleanup(executor: ContainerTrackerJobExecutor) -> None:
    tracker = executor.tracker
    try:
        for job_id in tracker.list_jobs():
            state, _ = tracker.job_state(job_id)
            if not state.terminal:
                tracker.job_control(job_id, "terminate")
            tracker.delete_job(job_id)
    except Exception as e:  # the next executor's tracker tries again; report, do not hide
        print(f"psij suite cleanup: {e}")
    finally:
        executor.close()
