"""The DRMAA2 behaviour contract, run unchanged against every backend (real engines).

Test ids carry the Go suites' case names (reference section 6) where a case is a port.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import containertracker
from containertracker import (
    CPU,
    OS,
    ChangeFeed,
    Closer,
    ContactStringer,
    InvalidArgumentError,
    InvalidStateError,
    JobInfo,
    JobNotFoundError,
    JobState,
    JobTemplate,
    JobTemplater,
    JobTracker,
    Monitorer,
    UnsupportedAttributeError,
    WaitTimeoutError,
)
from containertracker.core.labels import ARRAY_ID

DONE, FAILED, RUNNING = JobState.DONE, JobState.FAILED, JobState.RUNNING


def single_host_only(refused_by: str) -> pytest.MarkDecorator:
    """Not run on the swarm backend, which refuses what the test needs (see README-swarm.md's
    differences): ``refused_by`` is the test that shows the refusal."""
    return pytest.mark.not_on_engines("swarm", refused_by=refused_by)


SWARM_REFUSAL = "tests/swarm/test_swarm.py::test_refused_templates"


def jt(image: str, *command: str, **fields: object) -> JobTemplate:
    return JobTemplate(remote_command=command[0], args=command[1:], job_category=image, **fields)


# -- basics (D-1, D-2, D-11, DM-*) ---------------------------------------------------------


def test_tracker_offers_every_capability(tracker) -> None:
    """D-1: a tracker is a JobTracker, Closer, ContactStringer, JobTemplater and Monitorer."""
    for protocol in (JobTracker, Closer, ContactStringer, JobTemplater, Monitorer):
        assert isinstance(tracker, protocol)
    assert "session=" in tracker.contact()


def test_new_session_lists_no_jobs(tracker) -> None:
    """D-11: a fresh session has no jobs."""
    assert tracker.list_jobs() == []


def test_job_categories_are_local_images(tracker, image) -> None:
    """D-2: list_job_categories lists the local test image under a name add_job accepts."""
    assert image in tracker.list_job_categories()


def test_monitoring(tracker, image, backend) -> None:
    """DM-1..DM-4: one machine per host the engine runs jobs on (the engine's host; the lab
    swarm's 3 nodes), no queues, every container listed."""
    from tests.conftest import engine_of

    tracker.open_monitoring_session("test")
    job_id = tracker.add_job(jt(image, "sleep", "5"))
    tracker.wait(job_id, 30, RUNNING)  # (a swarm places the job first)
    ids = tracker.get_all_job_ids(None)
    assert job_id in ids
    assert tracker.job_info_from_monitor(ids[0]).id == ids[0]
    machines = tracker.get_all_machines(None)
    assert len(machines) == (3 if engine_of(backend) == "swarm" else 1)
    machine = machines[0]
    assert machine.architecture is CPU.X64 and machine.os is OS.LINUX
    assert machine.cores_per_socket >= 1 and machine.physical_memory > 0
    assert tracker.get_all_machines([machine.name]) == [machine]
    assert tracker.get_all_machines(["no-such-host"]) == []
    assert tracker.get_all_queue_names(None) == []
    running = tracker.get_all_job_ids(JobInfo(state=RUNNING))
    assert job_id in running
    assert job_id not in tracker.get_all_job_ids(JobInfo(state=DONE))
    tracker.close_monitoring_session("test")


# -- lifecycle (D-4, D-9, D-10, D-13, P-3..P-6) ---------------------------------------------


@single_host_only(refused_by=SWARM_REFUSAL)  # stage-in; tests/swarm has the lifecycle
def test_job_runs_to_done(tracker, image, tmp_path, monkeypatch) -> None:
    """D-4/D-9: a job with stage-in and env is RUNNING after add_job and DONE after wait."""
    monkeypatch.chdir(tmp_path)
    Path("README.md").write_text("hello")
    job_id = tracker.add_job(
        jt(
            image,
            "sh",
            "-c",
            'test "$(cat /README.md)" = hello && test "$test" = value && sleep 2',
            stage_in_files={"README.md": "/README.md"},
            job_environment={"test": "value"},
        )
    )
    assert len(job_id) == 64
    assert tracker.job_state(job_id) == (RUNNING, "")
    assert tracker.wait(job_id, None) is DONE
    assert tracker.job_state(job_id)[0] is DONE
    info = tracker.job_info(job_id)
    assert info.exit_status == 0 and info.state is DONE
    assert info.dispatch_time and info.finish_time and info.submission_time
    # >= 1 s, not 1.9 s: the remote wire carries whole seconds, truncated (Go's format).
    assert info.wallclock_time is not None and info.wallclock_time >= timedelta(seconds=1)


def test_terminate_then_delete(tracker, image) -> None:
    """D-10/P-3: terminate makes a running job FAILED at once; delete makes it unknown.
    The job's command gets SIGTERM and ends by it (exit 143, not SIGKILL's 137 after the
    grace), although `sleep` installs no handler: it runs under the engine's init."""
    job_id = tracker.add_job(jt(image, "sleep", "600"))
    tracker.wait(job_id, 30, RUNNING)  # (a swarm places the job first)
    tracker.job_control(job_id, "terminate")
    state, sub_state = tracker.job_state(job_id)
    assert state is FAILED and sub_state == "terminated"
    info = tracker.job_info(job_id)
    assert (info.exit_status, info.terminating_signal) == (143, "SIGTERM")
    tracker.delete_job(job_id)
    with pytest.raises(JobNotFoundError):
        tracker.job_state(job_id)
    assert job_id not in tracker.list_jobs()


def test_terminate_kills_a_job_that_ignores_sigterm(tracker, image) -> None:
    """A job that ignores SIGTERM is killed (SIGKILL) once the stop grace is over."""
    job_id = tracker.add_job(jt(image, "sh", "-c", "trap '' TERM; sleep 600"))
    tracker.wait(job_id, 30, RUNNING)
    tracker.job_control(job_id, "terminate")
    state, sub_state = tracker.job_state(job_id)
    assert state is FAILED and "terminated" in sub_state, sub_state
    info = tracker.job_info(job_id)
    assert (info.exit_status, info.terminating_signal) == (137, "SIGKILL")


def test_job_info_times_are_in_order(tracker, image) -> None:
    """For a job that exits at once (the engine may stamp its start after its finish),
    submission <= dispatch <= finish and the wall-clock time is not negative."""
    ids = [tracker.add_job(jt(image, "true")) for _ in range(5)]
    for job_id in ids:
        assert tracker.wait(job_id, 30) is DONE
        info = tracker.job_info(job_id)
        assert info.submission_time and info.dispatch_time and info.finish_time
        assert info.submission_time <= info.dispatch_time <= info.finish_time
        # (The remote wire carries whole seconds and 0 as "unset": None there.)
        assert (info.wallclock_time or timedelta(0)) >= timedelta(0)


def test_missing_working_directory_is_created(tracker, image, tmp_path) -> None:
    """A working_directory the image lacks is created (Docker does; Podman is asked to)."""
    out = tmp_path / "out"
    job_id = tracker.add_job(
        jt(image, "pwd", working_directory="/no/such/dir", output_path=str(out))
    )
    assert tracker.wait(job_id, 30) is DONE
    assert out.read_text() == "/no/such/dir\n"
    assert tracker.job_info(job_id).extension["workingdir"] == "/no/such/dir"


def test_failed_exit_status(tracker, image) -> None:
    """P-5: a non-zero exit is FAILED with that exit status."""
    job_id = tracker.add_job(jt(image, "sh", "-c", "exit 3"))
    assert tracker.wait(job_id, 30) is FAILED
    assert tracker.job_info(job_id).exit_status == 3


def test_wait_times_out(tracker, image) -> None:
    """P-6: wait raises the timeout error (a TimeoutError) and the job keeps running."""
    job_id = tracker.add_job(jt(image, "sleep", "30"))
    with pytest.raises(WaitTimeoutError):
        tracker.wait(job_id, 0.5, DONE, FAILED)
    with pytest.raises(TimeoutError):
        tracker.wait(job_id, 0)
    assert tracker.wait(job_id, 30, RUNNING) is RUNNING  # (a swarm may still be placing it)


def test_missing_command_fails_the_job(tracker, image, tmp_path) -> None:
    """A command the image lacks: the job starts (its init does) and ends FAILED at once,
    the init's "exec failed" message in its error file. (Before jobs ran under an init, the
    engine refused to start such a container and add_job raised.)"""
    err = tmp_path / "err"
    job_id = tracker.add_job(jt(image, "/no/such/command", error_path=str(err)))
    assert tracker.wait(job_id, 30) is FAILED
    assert tracker.job_info(job_id).exit_status not in (None, 0)
    assert "No such file or directory" in err.read_text()


@pytest.mark.local_only
def test_wait_by_prefix_or_name_wakes_on_events(backend, state_dir, session_name, image) -> None:
    """wait on an id prefix or a job name wakes on the job's events, as on its full id
    (events name the full id only): with the safety re-check an hour away, it returns as
    soon as the running job ends, not at its timeout."""
    from tests.conftest import check_engine, engine_params

    check_engine(backend, state_dir)
    params = {**engine_params(backend, state_dir), "resync_interval": 3600}
    name = f"{session_name}-named"
    with containertracker.new_job_tracker(backend, session_name, params) as tracker:

        def wakes_promptly(job_id: str, ref: str) -> bool:
            tracker.wait(job_id, 30, RUNNING)  # so the wait has to sleep
            started = time.monotonic()
            return tracker.wait(ref, 60) is DONE and time.monotonic() - started < 15

        try:
            by_prefix = tracker.add_job(jt(image, "sleep", "2"))
            assert wakes_promptly(by_prefix, by_prefix[:12])
            by_name = tracker.add_job(jt(image, "sleep", "2", job_name=name))
            assert wakes_promptly(by_name, name)
            assert tracker.wait(by_name[:12], 0) is DONE
        finally:
            for job_id in tracker.list_jobs():
                tracker.delete_job(job_id)


def test_wait_for_running_state(tracker, image) -> None:
    """wait returns as soon as a non-terminal wanted state is reached."""
    job_id = tracker.add_job(jt(image, "sleep", "30"))
    assert tracker.wait(job_id, 10, RUNNING) is RUNNING


def test_wait_for_unreachable_state(tracker, image) -> None:
    """Waiting for RUNNING on a finished job is an InvalidStateError, not a hang."""
    job_id = tracker.add_job(jt(image, "true"))
    tracker.wait(job_id, 30)
    with pytest.raises(InvalidStateError):
        tracker.wait(job_id, 30, RUNNING)


def test_session_isolation(open_tracker, image) -> None:
    """D-13: the session lists its one job until it is deleted."""
    tracker = open_tracker()
    job_id = tracker.add_job(jt(image, "sleep", "1"))
    assert tracker.list_jobs() == [job_id]
    tracker.wait(job_id, 30, DONE)
    assert tracker.list_jobs() == [job_id]
    tracker.delete_job(job_id)
    assert tracker.list_jobs() == []


@single_host_only(refused_by="tests/swarm/test_swarm.py::test_suspend_is_refused")
def test_suspend_and_resume(tracker, image) -> None:
    """P-8 (fixed): suspend gives SUSPENDED, resume RUNNING, and the job still finishes."""
    job_id = tracker.add_job(jt(image, "sleep", "2"))
    tracker.job_control(job_id, "suspend")
    assert tracker.job_state(job_id)[0] is JobState.SUSPENDED
    with pytest.raises(InvalidStateError):
        tracker.job_control(job_id, "suspend")
    tracker.job_control(job_id, "resume")
    assert tracker.job_state(job_id)[0] is RUNNING
    assert tracker.wait(job_id, 30) is DONE


@single_host_only(refused_by="tests/swarm/test_swarm.py::test_suspend_is_refused")
def test_terminate_suspended_job(tracker, image) -> None:
    """A suspended job can be terminated and then reads FAILED."""
    job_id = tracker.add_job(jt(image, "sleep", "60"))
    tracker.job_control(job_id, "suspend")
    tracker.job_control(job_id, "terminate")
    assert tracker.job_state(job_id)[0] is FAILED


def test_hold_and_release(tracker, image) -> None:
    """submit_as_hold creates a QUEUED_HELD job; release starts it; hold needs QUEUED."""
    job_id = tracker.add_job(jt(image, "sleep", "1", submit_as_hold=True))
    assert tracker.job_state(job_id) == (JobState.QUEUED_HELD, "held")
    with pytest.raises(InvalidStateError):
        tracker.job_control(job_id, "resume")
    tracker.job_control(job_id, "release")
    # Started: RUNNING (a swarm first places it, QUEUED meanwhile), or DONE already.
    assert tracker.wait(job_id, 30, RUNNING, DONE) in (RUNNING, DONE)
    with pytest.raises(InvalidStateError):
        tracker.job_control(job_id, "hold")
    assert tracker.wait(job_id, 30) is DONE


def test_change_feed_shows_a_job_created_started_and_ended(
    open_tracker, session_name, image
) -> None:
    """The change feed names a job when it is created (held: nothing else happens to it),
    when it starts and when it ends, and never a job of another session."""
    tracker, other = open_tracker(), open_tracker(f"{session_name}-other")
    assert isinstance(tracker, ChangeFeed)
    cursor = tracker.changes(None, 0).cursor
    job_id = tracker.add_job(jt(image, "sleep", "1", submit_as_hold=True))
    other.add_job(jt(image, "true"))  # its events are the other session's

    def until_shown(wanted: tuple[JobState, ...]) -> JobState:
        """Follow the feed from ``cursor`` until it names the job in a state ``wanted``."""
        nonlocal cursor
        for _ in range(50):
            answer = tracker.changes(cursor, 60)
            cursor = answer.cursor
            assert answer.complete
            assert set(answer.job_ids) <= {job_id}, answer.job_ids
            if job_id in answer.job_ids and (state := tracker.job_state(job_id)[0]) in wanted:
                return state
        raise AssertionError(f"the feed never showed job {job_id} {wanted}")

    assert until_shown((JobState.QUEUED_HELD,)) is JobState.QUEUED_HELD  # its creation
    tracker.job_control(job_id, "release")
    if until_shown((RUNNING, DONE)) is RUNNING:  # started (and maybe ended already)
        assert until_shown((DONE,)) is DONE  # its end is an event too
    # What follows (e.g. the engine's events of reading its outputs) concerns only the job.
    assert set(tracker.changes(cursor, 0).job_ids) <= {job_id}


def test_terminate_held_job(tracker, image) -> None:
    """Terminating a job that never started makes it FAILED; it never runs."""
    job_id = tracker.add_job(jt(image, "true", submit_as_hold=True))
    tracker.job_control(job_id, "terminate")
    assert tracker.job_state(job_id) == (FAILED, "terminated before it started")
    with pytest.raises(InvalidStateError):
        tracker.job_control(job_id, "release")
    assert tracker.wait(job_id, 5) is FAILED
    tracker.delete_job(job_id)


@single_host_only(refused_by=SWARM_REFUSAL)  # input_path
def test_released_job_whose_input_file_is_gone_fails(tracker, image, tmp_path) -> None:
    """A held job whose input file disappears before its release reads FAILED, saying why
    (the release itself succeeds: the job is no longer held)."""
    source = tmp_path / "in.txt"
    source.write_text("x\n")
    job_id = tracker.add_job(jt(image, "cat", input_path=str(source), submit_as_hold=True))
    source.unlink()
    tracker.job_control(job_id, "release")
    assert tracker.wait(job_id, 30) is FAILED
    assert "cannot read input file" in tracker.job_info(job_id).annotation


def test_delete_requires_end_state(tracker, image) -> None:
    """delete_job refuses a running job and leaves it alone."""
    job_id = tracker.add_job(jt(image, "sleep", "30"))
    tracker.wait(job_id, 30, RUNNING)  # (a swarm places the job first)
    with pytest.raises(InvalidStateError, match="end-state"):
        tracker.delete_job(job_id)
    assert tracker.job_state(job_id)[0] is RUNNING


@pytest.mark.parametrize(
    "call",
    [
        lambda t, i: t.job_state(i),
        lambda t, i: t.job_info(i),
        lambda t, i: t.job_template(i),
        lambda t, i: t.job_control(i, "suspend"),
        lambda t, i: t.wait(i, 1),
        lambda t, i: t.delete_job(i),
        lambda t, i: t.list_array_jobs(i),
    ],
    ids=["job_state", "job_info", "job_template", "job_control", "wait", "delete", "array"],
)
@pytest.mark.parametrize("job_id", ["0" * 64, ".", "x/../.."], ids=["unknown", "dot", "path"])
def test_unknown_ids(tracker, call, job_id) -> None:
    """Every call on an unknown id raises JobNotFoundError (Go said Undetermined or hung).

    Ids that would address another engine endpoint ("." lists containers) are unknown too.
    """
    with pytest.raises(JobNotFoundError):
        call(tracker, job_id)
    with pytest.raises(JobNotFoundError):
        tracker.job_info_from_monitor(job_id)


def test_job_of_another_session_is_not_found(open_tracker, image, session_name, backend) -> None:
    """A job is visible only to trackers of its own session."""
    job_id = open_tracker().add_job(jt(image, "sleep", "5"))
    other = open_tracker(session=session_name + "-other")  # same engine, another session
    with pytest.raises(JobNotFoundError):
        other.job_state(job_id)


def test_unknown_action(tracker, image) -> None:
    """An unknown control action is an InvalidArgumentError."""
    job_id = tracker.add_job(jt(image, "sleep", "5"))
    with pytest.raises(InvalidArgumentError, match="unknown job control action"):
        tracker.job_control(job_id, "explode")


def test_negative_timeout(tracker, image) -> None:
    """A negative wait timeout is an InvalidArgumentError."""
    job_id = tracker.add_job(jt(image, "sleep", "5"))
    with pytest.raises(InvalidArgumentError):
        tracker.wait(job_id, -1)


# -- templates and outputs (D-5..D-7, D-14..D-17, P-7) --------------------------------------


def test_job_template_round_trip(tracker, image, backend) -> None:
    """D-14: job_template returns what was submitted. (A server's trackers confine host
    paths, and refuse devices but /dev/null then: over the wire /dev/null stands in for the
    tracker's /dev/stdout and /dev/stderr.)"""
    remote = backend.startswith("remote")
    template = jt(
        image,
        "sleep",
        "0",
        output_path="/dev/null" if remote else "/dev/stdout",
        error_path="/dev/null" if remote else "/dev/stderr",
        extension={"user": "nobody"},
        accounting_id="acct-7",
        queue_name="batch",
    )
    job_id = tracker.add_job(template)
    assert tracker.job_template(job_id) == template
    assert tracker.wait(job_id, 30) is DONE
    info = tracker.job_info(job_id)
    assert info.queue_name == "batch" and info.job_owner
    tracker.delete_job(job_id)


def test_output_files(tracker, image, tmp_path) -> None:
    """D-6/D-15..D-17/P-7: stdout and stderr land in their files exactly, no TTY bytes."""
    out, err = tmp_path / "out", tmp_path / "err"
    job_id = tracker.add_job(
        jt(
            image,
            "sh",
            "-c",
            "echo testtest 1>&2 && echo test && echo oLaLa",
            output_path=str(out),
            error_path=str(err),
        )
    )
    assert tracker.wait(job_id, 30) is DONE
    assert out.read_text() == "test\noLaLa\n"
    assert err.read_text() == "testtest\n"


def test_error_file_of_failing_command(tracker, image, tmp_path) -> None:
    """D-7: a failing command's message reaches error_path."""
    err = tmp_path / "errtestfile"
    job_id = tracker.add_job(jt(image, "date", "illegal", error_path=str(err)))
    assert tracker.wait(job_id, 30) is FAILED
    assert "date: invalid date" in err.read_text()


def test_join_files(tracker, image, tmp_path) -> None:
    """join_files puts stderr into the output file too."""
    out = tmp_path / "joined"
    job_id = tracker.add_job(
        jt(image, "sh", "-c", "echo one; echo two 1>&2", output_path=str(out), join_files=True)
    )
    tracker.wait(job_id, 30)
    assert sorted(out.read_text().split()) == ["one", "two"]


@single_host_only(refused_by=SWARM_REFUSAL)  # input_path
def test_input_file(tracker, image, tmp_path) -> None:
    """input_path becomes the job's stdin."""
    source, out = tmp_path / "in", tmp_path / "out"
    source.write_text("line1\nline2\n")
    job_id = tracker.add_job(
        jt(image, "sh", "-c", "wc -l", input_path=str(source), output_path=str(out))
    )
    assert tracker.wait(job_id, 30) is DONE
    assert out.read_text().strip() == "2"


@single_host_only(refused_by=SWARM_REFUSAL)  # stage_out_files
def test_stage_out(tracker, image, tmp_path) -> None:
    """stage_out_files copies container files and directories to the host after the job."""
    job_id = tracker.add_job(
        jt(
            image,
            "sh",
            "-c",
            "echo result > /tmp/result.txt; mkdir /tmp/dir; echo a > /tmp/dir/a",
            stage_out_files={
                "/tmp/result.txt": str(tmp_path / "r.txt"),
                "/tmp/dir": str(tmp_path / "d"),
            },
        )
    )
    assert tracker.wait(job_id, 30) is DONE
    assert (tmp_path / "r.txt").read_text() == "result\n"
    assert (tmp_path / "d" / "a").read_text() == "a\n"


@single_host_only(refused_by=SWARM_REFUSAL)  # stage_out_files
def test_stage_out_of_missing_file_fails_the_job(tracker, image, tmp_path) -> None:
    """A stage-out that cannot be done makes the job FAILED with the reason."""
    job_id = tracker.add_job(jt(image, "true", stage_out_files={"/nope": str(tmp_path / "x")}))
    assert tracker.wait(job_id, 30) is FAILED
    assert "stage-out failed" in tracker.job_state(job_id)[1]


def test_job_name_and_duplicates(tracker, image, session_name, engine) -> None:
    """job_name names the container; a second job of that name is an InvalidArgumentError."""
    name = f"{session_name}-named"
    job_id = tracker.add_job(jt(image, "sleep", "5", job_name=name))
    assert engine.inspect(job_id).name == name
    before = tracker.list_jobs()
    with pytest.raises(InvalidArgumentError, match="job_name"):
        tracker.add_job(jt(image, "sleep", "5", job_name=name))
    assert tracker.list_jobs() == before


@single_host_only(refused_by=SWARM_REFUSAL)  # shm-size; tests/swarm has the others
def test_extensions_take_effect(tracker, image, tmp_path) -> None:
    """The Go Docker tracker's extensions work: user, ulimit, entrypoint, shm-size."""
    out = tmp_path / "out"
    job_id = tracker.add_job(
        JobTemplate(
            job_category=image,
            remote_command="-c",
            args=("id -u; ulimit -n; df -k /dev/shm | tail -1",),
            output_path=str(out),
            extension={
                "user": "nobody",
                "ulimit": "nofile=512:512",
                "entrypoint": "sh",
                "shm-size": "32m",
            },
        )
    )
    assert tracker.wait(job_id, 30) is DONE
    uid, nofile, shm = out.read_text().splitlines()
    assert uid == "65534" and nofile == "512"
    assert shm.split()[1] == str(32 * 1024)


def test_resources(tracker, image, tmp_path, engine) -> None:
    """max_slots limits CPUs and VIRTUAL_MEMORY limits memory (read back via JobInfo)."""
    job_id = tracker.add_job(
        jt(image, "sleep", "1", max_slots=1, resource_limits={"VIRTUAL_MEMORY": "64m"})
    )
    record = engine.inspect(job_id)
    assert record.nano_cpus == 1_000_000_000
    assert tracker.job_info(job_id).slots == 1


def test_out_of_memory_is_failed(tracker, image) -> None:
    """A job killed for exceeding its memory limit is FAILED."""
    job_id = tracker.add_job(
        jt(
            image,
            "dd",
            "if=/dev/zero",
            "of=/dev/null",
            "bs=256M",
            "count=1",
            resource_limits={"VIRTUAL_MEMORY": "16m"},
        )
    )
    assert tracker.wait(job_id, 60) is FAILED


# -- time: start, deadline, wall clock -----------------------------------------------------


def test_start_time(tracker, image) -> None:
    """A job with a future start_time is QUEUED until then, then runs."""
    start = datetime.now(UTC) + timedelta(seconds=2)
    job_id = tracker.add_job(jt(image, "true", start_time=start))
    state, sub_state = tracker.job_state(job_id)
    assert state is JobState.QUEUED and "start time" in sub_state
    assert tracker.wait(job_id, 30) is DONE
    assert tracker.job_info(job_id).dispatch_time >= start - timedelta(milliseconds=50)


def test_deadline_and_wallclock(tracker, image) -> None:
    """A job still running at its deadline or wall-clock limit is terminated (FAILED)."""
    soon = datetime.now(UTC) + timedelta(seconds=2)
    by_deadline = tracker.add_job(jt(image, "sleep", "60", deadline_time=soon))
    by_wallclock = tracker.add_job(
        jt(image, "sleep", "60", resource_limits={"WALLCLOCK_TIME": "1"})
    )
    assert tracker.wait(by_deadline, 30) is FAILED
    assert tracker.job_state(by_deadline)[1] == "terminated: deadline reached"
    assert tracker.wait(by_wallclock, 30) is FAILED
    assert tracker.job_state(by_wallclock)[1] == "terminated: wall-clock limit reached"


@single_host_only(SWARM_REFUSAL)
def test_a_job_restarted_on_failure_ends_after_its_last_run(tracker, image, tmp_path) -> None:
    """A job that fails under ``restart: on-failure:2`` runs three times, and only the end of
    its last run is its end: wait returns then, with all three runs in its output file.
    Podman reads ``stopped`` between an exit and the restart its cleanup makes; taken for the
    end, the first run's exit woke the wait (which looks again on each exit event) and wrote
    the output file early (seen in CI under load)."""
    out = tmp_path / "out"
    job_id = tracker.add_job(
        jt(
            image,
            "sh",
            "-c",
            "echo run; exit 3",
            output_path=str(out),
            extension={"restart": "on-failure:2"},
        )
    )
    assert tracker.wait(job_id, 60) is FAILED
    assert out.read_text() == "run\n" * 3
    assert tracker.job_info(job_id).exit_status == 3


@single_host_only(SWARM_REFUSAL)
def test_a_terminated_job_with_a_restart_policy_is_not_restarted(tracker, image) -> None:
    """Terminating a job whose policy restarts it on failure ends it: wait returns FAILED
    "terminated" (not waiting for a restart that never comes), and it stays ended."""
    job_id = tracker.add_job(jt(image, "sleep", "60", extension={"restart": "on-failure:5"}))
    assert tracker.wait(job_id, 30, RUNNING) is RUNNING
    tracker.job_control(job_id, "terminate")
    assert tracker.wait(job_id, 20) is FAILED
    time.sleep(1)  # a restart would come at once
    state, sub_state = tracker.job_state(job_id)
    assert state is FAILED and "terminated" in sub_state, sub_state


def test_output_of_a_job_stopped_at_its_wallclock_limit_is_complete(
    tracker, image, tmp_path
) -> None:
    """A job stopped at its limit reads FAILED at once, but wait returns only when its
    container has ended, with what it wrote while stopping in its output file."""
    out = tmp_path / "out"
    script = "trap 'sleep 0.5; echo bye; exit 143' TERM; echo hi; sleep 60 & wait"
    job_id = tracker.add_job(
        jt(image, "sh", "-c", script, output_path=str(out), resource_limits={"WALLCLOCK_TIME": "1"})
    )
    assert tracker.wait(job_id, 30) is FAILED
    assert out.read_text() == "hi\nbye\n"


def test_deleting_a_job_still_stopping_keeps_its_output(tracker, image, tmp_path) -> None:
    """delete_job of a job that reads FAILED while its container is still stopping waits for
    the stop, so the output file is complete and the job gone."""
    out = tmp_path / "out"
    script = "trap 'sleep 0.5; echo bye; exit 143' TERM; echo hi; sleep 60 & wait"
    job_id = tracker.add_job(
        jt(image, "sh", "-c", script, output_path=str(out), resource_limits={"WALLCLOCK_TIME": "1"})
    )
    give_up = time.monotonic() + 30
    while tracker.job_state(job_id)[0] is not FAILED and time.monotonic() < give_up:
        time.sleep(0.05)
    tracker.delete_job(job_id)
    assert out.read_text() == "hi\nbye\n"
    assert job_id not in tracker.list_jobs()


# -- arrays (D-8, R-8) -----------------------------------------------------------------------


def test_array_job(tracker, image, tmp_path, engine) -> None:
    """D-8: one task per index, TASK_ID env and label, task order, per-task output files."""
    array_id = tracker.add_array_job(
        jt(
            image,
            "sh",
            "-c",
            'echo "task $TASK_ID"',
            output_path=str(tmp_path / "out.$DRMAA2_INDEX$"),
        ),
        1,
        10,
        3,
    )
    ids = tracker.list_array_jobs(array_id)
    assert len(ids) == 4 and len(array_id) < 20
    for task_id, job_id in zip((1, 4, 7, 10), ids, strict=True):
        assert tracker.wait(job_id, 60) is DONE
        assert (tmp_path / f"out.{task_id}").read_text() == f"task {task_id}\n"
        assert engine.inspect(job_id).labels["TASK_ID"] == str(task_id)
        assert tracker.job_template(job_id).job_environment["TASK_ID"] == str(task_id)


def test_array_max_parallel(tracker, image) -> None:
    """max_parallel: never more than that many tasks run; the rest wait QUEUED, then run."""
    array_id = tracker.add_array_job(jt(image, "sleep", "1"), 1, 6, 1, max_parallel=2)
    ids = tracker.list_array_jobs(array_id)
    assert JobState.QUEUED in [tracker.job_state(i)[0] for i in ids]
    assert all(tracker.wait(i, 60) is DONE for i in ids)
    assert _most_running(tracker, ids) == 2


def _most_running(tracker, ids: list[str]) -> int:
    """How many of the ended jobs ``ids`` ran at once, from the engine's start and finish
    times (sampling states one job at a time could see a task end and the next start within
    one sweep)."""
    edges = []
    for info in map(tracker.job_info, ids):
        edges += [(info.dispatch_time, 1), (info.finish_time, -1)]
    running = most_running = 0
    for _, change in sorted(edges):  # at equal times, -1 sorts first
        running += change
        most_running = max(most_running, running)
    return most_running


@single_host_only(SWARM_REFUSAL)
def test_a_task_between_restarts_keeps_its_max_parallel_slot(tracker, image, engine) -> None:
    """A throttled array's task restarted on failure holds its slot between its runs: the
    next task starts only after its last run. (Its first exit was taken for its end, so
    that with max_parallel 1 three tasks ran at once; Podman also reads ``stopped`` in
    between.) Sampled from the engine, as only then the runs of one task are seen."""
    template = jt(image, "sh", "-c", "sleep 0.3; exit 1", extension={"restart": "on-failure:2"})
    array_id = tracker.add_array_job(template, 1, 4, 1, max_parallel=1)
    most_running, done = 0, threading.Event()

    def sample() -> None:
        nonlocal most_running
        while not done.is_set():
            rows = engine.list_containers({ARRAY_ID: array_id})
            most_running = max(most_running, sum(row.status == "running" for row in rows))

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        assert all(tracker.wait(i, 60) is FAILED for i in tracker.list_array_jobs(array_id))
    finally:
        done.set()
        sampler.join()
    assert most_running == 1


def test_array_max_parallel_with_two_schedulers(open_tracker, image, tmp_path) -> None:
    """Two trackers of one session both schedule a throttled array of short tasks: still at
    most max_parallel run at once, and every task runs exactly once."""
    first, second = open_tracker(), open_tracker()
    template = jt(
        image,
        "sh",
        "-c",
        "echo $TASK_ID; sleep 0.3",
        output_path=str(tmp_path / "out.$DRMAA2_INDEX$"),
    )
    array_id = first.add_array_job(template, 1, 12, 1, max_parallel=3)
    ids = second.list_array_jobs(array_id)
    assert all(second.wait(i, 60) is DONE for i in ids)
    assert _most_running(first, ids) == 3
    for task_id in range(1, 13):  # a second start of an ended task would log twice
        assert (tmp_path / f"out.{task_id}").read_text() == f"{task_id}\n"


@pytest.mark.parametrize(
    ("begin", "end", "step", "max_parallel"),
    [(1, 3, 0, 0), (1, 3, -1, 0), (5, 1, 1, 0), (1, 3, 1, -1)],
)
def test_array_bad_bounds(tracker, image, begin, end, step, max_parallel) -> None:
    """Bad array bounds are InvalidArgumentErrors and create nothing (Go looped forever)."""
    with pytest.raises(InvalidArgumentError):
        tracker.add_array_job(jt(image, "true"), begin, end, step, max_parallel)
    assert tracker.list_jobs() == []


def test_array_hold_release_and_terminate_each(tracker, image) -> None:
    """R-8: held array tasks can be released or terminated one by one."""
    array_id = tracker.add_array_job(jt(image, "sleep", "1", submit_as_hold=True), 1, 3)
    ids = tracker.list_array_jobs(array_id)
    assert [tracker.job_state(i)[0] for i in ids] == [JobState.QUEUED_HELD] * 3
    tracker.job_control(ids[0], "release")
    for job_id in ids[1:]:
        tracker.job_control(job_id, "terminate")
    assert tracker.wait(ids[0], 30) is DONE
    assert [tracker.job_state(i)[0] for i in ids[1:]] == [FAILED, FAILED]


def test_terminating_a_throttled_array_stops_every_task(tracker, image, engine) -> None:
    """Terminating each task of a throttled array while its freed slots are being refilled:
    every task ends FAILED and none runs on (a task terminated while a scheduler was starting
    it is stopped again by that scheduler)."""
    template = jt(image, "sh", "-c", "trap 'exit 143' TERM; sleep 60 & wait")
    array_id = tracker.add_array_job(template, 1, 16, 1, max_parallel=4)
    ids = tracker.list_array_jobs(array_id)
    # Each running task, then at once the queued task its freed slot is given to.
    for job_id in (ids[k + offset] for k in (0, 1, 2, 3, 8, 9, 10, 11) for offset in (0, 4)):
        tracker.job_control(job_id, "terminate")
    assert all(tracker.wait(i, 30) is FAILED for i in ids)
    give_up = time.monotonic() + 15
    while time.monotonic() < give_up and _running(engine, ids):
        time.sleep(0.2)
    assert _running(engine, ids) == []


def _running(engine, ids: list[str]) -> list[str]:
    return [i for i in ids if engine.inspect(i).status == "running"]


# -- bad input leaves nothing behind ---------------------------------------------------------


BAD_TEMPLATES = [
    ("no image", dict(job_category=""), InvalidArgumentError, "JobCategory"),
    (
        "missing image",
        dict(job_category="no-such-image:1"),
        InvalidArgumentError,
        "list_job_categories",
    ),
    ("email", dict(email=("a@b",)), UnsupportedAttributeError, "email"),
    ("priority", dict(priority=5), UnsupportedAttributeError, "priority"),
    ("unknown extension", dict(extension={"bogus": "1"}), UnsupportedAttributeError, "bogus"),
    (
        "bad ports",
        dict(extension={"exposedPorts": "808-0/tcp"}),
        InvalidArgumentError,
        "exposedPorts",
    ),
    ("bad privileged", dict(extension={"privileged": "maybe"}), InvalidArgumentError, "privileged"),
    ("bad ulimit", dict(extension={"ulimit": "nofile=x"}), InvalidArgumentError, "ulimit"),
    ("too many slots", dict(max_slots=4096), InvalidArgumentError, "slots"),
    ("slots order", dict(min_slots=2, max_slots=1), InvalidArgumentError, "min_slots"),
    ("wrong arch", dict(machine_arch="SPARC"), InvalidArgumentError, "machine_arch"),
    ("wrong os", dict(machine_os="Win"), InvalidArgumentError, "machine_os"),
    (
        "other machine",
        dict(candidate_machines=("elsewhere",)),
        InvalidArgumentError,
        "candidate_machines",
    ),
    ("relative workdir", dict(working_directory="rel"), InvalidArgumentError, "working_directory"),
    ("bad name", dict(job_name="bad name!"), InvalidArgumentError, "job_name"),
    (
        "missing stage-in",
        dict(stage_in_files={"/no/such/file": "/x"}),
        InvalidArgumentError,
        "stage_in",
    ),
    ("missing input", dict(input_path="/no/such/input"), InvalidArgumentError, "input_path"),
    ("unwritable output", dict(output_path="/proc/nope/out"), InvalidArgumentError, "output"),
    (
        "past deadline",
        dict(deadline_time=datetime(2000, 1, 1, tzinfo=UTC)),
        InvalidArgumentError,
        "deadline",
    ),
    ("index in single job", dict(args=("$DRMAA2_INDEX$",)), InvalidArgumentError, "DRMAA2_INDEX"),
    ("unknown limit", dict(resource_limits={"GPUS": "1"}), UnsupportedAttributeError, "GPUS"),
    (
        "bad limit",
        dict(resource_limits={"WALLCLOCK_TIME": "soon"}),
        InvalidArgumentError,
        "WALLCLOCK",
    ),
    (
        "rm with output",
        dict(extension={"rm": "true"}, output_path="/tmp/x"),
        InvalidArgumentError,
        "rm",
    ),
]
VALID_FOR_ARRAYS = {"index in single job"}


@pytest.mark.parametrize(
    ("fields", "error", "mentions"),
    [pytest.param(f, e, m, id=name) for name, f, e, m in BAD_TEMPLATES],
)
def test_bad_input(tracker, image, fields, error, mentions, request) -> None:
    """Each bad template gets its typed error naming the problem, and leaves no container."""
    template = JobTemplate(**{"remote_command": "true", "job_category": image, **fields})
    with pytest.raises(error, match=mentions):
        tracker.add_job(template)
    if not request.node.callspec.id.endswith(tuple(VALID_FOR_ARRAYS)):
        with pytest.raises(error, match=mentions):
            tracker.add_array_job(template, 1, 3)
    assert tracker.list_jobs() == []


# -- persistence, processes, threads ---------------------------------------------------------


def test_new_tracker_sees_everything(open_tracker, image) -> None:
    """A second tracker of the session sees jobs, states, templates, arrays and holds."""
    first = open_tracker()
    array_id = first.add_array_job(jt(image, "sleep", "1"), 1, 3, 1, max_parallel=1)
    held = first.add_job(jt(image, "true", submit_as_hold=True))
    ids = first.list_array_jobs(array_id)
    first.close()
    second = open_tracker()
    assert set(second.list_jobs()) == {*ids, held}
    assert second.list_array_jobs(array_id) == ids
    assert second.job_state(held)[0] is JobState.QUEUED_HELD
    assert second.job_template(ids[2]).job_environment["TASK_ID"] == "3"
    for job_id in ids:  # the throttled array keeps progressing under the new tracker
        assert second.wait(job_id, 60) is DONE


@pytest.mark.local_only
def test_tracker_in_another_process(
    open_tracker, image, backend, state_dir, session_name, tmp_path
) -> None:
    """Jobs submitted by a process that has exited are seen and completed by this tracker."""
    import subprocess
    import sys

    from tests.conftest import engine_params

    params = {**engine_params(backend, state_dir), "state_dir": str(state_dir)}
    script = f"""
import containertracker
from containertracker import JobTemplate
with containertracker.new_job_tracker({backend!r}, {session_name!r}, {params!r}) as t:
    a = t.add_array_job(JobTemplate(remote_command="sh", args=("-c", "sleep 1; echo $TASK_ID"),
        job_category={image!r}, output_path={str(tmp_path)!r} + "/o.$DRMAA2_INDEX$"), 1, 3, 1, 1)
    print(a)
"""
    array_id = subprocess.run(
        [sys.executable, "-c", script], check=True, capture_output=True, text=True, timeout=120
    ).stdout.strip()
    tracker = open_tracker()
    ids = tracker.list_array_jobs(array_id)
    assert len(ids) == 3
    for task, job_id in enumerate(ids, start=1):
        assert tracker.wait(job_id, 60) is DONE
        assert (tmp_path / f"o.{task}").read_text() == f"{task}\n"


def test_threads_share_a_tracker(tracker, image) -> None:
    """Many threads can submit and wait on one tracker at once."""
    results: list[JobState] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            job_id = tracker.add_job(jt(image, "true"))
            results.append(tracker.wait(job_id, 60))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, daemon=True) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and results == [DONE] * 8
    assert len(tracker.list_jobs()) == 8


@pytest.mark.local_only
def test_list_jobs_is_one_engine_call(tracker, image) -> None:
    """list_jobs costs one engine call however many jobs the session has."""
    for _ in range(5):
        tracker.add_job(jt(image, "true", submit_as_hold=True))
    calls = []
    engine = tracker._engine
    original = engine.list_containers
    me = threading.get_ident()

    def counting(labels):  # the scheduler thread's own calls are not list_jobs'
        if threading.get_ident() == me:
            calls.append(labels)
        return original(labels)

    engine.list_containers = counting
    try:
        assert len(tracker.list_jobs()) == 5
    finally:
        del engine.list_containers
    assert len(calls) == 1


@single_host_only(refused_by=SWARM_REFUSAL)  # host namespaces
def test_namespace_extensions(tracker, image, tmp_path) -> None:
    """uts/pid/net/ipc host take effect inside the job.

    (``privileged`` is parsed and passed on, but this VM denies the capabilities it needs.)
    """
    out = tmp_path / "out"
    script = "hostname; cat /proc/1/comm; ls /sys/class/net | wc -l"
    job_id = tracker.add_job(
        jt(
            image,
            "sh",
            "-c",
            script,
            output_path=str(out),
            extension={"uts": "host", "pid": "host", "net": "host", "ipc": "host"},
        )
    )
    assert tracker.wait(job_id, 30) is DONE
    hostname, init, interfaces = out.read_text().splitlines()
    assert hostname == tracker.get_all_machines()[0].name
    assert init not in ("sh", "")  # the host's PID 1, not the job's shell
    assert int(interfaces) >= 3  # the host's interfaces (a bridged job sees lo and eth0)


def test_unprivileged_job_cannot_mount(tracker, image) -> None:
    """Without the privileged extension a job cannot mount (the default is safe)."""
    job_id = tracker.add_job(jt(image, "mount", "-t", "tmpfs", "none", "/mnt"))
    assert tracker.wait(job_id, 30) is FAILED


@single_host_only(refused_by=SWARM_REFUSAL)  # rm
def test_rm_extension_removes_the_job(tracker, image) -> None:
    """With rm=true the engine removes the job when it ends: it becomes unknown, no hang."""
    job_id = tracker.add_job(jt(image, "true", extension={"rm": "true"}))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            tracker.wait(job_id, 5)
        except JobNotFoundError:
            break
    else:
        pytest.fail("the rm=true job was never removed")
    assert job_id not in tracker.list_jobs()


def test_jobs_of_the_go_tracker_are_seen(tracker, image, session_name, engine) -> None:
    """A container labelled as drmaa2os' Docker tracker labels it is a job of the session."""
    from containertracker.core import labels
    from containertracker.core.engine import ContainerSpec

    go_template = (
        '{"extension":{},"remoteCommand":"sleep","args":["1"],"jobCategory":' + f'"{image}"' + "}"
    )
    template = JobTemplate.from_go_json(go_template)
    job_id = engine.create(
        ContainerSpec(
            image=image,
            command=("sleep", "1"),
            labels={labels.SESSION: session_name, labels.TEMPLATE: template.to_label()},
        )
    )
    engine.start(job_id)
    assert tracker.list_jobs() == [job_id]
    assert tracker.job_template(job_id) == template
    assert tracker.wait(job_id, 30) is DONE
    assert tracker.job_info(job_id).exit_status == 0
    tracker.delete_job(job_id)


def test_close_ends_a_wait(open_tracker, image) -> None:
    """Closing a tracker ends a wait in another thread with an error instead of a hang."""
    tracker = open_tracker()
    job_id = tracker.add_job(jt(image, "sleep", "30"))
    outcome: list[BaseException] = []

    def wait() -> None:
        try:
            tracker.wait(job_id, None)
        except BaseException as exc:
            outcome.append(exc)

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    tracker.wait(job_id, 10, RUNNING)
    tracker.close()
    waiter.join(timeout=30)
    assert not waiter.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], InvalidStateError)


def test_closed_tracker_refuses_every_call(open_tracker, image, session_name) -> None:
    """After close(), every method raises InvalidStateError saying the tracker is closed
    (close itself may be called again), and nothing is created."""
    tracker = open_tracker()
    job_id = tracker.add_job(jt(image, "sleep", "30"))
    tracker.wait(job_id, 30, RUNNING)  # (a swarm places the job first)
    tracker.close()
    tracker.close()
    template = jt(image, "true")
    calls = {
        "list_jobs": (),
        "list_array_jobs": ("a",),
        "add_job": (template,),
        "add_array_job": (template, 1, 2),
        "job_state": (job_id,),
        "job_info": (job_id,),
        "job_control": (job_id, "terminate"),
        "wait": (job_id, 0),
        "delete_job": (job_id,),
        "list_job_categories": (),
        "job_template": (job_id,),
        "contact": (),
        "open_monitoring_session": ("m",),
        "close_monitoring_session": ("m",),
        "get_all_job_ids": (None,),
        "get_all_queue_names": (None,),
        "get_all_machines": (None,),
        "job_info_from_monitor": (job_id,),
        "machine": (),
        "changes": (None, 0),
        "job_info_and_template": (job_id,),
        "output_tail": (job_id, "output", 1024),
        "session_names": (),
    }
    public = {
        name
        for name in dir(tracker)
        if not name.startswith("_") and name != "close" and callable(getattr(tracker, name))
    }
    assert public <= set(calls), f"add {public - set(calls)} to this test"
    for name in sorted(public):
        with pytest.raises(InvalidStateError, match="the tracker is closed"):
            getattr(tracker, name)(*calls[name])
    other = open_tracker()
    assert other.list_jobs() == [job_id]
    assert other.job_state(job_id)[0] is RUNNING  # the terminate was refused too


_MANY_LINES = (
    'i=0; while [ $i -lt 5000 ]; do echo "line $i: ........................................'
    '.........................................."; i=$((i+1)); done; echo last; sleep 300'
)
"""About 480 KB of output in 5,001 lines, the last one ``last``, then the job runs on."""


def _wait_for_output(tracker, job_id: str, end: bytes) -> None:
    engine = tracker._engine
    for _ in range(600):  # a guard against a hang, not a timed assertion
        if b"".join(engine.logs(job_id, stdout=True, stderr=False, tail=1)) == end:
            return
        time.sleep(0.1)
    raise AssertionError(f"the job's log never ended with {end!r}")


@pytest.mark.local_only
def test_the_engine_gives_the_last_lines_of_a_log(tracker, image) -> None:
    """Engine.logs(tail=N): only the job's last N lines, from the engine."""
    job_id = tracker.add_job(jt(image, "sh", "-c", _MANY_LINES))
    try:
        _wait_for_output(tracker, job_id, b"last\n")
        logs = tracker._engine.logs(job_id, stdout=True, stderr=False, tail=3)
        assert b"".join(logs).decode().split("\n")[1:] == [
            "line 4999: " + "." * 82,
            "last",
            "",
        ]
    finally:
        tracker.job_control(job_id, "terminate")


@pytest.mark.local_only
@single_host_only(refused_by=SWARM_REFUSAL)
def test_a_running_jobs_output_tail_is_the_end_of_its_log(tracker, image, tmp_path) -> None:
    """What the dashboard shows of a running job: the last bytes of its log, read from
    its last lines (never the whole log)."""
    out = tmp_path / "out"
    job_id = tracker.add_job(jt(image, "sh", "-c", _MANY_LINES, output_path=str(out)))
    try:
        _wait_for_output(tracker, job_id, b"last\n")
        shown = tracker.output_tail(job_id, "output", 16 << 10)
        assert (shown.live, shown.truncated, len(shown.text)) == (True, True, 16 << 10)
        assert shown.text.endswith("line 4999: " + "." * 82 + "\nlast\n")
    finally:
        tracker.job_control(job_id, "terminate")
