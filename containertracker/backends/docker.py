"""The Docker engine adapter (docker SDK, low-level API: one HTTP call per operation).

The SDK (docker, a dependency of containertracker) is imported when the adapter is built,
never by ``import containertracker``.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO

from containertracker.backends._common import (
    container_record,
    container_summary,
    engine_event,
    error_for_status,
    feed_stdin,
    frame_payloads,
    log_params,
    translating,
)
from containertracker.core.engine import (
    ContainerRecord,
    ContainerSpec,
    ContainerSummary,
    EngineEvent,
    EngineInfo,
    ImageNotFoundError,
    start_created,
)
from containertracker.errors import (
    ContainerTrackerError,
    DrmCommunicationError,
    InternalError,
    InvalidArgumentError,
)

__all__ = ["DockerEngine", "map_engine_errors"]

try:
    import docker
    import docker.errors
    import requests.exceptions
except ImportError as exc:  # pragma: no cover - exercised only in a broken installation
    raise ImportError("the docker backend needs the docker SDK (pip install docker)") from exc


def _translate(exc: BaseException) -> ContainerTrackerError | None:
    """Our error for an SDK/transport exception, or None if it is not one of theirs."""
    if isinstance(exc, docker.errors.APIError):
        explanation = exc.explanation or str(exc)
        status = exc.status_code or 0
        return error_for_status("docker engine", status, explanation)
    if isinstance(exc, docker.errors.NullResource | docker.errors.InvalidArgument):
        return InvalidArgumentError(str(exc))
    if isinstance(exc, docker.errors.StreamParseError):
        return InternalError(f"cannot parse the docker engine's answer: {exc}")
    if isinstance(exc, docker.errors.DockerException | requests.exceptions.RequestException):
        return DrmCommunicationError(f"cannot talk to the docker engine: {exc}")
    if isinstance(exc, ConnectionError | socket.timeout):
        return DrmCommunicationError(f"connection to the docker engine failed: {exc}")
    return None


def map_engine_errors() -> contextlib.AbstractContextManager[None]:
    """Translate docker SDK and transport exceptions into containertracker errors."""
    return translating(_translate)


class _DockerEvents:
    """An :class:`EventStream` over docker's cancellable event stream."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[EngineEvent]:
        with map_engine_errors():
            for raw in self._stream:
                yield engine_event(raw)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._stream.close()


class DockerEngine:
    """:class:`~containertracker.core.engine.Engine` over a Docker daemon."""

    name = "docker"

    def __init__(self, base_url: str | None = None, timeout: float = 60.0) -> None:
        """Connect (``base_url`` None: ``DOCKER_HOST`` or the default socket) and ping.

        Raises:
            DrmCommunicationError: the daemon does not answer.
        """
        self._timeout = timeout
        with map_engine_errors():
            kwargs = docker.utils.kwargs_from_env()
            if base_url:
                kwargs["base_url"] = base_url
            self._api = docker.APIClient(version="auto", timeout=int(timeout), **kwargs)
            self._api.ping()
        self.url = str(kwargs.get("base_url") or "unix:///var/run/docker.sock")

    def create(self, spec: ContainerSpec, *, start: bool = False) -> str:
        """See :meth:`Engine.create` (``start``: a create call, then a start call)."""
        with map_engine_errors():
            bindings: dict[str, list[tuple[str, str] | None]] = {}
            for b in spec.port_bindings:
                bindings.setdefault(b.container_port, []).append(
                    (b.host_ip, b.host_port) if (b.host_ip or b.host_port) else None
                )
            host_config = self._api.create_host_config(
                binds=[
                    f"{b.host_path}:{b.container_path}{':ro' if b.read_only else ''}"
                    for b in spec.binds
                ]
                or None,
                nano_cpus=spec.nano_cpus,
                mem_limit=spec.mem_limit,
                pids_limit=spec.pids_limit,
                ulimits=[
                    docker.types.Ulimit(name=u.name, soft=u.soft, hard=u.hard) for u in spec.ulimits
                ]
                or None,
                shm_size=spec.shm_size,
                privileged=spec.privileged,
                network_mode=spec.network_mode,
                ipc_mode=spec.ipc_mode,
                uts_mode=spec.uts_mode,
                pid_mode=spec.pid_mode,
                restart_policy=_restart_policy(spec.restart_policy),
                auto_remove=spec.auto_remove,
                init=spec.init or None,
                port_bindings=bindings or None,
                device_requests=(
                    [
                        docker.types.DeviceRequest(
                            driver="nvidia", count=spec.gpus, capabilities=[["gpu"]]
                        )
                    ]
                    if spec.gpus is not None
                    else None
                ),
            )
            try:
                created = self._api.create_container(
                    spec.image,
                    command=list(spec.command) if spec.command is not None else None,
                    entrypoint=list(spec.entrypoint) if spec.entrypoint else None,
                    environment=[f"{k}={v}" for k, v in spec.environment.items()] or None,
                    labels=dict(spec.labels),
                    name=spec.name,
                    working_dir=spec.working_dir,
                    user=spec.user,
                    ports=[tuple(p.split("/")) for p in spec.exposed_ports] or None,
                    stdin_open=spec.open_stdin,
                    tty=False,
                    host_config=host_config,
                )
            except docker.errors.ImageNotFound as exc:
                raise ImageNotFoundError(spec.image) from exc
            except docker.errors.APIError as exc:
                if exc.status_code == 409:
                    raise InvalidArgumentError(
                        f"cannot create the job container: {exc.explanation} "
                        "(choose another job_name)"
                    ) from exc
                raise
        if start:
            start_created(self, created["Id"])
        return str(created["Id"])

    def start(self, container_id: str, stdin: BinaryIO | None = None) -> None:
        """See :meth:`Engine.start`."""
        with contextlib.ExitStack() as cleanup, map_engine_errors():
            if stdin is None:
                self._api.start(container_id)
                return
            cleanup.callback(stdin.close)
            sock = self._api.attach_socket(container_id, params={"stdin": 1, "stream": 1})
            cleanup.callback(sock.close)
            self._api.start(container_id)
            threading.Thread(target=feed_stdin, args=(sock, stdin), daemon=True).start()
            cleanup.pop_all()  # the feeding thread closes both

    def stop(self, container_id: str, grace: float) -> None:
        """See :meth:`Engine.stop`."""
        with map_engine_errors():
            if self._api.inspect_container(container_id)["State"].get("Paused"):
                # A frozen process cannot handle SIGTERM; SIGKILL works on a paused container.
                self._api.kill(container_id)
                self._api.wait(container_id, timeout=self._timeout)
            else:
                self._api.stop(container_id, timeout=max(0, round(grace)))

    def pause(self, container_id: str) -> None:
        """See :meth:`Engine.pause`."""
        with map_engine_errors():
            self._api.pause(container_id)

    def unpause(self, container_id: str) -> None:
        """See :meth:`Engine.unpause`."""
        with map_engine_errors():
            self._api.unpause(container_id)

    def remove(self, container_id: str) -> None:
        """See :meth:`Engine.remove`."""
        with map_engine_errors():
            self._api.remove_container(container_id, v=True, force=True)

    def inspect(self, container_id: str) -> ContainerRecord:
        """See :meth:`Engine.inspect`."""
        with map_engine_errors():
            return container_record(self._api.inspect_container(container_id))

    def list_containers(self, labels: Mapping[str, str]) -> list[ContainerSummary]:
        """See :meth:`Engine.list_containers`."""
        filters = {"label": [f"{k}={v}" for k, v in labels.items()]} if labels else None
        with map_engine_errors():
            rows = self._api.containers(all=True, filters=filters)
        return [container_summary(row) for row in rows]

    def logs(
        self, container_id: str, *, stdout: bool, stderr: bool, tail: int | None = None
    ) -> Iterator[bytes]:
        """See :meth:`Engine.logs`.

        Read with the session's own GET: docker-py's streaming ``logs`` takes the read
        timeout off the pooled connection and ends silently when the stream breaks.
        """
        url = f"{self._api.base_url}/v{self._api.api_version}/containers/{container_id}/logs"
        with map_engine_errors():
            response = self._api.get(
                url,
                params=log_params(stdout, stderr, tail),
                stream=True,
                timeout=self._timeout,
            )
            try:
                if response.status_code >= 400:
                    explanation = response.text.strip()
                    with contextlib.suppress(ValueError, AttributeError):
                        explanation = response.json()["message"]
                    raise error_for_status("docker engine", response.status_code, explanation)
                yield from frame_payloads(response.raw, "docker engine")
            finally:
                response.close()

    def copy_from(self, container_id: str, path: str) -> Iterator[bytes]:
        """See :meth:`Engine.copy_from`."""
        with map_engine_errors():
            try:
                stream, _ = self._api.get_archive(container_id, path)
            except docker.errors.NotFound as exc:
                raise InvalidArgumentError(f"{path} does not exist in the container") from exc
            yield from stream

    def events(self, labels: Mapping[str, str], since: float) -> _DockerEvents:
        """See :meth:`Engine.events`."""
        filters = {"type": "container", "label": [f"{k}={v}" for k, v in labels.items()]}
        with map_engine_errors():
            # docker-py streams events without a read timeout; close() ends the stream.
            stream = self._api.events(since=int(since), filters=filters, decode=True)
        return _DockerEvents(stream)

    def images(self) -> list[str]:
        """See :meth:`Engine.images`."""
        with map_engine_errors():
            rows = self._api.images()
        return [
            tag for row in rows for tag in (row.get("RepoTags") or ()) if tag != "<none>:<none>"
        ]

    def has_image(self, image: str) -> bool:
        """See :meth:`Engine.has_image`."""
        with map_engine_errors():
            try:
                self._api.inspect_image(image)
            except docker.errors.NotFound:
                return False
        return True

    def pull(self, image: str) -> None:
        """See :meth:`Engine.pull`."""
        with map_engine_errors():
            try:
                repository, _, tag = (
                    image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "latest")
                )
                self._api.pull(repository, tag=tag)
            except docker.errors.APIError as exc:
                raise InvalidArgumentError(
                    f"cannot pull image {image!r}: {exc.explanation}"
                ) from exc

    def info(self) -> EngineInfo:
        """See :meth:`Engine.info`."""
        with map_engine_errors():
            data = self._api.info()
        return EngineInfo(
            host_name=data.get("Name", ""),
            architecture=data.get("Architecture", ""),
            cpus=int(data.get("NCPU") or 1),
            memory=int(data.get("MemTotal") or 0),
            os_type=data.get("OSType", ""),
            kernel_version=data.get("KernelVersion", ""),
            engine_version=data.get("ServerVersion", ""),
        )

    def machines(self) -> list[EngineInfo]:
        """See :meth:`Engine.machines`: the daemon's host alone."""
        return [self.info()]

    def close(self) -> None:
        """See :meth:`Engine.close`."""
        with contextlib.suppress(Exception):
            self._api.close()


def _restart_policy(policy: str | None) -> dict[str, Any] | None:
    if policy is None:
        return None
    name, _, retries = policy.partition(":")
    return {"Name": name, "MaximumRetryCount": int(retries or 0)}
