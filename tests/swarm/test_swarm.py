"""The swarm backend on the lab swarm (scripts/setup-swarm: ct-node-1 manager, ct-node-2 and
ct-node-3 workers): what only a multi-node engine does (placement, jobs spread over nodes,
nodes drained), and the clear refusals that stand in for the contract tests that do not apply
(tests/engine/test_tracker.py, marked ``single_host_only``).

Run with ``--engines swarm`` (CT_SWARM_URL: the manager; default the lab's).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import docker
import pytest

from containertracker import (
    InvalidArgumentError,
    InvalidStateError,
    JobState,
    JobTemplate,
    UnsupportedAttributeError,
    UnsupportedOperationError,
    WaitTimeoutError,
)
from containertracker.core import labels
from tests.conftest import ENGINE_URLS
from tests.engine.test_tracker import _most_running, jt

pytestmark = pytest.mark.only_engines("swarm")

DONE, FAILED, QUEUED, RUNNING = JobState.DONE, JobState.FAILED, JobState.QUEUED, JobState.RUNNING
NODES = ("ct-node-1", "ct-node-2", "ct-node-3")
LAB = Path(ENGINE_URLS["swarm"].removeprefix("unix://")).parent
"""The lab swarm's directory (scripts/setup-swarm): the nodes' sockets, pid files, data."""
SETUP_SWARM = Path(__file__).resolve().parents[2] / "scripts" / "setup-swarm"


def node_client(node: str) -> docker.APIClient:
    """The lab node's own daemon (a real swarm gives no such access: the tests use it to
    look at the containers on the nodes)."""
    return docker.APIClient(base_url=ENGINE_URLS["swarm"].replace("ct-node-1", node))


def wait_all_done(tracker, ids: list[str], timeout: float = 90) -> None:  # type: ignore[no-untyped-def]
    """Wait for every job of ``ids``; each must end DONE (the message says how they ended)."""
    ended = {job_id: tracker.wait(job_id, timeout) for job_id in ids}
    failed = {
        job_id: (state, tracker.job_info(job_id))
        for job_id, state in ended.items()
        if state is not DONE
    }
    assert not failed, f"not DONE: {failed}"


def containers_on_nodes(session: str) -> dict[str, list[dict[str, object]]]:
    """The containers of ``session`` on each node, by the labels they carry."""
    found = {}
    for node in NODES:
        client = node_client(node)
        try:
            found[node] = client.containers(
                all=True, filters={"label": f"{labels.SESSION}={session}"}
            )
        finally:
            client.close()
    return found


def task_count(engine, job_id: str) -> int:  # type: ignore[no-untyped-def]
    """How many tasks the swarm made for the job's service (1 unless it re-ran it)."""
    return len(engine._tasks({"service": [job_id]}))


# -- lifecycle --------------------------------------------------------------------------------


def test_job_lifecycle_and_outputs(tracker, image, tmp_path: Path) -> None:
    """A job is QUEUED until the swarm places it, then RUNNING, then DONE; its output and
    error files are written on this host from the task's logs (the two streams apart); its
    JobInfo names the node it ran on."""
    out, err = tmp_path / "out", tmp_path / "err"
    script = 'echo "$greeting"; echo oops >&2; sleep 1'
    job_id = tracker.add_job(
        jt(
            image,
            "sh",
            "-c",
            script,
            job_environment={"greeting": "hello"},
            output_path=str(out),
            error_path=str(err),
        )
    )
    assert tracker.job_state(job_id)[0] in (QUEUED, RUNNING)
    assert tracker.wait(job_id, 30, RUNNING) is RUNNING
    assert tracker.wait(job_id, 30) is DONE
    assert out.read_text() == "hello\n" and err.read_text() == "oops\n"
    info = tracker.job_info(job_id)
    assert info.exit_status == 0 and info.allocated_machines
    assert info.allocated_machines[0] in NODES
    assert info.submission_time and info.dispatch_time and info.finish_time
    assert info.submission_time <= info.dispatch_time <= info.finish_time
    tracker.delete_job(job_id)
    assert tracker.list_jobs() == []


def test_failed_job_is_not_run_again(tracker, engine, image) -> None:
    """A failing job is FAILED with its exit code and the swarm's reason, and stays so: the
    swarm, which re-runs failed job tasks despite restart condition none, runs it once."""
    job_id = tracker.add_job(jt(image, "sh", "-c", "exit 3"))
    assert tracker.wait(job_id, 30) is FAILED
    info = tracker.job_info(job_id)
    assert info.exit_status == 3 and "non-zero exit (3)" in info.annotation
    time.sleep(3)  # the swarm's re-run came within a second when it was not stopped
    assert task_count(engine, job_id) == 1
    assert tracker.job_info(job_id).exit_status == 3


def test_a_plain_job_is_created_released_and_a_terminate_stops_it_for_good(
    tracker, engine, image
) -> None:
    """add_job creates a job nothing holds back as a service already released (MaxConcurrent
    1, never updated: job iteration 0), refused a hold from the start; terminated, its
    service is held again (one update) and the job reads FAILED, its container ended, and
    stays so: the swarm made no second task (it may have dropped the stopped one's record)."""
    job_id = tracker.add_job(jt(image, "sleep", "300"))
    manager = node_client("ct-node-1")
    try:
        service = manager.inspect_service(job_id)
        assert service["Spec"]["Mode"]["ReplicatedJob"].get("MaxConcurrent") == 1
        assert not service["JobStatus"]["JobIteration"].get("Index")
        with pytest.raises(InvalidStateError):  # "being started", or RUNNING already
            tracker.job_control(job_id, "hold")
        assert tracker.wait(job_id, 60, RUNNING) is RUNNING
        tracker.job_control(job_id, "terminate")
        assert tracker.wait(job_id, 60) is FAILED
        service = manager.inspect_service(job_id)
        assert not service["Spec"]["Mode"]["ReplicatedJob"].get("MaxConcurrent")
        assert service["JobStatus"]["JobIteration"]["Index"] == 1
    finally:
        manager.close()
    assert engine.inspect(job_id).status == "exited"
    assert tracker.job_state(job_id) == (FAILED, "terminated")
    assert task_count(engine, job_id) <= 1


def test_wait_returns_promptly_after_the_task_ends(tracker, image) -> None:
    """wait returns well within a second of the end the manager records (the adapter polls
    the manager every 0.2 s: it has no task events)."""
    job_id = tracker.add_job(jt(image, "sleep", "1"))
    tracker.wait(job_id, 30, RUNNING)
    assert tracker.wait(job_id, 30) is DONE
    returned = datetime.now(UTC)
    finished = tracker.job_info(job_id).finish_time
    assert finished is not None
    assert (returned - finished).total_seconds() < 0.8


def test_extensions_that_apply(tracker, image, tmp_path: Path) -> None:
    """user, ulimit and entrypoint take effect on a node (shm-size is refused)."""
    out = tmp_path / "out"
    job_id = tracker.add_job(
        JobTemplate(
            job_category=image,
            remote_command="-c",
            args=("id -u; ulimit -n",),
            output_path=str(out),
            extension={"user": "nobody", "ulimit": "nofile=512:512", "entrypoint": "sh"},
        )
    )
    assert tracker.wait(job_id, 30) is DONE
    assert out.read_text().splitlines() == ["65534", "512"]


# -- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"stage_in_files": {"/etc/hostname": "/in"}}, "stage_in_files"),
        ({"input_path": "/etc/hostname"}, "input_path"),
        ({"stage_out_files": {"/tmp/x": "/tmp/ct-never"}}, "stage_out_files"),
        ({"extension": {"privileged": "true"}}, "privileged"),
        ({"extension": {"net": "host"}}, "net"),
        ({"extension": {"ipc": "host"}}, "ipc"),
        ({"extension": {"uts": "host"}}, "uts"),
        ({"extension": {"pid": "host"}}, "pid"),
        ({"extension": {"exposedPorts": "8080/tcp"}}, "exposedPorts"),
        ({"extension": {"gpus": "all"}}, "gpus"),
        ({"extension": {"restart": "on-failure:2"}}, "restart"),
        ({"extension": {"rm": "true"}}, "rm"),
        ({"extension": {"shm-size": "32m"}}, "shm-size"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_refused_templates(tracker, image, fields, named) -> None:
    """What a swarm job cannot have is refused at submission, naming the field and why, and
    nothing is left behind (plain jobs and arrays alike)."""
    template = jt(image, "true", **fields)
    with pytest.raises(UnsupportedAttributeError, match=named) as refusal:
        tracker.add_job(template)
    assert "swarm" in str(refusal.value)
    # (rm is refused for arrays by every backend, as InvalidArgumentError)
    with pytest.raises((UnsupportedAttributeError, InvalidArgumentError), match=named):
        tracker.add_array_job(template, 1, 3)
    assert tracker.list_jobs() == []


def test_suspend_is_refused(tracker, image) -> None:
    """suspend/resume: the swarm has no pause: UnsupportedOperationError saying so; the job
    runs on and can be terminated."""
    job_id = tracker.add_job(jt(image, "sleep", "60"))
    tracker.wait(job_id, 30, RUNNING)
    with pytest.raises(UnsupportedOperationError, match="no pause"):
        tracker.job_control(job_id, "suspend")
    assert tracker.job_state(job_id)[0] is RUNNING
    tracker.job_control(job_id, "terminate")
    assert tracker.job_state(job_id) == (FAILED, "terminated")


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"candidate_machines": ("nowhere",)}, "candidate_machines"),
        ({"machine_arch": "ARM64"}, "machine_arch"),
        ({"machine_os": "Win"}, "machine_os"),
        ({"min_phys_memory": 1 << 40}, "min_phys_memory"),  # KiB: a PiB
        ({"min_slots": 64}, "slots"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_unsatisfiable_template_is_refused(tracker, image, fields, named) -> None:
    """A template no node of the swarm can ever run is refused at submission, naming the
    field and the nodes."""
    with pytest.raises(InvalidArgumentError, match=named) as refusal:
        tracker.add_job(jt(image, "true", **fields))
    if named != "slots":
        assert "ct-node-1" in str(refusal.value)
    assert tracker.list_jobs() == []


# -- placement and arrays ---------------------------------------------------------------------


def test_array_spreads_over_the_nodes(tracker, image, session_name) -> None:
    """An array's tasks run on several nodes (distinct allocated_machines); each task's
    TASK_ID (environment and label) is right whatever begin and step are, and its container
    on the node carries the session's labels."""
    template = jt(image, "sh", "-c", 'test "$TASK_ID" = "$expected" && sleep 1')
    array_id = tracker.add_array_job(
        template.model_copy(update={"job_environment": {"expected": "$DRMAA2_INDEX$"}}),
        3,
        13,
        2,
    )
    ids = tracker.list_array_jobs(array_id)
    wait_all_done(tracker, ids, 60)
    infos = [tracker.job_info(i) for i in ids]
    assert [info.extension["task_id"] for info in infos] == [str(t) for t in range(3, 14, 2)]
    machines = {info.allocated_machines[0] for info in infos if info.allocated_machines}
    print("array of 6 tasks ran on", sorted(machines))
    assert len(machines) >= 2
    on_nodes = containers_on_nodes(session_name)
    assert sum(len(found) for found in on_nodes.values()) == len(ids)
    task_ids = sorted(int(c["Labels"][labels.TASK_ID]) for cs in on_nodes.values() for c in cs)
    assert task_ids == list(range(3, 14, 2))


def test_max_parallel_holds_across_nodes(tracker, image) -> None:
    """max_parallel bounds the array's running tasks over the whole swarm."""
    array_id = tracker.add_array_job(jt(image, "sleep", "1"), 1, 8, 1, max_parallel=2)
    ids = tracker.list_array_jobs(array_id)
    wait_all_done(tracker, ids, 90)
    assert _most_running(tracker, ids) == 2
    assert len({tracker.job_info(i).allocated_machines for i in ids}) >= 2


@pytest.mark.parametrize("candidates", [("ct-node-3",), ("ct-node-2", "ct-node-3")])
def test_placement_by_candidate_machines(tracker, image, candidates) -> None:
    """candidate_machines keeps every task on those nodes."""
    array_id = tracker.add_array_job(jt(image, "sleep", "0.5", candidate_machines=candidates), 1, 4)
    ids = tracker.list_array_jobs(array_id)
    wait_all_done(tracker, ids, 60)
    used = {tracker.job_info(i).allocated_machines[0] for i in ids}  # type: ignore[index]
    assert used <= set(candidates)


def test_successor_finishes_an_array_of_a_closed_tracker(open_tracker, image) -> None:
    """A tracker closed right after submitting a throttled array leaves its tasks QUEUED; a
    tracker of the session opened later starts them, within max_parallel."""
    first = open_tracker()
    array_id = first.add_array_job(jt(image, "sleep", "0.5"), 1, 6, 1, max_parallel=2)
    first.close()
    successor = open_tracker()
    ids = successor.list_array_jobs(array_id)
    wait_all_done(successor, ids, 90)
    assert _most_running(successor, ids) == 2


# -- nodes ------------------------------------------------------------------------------------


@pytest.fixture
def drain(engine) -> Iterator[object]:  # type: ignore[no-untyped-def]
    """``drain(hostname)`` drains a node; every drained node is made active again."""
    drained: list[str] = []
    api = engine._api

    def set_availability(hostname: str, availability: str) -> None:
        (node,) = [n for n in api.nodes() if n["Description"]["Hostname"] == hostname]
        spec = {**node["Spec"], "Availability": availability}
        api.update_node(node["ID"], node["Version"]["Index"], spec)

    def drain_node(hostname: str) -> None:
        drained.append(hostname)
        set_availability(hostname, "drain")

    yield drain_node
    for hostname in drained:
        set_availability(hostname, "active")


def test_node_drained_mid_job(tracker, image, drain) -> None:
    """Draining the node of a running job does not stop the job: Docker 20.10's swarm leaves
    running job tasks alone (it only places no new task there). The job runs to its end,
    and wait returns then; the Monitorer shows the node unavailable."""
    job_id = tracker.add_job(jt(image, "sleep", "3", candidate_machines=("ct-node-3",)))
    tracker.wait(job_id, 30, RUNNING)
    drain("ct-node-3")
    (node,) = tracker.get_all_machines(["ct-node-3"])
    assert not node.available
    assert tracker.job_state(job_id)[0] is RUNNING
    started = time.monotonic()
    assert tracker.wait(job_id, 30) is DONE
    assert time.monotonic() - started < 5
    assert tracker.job_info(job_id).allocated_machines == ("ct-node-3",)


def test_job_for_a_drained_node_waits_queued(tracker, image, drain) -> None:
    """A job whose only candidate node is drained is QUEUED with the swarm's reason, and
    runs when the node is back (terminated here instead: nothing hangs)."""
    drain("ct-node-2")
    job_id = tracker.add_job(jt(image, "true", candidate_machines=("ct-node-2",)))
    time.sleep(1)
    state, sub_state = tracker.job_state(job_id)
    print("queued:", sub_state)
    assert state is QUEUED and "no suitable node" in sub_state
    tracker.job_control(job_id, "terminate")
    assert tracker.wait(job_id, 30) is FAILED


@pytest.fixture
def image_on_the_manager_only(image) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A tag of the test image that only the manager's node (ct-node-1) has; removed after."""
    repository, tag = "containertracker/manager-only", uuid.uuid4().hex[:12]
    manager = node_client("ct-node-1")
    manager.tag(image, repository, tag)
    try:
        yield f"{repository}:{tag}"
    finally:
        manager.remove_image(f"{repository}:{tag}")
        manager.close()


def test_image_missing_on_the_node(tracker, image_on_the_manager_only) -> None:
    """A job whose image the manager has (so it is accepted) but the node it is placed on
    lacks (and cannot pull: the lab has no registry) is FAILED with the swarm's reason: the
    swarm rejects the task. The job keeps that outcome (the swarm's re-run is stopped)."""
    job_id = tracker.add_job(
        jt(image_on_the_manager_only, "true", candidate_machines=("ct-node-3",))
    )
    assert tracker.wait(job_id, 60) is FAILED
    info = tracker.job_info(job_id)
    print("rejected:", info.annotation)
    assert info.exit_status == 125
    assert "the swarm rejected the task" in info.annotation
    assert "No such image" in info.annotation and image_on_the_manager_only in info.annotation
    assert info.allocated_machines == ("ct-node-3",)
    time.sleep(2)  # a re-run, had it not been stopped, came within a second
    assert tracker.job_state(job_id)[0] is FAILED
    assert tracker.job_info(job_id).exit_status == 125


def wait_until(condition: Callable[[], bool], timeout: float) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout} s: {condition.__doc__}"
        time.sleep(0.5)


@pytest.fixture
def kill_daemon() -> Iterator[Callable[[str], None]]:
    """``kill_daemon(node)`` kills the lab node's dockerd with SIGKILL (a crash: its
    containerd and containers live on); every node killed is started again after the test
    (``scripts/setup-swarm start-node``: it rejoins the swarm), and the manager lists all
    three nodes Ready before the next test."""
    if not all((LAB / node / "dockerd.pid").exists() for node in NODES):
        problem = f"needs the lab swarm's node daemons (scripts/setup-swarm) in {LAB}"
        if "swarm" in os.environ.get("CONTAINERTRACKER_REQUIRE_ENGINES", "").split(","):
            pytest.fail(problem)  # in CI a missing lab is a failure, never a skip
        pytest.skip(problem)
    killed: list[str] = []

    def kill(node: str) -> None:
        pid = int((LAB / node / "dockerd.pid").read_text())
        killed.append(node)
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not Path(f"/proc/{pid}").exists(), 30)

    yield kill
    for node in killed:  # idempotent: a node the test started again is left as it is
        subprocess.run([str(SETUP_SWARM), "start-node", node], check=True, timeout=180)


def start_node(node: str) -> None:
    subprocess.run([str(SETUP_SWARM), "start-node", node], check=True, timeout=180)


@pytest.mark.timeout(240)  # nothing may hang: a hung wait fails here
def test_node_daemon_killed_mid_job(tracker, image, kill_daemon) -> None:
    """The daemon of the node running a job is killed (its container runs on, under the
    node's containerd, and ends while the daemon is away). The manager goes on reporting
    the task running: the job reads RUNNING, also once the manager has marked the node down
    (some 15 s later), and every wait returns at its timeout. When the node's daemon is back
    it reports the task's end, and the job is DONE, on that node, with the end as reported."""
    job_id = tracker.add_job(jt(image, "sleep", "4", candidate_machines=("ct-node-3",)))
    assert tracker.wait(job_id, 30, RUNNING) is RUNNING
    kill_daemon("ct-node-3")
    with pytest.raises(WaitTimeoutError, match="still RUNNING"):
        tracker.wait(job_id, 2)

    def node_down() -> bool:
        """the manager marks ct-node-3 unavailable"""
        (node,) = tracker.get_all_machines(["ct-node-3"])
        return not node.available

    wait_until(node_down, 90)
    killed_at = time.monotonic()
    assert tracker.job_state(job_id)[0] is RUNNING  # the sleep has ended by now, unseen
    with pytest.raises(WaitTimeoutError, match="still RUNNING"):
        tracker.wait(job_id, 2)
    print(f"RUNNING {time.monotonic() - killed_at:.0f} s after the node was marked down")
    start_node("ct-node-3")
    assert tracker.wait(job_id, 60) is DONE
    info = tracker.job_info(job_id)
    assert info.exit_status == 0 and info.allocated_machines == ("ct-node-3",)
