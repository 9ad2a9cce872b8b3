"""The change feed (``ChangeFeed.changes``) of a tracker over the in-memory engine: cursor
semantics, blocking until a change, waking on close, and ``complete=False`` whenever changes
may have been missed (a forgotten entry, an event outage, a foreign cursor)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from containertracker import ChangeFeed, JobChanges, JobTemplate
from containertracker.core import watch
from containertracker.core.tracker import ContainerTracker
from containertracker.errors import InvalidArgumentError, InvalidStateError
from containertracker.testing import MemoryEngine

SESSION = "feed"
JT = JobTemplate(remote_command="sleep", args=["60"], job_category="busybox")


@pytest.fixture
def engine() -> MemoryEngine:
    return MemoryEngine(images=["busybox:latest"])


@pytest.fixture
def open_tracker(
    engine: MemoryEngine, tmp_path: Path
) -> Iterator[Callable[[str], ContainerTracker]]:
    """Trackers on ``engine`` of a session (default :data:`SESSION`), closed at the end."""
    opened: list[ContainerTracker] = []

    def open_one(session: str = SESSION) -> ContainerTracker:
        tracker = ContainerTracker(
            engine.connect(), session, state_dir=tmp_path / "state", stop_grace=0
        )
        opened.append(tracker)
        return tracker

    yield open_one
    for tracker in opened:
        tracker.close()


@pytest.fixture
def tracker(open_tracker: Callable[[str], ContainerTracker]) -> ContainerTracker:
    return open_tracker(SESSION)


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(2) as executor:
        yield executor


def _changes_until(
    tracker: ContainerTracker, since: int, wanted: Callable[[set[str]], bool]
) -> tuple[JobChanges, set[str]]:
    """Follow the feed from ``since`` until the ids seen satisfy ``wanted``; the last answer
    and every id seen (the event thread may deliver a burst over several answers)."""
    seen: set[str] = set()
    for _ in range(100):
        answer = tracker.changes(since, 30)
        seen.update(answer.job_ids)
        since = answer.cursor
        if wanted(seen):
            return answer, seen
    raise AssertionError(f"the feed never showed what was wanted; it showed {seen}")


def test_the_tracker_is_a_change_feed_and_none_gives_the_cursor_of_now(
    tracker: ContainerTracker,
) -> None:
    assert isinstance(tracker, ChangeFeed)
    first = tracker.changes(None, 30)
    assert first == JobChanges(first.cursor, [], True)
    assert tracker.changes(None, 0).cursor == first.cursor  # nothing happened since
    # Nothing changed after it: the timeout passes (0: at once) with no ids, complete.
    assert tracker.changes(first.cursor, 0) == JobChanges(first.cursor, [], True)


def test_a_created_job_appears_and_later_events_only_after_its_cursor(
    tracker: ContainerTracker, engine: MemoryEngine
) -> None:
    start = tracker.changes(None, 0).cursor
    held = tracker.add_job(JT.model_copy(update={"submit_as_hold": True}))  # only created
    answer, seen = _changes_until(tracker, start, lambda ids: held in ids)
    assert answer.complete
    assert answer.cursor > start

    # A second job changes after that cursor: only it is named, the held one is not.
    running = tracker.add_job(JT)
    answer, seen = _changes_until(tracker, answer.cursor, lambda ids: running in ids)
    assert seen == {running}
    engine.exit(running, 0)
    after_exit, seen = _changes_until(tracker, answer.cursor, lambda ids: running in ids)
    assert seen == {running}
    assert tracker.changes(after_exit.cursor, 0).job_ids == []

    # From the first cursor, both, each once, the least recently changed first.
    assert tracker.changes(start, 0).job_ids == [held, running]


def test_changes_blocks_until_a_job_of_the_session_changes(
    open_tracker: Callable[[str], ContainerTracker], pool: ThreadPoolExecutor
) -> None:
    tracker, other = open_tracker(SESSION), open_tracker("other-session")
    start = tracker.changes(None, 0).cursor
    job = tracker.add_job(JT.model_copy(update={"submit_as_hold": True}))  # only created
    since, _ = _changes_until(tracker, start, lambda ids: job in ids)
    waiting: Future[JobChanges] = pool.submit(tracker.changes, since.cursor, 60)
    # Another session's job changes first, but it is not this session's: the caller wakes
    # for this session's job only.
    other.add_job(JT)
    tracker.job_control(job, "release")  # started: an event
    answer = waiting.result(timeout=30)
    assert answer.job_ids == [job]
    assert answer.complete


def _until_blocked(tracker: ContainerTracker, waiting: Future[JobChanges]) -> None:
    """Return once a thread blocks in the tracker's change feed (the call of ``waiting``)."""
    for _ in range(3000):  # a guard against a hang, not a timed assertion
        if tracker._watcher.feed_waiters() or waiting.done():
            break
        time.sleep(0.01)
    assert not waiting.done()
    assert tracker._watcher.feed_waiters() == 1


def test_closing_the_tracker_wakes_a_blocked_caller(
    tracker: ContainerTracker, pool: ThreadPoolExecutor
) -> None:
    since = tracker.changes(None, 0).cursor
    waiting = pool.submit(tracker.changes, since, 600)
    _until_blocked(tracker, waiting)  # so that the close wakes it, not precedes it
    tracker.close()
    with pytest.raises(InvalidStateError):
        waiting.result(timeout=30)  # woken by the close, well before its 600 s
    with pytest.raises(InvalidStateError):
        tracker.changes(None, 0)


def test_a_cursor_before_a_forgotten_entry_is_incomplete(
    tracker: ContainerTracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(watch, "_REMEMBERED", 3)
    start = tracker.changes(None, 0).cursor
    jobs = [tracker.add_job(JT) for _ in range(5)]
    _changes_until(tracker, start, lambda ids: jobs[-1] in ids)
    full = tracker.changes(start, 0)
    assert not full.complete  # the first jobs' entries were dropped
    assert len(full.job_ids) <= 3
    assert jobs[-1] in full.job_ids
    # A cursor taken afterwards is complete again.
    assert tracker.changes(full.cursor, 0).complete


def test_an_event_outage_after_the_cursor_makes_it_incomplete_and_wakes_callers(
    tracker: ContainerTracker, engine: MemoryEngine, pool: ThreadPoolExecutor
) -> None:
    since = tracker.changes(None, 0).cursor
    with engine.block_next("events") as reconnecting:
        with engine.events_outage():
            lost = tracker.add_job(JT)  # its events are lost
        assert reconnecting.reached.wait(30)  # the watcher is about to open the stream again
        waiting = pool.submit(tracker.changes, since, 600)
    answer = waiting.result(timeout=30)  # woken by the reconnection
    assert not answer.complete  # the job's events were lost: the caller must re-read
    assert lost in tracker.list_jobs()
    after = tracker.changes(answer.cursor, 0)
    assert after.complete


def test_a_cursor_of_another_tracker_object_is_incomplete(
    open_tracker: Callable[[str], ContainerTracker],
) -> None:
    first, second = open_tracker(SESSION), open_tracker(SESSION)
    foreign = first.changes(None, 0).cursor
    answer = second.changes(foreign, 600)  # at once: it cannot say what changed since
    assert not answer.complete
    assert answer.job_ids == []
    assert second.changes(answer.cursor, 0).complete
    assert not second.changes(answer.cursor + 10**6, 0).complete  # from the future


def test_a_cursor_names_its_tracker_however_many_events_it_saw(
    open_tracker: Callable[[str], ContainerTracker],
) -> None:
    """The sequence never runs into the tag: a cursor after 2**32 (or 2**63) events is not
    that of a tracker whose tag is one more, and tags are 64 random bits (one of two
    trackers colliding in them is a chance of 2**-64, not 2**-20)."""
    first, second = open_tracker(SESSION), open_tracker(SESSION)
    for events in (2**32 + 7, 2**63 + 7):
        first._watcher._sequence = events  # as if that many events were seen
        # The next tag up: the cursor of its tracker's 7th event (it has seen at least 7).
        second._watcher._base = first._watcher._base + (1 << watch._TAG_SHIFT)
        second._watcher._sequence = max(second._watcher._sequence, 7)
        cursor = first.changes(None, 0).cursor
        assert first.changes(cursor, 0).complete
        assert not second.changes(cursor, 0).complete  # not the other tracker's
    tags = {open_tracker(SESSION).changes(None, 0).cursor >> 64 for _ in range(8)}
    assert len(tags) == 8 and 0 not in tags
    assert all(tag < 2**64 for tag in tags)


@pytest.mark.parametrize(
    ("since", "timeout"),
    [(-1, 0), (1.5, 0), ("3", 0), (True, 0), (None, -1), (None, float("nan")), (None, "1")],
)
def test_bad_arguments_are_refused(
    tracker: ContainerTracker, since: object, timeout: object
) -> None:
    with pytest.raises(InvalidArgumentError):
        tracker.changes(since, timeout)  # type: ignore[arg-type]
