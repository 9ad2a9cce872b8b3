"""What the engine adapters share: error translation, the Docker-shaped JSON both engines
answer with (inspect, list rows, events), engine times and the log stream's framing."""

from __future__ import annotations

import contextlib
import re
import socket
import struct
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, BinaryIO

from containertracker.core.engine import (
    ContainerRecord,
    ContainerSummary,
    EngineEvent,
    check_log_tail,
)
from containertracker.core.hostfs import CHUNK_SIZE
from containertracker.errors import (
    ContainerTrackerError,
    DeniedByDrmsError,
    InternalError,
    InvalidArgumentError,
    InvalidStateError,
    JobNotFoundError,
)

__all__ = [
    "container_record",
    "container_summary",
    "engine_event",
    "error_for_status",
    "event_time_ns",
    "feed_stdin",
    "frame_payloads",
    "log_params",
    "parse_time",
    "translating",
]

_STATUS_ERRORS: dict[int, type[ContainerTrackerError]] = {
    400: InvalidArgumentError,
    401: DeniedByDrmsError,
    403: DeniedByDrmsError,
    404: JobNotFoundError,
    409: InvalidStateError,
}


def error_for_status(engine: str, status: int, explanation: str) -> ContainerTrackerError:
    """Our error for an engine API answer with HTTP ``status`` (never by message text)."""
    if status >= 500:
        return InternalError(f"{engine} error ({status}): {explanation}")
    return _STATUS_ERRORS.get(status, InternalError)(explanation)


@contextlib.contextmanager
def translating(
    translate: Callable[[BaseException], ContainerTrackerError | None],
) -> Iterator[None]:
    """Re-raise SDK exceptions as ``translate`` maps them (the cause chained); ours and
    exceptions ``translate`` does not know pass unchanged."""
    try:
        yield
    except ContainerTrackerError:
        raise
    except Exception as exc:
        ours = translate(exc)
        if ours is None:
            raise
        raise ours from exc


_FRACTION = re.compile(r"\.(\d+)")


def parse_time(value: str | None) -> datetime | None:
    """An engine timestamp (RFC 3339, up to nanoseconds); Go's zero time and "" are None."""
    if not value or value.startswith("0001-01-01"):
        return None
    text = _FRACTION.sub(lambda m: "." + m.group(1)[:6].ljust(6, "0"), value.replace("Z", "+00:00"))
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


_AS_IS: Mapping[str, str] = MappingProxyType({})
"""No names to translate: the engine speaks Docker's vocabulary."""


def container_record(
    data: Mapping[str, Any], *, statuses: Mapping[str, str] = _AS_IS
) -> ContainerRecord:
    """The record of a container from the engine's inspect JSON (Docker's shape; libpod's
    ``/containers/{id}/json`` has the same fields), its status renamed by ``statuses``
    where the engine's differ from Docker's.

    Raises:
        KeyError: ``data`` has no ``Id`` (not an inspect answer).
    """
    state = data.get("State") or {}
    config = data.get("Config") or {}
    host = data.get("HostConfig") or {}
    status = state.get("Status", "")
    return ContainerRecord(
        id=data["Id"],
        name=str(data.get("Name", "")).lstrip("/"),  # Docker writes "/name"
        # libpod's own ImageName: the image as named at creation; Docker has only Config.Image.
        image=data.get("ImageName") or config.get("Image", ""),
        labels=config.get("Labels") or {},
        status=statuses.get(status, status),
        exit_code=int(state.get("ExitCode") or 0),
        oom_killed=bool(state.get("OOMKilled")),
        error=state.get("Error") or "",
        created=parse_time(data.get("Created")),
        started_at=parse_time(state.get("StartedAt")),
        finished_at=parse_time(state.get("FinishedAt")),
        command=tuple(config.get("Cmd") or ()),
        working_dir=config.get("WorkingDir") or "",
        user=config.get("User") or "",
        nano_cpus=int(host.get("NanoCpus") or 0),
    )


def container_summary(
    row: Mapping[str, Any], *, statuses: Mapping[str, str] = _AS_IS
) -> ContainerSummary:
    """The summary of a row of the engine's container list JSON, its status renamed by
    ``statuses``; ``Created`` is epoch seconds (Docker) or an RFC 3339 time (libpod).

    Raises:
        KeyError: ``row`` has no ``Id``.
    """
    created = row.get("Created")
    when = parse_time(created) if isinstance(created, str) else None
    status = row.get("State", "")
    return ContainerSummary(
        row["Id"],
        statuses.get(status, status),
        row.get("Labels") or {},
        when.timestamp() if when else float(created or 0),
    )


def event_time_ns(raw: Mapping[str, Any]) -> int:
    """When an engine event happened, in nanoseconds since the epoch."""
    return int(raw.get("timeNano") or int(raw.get("time", 0)) * 1_000_000_000)


def engine_event(
    raw: Mapping[str, Any],
    *,
    actions: Mapping[str, str] = _AS_IS,
    attributes: Mapping[str, str] = _AS_IS,
) -> EngineEvent:
    """An event of the engine's event stream JSON (Docker's shape, which libpod's
    ``/events`` shares), its action and attribute keys renamed by ``actions`` and
    ``attributes`` where the engine's names differ from Docker's."""
    actor = raw.get("Actor") or {}
    # Docker appends details to some actions ("exec_start: sh -c ..."); the name is before ":".
    action = str(raw.get("Action") or raw.get("status") or "").split(":")[0]
    return EngineEvent(
        actor.get("ID") or raw.get("id", ""),
        actions.get(action, action),
        event_time_ns(raw) / 1e9,
        {attributes.get(k, k): v for k, v in (actor.get("Attributes") or {}).items()},
    )


def _read_exactly(raw: Any, size: int) -> bytes:
    data = b""
    while len(data) < size:
        more = raw.read(size - len(data))
        if not more:
            break
        data += more
    return data


def log_params(stdout: bool, stderr: bool, tail: int | None) -> dict[str, int]:
    """The query of a logs request (Docker's, Podman's, a swarm task's: the same names):
    the streams, and the last ``tail`` lines only (None: all).

    Raises:
        InvalidArgumentError: ``tail`` is below 1 (see :func:`check_log_tail`).
    """
    check_log_tail(tail)
    streams = {"stdout": int(stdout), "stderr": int(stderr)}
    return streams if tail is None else {**streams, "tail": tail}


def frame_payloads(raw: Any, engine: str) -> Iterator[bytes]:
    """The payloads of an engine's multiplexed log stream (8-byte frame headers: stream,
    size) read from the file-like ``raw``, in pieces of at most 64 KiB: a job's output never
    sits in memory whole (the SDKs hold a whole body, or a whole frame, which a line without
    newlines can make as large as the log). A stream cut short is an InternalError, never a
    silently truncated output file."""
    while header := _read_exactly(raw, 8):
        if len(header) < 8:
            raise InternalError(f"the {engine}'s log stream ended inside a frame header")
        (remaining,) = struct.unpack_from(">xxxxL", header)
        while remaining:
            data = raw.read(min(remaining, CHUNK_SIZE))
            if not data:
                raise InternalError(f"the {engine}'s log stream ended inside a frame")
            remaining -= len(data)
            yield data


def feed_stdin(sock: Any, data: BinaryIO) -> None:
    """Copy a job's stdin from the open file ``data`` to an attached connection in pieces of
    ``CHUNK_SIZE`` (memory stays flat whatever its size), then close the connection, so the
    job sees EOF, and the file."""
    raw = getattr(sock, "_sock", sock)  # docker-py wraps the socket
    try:
        while chunk := data.read(CHUNK_SIZE):
            raw.sendall(chunk)
        raw.shutdown(socket.SHUT_WR)
    except OSError:
        pass  # the job exited without reading everything
    finally:
        with contextlib.suppress(OSError):
            sock.close()
        data.close()
