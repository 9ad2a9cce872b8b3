"""Issue 17, host paths: the attacks replayed through the library (``host_path_roots``) and
through a real server (``allowed_host_paths``), each now refused with nothing written outside
the allowed directory R.

1. ``..`` after a symlink a job staged out (R/o/l -> a/b/c/d, then R/o/l/../../../x): the path
   is resolved as the kernel does, so it stays in R.
2. Stage-in mounts are read-only; a symlink another job's stage-out puts in place of an output
   file, or the test puts in place of a stage-out target or input file, is never followed.
3. An array path resolving outside R for one task only (R/c/x1 -> outside) is refused.
"""

from __future__ import annotations

import os
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import containertracker
from containertracker import DeniedByDrmsError, JobState, JobTemplate
from containertracker.remote import ServerThread, TrackerPool
from containertracker.settings import ServerSettings
from tests.conftest import TEST_IMAGE, check_engine, engine_params

pytestmark = pytest.mark.only_engines("docker", "podman")


@dataclass
class Setup:
    tracker: Any
    """A local tracker with host_path_roots [R], or a client of a server allowing R."""
    root: Path
    outside: Path

    def run(self, script: str, **fields: Any) -> tuple[JobState, str]:
        """Run ``sh -c script`` as a job; its final state and annotation."""
        job_id = self.submit(script, **fields)
        return self.finish(job_id)

    def submit(self, script: str, **fields: Any) -> str:
        jt = JobTemplate(
            job_category=TEST_IMAGE, remote_command="sh", args=("-c", script), **fields
        )
        job_id: str = self.tracker.add_job(jt)
        return job_id

    def finish(self, job_id: str) -> tuple[JobState, str]:
        state = self.tracker.wait(job_id, 60)
        return state, self.tracker.job_info(job_id).annotation

    def outside_untouched(self, *expected: str) -> None:
        """Nothing outside R but what the test put there."""
        assert sorted(p.name for p in self.outside.iterdir()) == sorted(expected)
        assert sorted(p.name for p in self.root.parent.iterdir()) == ["R", "outside"]


@pytest.fixture(params=["library", "server"])
def setup(
    request: pytest.FixtureRequest, backend: str, state_dir: Path, session_name: str, tmp_path: Path
) -> Iterator[Setup]:
    check_engine(backend, state_dir)
    root, outside = tmp_path / "R", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    params = engine_params(backend, state_dir)
    server: ServerThread | None = None
    if request.param == "library":
        tracker = containertracker.new_job_tracker(
            backend, session_name, {**params, "host_path_roots": [root]}
        )
    else:
        # A pool built without roots: the server confines it to allowed_host_paths itself.
        pool = TrackerPool.for_backend(backend, session_name, params)
        server = ServerThread(pool, ServerSettings(port=0, allowed_host_paths=[root]))
        url = server.__enter__()
        tracker = containertracker.new_job_tracker("remote", session_name, {"remote_url": url})
    try:
        yield Setup(tracker, root.resolve(), outside.resolve())
    finally:
        tracker.close()
        if server is not None:
            server.__exit__(None, None, None)
        with containertracker.new_job_tracker(backend, session_name, params) as local:
            for job_id in local.list_jobs():
                local._engine.remove(job_id)  # type: ignore[attr-defined]


def test_dotdot_after_a_staged_out_symlink_stays_inside(setup: Setup) -> None:
    """Attack 1: a job stages out R/o/l -> a/b/c/d; a second job names R/o/l/../../../x as
    output and R/o/l/../../.. as stage-in. Before: R/../x was written and R's parent (or /)
    mounted read-write. Now both resolve as the kernel does, inside R."""
    r = setup.root
    state, _ = setup.run(
        "mkdir -p /s/a/b/c/d && ln -s a/b/c/d /s/l", stage_out_files={"/s": f"{r}/o"}
    )
    assert state is JobState.DONE
    assert os.readlink(r / "o/l") == "a/b/c/d"
    state, _ = setup.run(
        "echo hi; test -d /in/b/c/d",
        output_path=f"{r}/o/l/../../../x",
        stage_in_files={f"{r}/o/l/../../..": "/in"},
    )
    assert state is JobState.DONE  # /in is R/o/a, the directory the kernel reaches
    assert (r / "o/a/x").read_text() == "hi\n"
    setup.outside_untouched()


def test_a_job_cannot_write_into_its_stage_in(setup: Setup) -> None:
    """Attack 2: root in the job planting a setuid binary, a device node, a symlink, or
    changing a file, through a stage-in mount."""
    r = setup.root
    (r / "in").mkdir()
    (r / "in/data").write_text("original")
    state, _ = setup.run(
        "touch /in/planted; mknod /in/null c 1 3; cp /bin/sh /in/sh; chmod 4755 /in/sh;"
        " ln -s / /in/root; echo changed > /in/data; rm -f /in/data;"
        " test ! -e /in/planted && test ! -e /in/null && test ! -e /in/root",
        stage_in_files={f"{r}/in": "/in"},
    )
    assert state is JobState.DONE  # every write failed: read-only file system
    assert sorted(p.name for p in (r / "in").iterdir()) == ["data"]
    assert (r / "in/data").read_text() == "original"
    setup.outside_untouched()


def test_an_output_file_swapped_for_a_symlink_is_not_followed(setup: Setup) -> None:
    """Attack 2: another job's stage-out replaces a held job's output file by a symlink to
    a host file. That stage-out is refused now (a symlink never replaces a file, nor leads
    out of its directory); and a symlink put there otherwise is not written through when the
    held job ends."""
    r = setup.root
    victim = setup.outside / "victim"
    victim.write_text("precious")
    held = setup.submit("echo evil", output_path=f"{r}/out", submit_as_hold=True)
    assert (r / "out").is_file()
    state, annotation = setup.run(
        f"mkdir /s && ln -s {victim} /s/out", stage_out_files={"/s": str(r)}
    )
    assert state is JobState.FAILED and "could lead outside" in annotation
    assert (r / "out").is_file() and not (r / "out").is_symlink()
    (r / "out").unlink()
    (r / "out").symlink_to(victim)
    setup.tracker.job_control(held, "release")
    state, annotation = setup.finish(held)
    assert state is JobState.FAILED and "symlink" in annotation
    assert victim.read_text() == "precious"
    setup.outside_untouched("victim")


def test_a_stage_out_target_swapped_for_a_symlink_is_not_followed(setup: Setup) -> None:
    r = setup.root
    (r / "dest").mkdir()
    held = setup.submit(
        "mkdir /o && echo evil > /o/f",
        stage_out_files={"/o": f"{r}/dest/o"},
        submit_as_hold=True,
    )
    (r / "dest").rename(r / "was-dest")
    (r / "dest").symlink_to(setup.outside)
    setup.tracker.job_control(held, "release")
    state, annotation = setup.finish(held)
    assert state is JobState.FAILED and "symlink" in annotation
    setup.outside_untouched()


def test_an_input_file_swapped_for_a_symlink_is_not_read(setup: Setup) -> None:
    r = setup.root
    (setup.outside / "secret").write_text("secret")
    (r / "in.txt").write_text("input")
    held = setup.submit(
        "cat", input_path=f"{r}/in.txt", output_path=f"{r}/out", submit_as_hold=True
    )
    (r / "in.txt").unlink()
    (r / "in.txt").symlink_to(setup.outside / "secret")
    setup.tracker.job_control(held, "release")
    state, annotation = setup.finish(held)
    assert state is JobState.FAILED and "symlink" in annotation
    assert (r / "out").read_text() == ""


def test_array_paths_are_checked_for_every_task(setup: Setup) -> None:
    """Attack 3: task 0's path lies in R, task 1's (R/c/x1 -> outside) does not. Before,
    only index 0 was checked. Now the submission is refused and nothing is created."""
    r = setup.root
    # (A job can no longer stage out such a link, see the test below: it is put there here.)
    (r / "c/x0").mkdir(parents=True)
    (r / "c/x1").symlink_to(setup.outside)
    jobs_before = setup.tracker.list_jobs()
    jt = JobTemplate(
        job_category=TEST_IMAGE,
        remote_command="echo",
        args=("evil",),
        output_path=f"{r}/c/x$DRMAA2_INDEX$/out",
    )
    with pytest.raises(DeniedByDrmsError, match="outside"):
        setup.tracker.add_array_job(jt, 0, 1)
    assert setup.tracker.list_jobs() == jobs_before
    assert list((r / "c/x0").iterdir()) == []
    setup.outside_untouched()


def test_a_stage_out_cannot_plant_a_symlink_that_a_restart_would_mount(setup: Setup) -> None:
    """Job A stages in the file R/x/in and restarts on failure; job B stages out onto R/x a
    directory holding ``in -> <host file>`` (and ``up -> ..``). Before: B's stage-out replaced
    R/x/in by the link, and A's restart (the engine resolving the bind source anew) mounted
    the host file. Now B's stage-out fails, nothing is written through or in place of a
    file, and A's restart reads its own input."""
    r = setup.root
    secret = setup.outside / "secret"
    secret.write_text("secret")
    (r / "x").mkdir()
    (r / "x/in").write_text("input")
    (r / "go").mkdir()
    a = setup.submit(
        "if test -e /ran; then cat /in; exit 0; fi; touch /ran; i=0;"
        " while ! test -e /go/now && test $i -lt 300; do sleep 0.2; i=$((i+1)); done; exit 1",
        stage_in_files={f"{r}/x/in": "/in", f"{r}/go": "/go"},
        output_path=f"{r}/out",
        extension={"restart": "on-failure:3"},
    )
    for links in (f"ln -s {secret} /s/in", "ln -s .. /s/up", "ln -s sub/../.. /s/up"):
        state, annotation = setup.run(f"mkdir /s && {links}", stage_out_files={"/s": f"{r}/x"})
        assert state is JobState.FAILED and "could lead outside" in annotation, annotation
    assert sorted(p.name for p in (r / "x").iterdir()) == ["in"]
    assert (r / "x/in").read_text() == "input" and not (r / "x/in").is_symlink()
    state, annotation = setup.run("mkdir /s && ln -s other /s/in", stage_out_files={"/s": f"{r}/x"})
    assert state is JobState.FAILED and "exists already" in annotation, annotation
    (r / "go/now").touch()
    state, _ = setup.finish(a)
    assert state is JobState.DONE
    assert (r / "out").read_text() == "input"
    setup.outside_untouched("secret")


def test_a_large_input_is_streamed_in_bounded_memory(setup: Setup) -> None:
    """A 50 MiB input file (another job's stage-out, say) is fed to the job in pieces: the
    tracker (and the server) never hold it whole."""
    r = setup.root
    size = 50 << 20
    with open(r / "in", "wb") as f:
        f.truncate(size)
    tracemalloc.start()
    try:
        state, annotation = setup.run("wc -c", input_path=f"{r}/in", output_path=f"{r}/out")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert state is JobState.DONE, annotation
    assert (r / "out").read_text().strip() == str(size)
    assert peak < 16 << 20  # a few chunks and the tracker's own state, never 50 MiB


def test_paths_outside_the_roots_are_refused_and_nothing_is_created(setup: Setup) -> None:
    check: Callable[..., None] = setup.tracker.add_job
    for fields in (
        {"output_path": str(setup.outside / "out")},
        {"error_path": f"{setup.root}/../outside/err"},
        {"stage_in_files": {str(setup.outside): "/in"}},
        {"stage_out_files": {"/o": "/etc/evil"}},
    ):
        with pytest.raises(DeniedByDrmsError, match="outside"):
            check(JobTemplate(job_category=TEST_IMAGE, remote_command="true", **fields))
    assert setup.tracker.list_jobs() == []
    setup.outside_untouched()


def test_a_server_refuses_a_pool_whose_trackers_do_not_confine_host_paths(
    backend: str, state_dir: Path, session_name: str, tmp_path: Path
) -> None:
    """However the pool was built: one opening trackers without host_path_roots is refused
    by a server that allows host paths below R (its trackers would check nothing)."""
    check_engine(backend, state_dir)
    params = engine_params(backend, state_dir)
    pool = TrackerPool(
        lambda session: containertracker.new_job_tracker(backend, session, params), session_name
    )
    settings = ServerSettings(port=0, allowed_host_paths=[tmp_path])
    with ServerThread(pool, settings) as url:
        client = containertracker.new_job_tracker("remote", session_name, {"remote_url": url})
        with client, pytest.raises(DeniedByDrmsError, match="host_path_roots"):
            client.list_jobs()
