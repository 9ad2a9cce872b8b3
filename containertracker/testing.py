"""An in-memory container engine for tests: no Docker, no Podman, no daemon.

:class:`MemoryEngine` implements :class:`~containertracker.core.engine.Engine` with containers
kept in a dict, so that a :class:`~containertracker.core.tracker.ContainerTracker` (with its
scheduler, event watcher and output writer) runs on it unchanged, as httpx's ``MockTransport``
stands in for the network::

    engine = MemoryEngine(images=["busybox:latest"])
    with ContainerTracker(engine, "my-session", state_dir=tmp_path) as tracker:
        job_id = tracker.add_job(JobTemplate(remote_command="true", job_category="busybox"))
        engine.exit(job_id, 0)  # the job's process ends
        assert tracker.wait(job_id, 5) is JobState.DONE

A container does nothing by itself: once started it runs until the test ends it with
:meth:`MemoryEngine.exit`, or a stop or removal ends it. Its process is taken to be a command
with no handler of its own for SIGTERM (``sleep``, most scripts), so a stop ends it as Docker
does: at once with exit code 143 (128 + SIGTERM) under an init (``ContainerSpec.init``, as a
tracker runs its jobs), which passes SIGTERM on; as PID 1 without one, where SIGTERM is
ignored, by SIGKILL after the grace (137). A paused container is killed at once (137), as the
adapters do (a frozen process cannot handle SIGTERM), and so is one removed while it runs.

The events a tracker follows are emitted in Docker's vocabulary, with the container's labels,
``image`` and ``name`` as attributes: ``create``, ``start``, ``pause``, ``unpause``, ``die``
(with ``exitCode``) when the process ends, before it a ``kill`` (with ``signal``) per signal
sent, after it ``stop`` when a stop ended it, and ``destroy`` for a removal. A tracker may
rely on ``die`` and ``destroy`` only: Podman names the others differently or not at all.
:meth:`MemoryEngine.history` lists every event emitted. An event stream opened with ``since``
first replays the recorded events from that time on, the one at ``since`` included (as Docker
does: a watcher that reconnects from the time of the last event it saw gets that one twice),
then follows the new ones.

What a test can make happen, deterministically:

* :meth:`MemoryEngine.fail_next`: the next call of an operation raises an error, e.g. a
  transient :class:`~containertracker.errors.DrmCommunicationError` (the engine is away);
* :meth:`MemoryEngine.block_next`: the next call of an operation waits at a :class:`Gate`
  until the test lets it through (or makes it fail), before it does anything or, with
  ``after``, once it is done but before it answers (a list is then stale when it arrives);
* :meth:`MemoryEngine.stale_lists`: lists answer as of a moment ago, as an engine whose list
  lags behind its events;
* :meth:`MemoryEngine.events_outage`: the event streams break, and the events of the outage
  are lost (not replayed either), as when the engine restarts (an ``EventWatcher``
  reconnects after it);
* :meth:`MemoryEngine.connect`: another connection to the same engine, for a second tracker
  (closing one connection leaves the others working);
* :meth:`MemoryEngine.remove_image`: an image is gone (as after ``docker rmi``);
* :class:`FakeClock`: time that passes when the test says so (the engine's, a scheduler's).

Errors are those of the real adapters: a missing container raises
:class:`~containertracker.errors.JobNotFoundError`, creating a container of a missing image
:class:`~containertracker.core.engine.ImageNotFoundError`, pausing a container that does not
run, or starting a paused one (Docker's 409),
:class:`~containertracker.errors.InvalidStateError`.

Not modelled: resource limits, restart policies, networks and ports, image contents (any
:meth:`~MemoryEngine.pull` succeeds), and the bound of an engine's event record (Docker
replays its last 256 events at most).
"""

from __future__ import annotations

import contextlib
import copy
import io
import posixpath
import queue
import secrets
import tarfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import BinaryIO, Literal

from containertracker.core.engine import (
    ACTIVE_STATUSES,
    ContainerRecord,
    ContainerSpec,
    ContainerSummary,
    EngineEvent,
    EngineInfo,
    ImageNotFoundError,
    check_log_tail,
    start_created,
)
from containertracker.core.hostfs import CHUNK_SIZE
from containertracker.errors import (
    DrmCommunicationError,
    InvalidArgumentError,
    InvalidStateError,
    JobNotFoundError,
)

__all__ = ["FakeClock", "Gate", "MemoryEngine", "Operation"]

Operation = Literal[
    "create",
    "start",
    "stop",
    "pause",
    "unpause",
    "remove",
    "inspect",
    "list_containers",
    "logs",
    "copy_from",
    "events",
    "images",
    "has_image",
    "pull",
    "info",
]
"""The engine operations a test can make fail or block (the :class:`Engine` methods)."""

_SIGTERM = 15
_SIGKILL = 9
_KILLED = 128 + _SIGKILL
"""The exit code of a process killed."""


class FakeClock:
    """A wall clock (epoch seconds) that moves only when the test moves it: pass it as the
    ``clock`` of a :class:`MemoryEngine` or a scheduler, to let time pass at once."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        """The time now."""
        return self.now

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass."""
        self.now += seconds


class Gate:
    """Holds one engine call until the test lets it through (see :meth:`MemoryEngine.block_next`):
    before it does anything, or, if ``after``, once it is done, before it answers.

    As a context manager it lets the call through at the end of the block at the latest, so
    that a test failing inside the block leaves no thread blocked.
    """

    def __init__(self, operation: Operation, *, after: bool = False) -> None:
        self.operation = operation
        self.after = after
        self.reached = threading.Event()
        """Set when the held call has arrived (and waits)."""
        self._opened = threading.Event()
        self._error: Exception | None = None

    def release(self, error: Exception | None = None) -> None:
        """Let the held call go on, or make it raise ``error``: without doing anything, or
        (``after``) having done it, as a call whose answer was lost (only the first release
        counts)."""
        if not self._opened.is_set():
            self._error = error
            self._opened.set()

    def __enter__(self) -> Gate:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def _hold(self) -> None:
        """Called by the held call: wait for the release."""
        self.reached.set()
        self._opened.wait()
        if self._error is not None:
            raise self._error


@dataclass
class _Container:
    id: str
    name: str
    spec: ContainerSpec
    created: float
    status: str = "created"
    exit_code: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    stdout: bytes = b""
    stderr: bytes = b""
    files: dict[str, bytes] = field(default_factory=dict)
    """Container path -> content: what :meth:`MemoryEngine.copy_from` finds."""


_StreamItem = EngineEvent | DrmCommunicationError | None
"""What an event stream's queue holds: an event, the error that breaks it, or its end."""


class _Events:
    """An event stream of one connection: a queue fed by the engine (first the replayed
    events, then new ones) until it is closed (None ends it), or broken by an outage (the
    error queued is raised)."""

    def __init__(self, labels: Mapping[str, str], detach: Callable[[_Events], None]) -> None:
        self.labels = dict(labels)
        self._queue: queue.SimpleQueue[_StreamItem] = queue.SimpleQueue()
        self._detach = detach

    def __iter__(self) -> Iterator[EngineEvent]:
        while isinstance(item := self._queue.get(), EngineEvent):
            yield item
        if item is not None:
            raise item

    def deliver(self, event: EngineEvent, labels: Mapping[str, str]) -> None:
        """Queue ``event`` if its container (with ``labels``) is one this stream follows."""
        if all(labels.get(key) == value for key, value in self.labels.items()):
            self._queue.put(event)

    def break_off(self) -> None:
        """End the iteration with an error (the engine went away)."""
        self._queue.put(DrmCommunicationError("the in-memory engine's event stream broke"))

    def close(self) -> None:
        """See :meth:`EventStream.close`."""
        self._detach(self)
        self._queue.put(None)


class _Daemon:
    """The engine's state, shared by its connections; everything under ``lock``."""

    def __init__(self, images: Iterable[str], clock: Callable[[], float]) -> None:
        self.lock = threading.Lock()
        self.clock = clock
        self.images = {_tagged(image) for image in images}
        self.containers: dict[str, _Container] = {}
        """By id, in creation order."""
        self.faults: dict[Operation, deque[Exception | Gate]] = {}
        self.streams: set[_Events] = set()
        self.outage = False
        self.history: list[EngineEvent] = []
        self.recorded: list[tuple[EngineEvent, Mapping[str, str]]] = []
        """The events a stream opened later may replay (not those of an outage), each with
        its container's labels."""
        self.stale_list: list[ContainerSummary] | None = None
        """What lists answer within :meth:`MemoryEngine.stale_lists`."""
        self.created = 0

    def find(self, ref: str) -> _Container:
        """The container with id, name or unique id prefix ``ref``."""
        if ref in self.containers:
            return self.containers[ref]
        containers = self.containers.values()
        matches = [c for c in containers if c.name == ref] or [
            c for c in containers if ref and c.id.startswith(ref)
        ]
        if len(matches) != 1:
            raise JobNotFoundError(f"no such container: {ref}")
        return matches[0]

    def emit(self, container: _Container, action: str, **extra: str) -> None:
        """Record an event about ``container`` and send it to the streams that follow it
        (none during an outage: the event is lost but for :meth:`MemoryEngine.history`)."""
        labels = container.spec.labels
        attributes = {**labels, "image": container.spec.image, "name": container.name, **extra}
        event = EngineEvent(container.id, action, self.clock(), attributes)
        self.history.append(event)
        if not self.outage:
            self.recorded.append((event, labels))
        for stream in self.streams:
            stream.deliver(event, labels)

    def end(
        self,
        container: _Container,
        exit_code: int,
        *,
        signals: tuple[int, ...] = (),
        stopped: bool = False,
    ) -> None:
        """The container's process ended, after ``signals`` were sent to it (a ``kill`` event
        each) and, if ``stopped``, by a stop (a ``stop`` event after the ``die``); an
        ``auto_remove`` container goes with it."""
        for signal in signals:
            self.emit(container, "kill", signal=str(signal))
        container.status = "exited"
        container.exit_code = exit_code
        container.finished_at = self.clock()
        self.emit(container, "die", exitCode=str(exit_code))
        if stopped:
            self.emit(container, "stop")
        if container.spec.auto_remove:
            self.remove(container)

    def remove(self, container: _Container) -> None:
        """Remove the container, killing it first if it runs."""
        if container.status in ACTIVE_STATUSES:
            self.end(container, _KILLED, signals=(_SIGKILL,))
        if self.containers.pop(container.id, None) is not None:
            self.emit(container, "destroy")

    def summary(self, container: _Container) -> ContainerSummary:
        """The container as a list shows it."""
        return ContainerSummary(
            container.id, container.status, dict(container.spec.labels), container.created
        )


class MemoryEngine:
    """An :class:`~containertracker.core.engine.Engine` whose containers live in memory.

    Thread-safe. See the module docstring for what it does and what a test can make happen.
    """

    name = "memory"
    url = "memory://"

    def __init__(
        self,
        images: Iterable[str] = ("busybox:latest",),
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """An empty engine with ``images`` present (a tag defaults to ``latest``); ``clock``
        gives the times of containers and events (epoch seconds)."""
        self._daemon = _Daemon(images, clock)
        self._closed = False
        self._streams: set[_Events] = set()

    def connect(self) -> MemoryEngine:
        """Another connection to this engine: the same containers, faults and events, and a
        :meth:`close` of its own."""
        connection = copy.copy(self)
        connection._closed = False
        connection._streams = set()
        return connection

    # -- what a test makes happen ---------------------------------------------------------------

    def exit(
        self,
        container_id: str,
        exit_code: int = 0,
        *,
        stdout: bytes = b"",
        stderr: bytes = b"",
        files: Mapping[str, bytes] | None = None,
    ) -> None:
        """End a running container's process with ``exit_code``, having written ``stdout``,
        ``stderr`` and ``files`` (container path -> content, for :meth:`copy_from`).

        Raises:
            JobNotFoundError: no such container.
            InvalidStateError: the container is not running.
        """
        with self._daemon.lock:
            container = self._daemon.find(container_id)
            if container.status != "running":
                raise InvalidStateError(f"container {container_id} is {container.status}")
            container.stdout += stdout
            container.stderr += stderr
            container.files.update(files or {})
            self._daemon.end(container, exit_code)

    def fail_next(self, operation: Operation, error: Exception) -> None:
        """Make the next call of ``operation`` (on any connection) raise ``error`` and do
        nothing else. Faults queued for one operation are met in turn."""
        with self._daemon.lock:
            self._daemon.faults.setdefault(operation, deque()).append(error)

    def block_next(self, operation: Operation, *, after: bool = False) -> Gate:
        """Make the next call of ``operation`` (on any connection) wait at the returned gate
        until :meth:`Gate.release`: before it does anything, or, ``after``, once it is done,
        before it answers (what it answers was taken before the wait: a list is stale when it
        arrives, as when another tracker acts while a slow list is on its way). Faults and
        gates queued for one operation are met in turn, one per call."""
        gate = Gate(operation, after=after)
        with self._daemon.lock:
            self._daemon.faults.setdefault(operation, deque()).append(gate)
        return gate

    @contextlib.contextmanager
    def stale_lists(self) -> Iterator[None]:
        """Within the block, :meth:`list_containers` (on any connection) answers with the
        containers as they were when the block began: their statuses then, those removed
        since still there, those created since missing. So answers an engine whose list lags
        behind its events (a task that ended, and was replaced, still listed as running)."""
        with self._daemon.lock:
            self._daemon.stale_list = [
                self._daemon.summary(c) for c in self._daemon.containers.values()
            ]
        try:
            yield
        finally:
            with self._daemon.lock:
                self._daemon.stale_list = None

    @contextlib.contextmanager
    def events_outage(self) -> Iterator[None]:
        """Within the block, the engine's event streams are down: the open ones end with
        DrmCommunicationError, new ones cannot be opened, and events are lost (they still
        appear in :meth:`history`)."""
        with self._daemon.lock:
            self._daemon.outage = True
            broken, self._daemon.streams = self._daemon.streams, set()
        for stream in broken:
            stream.break_off()
        try:
            yield
        finally:
            with self._daemon.lock:
                self._daemon.outage = False

    def history(self) -> list[EngineEvent]:
        """Every event emitted so far, oldest first."""
        with self._daemon.lock:
            return list(self._daemon.history)

    def remove_image(self, image: str) -> None:
        """Remove ``image`` (as ``docker rmi``): creating a container of it raises
        ImageNotFoundError until it is pulled again (existing containers are left alone)."""
        with self._daemon.lock:
            self._daemon.images.discard(_tagged(image))

    # -- Engine -----------------------------------------------------------------------------------

    def create(self, spec: ContainerSpec, *, start: bool = False) -> str:
        """See :meth:`Engine.create`; a name in use is an InvalidArgumentError. With
        ``start``, the container is created, then started as by :meth:`start` (two engine
        operations, as on Docker: each can be made to fail or block on its own)."""
        daemon = self._daemon
        with self._calling("create"), daemon.lock:
            if _tagged(spec.image) not in daemon.images:
                raise ImageNotFoundError(spec.image)
            daemon.created += 1
            name = spec.name or f"memory-{daemon.created}"
            if any(c.name == name for c in daemon.containers.values()):
                raise InvalidArgumentError(
                    f"cannot create the job container: the name {name!r} is in use "
                    "(choose another job_name)"
                )
            container = _Container(secrets.token_hex(32), name, spec, daemon.clock())
            daemon.containers[container.id] = container
            daemon.emit(container, "create")
        if start:
            start_created(self, container.id)
        return container.id

    def start(self, container_id: str, stdin: BinaryIO | None = None) -> None:
        """See :meth:`Engine.start`: ``stdin`` is read to its end (the data goes nowhere).
        Starting a running container does nothing; an ended one runs anew (as on Docker).

        Raises:
            InvalidStateError: the container is paused (Docker's 409).
        """
        try:
            with self._calling("start"):
                while stdin is not None and stdin.read(CHUNK_SIZE):
                    pass
                with self._daemon.lock:
                    self._run(self._daemon.find(container_id))
        finally:
            if stdin is not None:
                stdin.close()

    def stop(self, container_id: str, grace: float) -> None:
        """See :meth:`Engine.stop`: a running container ends at once, by SIGTERM (143) under
        an init, else by SIGKILL (137); a paused one is killed (137). Others are left as they
        are (no events). See the module docstring."""
        with self._calling("stop"), self._daemon.lock:
            container = self._daemon.find(container_id)
            if container.status == "paused":
                self._daemon.end(container, _KILLED, signals=(_SIGKILL,))
            elif container.status in ACTIVE_STATUSES:
                self._daemon.end(
                    container,
                    128 + _SIGTERM if container.spec.init else _KILLED,
                    signals=(_SIGTERM,) if container.spec.init else (_SIGTERM, _SIGKILL),
                    stopped=True,
                )

    def pause(self, container_id: str) -> None:
        """See :meth:`Engine.pause`.

        Raises:
            InvalidStateError: the container is not running.
        """
        self._switch("pause", container_id, "running", "paused")

    def unpause(self, container_id: str) -> None:
        """See :meth:`Engine.unpause`.

        Raises:
            InvalidStateError: the container is not paused.
        """
        self._switch("unpause", container_id, "paused", "running")

    def remove(self, container_id: str) -> None:
        """See :meth:`Engine.remove`."""
        with self._calling("remove"), self._daemon.lock:
            self._daemon.remove(self._daemon.find(container_id))

    def inspect(self, container_id: str) -> ContainerRecord:
        """See :meth:`Engine.inspect` (by id, name or unique id prefix)."""
        with self._calling("inspect"), self._daemon.lock:
            c = self._daemon.find(container_id)
            return ContainerRecord(
                id=c.id,
                name=c.name,
                image=c.spec.image,
                labels=dict(c.spec.labels),
                status=c.status,
                exit_code=c.exit_code,
                oom_killed=False,
                error="",
                created=_datetime(c.created),
                started_at=_datetime(c.started_at),
                finished_at=_datetime(c.finished_at),
                command=tuple(c.spec.command or ()),
                working_dir=c.spec.working_dir or "",
                user=c.spec.user or "",
                nano_cpus=c.spec.nano_cpus or 0,
            )

    def list_containers(self, labels: Mapping[str, str]) -> list[ContainerSummary]:
        """See :meth:`Engine.list_containers` (in creation order; see also
        :meth:`stale_lists`)."""
        with self._calling("list_containers"), self._daemon.lock:
            daemon = self._daemon
            rows = daemon.stale_list
            if rows is None:
                rows = [daemon.summary(c) for c in daemon.containers.values()]
            return [
                row
                for row in rows
                if all(row.labels.get(key) == value for key, value in labels.items())
            ]

    def logs(
        self, container_id: str, *, stdout: bool, stderr: bool, tail: int | None = None
    ) -> Iterator[bytes]:
        """See :meth:`Engine.logs`: what :meth:`exit` wrote, stdout before stderr; the last
        ``tail`` lines of that (whole lines, as Podman counts them)."""
        check_log_tail(tail)
        with self._calling("logs"), self._daemon.lock:
            container = self._daemon.find(container_id)
            output = (container.stdout if stdout else b"") + (container.stderr if stderr else b"")
        if tail is not None:
            pieces = output.split(b"\n")  # lines end at \n only, as in the engines' logs
            lines = [piece + b"\n" for piece in pieces[:-1]] + [pieces[-1]]
            output = b"".join(lines[-tail:] if pieces[-1] else lines[-tail - 1 :])
        return _chunks(output)

    def copy_from(self, container_id: str, path: str) -> Iterator[bytes]:
        """See :meth:`Engine.copy_from`: a file, or a directory of files, that :meth:`exit`
        wrote, as a tar archive named as Docker names it (the path's last component).

        Raises:
            InvalidArgumentError: nothing was written at ``path``.
        """
        with self._calling("copy_from"), self._daemon.lock:
            files = dict(self._daemon.find(container_id).files)
        path = path.rstrip("/")
        top = posixpath.basename(path)
        if path in files:
            return _chunks(_tar({top: files[path]}))
        below = {
            f"{top}/{name.removeprefix(path + '/')}": data
            for name, data in files.items()
            if name.startswith(path + "/")
        }
        if not below:
            raise InvalidArgumentError(f"{path} does not exist in the container")
        return _chunks(_tar(below, directory=top))

    def events(self, labels: Mapping[str, str], since: float) -> _Events:
        """See :meth:`Engine.events`: the recorded events from ``since`` on (that time
        included), then the new ones.

        Raises:
            DrmCommunicationError: within :meth:`events_outage`.
        """
        stream = _Events(labels, self._detach)
        with self._calling("events"), self._daemon.lock:
            daemon = self._daemon
            if daemon.outage:
                raise DrmCommunicationError("the in-memory engine's event stream is down")
            for event, event_labels in daemon.recorded:
                if event.time >= since:
                    stream.deliver(event, event_labels)
            daemon.streams.add(stream)
            self._streams.add(stream)
        return stream

    def images(self) -> list[str]:
        """See :meth:`Engine.images`."""
        with self._calling("images"), self._daemon.lock:
            return sorted(self._daemon.images)

    def has_image(self, image: str) -> bool:
        """See :meth:`Engine.has_image`."""
        with self._calling("has_image"), self._daemon.lock:
            return _tagged(image) in self._daemon.images

    def pull(self, image: str) -> None:
        """See :meth:`Engine.pull`: the image is present from then on."""
        with self._calling("pull"), self._daemon.lock:
            self._daemon.images.add(_tagged(image))

    def info(self) -> EngineInfo:
        """See :meth:`Engine.info`: a fixed description."""
        with self._calling("info"):
            return EngineInfo(
                host_name="memory",
                architecture="x86_64",
                cpus=4,
                memory=8 << 30,
                os_type="linux",
                kernel_version="6.1.0",
                engine_version="memory",
            )

    def machines(self) -> list[EngineInfo]:
        """See :meth:`Engine.machines`: the one fixed host."""
        return [self.info()]

    def close(self) -> None:
        """See :meth:`Engine.close`: ends this connection's event streams; later calls on it
        raise DrmCommunicationError (other connections go on)."""
        with self._daemon.lock:
            self._closed = True
            streams = list(self._streams)
        for stream in streams:
            stream.close()

    # -- internals ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _calling(self, operation: Operation) -> Iterator[None]:
        """Around an operation (the block): refuse it on a closed connection, then meet the
        fault a test queued for it, if any: raise its error, or wait at its gate, before the
        block or, for an ``after`` gate, once the block is done."""
        if self._closed:
            raise DrmCommunicationError("the in-memory engine connection is closed")
        with self._daemon.lock:
            queued = self._daemon.faults.get(operation)
            fault = queued.popleft() if queued else None
        if isinstance(fault, Exception):
            raise fault
        if fault is not None and not fault.after:
            fault._hold()
        yield
        if fault is not None and fault.after:
            fault._hold()

    def _run(self, container: _Container) -> None:
        """Start the container's process (see :meth:`start`); hold the daemon's lock."""
        if container.status == "paused":
            raise InvalidStateError(
                f"cannot start container {container.id}: it is paused (unpause it instead)"
            )
        if container.status in ACTIVE_STATUSES:
            return
        container.status = "running"
        container.started_at = self._daemon.clock()
        container.finished_at = None
        container.exit_code = 0
        self._daemon.emit(container, "start")

    def _switch(self, operation: Operation, container_id: str, before: str, after: str) -> None:
        """Move a container from status ``before`` to ``after``, emitting ``operation``."""
        with self._calling(operation), self._daemon.lock:
            container = self._daemon.find(container_id)
            if container.status != before:
                raise InvalidStateError(
                    f"cannot {operation} container {container_id}: it is {container.status}"
                )
            container.status = after
            self._daemon.emit(container, operation)

    def _detach(self, stream: _Events) -> None:
        with self._daemon.lock:
            self._daemon.streams.discard(stream)
            self._streams.discard(stream)


def _tagged(image: str) -> str:
    """``image`` with its tag (``latest`` if it names none), as engines look images up."""
    last = image.rsplit("/", 1)[-1]
    return image if ":" in last or "@" in last else f"{image}:latest"


def _datetime(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


def _chunks(data: bytes) -> Iterator[bytes]:
    """``data`` in pieces of the size engines stream in."""
    return iter([data[i : i + CHUNK_SIZE] for i in range(0, len(data), CHUNK_SIZE)])


def _tar(files: Mapping[str, bytes], directory: str | None = None) -> bytes:
    """A tar archive of ``files`` (member name -> content), led by a ``directory`` member
    if one is named."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        if directory is not None:
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            archive.addfile(info)
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
