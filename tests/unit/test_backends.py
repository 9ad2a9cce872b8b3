"""Backend pieces that need no engine: finding the Podman socket, translating SDK errors,
reading the engines' JSON, recognising engine quirks, wiring trackers from params."""

from __future__ import annotations

import contextlib
import inspect
import socket
import socketserver
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import docker.errors
import podman.errors
import pytest
import requests

import containertracker
from containertracker import errors
from containertracker.backends import _common
from containertracker.backends import docker as docker_backend
from containertracker.backends import podman as podman_backend
from containertracker.core.engine import ContainerSummary


def test_container_host_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    """CONTAINER_HOST names the Podman service when set."""
    monkeypatch.setenv("CONTAINER_HOST", "tcp://example:8080")
    assert podman_backend.default_podman_url() == "tcp://example:8080"


def test_rootful_then_rootless_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without CONTAINER_HOST the rootful socket is tried first, then the rootless one."""
    monkeypatch.delenv("CONTAINER_HOST", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    monkeypatch.setattr(podman_backend.os.path, "exists", lambda p: p == "/run/podman/podman.sock")
    assert podman_backend.default_podman_url() == "unix:///run/podman/podman.sock"
    monkeypatch.setattr(podman_backend.os.path, "exists", lambda p: False)
    assert podman_backend.default_podman_url() == "unix:///run/user/1000/podman/podman.sock"


def _response(status: int) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    return response


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, errors.InvalidArgumentError),
        (401, errors.DeniedByDrmsError),
        (404, errors.JobNotFoundError),
        (409, errors.InvalidStateError),
        (500, errors.InternalError),
    ],
)
def test_podman_status_mapping(status: int, expected: type[Exception]) -> None:
    """Podman API errors map by HTTP status, never by message text."""
    exc = podman.errors.APIError("boom", response=_response(status), explanation="boom")
    assert type(podman_backend._translate(exc)) is expected


def test_podman_transport_failure_is_communication_error() -> None:
    """podman-py wraps a dead socket in an APIError without a response: DrmCommunication."""
    exc = podman.errors.APIError("GET operation failed", explanation="GET operation failed")
    assert isinstance(podman_backend._translate(exc), errors.DrmCommunicationError)
    assert isinstance(
        podman_backend._translate(requests.ConnectionError("refused")),
        errors.DrmCommunicationError,
    )


def _instances(module: object) -> list[BaseException]:
    import warnings

    made: list[BaseException] = []
    warnings.simplefilter("ignore", PendingDeprecationWarning)  # podman-py's legacy classes
    for _name, cls in inspect.getmembers(module, inspect.isclass):
        if not issubclass(cls, Exception):
            continue
        for args in (("message",), ("message", ["log"]), ("message", None), ("a", "b", "c"), ()):
            try:
                made.append(cls(*args))
                break
            except TypeError:
                continue
    return made


@pytest.mark.parametrize("exc", _instances(podman.errors), ids=lambda e: type(e).__name__)
def test_every_podman_error_is_mapped(exc: BaseException) -> None:
    """Every exception class podman-py exports is translated to one of ours."""
    assert isinstance(podman_backend._translate(exc), errors.ContainerTrackerError)


@pytest.mark.parametrize("exc", _instances(docker.errors), ids=lambda e: type(e).__name__)
def test_every_docker_error_is_mapped(exc: BaseException) -> None:
    """Every exception class docker-py exports is translated to one of ours."""
    assert isinstance(docker_backend._translate(exc), errors.ContainerTrackerError)


def test_map_engine_errors_chains_the_cause() -> None:
    """The SDK exception stays reachable as __cause__."""
    original = podman.errors.NotFound("gone", response=_response(404))
    with pytest.raises(errors.JobNotFoundError) as raised, podman_backend.map_engine_errors():
        raise original
    assert raised.value.__cause__ is original


# Inspect answers modelled on ones recorded from Docker 20.10.24 and Podman 4.3.1 for
# containers of the test image, trimmed to the fields the adapters read.
_DOCKER_INSPECT = {
    "Id": "7c4f",
    "Created": "2026-12-01T17:24:57.068291304Z",
    "Name": "/flamboyant_hoover",
    "State": {
        "Status": "exited",
        "ExitCode": 3,
        "OOMKilled": False,
        "Error": "",
        "StartedAt": "2026-12-01T17:24:57.345518061Z",
        "FinishedAt": "2026-12-01T17:24:57.380941170Z",
    },
    "HostConfig": {"NanoCpus": 500000000},
    "Config": {
        "Image": "containertracker/busybox",
        "Labels": {"ct-capture": "1"},
        "Cmd": ["sh", "-c", "exit 3"],
        "WorkingDir": "",
        "User": "",
    },
}
_PODMAN_INSPECT = {
    "Id": "b23e",
    "Created": "2026-12-01T17:24:56.183047613Z",
    "Name": "musing_tharp",
    "ImageName": "localhost/containertracker/busybox:latest",
    "State": {
        "Status": "stopped",
        "ExitCode": 0,
        "OOMKilled": False,
        "Error": "",
        "StartedAt": "2026-12-01T17:24:56.346019374Z",
        "FinishedAt": "0001-01-01T00:00:00Z",
    },
    "HostConfig": {"NanoCpus": 0},
    "Config": {
        "Image": "localhost/containertracker/busybox:latest",
        "Labels": {"ct-capture": "1"},
        "Cmd": ["true"],
        "WorkingDir": "/",
        "User": "",
    },
}


def test_docker_inspect_record() -> None:
    """Docker's inspect maps field by field; its "/name" loses the slash."""
    record = _common.container_record(_DOCKER_INSPECT)
    assert (record.id, record.name, record.image) == (
        "7c4f",
        "flamboyant_hoover",
        "containertracker/busybox",
    )
    assert (record.status, record.exit_code, record.command) == (
        "exited",
        3,
        ("sh", "-c", "exit 3"),
    )
    assert record.started_at == datetime(2026, 12, 1, 17, 24, 57, 345518, tzinfo=UTC)
    assert record.nano_cpus == 500000000 and record.labels == {"ct-capture": "1"}


def test_podman_inspect_record() -> None:
    """Podman's inspect maps the same way, its statuses renamed to Docker's and Go's zero
    time read as no time."""
    record = _common.container_record(_PODMAN_INSPECT, statuses=podman_backend._DOCKER_STATUSES)
    assert (record.name, record.image) == (
        "musing_tharp",
        "localhost/containertracker/busybox:latest",
    )
    assert (record.status, record.finished_at, record.working_dir) == ("exited", None, "/")


def test_list_rows_of_both_engines() -> None:
    """A list row's creation time is epoch seconds on Docker and RFC 3339 text on Podman."""
    docker_row = {"Id": "7c4f", "State": "exited", "Labels": None, "Created": 1796145897}
    podman_row = {"Id": "b23e", "State": "configured", "Created": "2026-12-01T17:24:56.5Z"}
    assert _common.container_summary(docker_row) == ContainerSummary(
        "7c4f", "exited", {}, 1796145897.0
    )
    summary = _common.container_summary(podman_row, statuses=podman_backend._DOCKER_STATUSES)
    assert (summary.status, summary.created) == ("created", 1796145896.5)


def test_events_of_both_engines() -> None:
    """Events read the same on both engines; libpod's action names become Docker's and
    Docker's action details are dropped."""
    podman_died = {
        "status": "died",
        "id": "b23e",
        "Type": "container",
        "Action": "died",
        "Actor": {"ID": "b23e", "Attributes": {"ct-capture": "1", "containerExitCode": "0"}},
        "time": 1796146019,
        "timeNano": 1796146019869538412,
    }
    event = _common.engine_event(podman_died, actions=podman_backend._DOCKER_ACTIONS)
    assert (event.container_id, event.action) == ("b23e", "die")
    assert event.attributes == {"ct-capture": "1", "containerExitCode": "0"}
    assert _common.event_time_ns(podman_died) == 1796146019869538412
    docker_exec = {"status": "exec_start: sh -c true", "id": "7c4f", "time": 1796145897}
    event = _common.engine_event(docker_exec)
    assert (event.container_id, event.action, event.time) == ("7c4f", "exec_start", 1796145897.0)


def test_libpod_exited_process_race_is_recognised() -> None:
    """The 500 libpod 4.3 answers when a process exits during inspect (body recorded from
    the running service) is the transient race; other 500s and successes are not."""
    race = (
        '{"cause":"no such process","message":"read /proc/4915/cgroup: no such process",'
        '"response":500}'
    )
    other = (
        '{"cause":"image not known","message":"localhost/no-such-image:latest: image not '
        'known","response":500}'
    )
    assert podman_backend._is_exited_process_race(500, race)
    assert not podman_backend._is_exited_process_race(500, other)
    assert not podman_backend._is_exited_process_race(200, "{}")


@contextlib.contextmanager
def _stalling_stream_server() -> Iterator[str]:
    """A loopback HTTP server that starts a chunked answer and then sends nothing, as an
    idle event stream does."""
    listener = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()

    def serve() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            connection.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            done.wait(10)

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/events"
    finally:
        done.set()
        server.join(10)
        listener.close()


def _read_error(url: str) -> requests.exceptions.ConnectionError:
    with (
        pytest.raises(requests.exceptions.ConnectionError) as raised,
        requests.get(url, stream=True, timeout=0.2) as response,
    ):
        for _line in response.iter_lines():
            pass
    return raised.value


def test_idle_stream_read_timeout_is_recognised() -> None:
    """A stream that goes quiet raises what requests raises there (a ConnectionError with
    the "Read timed out." text podman-py's streams show), and that is a read timeout."""
    with _stalling_stream_server() as url:
        exc = _read_error(url)
    assert str(exc).endswith("Read timed out.")
    assert podman_backend._is_read_timeout(exc)


def test_refused_connection_is_not_a_read_timeout() -> None:
    """A connection that fails is not taken for an idle stream."""
    with socket.create_server(("127.0.0.1", 0)) as unused:
        url = f"http://127.0.0.1:{unused.getsockname()[1]}/events"
    assert not podman_backend._is_read_timeout(_read_error(url))


@pytest.mark.parametrize("name", ["docker", "podman", "remote"])
def test_bad_params_are_refused_before_connecting(name: str) -> None:
    """Every built-in backend checks its params the same way, before it reaches out."""
    with pytest.raises(errors.InvalidArgumentError, match="invalid tracker params"):
        containertracker.new_job_tracker(name, "s", {"no_such_setting": 1})
    with pytest.raises(errors.InvalidArgumentError, match="stop_grace"):
        containertracker.new_job_tracker(name, "s", {"stop_grace": -1})


def _libpod_inspect(status: str, exit_code: int, policy: str, retries: int, restarts: int) -> dict:
    """The fields of a libpod 4.3.1 inspect answer that say whether a restart is due (as
    recorded from the podman service here, between a job's exit and its cleanup)."""
    return {
        "Id": "c" * 64,
        "State": {
            "Status": status,
            "ExitCode": exit_code,
            "FinishedAt": "2026-12-01T20:40:56.173020363Z",
        },
        "RestartCount": restarts,
        "HostConfig": {"RestartPolicy": {"Name": policy, "MaximumRetryCount": retries}},
    }


_FINISHED = datetime(2026, 12, 1, 20, 40, 56, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("status", "exit_code", "policy", "retries", "restarts", "due"),
    [
        ("stopped", 3, "on-failure", 2, 0, True),  # between the first run and the second
        ("stopped", 3, "on-failure", 2, 2, False),  # its last run ended
        ("stopped", 3, "on-failure", 0, 9, True),  # no limit
        ("stopped", 0, "on-failure", 2, 0, False),  # a success is not restarted
        ("stopped", 0, "always", 0, 0, True),
        ("stopped", 1, "unless-stopped", 0, 0, True),
        ("stopped", 3, "", 0, 0, False),  # no policy
        ("stopped", 3, "no", 0, 0, False),
        ("exited", 3, "on-failure", 2, 0, False),  # cleaned up: libpod decided not to restart
        ("running", 0, "on-failure", 2, 1, False),
    ],
)
def test_podman_reads_a_restart_due_as_restarting(
    status: str, exit_code: int, policy: str, retries: int, restarts: int, due: bool
) -> None:
    data = _libpod_inspect(status, exit_code, policy, retries, restarts)
    assert podman_backend._restart_due(data, _FINISHED + 1) is due


def test_podman_stopped_long_ago_is_ended_whatever_its_policy() -> None:
    """A cleanup that never came (conmon killed) does not keep a job from ending."""
    data = _libpod_inspect("stopped", 3, "on-failure", 0, 0)
    assert (
        podman_backend._restart_due(data, _FINISHED + podman_backend._CLEANUP_WINDOW + 1) is False
    )


class _SilentOnAttach(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """A service on a unix socket that answers the ping and never answers an attach (a
    podman service hung on it)."""

    daemon_threads = True

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            request = self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b""):
                pass
            if b"/attach" in request:
                self.server.hung.wait(30)  # type: ignore[attr-defined]
                return
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK")

    def __init__(self, path: str) -> None:
        super().__init__(path, self.Handler)
        self.hung = threading.Event()


def test_podman_stdin_attach_is_bounded_by_the_request_timeout(tmp_path: Path) -> None:
    """A service that never answers the stdin attach: start fails with a communication error
    after the request timeout, instead of blocking the start (and its claim) forever."""
    path = str(tmp_path / "podman.sock")
    with _SilentOnAttach(path) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            engine = podman_backend.PodmanEngine(f"unix://{path}", timeout=0.5)
            with pytest.raises(errors.DrmCommunicationError, match="attach"):
                engine._attach_stdin("c" * 64)
        finally:
            server.hung.set()
            server.shutdown()


def test_podman_stdin_attach_to_a_vanished_service_is_a_communication_error(
    tmp_path: Path,
) -> None:
    path = tmp_path / "podman.sock"
    with _SilentOnAttach(str(path)) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        engine = podman_backend.PodmanEngine(f"unix://{path}", timeout=0.5)
        server.shutdown()
    path.unlink()
    with pytest.raises(errors.DrmCommunicationError, match="cannot reach"):
        engine._attach_stdin("c" * 64)
