"""Go's ``encoding/json`` as drmaa2os writes the DRMAA2 structs: text, times and field tables.

This module knows no model. A model declares its wire shape once as a ``GoStruct``: its fields
in Go struct order, each with its native key, its remote key and a ``Kind`` (how the value is
written and read). Four functions apply a ``GoStruct``:

* ``to_native``/``from_native``: the Go *native* JSON object (``json.Marshal`` of the struct):
  camelCase keys in struct order, ``omitempty`` fields left out when their wire value is
  empty, times always present (``ZERO_TIME`` for ``None``), ``"Extensible": null`` first where
  the struct embeds it.
* ``to_remote``/``from_remote``: the *remote* (OpenAPI) JSON shape of the drmaa2os remote
  JobTracker: every key present, keys sorted, a flat extension map; decoding is lenient about
  times without a zone (taken as UTC).

``encode`` writes JSON text byte-for-byte as ``encoding/json`` does (HTML-safe string escaping,
Go's float format, compact separators, dict order kept); ``decode_object`` reads it back.

Decoding follows ``encoding/json``: missing keys and ``null`` give Go's zero value, unknown
keys are ignored, keys match case-insensitively, and a value of the wrong JSON type is a
``ValueError`` naming the struct and key.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from enum import IntEnum
from typing import Any, Final, TypeVar

__all__ = [
    "BOOL",
    "EXTENSION",
    "INT",
    "MAP",
    "NUMBER",
    "STRING",
    "STRINGS",
    "STRINGS_OR_NULL",
    "TIME",
    "VERSION",
    "WALLCLOCK",
    "ZERO_TIME",
    "GoField",
    "GoStruct",
    "Kind",
    "Reader",
    "decode_object",
    "encode",
    "enum_kind",
    "format_go_time",
    "from_native",
    "from_remote",
    "parse_go_time",
    "sentinel_int",
    "to_native",
    "to_remote",
]

ZERO_TIME: Final = "0001-01-01T00:00:00Z"
"""Go's zero ``time.Time`` as RFC 3339; the wire form of a ``None`` time."""

_GO_ZERO_DATETIME: Final = datetime(1, 1, 1, tzinfo=UTC)
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1

_E = TypeVar("_E", bound=IntEnum)
_T = TypeVar("_T")


# --------------------------------------------------------------------------------------------
# Times and durations
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


def _duration_ns(value: timedelta) -> int:
    return ((value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds) * 1000


def _duration_from_ns(ns: int) -> timedelta:
    micro = abs(ns) // 1000
    return timedelta(microseconds=-micro if ns < 0 else micro)


def _whole_seconds(value: timedelta) -> int:
    """Whole seconds of a duration, truncated towards zero."""
    micro = _duration_ns(value) // 1000
    return abs(micro) // 1_000_000 * (-1 if micro < 0 else 1)


# --------------------------------------------------------------------------------------------
# JSON text
# --------------------------------------------------------------------------------------------


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


def encode(value: object) -> str:
    """Encode JSON-like data as Go's ``encoding/json`` would (dict order kept as given).

    Raises:
        ValueError: a float Go cannot encode (NaN, infinities).
        TypeError: a value that is not JSON-like.
    """
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
        items = (f"{_go_string(str(k))}:{encode(v)}" for k, v in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(encode(v) for v in value) + "]"
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def decode_object(data: str | bytes) -> Mapping[str, Any]:
    """Decode JSON text that must be an object; ``null`` is the empty object (Go's zero struct).

    Raises:
        ValueError: invalid JSON (``NaN`` and infinities included) or not an object.
    """
    decoded = json.loads(data, parse_constant=_reject_constant)
    if decoded is not None and not isinstance(decoded, Mapping):
        raise ValueError(f"expected a JSON object, got {type(decoded).__name__}")
    return decoded or {}


def _sorted_map(values: Mapping[str, str]) -> dict[str, str]:
    return {key: values[key] for key in sorted(values)}


class Reader:
    """Typed, case-insensitive access to a decoded JSON object (Go ``encoding/json`` rules).

    Each accessor returns Go's zero value for a missing key or ``null`` and raises
    ``ValueError`` ("<what>.<key>: expected ..., got ...") for a value of the wrong type.
    """

    def __init__(self, data: object, what: str) -> None:
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ValueError(f"{what}: expected a JSON object, got {type(data).__name__}")
        self._values = {str(key).lower(): value for key, value in data.items()}
        self._what = what

    def raw(self, key: str) -> Any:
        """The value as decoded, ``None`` when missing."""
        return self._values.get(key.lower())

    def _error(self, key: str, expected: str, value: object) -> ValueError:
        return ValueError(f"{self._what}.{key}: expected {expected}, got {value!r}")

    def _typed(self, key: str, kind: type[_T], zero: _T, expected: str) -> _T:
        value = self.raw(key)
        if value is None:
            return zero
        if not isinstance(value, kind):
            raise self._error(key, expected, value)
        return value

    def string(self, key: str) -> str:
        """A string; ``""`` when missing."""
        return self._typed(key, str, "", "a string")

    def boolean(self, key: str) -> bool:
        """A boolean; False when missing."""
        return self._typed(key, bool, False, "a boolean")

    def integer(self, key: str) -> int:
        """A 64-bit integer (Go ``int``); 0 when missing."""
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
        """A number as a float; 0.0 when missing."""
        value = self.raw(key)
        if value is None:
            return 0.0
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._error(key, "a number", value)
        return float(value)

    def strings(self, key: str) -> tuple[str, ...] | None:
        """A list of strings (``null`` items are ``""``); ``None`` when missing."""
        value = self.raw(key)
        if value is None:
            return None
        if not isinstance(value, list):
            raise self._error(key, "a list of strings", value)
        if not all(item is None or isinstance(item, str) for item in value):
            raise self._error(key, "a list of strings", value)
        return tuple(item or "" for item in value)

    def mapping(self, key: str) -> dict[str, str]:
        """An object of strings (``null`` values are ``""``); ``{}`` when missing."""
        value = self.raw(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self._error(key, "an object of strings", value)
        if not all(item is None or isinstance(item, str) for item in value.values()):
            raise self._error(key, "an object of strings", value)
        return {str(k): v or "" for k, v in value.items()}

    def time(self, key: str, *, require_zone: bool) -> datetime | None:
        """An RFC 3339 time (see ``parse_go_time``); ``None`` when missing or Go's zero time."""
        value = self.raw(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self._error(key, "an RFC 3339 time string", value)
        try:
            return parse_go_time(value, require_zone=require_zone)
        except ValueError as exc:
            raise ValueError(f"{self._what}.{key}: {exc}") from None

    def sub(self, key: str) -> Reader:
        """A nested object (missing is the empty object)."""
        value = self.raw(key)
        if value is not None and not isinstance(value, Mapping):
            raise self._error(key, "an object", value)
        return Reader(value, f"{self._what}.{key}")


# --------------------------------------------------------------------------------------------
# Field tables
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Kind:
    """How one field's Python value is written to and read from the native and remote shapes.

    ``omitempty`` is Go's struct tag of the native shape: the field is left out when its wire
    value is empty (``""``, 0, False, empty list or object). The remote shape writes every field.
    """

    to_native: Callable[[Any], Any]
    from_native: Callable[[Reader, str], Any]
    to_remote: Callable[[Any], Any]
    from_remote: Callable[[Reader, str], Any]
    omitempty: bool = True


def _same(value: Any) -> Any:
    return value


def _plain(read: Callable[[Reader, str], Any]) -> Kind:
    """A value written as it is and read the same way in both shapes."""
    return Kind(_same, read, _same, read)


# Go's string, bool and int (read: missing or null is "", False, 0).
STRING: Final = _plain(Reader.string)
BOOL: Final = _plain(Reader.boolean)
INT: Final = _plain(Reader.integer)
NUMBER: Final = _plain(Reader.number)
"""A float; ``encode`` writes it as Go does (``1`` not ``1.0``)."""
MAP: Final = Kind(_sorted_map, Reader.mapping, _sorted_map, Reader.mapping)
"""A ``dict[str, str]``, keys sorted on the wire (Go sorts map keys)."""


def _list_or_null(value: tuple[str, ...] | None) -> list[str] | None:
    return None if value is None else list(value)


def _list(value: tuple[str, ...] | None) -> list[str]:
    return list(value or ())


def _strings_or_empty(reader: Reader, key: str) -> tuple[str, ...]:
    return reader.strings(key) or ()


STRINGS: Final = Kind(_list, _strings_or_empty, _list_or_null, _strings_or_empty)
"""A ``tuple[str, ...]``; missing or ``null`` reads as ``()``."""
STRINGS_OR_NULL: Final = Kind(_list, Reader.strings, _list_or_null, Reader.strings)
"""A ``tuple[str, ...] | None``: ``None`` (Go's nil slice) is remote ``null`` and reads back."""
TIME: Final = Kind(
    format_go_time,
    lambda reader, key: reader.time(key, require_zone=True),
    format_go_time,
    lambda reader, key: reader.time(key, require_zone=False),
    omitempty=False,
)
"""A ``datetime | None``; always written (``ZERO_TIME`` for ``None``); a zone-less time is
refused natively and taken as UTC remotely."""
WALLCLOCK: Final = Kind(
    lambda value: _duration_ns(value) if value else 0,
    lambda reader, key: _duration_from_ns(ns) if (ns := reader.integer(key)) else None,
    lambda value: _whole_seconds(value) if value else 0,
    Reader.seconds,
)
"""A ``timedelta | None``: native integer nanoseconds (Go ``time.Duration``, truncated to
microseconds when read), remote whole seconds (truncated); 0 is ``None``."""
EXTENSION: Final = Kind(
    lambda value: {"extensionList": _sorted_map(value)} if value else {},
    lambda reader, key: reader.sub(key).mapping("extensionList"),
    _sorted_map,
    Reader.mapping,
    omitempty=False,
)
"""The DRMAA2 extension ``dict[str, str]``: native ``{}`` or ``{"extensionList": {...}}``
(always written), remote a flat map."""


def _version_to_native(value: str) -> dict[str, str]:
    major, _, minor = value.partition(".")
    return {key: part for key, part in (("major", major), ("minor", minor)) if part}


def _version_from_native(reader: Reader, key: str) -> str:
    version = reader.sub(key)
    major, minor = version.string("major"), version.string("minor")
    return f"{major}.{minor}" if minor else major


VERSION: Final = Kind(
    _version_to_native,
    _version_from_native,
    _version_to_native,
    _version_from_native,
    omitempty=False,
)
"""A version string ``"major[.minor]"`` as Go's ``Version{Major, Minor}`` object (split at
the first dot, empty parts left out, always written)."""


def sentinel_int(unset: int) -> Kind:
    """An ``int | None`` whose ``None`` is written as Go's "not set" value ``unset``.

    Reading gives the integer as sent (0 when missing); the model maps ``unset`` to ``None``.
    """

    def write(value: int | None) -> int:
        return unset if value is None else value

    return Kind(write, Reader.integer, write, Reader.integer)


def enum_kind(
    enum: type[_E],
    fallback: _E,
    *,
    remote_name: Callable[[_E], str] | None = None,
    from_remote_name: Callable[[str], _E] | None = None,
) -> Kind:
    """An ``IntEnum`` written as its integer; an integer it does not define reads as ``fallback``.

    With ``remote_name``/``from_remote_name`` the remote shape carries a name instead.
    """

    def read(reader: Reader, key: str) -> _E:
        value = reader.integer(key)  # a wrong type is an error, not the fallback
        try:
            return enum(value)
        except ValueError:
            return fallback

    if remote_name is None or from_remote_name is None:
        return Kind(int, read, int, read)
    by_name = from_remote_name
    return Kind(int, read, remote_name, lambda reader, key: by_name(reader.string(key)))


@dataclass(frozen=True, slots=True)
class GoField:
    """One struct field: the model attribute, its native key, its kind and its remote key."""

    name: str
    key: str
    kind: Kind
    remote_key: str = ""
    """The remote shape's key where it differs from ``key``."""


@dataclass(frozen=True, slots=True)
class GoStruct:
    """A Go struct's JSON shape: its fields in struct order.

    ``extensible``: the struct embeds drmaa2interface's ``Extensible`` interface, which
    ``json.Marshal`` writes as ``"Extensible": null`` before every field (native shape only).
    """

    name: str
    fields: tuple[GoField, ...]
    extensible: bool = False


def to_native(model: object, struct: GoStruct) -> dict[str, Any]:
    """The native JSON object of ``model`` (attributes named by ``struct``), in struct order."""
    out: dict[str, Any] = {"Extensible": None} if struct.extensible else {}
    for field in struct.fields:
        value = field.kind.to_native(getattr(model, field.name))
        if value or not field.kind.omitempty:
            out[field.key] = value
    return out


def from_native(data: Mapping[str, Any], struct: GoStruct) -> dict[str, Any]:
    """The model's attributes read from a native JSON object (``Extensible`` is ignored).

    Raises:
        ValueError: ``data`` is not an object, or a value of the wrong type or an invalid or
            zone-less time (the message names ``struct.name`` and the key).
    """
    reader = Reader(data, struct.name)
    return {field.name: field.kind.from_native(reader, field.key) for field in struct.fields}


def to_remote(model: object, struct: GoStruct) -> dict[str, Any]:
    """The remote (OpenAPI) JSON object of ``model``: every field, keys sorted."""
    out = {
        field.remote_key or field.key: field.kind.to_remote(getattr(model, field.name))
        for field in struct.fields
    }
    return {key: out[key] for key in sorted(out)}


def from_remote(data: Mapping[str, Any], struct: GoStruct) -> dict[str, Any]:
    """The model's attributes read leniently from a remote (OpenAPI) JSON object.

    Raises:
        ValueError: ``data`` is not an object, or a value of the wrong type or an invalid time.
    """
    reader = Reader(data, struct.name)
    return {
        field.name: field.kind.from_remote(reader, field.remote_key or field.key)
        for field in struct.fields
    }
