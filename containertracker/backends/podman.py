"""The Podman engine adapter (podman-py, libpod REST API of a ``podman system service``).

The SDK (podman, a dependency of containertracker) is imported when the adapter is built,
never by ``import containertracker``. The engine is found at
``CONTAINERTRACKER_ENGINE_URL``, else ``CONTAINER_HOST``, else the rootful socket
``/run/podman/podman.sock``, else the rootless ``$XDG_RUNTIME_DIR/podman/podman.sock``.

Differences from Docker absorbed here: libpod names the exit and removal events ``died`` and
``remove``; a paused container reports Running false (we read Status); list rows carry times
as strings; a missing image is a 500 on create; CPU limits go through quota/period
(podman-py drops ``nano_cpus``); giving any rlimit replaces the service's default rlimits, so
the others are filled in; a working directory the image lacks is refused unless libpod is
asked to create it; between a container's exit and the restart its policy makes, libpod
reads ``stopped`` where Docker reads ``restarting`` (see :func:`_restart_due`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import json
import os
import resource
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO

from containertracker.backends._common import (
    container_record,
    container_summary,
    engine_event,
    error_for_status,
    event_time_ns,
    feed_stdin,
    frame_payloads,
    log_params,
    parse_time,
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
    JobNotFoundError,
    UnsupportedAttributeError,
)

__all__ = ["PodmanEngine", "default_podman_url", "map_engine_errors"]

try:
    import podman
    import podman.errors
    import requests.exceptions
    import urllib3.exceptions
except ImportError as exc:  # pragma: no cover - exercised only in a broken installation
    raise ImportError("the podman backend needs podman-py (pip install podman)") from exc

_PODMAN_NPROC = 32768
_INSPECT_ATTEMPTS = 3
"""Tries of an inspect that meets libpod's race with a process that just exited."""
_EVENT_READ_TIMEOUT = 30.0
"""A quiet libpod event stream is re-opened after this many seconds (continuing after the
last event seen): a fallback, should a close() not wake its reader (close() shuts the socket
down, which does). Every re-opening is a new request, and the service reads its event log
from ``since`` on: an idle tracker re-opened it every 2 s before."""


def _translate(exc: BaseException) -> ContainerTrackerError | None:
    """Our error for a podman-py/transport exception, or None if it is not one of theirs."""
    if isinstance(exc, podman.errors.APIError):
        explanation = exc.explanation or str(exc)
        status = exc.status_code or 0
        if not status:  # podman-py wraps transport failures in an APIError without response
            return DrmCommunicationError(f"cannot reach the podman service: {explanation}")
        return error_for_status("podman service", status, explanation)
    if isinstance(exc, podman.errors.NotFoundError):
        return JobNotFoundError(str(exc))
    if isinstance(exc, podman.errors.InvalidArgument):
        return InvalidArgumentError(str(exc))
    if isinstance(exc, podman.errors.StreamParseError):
        return InternalError(f"cannot parse the podman service's answer: {exc}")
    if isinstance(
        exc,
        podman.errors.DockerException
        | http.client.HTTPException
        | requests.exceptions.RequestException
        | ConnectionError,
    ):
        return DrmCommunicationError(f"cannot talk to the podman service: {exc}")
    return None


def map_engine_errors() -> contextlib.AbstractContextManager[None]:
    """Translate podman SDK and transport exceptions into containertracker errors."""
    return translating(_translate)


def default_podman_url() -> str:
    """``CONTAINER_HOST``, else the rootful socket if present, else the rootless one."""
    if os.environ.get("CONTAINER_HOST"):
        return os.environ["CONTAINER_HOST"]
    if os.path.exists("/run/podman/podman.sock"):
        return "unix:///run/podman/podman.sock"
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR", f"/run/user/{os.getuid()}")
    return f"unix://{runtime_dir}/podman/podman.sock"


def _checked(response: Any) -> Any:
    response.raise_for_status()
    return response


_DOCKER_ACTIONS = {"died": "die", "remove": "destroy"}
"""libpod's event actions under their Docker names (what :class:`EngineEvent` carries)."""
_DOCKER_ATTRIBUTES = {"containerExitCode": "exitCode"}
"""libpod's event attributes under their Docker names."""
_DOCKER_STATUSES = {
    "configured": "created",
    "initialized": "created",
    "stopped": "exited",
    "stopping": "running",
}
"""libpod's container statuses under their Docker names (what the records carry)."""


_CLEANUP_WINDOW = 30.0
"""Seconds after a container's exit during which libpod's ``stopped`` may still mean a restart
to come (see :func:`_restart_due`); past them it is an end, so that a cleanup that never comes
(its conmon killed) cannot keep a job from ending."""


def _restart_due(data: Mapping[str, Any], now: float) -> bool:
    """Whether libpod is about to restart the container whose inspect answer is ``data``.

    In libpod a container's exit and its restart are two steps: the process exits (status
    ``stopped``), then the ``podman container cleanup`` that conmon starts applies the
    restart policy, which either starts the container again or cleans it up (status
    ``exited``). Docker reads ``restarting`` in between; taken as ``exited``, the moment in
    between made the tracker write a job's output files, and wake its waits, just before the
    job ran again (seen under load in CI). libpod's rule (``shouldRestart``, podman 4.3):
    ``always`` and ``unless-stopped`` restart, ``on-failure`` restarts after a non-zero exit
    while ``RestartCount`` < ``MaximumRetryCount`` (0: no limit); none restarts a container
    a user stopped. That last fact is not in the answer, so a stopped container with such a
    policy also reads ``restarting`` until its cleanup, a moment later (the tracker's own
    waits for a terminated job wake on the cleanup's event).
    """
    state = data.get("State") or {}
    if state.get("Status") != "stopped":
        return False
    finished = parse_time(state.get("FinishedAt"))
    if finished is None or now - finished.timestamp() > _CLEANUP_WINDOW:
        return False
    policy = (data.get("HostConfig") or {}).get("RestartPolicy") or {}
    match policy.get("Name"):
        case "always" | "unless-stopped":
            return True
        case "on-failure":
            limit = int(policy.get("MaximumRetryCount") or 0)
            restarts = int(data.get("RestartCount") or 0)
            return int(state.get("ExitCode") or 0) != 0 and (limit == 0 or restarts < limit)
        case _:
            return False


def _is_read_timeout(exc: requests.exceptions.ConnectionError) -> bool:
    """Whether ``exc`` is a streamed response's read timing out (an idle event stream).

    requests raises a read timeout in the middle of a streamed body as a plain
    ConnectionError (its ReadTimeout only comes before the headers), so the exception's
    own type cannot tell a quiet stream from a broken connection; the urllib3
    ReadTimeoutError it was raised while handling can, and no message text is read. Seen
    with requests 2.34 and urllib3 2.8 under podman-py 5.8 (podman 4.3.1):
    ``ConnectionError("UDSConnectionPool(host=..., port=80): Read timed out.")`` raised
    while handling ``ReadTimeoutError``.
    """
    return isinstance(exc.__context__, urllib3.exceptions.ReadTimeoutError)


def _is_exited_process_race(status: int, body: str) -> bool:
    """Whether an inspect answer is libpod's race with a container process that just exited.

    libpod (podman before 4.4) reads /proc/PID/cgroup of a running container while
    inspecting it; when the process exits between opening and reading that file, it answers
    ``500 {"cause":"no such process","message":"read /proc/PID/cgroup: no such
    process",...}`` (podman 4.3.1; fixed upstream by containers/podman#16504). A 500 is
    libpod's answer to many failures and the body carries no error code, so only the
    message (ESRCH's text) tells this transient one apart.
    """
    return status == 500 and "no such process" in body


class _PodmanEvents:
    """An :class:`EventStream` over libpod's event stream, re-opened on read timeouts."""

    def __init__(self, url: str, filters: dict[str, list[str]], since: float) -> None:
        self._url = url
        self._filters = json.dumps(filters)
        self._since_ns = int(since * 1e9)
        self._closed = threading.Event()
        self._response: Any = None
        """The stream being read, so close() can cut it."""

    def __iter__(self) -> Iterator[EngineEvent]:
        with (
            map_engine_errors(),
            podman.PodmanClient(base_url=self._url, timeout=_EVENT_READ_TIMEOUT) as client,
        ):
            while not self._closed.is_set():
                seconds, nanos = divmod(self._since_ns, 1_000_000_000)
                response = _checked(
                    client.api.get(
                        "/events",
                        params={
                            "stream": True,
                            "since": f"{seconds}.{nanos:09d}",
                            "filters": self._filters,
                        },
                        stream=True,
                    )
                )
                self._response = response
                if self._closed.is_set():  # close() ran before the response was stored
                    response.close()
                    return
                try:
                    for line in response.iter_lines():
                        if self._closed.is_set():
                            return
                        if not line:
                            continue
                        raw = json.loads(line)
                        time_ns = event_time_ns(raw)
                        if time_ns <= self._since_ns:
                            continue  # already seen before the stream was re-opened
                        self._since_ns = time_ns
                        yield engine_event(
                            raw, actions=_DOCKER_ACTIONS, attributes=_DOCKER_ATTRIBUTES
                        )
                except requests.exceptions.ConnectionError as exc:
                    if not _is_read_timeout(exc):
                        raise
                finally:
                    response.close()

    def close(self) -> None:
        """Stop the stream at once, also when another thread is blocked reading it."""
        self._closed.set()
        response = self._response
        if response is not None:
            _shutdown_socket(response)


def _shutdown_socket(response: Any) -> None:
    """Shut down the socket under a streaming ``requests`` response.

    Why not ``response.close()``: closing a socket does not wake a thread blocked reading
    it, shutting it down does (the read returns end of stream), so the reader ends now
    instead of at its next read timeout.
    """
    sock = getattr(getattr(response.raw, "connection", None), "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


class PodmanEngine:
    """:class:`~containertracker.core.engine.Engine` over a Podman service (libpod API)."""

    name = "podman"

    def __init__(self, base_url: str | None = None, timeout: float = 60.0) -> None:
        """Connect to the service and ping it.

        Raises:
            DrmCommunicationError: the service does not answer.
        """
        self.url = base_url or default_podman_url()
        with map_engine_errors():
            self._client = podman.PodmanClient(base_url=self.url, timeout=timeout)
            self._api = self._client.api
            if not self._client.ping():
                raise DrmCommunicationError(f"the podman service at {self.url} does not answer")

    def create(self, spec: ContainerSpec, *, start: bool = False) -> str:
        """See :meth:`Engine.create` (``start``: a create call, then a start call)."""
        if spec.open_stdin and not self.url.startswith(("unix:", "tcp:", "http:")):
            raise UnsupportedAttributeError(
                f"input_path needs a unix or tcp connection to podman, not {self.url}"
            )
        if spec.gpus is not None:
            raise UnsupportedAttributeError(
                "the gpus extension is not supported on Podman (use CDI devices with podman)"
            )
        body = self._spec_body(spec)
        with map_engine_errors():
            response = self._api.post(
                "/containers/create",
                data=json.dumps(body),
                headers={"content-type": "application/json"},
            )
            # Podman 4 answers 500 for a missing image and for a name conflict: tell them
            # apart by asking, not by parsing the message.
            if response.status_code >= 500 and not self.has_image(spec.image):
                raise ImageNotFoundError(spec.image)
            if response.status_code >= 409 and spec.name and self._exists(spec.name):
                raise InvalidArgumentError(
                    f"cannot create the job container: the name {spec.name!r} is in use "
                    "(choose another job_name)"
                )
            container_id = str(_checked(response).json()["Id"])
        if start:
            start_created(self, container_id)
        return container_id

    def _checked_for(self, container_id: str, response: Any) -> Any:
        """Like ``_checked``, but a 500 about a container that no longer exists (Podman
        answers so while removing one) is a JobNotFoundError."""
        if response.status_code >= 500 and not self._exists(container_id):
            raise JobNotFoundError(f"no container {container_id}")
        return _checked(response)

    def _exists(self, container: str) -> bool:
        response = self._api.get(f"/containers/{container}/exists")
        return bool(response.status_code == 204)

    @staticmethod
    def _spec_body(spec: ContainerSpec) -> dict[str, Any]:
        """A libpod SpecGenerator for ``spec``."""
        body: dict[str, Any] = {
            "image": spec.image,
            "labels": dict(spec.labels),
            "env": dict(spec.environment),
            "terminal": False,
            "privileged": spec.privileged,
            "remove": spec.auto_remove,
            "stdin": spec.open_stdin,
            "init": spec.init,
        }
        optional = {
            "command": list(spec.command) if spec.command is not None else None,
            "entrypoint": list(spec.entrypoint) if spec.entrypoint else None,
            "name": spec.name,
            "work_dir": spec.working_dir,
            "user": spec.user,
            "shm_size": spec.shm_size,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        if spec.working_dir:
            # libpod refuses a working directory the image lacks ("workdir does not exist");
            # Docker creates it, and so do we.
            body["create_working_dir"] = True
        limits: dict[str, Any] = {}
        if spec.nano_cpus:
            limits["cpu"] = {"quota": spec.nano_cpus // 10_000, "period": 100_000}
        if spec.mem_limit:
            limits["memory"] = {"limit": spec.mem_limit}
        if spec.pids_limit:
            limits["pids"] = {"limit": spec.pids_limit}
        if limits:
            body["resource_limits"] = limits
        if spec.ulimits:
            given = {u.name for u in spec.ulimits}
            rlimits = [{"type": u.name, "soft": u.soft, "hard": u.hard} for u in spec.ulimits]
            # Any rlimit replaces the service's defaults: keep nofile/nproc within our limits.
            for name, which in (
                ("nofile", resource.RLIMIT_NOFILE),
                ("nproc", resource.RLIMIT_NPROC),
            ):
                if name not in given:
                    soft, hard = resource.getrlimit(which)
                    if name == "nproc":  # podman lowers its own nproc limit to this
                        soft, hard = min(soft, _PODMAN_NPROC), min(hard, _PODMAN_NPROC)
                    rlimits.append({"type": name, "soft": soft, "hard": hard})
            body["r_limits"] = rlimits
        if spec.binds:
            body["mounts"] = [
                {
                    "destination": b.container_path,
                    "source": b.host_path,
                    "type": "bind",
                    "options": ["rbind", "ro" if b.read_only else "rw"],
                }
                for b in spec.binds
            ]
        if spec.port_bindings:
            body["portmappings"] = [
                {
                    "container_port": int(p.container_port.split("/")[0]),
                    "protocol": p.container_port.split("/")[1],
                    "host_port": int(p.host_port or 0),
                    "host_ip": p.host_ip,
                }
                for p in spec.port_bindings
            ]
        if spec.restart_policy:
            name, _, retries = spec.restart_policy.partition(":")
            body["restart_policy"] = name
            if retries:
                body["restart_tries"] = int(retries)
        for key, mode in (
            ("netns", spec.network_mode),
            ("ipcns", spec.ipc_mode),
            ("utsns", spec.uts_mode),
            ("pidns", spec.pid_mode),
        ):
            if mode:
                body[key] = {"nsmode": mode}
        return body

    def start(self, container_id: str, stdin: BinaryIO | None = None) -> None:
        """See :meth:`Engine.start`."""
        with contextlib.ExitStack() as cleanup, map_engine_errors():
            sock = None
            if stdin is not None:
                cleanup.callback(stdin.close)
                sock = self._attach_stdin(container_id)
                cleanup.callback(sock.close)
            response = self._api.post(f"/containers/{container_id}/start")
            if sock is not None and stdin is not None:
                threading.Thread(target=feed_stdin, args=(sock, stdin), daemon=True).start()
                cleanup.pop_all()  # the feeding thread closes both
            if response.status_code >= 500 and self._exists(container_id):
                # Podman reports a container that cannot start (missing command, bad mount)
                # as a server error; Docker calls it a bad request, and so do we.
                raise InvalidArgumentError(f"cannot start the job: {response.text.strip()}")
            _checked(response)

    def _attach_stdin(self, container_id: str) -> socket.socket:
        """A connection attached to the container's stdin (podman-py has no attach).

        The attach endpoint upgrades the HTTP connection to a raw stream, which an HTTP
        client library cannot hand over, so this one request is written by hand. Connecting
        and the service's answer are bounded by the request timeout, as every other call;
        feeding then blocks for as long as the job takes to read its input.

        Raises:
            DrmCommunicationError: the service cannot be reached, or did not answer within the
                request timeout.
            InternalError: the service refused the attach.
        """
        parsed = urllib.parse.urlparse(self.url)
        timeout = self._api.timeout or 60.0
        try:
            if parsed.scheme == "unix":
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(timeout)
                try:
                    sock.connect(parsed.path)
                except OSError:
                    sock.close()
                    raise
            else:
                address = (parsed.hostname or "localhost", parsed.port or 80)
                sock = socket.create_connection(address, timeout=timeout)
        except OSError as exc:  # refused, no socket, timed out
            raise DrmCommunicationError(f"cannot reach the podman service: {exc}") from exc
        try:
            sock.sendall(
                (
                    f"POST {self._api.path_prefix}containers/{container_id}/attach"
                    "?stdin=true&stdout=false&stderr=false&stream=true HTTP/1.1\r\n"
                    "Host: podman\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
                    "Content-Length: 0\r\n\r\n"
                ).encode()
            )
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                head += chunk
        except OSError as exc:  # timed out (no answer within the request timeout), reset
            sock.close()
            raise DrmCommunicationError(f"podman did not answer the stdin attach: {exc}") from exc
        except BaseException:
            sock.close()
            raise
        status = head.split(b" ", 2)[1] if head.count(b" ") >= 2 else b""
        if status not in (b"101", b"200"):
            sock.close()
            raise InternalError(f"podman refused to attach stdin: {head[:200]!r}")
        sock.settimeout(None)  # the job reads its input at its own pace
        return sock

    def stop(self, container_id: str, grace: float) -> None:
        """See :meth:`Engine.stop`."""
        with map_engine_errors():
            response = self._api.get(f"/containers/{container_id}/json")
            state = self._checked_for(container_id, response).json()["State"]
            if state.get("Paused"):
                # A frozen process cannot handle SIGTERM: kill, and let runc thaw it.
                _checked(
                    self._api.post(f"/containers/{container_id}/kill", params={"signal": "SIGKILL"})
                )
                _checked(
                    self._api.post(
                        f"/containers/{container_id}/wait",
                        params={"condition": ["exited", "stopped"]},
                    )
                )
            else:
                _checked(
                    self._api.post(
                        f"/containers/{container_id}/stop",
                        params={"timeout": max(0, round(grace))},
                        timeout=(self._api.timeout or 60) + grace,
                    )
                )

    def pause(self, container_id: str) -> None:
        """See :meth:`Engine.pause`."""
        with map_engine_errors():
            self._checked_for(container_id, self._api.post(f"/containers/{container_id}/pause"))

    def unpause(self, container_id: str) -> None:
        """See :meth:`Engine.unpause`."""
        with map_engine_errors():
            response = self._api.post(f"/containers/{container_id}/unpause")
            self._checked_for(container_id, response)

    def remove(self, container_id: str) -> None:
        """See :meth:`Engine.remove`."""
        with map_engine_errors():
            _checked(
                self._api.delete(
                    f"/containers/{container_id}", params={"force": True, "v": True, "timeout": 0}
                )
            )

    def inspect(self, container_id: str) -> ContainerRecord:
        """See :meth:`Engine.inspect`."""
        with map_engine_errors():
            for attempt in range(_INSPECT_ATTEMPTS):
                response = self._api.get(f"/containers/{container_id}/json")
                if not _is_exited_process_race(response.status_code, response.text):
                    break
                time.sleep(0.05 * (attempt + 1))  # a read: asking again is safe
            data = self._checked_for(container_id, response).json()
        record = container_record(data, statuses=_DOCKER_STATUSES)
        if _restart_due(data, time.time()):
            return dataclasses.replace(record, status="restarting")
        return record

    def list_containers(self, labels: Mapping[str, str]) -> list[ContainerSummary]:
        """See :meth:`Engine.list_containers`."""
        params: dict[str, Any] = {"all": True}
        if labels:
            params["filters"] = json.dumps({"label": [f"{k}={v}" for k, v in labels.items()]})
        with map_engine_errors():
            rows = _checked(self._api.get("/containers/json", params=params)).json()
        summaries = []
        for row in rows:
            summary = container_summary(row, statuses=_DOCKER_STATUSES)
            if row.get("State") == "stopped":
                # Between an exit and its cleanup (rare, brief): the row has no restart
                # policy, and a restart to come must keep the job's max_parallel slot. The
                # row's word is replaced by a fresh inspect's (which may also find the
                # container running again already).
                summary = dataclasses.replace(summary, status=self._status_now(summary))
            summaries.append(summary)
        return summaries

    def _status_now(self, summary: ContainerSummary) -> str:
        """The container's status as an inspect reads it now (gone: the row's)."""
        try:
            return self.inspect(summary.id).status
        except JobNotFoundError:
            return summary.status

    def logs(
        self, container_id: str, *, stdout: bool, stderr: bool, tail: int | None = None
    ) -> Iterator[bytes]:
        """See :meth:`Engine.logs`."""
        with map_engine_errors():
            response = self._checked_for(
                container_id,
                self._api.get(
                    f"/containers/{container_id}/logs",
                    params=log_params(stdout, stderr, tail),
                    stream=True,
                ),
            )
            try:
                yield from frame_payloads(response.raw, "podman service")
            finally:
                response.close()

    def copy_from(self, container_id: str, path: str) -> Iterator[bytes]:
        """See :meth:`Engine.copy_from`."""
        with map_engine_errors():
            response = self._api.get(
                f"/containers/{container_id}/archive", params={"path": path}, stream=True
            )
            if response.status_code == 404:
                raise InvalidArgumentError(f"{path} does not exist in the container")
            yield from _checked(response).iter_content(chunk_size=65536)

    def events(self, labels: Mapping[str, str], since: float) -> _PodmanEvents:
        """See :meth:`Engine.events`."""
        filters = {"type": ["container"], "label": [f"{k}={v}" for k, v in labels.items()]}
        return _PodmanEvents(self.url, filters, since)

    def images(self) -> list[str]:
        """See :meth:`Engine.images`.

        Local builds are listed as ``localhost/NAME:TAG``; both that and ``NAME:TAG`` work as
        JobCategory, and both are listed.
        """
        with map_engine_errors():
            rows = _checked(self._api.get("/images/json")).json()
        names = []
        for row in rows:
            for tag in row.get("RepoTags") or ():
                if tag == "<none>:<none>":
                    continue
                names.append(tag)
                if tag.startswith("localhost/"):
                    names.append(tag.removeprefix("localhost/"))
        return names

    def has_image(self, image: str) -> bool:
        """See :meth:`Engine.has_image`."""
        with map_engine_errors():
            response = self._api.get(f"/images/{image}/exists")
        return bool(response.status_code == 204)

    def pull(self, image: str) -> None:
        """See :meth:`Engine.pull`."""
        with map_engine_errors():
            response = self._api.post("/images/pull", params={"reference": image})
            if response.status_code >= 400:
                raise InvalidArgumentError(f"cannot pull image {image!r}: {response.text.strip()}")

    def info(self) -> EngineInfo:
        """See :meth:`Engine.info`."""
        with map_engine_errors():
            data = _checked(self._api.get("/info")).json()
        host = data.get("host") or {}
        return EngineInfo(
            host_name=host.get("hostname", ""),
            architecture=host.get("arch", ""),
            cpus=int(host.get("cpus") or 1),
            memory=int(host.get("memTotal") or 0),
            os_type=host.get("os", ""),
            kernel_version=host.get("kernel", ""),
            engine_version=(data.get("version") or {}).get("Version", ""),
        )

    def machines(self) -> list[EngineInfo]:
        """See :meth:`Engine.machines`: the service's host alone."""
        return [self.info()]

    def close(self) -> None:
        """See :meth:`Engine.close`."""
        with contextlib.suppress(Exception):
            self._api.close()
