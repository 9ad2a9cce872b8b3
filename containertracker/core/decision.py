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
    scheduler starts it. A claim counts while it is younger than :data:`CLAIM_HORIZON`, and
    whatever its age while its start is *under way* (the engine has not answered yet; see
    :meth:`~containertracker.core.statestore.StateStore.starting`). Any other claim on a job
    still created is *lost* (the scheduler that made it died before its start), and the job
    may be claimed anew.
created started
    A plain job its submission created already started (nothing could hold it back: see
    :attr:`~containertracker.core.plan.Plan.created_started`): no scheduler starts it, even
    while the engine lists it as created (its creation and start under way), and it holds
    its slot as a claimed job does.
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
from dataclasses import dataclass, field
from enum import Enum

from containertracker.core import labels
from containertracker.core.engine import ACTIVE_STATUSES, ContainerSummary
from containertracker.core.plan import Plan
from containertracker.core.statestore import JobMarks

__all__ = [
    "CLAIM_HORIZON",
    "ORPHAN_AGE",
    "Decision",
    "NotNow",
    "Start",
    "candidates",
    "decide",
    "held",
    "why_not_now",
]

CLAIM_HORIZON = 60.0
"""How long (seconds) a claim whose start is not under way, or a ``die`` event a scheduler
saw, is trusted over the engine's list: a job claimed longer ago, still created and with no
start under way lost the scheduler that claimed it (it died between its claim and its start).

A claim whose start is under way counts whatever its age: the engine call may last as long as
the engine's request timeout (60 s by default, as long as this horizon) or longer, and a job
claimed anew meanwhile would be started twice (a second start of a job that has ended by then
runs it anew). Only the start's engine call counts: the adapters start the container first and
feed its stdin afterwards, in the background."""
ORPHAN_AGE = 60.0
"""A plain job made before submissions were recorded (no submission label) still created this
long after its creation lost its submitter: start it. (Jobs with the label are left to their
submitter while it lives, and rolled back when it died.)"""

Start = tuple[str, Plan]
"""A job to start: its container id and plan."""


def held(plan: Plan, marks: JobMarks) -> bool:
    """Held as submitted, unless a hold or release since says otherwise."""
    return plan.hold if marks.hold is None else marks.hold


class NotNow(Enum):
    """Why a created job does not start now (see :func:`why_not_now`), in the order checked."""

    OTHER_STATE_DIR = "scheduled from another state directory"
    CREATED_STARTED = "created started by its submission (never started by a scheduler)"
    FAILED = "a failure is recorded (it will never run)"
    CLAIMED = "a scheduler claimed it (it holds its slot)"
    HELD = "held"
    NOT_OUR_SUBMISSION = "its submitter starts it (or it is rolled back)"
    RETRY_LATER = "its start met an unreachable engine and is retried later"
    SUBMITTER_MAY_START = "its add_job may still start it"
    DEADLINE_PASSED = "its deadline passed before it could start"
    START_TIME_LATER = "its start time has not come"


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
    under_way: Collection[str],
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
        under_way: jobs whose start is under way (their claims count whatever their age).
        resync_interval: the longest a scheduler goes without a pass.

    A job starts unless :func:`why_not_now` gives a reason, or its array has no free slot
    (then it waits). A claimed or created-started job holds its slot, one past its deadline
    is in :attr:`Decision.expired`, and a retry or start time to come sets the next wake.
    """
    running = [row for row in rows if row.status in ACTIVE_STATUSES and row.id not in died]
    tally = _Tally(
        next_wake=now + resync_interval,
        active=Counter(row.labels.get(labels.ARRAY_ID) for row in running),
        slot_holders={row.id for row in running},
    )
    for row in _queued(rows):
        plan = Plan.from_labels(row.labels)
        job_marks = marks.get(row.id, JobMarks())
        reason = why_not_now(
            row, plan, job_marks, now=now, not_ours=not_ours, owns=owns, under_way=under_way
        )
        tally.add(row, plan, job_marks, reason)
    return tally.decision()


def why_not_now(
    row: ContainerSummary,
    plan: Plan,
    marks: JobMarks,
    *,
    now: float,
    not_ours: Collection[str],
    owns: Callable[[Mapping[str, str]], bool],
    under_way: Collection[str],
) -> NotNow | None:
    """The first reason, in :class:`NotNow` order, why the created job ``row`` (with its
    ``plan`` and ``marks``) does not start now; None: it starts if its array has a free slot.
    The keyword arguments are those of :func:`decide`."""
    if not owns(row.labels):
        return NotNow.OTHER_STATE_DIR
    if plan.created_started:
        return NotNow.CREATED_STARTED
    if marks.failure:
        return NotNow.FAILED
    if marks.claimed_at is not None and (
        now - marks.claimed_at < CLAIM_HORIZON or row.id in under_way
    ):
        return NotNow.CLAIMED
    if held(plan, marks):
        return NotNow.HELD
    if row.labels.get(labels.SUBMISSION) in not_ours:
        return NotNow.NOT_OUR_SUBMISSION
    if marks.retry_after is not None and marks.retry_after > now:
        return NotNow.RETRY_LATER
    if _submitter_may_start(row, plan, now):
        return NotNow.SUBMITTER_MAY_START
    if plan.deadline is not None and plan.deadline <= now:
        return NotNow.DEADLINE_PASSED
    if plan.start_at is not None and plan.start_at > now:
        return NotNow.START_TIME_LATER
    return None


@dataclass
class _Tally:
    """A decision being made, job by job, in start order."""

    next_wake: float
    active: Counter[str | None]
    """Slot holders per array id (None: plain jobs)."""
    slot_holders: set[str]
    limits: dict[str | None, int] = field(default_factory=dict)
    to_start: list[Start] = field(default_factory=list)
    waiting: dict[str, list[Start]] = field(default_factory=dict)
    owned: dict[str, str] = field(default_factory=dict)
    expired: list[str] = field(default_factory=list)

    def add(
        self, row: ContainerSummary, plan: Plan, marks: JobMarks, reason: NotNow | None
    ) -> None:
        """Take the created job ``row`` into the decision, ``reason`` being why it does not
        start now (None: it starts if its array has a free slot)."""
        array_id = row.labels.get(labels.ARRAY_ID)
        limit = self.limits[array_id] = int(row.labels.get(labels.MAX_PARALLEL, "0"))
        match reason:
            case NotNow.CLAIMED | NotNow.CREATED_STARTED:  # being started
                self._hold_slot(row.id, array_id)
            case NotNow.RETRY_LATER:
                self._wake_at(marks.retry_after)
            case NotNow.START_TIME_LATER:
                self._wake_at(plan.start_at)
            case NotNow.DEADLINE_PASSED:
                self.expired.append(row.id)
            case None if array_id is not None and limit and self.active[array_id] >= limit:
                self.waiting.setdefault(array_id, []).append((row.id, plan))
            case None:
                self._hold_slot(row.id, array_id)
                self.to_start.append((row.id, plan))
                if array_id is not None and limit:
                    self.owned[row.id] = array_id

    def decision(self) -> Decision:
        """The decision taken on every job added."""
        return Decision(
            next_wake=self.next_wake,
            to_start=tuple(self.to_start),
            waiting={array_id: tuple(tasks) for array_id, tasks in self.waiting.items()},
            owned=self.owned,
            slot_holders=frozenset(self.slot_holders),
            over_limit=frozenset(
                array_id
                for array_id, limit in self.limits.items()
                if array_id is not None and limit and self.active[array_id] > limit
            ),
            expired=tuple(self.expired),
        )

    def _hold_slot(self, job_id: str, array_id: str | None) -> None:
        self.active[array_id] += 1
        self.slot_holders.add(job_id)

    def _wake_at(self, when: float | None) -> None:
        if when is not None:
            self.next_wake = min(self.next_wake, when)


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
