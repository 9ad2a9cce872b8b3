"""The command line's pure parts: option parsing, row ordering and rendering (no engine)."""

from __future__ import annotations

import io
import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
import typer
from rich.console import Console
from rich.table import Table

from containertracker import JobState
from containertracker.cli.parse import ArraySpec, parse_array, parse_pairs, parse_state
from containertracker.cli.render import JobRow, in_order, info_table, jobs_table
from containertracker.errors import InvalidArgumentError, InvalidStateError
from containertracker.models import JobInfo, JobTemplate


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("1-100:2", ArraySpec(1, 100, 2)),
        ("1-8", ArraySpec(1, 8, 1)),
        ("5", ArraySpec(5, 5, 1)),
        (" 3-4 ", ArraySpec(3, 4, 1)),
    ],
)
def test_array_specs(text: str, spec: ArraySpec) -> None:
    assert parse_array(text) == spec


@pytest.mark.parametrize("text", ["", "1-", "a-b", "1-10:x", "1..10", "1-10:2:3"])
def test_bad_array_specs_say_the_format(text: str) -> None:
    with pytest.raises(InvalidArgumentError, match="BEGIN-END"):
        parse_array(text)


def test_pairs_split_at_the_first_equals_sign() -> None:
    assert parse_pairs(["A=1", "B=x=y", "C="], "--env") == {"A": "1", "B": "x=y", "C": ""}
    for bad in ("A", "=1"):
        with pytest.raises(InvalidArgumentError, match=r"--env .* must be KEY=VALUE"):
            parse_pairs([bad], "--env")


@pytest.mark.parametrize(
    ("text", "state"),
    [
        ("done", JobState.DONE),
        ("QueuedHeld", JobState.QUEUED_HELD),
        ("queued_held", JobState.QUEUED_HELD),
        ("Failed", JobState.FAILED),
    ],
)
def test_states_by_any_spelling(text: str, state: JobState) -> None:
    assert parse_state(text) is state


def test_unknown_state_lists_the_valid_ones() -> None:
    with pytest.raises(InvalidArgumentError, match=r"unknown state 'finished'; use one of .*done"):
        parse_state("finished")


def _row(job_id: str, submitted: datetime | None, array: str = "", task: str = "") -> JobRow:
    extension = {"array_id": array, "task_id": task} if array else {}
    return JobRow(JobInfo(id=job_id, submission_time=submitted, extension=extension), None)


def test_rows_in_submission_order_with_each_array_together_by_task_number() -> None:
    t = [datetime(2026, 1, 1, 0, 0, s, tzinfo=UTC) for s in range(6)]
    rows = [
        _row("late-single", t[5]),
        _row("a-10", t[1], "a", "10"),
        _row("b-1", t[2], "b", "1"),
        _row("a-2", t[3], "a", "2"),  # created after b's task: still shown with array a
        _row("early-single", t[0]),
        _row("unsubmitted", None),
        _row("a-1", t[4], "a", "1"),
    ]
    assert [r.info.id for r in in_order(rows)] == [
        "early-single", "a-1", "a-2", "a-10", "b-1", "late-single", "unsubmitted",
    ]  # fmt: skip
    assert _row("x", t[0], "a", "-3").task == "-3"


def test_control_acts_on_several_jobs_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    """control/delete act on several jobs concurrently (a terminate waits for its job to
    stop: an array's tasks must not wait in line), each job once, reported in order; the
    first error sets the exit code."""
    from containertracker.cli.app import _each

    together = threading.Barrier(3, timeout=30)  # broken (an error) unless 3 run at once
    acted: list[str] = []

    def act(job_id: str) -> None:
        acted.append(job_id)
        together.wait()
        if job_id == "b":
            raise InvalidStateError("b is done")

    with pytest.raises(typer.Exit) as exit_info:
        _each(["a", "b", "c", "a"], act, json_output=True)
    assert exit_info.value.exit_code == 4
    assert sorted(acted) == ["a", "b", "c"]
    assert json.loads(capsys.readouterr().out) == [
        {"id": "a", "error": None},
        {"id": "b", "error": "b is done"},
        {"id": "c", "error": None},
    ]


def _listed(rows: list[JobRow], width: int) -> list[str]:
    """``list``'s table as a terminal ``width`` columns wide shows it (the CLI's console
    settings: soft wrap, which leaves lines as the table renders them)."""
    screen = io.StringIO()
    Console(file=screen, width=width, soft_wrap=True, highlight=False).print(jobs_table(rows))
    return screen.getvalue().splitlines()


def test_list_shows_one_line_per_job_at_80_columns() -> None:
    """Issue 18: a long sub-state wrapped a job over four lines. The table shows the state
    word (the reason is in info and --json); long names and images end in an ellipsis; every
    other column stays whole, with the widest values each can have."""
    started = datetime(2020, 2, 29, 23, 59, 59, tzinfo=UTC)  # not today: date and time shown
    long = "a-job-name-much-longer-than-the-terminal-is-wide-" * 2
    image = "registry.example.com:5000/some/deep/path/to/an/image:with-a-long-tag"
    rows = [
        JobRow(
            JobInfo(
                id=f"{n:x}" * 64,
                state=state,
                sub_state="waiting for a free slot (max_parallel 2 of array 0123456789abcdef)",
                dispatch_time=started,
                wallclock_time=timedelta(hours=123, minutes=4),
                exit_status=255,
                extension={"array_id": "0123456789abcdef", "task_id": "10000"},
            ),
            JobTemplate(job_name=long, job_category=image),
        )
        for n, state in enumerate(JobState)
    ]
    lines = _listed(rows, 80)
    assert len(lines) == 1 + len(rows) and all(len(line) <= 80 for line in lines), lines
    for line, row in zip(lines[1:], rows, strict=True):
        assert line.startswith(row.info.id[:12]) and row.info.state.remote_name in line.split()
        assert "…" in line and "123h04m" in line and line.rstrip().endswith("255")
        assert "10000" in line and started.astimezone().strftime("%Y-%m-%d %H:%M") in line
    assert "waiting" not in "".join(lines)
    assert "queued (waiting for a free slot" in _rendered(info_table(rows[2].info, None))


def _rendered(table: Table) -> str:
    screen = io.StringIO()
    Console(file=screen, width=200, highlight=False).print(table)
    return screen.getvalue()
