"""containertracker: batch jobs as containers behind the DRMAA2 JobTracker interface.

``new_job_tracker("docker", "my-session")`` returns a tracker; see the README for a tour.
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
from containertracker.settings import PullPolicy, Settings
from containertracker.tracker import (
    HOLD,
    RELEASE,
    RESUME,
    SUSPEND,
    TERMINATE,
    Closer,
    ContactStringer,
    ControlAction,
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
    "Closer",
    "ContactStringer",
    "ControlAction",
    "JobTemplater",
    "JobTracker",
    "Monitorer",
    "HOLD",
    "RELEASE",
    "RESUME",
    "SUSPEND",
    "TERMINATE",
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
