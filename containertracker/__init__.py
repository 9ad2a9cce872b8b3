"""containertracker: batch jobs as containers behind the DRMAA2 JobTracker interface.

``new_job_tracker("docker", "my-session")`` returns a tracker; see the README for a tour.
``SessionManager("docker")`` is DRMAA2's session layer on top of any tracker (job sessions,
Job objects, callbacks, asyncio; ``containertracker.sessions``).
Importing this package imports no engine SDK: backends load when first used.
"""

from __future__ import annotations

from loguru import logger

from containertracker import errors
from containertracker.errors import (
    ContainerTrackerError,
    DeniedByDrmsError,
    DrmCommunicationError,
    InternalError,
    InvalidArgumentError,
    InvalidStateError,
    JobNotFoundError,
    TryLaterError,
    UnsupportedAttributeError,
    UnsupportedOperationError,
    WaitTimeoutError,
)
from containertracker.models import CPU, OS, JobInfo, JobState, JobTemplate, Machine
from containertracker.registry import new_job_tracker, register_job_tracker, registered_job_trackers
from containertracker.sessions import ArrayJob, Job, JobSession, MonitoringSession, SessionManager
from containertracker.settings import PullPolicy, Settings
from containertracker.tracker import (
    HOLD,
    RELEASE,
    RESUME,
    SUSPEND,
    TERMINATE,
    ChangeFeed,
    Closer,
    ContactStringer,
    ControlAction,
    JobChanges,
    JobTemplater,
    JobTracker,
    Monitorer,
)

__all__ = [
    # value types
    "CPU",
    "OS",
    "JobInfo",
    "JobState",
    "JobTemplate",
    "Machine",
    # the contract
    "ChangeFeed",
    "Closer",
    "ContactStringer",
    "ControlAction",
    "JobChanges",
    "JobTemplater",
    "JobTracker",
    "Monitorer",
    "HOLD",
    "RELEASE",
    "RESUME",
    "SUSPEND",
    "TERMINATE",
    # the DRMAA2 session layer
    "ArrayJob",
    "Job",
    "JobSession",
    "MonitoringSession",
    "SessionManager",
    # registry and settings
    "new_job_tracker",
    "register_job_tracker",
    "registered_job_trackers",
    "PullPolicy",
    "Settings",
    # errors
    "errors",
    "ContainerTrackerError",
    "DeniedByDrmsError",
    "DrmCommunicationError",
    "InternalError",
    "InvalidArgumentError",
    "InvalidStateError",
    "JobNotFoundError",
    "TryLaterError",
    "UnsupportedAttributeError",
    "UnsupportedOperationError",
    "WaitTimeoutError",
]

__version__ = "0.1.0"

# A library stays silent unless the application asks: the CLI and server enable it.
logger.disable("containertracker")
