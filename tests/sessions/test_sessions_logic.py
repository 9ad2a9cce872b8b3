"""The session layer's logic over real ContainerTrackers on the in-memory engine (no engine):
events exactly once per transition, waits over many jobs without a thread per job, asyncio,
futures, filters, session names across managers, and the feed-less (polling) and
incomplete-feed paths.

Trackers resync once a minute here, so only the change feed (and the session's own reads
after its control calls) can drive a test within its waits; the polling tests set a short
resync interval on purpose.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import as_completed
from pathlib import Path
from typing import Any

import pytest

import containertracker
from containertracker import (
    InvalidArgumentError,
    InvalidStateError,
    JobChanges,
    JobInfo,
    JobNotFoundError,
    JobState,
    JobTemplate,
    JobTracker,
    WaitTimeoutError,
)
from containertracker.core.tracker import ContainerTracker
from containertracker.sessions import Capability, Job, JobEvent, JobSession, SessionManager
from containertracker.settings import Settings
from containertracker.testing import MemoryEngine

UNSET, QUEUED, QUEUED_HELD = JobState.UNSET, JobState.QUEUED, JobState.QUEUED_HELD
RUNNING, SUSPENDED, DONE, FAILED = (
    JobState.RUNNING,
    JobState.SUSPENDED,
    JobState.DONE,
    JobState.FAILED,
)
WAIT = 10.0
"""The longest a test waits for something that takes milliseconds."""

Transition = tuple[str, JobState, JobState]


def template(**fields: Any) -> JobTemplate:
    return JobTemplate(remote_command="sleep", args=("300",), job_category="busybox", **fields)


class NoFeed:
    """A tracker without a change feed (as a Go server behind the remote client): every
    attribute of the real one but ``changes``."""

    def __init__(self, inner: ContainerTracker) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        if name == "changes":
            raise AttributeError(name)
        return getattr(self._inner, name)


class IncompleteFeed(NoFeed):
    """A feed that never knows which jobs changed: every answer says "re-read them all"."""

    def changes(self, since: int | None, timeout: float) -> JobChanges:
        answer: JobChanges = self._inner.changes(since, timeout)
        return JobChanges(answer.cursor, [], since is None)


class SlowOutputs(NoFeed):
    """A complete feed whose jobs' outputs take a while: ``wait(job, 0)`` says "not yet"
    the first few times after the job ended (a scheduler still writing its output files),
    and nothing else changes meanwhile, so the feed does not answer again."""

    NOT_YET = 3

    def __init__(self, inner: ContainerTracker) -> None:
        super().__init__(inner)
        self.asked: dict[str, int] = {}

    def changes(self, since: int | None, timeout: float) -> JobChanges:
        answer: JobChanges = self._inner.changes(since, timeout)
        return answer

    def wait(self, job_id: str, timeout: float | None) -> JobState:
        self.asked[job_id] = self.asked.get(job_id, 0) + 1
        if self.asked[job_id] <= self.NOT_YET:
            raise WaitTimeoutError(f"the outputs of {job_id} are still being written")
        state: JobState = self._inner.wait(job_id, timeout)
        return state


@pytest.fixture
def engine() -> MemoryEngine:
    return MemoryEngine()


@pytest.fixture
def backend_of(
    engine: MemoryEngine,
) -> Callable[[Callable[[ContainerTracker], object]], str]:
    """Register a backend whose trackers are ContainerTrackers on the test's engine, wrapped
    by ``wrap``; returns its name."""

    def register(wrap: Callable[[ContainerTracker], object] = lambda t: t) -> str:
        def allocate(session: str, params: Mapping[str, Any] | None) -> JobTracker:
            settings = Settings.from_params(params)
            tracker = ContainerTracker(
                engine.connect(),
                session,
                state_dir=settings.state_dir,
                stop_grace=0,
                resync_interval=settings.resync_interval,
            )
            wrapped = wrap(tracker)
            assert isinstance(wrapped, JobTracker)
            return wrapped

        name = f"memory-{uuid.uuid4().hex[:8]}"
        containertracker.register_job_tracker(name, allocate)
        return name

    return register


@pytest.fixture
def open_manager(
    backend_of: Callable[..., str], tmp_path: Path
) -> Iterator[Callable[..., SessionManager]]:
    """SessionManagers over the test's engine sharing one state directory (closed at the
    end); ``wrap`` wraps each tracker, ``resync_interval`` is the trackers' (and polling's)."""
    opened: list[SessionManager] = []
    backends: dict[object, str] = {}

    def open_one(
        wrap: Callable[[ContainerTracker], object] | None = None, resync_interval: float = 60
    ) -> SessionManager:
        if wrap not in backends:
            backends[wrap] = backend_of(wrap) if wrap else backend_of()
        manager = SessionManager(
            backends[wrap], {"state_dir": tmp_path / "state", "resync_interval": resync_interval}
        )
        opened.append(manager)
        return manager

    yield open_one
    for manager in opened:
        manager.close()


@pytest.fixture
def session(open_manager: Callable[..., SessionManager]) -> JobSession:
    return open_manager().create_job_session("logic")


def recorder() -> tuple[list[Transition], Callable[[Job, JobState, JobState], None]]:
    """A list of transitions and the callback that appends to it."""
    seen: list[Transition] = []

    def record(job: Job, old: JobState, new: JobState) -> None:
        seen.append((job.id, old, new))

    return seen, record


def test_run_job_events_exactly_once_per_transition(
    engine: MemoryEngine, session: JobSession
) -> None:
    """A job run through the session reports its first state (from UNSET), then each change
    once: suspend, resume and terminate, whoever saw it first (the feed or the call)."""
    assert session.event_driven
    seen, record = recorder()
    session.on_state_change(record)
    job = session.run_job(template())
    job.suspend()
    job.resume()
    job.terminate()
    assert job.wait_terminated(WAIT) is FAILED
    other = session.run_job(template())
    engine.exit(other.id, 0)
    assert other.wait_terminated(WAIT) is DONE
    session.close()  # the dispatcher has delivered everything once this returns
    assert [t for t in seen if t[0] == job.id] == [
        (job.id, UNSET, RUNNING),
        (job.id, RUNNING, SUSPENDED),
        (job.id, SUSPENDED, RUNNING),
        (job.id, RUNNING, FAILED),
    ]
    assert [t for t in seen if t[0] == other.id] == [
        (other.id, UNSET, RUNNING),
        (other.id, RUNNING, DONE),
    ]


def test_a_failing_callback_is_logged_and_delivery_goes_on(
    engine: MemoryEngine, session: JobSession
) -> None:
    """A callback that raises does not stop the others, nor later events."""
    seen, record = recorder()
    calls = []

    def broken(job: Job, old: JobState, new: JobState) -> None:
        calls.append(new)
        raise RuntimeError("callback bug")

    session.on_state_change(broken)
    job = session.run_job(template())
    job.on_state_change(record)
    engine.exit(job.id, 3)
    assert job.wait_terminated(WAIT) is FAILED
    session.close()
    assert calls == [RUNNING, FAILED]
    assert seen == [(job.id, RUNNING, FAILED)]  # registered after the first state


def test_hold_and_release_are_seen_without_an_engine_event(session: JobSession) -> None:
    """A hold changes no container (no engine event): the session reads the job after its own
    control call, so the callback and waits still see QUEUED_HELD and the release."""
    seen, record = recorder()
    array = session.run_bulk_jobs(template(), 1, 2, max_parallel=1)
    first, second = array.jobs
    second.on_state_change(record)
    assert array.progress() == {RUNNING: 1, QUEUED: 1}
    second.hold()
    second.release()
    first.terminate()
    assert second.wait_started(WAIT) is RUNNING
    session.close()
    assert seen == [
        (second.id, QUEUED, QUEUED_HELD),
        (second.id, QUEUED_HELD, QUEUED),
        (second.id, QUEUED, RUNNING),
    ]


def test_wait_any_started_and_terminated_over_a_throttled_array(
    engine: MemoryEngine, session: JobSession
) -> None:
    """wait_any_* return the job that got there, not one that did not."""
    array = session.run_bulk_jobs(template(), 1, 3, max_parallel=1)
    first, second, third = array.jobs
    assert session.wait_any_started(array.jobs, 0) == first
    with pytest.raises(WaitTimeoutError):
        session.wait_any_started([second, third], 0)
    with pytest.raises(WaitTimeoutError):
        session.wait_any_terminated(array.jobs, 0.05)
    engine.exit(first.id, 0)
    assert session.wait_any_terminated(array.jobs, WAIT) == first
    assert session.wait_any_started([second, third], WAIT) == second
    assert array.progress() == {DONE: 1, RUNNING: 1, QUEUED: 1}


def test_a_thousand_jobs_waited_for_by_one_waiter_without_a_thread_per_job(
    engine: MemoryEngine, session: JobSession
) -> None:
    """wait_any_terminated over 1000 jobs, a job ending before each call, returns each in
    turn; the process's thread count does not grow with the jobs waited for."""
    array = session.run_bulk_jobs(template(), 1, 1000)
    remaining = array.jobs
    threads_before = threading.active_count()
    most_threads = threads_before
    order = []
    for job in reversed(array.jobs):  # end them in the reverse of the task order
        engine.exit(job.id, 0)
        done = session.wait_any_terminated(remaining, WAIT)
        most_threads = max(most_threads, threading.active_count())
        order.append(done)
        remaining = [j for j in remaining if j != done]
    assert order == list(reversed(array.jobs))
    assert most_threads <= threads_before + 2
    assert array.progress() == {DONE: 1000}


def test_asyncio_gather_over_an_array_and_the_event_stream(
    engine: MemoryEngine, session: JobSession
) -> None:
    """asyncio.gather over every task's wait_terminated_async completes when they end, with
    no thread per wait; session.events() streams each change once."""

    async def scenario() -> tuple[list[Job], list[JobState], list[JobEvent]]:
        array = session.run_bulk_jobs(template(), 1, 20)
        stream = session.events()
        threads = threading.active_count()
        waits = asyncio.gather(*(job.wait_terminated_async(WAIT) for job in array.jobs))
        await asyncio.sleep(0)  # every wait is registered
        assert threading.active_count() <= threads
        for number, job in enumerate(array.jobs):
            engine.exit(job.id, number % 2)
        states = await waits
        events = []
        async for event in stream:
            events.append(event)
            if len(events) == 20:
                break
        assert await session.wait_any_terminated_async(array.jobs, 0) == array.jobs[0]
        return array.jobs, states, events

    jobs, states, events = asyncio.run(scenario())
    assert states == [DONE, FAILED] * 10
    assert sorted((e.job.id, e.old_state, e.new_state) for e in events) == sorted(
        (j.id, RUNNING, DONE if n % 2 == 0 else FAILED) for n, j in enumerate(jobs)
    )


def test_futures_complete_with_the_final_job_info(
    engine: MemoryEngine, session: JobSession
) -> None:
    """job.future() works with as_completed: each completes with the job's final JobInfo."""
    jobs = [session.run_job(template()) for _ in range(5)]
    futures = {job.future(): job for job in jobs}
    for code, job in enumerate(jobs):
        engine.exit(job.id, code)
    finished = {futures[f].id: f.result() for f in as_completed(futures, timeout=WAIT)}
    assert {job_id: info.exit_status for job_id, info in finished.items()} == {
        job.id: code for code, job in enumerate(jobs)
    }
    for info in finished.values():
        assert info.state is (DONE if info.exit_status == 0 else FAILED)
    assert jobs[0].future() is jobs[0].future()


def test_get_jobs_filters_and_follows_jobs_of_other_sessions_objects(
    engine: MemoryEngine, open_manager: Callable[..., SessionManager]
) -> None:
    """get_jobs applies the DRMAA2 filter; a job run through another JobSession of the same
    session is listed, followed, and waitable here."""
    manager = open_manager()
    here = manager.create_job_session("filters")
    there = manager.open_job_session("filters")
    done, failed, running = (there.run_job(template()) for _ in range(3))
    engine.exit(done.id, 0)
    engine.exit(failed.id, 2)
    assert failed.wait_terminated(WAIT) is FAILED and done.wait_terminated(WAIT) is DONE
    assert {j.id for j in here.get_jobs()} == {done.id, failed.id, running.id}
    assert here.get_jobs(JobInfo()) == here.get_jobs(None)
    assert here.get_jobs(JobInfo(state=DONE)) == [done]
    assert here.get_jobs(JobInfo(exit_status=2)) == [failed]
    assert here.get_jobs(JobInfo(state=RUNNING)) == [running]
    (mine,) = here.get_jobs(JobInfo(id=running.id))
    engine.exit(running.id, 0)
    assert here.wait_any_terminated([mine], WAIT) == running
    array = there.run_bulk_jobs(template(), 1, 2)
    assert here.get_job_array(array.id).jobs == array.jobs


def test_waits_end_with_the_job_or_the_session(session: JobSession) -> None:
    """A reaped job's waits raise JobNotFoundError; closing the session ends waits under way
    with InvalidStateError, and every later call raises it."""
    job = session.run_job(template())
    job.terminate()
    job.wait_terminated(WAIT)
    job.reap()
    with pytest.raises(JobNotFoundError):
        job.wait_terminated(WAIT)
    running = session.run_job(template())
    failures: list[BaseException] = []

    def waiter() -> None:
        try:
            running.wait_terminated(None)
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=waiter)
    thread.start()
    while not session._dispatcher._watches and thread.is_alive():  # the waiter is waiting
        thread.join(0.001)
    session.close()
    thread.join(WAIT)
    assert len(failures) == 1 and isinstance(failures[0], InvalidStateError)
    with pytest.raises(InvalidStateError):
        session.run_job(template())
    with pytest.raises(InvalidStateError):
        running.wait_terminated(0)


def test_wait_arguments_are_checked(session: JobSession) -> None:
    """No jobs, a negative timeout or a job of another session are InvalidArgumentErrors."""
    job = session.run_job(template())
    with pytest.raises(InvalidArgumentError):
        session.wait_any_terminated([], 1)
    with pytest.raises(InvalidArgumentError):
        job.wait_terminated(-1)
    with pytest.raises(WaitTimeoutError):
        job.wait_terminated(0)


@pytest.mark.parametrize("wrap", [NoFeed, IncompleteFeed], ids=["polling", "incomplete-feed"])
def test_without_a_complete_feed_every_followed_job_is_read(
    engine: MemoryEngine, open_manager: Callable[..., SessionManager], wrap: type[NoFeed]
) -> None:
    """A tracker without a feed is polled at its resync interval; a feed that cannot say
    which jobs changed makes the dispatcher read every followed job: either way waits and
    callbacks see every change, once."""
    manager = open_manager(wrap, resync_interval=0.01)
    session = manager.create_job_session("no-feed")
    assert session.event_driven is (wrap is IncompleteFeed)
    seen, record = recorder()
    session.on_state_change(record)
    jobs = [session.run_job(template()) for _ in range(3)]
    waiting = list(jobs)
    for job in jobs:
        engine.exit(job.id, 0)
    for _ in jobs:
        waiting.remove(session.wait_any_terminated(waiting, WAIT))
    session.close()
    expected = [(j.id, UNSET, RUNNING) for j in jobs] + [(j.id, RUNNING, DONE) for j in jobs]
    assert sorted(seen) == sorted(expected)


def test_session_names_persist_across_managers(
    engine: MemoryEngine, open_manager: Callable[..., SessionManager], tmp_path: Path
) -> None:
    """A session created by one manager is listed and opened by another (same state
    directory); unknown names and duplicates are InvalidArgumentErrors; a session whose jobs
    exist is opened although never created here."""
    first, second = open_manager(), open_manager()
    assert first.backend == second.backend
    created = first.create_job_session("kept")
    job = created.run_job(template())
    assert second.get_job_session_names() == ["kept"]
    reopened = second.open_job_session("kept")
    assert reopened.get_jobs() == [job]
    with pytest.raises(InvalidArgumentError):
        second.open_job_session("unknown")
    with pytest.raises(InvalidArgumentError):
        second.create_job_session("kept")
    with pytest.raises(InvalidArgumentError):
        first.create_job_session(" spaced")
    generated = first.create_job_session()
    assert generated.name in second.get_job_session_names()
    # Jobs of a session nobody created here (the CLI, say): it opens, and is kept from then.
    with ContainerTracker(engine.connect(), "by-the-cli", state_dir=tmp_path / "state") as cli:
        cli.add_job(template())
    with pytest.raises(InvalidArgumentError):
        first.create_job_session("by-the-cli")
    assert len(first.open_job_session("by-the-cli").get_jobs()) == 1
    assert "by-the-cli" in second.get_job_session_names()


def test_destroy_refuses_running_jobs_unless_forced(
    engine: MemoryEngine, open_manager: Callable[..., SessionManager]
) -> None:
    """destroy_job_session refuses a session with unfinished jobs (nothing changes); forced,
    it terminates and reaps them, closes the open JobSessions of it and forgets the name."""
    manager = open_manager()
    session = manager.create_job_session("doomed")
    finished, running = session.run_job(template()), session.run_job(template())
    engine.exit(finished.id, 0)
    with pytest.raises(InvalidStateError):
        manager.destroy_job_session("doomed")
    assert running.state is RUNNING and finished.wait_terminated(WAIT) is DONE
    manager.destroy_job_session("doomed", force=True)
    assert session.closed
    assert manager.get_job_session_names() == []
    assert engine.history()[-1].action == "destroy"
    with pytest.raises(InvalidArgumentError):
        manager.open_job_session("doomed")
    with pytest.raises(InvalidArgumentError):
        manager.destroy_job_session("doomed")


def test_supports_answers_per_backend(open_manager: Callable[..., SessionManager]) -> None:
    """Capabilities: the built-in backends per their features; remote and any other backend
    only what the session layer itself gives (callbacks)."""
    other = open_manager()
    assert other.supports(Capability.CALLBACK) and not other.supports("BulkJobsMaxParallel")
    assert not other.supports("jt_deadline")
    docker = SessionManager("docker", {"state_dir": "/nonexistent-never-written"})
    swarm = SessionManager("swarm", {"state_dir": "/nonexistent-never-written"})
    remote = SessionManager("remote", {"state_dir": "/nonexistent-never-written"})
    assert docker.supports(Capability.JT_STAGING) and not swarm.supports(Capability.JT_STAGING)
    assert swarm.supports("BulkJobsMaxParallel") and swarm.supports(Capability.JT_DEADLINE)
    # Whatever server is behind it (a Go server ignores max_parallel): only callbacks.
    assert [c for c in Capability if remote.supports(c)] == [Capability.CALLBACK]
    for manager in (docker, swarm, remote, other):
        assert not manager.supports(Capability.ADVANCE_RESERVATION)
        assert not manager.supports(Capability.JT_EMAIL)
    with pytest.raises(InvalidArgumentError):
        docker.supports("teleport")
    assert docker.drms_name == "containertracker-docker"
    assert docker.drms_version == containertracker.__version__


def test_monitoring_session_sees_every_job(
    engine: MemoryEngine, open_manager: Callable[..., SessionManager]
) -> None:
    """A monitoring session lists jobs of every session, read only, and the machines."""
    manager = open_manager()
    job = manager.create_job_session("monitored").run_job(template())
    with manager.open_monitoring_session() as monitor:
        (seen,) = monitor.get_all_jobs(JobInfo(state=RUNNING))
        assert seen.id == job.id and seen.get_state()[0] is RUNNING
        assert len(monitor.get_all_machines()) == 1
        assert monitor.get_all_queues() == []


def test_manager_notifications_reach_every_session_it_opens(
    engine: MemoryEngine, open_manager: Callable[..., SessionManager]
) -> None:
    """register_event_notification: the callback sees the jobs of the sessions the manager
    opens, before and after the registration, until removed; events() needs a running loop."""
    manager = open_manager()
    seen, record = recorder()
    before = manager.create_job_session("before")
    remove = manager.register_event_notification(record)
    after = manager.create_job_session("after")
    jobs = [before.run_job(template()), after.run_job(template())]
    remove()
    late = manager.create_job_session("late").run_job(template())
    manager.close()
    assert sorted(seen) == sorted((job.id, UNSET, RUNNING) for job in jobs)
    assert late.id not in {t[0] for t in seen}
    with pytest.raises(InvalidStateError):
        manager.create_job_session("closed")
    with pytest.raises(InvalidStateError):
        open_manager().create_job_session("no-loop").events()


def test_a_session_opened_twice_notifies_once_per_transition(
    engine: MemoryEngine, open_manager: Callable[..., SessionManager]
) -> None:
    """Two JobSessions of one name share the manager's dispatcher: a manager callback (and
    a session's) sees each transition once; the jobs work until the last one is closed."""
    manager = open_manager()
    seen, record = recorder()
    manager.register_event_notification(record)
    first = manager.create_job_session("twice")
    second = manager.open_job_session("twice")
    job = first.run_job(template())
    (listed,) = second.get_jobs()
    engine.exit(job.id, 0)
    assert listed.wait_terminated(WAIT) is DONE
    first.close()
    assert job.get_state()[0] is DONE  # the session is still open through `second`
    late = second.run_job(template())
    second.close()
    assert seen == [(job.id, UNSET, RUNNING), (job.id, RUNNING, DONE), (late.id, UNSET, RUNNING)]
    with pytest.raises(InvalidStateError):
        job.get_state()


def test_callbacks_run_on_the_delivery_thread_and_may_wait_for_jobs(
    engine: MemoryEngine, session: JobSession
) -> None:
    """A callback never runs on the thread of a control call (hold, suspend) nor on the
    dispatcher's; it may wait for another job: the dispatcher goes on reading meanwhile."""
    waiter, other = session.run_job(template()), session.run_job(template())
    threads: set[str] = set()
    waiting, waited = threading.Event(), threading.Event()
    result: list[object] = []

    def callback(job: Job, old: JobState, new: JobState) -> None:
        threads.add(threading.current_thread().name)
        if job == waiter and new is SUSPENDED:
            waiting.set()
            try:
                result.append(other.wait_terminated(WAIT))
            except Exception as exc:
                result.append(exc)
            waited.set()

    session.on_state_change(callback)
    waiter.suspend()
    assert waiting.wait(WAIT)
    engine.exit(other.id, 0)
    assert waited.wait(WAIT)
    session.close()  # everything queued is delivered once this returns
    assert result == [DONE]
    assert threading.current_thread().name not in threads
    assert all(name.startswith("containertracker-delivery-") for name in threads)


def test_event_streams_are_bounded_and_an_abandoned_one_is_unsubscribed(
    session: JobSession,
) -> None:
    """A consumer that breaks out of ``async for`` leaves no subscription; one that falls
    more than ``limit`` events behind reads those, then InvalidStateError (nothing is lost
    silently)."""
    dispatcher = session._dispatcher

    async def abandoned() -> None:
        stream = session.events()
        session.run_job(template())
        async for _ in stream:
            break
        del stream
        gc.collect()  # only for other interpreters: CPython collects it at once
        assert dispatcher._subscribers == ()

    async def overflowing() -> tuple[list[JobEvent], BaseException | None]:
        stream = session.events(limit=2)
        for _ in range(3):
            session.run_job(template())
        session.close()  # delivers every event; the stream overflowed at the third
        received: list[JobEvent] = []
        try:
            async for event in stream:
                received.append(event)
        except InvalidStateError as exc:
            return received, exc
        return received, None

    asyncio.run(abandoned())
    received, error = asyncio.run(overflowing())
    assert len(received) == 2 and all(e.old_state is UNSET for e in received)
    assert isinstance(error, InvalidStateError) and "fell more than 2 events behind" in str(error)


def test_only_unfinished_jobs_that_were_asked_for_are_followed(
    engine: MemoryEngine, session: JobSession
) -> None:
    """get_jobs follows the jobs its filter returned only; a job that ended is followed no
    more (its final state stays with the Job: waits and repr still know it)."""
    done, running = session.run_job(template()), session.run_job(template())
    engine.exit(done.id, 0)
    assert done.wait_terminated(WAIT) is DONE
    assert set(session._dispatcher._tracked) == {running.id}
    assert done.wait_terminated(0) is DONE and "state=DONE" in repr(done)
    assert done.future().result(WAIT).exit_status == 0
    outsider = session.tracker.add_job(template())
    assert session.get_jobs(JobInfo(id=running.id)) == [running]
    assert outsider not in session._dispatcher._tracked
    assert session.get_jobs(JobInfo(state=DONE)) == [done]
    assert set(session._dispatcher._tracked) == {running.id}


def test_a_closed_session_says_so_for_array_control(session: JobSession) -> None:
    """Controlling an array of a closed session is "closed", not "no task fits"."""
    array = session.run_bulk_jobs(template(), 1, 2)
    session.close()
    with pytest.raises(InvalidStateError, match="is closed"):
        array.terminate()


@pytest.mark.parametrize(
    "name", ["../../../outside", "..", "/", "a/b", "a,b=c", "x" * 200, "~root", "$(id)"]
)
def test_hostile_session_names_stay_hashed_inside_the_state_directory(
    open_manager: Callable[..., SessionManager], tmp_path: Path, name: str
) -> None:
    """Any allowed name becomes a hashed file under job-sessions/: nothing is written
    elsewhere, and the name reads back as given."""
    manager = open_manager()
    manager.create_job_session(name).close()
    names = tmp_path / "state" / "job-sessions"
    (record,) = names.iterdir()
    assert record.suffix == ".json" and len(record.stem) == 40 and record.stem.isalnum()
    assert {p.name for p in tmp_path.iterdir()} == {"state"}
    assert manager.get_job_session_names() == [name]
    assert manager.open_job_session(name).name == name


def test_unknown_session_errors_are_short_and_bad_records_name_nothing(
    open_manager: Callable[..., SessionManager], tmp_path: Path
) -> None:
    """The error for an unknown name lists a few known ones, not all; a record without a
    name is no session."""
    manager = open_manager()
    for number in range(15):
        manager.create_job_session(f"known-{number:02}").close()
    with pytest.raises(InvalidArgumentError, match="and 5 more") as refused:
        manager.open_job_session("unknown")
    assert "known-14" not in str(refused.value)
    scope = manager._names._scope
    (tmp_path / "state" / "job-sessions" / "nameless.json").write_text(f'{{"scope": "{scope}"}}')
    assert len(manager.get_job_session_names()) == 15
    assert "None" not in manager.get_job_session_names()


def test_a_job_still_settling_is_read_again_soon_without_a_feed_answer(
    engine: MemoryEngine, open_manager: Callable[..., SessionManager]
) -> None:
    """A job that ended while its outputs are still written is read again after a short
    pause, not at the feed's next answer (here, a minute away)."""
    session = open_manager(SlowOutputs).create_job_session("settling")
    job = session.run_job(template())
    engine.exit(job.id, 0)
    assert job.wait_terminated(WAIT) is DONE
    assert isinstance(session.tracker, SlowOutputs)
    assert session.tracker.asked[job.id] == SlowOutputs.NOT_YET + 1
