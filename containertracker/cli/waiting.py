"""``containertracker wait``: wait for many jobs, with a live progress display on a terminal."""

from __future__ import annotations

import time
from collections import Counter

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from containertracker.cli.render import state_counts
from containertracker.errors import WaitTimeoutError
from containertracker.models import JobState
from containertracker.tracker import JobTracker

__all__ = ["wait_for_jobs"]

_REFRESH = 0.5
"""Seconds between state sweeps while waiting; a job ending wakes the loop sooner."""


def wait_for_jobs(
    tracker: JobTracker,
    ids: list[str],
    timeout: float | None,
    states: tuple[JobState, ...],
    *,
    console: Console | None,
) -> dict[str, JobState]:
    """Wait until every job is in one of ``states`` (default: DONE or FAILED).

    With ``console``, show a progress bar and done/failed/running/queued counts meanwhile.
    Returns each job's state when it was reached.

    Raises:
        WaitTimeoutError: ``timeout`` seconds passed first (the message counts the jobs left).
        InvalidStateError: a job ended in a state that is not among ``states``.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    if console is None:
        return {job_id: _wait_one(tracker, job_id, deadline, states) for job_id in ids}
    wanted = states or (JobState.DONE, JobState.FAILED)
    reached: dict[str, JobState] = {}
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        bar = progress.add_task("waiting", total=len(ids))
        while True:
            now = {job_id: tracker.job_state(job_id)[0] for job_id in ids if job_id not in reached}
            reached |= {job_id: s for job_id, s in now.items() if s in wanted}
            counts = Counter(reached[j] if j in reached else now[j] for j in ids)
            progress.update(bar, completed=len(reached), description=state_counts(counts))
            pending = [job_id for job_id in ids if job_id not in reached]
            if not pending:
                return reached
            _wait_one(tracker, pending[0], deadline, wanted, cap=_REFRESH, pending=len(pending))


def _wait_one(
    tracker: JobTracker,
    job_id: str,
    deadline: float | None,
    states: tuple[JobState, ...],
    *,
    cap: float | None = None,
    pending: int = 1,
) -> JobState:
    """``tracker.wait`` until ``deadline``; with ``cap``, return after at most ``cap`` seconds
    (UNSET when the job got nowhere)."""
    left = None if deadline is None else max(0.0, deadline - time.monotonic())
    step = left if cap is None else (cap if left is None else min(cap, left))
    try:
        return tracker.wait(job_id, step, *states)
    except WaitTimeoutError:
        if cap is None or (left is not None and left <= cap):
            raise WaitTimeoutError(
                f"{pending} job(s) still not finished when the timeout passed"
            ) from None
        return JobState.UNSET
