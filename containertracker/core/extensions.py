"""Strict parsers for the JobTemplate extension keys of drmaa2os' Docker tracker (pure).

Same keys and syntax as the Go tracker, but every malformed value is an
:class:`InvalidArgumentError` instead of being ignored.
"""

from __future__ import annotations

import re

from containertracker.core.engine import PortBinding, Ulimit
from containertracker.errors import InvalidArgumentError

__all__ = [
    "ULIMIT_NAMES",
    "parse_bool",
    "parse_gpus",
    "parse_ports",
    "parse_restart",
    "parse_size",
    "parse_ulimits",
]

ULIMIT_NAMES = frozenset(
    [
        "core",
        "cpu",
        "data",
        "fsize",
        "locks",
        "memlock",
        "msgqueue",
        "nice",
        "nofile",
        "nproc",
        "rss",
        "rtprio",
        "rttime",
        "sigpending",
        "stack",
    ]
)
_SIZE = re.compile(r"^(\d+(?:\.\d+)?) ?([kmgtp]?)(i?)(b?)$", re.IGNORECASE)
_UNITS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}
_PORT = re.compile(r"^(\d{1,5})(?:-(\d{1,5}))?$")
_RESTART = re.compile(r"^(no|always|unless-stopped|on-failure(?::\d+)?)$")
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def parse_bool(key: str, value: str) -> bool:
    """``true/false`` (also 1/0, yes/no, on/off), case-insensitive."""
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise InvalidArgumentError(f"extension {key!r} must be true or false, not {value!r}")


def parse_size(key: str, value: str) -> int:
    """A human size in bytes: ``10g``, ``512 MiB``, ``1.5k``, ``1024`` (binary multiples)."""
    m = _SIZE.match(value.strip())
    if not m:
        raise InvalidArgumentError(
            f"{key} must be a size like 512m, 10g or 1048576 (bytes), not {value!r}"
        )
    number, unit = float(m.group(1)), _UNITS[m.group(2).lower()]
    return int(number * 1024**unit)


def parse_ulimits(value: str) -> list[Ulimit]:
    """``name=soft[:hard],...`` with Docker's ulimit names; hard defaults to soft."""
    limits = []
    for item in value.split(","):
        name, sep, numbers = item.strip().partition("=")
        if not sep or name not in ULIMIT_NAMES:
            raise InvalidArgumentError(
                f"ulimit entry {item!r} must be name=soft[:hard] with name one of "
                f"{', '.join(sorted(ULIMIT_NAMES))}"
            )
        soft_s, _, hard_s = numbers.partition(":")
        try:
            soft = int(soft_s)
            hard = int(hard_s) if hard_s else soft
        except ValueError:
            raise InvalidArgumentError(
                f"ulimit {name} needs integer limits, not {numbers!r}"
            ) from None
        if hard != -1 and (soft == -1 or soft > hard):
            raise InvalidArgumentError(f"ulimit {name}: soft limit {soft} exceeds hard {hard}")
        limits.append(Ulimit(name, soft, hard))
    return limits


def parse_gpus(value: str) -> int:
    """``all`` (-1) or a positive number of GPUs."""
    if value.strip().lower() == "all":
        return -1
    if value.strip().isdigit() and int(value) > 0:
        return int(value)
    raise InvalidArgumentError(f"gpus extension must be 'all' or a number, not {value!r}")


def parse_restart(value: str) -> str:
    """A Docker restart policy name: no, always, unless-stopped, on-failure[:N]."""
    if not _RESTART.match(value.strip()):
        raise InvalidArgumentError(
            f"restart must be no, always, unless-stopped or on-failure[:N], not {value!r}"
        )
    return value.strip()


def _port_range(text: str, spec: str) -> list[int]:
    m = _PORT.match(text)
    if not m:
        raise InvalidArgumentError(f"exposedPorts entry {spec!r}: {text!r} is not a port")
    first = int(m.group(1))
    last = int(m.group(2) or first)
    if not 0 < first <= last <= 65535:
        raise InvalidArgumentError(f"exposedPorts entry {spec!r}: ports must be in 1-65535")
    return list(range(first, last + 1))


def parse_ports(value: str) -> tuple[list[str], list[PortBinding]]:
    """Docker ``-p`` specs ``[ip:][hostPort:]containerPort[/proto]``, comma-separated.

    Returns the exposed container ports (``"80/tcp"``) and their host bindings.
    """
    exposed: list[str] = []
    bindings: list[PortBinding] = []
    for spec in (s.strip() for s in value.split(",")):
        ports, _, proto = spec.partition("/")
        proto = proto or "tcp"
        if proto not in ("tcp", "udp", "sctp"):
            raise InvalidArgumentError(f"exposedPorts entry {spec!r}: unknown protocol {proto}")
        parts = ports.rsplit(":", 2)
        container = _port_range(parts[-1], spec)
        host = _port_range(parts[-2], spec) if len(parts) >= 2 and parts[-2] else []
        ip = parts[0] if len(parts) == 3 else ""
        if host and len(host) != len(container):
            raise InvalidArgumentError(f"exposedPorts entry {spec!r}: port ranges differ")
        for i, port in enumerate(container):
            key = f"{port}/{proto}"
            exposed.append(key)
            bindings.append(PortBinding(key, ip, str(host[i]) if host else ""))
    return exposed, bindings
