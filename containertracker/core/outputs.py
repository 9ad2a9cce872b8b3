"""A job's host files: checked against the allowed roots, created at submission (once its
container exists; removed again if the submission is rolled back), written
(streamed, never through a symlink) when the job ends, and re-checked before it starts.

The paths come from the job's :class:`~containertracker.core.labels.Plan`, where
:func:`~containertracker.core.convert.template_to_spec` put them resolved, one task at a time.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import BinaryIO, Literal

from loguru import logger

from containertracker.core import hostfs
from containertracker.core.convert import SubmitContext, host_paths
from containertracker.core.engine import Engine
from containertracker.core.plan import Plan
from containertracker.errors import ContainerTrackerError, InvalidArgumentError
from containertracker.models import JobTemplate

__all__ = [
    "OutputTail",
    "check",
    "check_tasks",
    "open_input",
    "prepare",
    "tail",
    "unprepare",
    "verify_stage_in",
    "write",
]


def check(plan: Plan, roots: Sequence[str] | None) -> None:
    """Refuse a plan with a host path outside ``roots`` (None: any host path).

    Raises:
        DeniedByDrmsError: the message names the field and the path.
    """
    for what, path in plan.host_paths:
        hostfs.check_within(path, roots, what)


def check_tasks(
    jt: JobTemplate, ctx: SubmitContext, task_ids: Iterable[int], roots: Sequence[str] | None
) -> None:
    """Refuse an array job any of whose tasks names a host path outside ``roots``, before
    any task exists (each task's path is checked once more as it is created).

    Raises:
        DeniedByDrmsError: the message names the field and the path.
    """
    if roots is None:
        return
    for task_id in task_ids:
        for what, path in host_paths(jt, dataclasses.replace(ctx, task_id=task_id)):
            hostfs.check_within(path, roots, f"{what} (task {task_id})")


def prepare(plan: Plan) -> list[str]:
    """Create (truncate) the output files of a job whose container exists, so a bad path
    fails its submission; the files this call created (they did not exist), which
    :func:`unprepare` removes if the submission is rolled back.

    Raises:
        InvalidArgumentError: a file cannot be created (the message says why); a file this
            call created before the failing one is removed again.
    """
    created: list[str] = []
    try:
        for path, what in ((plan.stdout_path, "output file"), (plan.stderr_path, "error file")):
            if path and hostfs.create_file(path, what):
                created.append(path)
    except BaseException:
        unprepare(created)
        raise
    return created


def unprepare(paths: Iterable[str]) -> None:
    """Remove output files :func:`prepare` created for a submission rolled back, unless
    something was written to them meanwhile (best effort: a failure is logged)."""
    for path in paths:
        try:
            hostfs.remove_created_file(path)
        except (OSError, ContainerTrackerError) as exc:
            logger.warning("could not remove {} of a failed submission: {}", path, exc)


def verify_stage_in(plan: Plan) -> None:
    """Right before the job starts (or is created started): check that its stage-in sources
    still resolve to the paths checked at submission.

    The engine binds them itself, after this check; a symlink put in their way in that
    moment is the one race left (the mount is read-only either way, and a job cannot plant
    a symlink leading out of its stage-out destination).

    Raises:
        InvalidArgumentError: a source resolves elsewhere now.
    """
    for path in plan.stage_in:
        hostfs.verify_unchanged(path, "stage_in_files source")


def open_input(plan: Plan) -> BinaryIO | None:
    """Right before the job starts: check its stage-in sources (:func:`verify_stage_in`) and
    that its input file still resolves to the path checked at submission, and open its
    standard input (None: none) without following symlinks; the caller closes it
    (:meth:`Engine.start` does), having read it in pieces, never whole.

    Raises:
        InvalidArgumentError: a path resolves elsewhere now, or the input cannot be opened.
    """
    verify_stage_in(plan)
    if not plan.stdin_path:
        return None
    return hostfs.open_for_reading(plan.stdin_path, "input file")


def write(engine: Engine, job_id: str, plan: Plan, roots: Sequence[str] | None) -> None:
    """Write an ended job's output files and stage-out copies, streaming from the engine.

    Checked against ``roots`` again (the plan may come from another tracker's submission);
    every file is reached without following symlinks, so nothing the job did meanwhile can
    send a write elsewhere.

    Raises:
        DeniedByDrmsError: a path outside ``roots``.
        InvalidArgumentError: a symlink or non-directory on the way, a bad archive member.
        tarfile.TarError, OSError: the archive is corrupt, the file system refused.
    """
    check(plan, roots)
    if plan.stdout_path:
        logs = engine.logs(job_id, stdout=True, stderr=plan.join_files)
        hostfs.write_file(plan.stdout_path, logs)
    if plan.stderr_path:
        stderr = engine.logs(job_id, stdout=False, stderr=True)
        hostfs.write_file(plan.stderr_path, stderr, "error file")
    for source, destination in plan.stage_out.items():
        hostfs.extract(engine.copy_from(job_id, source), source, destination)


@dataclass(frozen=True)
class OutputTail:
    """The end of a job's output (or error) file, as :func:`tail` reads it."""

    path: str
    """The host file (resolved at submission)."""
    text: str
    """Its last bytes, decoded as UTF-8 (undecodable bytes replaced)."""
    truncated: bool
    """Earlier bytes were left out."""
    live: bool
    """Read from the engine's log of the job, which the file will hold once the job has
    ended (the tracker writes output files at the end); False: read from the file."""


def tail(
    engine: Engine,
    job_id: str,
    plan: Plan,
    roots: Sequence[str] | None,
    *,
    which: Literal["output", "error"],
    written: bool,
    max_bytes: int,
) -> OutputTail:
    """The last ``max_bytes`` of a job's output (or error) file: from the file once it is
    ``written``, else (the job has not ended, or its outputs are being written) from the
    engine's log of what goes into it, streamed, never more than ``max_bytes`` held.

    Only a file the job's template named is read, and only if it lies below ``roots``
    (checked again, as before writing it), reached without following symlinks, and a
    regular file (a device or fifo is never read: it could block or never end).

    Raises:
        InvalidArgumentError: the job has no such file (none set, or stderr joined into the
            output file), or it cannot be read (the message says why).
        DeniedByDrmsError: the path lies outside ``roots``.
    """
    path = plan.stdout_path if which == "output" else plan.stderr_path
    if not path:
        joined = which == "error" and plan.join_files
        raise InvalidArgumentError(
            f"job {job_id} has no {which} file"
            + (" (its stderr is joined into the output file)" if joined else "")
        )
    hostfs.check_within(path, roots, f"{which} file")
    if path == os.devnull:
        return OutputTail(path, "", False, live=False)
    if written:
        data, truncated = _file_tail(path, which, max_bytes)
        return OutputTail(path, data.decode("utf-8", "replace"), truncated, live=False)
    data, truncated = _log_tail(
        engine,
        job_id,
        stdout=which == "output",
        stderr=which == "error" or plan.join_files,
        max_bytes=max_bytes,
        what=f"{which} of job {job_id}",
    )
    return OutputTail(path, data.decode("utf-8", "replace"), truncated, live=True)


FIRST_LOG_LINES = 256
"""Lines of a job's log :func:`_log_tail` asks the engine for first (doubled while fewer
than the bytes wanted)."""
READ_FACTOR = 16
"""Most bytes one log request of :func:`_log_tail` reads, in multiples of the bytes wanted:
what bounds the cost of lines far longer than the tail shown."""


def _log_tail(
    engine: Engine, job_id: str, *, stdout: bool, stderr: bool, max_bytes: int, what: str
) -> tuple[bytes, bool]:
    """The last ``max_bytes`` of the job's log (of the chosen streams), and whether it holds
    more, reading only its end whatever its size: the last :data:`FIRST_LOG_LINES` lines,
    then twice as many each time while they hold fewer than ``max_bytes`` and the log has
    more. No request reads beyond ``READ_FACTOR * max_bytes`` bytes, nor holds more than
    about ``max_bytes``: when the last lines are longer than that, the end shown is the
    longest whole last lines that fit (at worst the last line alone).

    Raises:
        InvalidArgumentError: the log's last line alone is longer than a request may read
            (``what`` names the log); the file holds it once the job has ended.
    """
    budget = READ_FACTOR * max_bytes
    lines = FIRST_LOG_LINES
    shown: bytes | None = None  # the end of the log an earlier request read whole
    while True:
        chunks = engine.logs(job_id, stdout=stdout, stderr=stderr, tail=lines)
        end = _read_end(chunks, max_bytes, budget)
        if not end.complete:
            if shown is not None:
                return shown, True  # the lines before those shown are too long to read
            if lines == 1:
                raise InvalidArgumentError(
                    f"the last line of the {what} is longer than {budget} bytes: too long "
                    "to show before the job has ended and its file is written"
                )
            lines = 1
            continue
        # Engines may count a long line's pieces as lines (Docker: 16 KiB each), so an
        # answer holding the whole log may end fewer line breaks than lines asked for, and
        # one that does not may end a few less too: fewer than half is the whole log.
        whole = end.line_breaks < lines // 2
        if end.size >= max_bytes or whole or lines == 1:
            return end.data, end.size > max_bytes or not whole
        shown = end.data
        lines *= 2


@dataclass(frozen=True)
class _End:
    """What :func:`_read_end` read of a stream of chunks."""

    data: bytes
    """Its last bytes (at most the number wanted)."""
    size: int
    """How many bytes were read."""
    line_breaks: int
    """How many of them were line breaks."""
    complete: bool
    """The stream was read to its end (else it was longer than the read limit)."""


def _read_end(chunks: Iterable[bytes], max_bytes: int, read_limit: int | None = None) -> _End:
    """The last ``max_bytes`` of a stream of chunks, holding at most about that much (plus
    one chunk), reading at most ``read_limit`` bytes (None: all); a generator left unread
    is closed (an engine's closes its connection)."""
    kept: collections.deque[bytes] = collections.deque()
    held = size = line_breaks = 0
    complete = True
    iterator = iter(chunks)
    try:
        for chunk in iterator:
            if read_limit is not None and size + len(chunk) > read_limit:
                complete = False
                break
            size += len(chunk)
            line_breaks += chunk.count(b"\n")
            kept.append(chunk)
            held += len(chunk)
            while len(kept) > 1 and held - len(kept[0]) >= max_bytes:
                held -= len(kept.popleft())
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()
    data = b"".join(kept)
    return _End(data[-max_bytes:] if max_bytes else b"", size, line_breaks, complete)


def _file_tail(path: str, which: str, max_bytes: int) -> tuple[bytes, bool]:
    """The last ``max_bytes`` of the regular file ``path`` (no symlink followed), and
    whether it holds more.

    Raises:
        InvalidArgumentError: it cannot be opened, or it is not a regular file.
    """
    with hostfs.open_for_reading(path, f"{which} file") as file:
        status = os.fstat(file.fileno())
        if not stat.S_ISREG(status.st_mode):
            raise InvalidArgumentError(f"{which} file {path} is not a regular file")
        start = max(0, status.st_size - max_bytes)
        file.seek(start)
        return file.read(max_bytes), start > 0
