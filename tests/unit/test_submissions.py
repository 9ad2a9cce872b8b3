"""A refused submission leaves nothing behind (over the in-memory engine): no container, and
no output file it created; a file that existed before keeps its content when the engine
refuses the job, and a file of a submission rolled back is removed only while still empty.
An image seen present is not looked up again, and one gone since is still a clear error (or
pulled again, by the pull policy)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from containertracker import DrmCommunicationError, InvalidArgumentError, JobTemplate
from containertracker.core import hostfs
from containertracker.core.tracker import ContainerTracker
from containertracker.settings import PullPolicy
from containertracker.testing import MemoryEngine


@pytest.fixture
def engine() -> MemoryEngine:
    return MemoryEngine()


@pytest.fixture
def tracker(engine: MemoryEngine, tmp_path: Path) -> Iterator[ContainerTracker]:
    with ContainerTracker(
        engine.connect(), "submissions", state_dir=tmp_path / "state", resync_interval=60
    ) as tracker:
        yield tracker


def template(out: Path, **fields: object) -> JobTemplate:
    return JobTemplate(
        remote_command="true", job_category="busybox", output_path=str(out), **fields
    )


def test_a_job_the_engine_refuses_leaves_no_output_file(
    engine: MemoryEngine, tracker: ContainerTracker, tmp_path: Path
) -> None:
    out, kept = tmp_path / "out", tmp_path / "kept"
    kept.write_text("earlier results")
    for path in (out, kept):
        engine.fail_next("create", InvalidArgumentError("refused by the engine"))
        with pytest.raises(InvalidArgumentError, match="refused"):
            tracker.add_job(template(path, error_path=str(tmp_path / "err")))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept", "state"]
    assert kept.read_text() == "earlier results"
    assert engine.list_containers({}) == []


def test_a_bad_error_file_removes_the_output_file_and_the_container(
    engine: MemoryEngine, tracker: ContainerTracker, tmp_path: Path
) -> None:
    """The output file is created, the error file cannot be: both the container and the
    output file this submission created are gone."""
    with pytest.raises(InvalidArgumentError, match="err"):
        tracker.add_job(template(tmp_path / "out", error_path=str(tmp_path / "no/dir/err")))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state"]
    assert engine.list_containers({}) == []


def test_an_array_failing_at_its_third_task_leaves_no_task_file(
    engine: MemoryEngine, tracker: ContainerTracker, tmp_path: Path
) -> None:
    """Tasks 1 and 2 (and maybe 4 and 5, created in parallel) exist with their output files
    when task 3's file cannot be created: every task and every file is gone again."""
    for task in (1, 2, 4, 5):
        (tmp_path / f"d{task}").mkdir()
    with pytest.raises(InvalidArgumentError, match="d3"):
        tracker.add_array_job(template(tmp_path / "d$DRMAA2_INDEX$/out"), 1, 5)
    assert [p.name for p in tmp_path.glob("d*/*")] == []
    assert engine.list_containers({}) == []
    engine.fail_next("create", InvalidArgumentError("refused by the engine"))
    with pytest.raises(InvalidArgumentError, match="refused"):
        tracker.add_array_job(template(tmp_path / "d$DRMAA2_INDEX$/out"), 1, 2)
    assert [p.name for p in tmp_path.glob("d*/*")] == []


def test_only_an_empty_created_file_is_removed(tmp_path: Path) -> None:
    created, written, link = tmp_path / "created", tmp_path / "written", tmp_path / "link"
    assert hostfs.create_file(str(created)) is True
    assert hostfs.create_file(str(created)) is False  # exists now
    assert hostfs.create_file(str(written)) is True
    written.write_text("a job wrote this")
    link.symlink_to(written)
    for path in (created, written, link):
        hostfs.remove_created_file(str(path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "written"]


# -- the image check --------------------------------------------------------------------------


def test_an_image_seen_present_is_not_looked_up_again(
    engine: MemoryEngine, tracker: ContainerTracker
) -> None:
    """The first submission looks the image up; the next ones of the tracker do not (a
    lookup now would fail)."""
    job = JobTemplate(remote_command="true", job_category="busybox")
    tracker.add_job(job)
    engine.fail_next("has_image", DrmCommunicationError("looked up again"))
    tracker.add_job(job)
    tracker.add_array_job(job, 1, 2)
    assert len(tracker.list_jobs()) == 4


def test_an_image_removed_since_it_was_seen_is_a_clear_error(
    engine: MemoryEngine, tracker: ContainerTracker
) -> None:
    """Seen present by one submission and removed since, the image is missing when the next
    one creates its container: the same InvalidArgumentError naming it as when the lookup
    finds it missing, for a plain job as for an array, and nothing is left behind."""
    job = JobTemplate(remote_command="true", job_category="busybox")
    first = tracker.add_job(job)
    engine.remove_image("busybox")
    with pytest.raises(InvalidArgumentError, match=r"'busybox'.*not present"):
        tracker.add_job(job)
    with pytest.raises(InvalidArgumentError, match=r"'busybox'.*not present"):
        tracker.add_array_job(job, 1, 3)
    assert tracker.list_jobs() == [first]


def test_with_pull_policy_missing_an_image_removed_since_is_pulled_again(
    engine: MemoryEngine, tmp_path: Path
) -> None:
    """Pull policy ``missing``: an image seen present and removed since is pulled when the
    creation finds it missing, and the job created."""
    job = JobTemplate(remote_command="true", job_category="busybox")
    with ContainerTracker(
        engine.connect(),
        "submissions",
        state_dir=tmp_path / "state",
        resync_interval=60,
        pull_policy=PullPolicy.MISSING,
    ) as tracker:
        tracker.add_job(job)
        engine.remove_image("busybox")
        second = tracker.add_job(job)
        assert engine.inspect(second).status == "running"
        assert engine.has_image("busybox")
