"""A Python package a command needs but this installation lacks: one line saying what to
install, never a traceback. (No typer or rich here: this also reports their absence.)"""

from __future__ import annotations

import sys
from typing import Final

__all__ = ["MISSING_PART", "exit_if_missing", "missing_part"]

MISSING_PART: Final = 11
"""Exit status when a package the command needs is not installed."""

_EXTRA_OF: Final = {"starlette": "server", "uvicorn": "server", "yaml": "server"}
"""Modules of an optional part (an extra of containertracker), by top-level name: what
``serve`` needs. Every other package the CLI imports is a regular dependency."""

_DISTRIBUTION_OF: Final = {"yaml": "PyYAML"}
"""Distribution names that differ from the module's."""


def missing_part(exc: ImportError) -> str | None:
    """What to tell the user about ``exc``, raised by an import, if it says that a package
    (not one of ours: that would be a broken checkout, and a bug to show) is not installed;
    else None.

    An adapter's own ImportError (``the docker backend needs the docker SDK ...``), raised from
    the ModuleNotFoundError, is taken as it is worded.
    """
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, ModuleNotFoundError):
        cause = cause.__cause__
    if cause is None or not cause.name:
        return None
    module = cause.name.partition(".")[0]
    if module == "containertracker":
        return None
    if cause is not exc:
        return str(exc)
    distribution = _DISTRIBUTION_OF.get(module, module)
    extra = _EXTRA_OF.get(module)
    if extra is not None:
        return (
            f"this needs {distribution}, part of the optional {extra!r} extra, which is not "
            f"installed: pip install 'containertracker[{extra}]'"
        )
    return (
        f"the Python package {distribution!r}, a dependency of containertracker, is not "
        f"installed: pip install {distribution} (or reinstall containertracker)"
    )


def exit_if_missing(exc: ImportError) -> None:
    """If ``exc`` is a missing package (:func:`missing_part`), print ``error: <what to
    install>`` on stderr and exit with :data:`MISSING_PART`; else return (the caller
    re-raises)."""
    message = missing_part(exc)
    if message is not None:
        print(f"error: {message}", file=sys.stderr)
        sys.exit(MISSING_PART)
