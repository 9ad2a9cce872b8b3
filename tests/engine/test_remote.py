"""The remote server and client on real engines: the Go wire format, errors, auth, policy,
base paths, the long-poll fallback and concurrency. (The whole contract suite also runs
through the client: conftest's ``remote-<engine>`` backends.)"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

import containertracker
from containertracker import (
    DeniedByDrmsError,
    DrmCommunicationError,
    InvalidArgumentError,
    InvalidStateError,
    JobNotFoundError,
    JobState,
    JobTemplate,
    WaitTimeoutError,
)
from containertracker.remote import ServerThread, TrackerPool
from containertracker.remote.wire import ERROR_CLASS_HEADER
from containertracker.settings import ServerSettings
from tests.conftest import TEST_IMAGE, check_engine, client, engine_params

pytestmark = pytest.mark.only_engines("docker", "podman")

# What the Go client sends for JobTemplate{RemoteCommand: "sleep", Args: ["1"], JobCategory}
# (reference 5.2): every key, nil slices as null, zero times, empty maps.
GO_CLIENT_BODY: dict[str, Any] = {
    "accountingID": "",
    "args": ["1"],
    "candidateMachines": None,
    "deadlineTime": "0001-01-01T00:00:00Z",
    "email": None,
    "emailOnStarted": False,
    "emailOnTerminated": False,
    "errorPath": "",
    "extension": {},
    "inputPath": "",
    "jobCategory": TEST_IMAGE,
    "jobEnvironment": {},
    "jobName": "",
    "joinFiles": False,
    "machineArch": "",
    "machineOs": "",
    "maxSlots": 0,
    "minPhysMemory": 0,
    "minSlots": 0,
    "outputPath": "",
    "priority": 0,
    "queueName": "",
    "reRunnable": False,
    "remoteCommand": "sleep",
    "reservationID": "",
    "resourceLimits": {},
    "stageInFiles": {},
    "stageOutFiles": {},
    "startTime": "0001-01-01T00:00:00Z",
    "submitAsHold": False,
    "workingDirectory": "",
}
JOBINFO_KEYS = {
    "allocatedMachines",
    "annotation",
    "cpuTime",
    "dispatchTime",
    "exitStatus",
    "extension",
    "finishTime",
    "id",
    "jobOwner",
    "queueName",
    "slots",
    "state",
    "subState",
    "submissionMachine",
    "submissionTime",
    "terminatingSignal",
    "wallclockTime",
}


@pytest.fixture
def serve(backend: str, state_dir: Path, session_name: str) -> Iterator[Callable[..., Any]]:
    """``with serve(**server_settings) as url`` runs a server whose default session is the
    test's; every job of that session is removed afterwards."""
    check_engine(backend, state_dir)

    @contextmanager
    def running(wrap: Callable[[Any], Any] = lambda app: app, **settings: Any) -> Iterator[str]:
        pool = TrackerPool.for_backend(backend, session_name, engine_params(backend, state_dir))
        server_settings = ServerSettings(port=0, **settings)
        with ServerThread(pool, server_settings, wrap=wrap) as url:
            yield url

    yield running
    with containertracker.new_job_tracker(
        backend, session_name, engine_params(backend, state_dir)
    ) as t:
        for job_id in t.list_jobs():
            t._engine.remove(job_id)  # type: ignore[attr-defined]


# -- the Go wire format ------------------------------------------------------------------------


def test_go_client_requests_get_go_shaped_answers(serve) -> None:
    """R-1/R-2/R-3 with raw HTTP: the bodies a Go client sends, the keys it reads."""
    with serve() as url, httpx.Client(base_url=url) as http:
        assert TEST_IMAGE in http.get("/listjobcategories").json()
        assert http.get("/listjobs").json() == []
        added = http.post("/addjob", json=GO_CLIENT_BODY)
        assert added.status_code == 200 and "json" in added.headers["content-type"]
        body = added.json()
        assert set(body) == {"JobID", "Error"} and body["Error"] == "" and body["JobID"]
        job_id = body["JobID"]
        assert http.get("/listjobs").json() == [job_id]
        state = http.get("/jobstate", params={"jobID": job_id}).json()
        assert state["JobState"] in ("queued", "running") and state["JobSubState"] == ""
        info = http.get("/jobinfo", params={"jobID": job_id}).json()
        assert set(info) == JOBINFO_KEYS | {"Error"} and info["id"] == job_id
        assert info["Error"] == "" and isinstance(info["wallclockTime"], int)
        waited = http.get("/wait", params={"jobID": job_id, "timeout": "30"}).json()
        assert waited["JobState"] == "done"
        assert http.get("/jobinfo", params={"jobID": job_id}).json()["exitStatus"] == 0
        assert http.get("/deletejob", params={"jobID": job_id}).json() == ""
        assert http.get("/listjobs").json() == []


def test_lenient_input_the_go_server_rejects(serve, session_name) -> None:
    """A body without ``extension`` (the Go server crashes) and zone-less times (Go: 400)."""
    body = {k: v for k, v in GO_CLIENT_BODY.items() if k != "extension"}
    body |= {"args": ["0"], "startTime": "2020-01-02T03:04:05", "jobName": "lenient"}
    with serve() as url, httpx.Client(base_url=url) as http:
        job_id = http.post("/addjob", json=body).json()["JobID"]
        template = client(url, session_name).job_template(job_id)
        assert template.job_name == "lenient"
        assert template.extension == {"pids-limit": "1024"}  # the server's default, no more
        assert template.start_time is not None and template.start_time.utcoffset() is not None
        assert template.start_time.isoformat() == "2020-01-02T03:04:05+00:00"


def test_array_job_wire_format(serve) -> None:
    """R-8: begin/end with the template's keys; step defaults to 1; ids in task order."""
    with serve() as url, httpx.Client(base_url=url) as http:
        body = {**GO_CLIENT_BODY, "remoteCommand": "true", "args": None, "begin": 1, "end": 5}
        array_id = http.post("/addarrayjob", json=body).json()["JobID"]
        ids = http.get("/listarrayjobs", params={"arrayJobID": array_id}).json()
        assert len(ids) == 5
        bad = http.post("/addarrayjob", json={**body, "begin": 3, "end": 1}).json()
        assert bad["JobID"] == "" and "end" in bad["Error"]


def test_errors_on_the_wire(serve) -> None:
    """Errors: 200 with the text in the body plus the class header; Go's 400 texts."""
    with serve() as url, httpx.Client(base_url=url) as http:
        unknown = http.get("/jobstate", params={"jobID": "nope"})
        assert unknown.status_code == 200 and unknown.headers[ERROR_CLASS_HEADER] == (
            "JobNotFoundError"
        )
        assert unknown.json()["Error"]
        control = http.get("/jobcontrol", params={"jobID": "nope", "action": "suspend"})
        assert control.status_code == 200 and control.json()  # the error text
        missing = http.get("/jobinfo")
        assert missing.status_code == 400
        assert missing.text == "Query argument jobID is required, but not found"
        assert http.get("/listarrayjobs").text == (
            "Query argument arrayJobID is required, but not found"
        )
        assert http.get("/jobcontrol", params={"jobID": "x"}).text == (
            "Query argument action is required, but not found"
        )
        json_type = {"Content-Type": "application/json"}
        assert http.post("/addjob", content=b"{not json", headers=json_type).status_code == 400
        assert http.post("/addjob", json={"args": 5}).status_code == 400
        # Integers beyond Go's int64 are refused as the Go server's decoder would (fuzz find).
        too_big = {"jobCategory": "x", "begin": 1, "end": 2, "step": 2**64}
        assert http.post("/addarrayjob", json=too_big).status_code == 400
        huge_wallclock = {"wallclockTime": 2**62}
        assert http.post("/monitor/jobids", json=huge_wallclock).status_code == 400
        assert http.get("/nosuchpath").status_code == 404
        assert http.get("/addjob").status_code == 405
        # Where the Go server answered [] to an unknown array, we answer 404 and say why.
        no_array = http.get("/listarrayjobs", params={"arrayJobID": "nope"})
        assert no_array.status_code == 404 and no_array.json()["Error"]


def test_client_raises_the_servers_exception_classes(serve, session_name) -> None:
    with serve() as url, client(url, session_name) as tracker:
        with pytest.raises(JobNotFoundError):
            tracker.job_info("nope")
        with pytest.raises(JobNotFoundError):
            tracker.list_array_jobs("nope")
        job_id = tracker.add_job(
            JobTemplate(remote_command="sleep", args=("30",), job_category=TEST_IMAGE)
        )
        with pytest.raises(InvalidStateError):
            tracker.delete_job(job_id)
        with pytest.raises(WaitTimeoutError):
            tracker.wait(job_id, 0.3, JobState.DONE)
        with pytest.raises(InvalidArgumentError, match="no-such-image"):
            tracker.add_job(JobTemplate(remote_command="true", job_category="no-such-image"))
        tracker.job_control(job_id, "terminate")
        assert tracker.job_state(job_id)[0] is JobState.FAILED


def test_paging(serve, session_name) -> None:
    """skip/limit, which the Go server ignores, page through the ids."""
    with serve() as url, client(url, session_name) as tracker:
        jt = JobTemplate(remote_command="true", job_category=TEST_IMAGE, submit_as_hold=True)
        array_id = tracker.add_array_job(jt, 1, 5)
        ids = tracker.list_array_jobs(array_id)
        with httpx.Client(base_url=url) as http:
            page = http.get(
                "/listarrayjobs", params={"arrayJobID": array_id, "skip": 1, "limit": 2}
            )
            assert page.json() == ids[1:3]
            assert http.get("/listjobs", params={"limit": "x"}).status_code == 400


# -- base path, auth, TLS-less refusal ------------------------------------------------------------


def test_base_path(serve, session_name) -> None:
    """R-10: a server under a base path; a client without it is told to check the path."""
    with serve(base_path="/jobserver/jobmanagement") as url:
        assert url.endswith("/jobserver/jobmanagement")
        with client(url, session_name) as tracker:
            assert tracker.list_jobs() == []
        with (
            client(url.removesuffix("/jobserver/jobmanagement"), session_name) as lost,
            pytest.raises(DrmCommunicationError, match="base path"),
        ):
            lost.list_jobs()


def test_token_auth(serve, session_name) -> None:
    """A 401 is an error, never "no jobs"; the right token works."""
    with serve(token="a-long-enough-s3cret") as url:
        for params in ({}, {"remote_token": "wrong"}):
            with client(url, session_name, **params) as anonymous:
                with pytest.raises(DeniedByDrmsError, match="token"):
                    anonymous.list_jobs()
                with pytest.raises(DeniedByDrmsError):
                    anonymous.add_job(JobTemplate(remote_command="true", job_category=TEST_IMAGE))
        with client(url, session_name, remote_token="a-long-enough-s3cret") as tracker:
            assert tracker.list_jobs() == []
        assert httpx.get(url + "/openapi.json").status_code == 200  # the description is public


def test_basic_auth(serve, session_name) -> None:
    """R-9: basic auth with realm remotetracker, as the Go tests use."""
    with serve(user="user", password="password") as url:
        challenge = httpx.get(url + "/listjobs")
        assert challenge.status_code == 401
        assert challenge.headers["www-authenticate"] == 'Basic realm="remotetracker"'
        creds = base64.b64encode(b"user:password").decode()
        assert (
            httpx.get(url + "/listjobs", headers={"Authorization": f"Basic {creds}"}).json() == []
        )
        with client(url, session_name, remote_user="user", remote_password="password") as tracker:
            job_id = tracker.add_job(JobTemplate(remote_command="true", job_category=TEST_IMAGE))
            assert tracker.wait(job_id, 30) is JobState.DONE
        with (
            client(url, session_name, remote_user="user", remote_password="nope") as wrong,
            pytest.raises(DeniedByDrmsError),
        ):
            wrong.list_jobs()


def test_body_size_limit(serve, session_name) -> None:
    with serve(max_body_bytes=4096) as url, client(url, session_name) as tracker:
        big = JobTemplate(remote_command="true", job_category=TEST_IMAGE, args=("x" * 8192,))
        with pytest.raises(InvalidArgumentError, match="413"):
            tracker.add_job(big)
        assert tracker.list_jobs() == []


# -- policy ----------------------------------------------------------------------------------------


def test_policy_refusals_leave_nothing_behind(serve, session_name, tmp_path) -> None:
    refused = [
        {"extension": {"privileged": "true"}},
        {"extension": {"pid": "host"}},
        {"output_path": str(tmp_path / "out")},
        {"stage_in_files": {"/etc/passwd": "/passwd"}},
    ]
    with serve() as url, client(url, session_name) as tracker:
        for fields in refused:
            jt = JobTemplate(remote_command="true", job_category=TEST_IMAGE, **fields)
            with pytest.raises(DeniedByDrmsError, match="--allow"):
                tracker.add_job(jt)
            with pytest.raises(DeniedByDrmsError, match="--allow"):
                tracker.add_array_job(jt, 1, 2)
        assert tracker.list_jobs() == []


def test_policy_allowed_host_directory(serve, session_name, tmp_path) -> None:
    with serve(allowed_host_paths=[tmp_path]) as url, client(url, session_name) as tracker:
        jt = JobTemplate(
            remote_command="echo",
            args=("hello",),
            job_category=TEST_IMAGE,
            output_path=str(tmp_path / "out"),
        )
        assert tracker.wait(tracker.add_job(jt), 30) is JobState.DONE
        assert (tmp_path / "out").read_text() == "hello\n"
        with pytest.raises(DeniedByDrmsError, match="outside"):
            tracker.add_job(jt.model_copy(update={"output_path": str(tmp_path / ".." / "x")}))


# -- waiting and concurrency -------------------------------------------------------------------


def _without_wait_endpoint(app: Any) -> Any:
    """The app as a Go server would be: no /wait (404, no error class)."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].endswith("/wait"):
            await httpx_404(send)
            return
        await app(scope, receive, send)

    return wrapped


async def httpx_404(send: Any) -> None:
    await send({"type": "http.response.start", "status": 404, "headers": []})
    await send({"type": "http.response.body", "body": b"404 page not found\n"})


def test_wait_falls_back_to_polling(serve, session_name) -> None:
    """R-4/R-7 against a server without /wait: the client polls the state instead."""
    with serve(wrap=_without_wait_endpoint) as url, client(url, session_name) as tracker:
        job_id = tracker.add_job(
            JobTemplate(remote_command="sleep", args=("1",), job_category=TEST_IMAGE)
        )
        assert tracker.wait(job_id, 30, JobState.RUNNING) is JobState.RUNNING
        tracker.job_control(job_id, "suspend")
        assert tracker.wait(job_id, 5, JobState.SUSPENDED) is JobState.SUSPENDED
        with pytest.raises(WaitTimeoutError):
            tracker.wait(job_id, 0.3)
        tracker.job_control(job_id, "resume")
        assert tracker.wait(job_id, 30) is JobState.DONE
        with pytest.raises(InvalidStateError):
            tracker.wait(job_id, 5, JobState.RUNNING)


def test_long_polls_do_not_block_other_requests(serve, session_name) -> None:
    """Many threads share one client; waits held on the server do not stall other calls."""
    with serve() as url, client(url, session_name, request_timeout=20) as tracker:
        sleeper = tracker.add_job(
            JobTemplate(remote_command="sleep", args=("60",), job_category=TEST_IMAGE)
        )
        outcomes: list[object] = []

        def long_wait() -> None:
            try:
                outcomes.append(tracker.wait(sleeper, None))
            except Exception as exc:
                outcomes.append(exc)

        waiters = [threading.Thread(target=long_wait, daemon=True) for _ in range(8)]
        for waiter in waiters:
            waiter.start()
        quick = JobTemplate(remote_command="true", job_category=TEST_IMAGE)

        def submit_and_wait() -> JobState:
            return tracker.wait(tracker.add_job(quick), 30)

        workers = [
            threading.Thread(target=lambda: outcomes.append(submit_and_wait()), daemon=True)
            for _ in range(6)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(60)
        assert outcomes.count(JobState.DONE) == 6
        tracker.job_control(sleeper, "terminate")
        for waiter in waiters:
            waiter.join(60)
        assert outcomes.count(JobState.FAILED) == 8


def test_server_shutdown_ends_pending_waits(serve, session_name) -> None:
    """Stopping the server answers pending long polls at once, not after max_wait."""
    with serve() as url:
        tracker = client(url, session_name)
        job_id = tracker.add_job(
            JobTemplate(remote_command="sleep", args=("60",), job_category=TEST_IMAGE)
        )
        outcome: list[BaseException] = []

        def wait() -> None:
            try:
                tracker.wait(job_id, None)
            except BaseException as exc:
                outcome.append(exc)

        waiter = threading.Thread(target=wait, daemon=True)
        waiter.start()
        tracker.wait(job_id, 10, JobState.RUNNING)
    waiter.join(30)
    assert not waiter.is_alive()
    assert len(outcome) == 1
    assert isinstance(outcome[0], InvalidStateError)  # the server closed its tracker first
    tracker.close()


def test_client_refuses_bad_settings() -> None:
    with pytest.raises(InvalidArgumentError, match="http://"):
        containertracker.new_job_tracker("remote", "s", {"remote_url": "localhost:32321"})
    with pytest.raises(InvalidArgumentError, match="not both"):
        containertracker.new_job_tracker(
            "remote", "s", {"remote_token": "t", "remote_user": "u", "remote_password": "p"}
        )
    with (
        containertracker.new_job_tracker("remote", "s", {"remote_url": "http://127.0.0.1:9"}) as t,
        pytest.raises(DrmCommunicationError, match="cannot reach"),
    ):
        t.list_jobs()
