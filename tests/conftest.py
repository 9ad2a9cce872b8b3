"""Shared fixtures: the engines under test, one fresh session per test, and cleanup.

Engine tests are parametrised over the backends named in ``--engines`` (default: docker).
An engine that cannot be reached skips its tests, unless ``CONTAINERTRACKER_REQUIRE_ENGINES``
names it (the README's test command sets it): then the tests fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import containertracker
from containertracker.core.tracker import ContainerTracker

TEST_IMAGE = "containertracker/busybox:latest"
SESSION_PREFIX = "ct-test-"
ENGINE_URLS = {
    "docker": os.environ.get("CT_TEST_DOCKER_URL", "unix:///var/run/docker.sock"),
    "podman": os.environ.get("CT_TEST_PODMAN_URL", "unix:///run/podman/podman.sock"),
}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--engines",
        default=os.environ.get("CT_TEST_ENGINES", "docker"),
        help="comma-separated backends to run the engine tests on (docker,podman)",
    )


def _engines(config: pytest.Config) -> list[str]:
    return [e for e in str(config.getoption("--engines")).split(",") if e]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        engines = _engines(metafunc.config)
        only = metafunc.definition.get_closest_marker("only_engines")
        if only is not None:
            engines = [e for e in engines if e in only.args]
        metafunc.parametrize(
            "backend", [pytest.param(e, marks=getattr(pytest.mark, e)) for e in engines]
        )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "only_engines(*names): run only on these backends")


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No CONTAINERTRACKER_* setting from the developer's shell leaks into a test."""
    for key in list(os.environ):
        if key.startswith("CONTAINERTRACKER_") and key != "CONTAINERTRACKER_REQUIRE_ENGINES":
            monkeypatch.delenv(key)


_reachable: dict[str, str | None] = {}


def _check_engine(backend: str, state_dir: Path) -> None:
    if backend not in _reachable:
        try:
            with containertracker.new_job_tracker(backend, "ct-probe", _params(backend, state_dir)):  # type: ignore[attr-defined]
                pass
            _reachable[backend] = None
        except containertracker.ContainerTrackerError as exc:
            _reachable[backend] = str(exc)
    problem = _reachable[backend]
    if problem is not None:
        required = os.environ.get("CONTAINERTRACKER_REQUIRE_ENGINES", "").split(",")
        if backend in required:
            pytest.fail(f"{backend} engine required but unreachable: {problem}")
        pytest.skip(f"{backend} engine unreachable: {problem}")


def _params(backend: str, state_dir: Path) -> dict[str, object]:
    return {
        "engine_url": ENGINE_URLS[backend],
        "state_dir": state_dir,
        "stop_grace": 1,
        "resync_interval": 1,
    }


@pytest.fixture(scope="session", autouse=True)
def _remove_test_containers(state_dir: Path) -> Iterator[None]:
    """At the end, remove every ct-test-* container a failed teardown may have left."""
    yield
    from containertracker.core.labels import SESSION

    for backend, problem in _reachable.items():
        if problem is not None:
            continue
        with containertracker.new_job_tracker(
            backend, "ct-probe", _params(backend, state_dir)
        ) as t:
            assert isinstance(t, ContainerTracker)
            for row in t._engine.list_containers({}):
                if row.labels.get(SESSION, "").startswith(SESSION_PREFIX):
                    t._engine.remove(row.id)


@pytest.fixture(scope="session")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("state")


@pytest.fixture
def session_name() -> str:
    return f"{SESSION_PREFIX}{uuid.uuid4().hex[:12]}"


@pytest.fixture
def open_tracker(backend: str, state_dir: Path, session_name: str) -> Iterator[object]:
    """A factory for trackers of the test's session; all are closed and all jobs removed."""
    _check_engine(backend, state_dir)
    opened: list[ContainerTracker] = []

    def factory(**overrides: object) -> ContainerTracker:
        params = {**_params(backend, state_dir), **overrides}
        tracker = containertracker.new_job_tracker(backend, session_name, params)
        assert isinstance(tracker, ContainerTracker)
        opened.append(tracker)
        return tracker

    yield factory
    cleaner = factory()
    for job_id in cleaner.list_jobs():
        cleaner._engine.remove(job_id)
    for tracker in opened:
        tracker.close()


@pytest.fixture
def tracker(open_tracker):  # type: ignore[no-untyped-def]
    """One tracker of a fresh session on the backend under test."""
    return open_tracker()


@pytest.fixture
def image(backend: str) -> str:
    return TEST_IMAGE
