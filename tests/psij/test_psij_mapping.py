"""The JobSpec -> JobTemplate mapping and the state mapping of the PSI/J executor (no engine)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from psij import (
    InvalidJobException,
    JobAttributes,
    JobSpec,
    JobState,
    ResourceSpecV1,
    SubmitException,
)

from containertracker.models import JobInfo
from containertracker.models import JobState as TrackerState
from containertracker.psij import spec_to_template
from containertracker.psij._executor import (
    ContainerTrackerExecutorConfig,
    _backend_of,
)
from containertracker.psij._mapping import (
    POST_LAUNCH_PATH,
    PRE_LAUNCH_PATH,
    psij_state,
    status_from_info,
)

IMAGE = "containertracker/psij:latest"


def test_the_whole_spec_maps_to_the_template(tmp_path: Path) -> None:
    spec = JobSpec(
        executable="/bin/echo",
        arguments=["a b", "c"],
        directory=tmp_path,
        environment={"S": "x", "N": 1},
        stdin_path=tmp_path / "in",
        stdout_path=tmp_path / "out",
        stderr_path=tmp_path / "err",
        resources=ResourceSpecV1(cpu_cores_per_process=2, memory=64 * 1024 * 1024),
        attributes=JobAttributes(duration=timedelta(seconds=90.2), queue_name="q", account="acct"),
        launcher="single",
    )
    jt = spec_to_template(spec, IMAGE)
    assert jt.job_category == IMAGE
    assert (jt.remote_command, jt.args) == ("/bin/echo", ("a b", "c"))
    assert jt.job_environment == {"S": "x", "N": "1"}
    assert jt.working_directory == str(tmp_path)
    assert jt.stage_in_files == {str(tmp_path): str(tmp_path)}  # read-only, same path
    assert (jt.input_path, jt.output_path, jt.error_path) == (
        str(tmp_path / "in"),
        str(tmp_path / "out"),
        str(tmp_path / "err"),
    )
    assert (jt.min_slots, jt.max_slots) == (2, 2)
    # duration rounds up to whole seconds: the job gets at least what it asked for
    assert jt.resource_limits == {"WALLCLOCK_TIME": "91", "VIRTUAL_MEMORY": str(64 * 1024 * 1024)}
    assert (jt.queue_name, jt.accounting_id) == ("q", "acct")


def test_the_default_duration_is_a_limit_and_a_negative_one_is_refused() -> None:
    # psij gives every spec a 10-minute duration unless told otherwise
    jt = spec_to_template(JobSpec("/bin/date"), IMAGE)
    assert jt.resource_limits == {"WALLCLOCK_TIME": "600"}
    unlimited = spec_to_template(
        JobSpec("/bin/date", attributes=JobAttributes(duration=timedelta(0))), IMAGE
    )
    assert unlimited.resource_limits == {}
    with pytest.raises(InvalidJobException, match="negative"):
        spec_to_template(
            JobSpec("/bin/date", attributes=JobAttributes(duration=timedelta(seconds=-1))), IMAGE
        )


def test_relative_host_paths_are_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    jt = spec_to_template(JobSpec("/bin/date", stdout_path="out.txt"), IMAGE)
    assert jt.output_path == str(tmp_path / "out.txt")


def test_custom_attributes_pick_the_image_and_extensions() -> None:
    attrs = JobAttributes(
        custom_attributes={
            "containertracker.image": "other:1",
            "containertracker.extension.user": "nobody",
            "slurm.constraint": "ignored: another executor's attribute",
        }
    )
    jt = spec_to_template(JobSpec("/bin/date", attributes=attrs), IMAGE)
    assert jt.job_category == "other:1"
    assert jt.extension == {"user": "nobody"}


@pytest.mark.parametrize(
    "custom",
    [{"containertracker.imag": "typo"}, {"containertracker.image": 3}],
)
def test_bad_custom_attributes_are_refused(custom: dict[str, object]) -> None:
    with pytest.raises(InvalidJobException):
        spec_to_template(
            JobSpec("/bin/date", attributes=JobAttributes(custom_attributes=custom)), IMAGE
        )


@pytest.mark.parametrize("launcher", ["mpirun", "srun", "aprun", "jsrun", "multiple"])
def test_mpi_launchers_are_refused_with_submit_exception(launcher: str) -> None:
    with pytest.raises(SubmitException, match="launcher"):
        spec_to_template(JobSpec("/bin/date", launcher=launcher), IMAGE)


@pytest.mark.parametrize(
    "resources",
    [
        ResourceSpecV1(process_count=4),
        ResourceSpecV1(node_count=2),
        ResourceSpecV1(exclusive_node_use=True),
    ],
)
def test_what_one_container_cannot_be_is_refused(resources: ResourceSpecV1) -> None:
    with pytest.raises(InvalidJobException):
        spec_to_template(JobSpec("/bin/date", resources=resources), IMAGE)


def test_a_reservation_and_a_missing_executable_are_refused() -> None:
    with pytest.raises(InvalidJobException, match="reservation"):
        spec_to_template(JobSpec("/bin/date", attributes=JobAttributes(reservation_id="r1")), IMAGE)
    with pytest.raises(InvalidJobException, match="executable"):
        spec_to_template(JobSpec(), IMAGE)


def test_gpus_map_to_the_gpus_extension() -> None:
    jt = spec_to_template(
        JobSpec("/bin/date", resources=ResourceSpecV1(gpu_cores_per_process=1)), IMAGE
    )
    assert jt.extension == {"gpus": "1"}


def test_pre_and_post_launch_wrap_the_command(tmp_path: Path) -> None:
    pre, post = tmp_path / "pre.sh", tmp_path / "post.sh"
    spec = JobSpec(
        "/bin/echo", ["x"], environment={"_PSIJ_PRE": "/evil"}, pre_launch=pre, post_launch=post
    )
    jt = spec_to_template(spec, IMAGE)
    assert jt.remote_command == "/bin/sh"
    assert jt.args[0] == "-c" and jt.args[3:] == ("/bin/echo", "x")
    assert jt.stage_in_files == {str(pre): PRE_LAUNCH_PATH, str(post): POST_LAUNCH_PATH}
    # the wrapper's own variables win over a user variable of the same name
    assert jt.job_environment["_PSIJ_PRE"] == PRE_LAUNCH_PATH


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (TrackerState.QUEUED, JobState.QUEUED),
        (TrackerState.QUEUED_HELD, JobState.QUEUED),
        (TrackerState.REQUEUED, JobState.QUEUED),
        (TrackerState.RUNNING, JobState.ACTIVE),
        (TrackerState.SUSPENDED, JobState.ACTIVE),
        (TrackerState.UNDETERMINED, None),
    ],
)
def test_states_map(state: TrackerState, expected: JobState | None) -> None:
    assert psij_state(state) == expected


def test_final_statuses_carry_exit_codes_and_reasons() -> None:
    done = status_from_info(JobInfo(state=TrackerState.DONE, exit_status=0), canceled=False)
    assert (done.state, done.exit_code) == (JobState.COMPLETED, 0)
    failed = status_from_info(
        JobInfo(
            state=TrackerState.FAILED,
            exit_status=137,
            terminating_signal="SIGKILL",
            annotation="out of memory",
        ),
        canceled=False,
    )
    assert (failed.state, failed.exit_code) == (JobState.FAILED, 137)
    assert failed.message is not None and "out of memory" in failed.message
    canceled = status_from_info(JobInfo(state=TrackerState.FAILED, exit_status=143), canceled=True)
    assert canceled.state == JobState.CANCELED


@pytest.mark.parametrize(
    ("annotation", "expected"),
    [
        ("terminated", JobState.CANCELED),  # job_control TERMINATE from any process
        ("terminated before it started", JobState.CANCELED),
        ("terminated: wall-clock limit reached", JobState.FAILED),  # a limit, no cancel
        ("", JobState.FAILED),
    ],
)
def test_a_job_terminated_elsewhere_reads_canceled(annotation: str, expected: JobState) -> None:
    status = status_from_info(
        JobInfo(state=TrackerState.FAILED, exit_status=143, annotation=annotation),
        canceled=False,
    )
    assert status.state == expected


@pytest.mark.parametrize(
    ("url", "expected_backend", "extra"),
    [
        (None, "docker", {}),
        ("podman", "podman", {}),
        ("podman+unix:///run/p.sock", "podman", {"engine_url": "unix:///run/p.sock"}),
        ("http://h:8080", "remote", {"remote_url": "http://h:8080"}),
    ],
)
def test_urls_select_the_backend(
    url: str | None, expected_backend: str, extra: dict[str, str]
) -> None:
    assert _backend_of(url, ContainerTrackerExecutorConfig()) == (expected_backend, extra)


def test_an_unreadable_url_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot read url"):
        _backend_of("ftp://x", ContainerTrackerExecutorConfig())
