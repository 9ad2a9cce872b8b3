"""JobTemplate -> container spec, and container record -> DRMAA2 state and JobInfo (pure).

Every JobTemplate field is either carried out or refused here; nothing is silently ignored.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from containertracker.core import extensions, hostfs, labels
from containertracker.core.engine import (
    ENDED_STATUSES,
    Bind,
    ContainerRecord,
    ContainerSpec,
    EngineInfo,
    Ulimit,
)
from containertracker.core.plan import HostPaths, Plan
from containertracker.errors import InvalidArgumentError, UnsupportedAttributeError
from containertracker.models import CPU, OS, JobInfo, JobState, JobTemplate

__all__ = [
    "RESOURCE_LIMITS",
    "ResourceLimits",
    "SubmitContext",
    "container_state",
    "host_paths",
    "job_info_from_record",
    "needs_machines",
    "normalize_resource_limits",
    "parse_pids_limit",
    "resource_limits",
    "template_host_paths",
    "template_to_spec",
    "template_ulimits",
]

_INDEX_PLACEHOLDER = "$DRMAA2_INDEX$"
_HOME_DIR_PLACEHOLDER = "$DRMAA2_HOME_DIR$"
_WORKING_DIR_PLACEHOLDER = "$DRMAA2_WORKING_DIR$"
_CONTAINER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
_ENV_KEY = re.compile(r"^[^=\0]+$")

# DRMAA2 resource limit names -> Docker ulimit names (sizes in bytes, times in seconds).
_ULIMIT_OF = {
    "CORE_FILE_SIZE": "core",
    "CPU_TIME": "cpu",
    "DATA_SIZE": "data",
    "FILE_SIZE": "fsize",
    "OPEN_FILES": "nofile",
    "STACK_SIZE": "stack",
}
_SIZE_LIMITS = {"CORE_FILE_SIZE", "DATA_SIZE", "FILE_SIZE", "STACK_SIZE", "VIRTUAL_MEMORY"}
RESOURCE_LIMITS = frozenset([*_ULIMIT_OF, "VIRTUAL_MEMORY", "WALLCLOCK_TIME"])
EXTENSION_KEYS = frozenset(
    [
        "user",
        "exposedPorts",
        "restart",
        "privileged",
        "net",
        "ipc",
        "uts",
        "pid",
        "rm",
        "shm-size",
        "ulimit",
        "pids-limit",
        "gpus",
        "entrypoint",
    ]
)


@dataclass(frozen=True)
class SubmitContext:
    """Facts about the submission that the conversion needs (injected: no I/O here)."""

    session: str
    engine: EngineInfo
    now: datetime
    cwd: str
    home: str
    submission_host: str
    owner: str
    task_id: int | None = None
    array_id: str | None = None
    max_parallel: int = 0
    machines: tuple[EngineInfo, ...] = ()
    """The machines the engine runs jobs on (:meth:`Engine.machines`), when the template
    asks for placement (:func:`needs_machines`); empty: ``engine``'s host alone."""
    stop_grace: float | None = None
    """The tracker's stop grace (seconds), for engines that fix it at creation."""


def _expand_placeholders(value: str, ctx: SubmitContext, *, host_side: bool, what: str) -> str:
    """``value`` with its DRMAA2 placeholders replaced: the one place they are expanded.

    ``$DRMAA2_INDEX$`` becomes the task id, anywhere. ``$DRMAA2_HOME_DIR$`` and
    ``$DRMAA2_WORKING_DIR$`` become the submitter's home and working directory, in host paths
    only (``host_side``): inside the container they would name directories of another
    machine. Whoever needs the result later (the ``logs`` command, say) reads it from the
    job's plan (:func:`job_info_from_record`), never expands again.

    Raises:
        InvalidArgumentError: the index outside an array job, or a directory placeholder
            outside a host path (the message names the field, ``what``).
    """
    if _INDEX_PLACEHOLDER in value:
        if ctx.task_id is None:
            raise InvalidArgumentError(
                f"{what} uses {_INDEX_PLACEHOLDER}, which is only defined for array jobs "
                "(add_array_job)"
            )
        value = value.replace(_INDEX_PLACEHOLDER, str(ctx.task_id))
    for placeholder, replacement in (
        (_HOME_DIR_PLACEHOLDER, ctx.home),
        (_WORKING_DIR_PLACEHOLDER, ctx.cwd),
    ):
        if placeholder in value:
            if not host_side:
                raise InvalidArgumentError(
                    f"{what} uses {placeholder}, which is only substituted in host paths "
                    "(input/output/error paths and stage-in/out host paths)"
                )
            value = value.replace(placeholder, replacement)
    return value


def _resolved_host_path(value: str, ctx: SubmitContext, what: str) -> str:
    """The host path ``value`` names for this task: every placeholder expanded, then
    resolved (symlinks and ``..``, as the kernel would) to the one path that is checked,
    stored in the plan and used from then on (see :mod:`containertracker.core.hostfs`).

    Raises:
        InvalidArgumentError: a misplaced placeholder, or a NUL byte in the path.
    """
    path = _expand_placeholders(value, ctx, host_side=True, what=what)
    if "\0" in path:
        raise InvalidArgumentError(f"{what} {path!r} contains a NUL byte")
    return hostfs.resolve(path, ctx.cwd)


def template_host_paths(jt: JobTemplate) -> HostPaths:
    """The host paths ``jt`` names, as it gives them (placeholders unexpanded): the one
    reading of which template fields are host paths, for the conversion (which resolves
    them, :func:`host_paths`) and a server's policy (which may refuse them) alike.

    The error path is left out when stderr is joined into the output file: the job never
    uses it.
    """
    return HostPaths(
        input_path=jt.input_path or None,
        output_path=jt.output_path or None,
        error_path=None if jt.join_files else (jt.error_path or None),
        stage_in={host: host for host in jt.stage_in_files},
        stage_out=dict(jt.stage_out_files),
    )


def _resolved_host_paths(jt: JobTemplate, ctx: SubmitContext) -> HostPaths:
    """:func:`template_host_paths` for the task of ``ctx``, each resolved once
    (:func:`_resolved_host_path`).

    Raises:
        InvalidArgumentError: a misplaced placeholder, or a NUL byte in a path.
    """
    return template_host_paths(jt).replaced(lambda path, what: _resolved_host_path(path, ctx, what))


def host_paths(jt: JobTemplate, ctx: SubmitContext) -> list[tuple[str, str]]:
    """Every host path ``jt`` names for the task of ``ctx``, resolved as
    :func:`template_to_spec` puts it in the plan, with the field that named it.

    Raises:
        InvalidArgumentError: a misplaced placeholder, or a NUL byte in a path.
    """
    return _resolved_host_paths(jt, ctx).named()


def _timestamp(t: datetime | None) -> float | None:
    return None if t is None else t.timestamp()


def _refuse_nul(value: object, where: str = "JobTemplate") -> None:
    """Refuse a NUL character in any text of the template (``value``: its fields as
    ``model_dump`` gives them): no command, argument, path, variable or label can hold one,
    and an engine would answer it with a server error (Docker: 500).

    Raises:
        InvalidArgumentError: naming the field.
    """
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidArgumentError(f"{where} contains a NUL character")
    elif isinstance(value, dict):
        for key, item in value.items():
            _refuse_nul(key, f"{where} (a key)")
            _refuse_nul(item, f"{where}[{key!r}]" if where != "JobTemplate" else key)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            _refuse_nul(item, where)


def _refuse_unsupported(jt: JobTemplate) -> None:
    unsupported = {
        "email": bool(jt.email),
        "email_on_started": jt.email_on_started,
        "email_on_terminated": jt.email_on_terminated,
        "reservation_id": bool(jt.reservation_id),
        "rerunnable": jt.rerunnable,
        "priority": jt.priority != 0,
    }
    hints = {
        "rerunnable": " (use the 'restart' extension for automatic restarts)",
        "reservation_id": " (container engines have no advance reservations)",
    }
    for name, is_set in unsupported.items():
        if is_set:
            raise UnsupportedAttributeError(
                f"JobTemplate.{name} is not supported by container trackers{hints.get(name, '')}"
                "; leave it unset"
            )


def needs_machines(jt: JobTemplate) -> bool:
    """Whether converting ``jt`` needs the engine's machines (:attr:`SubmitContext.machines`):
    it asks for a machine, an architecture, an OS, slots or memory."""
    return bool(
        jt.candidate_machines
        or jt.machine_os
        or jt.machine_arch
        or jt.min_phys_memory
        or jt.min_slots
        or jt.max_slots
    )


def _where(machines: tuple[EngineInfo, ...]) -> str:
    """How a message names the machines checked against."""
    if len(machines) == 1:
        return (
            f"the engine's host {machines[0].host_name!r}, the only machine this tracker runs "
            "jobs on"
        )
    return f"any machine of the engine ({', '.join(m.host_name for m in machines)})"


def _eligible(
    what: str, machines: tuple[EngineInfo, ...], fits: Callable[[EngineInfo], bool]
) -> tuple[EngineInfo, ...]:
    """The ``machines`` that ``fits``.

    Raises:
        InvalidArgumentError: none does (the message starts with ``what``, the field's ask).
    """
    eligible = tuple(m for m in machines if fits(m))
    if not eligible:
        raise InvalidArgumentError(f"{what} does not match {_where(machines)}")
    return eligible


def _eligible_machines(jt: JobTemplate, machines: tuple[EngineInfo, ...]) -> tuple[EngineInfo, ...]:
    """The machines that can run ``jt``: among ``machines``, those of its candidate
    machines, OS and architecture, with at least its ``min_phys_memory``.

    Raises:
        InvalidArgumentError: a malformed field, or no machine fits (the message names the
            field that excluded the last ones).
    """
    if jt.candidate_machines:
        machines = _eligible(
            f"candidate_machines {list(jt.candidate_machines)}",
            machines,
            lambda m: m.host_name in jt.candidate_machines,
        )
    if jt.machine_os:
        try:
            wanted_os = OS.from_drmaa2_name(jt.machine_os)
        except ValueError:
            raise InvalidArgumentError(
                f"machine_os {jt.machine_os!r} is not a DRMAA2 OS name"
            ) from None
        actual_os = ", ".join(sorted({m.os_type for m in machines}))
        machines = _eligible(
            f"machine_os {jt.machine_os} (OS {actual_os})",
            machines,
            lambda m: OS.from_engine(m.os_type) == wanted_os,
        )
    if jt.machine_arch:
        try:
            wanted_cpu = CPU.from_drmaa2_name(jt.machine_arch)
        except ValueError:
            raise InvalidArgumentError(
                f"machine_arch {jt.machine_arch!r} is not a DRMAA2 CPU name (e.g. x64, ARM64)"
            ) from None
        actual = sorted(
            {f"{CPU.from_machine(m.architecture).drmaa2_name} ({m.architecture})" for m in machines}
        )
        machines = _eligible(
            f"machine_arch {jt.machine_arch} (architecture {', '.join(actual)})",
            machines,
            lambda m: CPU.from_machine(m.architecture) == wanted_cpu,
        )
    if jt.min_phys_memory < 0:
        raise InvalidArgumentError("min_phys_memory must not be negative")
    if jt.min_phys_memory:
        largest = max(m.memory for m in machines) // 1024
        machines = _eligible(
            f"min_phys_memory {jt.min_phys_memory} KiB (largest memory {largest} KiB)",
            machines,
            lambda m: jt.min_phys_memory * 1024 <= m.memory,
        )
    return machines


def _slots(jt: JobTemplate, machines: tuple[EngineInfo, ...]) -> int | None:
    if jt.min_slots < 0 or jt.max_slots < 0:
        raise InvalidArgumentError("min_slots and max_slots must not be negative")
    if jt.max_slots and jt.min_slots > jt.max_slots:
        raise InvalidArgumentError(
            f"min_slots {jt.min_slots} is larger than max_slots {jt.max_slots}"
        )
    slots = jt.max_slots or jt.min_slots
    cpus = max(m.cpus for m in machines)
    if slots > cpus:
        raise InvalidArgumentError(
            f"{slots} slots requested but the engine's largest eligible host has {cpus} CPUs"
        )
    return slots or None


def _placement(
    eligible: tuple[EngineInfo, ...], machines: tuple[EngineInfo, ...]
) -> tuple[str, ...] | None:
    """The host names a job may run on, or None when every machine may run it."""
    if len(eligible) == len(machines):
        return None
    return tuple(m.host_name for m in eligible)


_INT64_MAX = 2**63 - 1
"""The engines' (Go's) largest limit: anything beyond would overflow on their side."""


@dataclass(frozen=True)
class ResourceLimits:
    """A template's ``resource_limits`` as the container gets them."""

    ulimits: tuple[tuple[str, Ulimit], ...] = ()
    """The ulimits, each with the field that asks for it (``resource limit OPEN_FILES``)."""
    memory: int | None = None
    """VIRTUAL_MEMORY in bytes (the container's memory limit); None: none asked for."""
    wallclock: float | None = None
    """WALLCLOCK_TIME in seconds; None: none asked for."""


def normalize_resource_limits(limits: Mapping[str, str]) -> dict[str, str]:
    """``limits`` under their DRMAA2 names (keys are case-insensitive: ``virtual_memory`` is
    VIRTUAL_MEMORY). The one place keys are read: every reader (the conversion, a server's
    policy) sees the same limits.

    Raises:
        UnsupportedAttributeError: a key that is no DRMAA2 resource limit we support.
        InvalidArgumentError: two keys naming one limit (``VIRTUAL_MEMORY``, ``virtual_memory``):
            which one holds would be a matter of order.
    """
    normalized: dict[str, str] = {}
    given: dict[str, str] = {}
    for raw_key, value in limits.items():
        key = raw_key.upper()
        if key not in RESOURCE_LIMITS:
            raise UnsupportedAttributeError(
                f"resource limit {raw_key!r} is not supported; use one of "
                f"{', '.join(sorted(RESOURCE_LIMITS))}"
            )
        if key in normalized:
            raise InvalidArgumentError(
                f"resource limits {given[key]!r} and {raw_key!r} both set {key}; set it once"
            )
        normalized[key], given[key] = value, raw_key
    return normalized


def resource_limits(limits: Mapping[str, str]) -> ResourceLimits:
    """Parse ``limits`` (see :func:`normalize_resource_limits`): sizes like ``64m`` for
    CORE_FILE_SIZE, DATA_SIZE, FILE_SIZE, STACK_SIZE and VIRTUAL_MEMORY; a count for
    OPEN_FILES; seconds for CPU_TIME (rounded up: a ulimit counts whole seconds) and
    WALLCLOCK_TIME. Every limit is positive and finite: none of them means "unlimited"
    (a memory limit of 0 would, to the engine).

    Raises:
        UnsupportedAttributeError: an unknown key.
        InvalidArgumentError: a key set twice, a malformed value, a value <= 0 or beyond
            what the engines accept (2**63 - 1).
    """
    ulimits: list[tuple[str, Ulimit]] = []
    memory: int | None = None
    wallclock: float | None = None
    for key, value in normalize_resource_limits(limits).items():
        what = f"resource limit {key}"
        if key in _SIZE_LIMITS:
            amount = extensions.parse_size(what, value)
        else:
            try:
                number = float(value)
            except ValueError:
                number = math.nan
            unit = "seconds" if "TIME" in key else "a whole number of files"
            if not (math.isfinite(number) and number > 0) or (
                key == "OPEN_FILES" and not number.is_integer()
            ):
                raise InvalidArgumentError(
                    f"{what} must be a positive number ({unit}), not {value!r}"
                )
            if key == "WALLCLOCK_TIME":
                wallclock = number
                continue
            amount = math.ceil(number)
        if amount <= 0:
            raise InvalidArgumentError(f"{what} must be positive, not {value!r}")
        if amount > _INT64_MAX:
            raise InvalidArgumentError(f"{what} {value!r} is beyond {_INT64_MAX}")
        if key == "VIRTUAL_MEMORY":
            memory = amount
        else:
            ulimits.append((what, Ulimit(_ULIMIT_OF[key], amount, amount)))
    return ResourceLimits(tuple(ulimits), memory, wallclock)


def template_ulimits(jt: JobTemplate) -> list[tuple[str, Ulimit]]:
    """Every ulimit the container of ``jt`` gets, with the field that asks for it: the
    resource limits that are ulimits (CORE_FILE_SIZE, CPU_TIME, DATA_SIZE, FILE_SIZE,
    OPEN_FILES, STACK_SIZE), then the ``ulimit`` extension. Whoever bounds ulimits (a
    server's policy) checks this list: it is exactly what the conversion passes on.

    Raises:
        UnsupportedAttributeError: an unknown resource limit key.
        InvalidArgumentError: a malformed limit; one ulimit asked for twice (by both sources,
            or twice in the extension); a value below -1 (-1 is unlimited, only in the
            extension) or beyond 2**63 - 1.
    """
    return _named_ulimits(resource_limits(jt.resource_limits), jt.extension)


def _named_ulimits(
    limits: ResourceLimits, extension: Mapping[str, str]
) -> list[tuple[str, Ulimit]]:
    """:func:`template_ulimits` from already parsed resource limits."""
    named = list(limits.ulimits)
    text = extension.get("ulimit", "")
    if text:
        named += [(f"extension ulimit {u.name}", u) for u in extensions.parse_ulimits(text)]
    seen: dict[str, str] = {}
    for what, limit in named:
        if limit.name in seen:
            raise InvalidArgumentError(
                f"ulimit {limit.name} is asked for twice ({seen[limit.name]} and {what}); ask once"
            )
        seen[limit.name] = what
        if not all(-1 <= value <= _INT64_MAX for value in (limit.soft, limit.hard)):
            raise InvalidArgumentError(
                f"{what} must be -1 (unlimited) or from 0 to {_INT64_MAX}, not "
                f"{limit.soft}:{limit.hard}"
            )
    return named


def template_to_spec(jt: JobTemplate, ctx: SubmitContext) -> tuple[ContainerSpec, Plan]:
    """Turn a template into a container spec and the plan around it.

    Every host path is resolved here, once (:func:`host_paths`); the plan holds the
    resolved paths, and whoever checks or uses them later reads them from there.

    Raises:
        InvalidArgumentError: a field has a wrong value (the message names it and says why).
        UnsupportedAttributeError: a field is set that container trackers cannot honour.
    """
    if not jt.job_category:
        raise InvalidArgumentError(
            "JobCategory must be set to container image name (see list_job_categories())"
        )
    _refuse_nul(jt.model_dump())
    _refuse_unsupported(jt)
    machines = ctx.machines or (ctx.engine,)
    eligible = _eligible_machines(jt, machines)
    slots = _slots(jt, eligible)
    limits = resource_limits(jt.resource_limits)
    ulimits = tuple(limit for _, limit in _named_ulimits(limits, jt.extension))
    extension_options = _extension_options(jt.extension)
    paths = _resolved_host_paths(jt, ctx)
    binds = _stage_in_binds(jt, ctx, paths)
    plan = _plan(jt, ctx, paths, binds, limits.wallclock)
    restart_policy = extension_options.get("restart_policy")
    if isinstance(restart_policy, str):
        plan = dataclasses.replace(plan, restart_policy=restart_policy)
    if extension_options.get("auto_remove") and (plan.needs_finalizing or ctx.array_id):
        raise InvalidArgumentError(
            "the rm extension removes the container at exit, so output_path, error_path, "
            "stage_out_files and array jobs cannot be used with it"
        )
    spec = ContainerSpec(
        image=jt.job_category,
        labels=_labels(jt, ctx, plan),
        command=_command(jt, ctx),
        environment=_environment(jt, ctx),
        name=_container_name(jt, ctx),
        working_dir=_working_dir(jt, ctx),
        binds=binds,
        nano_cpus=slots * 1_000_000_000 if slots else None,
        mem_limit=limits.memory,
        placement=_placement(eligible, machines),
        cpu_reservation=jt.min_slots * 1_000_000_000 if jt.min_slots else None,
        memory_reservation=jt.min_phys_memory * 1024 if jt.min_phys_memory else None,
        stop_grace=ctx.stop_grace,
        ulimits=ulimits,
        open_stdin=plan.stdin_path is not None,
        # Under an init, SIGTERM reaches the command (terminate takes effect at once); in a
        # shared PID namespace (the pid extension) the command is not PID 1 anyway.
        init=not extension_options.get("pid_mode"),
        **extension_options,  # type: ignore[arg-type]
    )
    return spec, plan


def _command(jt: JobTemplate, ctx: SubmitContext) -> tuple[str, ...] | None:
    """The container's command: ``remote_command`` and ``args`` (the index expanded in
    the args); None (the image's default) when neither is given, the args alone when only
    they are.

    Raises:
        InvalidArgumentError: a placeholder the args may not use.
    """
    args = tuple(_expand_placeholders(a, ctx, host_side=False, what="args") for a in jt.args)
    if jt.remote_command:
        return (jt.remote_command, *args)
    return args or None


def _environment(jt: JobTemplate, ctx: SubmitContext) -> dict[str, str]:
    """The container's environment: ``job_environment``, plus ``TASK_ID`` for an array
    task (as in drmaa2os), the index expanded in the values.

    Raises:
        InvalidArgumentError: a key that is no variable name, or a placeholder a value may
            not use.
    """
    environment = dict(jt.job_environment)
    for key in environment:
        if not _ENV_KEY.match(key):
            raise InvalidArgumentError(f"job_environment key {key!r} is not a valid name")
    if ctx.task_id is not None:
        environment["TASK_ID"] = str(ctx.task_id)
    return {
        key: _expand_placeholders(value, ctx, host_side=False, what=f"job_environment[{key}]")
        for key, value in environment.items()
    }


def _working_dir(jt: JobTemplate, ctx: SubmitContext) -> str | None:
    """The container's working directory (None: the image's), the index expanded.

    Raises:
        InvalidArgumentError: not an absolute container path, or a placeholder it may not use.
    """
    working_dir = _expand_placeholders(
        jt.working_directory, ctx, host_side=False, what="working_directory"
    )
    if working_dir and not working_dir.startswith("/"):
        raise InvalidArgumentError(
            f"working_directory {working_dir!r} must be an absolute path inside the container"
        )
    return working_dir or None


def _container_name(jt: JobTemplate, ctx: SubmitContext) -> str | None:
    """The container's name: ``job_name``, suffixed ``-<task id>`` for an array task (None:
    the engine picks one).

    Raises:
        InvalidArgumentError: not a valid container name.
    """
    if not jt.job_name:
        return None
    name = jt.job_name if ctx.task_id is None else f"{jt.job_name}-{ctx.task_id}"
    if not _CONTAINER_NAME.match(name):
        raise InvalidArgumentError(
            f"job_name {jt.job_name!r} is not a valid container name ([a-zA-Z0-9][a-zA-Z0-9_.-]*)"
        )
    return name


def _stage_in_binds(jt: JobTemplate, ctx: SubmitContext, paths: HostPaths) -> tuple[Bind, ...]:
    """A read-only bind mount per ``stage_in_files`` entry, from its resolved source in
    ``paths`` to its container path (the index expanded).

    Raises:
        InvalidArgumentError: a source that does not exist, or a destination that is not an
            absolute container path (or uses a placeholder it may not).
    """
    binds = []
    for host, container in jt.stage_in_files.items():
        source = paths.stage_in[host]
        if not os.path.exists(source):
            raise InvalidArgumentError(
                f"stage_in_files source {source!r} does not exist on this host"
            )
        destination = _expand_placeholders(
            container, ctx, host_side=False, what=f"stage_in_files[{host}]"
        )
        if not destination.startswith("/"):
            raise InvalidArgumentError(
                f"stage_in_files destination {destination!r} must be an absolute container path"
            )
        # Stage-in is input: read-only, so a job cannot change the host through it.
        binds.append(Bind(source, destination, read_only=True))
    return tuple(binds)


def _stage_out(ctx: SubmitContext, paths: HostPaths) -> dict[str, str]:
    """Container path (the index expanded) -> resolved host path, per ``stage_out_files``
    entry of ``paths``.

    Raises:
        InvalidArgumentError: a container path that is not absolute (or uses a placeholder
            it may not).
    """
    stage_out = {}
    for container, host_path in paths.stage_out.items():
        source = _expand_placeholders(
            container, ctx, host_side=False, what=f"stage_out_files[{container}]"
        )
        if not source.startswith("/"):
            raise InvalidArgumentError(
                f"stage_out_files source {source!r} must be an absolute container path"
            )
        stage_out[source] = host_path
    return stage_out


def _plan(
    jt: JobTemplate,
    ctx: SubmitContext,
    paths: HostPaths,
    binds: tuple[Bind, ...],
    wallclock_limit: float | None,
) -> Plan:
    """What must happen around the container: its hold, start and end times, and its host
    files (``paths`` and the stage-in ``binds``, resolved already).

    Raises:
        InvalidArgumentError: the input path is not a file; the deadline has passed or is not
            after the start time; a bad stage-out container path.
    """
    if paths.input_path and not os.path.isfile(paths.input_path):
        raise InvalidArgumentError(f"input_path {paths.input_path!r} is not a readable file")
    start_at, deadline = _start_and_deadline(jt, ctx.now)
    return Plan(
        hold=jt.submit_as_hold,
        start_at=start_at,
        deadline=deadline,
        wallclock_limit=wallclock_limit,
        stdin_path=paths.input_path,
        stdout_path=paths.output_path,
        stderr_path=paths.error_path,
        join_files=jt.join_files,
        stage_out=_stage_out(ctx, paths),
        stage_in=[bind.host_path for bind in binds],
    )


def _start_and_deadline(jt: JobTemplate, now: datetime) -> tuple[float | None, float | None]:
    """The job's start time (None: now, also for a start time already past) and deadline
    (None: none), as epoch seconds.

    Raises:
        InvalidArgumentError: the deadline has passed, or is not after the start time.
    """
    start_at = _timestamp(jt.start_time)
    deadline = _timestamp(jt.deadline_time)
    if deadline is not None and deadline <= now.timestamp():
        raise InvalidArgumentError(f"deadline_time {jt.deadline_time} has already passed")
    if start_at is not None and deadline is not None and start_at >= deadline:
        raise InvalidArgumentError("start_time must be before deadline_time")
    return (start_at if start_at is not None and start_at > now.timestamp() else None), deadline


def _labels(jt: JobTemplate, ctx: SubmitContext, plan: Plan) -> dict[str, str]:
    """The container's labels: its session, the template (a task's with its ``TASK_ID``,
    as drmaa2os stores it), the plan, where and by whom it was submitted, its accounting
    id and queue, and for an array task its array, index and the array's ``max_parallel``."""
    stored_template = jt
    if ctx.task_id is not None:
        task_environment = {**jt.job_environment, "TASK_ID": str(ctx.task_id)}
        stored_template = jt.model_copy(update={"job_environment": task_environment})
    job_labels = {
        labels.SESSION: ctx.session,
        labels.TEMPLATE: stored_template.to_label(),
        labels.MANAGED: labels.SCHEMA_VERSION,
        labels.PLAN: plan.to_label(),
        labels.SUBMISSION_HOST: ctx.submission_host,
        labels.OWNER: ctx.owner,
    }
    if jt.accounting_id:
        job_labels[labels.ACCOUNTING_ID] = jt.accounting_id
    if jt.queue_name:
        job_labels[labels.QUEUE] = jt.queue_name
    if ctx.array_id is not None:
        job_labels[labels.ARRAY_ID] = ctx.array_id
        job_labels[labels.TASK_ID] = str(ctx.task_id)
        job_labels[labels.MAX_PARALLEL] = str(ctx.max_parallel)
    return job_labels


def parse_pids_limit(value: str) -> int:
    """The ``pids-limit`` extension: most processes (threads count) the job may have at once.

    Raises:
        InvalidArgumentError: not a positive integer.
    """
    text = value.strip()
    if not text.isdigit() or int(text) <= 0:
        raise InvalidArgumentError(f"pids-limit must be a positive integer, not {value!r}")
    return int(text)


def _extension_options(extension: Mapping[str, str]) -> dict[str, object]:
    """The Go Docker tracker's extension keys (reference 3.3), parsed strictly; ``ulimit``
    is :func:`template_ulimits`'s."""
    unknown = sorted(set(extension) - EXTENSION_KEYS)
    if unknown:
        raise UnsupportedAttributeError(
            f"unknown extension key(s) {', '.join(unknown)}; supported: "
            f"{', '.join(sorted(EXTENSION_KEYS))}"
        )
    options: dict[str, object] = {}
    for key, value in extension.items():
        match key:
            case "user":
                options["user"] = value
            case "exposedPorts":
                exposed, bindings = extensions.parse_ports(value)
                options["exposed_ports"] = tuple(exposed)
                options["port_bindings"] = tuple(bindings)
            case "restart":
                options["restart_policy"] = extensions.parse_restart(value)
            case "privileged":
                options["privileged"] = extensions.parse_bool(key, value)
            case "rm":
                options["auto_remove"] = extensions.parse_bool(key, value)
            case "net":
                options["network_mode"] = value
            case "ipc" | "uts" | "pid":
                options[f"{key}_mode"] = value
            case "shm-size":
                options["shm_size"] = extensions.parse_size("shm-size", value)
            case "ulimit":
                pass  # with the resource limits that are ulimits: template_ulimits
            case "pids-limit":
                options["pids_limit"] = parse_pids_limit(value)
            case "gpus":
                options["gpus"] = extensions.parse_gpus(value)
            case "entrypoint":
                if value.split():
                    options["entrypoint"] = tuple(value.split())
    return options


def container_state(
    record_status: str,
    exit_code: int,
    oom_killed: bool,
    *,
    held: bool,
    failure: str,
    engine_message: str = "",
) -> tuple[JobState, str]:
    """The DRMAA2 state of a container, from its status and our hold/failure marks.

    ``failure`` is a reason recorded by a tracker (cancelled before start, a start or
    stage-out error); it makes the job FAILED whatever the container says.
    ``engine_message`` is the engine's word on a job it has yet to place and start
    (``pending``): its sub-state (why it waits).
    """
    if failure:
        return JobState.FAILED, failure
    match record_status:
        case "created":
            return (JobState.QUEUED_HELD, "held") if held else (JobState.QUEUED, "")
        case "pending":
            return JobState.QUEUED, engine_message or "waiting for the engine to place and start it"
        case "running":
            return JobState.RUNNING, ""
        case "paused":
            return JobState.SUSPENDED, ""
        case "restarting":
            return JobState.REQUEUED, "restarting"
        case "exited" | "dead":
            if oom_killed:
                return JobState.FAILED, "out of memory"
            return (JobState.DONE, "") if exit_code == 0 else (JobState.FAILED, "")
        case _:
            return JobState.UNDETERMINED, record_status


_SIGNAL_NAMES = {1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 6: "SIGABRT", 9: "SIGKILL", 15: "SIGTERM"}


def job_info_from_record(
    record: ContainerRecord,
    state: JobState,
    sub_state: str,
    host_name: str,
    now: datetime | None = None,
) -> JobInfo:
    """A JobInfo from an inspected container and its already-derived state.

    Its times never run backwards: submission <= dispatch <= finish (see :func:`_in_order`).
    Its ``extension`` has drmaa2os' ``workingdir``, ``commandline`` and ``category``; an
    array task's ``array_id`` and ``task_id``; and the host files the job's output goes to,
    ``output_path`` and ``error_path`` (each when set, and no error path when stderr is
    joined into the output file): the paths its tracker resolved at submission and writes,
    every placeholder expanded, so a reader (on the tracker's host) never expands them again.
    """
    job_labels = record.labels
    # A job can be FAILED before its container has ended (terminated: its stop is under way,
    # or it never started): its exit status and end are only known once the container ended.
    finished = state.terminal and record.status in ENDED_STATUSES
    exit_status = record.exit_code if finished else None
    submitted, dispatched, ended = _in_order(
        record.created, record.started_at, record.finished_at if finished else None
    )
    return JobInfo(
        id=record.id,
        exit_status=exit_status,
        terminating_signal=_terminating_signal(exit_status),
        annotation=record.error or ("killed: out of memory" if record.oom_killed else ""),
        state=state,
        sub_state=sub_state,
        allocated_machines=(record.node or host_name,) if record.started_at else None,
        submission_machine=job_labels.get(labels.SUBMISSION_HOST, ""),
        job_owner=job_labels.get(labels.OWNER, record.user),
        slots=max(1, record.nano_cpus // 1_000_000_000),
        queue_name=job_labels.get(labels.QUEUE, ""),
        wallclock_time=_wallclock(state, dispatched, ended, now),
        submission_time=submitted,
        dispatch_time=dispatched,
        finish_time=ended,
        extension=_info_extension(record),
    )


def _terminating_signal(exit_status: int | None) -> str:
    """The signal an exit status above 128 stands for (``SIGTERM``), else ``""``."""
    if exit_status is None or exit_status <= 128:
        return ""
    return _SIGNAL_NAMES.get(exit_status - 128, f"SIG{exit_status - 128}")


def _wallclock(
    state: JobState, dispatched: datetime | None, ended: datetime | None, now: datetime | None
) -> timedelta | None:
    """How long the job has run: start to end, or start to ``now`` (default: the current
    time) while it runs or is suspended; None before its start."""
    if dispatched is None:
        return None
    if ended is not None:
        return ended - dispatched
    if state in (JobState.RUNNING, JobState.SUSPENDED):
        return max((now or datetime.now(UTC)) - dispatched, timedelta(0))
    return None


def _info_extension(record: ContainerRecord) -> dict[str, str]:
    """The ``extension`` of a job's JobInfo (see :func:`job_info_from_record`)."""
    job_labels = record.labels
    plan = Plan.from_labels(job_labels)
    extension = {
        "workingdir": record.working_dir,
        "commandline": " ".join(record.command),
        "category": record.image,
    }
    # Array tasks say which array they belong to (the Go trackers cannot tell).
    for key, label in (("array_id", labels.ARRAY_ID), ("task_id", labels.TASK_ID)):
        if label in job_labels:
            extension[key] = job_labels[label]
    for key, path in (("output_path", plan.stdout_path), ("error_path", plan.stderr_path)):
        if path:
            extension[key] = path
    return extension


def _in_order(
    submitted: datetime | None, dispatched: datetime | None, finished: datetime | None
) -> tuple[datetime | None, datetime | None, datetime | None]:
    """The engine's creation, start and finish times made monotone (None: not yet).

    Why: an engine stamps StartedAt after launching the process, so for a job that exits at
    once it can read a millisecond after FinishedAt. The creation and exit stamps are taken
    at the events themselves, so the start is what moves (into [submitted, finished]); a
    finish before the creation (a clock step) is moved up to it.
    """
    if submitted is not None and finished is not None:
        finished = max(finished, submitted)
    if dispatched is not None:
        if submitted is not None:
            dispatched = max(dispatched, submitted)
        if finished is not None:
            dispatched = min(dispatched, finished)
    return submitted, dispatched, finished
