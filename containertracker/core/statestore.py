"""The little per-job state a container cannot carry, shared by every tracker on this host.

Container labels are fixed at creation, so the facts that change later live in files under
the state directory: a hold or release after submission, a scheduler's claim to start the job,
a failure recorded by a tracker (cancelled before start, a start or stage-out error), a start
to retry once the engine is back, and "outputs written". These facts are the job's *marks*
(:class:`JobMarks`), kept in the job's marks file: one small JSON file per job, written
atomically, dropped when the job is deleted or its container removed (seen from its
``destroy`` event, or missed by a later list: :meth:`StateStore.prune`). ``fcntl`` locks make
several processes agree on who schedules a session and who writes a job's outputs (the kernel
drops a dead process's locks), and tell a start under way from a claim whose scheduler died. A
submission under way has a record, locked by its submitter, so that the work of a submitter
that died is seen and rolled back.

Nothing here grows with the number of session names ever used: sessions share
:data:`_SESSION_STRIPES` locks and claim counts, jobs' locks are striped too, marks go with
their job and submission records with their submission.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import socket
import threading
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from containertracker.core.labels import STATE_DIR as STATE_DIR_LABEL

__all__ = ["JobMarks", "StateStore", "Submission"]

_JOB_LOCK_STRIPES = 64
_SESSION_STRIPES = 64
"""Sessions share this many locks and claim counts: a client naming random sessions cannot
fill the state directory, and two sessions of one stripe merely wait for each other now and
then (a claim in either moves their shared count, which only makes a scheduler list again)."""
_PRUNE_SLACK = 60.0
"""How much older than a container list a marks file must be to be pruned when its job is
missing from it (clocks of a shared file system may differ a little)."""
_SUBMISSION_ID = re.compile(r"[0-9a-f]{8,64}")


@dataclass(frozen=True)
class JobMarks:
    """Mutable facts about one job; the defaults mean "nothing recorded"."""

    hold: bool | None = None
    """None: as submitted (the plan's hold); True/False: held/released since."""
    claimed_at: float | None = None
    """When a scheduler took the job to start it (epoch seconds); no other scheduler starts it."""
    failure: str = ""
    """Why a tracker declared the job FAILED although its container did not say so (shown
    as its sub-state and annotation)."""
    terminated: bool = False
    """A tracker terminated the job, or found it past its deadline or wall-clock limit: it
    must not run (a scheduler starting it right then stops it again)."""
    finalized: bool = False
    """Output files and stage-out copies have been written."""
    starting: bool = False
    """The claim was renewed for a start that is under way (or done): a hold is too late."""
    retry_after: float | None = None
    """A start failed because the engine could not be reached: the job stays QUEUED and is
    started again from this time on (epoch seconds)."""
    retries: int = 0
    """Starts in a row that failed so (the backoff grows with them)."""
    last_error: str = ""
    """The error of the last such start."""
    scope: str = ""
    """The :meth:`StateStore.scope_of` the trackers that wrote the marks (their engine and
    session): a pass of such a tracker may prune the marks once the job is gone. Empty:
    written by a store without one (the marks are dropped with the job only)."""


class StateStore:
    """Job marks and cross-process locks under ``root``."""

    def __init__(self, root: Path, *, scope: str = "") -> None:
        """Open (and make) the state directory ``root``. ``scope`` (see :meth:`scope_of`) is
        recorded in every marks file this store writes, so that :meth:`prune` can tell the
        marks of jobs its caller lists from other engines' or sessions' ones."""
        self._identity = _file_name(f"{socket.gethostname()}\0{os.path.realpath(root)}")[:16]
        self._scope = scope
        self._prune_after = ""
        self._jobs = root / "jobs"
        self._locks = root / "locks"
        self._sessions = root / "sessions"
        self._submissions = root / "submissions"
        for directory in (self._jobs, self._locks, self._sessions, self._submissions):
            directory.mkdir(parents=True, exist_ok=True)
        self._thread_locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    @staticmethod
    def scope_of(engine: str, url: str, session: str) -> str:
        """The scope of the trackers of ``session`` on the engine ``engine`` at ``url``."""
        return _file_name(f"{engine}\0{url}\0{session}")[:16]

    @property
    def identity(self) -> str:
        """This state directory among those of every host: a hash of the host name and the
        directory's real path (the same for every tracker using it)."""
        return self._identity

    def owns(self, labels: Mapping[str, str]) -> bool:
        """Whether a job with ``labels`` is scheduled from this state directory: it says it
        was submitted with this one, or it says nothing (made before jobs said so)."""
        return labels.get(STATE_DIR_LABEL, self._identity) == self._identity

    def marks(self, job_id: str) -> JobMarks:
        """The marks of a job (defaults when none were recorded)."""
        try:
            data = json.loads((self._jobs / job_id).read_text())
        except FileNotFoundError:
            return JobMarks()
        except (OSError, ValueError):
            return JobMarks()
        known = {k: v for k, v in data.items() if k in JobMarks.__dataclass_fields__}
        if "terminated" not in known:  # written before terminations had their own field
            known["terminated"] = str(known.get("failure", "")).startswith("terminated")
        return JobMarks(**known)

    def marks_of(self, job_ids: Iterable[str]) -> dict[str, JobMarks]:
        """The marks of many jobs (as :meth:`marks` each), reading only the files that exist:
        most jobs of a large queued array have none yet, and one directory listing costs far
        less than a failed open per job (a scheduling pass reads the marks of every queued
        job of the session)."""
        recorded = set(os.listdir(self._jobs))
        return {
            job_id: self.marks(job_id) if job_id in recorded else JobMarks() for job_id in job_ids
        }

    def update(self, job_id: str, **changes: object) -> JobMarks:
        """Change some marks of a job atomically and return the new marks."""
        with self.job_lock("marks", job_id):
            marks = replace(self.marks(job_id), **changes)  # type: ignore[arg-type]
            self._save(job_id, marks)
        return marks

    def session_lock(self, session: str) -> contextlib.AbstractContextManager[None]:
        """The lock of ``session``, under which its schedulers claim starts (shared with the
        other sessions of its stripe; never take two sessions' locks at once)."""
        return self.lock(f"session-{_session_stripe(session)}")

    def claim_count(self, session: str) -> int:
        """A count that grows whenever a scheduler of ``session`` (or of another session of
        its stripe) claims a start: it moved iff someone claimed since it was last read."""
        try:
            return int((self._sessions / _session_stripe(session)).read_text())
        except (OSError, ValueError):
            return 0

    def claim(self, session: str, job_ids: Iterable[str], now: float) -> int:
        """Mark jobs of ``session`` as claimed at ``now`` and add them to its claim count.

        Call with the session's lock held. Returns the new claim count.
        """
        count = self.claim_count(session)
        for job_id in job_ids:
            self.update(job_id, claimed_at=now, starting=False)
            count += 1
        _write_atomically(self._sessions / _session_stripe(session), str(count))
        return count

    def renew_claim(self, job_id: str, claimed_at: float, now: float) -> bool:
        """Renew a claim made at ``claimed_at`` to ``now`` for a start about to happen (the
        job is marked ``starting``), if it is still that claim.

        False when the claim was dropped, or another scheduler claimed the job since.
        """
        with self.job_lock("marks", job_id):
            marks = self.marks(job_id)
            if marks.claimed_at != claimed_at:
                return False
            self._save(job_id, replace(marks, claimed_at=now, starting=True))
        return True

    # -- submissions --------------------------------------------------------------------------

    def open_submission(self, session: str, submission_id: str) -> Submission:
        """Record a submission of ``session`` as under way, locked by this process until
        :meth:`Submission.close`; its containers carry its id in a label.

        The record appears already locked (written and locked under a temporary name, then
        renamed), so nobody takes a submission in its first moment for one whose submitter
        died.
        """
        if not _SUBMISSION_ID.fullmatch(submission_id):
            raise ValueError(f"bad submission id {submission_id!r}")
        path = self._submissions / submission_id
        tmp = path.with_name(f".{submission_id}.{os.getpid()}.{threading.get_ident()}")
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, json.dumps({"session": session}).encode())
            os.replace(tmp, path)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        return Submission(path, fd)

    def submissions(self, session: str) -> set[str]:
        """The ids of the submissions of ``session`` with a record: under way, or left by a
        submitter that died (or failed to remove what it created) and not rolled back yet."""
        found = set()
        for path in self._submissions.iterdir():
            if path.name.startswith("."):
                continue
            try:
                if json.loads(path.read_text()).get("session") == session:
                    found.add(path.name)
            except (OSError, ValueError, AttributeError):
                continue  # gone meanwhile, or not ours
        return found

    @contextlib.contextmanager
    def take_over_submission(self, submission_id: str) -> Iterator[bool]:
        """Yield True if the submission's record exists and nobody holds it (its submitter
        died or gave up): the caller then rolls it back, and the record is removed when the
        block ends without an error. Yield False if the submitter is at work or someone else
        is taking it over (or it is gone)."""
        path = self._submissions / submission_id
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError:
            yield False
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                # Still the record (not one closed and removed just before the lock)?
                mine = os.fstat(fd).st_ino == os.stat(path).st_ino
            except OSError:
                mine = False
            yield mine
            if mine:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        finally:
            os.close(fd)

    def _save(self, job_id: str, marks: JobMarks) -> None:
        """Write a job's marks; hold its marks lock."""
        if self._scope and not marks.scope:
            marks = replace(marks, scope=self._scope)
        _write_atomically(self._jobs / job_id, json.dumps(asdict(marks)))

    def forget(self, job_id: str) -> None:
        """Drop a deleted job's marks."""
        with contextlib.suppress(FileNotFoundError):
            (self._jobs / job_id).unlink()

    def prune(self, alive: Collection[str], listed_at: float, limit: int) -> int:
        """Drop the marks of this store's scope whose job is gone: not in ``alive``, the ids
        of every container of the scope's session listed from ``listed_at`` (epoch seconds)
        on, and written last before then (a job's container exists before its marks are
        written, so such a job would have been listed). Returns how many were dropped.

        Bounded: looks at ``limit`` marks files at most, resuming after the last one looked
        at by the previous call (and from the start once all were).
        """
        if not self._scope:
            return 0
        horizon = listed_at - _PRUNE_SLACK
        names = sorted(n for n in os.listdir(self._jobs) if not n.startswith("."))
        batch = [n for n in names if n > self._prune_after][:limit]
        self._prune_after = batch[-1] if len(batch) == limit else ""
        dropped = 0
        for job_id in batch:
            if job_id in alive or not self._older(job_id, horizon):
                continue
            with self.job_lock("marks", job_id):
                # Under the lock every write of marks is made under: not written meanwhile.
                if self.marks(job_id).scope == self._scope and self._older(job_id, horizon):
                    self.forget(job_id)
                    dropped += 1
        return dropped

    def _older(self, job_id: str, horizon: float) -> bool:
        """Whether the job's marks file exists and was written last before ``horizon``."""
        try:
            return (self._jobs / job_id).stat().st_mtime < horizon
        except OSError:
            return False

    def job_lock(self, purpose: str, job_id: str) -> contextlib.AbstractContextManager[None]:
        """An exclusive lock on one job for ``purpose``, across threads and processes.

        Jobs share :data:`_JOB_LOCK_STRIPES` locks per purpose, so that lock files and thread
        locks do not pile up with every job ever run (two jobs may wait for each other now and
        then). Purposes never share a lock, so one purpose's lock may be taken inside another's.
        """
        return self.lock(f"{purpose}-{_job_stripe(job_id)}")

    @contextlib.contextmanager
    def starting(self, job_id: str) -> Iterator[None]:
        """Within the block a start of the job is under way, for every process to see
        (:meth:`start_under_way`) until the block ends or the process dies (the kernel drops
        its lock): a scheduler holds it from the renewal of its claim until the engine has
        answered its start.

        A shared lock on one of :data:`_JOB_LOCK_STRIPES` files: starts never wait for each
        other, and a job whose stripe another start holds reads as being started too (its
        claim merely counts a while longer).
        """
        fd = os.open(self._start_lock(job_id), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)

    def start_under_way(self, job_id: str) -> bool:
        """Whether a live process is in :meth:`starting` for the job (or for another job of
        its stripe)."""
        fd = os.open(self._start_lock(job_id), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # (drops the probe's lock, if it got it)
        return False

    def _start_lock(self, job_id: str) -> Path:
        return self._locks / _file_name(f"start-{_job_stripe(job_id)}")

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


class Submission:
    """The record of a submission under way, held (locked) by its submitter."""

    def __init__(self, path: Path, fd: int) -> None:
        self._path = path
        self._fd: int | None = fd

    @property
    def id(self) -> str:
        """The submission id (its containers' ``containertracker.submission`` label)."""
        return self._path.name

    def close(self, *, complete: bool) -> None:
        """End the submission: ``complete`` (every container it made is to stay, or none is
        left) removes the record; otherwise it is left unlocked, and the next scheduler of the
        session removes whatever carries the submission's id."""
        if self._fd is None:
            return
        try:
            if complete:
                with contextlib.suppress(FileNotFoundError):
                    self._path.unlink()  # before the unlock: nobody takes over a finished one
        finally:
            os.close(self._fd)
            self._fd = None


def _job_stripe(job_id: str) -> int:
    """The stripe a job shares its locks with."""
    return int(_file_name(job_id)[:8], 16) % _JOB_LOCK_STRIPES


def _session_stripe(session: str) -> str:
    """The stripe a session shares its lock and claim count with (as a file name)."""
    return str(int(_file_name(session)[:8], 16) % _SESSION_STRIPES)


def _file_name(name: str) -> str:
    """A file name for any string (session names may hold any character)."""
    return hashlib.sha256(name.encode()).hexdigest()[:32]


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    tmp.write_text(text)
    tmp.replace(path)
