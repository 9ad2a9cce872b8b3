"""The server's ASGI application: any registered tracker over the drmaa2os v1 HTTP API.

Wire compatibility with the Go server (reference section 5): the same paths under an optional
base path, the same JSON shapes (``JobID``/``Error``, ``JobState``/``JobSubState``, JobInfo
plus ``Error``, a JSON string for jobcontrol/deletejob, ``[]`` for empty lists), tracker errors
as HTTP 200 with the message in the body, and 400 with Go's texts for missing parameters.
Each endpoint's decorator says how its tracker errors go out: :func:`_errors_in_body` (the Go
shapes with an ``Error`` slot) or :func:`_errors_as_status` (the lists, which have none).

What we add, all ignorable by a Go client: the error class in the ``X-ContainerTracker-Error``
header; an ``Error`` key in jobstate answers; real HTTP errors (with ``{"Error": ...}``) where
the Go server silently sent an empty list; the endpoints ``/wait`` and ``/changes`` (long polls),
``/jobtemplate``, ``/monitor/*``; a session header; auth, TLS, a body size limit and an
admission :class:`~containertracker.remote.policy.Policy`; ``/openapi.json``; the web
dashboard at ``/ui`` (:mod:`containertracker.remote.dashboard`, on this module's helpers).

Requests run concurrently: each tracker call runs in a worker thread, with no lock around
engine calls (trackers are thread-safe). Long polls have their own bounded sets of threads,
one for ``/wait`` (``max_waiters``), one for ``/changes`` (``max_feed_polls``): when one is
full, its endpoint answers TryLaterError at once (clients then poll ``/jobstate``, or ask
again), and ordinary requests keep their own threads whatever the long polls do. A session
whose only requests are long polls (``/wait``, ``/changes``: each open JobSession of a remote
client keeps one feed poll in flight) stays evictable from the pool: evicting it wakes its
polls, which answer TryLaterError, so long polls never lock other sessions out.

Before any endpoint runs, the middleware refuses a foreign ``Host`` (DNS rebinding), a
cross-site browser request (CSRF), a non-JSON body, a request without valid credentials (when
the server has any) and a body beyond the size limit; a token bound to sessions is refused
for other sessions.
"""

from __future__ import annotations

import contextlib
import functools
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import yaml
from loguru import logger
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.types import ASGIApp

from containertracker.errors import (
    ContainerTrackerError,
    DeniedByDrmsError,
    InternalError,
    InvalidArgumentError,
    TryLaterError,
    UnsupportedOperationError,
)
from containertracker.models import JobInfo, JobState, JobTemplate
from containertracker.remote.middleware import (
    GRANT_KEY,
    BearerOrBasicAuth,
    BodyLimit,
    BodyTooLarge,
    CrossSiteGuard,
    PathHeaders,
)
from containertracker.remote.policy import Policy
from containertracker.remote.pool import TrackerPool
from containertracker.remote.tokens import Credentials, Grant
from containertracker.remote.wire import (
    ERROR_CLASS_HEADER,
    SESSION_HEADER,
    STATUS_OF_ERROR,
    WILDCARD_HOSTS,
    cursor_from_wire,
    error_class_name,
    is_loopback,
    parse_states,
)
from containertracker.settings import ServerSettings
from containertracker.tracker import (
    ChangeFeed,
    JobChanges,
    JobTemplater,
    JobTracker,
    Monitorer,
    control_action,
)

__all__ = ["PATHS", "allowed_hosts", "create_app", "openapi_document", "policy"]

T = TypeVar("T")

_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


class _BadRequest(Exception):
    """A request the server cannot parse: HTTP 400 with Go's plain-text message."""


class _SlowBody(Exception):
    """The client took longer than the body timeout to send its body: HTTP 408."""


@dataclass(frozen=True)
class _Shared:
    """What the endpoints of one app share (built once per app: :meth:`of`)."""

    pool: TrackerPool
    policy: Policy
    max_wait: float
    max_array_bytes: int
    body_timeout: float
    request_threads: anyio.CapacityLimiter
    """Threads of every request but long polls (``worker_threads``): a reserve long polls
    cannot take, so submissions and state queries keep answering while polls wait."""
    changes: anyio.CapacityLimiter
    """Requests that change jobs (submissions, controls, deletions) in ``request_threads``
    at once: at most half of them. Each may hold its thread for seconds while a busy engine
    creates, starts or stops containers (100 clients submitting at once kept every thread
    so, and a state query waited a second for one); more of them at once would not make
    the engine faster, and the other threads keep answering reads. A request waits for
    its turn without a thread."""
    long_polls: anyio.CapacityLimiter
    """``/wait`` long polls in flight (``max_waiters``): each holds a thread for up to
    ``max_wait``. Taken without waiting, or the poll is refused (a queued poll would hold its
    connection and answer late; the client polls ``/jobstate`` instead)."""
    feed_polls: anyio.CapacityLimiter
    """``/changes`` long polls in flight (``max_feed_polls``), taken as ``long_polls``: its
    own set, so that the feed polls of many sessions never starve ``/wait``."""

    @classmethod
    def of(cls, pool: TrackerPool, settings: ServerSettings) -> _Shared:
        """What the endpoints serving ``pool`` as ``settings`` say share."""
        return cls(
            pool=pool,
            policy=policy(settings),
            max_wait=settings.max_wait,
            max_array_bytes=settings.max_array_bytes,
            body_timeout=settings.body_timeout,
            request_threads=anyio.CapacityLimiter(settings.worker_threads),
            changes=anyio.CapacityLimiter(max(1, settings.worker_threads // 2)),
            long_polls=anyio.CapacityLimiter(settings.max_waiters),
            feed_polls=anyio.CapacityLimiter(settings.max_feed_polls),
        )


def _shared(request: Request) -> _Shared:
    shared: _Shared = request.app.state.shared
    return shared


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


async def _body(request: Request) -> bytes:
    """The request body, read within the body timeout."""
    try:
        with anyio.fail_after(_shared(request).body_timeout):
            return await request.body()
    except TimeoutError:
        raise _SlowBody(
            f"the request body did not arrive within {_shared(request).body_timeout} s"
        ) from None


MAX_JSON_DEPTH = 32
"""Deepest nesting of arrays and objects a request body may have: the server's bodies nest
a few levels (a template's lists and maps); deeper ones are refused before any code walks
them (recursive code, Python's ``repr`` included, would fail on them)."""


async def _json_object(request: Request) -> dict[str, Any]:
    """The request body, a JSON object nested at most :data:`MAX_JSON_DEPTH` deep.

    Raises:
        _BadRequest: the body is not that (invalid, too deep, not an object).
    """
    try:
        data = json.loads(await _body(request))
    except RecursionError:
        # The parser recurses per level: a body of '[' * 100000 exhausts the stack.
        raise _BadRequest(_too_deep()) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise _BadRequest(f"can't unmarshal body: {exc}") from None
    if _depth_exceeds(data, MAX_JSON_DEPTH):
        raise _BadRequest(_too_deep())
    if not isinstance(data, dict):
        raise _BadRequest("can't unmarshal body: expected a JSON object")
    return data


def _too_deep() -> str:
    return f"can't unmarshal body: nested deeper than {MAX_JSON_DEPTH} levels"


def _depth_exceeds(data: Any, limit: int) -> bool:
    """Whether parsed JSON ``data`` nests arrays and objects deeper than ``limit`` (walked
    without recursion)."""
    pending: list[tuple[Any, int]] = [(data, 0)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict):
            value = list(value.values())
        if isinstance(value, list):
            if depth >= limit:
                return True
            pending.extend((item, depth + 1) for item in value)
    return False


def _template(data: dict[str, Any]) -> JobTemplate:
    try:
        return JobTemplate.from_remote_dict(data)
    except (ValueError, TypeError) as exc:
        raise _BadRequest(f"can't unmarshal body: {exc}") from None


_GO_INT = range(-(2**63), 2**63)
"""The Go server's ``int``: 64-bit."""


def _integer(data: dict[str, Any], key: str, default: int | None) -> int:
    value = data.get(key)
    if value is None:
        if default is None:
            raise _BadRequest(f"can't unmarshal body: {key} is required")
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise _BadRequest(f"can't unmarshal body: {key} must be an integer, not {value!r}")
    if value not in _GO_INT:
        raise _BadRequest(f"can't unmarshal body: {key} must be a 64-bit integer, not {value}")
    return value


# -- running tracker calls ---------------------------------------------------------------------


async def _call_tracker(
    request: Request,
    work: Callable[[JobTracker], T],
    *,
    threads: anyio.CapacityLimiter | None = None,
    every_session: bool = False,
    waiting: bool = False,
    changing: bool = False,
) -> T:
    """``work(tracker of the request's session)`` in a worker thread (of ``threads``,
    default the request threads); ``waiting``: ``work`` is a long poll that the session's
    eviction may cut short (:meth:`TrackerPool.using`); ``changing``: ``work`` changes jobs,
    and waits for one of :attr:`_Shared.changes` first.

    Raises:
        DeniedByDrmsError: the request's token does not cover its session (or, with
            ``every_session``, does not cover every session).
    """
    shared = _shared(request)
    session = request.headers.get(SESSION_HEADER) or shared.pool.default_session
    grant: Grant | None = request.scope.get(GRANT_KEY)
    if grant is not None and every_session and not grant.every_session:
        raise DeniedByDrmsError(
            "this endpoint looks across sessions, and this token is bound to sessions "
            f"({' '.join(grant.sessions)})"
        )
    if grant is not None and not grant.allows(session):
        raise DeniedByDrmsError(
            f"this token may not use session {session!r} (it may use: {' '.join(grant.sessions)})"
        )

    def call() -> T:
        with shared.pool.using(session, waiting=waiting) as tracker:
            return work(tracker)

    async with shared.changes if changing else contextlib.nullcontext():
        return await anyio.to_thread.run_sync(call, limiter=threads or shared.request_threads)


@contextlib.contextmanager
def _slot_now(slots: anyio.CapacityLimiter, busy: str) -> Iterator[None]:
    """Hold one of ``slots`` for the block (the current task borrows it).

    Raises:
        TryLaterError: every slot is taken; the request is refused at once, not queued
            (a queued one would hold its connection and answer late): "all N ``busy``".
    """
    try:
        slots.acquire_nowait()
    except anyio.WouldBlock:
        raise TryLaterError(f"all {int(slots.total_tokens)} {busy}") from None
    try:
        yield
    finally:
        slots.release()


_LONG_POLLS_BUSY = "long-poll slots of this server are busy; "


# -- answering tracker errors ------------------------------------------------------------------

_Endpoint = Callable[[Request], Awaitable[Response]]


def _error_headers(exc: ContainerTrackerError) -> dict[str, str]:
    return {ERROR_CLASS_HEADER: error_class_name(exc)}


def _answering_errors(
    answer: Callable[[ContainerTrackerError], Response],
) -> Callable[[_Endpoint], _Endpoint]:
    """Endpoint decorator: a ContainerTrackerError the endpoint raises (its tracker's, the
    session check's, the server's own limits') is answered with ``answer(error)``. Requests
    the server cannot parse raise ``_BadRequest`` instead, never a ContainerTrackerError."""

    def decorate(endpoint: _Endpoint) -> _Endpoint:
        @functools.wraps(endpoint)
        async def answered(request: Request) -> Response:
            try:
                return await endpoint(request)
            except ContainerTrackerError as exc:
                return answer(exc)

        return answered

    return decorate


def _errors_in_body(body: Callable[[str], Any]) -> Callable[[_Endpoint], _Endpoint]:
    """Endpoint decorator for the Go shapes with an ``Error`` slot: an error is answered
    as the Go server does, HTTP 200 with ``body(message)`` (plus the error class header)."""

    def answer(exc: ContainerTrackerError) -> Response:
        logger.debug("request failed: {}: {}", type(exc).__name__, exc)
        return JSONResponse(body(str(exc)), headers=_error_headers(exc))

    return _answering_errors(answer)


def _error_status(exc: ContainerTrackerError) -> Response:
    status = next(code for cls, code in STATUS_OF_ERROR if isinstance(exc, cls))
    logger.debug("request failed ({}): {}: {}", status, type(exc).__name__, exc)
    return JSONResponse({"Error": str(exc)}, status_code=status, headers=_error_headers(exc))


_errors_as_status = _answering_errors(_error_status)
"""Endpoint decorator for the Go shapes without an ``Error`` slot (the lists, where the Go
server silently sent an empty list): an error is answered with a real HTTP status
(``STATUS_OF_ERROR``) and ``{"Error": message}``."""


def _monitorer(tracker: JobTracker) -> Monitorer:
    if not isinstance(tracker, Monitorer):
        raise InvalidArgumentError("this server's tracker does not offer monitoring")
    return tracker


def _change_feed(tracker: JobTracker) -> ChangeFeed:
    if not isinstance(tracker, ChangeFeed):
        raise UnsupportedOperationError("this server's tracker offers no change feed")
    return tracker


def _templater(tracker: JobTracker) -> JobTemplater:
    if not isinstance(tracker, JobTemplater):
        raise InvalidArgumentError("this server's tracker does not keep job templates")
    return tracker


# -- endpoints -----------------------------------------------------------------------------------


@_errors_as_status
async def list_jobs(request: Request) -> Response:
    _page(request, [])  # reject bad paging before doing any work
    return JSONResponse(_page(request, await _call_tracker(request, lambda t: t.list_jobs())))


@_errors_as_status
async def list_array_jobs(request: Request) -> Response:
    array_id = _query(request, "arrayJobID")
    _page(request, [])
    ids = await _call_tracker(request, lambda t: t.list_array_jobs(array_id))
    return JSONResponse(_page(request, ids))


@_errors_as_status
async def list_job_categories(request: Request) -> Response:
    return JSONResponse(await _call_tracker(request, lambda t: t.list_job_categories()))


def _job_id_body(job_id: str, error: str = "") -> dict[str, str]:
    return {"JobID": job_id, "Error": error}


@_errors_in_body(lambda error: _job_id_body("", error))
async def add_job(request: Request) -> Response:
    jt = _template(await _json_object(request))
    policy = _shared(request).policy

    def work(tracker: JobTracker) -> str:
        return tracker.add_job(policy.check(jt))

    return JSONResponse(_job_id_body(await _call_tracker(request, work, changing=True)))


@_errors_in_body(lambda error: _job_id_body("", error))
async def add_array_job(request: Request) -> Response:
    data = await _json_object(request)
    jt = _template(data)
    begin, end = _integer(data, "begin", None), _integer(data, "end", None)
    step, max_parallel = _integer(data, "step", 1), _integer(data, "maxParallel", 0)
    shared = _shared(request)
    policy = shared.policy

    def work(tracker: JobTracker) -> str:
        return tracker.add_array_job(policy.check(jt), begin, end, step, max_parallel)

    _check_array_size(_stored_bytes(jt), begin, end, step, shared.max_array_bytes)
    return JSONResponse(_job_id_body(await _call_tracker(request, work, changing=True)))


def _stored_bytes(jt: JobTemplate) -> int:
    """What one task of ``jt`` stores with its container: the template label (base64 of Go
    JSON, which escapes ``<`` as six bytes: up to 8 times the body's size) and the
    environment again, as the container's."""
    environment = sum(len(k.encode()) + len(v.encode()) + 1 for k, v in jt.job_environment.items())
    return len(jt.to_label()) + environment


def _check_array_size(template_bytes: int, begin: int, end: int, step: int, limit: int) -> None:
    """Refuse an array whose tasks' stored templates would take more than ``limit`` bytes
    (``template_bytes`` per task, see :func:`_stored_bytes`): before any work, whatever the
    tracker would say about the array otherwise.

    Raises:
        InvalidArgumentError: template size times task count beyond ``limit``.
    """
    tasks = (end - begin) // step + 1 if step > 0 and end >= begin else 0
    if template_bytes * tasks > limit:
        raise InvalidArgumentError(
            f"the array's {tasks} tasks would store {template_bytes * tasks} bytes of "
            f"templates ({template_bytes} bytes each), more than this server's limit of "
            f"{limit} bytes; submit fewer tasks or a smaller template"
        )


def _state_body(state: JobState, sub_state: str, error: str = "") -> dict[str, str]:
    return {"JobState": state.remote_name, "JobSubState": sub_state, "Error": error}


@_errors_in_body(lambda error: _state_body(JobState.UNDETERMINED, "", error))
async def job_state(request: Request) -> Response:
    job_id = _query(request, "jobID")
    state, sub_state = await _call_tracker(request, lambda t: t.job_state(job_id))
    return JSONResponse(_state_body(state, sub_state))


def _info_body(info: JobInfo, error: str = "") -> dict[str, Any]:
    return {**info.to_remote_dict(), "Error": error}


@_errors_in_body(lambda error: _info_body(JobInfo(), error))
async def job_info(request: Request) -> Response:
    job_id = _query(request, "jobID")
    return JSONResponse(_info_body(await _call_tracker(request, lambda t: t.job_info(job_id))))


# jobcontrol and deletejob answer a bare JSON string: the error text, empty on success.
@_errors_in_body(lambda error: error)
async def job_control(request: Request) -> Response:
    job_id = _query(request, "jobID")
    try:
        action = control_action(_query(request, "action"))
    except InvalidArgumentError as exc:
        # A malformed parameter, not the tracker's answer: HTTP 400 like any other, before
        # the decorator could put it in the body.
        raise _BadRequest(f"Invalid format for parameter action: {exc}") from None
    await _call_tracker(request, lambda t: t.job_control(job_id, action), changing=True)
    return JSONResponse("")


@_errors_in_body(lambda error: error)
async def delete_job(request: Request) -> Response:
    job_id = _query(request, "jobID")
    await _call_tracker(request, lambda t: t.delete_job(job_id), changing=True)
    return JSONResponse("")


@_errors_in_body(lambda error: _state_body(JobState.UNDETERMINED, "", error))
async def wait(request: Request) -> Response:
    """Long poll: block up to ``min(timeout, max_wait)`` seconds for the job to reach a state.

    A timeout answers ``Error`` with class WaitTimeoutError; clients with a longer deadline
    simply ask again. When every long-poll slot is taken, TryLaterError at once.
    """
    job_id = _query(request, "jobID")
    shared = _shared(request)
    timeout = _number(request, "timeout", shared.max_wait)
    assert timeout is not None
    try:
        states = parse_states(request.query_params.getlist("state"))
    except ValueError as exc:
        raise _BadRequest(f"Invalid format for parameter state: {exc}") from None

    def work(tracker: JobTracker) -> tuple[JobState, str]:
        reached = tracker.wait(job_id, min(timeout, shared.max_wait), *states)
        return reached, tracker.job_state(job_id)[1] if reached == JobState.FAILED else ""

    with _slot_now(shared.long_polls, _LONG_POLLS_BUSY + "poll /jobstate instead"):
        # A thread of its own, taken at once: the slot is what bounds long polls, and they
        # must not take the request threads (nor anyio's default ones, which Starlette uses).
        own_thread = anyio.CapacityLimiter(1)
        # waiting: a session whose requests are only waits stays evictable (else as many
        # waiting clients as the pool keeps sessions would lock every other session out);
        # an evicted wait answers TryLaterError, and its client polls /jobstate meanwhile.
        state, sub_state = await _call_tracker(request, work, threads=own_thread, waiting=True)
    return JSONResponse(_state_body(state, sub_state))


def _cursor(request: Request) -> int | None:
    """The optional ``since`` parameter: a cursor, as :func:`cursor_from_wire` reads it (a
    decimal string of at most 39 ASCII digits, below 2**128).

    Raises:
        InvalidArgumentError: anything else (a sign, a fraction, an empty value, too many
            digits).
    """
    text = request.query_params.get("since")
    if text is None:
        return None
    try:
        return cursor_from_wire(text)
    except ValueError:
        raise InvalidArgumentError(
            "since must be a cursor a /changes answer gave (a decimal integer >= 0 below "
            f"2**128), not {text[:40]!r}"
        ) from None


def _seconds(request: Request, name: str, default: float) -> float:
    """An optional parameter of seconds: a finite number >= 0.

    Raises:
        InvalidArgumentError: anything else.
    """
    try:
        value = _number(request, name, default)
    except _BadRequest as exc:
        raise InvalidArgumentError(str(exc)) from None
    assert value is not None
    return value


@_errors_as_status
async def changes(request: Request) -> Response:
    """Long poll of the session's change feed: the jobs with an event after cursor ``since``,
    waiting up to ``min(timeout, max_wait)`` seconds for one; without ``since``, the cursor of
    now, at once. Answers ``{"Cursor": "<decimal>", "JobIDs": [...], "Complete": bool}``;
    clients with a longer timeout simply ask again. TryLaterError (503) at once when every
    feed-poll slot is taken, or when the session's tracker is evicted under the poll (the
    poll does not keep it open: asked again, a reopened tracker answers Complete false).
    """
    since = _cursor(request)
    shared = _shared(request)
    timeout = min(_seconds(request, "timeout", shared.max_wait), shared.max_wait)

    def work(tracker: JobTracker) -> JobChanges:
        return _change_feed(tracker).changes(since, timeout)

    if since is None:
        answer = await _call_tracker(request, work)
    else:
        with _slot_now(shared.feed_polls, _LONG_POLLS_BUSY + "ask again later instead"):
            # As /wait: a thread of its own, so that polls never take the request threads.
            # Waiting: the session stays evictable, so that polls never lock others out.
            answer = await _call_tracker(
                request, work, threads=anyio.CapacityLimiter(1), waiting=True
            )
    # The cursor as a decimal string: it is 128 bits wide, beyond JSON numbers' precision.
    return JSONResponse(
        {"Cursor": str(answer.cursor), "JobIDs": answer.job_ids, "Complete": answer.complete}
    )


def _template_body(jt: JobTemplate, error: str = "") -> dict[str, Any]:
    return {**jt.to_remote_dict(), "Error": error}


@_errors_in_body(lambda error: _template_body(JobTemplate(), error))
async def job_template(request: Request) -> Response:
    job_id = _query(request, "jobID")
    jt = await _call_tracker(request, lambda t: _templater(t).job_template(job_id))
    return JSONResponse(_template_body(jt))


@_errors_as_status
async def monitor_job_ids(request: Request) -> Response:
    """Job ids matching a JobInfo filter; missing or null filter keys are unset (match all)."""
    raw = await _json_object(request) if await _body(request) else None
    wanted = None
    if raw is not None:
        data = {**JobInfo().to_remote_dict(), **{k: v for k, v in raw.items() if v is not None}}
        try:
            parse_states([data["state"]])  # a typo must not become "undetermined"
            wanted = JobInfo.from_remote_dict(data)
        except (ValueError, TypeError) as exc:
            raise _BadRequest(f"can't unmarshal body: {exc}") from None
    ids = await _call_tracker(
        request, lambda t: _monitorer(t).get_all_job_ids(wanted), every_session=True
    )
    return JSONResponse(ids)


@_errors_as_status
async def monitor_machines(request: Request) -> Response:
    names = request.query_params.getlist("name") or None
    machines = await _call_tracker(
        request, lambda t: _monitorer(t).get_all_machines(names), every_session=True
    )
    return JSONResponse([m.to_go_dict() for m in machines])


@_errors_in_body(lambda error: _info_body(JobInfo(), error))
async def monitor_job_info(request: Request) -> Response:
    job_id = _query(request, "jobID")
    info = await _call_tracker(
        request, lambda t: _monitorer(t).job_info_from_monitor(job_id), every_session=True
    )
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


_ROUTES: tuple[tuple[str, _Endpoint, str], ...] = (
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
    ("/changes", changes, "GET"),
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


async def _slow_body(request: Request, exc: Exception) -> Response:
    return PlainTextResponse(str(exc), status_code=408, headers={"Connection": "close"})


async def _internal_error(request: Request, exc: Exception) -> Response:
    # A bug: log it with its traceback under an incident id; the client gets the Go-style
    # error object with only that id (exception texts can carry paths, values, secrets).
    incident = uuid.uuid4().hex[:12]
    logger.opt(exception=exc).error(
        "unexpected error serving {} (incident {})", request.url.path, incident
    )
    error = InternalError(f"internal server error (incident {incident} in the server's log)")
    return JSONResponse({"Error": str(error)}, status_code=500, headers=_error_headers(error))


# -- the application -----------------------------------------------------------------------------


def policy(settings: ServerSettings) -> Policy:
    """The admission policy ``settings`` describe (each Policy field is the setting of
    the same name)."""
    values = {name: getattr(settings, name) for name in Policy.__dataclass_fields__}
    return Policy(**{**values, "allowed_host_paths": tuple(settings.allowed_host_paths)})


def allowed_hosts(settings: ServerSettings) -> list[str]:
    """The ``Host`` header names the server answers (DNS rebinding defence): the bound
    address, loopback names when bound to loopback, and ``settings.allowed_hosts``; any
    (``*``) when bound to a wildcard address and none are listed."""
    bound = settings.host.lower()
    if bound in WILDCARD_HOSTS:
        return list(settings.allowed_hosts) or ["*"]
    names = [f"[{bound}]" if ":" in bound else bound, *settings.allowed_hosts]
    if is_loopback(bound):
        names += _LOOPBACK_NAMES
    return list(dict.fromkeys(names))


def create_app(
    pool: TrackerPool,
    settings: ServerSettings | None = None,
    *,
    credentials: Credentials | None = None,
) -> Starlette:
    """The ASGI application serving ``pool`` as ``settings`` say (defaults: ServerSettings()).

    The pool is confined as the settings say (host path roots, monitoring only of trackers'
    containers): its trackers that are not are closed and never handed out. The app closes
    the pool's trackers when it shuts down. ``credentials`` are ``Credentials(settings)``
    when the caller has read them already (:func:`~containertracker.remote.server.serve`
    reads the token file once); default: read them now.

    Raises:
        InvalidArgumentError: a bad base path, a short token, an invalid token file, or
            ``credentials`` read from other settings.
    """
    # The web dashboard builds on this module's endpoint helpers: imported once they exist.
    from containertracker.remote import dashboard

    settings = settings or ServerSettings()
    base_path = _base_path(settings)
    credentials = Credentials.of(settings, read=credentials)
    public_paths = [base_path + path for path in dashboard.PUBLIC_PATHS]
    middleware = _middleware(settings, credentials, public_paths)
    app = _App(
        outermost=_outermost_middleware(base_path + dashboard.PREFIX, dashboard.SECURITY_HEADERS),
        routes=_routes(base_path, dashboard.routes()),
        middleware=middleware,
        exception_handlers={
            _BadRequest: _bad_request,
            BodyTooLarge: _too_large,
            _SlowBody: _slow_body,
            Exception: _internal_error,
        },
        lifespan=_closing_at_shutdown(pool),
    )
    # No trailing-slash redirects: their target would be built from the Host header.
    app.router.redirect_slashes = False
    # Every tracker serving this app confines host paths as the server allows, and shows
    # only trackers' containers unless the server allows all, however the pool was built
    # (the policy only refuses all host paths early when none are allowed).
    pool.confine(
        settings.allowed_host_paths, monitor_all_containers=settings.monitor_all_containers
    )
    app.state.shared = _Shared.of(pool, settings)
    app.state.base_path = base_path
    dashboard.install(app, settings, credentials)
    return app


def _base_path(settings: ServerSettings) -> str:
    """The path the endpoints lie below (``""``: the root), without a trailing slash.

    Raises:
        InvalidArgumentError: it does not start with ``/``.
    """
    base_path = settings.base_path.rstrip("/")
    if base_path and not base_path.startswith("/"):
        raise InvalidArgumentError(f"base_path must start with '/', not {settings.base_path!r}")
    return base_path


def _routes(base_path: str, dashboard_routes: Sequence[BaseRoute]) -> list[BaseRoute]:
    """Every endpoint (and the dashboard's), below ``base_path``, without trailing-slash
    redirects (their target would be built from the Host header)."""
    routes: list[BaseRoute] = [
        Route(path, endpoint, methods=[method]) for path, endpoint, method in _ROUTES
    ]
    routes += dashboard_routes
    if not base_path:
        return routes
    return [Mount(base_path, app=Router(routes, redirect_slashes=False))]


class _App(Starlette):
    """Starlette with ``outermost`` middleware outside even its error handling
    (``ServerErrorMiddleware``, which answers unexpected errors with a 500): what must
    mark every answer, a 500 included."""

    def __init__(self, *, outermost: list[Middleware], **kwargs: Any) -> None:
        self._outermost = outermost
        super().__init__(**kwargs)

    def build_middleware_stack(self) -> ASGIApp:
        app = super().build_middleware_stack()
        for cls, args, kwargs in reversed(self._outermost):
            app = cls(app, *args, **kwargs)
        return app


def _outermost_middleware(prefix: str, headers: Mapping[str, str]) -> list[Middleware]:
    """Outside everything: the web dashboard's ``headers`` go on every answer below its path
    ``prefix``, refusals and 500s included."""
    return [Middleware(PathHeaders, prefix=prefix, headers=headers)]


def _middleware(
    settings: ServerSettings, credentials: Credentials, public_paths: list[str]
) -> list[Middleware]:
    """What refuses a request before any endpoint sees it, outermost first: refusals that
    need no credentials come before the credential check (which ``public_paths``, the
    dashboard's page files, need not pass)."""
    middleware = [
        Middleware(
            TrustedHostMiddleware, allowed_hosts=allowed_hosts(settings), www_redirect=False
        ),
        Middleware(CrossSiteGuard, allowed_origins=settings.allowed_origins),
    ]
    if credentials.required:
        middleware.append(
            Middleware(
                BearerOrBasicAuth,
                grants=credentials.grants,
                user=settings.user,
                password=credentials.password,
                public_paths=public_paths,
            )
        )
    middleware.append(Middleware(BodyLimit, limit=settings.max_body_bytes))
    return middleware


def _closing_at_shutdown(
    pool: TrackerPool,
) -> Callable[[Starlette], contextlib.AbstractAsyncContextManager[None]]:
    """The app's lifespan: close ``pool``'s trackers when the app shuts down."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(pool.close)

    return lifespan
