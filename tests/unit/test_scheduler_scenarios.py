"""Schedulers and real trackers over the in-memory engine (issue 12): races between
schedulers, claims lost with their scheduler, holds around a start, a broken event stream, an
unreachable engine and a termination during a start, each made to happen deterministically.

Trackers here resync once a minute, so that only events, kicks and reconnections can drive
them within a test's waits: a scenario that needs a resync to progress fails. A second
scheduler with a fake clock plays "another tracker of the session" where a claim must age.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import pytest

from containertracker import DrmCommunicationError, InvalidStateError, JobState, JobTemplate
from containertracker.core.decision import CLAIM_HORIZON
from containertracker.core.engine import EngineEvent
from containertracker.core.plan import Plan
from containertracker.core.scheduler import Scheduler
from containertracker.core.statestore import StateStore
from containertracker.core.tracker import ContainerTracker
from containertracker.testing import FakeClock, MemoryEngine

SESSION = "scenario"
QUEUED, QUEUED_HELD, RUNNING = JobState.QUEUED, JobState.QUEUED_HELD, JobState.RUNNING
DONE, FAILED = JobState.DONE, JobState.FAILED
WAIT = 5.0
"""The longest a scenario waits for something that takes milliseconds."""


def template() -> JobTemplate:
    return JobTemplate(remote_command="sleep", args=("300",), job_category="busybox")


def until(condition: Callable[[], bool]) -> bool:
    """Whether ``condition`` holds within :data:`WAIT` (for what no event announces)."""
    give_up = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > give_up:
            return False
        time.sleep(0.001)
    return True


def waited_for(tracker: ContainerTracker, job_id: str) -> bool:
    """Whether a thread waits for an event about the job in ``tracker`` right now."""
    return job_id in tracker._watcher._waiters


def starts(history: list[EngineEvent], job_id: str) -> int:
    return sum(1 for event in history if event.container_id == job_id and event.action == "start")


def most_running_at_once(history: list[EngineEvent], job_ids: list[str]) -> int:
    """The largest number of ``job_ids`` running at one moment, replaying the events."""
    running: set[str] = set()
    most = 0
    for event in history:
        if event.container_id not in job_ids:
            continue
        if event.action == "start":
            running.add(event.container_id)
        elif event.action == "die":
            running.discard(event.container_id)
        most = max(most, len(running))
    return most


@pytest.fixture
def engine() -> MemoryEngine:
    return MemoryEngine()


@pytest.fixture
def state_root(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def open_tracker(
    engine: MemoryEngine, state_root: Path
) -> Iterator[Callable[[], ContainerTracker]]:
    """Trackers of the session on one state directory, each with its own engine connection
    (closed at the end)."""
    opened: list[ContainerTracker] = []

    def open_one() -> ContainerTracker:
        tracker = ContainerTracker(
            engine.connect(), SESSION, state_dir=state_root, stop_grace=0, resync_interval=60
        )
        opened.append(tracker)
        return tracker

    yield open_one
    for tracker in opened:
        tracker.close()


@pytest.fixture
def open_scheduler(
    engine: MemoryEngine, state_root: Path
) -> Iterator[Callable[[FakeClock], Scheduler]]:
    """Bare schedulers of the session (no event thread: the test runs their passes) on the
    trackers' state directory, each with the given clock (closed at the end)."""
    opened: list[Scheduler] = []

    def open_one(clock: FakeClock) -> Scheduler:
        scheduler = Scheduler(
            engine.connect(),
            SESSION,
            StateStore(state_root),
            finalize=lambda job_id: None,
            resync_interval=60,
            stop_grace=0,
            clock=clock,
        )
        opened.append(scheduler)
        return scheduler

    yield open_one
    for scheduler in opened:
        scheduler.close()


def throttled_pair(tracker: ContainerTracker) -> tuple[str, str]:
    """Submit two tasks with max_parallel=1: the first runs, the second waits for its slot."""
    array_id = tracker.add_array_job(template(), 1, 2, 1, max_parallel=1)
    first, second = tracker.list_array_jobs(array_id)
    assert tracker.job_state(first)[0] is RUNNING
    assert tracker.job_state(second)[0] is QUEUED
    return first, second


def test_two_trackers_racing_for_one_slot_never_run_two_tasks_at_once(
    engine: MemoryEngine, open_tracker: Callable[[], ContainerTracker]
) -> None:
    """Both trackers' schedulers hear every task end (the submitter hands the slot on
    directly, the other runs a pass): the twenty tasks of a max_parallel=1 array still run
    one at a time, each once, in task order."""
    submitter, other = open_tracker(), open_tracker()
    array_id = submitter.add_array_job(template(), 1, 20, 1, max_parallel=1)
    tasks = other.list_array_jobs(array_id)
    for task in tasks:
        assert other.wait(task, WAIT, RUNNING) is RUNNING
        engine.exit(task, 0)
    assert [submitter.wait(task, WAIT) for task in tasks] == [DONE] * len(tasks)
    history = engine.history()
    assert most_running_at_once(history, tasks) == 1
    assert [e.container_id for e in history if e.action == "start"] == tasks


def test_a_claim_lost_mid_start_is_claimed_anew_after_the_horizon(
    engine: MemoryEngine,
    open_tracker: Callable[[], ContainerTracker],
    open_scheduler: Callable[[FakeClock], Scheduler],
) -> None:
    """A tracker claims the waiting task and hangs in its start (as if it died there): another
    scheduler leaves the task alone while the claim is younger than the horizon, then claims
    it anew and starts it; the hung start, let go at last, does not start it again."""
    tracker = open_tracker()
    first, second = throttled_pair(tracker)
    with engine.block_next("start") as hung:
        engine.exit(first, 0)
        assert hung.reached.wait(WAIT), "the tracker did not start the waiting task"
        clock = FakeClock(time.time())
        other = open_scheduler(clock)
        clock.advance(CLAIM_HORIZON - 1)
        other.schedule_now()
        assert engine.inspect(second).status == "created"  # the claim holds the slot
        clock.advance(1)
        other.schedule_now()  # (or its background pass, kicked by the first, starts it)
        assert until(lambda: engine.inspect(second).status == "running")
    tracker.close()  # returns once the hung start is over
    assert starts(engine.history(), second) == 1
    assert engine.inspect(second).status == "running"


def test_a_hold_between_claim_and_start_keeps_the_job_held(
    engine: MemoryEngine,
    state_root: Path,
    open_tracker: Callable[[], ContainerTracker],
    open_scheduler: Callable[[FakeClock], Scheduler],
) -> None:
    """Another scheduler has claimed the waiting task, and a hold comes before its start: the
    start does not happen and drops the claim; the task stays QUEUED_HELD when its slot frees
    up, and runs once released."""
    tracker = open_tracker()
    first, second = throttled_pair(tracker)
    clock = FakeClock(time.time())
    other = open_scheduler(clock)
    store = StateStore(state_root)
    with store.session_lock(SESSION):  # the other scheduler's pass: its claim, start to come
        store.claim(SESSION, [second], clock())
    tracker.job_control(second, "hold")
    plan = Plan.from_labels(engine.inspect(second).labels)
    assert not other.start(second, plan, clock())
    assert store.marks(second).claimed_at is None
    engine.exit(first, 0)
    assert tracker.wait(first, WAIT) is DONE
    tracker._scheduler.schedule_now()
    assert tracker.job_state(second)[0] is QUEUED_HELD
    assert starts(engine.history(), second) == 0
    tracker.job_control(second, "release")
    assert tracker.wait(second, WAIT, RUNNING) is RUNNING


def test_a_hold_after_the_start_is_committed_is_refused(
    engine: MemoryEngine, state_root: Path, open_tracker: Callable[[], ContainerTracker]
) -> None:
    """While the engine starts the task (its claim renewed, the start committed), a hold is
    refused and leaves no mark: the task runs."""
    tracker = open_tracker()
    first, second = throttled_pair(tracker)
    with engine.block_next("start") as starting:
        engine.exit(first, 0)
        assert starting.reached.wait(WAIT)
        with pytest.raises(InvalidStateError, match="being started"):
            tracker.job_control(second, "hold")
    assert tracker.wait(second, WAIT, RUNNING) is RUNNING
    assert StateStore(state_root).marks(second).hold is None


def test_a_throttled_array_finishes_across_event_stream_outages(
    engine: MemoryEngine, open_tracker: Callable[[], ContainerTracker]
) -> None:
    """Task after task ends while the event stream is down (its die event is lost): each time
    the stream is back, a wait under way for the task's end returns, and the tracker starts
    the next task."""
    tracker = open_tracker()
    array_id = tracker.add_array_job(template(), 1, 4, 1, max_parallel=1)
    tasks = tracker.list_array_jobs(array_id)
    with ThreadPoolExecutor(1) as pool:
        for task in tasks[:-1]:
            assert tracker.wait(task, WAIT, RUNNING) is RUNNING
            # A wait of twice as long: a last look at its deadline would hide a missed end.
            ended = pool.submit(tracker.wait, task, 2 * WAIT)
            assert until(partial(waited_for, tracker, task))
            with engine.events_outage():
                engine.exit(task, 0)
            assert ended.result(WAIT) is DONE
    assert tracker.wait(tasks[-1], WAIT, RUNNING) is RUNNING
    engine.exit(tasks[-1], 0)
    assert tracker.wait(tasks[-1], WAIT) is DONE


def test_a_transient_start_error_leaves_the_job_queued_until_its_retry(
    engine: MemoryEngine,
    state_root: Path,
    open_tracker: Callable[[], ContainerTracker],
    open_scheduler: Callable[[FakeClock], Scheduler],
) -> None:
    """A start that meets an unreachable engine does not fail the job: it stays QUEUED (saying
    why), is not retried before its backoff is over, and then starts."""
    tracker = open_tracker()
    first, second = throttled_pair(tracker)
    store = StateStore(state_root)
    engine.fail_next("start", DrmCommunicationError("the engine is restarting"))
    engine.exit(first, 0)
    assert until(lambda: store.marks(second).retries == 1), "the failed start was not recorded"
    state, sub_state = tracker.job_state(second)
    assert state is QUEUED
    assert "start retried" in sub_state and "restarting" in sub_state
    # The retry is left to a scheduler with a fake clock (the tracker's own would come a
    # second later).
    tracker.close()
    retry_after = store.marks(second).retry_after
    assert retry_after is not None
    clock = FakeClock(retry_after - 0.5)
    other = open_scheduler(clock)
    other.schedule_now()
    assert engine.inspect(second).status == "created"
    clock.advance(0.5)
    other.schedule_now()  # (or its background pass, kicked by the first, starts it)
    assert until(lambda: engine.inspect(second).status == "running")
    assert until(lambda: store.marks(second).retries == 0), "the retry was not recorded as done"
    marks = store.marks(second)
    assert (marks.last_error, marks.retry_after) == ("", None)


def test_terminate_during_the_start_stops_the_job(
    engine: MemoryEngine, open_tracker: Callable[[], ContainerTracker]
) -> None:
    """A job terminated while the engine starts it (add_job's start under way) is stopped as
    soon as the start is done: it never runs on, and reads FAILED."""
    tracker = open_tracker()
    with ThreadPoolExecutor(1) as pool, engine.block_next("start") as starting:
        submitted = pool.submit(tracker.add_job, template())
        assert starting.reached.wait(WAIT)
        (job_id,) = tracker.list_jobs()
        tracker.job_control(job_id, "terminate")
        assert engine.inspect(job_id).status == "created"
        starting.release()
        assert submitted.result(WAIT) == job_id
    assert tracker.wait(job_id, WAIT) is FAILED
    assert tracker.job_state(job_id) == (FAILED, "terminated before it started")
    assert [e.action for e in engine.history() if e.container_id == job_id] == [
        "create",
        "start",
        "die",
    ]
