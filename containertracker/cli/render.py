"""What the command line prints: rich tables for people, JSON for scripts."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console
from rich.table import Table

from containertracker.models import JobInfo, JobState, JobTemplate, Machine

__all__ = [
    "JobRow",
    "in_order",
    "info_table",
    "job_header",
    "jobs_table",
    "machines_table",
    "print_json",
    "state_counts",
]

_STATE_STYLE = {
    JobState.DONE: "green",
    JobState.FAILED: "red",
    JobState.RUNNING: "cyan",
    JobState.SUSPENDED: "yellow",
    JobState.QUEUED_HELD: "yellow",
}


@dataclass(frozen=True)
class JobRow:
    """One line of ``list``: a job's info and (when the tracker keeps it) its template."""

    info: JobInfo
    template: JobTemplate | None

    @property
    def task(self) -> str:
        task = self.info.extension.get("task_id")
        if task is None and self.template is not None:
            task = self.template.job_environment.get("TASK_ID")
        return task or ""

    @property
    def array_id(self) -> str:
        return self.info.extension.get("array_id", "")

    @property
    def runtime(self) -> timedelta | None:
        if self.info.wallclock_time is not None:
            return self.info.wallclock_time
        if self.info.dispatch_time is not None and self.info.state is JobState.RUNNING:
            return datetime.now(UTC) - self.info.dispatch_time
        return None

    def details(self) -> dict[str, Any]:
        """``info --json`` of the job: ``{"info": JobInfo, "template": JobTemplate or None}``."""
        return {
            "info": self.info.model_dump(mode="json"),
            "template": None if self.template is None else self.template.model_dump(mode="json"),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.info.id,
            "name": self.template.job_name if self.template else "",
            "state": self.info.state.remote_name,
            "sub_state": self.info.sub_state,
            "task": self.task,
            "image": self.template.job_category if self.template else "",
            "started": _iso(self.info.dispatch_time),
            "finished": _iso(self.info.finish_time),
            "runtime_seconds": None if self.runtime is None else self.runtime.total_seconds(),
            "exit_status": self.info.exit_status,
        }


def in_order(rows: Iterable[JobRow]) -> list[JobRow]:
    """Rows in submission order, each array's tasks together in task-number order (at the
    place of its first submitted task)."""
    rows = list(rows)
    never = datetime.max.replace(tzinfo=UTC)
    first: dict[str, datetime] = {}
    for row in rows:
        if row.array_id:
            submitted = row.info.submission_time or never
            first[row.array_id] = min(first.get(row.array_id, never), submitted)

    def key(row: JobRow) -> tuple[datetime, str, int, str]:
        submitted = first.get(row.array_id) or row.info.submission_time or never
        task = int(row.task) if row.task.lstrip("-").isdigit() else 0
        return (submitted, row.array_id, task, row.info.id)

    return sorted(rows, key=key)


def print_json(console: Console, value: Any) -> None:
    """``value`` as indented JSON, nothing else (safe to pipe into jq)."""
    console.print_json(json.dumps(value, default=str), highlight=False)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _when(value: datetime | None) -> str:
    if value is None:
        return ""
    local = value.astimezone()
    if local.date() == datetime.now().astimezone().date():
        return local.strftime("%H:%M:%S")
    return local.strftime("%Y-%m-%d %H:%M")


def _duration(value: timedelta | None) -> str:
    if value is None:
        return ""
    seconds = value.total_seconds()
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _state(info: JobInfo, *, reason: bool = True) -> str:
    """The state's remote name, coloured, and (``reason``) its sub-state in brackets."""
    style = _STATE_STYLE.get(info.state, "")
    text = info.state.remote_name + (f" ({info.sub_state})" if reason and info.sub_state else "")
    return f"[{style}]{text}[/]" if style else text


def jobs_table(rows: Sequence[JobRow], *, full_ids: bool = False) -> Table:
    """``list``: one line per job, however narrow the terminal. The state is one word (its
    reason, the sub-state, is long: ``info`` and ``--json`` show it); names and images shrink
    first, with an ellipsis; at 80 columns every other column stays whole (``--full-ids``
    needs 64 for the id alone)."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("ID", no_wrap=True, min_width=64 if full_ids else 12)
    table.add_column("NAME", overflow="ellipsis", min_width=4)
    table.add_column("STATE", no_wrap=True)
    table.add_column("TASK", no_wrap=True, min_width=4, justify="right")
    table.add_column("IMAGE", overflow="ellipsis", min_width=5)
    for column, width in (("STARTED", 8), ("RUNTIME", 7), ("EXIT", 4)):
        table.add_column(column, no_wrap=True, min_width=width)
    for row in rows:
        info, jt = row.info, row.template
        table.add_row(
            info.id if full_ids else info.id[:12],
            jt.job_name if jt else "",
            _state(info, reason=False),
            row.task,
            jt.job_category if jt else "",
            _when(info.dispatch_time),
            _duration(row.runtime),
            "" if info.exit_status is None else str(info.exit_status),
        )
    return table


def job_header(task: str, job_id: str) -> str:
    """The line above one job's part when a command shows several, as ``tail`` does:
    ``==> task 3 (3f2a91c0d4e5) <==`` (no task: ``==> (3f2a91c0d4e5) <==``)."""
    return f"==> {f'task {task} ' if task else ''}({job_id[:12]}) <=="


def state_counts(counts: Counter[JobState]) -> str:
    """``done 5  failed 1  running 2  queued 0`` (rich markup): running includes suspended,
    queued includes held and requeued jobs."""
    running = counts[JobState.RUNNING] + counts[JobState.SUSPENDED]
    queued = sum(counts[s] for s in (JobState.QUEUED, JobState.QUEUED_HELD, JobState.REQUEUED))
    return (
        f"[green]done {counts[JobState.DONE]}[/]  [red]failed {counts[JobState.FAILED]}[/]  "
        f"[cyan]running {running}[/]  queued {queued}"
    )


def info_table(info: JobInfo, template: JobTemplate | None) -> Table:
    table = Table(box=None, show_header=False)
    table.add_column(style="bold")
    table.add_column()
    fields: list[tuple[str, str]] = [("id", info.id), ("state", _state(info))]
    if template is not None:
        command = " ".join([template.remote_command, *template.args]).strip()
        fields += [
            ("name", template.job_name),
            ("image", template.job_category),
            ("command", command),
            ("task", template.job_environment.get("TASK_ID", "")),
            ("output", template.output_path),
            ("error", template.error_path),
        ]
    fields += [
        ("exit status", "" if info.exit_status is None else str(info.exit_status)),
        ("signal", info.terminating_signal),
        ("submitted", _iso(info.submission_time) or ""),
        ("started", _iso(info.dispatch_time) or ""),
        ("finished", _iso(info.finish_time) or ""),
        ("wall clock", _duration(info.wallclock_time)),
        ("machine", ", ".join(info.allocated_machines or ())),
        ("submitted from", info.submission_machine),
        ("owner", info.job_owner),
        ("slots", "" if info.slots is None else str(info.slots)),
    ]
    fields += [(f"extension {key}", value) for key, value in sorted(info.extension.items())]
    for name, value in fields:
        if value:
            table.add_row(name, value)
    return table


def machines_table(machines: Iterable[Machine]) -> Table:
    table = Table(box=None, header_style="bold")
    for column in ("NAME", "CPUS", "MEMORY", "ARCH", "OS", "LOAD"):
        table.add_column(column)
    for m in machines:
        cpus = m.sockets * m.cores_per_socket * m.threads_per_core
        table.add_row(
            m.name,
            str(cpus),
            f"{m.physical_memory / 2**30:.1f} GiB",
            m.architecture.drmaa2_name,
            f"{m.os.drmaa2_name} {m.os_version}".strip(),
            f"{m.load:.2f}",
        )
    return table
