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
