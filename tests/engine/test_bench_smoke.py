"""The benchmark script runs end to end at tiny sizes (so it cannot rot); no timing checked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench.py"


@pytest.mark.only_engines("docker", "podman")
def test_benchmark_runs(backend, open_tracker) -> None:
    """bench.py prints every figure for the engine and leaves no container behind."""
    tracker = open_tracker()  # fails (or skips) the test when the engine is unreachable
    result = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--engine",
            backend,
            "--repeat",
            "2",
            "--array-size",
            "3",
            "--scale",
            "5",
            "--waits",
            "5",
            "--output-size",
            "102400",
            "--big-array",
            "6",
            "--big-array-limit",
            "2",
            "--clients",
            "3",
            "--requests",
            "42",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    out = result.stdout
    for figure in (
        "add_job vs create+start",
        "wait latency",
        "max_parallel 4",
        "list_jobs at 5",
        "job_info at 5",
        "peak RSS tracking 5 jobs",
        "list_array_jobs of 5 tasks vs raw list",
        "open a tracker on 5 jobs",
        "idle tracker on 5 jobs",
        "peak RSS, job output + stage-out 100 KiB",
        "array 6 tasks, max_parallel 2",
        "array 6 tasks, max_parallel 2: add_array_job returned after",
        "array 6 tasks, max_parallel 2: tracker CPU",
        "array 6 tasks, max_parallel 2: tracker peak RSS",
        "3 clients, 42 calls, server",
        "3 clients, 42 calls, local",
        "wait p50/p99",
        "server peak RSS",
        "remote add_job vs local",
        "remote job_state vs local",
        "remote wait latency after exit",
        "wait_any_terminated, 5 jobs, per job",
    ):
        assert figure in out, out
    # The many-clients row's own check: every call answered, every job listed once.
    assert out.count("errors 0   lost 0   duplicated 0") == 2, out
    leftovers = [
        row.id
        for row in tracker._engine.list_containers({})
        if "containertracker.bench" in row.labels
    ]
    assert leftovers == []
