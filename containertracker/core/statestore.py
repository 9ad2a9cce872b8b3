"""The little per-job state a container cannot carry, shared by every tracker on this host.

Container labels are fixed at creation, so the facts that change later live in files under
the state directory: a hold or release after submission, a scheduler's claim to start the job,
a failure recorded by a tracker (cancelled before start, a start or stage-out error) and
"outputs written". Each job has one small JSON file written atomically; each session has a
count of the starts its schedulers claimed; ``fcntl`` locks make several processes agree on
who schedules a session and who writes a job's outputs (the kernel drops a dead process's
locks).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import threading
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

__all__ = ["JobMarks", "StateStore"]

_JOB_LOCK_STRIPES = 64


@dataclass(frozen=True)
class JobMarks:
    """Mutable facts about one job; the defaults mean "nothing recorded"."""

    hold: bool | None = None
    """None: as submitted (the plan's hold); True/False: held/released since."""
    claimed_at: float | None = None
    """When a scheduler took the job to start it (epoch seconds); no other scheduler starts it."""
    failure: str = ""
    """Why a tracker declared the job FAILED although its container did not say so."""
    finalized: bool = False
    """Output files and stage-out copies have been written."""

    @property
    def terminated(self) -> bool:
        """A tracker terminated the job, or found it overdue (such failures read
        "terminated..."): it must not run."""
        return self.failure.startswith("terminated")


class StateStore:
    """Job marks and cross-process locks under ``root``."""

    def __init__(self, root: Path) -> None:
        self._jobs = root / "jobs"
        self._locks = root / "locks"
        self._sessions = root / "sessions"
        for directory in (self._jobs, self._locks, self._sessions):
            directory.mkdir(parents=True, exist_ok=True)
        self._thread_locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def marks(self, job_id: str) -> JobMarks:
        """The marks of a job (defaults when none were recorded)."""
        try:
            data = json.loads((self._jobs / job_id).read_text())
        except FileNotFoundError:
            return JobMarks()
        except (OSError, ValueError):
            return JobMarks()
        return JobMarks(**{k: v for k, v in data.items() if k in JobMarks.__dataclass_fields__})

    def update(self, job_id: str, **changes: object) -> JobMarks:
        """Change some marks of a job atomically and return the new marks."""
        with self.job_lock("marks", job_id):
            marks = replace(self.marks(job_id), **changes)  # type: ignore[arg-type]
            self._save(job_id, marks)
        return marks

    def claim_count(self, session: str) -> int:
        """How many job starts the schedulers of ``session`` have claimed so far."""
        try:
            return int((self._sessions / _file_name(session)).read_text())
        except (OSError, ValueError):
            return 0

    def claim(self, session: str, job_ids: Iterable[str], now: float) -> int:
        """Mark jobs of ``session`` as claimed at ``now`` and add them to its claim count.

        Call with the session's lock held. Returns the new claim count.
        """
        count = self.claim_count(session)
        for job_id in job_ids:
            self.update(job_id, claimed_at=now)
            count += 1
        _write_atomically(self._sessions / _file_name(session), str(count))
        return count

    def renew_claim(self, job_id: str, claimed_at: float, now: float) -> bool:
        """Renew a claim made at ``claimed_at`` to ``now``, if it is still that claim.

        False when the claim was dropped, or another scheduler claimed the job since.
        """
        with self.job_lock("marks", job_id):
            marks = self.marks(job_id)
            if marks.claimed_at != claimed_at:
                return False
            self._save(job_id, replace(marks, claimed_at=now))
        return True

    def _save(self, job_id: str, marks: JobMarks) -> None:
        """Write a job's marks; hold its marks lock."""
        _write_atomically(self._jobs / job_id, json.dumps(asdict(marks)))

    def forget(self, job_id: str) -> None:
        """Drop a deleted job's marks."""
        with contextlib.suppress(FileNotFoundError):
            (self._jobs / job_id).unlink()

    def job_lock(self, purpose: str, job_id: str) -> contextlib.AbstractContextManager[None]:
        """An exclusive lock on one job for ``purpose``, across threads and processes.

        Jobs share :data:`_JOB_LOCK_STRIPES` locks per purpose, so that lock files and thread
        locks do not pile up with every job ever run (two jobs may wait for each other now and
        then). Purposes never share a lock, so one purpose's lock may be taken inside another's.
        """
        stripe = int(_file_name(job_id)[:8], 16) % _JOB_LOCK_STRIPES
        return self.lock(f"{purpose}-{stripe}")

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Hold an exclusive lock named ``name`` across threads and processes."""
        with self._guard:
            thread_lock = self._thread_locks.setdefault(name, threading.Lock())
        with thread_lock:
            path = self._locks / _file_name(name)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)


def _file_name(name: str) -> str:
    """A file name for any string (session names may hold any character)."""
    return hashlib.sha256(name.encode()).hexdigest()[:32]


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    tmp.write_text(text)
    tmp.replace(path)
