"""Issue 17, the scheduler: races and interruptions replayed on real engines, each now handled.

11. A hold between a scheduler's claim of a job and its start: the job stays QUEUED_HELD and
    does not start; a hold once the start is committed is refused.
12. An unthrottled array being created does not hold the session lock: another tracker of the
    session (a release, a pass) goes on meanwhile.
20. A submission killed (SIGKILL) half-way, for add_job and add_array_job: the next tracker of
    the session rolls it back as a whole; nothing of it is started meanwhile, and nothing is
    touched while the submitter lives.
5.  A large template times many tasks with a missing image fails before any task is built.
10. Random session names do not fill the state directory.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

import containertracker
from containertracker import InvalidArgumentError, InvalidStateError, JobState, JobTemplate
from containertracker.core.plan import Plan
from containertracker.core.statestore import StateStore
from tests.conftest import engine_params

pytestmark = pytest.mark.only_engines("docker", "podman")

ROOT = Path(__file__).resolve().parents[2]
QUEUED, QUEUED_HELD, RUNNING = JobState.QUEUED, JobState.QUEUED_HELD, JobState.RUNNING


def jt(image: str, *command: str, **fields: object) -> JobTemplate:
    return JobTemplate(remote_command=command[0], args=command[1:], job_category=image, **fields)


def until(condition, timeout: float = 60.0) -> bool:  # type: ignore[no-untyped-def]
    """Poll ``condition`` until it holds or ``timeout`` passed; whether it held."""
    give_up = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > give_up:
            return False
        time.sleep(0.2)
    return True


# -- 11: hold is as atomic as terminate --------------------------------------------------------


@pytest.mark.local_only
def test_a_hold_between_claim_and_start_keeps_the_job_held(
    tracker, image, engine, session_name
) -> None:
    """A scheduler claimed the waiting task; a hold comes before its start: the start does not
    happen, the task reads QUEUED_HELD, and a release later starts it."""
    array_id = tracker.add_array_job(jt(image, "sleep", "300"), 1, 2, 1, max_parallel=1)
    first, second = tracker.list_array_jobs(array_id)
    assert tracker.job_state(second)[0] is QUEUED
    store, scheduler = tracker._store, tracker._scheduler
    claimed_at = time.time()
    with store.session_lock(session_name):  # what a scheduler's pass does
        store.claim(session_name, [second], claimed_at)
    tracker.job_control(second, "hold")
    plan = Plan.from_labels(engine.inspect(second).labels)
    assert not scheduler.start(second, plan, claimed_at)  # the start the claim was for
    assert engine.inspect(second).status == "created"
    assert tracker.job_state(second)[0] is QUEUED_HELD
    tracker.job_control(second, "release")
    tracker.job_control(first, "terminate")
    assert tracker.wait(second, 60, RUNNING) is RUNNING


@pytest.mark.local_only
def test_a_hold_after_the_start_is_committed_is_refused(
    tracker, image, engine, session_name
) -> None:
    """Once a start is committed (its claim renewed, the engine not called yet), hold raises
    InvalidStateError and leaves no hold behind: the job runs as the start decided."""
    array_id = tracker.add_array_job(jt(image, "sleep", "300"), 1, 2, 1, max_parallel=1)
    _, second = tracker.list_array_jobs(array_id)
    store = tracker._store
    claimed_at = time.time()
    with store.session_lock(session_name):
        store.claim(session_name, [second], claimed_at)
        assert store.renew_claim(second, claimed_at, time.time())  # the start's commitment
    with pytest.raises(InvalidStateError, match="being started"):
        tracker.job_control(second, "hold")
    assert store.marks(second).hold is None
    engine.start(second)  # the start's engine call
    assert tracker.job_state(second)[0] is RUNNING


# -- 20 and 12: interrupted submissions, creation outside the session lock ----------------------

_PAUSING_SUBMITTER = """
import sys, threading, time
import containertracker
from containertracker import JobTemplate
from containertracker.backends.docker import DockerEngine
from containertracker.backends.podman import PodmanEngine
from containertracker.core.tracker import ContainerTracker

backend, session, params, image, kind, pause_after = sys.argv[1:7]
params = eval(params)
created = 0
guard = threading.Lock()

def pause(where):
    print("paused", where, flush=True)
    time.sleep(3600)

real_create = ContainerTracker._create
def create(self, spec, **options):  # one at a time, so that exactly pause_after exist at the pause
    global created
    with guard:
        if created >= int(pause_after):
            pause("creating")
        container_id = real_create(self, spec, **options)
        created += 1
        return container_id
ContainerTracker._create = create

def pausing(real_start):  # the engine's start: add_job creates its job started (create, start)
    def start(self, container_id, stdin=None):
        if kind == "job":
            pause("starting")
        return real_start(self, container_id, stdin)
    return start
for engine_class in (DockerEngine, PodmanEngine):
    engine_class.start = pausing(engine_class.start)

with containertracker.new_job_tracker(backend, session, params) as t:
    template = JobTemplate(remote_command="sleep", args=("300",), job_category=image)
    if kind == "job":
        t.add_job(template)
    else:
        t.add_array_job(template, 1, 300, 1, int(kind))
"""


@pytest.fixture
def submitter(backend, state_dir, session_name, image) -> Iterator:  # type: ignore[no-untyped-def]
    """Start a submitting process that pauses mid-submission: ``kind`` "job" (add_job, paused
    between its container's creation and start: the job is created started, in two engine
    calls on Docker and Podman, and the engine's start pauses) or a max_parallel
    (add_array_job of 300 tasks, paused after ``pause_after`` creations). Returns the
    process once it paused."""
    processes: list[subprocess.Popen[str]] = []

    def start(kind: str, pause_after: int = 1, state: Path = state_dir) -> subprocess.Popen[str]:
        params = {**engine_params(backend, state), "state_dir": str(state)}
        args = [backend, session_name, repr(params), image, kind, str(pause_after)]
        process = subprocess.Popen(
            [sys.executable, "-c", _PAUSING_SUBMITTER, *args],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        processes.append(process)
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("paused"), f"the submitter did not pause: {line!r}"
        return process

    yield start
    for process in processes:
        process.kill()
        process.wait()


def _kill(process: subprocess.Popen[str]) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


@pytest.mark.local_only
def test_add_job_killed_between_create_and_start_is_rolled_back(
    submitter, tracker, engine, session_name, state_dir
) -> None:
    """While the submitter lives, its created job is neither started nor removed by another
    tracker; once it is killed, the next pass removes the job and the submission's record."""
    process = submitter("job")
    ids = tracker.list_jobs()
    assert len(ids) == 1
    tracker._scheduler.schedule_now()
    assert engine.inspect(ids[0]).status == "created"  # not started by another tracker
    _kill(process)
    assert until(lambda: tracker.list_jobs() == []), "the interrupted add_job was not rolled back"
    assert until(lambda: StateStore(state_dir).submissions(session_name) == set())


@pytest.mark.local_only
@pytest.mark.parametrize("max_parallel", [0, 2])
def test_array_killed_mid_submission_is_rolled_back_as_a_whole(
    submitter, tracker, engine, image, session_name, state_dir, max_parallel
) -> None:
    """An add_array_job of 300 tasks killed after creating 20: while it lives, another tracker
    of the session starts none of its tasks and is not held up by it (a release goes through:
    the tasks are created without the session lock); after the kill, all 20 are removed, the
    running ones too."""
    process = submitter(str(max_parallel), pause_after=20)
    ids = tracker.list_jobs()
    assert len(ids) == 20
    statuses = sorted(engine.inspect(i).status for i in ids)
    assert statuses.count("running") == max_parallel  # the submitter's own first starts

    held = tracker.add_job(jt(image, "true", submit_as_hold=True))
    released = threading.Thread(target=tracker.job_control, args=(held, "release"), daemon=True)
    released.start()
    released.join(timeout=60)
    assert not released.is_alive(), "release waited for the other tracker's array creation"
    assert tracker.wait(held, 60) is JobState.DONE
    tracker._scheduler.schedule_now()
    assert sorted(engine.inspect(i).status for i in ids) == statuses  # nothing started

    _kill(process)
    assert until(lambda: tracker.list_jobs() == [held]), "the partial array was not rolled back"
    assert until(lambda: StateStore(state_dir).submissions(session_name) == set())


# -- review: trackers of another state directory, marks of gone jobs ---------------------------


@pytest.mark.local_only
@pytest.mark.parametrize("kind", ["job", "0"])
def test_a_submission_of_another_state_directory_is_left_to_its_trackers(
    submitter, tracker, engine, backend, session_name, tmp_path, kind
) -> None:
    """A tracker with another state directory (say, the server's as root) sees a submission
    under way whose record it cannot see: it starts none of its jobs (before, it started the
    add_job's job, which ran twice if it ended before its submitter's own start, and the tasks
    of an array being created), nor after the submitter died; a tracker of the submitter's
    state directory rolls it back."""
    theirs = tmp_path / "their-state"
    process = submitter(kind, pause_after=5, state=theirs)  # "job": paused before its start
    ids = tracker.list_jobs()
    before = sorted(engine.inspect(i).status for i in ids)
    assert before == ["created"] * (1 if kind == "job" else 5)
    tracker._scheduler.schedule_now()
    assert sorted(engine.inspect(i).status for i in ids) == before
    _kill(process)
    tracker._scheduler.schedule_now()
    assert sorted(engine.inspect(i).status for i in ids) == before  # not ours to run
    with containertracker.new_job_tracker(backend, session_name, engine_params(backend, theirs)):
        assert until(lambda: tracker.list_jobs() == []), "their tracker did not roll it back"


@pytest.mark.local_only
def test_a_throttled_array_of_another_state_directory_is_not_refilled(
    tracker, engine, backend, image, session_name, tmp_path
) -> None:
    """A throttled array submitted with another state directory, its tracker closed: a slot
    that frees up is not filled by a tracker of this state directory (its claims there cannot
    be seen, so both sides filling slots would exceed max_parallel or run a task twice)."""
    theirs = engine_params(backend, tmp_path / "their-state")
    with containertracker.new_job_tracker(backend, session_name, theirs) as submitting:
        array_id = submitting.add_array_job(jt(image, "sleep", "300"), 1, 2, 1, max_parallel=1)
        first, second = submitting.list_array_jobs(array_id)
    tracker.job_control(first, "terminate")
    assert tracker.wait(first, 60) is JobState.FAILED
    tracker._scheduler.schedule_now()
    assert engine.inspect(second).status == "created"
    with containertracker.new_job_tracker(backend, session_name, theirs):  # its own: it starts
        assert until(lambda: engine.inspect(second).status == "running")


@pytest.mark.local_only
def test_a_queued_job_of_another_state_directory_is_not_controlled_from_here(
    tracker, engine, backend, image, session_name, tmp_path
) -> None:
    """hold, release and terminate before the start are marks in the submitter's state
    directory: from a tracker with another one they are refused (a mark there would be
    ignored and the job start anyway), and they work from a tracker of the submitter's."""
    theirs = engine_params(backend, tmp_path / "their-state")
    with containertracker.new_job_tracker(backend, session_name, theirs) as submitting:
        held = submitting.add_job(jt(image, "sleep", "300", submit_as_hold=True))
        for action in ("release", "terminate"):
            with pytest.raises(InvalidStateError, match="another state directory"):
                tracker.job_control(held, action)  # type: ignore[arg-type]
        assert engine.inspect(held).status == "created"
        assert submitting.job_state(held)[0] is QUEUED_HELD
        submitting.job_control(held, "release")
        assert submitting.wait(held, 60, RUNNING) is RUNNING
        tracker.job_control(held, "terminate")  # running: a stop works from anywhere
        assert submitting.wait(held, 60) is JobState.FAILED


@pytest.mark.local_only
def test_an_rm_job_leaves_no_marks_behind(tracker, image, state_dir) -> None:
    """A job whose container the engine removes at its end (rm=true) leaves no marks file:
    the tracker drops it on the container's removal event."""
    job_id = tracker.add_job(jt(image, "true", extension={"rm": "true"}))
    assert until(lambda: tracker.list_jobs() == [])
    assert until(lambda: not (state_dir / "jobs" / job_id).exists()), "its marks stayed"


@pytest.mark.local_only
def test_marks_of_a_job_removed_while_no_tracker_ran_are_pruned(
    engine, backend, image, session_name, tmp_path
) -> None:
    """A job removed by hand while no tracker of its session was open: the next tracker's
    background pass prunes its marks once they are older than its list."""
    params = engine_params(backend, tmp_path)
    with containertracker.new_job_tracker(backend, session_name, params) as first:
        job_id = first.add_job(jt(image, "true"))
        assert first.wait(job_id, 60) is JobState.DONE
    engine.remove(job_id)
    marks = tmp_path / "jobs" / job_id
    assert marks.exists()
    then = time.time() - 600  # written long before any list the next tracker takes
    os.utime(marks, (then, then))
    with containertracker.new_job_tracker(backend, session_name, params):
        assert until(lambda: not marks.exists()), "the gone job's marks were not pruned"


# -- 5: a missing image fails before any task is built ------------------------------------------


@pytest.mark.local_only
def test_large_array_with_a_missing_image_fails_before_building_tasks(tracker, image) -> None:
    """A 0.5 MB environment value times 200 tasks and a missing image: InvalidArgumentError,
    nothing created, and memory never held more than a few templates (it held one spec per
    task, about 240 MB, before)."""
    template = jt(
        "containertracker/no-such-image:latest", "true", job_environment={"BIG": "x" * 500_000}
    )
    tracemalloc.start()
    try:
        with pytest.raises(InvalidArgumentError, match="not present"):
            tracker.add_array_job(template, 1, 200)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20_000_000
    assert tracker.list_jobs() == []


# -- 10: session names do not grow the state directory -----------------------------------------


def test_random_session_names_do_not_fill_the_state_directory(tmp_path: Path) -> None:
    """Locks and claim counts of 1,000 session names (a client naming random sessions) stay
    within a fixed number of files; a session's lock still excludes a second holder."""
    store = StateStore(tmp_path)
    for n in range(1000):
        session = f"random-{n}"
        with store.session_lock(session):
            store.claim(session, [], now=time.time())
    assert len(os.listdir(tmp_path / "locks")) <= 64
    assert len(os.listdir(tmp_path / "sessions")) <= 64

    inside = threading.Event()

    def second_holder() -> None:
        with store.session_lock("random-7"):
            inside.set()

    with store.session_lock("random-7"):
        other = threading.Thread(target=second_holder, daemon=True)
        other.start()
        assert not inside.wait(0.5)
    assert inside.wait(10)
    other.join()
