"""A refused submission leaves nothing behind (over the in-memory engine): no container, and
no output file it created; a file that existed before keeps its content when the engine
refuses the job, and a file of a submission rolled back is removed only while still empty."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from containertracker import InvalidArgumentError, JobTemplate
from containertracker.core import hostfs
from containertracker.core.tracker import ContainerTracker
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
