"""DRMAA2's session layer over any JobTracker: SessionManager, JobSession, Job, ArrayJob and
MonitoringSession, in Python spelling, with event callbacks, asyncio and futures.

Built on the public :class:`~containertracker.tracker.JobTracker` protocol only (and its
optional capabilities, :class:`~containertracker.tracker.ChangeFeed` above all), so it works
over every backend (docker, podman, swarm, remote) with no backend code::

    from containertracker import JobTemplate, SessionManager

    with SessionManager("docker") as manager:
        session = manager.create_job_session("analysis")
        job = session.run_job(JobTemplate(job_category="busybox", remote_command="true"))
        job.wait_terminated(60)

A job session is a tracker session (the jobs' ``drmaa2_jobsession`` label). Each open
session name (per manager) has one dispatcher thread that follows its jobs through the
tracker's change feed (or polls them at the tracker's resync interval when it has none) and
drives every wait, asyncio wait and future, and one delivery thread that runs callbacks,
event streams and future results: waiting for many jobs takes no thread per job. See the
README's "Sessions and jobs".
"""

from __future__ import annotations

from containertracker.sessions._delivery import JobEvent, StateCallback
from containertracker.sessions._dispatch import SAFETY_RESYNC
from containertracker.sessions._events import EventStream
from containertracker.sessions._jobs import ArrayJob, Job, MonitoredJob
from containertracker.sessions._manager import Capability, MonitoringSession, SessionManager
from containertracker.sessions._session import JobSession

__all__ = [
    "SAFETY_RESYNC",
    "ArrayJob",
    "Capability",
    "EventStream",
    "Job",
    "JobEvent",
    "JobSession",
    "MonitoredJob",
    "MonitoringSession",
    "SessionManager",
    "StateCallback",
]
