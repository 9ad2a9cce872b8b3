"""The exceptions containertracker raises: one tree, one class per DRMAA2 error we use.

::

    ContainerTrackerError                     (root; .error_id, .transient)
     +-- DeniedByDrmsError                    the engine or policy refused the request
     +-- DrmCommunicationError                the engine could not be reached or answered badly
     +-- TryLaterError                        the engine is busy; the same call may succeed later
     +-- WaitTimeoutError (also TimeoutError) wait() reached its deadline
     +-- InternalError                        a bug or an engine answer we do not understand
     +-- InvalidArgumentError                 the caller passed something wrong
     |    +-- JobNotFoundError                no job (or array job) with that id in this session
     +-- InvalidStateError                    the job is not in a state that allows the action
     +-- UnsupportedAttributeError            a JobTemplate field this tracker cannot honour
     +-- UnsupportedOperationError            an operation this tracker does not offer

Engine SDK exceptions never reach callers: each backend translates them in one place
(its ``map_engine_errors`` context manager) and chains the original as ``__cause__``.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "ContainerTrackerError",
    "DeniedByDrmsError",
    "DrmCommunicationError",
    "ErrorID",
    "InternalError",
    "InvalidArgumentError",
    "InvalidStateError",
    "JobNotFoundError",
    "TryLaterError",
    "UnsupportedAttributeError",
    "UnsupportedOperationError",
    "WaitTimeoutError",
]


class ErrorID(IntEnum):
    """DRMAA2 error identifiers, with the integers the Go drmaa2interface uses."""

    SUCCESS = 0
    DENIED_BY_DRMS = 1
    DRM_COMMUNICATION = 2
    TRY_LATER = 3
    SESSION_MANAGEMENT = 4
    TIMEOUT = 5
    INTERNAL = 6
    INVALID_ARGUMENT = 7
    INVALID_SESSION = 8
    INVALID_STATE = 9
    OUT_OF_RESOURCE = 10
    UNSUPPORTED_ATTRIBUTE = 11
    UNSUPPORTED_OPERATION = 12
    IMPLEMENTATION_SPECIFIC = 13


class ContainerTrackerError(Exception):
    """Root of every error containertracker raises on purpose.

    Attributes:
        error_id: the DRMAA2 error this class stands for.
        transient: True when repeating the same call later may succeed.
    """

    error_id: ErrorID = ErrorID.INTERNAL
    transient: bool = False


class DeniedByDrmsError(ContainerTrackerError):
    """The engine (or the server's policy) refused the request."""

    error_id = ErrorID.DENIED_BY_DRMS


class DrmCommunicationError(ContainerTrackerError):
    """The container engine could not be reached, or the connection broke."""

    error_id = ErrorID.DRM_COMMUNICATION
    transient = True


class TryLaterError(ContainerTrackerError):
    """The engine is busy or a conflicting operation is in progress; retry later."""

    error_id = ErrorID.TRY_LATER
    transient = True


class WaitTimeoutError(ContainerTrackerError, TimeoutError):
    """``wait`` reached its timeout before the job entered one of the wanted states."""

    error_id = ErrorID.TIMEOUT


class InternalError(ContainerTrackerError):
    """Something went wrong inside containertracker or the engine answered unexpectedly."""

    error_id = ErrorID.INTERNAL


class InvalidArgumentError(ContainerTrackerError, ValueError):
    """An argument (a template field, an id, a number) is wrong; the message says how."""

    error_id = ErrorID.INVALID_ARGUMENT


class JobNotFoundError(InvalidArgumentError, LookupError):
    """No job or array job with this id exists in the tracker's session."""


class InvalidStateError(ContainerTrackerError):
    """The job's state does not allow the requested action (e.g. resume a running job)."""

    error_id = ErrorID.INVALID_STATE


class UnsupportedAttributeError(ContainerTrackerError):
    """A JobTemplate field is set that this tracker cannot honour; it is never ignored."""

    error_id = ErrorID.UNSUPPORTED_ATTRIBUTE


class UnsupportedOperationError(ContainerTrackerError):
    """The tracker does not offer this operation."""

    error_id = ErrorID.UNSUPPORTED_OPERATION
