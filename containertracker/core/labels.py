"""The label schema that makes containers discoverable as jobs (pure).

``drmaa2_jobsession`` and ``drmaa2jobtemplate`` are drmaa2os' own labels, so the Go trackers
see our jobs and we see theirs. Everything else is ours, under ``containertracker.``.
"""

from __future__ import annotations

__all__ = [
    "ARRAY_ID",
    "MAX_PARALLEL",
    "PLAN",
    "SESSION",
    "STATE_DIR",
    "SUBMISSION",
    "TASK_ID",
    "TEMPLATE",
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
