"""The pure core without an engine: extension parsing, template conversion, state mapping,
labels, the state store, the public surface (ports of drmaa2os' convert_test.go DC-*)."""

from __future__ import annotations

import subprocess
import sys
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import containertracker
from containertracker import (
    InvalidArgumentError,
    InvalidStateError,
    JobState,
    JobTemplate,
    UnsupportedAttributeError,
)
from containertracker.core import extensions, labels
from containertracker.core.convert import (
    ResourceLimits,
    SubmitContext,
    container_state,
    host_paths,
    job_info_from_record,
    resource_limits,
    template_host_paths,
    template_to_spec,
    template_ulimits,
)
from containertracker.core.engine import Bind, ContainerRecord, EngineInfo, PortBinding, Ulimit
from containertracker.core.plan import Plan
from containertracker.core.statestore import JobMarks, StateStore
from containertracker.tracker import refuse_calls_when_closed

ENGINE = EngineInfo("host1", "x86_64", 2, 8 << 30, "linux", "5.10.0-1-amd64", "20.10.24")
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def ctx(tmp_path: Path, **overrides: object) -> SubmitContext:
    fields: dict[str, object] = dict(
        session="session",
        engine=ENGINE,
        now=NOW,
        cwd=str(tmp_path),
        home="/home/u",
        submission_host="submitter",
        owner="u",
    )
    fields.update(overrides)
    return SubmitContext(**fields)  # type: ignore[arg-type]


# -- extensions (DC-1..DC-3, DC-11) ---------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [
        "8080/tcp,1301/tcp",
        "192.168.2.111:80:6444/tcp,192.168.2.11:8080:6445/tcp",
        "80:6444/tcp,8080:6445/tcp",
    ],
)
def test_ports_give_two_exposed_ports_and_bindings(spec: str) -> None:
    """DC-1/DC-2: each spec gives two exposed ports and two bindings."""
    exposed, bindings = extensions.parse_ports(spec)
    assert len(exposed) == 2 and len(bindings) == 2


def test_port_details() -> None:
    """Host IP and port are kept; a bare port publishes to any host port; ranges expand."""
    assert extensions.parse_ports("192.168.2.11:8080:6445/udp") == (
        ["6445/udp"],
        [PortBinding("6445/udp", "192.168.2.11", "8080")],
    )
    assert extensions.parse_ports("8080")[1] == [PortBinding("8080/tcp", "", "")]
    assert extensions.parse_ports("9000-9001:80-81")[0] == ["80/tcp", "81/tcp"]


@pytest.mark.parametrize("spec", ["808-0/tcp,13+01/tcp", "70000", "80/icmp", "1-3:80-81", "x"])
def test_bad_ports_are_refused(spec: str) -> None:
    """DC-3 (stricter than Go, which ignored them): malformed port specs are errors."""
    with pytest.raises(InvalidArgumentError, match="exposedPorts"):
        extensions.parse_ports(spec)


@pytest.mark.parametrize(
    ("text", "size"),
    [("10g", 10737418240), ("512m", 512 << 20), ("1.5k", 1536), ("1024", 1024), ("2 MiB", 2 << 20)],
)
def test_sizes(text: str, size: int) -> None:
    """Human sizes are binary multiples, as in the Go tracker's shm-size."""
    assert extensions.parse_size("shm-size", text) == size


@pytest.mark.parametrize("text", ["", "ten", "10x", "-1"])
def test_bad_sizes(text: str) -> None:
    """Malformed sizes are InvalidArgumentErrors naming the key."""
    with pytest.raises(InvalidArgumentError, match="shm-size"):
        extensions.parse_size("shm-size", text)


def test_ulimits() -> None:
    """DC-11: memlock=-1 and stack soft=hard; a hard limit may be given."""
    assert extensions.parse_ulimits("memlock=-1,stack=67108864,nofile=10:20") == [
        Ulimit("memlock", -1, -1),
        Ulimit("stack", 67108864, 67108864),
        Ulimit("nofile", 10, 20),
    ]


@pytest.mark.parametrize("text", ["bogus=1", "nofile", "nofile=a", "nofile=20:10"])
def test_bad_ulimits(text: str) -> None:
    """Unknown names, missing values and soft > hard are refused."""
    with pytest.raises(InvalidArgumentError, match="ulimit"):
        extensions.parse_ulimits(text)


def test_gpus_restart_bool() -> None:
    """gpus is all or a count, restart a Docker policy, booleans strict."""
    assert extensions.parse_gpus("all") == -1 and extensions.parse_gpus("2") == 2
    assert extensions.parse_restart("on-failure:3") == "on-failure:3"
    assert (
        extensions.parse_bool("rm", "TRUE") is True and extensions.parse_bool("rm", "no") is False
    )
    for bad in (
        lambda: extensions.parse_gpus("many"),
        lambda: extensions.parse_restart("sometimes"),
        lambda: extensions.parse_bool("privileged", ""),
    ):
        with pytest.raises(InvalidArgumentError):
            bad()


# -- template -> spec (DC-5, DC-7..DC-11) -----------------------------------------------------


def test_template_maps_to_spec(tmp_path: Path) -> None:
    """DC-7: command, image, working dir, session label and a cwd-relative stage-in bind."""
    (tmp_path / "outer").write_text("x")
    jt = JobTemplate(
        remote_command="/bin/sleep",
        args=("123",),
        job_category="my/image",
        working_directory="/working/dir",
        candidate_machines=("host1",),
        stage_in_files={"./outer": "/inner"},
    )
    spec, plan = template_to_spec(jt, ctx(tmp_path))
    assert spec.command == ("/bin/sleep", "123") and spec.image == "my/image"
    assert spec.working_dir == "/working/dir"
    assert spec.labels[labels.SESSION] == "session"
    assert spec.binds == (Bind(str(tmp_path / "outer"), "/inner", read_only=True),)
    assert JobTemplate.from_label(spec.labels[labels.TEMPLATE]) == jt
    assert plan == Plan(stage_in=[str(tmp_path / "outer")])


def test_jobs_run_under_an_init_unless_sharing_a_pid_namespace(tmp_path: Path) -> None:
    """Every job's command runs under the engine's init (so SIGTERM reaches it), except in
    another PID namespace (the pid extension), where it is not PID 1 and an init cannot be."""
    plain, _ = template_to_spec(
        JobTemplate(remote_command="sleep", job_category="i"), ctx(tmp_path)
    )
    assert plain.init is True
    shared, _ = template_to_spec(
        JobTemplate(remote_command="sleep", job_category="i", extension={"pid": "host"}),
        ctx(tmp_path),
    )
    assert shared.init is False


def test_environment_and_extensions(tmp_path: Path) -> None:
    """DC-8..DC-11: env entries and every Go extension land in the spec."""
    jt = JobTemplate(
        remote_command="true",
        job_category="i",
        job_environment={"env1": "value1", "env2": "value2"},
        extension={
            "user": "testuser",
            "exposedPorts": "80:6445/tcp",
            "restart": "unless-stopped",
            "net": "host",
            "privileged": "true",
            "ipc": "host",
            "uts": "host",
            "pid": "host",
            "rm": "true",
            "ulimit": "memlock=-1,stack=67108864",
            "shm-size": "10g",
            "entrypoint": "sh -c",
        },
    )
    spec, _ = template_to_spec(jt, ctx(tmp_path))
    assert spec.environment == {"env1": "value1", "env2": "value2"}
    assert spec.user == "testuser" and spec.exposed_ports == ("6445/tcp",)
    assert spec.port_bindings == (PortBinding("6445/tcp", "", "80"),)
    assert spec.restart_policy == "unless-stopped" and spec.network_mode == "host"
    assert spec.privileged and spec.auto_remove
    assert (spec.ipc_mode, spec.uts_mode, spec.pid_mode) == ("host", "host", "host")
    assert spec.shm_size == 10737418240 and spec.entrypoint == ("sh", "-c")
    assert spec.ulimits == (Ulimit("memlock", -1, -1), Ulimit("stack", 67108864, 67108864))


def test_resources_and_plan(tmp_path: Path) -> None:
    """Slots, resource limits, times and output paths become limits and the plan."""
    start, deadline = NOW + timedelta(hours=1), NOW + timedelta(hours=2)
    jt = JobTemplate(
        remote_command="true",
        job_category="i",
        max_slots=2,
        resource_limits={"OPEN_FILES": "64", "VIRTUAL_MEMORY": "64m", "WALLCLOCK_TIME": "30"},
        start_time=start,
        deadline_time=deadline,
        submit_as_hold=True,
        output_path="out",
        error_path="/abs/err",
        join_files=True,
        stage_out_files={"/tmp/r": "r"},
    )
    spec, plan = template_to_spec(jt, ctx(tmp_path))
    assert spec.nano_cpus == 2_000_000_000 and spec.mem_limit == 64 << 20
    assert spec.ulimits == (Ulimit("nofile", 64, 64),)
    assert (
        plan.hold and plan.start_at == start.timestamp() and plan.deadline == deadline.timestamp()
    )
    assert plan.wallclock_limit == 30
    assert plan.stdout_path == str(tmp_path / "out") and plan.stderr_path is None
    assert plan.stage_out == {"/tmp/r": str(tmp_path / "r")}
    assert Plan.from_labels(spec.labels) == plan


def test_resource_limits_read_one_way(tmp_path: Path) -> None:
    """Keys in any case, each limit once; the ulimits of both sources in one list, which the
    spec carries exactly; CPU time rounded up (a ulimit counts whole seconds)."""
    jt = JobTemplate(
        remote_command="true",
        job_category="i",
        resource_limits={"virtual_memory": "64m", "Cpu_Time": "0.5", "file_size": "1k"},
        extension={"ulimit": "nofile=10:20"},
    )
    assert resource_limits(jt.resource_limits) == ResourceLimits(
        ulimits=(
            ("resource limit CPU_TIME", Ulimit("cpu", 1, 1)),
            ("resource limit FILE_SIZE", Ulimit("fsize", 1024, 1024)),
        ),
        memory=64 << 20,
    )
    named = template_ulimits(jt)
    assert [what for what, _ in named][-1] == "extension ulimit nofile"
    spec, _ = template_to_spec(jt, ctx(tmp_path))
    assert spec.ulimits == tuple(limit for _, limit in named) and spec.mem_limit == 64 << 20


def test_array_task(tmp_path: Path) -> None:
    """A task gets TASK_ID (env, label, stored template), a suffixed name, its index."""
    jt = JobTemplate(
        remote_command="echo",
        args=("$DRMAA2_INDEX$",),
        job_category="i",
        job_name="job",
        output_path="$DRMAA2_HOME_DIR$/o.$DRMAA2_INDEX$",
    )
    spec, plan = template_to_spec(jt, ctx(tmp_path, task_id=7, array_id="a1", max_parallel=2))
    assert spec.command == ("echo", "7") and spec.name == "job-7"
    assert spec.environment["TASK_ID"] == "7"
    assert spec.labels[labels.TASK_ID] == "7" and spec.labels[labels.ARRAY_ID] == "a1"
    assert spec.labels[labels.MAX_PARALLEL] == "2"
    assert JobTemplate.from_label(spec.labels[labels.TEMPLATE]).job_environment == {"TASK_ID": "7"}
    assert plan.stdout_path == "/home/u/o.7"


def test_host_path_fields_are_read_one_way(tmp_path: Path) -> None:
    """Which fields name host paths is read once: as the template gives them (what a
    server's policy looks at), resolved for a task (each placeholder expanded) and as the
    plan keeps them, in one order; a joined error path is none of them (never used)."""
    (tmp_path / "in").write_text("")
    (tmp_path / "si").mkdir()
    jt = JobTemplate(
        remote_command="true",
        job_category="i",
        input_path="in",
        output_path="o.$DRMAA2_INDEX$",
        error_path="e",
        join_files=True,
        stage_in_files={"si": "/si"},
        stage_out_files={"/so": "$DRMAA2_WORKING_DIR$/so"},
    )
    assert template_host_paths(jt).named() == [
        ("input_path", "in"),
        ("output_path", "o.$DRMAA2_INDEX$"),
        ("stage_in_files[si]", "si"),
        ("stage_out_files[/so]", "$DRMAA2_WORKING_DIR$/so"),
    ]
    task = ctx(tmp_path, task_id=3, array_id="a")
    resolved = host_paths(jt, task)
    assert resolved == [
        ("input_path", str(tmp_path / "in")),
        ("output_path", str(tmp_path / "o.3")),
        ("stage_in_files[si]", str(tmp_path / "si")),
        ("stage_out_files[/so]", str(tmp_path / "so")),
    ]
    _, plan = template_to_spec(jt, task)
    assert plan.host_paths == [
        ("input_path", str(tmp_path / "in")),
        ("output_path", str(tmp_path / "o.3")),
        (f"stage_in_files[{tmp_path / 'si'}]", str(tmp_path / "si")),
        ("stage_out_files[/so]", str(tmp_path / "so")),
    ]
    assert template_host_paths(jt.model_copy(update={"join_files": False})).error_path == "e"


@pytest.mark.parametrize(
    ("fields", "error", "text"),
    [
        ({"job_category": ""}, InvalidArgumentError, "JobCategory"),
        ({"email": ("a@b",)}, UnsupportedAttributeError, "email"),
        ({"email_on_started": True}, UnsupportedAttributeError, "email_on_started"),
        ({"email_on_terminated": True}, UnsupportedAttributeError, "email_on_terminated"),
        ({"reservation_id": "r"}, UnsupportedAttributeError, "reservation"),
        ({"rerunnable": True}, UnsupportedAttributeError, "rerunnable"),
        ({"priority": 1}, UnsupportedAttributeError, "priority"),
        ({"extension": {"some": "extension"}}, UnsupportedAttributeError, "some"),
        ({"min_slots": 2, "max_slots": 1}, InvalidArgumentError, "min_slots"),
        ({"max_slots": 3}, InvalidArgumentError, "CPUs"),
        ({"machine_os": "Win"}, InvalidArgumentError, "machine_os"),
        ({"machine_os": "Plan9"}, InvalidArgumentError, "machine_os"),
        ({"machine_arch": "ARM64"}, InvalidArgumentError, "machine_arch"),
        ({"candidate_machines": ("other",)}, InvalidArgumentError, "host1"),
        ({"min_phys_memory": 9 << 20}, InvalidArgumentError, "min_phys_memory"),
        ({"working_directory": "rel"}, InvalidArgumentError, "working_directory"),
        ({"job_name": "a b"}, InvalidArgumentError, "job_name"),
        ({"stage_in_files": {"missing": "/x"}}, InvalidArgumentError, "stage_in"),
        ({"deadline_time": NOW - timedelta(1)}, InvalidArgumentError, "deadline"),
        (
            {"start_time": NOW + timedelta(2), "deadline_time": NOW + timedelta(1)},
            InvalidArgumentError,
            "start_time",
        ),
        ({"args": ("$DRMAA2_INDEX$",)}, InvalidArgumentError, "array"),
        ({"args": ("$DRMAA2_HOME_DIR$",)}, InvalidArgumentError, "host paths"),
        ({"extension": {"rm": "true"}, "output_path": "o"}, InvalidArgumentError, "rm"),
        ({"resource_limits": {"NICE": "1"}}, UnsupportedAttributeError, "NICE"),
        ({"resource_limits": {"CPU_TIME": "-1"}}, InvalidArgumentError, "positive"),
        ({"resource_limits": {"STACK_SIZE": "big"}}, InvalidArgumentError, "STACK_SIZE"),
        # One spelling per limit: which of two would hold was a matter of order.
        (
            {"resource_limits": {"VIRTUAL_MEMORY": "1M", "virtual_memory": "1T"}},
            InvalidArgumentError,
            "set it once",
        ),
        # No limit means "unlimited": a memory limit of 0 would, to the engine.
        ({"resource_limits": {"VIRTUAL_MEMORY": "0"}}, InvalidArgumentError, "positive"),
        ({"resource_limits": {"virtual_memory": "0.1"}}, InvalidArgumentError, "positive"),
        ({"resource_limits": {"FILE_SIZE": "0"}}, InvalidArgumentError, "positive"),
        ({"resource_limits": {"OPEN_FILES": "0.5"}}, InvalidArgumentError, "positive"),
        ({"resource_limits": {"CPU_TIME": "nan"}}, InvalidArgumentError, "positive"),
        ({"resource_limits": {"WALLCLOCK_TIME": "inf"}}, InvalidArgumentError, "positive"),
        ({"resource_limits": {"DATA_SIZE": "99999999p"}}, InvalidArgumentError, "beyond"),
        (
            {"resource_limits": {"OPEN_FILES": "64"}, "extension": {"ulimit": "nofile=32"}},
            InvalidArgumentError,
            "twice",
        ),
        ({"extension": {"ulimit": "nofile=32,nofile=64"}}, InvalidArgumentError, "twice"),
        ({"extension": {"ulimit": "core=-5"}}, InvalidArgumentError, "-1"),
        ({"extension": {"ulimit": f"core={2**63}"}}, InvalidArgumentError, "-1"),
    ],
)
def test_refusals(tmp_path: Path, fields: dict[str, object], error: type, text: str) -> None:
    """DC-5 and every other refusal: a typed error whose message names the field."""
    template = JobTemplate(**{"remote_command": "true", "job_category": "i", **fields})
    with pytest.raises(error, match=text):
        template_to_spec(template, ctx(tmp_path))


# -- state mapping (DC-12, DC-13) -------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "exit_code", "oom", "held", "failure", "expected"),
    [
        ("exited", 0, False, False, "", (JobState.DONE, "")),
        ("exited", 1, False, False, "", (JobState.FAILED, "")),
        ("exited", 0, True, False, "", (JobState.FAILED, "out of memory")),
        ("dead", 1, False, False, "", (JobState.FAILED, "")),
        ("dead", 0, False, False, "", (JobState.DONE, "")),
        ("paused", 0, False, False, "", (JobState.SUSPENDED, "")),
        ("restarting", 0, False, False, "", (JobState.REQUEUED, "restarting")),
        ("running", 0, False, False, "", (JobState.RUNNING, "")),
        ("created", 0, False, False, "", (JobState.QUEUED, "")),
        ("created", 0, False, True, "", (JobState.QUEUED_HELD, "held")),
        ("created", 0, False, True, "terminated", (JobState.FAILED, "terminated")),
        (
            "exited",
            0,
            False,
            False,
            "stage-out failed: x",
            (JobState.FAILED, "stage-out failed: x"),
        ),
        ("removing", 0, False, False, "", (JobState.UNDETERMINED, "removing")),
    ],
)
def test_container_state(
    status: str, exit_code: int, oom: bool, held: bool, failure: str, expected: object
) -> None:
    """DC-12 with our deliberate deviations (created = QUEUED, restarting = REQUEUED)."""
    assert container_state(status, exit_code, oom, held=held, failure=failure) == expected


def test_job_info_from_record() -> None:
    """DC-13: id, exit status, the three times, the engine host, signal, wall clock."""
    created, started, finished = NOW, NOW + timedelta(seconds=1), NOW + timedelta(seconds=4)
    record = ContainerRecord(
        id="jobid",
        name="n",
        image="img",
        labels={labels.QUEUE: "q", labels.OWNER: "alice", labels.SUBMISSION_HOST: "sub"},
        status="exited",
        exit_code=137,
        oom_killed=False,
        error="",
        created=created,
        started_at=started,
        finished_at=finished,
        command=("sleep", "9"),
        working_dir="/w",
        user="",
        nano_cpus=2_000_000_000,
    )
    info = job_info_from_record(record, JobState.FAILED, "", "host1")
    assert (info.id, info.exit_status, info.state) == ("jobid", 137, JobState.FAILED)
    assert info.terminating_signal == "SIGKILL"
    assert (info.submission_time, info.dispatch_time, info.finish_time) == (
        created,
        started,
        finished,
    )
    assert info.allocated_machines == ("host1",) and info.slots == 2
    assert info.wallclock_time == timedelta(seconds=3)
    assert (info.queue_name, info.job_owner, info.submission_machine) == ("q", "alice", "sub")
    assert info.extension == {"workingdir": "/w", "commandline": "sleep 9", "category": "img"}
    task = job_info_from_record(
        replace(record, labels={**record.labels, labels.ARRAY_ID: "a1", labels.TASK_ID: "7"}),
        JobState.DONE,
        "",
        "host1",
    )
    assert (task.extension["array_id"], task.extension["task_id"]) == ("a1", "7")
    # The output files as the tracker resolved them at submission, for any reader.
    plan = Plan(stdout_path="/h/o.7", stderr_path="/h/e.7")
    with_files = job_info_from_record(
        replace(record, labels={**record.labels, labels.PLAN: plan.to_label()}),
        JobState.DONE,
        "",
        "host1",
    )
    assert with_files.extension["output_path"] == "/h/o.7"
    assert with_files.extension["error_path"] == "/h/e.7"
    running = job_info_from_record(
        record, JobState.RUNNING, "", "host1", now=started + timedelta(seconds=2)
    )
    assert running.exit_status is None and running.finish_time is None
    # Running again after a restart: the earlier run's finish does not end the wall clock.
    assert running.wallclock_time == timedelta(seconds=2)


def test_a_terminated_job_has_no_exit_status_until_its_container_ended() -> None:
    """FAILED "terminated" while the stop is under way (the container still running, its
    exit code still 0) or before it ever started: no exit status 0, no end time."""
    started = NOW + timedelta(seconds=1)
    record = replace(_timed_record(NOW, started, None), status="running")
    stopping = job_info_from_record(record, JobState.FAILED, "terminated", "host1")
    assert (stopping.exit_status, stopping.terminating_signal, stopping.finish_time) == (
        None,
        "",
        None,
    )
    never_started = replace(record, status="created", started_at=None)
    info = job_info_from_record(never_started, JobState.FAILED, "terminated", "host1")
    assert (info.exit_status, info.finish_time, info.wallclock_time) == (None, None, None)
    ended = replace(record, status="exited", exit_code=143, finished_at=started)
    assert job_info_from_record(ended, JobState.FAILED, "terminated", "h").exit_status == 143


def _timed_record(
    created: datetime | None, started: datetime | None, finished: datetime | None
) -> ContainerRecord:
    return ContainerRecord(
        id="jobid",
        name="n",
        image="img",
        labels={},
        status="exited",
        exit_code=0,
        oom_killed=False,
        error="",
        created=created,
        started_at=started,
        finished_at=finished,
        command=("true",),
        working_dir="",
        user="",
        nano_cpus=0,
    )


MS = timedelta(milliseconds=1)


@pytest.mark.parametrize(
    ("created", "started", "finished", "expected"),
    [
        # A job that exits at once: the engine stamps its start after its finish.
        (NOW, NOW + 3 * MS, NOW + 2 * MS, (NOW, NOW + 2 * MS, NOW + 2 * MS)),
        # A start stamped before the creation (clocks).
        (NOW, NOW - MS, NOW + 5 * MS, (NOW, NOW, NOW + 5 * MS)),
        # A finish before the creation: everything at the creation.
        (NOW, NOW - 2 * MS, NOW - MS, (NOW, NOW, NOW)),
        # Times in order stay as they are; missing ones stay missing.
        (NOW, NOW + MS, NOW + 2 * MS, (NOW, NOW + MS, NOW + 2 * MS)),
        (NOW, None, None, (NOW, None, None)),
        (None, NOW + MS, NOW, (None, NOW, NOW)),
    ],
)
def test_job_info_times_never_run_backwards(
    created: datetime | None,
    started: datetime | None,
    finished: datetime | None,
    expected: tuple[datetime | None, ...],
) -> None:
    """submission <= dispatch <= finish whatever the engine's stamps say; the wall clock
    is finish - dispatch, never negative."""
    info = job_info_from_record(
        _timed_record(created, started, finished), JobState.DONE, "", "host1"
    )
    assert (info.submission_time, info.dispatch_time, info.finish_time) == expected
    if info.dispatch_time and info.finish_time:
        assert info.wallclock_time == info.finish_time - info.dispatch_time


# -- labels and the state store ---------------------------------------------------------------


def test_plan_label_round_trip() -> None:
    """The plan label omits defaults; foreign containers have the empty plan."""
    assert Plan().to_label() == "{}"
    plan = Plan(hold=True, deadline=5.0, stage_out={"/a": "/b"})
    assert Plan.from_labels({labels.PLAN: plan.to_label()}) == plan
    assert Plan.from_labels({}) == Plan()
    for not_a_plan in ("{", "[1]", '"x"', "null"):
        assert Plan.from_labels({labels.PLAN: not_a_plan}) == Plan()
    assert not Plan().needs_finalizing and Plan(stdout_path="/o").needs_finalizing
    started = Plan(created_started=True)
    assert Plan.from_labels({labels.PLAN: started.to_label()}) == started


@pytest.mark.parametrize(
    ("plan", "may"),
    [
        (Plan(), True),
        (Plan(deadline=5.0, wallclock_limit=3.0, stage_in=["/s"], stage_out={"/a": "/b"}), True),
        (Plan(hold=True), False),
        (Plan(start_at=5.0), False),
        (Plan(stdin_path="/i"), False),
        (Plan(stdout_path="/o"), False),
        (Plan(stderr_path="/e"), False),
    ],
)
def test_a_job_may_start_at_creation_unless_something_comes_between(plan: Plan, may: bool) -> None:
    """Only a hold, a start time, an input file to open or output files to create keep a job
    from being created started (a deadline, a wall-clock limit, stage-in and stage-out
    act around a running job, as they do for one a scheduler starts)."""
    assert plan.may_start_at_creation is may


def test_state_store(tmp_path: Path) -> None:
    """Marks are recorded, updated field by field and forgotten."""
    store = StateStore(tmp_path)
    assert store.marks("j").hold is None
    store.update("j", hold=True)
    store.update("j", failure="terminated")
    marks = store.marks("j")
    assert marks.hold is True and marks.failure == "terminated" and not marks.finalized
    store.forget("j")
    assert store.marks("j").failure == ""


def test_state_store_updates_from_threads(tmp_path: Path) -> None:
    """Concurrent updates of different fields of one job are all kept."""
    store = StateStore(tmp_path)
    fields = [{"hold": False}, {"failure": "x"}, {"finalized": True}] * 10
    threads = [threading.Thread(target=store.update, args=("j",), kwargs=f) for f in fields]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.marks("j") == store.marks("j").__class__(hold=False, failure="x", finalized=True)


def test_lock_excludes_a_second_holder(tmp_path: Path) -> None:
    """While one thread holds a named lock, another cannot take it."""
    store = StateStore(tmp_path)
    held, release, second_got_it = threading.Event(), threading.Event(), threading.Event()

    def first() -> None:
        with store.lock("session-s"):
            held.set()
            release.wait(5)

    def second() -> None:
        with store.lock("session-s"):
            second_got_it.set()

    a = threading.Thread(target=first)
    a.start()
    held.wait(5)
    b = threading.Thread(target=second)
    b.start()
    assert not second_got_it.wait(0.2)
    release.set()
    assert second_got_it.wait(5)
    a.join()
    b.join()


def test_claims_mark_jobs_and_count_per_session(tmp_path: Path) -> None:
    """A claim marks each job with its time and advances its session's count (shared with the
    sessions of its stripe, which "other/session" is not in)."""
    store = StateStore(tmp_path)
    assert store.claim_count("s") == 0
    assert store.claim("s", ["a", "b"], now=100.0) == 2
    assert store.claim("s", iter(["c"]), now=101.0) == 3
    assert store.claim_count("s") == 3 and store.claim_count("other/session") == 0
    assert store.marks("a").claimed_at == 100.0 and store.marks("c").claimed_at == 101.0
    assert store.marks("d").claimed_at is None


def test_a_claim_is_renewed_only_by_its_claimer(tmp_path: Path) -> None:
    """renew_claim succeeds for the claim's own time and fails once the job was claimed anew
    or its claim dropped."""
    store = StateStore(tmp_path)
    store.claim("s", ["a"], now=100.0)
    assert store.renew_claim("a", 100.0, now=150.0)
    assert store.marks("a").claimed_at == 150.0
    assert not store.renew_claim("a", 100.0, now=160.0)
    store.update("a", claimed_at=None)
    assert not store.renew_claim("a", 150.0, now=170.0)


def test_a_renewed_claim_marks_the_job_starting_and_a_new_claim_clears_it(
    tmp_path: Path,
) -> None:
    """renew_claim commits the start (``starting``); a fresh claim (the old one lost) does not
    carry the commitment over."""
    store = StateStore(tmp_path)
    store.claim("s", ["a"], now=100.0)
    assert not store.marks("a").starting
    assert store.renew_claim("a", 100.0, now=110.0)
    assert store.marks("a").starting
    store.claim("s", ["a"], now=200.0)
    assert not store.marks("a").starting


def test_a_submission_is_taken_over_only_once_its_holder_let_go(tmp_path: Path) -> None:
    """A submission's record is listed for its session only; nobody takes it over while its
    submitter holds it; once let go (as by a dead process) it is taken over once and removed;
    a completed submission leaves no record."""
    store = StateStore(tmp_path)
    running = store.open_submission("s", "aaaa1111")
    done = store.open_submission("s", "bbbb2222")
    store.open_submission("other", "cccc3333").close(complete=False)
    assert store.submissions("s") == {"aaaa1111", "bbbb2222"}
    with store.take_over_submission("aaaa1111") as ours:
        assert not ours  # its submitter is at work
    done.close(complete=True)
    running.close(complete=False)  # gave up: left for a scheduler to roll back
    assert store.submissions("s") == {"aaaa1111"}
    with store.take_over_submission("aaaa1111") as ours:
        assert ours
        with store.take_over_submission("aaaa1111") as again:
            assert not again  # one taker at a time
    assert store.submissions("s") == set()
    with store.take_over_submission("aaaa1111") as ours:
        assert not ours  # gone
    with pytest.raises(ValueError):
        store.open_submission("s", "../x")


def test_termination_is_a_field_of_its_own(tmp_path: Path) -> None:
    """Whether a job must not run is its own mark, not read from the failure's wording; marks
    written before the field existed still read terminated when their failure says so."""
    store = StateStore(tmp_path)
    assert store.update("a", failure="terminated", terminated=True).terminated
    assert not store.update("b", failure="terminated-looking stage-out error").terminated
    (tmp_path / "jobs" / "old").write_text('{"failure": "terminated: deadline reached"}')
    (tmp_path / "jobs" / "older").write_text('{"failure": "stage-out failed: gone"}')
    assert store.marks("old").terminated
    assert not store.marks("older").terminated
    assert not JobMarks().terminated


def test_job_locks_do_not_pile_up(tmp_path: Path) -> None:
    """Marks of many jobs leave a bounded number of lock files behind."""
    store = StateStore(tmp_path)
    for n in range(500):
        store.update(f"job{n}", hold=True)
        with store.job_lock("finalize", f"job{n}"):
            pass
    assert len(list((tmp_path / "locks").iterdir())) <= 2 * 64


# -- closed trackers --------------------------------------------------------------------------


def test_closed_guard_refuses_public_methods_only() -> None:
    """refuse_calls_when_closed: once closed, public methods raise InvalidStateError saying
    so; close stays callable (idempotent) and private helpers are untouched."""

    @refuse_calls_when_closed
    class Tracker:
        def __init__(self) -> None:
            self._closed = threading.Event()

        def list_jobs(self) -> list[str]:
            return ["a"]

        def close(self) -> None:
            self._closed.set()

        def _helper(self) -> int:
            return 1

    tracker = Tracker()
    assert tracker.list_jobs() == ["a"]
    tracker.close()
    tracker.close()
    with pytest.raises(InvalidStateError, match=r"the tracker is closed: list_jobs\(\)"):
        tracker.list_jobs()
    assert tracker._helper() == 1


def test_every_public_method_of_both_trackers_is_guarded() -> None:
    """ContainerTracker's and RemoteTracker's public methods (close aside) refuse calls after
    close(); the remote client does so without a server (nothing is sent)."""
    from containertracker.core.tracker import ContainerTracker
    from containertracker.remote.client import RemoteTracker

    for cls in (ContainerTracker, RemoteTracker):
        public = [
            name
            for name, member in vars(cls).items()
            if not name.startswith("_") and name != "close" and callable(member)
        ]
        assert public and all(hasattr(getattr(cls, name), "__wrapped__") for name in public)
    remote = RemoteTracker("s", "http://127.0.0.1:9")
    remote.close()
    remote.close()
    with pytest.raises(InvalidStateError, match="the tracker is closed"):
        remote.list_jobs()
    with pytest.raises(InvalidStateError, match="the tracker is closed"):
        remote.contact()
    with pytest.raises(InvalidStateError, match="the tracker is closed"):
        remote.wait("job", 0)


# -- public surface ---------------------------------------------------------------------------


def test_public_names() -> None:
    """__all__ lists exactly the public names, and each resolves."""
    public = {
        name
        for name, value in vars(containertracker).items()
        if not name.startswith("_")
        and name not in ("annotations", "logger")
        and not (hasattr(value, "__path__") or type(value).__name__ == "module")
    }
    assert set(containertracker.__all__) - {"errors"} == public
    for name in containertracker.__all__:
        assert getattr(containertracker, name) is not None


def test_import_loads_no_engine_sdk() -> None:
    """import containertracker imports neither docker, podman nor requests."""
    code = (
        "import sys, containertracker; "
        "print(sorted(m for m in ('docker', 'podman', 'requests') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_registry() -> None:
    """Custom allocators register; unknown names are refused with the registered ones."""
    made: list[tuple[str, object]] = []

    def allocator(session: str, params: object) -> object:
        made.append((session, params))
        return object()

    containertracker.register_job_tracker("unit-test-tracker", allocator)  # type: ignore[arg-type]
    containertracker.new_job_tracker("unit-test-tracker", "s", {"a": 1})
    assert made == [("s", {"a": 1})]
    assert {"docker", "podman"} <= set(containertracker.registered_job_trackers())
    with pytest.raises(InvalidArgumentError, match="docker"):
        containertracker.new_job_tracker("nope", "s")


def test_errors() -> None:
    """Every error carries its DRMAA2 id; the timeout is a TimeoutError."""
    from containertracker import errors

    assert issubclass(errors.WaitTimeoutError, TimeoutError)
    assert issubclass(errors.JobNotFoundError, errors.InvalidArgumentError)
    assert errors.InvalidStateError.error_id == errors.ErrorID.INVALID_STATE == 9
    assert errors.DrmCommunicationError.transient


# -- placement over several machines (a swarm's nodes) ---------------------------------------

NODES = (
    replace(ENGINE, host_name="n1"),
    replace(ENGINE, host_name="n2", cpus=8, memory=64 << 30),
    replace(ENGINE, host_name="n3", architecture="aarch64"),
)


@pytest.mark.parametrize(
    ("fields", "placement"),
    [
        ({}, None),
        ({"candidate_machines": ("n2", "n3", "elsewhere")}, ("n2", "n3")),
        ({"machine_arch": "x64"}, ("n1", "n2")),
        ({"min_phys_memory": 16 << 20}, ("n2",)),  # KiB
        ({"max_slots": 4}, None),  # no placement: slots are a limit, the swarm places by them
    ],
)
def test_placement_is_the_eligible_machines(tmp_path, fields, placement) -> None:
    """With several machines, a template runs where every ask fits; the spec names those
    hosts when not all are (None: any), and carries min_slots/min_phys_memory as
    reservations."""
    spec, _ = template_to_spec(
        JobTemplate(job_category="img", **fields), ctx(tmp_path, machines=NODES)
    )
    assert spec.placement == placement


def test_reservations(tmp_path) -> None:
    jt = JobTemplate(job_category="img", min_slots=2, min_phys_memory=1 << 20)
    spec, _ = template_to_spec(jt, ctx(tmp_path, machines=NODES))
    assert (spec.cpu_reservation, spec.memory_reservation) == (2_000_000_000, 1 << 30)


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"candidate_machines": ("n3",), "machine_arch": "x64"}, "machine_arch"),
        ({"machine_arch": "ARM64", "min_phys_memory": 16 << 20}, "min_phys_memory"),
        ({"max_slots": 9}, "CPUs"),
    ],
)
def test_no_machine_fits(tmp_path, fields, named) -> None:
    """A template no machine can run is refused, naming the ask that ruled out the last."""
    with pytest.raises(InvalidArgumentError, match=named):
        template_to_spec(JobTemplate(job_category="img", **fields), ctx(tmp_path, machines=NODES))


@pytest.mark.parametrize(
    ("policy", "exit_code", "may_restart"),
    [
        (None, 1, False),
        ("no", 1, False),
        ("on-failure:3", 0, False),
        ("on-failure:3", 1, True),
        ("on-failure", None, True),  # exit code not known: the engine decides
        ("always", 0, True),
        ("unless-stopped", 0, True),
    ],
)
def test_an_exit_is_an_end_unless_the_restart_policy_may_run_the_job_again(
    policy: str | None, exit_code: int | None, may_restart: bool
) -> None:
    assert Plan(restart_policy=policy).may_restart_after(exit_code) is may_restart


def test_the_restart_extension_goes_into_the_plan(tmp_path: Path) -> None:
    jt = JobTemplate(
        remote_command="true", job_category="busybox", extension={"restart": "on-failure:2"}
    )
    spec, plan = template_to_spec(jt, ctx(tmp_path))
    assert plan.restart_policy == spec.restart_policy == "on-failure:2"
    assert Plan.from_labels(spec.labels).restart_policy == "on-failure:2"


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"working_directory": "/tmp\x00x"}, "working_directory"),
        ({"remote_command": "sh\x00"}, "remote_command"),
        ({"args": ("-c", "echo\x00")}, "args"),
        ({"job_environment": {"A": "b\x00"}}, "job_environment\\['A'\\]"),
        ({"job_environment": {"A\x00": "b"}}, "job_environment \\(a key\\)"),
        ({"output_path": "/tmp/o\x00"}, "output_path"),
        ({"stage_in_files": {"/etc/hostname": "/in\x00"}}, "stage_in_files"),
        ({"extension": {"user": "x\x00"}}, "extension"),
    ],
)
def test_a_nul_character_anywhere_is_refused_naming_the_field(
    tmp_path: Path, fields: dict[str, object], named: str
) -> None:
    jt = JobTemplate(remote_command="true", job_category="busybox").model_copy(update=fields)
    with pytest.raises(InvalidArgumentError, match=f"{named}.* NUL"):
        template_to_spec(jt, ctx(tmp_path))
