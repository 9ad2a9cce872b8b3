"""What a job reference on the command line names: a job, or an array job (all its tasks).

A reference is a full job id, a full array id, or a prefix that begins exactly one of the
session's job and array ids (``list`` shows ids 12 characters long). A full id always names
its own job or array, even if it also begins another id.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

from containertracker.cli.parallel import in_parallel
from containertracker.errors import InvalidArgumentError, JobNotFoundError
from containertracker.models import JobInfo
from containertracker.tracker import JobTracker

__all__ = ["References", "Target", "pick"]

Kind = Literal["job", "array"]
_SHOWN = 3
"""Candidates an ambiguity message names, per kind."""


@dataclass(frozen=True)
class Target:
    """The jobs one reference names: one job, or an array job's tasks in task order."""

    ids: tuple[str, ...]
    array_id: str = ""
    """The array job's id when the reference named an array, else empty."""


def pick(
    ref: str, jobs: Collection[str], arrays: Collection[str], session: str
) -> tuple[Kind, str]:
    """The job or array job ``ref`` names among the session's ``jobs`` and ``arrays`` (ids):
    ``("job", id)`` or ``("array", id)``. Pure.

    Raises:
        JobNotFoundError: ``ref`` is none of the ids and begins none of them.
        InvalidArgumentError: ``ref`` begins several ids; the message names them by kind.
    """
    if ref in jobs:
        return "job", ref
    if ref in arrays:
        return "array", ref
    found: list[tuple[Kind, str]] = []
    if ref:
        found += [("job", job_id) for job_id in jobs if job_id.startswith(ref)]
        found += [("array", array_id) for array_id in arrays if array_id.startswith(ref)]
    if not found:
        raise JobNotFoundError(f"no job or array job {ref!r} in session {session!r}")
    if len(found) > 1:
        raise InvalidArgumentError(
            f"{ref!r} is ambiguous: it begins {_kinds(found)}; give more of the id"
        )
    return found[0]


def _kinds(found: list[tuple[Kind, str]]) -> str:
    """``2 jobs (3f2a91c0d4e5, 3f0c...) and array job 3f77aa01b2c3``."""
    parts = []
    for kind, noun in (("job", "job"), ("array", "array job")):
        ids = sorted(i[:12] for k, i in found if k == kind)
        if len(ids) == 1:
            parts.append(f"{noun} {ids[0]}")
        elif ids:
            more = ", ..." if len(ids) > _SHOWN else ""
            parts.append(f"{len(ids)} {noun}s ({', '.join(ids[:_SHOWN])}{more})")
    return " and ".join(parts)


class References:
    """Resolves references against one session's tracker, with what it read kept for the
    invocation (the job list, and the array ids only once a prefix needs them)."""

    def __init__(self, tracker: JobTracker, session: str) -> None:
        self._tracker = tracker
        self._session = session
        self._jobs: list[str] | None = None
        self._arrays: set[str] | None = None

    def target(self, ref: str, *, arrays_only: bool = False) -> Target:
        """The job, or the array job's tasks, ``ref`` names (``arrays_only``: an array job).

        A full id costs one call; a prefix also reads every job's info once (the array ids
        are in it), several at a time.

        Raises:
            JobNotFoundError: it names nothing in the session.
            InvalidArgumentError: it is a prefix of several ids.
        """
        jobs = [] if arrays_only else self._job_ids()
        if ref in jobs:
            return Target((ref,))
        tasks = self._tasks(ref) if self._arrays is None or ref in self._arrays else []
        if tasks:
            return Target(tuple(tasks), ref)
        try:
            kind, found = pick(ref, jobs, self._array_ids(), self._session)
        except JobNotFoundError:
            if arrays_only:
                raise JobNotFoundError(
                    f"no array job {ref!r} in session {self._session!r}"
                ) from None
            raise
        return Target((found,)) if kind == "job" else Target(tuple(self._tasks(found)), found)

    def _job_ids(self) -> list[str]:
        if self._jobs is None:
            self._jobs = self._tracker.list_jobs()
        return self._jobs

    def _tasks(self, array_id: str) -> list[str]:
        """The array job's tasks in task order; none if there is no such array job."""
        if not array_id:
            return []
        try:
            return self._tracker.list_array_jobs(array_id)
        except JobNotFoundError:
            return []

    def _array_ids(self) -> set[str]:
        if self._arrays is None:
            infos = in_parallel(self._info, self._job_ids())
            self._arrays = {
                i.extension["array_id"] for i in infos if i and "array_id" in i.extension
            }
            self._arrays.discard("")
        return self._arrays

    def _info(self, job_id: str) -> JobInfo | None:
        try:
            return self._tracker.job_info(job_id)
        except JobNotFoundError:  # deleted since the list
            return None
