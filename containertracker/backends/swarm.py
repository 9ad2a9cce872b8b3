"""The Docker Swarm adapter: the jobs of one tracker spread over the nodes of a swarm.

A job is a ``replicated-job`` service of one task that is never restarted; its id is the
service's id. The service and its container carry the job's labels, so a tracker in any
process sees every job. What the swarm API (1.41, Docker 20.10) makes of that, as measured
on a 3-node lab swarm (README: "Outgrowing one machine"):

* Created = the service exists with ``MaxConcurrent: 0`` (no task at all); :meth:`start`
  sets it to 1, once. A job created started (:meth:`create` with ``start``) is a service
  created with ``MaxConcurrent: 1``, in one call. Any later spec update would run the job
  again (a new job iteration), so a started service is only ever updated to stop it
  (``MaxConcurrent: 0`` again).
* Statuses, in Docker's words, come from the service's *first* task: ``pending`` (started,
  waiting for the swarm to place and start it), ``running``, ``exited``. A task that ends
  other than complete (failed, rejected, shut down on a drained node) would be re-run by
  the swarm despite its restart policy ``none``: the adapter stops the service as soon as
  it sees that, and the job keeps the first task's outcome.
* The manager emits no event when a task changes state, so :meth:`events` polls the
  session's services and tasks (two API calls) every :data:`POLL_INTERVAL` seconds, and the
  tasks of the jobs placed or running (one call) every :data:`ACTIVE_POLL_INTERVAL` seconds
  in between, and emits Docker-vocabulary events (``start``, ``die``, ``destroy``) from the
  differences.
* There is no pause in the swarm API, and a task's container lives on a node whose engine
  the manager does not expose: suspend/resume, stdin, copies out of the container and host
  bind mounts are refused.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO

from containertracker.backends._common import (
    error_for_status,
    frame_payloads,
    log_params,
    parse_time,
)
from containertracker.backends.docker import DockerEngine, map_engine_errors
from containertracker.core.engine import (
    ContainerRecord,
    ContainerSpec,
    ContainerSummary,
    EngineEvent,
    EngineInfo,
)
from containertracker.core.plan import Plan
from containertracker.errors import (
    ContainerTrackerError,
    DrmCommunicationError,
    InternalError,
    InvalidArgumentError,
    InvalidStateError,
    UnsupportedAttributeError,
    UnsupportedOperationError,
)

__all__ = ["ACTIVE_POLL_INTERVAL", "POLL_INTERVAL", "SwarmEngine"]

try:
    import docker
    import docker.errors
except ImportError as exc:  # pragma: no cover - exercised only in a broken installation
    raise ImportError("the swarm backend needs the docker SDK (pip install docker)") from exc

API_VERSION = "1.41"
"""The first API with job services (Docker 20.10)."""
POLL_INTERVAL = 0.2
"""Seconds between two full looks of the event poller at the session's services and tasks."""
ACTIVE_POLL_INTERVAL = 0.05
"""Seconds between two quick looks of the event poller at the tasks of the jobs released and
not ended (while there are any)."""
_STOP_SLACK = 10.0
"""How much longer than the stop grace a stop waits for the task's container to go."""
_STOP_POLL = 0.1
_UPDATE_ATTEMPTS = 5
"""Updates of a job service tried before giving up on one that keeps changing under them."""
_NAME_DRAWS = 5
"""Creations of a service without a name tried before giving up on the manager's random
names (each attempt draws a new one)."""
_PLACING = frozenset(
    {"new", "allocated", "pending", "assigned", "accepted", "preparing", "ready", "starting"}
)
"""Task states before the container runs."""
_SIGKILLED = 137
_REJECTED = 125
"""The exit code a job whose task the swarm rejected reads (Docker's "could not run")."""
_UNSUPPORTED_PAUSE = (
    "the swarm API has no pause, and a task's container is on a node whose engine the "
    "manager does not expose"
)


@dataclass(frozen=True)
class _JobView:
    """What a job service and its tasks say about the job, in Docker's vocabulary."""

    status: str
    exit_code: int = 0
    error: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    node_id: str = ""
    task_id: str = ""
    rerun_to_stop: bool = False
    """The first task ended other than complete and the service is not stopped yet: the
    swarm would run it again."""


def _mode(spec: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The ``ReplicatedJob`` mode of a service spec; None for other services."""
    mode = (spec.get("Mode") or {}).get("ReplicatedJob")
    return mode if isinstance(mode, dict) else None


def _max_concurrent(service: Mapping[str, Any]) -> int:
    # Go's omitempty drops a 0.
    return int((_mode(service["Spec"]) or {}).get("MaxConcurrent") or 0)


def _iteration(service: Mapping[str, Any]) -> int:
    """How many times the service's spec was set: 0 = never updated (not started)."""
    return int(((service.get("JobStatus") or {}).get("JobIteration") or {}).get("Index") or 0)


def _never_released(service: Mapping[str, Any]) -> bool:
    """Whether the service was never released: no update since its creation."""
    return _iteration(service) == 0 and _max_concurrent(service) == 0


def _released(service: Mapping[str, Any]) -> bool:
    """Whether the service may run tasks (``MaxConcurrent`` above 0)."""
    return _max_concurrent(service) > 0


def _first_task(tasks: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The task the job's outcome is read from: the first the swarm made (later ones are
    re-runs the adapter stops)."""
    if not tasks:
        return None
    return min(
        tasks,
        key=lambda t: (
            int((t.get("JobIteration") or {}).get("Index") or 0),
            t.get("CreatedAt", ""),
        ),
    )


def _phase(service: Mapping[str, Any], tasks: Sequence[Mapping[str, Any]]) -> str:
    """Where the job is in the adapter's use of its service: ``created`` (held since its
    creation: job iteration 0, ``MaxConcurrent`` 0), ``released`` (``MaxConcurrent`` 1: by
    :meth:`SwarmEngine.start`, iteration 1, or at its creation, iteration 0) or ``stopped``
    (held again by a stop after an update: ``MaxConcurrent`` 0, iteration 1 or more). The
    manager changes a spec and its job iteration together (one store transaction), so one
    read never shows a release half made.

    The service and its tasks are two reads, and a release may fall between them: tasks of a
    service that reads as never released show that it was (no task exists before).
    """
    iteration = _iteration(service)
    if _max_concurrent(service) > 0 or (iteration == 0 and tasks):
        return "released"
    return "created" if iteration == 0 else "stopped"


def job_view(service: Mapping[str, Any], tasks: Sequence[Mapping[str, Any]]) -> _JobView:
    """The job a service (a plain inspect) and its tasks, read after it, make (pure)."""
    phase = _phase(service, tasks)
    task = _first_task(tasks)
    if task is None:
        if phase == "stopped":  # before its task existed, or the swarm dropped the task since
            return _JobView("exited", _SIGKILLED, "stopped (the swarm keeps no record of a task)")
        return _JobView("pending" if phase == "released" else "created")
    status = task.get("Status") or {}
    state = status.get("State", "")
    container = status.get("ContainerStatus") or {}
    code = int(container.get("ExitCode") or 0)
    when = parse_time(status.get("Timestamp"))
    created = parse_time(task.get("CreatedAt"))
    common = {"node_id": task.get("NodeID", ""), "task_id": task.get("ID", "")}
    if state in _PLACING:
        if phase == "stopped":
            return _JobView("exited", _SIGKILLED, "stopped before the swarm started it", **common)
        reason = status.get("Err") or status.get("Message") or ""
        return _JobView("pending", error=reason, **common)
    if state == "running":
        return _JobView("running", started_at=when, **common)
    if state == "complete":
        return _JobView("exited", 0, "", created, when, **common)
    error = status.get("Err") or ""
    if state == "rejected":
        code, error = _REJECTED, f"the swarm rejected the task: {error}"
    elif state != "failed":  # shutdown, remove, orphaned: stopped (by us, a lost node)
        code = code if code > 0 else _SIGKILLED
        error = error or f"the swarm ended the task ({state}: {status.get('Message', '')})"
    rerun = _released(service)
    return _JobView("exited", code or 1, error, created, when, rerun_to_stop=rerun, **common)


def _label_filters(labels: Mapping[str, str]) -> dict[str, list[str]]:
    return {"label": [f"{k}={v}" for k, v in labels.items()]} if labels else {}


_REFUSED: Mapping[str, str] = {
    "stage_in_files": "host files of the submitting host are not on the swarm's nodes",
    "input_path": "a swarm task has no stdin the tracker could write to",
    "stage_out_files": "the manager cannot copy files out of a task's container on a node",
    "extension privileged": "swarm services cannot be privileged",
    "extension net": "swarm tasks join swarm networks only",
    "extension ipc": "swarm services cannot share a host namespace",
    "extension uts": "swarm services cannot share a host namespace",
    "extension pid": "swarm services cannot share a host namespace",
    "extension exposedPorts": "a job's ports would be published on every node (routing mesh)",
    "extension gpus": "swarm places GPUs only as node generic resources",
    "extension restart": "a swarm job is never restarted (the adapter stops its re-runs)",
    "extension rm": "a job's container stays on its node; delete_job removes the service",
    "extension shm-size": "swarm services have no shm size (API 1.41)",
}
"""The template fields a swarm job cannot have, and why."""


def _refused_fields(spec: ContainerSpec) -> list[str]:
    """The fields of :data:`_REFUSED` that ``spec`` asks for."""
    plan = Plan.from_labels(spec.labels)
    asked = {
        "stage_in_files": bool(spec.binds),  # only stage-in makes binds
        "input_path": spec.open_stdin,
        "stage_out_files": bool(plan.stage_out),
        "extension privileged": spec.privileged,
        "extension net": spec.network_mode is not None,
        "extension ipc": spec.ipc_mode is not None,
        "extension uts": spec.uts_mode is not None,
        "extension pid": spec.pid_mode is not None,
        "extension exposedPorts": bool(spec.exposed_ports or spec.port_bindings),
        "extension gpus": spec.gpus is not None,
        "extension restart": spec.restart_policy is not None,
        "extension rm": spec.auto_remove,
        "extension shm-size": spec.shm_size is not None,
    }
    return [field for field, is_asked in asked.items() if is_asked]


@dataclass(frozen=True)
class _Seen:
    """A job as the event poller last saw it."""

    row: ContainerSummary
    view: _JobView
    service: Mapping[str, Any]


class _SwarmEvents:
    """An :class:`~containertracker.core.engine.EventStream` made by polling, in two kinds of
    look; events are emitted for the jobs whose status changed since they were last seen (the
    first full look is made when the stream opens).

    * A full look every :data:`POLL_INTERVAL` seconds lists the services and tasks with the
      labels (two API calls): new jobs, removed ones, releases and stops by anybody.
    * In between, while some job is released and not ended (pending on a node or running:
      the jobs whose end a wait or a throttled array waits for), a quick look every
      :data:`ACTIVE_POLL_INTERVAL` seconds lists the tasks of those jobs only (one call,
      filtered by service), so that an end is seen within that time, as a hand-written
      script polling the manager would see it. The quick look reads the services as the last
      full look saw them; a stop since shows in the next full look.
    """

    def __init__(self, engine: SwarmEngine, labels: Mapping[str, str]) -> None:
        self._engine = engine
        self._labels = dict(labels)
        self._closed = threading.Event()
        self._seen: dict[str, _Seen] = {}
        self._seen = self._full_look()
        self._next_full = time.monotonic() + POLL_INTERVAL

    def _full_look(self) -> dict[str, _Seen]:
        return {
            row.id: _Seen(row, view, service)
            for row, view, service in self._engine.job_rows_and_services(self._labels, self._seen)
        }

    def _active(self) -> dict[str, _Seen]:
        """The jobs the quick looks follow: running, or released and not waiting for a node
        (a task no node can take yet, e.g. its only candidate is drained, may wait for hours:
        the full looks follow it)."""
        return {
            job_id: seen
            for job_id, seen in self._seen.items()
            if seen.row.status == "running"
            or (seen.row.status == "pending" and (seen.view.node_id or not seen.view.task_id))
        }

    def __iter__(self) -> Iterator[EngineEvent]:
        while True:
            active = self._active()
            now = time.monotonic()
            pause = self._next_full - now
            if active:
                pause = min(pause, ACTIVE_POLL_INTERVAL)
            if self._closed.wait(max(0.0, pause)):
                return
            if active and time.monotonic() < self._next_full:
                yield from self._quick_look(active)
                continue
            looked = self._full_look()
            self._next_full = time.monotonic() + POLL_INTERVAL
            for job_id, seen in looked.items():
                before = self._seen.get(job_id)
                before_status = before.row.status if before else None
                yield from _changes(job_id, before_status, seen.row.status, seen.row, seen.view)
            for job_id in self._seen.keys() - looked.keys():
                row = self._seen[job_id].row
                yield EngineEvent(job_id, "destroy", time.time(), dict(row.labels))
            self._seen = looked

    def _quick_look(self, active: Mapping[str, _Seen]) -> Iterator[EngineEvent]:
        """The tasks of the ``active`` jobs (one call); events for those whose status moved."""
        by_service: dict[str, list[Mapping[str, Any]]] = {}
        for task in self._engine._tasks({"service": sorted(active)}):
            by_service.setdefault(task.get("ServiceID", ""), []).append(task)
        for job_id, seen in active.items():
            view = job_view(seen.service, by_service.get(job_id, []))
            if view.status == seen.row.status:
                continue
            row = dataclasses.replace(seen.row, status=view.status)
            self._seen[job_id] = _Seen(row, view, seen.service)
            yield from _changes(job_id, seen.row.status, view.status, row, view)

    def close(self) -> None:
        self._closed.set()


def _changes(
    job_id: str, before: str | None, status: str, row: ContainerSummary, view: _JobView
) -> Iterator[EngineEvent]:
    """Docker's events for a job whose status went from ``before`` (None: new) to ``status``."""
    if before == status:
        return
    now = time.time()
    attributes = dict(row.labels)
    if before is None:
        yield EngineEvent(job_id, "create", now, attributes)
    if status == "pending":
        yield EngineEvent(job_id, "pending", now, attributes)
    if status in ("running", "exited") and before not in ("running", "exited"):
        yield EngineEvent(job_id, "start", now, attributes)
    if status == "exited":
        yield EngineEvent(job_id, "die", now, {**attributes, "exitCode": str(view.exit_code)})


class SwarmEngine:
    """:class:`~containertracker.core.engine.Engine` over a Docker Swarm manager."""

    name = "swarm"

    def __init__(self, base_url: str | None = None, timeout: float = 60.0) -> None:
        """Connect to a swarm manager (``base_url`` None: ``DOCKER_HOST`` or the default
        socket), check that it is one.

        Raises:
            DrmCommunicationError: the daemon does not answer.
            InvalidArgumentError: the daemon is not a manager of a swarm.
        """
        self._timeout = timeout
        self._manager = DockerEngine(base_url, timeout)
        self.url = self._manager.url
        with map_engine_errors():
            kwargs = docker.utils.kwargs_from_env()
            if base_url:
                kwargs["base_url"] = base_url
            self._api = docker.APIClient(version=API_VERSION, timeout=int(timeout), **kwargs)
            swarm = self._api.info().get("Swarm") or {}
        if not swarm.get("ControlAvailable"):
            self.close()
            raise InvalidArgumentError(
                f"the docker engine at {self.url} is not a swarm manager "
                f"(swarm state {swarm.get('LocalNodeState', 'unknown')!r}); point the swarm "
                "backend at a manager node"
            )
        self._nodes_lock = threading.Lock()
        self._node_names: dict[str, str] = {}
        """Node id -> host name, filled from the node list when an unknown id shows up."""

    # -- API calls ----------------------------------------------------------------------------

    def _get(self, path: str, *args: str, **params: Any) -> Any:
        with map_engine_errors():
            return self._api._result(
                self._api._get(self._api._url(path, *args), params=params), True
            )

    def _services(self, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        filters = _label_filters(labels)
        services = (
            self._get("/services", filters=json.dumps(filters))
            if filters
            else self._get("/services")
        )
        return [s for s in services if _mode(s["Spec"]) is not None]

    def _tasks(self, filters: Mapping[str, list[str]]) -> list[dict[str, Any]]:
        tasks: list[dict[str, Any]] = (
            self._get("/tasks", filters=json.dumps(filters)) if filters else self._get("/tasks")
        )
        return tasks

    def _service(self, service_id: str) -> dict[str, Any]:
        """A job service by id, id prefix or name.

        Raises:
            JobNotFoundError: no such service, or it is no job.
        """
        service: dict[str, Any] = self._get("/services/{0}", service_id)
        if _mode(service["Spec"]) is None:
            raise error_for_status("swarm", 404, f"service {service_id} is not a job")
        return service

    def _update(self, service: Mapping[str, Any], change: Callable[[dict[str, Any]], None]) -> None:
        """Update a service's spec as ``change`` makes it, from the plain inspect (docker-py's
        update sends an UpdateConfig, which job services refuse), at the version read: a
        concurrent update fails instead of being overwritten."""
        spec = copy.deepcopy(dict(service["Spec"]))
        change(spec)
        with map_engine_errors():
            response = self._api._post_json(
                self._api._url("/services/{0}/update", service["ID"]),
                params={"version": service["Version"]["Index"]},
                data=spec,
            )
            self._api._raise_for_status(response)

    def _hold_at(
        self,
        service: Mapping[str, Any],
        max_concurrent: int,
        wanted: Callable[[Mapping[str, Any]], bool],
    ) -> bool:
        """Set the job service's ``MaxConcurrent`` (0: held), from the plain inspect
        ``service``, if ``wanted(service)``; returns whether it was set.

        A concurrent update (another tracker's release or stop, a re-run stopped) makes the
        swarm refuse this one as out of sequence: then the service is read again and, if the
        change is still ``wanted``, made on the new version.

        Raises:
            InternalError: the swarm refused the update (not for a concurrent one), or it
                kept changing under it.
        """

        def change(spec: dict[str, Any]) -> None:
            spec["Mode"]["ReplicatedJob"]["MaxConcurrent"] = max_concurrent

        for _ in range(_UPDATE_ATTEMPTS):
            if not wanted(service):
                return False
            try:
                self._update(service, change)
                return True
            except InternalError:
                fresh = self._service(service["ID"])
                if fresh["Version"]["Index"] == service["Version"]["Index"]:
                    raise  # the swarm refused it for another reason
                service = fresh
        raise InternalError(
            f"job service {service['ID']} changed {_UPDATE_ATTEMPTS} times while it was updated"
        )

    # -- job views ----------------------------------------------------------------------------

    def _settled_view(
        self, service: Mapping[str, Any], tasks: Sequence[Mapping[str, Any]]
    ) -> _JobView:
        """The job's view; stops the service if the swarm would re-run a task that ended
        other than complete (best effort: the next look tries again)."""
        view = job_view(service, tasks)
        if view.rerun_to_stop:
            with contextlib.suppress(ContainerTrackerError):
                self._hold_at(service, 0, _released)
        return view

    def job_rows(self, labels: Mapping[str, str]) -> list[tuple[ContainerSummary, _JobView]]:
        """Every job service with ``labels`` and its view, in two API calls."""
        return [(row, view) for row, view, _ in self.job_rows_and_services(labels)]

    def job_rows_and_services(
        self, labels: Mapping[str, str], known: Mapping[str, _Seen] | None = None
    ) -> list[tuple[ContainerSummary, _JobView, Mapping[str, Any]]]:
        """:meth:`job_rows`, each with the service it was read from.

        ``known`` (the event poller's last look) spares reading tasks that cannot matter: a
        job seen ended (and not to be stopped) whose service has not changed since keeps its
        view, a job never released has no task; the tasks of the others are read by service
        (no call when there are none). Without it, every task with ``labels`` is read (one
        call).
        """
        services = self._services(labels)
        by_service: dict[str, list[Mapping[str, Any]]] = {}
        kept: dict[str, tuple[ContainerSummary, _JobView]] = {}
        if known is None:
            tasks = self._tasks(_label_filters(labels))
        else:
            for service in services:
                seen = known.get(service["ID"])
                if (
                    seen is not None
                    and seen.row.status == "exited"
                    and not seen.view.rerun_to_stop  # until the re-run is stopped
                    and seen.service["Version"]["Index"] == service["Version"]["Index"]
                ):
                    kept[service["ID"]] = (seen.row, seen.view)
            wanted = [s["ID"] for s in services if s["ID"] not in kept and not _never_released(s)]
            tasks = self._tasks({"service": wanted}) if wanted else []
        for task in tasks:
            by_service.setdefault(task.get("ServiceID", ""), []).append(task)
        rows: list[tuple[ContainerSummary, _JobView, Mapping[str, Any]]] = []
        for service in services:
            if service["ID"] in kept:
                rows.append((*kept[service["ID"]], service))
                continue
            view = self._settled_view(service, by_service.get(service["ID"], []))
            created = parse_time(service.get("CreatedAt"))
            row = ContainerSummary(
                service["ID"],
                view.status,
                (service["Spec"].get("Labels") or {}),
                created.timestamp() if created else 0.0,
            )
            rows.append((row, view, service))
        return rows

    def _node_name(self, node_id: str) -> str:
        if not node_id:
            return ""
        with self._nodes_lock:
            if node_id not in self._node_names:
                self._node_names.update(
                    (node["ID"], (node.get("Description") or {}).get("Hostname", ""))
                    for node in self._get("/nodes")
                )
            return self._node_names.get(node_id, node_id)

    # -- Engine -------------------------------------------------------------------------------

    def create(self, spec: ContainerSpec, *, start: bool = False) -> str:
        """See :meth:`Engine.create`: a held job service (``MaxConcurrent: 0``); with
        ``start``, one created released (``MaxConcurrent: 1``), in the same one call.

        Raises:
            UnsupportedAttributeError: the spec asks for what a swarm job cannot have.
        """
        for field in _refused_fields(spec):
            raise UnsupportedAttributeError(
                f"{field} is not supported by the swarm backend: {_REFUSED[field]}"
            )
        body = self._service_spec(spec, released=start)
        # A service without a name gets a random one from the manager (adjective_surname, some
        # 25,000 of them), which may already be taken: with a few hundred jobs in the swarm
        # that happens (a 200-task array met it), and the manager refuses the creation (409)
        # instead of drawing again. So draw again; a name the template gave is the user's.
        attempts = 1 if spec.name else _NAME_DRAWS
        for attempt in range(1, attempts + 1):
            with map_engine_errors():
                try:
                    response = self._api._post_json(self._api._url("/services/create"), data=body)
                    return str(self._api._result(response, True)["ID"])
                except docker.errors.APIError as exc:
                    if exc.status_code != 409:
                        raise
                    if attempt == attempts:
                        raise InvalidArgumentError(
                            f"cannot create the job service: {exc.explanation}"
                            + (" (choose another job_name)" if spec.name else "")
                        ) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _service_spec(self, spec: ContainerSpec, *, released: bool) -> dict[str, Any]:
        container: dict[str, Any] = {
            "Image": spec.image,
            "Labels": dict(spec.labels),
            "Env": [f"{k}={v}" for k, v in spec.environment.items()],
            "Init": spec.init,
        }
        if spec.entrypoint:
            container["Command"] = list(spec.entrypoint)
        if spec.command is not None:
            container["Args"] = list(spec.command)
        if spec.working_dir:
            container["Dir"] = spec.working_dir
        if spec.user:
            container["User"] = spec.user
        if spec.stop_grace is not None:
            container["StopGracePeriod"] = int(spec.stop_grace * 1e9)
        if spec.ulimits:
            container["Ulimits"] = [
                {"Name": u.name, "Soft": u.soft, "Hard": u.hard} for u in spec.ulimits
            ]
        limits = {
            key: value
            for key, value in (
                ("NanoCPUs", spec.nano_cpus),
                ("MemoryBytes", spec.mem_limit),
                ("Pids", spec.pids_limit),
            )
            if value
        }
        reservations = {
            key: value
            for key, value in (
                ("NanoCPUs", spec.cpu_reservation),
                ("MemoryBytes", spec.memory_reservation),
            )
            if value
        }
        body: dict[str, Any] = {
            "Labels": dict(spec.labels),
            "TaskTemplate": {
                "ContainerSpec": container,
                "Resources": {"Limits": limits, "Reservations": reservations},
                "RestartPolicy": {"Condition": "none", "MaxAttempts": 0},
                "Placement": {"Constraints": self._constraints(spec.placement)},
            },
            "Mode": {"ReplicatedJob": {"MaxConcurrent": int(released), "TotalCompletions": 1}},
        }
        if spec.name:
            body["Name"] = spec.name
        return body

    def _constraints(self, hosts: tuple[str, ...] | None) -> list[str]:
        """Placement constraints that keep a job to ``hosts`` (None: anywhere). Swarm ANDs
        its constraints, so several hosts are allowed by excluding every other node."""
        if hosts is None:
            return []
        if len(hosts) == 1:
            return [f"node.hostname=={hosts[0]}"]
        others = {m.host_name for m in self.machines()} - set(hosts)
        return [f"node.hostname!={host}" for host in sorted(others)]

    def start(self, container_id: str, stdin: BinaryIO | None = None) -> None:
        """See :meth:`Engine.start`: release the held service, once (a second release would
        run the job again).

        Raises:
            InvalidStateError: the job was started before.
            UnsupportedAttributeError: ``stdin`` given (refused at creation already).
        """
        if stdin is not None:
            stdin.close()
            raise UnsupportedAttributeError("input_path is not supported by the swarm backend")
        if not self._hold_at(self._service(container_id), 1, _never_released):
            raise InvalidStateError(f"job {container_id} was started before")

    def stop(self, container_id: str, grace: float) -> None:
        """See :meth:`Engine.stop`: hold the service again (the swarm sends its task the stop
        signal, SIGKILL after the grace fixed at creation, and removes the container), then
        wait until no task of it runs. A job not started is left as it is."""
        service = self._service(container_id)
        self._hold_at(service, 0, _released)
        spec_grace = (service["Spec"]["TaskTemplate"].get("ContainerSpec") or {}).get(
            "StopGracePeriod"
        )
        limit = (spec_grace / 1e9 if spec_grace else max(grace, 10.0)) + _STOP_SLACK
        deadline = time.monotonic() + limit
        while any(
            (t.get("Status") or {}).get("State") in _PLACING | {"running"}
            for t in self._tasks({"service": [service["ID"]]})
        ):
            if time.monotonic() >= deadline:
                raise DrmCommunicationError(
                    f"the swarm did not stop job {container_id} within {limit:.0f} s"
                )
            time.sleep(_STOP_POLL)

    def pause(self, container_id: str) -> None:
        """Unsupported: see :data:`_UNSUPPORTED_PAUSE`."""
        raise UnsupportedOperationError(f"cannot suspend a swarm job: {_UNSUPPORTED_PAUSE}")

    def unpause(self, container_id: str) -> None:
        """Unsupported: see :data:`_UNSUPPORTED_PAUSE`."""
        raise UnsupportedOperationError(f"cannot resume a swarm job: {_UNSUPPORTED_PAUSE}")

    def remove(self, container_id: str) -> None:
        """See :meth:`Engine.remove`: stop, then remove the service (``service rm`` alone
        leaves a running task's container running, moby/moby#44312). The containers of
        ended tasks stay on their nodes (the manager cannot remove them)."""
        service = self._service(container_id)
        self.stop(service["ID"], 0)
        with map_engine_errors():
            self._api.remove_service(service["ID"])

    def inspect(self, container_id: str) -> ContainerRecord:
        """See :meth:`Engine.inspect`."""
        service = self._service(container_id)
        view = self._settled_view(service, self._tasks({"service": [service["ID"]]}))
        spec = service["Spec"]
        container = spec["TaskTemplate"].get("ContainerSpec") or {}
        limits = (spec["TaskTemplate"].get("Resources") or {}).get("Limits") or {}
        return ContainerRecord(
            id=service["ID"],
            name=spec.get("Name", ""),
            image=container.get("Image", ""),
            labels=spec.get("Labels") or {},
            status=view.status,
            exit_code=view.exit_code,
            oom_killed=False,  # the manager does not know; an OOM kill reads exit 137
            error=view.error,
            created=parse_time(service.get("CreatedAt")),
            started_at=view.started_at,
            finished_at=view.finished_at,
            command=(*container.get("Command", ()), *container.get("Args", ())),
            working_dir=container.get("Dir", ""),
            user=container.get("User", ""),
            nano_cpus=int(limits.get("NanoCPUs") or 0),
            node=self._node_name(view.node_id),
        )

    def list_containers(self, labels: Mapping[str, str]) -> list[ContainerSummary]:
        """See :meth:`Engine.list_containers`: the job services (two API calls: services and
        their tasks)."""
        return [row for row, _ in self.job_rows(labels)]

    def logs(
        self, container_id: str, *, stdout: bool, stderr: bool, tail: int | None = None
    ) -> Iterator[bytes]:
        """See :meth:`Engine.logs`: the logs of the job's (first) task, through the manager."""
        service = self._service(container_id)
        view = job_view(service, self._tasks({"service": [service["ID"]]}))
        if not view.task_id:
            return
        url = self._api._url("/tasks/{0}/logs", view.task_id)
        with map_engine_errors():
            response = self._api.get(
                url,
                params=log_params(stdout, stderr, tail),
                stream=True,
                timeout=self._timeout,
            )
            try:
                if response.status_code >= 400:
                    raise error_for_status("swarm", response.status_code, response.text.strip())
                yield from frame_payloads(response.raw, "swarm manager")
            finally:
                response.close()

    def copy_from(self, container_id: str, path: str) -> Iterator[bytes]:
        """Unsupported: the container is on a node the manager does not expose (stage-out is
        refused at creation)."""
        raise UnsupportedOperationError(
            "the swarm backend cannot copy files out of a task's container"
        )

    def events(self, labels: Mapping[str, str], since: float) -> _SwarmEvents:
        """See :meth:`Engine.events`: polled (the manager has no task events); events before
        the stream opened are not replayed (``since`` is not used)."""
        return _SwarmEvents(self, labels)

    def images(self) -> list[str]:
        """See :meth:`Engine.images`: the manager's images (a job's image must be on every
        node, or in a registry the nodes reach)."""
        return self._manager.images()

    def has_image(self, image: str) -> bool:
        """See :meth:`Engine.has_image`: on the manager."""
        return self._manager.has_image(image)

    def pull(self, image: str) -> None:
        """See :meth:`Engine.pull`: onto the manager (nodes pull for themselves)."""
        self._manager.pull(image)

    def info(self) -> EngineInfo:
        """See :meth:`Engine.info`: the manager's host."""
        return self._manager.info()

    def machines(self) -> list[EngineInfo]:
        """See :meth:`Engine.machines`: every node of the swarm."""
        machines = []
        for node in self._get("/nodes"):
            description = node.get("Description") or {}
            platform = description.get("Platform") or {}
            resources = description.get("Resources") or {}
            machines.append(
                EngineInfo(
                    host_name=description.get("Hostname", ""),
                    architecture=platform.get("Architecture", ""),
                    cpus=max(1, int(resources.get("NanoCPUs") or 0) // 1_000_000_000),
                    memory=int(resources.get("MemoryBytes") or 0),
                    os_type=platform.get("OS", ""),
                    kernel_version="",
                    engine_version=(description.get("Engine") or {}).get("EngineVersion", ""),
                    available=(node.get("Status") or {}).get("State") == "ready"
                    and (node.get("Spec") or {}).get("Availability") == "active",
                )
            )
        return sorted(machines, key=lambda m: m.host_name)

    def close(self) -> None:
        """See :meth:`Engine.close`."""
        self._manager.close()
        with contextlib.suppress(Exception):
            self._api.close()
