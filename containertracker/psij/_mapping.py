"""PSI/J <-> DRMAA2: a ``psij.JobSpec`` as a ``JobTemplate``, a tracker state as a ``JobStatus``.

Pure functions, no engine: the executor (``_executor``) calls them, and the unit tests check
them without one. Every part of a JobSpec is either carried out, refused with
``InvalidJobException`` (a spec that can never run as a container job) or
``SubmitException`` (an MPI launcher, as the issue asks), or documented in the README as
having no container meaning; nothing that changes what the job does is dropped silently.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

from psij import (
    InvalidJobException,
    JobAttributes,
    JobSpec,
    JobState,
    JobStatus,
    ResourceSpecV1,
    SubmitException,
)

from containertracker.models import JobInfo, JobTemplate
from containertracker.models import JobState as TrackerState

__all__ = [
    "ATTRIBUTE_PREFIX",
    "IMAGE_ATTRIBUTE",
    "POST_LAUNCH_PATH",
    "PRE_LAUNCH_PATH",
    "psij_state",
    "spec_to_template",
    "status_from_info",
]

ATTRIBUTE_PREFIX = "containertracker."
"""Custom attributes with this prefix are ours; psij's convention is one prefix per executor."""

IMAGE_ATTRIBUTE = ATTRIBUTE_PREFIX + "image"
"""``custom_attributes[IMAGE_ATTRIBUTE]``: the job's image, overriding the executor's default."""

_EXTENSION_PREFIX = ATTRIBUTE_PREFIX + "extension."
"""``custom_attributes["containertracker.extension.<key>"]``: a JobTemplate extension key
(``user``, ``net``, ``pids-limit``, ...), checked by the tracker like any extension."""

PRE_LAUNCH_PATH = "/.psij/pre_launch.sh"
POST_LAUNCH_PATH = "/.psij/post_launch.sh"
"""Where a spec's pre/post-launch scripts are mounted (read-only) inside the container."""

# The launchers that start one process; the others (mpirun, srun, aprun, jsrun, multiple)
# start several processes over nodes, which one container is not.
_SINGLE_LAUNCHERS = frozenset({None, "single"})

# Sources the pre-launch script, runs the job, sources the post-launch script, and exits
# with the job's status: psij's single launcher does the same (launcher_lib.sh), in bash.
# POSIX sh is enough here, so the image needs /bin/sh only when a script is given.
_WRAPPER = (
    'if [ -n "$_PSIJ_PRE" ]; then . "$_PSIJ_PRE" || exit $?; fi; '
    '"$@"; _psij_rc=$?; '
    'if [ -n "$_PSIJ_POST" ]; then . "$_PSIJ_POST"; fi; '
    "exit $_psij_rc"
)


def spec_to_template(spec: JobSpec, default_image: str) -> JobTemplate:
    """The JobTemplate that runs ``spec`` in a container of ``default_image`` (or the image
    the ``containertracker.image`` custom attribute names).

    Host paths (stdin/stdout/stderr, pre/post-launch scripts, the directory) are made absolute
    against the current directory, as psij's ``local`` executor would see them.

    Raises:
        InvalidJobException: no executable; a resource request one container cannot meet
            (several processes or nodes, exclusive node use); a reservation id; a custom
            attribute of ours that we do not know or whose value is not a string.
        SubmitException: an MPI (or ``multiple``) launcher.
    """
    if spec.launcher not in _SINGLE_LAUNCHERS:
        raise SubmitException(
            f"launcher {spec.launcher!r} is not supported by the containertracker executor: "
            "a job is one container running one process tree; use launcher 'single' "
            "(or run your own MPI inside the image)"
        )
    if not spec.executable:
        raise InvalidJobException("the job spec has no executable")
    fields: dict[str, object] = {
        "remote_command": spec.executable,
        "args": tuple(str(arg) for arg in spec.arguments or ()),
        "job_environment": {key: str(value) for key, value in (spec.environment or {}).items()},
    }
    stage_in: dict[str, str] = {}
    if spec.directory is not None:
        directory = _host_path(spec.directory)
        fields["working_directory"] = str(directory)
        # The job sees the directory's files at the same path; the mount is read-only (the
        # tracker's stage-in), so what the job writes there stays in the container.
        if directory.is_dir():
            stage_in[str(directory)] = str(directory)
    for attr, field in (
        ("stdin_path", "input_path"),
        ("stdout_path", "output_path"),
        ("stderr_path", "error_path"),
    ):
        path = getattr(spec, attr)
        if path is not None:
            fields[field] = str(_host_path(path))
    if spec.pre_launch is not None or spec.post_launch is not None:
        fields.update(_wrapped_command(spec, stage_in))
    if stage_in:
        fields["stage_in_files"] = stage_in
    image, extension = _custom_attributes(spec.attributes, default_image)
    fields["job_category"] = image
    limits: dict[str, str] = {}
    fields.update(_attributes(spec.attributes, limits))
    fields.update(_resources(spec.resources, limits, extension))
    fields["extension"] = extension
    fields["resource_limits"] = limits
    return JobTemplate.model_validate(fields)


def _host_path(path: str | Path) -> Path:
    return Path(path).expanduser().absolute()


def _wrapped_command(spec: JobSpec, stage_in: dict[str, str]) -> dict[str, object]:
    """The command that sources the pre/post-launch scripts around the executable."""
    environment: dict[str, str] = {}
    for script, target, variable in (
        (spec.pre_launch, PRE_LAUNCH_PATH, "_PSIJ_PRE"),
        (spec.post_launch, POST_LAUNCH_PATH, "_PSIJ_POST"),
    ):
        if script is not None:
            stage_in[str(_host_path(script))] = target
            environment[variable] = target
    return {
        "remote_command": "/bin/sh",
        "args": (
            "-c",
            _WRAPPER,
            "psij-launch",
            spec.executable,
            *(str(a) for a in spec.arguments or ()),
        ),
        # The wrapper's variables go after the user's, so a user variable of the same name
        # cannot redirect the scripts.
        "job_environment": {
            **{key: str(value) for key, value in (spec.environment or {}).items()},
            **environment,
        },
    }


def _custom_attributes(
    attributes: JobAttributes | None, default_image: str
) -> tuple[str, dict[str, str]]:
    """The image and the extension keys our custom attributes ask for; other executors'
    attributes (any other prefix) are left alone, as psij's convention has it."""
    image = default_image
    extension: dict[str, str] = {}
    custom: Mapping[str, object] = (attributes.custom_attributes or {}) if attributes else {}
    for key, value in custom.items():
        if not key.startswith(ATTRIBUTE_PREFIX):
            continue
        if not isinstance(value, str):
            raise InvalidJobException(f"custom attribute {key!r} must be a string, got {value!r}")
        if key == IMAGE_ATTRIBUTE:
            image = value
        elif key.startswith(_EXTENSION_PREFIX) and len(key) > len(_EXTENSION_PREFIX):
            extension[key[len(_EXTENSION_PREFIX) :]] = value
        else:
            raise InvalidJobException(
                f"unknown custom attribute {key!r}; the containertracker executor knows "
                f"{IMAGE_ATTRIBUTE!r} and '{_EXTENSION_PREFIX}<key>'"
            )
    return image, extension


def _attributes(attributes: JobAttributes | None, limits: dict[str, str]) -> dict[str, object]:
    if attributes is None:
        return {}
    if attributes.reservation_id:
        raise InvalidJobException("reservations have no meaning for containers (reservation_id)")
    fields: dict[str, object] = {}
    if attributes.queue_name:
        fields["queue_name"] = attributes.queue_name
    if attributes.account:
        fields["accounting_id"] = attributes.account
    duration: timedelta | None = attributes.duration
    if duration is not None and duration < timedelta(0):
        # Not "no limit": a negative walltime is a mistake, and silently running the job
        # unbounded would hide it.
        raise InvalidJobException(f"attributes.duration must not be negative, got {duration}")
    if duration is not None and duration > timedelta(0):
        # WALLCLOCK_TIME is whole seconds; round up so the job gets at least what it asked for.
        limits["WALLCLOCK_TIME"] = str(math.ceil(duration.total_seconds()))
    return fields


def _resources(
    resources: object, limits: dict[str, str], extension: dict[str, str]
) -> dict[str, object]:
    if resources is None:
        return {}
    if not isinstance(resources, ResourceSpecV1):
        raise InvalidJobException(f"unsupported resource spec {type(resources).__name__}")
    if resources.computed_node_count > 1 or resources.computed_process_count > 1:
        raise InvalidJobException(
            "a containertracker job is one process on one host: node_count "
            f"{resources.computed_node_count}, process_count {resources.computed_process_count}"
        )
    if resources.exclusive_node_use:
        raise InvalidJobException("exclusive_node_use cannot be granted to a container")
    fields: dict[str, object] = {}
    if resources.cpu_cores_per_process:
        fields["min_slots"] = fields["max_slots"] = resources.cpu_cores_per_process
    if resources.gpu_cores_per_process:
        extension["gpus"] = str(resources.gpu_cores_per_process)
    if resources.memory:
        limits["VIRTUAL_MEMORY"] = str(resources.memory)
    return fields


def psij_state(state: TrackerState) -> JobState | None:
    """The psij state of a non-terminal tracker state; None for UNSET/UNDETERMINED (no news).

    Held, requeued and queued all read QUEUED (psij has no held state); suspended is still
    ACTIVE (the job holds its resources). DONE and FAILED need the job's info:
    ``status_from_info``.
    """
    if state in (
        TrackerState.QUEUED,
        TrackerState.QUEUED_HELD,
        TrackerState.REQUEUED,
        TrackerState.REQUEUED_HELD,
    ):
        return JobState.QUEUED
    if state in (TrackerState.RUNNING, TrackerState.SUSPENDED):
        return JobState.ACTIVE
    if state is TrackerState.DONE:
        return JobState.COMPLETED
    if state is TrackerState.FAILED:
        return JobState.FAILED
    return None


# The annotations containertracker.core.tracker gives a job ended by a DRMAA2 terminate
# (job_control TERMINATE from any process): running, or before it started.
_TERMINATED_ANNOTATIONS = frozenset({"terminated", "terminated before it started"})


def status_from_info(info: JobInfo, canceled: bool) -> JobStatus:
    """The final JobStatus of a job whose info reads DONE or FAILED.

    ``canceled``: this executor cancelled the job, so FAILED reads CANCELED (a DRMAA2 terminate
    ends a job FAILED; psij has its own state for it). A job another executor or process
    terminated reads CANCELED too: the tracker annotates it (``_TERMINATED_ANNOTATIONS``); a
    wall-clock kill (annotated ``terminated: <reason>``) stays FAILED.
    """
    if info.state is TrackerState.DONE:
        return JobStatus(JobState.COMPLETED, exit_code=info.exit_status or 0)
    if canceled or info.annotation in _TERMINATED_ANNOTATIONS:
        return JobStatus(JobState.CANCELED, exit_code=info.exit_status, message="canceled")
    reason = info.annotation or info.sub_state
    message = f"exit status {info.exit_status}" if info.exit_status is not None else "failed"
    if info.terminating_signal:
        message += f", signal {info.terminating_signal}"
    if reason:
        message += f": {reason}"
    return JobStatus(JobState.FAILED, exit_code=info.exit_status, message=message)
