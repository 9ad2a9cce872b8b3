"""The remote JobTracker: a server exposing any tracker over HTTP, and a client that is one.

Needs the ``remote`` extra (starlette, uvicorn, httpx, pyyaml). The wire format is that of
drmaa2os' remote tracker (v1 paths), so Go clients and servers interoperate.

Each name below is imported from its module when first used: the client
(:class:`RemoteTracker`, :func:`new_remote_tracker`) loads neither the server stack
(starlette, uvicorn) nor the core (whose state store needs POSIX file locks), so it runs
wherever httpx does, Windows included.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from containertracker.remote.app import create_app
    from containertracker.remote.client import RemoteTracker, new_remote_tracker
    from containertracker.remote.policy import Policy
    from containertracker.remote.pool import TrackerPool
    from containertracker.remote.server import ServerThread, check_exposure, serve
    from containertracker.remote.tokens import Credentials

__all__ = [
    "Credentials",
    "Policy",
    "RemoteTracker",
    "ServerThread",
    "TrackerPool",
    "check_exposure",
    "create_app",
    "new_remote_tracker",
    "serve",
]

_HOME_OF: dict[str, str] = {
    "Credentials": "containertracker.remote.tokens",
    "Policy": "containertracker.remote.policy",
    "RemoteTracker": "containertracker.remote.client",
    "ServerThread": "containertracker.remote.server",
    "TrackerPool": "containertracker.remote.pool",
    "check_exposure": "containertracker.remote.server",
    "create_app": "containertracker.remote.app",
    "new_remote_tracker": "containertracker.remote.client",
    "serve": "containertracker.remote.server",
}
"""The module each name of ``__all__`` is defined in."""


if not TYPE_CHECKING:  # type checkers see the imports above, and no other name

    def __getattr__(name: str) -> Any:
        """The exported ``name``, imported from its module on first use (then kept here).

        Raises:
            AttributeError: ``name`` is not exported.
        """
        home = _HOME_OF.get(name)
        if home is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home), name)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    """The module's names, with the exported ones not imported yet."""
    return sorted({*globals(), *__all__})
