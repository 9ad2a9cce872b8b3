"""Running the server: uvicorn in the foreground (``serve``) or in a thread (``ServerThread``),
and the exposure check that keeps an unprotected server on loopback."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Any

import anyio.to_thread
import uvicorn
from loguru import logger
from starlette.types import ASGIApp

from containertracker.errors import InternalError, InvalidArgumentError
from containertracker.remote.app import create_app
from containertracker.remote.connections import HeaderDeadlineConfig
from containertracker.remote.pool import TrackerPool
from containertracker.remote.tokens import Credentials
from containertracker.remote.wire import is_loopback
from containertracker.settings import ServerSettings

__all__ = ["ServerThread", "check_exposure", "serve"]


def check_exposure(settings: ServerSettings, *, credentials: Credentials | None = None) -> None:
    """Refuse settings that would expose job execution to the network unprotected.

    ``credentials`` are ``Credentials(settings)`` when the caller has read them already
    (default: read them now, which checks them).

    Raises:
        InvalidArgumentError: bound beyond loopback without a token or basic auth, basic auth
            without a password, a token shorter than MIN_TOKEN_LENGTH, an invalid token file,
            only one of the TLS certificate and key, or ``credentials`` read from other
            settings.
    """
    if settings.user and not settings.password:
        raise InvalidArgumentError("basic auth needs a password as well as a user name")
    credentials = Credentials.of(settings, read=credentials)
    if not is_loopback(settings.host) and not credentials.required:
        raise InvalidArgumentError(
            f"refusing to serve on {settings.host}: anyone who reaches the server can run "
            "containers on this host. Set a token (--token-file / "
            "CONTAINERTRACKER_SERVER_TOKEN) or basic auth, or bind to 127.0.0.1"
        )
    if (settings.tls_certfile is None) != (settings.tls_keyfile is None):
        raise InvalidArgumentError("TLS needs both a certificate file and a key file")


class _PoolServer(uvicorn.Server):
    """uvicorn serving a pool's app, but shutdown first closes the pool: pending long-poll
    waits answer at once (the tracker is closed) instead of holding the graceful shutdown
    for up to max_wait."""

    def __init__(self, pool: TrackerPool, app: ASGIApp, settings: ServerSettings) -> None:
        super().__init__(
            HeaderDeadlineConfig(
                app,
                host=settings.host,
                port=settings.port,
                ssl_certfile=settings.tls_certfile,
                ssl_keyfile=settings.tls_keyfile,
                log_level="warning",
                header_timeout=settings.header_timeout,
                timeout_keep_alive=settings.keep_alive,
                # Open connections plus requests in flight; beyond, uvicorn answers 503.
                limit_concurrency=settings.max_connections,
                timeout_graceful_shutdown=10,
                lifespan="on",
                # Behind no proxy: X-Forwarded-* sent by clients must not be believed.
                proxy_headers=False,
            )
        )
        self._pool = pool

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await anyio.to_thread.run_sync(self._pool.close)
        await super().shutdown(sockets)


def serve(
    settings: ServerSettings,
    params: dict[str, Any] | None = None,
    announce: Callable[[str], None] | None = None,
) -> None:
    """Serve ``settings.backend`` until interrupted (Ctrl-C or SIGTERM).

    ``params`` are the backend tracker's params (engine URL etc.). ``announce`` gets the
    line saying where the server listens, once every check has passed.

    Raises:
        InvalidArgumentError: unsafe or inconsistent settings (see :func:`check_exposure`).
        DrmCommunicationError: the engine cannot be reached.
    """
    credentials = Credentials(settings)  # the token file, read once
    check_exposure(settings, credentials=credentials)
    pool = TrackerPool.for_backend(settings.backend, settings.session, params)
    # The app confines the pool's trackers as the settings say: before the first one opens.
    app = create_app(pool, settings, credentials=credentials)
    with pool.using(settings.session):  # fail now, not at the first request, if the engine is down
        pass
    if not settings.tls_certfile and not is_loopback(settings.host):
        what = "the basic-auth password" if settings.user else "the token"
        logger.warning("serving without TLS: {} travels in clear text", what)
    scheme = "https" if settings.tls_certfile else "http"
    line = (
        f"serving {settings.backend} (session {settings.session}) on "
        f"{scheme}://{settings.host}:{settings.port}{settings.base_path}"
    )
    (announce or logger.info)(line)
    _PoolServer(pool, app, settings).run()


class ServerThread:
    """A server running in a background thread (tests, benchmarks, embedding).

    ``with ServerThread(pool, settings) as url:`` serves ``pool`` with uvicorn on
    ``settings.host`` and a free port (when ``settings.port`` is 0) and yields the base URL;
    leaving stops the server and closes the pool. ``wrap`` may wrap the ASGI app.
    """

    def __init__(
        self,
        pool: TrackerPool,
        settings: ServerSettings | None = None,
        *,
        wrap: Callable[[ASGIApp], ASGIApp] | None = None,
    ) -> None:
        self._settings = settings or ServerSettings(port=0)
        app: ASGIApp = create_app(pool, self._settings)
        self._server = _PoolServer(pool, wrap(app) if wrap else app, self._settings)
        # A daemon thread: a caller that never leaves the ``with`` block must not keep the
        # interpreter alive forever.
        self._thread = threading.Thread(
            target=self._server.run, name="containertracker-server", daemon=True
        )

    def __enter__(self) -> str:
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive():
                raise InternalError("the server thread stopped before it started serving")
            threading.Event().wait(0.01)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        scheme = "https" if self._settings.tls_certfile else "http"
        return f"{scheme}://{self._settings.host}:{port}{self._settings.base_path.rstrip('/')}"

    def __exit__(self, *exc_info: object) -> None:
        self._server.should_exit = True
        self._thread.join()
