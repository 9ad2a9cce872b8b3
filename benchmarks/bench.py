"""containertracker's cost against the raw engine SDK, measured side by side in one run.

Each figure is the median of several runs of the tracker doing some work, divided by the
median of a hand-written raw-SDK script doing the same work in the same run, with the spread
(min-max of the per-run times). Run ``scripts/bench`` (both engines) or
``python benchmarks/bench.py --engine docker --repeat 5 --array-size 200 --scale 1000``.
``--engine swarm`` measures the swarm backend on the lab swarm (``scripts/bench --engine
swarm`` sets it up; ``CT_SWARM_URL`` names another manager) against docker-py services.

No timing is asserted anywhere: this prints numbers. ``tests/engine/test_bench_smoke.py`` runs
it with tiny sizes so it cannot rot.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx

import containertracker
from containertracker import JobTemplate
from containertracker.backends._common import parse_time
from containertracker.core import labels
from containertracker.core.tracker import ContainerTracker
from containertracker.sessions import Job, SessionManager
from containertracker.settings import Settings
from containertracker.testing import MemoryEngine

IMAGE = "containertracker/busybox:latest"
# The manager of the lab swarm scripts/setup-swarm builds (`scripts/setup-swarm env`).
_LAB_MANAGER = Path(__file__).resolve().parents[1] / ".containertracker/swarm/ct-node-1.sock"
URLS = {
    "docker": "unix:///var/run/docker.sock",
    "podman": "unix:///run/podman/podman.sock",
    "swarm": os.environ.get("CT_SWARM_URL", f"unix://{_LAB_MANAGER}"),
}
SINGLE_HOST = ("docker", "podman")
BENCH_LABEL = "containertracker.bench"


@dataclass
class Figure:
    """One comparison: per-run seconds of the tracker and of the raw script."""

    name: str
    ours: list[float]
    raw: list[float]

    def line(self) -> str:
        """``name  ratio  (ours median, raw median, spreads)``."""
        ours, raw = statistics.median(self.ours), statistics.median(self.raw)
        return (
            f"{self.name:<38} ratio {ours / raw:6.2f}   tracker {_ms(ours)} "
            f"[{_ms(min(self.ours))}-{_ms(max(self.ours))}]   raw {_ms(raw)} "
            f"[{_ms(min(self.raw))}-{_ms(max(self.raw))}]"
        )


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms"


class Raw:
    """The raw-SDK side: what a user would write by hand with docker-py or podman-py."""

    def __init__(self, engine: str, session: str) -> None:
        self.engine = engine
        self.labels = {BENCH_LABEL: session}
        if engine == "docker":
            import docker

            self.api: Any = docker.APIClient(base_url=URLS[engine], version="auto")
        else:
            import podman

            self.client: Any = podman.PodmanClient(base_url=URLS[engine])
            self.objects: dict[str, Any] = {}  # a hand-written script keeps its Container objects

    def create(self, command: list[str]) -> str:
        # Under the engine's init, as the tracker runs every job (so SIGTERM works): like for like.
        if self.engine == "docker":
            host_config = self.api.create_host_config(init=True)
            created = self.api.create_container(
                IMAGE, command=command, labels=self.labels, host_config=host_config
            )
            return str(created["Id"])
        container = self.client.containers.create(
            IMAGE, command=command, labels=self.labels, init=True
        )
        self.objects[container.id] = container
        return str(container.id)

    def start(self, cid: str) -> None:
        if self.engine == "docker":
            self.api.start(cid)
        else:
            self.objects[cid].start()

    def wait(self, cid: str) -> None:
        if self.engine == "docker":
            self.api.wait(cid)
        else:
            self.objects[cid].wait(condition=["exited", "stopped"])

    def finished_at(self, cid: str) -> datetime:
        if self.engine == "docker":
            value = self.api.inspect_container(cid)["State"]["FinishedAt"]
        else:
            value = self.client.containers.get(cid).attrs["State"]["FinishedAt"]
        parsed = parse_time(value)
        assert parsed is not None
        return parsed

    def list(self) -> int:
        if self.engine == "docker":
            return len(
                self.api.containers(
                    all=True, filters={"label": [f"{BENCH_LABEL}={self.labels[BENCH_LABEL]}"]}
                )
            )
        return len(
            self.client.containers.list(
                all=True, filters={"label": f"{BENCH_LABEL}={self.labels[BENCH_LABEL]}"}
            )
        )

    def cleanup(self) -> None:
        if self.engine == "docker":
            rows = self.api.containers(
                all=True, filters={"label": f"{BENCH_LABEL}={self.labels[BENCH_LABEL]}"}
            )
            ids = [row["Id"] for row in rows]
            remove = lambda cid: self.api.remove_container(cid, force=True)  # noqa: E731
        else:
            found = self.client.containers.list(
                all=True, filters={"label": f"{BENCH_LABEL}={self.labels[BENCH_LABEL]}"}
            )
            ids = [c.id for c in found]
            remove = lambda cid: self.client.containers.get(cid).remove(force=True)  # noqa: E731
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(remove, ids))


def _timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def _template(*command: str) -> JobTemplate:
    return JobTemplate(job_category=IMAGE, remote_command=command[0], args=command[1:])


def _tracker(engine: str, session: str, state_dir: str) -> ContainerTracker:
    tracker = containertracker.new_job_tracker(
        engine, session, {"engine_url": URLS[engine], "state_dir": state_dir}
    )
    assert isinstance(tracker, ContainerTracker)
    return tracker


def _clear(tracker: ContainerTracker, session: str | None = None) -> None:
    """Remove the containers of the tracker's session (or of ``session``, on its engine)."""
    rows = tracker._engine.list_containers({labels.SESSION: session or tracker._session})
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(tracker._engine.remove, [row.id for row in rows]))


@dataclass(frozen=True)
class Sizes:
    """How large the work of each row is (the command line's options, see :data:`_SIZE_HELP`)."""

    array_size: int = 200
    scale: int = 10_000
    big_array: int = 10_000
    big_array_limit: int = 50
    clients: int = 100
    requests: int = 1400
    output_size: int = 1 << 30
    waits: int = 1000


_SIZE_HELP = {
    "array_size": "tasks of the arrays with max_parallel 4 and without a limit",
    "scale": "jobs in the session for the listing rows and the opening of a tracker",
    "big_array": "tasks of the large throttled array, one run a side; 0 skips the row",
    "big_array_limit": "that array's max_parallel",
    "clients": "client threads on one server; 0 skips the row",
    "requests": "calls those clients make in all, in rounds of 7 (one round each at least)",
    "output_size": "bytes a job writes to stdout and stages out, for the memory row",
    "waits": "jobs of the session layer's wait_any_terminated row (in-memory engine)",
}


ROWS = ("calls", "remote", "clients", "arrays", "big-array", "listing", "output", "waits")
"""The groups of rows, in the order measured (``--only`` picks some): an engine's, and the
session layer's on the in-memory engine (``waits``)."""


def bench_engine(engine: str, repeat: int, sizes: Sizes, only: Collection[str] = ROWS) -> list[str]:
    """The local figures for one engine (the row groups ``only`` names); returns the lines."""
    session = f"bench-{uuid.uuid4().hex[:8]}"
    state_dir = tempfile.mkdtemp(prefix="ct-bench-")
    raw = Raw(engine, session)
    lines = [f"== {engine} ({repeat} runs each)"]
    with _tracker(engine, session, state_dir) as tracker:
        try:
            if "calls" in only:
                lines += _calls(engine, tracker, raw, state_dir, repeat)
            if "remote" in only:
                lines += _remote(engine, tracker, state_dir, repeat)
            if "clients" in only and sizes.clients:
                lines += _many_clients(engine, tracker, state_dir, sizes.clients, sizes.requests)
            if "arrays" in only:
                lines += _arrays(tracker, raw, max(1, repeat // 2), sizes.array_size)
            if "big-array" in only and sizes.big_array:
                lines += _big_array(
                    engine, tracker, raw, state_dir, sizes.big_array, sizes.big_array_limit
                )
            if "listing" in only:
                lines += _listing(tracker, raw, repeat, sizes.scale)
                lines += _memory(engine, session, state_dir)
                _clear(tracker)  # the tracker's passes list the session: small again
            if "output" in only:
                lines.append(_output_memory(engine, tracker, session, state_dir, sizes.output_size))
        finally:
            _clear(tracker)
            raw.cleanup()
    return lines


def _calls(
    engine: str, tracker: ContainerTracker, raw: Raw, state_dir: str, repeat: int
) -> list[str]:
    """Single calls: a submission, a run, a wait's and a callback's latency after the exit."""
    figures = [
        Figure(
            "add_job vs create+start",
            [_timed(lambda: tracker.add_job(_template("true"))) for _ in range(repeat)],
            [_timed(lambda: raw.start(raw.create(["true"]))) for _ in range(repeat)],
        ),
        Figure(
            "add_job+wait vs create+start+wait",
            [
                _timed(lambda: tracker.wait(tracker.add_job(_template("true")), 60))
                for _ in range(repeat)
            ],
            [_timed(lambda: _raw_run(raw, ["true"])) for _ in range(repeat)],
        ),
    ]
    lines = [f.line() for f in figures]
    lines.append(_wait_latency(tracker, raw, repeat))
    lines.append(_callback_latency(engine, tracker, state_dir, repeat))
    _clear(tracker)
    raw.cleanup()
    return lines


def _arrays(tracker: ContainerTracker, raw: Raw, runs: int, size: int) -> list[str]:
    """Arrays of ``size`` tasks with max_parallel 4 and without a limit, ``runs`` a side."""
    lines = []
    for limit in (4, 0):
        ours = []
        theirs = []
        for _ in range(runs):  # cleanup between runs is not timed
            ours.append(_timed(partial(_tracker_array, tracker, size, limit)))
            _clear(tracker)
            theirs.append(_timed(partial(_raw_array, raw, size, limit)))
            raw.cleanup()
        lines.append(Figure(f"array {size} tasks, max_parallel {limit}", ours, theirs).line())
    return lines


def _raw_run(raw: Raw, command: list[str]) -> None:
    cid = raw.create(command)
    raw.start(cid)
    raw.wait(cid)


def _wait_latency(tracker: ContainerTracker, raw: Raw, repeat: int) -> str:
    """Time from the container's exit (engine FinishedAt) to the wait call returning."""
    ours, theirs = [], []
    for _ in range(repeat):
        job_id = tracker.add_job(_template("sleep", "0.5"))
        tracker.wait(job_id, 60)
        returned = datetime.now(UTC)
        ours.append((returned - tracker._engine.inspect(job_id).finished_at).total_seconds())  # type: ignore[operator]
        cid = raw.create(["sleep", "0.5"])
        raw.start(cid)
        raw.wait(cid)
        returned = datetime.now(UTC)
        theirs.append((returned - raw.finished_at(cid)).total_seconds())
    return _delta_line("wait latency after exit", "tracker", ours, "raw blocking wait", theirs)


def _callback_latency(engine: str, tracker: ContainerTracker, state_dir: str, repeat: int) -> str:
    """Time from the container's exit to a JobSession's state-change callback (its
    dispatcher follows the tracker's change feed), against the tracker's own ``wait``
    returning, interleaved: both report a job's end once its outputs are complete."""
    name = f"bench-{uuid.uuid4().hex[:8]}"
    params = {"engine_url": URLS[engine], "state_dir": state_dir}
    ours, theirs = [], []
    with SessionManager(engine, params) as manager:
        session = manager.create_job_session(name)
        ended = threading.Event()
        stamps: list[datetime] = []

        def on_change(job: Job, old: object, new: containertracker.JobState) -> None:
            if new.terminal:
                stamps.append(datetime.now(UTC))
                ended.set()

        session.on_state_change(on_change)
        try:
            for _ in range(repeat):
                ended.clear()
                stamps.clear()
                job = session.run_job(_template("sleep", "0.5"))
                ended.wait(60)
                finished = tracker._engine.inspect(job.id).finished_at
                ours.append((stamps[0] - finished).total_seconds())  # type: ignore[operator]
                job_id = tracker.add_job(_template("sleep", "0.5"))
                tracker.wait(job_id, 60)
                returned = datetime.now(UTC)
                finished = tracker._engine.inspect(job_id).finished_at
                theirs.append((returned - finished).total_seconds())  # type: ignore[operator]
        finally:
            manager.destroy_job_session(name, force=True)
    return _delta_line("session callback latency after exit", "callback", ours, "wait", theirs)


def bench_many_waits(scale: int, repeat: int) -> str:
    """Ending ``scale`` jobs one at a time, each noticed by one
    ``session.wait_any_terminated(remaining)`` (one waiter for all), against the tracker's
    own ``wait(job)`` on each, per job; on the in-memory engine (no container costs), so
    that only the waiting is measured."""
    engine = MemoryEngine()
    state_dir = tempfile.mkdtemp(prefix="ct-bench-")

    def allocate(session: str, params: Any) -> ContainerTracker:
        settings = Settings.from_params(params)
        return ContainerTracker(
            engine.connect(), session, state_dir=settings.state_dir, stop_grace=0
        )

    backend = f"bench-memory-{uuid.uuid4().hex[:8]}"
    containertracker.register_job_tracker(backend, allocate)
    template = JobTemplate(job_category="busybox", remote_command="sleep", args=("300",))
    ours, theirs, threads = [], [], 0
    with SessionManager(backend, {"state_dir": state_dir}) as manager:
        for run in range(max(1, repeat // 2)):
            session = manager.create_job_session(f"many-{run}")
            remaining = session.run_bulk_jobs(template, 1, scale).jobs
            start = time.perf_counter()
            for job in list(remaining):
                engine.exit(job.id, 0)
                remaining.remove(session.wait_any_terminated(remaining, 60))
                threads = max(threads, threading.active_count())
            ours.append((time.perf_counter() - start) / scale)
            session.close()
            with allocate(f"plain-{run}", {"state_dir": state_dir}) as tracker:
                job_ids = tracker.list_array_jobs(tracker.add_array_job(template, 1, scale))
                start = time.perf_counter()
                for job_id in job_ids:
                    engine.exit(job_id, 0)
                    tracker.wait(job_id, 60)
                theirs.append((time.perf_counter() - start) / scale)
    return (
        _delta_line(
            f"wait_any_terminated, {scale} jobs, per job",
            "session",
            ours,
            "tracker wait",
            theirs,
        )
        + f"   ({threads} threads at most)"
    )


def _delta_line(
    name: str, label: str, ours: list[float], base_label: str, base: list[float]
) -> str:
    """``name  delta +x ms  label median [spread]  base_label median [spread]``."""
    delta = statistics.median(ours) - statistics.median(base)
    return (
        f"{name:<38} delta {delta * 1000:+7.1f} ms   "
        f"{label} {_ms(statistics.median(ours))} [{_ms(min(ours))}-{_ms(max(ours))}]   "
        f"{base_label} {_ms(statistics.median(base))} [{_ms(min(base))}-{_ms(max(base))}]"
    )


def _remote(engine: str, tracker: ContainerTracker, state_dir: str, repeat: int) -> list[str]:
    """The same calls through ``containertracker serve`` (a separate process on loopback) and
    the remote client, against the local tracker, interleaved. The server has a session of its
    own, so that neither tracker reacts to (and slows down) the other's jobs."""
    session = f"{tracker._session}-remote"
    with (
        _serving(engine, tracker, session, state_dir) as (url, _),
        containertracker.new_job_tracker("remote", session, {"remote_url": url}) as remote,
    ):
        calls = repeat * 4
        pairs: dict[str, tuple[list[float], list[float]]] = {
            name: ([], []) for name in ("add_job", "job_state", "job_info", "add_job+wait")
        }
        for _ in range(calls):
            for name, work in (
                ("add_job", lambda t: t.add_job(_template("true"))),
                ("add_job+wait", lambda t: t.wait(t.add_job(_template("true")), 60)),
            ):
                pairs[name][0].append(_timed(partial(work, remote)))
                pairs[name][1].append(_timed(partial(work, tracker)))
        remote_job, local_job = remote.list_jobs()[0], tracker.list_jobs()[0]
        for _ in range(calls * 5):
            for name in ("job_state", "job_info"):
                pairs[name][0].append(_timed(partial(getattr(remote, name), remote_job)))
                pairs[name][1].append(_timed(partial(getattr(tracker, name), local_job)))
        lines = [
            _delta_line(f"remote {name} vs local", "remote", ours, "local", local)
            for name, (ours, local) in pairs.items()
        ]
        latency = []
        for _ in range(repeat):
            job_id = remote.add_job(_template("sleep", "0.5"))
            remote.wait(job_id, 60)
            returned = datetime.now(UTC)
            finished = tracker._engine.inspect(job_id).finished_at
            latency.append((returned - finished).total_seconds())  # type: ignore[operator]
        label = "remote wait latency after exit"
        lines.append(f"{label:<38} {_ms(statistics.median(latency))} "
                     f"[{_ms(min(latency))}-{_ms(max(latency))}]")  # fmt: skip
        return lines


@contextlib.contextmanager
def _serving(
    engine: str, tracker: ContainerTracker, session: str, state_dir: str, *extra: str
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``containertracker serve`` of ``session`` on a free loopback port for the block
    (``extra``: more options), yielding its URL and process; the session's containers are
    removed after (through ``tracker``'s engine connection)."""
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "containertracker", "--backend", engine, "--engine-url",
         URLS[engine], "--session", session, "serve", "--port", str(port), *extra],
        env={**os.environ, "CONTAINERTRACKER_STATE_DIR": state_dir},
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_until_serving(server, url)
        yield url, server
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(30)
        _clear(tracker, session)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_serving(server: subprocess.Popen[bytes], url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"containertracker serve exited with {server.returncode}")
        try:
            httpx.get(url + "/openapi.json", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError("containertracker serve did not answer within 60 s")


def _tracker_array(tracker: ContainerTracker, size: int, limit: int) -> None:
    array_id = tracker.add_array_job(_template("true"), 1, size, 1, limit)
    for job_id in tracker.list_array_jobs(array_id):
        tracker.wait(job_id, 600)


def _raw_array(raw: Raw, size: int, limit: int) -> None:
    """The best plain script: a pool of ``limit`` workers (no limit: 8) each running tasks."""
    with ThreadPoolExecutor(limit or 8) as pool:
        list(pool.map(lambda _: _raw_run(raw, ["true"]), range(size)))


def _listing(tracker: ContainerTracker, raw: Raw, repeat: int, scale: int) -> list[str]:
    """list_jobs/job_state/job_info/list_array_jobs with ``scale`` containers in the session
    (the tasks of one array, created and never started: no tracker starts a container without
    its ``managed`` label) vs one raw list of them."""
    from containertracker.core.engine import ContainerSpec

    array_id = uuid.uuid4().hex[:16]
    task_labels = {
        labels.SESSION: tracker._session,
        labels.ARRAY_ID: array_id,
        BENCH_LABEL: raw.labels[BENCH_LABEL],
    }

    def create(task_id: int) -> str:
        task = {**task_labels, labels.TASK_ID: str(task_id)}
        return tracker._engine.create(ContainerSpec(image=IMAGE, command=("true",), labels=task))

    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(create, range(1, scale + 1)))
    raw_list = [_timed(raw.list) for _ in range(repeat)]
    figures = [
        Figure(
            f"list_jobs at {scale} jobs vs raw list",
            [_timed(tracker.list_jobs) for _ in range(repeat)],
            raw_list,
        ),
        Figure(
            f"job_state at {scale} jobs vs raw list",
            [_timed(lambda: tracker.job_state(ids[-1])) for _ in range(repeat)],
            raw_list,
        ),
        Figure(
            f"job_info at {scale} jobs vs raw list",
            [_timed(lambda: tracker.job_info(ids[-1])) for _ in range(repeat)],
            raw_list,
        ),
        Figure(
            f"list_array_jobs of {scale} tasks vs raw list",
            [_timed(lambda: tracker.list_array_jobs(array_id)) for _ in range(repeat)],
            raw_list,
        ),
    ]
    return [f.line() for f in figures]


_IMPORT_BENCH = f"import sys\nsys.path.insert(0, {str(Path(__file__).parent)!r})\nimport bench\n"
"""The start of a script run in a fresh process that uses this module's helpers."""


def _in_child(code: str) -> str:
    """Run ``code`` in a fresh Python process that has imported this module; its stdout."""
    return subprocess.run(
        [sys.executable, "-c", _IMPORT_BENCH + code], check=True, capture_output=True, text=True
    ).stdout


IDLE = 20.0
"""Seconds the open-a-tracker row leaves its tracker idle, to see what an idle tracker costs."""


def _memory(engine: str, session: str, state_dir: str) -> list[str]:
    """A fresh process (:func:`_open_child`) that opens the session, reads every job's state
    and then leaves its tracker idle for :data:`IDLE` seconds: the time to open it, the
    process's peak RSS, and the CPU the idle tracker and the engine's daemons used."""
    args = json.dumps([engine, session, state_dir])
    child = json.loads(_in_child(f"bench._open_child(*{args})"))
    baseline = _in_child("print(bench._peak_kib())").strip()
    jobs = child["jobs"]
    idle = f"idle tracker on {jobs} jobs, {IDLE:g} s"
    return [
        f"{f'open a tracker on {jobs} jobs':<38} {_ms(child['opened'])}",
        f"{f'peak RSS tracking {jobs} jobs':<38} {child['peak'] / 1024:7.1f} MiB "
        f"(this module in a bare process {int(baseline) / 1024:.1f} MiB)",
        f"{idle:<38} tracker CPU {child['idle_cpu']:.2f} s, engine daemons "
        f"{child['idle_engine']:.2f} s",
    ]


def _open_child(engine: str, session: str, state_dir: str) -> None:
    """Run in a fresh process by :func:`_memory`: print its figures as JSON."""
    start = time.perf_counter()
    with _tracker(engine, session, state_dir) as tracker:
        opened = time.perf_counter() - start
        job_ids = tracker.list_jobs()
        for job_id in job_ids:
            tracker.job_state(job_id)
        cpu, engine_cpu = time.process_time(), _engine_cpu(engine)
        time.sleep(IDLE)
        idle_cpu, idle_engine = time.process_time() - cpu, _engine_cpu(engine) - engine_cpu
    print(json.dumps({"jobs": len(job_ids), "opened": opened, "peak": _peak_kib(),
                      "idle_cpu": idle_cpu, "idle_engine": idle_engine}))  # fmt: skip


def _output_memory(
    engine: str, tracker: ContainerTracker, session: str, state_dir: str, size: int
) -> str:
    """Peak RSS of a fresh process whose job writes ``size`` bytes to stdout (into an output
    file) and stages out a file of ``size`` bytes, and of ``containertracker serve`` doing
    the same for a remote client; each beside the same at 100 KiB. Both are streamed, so this
    stays flat whatever ``size`` (before, both sat in memory whole: 783 MB more for a 400 MB
    copy)."""
    small = min(size, 100 << 10)
    params = {"engine_url": URLS[engine], "state_dir": state_dir}
    local = [_output_job(engine, session, params, n) for n in (size, small)]
    served = []
    for n in (size, small):
        with (
            tempfile.TemporaryDirectory(prefix="ct-bench-out-") as out_dir,
            _serving(
                engine, tracker, f"{session}-out", state_dir, "--allow-host-path", out_dir
            ) as (url, server),
        ):
            _output_job("remote", f"{session}-out", {"remote_url": url}, n, out_dir)
            served.append(_peak_kib(server.pid))
    label = f"peak RSS, job output + stage-out {_size(size)}"
    return (
        f"{label:<38} tracker {local[0] / 1024:7.1f} MiB ({_size(small)}: "
        f"{local[1] / 1024:.1f}), server {served[0] / 1024:7.1f} MiB ({served[1] / 1024:.1f})"
    )


def _output_job(
    backend: str, session: str, params: dict[str, str], size: int, out_dir: str | None = None
) -> int:
    """In a fresh process with a tracker of ``backend``, run a job writing ``size`` bytes to
    its output file and staging out as many (into ``out_dir``, or a temporary directory),
    check both files, delete the job; returns the process's peak RSS (KiB)."""
    command = f"head -c {size} /dev/zero > /big; head -c {size} /dev/zero | tr '\\0' x"
    with contextlib.ExitStack() as stack:
        if out_dir is None:
            out_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="ct-bench-out-"))
        template = JobTemplate(
            job_category=IMAGE,
            remote_command="sh",
            args=("-c", command),
            output_path=f"{out_dir}/stdout",
            stage_out_files={"/big": f"{out_dir}/big"},
        )
        script = (
            "import containertracker, os\n"
            "from containertracker import JobTemplate\n"
            f"t = containertracker.new_job_tracker({backend!r}, {session!r}, {params!r})\n"
            f"job = t.add_job(JobTemplate.from_go_json({template.to_go_json()!r}))\n"
            "state = t.wait(job, None)\n"
            f"sizes = [os.path.getsize(os.path.join({out_dir!r}, n)) for n in ('stdout', 'big')]\n"
            f"assert state.name == 'DONE' and sizes == [{size}, {size}], (state, sizes)\n"
            "t.delete_job(job)\n"
            "print(bench._peak_kib())\n"
            "t.close()\n"
        )
        out = _in_child(script)
    return int(out.strip())


def _size(size: int) -> str:
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor:
            return f"{size / factor:g} {unit}"
    return f"{size} B"


# -- at scale ---------------------------------------------------------------------------------

ENGINE_DAEMONS = {"docker": ("dockerd", "containerd"), "podman": ("podman",)}
"""The processes whose CPU time is the engine's (the per-container shims and runtimes come
and go, and are not counted)."""


def _engine_cpu(engine: str) -> float:
    """CPU seconds the engine's daemons have used so far (with their waited-for children)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            text = stat.read_text()
            name, fields = text[text.index("(") + 1 : text.rindex(")")], text.rsplit(")", 1)[1]
            if name in ENGINE_DAEMONS[engine]:
                total += sum(int(f) for f in fields.split()[11:15])  # utime stime cutime cstime
    return total / os.sysconf("SC_CLK_TCK")


def _big_array(
    engine: str, tracker: ContainerTracker, raw: Raw, state_dir: str, size: int, limit: int
) -> list[str]:
    """An array of ``size`` tasks with ``max_parallel`` ``limit``, submitted and waited for by
    a fresh process (:func:`_array_child`, in a session of its own) against the best raw
    script (a pool of ``limit`` threads each running tasks), one run a side: wall time, the
    submission's time, the tracker process's CPU (and its scheduler threads') against the
    engine daemons' over the same time, and its peak RSS."""
    session = f"{tracker._session}-array"
    args = json.dumps([engine, session, state_dir, size, limit])
    engine_before = _engine_cpu(engine)
    try:
        out = _in_child(f"bench._array_child(*{args})")
        engine_ours = _engine_cpu(engine) - engine_before
    finally:
        _clear(tracker, session)
    ours = json.loads(out)
    engine_before = _engine_cpu(engine)
    theirs = _timed(partial(_raw_array, raw, size, limit))
    engine_theirs = _engine_cpu(engine) - engine_before
    raw.cleanup()
    name = f"array {size} tasks, max_parallel {limit}"
    cpu = f"{name}: tracker CPU"
    return [
        Figure(name, [ours["wall"]], [theirs]).line(),
        f"{name}: add_array_job returned after {ours['submit']:.1f} s",
        f"{cpu:<38} {ours['cpu']:.1f} s ({ours['cpu'] / size * 1000:.2f} ms/task; scheduler "
        f"{ours['scheduler'] / size * 1000:.2f} ms/task), engine daemons {engine_ours:.1f} s "
        f"(raw side: {engine_theirs:.1f} s)",
        f"{name}: tracker peak RSS {ours['peak'] / 1024:.1f} MiB",
    ]


def _array_child(engine: str, session: str, state_dir: str, size: int, limit: int) -> None:
    """Run in a fresh process by :func:`_big_array`: submit the array, wait for every task,
    print the figures as JSON (seconds, KiB)."""
    start = time.perf_counter()
    with _tracker(engine, session, state_dir) as tracker:
        array_id = tracker.add_array_job(_template("true"), 1, size, 1, limit)
        submitted = time.perf_counter() - start
        for job_id in tracker.list_array_jobs(array_id):
            tracker.wait(job_id, None)
        wall = time.perf_counter() - start
        usage = os.times()
        threads = {thread.native_id: thread.name for thread in threading.enumerate()}
        scheduler = sum(
            _thread_cpu(tid)
            for tid, name in threads.items()
            if name.startswith(("containertracker-scheduler", "containertracker-start",
                                "containertracker-events"))
        )  # fmt: skip
    print(json.dumps({"submit": submitted, "wall": wall, "cpu": usage.user + usage.system,
                      "scheduler": scheduler, "peak": _peak_kib()}))  # fmt: skip


def _thread_cpu(native_id: int | None) -> float:
    """CPU seconds a thread of this process has used."""
    fields = Path(f"/proc/self/task/{native_id}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _peak_kib(pid: int | str = "self") -> int:
    """A process's peak RSS in KiB (VmHWM: ru_maxrss of a child starts from its parent's)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmHWM for process {pid}")


_CYCLE = ("add_job", "job_state", "job_info", "wait", "job_state", "job_info", "list_jobs")
"""One client's round of calls in the many-clients row: a submission, looks at it, a wait
for its end, more looks, a list of the session."""


@dataclass
class _Load:
    """What the clients of the many-clients row saw."""

    seconds: float = 0.0
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    submitted: list[str] = field(default_factory=list)
    lost: int = 0
    duplicated: int = 0

    def requests(self) -> int:
        return sum(len(times) for times in self.latencies.values())


def _load(trackers: list[Any], rounds: int) -> _Load:
    """Each tracker of ``trackers`` (one per client thread) makes ``rounds`` rounds of
    :data:`_CYCLE` at once with the others; then every submitted job must be listed once."""
    load = _Load(latencies={name: [] for name in _CYCLE})
    guard = threading.Lock()

    def client(tracker: Any) -> None:
        for _ in range(rounds):
            job_id = ""
            for name in _CYCLE:
                start = time.perf_counter()
                try:
                    result = _call(tracker, name, job_id)
                except Exception as exc:  # counted; the round goes on with its next call
                    with guard:
                        load.errors.append(f"{name}: {type(exc).__name__}: {exc}")
                    if name == "add_job":
                        break
                    continue
                elapsed = time.perf_counter() - start
                with guard:
                    load.latencies[name].append(elapsed)
                    if name == "add_job":
                        job_id = str(result)
                        load.submitted.append(job_id)

    start = time.perf_counter()
    with ThreadPoolExecutor(len(trackers)) as pool:
        list(pool.map(client, trackers))
    load.seconds = time.perf_counter() - start
    listed = Counter(trackers[0].list_jobs())
    submitted = set(load.submitted)
    load.lost = sum(1 for job_id in submitted if not listed[job_id])
    # Listed more than once, or returned by two submissions.
    load.duplicated = (
        sum(1 for job_id in submitted if listed[job_id] > 1) + len(load.submitted) - len(submitted)
    )
    return load


def _call(tracker: Any, name: str, job_id: str) -> object:
    """One call of :data:`_CYCLE` on ``tracker`` (about ``job_id``, the round's job)."""
    match name:
        case "add_job":
            return tracker.add_job(_template("true"))
        case "wait":
            return tracker.wait(job_id, 300)
        case "list_jobs":
            return tracker.list_jobs()
        case _:
            return getattr(tracker, name)(job_id)


def _many_clients(
    engine: str, tracker: ContainerTracker, state_dir: str, clients: int, requests: int
) -> list[str]:
    """``clients`` threads, each with its own remote client, on one ``containertracker
    serve`` over loopback, making about ``requests`` calls in all (rounds of :data:`_CYCLE`);
    then the same rounds with the local tracker shared by as many threads."""
    rounds = max(1, requests // (clients * len(_CYCLE)))
    session = f"{tracker._session}-clients"
    with _serving(engine, tracker, session, state_dir) as (url, server):
        with contextlib.ExitStack() as stack:
            remotes = [
                stack.enter_context(
                    containertracker.new_job_tracker("remote", session, {"remote_url": url})
                )
                for _ in range(clients)
            ]
            served = _load(remotes, rounds)
        server_peak = _peak_kib(server.pid)
    _clear(tracker)
    local = _load([tracker] * clients, rounds)
    _clear(tracker)
    lines = []
    for side, load in (("server", served), ("local", local)):
        label = f"{clients} clients, {load.requests()} calls, {side}"
        lines.append(
            f"{label:<38} {load.requests() / load.seconds:7.1f} req/s   errors "
            f"{len(load.errors)}   lost {load.lost}   duplicated {load.duplicated}"
            + (f"   (first error: {load.errors[0]})" if load.errors else "")
        )
    for name in dict.fromkeys(_CYCLE):
        label = f"  {name} p50/p99"
        lines.append(
            f"{label:<38} server {_percentiles(served.latencies[name])}   "
            f"local {_percentiles(local.latencies[name])}"
        )
    lines.append(f"{'  server peak RSS':<38} {server_peak / 1024:7.1f} MiB")
    return lines


def _percentiles(times: list[float]) -> str:
    if not times:
        return "-"
    ordered = sorted(times)
    p50 = ordered[len(ordered) // 2]
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"{p50 * 1000:7.1f} / {p99 * 1000:7.1f} ms"


# -- swarm ------------------------------------------------------------------------------------

_TASK_ENDED = frozenset({"complete", "failed", "rejected", "shutdown", "remove", "orphaned"})
RAW_SWARM_POLL = 0.05
"""Seconds between two looks of the raw swarm script at the manager's task list: the manager
sends no event when a task ends, so a hand-written script polls, here 20 times a second."""


class RawSwarm:
    """The raw side on a swarm: what a user would write by hand with docker-py's services.
    A job is a ``replicated-job`` service of one task, never restarted, under the engine's
    init (as the tracker's jobs); its end is learnt by polling the manager's task list every
    :data:`RAW_SWARM_POLL` seconds (one call, filtered by service)."""

    def __init__(self, session: str) -> None:
        import docker

        self.docker: Any = docker
        self.api: Any = docker.APIClient(base_url=URLS["swarm"], version="auto")
        self.labels = {BENCH_LABEL: session}

    def create(self, command: list[str]) -> str:
        """A job service that runs ``command`` once, released at creation."""
        types = self.docker.types
        container = types.ContainerSpec(IMAGE, args=command, labels=self.labels, init=True)
        template = types.TaskTemplate(container, restart_policy=types.RestartPolicy("none"))
        mode = types.ServiceMode("replicated-job", replicas=1, concurrency=1)
        # Named: the manager's random names collide within a few hundred services.
        name = f"bench-raw-{uuid.uuid4().hex[:12]}"
        created = self.api.create_service(template, name=name, mode=mode, labels=self.labels)
        return str(created["ID"])

    def ended(self, service_ids: set[str]) -> dict[str, dict[str, Any]]:
        """The ended task of each service of ``service_ids`` whose task has ended (one call)."""
        try:
            tasks = self.api.tasks(filters={"service": sorted(service_ids)})
        except self.docker.errors.APIError as exc:
            # A manager loaded by 200 starting tasks may answer "context deadline exceeded"
            # (500): look again (the tracker's event poller does the same).
            if exc.status_code != 500:
                raise
            return {}
        return {t["ServiceID"]: t for t in tasks if t["Status"]["State"] in _TASK_ENDED}

    def wait(self, service_id: str) -> dict[str, Any]:
        """Poll until the service's task has ended; return that task."""
        while True:
            ended = self.ended({service_id})
            if ended:
                return ended[service_id]
            time.sleep(RAW_SWARM_POLL)

    def run(self, command: list[str]) -> None:
        self.wait(self.create(command))

    def array(self, size: int, limit: int) -> None:
        """``size`` jobs, at most ``limit`` (0: all) running at once: without a limit all are
        created by 8 threads (as the tracker creates an array's tasks) and then polled
        together; with one, a job is created as soon as one of the ``limit`` ends (one poll
        for all of them)."""
        running: set[str] = set()
        todo = size
        if not limit:
            with ThreadPoolExecutor(8) as pool:
                running = set(pool.map(lambda _: self.create(["true"]), range(size)))
            todo = 0
        while todo or running:
            while todo and len(running) < limit:
                running.add(self.create(["true"]))
                todo -= 1
            ended = self.ended(running)
            running -= ended.keys()
            if not ended:
                time.sleep(RAW_SWARM_POLL)

    def cleanup(self, sessions: list[str]) -> None:
        """Remove the services of the run (the tracker's and the raw ones; every task has
        ended or is stopped with its service) and, on the lab swarm, their containers on the
        nodes (the manager cannot remove those)."""
        services = self.api.services(filters={"label": f"{BENCH_LABEL}={self.labels[BENCH_LABEL]}"})
        for session in sessions:
            services += self.api.services(filters={"label": f"{labels.SESSION}={session}"})
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda s: self.api.remove_service(s["ID"]), services))
        _prune_lab_nodes([f"{BENCH_LABEL}={self.labels[BENCH_LABEL]}"]
                         + [f"{labels.SESSION}={s}" for s in sessions])  # fmt: skip


def _prune_lab_nodes(label_filters: list[str]) -> None:
    """On the lab swarm (the nodes' sockets beside the manager's), remove the containers that
    carry one of ``label_filters`` on every node; elsewhere nothing (a real swarm's nodes need
    ``docker container prune``)."""
    import docker

    manager = URLS["swarm"].removeprefix("unix://")
    if not manager.endswith("/ct-node-1.sock"):
        return
    for node in ("ct-node-1", "ct-node-2", "ct-node-3"):
        path = Path(manager.replace("ct-node-1", node))
        if not path.exists():
            continue
        client = docker.APIClient(base_url=f"unix://{path}", version="auto")
        try:
            ids = {
                row["Id"]
                for label in label_filters
                for row in client.containers(all=True, filters={"label": label})
            }
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(partial(client.remove_container, force=True), ids))
        finally:
            client.close()


def bench_swarm(repeat: int, array_size: int) -> list[str]:
    """The swarm rows: the tracker's swarm backend against :class:`RawSwarm`, on the same
    swarm in the same run. A job's end is learnt by polling on both sides: the tracker's event
    poller looks at the tasks of its placed and running jobs every 0.05 s (and at everything
    every 0.2 s), the raw script at the tasks of its jobs every 0.05 s."""
    session = f"bench-{uuid.uuid4().hex[:8]}"
    state_dir = tempfile.mkdtemp(prefix="ct-bench-")
    raw = RawSwarm(session)
    nodes = len(raw.api.nodes())
    lines = [f"== swarm, {nodes} nodes ({repeat} runs each)"]
    with _tracker("swarm", session, state_dir) as tracker:
        try:
            # Untimed, once a side: connections made, the image and the nodes in caches.
            tracker.wait(tracker.add_job(_template("true")), 60)
            raw.run(["true"])
            ours_ids: list[str] = []
            raw_ids: list[str] = []
            add = Figure(
                "add_job vs service create",
                [_timed(lambda: ours_ids.append(tracker.add_job(_template("true"))))
                 for _ in range(repeat)],
                [_timed(lambda: raw_ids.append(raw.create(["true"]))) for _ in range(repeat)],
            )  # fmt: skip
            # Untimed: the swarm done with those jobs before the next row starts its own.
            for job_id in ours_ids:
                tracker.wait(job_id, 60)
            for service_id in raw_ids:
                raw.wait(service_id)
            # The two sides interleaved, so that neither has the swarm's slow moments to itself.
            run = Figure("add_job+wait vs create+poll tasks", [], [])
            for _ in range(repeat):
                run.ours.append(
                    _timed(lambda: tracker.wait(tracker.add_job(_template("true")), 60))
                )
                run.raw.append(_timed(lambda: raw.run(["true"])))
            lines += [add.line(), run.line()]
            lines.append(_swarm_wait_latency(tracker, raw, repeat))
            raw.cleanup([session])
            runs = max(1, repeat // 2)
            for limit in (4, 0):
                ours = []
                theirs = []
                for _ in range(runs):  # cleanup between runs is not timed
                    ours.append(_timed(partial(_tracker_array, tracker, array_size, limit)))
                    raw.cleanup([session])
                    theirs.append(_timed(partial(raw.array, array_size, limit)))
                    raw.cleanup([session])
                name = f"array {array_size} tasks, max_parallel {limit}"
                lines.append(Figure(name, ours, theirs).line())
        finally:
            raw.cleanup([session])
    return lines


def _swarm_wait_latency(tracker: ContainerTracker, raw: RawSwarm, repeat: int) -> str:
    """Time from the task's end as the manager records it (the task's status time, which
    job_info's finish_time is) to the wait call returning."""
    ours, theirs = [], []
    for _ in range(repeat):
        job_id = tracker.add_job(_template("sleep", "0.5"))
        tracker.wait(job_id, 60)
        returned = datetime.now(UTC)
        finished = tracker.job_info(job_id).finish_time
        assert finished is not None
        ours.append((returned - finished).total_seconds())
        task = raw.wait(raw.create(["sleep", "0.5"]))
        returned = datetime.now(UTC)
        finished = parse_time(task["Status"]["Timestamp"])
        assert finished is not None
        theirs.append((returned - finished).total_seconds())
    return _delta_line("wait latency after the task's end", "tracker", ours, "raw poll", theirs)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the benchmark on each engine, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--engine",
        action="append",
        choices=sorted(URLS),
        help="default: docker and podman (swarm: the lab swarm, or CT_SWARM_URL's manager)",
    )
    defaults = Sizes()
    parser.add_argument("--repeat", type=int, default=5)
    for name, text in _SIZE_HELP.items():
        default = getattr(defaults, name)
        parser.add_argument(
            "--" + name.replace("_", "-"), type=int, default=default, help=f"{text} ({default})"
        )
    parser.add_argument(
        "--only",
        action="append",
        choices=ROWS,
        help="measure only these groups of rows (repeatable; default all)",
    )
    parser.add_argument("--json", action="store_true", help="print the lines as a JSON list")
    args = parser.parse_args(argv)
    lines = [f"containertracker benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"]
    only = args.only or ROWS
    sizes = Sizes(**{name: getattr(args, name) for name in _SIZE_HELP})
    for engine in args.engine or SINGLE_HOST if set(only) - {"waits"} else ():
        if engine == "swarm":
            lines += bench_swarm(args.repeat, args.array_size)
        else:
            lines += bench_engine(engine, args.repeat, sizes, only)
        if not args.json:
            print("\n".join(lines), flush=True)
            lines = []
    if "waits" in only:
        lines.append("== the session layer over the in-memory engine")
        lines.append(bench_many_waits(args.waits, args.repeat))
    print(json.dumps(lines) if args.json else "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
