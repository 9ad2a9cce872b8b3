"""Which queued jobs of a session start now: the decision step of a scheduling pass (pure).

:func:`decide` takes one view of the session (its containers, the marks of the queued ones
as :mod:`~containertracker.core.statestore` defines them, the time) and returns a
:class:`Decision`; the :class:`~containertracker.core.scheduler.Scheduler` reads the view
under the session's lock and carries the decision out. Nothing here does I/O or reads the
time.

Terms:

slot
    One of the ``max_parallel`` places of a *throttled* array (one submitted with
    ``max_parallel`` > 0): at most that many of its tasks hold a slot at once. Other jobs
    (plain jobs, tasks of unthrottled arrays) start without one.
claim
    A scheduler's mark (``claimed_at``) on a created job it is about to start: no other
    scheduler starts it. A claim younger than :data:`CLAIM_HORIZON` counts; an older one on a
    job still created is *lost* (the scheduler that made it died), and the job may be claimed
    anew.
holding a slot
    What a task does while it runs (an active container whose ``die`` was not seen), while
    its claim counts (its start is under way: the engine may still list it as created), and
    from the moment a pass decides to start it.
owned task
    A throttled task that a scheduler started itself and has not seen end. When it dies, that
    scheduler gives its slot to the next task its last pass left waiting, at once, without a
    pass (see :attr:`Decision.waiting`).
over limit
    A throttled array with more tasks holding slots than its ``max_parallel`` in this view:
    the view is stale (the list lags behind a task that ended and was replaced), so the slots
    its tasks free are left to a pass rather than handed on directly.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

from containertracker.core import labels
from containertracker.core.engine import ACTIVE_STATUSES, ContainerSummary
from containertracker.core.plan import Plan
from containertracker.core.statestore import JobMarks

__all__ = [
    "CLAIM_HORIZON",
    "ORPHAN_AGE",
    "Decision",
    "Start",
    "candidates",
    "decide",
    "held",
]

CLAIM_HORIZON = 60.0
"""How long (seconds) a claim, or a ``die`` event a scheduler saw, is trusted over the
engine's list: a job claimed longer ago and still created lost the scheduler that claimed it."""
ORPHAN_AGE = 60.0
"""A plain job made before submissions were recorded (no submission label) still created this
long after its creation lost its submitter: start it. (Jobs with the label are left to their
submitter while it lives, and rolled back when it died.)"""

Start = tuple[str, Plan]
"""A job to start: its container id and plan."""


def held(plan: Plan, marks: JobMarks) -> bool:
    """Held as submitted, unless a hold or release since says otherwise."""
    return plan.hold if marks.hold is None else marks.hold


@dataclass(frozen=True)
class Decision:
    """What a pass decided, from one view of the session."""

    next_wake: float
    """When a pass is due at the latest (epoch seconds): after the resync interval, or
    earlier, at the start time or retry of a job that waits for one."""
    to_start: tuple[Start, ...]
    """The jobs to claim and start now, in start order."""
    waiting: Mapping[str, tuple[Start, ...]]
    """Per throttled array, the tasks that would start now but for its limit, in task order:
    the next to take a slot one of its owned tasks frees."""
    owned: Mapping[str, str]
    """The throttled tasks in :attr:`to_start` (owned tasks from now on): their array id."""
    slot_holders: frozenset[str]
    """The jobs this view counts as holding a slot: active, claimed, or in :attr:`to_start`
    (jobs without a slot too, as running or starting jobs)."""
    over_limit: frozenset[str]
    """The throttled arrays over their limit in this view (which is stale for them)."""
    expired: tuple[str, ...]
    """Jobs whose deadline passed before they could start: the caller records their failure."""


def candidates(
    rows: Sequence[ContainerSummary], owns: Callable[[Mapping[str, str]], bool]
) -> list[str]:
    """The jobs whose marks :func:`decide` reads: the created ones of this state directory
    (``owns`` tells them by their labels), in start order."""
    return [row.id for row in _queued(rows) if owns(row.labels)]


def decide(
    rows: Sequence[ContainerSummary],
    marks: Mapping[str, JobMarks],
    *,
    died: Collection[str],
    now: float,
    not_ours: Collection[str],
    owns: Callable[[Mapping[str, str]], bool],
    resync_interval: float,
) -> Decision:
    """Which created jobs start now, and what waits for what.

    Args:
        rows: every container of the session made by a tracker, as one list showed them.
        marks: the marks of the :func:`candidates` (a job missing has none recorded).
        died: jobs whose ``die`` event was seen lately: no longer active, whatever the list.
        now: the time of the decision (epoch seconds).
        not_ours: submissions under way (or abandoned) whose jobs this scheduler must not
            start: their submitter starts them, or a rollback removes them.
        owns: whether a job, by its labels, is scheduled from this state directory; others'
            claims and holds are out of sight, so their schedulers alone start them.
        resync_interval: the longest a scheduler goes without a pass.

    A job starts when none of these holds, checked in this order: it has a recorded failure;
    its claim counts (then it holds its slot); it is held; its submission is not ours; its
    retry is not due; it is a plain job of a submitter that may still start it (see
    :data:`ORPHAN_AGE`); its deadline has passed (then it is in :attr:`Decision.expired`);
    its start time has not come; its array has no free slot (then it waits).
    """
    running = [row for row in rows if row.status in ACTIVE_STATUSES and row.id not in died]
    slot_holders = {row.id for row in running}
    active = Counter(row.labels.get(labels.ARRAY_ID) for row in running)
    limits: dict[str | None, int] = {}
    next_wake = now + resync_interval
    to_start: list[Start] = []
    waiting: dict[str, list[Start]] = {}
    owned: dict[str, str] = {}
    expired: list[str] = []
    for row in _queued(rows):
        array_id = row.labels.get(labels.ARRAY_ID)
        limit = limits[array_id] = int(row.labels.get(labels.MAX_PARALLEL, "0"))
        if not owns(row.labels):
            continue  # another state directory's: its schedulers start it
        job_marks = marks.get(row.id, JobMarks())
        if job_marks.failure:
            continue  # it will never run
        if job_marks.claimed_at is not None and now - job_marks.claimed_at < CLAIM_HORIZON:
            active[array_id] += 1  # being started: it holds its slot
            slot_holders.add(row.id)
            continue
        plan = Plan.from_labels(row.labels)
        if held(plan, job_marks):
            continue
        if row.labels.get(labels.SUBMISSION) in not_ours:
            continue  # its submitter starts it (or it is to be rolled back)
        if job_marks.retry_after is not None and job_marks.retry_after > now:
            next_wake = min(next_wake, job_marks.retry_after)
            continue  # its start met an unreachable engine: retried then
        if _submitter_may_start(row, plan, now):
            continue
        if plan.deadline is not None and plan.deadline <= now:
            expired.append(row.id)
            continue
        if plan.start_at is not None and plan.start_at > now:
            next_wake = min(next_wake, plan.start_at)
            continue
        if array_id is not None and limit and active[array_id] >= limit:
            waiting.setdefault(array_id, []).append((row.id, plan))
            continue
        active[array_id] += 1
        slot_holders.add(row.id)
        to_start.append((row.id, plan))
        if array_id is not None and limit:
            owned[row.id] = array_id
    return Decision(
        next_wake=next_wake,
        to_start=tuple(to_start),
        waiting={array_id: tuple(tasks) for array_id, tasks in waiting.items()},
        owned=owned,
        slot_holders=frozenset(slot_holders),
        over_limit=frozenset(
            array_id
            for array_id, limit in limits.items()
            if array_id is not None and limit and active[array_id] > limit
        ),
        expired=tuple(expired),
    )


def _queued(rows: Sequence[ContainerSummary]) -> list[ContainerSummary]:
    """The created rows in start order: by array (plain jobs first), then by task id."""
    return sorted(
        (row for row in rows if row.status == "created"),
        key=lambda row: (
            row.labels.get(labels.ARRAY_ID, ""),
            int(row.labels.get(labels.TASK_ID, "0")),
        ),
    )


def _submitter_may_start(row: ContainerSummary, plan: Plan, now: float) -> bool:
    """Whether a job made before submissions were recorded (no submission label) is young
    enough that its add_job may still start it (see :data:`ORPHAN_AGE`)."""
    deferred = plan.hold or plan.start_at is not None or labels.ARRAY_ID in row.labels
    return labels.SUBMISSION not in row.labels and not deferred and now - row.created < ORPHAN_AGE
