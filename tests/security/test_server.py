"""Attacks on ``containertracker serve`` (issue 17, items 4-10 and 13), each replayed over real
HTTP against a real server on loopback in front of a real engine, and now refused with nothing
created: cross-site requests and DNS rebinding, long-poll starvation and silent connections,
monitoring of foreign containers, sessions without isolation, what the policy let through,
500s that quoted exceptions, and redirects built from the Host header."""

from __future__ import annotations

import contextlib
import json
import resource
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from loguru import logger

import containertracker
from containertracker import (
    DeniedByDrmsError,
    InvalidArgumentError,
    JobNotFoundError,
    JobState,
    JobTemplate,
)
from containertracker.core import labels
from containertracker.core.engine import ContainerSpec, Engine
from containertracker.remote import ServerThread, TrackerPool
from containertracker.remote.wire import ERROR_CLASS_HEADER
from containertracker.settings import ServerSettings
from tests.conftest import TEST_IMAGE, check_engine, client, engine_params

pytestmark = pytest.mark.only_engines("docker", "podman")

GO_BODY = {"remoteCommand": "sleep", "args": ["30"], "jobCategory": TEST_IMAGE}
"""What a page would post: a valid template (the Go client's keys)."""


@pytest.fixture
def serve(backend: str, state_dir: Path, session_name: str) -> Iterator[Callable[..., Any]]:
    """``with serve(**server_settings) as url`` runs a server whose default session is the
    test's, with trackers configured as ``containertracker serve`` configures them; every job
    of the sessions named in ``sessions`` (and the test's) is removed afterwards."""
    check_engine(backend, state_dir)
    sessions = {session_name}

    @contextmanager
    def running(**settings: Any) -> Iterator[str]:
        server_settings = ServerSettings(port=0, **settings)
        params = engine_params(backend, state_dir)
        pool = TrackerPool.for_backend(backend, session_name, params)  # the app confines it
        with ServerThread(pool, server_settings) as url:
            yield url

    running.sessions = sessions  # type: ignore[attr-defined]
    yield running
    for session in sessions:
        with containertracker.new_job_tracker(
            backend, session, engine_params(backend, state_dir)
        ) as t:
            for job_id in t.list_jobs():
                t._engine.remove(job_id)  # type: ignore[attr-defined]


def session_containers(engine: Engine, session: str) -> list[str]:
    return [row.id for row in engine.list_containers({labels.SESSION: session})]


# -- item 4: cross-site requests and DNS rebinding -----------------------------------------------


def test_cross_site_post_is_refused(serve, engine: Engine, session_name: str) -> None:
    """A page posts a template as text/plain (no CORS preflight) with its Origin."""
    with serve() as url, httpx.Client(base_url=url) as http:
        body = json.dumps(GO_BODY)
        page = {"Origin": "http://evil.example", "Content-Type": "text/plain"}
        refused = http.post("/addjob", content=body, headers=page)
        assert refused.status_code == 403 and "cross-site" in refused.text
        # Even without an Origin (an old browser, a form), a non-JSON body is refused.
        plain = http.post("/addjob", content=body, headers={"Content-Type": "text/plain"})
        assert plain.status_code == 415
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        assert http.post("/addarrayjob", content=body, headers=form).status_code == 415
        # A JSON post with a foreign Origin (a page after a CORS preflight we never allow).
        foreign = http.post("/addjob", json=GO_BODY, headers={"Origin": "http://evil.example"})
        assert foreign.status_code == 403
        assert http.get("/listjobs").json() == []
    assert session_containers(engine, session_name) == []


def test_cross_site_gets_do_not_change_state(serve, session_name: str) -> None:
    """``<img src=".../deletejob?jobID=...">``: no Origin, but Sec-Fetch-Site: cross-site."""
    with serve() as url, client(url, session_name) as tracker, httpx.Client(base_url=url) as http:
        job_id = tracker.add_job(JobTemplate(remote_command="sleep", args=["30"],
                                             job_category=TEST_IMAGE))  # fmt: skip
        for site in ("cross-site", "same-site"):
            img = {"Sec-Fetch-Site": site}
            control = http.get("/jobcontrol", params={"jobID": job_id, "action": "terminate"},
                               headers=img)  # fmt: skip
            assert control.status_code == 403
            assert http.get("/deletejob", params={"jobID": job_id}, headers=img).status_code == 403
            assert http.get("/listjobs", headers=img).status_code == 403
        assert tracker.job_state(job_id)[0] in (JobState.QUEUED, JobState.RUNNING)
        # What a user does in the address bar (none) or the server's own origin is fine.
        assert http.get("/listjobs", headers={"Sec-Fetch-Site": "none"}).json() == [job_id]
        own = {"Origin": url.rstrip("/"), "Sec-Fetch-Site": "same-origin"}
        assert http.get("/listjobs", headers=own).json() == [job_id]


def test_an_allowed_origin_may_call(serve) -> None:
    allowed = ["https://dashboard.example"]
    with serve(allowed_origins=allowed) as url, httpx.Client(base_url=url) as http:
        page = {"Origin": "https://dashboard.example", "Sec-Fetch-Site": "cross-site"}
        assert http.get("/listjobs", headers=page).json() == []
        other = {"Origin": "https://evil.example"}
        assert http.get("/listjobs", headers=other).status_code == 403


def test_dns_rebinding_is_refused(serve, engine: Engine, session_name: str) -> None:
    """The attacker's name resolves to 127.0.0.1: the browser sends Host: evil.example."""
    with serve() as url, httpx.Client(base_url=url) as http:
        port = urlsplit(url).port
        for host in (f"evil.example:{port}", "evil.example", f"127.0.0.1.evil.example:{port}"):
            rebound = {"Host": host}
            assert http.post("/addjob", json=GO_BODY, headers=rebound).status_code == 400
            assert http.get("/listjobs", headers=rebound).status_code == 400
        for host in (f"localhost:{port}", f"127.0.0.1:{port}"):
            assert http.get("/listjobs", headers={"Host": host}).json() == []
    assert session_containers(engine, session_name) == []
    with serve(allowed_hosts=["jobs.internal"]) as url, httpx.Client(base_url=url) as http:
        assert http.get("/listjobs", headers={"Host": "jobs.internal"}).json() == []


def test_the_go_client_request_shape_still_works(serve, session_name: str) -> None:
    """JSON bodies, no Origin, no Sec-Fetch-*: accepted (the full Go shape is in
    tests/engine/test_remote.py)."""
    with serve() as url, httpx.Client(base_url=url) as http:
        added = http.post("/addjob", json={**GO_BODY, "args": ["0"]}).json()
        assert added["Error"] == "" and added["JobID"]


# -- item 6: long polls and silent connections ---------------------------------------------------

ATTACKERS = 270


def test_long_polls_cannot_starve_other_requests(serve, session_name: str) -> None:
    """270 concurrent /wait long polls: the first max_waiters hold their slots, the others are
    answered at once with TryLaterError; meanwhile an ordinary request is answered and a
    client's wait still returns, by polling /jobstate."""
    with serve(max_wait=30) as url, client(url, session_name) as tracker:
        sleeper = tracker.add_job(JobTemplate(remote_command="sleep", args=["300"],
                                              job_category=TEST_IMAGE))  # fmt: skip
        answers: list[str] = []
        turned_away = threading.Semaphore(0)

        def long_poll() -> None:
            with httpx.Client(base_url=url, timeout=120) as http:
                response = http.get("/wait", params={"jobID": sleeper, "timeout": "30"})
            answers.append(response.headers.get(ERROR_CLASS_HEADER, "none"))
            if response.headers.get(ERROR_CLASS_HEADER) == "TryLaterError":
                turned_away.release()

        threads = [threading.Thread(target=long_poll, daemon=True) for _ in range(ATTACKERS)]
        for thread in threads:
            thread.start()
        try:
            # Every poll beyond the 64 slots is turned away at once; the 64 are now held.
            for _ in range(ATTACKERS - 64):
                assert turned_away.acquire(timeout=60), "a poll was neither held nor refused"
            with httpx.Client(base_url=url, timeout=15) as http:
                assert http.get("/listjobs").status_code == 200
                full = http.get("/wait", params={"jobID": sleeper, "timeout": "5"})
                assert full.headers[ERROR_CLASS_HEADER] == "TryLaterError"
            quick = tracker.add_job(JobTemplate(remote_command="sleep", args=["1"],
                                                job_category=TEST_IMAGE))  # fmt: skip
            assert tracker.wait(quick, 60) == JobState.DONE  # by polling: no slot is free
        finally:
            tracker.job_control(sleeper, "terminate")  # the held polls end
            for thread in threads:
                thread.join(60)
        assert answers.count("TryLaterError") == ATTACKERS - 64
        assert not any(thread.is_alive() for thread in threads)


@pytest.mark.parametrize("sent", [b"", b"GET /listjobs HTTP/1.1\r\nHost: 127.0.0.1\r\n"])
def test_silent_or_slow_connections_are_closed(serve, sent: bytes) -> None:
    """A connection that sends nothing, or stops in the middle of its headers, is closed by
    the server after header_timeout (before any auth check), not held forever."""
    with serve(header_timeout=1, token="a-token-long-enough-0001") as url:
        address = urlsplit(url)
        with socket.create_connection((address.hostname, address.port), timeout=60) as sock:
            sock.sendall(sent)
            with contextlib.suppress(ConnectionResetError):  # closed either way
                assert sock.recv(1024) == b""  # closed by the server, not a timeout here


def _read_401(sock: socket.socket) -> None:
    answer = b""
    while b"bearer token" not in answer:  # the end of the 401's body
        chunk = sock.recv(4096)
        assert chunk, "the server closed the connection before answering"
        answer += chunk
    assert answer.startswith(b"HTTP/1.1 401")


def test_a_kept_alive_connection_cannot_stall_its_next_request(serve) -> None:
    """After one answered request, the next one's headers start and stop: closed (uvicorn's
    own keep-alive timer stops at the first byte)."""
    with serve(header_timeout=1, keep_alive=300, token="a-token-long-enough-0001") as url:
        address = urlsplit(url)
        with socket.create_connection((address.hostname, address.port), timeout=60) as sock:
            sock.sendall(b"GET /listjobs HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            _read_401(sock)  # answered, and the connection kept alive
            sock.sendall(b"GET /listjobs HTTP/1.1\r\n")
            with contextlib.suppress(ConnectionResetError):
                assert sock.recv(1024) == b""


TOKEN = "a-token-long-enough-0001"
REFUSED_POST = (
    b"POST /addjob HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b"Content-Length: 100000\r\n\r\n"
)
"""Headers of a request the server refuses (no token) before reading its body."""


def _unreachable_backend(session: str) -> Any:
    raise containertracker.DrmCommunicationError("these tests reach no tracker")


def _closed_by_server(sock: socket.socket, trickle: bool) -> bool:
    """Whether the server closes ``sock`` (within the socket's timeout, a test bound only),
    while the client sends one more body byte (``trickle``: one byte after another)."""
    sock.sendall(b"{")
    sock.settimeout(0.2 if trickle else 60)
    for _ in range(300):
        try:
            if sock.recv(1024) == b"":
                return True
        except TimeoutError:
            if not trickle:
                return False
            try:
                sock.sendall(b" ")
            except (BrokenPipeError, ConnectionResetError):
                return True
        except ConnectionResetError:
            return True
    return False


def test_an_unread_body_cannot_hold_a_connection() -> None:
    """Refused at once (401, its body unread), a request then sends one body byte, or one
    byte after another: uvicorn's keep-alive timer stops at each byte and no endpoint reads
    the body, so such connections were held forever and, at max_connections, every later
    request got 503. Now the rest of the body has header_timeout after the answer; then
    the connection is closed and a valid request is served. (No engine: nothing reaches a
    tracker.)"""
    settings = ServerSettings(
        port=0, header_timeout=1, keep_alive=300, max_connections=3, token=TOKEN
    )
    with ServerThread(TrackerPool(_unreachable_backend, "s"), settings) as url:
        address = urlsplit(url)
        for trickle in (True, False):
            with socket.create_connection((address.hostname, address.port), timeout=60) as sock:
                sock.sendall(REFUSED_POST)
                _read_401(sock)
                assert _closed_by_server(sock, trickle)
        valid = httpx.get(url + "/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"})
        assert valid.status_code == 200


def test_a_refused_request_whose_body_completes_keeps_its_connection() -> None:
    """The deadline ends with the body: a client that sends it whole may send its next
    request on the same connection."""
    settings = ServerSettings(port=0, header_timeout=30, token=TOKEN)
    with ServerThread(TrackerPool(_unreachable_backend, "s"), settings) as url:
        address = urlsplit(url)
        with socket.create_connection((address.hostname, address.port), timeout=60) as sock:
            sock.sendall(REFUSED_POST)
            _read_401(sock)
            sock.sendall(b" " * 100_000)
            sock.sendall(b"GET /openapi.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert sock.recv(12) == b"HTTP/1.1 200"


# -- item 7: monitoring shows only trackers' containers ------------------------------------------


@pytest.fixture
def foreign_container(engine: Engine) -> Iterator[str]:
    """A container no tracker created, with a secret on its command line (removed after)."""
    container = engine.create(
        ContainerSpec(
            image=TEST_IMAGE,
            labels={"ct-test-foreign": uuid.uuid4().hex},
            command=("sh", "-c", "echo password=hunter2; sleep 30"),
        )
    )
    try:
        yield container
    finally:
        engine.remove(container)


def test_monitoring_hides_foreign_containers(serve, foreign_container: str) -> None:
    with serve() as url, client(url, "ct-test-monitor") as tracker:
        assert foreign_container not in tracker.get_all_job_ids()
        with pytest.raises(JobNotFoundError):
            tracker.job_info_from_monitor(foreign_container)
    with serve(monitor_all_containers=True) as url, client(url, "ct-test-monitor") as tracker:
        assert foreign_container in tracker.get_all_job_ids()  # the option shows it
        assert tracker.job_info_from_monitor(foreign_container).id == foreign_container


def test_a_pool_built_directly_hides_foreign_containers_too(
    backend: str, state_dir: Path, session_name: str, foreign_container: str
) -> None:
    """A pool whose trackers were opened with the library's default (monitor everything),
    served as it is (ServerThread, embedding): the server still shows only trackers'
    containers, unless its settings allow all."""
    check_engine(backend, state_dir)
    pool = TrackerPool.for_backend(backend, session_name, engine_params(backend, state_dir))
    with ServerThread(pool, ServerSettings(port=0)) as url, client(url, session_name) as tracker:
        assert foreign_container not in tracker.get_all_job_ids()
        with pytest.raises(JobNotFoundError):
            tracker.job_info_from_monitor(foreign_container)


# -- item 8: tokens bound to sessions ------------------------------------------------------------

TEAM_A = "team-a-token-000000000001"
ADMIN = "admin-token-0000000000001"


def test_a_token_bound_to_a_session_cannot_use_another(
    serve, tmp_path: Path, engine: Engine, session_name: str
) -> None:
    other = f"{session_name}-b"
    serve.sessions.add(other)
    tokens = tmp_path / "tokens"
    tokens.write_text(f"# team A\n{TEAM_A} {session_name}\n{ADMIN}\n")
    with serve(token_file=tokens) as url:
        admin_b = client(url, other, remote_token=ADMIN)
        team_a = client(url, session_name, remote_token=TEAM_A)
        team_a_in_b = client(url, other, remote_token=TEAM_A)
        with admin_b, team_a, team_a_in_b:
            secret = JobTemplate(remote_command="sleep", args=["30"], job_category=TEST_IMAGE,
                                 job_environment={"API_KEY": "b-secret"})  # fmt: skip
            b_job = admin_b.add_job(secret)
            team_a.add_job(JobTemplate(remote_command="true", job_category=TEST_IMAGE))
            for call in (
                team_a_in_b.list_jobs,
                lambda: team_a_in_b.job_template(b_job),
                lambda: team_a_in_b.delete_job(b_job),
                lambda: team_a_in_b.add_job(secret),
                team_a.get_all_job_ids,  # monitoring looks across sessions
                lambda: team_a.job_info_from_monitor(b_job),
            ):
                with pytest.raises(DeniedByDrmsError, match="token"):
                    call()
            # Naming B's job from its own session does not reach it either.
            with pytest.raises(JobNotFoundError):
                team_a.job_template(b_job)
            assert admin_b.list_jobs() == [b_job]
            assert admin_b.job_state(b_job)[0] in (JobState.QUEUED, JobState.RUNNING)
    assert len(session_containers(engine, other)) == 1


# -- item 9: the policy ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extension", "limits"),
    [
        ({"exposedPorts": "18080:80"}, {}),
        ({"exposedPorts": "80"}, {}),  # a random host port, on every address
        ({"net": "some-other-network"}, {}),
        ({"restart": "always"}, {}),
        ({"restart": "unless-stopped"}, {}),
        ({"shm-size": "8g"}, {}),
        ({"ulimit": "nofile=-1"}, {}),
        ({"pids-limit": "1000000"}, {}),
        ({}, {"VIRTUAL_MEMORY": "1t"}),
    ],
)
def test_policy_refusals_leave_nothing_behind(
    serve, engine: Engine, session_name: str, extension: dict[str, str], limits: dict[str, str]
) -> None:
    with serve() as url, client(url, session_name) as tracker:
        jt = JobTemplate(remote_command="true", job_category=TEST_IMAGE, extension=extension,
                         resource_limits=limits)  # fmt: skip
        with pytest.raises(DeniedByDrmsError):
            tracker.add_job(jt)
        with pytest.raises(DeniedByDrmsError):
            tracker.add_array_job(jt, 1, 3)
        assert tracker.list_jobs() == []
    assert session_containers(engine, session_name) == []


def test_a_joined_error_path_is_refused_by_a_server_allowing_no_host_paths(
    serve, engine: Engine, session_name: str
) -> None:
    """Issue 12 review: ``join_files`` does not hide the error path from the policy: a
    server that allows no host paths refuses every one a template names."""
    with serve() as url, client(url, session_name) as tracker:
        jt = JobTemplate(remote_command="true", job_category=TEST_IMAGE,
                         error_path="/etc/shadow", join_files=True)  # fmt: skip
        with pytest.raises(DeniedByDrmsError, match="error_path"):
            tracker.add_job(jt)
        with pytest.raises(DeniedByDrmsError, match="error_path"):
            tracker.add_array_job(jt, 1, 3)
        assert tracker.list_jobs() == []
    assert session_containers(engine, session_name) == []


@pytest.mark.parametrize(
    "limits",
    [
        {"VIRTUAL_MEMORY": "1M", "virtual_memory": "1T"},  # the policy read 1M, the job got 1T
        {"VIRTUAL_MEMORY": "0"},  # no default was added, and 0 is no limit to the engine
        {"OPEN_FILES": str(resource.getrlimit(resource.RLIMIT_NOFILE)[1] + 1)},
        {"OPEN_FILES": "1000000000000", "FILE_SIZE": "1p"},  # beyond any nofile limit
    ],
)
def test_resource_limits_cannot_pass_the_policy_another_way(
    serve, engine: Engine, session_name: str, limits: dict[str, str]
) -> None:
    """Resource limits are read once, by the core: the policy checks what the job would get
    (a second spelling of a key, 0 for "unlimited", ulimits through resource_limits)."""
    with serve() as url, client(url, session_name) as tracker:
        jt = JobTemplate(remote_command="true", job_category=TEST_IMAGE, resource_limits=limits)
        with pytest.raises((InvalidArgumentError, DeniedByDrmsError)):
            tracker.add_job(jt)
        with pytest.raises((InvalidArgumentError, DeniedByDrmsError)):
            tracker.add_array_job(jt, 1, 3)
        assert tracker.list_jobs() == []
    assert session_containers(engine, session_name) == []


def _host_config(engine: Engine, container_id: str) -> dict[str, Any]:
    """The container's HostConfig as the engine reports it (both speak Docker's keys)."""
    api: Any = engine._api  # type: ignore[attr-defined]
    if engine.name == "docker":
        data = api.inspect_container(container_id)
    else:
        data = api.get(f"/containers/{container_id}/json").json()
    config: dict[str, Any] = data["HostConfig"]
    return config


def test_server_default_limits_are_applied_and_may_be_lowered(
    serve, engine: Engine, session_name: str
) -> None:
    limits = {"default_pids_limit": 300, "default_memory": 256 << 20}
    with serve(**limits) as url, client(url, session_name) as tracker:
        plain = tracker.add_job(JobTemplate(remote_command="sleep", args=["30"],
                                            job_category=TEST_IMAGE))  # fmt: skip
        lowered = tracker.add_job(
            JobTemplate(remote_command="sleep", args=["30"], job_category=TEST_IMAGE,
                        extension={"pids-limit": "50"},
                        resource_limits={"VIRTUAL_MEMORY": "64m"})
        )  # fmt: skip
        config = _host_config(engine, plain)
        assert (config["PidsLimit"], config["Memory"]) == (300, 256 << 20)
        config = _host_config(engine, lowered)
        assert (config["PidsLimit"], config["Memory"]) == (50, 64 << 20)


# -- item 5 (server part): array size bounded before any work --------------------------------


def test_a_huge_array_is_refused_before_any_work(serve, engine: Engine, session_name) -> None:
    body = {**GO_BODY, "jobEnvironment": {"BIG": "x" * 900_000}, "begin": 1, "end": 1000}
    with serve() as url, httpx.Client(base_url=url, timeout=60) as http:
        answer = http.post("/addarrayjob", json=body)
        assert answer.status_code == 200 and answer.json()["JobID"] == ""
        assert answer.headers[ERROR_CLASS_HEADER] == "InvalidArgumentError"
        assert "limit" in answer.json()["Error"]
    assert session_containers(engine, session_name) == []


def test_an_escaped_template_counts_at_its_stored_size(
    serve, engine: Engine, session_name: str
) -> None:
    """100 kB of ``<`` times 20 tasks is 2 MB of body, but each task stores 800 kB of label
    (Go escapes ``<`` as six bytes, base64 grows it) and the environment again: beyond an
    8 MiB limit, refused before any work."""
    body = {**GO_BODY, "jobEnvironment": {"A": "<" * 100_000}, "begin": 1, "end": 20}
    with serve(max_array_bytes=8 << 20) as url, httpx.Client(base_url=url, timeout=60) as http:
        answer = http.post("/addarrayjob", json=body)
        assert answer.headers[ERROR_CLASS_HEADER] == "InvalidArgumentError"
        assert "limit" in answer.json()["Error"] and answer.json()["JobID"] == ""
    assert session_containers(engine, session_name) == []


# -- item 10: 500s and redirects -----------------------------------------------------------------


class _Broken(Exception):
    pass


def test_a_500_carries_no_exception_text(backend: str) -> None:
    """An unexpected error (here: the backend raising something no tracker raises) answers a
    generic 500 naming an incident; the detail goes to the server's log only."""

    def broken_backend(session: str) -> Any:
        raise _Broken("secret detail /etc/shadow token=abc")

    logged: list[str] = []
    sink = logger.add(lambda message: logged.append(str(message)), level="ERROR")
    logger.enable("containertracker")
    try:
        with ServerThread(TrackerPool(broken_backend, "s"), ServerSettings(port=0)) as url:
            answer = httpx.get(url + "/listjobs")
    finally:
        logger.remove(sink)
        logger.disable("containertracker")
    assert answer.status_code == 500
    assert "secret" not in answer.text and "_Broken" not in answer.text
    assert answer.headers[ERROR_CLASS_HEADER] == "InternalError"
    incident = answer.json()["Error"].split("incident ")[1].split()[0]
    assert any(incident in line and "secret detail" in line for line in logged)


def test_no_redirect_built_from_the_host_header(serve) -> None:
    for base in ("", "/jobs"):
        settings = {"base_path": base, "allowed_hosts": ["evil.example"]}
        with serve(**settings) as url, httpx.Client(base_url=url) as http:
            answer = http.get("/listjobs/", headers={"Host": "evil.example"})
            assert answer.status_code == 404 and "location" not in answer.headers


@pytest.mark.parametrize("path", ["/addjob", "/ui/api/control"])
def test_deeply_nested_json_is_refused_with_a_400(
    serve, engine: Engine, session_name, path
) -> None:
    """'[' * 100000 made the parser recurse until a RecursionError, answered 500: now the
    body is refused as malformed (400), nothing created."""
    with serve() as url, httpx.Client(base_url=url) as http:
        nested = b"[" * 100_000
        answer = http.post(path, content=nested, headers={"Content-Type": "application/json"})
        assert answer.status_code == 400 and "nested deeper than" in answer.text
    assert session_containers(engine, session_name) == []
