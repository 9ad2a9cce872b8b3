"""Shared fixtures: the engines under test, one fresh session per test, and cleanup.

Engine tests are parametrised over the backends named in ``--engines`` (default: docker)
and, with ``--remote``, over ``remote-<engine>`` too: the same tests through the HTTP client
and a real server on loopback in front of that engine. Tests marked ``local_only`` look inside
the engine adapter and run on the local backends only.
An engine that cannot be reached skips its tests, unless ``CONTAINERTRACKER_REQUIRE_ENGINES``
names it (the README's test command sets it): then the tests fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import containertracker
from containertracker.core.engine import Engine
from containertracker.core.tracker import ContainerTracker
from containertracker.remote import RemoteTracker, ServerThread, TrackerPool
from containertracker.settings import ServerSettings

TEST_IMAGE = "containertracker/busybox:latest"
SESSION_PREFIX = "ct-test-"
REMOTE_PREFIX = "remote-"
_ROOT = Path(__file__).resolve().parent.parent
ENGINE_URLS = {
    "docker": os.environ.get("CT_TEST_DOCKER_URL", "unix:///var/run/docker.sock"),
    "podman": os.environ.get("CT_TEST_PODMAN_URL", "unix:///run/podman/podman.sock"),
    # The manager of the lab swarm scripts/setup-swarm builds (`scripts/setup-swarm env`).
    "swarm": os.environ.get(
        "CT_SWARM_URL", f"unix://{_ROOT}/.containertracker/swarm/ct-node-1.sock"
    ),
}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--engines",
        default=os.environ.get("CT_TEST_ENGINES", "docker"),
        help="comma-separated backends to run the engine tests on (docker,podman,swarm)",
    )
    parser.addoption(
        "--remote",
        action="store_true",
        default=os.environ.get("CT_TEST_REMOTE") == "1",
        help="also run the engine tests through the remote client and server",
    )
    parser.addoption(
        "--remote-engines",
        default=os.environ.get("CT_TEST_REMOTE_ENGINES", "docker,podman"),
        help="the engines the --remote runs put behind the server (the server and client are "
        "the same whatever the engine: the swarm's own behaviour is proven locally)",
    )


def selected_engines(config: pytest.Config) -> list[str]:
    return [e for e in str(config.getoption("--engines")).split(",") if e]


def engine_of(backend: str) -> str:
    """The engine behind a backend: ``remote-podman`` -> ``podman``."""
    return backend.removeprefix(REMOTE_PREFIX)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        engines = selected_engines(metafunc.config)
        only = metafunc.definition.get_closest_marker("only_engines")
        if only is not None:
            engines = [e for e in engines if e in only.args]
        excluded = metafunc.definition.get_closest_marker("not_on_engines")
        if excluded is not None:
            engines = [e for e in engines if e not in excluded.args]
        params = [pytest.param(e, marks=getattr(pytest.mark, e)) for e in engines]
        if metafunc.config.getoption("--remote") and (
            only is None and metafunc.definition.get_closest_marker("local_only") is None
        ):
            behind_server = str(metafunc.config.getoption("--remote-engines")).split(",")
            params += [
                pytest.param(REMOTE_PREFIX + e, marks=[getattr(pytest.mark, e), pytest.mark.remote])
                for e in engines
                if e in behind_server
            ]
        metafunc.parametrize("backend", params)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "only_engines(*names): run only on these local backends")
    config.addinivalue_line(
        "markers",
        "not_on_engines(*names, refused_by=...): not run on these engines (nor through the "
        "remote client in front of them); refused_by names the test that shows their refusal",
    )
    config.addinivalue_line("markers", "local_only: not run through the remote client")


# Tests must not litter the checkout (an engine helper once wrote files into its working
# directory): anything new in the project root at the end fails the run.
_ROOT_ENTRIES = pytest.StashKey[set[str]]()


def _root_entries() -> set[str]:
    return {name for name in os.listdir(_ROOT) if not name.startswith(".")}


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_ROOT_ENTRIES] = _root_entries()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    new = sorted(_root_entries() - session.config.stash[_ROOT_ENTRIES])
    if new:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.ensure_newline()
            reporter.write_line(
                f"ERROR: the tests left new files in {_ROOT}: {', '.join(new)}", red=True
            )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No CONTAINERTRACKER_* setting from the developer's shell leaks into a test."""
    for key in list(os.environ):
        if key.startswith("CONTAINERTRACKER_") and key != "CONTAINERTRACKER_REQUIRE_ENGINES":
            monkeypatch.delenv(key)


_reachable: dict[str, str | None] = {}


def check_engine(backend: str, state_dir: Path) -> None:
    backend = engine_of(backend)
    if backend not in _reachable:
        try:
            with containertracker.new_job_tracker(
                backend, "ct-probe", engine_params(backend, state_dir)
            ):  # type: ignore[attr-defined]
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


def engine_params(backend: str, state_dir: Path) -> dict[str, object]:
    return {
        "engine_url": ENGINE_URLS[engine_of(backend)],
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
            backend, "ct-probe", engine_params(backend, state_dir)
        ) as t:
            assert isinstance(t, ContainerTracker)
            for row in t._engine.list_containers({}):
                if row.labels.get(SESSION, "").startswith(SESSION_PREFIX):
                    t._engine.remove(row.id)
    if _reachable.get("swarm", "unreachable") is None:
        _remove_ended_task_containers(SESSION)


def _remove_ended_task_containers(session_label: str) -> None:
    """Remove the ended containers of ct-test-* jobs from the lab swarm's nodes: the swarm
    leaves a job's container on its node after the service is removed, and the manager
    cannot remove it (a real swarm's nodes would need ``docker container prune``)."""
    import docker

    for node in ("ct-node-1", "ct-node-2", "ct-node-3"):
        url = ENGINE_URLS["swarm"].replace("ct-node-1", node)
        if not Path(url.removeprefix("unix://")).exists():
            continue
        client = docker.APIClient(base_url=url)
        try:
            for row in client.containers(all=True, filters={"label": session_label}):
                ended = row.get("State") in ("exited", "created", "dead")
                if ended and row["Labels"][session_label].startswith(SESSION_PREFIX):
                    client.remove_container(row["Id"], v=True)
        finally:
            client.close()


@pytest.fixture(scope="session")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("state")


@pytest.fixture
def session_name() -> str:
    return f"{SESSION_PREFIX}{uuid.uuid4().hex[:12]}"


_servers: dict[str, tuple[ServerThread, str]] = {}


def remote_url(engine: str, state_dir: Path) -> str:
    """URL of this test run's server in front of ``engine`` (started on first use)."""
    if engine not in _servers:
        # Few sessions open at once: each test has a session of its own, and every open
        # tracker re-checks its session and re-opens Podman's event stream every second or
        # two; 64 idle trackers per server kept the Podman service busy and slowed the suite.
        pool = TrackerPool.for_backend(
            engine, "ct-test-default", engine_params(engine, state_dir), max_sessions=8
        )
        # The contract suite needs everything a local tracker allows: the operator says so.
        settings = ServerSettings(
            port=0,
            allow_privileged=True,
            allow_host_namespaces=True,
            allowed_host_paths=[Path("/")],
            allow_host_ports=True,
            allow_networks=True,
            default_pids_limit=None,
            max_pids_limit=None,
            default_memory=None,
            max_memory=None,
            max_shm_size=None,
            max_restarts=1_000_000,
            monitor_all_containers=True,
        )
        server = ServerThread(pool, settings)
        _servers[engine] = (server, server.__enter__())
    return _servers[engine][1]


def client(url: str, session: str, **params: Any) -> RemoteTracker:
    """A remote tracker of ``session`` talking to the server at ``url``."""
    tracker = containertracker.new_job_tracker("remote", session, {"remote_url": url, **params})
    assert isinstance(tracker, RemoteTracker)
    return tracker


@pytest.fixture(scope="session", autouse=True)
def _stop_servers() -> Iterator[None]:
    yield
    for server, _ in _servers.values():
        server.__exit__(None, None, None)


@pytest.fixture
def open_tracker(backend: str, state_dir: Path, session_name: str) -> Iterator[object]:
    """A factory for trackers of the test's session (or ``session=``); all are closed and all
    their sessions' jobs removed. Remote backends get a client of the run's server."""
    check_engine(backend, state_dir)
    engine = engine_of(backend)
    opened: list[containertracker.JobTracker] = []
    sessions = {session_name}

    def factory(session: str = session_name) -> containertracker.JobTracker:
        sessions.add(session)
        if backend.startswith(REMOTE_PREFIX):
            url = remote_url(engine, state_dir)
            tracker = containertracker.new_job_tracker("remote", session, {"remote_url": url})
        else:
            tracker = containertracker.new_job_tracker(
                backend, session, engine_params(backend, state_dir)
            )
        opened.append(tracker)
        return tracker

    yield factory
    for tracker in opened:
        tracker.close()  # type: ignore[attr-defined]
    for session in sessions:
        with containertracker.new_job_tracker(
            engine, session, engine_params(engine, state_dir)
        ) as t:
            assert isinstance(t, ContainerTracker)
            for job_id in t.list_jobs():
                t._engine.remove(job_id)


@pytest.fixture
def engine(backend: str, state_dir: Path) -> Iterator[Engine]:
    """The engine adapter behind the backend under test, to look past the tracker."""
    local = engine_of(backend)
    check_engine(local, state_dir)
    with containertracker.new_job_tracker(local, "ct-probe", engine_params(local, state_dir)) as t:
        assert isinstance(t, ContainerTracker)
        yield t._engine


@pytest.fixture
def tracker(open_tracker):  # type: ignore[no-untyped-def]
    """One tracker of a fresh session on the backend under test."""
    return open_tracker()


@pytest.fixture
def image(backend: str) -> str:
    return TEST_IMAGE
