"""The label schema that makes containers discoverable as jobs (pure).

``drmaa2_jobsession`` and ``drmaa2jobtemplate`` are drmaa2os' own labels, so the Go trackers
see our jobs and we see theirs. Everything else is ours, under ``containertracker.``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "ARRAY_ID",
    "MAX_PARALLEL",
    "PLAN",
    "SESSION",
    "STATE_DIR",
    "SUBMISSION",
    "TASK_ID",
    "TEMPLATE",
    "Plan",
]

SESSION = "drmaa2_jobsession"
TEMPLATE = "drmaa2jobtemplate"
TASK_ID = "TASK_ID"
MANAGED = "containertracker.version"
ARRAY_ID = "containertracker.array-id"
MAX_PARALLEL = "containertracker.max-parallel"
PLAN = "containertracker.plan"
SUBMISSION = "containertracker.submission"
"""The id of the add_job/add_array_job call that made the container (its array id for an
array): an interrupted submission is rolled back by it."""
STATE_DIR = "containertracker.state-dir"
"""Which state directory the submitting tracker used (:attr:`StateStore.identity`, a hash of
the host name and the directory's real path): only trackers of that state directory start the
job, since claims, holds and submission records live there."""
SUBMISSION_HOST = "containertracker.submission-host"
OWNER = "containertracker.owner"
ACCOUNTING_ID = "containertracker.accounting-id"
QUEUE = "containertracker.queue"
SCHEMA_VERSION = "1"


@dataclass(frozen=True)
class Plan:
    """What must happen around a job's container besides running it.

    Stored as JSON in the ``containertracker.plan`` label so that any tracker of the session,
    in any process, can carry it out. Times are epoch seconds; paths are host paths.
    """

    hold: bool = False
    start_at: float | None = None
    deadline: float | None = None
    wallclock_limit: float | None = None
    stdin_path: str | None = None
    stdout_path: str | None = None
    stderr_path: str | None = None
    join_files: bool = False
    stage_out: dict[str, str] = field(default_factory=dict)
    """Container path -> host path, copied after the job ends."""
    stage_in: list[str] = field(default_factory=list)
    """Host paths bind-mounted read-only (checked again right before the job starts)."""

    @property
    def host_paths(self) -> list[tuple[str, str]]:
        """Every host path of the plan, with the template field that named it."""
        paths = [
            ("input_path", self.stdin_path),
            ("output_path", self.stdout_path),
            ("error_path", self.stderr_path),
        ]
        paths += [("stage_in_files", path) for path in self.stage_in]
        paths += [(f"stage_out_files[{src}]", path) for src, path in self.stage_out.items()]
        return [(what, path) for what, path in paths if path]

    @property
    def needs_finalizing(self) -> bool:
        """Whether output files or stage-out copies must be written after the job ends."""
        return bool(self.stdout_path or self.stderr_path or self.stage_out)

    def to_label(self) -> str:
        """Compact JSON without the defaults."""
        defaults = Plan()
        data = {k: v for k, v in asdict(self).items() if v != getattr(defaults, k)}
        return json.dumps(data, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_labels(cls, labels: Mapping[str, str]) -> Plan:
        """The plan of a container; containers made by other tools, and a label that is not
        a plan (edited by hand, say), give the empty plan: one bad container must not stop
        the scheduling of its session."""
        raw = labels.get(PLAN)
        if not raw:
            return cls()
        try:
            data: dict[str, Any] = json.loads(raw)
            return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})
        except (ValueError, TypeError, AttributeError):
            return cls()
