"""What every engine backend shares: building a tracker from settings, parsing engine times."""

from __future__ import annotations

import contextlib
import re
import socket
import struct
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, BinaryIO

from pydantic import ValidationError

from containertracker.core.engine import Engine
from containertracker.core.hostfs import CHUNK_SIZE
from containertracker.core.tracker import ContainerTracker
from containertracker.errors import (
    ContainerTrackerError,
    DeniedByDrmsError,
    InternalError,
    InvalidArgumentError,
    InvalidStateError,
    JobNotFoundError,
)
from containertracker.settings import Settings

__all__ = [
    "error_for_status",
    "feed_stdin",
    "frame_payloads",
    "parse_time",
    "tracker_from_params",
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


def tracker_from_params(
    make_engine: Callable[[Settings], Engine], session: str, params: Mapping[str, Any] | None
) -> ContainerTracker:
    """A ContainerTracker from ``CONTAINERTRACKER_*`` settings overridden by ``params``.

    Raises:
        InvalidArgumentError: a param is unknown or has a wrong value.
        DrmCommunicationError: the engine cannot be reached.
    """
    try:
        settings = Settings(**dict(params or {}))
    except ValidationError as exc:
        raise InvalidArgumentError(f"invalid tracker params: {exc}") from None
    engine = make_engine(settings)
    return ContainerTracker(
        engine,
        session,
        state_dir=settings.state_dir,
        stop_grace=settings.stop_grace,
        pull_policy=settings.pull_policy,
        resync_interval=settings.resync_interval,
        host_path_roots=settings.host_path_roots,
        monitor_all_containers=settings.monitor_all_containers,
    )


"""Largest piece of a job's output read at a time."""


def _read_exactly(raw: Any, size: int) -> bytes:
    data = b""
    while len(data) < size:
        more = raw.read(size - len(data))
        if not more:
            break
        data += more
    return data


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
