"""The state directory's marks are pruned once their job is gone, and a start under way is
seen by every process; the event watcher keeps a bounded memory of containers and reconnects
with replay; the in-memory engine stops containers and answers as Docker does (issues 12, 17)."""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from containertracker.core import watch
from containertracker.core.engine import ContainerSpec, EngineEvent
from containertracker.core.statestore import JobMarks, StateStore
from containertracker.core.watch import EventWatcher
from containertracker.errors import InvalidStateError
from containertracker.testing import MemoryEngine


def _age(store_root: Path, job_id: str, seconds: float) -> None:
    """Make a marks file look written ``seconds`` ago."""
    path = store_root / "jobs" / job_id
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_prune_drops_only_old_marks_of_its_scope_whose_job_is_gone(tmp_path: Path) -> None:
    mine = StateStore(tmp_path, scope=StateStore.scope_of("docker", "unix:///d", "s"))
    other = StateStore(tmp_path, scope=StateStore.scope_of("podman", "unix:///p", "s"))
    plain = StateStore(tmp_path)
    for job_id in ("gone", "alive", "young"):
        mine.update(job_id, hold=True)
    other.update("other-engine", hold=True)
    plain.update("unscoped", hold=True)
    for job_id in ("gone", "alive", "other-engine", "unscoped"):
        _age(tmp_path, job_id, 600)

    assert mine.prune({"alive"}, time.time(), limit=100) == 1
    assert mine.marks("gone").hold is None  # dropped
    for kept in ("alive", "young", "other-engine", "unscoped"):
        assert mine.marks(kept).hold is True, kept
    assert plain.prune(set(), time.time(), limit=100) == 0  # no scope: prunes nothing


def test_prune_is_bounded_and_resumes_where_it_stopped(tmp_path: Path) -> None:
    store = StateStore(tmp_path, scope="s")
    ids = [f"job{n:03}" for n in range(25)]
    for job_id in ids:
        store.update(job_id, hold=True)
        _age(tmp_path, job_id, 600)
    dropped = [store.prune(set(), time.time(), limit=10) for _ in range(3)]
    assert dropped == [10, 10, 5]
    assert os.listdir(tmp_path / "jobs") == []


def test_marks_of_many_jobs_read_those_recorded_and_default_the_others(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.update("held", hold=True)
    store.update("claimed", claimed_at=12.5)
    (tmp_path / "jobs" / "torn").write_text("{not json")  # a torn write reads as no marks
    marks = store.marks_of(["held", "claimed", "torn", "never"])
    assert marks == {
        "held": store.marks("held"),
        "claimed": store.marks("claimed"),
        "torn": JobMarks(),
        "never": JobMarks(),
    }
    assert marks["held"].hold is True and marks["claimed"].claimed_at == 12.5


def test_marks_keep_their_scope_when_another_store_updates_them(tmp_path: Path) -> None:
    StateStore(tmp_path, scope="a").update("j", hold=True)
    StateStore(tmp_path).update("j", hold=False)
    assert StateStore(tmp_path).marks("j").scope == "a"


def test_state_dir_identity_is_per_directory(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    os.symlink(tmp_path / "a", tmp_path / "link")
    a = StateStore(tmp_path / "a").identity
    assert StateStore(tmp_path / "link").identity == a  # the real path counts
    assert StateStore(tmp_path / "b").identity != a


def test_a_start_under_way_is_seen_until_it_ends(tmp_path: Path) -> None:
    """Another store (another process) sees a start under way while its block runs, and no
    longer afterwards; starts of the same job (or stripe) do not wait for each other."""
    store, other = StateStore(tmp_path), StateStore(tmp_path)
    assert not other.start_under_way("j")
    with store.starting("j"):
        assert other.start_under_way("j")
        with other.starting("j"):  # shared: a second start does not block
            assert store.start_under_way("j")
    assert not other.start_under_way("j")
    assert not store.start_under_way("j")


class _Events:
    """An engine whose only part is an event stream fed by the test."""

    name = "fake"

    def __init__(self) -> None:
        self.queue: queue.Queue[EngineEvent | None] = queue.Queue()

    def events(self, labels: Mapping[str, str], since: float) -> _Events:
        return self

    def __iter__(self) -> Iterator[EngineEvent]:
        while (event := self.queue.get()) is not None:
            yield event

    def close(self) -> None:
        self.queue.put(None)

    def send(self, container_id: str, action: str) -> None:
        self.queue.put(EngineEvent(container_id, action, time.time()))


def _settle(watcher: EventWatcher, engine: _Events) -> None:
    """Wait until the event thread handled everything sent so far."""
    seen = watcher.generation("marker")
    engine.send("marker", "start")
    watcher.wait_for_change("marker", seen, 30)
    assert watcher.generation("marker") != seen


def test_event_watcher_forgets_removed_and_least_recent_containers(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(watch, "_REMEMBERED", 100)
    engine = _Events()
    watcher = EventWatcher(engine, {})  # type: ignore[arg-type]
    try:
        engine.send("waited", "start")
        _settle(watcher, engine)
        seen = watcher.generation("waited")
        woke = threading.Event()

        def waiter() -> None:
            watcher.wait_for_change("waited", seen, 60)
            woke.set()

        thread = threading.Thread(target=waiter, daemon=True)
        thread.start()
        while "waited" not in watcher._waiters:  # registered as a waiter
            time.sleep(0.01)

        for n in range(1000):  # a long-running tracker sees many containers come and go
            engine.send(f"c{n}", "die")
        engine.send("removed", "start")
        engine.send("removed", "destroy")
        _settle(watcher, engine)
        assert watcher.remembered() <= 100
        assert "removed" not in watcher._generations
        assert not woke.is_set()  # the waited-for container kept its generation
        assert watcher.generation("waited") == seen

        # A forgotten container's generation never reads as one seen before it was forgotten.
        before = watcher.generation("c0")
        engine.send("c0", "start")
        _settle(watcher, engine)
        assert watcher.generation("c0") != before

        engine.send("waited", "die")
        assert woke.wait(30)
    finally:
        watcher.close()


def _container(engine: MemoryEngine, *, init: bool = True) -> str:
    spec = ContainerSpec(image="busybox", labels={"test": "1"}, command=("sleep", "9"), init=init)
    return engine.create(spec)


def test_the_event_watcher_reconnects_with_replay_from_its_last_event() -> None:
    """After its stream broke, the watcher opens it again from the time of the last event it
    saw: what the engine recorded since is delivered (not what an outage lost), and that last
    event a second time, as Docker replays it."""
    engine = MemoryEngine()
    seen: list[tuple[str, str]] = []
    received = threading.Condition()

    def on_event(event: EngineEvent) -> None:
        with received:
            seen.append((event.container_id, event.action))
            received.notify_all()

    watcher = EventWatcher(engine, {"test": "1"}, on_event=on_event)
    try:
        job = _container(engine)
        with received:
            assert received.wait_for(lambda: len(seen) == 1, 5)
        with engine.block_next("events") as reconnecting:
            with engine.events_outage():
                lost = _container(engine)
            assert reconnecting.reached.wait(5)  # the watcher is about to open it again
            engine.start(job)
        with received:
            assert received.wait_for(lambda: len(seen) >= 3, 5)
        assert seen == [(job, "create"), (job, "create"), (job, "start")]
        assert lost in {event.container_id for event in engine.history()}
    finally:
        watcher.close()


@pytest.mark.parametrize(
    ("init", "exit_code", "signals"), [(True, 143, ["15"]), (False, 137, ["15", "9"])]
)
def test_the_memory_engine_stops_a_container_as_docker_does(
    init: bool, exit_code: int, signals: list[str]
) -> None:
    """A stop ends a command with no SIGTERM handler at once under an init (143), else by
    SIGKILL after the grace (137), told as Docker tells it: a kill event per signal, die with
    the exit code, stop. A paused container cannot be started (Docker's 409), and a stop kills
    it."""
    engine = MemoryEngine()
    job = _container(engine, init=init)
    engine.start(job)
    engine.stop(job, grace=10)
    told = [
        (e.action, e.attributes.get("signal") or e.attributes.get("exitCode"))
        for e in engine.history()
        if e.action in ("kill", "die", "stop")
    ]
    assert told == [
        *(("kill", signal) for signal in signals),
        ("die", str(exit_code)),
        ("stop", None),
    ]
    assert engine.inspect(job).exit_code == exit_code

    paused = _container(engine, init=init)
    engine.start(paused)
    engine.pause(paused)
    with pytest.raises(InvalidStateError, match="paused"):
        engine.start(paused)
    engine.stop(paused, grace=10)
    assert engine.inspect(paused).exit_code == 137
