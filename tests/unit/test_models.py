"""Unit tests for containertracker.models (DRMAA2 types and their Go-compatible encodings)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from containertracker.models import (
    CPU,
    OS,
    ZERO_TIME,
    JobInfo,
    JobState,
    JobTemplate,
    Machine,
    format_go_time,
    parse_go_time,
)

T0 = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)

MINIMAL_TEMPLATE_JSON = (
    '{"extension":{},"remoteCommand":"echo",'
    '"startTime":"0001-01-01T00:00:00Z","deadlineTime":"0001-01-01T00:00:00Z"}'
)
UNSET_JOBINFO_JSON = (
    '{"Extensible":null,"extension":{},"exitStatus":-1,"slots":-1,"cpuTime":-3,'
    '"submissionTime":"0001-01-01T00:00:00Z","dispatchTime":"0001-01-01T00:00:00Z",'
    '"finishTime":"0001-01-01T00:00:00Z"}'
)
MACHINE_JSON = (
    '{"Extensible":null,"extension":{},"name":"h","architecture":8,'
    '"osVersion":{"major":"5","minor":"1"},"os":3}'
)

JOB_STATE_NAMES = [
    "Unset",
    "Undetermined",
    "Queued",
    "QueuedHeld",
    "Running",
    "Suspended",
    "Requeued",
    "RequeuedHeld",
    "Done",
    "Failed",
]
REMOTE_STATE_NAMES = [
    "unset",
    "undetermined",
    "queued",
    "queuedHeld",
    "running",
    "suspended",
    "requeued",
    "requeuedHeld",
    "done",
    "failed",
]
CPU_NAMES = [
    "OtherCPU",
    "Alpha",
    "ARM",
    "ARM64",
    "Cell",
    "PARISC",
    "PARISC64",
    "x86",
    "x64",
    "IA64",
    "MIPS",
    "MIPS64",
    "PowerPC",
    "PowerPC64",
    "SPARC",
    "SPARC64",
]
OS_NAMES = [
    "OtherOS",
    "AIX",
    "BSD",
    "Linux",
    "HPUX",
    "IRIX",
    "MacOS",
    "SunOS",
    "TRU64",
    "UnixWare",
    "Win",
    "WinNT",
]


def full_template() -> JobTemplate:
    """A template with every field set to a non-default value."""
    return JobTemplate(
        remote_command="/bin/sh",
        args=("-c", "echo <hi> & bye"),
        submit_as_hold=True,
        rerunnable=True,
        job_environment={"B": "2", "A": "1"},
        working_directory="/work",
        job_category="busybox:latest",
        email=("a@example.org",),
        email_on_started=True,
        email_on_terminated=True,
        job_name="job",
        input_path="/in",
        output_path="/out",
        error_path="/err",
        join_files=True,
        reservation_id="r1",
        queue_name="q",
        min_slots=1,
        max_slots=4,
        priority=-5,
        candidate_machines=("h1", "h2"),
        min_phys_memory=1024,
        machine_os="Linux",
        machine_arch="x64",
        start_time=datetime(2024, 1, 2, 3, 4, 5, 600, tzinfo=UTC),
        deadline_time=datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=-5))),
        stage_in_files={"/host": "/container"},
        stage_out_files={"/c": "/h"},
        resource_limits={"cpu": "1"},
        accounting_id="acct",
        extension={"privileged": "true", "net": "host"},
    )


def full_jobinfo() -> JobInfo:
    """A JobInfo with every field set to a non-default value."""
    return JobInfo(
        id="abc",
        exit_status=137,
        terminating_signal="SIGKILL",
        annotation="killed",
        state=JobState.FAILED,
        sub_state="oom",
        allocated_machines=("h1",),
        submission_machine="sub",
        job_owner="me",
        slots=2,
        queue_name="q",
        wallclock_time=timedelta(seconds=90, microseconds=5),
        cpu_time=12,
        submission_time=T0,
        dispatch_time=T0 + timedelta(seconds=1),
        finish_time=T0 + timedelta(seconds=91),
        extension={"workingdir": "/w"},
    )


# ------------------------------------------------------------------------------ enums


def test_job_state_values_and_names() -> None:
    """JobState ints are 0..9 in Go order and drmaa2_name round-trips for every value (I-3)."""
    assert [int(s) for s in JobState] == list(range(10))
    assert [s.drmaa2_name for s in JobState] == JOB_STATE_NAMES
    for state in JobState:
        assert JobState.from_drmaa2_name(state.drmaa2_name) is state


def test_cpu_values_and_names() -> None:
    """CPU ints are 0..15 in Go order and drmaa2_name round-trips (x86/x64 lower-case) (I-3)."""
    assert [int(c) for c in CPU] == list(range(16))
    assert [c.drmaa2_name for c in CPU] == CPU_NAMES
    for cpu in CPU:
        assert CPU.from_drmaa2_name(cpu.drmaa2_name) is cpu


def test_os_values_and_names() -> None:
    """OS ints are 0..11 in Go order and drmaa2_name round-trips for every value (I-3)."""
    assert [int(o) for o in OS] == list(range(12))
    assert [o.drmaa2_name for o in OS] == OS_NAMES
    for os_ in OS:
        assert OS.from_drmaa2_name(os_.drmaa2_name) is os_


@pytest.mark.parametrize(
    ("parse", "name"),
    [
        (JobState.from_drmaa2_name, "running"),
        (JobState.from_drmaa2_name, "Bogus"),
        (CPU.from_drmaa2_name, "X64"),
        (OS.from_drmaa2_name, "linux"),
    ],
)
def test_from_drmaa2_name_rejects_unknown(parse: Callable[[str], object], name: str) -> None:
    """Unknown or wrongly-cased DRMAA2 names raise ValueError."""
    with pytest.raises(ValueError):
        parse(name)


def test_remote_state_round_trip() -> None:
    """All ten states round-trip through the remote lower-camel names (RS-1)."""
    assert [s.remote_name for s in JobState] == REMOTE_STATE_NAMES
    for state in JobState:
        assert JobState.from_remote_name(state.remote_name) is state


@pytest.mark.parametrize("name", ["RUNNING", "Running", "", "bogus"])
def test_remote_state_unknown_is_undetermined(name: str) -> None:
    """Unknown remote state strings map to UNDETERMINED like the Go client."""
    assert JobState.from_remote_name(name) is JobState.UNDETERMINED


def test_terminal_states() -> None:
    """Only DONE and FAILED are terminal."""
    assert {s for s in JobState if s.terminal} == {JobState.DONE, JobState.FAILED}


@pytest.mark.parametrize(
    ("arch", "cpu"),
    [
        ("x86_64", CPU.X64),
        ("amd64", CPU.X64),
        ("i386", CPU.X86),
        ("i686", CPU.X86),
        ("386", CPU.X86),
        ("aarch64", CPU.ARM64),
        ("arm64", CPU.ARM64),
        ("armv7l", CPU.ARM),
        ("arm", CPU.ARM),
        ("ppc64le", CPU.POWERPC64),
        ("ppc64", CPU.POWERPC64),
        ("ppc", CPU.POWERPC),
        ("mips64le", CPU.MIPS64),
        ("mipsle", CPU.MIPS),
        ("sparc64", CPU.SPARC64),
        ("ia64", CPU.IA64),
        ("s390x", CPU.OTHER_CPU),
        ("riscv64", CPU.OTHER_CPU),
        ("", CPU.OTHER_CPU),
    ],
)
def test_cpu_from_machine(arch: str, cpu: CPU) -> None:
    """uname/GOARCH names map to the DRMAA2 CPU, unknown ones to OTHER_CPU."""
    assert CPU.from_machine(arch) is cpu


def test_cpu_from_machine_x64_aliases_agree() -> None:
    """x86_64 and amd64 are the same CPU, X64."""
    assert CPU.from_machine("x86_64") == CPU.from_machine("amd64") == CPU.X64


@pytest.mark.parametrize(
    ("os_type", "os_"),
    [
        ("linux", OS.LINUX),
        ("windows", OS.WIN),
        ("darwin", OS.MACOS),
        ("freebsd", OS.BSD),
        ("openbsd", OS.BSD),
        ("netbsd", OS.BSD),
        ("plan9", OS.OTHER_OS),
        ("", OS.OTHER_OS),
    ],
)
def test_os_from_engine(os_type: str, os_: OS) -> None:
    """Engine OSType strings map to the DRMAA2 OS, unknown ones to OTHER_OS."""
    assert OS.from_engine(os_type) is os_


# ------------------------------------------------------------------------------ times


def test_format_go_time() -> None:
    """Times format like Go: zero time for None, trimmed fractions, Z or +hh:mm."""
    assert format_go_time(None) == ZERO_TIME == "0001-01-01T00:00:00Z"
    assert format_go_time(T0) == "2024-01-02T03:04:05Z"
    assert format_go_time(T0.replace(microsecond=600)) == "2024-01-02T03:04:05.0006Z"
    plus_one = T0.replace(tzinfo=timezone(timedelta(hours=1, minutes=30)))
    assert format_go_time(plus_one) == "2024-01-02T03:04:05+01:30"
    minus_five = T0.replace(tzinfo=timezone(timedelta(hours=-5)))
    assert format_go_time(minus_five) == "2024-01-02T03:04:05-05:00"


def test_parse_nanosecond_time_truncates() -> None:
    """A nanosecond time string decodes with the sub-microsecond digits truncated."""
    parsed = parse_go_time("2024-01-02T03:04:05.123456789Z")
    assert parsed == T0.replace(microsecond=123456)
    assert parse_go_time("2024-01-02T03:04:05.0000006Z") == T0
    jt = JobTemplate.from_go_json('{"startTime":"2024-01-02T03:04:05.999999999+02:00"}')
    assert jt.start_time == datetime(
        2024, 1, 2, 3, 4, 5, 999999, tzinfo=timezone(timedelta(hours=2))
    )


def test_parse_zero_time_is_none() -> None:
    """Go's zero time decodes to None."""
    assert parse_go_time(ZERO_TIME) is None


@pytest.mark.parametrize(
    "text",
    ["2024-01-01 00:00:00Z", "2024-13-01T00:00:00Z", "yesterday", "2024-01-01T00:00:00+24:00"],
)
def test_parse_rejects_invalid_times(text: str) -> None:
    """Malformed or out-of-range RFC 3339 strings raise ValueError."""
    with pytest.raises(ValueError):
        parse_go_time(text)


def test_zoneless_time_rejected_natively() -> None:
    """Native decoding rejects a time without a zone, as Go does."""
    with pytest.raises(ValueError, match="zone"):
        parse_go_time("2024-01-01T00:00:00")
    with pytest.raises(ValueError, match="startTime"):
        JobTemplate.from_go_json('{"startTime":"2024-01-01T00:00:00"}')
    with pytest.raises(ValueError):
        JobInfo.from_go_json('{"finishTime":"2024-01-01T00:00:00"}')


def test_zoneless_time_accepted_remotely_as_utc() -> None:
    """Remote decoding accepts a zone-less time and takes it as UTC."""
    jt = JobTemplate.from_remote_dict({"startTime": "2024-01-01T00:00:00", "remoteCommand": "x"})
    assert jt.start_time == datetime(2024, 1, 1, tzinfo=UTC)
    info = JobInfo.from_remote_dict({"submissionTime": "2024-01-01T00:00:00"})
    assert info.submission_time == datetime(2024, 1, 1, tzinfo=UTC)


def test_naive_datetime_becomes_utc() -> None:
    """Naive datetimes given by users are stored as UTC-aware datetimes."""
    jt = JobTemplate(start_time=datetime(2024, 1, 2, 3, 4, 5))
    assert jt.start_time == T0
    assert jt.start_time is not None and jt.start_time.tzinfo is UTC
    info = JobInfo(finish_time=datetime(2024, 1, 2, 3, 4, 5))
    assert info.finish_time is not None and info.finish_time.utcoffset() == timedelta(0)


# ------------------------------------------------------------------------------ JobTemplate


def test_minimal_template_exact_encoding() -> None:
    """A template with only remote_command encodes exactly like Go (1.6.4)."""
    assert JobTemplate(remote_command="echo").to_go_json() == MINIMAL_TEMPLATE_JSON


def test_template_full_encoding_order_and_escaping() -> None:
    """Keys follow Go struct order, maps are sorted, <>& are escaped, accountingString used."""
    text = full_template().to_go_json()
    keys = list(json.loads(text))
    assert keys == [
        "extension",
        "remoteCommand",
        "args",
        "submitAsHold",
        "reRunnable",
        "jobEnvironment",
        "workingDirectory",
        "jobCategory",
        "email",
        "emailOnStarted",
        "emailOnTerminated",
        "jobName",
        "inputPath",
        "outputPath",
        "errorPath",
        "joinFiles",
        "reservationID",
        "queueName",
        "minSlots",
        "maxSlots",
        "priority",
        "candidateMachines",
        "minPhysMemory",
        "machineOs",
        "machineArch",
        "startTime",
        "deadlineTime",
        "stageInFiles",
        "stageOutFiles",
        "resourceLimits",
        "accountingString",
    ]
    assert '"extension":{"extensionList":{"net":"host","privileged":"true"}}' in text
    assert '"jobEnvironment":{"A":"1","B":"2"}' in text
    assert '"args":["-c","echo \\u003chi\\u003e \\u0026 bye"]' in text
    assert '"startTime":"2024-01-02T03:04:05.0006Z"' in text
    assert '"deadlineTime":"2024-01-02T03:04:05-05:00"' in text
    assert ", " not in text.replace("echo \\u003chi\\u003e \\u0026 bye", "")


def test_template_json_round_trip_lossless() -> None:
    """Every template field survives to_go_json -> from_go_json unchanged (I-1)."""
    jt = full_template()
    assert JobTemplate.from_go_json(jt.to_go_json()) == jt
    assert JobTemplate.from_go_dict(jt.to_go_dict()) == jt
    assert JobTemplate.from_go_json(JobTemplate().to_go_json()) == JobTemplate()


def test_template_decode_go_sample() -> None:
    """The I-2 sample decodes with extension, command and args; missing times are None."""
    jt = JobTemplate.from_go_json(
        '{"extension":{"extensionList":{"foo":"bar"}},"remoteCommand":"echo",'
        '"args":["hello","world"]}'
    )
    assert jt.extension == {"foo": "bar"}
    assert jt.remote_command == "echo"
    assert jt.args == ("hello", "world")
    assert jt.start_time is None and jt.deadline_time is None
    assert jt.job_environment == {}


def test_template_decode_go_leniencies() -> None:
    """Unknown keys are ignored, nulls give defaults and keys match case-insensitively."""
    jt = JobTemplate.from_go_json(
        b'{"RemoteCommand":"ls","args":null,"jobEnvironment":null,"unknown":{"x":1},'
        b'"startTime":null,"extension":null}'
    )
    assert jt == JobTemplate(remote_command="ls")


@pytest.mark.parametrize(
    "text",
    [
        '{"remoteCommand":1}',
        '{"minSlots":"2"}',
        '{"minSlots":1.5}',
        '{"submitAsHold":1}',
        '{"args":"a"}',
        '{"jobEnvironment":{"a":1}}',
        '{"extension":[]}',
        '{"minSlots":NaN}',
        "[]",
        "{",
    ],
)
def test_template_decode_rejects_wrong_types(text: str) -> None:
    """Values of the wrong JSON type (and invalid JSON) raise ValueError like Go's decoder."""
    with pytest.raises(ValueError):
        JobTemplate.from_go_json(text)


def test_template_label_round_trip() -> None:
    """to_label is base64 of the native JSON and from_label restores the template."""
    jt = full_template()
    label = jt.to_label()
    assert base64.b64decode(label).decode() == jt.to_go_json()
    assert JobTemplate.from_label(label) == jt
    assert JobTemplate.from_label(base64.b64encode(MINIMAL_TEMPLATE_JSON.encode()).decode()) == (
        JobTemplate(remote_command="echo")
    )


def test_template_label_rejects_garbage() -> None:
    """A label that is not base64 of a template JSON raises ValueError."""
    with pytest.raises(ValueError):
        JobTemplate.from_label("not base64!")
    with pytest.raises(ValueError):
        JobTemplate.from_label(base64.b64encode(b"[1]").decode())


def test_template_remote_dict_keys_and_values() -> None:
    """The remote template has every 5.2 key, accountingID and a flat extension."""
    remote = JobTemplate(remote_command="echo", args=("1",)).to_remote_dict()
    assert set(remote) == {
        "remoteCommand", "args", "submitAsHold", "reRunnable", "jobEnvironment",
        "workingDirectory", "jobCategory", "email", "emailOnStarted", "emailOnTerminated",
        "jobName", "inputPath", "outputPath", "errorPath", "joinFiles", "reservationID",
        "queueName", "minSlots", "maxSlots", "priority", "candidateMachines", "minPhysMemory",
        "machineOs", "machineArch", "startTime", "deadlineTime", "stageInFiles", "stageOutFiles",
        "resourceLimits", "accountingID", "extension",
    }  # fmt: skip
    assert remote["extension"] == {}
    assert remote["jobEnvironment"] == {}
    assert remote["args"] == ["1"]
    assert remote["startTime"] == ZERO_TIME
    assert remote["accountingID"] == ""
    full = full_template().to_remote_dict()
    assert full["extension"] == {"net": "host", "privileged": "true"}
    assert full["accountingID"] == "acct"


def test_template_remote_round_trip() -> None:
    """to_remote_dict -> from_remote_dict is lossless, also through JSON text."""
    jt = full_template()
    assert JobTemplate.from_remote_dict(jt.to_remote_dict()) == jt
    assert JobTemplate.from_remote_dict(json.loads(json.dumps(jt.to_remote_dict()))) == jt


def test_template_remote_without_extension() -> None:
    """from_remote_dict tolerates a body without an extension key."""
    jt = JobTemplate.from_remote_dict({"remoteCommand": "echo", "accountingID": "x"})
    assert jt == JobTemplate(remote_command="echo", accounting_id="x")


def test_template_is_frozen_and_strict() -> None:
    """Templates cannot be mutated and unknown fields are rejected."""
    jt = JobTemplate(remote_command="echo")
    with pytest.raises(ValidationError):
        jt.remote_command = "ls"
    with pytest.raises(ValidationError):
        JobTemplate(remoteCommand="echo")  # type: ignore[call-arg]


# ------------------------------------------------------------------------------ JobInfo


def test_unset_jobinfo_exact_encoding() -> None:
    """JobInfo() encodes exactly like Go's CreateJobInfo() (1.6.5)."""
    assert JobInfo().to_go_json() == UNSET_JOBINFO_JSON


def test_jobinfo_full_encoding() -> None:
    """All JobInfo keys appear in Go order; wallclock is ns; terminationSignal spelling."""
    text = full_jobinfo().to_go_json()
    decoded = json.loads(text)
    assert list(decoded) == [
        "Extensible",
        "extension",
        "id",
        "exitStatus",
        "terminationSignal",
        "annotation",
        "state",
        "subState",
        "allocatedMachines",
        "submissionMachine",
        "jobOwner",
        "slots",
        "queueName",
        "wallclockTime",
        "cpuTime",
        "submissionTime",
        "dispatchTime",
        "finishTime",
    ]
    assert decoded["wallclockTime"] == 90_000_005_000
    assert decoded["state"] == 9
    assert decoded["extension"] == {"extensionList": {"workingdir": "/w"}}


def test_jobinfo_zero_values_omitted() -> None:
    """Exit status 0, slots 0 and cpu time 0 are omitted (Go omitempty) and decode back to 0."""
    info = JobInfo(exit_status=0, slots=0, cpu_time=0, state=JobState.DONE)
    decoded = json.loads(info.to_go_json())
    assert "exitStatus" not in decoded and "slots" not in decoded and "cpuTime" not in decoded
    assert JobInfo.from_go_json(info.to_go_json()) == info


def test_jobinfo_json_round_trip() -> None:
    """JobInfo survives the native JSON round trip, including the unset sentinels."""
    for info in (full_jobinfo(), JobInfo()):
        assert JobInfo.from_go_json(info.to_go_json()) == info


def test_jobinfo_decode_defaults() -> None:
    """Missing numbers decode to Go's 0, sentinels to None, nanoseconds truncate."""
    info = JobInfo.from_go_json('{"Extensible":null,"wallclockTime":1999,"state":42}')
    assert info.exit_status == 0 and info.slots == 0 and info.cpu_time == 0
    assert info.wallclock_time == timedelta(microseconds=1)
    assert info.state is JobState.UNDETERMINED
    assert info.allocated_machines is None
    sentinels = JobInfo.from_go_json('{"exitStatus":-1,"slots":-1,"cpuTime":-3}')
    assert sentinels == JobInfo()
    assert sentinels.is_unset


def test_jobinfo_sentinel_ints_normalised() -> None:
    """Passing Go's unset sentinels (-1, -1, -3) gives None."""
    info = JobInfo(exit_status=-1, slots=-1, cpu_time=-3)
    assert (info.exit_status, info.slots, info.cpu_time) == (None, None, None)
    assert info == JobInfo()


def test_jobinfo_remote_dict() -> None:
    """Remote JobInfo has every 5.3 key, remote state name and whole-second wallclock."""
    remote = full_jobinfo().to_remote_dict()
    assert set(remote) == {
        "allocatedMachines", "annotation", "cpuTime", "dispatchTime", "exitStatus", "extension",
        "finishTime", "id", "jobOwner", "queueName", "slots", "state", "subState",
        "submissionMachine", "submissionTime", "terminatingSignal", "wallclockTime",
    }  # fmt: skip
    assert remote["state"] == "failed"
    assert remote["wallclockTime"] == 90
    assert remote["terminatingSignal"] == "SIGKILL"
    assert remote["extension"] == {"workingdir": "/w"}
    unset = JobInfo().to_remote_dict()
    assert unset["state"] == "unset"
    assert (unset["exitStatus"], unset["slots"], unset["cpuTime"]) == (-1, -1, -3)
    assert unset["allocatedMachines"] is None
    assert unset["extension"] == {}
    assert unset["finishTime"] == ZERO_TIME


def test_jobinfo_remote_round_trip() -> None:
    """to_remote_dict -> from_remote_dict keeps everything but sub-second wallclock."""
    info = full_jobinfo()
    back = JobInfo.from_remote_dict(json.loads(json.dumps(info.to_remote_dict())))
    assert back == info.model_copy(update={"wallclock_time": timedelta(seconds=90)})
    assert JobInfo.from_remote_dict(JobInfo().to_remote_dict()) == JobInfo()


def test_jobinfo_remote_wallclock_beyond_timedelta_is_a_value_error() -> None:
    """A wallclockTime no timedelta can hold is bad input, not an OverflowError (fuzz find)."""
    with pytest.raises(ValueError, match="wallclockTime"):
        JobInfo.from_remote_dict({"wallclockTime": 2**62})


# ------------------------------------------------------------------------------ matches


def test_unset_filter_matches_everything() -> None:
    """JobInfo() is the unset filter and matches any job."""
    assert JobInfo().is_unset
    assert JobInfo().matches(full_jobinfo())
    assert JobInfo().matches(JobInfo())


@pytest.mark.parametrize(
    ("field", "good", "bad"),
    [
        ("id", "abc", "xyz"),
        ("exit_status", 137, 0),
        ("terminating_signal", "SIGKILL", "SIGTERM"),
        ("annotation", "killed", "other"),
        ("state", JobState.FAILED, JobState.DONE),
        ("sub_state", "oom", "x"),
        ("submission_machine", "sub", "other"),
        ("job_owner", "me", "you"),
        ("slots", 2, 0),
        ("queue_name", "q", "other"),
    ],
)
def test_filter_equality_fields(field: str, good: object, bad: object) -> None:
    """Each set equality field must equal the job's value."""
    job = full_jobinfo()
    assert not JobInfo.model_validate({field: good}).is_unset
    assert JobInfo.model_validate({field: good}).matches(job)
    assert not JobInfo.model_validate({field: bad}).matches(job)


def test_filter_exit_status_zero_is_a_filter() -> None:
    """exit_status=0 filters for successful jobs; a job without exit status fails it."""
    assert JobInfo(exit_status=0).matches(JobInfo(exit_status=0))
    assert not JobInfo(exit_status=0).matches(JobInfo())


def test_filter_allocated_machines_subset() -> None:
    """The job must run on every filter machine (the job may have more)."""
    job = JobInfo(allocated_machines=("a", "b", "c"))
    assert JobInfo(allocated_machines=("a", "c")).matches(job)
    assert not JobInfo(allocated_machines=("a", "d")).matches(job)
    assert not JobInfo(allocated_machines=("a",)).matches(JobInfo())


def test_filter_minimums() -> None:
    """wallclock_time and cpu_time are minimums."""
    job = JobInfo(wallclock_time=timedelta(seconds=10), cpu_time=5)
    assert JobInfo(wallclock_time=timedelta(seconds=10)).matches(job)
    assert not JobInfo(wallclock_time=timedelta(seconds=11)).matches(job)
    assert JobInfo(cpu_time=5).matches(job)
    assert not JobInfo(cpu_time=6).matches(job)
    assert not JobInfo(wallclock_time=timedelta(seconds=1)).matches(JobInfo())
    assert not JobInfo(cpu_time=0).matches(JobInfo())


@pytest.mark.parametrize("field", ["submission_time", "dispatch_time", "finish_time"])
def test_filter_times_not_before(field: str) -> None:
    """The filter times mean "not before"; a job without the time does not match."""
    job = JobInfo.model_validate({field: T0})
    assert JobInfo.model_validate({field: T0}).matches(job)
    assert JobInfo.model_validate({field: T0 - timedelta(seconds=1)}).matches(job)
    assert not JobInfo.model_validate({field: T0 + timedelta(seconds=1)}).matches(job)
    assert not JobInfo.model_validate({field: T0}).matches(JobInfo())


def test_filter_combines_fields() -> None:
    """All set fields must match at once."""
    job = full_jobinfo()
    assert JobInfo(state=JobState.FAILED, job_owner="me").matches(job)
    assert not JobInfo(state=JobState.FAILED, job_owner="you").matches(job)


# ------------------------------------------------------------------------------ Machine


def test_machine_exact_encoding() -> None:
    """The 1.5 Machine example encodes exactly like Go (Go zero values passed explicitly)."""
    machine = Machine(
        name="h",
        available=False,
        sockets=0,
        cores_per_socket=0,
        threads_per_core=0,
        architecture=CPU.X64,
        os_version="5.1",
        os=OS.LINUX,
    )
    assert machine.to_go_json() == MACHINE_JSON
    assert Machine.from_go_json(MACHINE_JSON) == machine


def test_machine_defaults_and_round_trip() -> None:
    """Python defaults are emitted when non-zero and a full machine round-trips."""
    machine = Machine(
        name="host",
        load=1.0,
        physical_memory=2**34,
        virtual_memory=2**35,
        architecture=CPU.ARM64,
        os_version="5.10",
        os=OS.LINUX,
        extension={"k": "v"},
    )
    text = machine.to_go_json()
    assert '"available":true,"sockets":1,"coresPerSocket":1,"threadsPerCore":1,"load":1,' in text
    assert '"osVersion":{"major":"5","minor":"10"}' in text
    assert Machine.from_go_json(text) == machine
    bare = Machine(name="x", os_version="")
    assert '"osVersion":{}' in bare.to_go_json()
    assert Machine.from_go_json(bare.to_go_json()) == bare


@pytest.mark.parametrize(
    ("load", "text"), [(0.5, "0.5"), (1e-5, "0.00001"), (1e-7, "1e-7"), (1e21, "1e+21")]
)
def test_machine_load_float_format(load: float, text: str) -> None:
    """Float load values are formatted as Go's encoding/json formats float64."""
    assert f'"load":{text},' in Machine(name="x", load=load).to_go_json()


def test_machine_nan_load_rejected() -> None:
    """NaN cannot be encoded, as in Go."""
    with pytest.raises(ValueError):
        Machine(name="x", load=float("nan")).to_go_json()
