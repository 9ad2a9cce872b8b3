"""DRMAA2 data model (JobState, CPU, OS, JobTemplate, JobInfo, Machine) and its wire formats.

The types mirror ``github.com/dgruber/drmaa2interface`` with snake_case Python field names.
Three encodings are supported, each byte- or key-compatible with the Go project drmaa2os.
Each model declares its Go struct once, as a field table (``_go``); ``containertracker.gojson``
implements Go's ``encoding/json`` rules for any such table:

* Go *native* JSON (``to_go_json``/``from_go_json``, ``to_go_dict``/``from_go_dict``): what the
  Go structs produce with ``encoding/json`` - camelCase keys in struct order, ``omitempty``
  rules, nested ``{"extensionList": {...}}`` extension, zero times ``0001-01-01T00:00:00Z``,
  sorted map keys, HTML-safe string escaping and compact separators.
* The *remote* (OpenAPI) JSON shapes of the drmaa2os remote JobTracker
  (``to_remote_dict``/``from_remote_dict``): every key present, flat extension map, lower-camel
  state names, wallclock time in whole seconds.
* The Docker label ``drmaa2jobtemplate``: base64 (standard alphabet, padded) of the native
  JobTemplate JSON (``JobTemplate.to_label``/``JobTemplate.from_label``).

Conventions of the Python API:

* A Go "zero time" is ``None`` here and is written back as ``0001-01-01T00:00:00Z``.
* Naive datetimes are taken as UTC; every datetime stored in a model is timezone-aware.
* ``datetime``/``timedelta`` have microsecond resolution: nanosecond digits of decoded times
  and durations are truncated (not rounded).
* Decoding follows ``encoding/json``: missing keys and JSON ``null`` leave Go's zero value,
  unknown keys are ignored, key matching is case-insensitive (an exact spelling is not
  required), and a value of the wrong JSON type is an error (``ValueError``).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from typing import Any, ClassVar, Final, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from containertracker import gojson
from containertracker.gojson import (
    BOOL,
    EXTENSION,
    INT,
    MAP,
    NUMBER,
    STRING,
    STRINGS,
    STRINGS_OR_NULL,
    TIME,
    VERSION,
    WALLCLOCK,
    ZERO_TIME,
    GoField,
    enum_kind,
    format_go_time,
    parse_go_time,
    sentinel_int,
)

__all__ = [
    "CPU",
    "OS",
    "ZERO_TIME",
    "JobInfo",
    "JobState",
    "JobTemplate",
    "Machine",
    "format_go_time",
    "parse_go_time",
]

_UNSET_NUM: Final = -1
_UNSET_TIME: Final = -3

_E = TypeVar("_E", bound=IntEnum)


# --------------------------------------------------------------------------------------------
# Enumerations
# --------------------------------------------------------------------------------------------


def _by_name(names: Mapping[_E, str], name: str, what: str) -> _E:
    for member, member_name in names.items():
        if member_name == name:
            return member
    raise ValueError(f"{name!r} is not a DRMAA2 {what} name")


class JobState(IntEnum):
    """DRMAA2 job state; the integer values are those of the Go ``drmaa2interface.JobState``.

    The per-member notes say which container states map to each value.
    """

    UNSET = 0
    """No state: the "not set" value of a JobInfo filter. No container maps to it."""
    UNDETERMINED = 1
    """The state cannot be derived (unknown container status, engine or inspection error)."""
    QUEUED = 2
    """Container created and waiting to be started."""
    QUEUED_HELD = 3
    """Container created but held (submitted as hold); it is not started until released."""
    RUNNING = 4
    """Container running."""
    SUSPENDED = 5
    """Container paused."""
    REQUEUED = 6
    """Container restarting (the engine's restart policy re-runs it)."""
    REQUEUED_HELD = 7
    """Requeued and held; no container state maps to it (kept for DRMAA2 completeness)."""
    DONE = 8
    """Container exited with exit code 0."""
    FAILED = 9
    """Container exited non-zero, was killed (signal, OOM) or the job was cancelled."""

    @property
    def terminal(self) -> bool:
        """True for the end states DONE and FAILED, from which a job never leaves."""
        return self in (JobState.DONE, JobState.FAILED)

    @property
    def drmaa2_name(self) -> str:
        """The Go ``String()`` form, e.g. ``"QueuedHeld"``."""
        return _JOB_STATE_NAMES[self]

    @classmethod
    def from_drmaa2_name(cls, name: str) -> JobState:
        """Parse the Go ``String()`` form (case-sensitive).

        Raises:
            ValueError: ``name`` is not one of the ten DRMAA2 state names.
        """
        return _by_name(_JOB_STATE_NAMES, name, "job state")

    @property
    def remote_name(self) -> str:
        """The lower-camel name used by the remote (OpenAPI) JobTracker, e.g. ``"queuedHeld"``."""
        return _JOB_STATE_REMOTE_NAMES[self]

    @classmethod
    def from_remote_name(cls, name: str) -> JobState:
        """Parse a remote state name; like the Go client, any unknown string is UNDETERMINED."""
        for member, member_name in _JOB_STATE_REMOTE_NAMES.items():
            if member_name == name:
                return member
        return JobState.UNDETERMINED


_JOB_STATE_NAMES: Final[dict[JobState, str]] = {
    JobState.UNSET: "Unset",
    JobState.UNDETERMINED: "Undetermined",
    JobState.QUEUED: "Queued",
    JobState.QUEUED_HELD: "QueuedHeld",
    JobState.RUNNING: "Running",
    JobState.SUSPENDED: "Suspended",
    JobState.REQUEUED: "Requeued",
    JobState.REQUEUED_HELD: "RequeuedHeld",
    JobState.DONE: "Done",
    JobState.FAILED: "Failed",
}

_JOB_STATE_REMOTE_NAMES: Final[dict[JobState, str]] = {
    state: name[0].lower() + name[1:] for state, name in _JOB_STATE_NAMES.items()
}


class CPU(IntEnum):
    """DRMAA2 processor architecture; integer values as in Go ``drmaa2interface.CPU``."""

    OTHER_CPU = 0
    ALPHA = 1
    ARM = 2
    ARM64 = 3
    CELL = 4
    PARISC = 5
    PARISC64 = 6
    X86 = 7
    X64 = 8
    IA64 = 9
    MIPS = 10
    MIPS64 = 11
    POWERPC = 12
    POWERPC64 = 13
    SPARC = 14
    SPARC64 = 15

    @property
    def drmaa2_name(self) -> str:
        """The Go ``String()`` form, e.g. ``"ARM64"``; note X86/X64 are ``"x86"``/``"x64"``."""
        return _CPU_NAMES[self]

    @classmethod
    def from_drmaa2_name(cls, name: str) -> CPU:
        """Parse the Go ``String()`` form (case-sensitive).

        Raises:
            ValueError: ``name`` is not a DRMAA2 CPU name.
        """
        return _by_name(_CPU_NAMES, name, "CPU")

    @classmethod
    def from_machine(cls, arch: str) -> CPU:
        """Map a ``uname -m`` / GOARCH / engine architecture string to a CPU (case-insensitive).

        ``x86_64``/``amd64`` -> X64, ``i386``..``i686``/``386`` -> X86, ``aarch64``/``arm64`` ->
        ARM64, other ``arm*`` -> ARM, ``ppc64``/``ppc64le`` -> POWERPC64, ``ppc``/``powerpc``
        -> POWERPC, ``mips64*`` -> MIPS64, other ``mips*`` -> MIPS, ``sparc64`` -> SPARC64,
        ``sparc`` -> SPARC, ``ia64`` -> IA64, ``alpha`` -> ALPHA, ``hppa``/``parisc`` ->
        PARISC, ``hppa64``/``parisc64`` -> PARISC64; anything else (e.g. ``s390x``,
        ``riscv64``) is OTHER_CPU. Never raises.
        """
        a = arch.strip().lower()
        exact = {
            "x86_64": CPU.X64,
            "amd64": CPU.X64,
            "386": CPU.X86,
            "x86": CPU.X86,
            "ppc64": CPU.POWERPC64,
            "ppc64le": CPU.POWERPC64,
            "powerpc64": CPU.POWERPC64,
            "powerpc64le": CPU.POWERPC64,
            "ppc": CPU.POWERPC,
            "ppcle": CPU.POWERPC,
            "powerpc": CPU.POWERPC,
            "sparc64": CPU.SPARC64,
            "sparc": CPU.SPARC,
            "ia64": CPU.IA64,
            "alpha": CPU.ALPHA,
            "hppa": CPU.PARISC,
            "parisc": CPU.PARISC,
            "hppa64": CPU.PARISC64,
            "parisc64": CPU.PARISC64,
        }
        if a in exact:
            return exact[a]
        if re.fullmatch(r"i[3-6]86", a):
            return CPU.X86
        if a.startswith(("aarch64", "arm64")):
            return CPU.ARM64
        if a.startswith("arm"):
            return CPU.ARM
        if a.startswith("mips64"):
            return CPU.MIPS64
        if a.startswith("mips"):
            return CPU.MIPS
        return CPU.OTHER_CPU


_CPU_NAMES: Final[dict[CPU, str]] = {
    CPU.OTHER_CPU: "OtherCPU",
    CPU.ALPHA: "Alpha",
    CPU.ARM: "ARM",
    CPU.ARM64: "ARM64",
    CPU.CELL: "Cell",
    CPU.PARISC: "PARISC",
    CPU.PARISC64: "PARISC64",
    CPU.X86: "x86",
    CPU.X64: "x64",
    CPU.IA64: "IA64",
    CPU.MIPS: "MIPS",
    CPU.MIPS64: "MIPS64",
    CPU.POWERPC: "PowerPC",
    CPU.POWERPC64: "PowerPC64",
    CPU.SPARC: "SPARC",
    CPU.SPARC64: "SPARC64",
}


class OS(IntEnum):
    """DRMAA2 operating system; integer values as in Go ``drmaa2interface.OS``."""

    OTHER_OS = 0
    AIX = 1
    BSD = 2
    LINUX = 3
    HPUX = 4
    IRIX = 5
    MACOS = 6
    SUNOS = 7
    TRU64 = 8
    UNIXWARE = 9
    WIN = 10
    WINNT = 11

    @property
    def drmaa2_name(self) -> str:
        """The Go ``String()`` form, e.g. ``"Linux"``."""
        return _OS_NAMES[self]

    @classmethod
    def from_drmaa2_name(cls, name: str) -> OS:
        """Parse the Go ``String()`` form (case-sensitive).

        Raises:
            ValueError: ``name`` is not a DRMAA2 OS name.
        """
        return _by_name(_OS_NAMES, name, "OS")

    @classmethod
    def from_engine(cls, os_type: str) -> OS:
        """Map an engine ``OSType`` / GOOS string (case-insensitive) to an OS.

        ``linux`` -> LINUX, ``windows`` -> WIN, ``darwin`` -> MACOS, ``freebsd``/``openbsd``/
        ``netbsd``/``dragonfly`` -> BSD, ``solaris``/``illumos`` -> SUNOS, ``aix`` -> AIX;
        anything else is OTHER_OS. Never raises.
        """
        return _ENGINE_OS.get(os_type.strip().lower(), OS.OTHER_OS)


_OS_NAMES: Final[dict[OS, str]] = {
    OS.OTHER_OS: "OtherOS",
    OS.AIX: "AIX",
    OS.BSD: "BSD",
    OS.LINUX: "Linux",
    OS.HPUX: "HPUX",
    OS.IRIX: "IRIX",
    OS.MACOS: "MacOS",
    OS.SUNOS: "SunOS",
    OS.TRU64: "TRU64",
    OS.UNIXWARE: "UnixWare",
    OS.WIN: "Win",
    OS.WINNT: "WinNT",
}

_ENGINE_OS: Final[dict[str, OS]] = {
    "linux": OS.LINUX,
    "windows": OS.WIN,
    "darwin": OS.MACOS,
    "freebsd": OS.BSD,
    "openbsd": OS.BSD,
    "netbsd": OS.BSD,
    "dragonfly": OS.BSD,
    "solaris": OS.SUNOS,
    "illumos": OS.SUNOS,
    "aix": OS.AIX,
}

_STATE: Final = enum_kind(
    JobState,
    JobState.UNDETERMINED,
    remote_name=lambda state: state.remote_name,
    from_remote_name=JobState.from_remote_name,
)
"""A JobState: native its integer (out of range -> UNDETERMINED), remote its lower-camel name."""


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------


def _utc_if_naive(value: datetime | None) -> datetime | None:
    if value is not None and value.utcoffset() is None:
        return value.replace(tzinfo=UTC)
    return value


class _Drmaa2Model(BaseModel):
    """Common base: frozen, strict about unknown fields; Go native JSON of the ``_go`` table.

    Each model declares its Go struct once in ``_go`` (fields in struct order, their keys and
    kinds); ``containertracker.gojson`` does the encoding and decoding.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)
    _go: ClassVar[gojson.GoStruct]

    def to_go_dict(self) -> dict[str, Any]:
        """The Go native JSON object as a dict, keys in Go struct order (rules: class docstring)."""
        return gojson.to_native(self, self._go)

    @classmethod
    def from_go_dict(cls, data: Mapping[str, Any]) -> Self:
        """Decode a native JSON object as Go does (rules: class docstring).

        Missing keys and ``null`` give Go's zero values, unknown keys are ignored, keys match
        case-insensitively, zero times become ``None`` and times without a zone are rejected.

        Raises:
            ValueError: wrong value types or invalid/zone-less times.
        """
        return cls(**gojson.from_native(data, cls._go))

    def to_go_json(self) -> str:
        """Encode byte-for-byte like Go's ``json.Marshal`` of the corresponding Go struct.

        Raises:
            ValueError: a value Go cannot encode (NaN/Inf float).
        """
        return gojson.encode(self.to_go_dict())

    @classmethod
    def from_go_json(cls, data: str | bytes) -> Self:
        """Decode Go native JSON text (see ``from_go_dict`` for the rules).

        Raises:
            ValueError: invalid JSON, wrong value types, or times without a zone.
        """
        return cls.from_go_dict(gojson.decode_object(data))


class _RemoteModel(_Drmaa2Model):
    """A model the drmaa2os remote (OpenAPI) API also carries, in its own JSON shape."""

    def to_remote_dict(self) -> dict[str, Any]:
        """The remote JSON object as the Go side sends it: every key, keys sorted (rules:
        class docstring)."""
        return gojson.to_remote(self, self._go)

    @classmethod
    def from_remote_dict(cls, data: Mapping[str, Any]) -> Self:
        """Decode a remote JSON object leniently: missing keys and ``null`` give Go's zero
        values, times without a zone are taken as UTC (rules: class docstring).

        Raises:
            ValueError: wrong value types or invalid times.
        """
        return cls(**gojson.from_remote(data, cls._go))


class JobTemplate(_RemoteModel):
    """A DRMAA2 job request (Go ``drmaa2interface.JobTemplate``).

    Field meanings are those of DRMAA2; which fields a tracker honours is the tracker's
    business (unsupported ones must be refused there, not here). ``extension`` holds the
    implementation-specific ``ExtensionList``. Naive ``start_time``/``deadline_time`` values
    are taken as UTC. The model is frozen; it is not meant to be hashed (it holds dicts).

    Native JSON: ``extension`` first (``{}`` or ``{"extensionList": {...}}``), then Go struct
    order; both times always present (``None`` -> ``ZERO_TIME``); empty strings, False, 0 and
    empty lists/maps are omitted; map keys are sorted; ``accounting_id`` is written as
    ``accountingString``.

    Remote JSON: every key present, keys sorted like the Go client's output; ``accountingID``
    instead of ``accountingString``; ``extension`` a flat map (``{}`` when empty, and a
    missing one reads as empty); maps ``{}`` and lists ``[]`` when empty (the Go client sends
    ``null`` for nil slices; both decode the same in Go); times as RFC 3339 with ``ZERO_TIME``
    for ``None``.
    """

    remote_command: str = ""
    args: tuple[str, ...] = ()
    submit_as_hold: bool = False
    rerunnable: bool = False
    job_environment: dict[str, str] = Field(default_factory=dict)
    working_directory: str = ""
    job_category: str = ""
    email: tuple[str, ...] = ()
    email_on_started: bool = False
    email_on_terminated: bool = False
    job_name: str = ""
    input_path: str = ""
    output_path: str = ""
    error_path: str = ""
    join_files: bool = False
    reservation_id: str = ""
    queue_name: str = ""
    min_slots: int = 0
    max_slots: int = 0
    priority: int = 0
    candidate_machines: tuple[str, ...] = ()
    min_phys_memory: int = 0
    machine_os: str = ""
    machine_arch: str = ""
    start_time: datetime | None = None
    deadline_time: datetime | None = None
    stage_in_files: dict[str, str] = Field(default_factory=dict)
    stage_out_files: dict[str, str] = Field(default_factory=dict)
    resource_limits: dict[str, str] = Field(default_factory=dict)
    accounting_id: str = ""
    extension: dict[str, str] = Field(default_factory=dict)

    _go: ClassVar[gojson.GoStruct] = gojson.GoStruct(
        "JobTemplate",
        (
            GoField("extension", "extension", EXTENSION),
            GoField("remote_command", "remoteCommand", STRING),
            GoField("args", "args", STRINGS),
            GoField("submit_as_hold", "submitAsHold", BOOL),
            GoField("rerunnable", "reRunnable", BOOL),
            GoField("job_environment", "jobEnvironment", MAP),
            GoField("working_directory", "workingDirectory", STRING),
            GoField("job_category", "jobCategory", STRING),
            GoField("email", "email", STRINGS),
            GoField("email_on_started", "emailOnStarted", BOOL),
            GoField("email_on_terminated", "emailOnTerminated", BOOL),
            GoField("job_name", "jobName", STRING),
            GoField("input_path", "inputPath", STRING),
            GoField("output_path", "outputPath", STRING),
            GoField("error_path", "errorPath", STRING),
            GoField("join_files", "joinFiles", BOOL),
            GoField("reservation_id", "reservationID", STRING),
            GoField("queue_name", "queueName", STRING),
            GoField("min_slots", "minSlots", INT),
            GoField("max_slots", "maxSlots", INT),
            GoField("priority", "priority", INT),
            GoField("candidate_machines", "candidateMachines", STRINGS),
            GoField("min_phys_memory", "minPhysMemory", INT),
            GoField("machine_os", "machineOs", STRING),
            GoField("machine_arch", "machineArch", STRING),
            GoField("start_time", "startTime", TIME),
            GoField("deadline_time", "deadlineTime", TIME),
            GoField("stage_in_files", "stageInFiles", MAP),
            GoField("stage_out_files", "stageOutFiles", MAP),
            GoField("resource_limits", "resourceLimits", MAP),
            GoField("accounting_id", "accountingString", STRING, remote_key="accountingID"),
        ),
    )

    @field_validator("start_time", "deadline_time")
    @classmethod
    def _naive_is_utc(cls, value: datetime | None) -> datetime | None:
        return _utc_if_naive(value)

    def to_label(self) -> str:
        """The ``drmaa2jobtemplate`` Docker label value: base64 (standard, padded) of the
        native JSON, readable by the Go tracker."""
        return base64.b64encode(self.to_go_json().encode("utf-8")).decode("ascii")

    @classmethod
    def from_label(cls, label: str) -> Self:
        """Decode a ``drmaa2jobtemplate`` label (line breaks in the base64 are ignored).

        Raises:
            ValueError: not base64, not UTF-8, or not a valid native JobTemplate JSON.
        """
        try:
            raw = base64.b64decode(label.replace("\r", "").replace("\n", ""), validate=True)
        except binascii.Error as exc:
            raise ValueError(f"job template label is not valid base64: {exc}") from None
        return cls.from_go_json(raw)


class JobInfo(_RemoteModel):
    """Information about a job (Go ``drmaa2interface.JobInfo``), also used as a filter.

    ``None`` stands for Go's "unset" sentinels: ``exit_status``/``slots`` ``None`` is Go's -1,
    ``cpu_time`` ``None`` is Go's -3 (passing those sentinel ints gives ``None`` too), and a
    ``None`` time is Go's zero time. ``JobInfo()`` equals Go's ``CreateJobInfo()``: the unset
    filter that matches every job. ``cpu_time`` has no defined unit (as in DRMAA2). Naive
    datetimes are taken as UTC.

    Native JSON: keys in Go struct order starting with ``"Extensible": null``; ``None``
    exit status/slots are -1 and cpu time -3; zeros, empty strings, UNSET state and
    empty/``None`` machine lists are omitted; ``wallclockTime`` is integer nanoseconds (omitted
    when ``None``/0; decoded nanoseconds are truncated to microseconds); the three times are
    always present; ``terminating_signal`` is written as ``terminationSignal``. Decoding: a
    missing ``exitStatus``/``slots``/``cpuTime`` is 0 (Go's zero value, which is what
    ``omitempty`` dropped) and -1/-1/-3 are ``None``; a missing ``state`` is UNSET and an
    out-of-range one UNDETERMINED.

    Remote JSON: every key, sorted; ``state`` the remote state name (unknown or missing ->
    UNDETERMINED, as the Go client); ``terminatingSignal``; ``wallclockTime`` whole seconds
    (truncated, 0 for ``None``); ``extension`` a flat map; ``allocatedMachines`` ``null`` for
    ``None``; unset exit status/slots -1 and cpu time -3; ``None`` times as ``ZERO_TIME``.
    """

    id: str = ""
    exit_status: int | None = None
    terminating_signal: str = ""
    annotation: str = ""
    state: JobState = JobState.UNSET
    sub_state: str = ""
    allocated_machines: tuple[str, ...] | None = None
    submission_machine: str = ""
    job_owner: str = ""
    slots: int | None = None
    queue_name: str = ""
    wallclock_time: timedelta | None = None
    cpu_time: int | None = None
    submission_time: datetime | None = None
    dispatch_time: datetime | None = None
    finish_time: datetime | None = None
    extension: dict[str, str] = Field(default_factory=dict)

    _go: ClassVar[gojson.GoStruct] = gojson.GoStruct(
        "JobInfo",
        (
            GoField("extension", "extension", EXTENSION),
            GoField("id", "id", STRING),
            GoField("exit_status", "exitStatus", sentinel_int(_UNSET_NUM)),
            GoField(
                "terminating_signal",
                "terminationSignal",
                STRING,
                remote_key="terminatingSignal",
            ),
            GoField("annotation", "annotation", STRING),
            GoField("state", "state", _STATE),
            GoField("sub_state", "subState", STRING),
            GoField("allocated_machines", "allocatedMachines", STRINGS_OR_NULL),
            GoField("submission_machine", "submissionMachine", STRING),
            GoField("job_owner", "jobOwner", STRING),
            GoField("slots", "slots", sentinel_int(_UNSET_NUM)),
            GoField("queue_name", "queueName", STRING),
            GoField("wallclock_time", "wallclockTime", WALLCLOCK),
            GoField("cpu_time", "cpuTime", sentinel_int(_UNSET_TIME)),
            GoField("submission_time", "submissionTime", TIME),
            GoField("dispatch_time", "dispatchTime", TIME),
            GoField("finish_time", "finishTime", TIME),
        ),
        extensible=True,
    )

    @field_validator("submission_time", "dispatch_time", "finish_time")
    @classmethod
    def _naive_is_utc(cls, value: datetime | None) -> datetime | None:
        return _utc_if_naive(value)

    @field_validator("exit_status", "slots")
    @classmethod
    def _unset_num(cls, value: int | None) -> int | None:
        return None if value == _UNSET_NUM else value

    @field_validator("cpu_time")
    @classmethod
    def _unset_time(cls, value: int | None) -> int | None:
        return None if value == _UNSET_TIME else value

    @property
    def is_unset(self) -> bool:
        """True when every field is "not set", i.e. the filter matches every job."""
        return (
            not self.id
            and self.exit_status is None
            and not self.terminating_signal
            and not self.annotation
            and self.state == JobState.UNSET
            and not self.sub_state
            and not self.allocated_machines
            and not self.submission_machine
            and not self.job_owner
            and self.slots is None
            and not self.queue_name
            and not self.wallclock_time
            and self.cpu_time is None
            and self.submission_time is None
            and self.dispatch_time is None
            and self.finish_time is None
        )

    def matches(self, job: JobInfo) -> bool:
        """Whether ``job`` passes this filter (DRMAA2 semantics of Go ``d2hlp.JobInfoMatches``).

        Only fields that are set (not ``None``/``""``/UNSET/empty/zero duration) are checked:
        equality for id, exit_status, terminating_signal, annotation, state, sub_state,
        submission_machine, job_owner, slots and queue_name; ``job.allocated_machines`` must
        contain every filter machine; wallclock_time and cpu_time are minimums; the three
        times mean "not before" (a job whose time is ``None`` fails them). ``extension`` is
        not compared. An unset filter matches everything.
        """
        for name in (
            "id",
            "terminating_signal",
            "annotation",
            "sub_state",
            "submission_machine",
            "job_owner",
            "queue_name",
        ):
            wanted = getattr(self, name)
            if wanted and getattr(job, name) != wanted:
                return False
        if self.exit_status is not None and job.exit_status != self.exit_status:
            return False
        if self.state != JobState.UNSET and job.state != self.state:
            return False
        if self.slots is not None and job.slots != self.slots:
            return False
        if self.allocated_machines and not set(self.allocated_machines) <= set(
            job.allocated_machines or ()
        ):
            return False
        if self.wallclock_time and (job.wallclock_time or timedelta(0)) < self.wallclock_time:
            return False
        job_cpu = _UNSET_TIME if job.cpu_time is None else job.cpu_time
        if self.cpu_time is not None and job_cpu < self.cpu_time:
            return False
        for name in ("submission_time", "dispatch_time", "finish_time"):
            not_before: datetime | None = getattr(self, name)
            job_time: datetime | None = getattr(job, name)
            if not_before is not None and (job_time is None or job_time < not_before):
                return False
        return True


class Machine(_Drmaa2Model):
    """A compute host (Go ``drmaa2interface.Machine``).

    ``os_version`` is a version string such as ``"5.10"``; on the wire it is split at the first
    dot into ``{"major": "5", "minor": "10"}``. Memory sizes are bytes.

    Native JSON: Go struct order, ``"Extensible": null`` first. Every field is ``omitempty``
    (False ``available`` and 0 counts are omitted) except ``extension`` and ``osVersion``,
    which is always an object whose empty parts are omitted. ``architecture`` and ``os`` are
    ints (out-of-range ones read as OTHER_CPU/OTHER_OS). ``load`` stays a float;
    ``to_go_json`` formats it like Go (``1`` not ``1.0``). Decoding gives Go's zero values for
    missing keys, NOT the Python defaults (``available`` False, counts 0, name ""), so encoding
    round-trips.
    """

    name: str
    available: bool = True
    sockets: int = 1
    cores_per_socket: int = 1
    threads_per_core: int = 1
    load: float = 0.0
    physical_memory: int = 0
    virtual_memory: int = 0
    architecture: CPU = CPU.OTHER_CPU
    os_version: str = ""
    os: OS = OS.OTHER_OS
    extension: dict[str, str] = Field(default_factory=dict)

    _go: ClassVar[gojson.GoStruct] = gojson.GoStruct(
        "Machine",
        (
            GoField("extension", "extension", EXTENSION),
            GoField("name", "name", STRING),
            GoField("available", "available", BOOL),
            GoField("sockets", "sockets", INT),
            GoField("cores_per_socket", "coresPerSocket", INT),
            GoField("threads_per_core", "threadsPerCore", INT),
            GoField("load", "load", NUMBER),
            GoField("physical_memory", "physicalMemory", INT),
            GoField("virtual_memory", "virtualMemory", INT),
            GoField("architecture", "architecture", enum_kind(CPU, CPU.OTHER_CPU)),
            GoField("os_version", "osVersion", VERSION),
            GoField("os", "os", enum_kind(OS, OS.OTHER_OS)),
        ),
        extensible=True,
    )
