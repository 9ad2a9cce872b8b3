"""The command line's global options (before or after the command) and job references (job
ids, array ids, prefixes of either), without an engine: a recording tracker stands in."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from containertracker import register_job_tracker
from containertracker.cli.app import app
from containertracker.cli.refs import References, Target, pick
from containertracker.errors import InvalidArgumentError, JobNotFoundError
from containertracker.models import JobInfo, JobTemplate

GLOBAL_OPTIONS = {"--backend", "-b", "--session", "-s", "--engine-url", "--url"}


@dataclass
class Recorder:
    """A tracker that records how it was opened and what was submitted; it has ``jobs``
    (id -> array id or "") and nothing else."""

    session: str
    params: Mapping[str, Any]
    jobs: dict[str, str] = field(default_factory=dict)
    submitted: list[JobTemplate] = field(default_factory=list)
    infos_read: list[str] = field(default_factory=list)

    def list_jobs(self) -> list[str]:
        return list(self.jobs)

    def list_array_jobs(self, array_id: str) -> list[str]:
        tasks = [job_id for job_id, array in self.jobs.items() if array and array == array_id]
        if not tasks:
            raise JobNotFoundError(f"no array job {array_id!r}")
        return tasks

    def job_info(self, job_id: str) -> JobInfo:
        self.infos_read.append(job_id)
        if job_id not in self.jobs:
            raise JobNotFoundError(job_id)
        array = self.jobs[job_id]
        return JobInfo(id=job_id, extension={"array_id": array} if array else {})

    def add_job(self, jt: JobTemplate) -> str:
        self.submitted.append(jt)
        return "new-job"

    def close(self) -> None:
        pass


@pytest.fixture
def opened() -> tuple[str, list[Recorder]]:
    """A backend name registered for this test, and the trackers it opened."""
    name = f"cli-unit-{uuid.uuid4().hex[:8]}"
    trackers: list[Recorder] = []

    def allocate(session: str, params: Mapping[str, Any] | None) -> Any:
        trackers.append(Recorder(session, dict(params or {})))
        return trackers[-1]

    register_job_tracker(name, allocate)
    return name, trackers


@pytest.mark.parametrize(
    ("args", "session", "params"),
    [
        (["-b", "{b}", "-s", "before", "list"], "before", {}),
        (["list", "-b", "{b}", "--session", "after"], "after", {}),
        (["--backend", "{b}", "-s", "before", "list", "-s", "after"], "after", {}),
        (
            ["list", "--backend", "{b}", "--engine-url", "unix:///e.sock", "--url", "http://r"],
            "default",
            {"engine_url": "unix:///e.sock", "remote_url": "http://r"},
        ),
        (["--url", "http://before", "-b", "{b}", "list", "--url", "http://after"], "default",
         {"remote_url": "http://after"}),
    ],
)  # fmt: skip
def test_global_options_work_before_and_after_the_command(
    opened: tuple[str, list[Recorder]], args: list[str], session: str, params: dict[str, str]
) -> None:
    """``containertracker list --session foo`` (issue 18): the global options are taken after
    the command as well as before it; given in both places, the one after the command wins."""
    backend, trackers = opened
    result = CliRunner().invoke(app, [a.format(b=backend) for a in args])
    assert result.exit_code == 0, result.output
    assert [(t.session, t.params) for t in trackers] == [(session, params)]


def test_options_after_the_command_beat_the_environment(
    opened: tuple[str, list[Recorder]],
) -> None:
    backend, trackers = opened
    env = {"CONTAINERTRACKER_BACKEND": backend, "CONTAINERTRACKER_SESSION": "from-env"}
    runner = CliRunner()
    assert runner.invoke(app, ["list"], env=env).exit_code == 0
    assert runner.invoke(app, ["list", "-s", "given"], env=env).exit_code == 0
    assert [t.session for t in trackers] == ["from-env", "given"]


def test_after_a_double_dash_everything_is_the_jobs_command(
    opened: tuple[str, list[Recorder]],
) -> None:
    """``submit IMAGE -- cmd --session x``: the --session belongs to the job's command."""
    backend, trackers = opened
    args = ["-b", backend, "submit", "img", "--", "sh", "-c", "x", "--session", "y", "-b", "z"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    (tracker,) = trackers
    assert tracker.session == "default"
    (jt,) = tracker.submitted
    assert (jt.remote_command, jt.args) == ("sh", ("-c", "x", "--session", "y", "-b", "z"))


def test_every_command_takes_the_global_options_once() -> None:
    """Each command has its own copy of the global options (shown under "Global options" in
    its help), and none of its own options uses one of their names."""
    group = typer.main.get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    assert group.commands
    for name, command in group.commands.items():
        names = [opt for p in command.params for opt in (*p.opts, *p.secondary_opts)]
        assert len(names) == len(set(names)), f"{name}: an option name is used twice"
        assert set(names) >= GLOBAL_OPTIONS, f"{name} lacks global options"


# -- references ----------------------------------------------------------------------------------

JOB_A = "3f2a" + "0" * 60
JOB_B = "3f2b" + "1" * 60
ARRAY = "3f9c00aa11bb22cc"


@pytest.mark.parametrize(
    ("ref", "named"),
    [
        (JOB_A, ("job", JOB_A)),
        (ARRAY, ("array", ARRAY)),
        ("3f2a", ("job", JOB_A)),
        ("3f9", ("array", ARRAY)),
        (JOB_A[:12], ("job", JOB_A)),
    ],
)
def test_a_reference_is_an_id_or_a_unique_prefix_of_a_job_or_an_array(
    ref: str, named: tuple[str, str]
) -> None:
    assert pick(ref, [JOB_A, JOB_B], [ARRAY], "s") == named


def test_a_full_id_names_its_own_job_even_when_it_begins_another_id() -> None:
    array = JOB_A[:16]
    assert pick(array, [JOB_A], [array], "s") == ("array", array)
    assert pick(JOB_A[:20], [JOB_A[:20], JOB_A], [], "s") == ("job", JOB_A[:20])


def test_an_ambiguous_prefix_says_what_it_begins() -> None:
    with pytest.raises(InvalidArgumentError) as both:
        pick("3f", [JOB_A, JOB_B], [ARRAY], "s")
    assert str(both.value) == (
        f"'3f' is ambiguous: it begins 2 jobs ({JOB_A[:12]}, {JOB_B[:12]}) and array job "
        f"{ARRAY[:12]}; give more of the id"
    )
    with pytest.raises(InvalidArgumentError, match=r"'3f' is ambiguous: it begins job 3f2a0+ "):
        pick("3f", [JOB_A], [ARRAY], "s")
    many = [f"ab{n}".ljust(64, "0") for n in range(10)]
    with pytest.raises(
        InvalidArgumentError,
        match=r"begins 10 jobs \(ab0000000000, ab1000000000, ab2000000000, \.\.\.\);",
    ):
        pick("ab", many, [], "s")


def test_a_reference_that_names_nothing_is_not_found() -> None:
    for ref in ("", "3f3", "x"):
        with pytest.raises(JobNotFoundError, match=f"no job or array job {ref!r} in session 's'"):
            pick(ref, [JOB_A, JOB_B], [ARRAY], "s")


def _tracker(**jobs: str) -> Recorder:
    tracker = Recorder("s", {})
    tracker.jobs = dict(jobs)
    return tracker


def test_references_expand_an_array_to_its_tasks_and_read_infos_only_for_prefixes() -> None:
    tracker = _tracker(job1="", task1="arr1", task2="arr1", task3="arr9", task4="brr2")
    refs = References(tracker, "s")  # type: ignore[arg-type]
    assert refs.target("job1") == Target(("job1",))
    assert refs.target("arr1") == Target(("task1", "task2"), "arr1")
    assert refs.target("arr1", arrays_only=True) == Target(("task1", "task2"), "arr1")
    assert tracker.infos_read == []  # full ids: no job's info read
    assert refs.target("brr") == Target(("task4",), "brr2")
    assert refs.target("job") == Target(("job1",))
    assert sorted(tracker.infos_read) == ["job1", "task1", "task2", "task3", "task4"]  # once
    with pytest.raises(InvalidArgumentError, match=r"'arr' is ambiguous: it begins 2 array jobs"):
        refs.target("arr")
    with pytest.raises(JobNotFoundError, match="no array job 'job1' in session 's'"):
        refs.target("job1", arrays_only=True)


def test_a_job_deleted_while_the_infos_are_read_is_left_out() -> None:
    tracker = _tracker(task1="arr1")
    refs = References(tracker, "s")  # type: ignore[arg-type]
    tracker.jobs["gone"] = ""
    listed = refs._job_ids()
    del tracker.jobs["gone"]
    assert listed == ["task1", "gone"]
    assert refs.target("ar") == Target(("task1",), "arr1")
