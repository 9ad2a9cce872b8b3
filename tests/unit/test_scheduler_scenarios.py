"""Schedulers and real trackers over the in-memory engine (issue 12): races between
schedulers, claims lost with their scheduler, holds around a start, a broken event stream, an
unreachable engine and a termination during a start, each made to happen deterministically.

Trackers here resync once a minute, so that only events, kicks and reconnections can drive
them within a test's waits: a scenario that needs a resync to progress fails (but for the one
whose tracker has a fake clock, which passes often to see the time the test sets). A bare
scheduler with a fake clock and no thread of its own plays "another tracker of the session"
where a claim must age or a pass must come at a given moment; jobs for it are submitted held
by a tracker closed at once, so that only the test's calls act on them.

One scenario per protection of the scheduler against a second start or one task too many
(see its module docstring): each fails when its protection is taken away.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest

from containertracker import (
    DrmCommunicationError,
    InvalidArgumentError,
    InvalidStateError,
    JobState,
    JobTemplate,
)
from containertracker.core import labels
from containertracker.core.decision import CLAIM_HORIZON
from containertracker.core.engine import ContainerSpec, ContainerSummary, EngineEvent
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


def template(*, submit_as_hold: bool = False, start_time: datetime | None = None) -> JobTemplate:
    return JobTemplate(
        remote_command="sleep",
        args=("300",),
        job_category="busybox",
        submit_as_hold=submit_as_hold,
        start_time=start_time,
    )


def until(condition: Callable[[], bool]) -> bool:
    """Whether ``condition`` holds within :data:`WAIT` (for what no event announces)."""
    give_up = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > give_up:
            return False
        time.sleep(0.001)
    return True


def starts(history: list[EngineEvent], job_id: str) -> int:
    return sum(1 for event in history if event.container_id == job_id and event.action == "start")


def died(engine: MemoryEngine, job_id: str) -> EngineEvent:
    """The job's ``die`` event, for a bare scheduler (which follows no event stream)."""
    return next(e for e in engine.history() if e.container_id == job_id and e.action == "die")


def plan_of(engine: MemoryEngine, job_id: str) -> Plan:
    return Plan.from_labels(engine.inspect(job_id).labels)


def claim(store: StateStore, job_id: str, claimed_at: float) -> None:
    """Claim the job as a scheduler's pass does (its start is to come)."""
    with store.session_lock(SESSION):
        store.claim(SESSION, [job_id], claimed_at)


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
def store(state_root: Path) -> StateStore:
    return StateStore(state_root)


@pytest.fixture
def open_scheduler(
    engine: MemoryEngine, state_root: Path
) -> Iterator[Callable[[FakeClock], Scheduler]]:
    """Bare schedulers of the session on the trackers' state directory, each with the given
    clock: no event thread and no scheduling thread, so that passes run only when the test
    calls for one, and events reach them only as the test hands them over (closed at the
    end)."""
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
            background=False,
        )
        opened.append(scheduler)
        return scheduler

    yield open_one
    for scheduler in opened:
        scheduler.close()


@pytest.fixture
def submit_held(open_tracker: Callable[[], ContainerTracker]) -> Callable[[int], list[str]]:
    """Submit a job (``tasks`` 0) or an array of that many tasks with max_parallel=1, held,
    from a tracker that is closed at once: nothing acts on them but the test's schedulers."""

    def submit(tasks: int) -> list[str]:
        submitter = open_tracker()
        if tasks:
            array_id = submitter.add_array_job(template(submit_as_hold=True), 1, tasks, 1, 1)
            job_ids = submitter.list_array_jobs(array_id)
        else:
            job_ids = [submitter.add_job(template(submit_as_hold=True))]
        submitter.close()
        return job_ids

    return submit


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


def test_a_claim_whose_scheduler_died_before_the_start_is_claimed_anew_after_the_horizon(
    engine: MemoryEngine,
    store: StateStore,
    open_tracker: Callable[[], ContainerTracker],
    open_scheduler: Callable[[FakeClock], Scheduler],
) -> None:
    """A scheduler claimed the waiting task and died before its start began: another
    scheduler leaves the task alone while the claim is younger than the horizon, then claims
    it anew and starts it."""
    tracker = open_tracker()
    first, second = throttled_pair(tracker)
    claimed_at = time.time()
    claim(store, second, claimed_at)  # the pass of a scheduler that dies now
    engine.exit(first, 0)
    assert tracker.wait(first, WAIT) is DONE
    clock = FakeClock(claimed_at)
    other = open_scheduler(clock)
    clock.advance(CLAIM_HORIZON - 1)
    other.schedule_now()
    assert engine.inspect(second).status == "created"  # the claim holds the slot
    clock.advance(1)
    other.schedule_now()
    assert engine.inspect(second).status == "running"
    assert starts(engine.history(), second) == 1


def test_a_start_that_hangs_in_the_engine_keeps_its_claim_past_the_horizon(
    engine: MemoryEngine,
    submit_held: Callable[[int], list[str]],
    open_scheduler: Callable[[FakeClock], Scheduler],
) -> None:
    """The engine answers a start later than the claim horizon (a request may take as long as
    its timeout, a minute): another scheduler's pass, for which the claim has aged, leaves the
    job to that start instead of starting it a second time (which would run it again had it
    ended in between). The job starts once."""
    (job_id,) = submit_held(0)
    starter = open_scheduler(FakeClock(time.time()))
    clock = FakeClock(time.time())
    other = open_scheduler(clock)
    with ThreadPoolExecutor(1) as pool, engine.block_next("start") as hung:
        released = pool.submit(starter.release, job_id)  # its pass claims and starts the job
        assert hung.reached.wait(WAIT)
        clock.advance(CLAIM_HORIZON + 1)
        other.schedule_now()
        assert engine.inspect(job_id).status == "created"
        hung.release()
        released.result(WAIT)
    engine.exit(job_id, 0)
    other.schedule_now()
    assert starts(engine.history(), job_id) == 1


def test_a_hold_between_claim_and_start_keeps_the_job_held(
    engine: MemoryEngine,
    store: StateStore,
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
    claim(store, second, clock())  # the other scheduler's pass: its claim, start to come
    tracker.job_control(second, "hold")
    assert not other.start(second, plan_of(engine, second), clock())
    assert store.marks(second).claimed_at is None
    engine.exit(first, 0)
    assert tracker.wait(first, WAIT) is DONE
    other.schedule_now()  # a pass with the slot free
    assert tracker.job_state(second)[0] is QUEUED_HELD
    assert starts(engine.history(), second) == 0
    tracker.job_control(second, "release")
    assert tracker.wait(second, WAIT, RUNNING) is RUNNING


def test_a_hold_after_the_start_is_committed_is_refused(
    engine: MemoryEngine, store: StateStore, open_tracker: Callable[[], ContainerTracker]
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
    assert store.marks(second).hold is None


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
            with engine.block_next("inspect", after=True) as looked:
                # A wait of twice as long: a last look at its deadline would hide a missed end.
                ended = pool.submit(tracker.wait, task, 2 * WAIT)
                assert looked.reached.wait(WAIT)  # the wait saw the task running, and then
                with engine.events_outage():
                    engine.exit(task, 0)  # the task ended, unseen
            assert ended.result(WAIT) is DONE
    assert tracker.wait(tasks[-1], WAIT, RUNNING) is RUNNING
    engine.exit(tasks[-1], 0)
    assert tracker.wait(tasks[-1], WAIT) is DONE


def test_a_transient_start_error_leaves_the_job_queued_until_its_retry(
    engine: MemoryEngine,
    store: StateStore,
    open_tracker: Callable[[], ContainerTracker],
    open_scheduler: Callable[[FakeClock], Scheduler],
) -> None:
    """A start that meets an unreachable engine does not fail the job: it stays QUEUED (saying
    why), is not retried before its backoff is over, and then starts."""
    tracker = open_tracker()
    first, second = throttled_pair(tracker)
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
    other.schedule_now()
    assert engine.inspect(second).status == "running"
    assert store.marks(second).retries == 0, "the retry was not recorded as done"
    marks = store.marks(second)
    assert (marks.last_error, marks.retry_after) == ("", None)


def test_terminate_during_the_start_stops_the_job(
    engine: MemoryEngine, open_tracker: Callable[[], ContainerTracker]
) -> None:
    """A job terminated while the engine starts it (add_job creates it started: the container
    exists, created, its start under way) is stopped as soon as the start is done: it never
    runs on, and reads FAILED."""
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
        *("kill", "die", "stop"),  # a stop (SIGTERM, passed on by the init), as Docker tells it
    ]


# -- a job created started (add_job of a job nothing holds back) -----------------------------


def test_a_job_nothing_holds_back_is_created_started_and_its_claim_recorded(
    engine: MemoryEngine, store: StateStore, open_tracker: Callable[[], ContainerTracker]
) -> None:
    """add_job creates such a job started (its plan says so) and records its claim, as a
    scheduler's start would: it runs once, and reads RUNNING when add_job returns. A held
    job is created as before, not started."""
    tracker = open_tracker()
    job_id = tracker.add_job(template())
    assert plan_of(engine, job_id).created_started
    assert tracker.job_state(job_id)[0] is RUNNING
    marks = store.marks(job_id)
    assert marks.starting and marks.claimed_at is not None
    assert [e.action for e in engine.history() if e.container_id == job_id] == ["create", "start"]
    held_id = tracker.add_job(template(submit_as_hold=True))
    assert not plan_of(engine, held_id).created_started
    assert tracker.job_state(held_id)[0] is QUEUED_HELD


def test_a_hold_while_the_engine_creates_a_job_started_is_refused(
    engine: MemoryEngine,
    store: StateStore,
    open_tracker: Callable[[], ContainerTracker],
    open_scheduler: Callable[[FakeClock], Scheduler],
) -> None:
    """While the engine starts a job add_job creates started (its container exists and reads
    QUEUED, no claim is recorded yet), a hold is refused as for any job being started, and
    leaves no mark; a pass of another scheduler, to which any claim would look lost, leaves
    the job alone. It starts once."""
    tracker = open_tracker()
    other = open_scheduler(FakeClock(time.time() + CLAIM_HORIZON + 1))
    with ThreadPoolExecutor(1) as pool, engine.block_next("start") as starting:
        submitted = pool.submit(tracker.add_job, template())
        assert starting.reached.wait(WAIT)
        (job_id,) = tracker.list_jobs()
        assert tracker.job_state(job_id)[0] is QUEUED
        assert store.marks(job_id).claimed_at is None
        with pytest.raises(InvalidStateError, match="being started"):
            tracker.job_control(job_id, "hold")
        other.schedule_now()
        assert engine.inspect(job_id).status == "created"
        starting.release()
        assert submitted.result(WAIT) == job_id
    assert tracker.job_state(job_id)[0] is RUNNING
    assert store.marks(job_id).hold is None
    assert starts(engine.history(), job_id) == 1


def test_a_job_created_started_whose_start_fails_is_removed(
    engine: MemoryEngine, store: StateStore, open_tracker: Callable[[], ContainerTracker]
) -> None:
    """The engine creates the job and refuses its start: add_job raises the start's error
    and leaves nothing behind (no container, no submission record)."""
    tracker = open_tracker()
    engine.fail_next("start", InvalidArgumentError("cannot start the job: bad mount"))
    with pytest.raises(InvalidArgumentError, match="bad mount"):
        tracker.add_job(template())
    assert [e.action for e in engine.history()] == ["create", "destroy"]
    assert tracker.list_jobs() == []
    assert store.submissions(SESSION) == set()


def test_a_job_created_started_that_could_not_be_removed_is_rolled_back_unstarted(
    engine: MemoryEngine, store: StateStore, open_tracker: Callable[[], ContainerTracker]
) -> None:
    """The start fails, and so does the removal (the engine went away): add_job raises the
    start's error and leaves its submission to be rolled back. A scheduler's background pass
    (the next tracker's first, or the submitter's own) removes the job, created and saying
    it was to be started at its creation, without starting it."""
    tracker = open_tracker()
    engine.fail_next("start", InvalidArgumentError("cannot start the job: bad mount"))
    engine.fail_next("remove", DrmCommunicationError("the engine is restarting"))
    with pytest.raises(InvalidArgumentError, match="bad mount"):
        tracker.add_job(template())
    (created,) = [e for e in engine.history() if e.action == "create"]
    assert Plan.from_labels(created.attributes).created_started
    open_tracker()  # its first pass rolls the submission back
    assert until(lambda: tracker.list_jobs() == []), "the submission was not rolled back"
    assert until(lambda: store.submissions(SESSION) == set())
    assert starts(engine.history(), created.container_id) == 0


# -- each protection against a second start or one task too many ------------------------------


def test_a_pass_whose_list_went_stale_lists_again(
    engine: MemoryEngine,
    submit_held: Callable[[int], list[str]],
    open_scheduler: Callable[[FakeClock], Scheduler],
) -> None:
    """While a pass's list is on its way (a slow list), another scheduler claims and starts the
    job, which ends; by the time the pass decides, that claim has aged. The pass lists again
    (the claim count moved) and leaves the ended job alone: on its stale list the job is still
    created, its claim lost, and it would run a second time."""
    (job_id,) = submit_held(0)
    clock = FakeClock(time.time())
    slow, other = open_scheduler(clock), open_scheduler(FakeClock(time.time()))
    with ThreadPoolExecutor(1) as pool, engine.block_next("list_containers", after=True) as listed:
        passing = pool.submit(slow.schedule_now)
        assert listed.reached.wait(WAIT)
        other.release(job_id)  # its pass claims and starts the job
        engine.exit(job_id, 0)
        clock.advance(CLAIM_HORIZON + 1)
        listed.release()
        passing.result(WAIT)
    assert starts(engine.history(), job_id) == 1


def test_a_start_whose_claim_was_taken_over_leaves_the_job_to_the_new_claim(
    engine: MemoryEngine,
    store: StateStore,
    submit_held: Callable[[int], list[str]],
    open_scheduler: Callable[[FakeClock], Scheduler],
) -> None:
    """A scheduler's claim aged before its start came (its pool was busy), and another
    scheduler claimed the job anew. The late start does nothing, whether the job is held by
    then or released: it neither starts the job nor drops the new claim (which holds the
    job's slot); the new claim's start runs the job, once."""
    (job_id,) = submit_held(0)
    late, taker = open_scheduler(FakeClock(time.time())), open_scheduler(FakeClock(time.time()))
    plan = plan_of(engine, job_id)
    aged, new = time.time() - CLAIM_HORIZON - 1, time.time()
    claim(store, job_id, aged)
    claim(store, job_id, new)
    assert not late.start(job_id, plan, aged)  # held (as submitted)
    assert store.marks(job_id).claimed_at == new
    taker.release(job_id)  # its pass leaves the job to its claim
    assert not late.start(job_id, plan, aged)
    assert engine.inspect(job_id).status == "created"
    assert taker.start(job_id, plan, new)
    assert starts(engine.history(), job_id) == 1


def test_a_job_terminated_between_its_claim_and_its_start_never_runs(
    engine: MemoryEngine,
    store: StateStore,
    open_tracker: Callable[[], ContainerTracker],
    open_scheduler: Callable[[FakeClock], Scheduler],
) -> None:
    """A pass claimed the waiting task, and it is terminated before the claimed start comes:
    the start does not happen (a start would be stopped again at once, but the job would have
    run), the claim is dropped, and the task reads FAILED."""
    tracker = open_tracker()
    _, second = throttled_pair(tracker)
    other = open_scheduler(FakeClock(time.time()))
    claimed_at = time.time()
    claim(store, second, claimed_at)
    tracker.job_control(second, "terminate")
    assert not other.start(second, plan_of(engine, second), claimed_at)
    assert starts(engine.history(), second) == 0
    assert store.marks(second).claimed_at is None
    assert tracker.job_state(second) == (FAILED, "terminated before it started")


def test_a_freed_slot_is_not_handed_to_a_task_another_scheduler_is_starting(
    engine: MemoryEngine,
    store: StateStore,
    submit_held: Callable[[int], list[str]],
    open_scheduler: Callable[[FakeClock], Scheduler],
) -> None:
    """A scheduler's pass found the waiting task's claim lost (older than the horizon, its
    start not begun), and then that claim's start began after all (its pool had been busy).
    When the scheduler's running task ends, the slot is not handed to that task: it is being
    started, and a second start would run it twice. It starts once."""
    first, second = submit_held(2)
    owner, late = open_scheduler(FakeClock(time.time())), open_scheduler(FakeClock(time.time()))
    lost = time.time() - CLAIM_HORIZON - 1
    claim(store, second, lost)
    owner.release(first)  # its pass starts the first task (owned)
    owner.release(second)  # its pass takes the claim for lost: the task waits for the slot
    with ThreadPoolExecutor(1) as pool, engine.block_next("start") as starting:
        late_start = pool.submit(late.start, second, plan_of(engine, second), lost)
        assert starting.reached.wait(WAIT)  # renewed, and the engine is starting it
        engine.exit(first, 0)
        owner.on_event(died(engine, first))
        owner.close()  # returns once the freed slot is dealt with
        assert engine.inspect(second).status == "created"
        starting.release()
        assert late_start.result(WAIT)
    assert starts(engine.history(), second) == 1


def test_a_pass_that_saw_the_array_over_its_limit_leaves_the_freed_slot_to_a_pass(
    engine: MemoryEngine,
    store: StateStore,
    submit_held: Callable[[int], list[str]],
    open_scheduler: Callable[[FakeClock], Scheduler],
) -> None:
    """A scheduler's running task ended and another scheduler gave its slot to the next task,
    while this scheduler's list still shows the ended task running (the engine's list lags):
    its pass sees the array over its limit. When the ended task's die event reaches it, it
    does not hand that slot on (it is taken), and the third task waits."""
    tasks = submit_held(3)
    first, second, third = tasks
    owner, other = open_scheduler(FakeClock(time.time())), open_scheduler(FakeClock(time.time()))
    for task in tasks:  # the first runs (owned), the others wait
        owner.release(task)
    with engine.stale_lists():
        engine.exit(first, 0)
        claimed_at = time.time()
        claim(store, second, claimed_at)  # the other scheduler's pass gives the slot on
        assert other.start(second, plan_of(engine, second), claimed_at)
        owner.schedule_now()  # its list: the first task still running, the second claimed
        owner.on_event(died(engine, first))
        owner.close()  # returns once the freed slot is dealt with
    assert engine.inspect(third).status == "created"
    assert most_running_at_once(engine.history(), tasks) == 1


def test_a_die_event_seen_twice_hands_its_slot_on_once(
    engine: MemoryEngine,
    submit_held: Callable[[int], list[str]],
    open_scheduler: Callable[[FakeClock], Scheduler],
) -> None:
    """An event stream opened again replays from the last event seen, that one included (as
    Docker's does), so a task's die event may come twice: the slot it frees goes to one task."""
    tasks = submit_held(3)
    owner = open_scheduler(FakeClock(time.time()))
    for task in tasks:
        owner.release(task)
    engine.exit(tasks[0], 0)
    owner.on_event(died(engine, tasks[0]))
    owner.on_event(died(engine, tasks[0]))
    owner.close()
    assert [engine.inspect(task).status for task in tasks] == ["exited", "running", "created"]


def test_a_slot_a_pass_gave_on_before_the_die_event_is_not_given_again(
    engine: MemoryEngine,
    submit_held: Callable[[int], list[str]],
    open_scheduler: Callable[[FakeClock], Scheduler],
) -> None:
    """A throttled task ends and a pass sees it ended before its die event is handled (the
    event thread lags): the pass gives its slot to the next task. The die event then hands
    the slot on no more, and asks for no pass either (with 10,000 tasks, one pass per task
    so asked for was most of the tracker's work)."""
    tasks = submit_held(3)
    owner = open_scheduler(FakeClock(time.time()))
    for task in tasks:
        owner.release(task)
    engine.exit(tasks[0], 0)
    owner.schedule_now()  # sees the first task ended: the second starts
    owner._kick = kicks = _CountedEvent()
    owner.on_event(died(engine, tasks[0]))
    owner.close()  # returns once the die event is dealt with; wakes the (absent) thread once
    assert [engine.inspect(task).status for task in tasks] == ["exited", "running", "created"]
    assert kicks.sets == 1


class _CountedEvent(threading.Event):
    """An event that counts how often it was set."""

    def __init__(self) -> None:
        super().__init__()
        self.sets = 0

    def set(self) -> None:
        self.sets += 1
        super().set()


def test_a_start_time_is_measured_by_the_trackers_clock(
    engine: MemoryEngine, state_root: Path
) -> None:
    """A tracker whose clock is an hour behind real time: a start time 10 s ahead by its
    clock (long past in real time) is honoured: the job waits for it, and starts then."""
    clock = FakeClock(int(time.time()) - 3600.0)  # whole seconds: exact start times
    with ContainerTracker(
        engine.connect(), SESSION, state_dir=state_root, resync_interval=0.01, clock=clock
    ) as tracker:
        start_time = datetime.fromtimestamp(clock() + 10, UTC)
        job_id = tracker.add_job(template(start_time=start_time))
        state, sub_state = tracker.job_state(job_id)
        assert state is QUEUED
        assert sub_state.startswith("waiting for start time")
        clock.advance(10)
        assert tracker.wait(job_id, WAIT, RUNNING) is RUNNING


class _CountingEngine(MemoryEngine):
    """Counts the lists of the session (one per scheduling pass, but for a pass's second
    look), and lets creations of the tasks in :attr:`gates` wait until their event is set."""

    def __init__(self) -> None:
        super().__init__()
        self.lists = 0
        self.gates: dict[str, threading.Event] = {}

    def list_containers(self, labels: Mapping[str, str]) -> list[ContainerSummary]:
        rows = super().list_containers(labels)
        self.lists += 1  # once answered: a pass decides from what it saw by now
        return rows

    def create(self, spec: ContainerSpec, *, start: bool = False) -> str:
        gate = self.gates.get(spec.labels.get(labels.TASK_ID, ""))
        if gate is not None:
            assert gate.wait(WAIT)
        return super().create(spec, start=start)


def test_creating_the_rest_of_a_throttled_array_costs_no_pass_per_batch(state_root: Path) -> None:
    """The tasks of a throttled array beyond ``max_parallel`` are created while the first
    ones run; while those run on, no pass is needed to start anything, so the 400 creations
    cost one pass at most (the one at their end), not one per batch of 8 (each lists the
    session, which holds 10,000 jobs in a large sweep)."""
    engine = _CountingEngine()
    with ContainerTracker(
        engine, SESSION, state_dir=state_root, stop_grace=0, resync_interval=60
    ) as tracker:
        assert until(lambda: engine.lists >= 1)  # the pass at its start is not the submission's
        before = engine.lists
        array_id = tracker.add_array_job(template(), 1, 402, 1, max_parallel=2)
        # The submission's pass, the background pass it wakes, the pass at the creations' end
        # (the two passes may be one).
        assert engine.lists - before <= 3
        tasks = tracker.list_array_jobs(array_id)
        assert [tracker.job_state(task)[0] for task in tasks[:3]] == [RUNNING, RUNNING, QUEUED]


def test_a_slot_freed_before_the_next_tasks_exist_is_filled_once_they_do(
    state_root: Path,
) -> None:
    """The first task of a throttled array ends while the rest are still being created: no
    task is there to take its slot. The next batch of creations wakes the scheduler again
    (the resync is a minute away), and the second task starts while later ones are still
    being created."""
    engine = _CountingEngine()
    second, last = threading.Event(), threading.Event()
    engine.gates = {"2": second, "20": last}
    with (
        ContainerTracker(
            engine, SESSION, state_dir=state_root, stop_grace=0, resync_interval=60
        ) as tracker,
        ThreadPoolExecutor(1) as pool,
    ):
        submitted = pool.submit(tracker.add_array_job, template(), 1, 20, 1, 1)
        assert until(lambda: len(engine.history()) >= 2)  # the first task: created, started
        first = engine.history()[0].container_id
        assert tracker.wait(first, WAIT, RUNNING) is RUNNING
        engine.exit(first, 0)
        # Its end is seen before the next tasks exist (whether a pass or the freed slot's own
        # refill finds nothing to start is the scheduler's business).
        assert tracker.wait(first, WAIT) is JobState.DONE
        second.set()  # tasks 2 to 19 are created now; the 20th waits
        assert until(lambda: starts(engine.history(), task_id(engine, 2)) == 1)
        assert not submitted.done()
        last.set()
        tasks = tracker.list_array_jobs(submitted.result(WAIT))
        assert most_running_at_once(engine.history(), tasks) == 1


def task_id(engine: MemoryEngine, task: int) -> str:
    """The container of the array's task ``task`` ("" while it does not exist)."""
    for row in engine.list_containers({labels.TASK_ID: str(task)}):
        return row.id
    return ""


def test_passes_come_less_often_while_they_are_slow(state_root: Path) -> None:
    """A pass whose list takes 0.2 s (a session of 10,000 jobs on Podman takes seconds): the
    next resync comes 20 times that later, not after the 0.5 s asked for, so that an idle
    tracker spends at most a twentieth of its time listing."""

    class SlowLists(MemoryEngine):
        def list_containers(self, labels: Mapping[str, str]) -> list[ContainerSummary]:
            time.sleep(0.2)
            return super().list_containers(labels)

    engine = SlowLists()
    with ContainerTracker(
        engine, SESSION, state_dir=state_root, stop_grace=0, resync_interval=0.5
    ) as tracker:
        assert until(lambda: tracker._scheduler._interval > 0.5)
        assert tracker._scheduler._interval >= 4.0
