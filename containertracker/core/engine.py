"""The small container-engine interface that every backend adapter implements.

DRMAA2 semantics live once, in :class:`containertracker.core.tracker.ContainerTracker`;
an adapter only carries out these container operations with its SDK, turns the SDK's
answers into the plain records below, and translates the SDK's exceptions into
:mod:`containertracker.errors` (a missing container is always
:class:`~containertracker.errors.JobNotFoundError`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import BinaryIO, Protocol

from containertracker.errors import ContainerTrackerError, InvalidArgumentError

__all__ = [
    "ACTIVE_STATUSES",
    "ENDED_STATUSES",
    "Bind",
    "ContainerRecord",
    "ContainerSpec",
    "ContainerSummary",
    "CreatedNotStartedError",
    "Engine",
    "EngineEvent",
    "EngineInfo",
    "EventStream",
    "ImageNotFoundError",
    "PortBinding",
    "Ulimit",
    "check_log_tail",
    "start_created",
]


ACTIVE_STATUSES = frozenset({"running", "paused", "restarting", "pending"})
"""Statuses of a container whose job is under way: its process runs, or will again, or
(``pending``, multi-node engines only) it was started and waits for the engine to place
and start it: it is started, and must never be started again."""
ENDED_STATUSES = frozenset({"exited", "dead"})
"""Statuses of a container whose process has ended for good."""


@dataclass(frozen=True)
class Bind:
    """A host path mounted into the container."""

    host_path: str
    container_path: str
    read_only: bool = False


@dataclass(frozen=True)
class Ulimit:
    """One resource limit (``ulimit``) of the container's processes; -1 means unlimited."""

    name: str
    soft: int
    hard: int


@dataclass(frozen=True)
class PortBinding:
    """A container port published on the host; empty host_port means "any free port"."""

    container_port: str  # "6445/tcp"
    host_ip: str = ""
    host_port: str = ""


@dataclass(frozen=True)
class ContainerSpec:
    """Everything needed to create one job container (engine-neutral)."""

    image: str
    labels: Mapping[str, str]
    command: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    environment: Mapping[str, str] = field(default_factory=dict)
    name: str | None = None
    working_dir: str | None = None
    """Created in the container if the image lacks it (Docker's behaviour, on every engine)."""
    user: str | None = None
    binds: tuple[Bind, ...] = ()
    nano_cpus: int | None = None
    mem_limit: int | None = None
    pids_limit: int | None = None
    ulimits: tuple[Ulimit, ...] = ()
    shm_size: int | None = None
    privileged: bool = False
    network_mode: str | None = None
    ipc_mode: str | None = None
    uts_mode: str | None = None
    pid_mode: str | None = None
    restart_policy: str | None = None
    auto_remove: bool = False
    exposed_ports: tuple[str, ...] = ()
    port_bindings: tuple[PortBinding, ...] = ()
    gpus: int | None = None
    """Number of GPUs to request from the nvidia driver; -1 = all; None = none."""
    open_stdin: bool = False
    """Keep stdin open until the data given to :meth:`Engine.start` has been written."""
    init: bool = False
    """Run the command under the engine's init (docker-init, catatonit) as PID 1, which
    forwards signals to it and reaps zombies: a command that is PID 1 itself ignores SIGTERM
    unless it installs a handler. Needs a private PID namespace."""
    placement: tuple[str, ...] | None = None
    """The host names (:attr:`EngineInfo.host_name` of :meth:`Engine.machines`) the job may
    run on; None: any. Single-host engines can ignore it: the conversion only sets it when
    some machine is not eligible, and it refuses a template the one host cannot run."""
    cpu_reservation: int | None = None
    """Nano CPUs the job needs free on its machine (``min_slots``); None: none. An engine
    that places jobs reserves them; a single host was checked at submission."""
    memory_reservation: int | None = None
    """Bytes of memory the job needs free on its machine (``min_phys_memory``); as
    :attr:`cpu_reservation`."""
    stop_grace: float | None = None
    """Seconds between the stop signal and SIGKILL, for engines that fix it when the job is
    created (swarm); the others take it at :meth:`Engine.stop`."""


@dataclass(frozen=True)
class ContainerSummary:
    """One row of a container listing: what a single list call returns per container."""

    id: str
    status: str
    """Docker vocabulary: created, running, paused, restarting, removing, exited, dead."""
    labels: Mapping[str, str]
    created: float
    """Creation time, epoch seconds."""


@dataclass(frozen=True)
class ContainerRecord:
    """A container's inspected state, in Docker vocabulary whatever the engine."""

    id: str
    name: str
    image: str
    labels: Mapping[str, str]
    status: str
    """created, running, paused, restarting, removing, exited or dead."""
    exit_code: int
    oom_killed: bool
    error: str
    created: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    command: tuple[str, ...]
    working_dir: str
    user: str
    nano_cpus: int
    node: str = ""
    """The host name of the machine the job runs or ran on; "" for a single-host engine
    (its host, :meth:`Engine.info`) or a job not placed yet."""


@dataclass(frozen=True)
class EngineEvent:
    """A container event; ``action`` uses Docker's names (``die``, not libpod's ``died``)."""

    container_id: str
    action: str
    time: float
    attributes: Mapping[str, str] = field(default_factory=dict)
    """The event's attributes: on both engines the container's labels, plus keys of the
    engine's own (``image``, ``name``; a ``die`` event's ``exitCode``)."""


@dataclass(frozen=True)
class EngineInfo:
    """The engine's host, as the Monitorer reports it."""

    host_name: str
    architecture: str
    cpus: int
    memory: int
    os_type: str
    kernel_version: str
    engine_version: str
    available: bool = True
    """Whether the engine places new jobs on this machine (a swarm node that is down or
    drained is not available)."""


class EventStream(Protocol):
    """An iterator of events that another thread can end with :meth:`close`."""

    def __iter__(self) -> Iterator[EngineEvent]: ...

    def close(self) -> None:
        """End the iteration (safe to call from another thread, and more than once)."""


class Engine(Protocol):
    """Container operations a backend must provide; all calls are blocking and thread-safe."""

    name: str
    """Backend name, e.g. ``docker``."""
    url: str
    """The API endpoint in use (for contact strings and messages)."""

    def create(self, spec: ContainerSpec, *, start: bool = False) -> str:
        """Create a container and return its full id; not started, unless ``start``.

        With ``start`` the container is created started (as :meth:`start` without stdin
        would start it), in as few engine calls as the engine allows: one on a swarm (a job
        service created released); an engine that creates and starts in two calls makes
        both (see :func:`start_created`).

        Raises:
            ImageNotFoundError: the image is not present (engines that check it).
            InvalidArgumentError: the engine rejected the spec.
            CreatedNotStartedError: (``start``) the container was created, and its start
                failed: it exists, and the caller removes it.
        """

    def start(self, container_id: str, stdin: BinaryIO | None = None) -> None:
        """Start a created container; with ``stdin`` (an open binary file, which this takes
        over), feed it to the container in pieces of bounded size (never whole in memory),
        then close the container's stdin and the file. The file is closed in every case,
        also when the start fails."""

    def stop(self, container_id: str, grace: float) -> None:
        """Send the stop signal, SIGKILL after ``grace`` seconds; return once it has exited."""

    def pause(self, container_id: str) -> None:
        """Freeze every process of a running container."""

    def unpause(self, container_id: str) -> None:
        """Thaw a paused container."""

    def remove(self, container_id: str) -> None:
        """Remove a container (forcefully) together with its anonymous volumes."""

    def inspect(self, container_id: str) -> ContainerRecord:
        """Return the container's current state.

        Raises:
            JobNotFoundError: no such container.
        """

    def list_containers(self, labels: Mapping[str, str]) -> list[ContainerSummary]:
        """List all containers (any status) carrying every ``labels`` pair, in one API call."""

    def logs(
        self, container_id: str, *, stdout: bool, stderr: bool, tail: int | None = None
    ) -> Iterator[bytes]:
        """The container's output so far, of the chosen streams (interleaved if both), as
        chunks of bounded size read from the engine as they are consumed (never whole in
        memory); the iteration ends at the end of the output (no follow).

        ``tail``: only the last ``tail`` lines (at least 1), as the engine counts them
        (the engine finds them without sending the rest; Docker counts each 16 KiB piece
        of a longer line as a line, Podman whole lines); None: all of it."""

    def copy_from(self, container_id: str, path: str) -> Iterator[bytes]:
        """A tar archive of ``path`` inside the container, as chunks of bounded size read as
        they are consumed (works after exit)."""

    def events(self, labels: Mapping[str, str], since: float) -> EventStream:
        """Container events since ``since`` (epoch seconds) for containers with ``labels``."""

    def images(self) -> list[str]:
        """Every tag of every local image, in the form a user may pass as JobCategory."""

    def has_image(self, image: str) -> bool:
        """Whether ``image`` is present locally."""

    def pull(self, image: str) -> None:
        """Pull ``image`` from its registry."""

    def info(self) -> EngineInfo:
        """Describe the engine's host."""

    def machines(self) -> list[EngineInfo]:
        """Describe every machine the engine runs jobs on (single-host engines: ``[info()]``;
        a swarm: one per node, with its availability)."""

    def close(self) -> None:
        """Release the connection; further calls are errors."""


class ImageNotFoundError(Exception):
    """Raised by :meth:`Engine.create` when the image is not present locally.

    Internal: the tracker turns it into a pull (per the pull policy) or an
    InvalidArgumentError that names the image.
    """

    def __init__(self, image: str) -> None:
        super().__init__(image)
        self.image = image


class CreatedNotStartedError(Exception):
    """Raised by :meth:`Engine.create` with ``start`` when the container was created but its
    start failed: the container ``container_id`` exists (the caller removes it), and
    ``error`` is why the start failed.

    Internal: the tracker removes the container and raises ``error``.
    """

    def __init__(self, container_id: str, error: ContainerTrackerError) -> None:
        super().__init__(container_id, error)
        self.container_id = container_id
        self.error = error


def check_log_tail(tail: int | None) -> None:
    """Check the ``tail`` of an :meth:`Engine.logs` call.

    Raises:
        InvalidArgumentError: ``tail`` is below 1 (0 would be read as "all" by some engines).
    """
    if tail is not None and tail < 1:
        raise InvalidArgumentError(f"a log tail must be at least 1 line, not {tail}")


def start_created(engine: Engine, container_id: str) -> None:
    """Start a container ``engine`` has just created, for an :meth:`Engine.create` with
    ``start`` on an engine that creates and starts in two calls (Docker, Podman).

    Raises:
        CreatedNotStartedError: the start failed (the container exists).
    """
    try:
        engine.start(container_id)
    except ContainerTrackerError as exc:
        raise CreatedNotStartedError(container_id, exc) from exc
