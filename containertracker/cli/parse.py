"""Parsing of command-line values into API values (pure; errors are InvalidArgumentError)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from containertracker.errors import InvalidArgumentError
from containertracker.models import JobState

__all__ = ["ArraySpec", "parse_array", "parse_pairs", "parse_state"]

_ARRAY = re.compile(r"^(-?\d+)-(-?\d+)(?::(\d+))?$")


@dataclass(frozen=True)
class ArraySpec:
    """``--array BEGIN-END[:STEP]``: task indexes BEGIN..END (inclusive) by STEP."""

    begin: int
    end: int
    step: int = 1


def parse_array(text: str) -> ArraySpec:
    """``"1-100:2"`` -> ArraySpec(1, 100, 2); ``"5"`` alone is ``5-5``.

    Raises:
        InvalidArgumentError: not BEGIN-END[:STEP] with integers.
    """
    if text.isdigit():
        return ArraySpec(int(text), int(text))
    match = _ARRAY.fullmatch(text.strip())
    if match is None:
        raise InvalidArgumentError(
            f"--array {text!r} is not BEGIN-END[:STEP], e.g. 1-100 or 1-100:2"
        )
    return ArraySpec(int(match[1]), int(match[2]), int(match[3] or 1))


def parse_pairs(values: Iterable[str], option: str) -> dict[str, str]:
    """``["A=1", "B=x=y"]`` -> ``{"A": "1", "B": "x=y"}`` (split at the first ``=``).

    Raises:
        InvalidArgumentError: an item without ``=`` or with an empty key.
    """
    pairs: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidArgumentError(f"{option} {item!r} must be KEY=VALUE")
        pairs[key] = value
    return pairs


def parse_state(text: str) -> JobState:
    """A state by DRMAA2 name, remote name or enum name, any case (``done``, ``QueuedHeld``,
    ``queued_held``).

    Raises:
        InvalidArgumentError: no such state.
    """
    wanted = text.replace("_", "").replace("-", "").lower()
    for state in JobState:
        if state.drmaa2_name.lower() == wanted:
            return state
    names = ", ".join(s.remote_name for s in JobState if s is not JobState.UNSET)
    raise InvalidArgumentError(f"unknown state {text!r}; use one of {names}")
