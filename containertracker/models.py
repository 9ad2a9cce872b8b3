"""DRMAA2 data model (JobState, CPU, OS, JobTemplate, JobInfo, Machine) and its wire formats.

The types mirror ``github.com/dgruber/drmaa2interface`` with snake_case Python field names.
Three encodings are supported, each byte- or key-compatible with the Go project drmaa2os:

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
import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from enum import IntEnum
from typing import Any, Final, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

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

ZERO_TIME: Final = "0001-01-01T00:00:00Z"
"""Go's zero ``time.Time`` as RFC 3339; the wire form of a ``None`` time."""

_GO_ZERO_DATETIME: Final = datetime(1, 1, 1, tzinfo=UTC)
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
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


# --------------------------------------------------------------------------------------------
# Times, durations and Go-compatible JSON text
# --------------------------------------------------------------------------------------------

_RFC3339: Final = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})?",
    re.ASCII,
)


def format_go_time(value: datetime | None) -> str:
    """Format a time exactly like Go's ``time.Time.MarshalJSON`` (RFC 3339, nano precision).

    ``None`` gives ``ZERO_TIME``. Fractional seconds have trailing zeros trimmed, a zero UTC
    offset is written ``Z`` and any other offset ``+hh:mm``/``-hh:mm`` (seconds of an offset are
    dropped, as Go does). A naive datetime is taken as UTC.
    """
    if value is None:
        return ZERO_TIME
    offset = value.utcoffset()
    text = (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d}"
        f"T{value.hour:02d}:{value.minute:02d}:{value.second:02d}"
    )
    if value.microsecond:
        text += "." + f"{value.microsecond:06d}".rstrip("0")
    minutes = 0 if offset is None else int(offset.total_seconds()) // 60
    if minutes == 0:
        return text + "Z"
    sign = "+" if minutes > 0 else "-"
    hours, mins = divmod(abs(minutes), 60)
    return f"{text}{sign}{hours:02d}:{mins:02d}"


def parse_go_time(text: str, *, require_zone: bool = True) -> datetime | None:
    """Parse an RFC 3339 time as Go's ``time.Time.UnmarshalJSON`` does.

    Args:
        text: e.g. ``"2024-01-02T03:04:05.0000006Z"`` or ``"2024-01-02T03:04:05+01:00"``.
        require_zone: when True (native Go decoding) a time without ``Z``/offset is rejected;
            when False (lenient remote decoding) it is taken as UTC.

    Returns:
        A timezone-aware datetime, or ``None`` for Go's zero time. Fractional digits beyond
        microseconds are truncated.

    Raises:
        ValueError: not RFC 3339, out-of-range fields, a year datetime cannot hold (0), or a
            missing zone while ``require_zone`` is set.
    """
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not an RFC 3339 time")
    year, month, day, hour, minute, second = (int(match[i]) for i in range(1, 7))
    fraction, zone = match[7] or "", match[8]
    if zone is None:
        if require_zone:
            raise ValueError(f"time {text!r} has no time zone (Go's decoder rejects it)")
        tz = UTC
    elif zone == "Z":
        tz = UTC
    else:
        zone_hours, zone_minutes = int(zone[1:3]), int(zone[4:6])
        if zone_hours >= 24 or zone_minutes >= 60:
            raise ValueError(f"time {text!r} has an invalid zone offset")
        delta = timedelta(hours=zone_hours, minutes=zone_minutes)
        tz = timezone(-delta if zone[0] == "-" else delta) if delta else UTC
    micro = int(fraction[:6].ljust(6, "0"))
    try:
        result = datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"time {text!r} is out of range: {exc}") from None
    if result == _GO_ZERO_DATETIME and not fraction[6:].strip("0"):
        return None
    return result


def _utc_if_naive(value: datetime | None) -> datetime | None:
    if value is not None and value.utcoffset() is None:
        return value.replace(tzinfo=UTC)
    return value


def _duration_ns(value: timedelta) -> int:
    return ((value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds) * 1000


def _duration_from_ns(ns: int) -> timedelta:
    micro = abs(ns) // 1000
    return timedelta(microseconds=-micro if ns < 0 else micro)


def _go_string(text: str) -> str:
    encoded = json.dumps(text, ensure_ascii=False)
    for char, escape in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        encoded = encoded.replace(char, escape)
    return encoded


def _go_float(value: float) -> str:
    if not math.isfinite(value):
        raise ValueError(f"Go's JSON encoder cannot encode {value!r}")
    magnitude = abs(value)
    if magnitude != 0 and (magnitude < 1e-6 or magnitude >= 1e21):
        return re.sub(r"e-0(\d)$", r"e-\1", repr(value))
    text = format(Decimal(repr(value)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _go_encode(value: object) -> str:
    """Encode JSON-like data as Go's ``encoding/json`` would (dict order kept as given)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _go_string(value)
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, Mapping):
        items = (f"{_go_string(str(k))}:{_go_encode(v)}" for k, v in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_go_encode(v) for v in value) + "]"
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _go_decode(data: str | bytes) -> Any:
    return json.loads(data, parse_constant=_reject_constant)


def _sorted_map(values: Mapping[str, str]) -> dict[str, str]:
    return {key: values[key] for key in sorted(values)}


class _Reader:
    """Typed, case-insensitive access to a decoded JSON object (Go ``encoding/json`` rules)."""

    def __init__(self, data: object, what: str) -> None:
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ValueError(f"{what}: expected a JSON object, got {type(data).__name__}")
        self._values = {str(key).lower(): value for key, value in data.items()}
        self._what = what

    def raw(self, key: str) -> Any:
        return self._values.get(key.lower())

    def _error(self, key: str, expected: str, value: object) -> ValueError:
        return ValueError(f"{self._what}.{key}: expected {expected}, got {value!r}")

    def string(self, key: str) -> str:
        value = self.raw(key)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise self._error(key, "a string", value)
        return value

    def boolean(self, key: str) -> bool:
        value = self.raw(key)
        if value is None:
            return False
        if not isinstance(value, bool):
            raise self._error(key, "a boolean", value)
        return value

    def integer(self, key: str) -> int:
        value = self.raw(key)
        if value is None:
            return 0
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._error(key, "an integer", value)
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise self._error(key, "a 64-bit integer", value)
        return value

    def seconds(self, key: str) -> timedelta | None:
        """A duration in whole seconds; 0 or missing is ``None``."""
        value = self.integer(key)
        if not value:
            return None
        try:
            return timedelta(seconds=value)
        except OverflowError:
            raise self._error(key, "a duration of at most 999999999 days", value) from None

    def number(self, key: str) -> float:
        value = self.raw(key)
        if value is None:
            return 0.0
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._error(key, "a number", value)
        return float(value)

    def strings(self, key: str) -> tuple[str, ...] | None:
        value = self.raw(key)
        if value is None:
            return None
        if not isinstance(value, list):
            raise self._error(key, "a list of strings", value)
        if not all(item is None or isinstance(item, str) for item in value):
            raise self._error(key, "a list of strings", value)
        return tuple(item or "" for item in value)

    def mapping(self, key: str) -> dict[str, str]:
        value = self.raw(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self._error(key, "an object of strings", value)
        if not all(item is None or isinstance(item, str) for item in value.values()):
            raise self._error(key, "an object of strings", value)
        return {str(k): v or "" for k, v in value.items()}

    def time(self, key: str, *, require_zone: bool) -> datetime | None:
        value = self.raw(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self._error(key, "an RFC 3339 time string", value)
        try:
            return parse_go_time(value, require_zone=require_zone)
        except ValueError as exc:
            raise ValueError(f"{self._what}.{key}: {exc}") from None

    def sub(self, key: str) -> _Reader:
        value = self.raw(key)
        if value is not None and not isinstance(value, Mapping):
            raise self._error(key, "an object", value)
        return _Reader(value, f"{self._what}.{key}")


def _enum_or(enum: type[_E], value: int, fallback: _E) -> _E:
    try:
        return enum(value)
    except ValueError:
        return fallback


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------


class _Drmaa2Model(BaseModel):
    """Common base: frozen, strict about unknown fields, Go-JSON text helpers."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    def to_go_dict(self) -> dict[str, Any]:
        """The Go native JSON object as a dict (keys in Go struct order)."""
        raise NotImplementedError

    @classmethod
    def from_go_dict(cls, data: Mapping[str, Any]) -> Self:
        """Build from a decoded Go native JSON object."""
        raise NotImplementedError

    def to_go_json(self) -> str:
        """Encode byte-for-byte like Go's ``json.Marshal`` of the corresponding Go struct.

        Raises:
            ValueError: a value Go cannot encode (NaN/Inf float).
        """
        return _go_encode(self.to_go_dict())

    @classmethod
    def from_go_json(cls, data: str | bytes) -> Self:
        """Decode Go native JSON text (see ``from_go_dict`` for the rules).

        Raises:
            ValueError: invalid JSON, wrong value types, or times without a zone.
        """
        decoded = _go_decode(data)
        if decoded is not None and not isinstance(decoded, Mapping):
            raise ValueError(f"expected a JSON object, got {type(decoded).__name__}")
        return cls.from_go_dict(decoded or {})


_TIME_KIND: Final = "time"

# (python field, native key, kind) in Go struct order; kind is str/bool/int/list/map/time.
_TEMPLATE_FIELDS: Final[tuple[tuple[str, str, str], ...]] = (
    ("remote_command", "remoteCommand", "str"),
    ("args", "args", "list"),
    ("submit_as_hold", "submitAsHold", "bool"),
    ("rerunnable", "reRunnable", "bool"),
    ("job_environment", "jobEnvironment", "map"),
    ("working_directory", "workingDirectory", "str"),
    ("job_category", "jobCategory", "str"),
    ("email", "email", "list"),
    ("email_on_started", "emailOnStarted", "bool"),
    ("email_on_terminated", "emailOnTerminated", "bool"),
    ("job_name", "jobName", "str"),
    ("input_path", "inputPath", "str"),
    ("output_path", "outputPath", "str"),
    ("error_path", "errorPath", "str"),
    ("join_files", "joinFiles", "bool"),
    ("reservation_id", "reservationID", "str"),
    ("queue_name", "queueName", "str"),
    ("min_slots", "minSlots", "int"),
    ("max_slots", "maxSlots", "int"),
    ("priority", "priority", "int"),
    ("candidate_machines", "candidateMachines", "list"),
    ("min_phys_memory", "minPhysMemory", "int"),
    ("machine_os", "machineOs", "str"),
    ("machine_arch", "machineArch", "str"),
    ("start_time", "startTime", _TIME_KIND),
    ("deadline_time", "deadlineTime", _TIME_KIND),
    ("stage_in_files", "stageInFiles", "map"),
    ("stage_out_files", "stageOutFiles", "map"),
    ("resource_limits", "resourceLimits", "map"),
    ("accounting_id", "accountingString", "str"),
)
_REMOTE_KEY_OVERRIDES: Final = {"accounting_id": "accountingID"}


def _read_field(reader: _Reader, key: str, kind: str, *, require_zone: bool) -> Any:
    if kind == "str":
        return reader.string(key)
    if kind == "bool":
        return reader.boolean(key)
    if kind == "int":
        return reader.integer(key)
    if kind == "list":
        return reader.strings(key) or ()
    if kind == "map":
        return reader.mapping(key)
    return reader.time(key, require_zone=require_zone)


class JobTemplate(_Drmaa2Model):
    """A DRMAA2 job request (Go ``drmaa2interface.JobTemplate``).

    Field meanings are those of DRMAA2; which fields a tracker honours is the tracker's
    business (unsupported ones must be refused there, not here). ``extension`` holds the
    implementation-specific ``ExtensionList``. Naive ``start_time``/``deadline_time`` values
    are taken as UTC. The model is frozen; it is not meant to be hashed (it holds dicts).
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

    @field_validator("start_time", "deadline_time")
    @classmethod
    def _naive_is_utc(cls, value: datetime | None) -> datetime | None:
        return _utc_if_naive(value)

    def to_go_dict(self) -> dict[str, Any]:
        """The native JSON object: ``extension`` first, Go struct order, ``omitempty`` rules.

        ``extension`` is ``{}`` or ``{"extensionList": {...}}``; both times are always present
        (``None`` -> ``ZERO_TIME``); empty strings, False, 0 and empty lists/maps are omitted;
        map keys are sorted; ``accounting_id`` is written as ``accountingString``.
        """
        out: dict[str, Any] = {
            "extension": {"extensionList": _sorted_map(self.extension)} if self.extension else {}
        }
        for name, key, kind in _TEMPLATE_FIELDS:
            value = getattr(self, name)
            if kind == _TIME_KIND:
                out[key] = format_go_time(value)
            elif not value:
                continue
            elif kind == "list":
                out[key] = list(value)
            elif kind == "map":
                out[key] = _sorted_map(value)
            else:
                out[key] = value
        return out

    @classmethod
    def from_go_dict(cls, data: Mapping[str, Any]) -> Self:
        """Decode a native JSON object as Go does.

        Missing keys and ``null`` give the defaults; unknown keys are ignored; keys match
        case-insensitively; zero times become ``None``; times without a zone are rejected.

        Raises:
            ValueError: wrong value types or invalid/zone-less times.
        """
        reader = _Reader(data, "JobTemplate")
        values: dict[str, Any] = {
            name: _read_field(reader, key, kind, require_zone=True)
            for name, key, kind in _TEMPLATE_FIELDS
        }
        values["extension"] = reader.sub("extension").mapping("extensionList")
        return cls(**values)

    def to_remote_dict(self) -> dict[str, Any]:
        """The remote (OpenAPI) JSON object as the Go client sends it.

        Every key is present (keys sorted like the Go client's output): ``accountingID``
        instead of ``accountingString``, ``extension`` as a flat map (always present, ``{}``
        when empty), maps ``{}`` when empty, lists ``[]`` when empty (the Go client sends
        ``null`` for nil slices; both decode the same in Go), times as RFC 3339 with
        ``ZERO_TIME`` for ``None``.
        """
        out: dict[str, Any] = {"extension": _sorted_map(self.extension)}
        for name, key, kind in _TEMPLATE_FIELDS:
            value = getattr(self, name)
            remote_key = _REMOTE_KEY_OVERRIDES.get(name, key)
            if kind == _TIME_KIND:
                out[remote_key] = format_go_time(value)
            elif kind == "list":
                out[remote_key] = list(value)
            elif kind == "map":
                out[remote_key] = _sorted_map(value)
            else:
                out[remote_key] = value
        return {key: out[key] for key in sorted(out)}

    @classmethod
    def from_remote_dict(cls, data: Mapping[str, Any]) -> Self:
        """Decode a remote (OpenAPI) JobTemplate object leniently.

        A missing ``extension`` is an empty one, missing keys and ``null`` give the defaults,
        and times without a zone are taken as UTC.

        Raises:
            ValueError: wrong value types or invalid times.
        """
        reader = _Reader(data, "JobTemplate")
        values: dict[str, Any] = {
            name: _read_field(
                reader, _REMOTE_KEY_OVERRIDES.get(name, key), kind, require_zone=False
            )
            for name, key, kind in _TEMPLATE_FIELDS
        }
        values["extension"] = reader.mapping("extension")
        return cls(**values)

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


class JobInfo(_Drmaa2Model):
    """Information about a job (Go ``drmaa2interface.JobInfo``), also used as a filter.

    ``None`` stands for Go's "unset" sentinels: ``exit_status``/``slots`` ``None`` is Go's -1,
    ``cpu_time`` ``None`` is Go's -3 (passing those sentinel ints gives ``None`` too), and a
    ``None`` time is Go's zero time. ``JobInfo()`` equals Go's ``CreateJobInfo()``: the unset
    filter that matches every job. ``cpu_time`` has no defined unit (as in DRMAA2). Naive
    datetimes are taken as UTC.
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

    def to_go_dict(self) -> dict[str, Any]:
        """The native JSON object, keys in Go struct order starting with ``"Extensible": None``.

        ``exit_status``/``slots`` ``None`` -> -1, ``cpu_time`` ``None`` -> -3; zeros, empty
        strings, UNSET state and empty/None machine lists are omitted; ``wallclockTime`` is
        integer nanoseconds (omitted when ``None``/0); the three times are always present;
        ``terminating_signal`` is written as ``terminationSignal``.
        """
        wallclock = _duration_ns(self.wallclock_time) if self.wallclock_time else 0
        candidates: tuple[tuple[str, Any], ...] = (
            ("id", self.id),
            ("exitStatus", _UNSET_NUM if self.exit_status is None else self.exit_status),
            ("terminationSignal", self.terminating_signal),
            ("annotation", self.annotation),
            ("state", int(self.state)),
            ("subState", self.sub_state),
            ("allocatedMachines", list(self.allocated_machines or ())),
            ("submissionMachine", self.submission_machine),
            ("jobOwner", self.job_owner),
            ("slots", _UNSET_NUM if self.slots is None else self.slots),
            ("queueName", self.queue_name),
            ("wallclockTime", wallclock),
            ("cpuTime", _UNSET_TIME if self.cpu_time is None else self.cpu_time),
        )
        out: dict[str, Any] = {
            "Extensible": None,
            "extension": {"extensionList": _sorted_map(self.extension)} if self.extension else {},
        }
        out.update((key, value) for key, value in candidates if value)
        out["submissionTime"] = format_go_time(self.submission_time)
        out["dispatchTime"] = format_go_time(self.dispatch_time)
        out["finishTime"] = format_go_time(self.finish_time)
        return out

    @classmethod
    def from_go_dict(cls, data: Mapping[str, Any]) -> Self:
        """Decode a native JSON object as Go does.

        Missing ``exitStatus``/``slots``/``cpuTime`` decode to 0 (Go's zero value, which is
        what ``omitempty`` dropped); -1/-1/-3 decode to ``None``. Missing ``state`` is UNSET and
        an out-of-range state is UNDETERMINED. ``wallclockTime`` nanoseconds are truncated to
        microseconds; 0 or missing is ``None``. ``Extensible`` is ignored. Zero times become
        ``None``; times without a zone are rejected.

        Raises:
            ValueError: wrong value types or invalid/zone-less times.
        """
        reader = _Reader(data, "JobInfo")
        wallclock = reader.integer("wallclockTime")
        return cls(
            id=reader.string("id"),
            exit_status=reader.integer("exitStatus"),
            terminating_signal=reader.string("terminationSignal"),
            annotation=reader.string("annotation"),
            state=_enum_or(JobState, reader.integer("state"), JobState.UNDETERMINED),
            sub_state=reader.string("subState"),
            allocated_machines=reader.strings("allocatedMachines"),
            submission_machine=reader.string("submissionMachine"),
            job_owner=reader.string("jobOwner"),
            slots=reader.integer("slots"),
            queue_name=reader.string("queueName"),
            wallclock_time=_duration_from_ns(wallclock) if wallclock else None,
            cpu_time=reader.integer("cpuTime"),
            submission_time=reader.time("submissionTime", require_zone=True),
            dispatch_time=reader.time("dispatchTime", require_zone=True),
            finish_time=reader.time("finishTime", require_zone=True),
            extension=reader.sub("extension").mapping("extensionList"),
        )

    def to_remote_dict(self) -> dict[str, Any]:
        """The remote (OpenAPI) JSON object as the Go server sends it; all keys present.

        Keys sorted: ``state`` is the remote state name, ``terminatingSignal`` (not
        ``terminationSignal``), ``wallclockTime`` whole seconds (truncated, 0 for ``None``),
        ``extension`` a flat map, ``allocatedMachines`` ``null`` for ``None``, unset
        exit status/slots -1 and cpu time -3, ``None`` times as ``ZERO_TIME``.
        """
        wallclock = 0
        if self.wallclock_time:
            micro = _duration_ns(self.wallclock_time) // 1000
            wallclock = abs(micro) // 1_000_000 * (-1 if micro < 0 else 1)
        machines = self.allocated_machines
        return {
            "allocatedMachines": None if machines is None else list(machines),
            "annotation": self.annotation,
            "cpuTime": _UNSET_TIME if self.cpu_time is None else self.cpu_time,
            "dispatchTime": format_go_time(self.dispatch_time),
            "exitStatus": _UNSET_NUM if self.exit_status is None else self.exit_status,
            "extension": _sorted_map(self.extension),
            "finishTime": format_go_time(self.finish_time),
            "id": self.id,
            "jobOwner": self.job_owner,
            "queueName": self.queue_name,
            "slots": _UNSET_NUM if self.slots is None else self.slots,
            "state": self.state.remote_name,
            "subState": self.sub_state,
            "submissionMachine": self.submission_machine,
            "submissionTime": format_go_time(self.submission_time),
            "terminatingSignal": self.terminating_signal,
            "wallclockTime": wallclock,
        }

    @classmethod
    def from_remote_dict(cls, data: Mapping[str, Any]) -> Self:
        """Decode a remote (OpenAPI) JobInfo object leniently.

        ``state`` is parsed with ``JobState.from_remote_name`` (unknown or missing ->
        UNDETERMINED, as the Go client); ``wallclockTime`` is whole seconds (0 -> ``None``);
        -1/-1/-3 sentinels give ``None``; missing numbers are 0; zone-less times are UTC.

        Raises:
            ValueError: wrong value types or invalid times.
        """
        reader = _Reader(data, "JobInfo")
        return cls(
            id=reader.string("id"),
            exit_status=reader.integer("exitStatus"),
            terminating_signal=reader.string("terminatingSignal"),
            annotation=reader.string("annotation"),
            state=JobState.from_remote_name(reader.string("state")),
            sub_state=reader.string("subState"),
            allocated_machines=reader.strings("allocatedMachines"),
            submission_machine=reader.string("submissionMachine"),
            job_owner=reader.string("jobOwner"),
            slots=reader.integer("slots"),
            queue_name=reader.string("queueName"),
            wallclock_time=reader.seconds("wallclockTime"),
            cpu_time=reader.integer("cpuTime"),
            submission_time=reader.time("submissionTime", require_zone=False),
            dispatch_time=reader.time("dispatchTime", require_zone=False),
            finish_time=reader.time("finishTime", require_zone=False),
            extension=reader.mapping("extension"),
        )


class Machine(_Drmaa2Model):
    """A compute host (Go ``drmaa2interface.Machine``).

    ``os_version`` is a version string such as ``"5.10"``; on the wire it is split at the first
    dot into ``{"major": "5", "minor": "10"}``. Memory sizes are bytes.
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

    def to_go_dict(self) -> dict[str, Any]:
        """The native JSON object in Go struct order, ``"Extensible": None`` first.

        Every field is ``omitempty`` (False ``available`` and 0 counts are omitted) except
        ``extension`` and ``osVersion``, which is always an object whose empty parts are
        omitted. ``architecture`` and ``os`` are ints. ``load`` stays a float; ``to_go_json``
        formats it like Go (``1`` not ``1.0``).
        """
        major, _, minor = self.os_version.partition(".")
        version = {key: value for key, value in (("major", major), ("minor", minor)) if value}
        candidates: tuple[tuple[str, Any], ...] = (
            ("name", self.name),
            ("available", self.available),
            ("sockets", self.sockets),
            ("coresPerSocket", self.cores_per_socket),
            ("threadsPerCore", self.threads_per_core),
            ("load", self.load),
            ("physicalMemory", self.physical_memory),
            ("virtualMemory", self.virtual_memory),
            ("architecture", int(self.architecture)),
        )
        out: dict[str, Any] = {
            "Extensible": None,
            "extension": {"extensionList": _sorted_map(self.extension)} if self.extension else {},
        }
        out.update((key, value) for key, value in candidates if value)
        out["osVersion"] = version
        if self.os:
            out["os"] = int(self.os)
        return out

    @classmethod
    def from_go_dict(cls, data: Mapping[str, Any]) -> Self:
        """Decode a native JSON object as Go does.

        Missing keys give Go's zero values, NOT the Python defaults (``available`` False,
        counts 0, name ""), so encoding round-trips. Out-of-range architecture/os ints give
        OTHER_CPU/OTHER_OS. ``os_version`` is ``major`` or ``major.minor``.

        Raises:
            ValueError: wrong value types.
        """
        reader = _Reader(data, "Machine")
        version = reader.sub("osVersion")
        major, minor = version.string("major"), version.string("minor")
        return cls(
            name=reader.string("name"),
            available=reader.boolean("available"),
            sockets=reader.integer("sockets"),
            cores_per_socket=reader.integer("coresPerSocket"),
            threads_per_core=reader.integer("threadsPerCore"),
            load=reader.number("load"),
            physical_memory=reader.integer("physicalMemory"),
            virtual_memory=reader.integer("virtualMemory"),
            architecture=_enum_or(CPU, reader.integer("architecture"), CPU.OTHER_CPU),
            os_version=f"{major}.{minor}" if minor else major,
            os=_enum_or(OS, reader.integer("os"), OS.OTHER_OS),
            extension=reader.sub("extension").mapping("extensionList"),
        )
