"""Backend pieces that need no engine: finding the Podman socket, translating SDK errors."""

from __future__ import annotations

import inspect

import docker.errors
import podman.errors
import pytest
import requests

from containertracker import errors
from containertracker.backends import docker as docker_backend
from containertracker.backends import podman as podman_backend


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
