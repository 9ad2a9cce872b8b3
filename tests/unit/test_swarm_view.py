"""The swarm adapter's reading of a job service and its tasks (pure: the JSON shapes are those
the lab swarm answered, Docker 20.10 / API 1.41, with Go's omitempty dropping zeros)."""

from __future__ import annotations

from typing import Any

import pytest

from containertracker.backends.swarm import job_view


def service(max_concurrent: int, iteration: int) -> dict[str, Any]:
    mode: dict[str, Any] = {"TotalCompletions": 1}
    if max_concurrent:
        mode["MaxConcurrent"] = max_concurrent
    job_status: dict[str, Any] = {"JobIteration": {"Index": iteration} if iteration else {}}
    return {"ID": "s1", "Spec": {"Mode": {"ReplicatedJob": mode}}, "JobStatus": job_status}


def task(state: str, *, created: str = "2026-12-01T18:00:00Z", iteration: int = 1, **status: Any):  # type: ignore[no-untyped-def]
    return {
        "ID": f"t-{state}-{created}",
        "NodeID": "n2",
        "CreatedAt": created,
        "JobIteration": {"Index": iteration},
        "Status": {"State": state, "Timestamp": "2026-12-01T18:00:05Z", **status},
    }


HELD, RELEASED, STOPPED = service(0, 0), service(1, 1), service(0, 2)
CREATED_RELEASED, CREATED_RELEASED_STOPPED = service(1, 0), service(0, 1)
"""A job created started (released at its creation, iteration 0), and then stopped."""


@pytest.mark.parametrize(
    ("svc", "tasks", "status"),
    [
        (HELD, [], "created"),
        (RELEASED, [], "pending"),
        # The release fell between the two reads: a task shows it happened.
        (HELD, [task("pending")], "pending"),
        (CREATED_RELEASED, [], "pending"),
        (CREATED_RELEASED, [task("running", iteration=0)], "running"),
        # Stopped (one update): never released again, whatever the task's state.
        (CREATED_RELEASED_STOPPED, [], "exited"),
        (CREATED_RELEASED_STOPPED, [task("assigned", iteration=0)], "exited"),
        (STOPPED, [], "exited"),
        (STOPPED, [task("assigned")], "exited"),
        (RELEASED, [task("preparing")], "pending"),
        (RELEASED, [task("running")], "running"),
        (RELEASED, [task("complete")], "exited"),
    ],
)
def test_status(svc, tasks, status) -> None:
    assert job_view(svc, tasks).status == status


def test_a_job_waiting_for_a_node_says_why() -> None:
    err = "no suitable node (scheduling constraints not satisfied on 3 nodes)"
    view = job_view(RELEASED, [task("pending", Err=err)])
    assert (view.status, view.error) == ("pending", err)


def test_complete_is_exit_0_with_times_and_node() -> None:
    view = job_view(RELEASED, [task("complete", ContainerStatus={"ExitCode": 0})])
    assert (view.exit_code, view.error, view.node_id, view.rerun_to_stop) == (0, "", "n2", False)
    assert view.started_at is not None and view.finished_at is not None
    assert view.started_at <= view.finished_at


def test_failed_keeps_its_exit_code_and_asks_to_stop_the_rerun() -> None:
    failed = task("failed", ContainerStatus={"ExitCode": 3}, Err="task: non-zero exit (3)")
    view = job_view(RELEASED, [failed])
    assert (view.status, view.exit_code, view.error) == ("exited", 3, "task: non-zero exit (3)")
    assert view.rerun_to_stop
    assert not job_view(STOPPED, [failed]).rerun_to_stop  # stopped already
    assert job_view(CREATED_RELEASED, [failed]).rerun_to_stop
    assert not job_view(CREATED_RELEASED_STOPPED, [failed]).rerun_to_stop


def test_rejected_is_never_success() -> None:
    """A rejected task reads ExitCode 0 (no container ran): the job must not read DONE."""
    rejected = task("rejected", ContainerStatus={"ExitCode": 0}, Err="No such image: x:latest")
    view = job_view(RELEASED, [rejected])
    assert view.exit_code == 125 and "No such image" in view.error


def test_a_task_shut_down_reads_killed() -> None:
    view = job_view(STOPPED, [task("shutdown", ContainerStatus={"ExitCode": 143})])
    assert (view.exit_code, view.rerun_to_stop) == (143, False)
    view = job_view(STOPPED, [task("shutdown", Message="shutdown")])
    assert view.exit_code == 137 and "shutdown" in view.error


def test_the_first_task_decides_not_a_rerun() -> None:
    first = task("failed", created="2026-12-01T18:00:00Z", ContainerStatus={"ExitCode": 3})
    rerun = task("complete", created="2026-12-01T18:00:02Z")
    assert job_view(STOPPED, [rerun, first]).exit_code == 3
