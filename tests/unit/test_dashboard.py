"""The web dashboard's server side without an engine: its pure pieces (security headers,
Server-Sent Events framing, the sessions a token sees, the actions each state allows, rows),
its endpoints and event stream served from trackers on the in-memory engine (credentials,
token grants, hostile input, bounded streams), and the output tail it shows."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from containertracker import JobState, JobTemplate
from containertracker.core import outputs
from containertracker.core.outputs import _read_end
from containertracker.core.plan import Plan
from containertracker.core.tracker import ContainerTracker
from containertracker.errors import DeniedByDrmsError, InvalidArgumentError
from containertracker.models import JobInfo
from containertracker.remote import ServerThread, TrackerPool, dashboard
from containertracker.remote.dashboard_view import (
    ROW_FIELD_LIMITS,
    SECURITY_HEADERS,
    actions_for,
    job_row,
    sse_comment,
    sse_event,
    visible_sessions,
)
from containertracker.remote.shares import SharedSlots
from containertracker.remote.tokens import Grant
from containertracker.remote.wire import ERROR_CLASS_HEADER, SESSION_HEADER
from containertracker.settings import ServerSettings
from containertracker.testing import MemoryEngine

DEFAULT = "main"
OPERATOR = "operator-token-0123456789"
TEAM = "team-a-token-0123456789"
SLEEP = JobTemplate(remote_command="sleep", args=["60"], job_category="busybox")


# -- pure pieces -----------------------------------------------------------------------------


def test_an_event_is_one_message_whatever_its_data_holds() -> None:
    """Line breaks and SSE field names inside the data cannot end the message early or add
    a field: the data is one JSON line."""
    hostile = {"text": "a\n\nevent: table\r\ndata: {}\n\u2028:", "n": [1, None]}
    message = sse_event("rows", hostile)
    assert message.endswith(b"\n\n") and message.count(b"\n\n") == 1
    event, data = message.decode().rstrip("\n").split("\n")
    assert event == "event: rows"
    assert json.loads(data.removeprefix("data: ")) == hostile


@pytest.mark.parametrize("name", ["", "a b", "rows\ndata: x", "t\u00e4ble", "a:b"])
def test_an_event_name_must_be_plain(name: str) -> None:
    """An event name that is not plain letters, digits, '-' or '_' is refused."""
    with pytest.raises(ValueError, match="not an event name"):
        sse_event(name, {})


def test_a_comment_stays_one_line() -> None:
    """A comment's line breaks become spaces: it cannot start a field."""
    assert sse_comment("a\ndata: x\r\nb") == b": a data: x b\n\n"


def test_the_security_headers_forbid_inline_script_framing_sniffing_and_caching() -> None:
    """The page's CSP allows only its own files, no inline script, no framing; answers
    are never cached."""
    policy = dict(
        part.strip().split(" ", 1)
        for part in SECURITY_HEADERS["Content-Security-Policy"].split(";")
    )
    assert policy["default-src"] == "'self'"
    assert policy["script-src"] == "'self'"  # no 'unsafe-inline', no 'unsafe-eval'
    assert policy["frame-ancestors"] == "'none'"
    assert "unsafe" not in SECURITY_HEADERS["Content-Security-Policy"]
    assert SECURITY_HEADERS["X-Frame-Options"] == "DENY"
    assert SECURITY_HEADERS["X-Content-Type-Options"] == "nosniff"
    assert SECURITY_HEADERS["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    ("grant", "expected"),
    [
        (None, ["main", "team-a", "team-a-1", "team-b"]),
        (Grant(OPERATOR), ["main", "team-a", "team-a-1", "team-b"]),
        (Grant(TEAM, ("team-a", "team-a-*")), ["team-a", "team-a-1"]),
        (Grant(TEAM, ("team-c",)), ["team-c"]),
        (Grant(TEAM, ("team-?-1", "main")), ["main", "team-a-1"]),
    ],
)
def test_a_token_bound_to_sessions_sees_only_those(
    grant: Grant | None, expected: list[str]
) -> None:
    """Sessions with jobs and the default one, only those the token may use, plus the
    sessions it names exactly; the default first."""
    with_jobs = ["team-b", "team-a-1", "team-a"]
    assert visible_sessions(with_jobs, grant, "main") == expected


def test_each_state_offers_only_the_actions_it_allows() -> None:
    """The README's rules: suspend needs RUNNING, resume SUSPENDED, hold QUEUED, release a
    held job, terminate any unfinished job, delete a finished one."""
    needs = {"suspend": {JobState.RUNNING}, "resume": {JobState.SUSPENDED}}
    needs["hold"] = {JobState.QUEUED}
    needs["release"] = {JobState.QUEUED_HELD}
    needs["delete"] = {JobState.DONE, JobState.FAILED}
    unfinished = {s for s in JobState if not s.terminal} - {JobState.UNSET, JobState.UNDETERMINED}
    needs["terminate"] = unfinished
    for state in JobState:
        assert set(actions_for(state)) == {a for a, states in needs.items() if state in states}


def test_a_row_shows_an_array_task_as_the_cli_does() -> None:
    """A row carries the task's array and number, its image and name from the template, its
    state and sub-state, machine, times, runtime and exit status."""
    started = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    info = JobInfo(
        id="f" * 64,
        state=JobState.FAILED,
        sub_state="terminated",
        exit_status=143,
        terminating_signal="SIGTERM",
        allocated_machines=("node-1",),
        submission_time=started - timedelta(seconds=1),
        dispatch_time=started,
        finish_time=started + timedelta(seconds=3),
        wallclock_time=timedelta(seconds=3),
        extension={"array_id": "arr", "task_id": "7", "output_path": "/srv/out.7"},
    )
    template = JobTemplate(job_category="busybox:latest", job_name="crunch-7")
    row = job_row(info, template)
    assert row == {
        "id": "f" * 64,
        "name": "crunch-7",
        "array": "arr",
        "task": "7",
        "image": "busybox:latest",
        "state": "failed",
        "subState": "terminated",
        "machine": "node-1",
        "submitted": "2026-01-02T03:04:04+00:00",
        "started": "2026-01-02T03:04:05+00:00",
        "finished": "2026-01-02T03:04:08+00:00",
        "runtime": 3.0,
        "exitStatus": 143,
        "signal": "SIGTERM",
        "annotation": "",
        "hasOutput": True,
        "hasError": False,
        "actions": ["delete"],
    }


@pytest.mark.parametrize(
    ("chunks", "limit", "expected"),
    [
        ([], 4, (b"", False)),
        ([b"abc"], 4, (b"abc", False)),
        ([b"abcd"], 4, (b"abcd", False)),
        ([b"abcde"], 4, (b"bcde", True)),
        ([b"ab", b"cd", b"ef"], 3, (b"def", True)),
        ([b"a", b"b", b"c", b"d"], 4, (b"abcd", False)),
        ([b"x" * 10, b"y"], 2, (b"xy", True)),
    ],
)
def test_the_tail_of_a_stream_keeps_only_its_last_bytes(
    chunks: list[bytes], limit: int, expected: tuple[bytes, bool]
) -> None:
    """The last ``limit`` bytes, and whether there were more."""
    end = _read_end(iter(chunks), limit)
    assert (end.data, end.size > limit) == expected


def test_a_row_cuts_free_text_so_a_table_event_stays_bounded() -> None:
    """Names, images, sub-states, machines and annotations longer than their limit end in
    an ellipsis: 1,000 rows of the longest stay a bounded event."""
    huge = "x" * 100_000
    info = JobInfo(
        id="f" * 64,
        state=JobState.QUEUED,
        sub_state=huge,
        annotation=huge,
        allocated_machines=(huge, huge),
        extension={"array_id": huge, "task_id": huge, "category": huge},
    )
    row = job_row(info, JobTemplate(job_category=huge, job_name=huge))
    for field, limit in ROW_FIELD_LIMITS.items():
        assert len(row[field]) == limit and row[field].endswith("\u2026"), field
    assert row["id"] == "f" * 64
    assert len(sse_event("table", {"rows": [row] * dashboard.MAX_ROWS})) < 3 << 20


def test_stream_slots_are_shared_so_no_token_locks_others_out() -> None:
    """A token holds at most its share; tokens without full access leave the last slot to
    the operator's; requests without a token (basic auth, none) are one credential with no
    share limit."""
    slots = SharedSlots(total=4, share=2)
    team_a, team_b, operator = Grant(TEAM, ("a",)), Grant("b" * 20, ("b",)), Grant(OPERATOR)
    assert slots.take(team_a, full_access=False) is None
    assert slots.take(team_a, full_access=False) is None
    assert "its share" in str(slots.take(team_a, full_access=False))
    assert slots.take(team_b, full_access=False) is None
    assert "all 4 are in use" in str(slots.take(team_b, full_access=False))  # the reserve
    assert slots.take(operator, full_access=True) is None
    assert slots.take(operator, full_access=True) is not None  # now all are in use
    slots.give_back(team_a)
    slots.give_back(team_a)
    assert slots.in_use == 2
    anyone = SharedSlots(total=3, share=1)
    assert [anyone.take(None, full_access=True) for _ in range(4)][:3] == [None] * 3
    assert anyone.take(None, full_access=True) is not None


class _Log:
    """An engine whose one job's log is ``lines`` (made as read, never whole) and that counts
    the bytes it sends; ``tail`` counts whole lines, as Podman does."""

    def __init__(self, lines: list[bytes]) -> None:
        self.lines = lines
        self.sent = 0
        self.requests: list[int | None] = []

    def logs(self, job_id: str, *, stdout: bool, stderr: bool, tail: int | None = None):
        self.requests.append(tail)
        for line in self.lines if tail is None else self.lines[-tail:]:
            for start in range(0, len(line), 1 << 16):
                piece = line[start : start + (1 << 16)]
                self.sent += len(piece)
                yield piece


class _Lines(list[bytes]):
    """``count`` lines of ``width`` bytes, made when read."""

    def __init__(self, count: int, width: int) -> None:
        super().__init__()
        self.count, self.width = count, width

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[bytes]:
        return (self._line(i) for i in range(self.count))

    def __getitem__(self, index):  # type: ignore[no-untyped-def,override]
        assert isinstance(index, slice)
        return [self._line(i) for i in range(*index.indices(self.count))]

    def _line(self, i: int) -> bytes:
        return f"{i:>{self.width - 1}}\n".encode()


def _live_tail(log: _Log, max_bytes: int) -> outputs.OutputTail:
    plan = Plan(stdout_path="/srv/jobs/out")
    return outputs.tail(
        log,  # type: ignore[arg-type]
        "job",
        plan,
        None,
        which="output",
        written=False,
        max_bytes=max_bytes,
    )


def test_a_live_tail_reads_only_the_end_of_a_huge_log() -> None:
    """150 MB of output: the last 64 KiB come from the engine's last lines (asked for in
    growing numbers), not from reading the whole log."""
    log = _Log(_Lines(1_500_000, 100))  # 150 MB
    shown = _live_tail(log, 64 << 10)
    assert shown.truncated and shown.live
    assert shown.text.endswith(f"{1_499_999:>99}\n")
    assert len(shown.text) == 64 << 10
    assert log.sent < 1 << 20
    assert log.requests == [256, 512, 1024]


def test_a_live_tail_of_a_short_log_is_all_of_it() -> None:
    log = _Log([b"one\n", b"two\n", b"three"])
    shown = _live_tail(log, 1024)
    assert (shown.text, shown.truncated) == ("one\ntwo\nthree", False)
    assert log.requests == [256]


def test_a_live_tail_never_reads_an_enormous_line_whole() -> None:
    """Lines longer than a request may read (16 times the tail) are not read to their end:
    the last lines that fit are shown, or, when the last line alone is too long, the
    answer says so."""
    huge = b"y" * (40 << 20)
    log = _Log([b"start\n", huge + b"\n", *[b"z\n"] * 10])
    shown = _live_tail(log, 1024)
    assert (shown.text, shown.truncated) == ("z\n", True)
    assert log.sent <= 2 * (16 * 1024 + (1 << 16))  # two requests, each a piece beyond
    log = _Log([b"start\n", huge])
    with pytest.raises(InvalidArgumentError, match="last line of the output of job job"):
        _live_tail(log, 1024)
    assert log.sent <= 2 * (16 * 1024 + (1 << 16))  # two requests, each a piece beyond


# -- the output tail of a job -------------------------------------------------------------------


@pytest.fixture
def engine() -> MemoryEngine:
    return MemoryEngine(images=["busybox:latest"])


@pytest.fixture
def jobs_dir(tmp_path: Path) -> Path:
    path = tmp_path / "jobs"
    path.mkdir()
    return path


def _tracker(engine: MemoryEngine, tmp_path: Path, session: str, roots: list[Path] | None):
    return ContainerTracker(
        engine.connect(),
        session,
        state_dir=tmp_path / "state",
        host_path_roots=roots,
        monitor_all_containers=False,
    )


def test_the_output_tail_is_live_from_the_engine_then_the_written_file(
    engine: MemoryEngine, tmp_path: Path, jobs_dir: Path
) -> None:
    """While the job runs its output comes from the engine's log; once it has ended and
    its file is written, from the file, only its end when it is long."""
    with _tracker(engine, tmp_path, "out", [jobs_dir]) as tracker:
        out = jobs_dir / "out.txt"
        job_id = tracker.add_job(SLEEP.model_copy(update={"output_path": str(out)}))
        running = tracker.output_tail(job_id, "output", 1024)
        assert (running.path, running.text, running.live) == (str(out), "", True)
        engine.exit(job_id, 0, stdout=b"first line\nlast line\n")
        assert tracker.wait(job_id, 10) is JobState.DONE
        out.write_bytes(b"first line\nlast line\n(the file)\n")  # what the file holds counts
        written = tracker.output_tail(job_id, "output", 1024)
        assert (written.text, written.truncated, written.live) == (
            "first line\nlast line\n(the file)\n",
            False,
            False,
        )
        end = tracker.output_tail(job_id, "output", 11)
        assert (end.text, end.truncated) == ("(the file)\n", True)


def test_only_the_files_a_job_names_inside_the_roots_are_read(
    engine: MemoryEngine, tmp_path: Path, jobs_dir: Path
) -> None:
    """No file set, stderr joined into stdout, a path outside the reader's roots, a symlink
    put in the file's place: each refused, nothing read."""
    with _tracker(engine, tmp_path, "paths", None) as anywhere:
        bare = anywhere.add_job(SLEEP)
        joined = anywhere.add_job(
            SLEEP.model_copy(update={"output_path": str(jobs_dir / "j"), "join_files": True})
        )
        elsewhere = anywhere.add_job(SLEEP.model_copy(update={"output_path": str(tmp_path / "x")}))
        linked = anywhere.add_job(SLEEP.model_copy(update={"output_path": str(jobs_dir / "l")}))
        for job_id in (bare, joined, elsewhere, linked):
            engine.exit(job_id, 0, stdout=b"secret\n")
            anywhere.wait(job_id, 10)
    (jobs_dir / "l").unlink()
    (jobs_dir / "l").symlink_to(tmp_path / "x")
    with _tracker(engine, tmp_path, "paths", [jobs_dir]) as confined:
        with pytest.raises(InvalidArgumentError, match="has no output file"):
            confined.output_tail(bare, "output", 100)
        with pytest.raises(InvalidArgumentError, match="joined into the output file"):
            confined.output_tail(joined, "error", 100)
        with pytest.raises(DeniedByDrmsError, match="outside the host directories"):
            confined.output_tail(elsewhere, "output", 100)
        with pytest.raises(InvalidArgumentError, match="symlink"):
            confined.output_tail(linked, "output", 100)
        with pytest.raises(InvalidArgumentError, match="at least 1"):
            confined.output_tail(joined, "output", 0)


# -- the endpoints, served from the in-memory engine ----------------------------------------------


@pytest.fixture
def serve(engine: MemoryEngine, tmp_path: Path, jobs_dir: Path) -> Callable[..., Any]:
    """``with serve(**server_settings) as url``: a server of trackers on ``engine`` (host
    paths allowed below ``jobs_dir``), stopped at the end of the block."""

    def open_tracker(session: str) -> ContainerTracker:
        return _tracker(engine, tmp_path, session, [jobs_dir])

    @contextmanager
    def running(**settings: Any) -> Iterator[str]:
        pool = TrackerPool(open_tracker, DEFAULT)  # type: ignore[arg-type]
        server_settings = ServerSettings(port=0, allowed_host_paths=[jobs_dir], **settings)
        with ServerThread(pool, server_settings) as url:
            yield url

    return running


@pytest.fixture
def tokens(tmp_path: Path) -> Path:
    """A token file: the operator's token (every session), a team's (its sessions only)."""
    path = tmp_path / "tokens"
    path.write_text(f"{OPERATOR}\n{TEAM} team-a team-a-*\n")
    return path


def _auth(token: str, session: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}"}
    return headers if session is None else {**headers, SESSION_HEADER: session}


def test_the_page_is_public_and_the_api_needs_the_token(
    serve: Callable[..., Any], tokens: Path
) -> None:
    """The page and its files answer without credentials (they hold no data) and say that
    a token is needed; every endpoint of the dashboard answers 401 without one. Every
    answer below /ui carries the security headers, refusals included; the rest of the API
    is unchanged."""
    with serve(token_file=tokens) as url, httpx.Client(base_url=url, timeout=30) as http:
        page = http.get("/ui")
        assert page.status_code == 200
        assert 'data-login="token"' in page.text
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        for name, media in (("app.js", "text/javascript"), ("app.css", "text/css")):
            asset = http.get(f"/ui/{name}")
            assert asset.status_code == 200
            assert asset.headers["content-type"].startswith(media)
        for path in ("sessions", "jobs", "job?jobID=x", "output?jobID=x", "machines", "stream"):
            assert http.get(f"/ui/api/{path}").status_code == 401
        assert http.post("/ui/api/control", json={}).status_code == 401
        refused = http.get("/ui/api/jobs")
        for answer in (page, refused, http.get("/ui/app.js")):
            for name, value in SECURITY_HEADERS.items():
                assert answer.headers[name] == value
        assert http.get("/ui/api/jobs", headers=_auth(OPERATOR)).json()["rows"] == []
        listed = http.get("/listjobs", headers=_auth(OPERATOR))
        assert "content-security-policy" not in listed.headers
        assert http.get("/ui/", headers=_auth(OPERATOR)).status_code == 404  # no redirect


@pytest.mark.parametrize(
    ("settings", "login"),
    [({}, "none"), ({"user": "ops", "password": "a-password-of-some-length"}, "basic")],
)
def test_the_page_asks_for_what_the_server_requires(
    serve: Callable[..., Any], settings: dict[str, str], login: str
) -> None:
    """No credentials on loopback: no login; basic auth: user and password."""
    with serve(**settings) as url, httpx.Client(base_url=url, timeout=30) as http:
        assert f'data-login="{login}"' in http.get("/ui").text


def test_the_dashboard_lies_below_the_base_path(serve: Callable[..., Any]) -> None:
    """With a base path the page is at <base>/ui, and only there."""
    with serve(base_path="/jobs/api") as url, httpx.Client(timeout=30) as http:
        root = url.removesuffix("/jobs/api")
        assert http.get(f"{url}/ui").status_code == 200
        assert http.get(f"{url}/ui/api/sessions").status_code == 200
        assert http.get(f"{root}/ui").status_code == 404


def test_a_token_bound_to_sessions_is_limited_to_them_on_every_view(
    serve: Callable[..., Any], tokens: Path, engine: MemoryEngine, tmp_path: Path, jobs_dir: Path
) -> None:
    """The team's token lists only its sessions, reads only their jobs, sees no machines
    (they look across sessions) and opens no stream of another session; the operator's
    sees everything."""
    for session in ("team-a-1", "team-b"):
        with _tracker(engine, tmp_path, session, [jobs_dir]) as tracker:
            tracker.add_job(SLEEP)
    with serve(token_file=tokens) as url, httpx.Client(base_url=url, timeout=30) as http:
        team = http.get("/ui/api/sessions", headers=_auth(TEAM)).json()
        assert team == {"sessions": ["team-a", "team-a-1"], "machines": False}
        operator = http.get("/ui/api/sessions", headers=_auth(OPERATOR)).json()
        assert operator == {"sessions": [DEFAULT, "team-a-1", "team-b"], "machines": True}
        assert len(http.get("/ui/api/jobs", headers=_auth(TEAM, "team-a-1")).json()["rows"]) == 1
        for path in ("jobs", "stream", "machines"):
            refused = http.get(f"/ui/api/{path}", headers=_auth(TEAM, "team-b"))
            assert refused.status_code == 403
            assert refused.headers[ERROR_CLASS_HEADER] == "DeniedByDrmsError"
        assert http.get("/ui/api/machines", headers=_auth(TEAM, "team-a-1")).status_code == 403
        machines = http.get("/ui/api/machines", headers=_auth(OPERATOR)).json()["machines"]
        assert [len(m["jobs"]) for m in machines] == [2]


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b"jobID=x&action=terminate", {"Content-Type": "application/x-www-form-urlencoded"}, 415),
        (b'{"jobID": "x", "action": "terminate"}', {"Content-Type": "text/plain"}, 415),
        (b"", {}, 400),
        (b"[]", {"Content-Type": "application/json"}, 400),
        (b"{", {"Content-Type": "application/json"}, 400),
        (b'{"jobID": "x"}', {"Content-Type": "application/json"}, 400),
        (b'{"jobID": 1, "action": "hold"}', {"Content-Type": "application/json"}, 400),
        (b'{"jobID": "", "action": "hold"}', {"Content-Type": "application/json"}, 400),
        (
            json.dumps({"jobID": "x" * 300, "action": "hold"}).encode(),
            {"Content-Type": "application/json"},
            400,
        ),
        (b'{"jobID": "x", "action": "explode"}', {"Content-Type": "application/json"}, 400),
        (b'{"jobID": "nosuchjob", "action": "hold"}', {"Content-Type": "application/json"}, 404),
        (
            b'{"jobID": "x", "action": "hold"}',
            {"Content-Type": "application/json", "Origin": "https://evil.example"},
            403,
        ),
        (
            b'{"jobID": "x", "action": "hold"}',
            {"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"},
            403,
        ),
    ],
)
def test_state_changes_need_a_same_site_json_body_and_hostile_ones_get_a_4xx(
    serve: Callable[..., Any], body: bytes, headers: dict[str, str], status: int
) -> None:
    """Only a JSON object with a job id and an action changes anything; what a form or
    another site can send is refused before the tracker is reached; bad values are a 4xx."""
    with serve() as url, httpx.Client(base_url=url, timeout=30) as http:
        assert http.post("/ui/api/control", content=body, headers=headers).status_code == status


@pytest.mark.parametrize(
    "query",
    [
        "/ui/api/job",
        "/ui/api/job?jobID=",
        "/ui/api/output?jobID=x&which=secrets",
        "/ui/api/output?which=output",
        f"/ui/api/job?jobID={'x' * 300}",
    ],
)
def test_hostile_queries_get_a_400(serve: Callable[..., Any], query: str) -> None:
    """Missing, empty, overlong or unknown parameters: 400, never 500."""
    with serve() as url, httpx.Client(base_url=url, timeout=30) as http:
        assert http.get(query).status_code == 400


def test_no_get_changes_anything(serve: Callable[..., Any]) -> None:
    """The control endpoint takes POST only."""
    with serve() as url, httpx.Client(base_url=url, timeout=30) as http:
        assert http.get("/ui/api/control?jobID=x&action=terminate").status_code == 405


def test_the_actions_act_through_the_tracker(
    serve: Callable[..., Any], engine: MemoryEngine, tmp_path: Path, jobs_dir: Path
) -> None:
    """Release, suspend, resume, terminate and delete from the dashboard do what the
    tracker does, answering the job's row after each; a misfit action is a 409."""
    with _tracker(engine, tmp_path, DEFAULT, [jobs_dir]) as tracker:
        job_id = tracker.add_job(SLEEP.model_copy(update={"submit_as_hold": True}))
    with serve() as url, httpx.Client(base_url=url, timeout=30) as http:

        def act(action: str) -> httpx.Response:
            return http.post("/ui/api/control", json={"jobID": job_id, "action": action})

        assert act("suspend").status_code == 409
        states = [act(a).json()["row"]["state"] for a in ("release", "suspend", "resume")]
        assert states == ["running", "suspended", "running"]
        terminated = act("terminate").json()["row"]
        assert (terminated["state"], terminated["actions"]) == ("failed", ["delete"])
        assert act("delete").json() == {"gone": job_id}
        assert http.get("/ui/api/jobs").json()["rows"] == []


def _events(response: httpx.Response) -> Iterator[tuple[str, Any]]:
    """The Server-Sent Events of a streamed response, as (event name, data)."""
    name, data = "message", []
    for line in response.iter_lines():
        if line.startswith(":"):
            continue
        if not line:
            if data:
                yield name, json.loads("\n".join(data))
            name, data = "message", []
        elif line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            data.append(line.removeprefix("data: "))


def test_the_stream_sends_the_table_then_changed_rows_then_the_table_after_a_gap(
    serve: Callable[..., Any], engine: MemoryEngine, tmp_path: Path, jobs_dir: Path
) -> None:
    """First the whole table; a job's change as its row; after an outage of the engine's
    events (changes may have been missed) the whole table again."""
    with (
        serve() as url,
        httpx.Client(base_url=url, timeout=30) as http,
        http.stream("GET", "/ui/api/stream") as response,
        _tracker(engine, tmp_path, DEFAULT, [jobs_dir]) as tracker,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-store"
        events = _events(response)
        assert next(events) == ("table", {"rows": [], "total": 0, "truncated": False})
        job_id = tracker.add_job(SLEEP)
        seen: dict[str, str] = {}
        while seen.get(job_id) != "running":
            name, data = next(events)
            assert name == "rows"
            seen |= {row["id"]: row["state"] for row in data["rows"]}
        with engine.events_outage():
            pass
        name, data = next(e for e in events if e[0] != "rows")
        assert name == "table"
        assert [row["id"] for row in data["rows"]] == [job_id]


def test_streams_are_bounded_and_give_their_slot_back(serve: Callable[..., Any]) -> None:
    """Beyond max_ui_streams a stream is refused at once (503 TryLaterError); a stream whose
    client went away gives its slot back."""
    with serve(max_ui_streams=1, max_wait=0.5) as url, httpx.Client(base_url=url) as http:
        with http.stream("GET", "/ui/api/stream") as first:
            assert next(_events(first))[0] == "table"
            refused = http.get("/ui/api/stream")
            assert refused.status_code == 503
            assert refused.headers[ERROR_CLASS_HEADER] == "TryLaterError"
        for _ in range(3000):  # a guard against a hang, not a timed assertion
            with http.stream("GET", "/ui/api/stream") as again:
                if again.status_code == 200:
                    break
            time.sleep(0.01)
        assert again.status_code == 200


def test_a_stream_ends_when_the_server_shuts_down(serve: Callable[..., Any]) -> None:
    """Stopping the server ends an open stream (its poll is woken), so the stop does not
    wait for it."""
    ended = threading.Event()
    opened = threading.Event()

    def follow(url: str) -> None:
        with (
            httpx.Client(base_url=url, timeout=60) as http,
            http.stream("GET", "/ui/api/stream") as response,
        ):
            for _ in _events(response):
                opened.set()
        ended.set()

    with serve(max_wait=60) as url:
        reader = threading.Thread(target=follow, args=(url,), daemon=True)
        reader.start()
        assert opened.wait(60)
    reader.join(60)
    assert ended.is_set()


def test_the_output_endpoint_reads_only_what_the_server_allows(
    serve: Callable[..., Any], engine: MemoryEngine, tmp_path: Path, jobs_dir: Path
) -> None:
    """A job's output file below the server's allowed host paths is shown (live while it
    runs); one without an output file is a 400 saying so."""
    with _tracker(engine, tmp_path, DEFAULT, [jobs_dir]) as tracker:
        out = jobs_dir / "o"
        job_id = tracker.add_job(SLEEP.model_copy(update={"output_path": str(out)}))
        bare = tracker.add_job(SLEEP)
        with serve() as url, httpx.Client(base_url=url, timeout=30) as http:
            live = http.get("/ui/api/output", params={"jobID": job_id}).json()
            assert live == {"path": str(out), "text": "", "truncated": False, "live": True}
            engine.exit(job_id, 0, stdout=b"hello\n")
            assert tracker.wait(job_id, 10) is JobState.DONE
            done = http.get("/ui/api/output", params={"jobID": job_id}).json()
            assert done == {"path": str(out), "text": "hello\n", "truncated": False, "live": False}
            missing = http.get("/ui/api/output", params={"jobID": bare, "which": "error"})
            assert missing.status_code == 400
            assert "has no error file" in missing.json()["Error"]
    assert os.path.exists(out)


# -- opening it from the command line ---------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({}, "http://127.0.0.1:32321/ui"),
        ({"port": 8080, "base_path": "/jobs/"}, "http://127.0.0.1:8080/jobs/ui"),
        ({"host": "::1"}, "http://[::1]:32321/ui"),
        ({"host": "0.0.0.0", "token": "t" * 16}, "http://127.0.0.1:32321/ui"),
        (
            {"host": "0.0.0.0", "token": "t" * 16, "allowed_hosts": ["*.lab", "jobs.lab"]},
            "http://jobs.lab:32321/ui",
        ),
        (
            {"host": "10.0.0.5", "tls_certfile": "c.pem", "tls_keyfile": "k.pem"},
            "https://10.0.0.5:32321/ui",
        ),
    ],
)
def test_serve_open_opens_the_address_the_server_answers(
    settings: dict[str, Any], expected: str
) -> None:
    """A wildcard bind is opened on loopback, or by the first plain allowed Host name (the
    Host check would refuse loopback then); TLS and the base path are kept."""
    from containertracker.cli.dashboard import dashboard_url, served_url

    assert dashboard_url(served_url(ServerSettings(**settings))) == expected


@pytest.mark.parametrize(
    ("server_url", "expected"),
    [
        ("http://u:secret@h:1/base", "http://h:1/base/ui"),
        ("http://h:1/base/?token=secret#frag", "http://h:1/base/ui"),
        ("https://[::1]:8443", "https://[::1]:8443/ui"),
        ("http://jobs.example/", "http://jobs.example/ui"),
    ],
)
def test_ui_opens_the_address_without_credentials_query_or_fragment(
    server_url: str, expected: str
) -> None:
    """``containertracker ui`` hands a browser (its history, its command line) no password:
    userinfo, query and fragment are dropped, /ui goes below the base path."""
    from containertracker.cli.dashboard import dashboard_url

    assert dashboard_url(server_url) == expected


@pytest.mark.parametrize("server_url", ["ftp://h/x", "http://u:secret@h:99999999/", "h:1"])
def test_ui_refuses_what_is_no_server_url_without_quoting_it(server_url: str) -> None:
    from containertracker.cli.dashboard import dashboard_url

    with pytest.raises(InvalidArgumentError) as refused:
        dashboard_url(server_url)
    assert "secret" not in str(refused.value)


# -- review fixes: the server's side -------------------------------------------------------------


def test_the_token_field_is_not_offered_for_saving() -> None:
    """The sign-in field keeps the token out of browsers' password managers (the README
    promises it stays in the tab): no password name, autocomplete off, still hidden."""
    import html.parser

    class Inputs(html.parser.HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.found: dict[str, dict[str, str | None]] = {}

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            values = dict(attrs)
            if values.get("id") in ("login-secret", "login-form"):
                self.found[str(values["id"])] = values

    parser = Inputs()
    parser.feed(dashboard._asset("index.html").decode())
    secret, form = parser.found["login-secret"], parser.found["login-form"]
    assert secret["type"] == "password"
    assert secret["autocomplete"] == "off" and form["autocomplete"] == "off"
    assert secret["name"] not in ("password", "current-password")


class _CountingEngine:
    """An engine connection that counts its inspections."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self.inspections = 0

    def inspect(self, container_id: str) -> Any:
        self.inspections += 1
        return self._engine.inspect(container_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)


def test_a_row_costs_one_inspection(engine: MemoryEngine, tmp_path: Path) -> None:
    """Info and template come from one look at the job's container."""
    counting = _CountingEngine(engine.connect())
    with ContainerTracker(counting, "rows", state_dir=tmp_path / "state") as tracker:  # type: ignore[arg-type]
        job_id = tracker.add_job(SLEEP.model_copy(update={"job_name": "one-look"}))
        counting.inspections = 0
        rows = dashboard._rows(tracker, [job_id, "0" * 64])
        assert [row["name"] for row in rows["rows"]] == ["one-look"]
        assert rows["gone"] == ["0" * 64]
        assert counting.inspections == 2  # one per job


def test_listing_sessions_opens_no_tracker_the_token_may_not_use(
    engine: MemoryEngine, tmp_path: Path, jobs_dir: Path, tokens: Path
) -> None:
    """The team's token lists its sessions through a tracker of a session it may use,
    never the default session's (whose scheduling it would set going); the operator's
    then reuses an open tracker."""
    with _tracker(engine, tmp_path, "team-a-1", [jobs_dir]) as tracker:
        tracker.add_job(SLEEP)
    opened: list[str] = []

    def open_tracker(session: str) -> ContainerTracker:
        opened.append(session)
        return _tracker(engine, tmp_path, session, [jobs_dir])

    pool = TrackerPool(open_tracker, DEFAULT)  # type: ignore[arg-type]
    settings = ServerSettings(port=0, allowed_host_paths=[jobs_dir], token_file=tokens)
    with ServerThread(pool, settings) as url, httpx.Client(base_url=url, timeout=30) as http:
        team = http.get("/ui/api/sessions", headers=_auth(TEAM)).json()
        assert team["sessions"] == ["team-a", "team-a-1"]
        assert opened == ["team-a"]
        operator = http.get("/ui/api/sessions", headers=_auth(OPERATOR)).json()
        assert operator["sessions"] == [DEFAULT, "team-a-1"]
        assert opened == ["team-a"]


class _Broken(Exception):
    pass


def test_a_500_below_ui_carries_the_security_headers() -> None:
    """An unexpected error answers 500, with the dashboard's headers like every answer
    below /ui (the error handler lies outside the rest of the middleware)."""

    def broken_backend(session: str) -> Any:
        raise _Broken("no tracker here")

    with ServerThread(TrackerPool(broken_backend, "s"), ServerSettings(port=0)) as url:
        answer = httpx.get(url + "/ui/api/jobs", timeout=30)
        elsewhere = httpx.get(url + "/listjobs", timeout=30)
    assert answer.status_code == 500 and elsewhere.status_code == 500
    assert answer.headers[ERROR_CLASS_HEADER] == "InternalError"
    for name, value in SECURITY_HEADERS.items():
        assert answer.headers[name] == value
    assert "content-security-policy" not in elsewhere.headers


DEEP = b"[" * 100_000


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/addjob", DEEP),
        ("/addarrayjob", DEEP),
        ("/monitor/jobids", DEEP),
        ("/ui/api/control", DEEP),
        ("/ui/api/control", b'{"jobID": "x", "action": ' + b"[" * 500 + b"]" * 500 + b"}"),
        ("/addarrayjob", b'{"begin": ' + b"[" * 900 + b"]" * 900 + b"}"),
    ],
)
def test_deeply_nested_json_is_a_400(serve: Callable[..., Any], path: str, body: bytes) -> None:
    """Nesting beyond what any body needs is refused as malformed (400), not a 500 from
    the parser's recursion or from code walking it."""
    with serve() as url, httpx.Client(base_url=url, timeout=30) as http:
        answer = http.post(path, content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400
    assert "nested deeper than" in answer.text


def test_output_reads_are_bounded_and_refused_at_once_beyond(
    serve: Callable[..., Any], engine: MemoryEngine, tmp_path: Path, jobs_dir: Path
) -> None:
    """While MAX_OUTPUT_READS output reads are under way, another is refused at once (503
    TryLaterError), and other requests are answered meanwhile."""
    with _tracker(engine, tmp_path, DEFAULT, [jobs_dir]) as tracker:
        job_id = tracker.add_job(SLEEP.model_copy(update={"output_path": str(jobs_dir / "o")}))
    gates = [engine.block_next("logs") for _ in range(dashboard.MAX_OUTPUT_READS)]
    with serve() as url, httpx.Client(base_url=url, timeout=60) as http:
        answers: list[int] = []

        def read() -> None:
            with httpx.Client(base_url=url, timeout=60) as own:
                answers.append(own.get("/ui/api/output", params={"jobID": job_id}).status_code)

        readers = [threading.Thread(target=read) for _ in gates]
        for reader in readers:
            reader.start()
        try:
            for gate in gates:
                assert gate.reached.wait(60)
            refused = http.get("/ui/api/output", params={"jobID": job_id})
            assert refused.status_code == 503
            assert refused.headers[ERROR_CLASS_HEADER] == "TryLaterError"
            assert "output readers" in refused.json()["Error"]
            assert http.get("/ui/api/jobs").status_code == 200
        finally:
            for gate in gates:
                gate.release()
            for reader in readers:
                reader.join(60)
        assert answers == [200] * len(gates)


def test_a_token_holds_only_its_share_of_the_streams(
    serve: Callable[..., Any], tokens: Path
) -> None:
    """With 4 streams a token may hold one; the operator still gets one when the team's
    token holds its share and others' streams fill the rest."""
    with (
        serve(token_file=tokens, max_ui_streams=4, max_wait=0.5) as url,
        httpx.Client(base_url=url, timeout=30) as http,
        http.stream("GET", "/ui/api/stream", headers=_auth(TEAM, "team-a")) as first,
    ):
        assert first.status_code == 200
        again = http.get("/ui/api/stream", headers=_auth(TEAM, "team-a"))
        assert again.status_code == 503 and "its share" in again.json()["Error"]
        with http.stream("GET", "/ui/api/stream", headers=_auth(OPERATOR)) as operator:
            assert operator.status_code == 200


def test_a_stream_whose_client_stops_reading_gives_its_slot_back(
    serve: Callable[..., Any],
    engine: MemoryEngine,
    tmp_path: Path,
    jobs_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A client that opens a stream and then reads nothing (a small receive buffer, the
    connection kept open) fills the buffers: the server's write gives up after
    SEND_SECONDS, and the stream's slot is free again."""
    monkeypatch.setattr(dashboard, "SEND_SECONDS", 0.5)
    with _tracker(engine, tmp_path, DEFAULT, [jobs_dir]) as tracker:
        for i in range(dashboard.MAX_ROWS):  # tables of about 1 MB each
            name = f"{i:04d}-" + "n" * 200
            tracker.add_job(SLEEP.model_copy(update={"job_name": name, "submit_as_hold": True}))
    with serve(max_ui_streams=1, max_wait=0.5) as url, httpx.Client(base_url=url) as http:
        address = httpx.URL(url)
        with socket.socket() as stuck:
            stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
            stuck.connect((address.host, address.port))
            stuck.sendall(b"GET /ui/api/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            freed = False
            for _ in range(600):  # a guard against a hang, not a timed assertion
                with engine.events_outage():
                    pass  # changes may have been missed: the whole table again
                with http.stream("GET", "/ui/api/stream") as again:
                    if again.status_code == 200:
                        freed = True
                        break
                time.sleep(0.1)
            assert freed
