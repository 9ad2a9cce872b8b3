"""What the remote server and client agree on besides the JSON shapes of ``models``.

The drmaa2os v1 API carries errors as text inside HTTP 200 bodies. We keep that (so the Go
client and server interoperate) and add one response header naming the exception class, so a
Python client raises exactly the class the server's tracker raised. Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
from typing import Final

from containertracker import errors
from containertracker.errors import ContainerTrackerError, InternalError
from containertracker.models import JobState

__all__ = [
    "CURSOR_LIMIT",
    "ERROR_CLASS_HEADER",
    "SESSION_HEADER",
    "STATUS_OF_ERROR",
    "WILDCARD_HOSTS",
    "cursor_from_wire",
    "error_class_name",
    "error_from_wire",
    "is_loopback",
    "parse_states",
]

ERROR_CLASS_HEADER: Final = "X-ContainerTracker-Error"
"""Names the exception class (e.g. ``JobNotFoundError``) whenever a response carries an error."""

SESSION_HEADER: Final = "X-ContainerTracker-Session"
"""The session a request is for; absent (the Go client) means the server's default session."""

_ERROR_CLASSES: Final[dict[str, type[ContainerTrackerError]]] = {
    name: cls
    for name in errors.__all__
    if isinstance(cls := getattr(errors, name), type) and issubclass(cls, ContainerTrackerError)
}

STATUS_OF_ERROR: Final[tuple[tuple[type[ContainerTrackerError], int], ...]] = (
    (errors.JobNotFoundError, 404),
    (errors.InvalidArgumentError, 400),
    (errors.UnsupportedAttributeError, 400),
    (errors.UnsupportedOperationError, 400),
    (errors.InvalidStateError, 409),
    (errors.DeniedByDrmsError, 403),
    (errors.WaitTimeoutError, 408),
    (errors.TryLaterError, 503),
    (errors.DrmCommunicationError, 502),
    (ContainerTrackerError, 500),
)
"""HTTP status for an error where the Go shape has no ``Error`` slot (the list endpoints);
the first matching class wins."""


CURSOR_LIMIT: Final = 1 << 128
"""Change-feed cursors on the wire are below it (our trackers' are: ``core.watch``), so their
decimal strings have at most :data:`_CURSOR_DIGITS` digits."""

_CURSOR_DIGITS: Final = len(str(CURSOR_LIMIT - 1))


def cursor_from_wire(text: object) -> int:
    """A change-feed cursor from its wire form: a decimal string (``since`` of ``/changes``,
    ``Cursor`` of its answers), never a JSON number (exact only up to 2**53 in many clients).

    Raises:
        ValueError: anything but ASCII digits of a number below :data:`CURSOR_LIMIT` (the
            length is checked before converting: a hostile length costs nothing).
    """
    # isdigit() admits other scripts' digits, int() underscores and spaces: ASCII digits only.
    if not isinstance(text, str) or not (text.isascii() and text.isdigit()):
        raise ValueError(f"a cursor is a decimal string, not {str(text)[:40]!r}")
    if len(text) > _CURSOR_DIGITS or int(text) >= CURSOR_LIMIT:
        raise ValueError(f"a cursor is below 2**128, not {text[:40]!r}...")
    return int(text)


def error_class_name(exc: ContainerTrackerError) -> str:
    """The header value for ``exc``: its own class name, or the nearest public ancestor's."""
    for cls in type(exc).__mro__:
        if cls.__name__ in _ERROR_CLASSES:
            return cls.__name__
    return ContainerTrackerError.__name__  # unreachable: every error derives from the root


def error_from_wire(class_name: str | None, message: str) -> ContainerTrackerError:
    """The exception a server reported: its class when named (ours), else an InternalError
    quoting the text (a Go server sends only text)."""
    cls = _ERROR_CLASSES.get(class_name or "")
    if cls is None:
        return InternalError(f"the server reported: {message}")
    return cls(message)


def parse_states(names: list[str]) -> tuple[JobState, ...]:
    """Remote state names (``done``, ``queuedHeld``...) as JobStates.

    Raises:
        ValueError: a name that is not one of the ten remote state names.
    """
    states = []
    for name in names:
        state = JobState.from_remote_name(name)
        if state.remote_name != name:
            raise ValueError(f"unknown job state {name!r}")
        states.append(state)
    return tuple(states)


WILDCARD_HOSTS: Final = ("", "0.0.0.0", "::", "[::]")
"""Bind addresses that mean every interface."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) is on the loopback interface."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
