"""The remote JobTracker server: any registered tracker over the drmaa2os v1 HTTP API.

Wire compatibility with the Go server (reference section 5): the same paths under an optional
base path, the same JSON shapes (``JobID``/``Error``, ``JobState``/``JobSubState``, JobInfo
plus ``Error``, a JSON string for jobcontrol/deletejob, ``[]`` for empty lists), tracker errors
as HTTP 200 with the message in the body, and 400 with Go's texts for missing parameters.

What we add, all ignorable by a Go client: the error class in the ``X-ContainerTracker-Error``
header; an ``Error`` key in jobstate answers; real HTTP errors (with ``{"Error": ...}``) where
the Go server silently sent an empty list; the endpoints ``/wait`` (long poll),
``/jobtemplate``, ``/monitor/*``; a session header; auth, TLS, a body size limit and an
admission :class:`~containertracker.remote.policy.Policy`; ``/openapi.json``.

Requests run concurrently: each tracker call runs in a worker thread, with no lock around
engine calls (trackers are thread-safe).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import hmac
import ipaddress
import json
import socket
import threading
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from typing import Any, TypeVar

import anyio.to_thread
import uvicorn
import yaml
from loguru import logger
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from containertracker.errors import (
    ContainerTrackerError,
    DeniedByDrmsError,
    InternalError,
    InvalidArgumentError,
    TryLaterError,
)
from containertracker.models import JobInfo, JobState, JobTemplate
from containertracker.registry import new_job_tracker
from containertracker.remote.policy import Policy
from containertracker.remote.wire import (
    ERROR_CLASS_HEADER,
    SESSION_HEADER,
    STATUS_OF_ERROR,
    error_class_name,
    parse_states,
)
from containertracker.settings import ServerSettings
from containertracker.tracker import Closer, JobTemplater, JobTracker, Monitorer, control_action

__all__ = ["ServerThread", "TrackerPool", "check_exposure", "create_app", "serve"]

T = TypeVar("T")

_WORKER_THREADS = 256
"""Tracker calls in flight at once (long-poll waits each hold one thread)."""


class TrackerPool:
    """The trackers a server serves, one per session, opened on first use.

    ``open(session)`` builds a tracker; requests without a session header get
    ``default_session``. At most ``max_sessions`` trackers stay open: when another session
    is asked for, the least recently used idle one is closed (its jobs live on; it is
    reopened when asked for again).
    """

    def __init__(
        self,
        open: Callable[[str], JobTracker],
        default_session: str,
        *,
        max_sessions: int = 64,
    ) -> None:
        self._open = open
        self.default_session = default_session
        self._max = max_sessions
        self._trackers: OrderedDict[str, JobTracker] = OrderedDict()
        """Open trackers, least recently used first."""
        self._busy: Counter[str] = Counter()
        """Requests in flight per session: their trackers are never evicted."""
        self._opening: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self._closed = False

    @classmethod
    def for_backend(
        cls, backend: str, default_session: str, params: dict[str, Any] | None = None
    ) -> TrackerPool:
        """A pool opening ``new_job_tracker(backend, session, params)`` per session."""
        return cls(lambda session: new_job_tracker(backend, session, params), default_session)

    @contextlib.contextmanager
    def using(self, session: str) -> Iterator[JobTracker]:
        """The tracker of ``session`` for the duration of a request (blocking: opens it if
        needed, so call it from a worker thread).

        Raises:
            InvalidArgumentError: an empty session name.
            TryLaterError: every open session has a request in flight.
            DeniedByDrmsError: the pool is closed.
            DrmCommunicationError: the backend cannot be reached.
        """
        if not session:
            raise InvalidArgumentError("the session name must not be empty")
        tracker = self._acquire(session)
        if tracker is None:
            # Opening talks to the engine: under a per-session lock, not the pool's.
            with self._opening_lock(session):
                tracker = self._acquire(session)
                if tracker is None:
                    tracker = self._insert(session, self._open(session))
        try:
            yield tracker
        finally:
            with self._lock:
                self._busy[session] -= 1
                if not self._busy[session]:
                    del self._busy[session]

    def _acquire(self, session: str) -> JobTracker | None:
        """The open tracker of ``session``, marked busy; None if it is not open."""
        with self._lock:
            if self._closed:
                raise DeniedByDrmsError("the server is shutting down")
            tracker = self._trackers.get(session)
            if tracker is not None:
                self._trackers.move_to_end(session)
                self._busy[session] += 1
            return tracker

    def _opening_lock(self, session: str) -> threading.Lock:
        with self._lock:
            return self._opening.setdefault(session, threading.Lock())

    def _insert(self, session: str, tracker: JobTracker) -> JobTracker:
        """Add a newly opened tracker, marked busy, evicting idle ones to make room."""
        evicted: list[JobTracker] = []
        try:
            with self._lock:
                if self._closed:
                    raise DeniedByDrmsError("the server is shutting down")
                while len(self._trackers) >= self._max:
                    idle = next((s for s in self._trackers if not self._busy[s]), None)
                    if idle is None:
                        raise TryLaterError(
                            f"all {self._max} sessions this server keeps open are busy"
                        )
                    evicted.append(self._trackers.pop(idle))
                    self._opening.pop(idle, None)
                self._trackers[session] = tracker
                self._busy[session] += 1
        except BaseException:
            evicted.append(tracker)
            raise
        finally:
            for old in evicted:
                _close(old)
        return tracker

    def close(self) -> None:
        """Close every tracker (their pending waits end); later requests are refused."""
        with self._lock:
            self._closed = True
            trackers = list(self._trackers.values())
            self._trackers.clear()
        for tracker in trackers:
            _close(tracker)


def _close(tracker: JobTracker) -> None:
    if isinstance(tracker, Closer):
        tracker.close()


class _BadRequest(Exception):
    """A request the server cannot parse: HTTP 400 with Go's plain-text message."""


class _TooLarge(Exception):
    """A request body beyond the server's limit: HTTP 413."""


@dataclass(frozen=True)
class _Context:
    pool: TrackerPool
    policy: Policy
    max_wait: float


def _context(request: Request) -> _Context:
    ctx: _Context = request.app.state.ctx
    return ctx


# -- request parsing ---------------------------------------------------------------------------


def _query(request: Request, name: str) -> str:
    value = request.query_params.get(name, "")
    if not value:
        raise _BadRequest(f"Query argument {name} is required, but not found")
    return value


def _number(request: Request, name: str, default: float | None) -> float | None:
    text = request.query_params.get(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        raise _BadRequest(f"Invalid format for parameter {name}: {text!r} is no number") from None
    if not value >= 0 or value == float("inf"):
        raise _BadRequest(f"Invalid format for parameter {name}: must be a finite number >= 0")
    return value


def _page(request: Request, ids: list[str]) -> list[str]:
    """Apply the optional ``skip`` and ``limit`` parameters (the Go server ignores them)."""
    bounds = []
    for name in ("skip", "limit"):
        text = request.query_params.get(name, "")
        if text and not text.isdigit():
            raise _BadRequest(f"Invalid format for parameter {name}: {text!r} is no integer >= 0")
        bounds.append(int(text) if text else None)
    skip, limit = bounds[0] or 0, bounds[1]
    return ids[skip:] if limit is None else ids[skip : skip + limit]


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        data = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError) as exc:
        raise _BadRequest(f"can't unmarshal body: {exc}") from None
    if not isinstance(data, dict):
        raise _BadRequest("can't unmarshal body: expected a JSON object")
    return data


def _template(data: dict[str, Any]) -> JobTemplate:
    try:
        return JobTemplate.from_remote_dict(data)
    except ValueError as exc:
        raise _BadRequest(f"can't unmarshal body: {exc}") from None


def _integer(data: dict[str, Any], key: str, default: int | None) -> int:
    value = data.get(key)
    if value is None:
        if default is None:
            raise _BadRequest(f"can't unmarshal body: {key} is required")
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise _BadRequest(f"can't unmarshal body: {key} must be an integer, not {value!r}")
    return value


# -- running tracker calls ---------------------------------------------------------------------


async def _run(request: Request, work: Callable[[JobTracker], T]) -> T:
    """``work(tracker of the request's session)`` in a worker thread."""
    ctx = _context(request)
    session = request.headers.get(SESSION_HEADER) or ctx.pool.default_session

    def call() -> T:
        with ctx.pool.using(session) as tracker:
            return work(tracker)

    return await anyio.to_thread.run_sync(call)


def _error_headers(exc: ContainerTrackerError) -> dict[str, str]:
    return {ERROR_CLASS_HEADER: error_class_name(exc)}


def _with_error(body: Any, exc: ContainerTrackerError) -> JSONResponse:
    """HTTP 200 carrying the error in the body, as the Go server does."""
    logger.debug("request failed: {}: {}", type(exc).__name__, exc)
    return JSONResponse(body, headers=_error_headers(exc))


def _error_status(exc: ContainerTrackerError) -> JSONResponse:
    """A real HTTP error where the Go shape has no place for one (the list endpoints)."""
    status = next(code for cls, code in STATUS_OF_ERROR if isinstance(exc, cls))
    logger.debug("request failed ({}): {}: {}", status, type(exc).__name__, exc)
    return JSONResponse({"Error": str(exc)}, status_code=status, headers=_error_headers(exc))


def _monitorer(tracker: JobTracker) -> Monitorer:
    if not isinstance(tracker, Monitorer):
        raise InvalidArgumentError("this server's tracker does not offer monitoring")
    return tracker


def _templater(tracker: JobTracker) -> JobTemplater:
    if not isinstance(tracker, JobTemplater):
        raise InvalidArgumentError("this server's tracker does not keep job templates")
    return tracker


# -- endpoints -----------------------------------------------------------------------------------


async def list_jobs(request: Request) -> Response:
    _page(request, [])  # reject bad paging before doing any work
    try:
        return JSONResponse(_page(request, await _run(request, lambda t: t.list_jobs())))
    except ContainerTrackerError as exc:
        return _error_status(exc)


async def list_array_jobs(request: Request) -> Response:
    array_id = _query(request, "arrayJobID")
    _page(request, [])
    try:
        ids = await _run(request, lambda t: t.list_array_jobs(array_id))
        return JSONResponse(_page(request, ids))
    except ContainerTrackerError as exc:
        return _error_status(exc)


async def list_job_categories(request: Request) -> Response:
    try:
        return JSONResponse(await _run(request, lambda t: t.list_job_categories()))
    except ContainerTrackerError as exc:
        return _error_status(exc)


async def add_job(request: Request) -> Response:
    jt = _template(await _json_object(request))
    policy = _context(request).policy

    def work(tracker: JobTracker) -> str:
        policy.check(jt)
        return tracker.add_job(jt)

    try:
        return JSONResponse({"JobID": await _run(request, work), "Error": ""})
    except ContainerTrackerError as exc:
        return _with_error({"JobID": "", "Error": str(exc)}, exc)


async def add_array_job(request: Request) -> Response:
    data = await _json_object(request)
    jt = _template(data)
    begin, end = _integer(data, "begin", None), _integer(data, "end", None)
    step, max_parallel = _integer(data, "step", 1), _integer(data, "maxParallel", 0)
    policy = _context(request).policy

    def work(tracker: JobTracker) -> str:
        policy.check(jt)
        return tracker.add_array_job(jt, begin, end, step, max_parallel)

    try:
        return JSONResponse({"JobID": await _run(request, work), "Error": ""})
    except ContainerTrackerError as exc:
        return _with_error({"JobID": "", "Error": str(exc)}, exc)


def _state_body(state: JobState, sub_state: str, error: str = "") -> dict[str, str]:
    return {"JobState": state.remote_name, "JobSubState": sub_state, "Error": error}


async def job_state(request: Request) -> Response:
    job_id = _query(request, "jobID")
    try:
        state, sub_state = await _run(request, lambda t: t.job_state(job_id))
    except ContainerTrackerError as exc:
        return _with_error(_state_body(JobState.UNDETERMINED, "", str(exc)), exc)
    return JSONResponse(_state_body(state, sub_state))


def _info_body(info: JobInfo, error: str = "") -> dict[str, Any]:
    return {**info.to_remote_dict(), "Error": error}


async def job_info(request: Request) -> Response:
    job_id = _query(request, "jobID")
    try:
        info = await _run(request, lambda t: t.job_info(job_id))
    except ContainerTrackerError as exc:
        return _with_error(_info_body(JobInfo(), str(exc)), exc)
    return JSONResponse(_info_body(info))


async def job_control(request: Request) -> Response:
    job_id = _query(request, "jobID")
    try:
        action = control_action(_query(request, "action"))
    except InvalidArgumentError as exc:
        raise _BadRequest(f"Invalid format for parameter action: {exc}") from None
    try:
        await _run(request, lambda t: t.job_control(job_id, action))
    except ContainerTrackerError as exc:
        return _with_error(str(exc), exc)
    return JSONResponse("")


async def delete_job(request: Request) -> Response:
    job_id = _query(request, "jobID")
    try:
        await _run(request, lambda t: t.delete_job(job_id))
    except ContainerTrackerError as exc:
        return _with_error(str(exc), exc)
    return JSONResponse("")


async def wait(request: Request) -> Response:
    """Long poll: block up to ``min(timeout, max_wait)`` seconds for the job to reach a state.

    A timeout answers ``Error`` with class WaitTimeoutError; clients with a longer deadline
    simply ask again.
    """
    job_id = _query(request, "jobID")
    max_wait = _context(request).max_wait
    timeout = _number(request, "timeout", max_wait)
    assert timeout is not None
    try:
        states = parse_states(request.query_params.getlist("state"))
    except ValueError as exc:
        raise _BadRequest(f"Invalid format for parameter state: {exc}") from None

    def work(tracker: JobTracker) -> tuple[JobState, str]:
        reached = tracker.wait(job_id, min(timeout, max_wait), *states)
        return reached, tracker.job_state(job_id)[1] if reached == JobState.FAILED else ""

    try:
        state, sub_state = await _run(request, work)
    except ContainerTrackerError as exc:
        return _with_error(_state_body(JobState.UNDETERMINED, "", str(exc)), exc)
    return JSONResponse(_state_body(state, sub_state))


async def job_template(request: Request) -> Response:
    job_id = _query(request, "jobID")
    try:
        jt = await _run(request, lambda t: _templater(t).job_template(job_id))
    except ContainerTrackerError as exc:
        return _with_error({**JobTemplate().to_remote_dict(), "Error": str(exc)}, exc)
    return JSONResponse({**jt.to_remote_dict(), "Error": ""})


async def monitor_job_ids(request: Request) -> Response:
    """Job ids matching a JobInfo filter; missing or null filter keys are unset (match all)."""
    raw = await _json_object(request) if await request.body() else None
    wanted = None
    if raw is not None:
        data = {**JobInfo().to_remote_dict(), **{k: v for k, v in raw.items() if v is not None}}
        try:
            parse_states([data["state"]])  # a typo must not become "undetermined"
            wanted = JobInfo.from_remote_dict(data)
        except (ValueError, TypeError) as exc:
            raise _BadRequest(f"can't unmarshal body: {exc}") from None
    try:
        return JSONResponse(await _run(request, lambda t: _monitorer(t).get_all_job_ids(wanted)))
    except ContainerTrackerError as exc:
        return _error_status(exc)


async def monitor_machines(request: Request) -> Response:
    names = request.query_params.getlist("name") or None
    try:
        machines = await _run(request, lambda t: _monitorer(t).get_all_machines(names))
    except ContainerTrackerError as exc:
        return _error_status(exc)
    return JSONResponse([m.to_go_dict() for m in machines])


async def monitor_job_info(request: Request) -> Response:
    job_id = _query(request, "jobID")
    try:
        info = await _run(request, lambda t: _monitorer(t).job_info_from_monitor(job_id))
    except ContainerTrackerError as exc:
        return _with_error(_info_body(JobInfo(), str(exc)), exc)
    return JSONResponse(_info_body(info))


@functools.cache
def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3 document of what this server serves (shipped as ``openapi.yaml``)."""
    text = resources.files("containertracker.remote").joinpath("openapi.yaml").read_text("utf-8")
    document: dict[str, Any] = yaml.safe_load(text)
    return document


async def openapi_json(request: Request) -> Response:
    document = dict(openapi_document())
    document["servers"] = [{"url": request.app.state.base_path or "/"}]
    return JSONResponse(document)


_ROUTES: tuple[tuple[str, Callable[[Request], Awaitable[Response]], str], ...] = (
    ("/listjobs", list_jobs, "GET"),
    ("/listarrayjobs", list_array_jobs, "GET"),
    ("/addjob", add_job, "POST"),
    ("/addarrayjob", add_array_job, "POST"),
    ("/jobstate", job_state, "GET"),
    ("/jobinfo", job_info, "GET"),
    ("/jobcontrol", job_control, "GET"),
    ("/deletejob", delete_job, "GET"),
    ("/listjobcategories", list_job_categories, "GET"),
    ("/wait", wait, "GET"),
    ("/jobtemplate", job_template, "GET"),
    ("/monitor/jobids", monitor_job_ids, "POST"),
    ("/monitor/machines", monitor_machines, "GET"),
    ("/monitor/jobinfo", monitor_job_info, "GET"),
    ("/openapi.json", openapi_json, "GET"),
)
PATHS = tuple(path for path, _, _ in _ROUTES)
"""Every path the server serves (below its base path)."""


async def _bad_request(request: Request, exc: Exception) -> Response:
    return PlainTextResponse(str(exc), status_code=400)


async def _too_large(request: Request, exc: Exception) -> Response:
    return PlainTextResponse(str(exc), status_code=413)


async def _unexpected(request: Request, exc: Exception) -> Response:
    # A bug: log it with its traceback; the client gets the Go-style error object.
    logger.opt(exception=exc).error("unexpected error serving {}", request.url.path)
    error = InternalError(f"internal server error: {type(exc).__name__}: {exc}")
    return JSONResponse({"Error": str(error)}, status_code=500, headers=_error_headers(error))


# -- middleware --------------------------------------------------------------------------------


class _BodyLimit:
    """Answer 413 to requests whose body exceeds ``limit`` bytes (declared or streamed)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._too_large(scope, receive, send)
            return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _TooLarge(_too_large_text(self.limit))
            return message

        await self.app(scope, counting_receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = PlainTextResponse(_too_large_text(self.limit), status_code=413)
        await response(scope, receive, send)


def _too_large_text(limit: int) -> str:
    return f"request body larger than the server's limit of {limit} bytes"


class _Auth:
    """Require a bearer token or HTTP basic credentials (constant-time comparison).

    ``/openapi.json`` stays public: it describes the API and holds no data.
    """

    def __init__(
        self, app: ASGIApp, token: str | None, user: str | None, password: str | None
    ) -> None:
        self.app = app
        self._token = token.encode() if token else None
        self._basic = f"{user}:{password or ''}".encode() if user else None

    def _allowed(self, authorization: bytes) -> bool:
        scheme, _, value = authorization.partition(b" ")
        scheme = scheme.lower()
        if scheme == b"bearer" and self._token is not None:
            return hmac.compare_digest(value.strip(), self._token)
        if scheme == b"basic" and self._basic is not None:
            try:
                decoded = base64.b64decode(value.strip(), validate=True)
            except (binascii.Error, ValueError):
                return False
            return hmac.compare_digest(decoded, self._basic)
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or str(scope["path"]).endswith("/openapi.json"):
            await self.app(scope, receive, send)
            return
        if self._allowed(dict(scope["headers"]).get(b"authorization", b"")):
            await self.app(scope, receive, send)
            return
        challenge = 'Bearer realm="remotetracker"'
        if self._basic is not None:
            challenge = 'Basic realm="remotetracker"'
        response = PlainTextResponse(
            "Unauthorized: this server requires "
            + ("basic auth" if self._basic is not None else "a bearer token"),
            status_code=401,
            headers={"WWW-Authenticate": challenge},
        )
        await response(scope, receive, send)


# -- the application -----------------------------------------------------------------------------


def create_app(pool: TrackerPool, settings: ServerSettings | None = None) -> Starlette:
    """The ASGI application serving ``pool`` as ``settings`` say (defaults: ServerSettings()).

    The app closes the pool's trackers when it shuts down.
    """
    settings = settings or ServerSettings()
    base_path = settings.base_path.rstrip("/")
    if base_path and not base_path.startswith("/"):
        raise InvalidArgumentError(f"base_path must start with '/', not {settings.base_path!r}")
    routes = [Route(path, endpoint, methods=[method]) for path, endpoint, method in _ROUTES]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = _WORKER_THREADS
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(pool.close)

    app = Starlette(
        routes=[Mount(base_path, routes=routes)] if base_path else routes,
        exception_handlers={
            _BadRequest: _bad_request,
            _TooLarge: _too_large,
            Exception: _unexpected,
        },
        lifespan=lifespan,
    )
    app.state.ctx = _Context(
        pool=pool,
        policy=Policy(
            allow_privileged=settings.allow_privileged,
            allow_host_namespaces=settings.allow_host_namespaces,
            allowed_host_paths=tuple(settings.allowed_host_paths),
        ),
        max_wait=settings.max_wait,
    )
    app.state.base_path = base_path
    token = settings.token.get_secret_value() if settings.token else None
    password = settings.password.get_secret_value() if settings.password else None
    if token or settings.user:
        app.add_middleware(_Auth, token=token, user=settings.user, password=password)
    app.add_middleware(_BodyLimit, limit=settings.max_body_bytes)
    return app


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(settings: ServerSettings) -> None:
    """Refuse settings that would expose job execution to the network unprotected.

    Raises:
        InvalidArgumentError: bound beyond loopback without a token or basic auth, basic auth
            without a password, or only one of the TLS certificate and key.
    """
    if settings.user and not settings.password:
        raise InvalidArgumentError("basic auth needs a password as well as a user name")
    if not _is_loopback(settings.host) and not (settings.token or settings.user):
        raise InvalidArgumentError(
            f"refusing to serve on {settings.host}: anyone who reaches the server can run "
            "containers on this host. Set a token (--token / CONTAINERTRACKER_SERVER_TOKEN) "
            "or basic auth, or bind to 127.0.0.1"
        )
    if (settings.tls_certfile is None) != (settings.tls_keyfile is None):
        raise InvalidArgumentError("TLS needs both a certificate file and a key file")


class _Server(uvicorn.Server):
    """uvicorn, but shutdown first closes the pool: pending long-poll waits answer at once
    (the tracker is closed) instead of holding the graceful shutdown for up to max_wait."""

    def __init__(self, pool: TrackerPool, app: ASGIApp, settings: ServerSettings) -> None:
        super().__init__(
            uvicorn.Config(
                app,
                host=settings.host,
                port=settings.port,
                ssl_certfile=settings.tls_certfile,
                ssl_keyfile=settings.tls_keyfile,
                log_level="warning",
                timeout_keep_alive=30,
                timeout_graceful_shutdown=10,
                lifespan="on",
            )
        )
        self._pool = pool

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await anyio.to_thread.run_sync(self._pool.close)
        await super().shutdown(sockets)


def serve(settings: ServerSettings, params: dict[str, Any] | None = None) -> None:
    """Serve ``settings.backend`` until interrupted (Ctrl-C or SIGTERM).

    ``params`` are the backend tracker's params (engine URL etc.).

    Raises:
        InvalidArgumentError: unsafe or inconsistent settings (see :func:`check_exposure`).
        DrmCommunicationError: the engine cannot be reached.
    """
    check_exposure(settings)
    pool = TrackerPool.for_backend(settings.backend, settings.session, params)
    with pool.using(settings.session):  # fail now, not at the first request, if the engine is down
        pass
    if settings.token and not settings.tls_certfile and not _is_loopback(settings.host):
        logger.warning("serving without TLS: the token travels in clear text")
    logger.info("serving {} on {}:{}", settings.backend, settings.host, settings.port)
    _Server(pool, create_app(pool, settings), settings).run()


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
        self._server = _Server(pool, wrap(app) if wrap else app, self._settings)
        self._thread = threading.Thread(target=self._server.run, name="containertracker-server")

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
