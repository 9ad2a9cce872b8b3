"""The remote client: a JobTracker whose calls go to a server over HTTP.

It speaks the drmaa2os v1 wire format, so it drives our server and the Go server alike.
Against our server it raises exactly the exception classes the server's tracker raised (the
``X-ContainerTracker-Error`` header names them); against a Go server, errors arrive as text
and become :class:`~containertracker.errors.InternalError`. Non-200 answers are errors, never
"no jobs". Every request has a timeout; connection failures are retried (nothing was sent), and
reads are retried once more after a dropped connection. ``wait`` long-polls ``/wait`` and falls
back to polling ``/jobstate`` every 200 ms against a server without it (the Go server), and
for a round while the server's long-poll slots are all taken (it answers TryLaterError).
``changes`` long-polls ``/changes`` the same way (a server without it: UnsupportedOperationError).

Thread-safe: one client (one connection pool) can be shared by many threads.
"""

from __future__ import annotations

import contextlib
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from concurrent import futures
from concurrent.futures import Future
from typing import Any, Final, TypeVar
from urllib.parse import quote

import httpx
from pydantic import ValidationError

from containertracker.errors import (
    ContainerTrackerError,
    DeniedByDrmsError,
    DrmCommunicationError,
    InternalError,
    InvalidArgumentError,
    InvalidStateError,
    JobNotFoundError,
    TryLaterError,
    UnsupportedOperationError,
    WaitTimeoutError,
)
from containertracker.models import JobInfo, JobState, JobTemplate, Machine
from containertracker.remote.wire import (
    ERROR_CLASS_HEADER,
    SESSION_HEADER,
    cursor_from_wire,
    error_from_wire,
)
from containertracker.settings import Settings
from containertracker.tracker import (
    MAX_ARRAY_TASKS,
    ClosesOnExit,
    ControlAction,
    JobChanges,
    check_changes_args,
    control_action,
    refuse_calls_when_closed,
)

__all__ = ["RemoteTracker", "new_remote_tracker"]

_POLL_INTERVAL: Final = 0.2
"""Polling period of ``wait`` against a server without ``/wait`` (the Go client's)."""
_LONG_POLL: Final = 20.0
"""Longest single ``/wait`` request; the server may cut it shorter (its max_wait)."""
_CONNECT_RETRIES: Final = 2
_DEFAULT_STATES: Final = (JobState.DONE, JobState.FAILED)
_T = TypeVar("_T")


class _NoEndpoint(Exception):
    """The server answered 404 without an error class: it lacks this endpoint."""


@refuse_calls_when_closed
class RemoteTracker(ClosesOnExit):
    """A JobTracker (and Closer, ContactStringer, JobTemplater, Monitorer) over HTTP.

    Once closed, every method but ``close`` raises InvalidStateError.

    Args:
        session: the session on the server; sent with every request (a Go server ignores it).
        url: the server's base URL, base path included, e.g. ``http://host:32321/jobs``.
        token: bearer token; ``user``/``password``: basic auth (at most one of the two).
        verify: TLS verification: True (system CAs), False, or an SSLContext.
        timeout: seconds for each request (a long-poll wait adds its own duration).
    """

    def __init__(
        self,
        session: str,
        url: str,
        *,
        token: str | None = None,
        user: str | None = None,
        password: str | None = None,
        verify: bool | ssl.SSLContext = True,
        timeout: float = 60.0,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise InvalidArgumentError(
                f"remote URL {url!r} must start with http:// or https:// (e.g. {_example()})"
            )
        if token and user:
            raise InvalidArgumentError("give either a token or basic-auth credentials, not both")
        self._session = session
        self._url = url.rstrip("/")
        self._timeout = timeout
        self._closed = threading.Event()
        self._closing: Future[None] = Future()
        """Done once closed: what waits in :meth:`_interruptible` race against."""
        self._long_poll = True
        headers = {SESSION_HEADER: session}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            base_url=self._url + "/",
            headers=headers,
            auth=httpx.BasicAuth(user, password or "") if user else None,
            timeout=timeout,
            transport=httpx.HTTPTransport(retries=_CONNECT_RETRIES, verify=verify),
        )

    # -- HTTP --------------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        timeout: float | None = None,
        read_only: bool = False,
    ) -> httpx.Response:
        """Send one request; transport failures and non-200 answers become our errors."""
        if self._closed.is_set():
            raise InvalidStateError("the remote tracker is closed")
        attempts = 2 if read_only else 1
        for attempt in range(attempts):
            try:
                response = self._http.request(
                    method,
                    path,
                    params=params,
                    json=body,
                    timeout=self._timeout if timeout is None else timeout,
                )
                break
            except httpx.TimeoutException as exc:
                raise DrmCommunicationError(
                    f"no answer from {self._url}/{path} within the timeout: {exc}"
                ) from exc
            except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
                # A kept-alive connection the server closed: reads are safe to repeat.
                if attempt + 1 < attempts:
                    continue
                raise DrmCommunicationError(f"connection to {self._url} broke: {exc}") from exc
            except (httpx.TransportError, RuntimeError) as exc:
                if self._closed.is_set():
                    raise InvalidStateError("the remote tracker was closed") from exc
                raise DrmCommunicationError(f"cannot reach {self._url}: {exc}") from exc
        if response.status_code != 200:
            raise self._status_error(path, response)
        if "json" not in response.headers.get("content-type", ""):
            raise InternalError(
                f"{self._url}/{path} answered {response.headers.get('content-type')!r}, "
                "not JSON; is this a containertracker or drmaa2os server?"
            )
        return response

    def _status_error(self, path: str, response: httpx.Response) -> Exception:
        status, text = response.status_code, response.text.strip()
        class_name = response.headers.get(ERROR_CLASS_HEADER)
        if class_name:
            try:
                message = str(response.json().get("Error", text))
            except (ValueError, AttributeError):
                message = text
            return error_from_wire(class_name, message)
        if status in (401, 403):
            return DeniedByDrmsError(
                f"{self._url} refused the request (HTTP {status}: {text}); pass the server's "
                "token (remote_token) or basic-auth credentials (remote_user, remote_password)"
            )
        if status == 404:
            return _NoEndpoint(f"{self._url}/{path} does not exist (HTTP 404)")
        if status in (400, 413):
            return InvalidArgumentError(f"{self._url} rejected the request (HTTP {status}): {text}")
        return DrmCommunicationError(f"{self._url}/{path} answered HTTP {status}: {text}")

    def _get(self, path: str, read_only: bool = True, **params: Any) -> httpx.Response:
        try:
            return self._request("GET", path, params=params, read_only=read_only)
        except _NoEndpoint as exc:
            raise DrmCommunicationError(f"{exc}; is the URL's base path right?") from None

    def _post(self, path: str, body: Any, timeout: float | None = None) -> httpx.Response:
        try:
            return self._request("POST", path, body=body, timeout=timeout)
        except _NoEndpoint as exc:
            raise DrmCommunicationError(f"{exc}; is the URL's base path right?") from None

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            raise InternalError(f"the server sent invalid JSON: {exc}") from None

    def _checked(self, response: httpx.Response) -> Any:
        """The body; an error carried in it (``Error`` key or error string) is raised."""
        data = self._json(response)
        error = data.get("Error") if isinstance(data, dict) else data
        if isinstance(error, str) and error:
            raise error_from_wire(response.headers.get(ERROR_CLASS_HEADER), error)
        return data

    def _list(self, response: httpx.Response) -> list[str]:
        data = self._json(response)
        if data is None:
            return []  # the Go server sends null for an empty category list
        if not isinstance(data, list) or not all(isinstance(x, str) for x in data):
            raise InternalError(f"the server sent {data!r} where a list of strings belongs")
        return data

    @staticmethod
    def _decode(decode: Any, data: Any, what: str) -> Any:
        if not isinstance(data, dict):
            raise InternalError(f"the server sent {data!r} where a {what} object belongs")
        try:
            return decode(data)
        except (ValueError, ValidationError) as exc:
            raise InternalError(f"the server sent an invalid {what}: {exc}") from None

    # -- JobTracker ----------------------------------------------------------------------------

    def list_jobs(self) -> list[str]:
        """Ids of the session's jobs on the server."""
        return self._list(self._get("listjobs"))

    def list_array_jobs(self, array_id: str) -> list[str]:
        """Ids of an array job's tasks."""
        return self._list(self._get("listarrayjobs", arrayJobID=_required(array_id, "array id")))

    def add_job(self, jt: JobTemplate) -> str:
        """Submit a job on the server; return its id."""
        data = self._checked(self._post("addjob", jt.to_remote_dict()))
        return _string(data.get("JobID"), "JobID")

    def add_array_job(
        self, jt: JobTemplate, begin: int, end: int, step: int = 1, max_parallel: int = 0
    ) -> str:
        """Submit an array job on the server; return the array id.

        The request may take ``request_timeout`` plus 0.1 s per task: the server creates every
        task's container before it answers, and a submission is never repeated, so giving up
        early would leave the caller without the id of tasks that do exist.
        """
        body = {**jt.to_remote_dict(), "begin": begin, "end": end}
        body["step"] = step  # always sent: the Go server would turn a missing step into 1
        if max_parallel:
            body["maxParallel"] = max_parallel
        tasks = min(max(0, (end - begin) // step + 1), MAX_ARRAY_TASKS) if step > 0 else 0
        data = self._checked(self._post("addarrayjob", body, self._timeout + 0.1 * tasks))
        return _string(data.get("JobID"), "JobID")

    def job_state(self, job_id: str) -> tuple[JobState, str]:
        """The job's state and sub-state, as the server's tracker sees them now."""
        data = self._checked(self._get("jobstate", jobID=_required(job_id, "job id")))
        return JobState.from_remote_name(str(data.get("JobState"))), str(
            data.get("JobSubState") or ""
        )

    def job_info(self, job_id: str) -> JobInfo:
        """The job's JobInfo (``wallclock_time`` has whole seconds on the wire)."""
        data = self._checked(self._get("jobinfo", jobID=_required(job_id, "job id")))
        info: JobInfo = self._decode(JobInfo.from_remote_dict, data, "JobInfo")
        return info

    def job_control(self, job_id: str, action: ControlAction) -> None:
        """Apply terminate, suspend, resume, hold or release on the server."""
        self._checked(
            self._get(
                "jobcontrol",
                False,
                jobID=_required(job_id, "job id"),
                action=control_action(action),
            )
        )

    def delete_job(self, job_id: str) -> None:
        """Remove a finished job on the server."""
        self._checked(self._get("deletejob", False, jobID=_required(job_id, "job id")))

    def list_job_categories(self) -> list[str]:
        """The images the server's engine has."""
        return self._list(self._get("listjobcategories"))

    def wait(self, job_id: str, timeout: float | None, *states: JobState) -> JobState:
        """Block until the job reaches one of ``states`` (default DONE or FAILED).

        Long-polls the server's ``/wait`` in rounds of at most 20 s; against a server without
        it, polls the state every 200 ms, and so for a round when the server has no long-poll
        slot free.

        Raises:
            WaitTimeoutError: ``timeout`` seconds passed first.
        """
        _required(job_id, "job id")
        if timeout is not None and timeout < 0:
            raise InvalidArgumentError(f"timeout must be None or >= 0, not {timeout}")
        wanted = states or _DEFAULT_STATES
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._long_poll:
            left = _LONG_POLL if deadline is None else max(0.0, deadline - time.monotonic())
            round_left = min(left, _LONG_POLL)
            try:
                try:
                    return self._interruptible(self._wait_round, job_id, round_left, wanted)
                except TryLaterError:
                    # Every long-poll slot of the server is taken: poll /jobstate for a round.
                    return self._poll(job_id, time.monotonic() + round_left, timeout, wanted)
            except WaitTimeoutError:
                if deadline is not None and time.monotonic() >= deadline:
                    raise
            except _NoEndpoint:
                self._long_poll = False  # a Go server: poll from now on
        return self._poll(job_id, deadline, timeout, wanted)

    def _interruptible(self, call: Callable[..., _T], *args: Any) -> _T:
        """``call(*args)`` in a daemon thread, returning early if the tracker is closed.

        Why: a request blocked reading a socket cannot be woken from another thread (closing
        the client does not interrupt it), so close() would otherwise leave a waiter hanging
        for a whole long-poll round. The abandoned request ends by itself within the round.
        """
        result: Future[_T] = Future()

        def run() -> None:
            try:
                result.set_result(call(*args))
            except BaseException as exc:  # handed to the caller's thread
                result.set_exception(exc)

        threading.Thread(target=run, name="containertracker-remote-wait", daemon=True).start()
        either: list[Future[Any]] = [result, self._closing]
        futures.wait(either, return_when=futures.FIRST_COMPLETED)
        if not result.done():
            raise InvalidStateError("the remote tracker was closed while waiting")
        return result.result()

    def _wait_round(self, job_id: str, seconds: float, wanted: tuple[JobState, ...]) -> JobState:
        params: dict[str, Any] = {
            "jobID": job_id,
            "timeout": f"{seconds:.3f}",
            "state": [s.remote_name for s in wanted],
        }
        response = self._request(
            "GET", "wait", params=params, timeout=self._timeout + seconds, read_only=True
        )
        return JobState.from_remote_name(str(self._checked(response).get("JobState")))

    def _poll(
        self,
        job_id: str,
        deadline: float | None,
        timeout: float | None,
        wanted: tuple[JobState, ...],
    ) -> JobState:
        while True:
            state, _ = self.job_state(job_id)
            if state in wanted:
                return state
            if state.terminal:
                raise InvalidStateError(
                    f"job {job_id} ended {state.drmaa2_name} and can never become "
                    + " or ".join(s.drmaa2_name for s in wanted)
                )
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeoutError(
                    f"job {job_id} did not reach {', '.join(s.drmaa2_name for s in wanted)} "
                    f"within {timeout} s (it is {state.drmaa2_name})"
                )
            pause = _POLL_INTERVAL
            if deadline is not None:
                pause = min(pause, max(0.0, deadline - time.monotonic()))
            if self._closed.wait(pause):
                raise InvalidStateError("the remote tracker was closed while waiting")

    # -- optional capabilities ----------------------------------------------------------------

    def changes(self, since: int | None, timeout: float) -> JobChanges:
        """The session's jobs with an event after cursor ``since`` on the server (the
        ChangeFeed contract), long-polling ``/changes`` in rounds of at most 20 s (the server
        may cut them shorter) up to ``timeout``.

        While every feed-poll slot of the server is taken, or when the server closed the
        session's tracker under the poll to make room for another session (TryLaterError
        both), asks again every 200 ms; at the timeout it answers no ids with the cursor
        unchanged (nothing is lost: the next call catches up). A cursor from before a
        restart of the server, or from a tracker it closed since, reads as another tracker's
        there: ``complete=False``, with the new tracker's cursor. Cursors travel as decimal
        strings (they are 128 bits wide).

        Raises:
            UnsupportedOperationError: the server has no ``/changes`` (an older one, or the
                Go server), or its tracker no change feed.
            InvalidArgumentError: bad ``since`` or ``timeout``.
            DrmCommunicationError: the server cannot be reached, or closed the session's
                tracker under the poll (it shuts down).
            InvalidStateError: this tracker is closed (a close wakes a blocked caller).
        """
        check_changes_args(since, timeout)
        deadline = time.monotonic() + timeout
        while True:
            left = max(0.0, deadline - time.monotonic())
            try:
                answer = self._interruptible(self._changes_round, since, min(left, _LONG_POLL))
            except _NoEndpoint as exc:
                raise UnsupportedOperationError(
                    f"{exc}: the server offers no change feed"
                ) from None
            except TryLaterError:
                # Only polls with a cursor take a slot or are cut short by the session's
                # eviction; at the deadline, "nothing yet" with the cursor unchanged is true
                # enough: the next call catches up from it (complete=False, if evicted).
                if since is None:
                    raise
                if time.monotonic() >= deadline:
                    return JobChanges(since, [], True)
                if self._closed.wait(min(_POLL_INTERVAL, left)):
                    raise InvalidStateError("the remote tracker was closed while waiting") from None
                continue
            except InvalidStateError as exc:
                if self._closed.is_set():
                    raise
                # The server closed its tracker under the poll: it is shutting down. Asked
                # again after its restart, the cursor reads as foreign: complete=False.
                raise DrmCommunicationError(
                    f"the server closed the session's tracker ({exc}); is it shutting down?"
                ) from None
            if since is None or answer.job_ids or not answer.complete:
                return answer
            if time.monotonic() >= deadline:
                return answer
            since = answer.cursor

    def _changes_round(self, since: int | None, seconds: float) -> JobChanges:
        params: dict[str, Any] = {"timeout": f"{seconds:.3f}"}
        if since is not None:
            params["since"] = str(since)  # decimal, as cursor_from_wire reads it
        response = self._request(
            "GET", "changes", params=params, timeout=self._timeout + seconds, read_only=True
        )
        data = self._json(response)
        if not isinstance(data, dict):
            raise InternalError(f"the server sent {data!r} where a JobChanges object belongs")
        job_ids, complete = data.get("JobIDs"), data.get("Complete")
        try:
            cursor = cursor_from_wire(data.get("Cursor"))  # a decimal string on the wire
        except ValueError:
            cursor = -1
        if (
            cursor < 0
            or not isinstance(job_ids, list)
            or not all(isinstance(x, str) for x in job_ids)
            or not isinstance(complete, bool)
        ):
            raise InternalError(f"the server sent an invalid JobChanges: {str(data)[:300]}")
        return JobChanges(cursor, job_ids, complete)

    def job_template(self, job_id: str) -> JobTemplate:
        """The template the job was submitted with."""
        data = self._checked(self._get("jobtemplate", jobID=_required(job_id, "job id")))
        jt: JobTemplate = self._decode(JobTemplate.from_remote_dict, data, "JobTemplate")
        return jt

    def contact(self) -> str:
        """``<server url>?session=<session>``."""
        return f"{self._url}?session={quote(self._session)}"

    def open_monitoring_session(self, name: str) -> None:
        """Monitoring sessions keep no state: nothing to do."""

    def close_monitoring_session(self, name: str) -> None:
        """Monitoring sessions keep no state: nothing to do."""

    def get_all_job_ids(self, filter: JobInfo | None = None) -> list[str]:
        """Ids of every container on the server's engine matching ``filter``."""
        body = filter.to_remote_dict() if filter is not None else None
        try:
            response = self._request("POST", "monitor/jobids", body=body, read_only=True)
        except _NoEndpoint as exc:
            raise _no_monitoring(exc) from None
        return self._list(response)

    def get_all_queue_names(self, filter: list[str] | None = None) -> list[str]:
        """Container engines have no queues: always empty."""
        return []

    def get_all_machines(self, filter: list[str] | None = None) -> list[Machine]:
        """The server's engine host, optionally only if named in ``filter``."""
        params = {"name": filter} if filter else None
        try:
            response = self._request("GET", "monitor/machines", params=params, read_only=True)
        except _NoEndpoint as exc:
            raise _no_monitoring(exc) from None
        data = self._json(response)
        if not isinstance(data, list):
            raise InternalError(f"the server sent {data!r} where a list of machines belongs")
        return [self._decode(Machine.from_go_dict, item, "Machine") for item in data]

    def job_info_from_monitor(self, job_id: str) -> JobInfo:
        """JobInfo of any container on the server's engine."""
        try:
            response = self._request(
                "GET", "monitor/jobinfo", params={"jobID": job_id}, read_only=True
            )
        except _NoEndpoint as exc:
            raise _no_monitoring(exc) from None
        info: JobInfo = self._decode(JobInfo.from_remote_dict, self._checked(response), "JobInfo")
        return info

    def close(self) -> None:
        """Close the connections; pending waits end with InvalidStateError, and so does every
        later call. Idempotent."""
        self._closed.set()
        with contextlib.suppress(futures.InvalidStateError):  # closed already
            self._closing.set_result(None)
        self._http.close()

    def __repr__(self) -> str:
        return f"RemoteTracker({self._session!r}, {self._url!r})"


def _example() -> str:
    return "http://localhost:32321"


def _required(value: str, what: str) -> str:
    if not value:
        raise JobNotFoundError(f"the {what} must not be empty")
    return value


def _string(value: object, key: str) -> str:
    if not isinstance(value, str) or not value:
        raise InternalError(f"the server's answer has no {key}")
    return value


def _no_monitoring(exc: Exception) -> ContainerTrackerError:
    return UnsupportedOperationError(f"{exc}: the server offers no monitoring")


def new_remote_tracker(session: str, params: Mapping[str, Any] | None = None) -> RemoteTracker:
    """Allocator for ``new_job_tracker("remote", session, params)``.

    Reads ``remote_url``, ``remote_token``, ``remote_user``, ``remote_password``,
    ``remote_ca_file`` and ``request_timeout`` from the settings and ``params``; the engine
    settings belong to the server and are ignored here.

    Raises:
        InvalidArgumentError: bad params.
    """
    settings = Settings.from_params(params)
    return RemoteTracker(
        session,
        settings.remote_url,
        token=settings.remote_token.get_secret_value() if settings.remote_token else None,
        user=settings.remote_user,
        password=settings.remote_password.get_secret_value() if settings.remote_password else None,
        verify=(
            ssl.create_default_context(cafile=str(settings.remote_ca_file))
            if settings.remote_ca_file
            else True
        ),
        timeout=settings.request_timeout,
    )
