"""What the web dashboard shows, as JSON, and how it is sent: pure, no I/O.

The page (``containertracker/remote/ui/``) renders these shapes; the endpoints of
:mod:`containertracker.remote.dashboard` fill them from the trackers they are allowed to use.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Final

from containertracker.models import JobInfo, JobState, JobTemplate, Machine
from containertracker.remote.tokens import Grant

__all__ = [
    "ROW_FIELD_LIMITS",
    "SECURITY_HEADERS",
    "actions_for",
    "info_view",
    "job_row",
    "machine_view",
    "shorten",
    "sse_comment",
    "sse_event",
    "visible_sessions",
]

SECURITY_HEADERS: Final[dict[str, str]] = {
    # Only the page's own files and endpoints: no inline script or style, no other origin,
    # no plugins, no <base>, no form submission anywhere (the page's forms are handled by
    # its script), and no framing (clickjacking), which X-Frame-Options says again for old
    # browsers.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    # Answers carry jobs' data (templates, outputs): never kept by a browser or a proxy.
    "Cache-Control": "no-store",
}
"""Headers of every answer below the dashboard's path (the page, its files, its API)."""

_ACTIONS: Final[dict[JobState, tuple[str, ...]]] = {
    JobState.QUEUED: ("hold", "terminate"),
    JobState.QUEUED_HELD: ("release", "terminate"),
    JobState.RUNNING: ("suspend", "terminate"),
    JobState.SUSPENDED: ("resume", "terminate"),
    JobState.REQUEUED: ("terminate",),
    JobState.REQUEUED_HELD: ("terminate",),
    JobState.DONE: ("delete",),
    JobState.FAILED: ("delete",),
}
"""The actions the tracker accepts in each state (``README``: control actions that do not fit
the state raise InvalidStateError); ``delete`` is :meth:`JobTracker.delete_job`."""


def actions_for(state: JobState) -> list[str]:
    """The control actions (:data:`~containertracker.tracker.CONTROL_ACTIONS`) and
    ``delete`` that ``state`` allows, in the order the page shows them."""
    return list(_ACTIONS.get(state, ()))


ROW_FIELD_LIMITS: Final[dict[str, int]] = {
    "name": 128,
    "array": 64,
    "task": 20,
    "image": 256,
    "subState": 300,
    "machine": 256,
    "annotation": 300,
}
"""Longest text a row shows of each field of free text (longer ones end in ``…``): a row's
size is bounded whatever the labels and engine messages hold, and so is a table of
:data:`~containertracker.remote.dashboard.MAX_ROWS` rows sent as one event. The job view
(:func:`info_view`, the template) shows them whole."""


def shorten(text: str, limit: int) -> str:
    """``text``, or its first ``limit - 1`` characters and ``…`` if it is longer."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def job_row(info: JobInfo, template: JobTemplate | None) -> dict[str, Any]:
    """One line of the jobs table: a job's info and (when the tracker keeps it) its template.

    ``state`` is the remote state name (``queuedHeld``), ``runtime`` the wall-clock seconds
    so far (None before the start; the page counts on for a running job from ``started``),
    ``actions`` what :func:`actions_for` allows; free text is cut to
    :data:`ROW_FIELD_LIMITS`.
    """
    extension = info.extension
    row: dict[str, Any] = {
        "id": info.id,
        "name": template.job_name if template is not None else "",
        "array": extension.get("array_id", ""),
        "task": extension.get("task_id", ""),
        "image": template.job_category if template is not None else extension.get("category", ""),
        "state": info.state.remote_name,
        "subState": info.sub_state,
        "machine": ", ".join(info.allocated_machines or ()),
        "submitted": _iso(info.submission_time),
        "started": _iso(info.dispatch_time),
        "finished": _iso(info.finish_time),
        "runtime": None if info.wallclock_time is None else info.wallclock_time.total_seconds(),
        "exitStatus": info.exit_status,
        "signal": info.terminating_signal,
        "annotation": info.annotation,
        "hasOutput": bool(extension.get("output_path")),
        "hasError": bool(extension.get("error_path")),
        "actions": actions_for(info.state),
    }
    for field, limit in ROW_FIELD_LIMITS.items():
        row[field] = shorten(str(row[field]), limit)
    return row


def info_view(info: JobInfo) -> dict[str, Any]:
    """A JobInfo as the job view lists it: its fields (as the CLI's ``info --json``), the
    state by its remote name and the wall-clock time in seconds."""
    view: dict[str, Any] = info.model_dump(mode="json")
    view["state"] = info.state.remote_name
    wallclock = info.wallclock_time
    view["wallclock_time"] = None if wallclock is None else wallclock.total_seconds()
    return view


def machine_view(machine: Machine, jobs: Iterable[JobInfo]) -> dict[str, Any]:
    """A machine as the Monitorer reports it, with the unfinished jobs of ``jobs`` it runs."""
    on_it = [job for job in jobs if machine.name in (job.allocated_machines or ())]
    return {
        "name": machine.name,
        "available": machine.available,
        "cpus": machine.sockets * machine.cores_per_socket * machine.threads_per_core,
        "memory": machine.physical_memory,
        "load": machine.load,
        "architecture": machine.architecture.drmaa2_name,
        "os": f"{machine.os.drmaa2_name} {machine.os_version}".strip(),
        "engine": machine.extension.get("engine", ""),
        "jobs": [
            {
                "id": job.id,
                "state": job.state.remote_name,
                "subState": job.sub_state,
                "image": job.extension.get("category", ""),
                "array": job.extension.get("array_id", ""),
                "task": job.extension.get("task_id", ""),
            }
            for job in on_it
            if not job.state.terminal
        ],
    }


def visible_sessions(with_jobs: Iterable[str], grant: Grant | None, default: str) -> list[str]:
    """The sessions a dashboard lists: those with jobs, the server's default session, and
    (for a token bound to sessions) every session it names exactly, each only if the token
    may use it (``grant`` None: every session); the default first, the rest sorted."""
    names = {*with_jobs, default}
    if grant is not None and not grant.every_session:
        names |= {pattern for pattern in grant.sessions if not _is_pattern(pattern)}
        names = {name for name in names if grant.allows(name)}
    return sorted(names, key=lambda name: (name != default, name))


def _is_pattern(name: str) -> bool:
    """Whether a grant's session entry is a shell pattern rather than one name."""
    return any(c in name for c in "*?[")


def sse_event(event: str, data: Any) -> bytes:
    """One Server-Sent Events message: ``event: <event>`` and ``data: <data as JSON>``.

    JSON never holds a raw line break (one in a string is escaped), so the data is one line
    whatever it holds, and no value can end the message early or add a field.

    Raises:
        ValueError: ``event`` is not a plain name (letters, digits, ``-``, ``_``).
    """
    if not event or not all(c.isascii() and (c.isalnum() or c in "-_") for c in event):
        raise ValueError(f"not an event name: {event!r}")
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def sse_comment(text: str = "") -> bytes:
    """A Server-Sent Events comment (ignored by readers; keeps the connection in use, so a
    client that went away is noticed). Line breaks in ``text`` become spaces."""
    return f": {' '.join(text.splitlines())}\n\n".encode()
