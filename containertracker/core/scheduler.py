"""The scheduler of one session: it starts queued jobs when they may start, stops jobs past
their deadline or wall-clock limit, and has ended jobs' outputs written.

Every tracker runs one, and several schedulers of a session (trackers in any process on this
host) share the work with no coordinator. Which jobs a pass starts is decided by the pure
:func:`~containertracker.core.decision.decide` (its module defines slots, claims, owned tasks
and arrays over their limit). What keeps the schedulers from starting a job twice or more
tasks of an array than its ``max_parallel``:

* Decisions are taken under the session's lock, and every start is *claimed* first: the job
  gets a claim mark in the state store and the session's claim count goes up. A claimed job
  holds its slot while its start is under way (the engine's list may show it as created for a
  moment yet), and no other scheduler starts it again (a second start of a job that has ended
  would run it anew).
* A pass lists the session's containers before it takes the lock (on Podman the list is the
  slow part). A job another scheduler claimed since may be missing from that list, so when
  the claim count moved by more than this scheduler's own claims, the pass lists again, under
  the lock.
* When a throttled task this scheduler started (an owned task) ends, its slot goes to the
  next task the last pass left waiting, at once and without a list, unless another scheduler
  has claimed a start since that pass, or that pass saw the array over its limit (its list
  lagging behind a task that ended and was replaced): then the slot may be taken already,
  and a pass decides. (A pass that saw the task ended before its die event was handled has
  given its slot on itself: the event then does nothing.)
* A claim is renewed just before the start, under the session lock, and only if the job is
  neither held nor failed by then, nor claimed anew by another scheduler; the renewal marks it
  ``starting``. Holds and releases are written under that lock too, so a hold either comes
  first (the start does not happen, the claim is dropped) or finds the job ``starting`` and is
  refused.
* A plain job that nothing could hold back is created already started by its submission
  (one engine call; see :meth:`created_started`), its plan saying so: no scheduler starts it,
  and a hold is refused from the moment it exists, before its claim is recorded.
* From its renewal until the engine has answered, a start is *under way* for every process to
  see (a lock the kernel drops when its process dies, see :meth:`StateStore.starting`), and
  the claim counts however long the engine takes: the request timeout of an engine call is as
  long as the claim horizon (a minute), and a job claimed anew while its first start still
  hung would run twice. A claim older than the horizon on a job still "created" whose start
  is not under way is taken to be lost (its scheduler died before the start), and the job may
  be claimed anew.
* A start that fails because the engine cannot be reached (a daemon restart, say) is not a
  failure of the job: its claim is dropped, and it stays QUEUED and is tried again with a
  growing backoff, recorded in its marks so that every tracker says what it waits for.
* The jobs of a submission under way (a recorded submission, see
  :meth:`StateStore.open_submission`) are left alone by every scheduler but the submitter's,
  so that a submission can create its containers without the session lock. A submission whose
  record is no longer held (its process died, or it could not remove what it had created) is
  rolled back by the next background pass of any scheduler of the session.
* All of this rests on the state directory the schedulers share. A job submitted by a tracker
  with another state directory (another user's, a server's running as root) carries that
  directory's identity in a label: its claims, holds and submission record are there, out of
  sight, so only that directory's schedulers start it (or roll it back). Jobs without the
  label (made before it existed) are everybody's, as before.

A background pass now and then also prunes the marks of the session's jobs that are gone
(removed by the engine, ``rm``, or by hand, while no tracker saw their ``destroy`` event).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import ThreadPoolExecutor

from loguru import logger

from containertracker.core import labels, outputs
from containertracker.core.decision import CLAIM_HORIZON, Decision, Start, candidates, decide, held
from containertracker.core.engine import (
    ACTIVE_STATUSES,
    ENDED_STATUSES,
    ContainerSummary,
    Engine,
    EngineEvent,
)
from containertracker.core.plan import Plan
from containertracker.core.statestore import StateStore
from containertracker.errors import ContainerTrackerError, JobNotFoundError

__all__ = ["Scheduler"]

_PRUNE_INTERVAL = 60.0
_PRUNE_BATCH = 256
"""A background pass prunes the marks of gone jobs this often (seconds), looking at this many
marks files at most (the next prune goes on from there)."""
_PASS_SHARE = 0.05
_RESYNC_MAX = 60.0
"""A background pass that is not due for any other reason (a kick, a timer) runs every
resync interval, or less often when passes are slow: a pass lists the whole session, and
with 10,000 jobs in it that costs the engine (and this process) a second or more on Podman.
The interval then grows so that passes take at most this share of the time, up to the
maximum (seconds). Events drive the starts, stops and outputs; these passes only catch what
events could not tell (a lost claim, a list that lagged behind an event)."""
_START_THREADS = 16
"""Starts (and slot refills, stops, finalizations) under way at once. A busy engine takes a
second or more to start a container, and starts in parallel: with 4, a 2,000-task array with
``max_parallel`` 50 ran 7 % slower than a pool of 50 threads each starting its own (on the
in-memory engine with 0.1 s starts: 26.5 s against 12.6 s with 16)."""
_RETRY_FIRST = 1.0
_RETRY_MAX = 30.0
"""Backoff of the starts that met an unreachable engine: doubling from the first, capped."""


class Scheduler:
    """Runs the scheduling thread of one session; thread-safe."""

    def __init__(
        self,
        engine: Engine,
        session: str,
        store: StateStore,
        *,
        finalize: Callable[[str], None],
        resync_interval: float,
        stop_grace: float,
        clock: Callable[[], float] = time.time,
        background: bool = True,
    ) -> None:
        """Start the scheduling thread (unless ``background`` is False); ``finalize(job_id)``
        writes an ended job's outputs.

        ``clock`` gives the time (epoch seconds) that claims, retries, start times and
        deadlines are measured with; a test passes a fake one to let a claim age at once.

        ``background`` False: no scheduling thread, so passes run only when called for
        (:meth:`schedule_now`, :meth:`release`, :meth:`start_submitted`) and :meth:`kick`
        does nothing; a test drives such a scheduler pass by pass. (Starts, slot refills,
        stops and finalizations still run in its pool.)
        """
        self._engine = engine
        self._session = session
        self._store = store
        self._finalize = finalize
        self._resync = resync_interval
        self._interval = resync_interval
        """The resync interval now: :attr:`_resync`, or longer while passes are slow (see
        :data:`_PASS_SHARE`)."""
        self._stop_grace = stop_grace
        self._clock = clock
        self._log = logger.bind(backend=engine.name, session=session)
        self._closed = threading.Event()
        self._kick = threading.Event()
        self._died_lock = threading.Lock()
        self._died: dict[str, float] = {}
        """Jobs whose "die" event this scheduler saw recently (monotonic time): the engine's
        list lags behind its own events, and such a job no longer holds its slot."""
        # The rest is only touched with the session lock held.
        self._own_claims = 0
        """How many starts this scheduler has claimed."""
        self._claims_seen = -1
        """The session's claim count when this scheduler last had an exact view (after its
        last pass, and its own claims since); -1: never."""
        self._owned: dict[str, str] = {}
        """Throttled tasks this scheduler started, not seen ended yet: their array id."""
        self._waiting: dict[str, list[Start]] = {}
        """The last pass's waiting tasks per throttled array: the next to take a freed slot."""
        self._passed_on: dict[str, str] = {}
        """Owned tasks that a pass saw ended (their array id), whose die event this
        scheduler has not handled yet: that pass gave their slots on already, so their die
        events need no pass (a task's die event often comes while its slot is handed on, a
        pass in between would take it for another scheduler's task, and ask for another)."""
        self._starved: set[str] = set()
        """Throttled arrays of submissions of this tracker under way of which a slot went to
        a pass for want of a waiting task: tasks created since are started by a pass (see
        :meth:`tasks_created`); a pass that leaves tasks of the array waiting ends it."""
        self._own_submissions: set[str] = set()
        """Submissions of this tracker under way whose jobs this scheduler's passes start."""
        self._busy_lock = threading.Lock()
        self._busy: set[str] = set()
        """Background work under way (a job's stop or finalization), so passes do not queue
        it again while it runs."""
        self._next_prune = 0.0
        """When the next background pass prunes marks (monotonic time)."""
        self._pool = ThreadPoolExecutor(
            max_workers=_START_THREADS, thread_name_prefix="containertracker-start"
        )
        self._thread = threading.Thread(
            target=self._loop, name="containertracker-scheduler", daemon=True
        )
        if background:
            self._thread.start()

    def kick(self) -> None:
        """Run a pass soon (something may start now)."""
        self._kick.set()

    def schedule_now(self) -> None:
        """Run a pass in the caller's thread and wait for its starts (a start error is
        recorded on its job, which then reads FAILED)."""
        self._pass(background=False)

    def start_submitted(
        self, submission_id: str, job_ids: Collection[str]
    ) -> list[ContainerTrackerError]:
        """Run a pass in the caller's thread that may start the jobs of ``submission_id``, a
        submission of this tracker under way (no other scheduler starts them), and wait for
        its starts. The start errors of ``job_ids`` are returned (other jobs' are recorded on
        them). From then on this scheduler's background passes start the submission's jobs
        too (those created later, as slots free up), until :meth:`end_submission`."""
        return self._pass(background=False, include=submission_id, report=frozenset(job_ids))[1]

    def tasks_created(self, array_id: str) -> None:
        """More tasks of the throttled array ``array_id`` (of a submission of this tracker
        under way) exist: run a pass if a slot of the array went unfilled for want of a
        waiting task since the last pass that left some waiting. Otherwise they wait for the
        slot a running task frees, which is filled from the last pass's waiting tasks, or by
        a pass once those have run out: so creating 10,000 tasks costs a few passes (each
        lists the session) instead of one per batch."""
        if array_id in self._starved:  # read without the lock: a stale answer costs a pass
            self._kick.set()

    def end_submission(self, submission_id: str) -> None:
        """The submission is over (its record closed): its jobs are everybody's now."""
        with self._store.session_lock(self._session):
            self._own_submissions.discard(submission_id)
            self._starved.discard(submission_id)  # (an array's submission id is its id)

    def hold(self, job_id: str, plan: Plan) -> bool:
        """Mark a job (whose plan is ``plan``) held, unless it was created started, or its
        start is under way or done; returns whether it did.

        Under the session lock, which a start is committed under (see :meth:`start`): either
        the start sees the hold and does not happen, or the hold sees the job ``starting``.
        (A start whose scheduler died before the engine started the job keeps refusing holds
        until its claim is lost, a minute later, and the job is started anew.) A job created
        started says so in its plan from the moment it exists, before its submission records
        its claim (:meth:`created_started`).
        """
        if plan.created_started:
            return False
        with self._store.session_lock(self._session):
            if self._store.marks(job_id).starting:
                return False
            self._store.update(job_id, hold=True)
        return True

    def release(self, job_id: str) -> None:
        """Mark a held job released (under the session lock, like holds) and run a pass in
        the caller's thread, which starts it or queues it behind ``max_parallel``."""
        with self._store.session_lock(self._session):
            self._store.update(job_id, hold=False)
        self.schedule_now()

    def start(self, job_id: str, plan: Plan, claimed_at: float | None = None) -> bool:
        """Start a job now, unless it is held or failed (terminated, say) by now, or (given
        ``claimed_at``, the time of this scheduler's claim) another scheduler has claimed it
        since. Returns whether it started.

        The decision is taken under the session lock and marks the job ``starting``: a hold
        (written under that lock) either came first, and then the job's claim is dropped and
        it stays QUEUED_HELD, or comes after, and is refused. Until the engine has answered,
        the start is under way for every scheduler (:meth:`StateStore.starting`): its claim
        counts however long the engine takes. A job terminated while its start was under way
        is stopped again at once, so that a job terminated before it started never runs on.

        Raises:
            InvalidArgumentError: the job's input file cannot be read.
            ContainerTrackerError: the engine refused the start.
        """
        with self._store.starting(job_id):
            # Under the session lock, which claims are made under: a pass either sees the
            # renewed claim or has claimed the job anew, and then the renewal fails.
            with self._store.session_lock(self._session):
                marks = self._store.marks(job_id)
                if claimed_at is not None and marks.claimed_at != claimed_at:
                    return False  # the claim aged while waiting here: the job is someone else's
                if marks.failure or held(plan, marks):
                    if claimed_at is not None:
                        self._store.update(job_id, claimed_at=None)  # its slot is free again
                    return False
                now = self._clock()
                if claimed_at is None:
                    self._store.update(job_id, claimed_at=now, starting=True)
                elif not self._store.renew_claim(job_id, claimed_at, now):
                    return False
            # Opened right before the start (its host paths checked again); the engine reads
            # it in pieces and closes it.
            self._engine.start(job_id, outputs.open_input(plan))
        if marks.retries:
            self._store.update(job_id, retry_after=None, retries=0, last_error="")
        if self._store.marks(job_id).terminated:
            self._stop(job_id)  # (if this fails, the next pass stops it)
        return True

    def created_started(self, job_id: str) -> None:
        """Record the start of a job its submission (under way) has just created started
        (:meth:`Engine.create` with ``start``; its plan says
        :attr:`~containertracker.core.plan.Plan.created_started`): claimed and ``starting``,
        as :meth:`start` leaves a job it started, for every tracker to read. A job
        terminated while the engine created it (it read QUEUED) is stopped again at once,
        as after any start, so that it never runs on.

        Not under the session lock: no scheduler starts such a job, and a hold refuses it by
        its plan, so nothing races this record.
        """
        if self._store.update(job_id, claimed_at=self._clock(), starting=True).terminated:
            self._stop(job_id)  # as after start()

    def on_event(self, event: EngineEvent) -> None:
        """Take note of a container event of the session (called by the event thread).

        An ended job may free a slot of a throttled array, and its outputs are to be written.
        Both are done without a pass where possible, since a pass lists every container of
        the session and an array's tasks end many times a second. A removed job's marks go.
        """
        job_id, attributes = event.container_id, event.attributes
        if event.action == "destroy":  # removed (rm, delete_job, by hand): nothing to mark
            self._store.forget(job_id)
            return
        if event.action != "die":
            return
        labelled = labels.MANAGED in attributes  # some engines send no labels with events
        if labelled and Plan.from_labels(attributes).may_restart_after(_exit_code(attributes)):
            # Not an end if a restart follows (the task keeps its slot): a pass decides from
            # the engine's word on it (restarting, or ended).
            self._kick.set()
            return
        with self._died_lock:
            self._died[job_id] = time.monotonic()
        if not labelled:
            self._kick.set()
            return
        if attributes.get(labels.MAX_PARALLEL, "0") != "0":  # a throttled task: a slot is free
            # Read without the session lock: a task enters _owned before it is started, so
            # it is there by the time it can die (or in _passed_on since, if a pass saw it
            # ended); _refill checks again under the lock.
            if job_id in self._owned or job_id in self._passed_on:
                self._pool.submit(self._refill, job_id)  # before the slower output copies
            else:
                self._kick.set()
        if Plan.from_labels(attributes).needs_finalizing:
            self._in_background(f"finalize {job_id}", self._finalize, job_id)

    def close(self) -> None:
        """Stop the scheduling thread and wait for the work under way in the pool (starts,
        slot refills, stops, finalizations)."""
        self._closed.set()
        self._kick.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._pool.shutdown(wait=True)

    # -- passes -------------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._closed.is_set():
            started = time.monotonic()
            next_wake = self._clock() + self._interval
            try:
                next_wake = min(next_wake, self._pass(background=True)[0])
            except ContainerTrackerError as exc:
                self._log.debug("scheduler pass failed: {}", exc)
            except Exception as exc:  # keep scheduling whatever happens
                self._log.opt(exception=exc).warning("scheduler pass crashed")
            cost = time.monotonic() - started
            self._interval = min(_RESYNC_MAX, max(self._resync, cost / _PASS_SHARE))
            self._kick.wait(max(0.0, next_wake - self._clock()))
            self._kick.clear()

    def _pass(
        self,
        *,
        background: bool,
        include: str | None = None,
        report: Collection[str] = frozenset(),
    ) -> tuple[float, list[ContainerTrackerError]]:
        """Start what may start, stop what is overdue, finalize what ended, roll back the
        submissions whose submitter is gone.

        ``include`` is a submission of this tracker under way whose jobs this pass may start
        (and later passes too). Returns when to run next and the start errors of the jobs in
        ``report``; other start errors are recorded on their jobs (FAILED).
        """
        with self._store.session_lock(self._session):
            before = self._store.claim_count(self._session) - self._own_claims
        listed_at = time.time()  # the file system's time: prune compares it with mtimes
        listing = self._list()
        with self._store.session_lock(self._session):
            count = self._store.claim_count(self._session)
            if count - self._own_claims != before:
                listing = self._list()  # another scheduler claimed starts: they may be unlisted
            rows = [row for row in listing if labels.MANAGED in row.labels]
            if include is not None:
                self._own_submissions.add(include)
            submissions = self._store.submissions(self._session)
            now = self._clock()
            others = submissions - self._own_submissions  # under way elsewhere, or abandoned
            decision = self._decide(rows, now, others)
            self._claims_seen = self._claim(decision.to_start, count, now)
            self._waiting = {array: list(tasks) for array, tasks in decision.waiting.items()}
            self._starved.difference_update(decision.waiting)
            owned = {**self._owned, **decision.owned}
            self._owned = {
                cid: array
                for cid, array in owned.items()
                if cid in decision.slot_holders and array not in decision.over_limit
            }
            listed = {row.id for row in rows}
            self._passed_on = {
                cid: array
                for cid, array in {**self._passed_on, **owned}.items()
                if cid not in self._owned and cid in listed and array not in decision.over_limit
            }
        errors = self._start_claimed(decision.to_start, now, wait=not background, report=report)
        if not background:
            # Stops, finalizations and rollbacks are the background pass's: a foreground
            # caller wants its starts, not errors about other jobs (say, one deleted meanwhile).
            self._kick.set()
            return decision.next_wake, errors
        for submission_id in others:  # abandoned (or under way in another tracker: checked there)
            self._in_background(f"roll back {submission_id}", self._roll_back, submission_id)
        if time.monotonic() >= self._next_prune:
            self._next_prune = time.monotonic() + _PRUNE_INTERVAL
            try:
                self._store.prune({row.id for row in listing}, listed_at, _PRUNE_BATCH)
            except OSError as exc:  # the state directory's trouble shows elsewhere too
                self._log.debug("pruning marks failed: {}", exc)
        return self._stop_overdue_and_finalize(rows, decision.next_wake), errors

    def _list(self) -> list[ContainerSummary]:
        """Every container of the session (also those of other tools: marks of them stay)."""
        return self._engine.list_containers({labels.SESSION: self._session})

    def _recently_died(self) -> set[str]:
        horizon = time.monotonic() - CLAIM_HORIZON
        with self._died_lock:
            self._died = {cid: t for cid, t in self._died.items() if t > horizon}
            return set(self._died)

    def _decide(self, rows: list[ContainerSummary], now: float, others: set[str]) -> Decision:
        """Decide from ``rows`` and the marks of their queued jobs (read now) which jobs start;
        ``others`` are submissions under way that are not this scheduler's to start. Records
        the failure of the jobs whose deadline passed before they could start. Must hold the
        session lock (claims are read and made under it)."""
        owns = self._store.owns
        marks = self._store.marks_of(candidates(rows, owns))
        under_way = {
            job_id
            for job_id, job_marks in marks.items()
            if job_marks.starting and self._store.start_under_way(job_id)
        }
        decision = decide(
            rows,
            marks,
            died=self._recently_died(),
            now=now,
            not_ours=others,
            owns=owns,
            under_way=under_way,
            resync_interval=self._interval,
        )
        for job_id in decision.expired:
            self._store.update(job_id, failure="deadline passed before the job could start")
        return decision

    def _claim(self, starts: Collection[Start], count: int, now: float) -> int:
        """Claim ``starts`` at ``now``, the claim count being ``count``; return the new count.
        Must hold the session lock."""
        if not starts:
            return count
        self._own_claims += len(starts)
        return self._store.claim(self._session, (job_id for job_id, _ in starts), now)

    def _stop_overdue_and_finalize(self, rows: list[ContainerSummary], next_wake: float) -> float:
        """Stop overdue jobs and terminated jobs that still run (terminated during their start,
        a stop that failed), and have ended jobs finalized; return when to look again."""
        now = self._clock()
        watched = [
            row
            for row in rows
            if row.status in ACTIVE_STATUSES
            or (row.status in ENDED_STATUSES and Plan.from_labels(row.labels).needs_finalizing)
        ]
        marks = self._store.marks_of(row.id for row in watched)
        for row in watched:
            try:
                if row.status in ACTIVE_STATUSES:
                    due = None if marks[row.id].terminated else self._due(row, now)
                    if due is None:
                        self._in_background(f"stop {row.id}", self._stop, row.id)
                    else:
                        next_wake = min(next_wake, due)
                elif not marks[row.id].finalized:
                    self._in_background(f"finalize {row.id}", self._finalize, row.id)
            except ContainerTrackerError as exc:  # e.g. deleted since the list: next job
                self._log.debug("looking after {} failed: {}", row.id, exc)
        return next_wake

    def _due(self, row: ContainerSummary, now: float) -> float | None:
        """When the job's deadline or wall-clock limit is reached; None when it is now, and
        then its termination is recorded (the caller stops it)."""
        plan = Plan.from_labels(row.labels)
        due = plan.deadline if plan.deadline is not None else float("inf")
        if plan.wallclock_limit is not None:
            started = self._engine.inspect(row.id).started_at
            if started is not None:
                due = min(due, started.timestamp() + plan.wallclock_limit)
        if due > now:
            return due
        reason = "deadline reached" if due == plan.deadline else "wall-clock limit reached"
        self._store.update(row.id, failure=f"terminated: {reason}", terminated=True)
        return None

    def _in_background(self, key: str, work: Callable[[str], None], job_id: str) -> None:
        """Run ``work(job_id)`` in the pool unless work ``key`` is under way already."""
        with self._busy_lock:
            if key in self._busy:
                return
            self._busy.add(key)

        def run() -> None:
            try:
                work(job_id)
            finally:
                with self._busy_lock:
                    self._busy.discard(key)

        self._pool.submit(run)

    def _stop(self, job_id: str) -> None:
        try:
            self._engine.stop(job_id, self._stop_grace)
        except ContainerTrackerError as exc:
            self._log.warning("could not stop job {}: {}", job_id, exc)

    def _roll_back(self, submission_id: str) -> None:
        """Remove every container of a submission whose record nobody holds any more (its
        submitter died, or could not remove them itself), then the record. Does nothing
        while the submitter is at work, or another scheduler is rolling it back."""
        try:
            with self._store.take_over_submission(submission_id) as ours:
                if not ours:
                    return
                rows = self._engine.list_containers(
                    {labels.SESSION: self._session, labels.SUBMISSION: submission_id}
                )
                for row in rows:
                    self._engine.remove(row.id)
                    self._store.forget(row.id)
                self._log.info(
                    "rolled back interrupted submission {}: {} jobs removed",
                    submission_id,
                    len(rows),
                )
        except ContainerTrackerError as exc:  # the record stays: the next pass tries again
            self._log.warning("rolling back submission {} failed: {}", submission_id, exc)

    # -- starting -----------------------------------------------------------------------------

    def _refill(self, ended: str) -> None:
        """Give the slot of ``ended``, a throttled task this scheduler started, to the next
        waiting task of its array."""
        no_pass_needed = False
        try:
            with self._store.session_lock(self._session):
                successor, no_pass_needed = self._take_slot(ended)
            if successor is not None:
                no_pass_needed = self._start_or_record(*successor) and no_pass_needed
        finally:
            if not no_pass_needed:
                self._kick.set()  # a pass decides (the slot is free, or a timer is due)

    def _take_slot(self, ended: str) -> tuple[tuple[str, Plan, float] | None, bool]:
        """Claim the next waiting task for the slot ``ended`` held. Returns it (None if there
        is none, or another scheduler claimed starts since our last pass) and whether no pass
        is needed for it. Must hold the session lock."""
        array_id = self._owned.pop(ended, None)
        if array_id is None:
            passed_on = self._passed_on.pop(ended, None)
            if passed_on is not None and not self._waiting.get(passed_on):
                self._starve(passed_on)
            return None, passed_on is not None
        self._starve(array_id)
        count = self._store.claim_count(self._session)
        if count != self._claims_seen:
            return None, False
        waiting = self._waiting.get(array_id, [])
        now = self._clock()
        no_pass_needed = True
        while waiting:
            job_id, plan = waiting.pop(0)
            marks = self._store.marks(job_id)
            if plan.deadline is not None and plan.deadline <= now:
                no_pass_needed = False  # a pass records its failure
                continue
            if marks.claimed_at is not None or marks.failure or held(plan, marks):
                continue
            if marks.retry_after is not None and marks.retry_after > now:
                no_pass_needed = False  # a pass retries it when due
                continue
            self._claims_seen = self._claim([(job_id, plan)], count, now)
            self._owned[job_id] = array_id
            # A pass sets the timer of a job with a deadline or wall-clock limit.
            timed = plan.deadline is not None or plan.wallclock_limit is not None
            self._starved.discard(array_id)
            return (job_id, plan, now), no_pass_needed and not timed
        return None, False

    def _starve(self, array_id: str) -> None:
        """Unless a waiting task takes the slot just freed, a pass fills it from the tasks it
        lists, and tasks of the array created after that pass need another (if the array's
        submission is under way: :meth:`tasks_created`). Must hold the session lock."""
        if array_id in self._own_submissions:
            self._starved.add(array_id)

    def _start_claimed(
        self, jobs: Collection[Start], claimed_at: float, *, wait: bool, report: Collection[str]
    ) -> list[ContainerTrackerError]:
        """Start jobs claimed at ``claimed_at`` in parallel.

        A start error is recorded on its job (it reads FAILED), except for the jobs in
        ``report``: their errors are returned and their claims dropped, for the caller to deal
        with. With ``wait``, return when every start is done; otherwise at once (so that one
        slow start does not hold up the next pass).
        """
        futures = [
            (
                job_id,
                self._pool.submit(
                    self.start if job_id in report else self._start_or_record,
                    job_id,
                    plan,
                    claimed_at,
                ),
            )
            for job_id, plan in jobs
        ]
        errors: list[ContainerTrackerError] = []
        for job_id, future in futures if wait else ():
            try:
                future.result()
            except ContainerTrackerError as exc:
                errors.append(exc)
                self._store.update(job_id, claimed_at=None, starting=False)
        return errors

    def _start_or_record(self, job_id: str, plan: Plan, claimed_at: float) -> bool:
        """Start a claimed job; record a start error on the job (FAILED), or, if the engine
        could not be reached (a transient error), when to try again (it stays QUEUED).
        Returns whether it started."""
        try:
            return self.start(job_id, plan, claimed_at)
        except JobNotFoundError:  # deleted since it was claimed: no marks for it
            self._store.forget(job_id)
            self._kick.set()
            return False
        except ContainerTrackerError as exc:
            if not exc.transient:
                return self._record_start_error(job_id, exc)
            retries = self._store.marks(job_id).retries + 1
            delay = min(_RETRY_MAX, _RETRY_FIRST * 2 ** min(retries - 1, 10))
            self._store.update(
                job_id,
                claimed_at=None,  # its slot is free until the retry
                starting=False,
                retry_after=self._clock() + delay,
                retries=retries,
                last_error=str(exc),
            )
            self._log.info("starting job {} failed ({}); retry in {} s", job_id, exc, delay)
            self._kick.set()  # a pass sets the retry's timer
            return False
        except Exception as exc:  # whatever it was, the job must not stay queued for ever
            return self._record_start_error(job_id, exc)

    def _record_start_error(self, job_id: str, exc: Exception) -> bool:
        """Record a start error on the job (it reads FAILED); returns False."""
        if not isinstance(exc, ContainerTrackerError):
            self._log.opt(exception=exc).warning("starting job {} crashed", job_id)
        if not self._store.marks(job_id).failure:  # a termination says it better
            self._store.update(job_id, failure=f"could not start: {exc}")
        self._kick.set()  # its slot is free again
        return False


def _exit_code(attributes: Mapping[str, str]) -> int | None:
    """The exit code a ``die`` event carries (None: none, or not a number)."""
    try:
        return int(attributes["exitCode"])
    except (KeyError, ValueError):
        return None
