"""Opening the server's web dashboard in a browser: ``containertracker ui`` and
``containertracker serve --open``.

Only the address is handed to the browser, never credentials: the page asks for them and
keeps them in that browser tab (a token on a command line would be visible in ``ps``).
"""

from __future__ import annotations

import socket
import threading
import time
import webbrowser
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

from containertracker.errors import InvalidArgumentError
from containertracker.remote.wire import WILDCARD_HOSTS
from containertracker.settings import ServerSettings

__all__ = ["dashboard_url", "open_in_browser", "open_when_serving", "served_url"]

_LISTEN_TIMEOUT = 60.0
"""How long ``serve --open`` waits for the server to accept connections."""


def dashboard_url(server_url: str) -> str:
    """The dashboard's address on the server at ``server_url``: its scheme, host and port,
    and ``/ui`` below its path (the base path). Credentials in the URL (``user:password@``)
    are dropped, never handed to a browser (its history, the command line of the process
    it runs), and so are a query and a fragment, which are not part of the base path.

    Raises:
        InvalidArgumentError: ``server_url`` is no http(s) URL with a host (and a valid port).
    """
    parts = urlsplit(server_url)
    try:
        port = parts.port
    except ValueError as exc:
        # (The URL is not quoted back: it may hold a password.)
        raise InvalidArgumentError(f"the server URL has an invalid port: {exc}") from None
    host = parts.hostname
    if parts.scheme not in ("http", "https") or not host:
        raise InvalidArgumentError("the server URL must be http:// or https:// with a host")
    if ":" in host:
        host = f"[{host}]"  # an IPv6 address, which urlsplit gives without its brackets
    netloc = host if port is None else f"{host}:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/") + "/ui", "", ""))


def served_url(settings: ServerSettings) -> str:
    """The address a browser on this host reaches the server ``settings`` describe at
    (base path included): a wildcard bind is reached on loopback, or by the first plain
    name of ``allowed_hosts`` (the Host check would refuse loopback names then)."""
    host = settings.host
    if host.lower() in WILDCARD_HOSTS:
        names = [name for name in settings.allowed_hosts if "*" not in name]
        host = names[0] if names else "127.0.0.1"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    scheme = "https" if settings.tls_certfile else "http"
    return f"{scheme}://{host}:{settings.port}{settings.base_path.rstrip('/')}"


def open_in_browser(url: str) -> bool:
    """Open ``url`` in the user's browser (``$BROWSER`` or the desktop's); False if there is
    none to open it with."""
    try:
        return webbrowser.open(url)
    except webbrowser.Error:
        return False


def open_when_serving(settings: ServerSettings, report: Callable[[str], None]) -> None:
    """In a background thread: once the server ``settings`` describe accepts connections,
    open its dashboard in a browser; ``report`` gets a line saying what happened if it
    could not (no browser here, or the server did not start listening within a minute)."""
    url = dashboard_url(served_url(settings))
    host = "127.0.0.1" if settings.host.lower() in WILDCARD_HOSTS else settings.host

    def when_listening() -> None:
        deadline = time.monotonic() + _LISTEN_TIMEOUT
        while time.monotonic() < deadline:
            try:
                socket.create_connection((host.strip("[]"), settings.port), timeout=1).close()
            except OSError:
                time.sleep(0.1)
                continue
            if not open_in_browser(url):
                report(f"no browser to open here; the dashboard is at {url}")
            return
        report(f"the server did not start listening; the dashboard would be at {url}")

    if settings.port == 0:
        report("--open needs a --port (0 picks one the browser cannot know)")
        return
    threading.Thread(target=when_listening, name="containertracker-open", daemon=True).start()
