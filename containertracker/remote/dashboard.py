"""The web dashboard ``containertracker serve`` serves at ``<base path>/ui``.

A static page (``ui/index.html``, ``ui/app.js``, ``ui/app.css``: package data, nothing
fetched from elsewhere) and the JSON endpoints it uses, below ``/ui/api/``. The page and its
files are public (they hold no data); every endpoint needs the server's credentials, as any
other request, and reads through the same tracker pool, session checks (a token bound to
sessions sees only those) and error mapping (:func:`~containertracker.remote.app._errors_as_status`)
as the rest of the API. State changes only by ``POST`` with a JSON body (``/ui/api/control``),
which the cross-site guard lets no other site send.

Live updates are one Server-Sent Events stream per page (``/ui/api/stream``), fed by the
session tracker's change feed: the whole table first, then the rows of the jobs that changed,
the whole table again whenever the feed may have missed changes. Streams are bounded
(``max_ui_streams``, 503 beyond; a token may hold at most a quarter of them, and the last
is kept for full-access credentials: :class:`~containertracker.remote.shares.SharedSlots`),
each holds at most one poll thread of its own set, ends after :data:`STREAM_LIFETIME`
seconds (the page reconnects), when its client goes (noticed at the next poll, within
:data:`POLL_SECONDS`), when its client stops reading (a write waits at most
:data:`SEND_SECONDS`), or when the server shuts down (closing the pool wakes its poll); and
however it fares, its slot is back within :data:`STREAM_DEADLINE`.

Reading a job's output (``/ui/api/output``, which a page asks again every 2 s while the job
runs) costs more than any other read: at most :data:`MAX_OUTPUT_READS` run at once, each in
a thread of its own (503 beyond, at once), and each reads only the end of the job's log.
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final, Literal, Protocol, runtime_checkable

import anyio
import anyio.to_thread
from loguru import logger
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from containertracker.core.outputs import OutputTail
from containertracker.errors import (
    ContainerTrackerError,
    DeniedByDrmsError,
    InvalidArgumentError,
    InvalidStateError,
    JobNotFoundError,
    TryLaterError,
    UnsupportedOperationError,
)
from containertracker.models import JobInfo, JobTemplate
from containertracker.remote.app import (
    _BadRequest,
    _call_tracker,
    _change_feed,
    _errors_as_status,
    _json_object,
    _monitorer,
    _query,
    _shared,
    _slot_now,
)
from containertracker.remote.dashboard_view import (
    SECURITY_HEADERS,
    info_view,
    job_row,
    machine_view,
    sse_comment,
    sse_event,
    visible_sessions,
)
from containertracker.remote.middleware import GRANT_KEY
from containertracker.remote.shares import SharedSlots
from containertracker.remote.tokens import Credentials, Grant
from containertracker.settings import ServerSettings
from containertracker.tracker import JobChanges, JobTemplater, JobTracker, control_action

__all__ = [
    "MAX_OUTPUT_BYTES",
    "MAX_OUTPUT_READS",
    "MAX_ROWS",
    "POLL_SECONDS",
    "PREFIX",
    "PUBLIC_PATHS",
    "SECURITY_HEADERS",
    "SEND_SECONDS",
    "STREAM_DEADLINE",
    "STREAM_LIFETIME",
    "install",
    "routes",
]

PREFIX: Final = "/ui"
"""Where the dashboard lies below the server's base path."""
MAX_ROWS: Final = 1000
"""Most jobs of a session one table holds (the first the engine lists; the answer says how
many there are): each row costs an engine read."""
MAX_MACHINE_JOBS: Final = 1000
"""Most containers the machines view reads to find the jobs on each machine."""
MAX_OUTPUT_BYTES: Final = 64 << 10
"""The tail of an output file the job view shows."""
MAX_OUTPUT_READS: Final = 4
"""Output reads at once (of every client): beyond, refused at once (TryLaterError, 503),
so that pages following running jobs' outputs never take the request threads."""
MAX_FIELD: Final = 256
"""Longest job id or action a request may name."""
POLL_SECONDS: Final = 15.0
"""Longest one change-feed poll of a stream blocks (at most the server's ``max_wait``): a
client that went away is noticed within it."""
STREAM_LIFETIME: Final = 600.0
"""Seconds after which a stream ends (the page opens a new one): no stream lives forever."""
SEND_SECONDS: Final = 30.0
"""Longest one write of a stream waits for its client to take the data (a client that stops
reading, its connection open, fills the buffers, and the write would wait forever): then
the stream ends and its connection is closed."""
STREAM_DEADLINE: Final = STREAM_LIFETIME + 60.0
"""Seconds after which a stream ends whatever it is doing (its last poll, reads and write
are bounded too; this bounds them all together)."""
STREAM_SHARE: Final = 4
"""A token may hold at most ``max_ui_streams // STREAM_SHARE`` streams (at least one)."""
RETRY_SECONDS: Final = 2.0
"""Pause of a stream after its session's tracker could not answer (evicted, the engine away)."""

_ASSETS: Final[dict[str, tuple[str, str]]] = {
    "": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/app.css": ("app.css", "text/css; charset=utf-8"),
    "/icon.svg": ("icon.svg", "image/svg+xml"),
}
"""The page's files: path below :data:`PREFIX` -> file in ``ui/`` and its media type."""
PUBLIC_PATHS: Final = tuple(PREFIX + path for path in _ASSETS)
"""The paths (below the base path) served without credentials: the page's files, no data."""


@runtime_checkable
class _SessionLister(Protocol):
    """A tracker that can name the sessions with jobs on its engine (ContainerTracker)."""

    def session_names(self) -> list[str]: ...


@runtime_checkable
class _JobReader(Protocol):
    """A tracker that reads a job's info and template at once (ContainerTracker)."""

    def job_info_and_template(self, job_id: str) -> tuple[JobInfo, JobTemplate | None]: ...


@runtime_checkable
class _OutputReader(Protocol):
    """A tracker that can read a job's output as it is now (ContainerTracker)."""

    def output_tail(
        self, job_id: str, which: Literal["output", "error"], max_bytes: int
    ) -> OutputTail: ...


@dataclass(frozen=True)
class _Dashboard:
    """What the dashboard endpoints of one app share (:func:`install`)."""

    page: bytes
    """``index.html``, with the credentials the page must ask for filled in."""
    streams: SharedSlots
    """Open streams (``max_ui_streams``), shared among credentials, taken without waiting
    (503 beyond)."""
    poll_threads: anyio.CapacityLimiter
    """Threads blocked in streams' change-feed polls: as many as streams, never more (a
    stream whose client left may still be finishing its poll)."""
    poll_seconds: float
    output_reads: anyio.CapacityLimiter
    """Output reads in flight (:data:`MAX_OUTPUT_READS`), taken without waiting."""


def install(app: Starlette, settings: ServerSettings, credentials: Credentials) -> None:
    """Give ``app`` (whose routes include :func:`routes`) what its dashboard endpoints share."""
    login = "token" if credentials.grants else "basic" if settings.user else "none"
    page = _asset("index.html").replace(b"%%LOGIN%%", login.encode())
    app.state.dashboard = _Dashboard(
        page=page,
        streams=SharedSlots(
            settings.max_ui_streams, max(1, settings.max_ui_streams // STREAM_SHARE)
        ),
        poll_threads=anyio.CapacityLimiter(settings.max_ui_streams),
        poll_seconds=min(POLL_SECONDS, settings.max_wait),
        output_reads=anyio.CapacityLimiter(MAX_OUTPUT_READS),
    )


def _dashboard(request: Request) -> _Dashboard:
    dashboard: _Dashboard = request.app.state.dashboard
    return dashboard


@functools.cache
def _asset(name: str) -> bytes:
    return resources.files("containertracker.remote").joinpath("ui", name).read_bytes()


# -- reading trackers ----------------------------------------------------------------------------


def _template_of(tracker: JobTracker, job_id: str) -> JobTemplate | None:
    """The job's template, None if the tracker keeps none (or the job carries none: a
    container of another tool)."""
    if not isinstance(tracker, JobTemplater):
        return None
    try:
        return tracker.job_template(job_id)
    except JobNotFoundError:
        raise  # (an InvalidArgumentError too, but the job is gone, not its template)
    except InvalidArgumentError:
        return None


def _info_and_template(tracker: JobTracker, job_id: str) -> tuple[JobInfo, JobTemplate | None]:
    """The job's info and template (None: :func:`_template_of`), in one engine read where
    the tracker can."""
    if isinstance(tracker, _JobReader):
        return tracker.job_info_and_template(job_id)
    return tracker.job_info(job_id), _template_of(tracker, job_id)


def _row(tracker: JobTracker, job_id: str) -> dict[str, Any]:
    return job_row(*_info_and_template(tracker, job_id))


def _rows(tracker: JobTracker, job_ids: list[str]) -> dict[str, Any]:
    """``{"rows": [...], "gone": [...]}``: the rows of ``job_ids``, and those no longer there."""
    rows, gone = [], []
    for job_id in job_ids:
        try:
            rows.append(_row(tracker, job_id))
        except JobNotFoundError:
            gone.append(job_id)
    return {"rows": rows, "gone": gone}


def _table(tracker: JobTracker) -> dict[str, Any]:
    """The session's table: up to :data:`MAX_ROWS` rows, and how many jobs there are."""
    job_ids = tracker.list_jobs()
    return {
        "rows": _rows(tracker, job_ids[:MAX_ROWS])["rows"],
        "total": len(job_ids),
        "truncated": len(job_ids) > MAX_ROWS,
    }


def _snapshot(tracker: JobTracker) -> tuple[int, dict[str, Any]]:
    """The change feed's cursor of now, then the table (taken in that order, so that no
    change in between is missed)."""
    cursor = _change_feed(tracker).changes(None, 0).cursor
    return cursor, _table(tracker)


def _poll(tracker: JobTracker, since: int, timeout: float) -> JobChanges:
    return _change_feed(tracker).changes(since, timeout)


def _output_reader(tracker: JobTracker) -> _OutputReader:
    if not isinstance(tracker, _OutputReader):
        raise UnsupportedOperationError("this server's tracker cannot read jobs' output")
    return tracker


def _job_param(request: Request) -> str:
    job_id = _query(request, "jobID")
    if len(job_id) > MAX_FIELD:
        raise _BadRequest(f"Invalid format for parameter jobID: longer than {MAX_FIELD}")
    return job_id


# -- endpoints -----------------------------------------------------------------------------------


async def _page(request: Request) -> Response:
    return Response(_dashboard(request).page, media_type=_ASSETS[""][1])


def _file(path: str) -> Callable[[Request], Awaitable[Response]]:
    name, media_type = _ASSETS[path]

    async def serve_file(request: Request) -> Response:
        return Response(_asset(name), media_type=media_type)

    return serve_file


@_errors_as_status
async def sessions(request: Request) -> Response:
    """The sessions the request's credentials may see (those with jobs, the default one),
    and whether they may see the machines."""
    shared = _shared(request)
    grant: Grant | None = request.scope.get(GRANT_KEY)
    default = shared.pool.default_session
    # A tracker only as a handle on the engine: one already open, else one of a session
    # the credentials may use (the default, else the first the token names): never one
    # the token may not use, whose scheduling and threads it would set going. What the
    # handle finds is filtered by the grant below, so a bound token learns only its own
    # sessions' names.
    may_open = visible_sessions((), grant, default)

    def names() -> list[str]:
        with shared.pool.any_tracker(may_open) as tracker:
            return tracker.session_names() if isinstance(tracker, _SessionLister) else []

    found = await anyio.to_thread.run_sync(names, limiter=shared.request_threads)
    visible = visible_sessions(found, grant, default)
    every = grant is None or grant.every_session
    return JSONResponse({"sessions": visible, "machines": every})


@_errors_as_status
async def jobs(request: Request) -> Response:
    """The session's table (as the stream's first event)."""
    return JSONResponse(await _call_tracker(request, _table))


@_errors_as_status
async def job(request: Request) -> Response:
    """One job: its row, JobInfo and template."""
    job_id = _job_param(request)

    def work(tracker: JobTracker) -> dict[str, Any]:
        info, template = _info_and_template(tracker, job_id)
        return {
            "row": job_row(info, template),
            "info": info_view(info),
            "template": None if template is None else template.model_dump(mode="json"),
        }

    return JSONResponse(await _call_tracker(request, work))


@_errors_as_status
async def output(request: Request) -> Response:
    """The last :data:`MAX_OUTPUT_BYTES` of a job's output (``which=output``) or error file."""
    job_id = _job_param(request)
    which = request.query_params.get("which", "output")
    if which not in ("output", "error"):
        raise _BadRequest("Invalid format for parameter which: output or error")
    kind: Literal["output", "error"] = "output" if which == "output" else "error"

    def work(tracker: JobTracker) -> OutputTail:
        return _output_reader(tracker).output_tail(job_id, kind, MAX_OUTPUT_BYTES)

    busy = "output readers of this server are busy; ask again in a moment"
    with _slot_now(_dashboard(request).output_reads, busy):
        # A thread of its own, taken at once: the slot is what bounds output reads, and
        # they must not take the request threads.
        tail = await _call_tracker(request, work, threads=anyio.CapacityLimiter(1))
    return JSONResponse(
        {"path": tail.path, "text": tail.text, "truncated": tail.truncated, "live": tail.live}
    )


def _field(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value or len(value) > MAX_FIELD:
        raise _BadRequest(f"can't unmarshal body: {name} must be a string of 1 to {MAX_FIELD}")
    return value


@_errors_as_status
async def control(request: Request) -> Response:
    """``POST {"jobID": ..., "action": ...}``: one of the control actions, or ``delete``,
    through the tracker as the CLI does; answers the job's row after it (``{"gone": id}``
    after a delete). Only JSON bodies: a form of another site cannot send one."""
    data = await _json_object(request)
    job_id, action = _field(data, "jobID"), _field(data, "action")
    if action == "delete":
        await _call_tracker(request, lambda t: t.delete_job(job_id))
        return JSONResponse({"gone": job_id})
    checked = control_action(action)

    def work(tracker: JobTracker) -> dict[str, Any]:
        tracker.job_control(job_id, checked)
        return _row(tracker, job_id)

    return JSONResponse({"row": await _call_tracker(request, work)})


@_errors_as_status
async def machines(request: Request) -> Response:
    """The Monitorer's machines, each with the unfinished jobs on it (looks across
    sessions: refused to a token bound to sessions, as ``/monitor/*``)."""

    def work(tracker: JobTracker) -> dict[str, Any]:
        monitor = _monitorer(tracker)
        found = monitor.get_all_machines()
        job_ids = monitor.get_all_job_ids()
        infos = []
        for job_id in job_ids[:MAX_MACHINE_JOBS]:
            try:
                infos.append(monitor.job_info_from_monitor(job_id))
            except JobNotFoundError:
                continue  # removed meanwhile
        return {
            "machines": [machine_view(machine, infos) for machine in found],
            "truncated": len(job_ids) > MAX_MACHINE_JOBS,
        }

    return JSONResponse(await _call_tracker(request, work, every_session=True))


class _EventStream(StreamingResponse):
    """A Server-Sent Events response that gives its stream slot back when it ends, however
    (finished, client gone, cancelled, never started), and ends when its client takes no
    data for :data:`SEND_SECONDS`, or after :data:`STREAM_DEADLINE` in any case."""

    def __init__(self, events: AsyncIterator[bytes], release: Callable[[], None]) -> None:
        # X-Accel-Buffering: a buffering proxy in front would hold the events back.
        super().__init__(
            events, media_type="text/event-stream", headers={"X-Accel-Buffering": "no"}
        )
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def bounded_send(message: Message) -> None:
            # A client that stops reading fills the buffers: the server's write then waits
            # for room (without a timeout), and the stream would never end.
            with anyio.fail_after(SEND_SECONDS):
                await send(message)

        try:
            with anyio.move_on_after(STREAM_DEADLINE):
                await super().__call__(scope, receive, bounded_send)
        except (TimeoutError, ClientDisconnect):
            # (Starlette turns a send's TimeoutError, an OSError, into ClientDisconnect under
            # ASGI 2.4.) The response is left unfinished: the server closes the connection.
            logger.info("a dashboard stream ended: its client took no data for {} s", SEND_SECONDS)
        finally:
            self._release()


@_errors_as_status
async def stream(request: Request) -> Response:
    """The session's table, then its changes, as Server-Sent Events (see the module
    docstring). Refused before anything is sent (a real 4xx/503) when every stream slot is
    taken or the credentials do not cover the session."""
    dashboard = _dashboard(request)
    grant: Grant | None = request.scope.get(GRANT_KEY)
    full_access = grant is None or grant.every_session
    refusal = dashboard.streams.take(grant, full_access=full_access)
    if refusal is not None:
        raise TryLaterError(f"no dashboard stream of this server is free: {refusal}; try later")
    try:
        cursor, table = await _call_tracker(request, _snapshot)
    except BaseException:
        dashboard.streams.give_back(grant)
        raise
    events = _events(request, dashboard, cursor, table)
    return _EventStream(events, lambda: dashboard.streams.give_back(grant))


async def _events(
    request: Request, dashboard: _Dashboard, cursor: int | None, table: dict[str, Any]
) -> AsyncIterator[bytes]:
    """The stream's events: ``table`` (every row), ``rows`` (changed rows, and ids gone),
    ``notice`` (why the table may be stale for a moment); comments while nothing changes."""
    yield sse_event("table", table)
    ends = time.monotonic() + STREAM_LIFETIME
    while time.monotonic() < ends:
        try:
            if cursor is None:
                cursor, table = await _call_tracker(request, _snapshot)
                yield sse_event("table", table)
                continue
            poll = functools.partial(_poll, since=cursor, timeout=dashboard.poll_seconds)
            answer = await _call_tracker(
                request, poll, threads=dashboard.poll_threads, waiting=True
            )
            cursor = answer.cursor
            changed = answer.job_ids
            if not answer.complete or len(changed) > MAX_ROWS:
                cursor = None  # changes may have been missed: the whole table again
            elif changed:
                rows = await _call_tracker(request, functools.partial(_rows, job_ids=changed))
                yield sse_event("rows", rows)
            else:
                yield sse_comment("no change")
        except (InvalidStateError, DeniedByDrmsError):
            return  # the server is shutting down (its trackers are closed)
        except ContainerTrackerError as exc:
            # Evicted to make room (TryLaterError), the engine away: say so, then start over.
            yield sse_event("notice", {"text": str(exc)})
            cursor = None
            await anyio.sleep(RETRY_SECONDS)


def routes() -> list[Route]:
    """The dashboard's routes, below the server's base path."""
    api: tuple[tuple[str, Callable[[Request], Awaitable[Response]], str], ...] = (
        ("/api/sessions", sessions, "GET"),
        ("/api/jobs", jobs, "GET"),
        ("/api/job", job, "GET"),
        ("/api/output", output, "GET"),
        ("/api/control", control, "POST"),
        ("/api/machines", machines, "GET"),
        ("/api/stream", stream, "GET"),
    )
    pages = [Route(PREFIX, _page, methods=["GET"])]
    pages += [Route(PREFIX + path, _file(path), methods=["GET"]) for path in _ASSETS if path]
    return pages + [Route(PREFIX + path, endpoint, methods=[m]) for path, endpoint, m in api]
