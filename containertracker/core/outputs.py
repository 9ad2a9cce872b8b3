"""A job's host files: checked against the allowed roots, created at submission (once its
container exists; removed again if the submission is rolled back), written
(streamed, never through a symlink) when the job ends, and re-checked before it starts.

The paths come from the job's :class:`~containertracker.core.labels.Plan`, where
:func:`~containertracker.core.convert.template_to_spec` put them resolved, one task at a time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import BinaryIO

from loguru import logger

from containertracker.core import hostfs
from containertracker.core.convert import SubmitContext, host_paths
from containertracker.core.engine import Engine
from containertracker.core.plan import Plan
from containertracker.errors import ContainerTrackerError
from containertracker.models import JobTemplate

__all__ = [
    "check",
    "check_tasks",
    "open_input",
    "prepare",
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
