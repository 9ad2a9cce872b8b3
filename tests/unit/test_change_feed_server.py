"""The change feed over HTTP (``GET /changes`` and ``RemoteTracker.changes``), served from
trackers on the in-memory engine: hostile ``since``/``timeout`` values get a typed 4xx, the
server caps each poll and the client carries on over rounds, busy long-poll slots, and a
server without the endpoint."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

import containertracker.remote.pool as tracker_pool
from containertracker import ChangeFeed, JobChanges, JobState, JobTemplate
from containertracker.core.tracker import ContainerTracker
from containertracker.errors import InvalidStateError, UnsupportedOperationError
from containertracker.remote import RemoteTracker, ServerThread, TrackerPool
from containertracker.remote.wire import ERROR_CLASS_HEADER, cursor_from_wire
from containertracker.settings import ServerSettings
from containertracker.testing import MemoryEngine

SESSION = "feed"
HELD = JobTemplate(remote_command="sleep", args=["60"], job_category="busybox", submit_as_hold=True)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


@pytest.fixture
def engine() -> MemoryEngine:
    return MemoryEngine(images=["busybox:latest"])


@pytest.fixture
def opened() -> list[ContainerTracker]:
    """The trackers the server of :func:`serve` opened, in order (the pool closes them)."""
    return []


@pytest.fixture
def serve(
    engine: MemoryEngine, tmp_path: Path, opened: list[ContainerTracker]
) -> Callable[..., Any]:
    """``with serve(wrap=None, max_sessions=64, **server_settings) as url``: a server of
    trackers on ``engine`` (confined as a default server requires) keeping at most
    ``max_sessions`` open, stopped at the end of the block."""

    def open_tracker(session: str) -> ContainerTracker:
        tracker = ContainerTracker(
            engine.connect(),
            session,
            state_dir=tmp_path / "state",
            host_path_roots=[],
            monitor_all_containers=False,
        )
        opened.append(tracker)
        return tracker

    @contextmanager
    def running(
        wrap: Callable[[App], App] | None = None, max_sessions: int = 64, **settings: Any
    ) -> Iterator[str]:
        trackers = TrackerPool(open_tracker, SESSION, max_sessions=max_sessions)  # type: ignore[arg-type]
        with ServerThread(trackers, ServerSettings(port=0, **settings), wrap=wrap) as url:  # type: ignore[arg-type]
            yield url

    return running


def _until_blocked(tracker: ContainerTracker, waiting: Future[JobChanges]) -> None:
    """Return once a thread blocks in the (server's) tracker's change feed: the server's poll
    for the client call ``waiting`` is in flight."""
    for _ in range(3000):  # a guard against a hang, not a timed assertion
        if tracker._watcher.feed_waiters() or waiting.done():
            break
        time.sleep(0.01)
    assert not waiting.done()
    assert tracker._watcher.feed_waiters() == 1


def _client(url: str) -> RemoteTracker:
    return RemoteTracker(SESSION, url, timeout=30)


@pytest.mark.parametrize(
    "params",
    [
        {"since": "-1"},
        {"since": "abc"},
        {"since": "1.5"},
        {"since": ""},
        {"since": "1e3"},
        {"since": "0x10"},
        {"since": "1_000"},
        {"since": " 1"},
        {"since": "\uff11"},  # a fullwidth digit: isdigit(), but no cursor
        {"since": str(2**128)},  # beyond any cursor
        {"since": "0" * 40},  # more digits than any cursor has
        {"since": "9" * 5000},
        {"timeout": "-1"},
        {"timeout": "nan"},
        {"timeout": "inf"},
        {"timeout": "abc"},
        {"timeout": ""},
        {"since": "0", "timeout": "-0.5"},
    ],
)
def test_hostile_since_and_timeout_get_a_typed_400(
    serve: Callable[..., Any], params: dict[str, str]
) -> None:
    with serve() as url, httpx.Client(base_url=url, timeout=30) as http:
        answer = http.get("/changes", params=params)
    assert answer.status_code == 400
    assert answer.headers[ERROR_CLASS_HEADER] == "InvalidArgumentError"
    assert "Error" in answer.json()


def test_a_huge_timeout_is_capped_and_a_foreign_cursor_is_incomplete(
    serve: Callable[..., Any],
) -> None:
    with serve(max_wait=0.2) as url, httpx.Client(base_url=url, timeout=30) as http:
        now = http.get("/changes").json()
        assert now == {"Cursor": now["Cursor"], "JobIDs": [], "Complete": True}
        # A decimal string: 128 bits wide, beyond the precision of JSON numbers.
        assert isinstance(now["Cursor"], str) and cursor_from_wire(now["Cursor"]) >= 2**64
        # Held no longer than the server's cap (the client's 30 s would fail first).
        capped = http.get("/changes", params={"since": now["Cursor"], "timeout": "1e300"})
        assert capped.json() == {"Cursor": now["Cursor"], "JobIDs": [], "Complete": True}
        # Any well-formed integer is accepted, and one the tracker never gave is incomplete.
        for foreign in ("0", str(2**63), str(2**128 - 1), "0" * 39):
            answer = http.get("/changes", params={"since": foreign, "timeout": "1e300"})
            assert answer.status_code == 200
            assert answer.json()["Complete"] is False


def test_the_client_follows_the_feed_over_many_capped_rounds(
    serve: Callable[..., Any],
) -> None:
    """A client call longer than the server's cap asks round after round (counted here), and
    returns the change that comes after several of them."""
    rounds = threading.Semaphore(0)

    def counting(app: App) -> App:
        async def counted(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and scope["path"] == "/changes":
                rounds.release()
            await app(scope, receive, send)

        return counted

    with (
        serve(wrap=counting, max_wait=0.1) as url,
        _client(url) as tracker,
        ThreadPoolExecutor(1) as pool,
    ):
        assert isinstance(tracker, ChangeFeed)
        start = tracker.changes(None, 0)
        assert start.complete and start.job_ids == []
        job = tracker.add_job(HELD)
        created = tracker.changes(start.cursor, 30)
        assert created.job_ids == [job] and created.complete

        waiting = pool.submit(tracker.changes, created.cursor, 120)
        for _ in range(4):  # the call for the cursor, then at least three more rounds
            assert rounds.acquire(timeout=30)
        assert not waiting.done()
        tracker.job_control(job, "release")
        answer = waiting.result(timeout=30)
        assert answer.job_ids == [job] and answer.complete
        assert tracker.changes(answer.cursor, 0) == JobChanges(answer.cursor, [], True)


def test_busy_long_poll_slots_answer_try_later_and_the_client_times_out_unchanged(
    serve: Callable[..., Any],
) -> None:
    with (
        serve(max_wait=30, max_feed_polls=1) as url,
        _client(url) as tracker,
        httpx.Client(base_url=url, timeout=60) as http,
        ThreadPoolExecutor(1) as pool,
    ):
        cursor = tracker.changes(None, 0).cursor
        holding = pool.submit(tracker.changes, cursor, 60)  # takes the one slot
        while True:  # until the slot is taken: then a second poll is turned away
            refused = http.get("/changes", params={"since": cursor, "timeout": "0"})
            if refused.status_code == 503:
                break
            assert refused.json()["JobIDs"] == []
        assert refused.headers[ERROR_CLASS_HEADER] == "TryLaterError"
        assert http.get("/changes").status_code == 200  # the cursor of now takes no slot
        # The client asks again until its timeout, then says "nothing yet", cursor unchanged.
        assert tracker.changes(cursor, 0.5) == JobChanges(cursor, [], True)
        job = tracker.add_job(HELD)  # ends the held poll
        assert job in holding.result(timeout=30).job_ids


def test_a_server_without_the_endpoint_is_unsupported(serve: Callable[..., Any]) -> None:
    """An older server (here: one whose /changes is not found) raises
    UnsupportedOperationError, not a communication error."""

    def without_changes(app: App) -> App:
        async def older(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and scope["path"] == "/changes":
                await send({"type": "http.response.start", "status": 404, "headers": []})
                await send({"type": "http.response.body", "body": b"Not Found"})
                return
            await app(scope, receive, send)

        return older

    with serve(wrap=without_changes) as url, _client(url) as tracker:
        with pytest.raises(UnsupportedOperationError):
            tracker.changes(None, 0)
        with pytest.raises(UnsupportedOperationError):
            tracker.changes(0, 5)


def test_closing_the_client_wakes_a_blocked_caller(
    serve: Callable[..., Any], opened: list[ContainerTracker]
) -> None:
    with serve(max_wait=30) as url, ThreadPoolExecutor(1) as threads:
        tracker = _client(url)
        cursor = tracker.changes(None, 0).cursor
        waiting = threads.submit(tracker.changes, cursor, 600)
        _until_blocked(opened[0], waiting)  # the poll is in flight: the close must wake it
        tracker.close()
        with pytest.raises(InvalidStateError):
            waiting.result(timeout=30)  # woken by the close, not after its 600 s


def test_feed_polls_have_their_own_limit_below_the_sessions_kept() -> None:
    assert ServerSettings().max_feed_polls < tracker_pool._MAX_SESSIONS


@contextlib.contextmanager
def _three_sessions_on_a_server_keeping_two(
    serve: Callable[..., Any],
) -> Iterator[tuple[ThreadPoolExecutor, RemoteTracker, RemoteTracker, RemoteTracker]]:
    """Two threads for long polls, and clients of sessions a, b and c of a server keeping at
    most two sessions open."""
    # The threads first: leaving the block, the clients' closes wake polls still in flight.
    with (
        ThreadPoolExecutor(2) as threads,
        serve(max_sessions=2, max_wait=30) as url,
        RemoteTracker("a", url, timeout=30) as first,
        RemoteTracker("b", url, timeout=30) as second,
        RemoteTracker("c", url, timeout=30) as third,
    ):
        yield threads, first, second, third


def test_sessions_polling_the_feed_never_lock_other_sessions_out(
    serve: Callable[..., Any], opened: list[ContainerTracker]
) -> None:
    """Two sessions' feed polls fill a server keeping two sessions open: a third session's
    plain request still succeeds, evicting the least recently used polled session; its poll
    wakes (TryLaterError), and the client asks again: the session is reopened, the cursor
    reads as foreign (complete=False, a fresh cursor), and the feed goes on from there."""
    with _three_sessions_on_a_server_keeping_two(serve) as (threads, first, second, third):
        polls = []
        for number, client in enumerate((first, second)):
            cursor = client.changes(None, 0).cursor
            polls.append(threads.submit(client.changes, cursor, 600))
            _until_blocked(opened[number], polls[-1])

        assert third.list_jobs() == []  # before the fix: TryLaterError, every session busy

        woken = polls[0].result(timeout=60)  # "a", the least recently used, was evicted
        assert woken.job_ids == [] and not woken.complete
        assert [t._session for t in opened] == ["a", "b", "c", "a"]
        assert not polls[1].done()  # "b" still polls: the idle "c" made room for "a"
        job = first.add_job(HELD)
        assert job in first.changes(woken.cursor, 30).job_ids  # the fresh cursor works
        second.add_job(HELD)  # ends b's poll
        assert polls[1].result(timeout=30).job_ids


def test_sessions_waiting_for_jobs_never_lock_other_sessions_out(
    serve: Callable[..., Any], opened: list[ContainerTracker]
) -> None:
    """Two sessions' /wait long polls fill a server keeping two sessions open: a third
    session's plain request still succeeds, evicting a waiting session; that wait wakes
    (TryLaterError), its client goes on polling, and it still returns the job's state."""
    with _three_sessions_on_a_server_keeping_two(serve) as (threads, first, second, third):
        waits = []
        for number, client in enumerate((first, second)):
            job = client.add_job(HELD)
            waits.append((client, job, threads.submit(client.wait, job, 120, JobState.RUNNING)))
            for _ in range(3000):  # a guard against a hang, not a timed assertion
                if opened[number]._watcher._waiters or waits[-1][2].done():
                    break
                time.sleep(0.01)
            assert not waits[-1][2].done()

        assert third.list_jobs() == []  # before the fix: TryLaterError, every session busy

        for client, job, waiting in waits:  # each wait still returns when its job starts
            client.job_control(job, "release")
            assert waiting.result(timeout=60) is JobState.RUNNING
            client.job_control(job, "terminate")


def test_a_state_query_answers_while_submissions_keep_the_engine_busy(
    engine: MemoryEngine, serve: Callable[..., Any]
) -> None:
    """A server with 2 request threads lets one submission at a time hold a thread (the
    engine is what is slow, not the server): while the engine holds a submission's
    creation, and another submission waits for its turn, a state query still gets a thread
    and answers (before, the submissions took every thread, and 100 clients submitting at
    once made every state query wait a second)."""
    with (
        serve(worker_threads=2) as url,
        RemoteTracker(SESSION, url, timeout=30) as first,
        RemoteTracker(SESSION, url, timeout=30) as second,
        RemoteTracker(SESSION, url, timeout=5) as reader,
    ):
        job_id = reader.add_job(HELD)
        with (
            engine.block_next("create") as one,
            engine.block_next("create") as two,
            ThreadPoolExecutor(2) as pool,
        ):
            submitted = [pool.submit(client.add_job, HELD) for client in (first, second)]
            assert one.reached.wait(5)
            # The second waits for its turn (a second is ample for it to reach the engine
            # otherwise), holding no thread: the state query gets one.
            assert not two.reached.wait(1)
            assert reader.job_state(job_id)[0] is JobState.QUEUED_HELD
            one.release()
            assert two.reached.wait(5)
            two.release()
            assert len({future.result(5) for future in submitted}) == 2
