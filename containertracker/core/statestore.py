"""The little per-job state a container cannot carry, shared by every tracker on this host.

Container labels are fixed at creation, so three facts that change later live in files under
the state directory: a hold or release after submission, a failure recorded by a tracker
(cancelled before start, a start or stage-out error) and "outputs written". Each job has one
small JSON file written atomically; ``fcntl`` locks make several processes agree on who
schedules a session and who writes a job's outputs (the kernel drops a dead process's locks).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

__all__ = ["JobMarks", "StateStore"]


@dataclass(frozen=True)
class JobMarks:
    """Mutable facts about one job; the defaults mean "nothing recorded"."""

    hold: bool | None = None
    """None: as submitted (the plan's hold); True/False: held/released since."""
    failure: str = ""
    """Why a tracker declared the job FAILED although its container did not say so."""
    finalized: bool = False
    """Output files and stage-out copies have been written."""


class StateStore:
    """Job marks and cross-process locks under ``root``."""

    def __init__(self, root: Path) -> None:
        self._jobs = root / "jobs"
        self._locks = root / "locks"
        self._jobs.mkdir(parents=True, exist_ok=True)
        self._locks.mkdir(parents=True, exist_ok=True)
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
        with self.lock(f"job-{job_id}"):
            marks = replace(self.marks(job_id), **changes)  # type: ignore[arg-type]
            tmp = self._jobs / f".{job_id}.{os.getpid()}.{threading.get_ident()}"
            tmp.write_text(json.dumps(asdict(marks)))
            tmp.replace(self._jobs / job_id)
        return marks

    def forget(self, job_id: str) -> None:
        """Drop a deleted job's marks."""
        with contextlib.suppress(FileNotFoundError):
            (self._jobs / job_id).unlink()

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Hold an exclusive lock named ``name`` across threads and processes."""
        with self._guard:
            thread_lock = self._thread_locks.setdefault(name, threading.Lock())
        with thread_lock:
            path = self._locks / hashlib.sha256(name.encode()).hexdigest()[:32]
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)
