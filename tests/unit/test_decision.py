"""The decision step of a scheduling pass, as a pure function of one view of the session
(issue 12): which queued jobs start, which wait for a slot, what holds one, what expired."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from containertracker.core import labels
from containertracker.core.decision import (
    CLAIM_HORIZON,
    ORPHAN_AGE,
    Decision,
    NotNow,
    candidates,
    decide,
    why_not_now,
)
from containertracker.core.engine import ContainerSummary
from containertracker.core.plan import Plan
from containertracker.core.statestore import JobMarks

NOW = 1_000_000.0
RESYNC = 2.0
ELSEWHERE = "another-state-dir"


def owns(job_labels: Mapping[str, str]) -> bool:
    """This state directory's jobs: all but those labelled with :data:`ELSEWHERE`."""
    return job_labels.get(labels.STATE_DIR) != ELSEWHERE


def job(
    job_id: str,
    status: str = "created",
    *,
    array: str | None = None,
    task: int | None = None,
    max_parallel: int = 0,
    plan: Plan | None = None,
    submission: str | None = "sub",
    state_dir: str | None = None,
    created: float = NOW - 1,
) -> ContainerSummary:
    """A container row as a tracker labels it."""
    job_labels = {labels.MANAGED: "1", labels.SESSION: "s"}
    if array is not None:
        job_labels |= {labels.ARRAY_ID: array, labels.MAX_PARALLEL: str(max_parallel)}
    if task is not None:
        job_labels[labels.TASK_ID] = str(task)
    if plan is not None:
        job_labels[labels.PLAN] = plan.to_label()
    if submission is not None:
        job_labels[labels.SUBMISSION] = submission
    if state_dir is not None:
        job_labels[labels.STATE_DIR] = state_dir
    return ContainerSummary(job_id, status, job_labels, created)


def tasks(
    count: int, max_parallel: int, status: str = "created", array: str = "a"
) -> list[ContainerSummary]:
    """Tasks ``a1`` .. ``a<count>`` of a throttled array, all with ``status``."""
    return [
        job(f"{array}{n}", status, array=array, task=n, max_parallel=max_parallel)
        for n in range(1, count + 1)
    ]


def run(
    rows: list[ContainerSummary],
    marks: Mapping[str, JobMarks] | None = None,
    *,
    died: set[str] | None = None,
    not_ours: set[str] | None = None,
    under_way: set[str] | None = None,
    now: float = NOW,
) -> Decision:
    return decide(
        rows,
        marks or {},
        died=died or set(),
        now=now,
        not_ours=not_ours or set(),
        owns=owns,
        under_way=under_way or set(),
        resync_interval=RESYNC,
    )


def started(decision: Decision) -> list[str]:
    return [job_id for job_id, _ in decision.to_start]


def waiting(decision: Decision, array: str = "a") -> list[str]:
    return [job_id for job_id, _ in decision.waiting.get(array, ())]


# -- slots ------------------------------------------------------------------------------------


def test_max_parallel_starts_the_first_tasks_and_the_rest_wait() -> None:
    """Of five queued tasks with max_parallel=2, tasks 1 and 2 start (owned, holding slots);
    3 to 5 wait for a slot, in task order."""
    decision = run(tasks(5, max_parallel=2))
    assert started(decision) == ["a1", "a2"]
    assert waiting(decision) == ["a3", "a4", "a5"]
    assert decision.owned == {"a1": "a", "a2": "a"}
    assert decision.slot_holders == {"a1", "a2"}
    assert decision.over_limit == frozenset()
    assert decision.next_wake == NOW + RESYNC


def test_unthrottled_arrays_and_plain_jobs_start_without_slots() -> None:
    """max_parallel 0 means no limit: every task starts, none is owned; a plain job too."""
    rows = [*tasks(3, max_parallel=0), job("plain")]
    decision = run(rows)
    assert sorted(started(decision)) == ["a1", "a2", "a3", "plain"]
    assert decision.owned == {}
    assert decision.waiting == {}


def test_running_tasks_hold_their_slots_unless_seen_dead() -> None:
    """A running task holds a slot; one whose die event was seen does not, whatever the
    (lagging) list says."""
    rows = [job("a1", "running", array="a", task=1, max_parallel=2), *tasks(3, 2)[1:]]
    decision = run(rows)
    assert started(decision) == ["a2"]
    assert decision.slot_holders == {"a1", "a2"}
    assert run(rows, died={"a1"}).slot_holders == {"a2", "a3"}


def test_a_recent_claim_holds_a_slot_and_is_not_started_again() -> None:
    """A task claimed by a scheduler (its start under way) holds its slot: it is not started
    again, and the next task waits."""
    marks = {"a1": JobMarks(claimed_at=NOW - 10)}
    decision = run(tasks(2, max_parallel=1), marks)
    assert started(decision) == []
    assert waiting(decision) == ["a2"]
    assert decision.slot_holders == {"a1"}


def test_a_claim_older_than_the_horizon_is_lost_and_claimed_anew() -> None:
    """A claim just younger than the horizon still counts; at the horizon it is lost (its
    scheduler died) and the job is started by this pass."""
    rows = tasks(2, max_parallel=1)
    young = run(rows, {"a1": JobMarks(claimed_at=NOW - CLAIM_HORIZON + 0.001)})
    assert started(young) == []
    old = run(rows, {"a1": JobMarks(claimed_at=NOW - CLAIM_HORIZON, starting=True)})
    assert started(old) == ["a1"]
    assert waiting(old) == ["a2"]


def test_a_claim_whose_start_is_under_way_counts_whatever_its_age() -> None:
    """A start still waiting for the engine long after its claim (an engine call as long as
    the request timeout): its claim still holds the slot, and the job is not claimed anew."""
    rows = tasks(2, max_parallel=1)
    marks = {"a1": JobMarks(claimed_at=NOW - 10 * CLAIM_HORIZON, starting=True)}
    decision = run(rows, marks, under_way={"a1"})
    assert started(decision) == []
    assert waiting(decision) == ["a2"]
    assert decision.slot_holders == {"a1"}


def test_a_stale_view_over_the_limit_is_reported_and_starts_nothing() -> None:
    """Three tasks active where max_parallel is 2 (the list lags behind a task that ended and
    was replaced): the array is over its limit, and its queued task waits."""
    rows = [
        *tasks(3, max_parallel=2, status="running"),
        job("a4", array="a", task=4, max_parallel=2),
    ]
    decision = run(rows)
    assert decision.over_limit == {"a"}
    assert started(decision) == []
    assert waiting(decision) == ["a4"]
    at_limit = run(rows[1:])
    assert at_limit.over_limit == frozenset()


def test_tasks_start_in_task_order_whatever_the_list_order() -> None:
    """Tasks are taken by their numeric task id (10 after 2), plain jobs before arrays."""
    rows = [
        job("a10", array="a", task=10, max_parallel=2),
        job("a2", array="a", task=2, max_parallel=2),
        job("plain"),
        job("a1", array="a", task=1, max_parallel=2),
    ]
    decision = run(rows)
    assert started(decision) == ["plain", "a1", "a2"]
    assert waiting(decision) == ["a10"]
    assert candidates(rows, owns) == ["plain", "a1", "a2", "a10"]


# -- what keeps a job from starting -----------------------------------------------------------


def test_failed_jobs_never_start_and_hold_no_slot() -> None:
    """A job with a recorded failure (terminated before it started) is skipped; the next task
    takes the slot."""
    decision = run(
        tasks(2, max_parallel=1), {"a1": JobMarks(failure="terminated", terminated=True)}
    )
    assert started(decision) == ["a2"]


def test_held_jobs_wait_for_their_release() -> None:
    """Submitted held, or held since: not started (and no slot taken); released: started."""
    held_plan = Plan(hold=True)
    rows = [job("held", plan=held_plan), job("released", plan=held_plan), job("held-since")]
    marks = {"released": JobMarks(hold=False), "held-since": JobMarks(hold=True)}
    assert started(run(rows, marks)) == ["released"]
    array = tasks(2, max_parallel=1)
    assert started(run(array, {"a1": JobMarks(hold=True)})) == ["a2"]


def test_a_retry_waits_for_its_time_and_sets_the_wake() -> None:
    """A start that met an unreachable engine is retried at ``retry_after``, not before; the
    pass wakes then."""
    rows = [job("j")]
    pending = run(rows, {"j": JobMarks(retry_after=NOW + 0.5, retries=1)})
    assert started(pending) == []
    assert pending.next_wake == NOW + 0.5
    due = run(rows, {"j": JobMarks(retry_after=NOW, retries=1)})
    assert started(due) == ["j"]


def test_a_start_time_waits_and_sets_the_wake() -> None:
    """A job with a start time in the future waits, and the pass wakes at that time."""
    later = run([job("j", plan=Plan(start_at=NOW + 1))])
    assert started(later) == []
    assert later.next_wake == NOW + 1
    assert started(run([job("j", plan=Plan(start_at=NOW))])) == ["j"]


def test_a_deadline_passed_before_the_start_expires_the_job() -> None:
    """A queued job past its deadline is reported expired (the caller records its failure),
    not started, and holds no slot; a job whose deadline is ahead starts."""
    rows = [
        job("a1", array="a", task=1, max_parallel=1, plan=Plan(deadline=NOW)),
        job("a2", array="a", task=2, max_parallel=1, plan=Plan(deadline=NOW + 60)),
    ]
    decision = run(rows)
    assert decision.expired == ("a1",)
    assert started(decision) == ["a2"]


def test_jobs_of_another_state_directory_are_left_to_it() -> None:
    """Jobs labelled with another state directory are not started and their marks are not
    read (their claims and holds are there); their running tasks still fill the array."""
    rows = [
        job("theirs-running", "running", array="t", task=1, max_parallel=1, state_dir=ELSEWHERE),
        job("theirs", array="t", task=2, max_parallel=1, state_dir=ELSEWHERE),
        job("mine"),
    ]
    assert candidates(rows, owns) == ["mine"]
    decision = run(rows)
    assert started(decision) == ["mine"]
    assert decision.waiting == {}


def test_jobs_of_a_submission_under_way_elsewhere_are_left_to_it() -> None:
    """A submission that is not this scheduler's (under way in another tracker, or to be
    rolled back): its jobs are not started; this scheduler's own submissions' are."""
    rows = [job("theirs", submission="other"), job("ours", submission="mine")]
    assert started(run(rows, not_ours={"other"})) == ["ours"]


def test_a_plain_job_without_a_submission_record_is_left_to_its_submitter_a_while() -> None:
    """A job made before submissions were recorded: its add_job may still start it, so a pass
    starts it only once it is older than the orphan age."""
    young = job("legacy", submission=None, created=NOW - ORPHAN_AGE + 1)
    old = job("legacy", submission=None, created=NOW - ORPHAN_AGE)
    assert started(run([young])) == []
    assert started(run([old])) == ["legacy"]


def test_a_job_created_started_is_never_started_by_a_pass() -> None:
    """A job its submission created started, listed as created (the engine is starting it),
    is left alone whatever its marks say (no claim recorded yet, a claim lost, a submission
    not under way) and counts as being started (it holds its slot)."""
    row = job("c", plan=Plan(created_started=True), submission="ours")
    lost = JobMarks(claimed_at=NOW - CLAIM_HORIZON - 1, starting=True)
    for marks in ({}, {"c": lost}):
        decision = run([row], marks)
        assert started(decision) == []
        assert "c" in decision.slot_holders


_THEIRS = job("j", state_dir=ELSEWHERE)
_LEGACY = job("j", submission=None)
"""A job made before submissions were recorded, a second ago: its add_job may start it."""


@pytest.mark.parametrize(
    ("row", "plan", "marks", "reason"),
    [
        (_THEIRS, Plan(), JobMarks(failure="x"), NotNow.OTHER_STATE_DIR),
        (job("j"), Plan(created_started=True), JobMarks(failure="x"), NotNow.CREATED_STARTED),
        (job("j"), Plan(), JobMarks(failure="x", claimed_at=NOW), NotNow.FAILED),
        (job("j"), Plan(), JobMarks(claimed_at=NOW, hold=True), NotNow.CLAIMED),
        (job("j", submission="theirs"), Plan(hold=True), JobMarks(), NotNow.HELD),
        (
            job("j", submission="theirs"),
            Plan(),
            JobMarks(retry_after=NOW + 1),
            NotNow.NOT_OUR_SUBMISSION,
        ),
        (_LEGACY, Plan(), JobMarks(retry_after=NOW + 1), NotNow.RETRY_LATER),
        (_LEGACY, Plan(deadline=NOW), JobMarks(), NotNow.SUBMITTER_MAY_START),
        (job("j"), Plan(start_at=NOW + 1, deadline=NOW), JobMarks(), NotNow.DEADLINE_PASSED),
        (job("j"), Plan(start_at=NOW + 1), JobMarks(), NotNow.START_TIME_LATER),
        (job("j"), Plan(), JobMarks(retry_after=NOW, claimed_at=NOW - CLAIM_HORIZON), None),
    ],
)
def test_a_job_with_two_reasons_not_to_start_gives_the_first_in_their_order(
    row: ContainerSummary, plan: Plan, marks: JobMarks, reason: NotNow | None
) -> None:
    """The reasons are checked in NotNow's order: a job with two gives the earlier one (a
    retry due and a lost claim are none)."""
    assert (
        why_not_now(row, plan, marks, now=NOW, not_ours={"theirs"}, owns=owns, under_way=set())
        is reason
    )
