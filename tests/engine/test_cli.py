"""The ``containertracker`` command, run for real (a subprocess) against real engines and the
remote server: output, JSON and exit codes."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ENGINE_URLS, REMOTE_PREFIX, TEST_IMAGE, engine_of, remote_url

Run = Callable[..., subprocess.CompletedProcess[str]]


def _global_options(backend: str, session_name: str, state_dir: Path) -> list[str]:
    """The global options that point the command at the test's backend and session."""
    if backend.startswith(REMOTE_PREFIX):
        target = ["--backend", "remote", "--url", remote_url(engine_of(backend), state_dir)]
    else:
        target = ["--backend", backend, "--engine-url", ENGINE_URLS[backend]]
    return ["--session", session_name, *target]


def _cli_env(state_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "CONTAINERTRACKER_STATE_DIR": str(state_dir),
        "CONTAINERTRACKER_STOP_GRACE": "1",
    }


@pytest.fixture
def ct(backend: str, session_name: str, state_dir: Path, open_tracker: Any) -> Run:
    """``ct("list", "--json", rc=0)`` runs the command for the test's backend and session
    (in directory ``cwd``, if given; ``options_after``: with the global options after the
    command's arguments) and checks its exit status (open_tracker removes the session's jobs
    afterwards)."""
    options = _global_options(backend, session_name, state_dir)
    env = {**_cli_env(state_dir), "COLUMNS": "200"}

    def run(
        *args: str,
        rc: int = 0,
        extra_env: dict[str, str] | None = None,
        cwd: Path | None = None,
        options_after: bool = False,
    ) -> Any:
        command = [sys.executable, "-m", "containertracker"]
        command += [*args, *options] if options_after else [*options, *args]
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=180,
            env={**env, **(extra_env or {})},
            cwd=cwd,
        )
        assert done.returncode == rc, f"{args}: exit {done.returncode}\n{done.stdout}{done.stderr}"
        return done

    return run


def jobs(ct: Run, *args: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(ct("list", "--json", *args).stdout)
    return rows


def test_submit_wait_list_info_logs_delete(ct: Run, tmp_path: Path) -> None:
    out = tmp_path / "hello.out"
    job_id = ct(
        "submit", TEST_IMAGE, "-n", "hello", "-e", "WHO=world", "-o", str(out),
        "--", "sh", "-c", "echo hello $WHO",
    ).stdout.strip()  # fmt: skip
    # A full engine id: a container's 64 hex digits, or a swarm service's 25 characters.
    assert re.fullmatch(r"[0-9a-f]{64}|[0-9a-z]{25}", job_id)
    assert ct("wait", job_id[:12]).stdout.strip() == "1 job(s): 1 done, 0 failed"
    (row,) = jobs(ct)
    assert row["id"] == job_id and row["name"] == "hello" and row["state"] == "done"
    assert row["image"] == TEST_IMAGE and row["exit_status"] == 0
    table = ct("list").stdout
    assert job_id[:12] in table and "hello" in table and "done" in table
    info = json.loads(ct("info", job_id[:8], "--json").stdout)
    assert info["info"]["exit_status"] == 0 and info["template"]["job_name"] == "hello"
    assert "exit status" in ct("info", job_id).stdout
    assert ct("logs", job_id).stdout == "hello world\n"
    assert json.loads(ct("logs", job_id, "--json").stdout) == {job_id: "hello world\n"}
    assert ct("delete", job_id).stdout.strip() == job_id
    assert jobs(ct) == []


def test_array_job_with_progress(ct: Run, tmp_path: Path) -> None:
    pattern = str(tmp_path / "task.$DRMAA2_INDEX$")
    array_id = ct(
        "submit", "--array", "1-5:2", "--max-parallel", "2", "-o", pattern, TEST_IMAGE,
        "--", "sh", "-c", "sleep 1; echo task $TASK_ID",
    ).stdout.strip()  # fmt: skip
    # A terminal gets the live display: counts and a bar.
    waited = ct("wait", "--array", array_id, extra_env={"TTY_COMPATIBLE": "1"}).stdout
    assert "done 3" in waited and "3/3" in waited
    assert {int(n) for n in re.findall(r"done (\d+)", waited)} <= {0, 1, 2, 3}  # never over-counted
    rows = jobs(ct, "--array", array_id)
    assert sorted(r["task"] for r in rows) == ["1", "3", "5"]
    assert {r["state"] for r in rows} == {"done"}
    task3 = next(r["id"] for r in rows if r["task"] == "3")
    assert ct("logs", task3).stdout == "task 3\n"
    logs = ct("logs", "--array", array_id).stdout.splitlines()
    assert logs[0].startswith("==> task 1 (") and logs[1::2] == ["task 1", "task 3", "task 5"]
    deleted = json.loads(ct("delete", "--array", array_id, "--json").stdout)
    assert [d["error"] for d in deleted] == [None, None, None]


def test_array_ids_name_every_task(ct: Run, tmp_path: Path) -> None:
    """Issue 18: every command that takes job ids takes the id submit --array printed (or a
    unique prefix of it) for all the array's tasks, in task order; info gives a line of
    counts, then each task's details. Global options may follow the command."""
    pattern = str(tmp_path / "task.$DRMAA2_INDEX$")
    array_id = ct(
        "submit", "--array", "1-3", "-o", pattern, TEST_IMAGE,
        "--", "sh", "-c", "echo task $TASK_ID",
    ).stdout.strip()  # fmt: skip
    single = ct("submit", TEST_IMAGE, "true").stdout.strip()
    waited = ct("wait", array_id, single, options_after=True).stdout
    assert waited.strip() == "4 job(s): 4 done, 0 failed"
    rows = jobs(ct, array_id)
    assert [r["task"] for r in rows] == ["1", "2", "3"] and {r["state"] for r in rows} == {"done"}
    tasks = [r["id"] for r in rows]
    prefix = array_id[:10]
    listed = json.loads(ct("list", prefix, "--json", options_after=True).stdout)
    assert [r["id"] for r in listed] == tasks
    assert [r["id"] for r in jobs(ct, "--array", prefix)] == tasks
    infos = json.loads(ct("info", prefix, "--json").stdout)
    assert [i["info"]["id"] for i in infos] == tasks
    assert {i["info"]["extension"]["array_id"] for i in infos} == {array_id}
    text = ct("info", array_id).stdout.splitlines()
    assert text[0] == f"array job {array_id}: 3 task(s): done 3  failed 0  running 0  queued 0"
    assert [line for line in text if line.startswith("==>")] == [
        f"==> task {n} ({task[:12]}) <==" for n, task in enumerate(tasks, 1)
    ]
    assert ct("logs", array_id).stdout.splitlines()[1::2] == ["task 1", "task 2", "task 3"]
    refused = ct("control", "hold", prefix, rc=4).stderr.splitlines()  # each task: done
    assert [line[:12] for line in refused] == [task[:12] for task in tasks]
    deleted = json.loads(ct("delete", array_id, "--json").stdout)
    assert deleted == [{"id": task, "error": None} for task in tasks]
    assert [r["id"] for r in jobs(ct)] == [single]
    assert f"no job or array job {array_id!r}" in ct("wait", array_id, rc=3).stderr


@pytest.mark.only_engines("docker")
def test_list_keeps_one_line_per_job_in_an_80_column_terminal(
    ct: Run, backend: str, session_name: str, state_dir: Path, tmp_path: Path
) -> None:
    """Issue 18: queued tasks of a throttled array have a long sub-state, which wrapped each
    over four lines. list, run in a terminal 80 columns wide (a tmux pane), shows one line
    per job: its id, state word and task."""
    tmux = shutil.which("tmux")
    if tmux is None:  # required like the engines: never a skip
        pytest.fail("tmux is needed for this test: scripts/setup-engines installs it")
    array_id = ct(
        "submit", "--array", "1-4", "--max-parallel", "1", "-n", "a-long-job-name-of-some-kind",
        TEST_IMAGE, "--", "sleep", "600",
    ).stdout.strip()  # fmt: skip
    held = ct("submit", "--hold", TEST_IMAGE, "true").stdout.strip()
    tasks = [r["id"] for r in jobs(ct, array_id)]
    ct("wait", tasks[0], "--state", "running")
    rows = jobs(ct)
    assert [r["id"] for r in rows[:4]] == tasks
    assert rows[4]["id"] == held and rows[4]["state"] == "queuedHeld"
    assert [r["state"] for r in rows[:4]] == ["running", "queued", "queued", "queued"]
    assert all(len(r["sub_state"]) > 30 for r in rows[1:4]), rows  # reasons that wrapped
    command = [sys.executable, "-m", "containertracker", "list"]
    screen = _in_tmux(tmux, [*command, *_global_options(backend, session_name, state_dir)],
                      _cli_env(state_dir), width=80, socket=tmp_path / "tmux")  # fmt: skip
    lines = [line for line in screen.splitlines() if line.strip()]
    assert lines[0].split() == [
        "ID",
        "NAME",
        "STATE",
        "TASK",
        "IMAGE",
        "STARTED",
        "RUNTIME",
        "EXIT",
    ]
    assert len(lines) == 1 + len(rows), screen
    for line, row in zip(lines[1:], rows, strict=True):
        assert line.startswith(row["id"][:12]), screen
        assert row["state"] in line.split() and row["task"] in [*line.split(), ""]


def _in_tmux(
    tmux: str, command: list[str], env: dict[str, str], *, width: int, socket: Path
) -> str:
    """The screen of a tmux pane ``width`` columns wide (a terminal, as a user's is) once
    ``command`` has run in it. The tmux server, of its own at ``socket``, is ended
    afterwards."""
    base = [tmux, "-S", str(socket), "-f", "/dev/null"]
    env = {k: v for k, v in env.items() if k not in ("COLUMNS", "LINES", "TMUX")}
    signal_done = shlex.join([*base, "wait-for", "-S", "done"])
    script = f"{shlex.join(command)}; {signal_done}; sleep 600"
    subprocess.run(
        [*base, "new-session", "-d", "-x", str(width), "-y", "50", "sh", "-c", script],
        env=env, check=True, timeout=60,
    )  # fmt: skip
    try:
        subprocess.run([*base, "wait-for", "done"], check=True, timeout=120)
        pane = [*base, "display-message", "-p", "#{pane_width}"]
        assert subprocess.run(pane, capture_output=True, text=True).stdout.strip() == str(width)
        return subprocess.run(
            [*base, "capture-pane", "-p"], capture_output=True, text=True, check=True
        ).stdout
    finally:
        subprocess.run([*base, "kill-server"], capture_output=True, timeout=60)


@pytest.mark.local_only  # a server would expand $DRMAA2_WORKING_DIR$ to its own directory
def test_logs_reads_the_files_where_the_tracker_put_them(ct: Run, tmp_path: Path) -> None:
    """logs reads the output and error files at the paths the tracker resolved when the job
    was submitted: a placeholder ($DRMAA2_WORKING_DIR$, the submitter's directory) is not
    expanded again, so logs run from another directory finds them."""
    submitted_in = tmp_path / "submitted-in"
    submitted_in.mkdir()
    job_id = ct(
        "submit", "-o", "$DRMAA2_WORKING_DIR$/out", "--error", "$DRMAA2_WORKING_DIR$/err",
        TEST_IMAGE, "--", "sh", "-c", "echo to-out; echo to-err 1>&2",
        cwd=submitted_in,
    ).stdout.strip()  # fmt: skip
    ct("wait", job_id)
    assert (submitted_in / "out").read_text() == "to-out\n"
    assert ct("logs", job_id).stdout == "to-out\n"
    assert ct("logs", job_id, "--stderr").stdout == "to-err\n"
    joined = ct("submit", "--join", "-o", str(tmp_path / "joined"), TEST_IMAGE, "true").stdout
    ct("wait", joined.strip())
    assert "no --error file" in ct("logs", joined.strip(), "--stderr", rc=2).stderr


def test_failed_jobs_set_the_exit_status(ct: Run) -> None:
    job_id = ct("submit", TEST_IMAGE, "--", "sh", "-c", "exit 3").stdout.strip()
    assert json.loads(ct("wait", job_id, "--json", rc=1).stdout) == {job_id: "failed"}
    assert [r["id"] for r in jobs(ct, "--state", "failed")] == [job_id]
    assert jobs(ct, "--state", "done") == []
    assert json.loads(ct("info", job_id, "--json").stdout)["info"]["exit_status"] == 3


def test_control_and_delete(ct: Run, backend: str) -> None:
    held = ct("submit", "--hold", TEST_IMAGE, "true").stdout.strip()
    assert jobs(ct, held)[0]["state"] == "queuedHeld"
    ct("control", "release", held)
    ct("wait", held)
    sleeper = ct("submit", TEST_IMAGE, "sleep", "60").stdout.strip()
    ct("wait", sleeper, "--state", "running")
    if engine_of(backend) == "swarm":  # no pause in the swarm API
        assert "no pause" in ct("control", "suspend", sleeper, rc=8).stderr
    else:
        ct("control", "suspend", sleeper)
        assert jobs(ct, sleeper)[0]["state"] == "suspended"
        assert "it is not" in ct("control", "suspend", sleeper, rc=4).stderr or True
        ct("control", "resume", sleeper)
    ct("delete", sleeper, rc=4)  # still running
    ct("control", "terminate", sleeper)
    ct("wait", sleeper, rc=1)
    deleted = ct("delete", "--finished").stdout.split()
    assert sorted(deleted) == sorted([held, sleeper])


def test_terminate_an_array(ct: Run, backend: str) -> None:
    """control terminate --array stops every task (they are terminated side by side) and
    reports each in task order; every task ends by the SIGTERM it was sent (on a swarm,
    which drops the record of a stopped task, the exit status reads 137)."""
    array_id = ct("submit", "--array", "1-6", TEST_IMAGE, "--", "sleep", "600").stdout.strip()
    tasks = [r["id"] for r in jobs(ct, "--array", array_id)]
    ct("wait", "--array", array_id, "--state", "running")
    done = json.loads(ct("control", "terminate", "--array", array_id, "--json").stdout)
    assert done == [{"id": task, "error": None} for task in tasks]
    rows = jobs(ct, "--array", array_id)
    signalled = {137, 143} if engine_of(backend) == "swarm" else {143}
    assert {r["state"] for r in rows} == {"failed"} and {
        r["exit_status"] for r in rows
    } <= signalled


def test_exit_codes_and_messages(ct: Run) -> None:
    assert "no job or array job 'nope'" in ct("info", "nope", rc=3).stderr
    assert "BEGIN-END" in ct("submit", "--array", "x", TEST_IMAGE, "true", rc=2).stderr
    assert "KEY=VALUE" in ct("submit", "-e", "novalue", TEST_IMAGE, "true", rc=2).stderr
    assert "no-such-image" in ct("submit", "no-such-image", "true", rc=2).stderr
    assert "unknown state" in ct("list", "--state", "bogus", rc=2).stderr
    assert "unknown job control action" in ct("control", "explode", "x", rc=2).stderr
    ct("frobnicate", rc=2)  # usage error from the parser
    sleeper = ct("submit", TEST_IMAGE, "sleep", "30").stdout.strip()
    assert "not finished" in ct("wait", sleeper, "--timeout", "0.5", rc=7).stderr
    assert "resume" in ct("control", "resume", sleeper, rc=4).stderr
    ct("control", "terminate", sleeper)


def test_images_and_machines(ct: Run, backend: str) -> None:
    assert TEST_IMAGE in ct("images").stdout.split()
    assert TEST_IMAGE in json.loads(ct("images", "--json").stdout)
    machines = json.loads(ct("machines", "--json").stdout)
    hosts = ["ct-node-1", "ct-node-2", "ct-node-3"]  # the lab swarm's nodes
    assert [m["name"] for m in machines] == (
        hosts if engine_of(backend) == "swarm" else [socket.gethostname()]
    )
    assert all(m["physical_memory"] > 0 and m["name"] in ct("machines").stdout for m in machines)


@pytest.mark.only_engines("docker")
def test_unreachable_engine(backend: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "containertracker", "--engine-url", "unix:///nonexistent.sock",
         "list"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 5 and "error:" in done.stderr


@pytest.mark.only_engines("docker")
def test_console_script_and_completion(backend: str) -> None:
    script = Path(sys.executable).with_name("containertracker")
    assert "submit" in subprocess.run([script, "--help"], capture_output=True, text=True).stdout
    completion = subprocess.run(
        [script, "--show-completion", "bash"], capture_output=True, text=True, check=True
    ).stdout
    assert "complete" in completion and "containertracker" in completion


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.only_engines("docker", "podman")
def test_serve_then_use_it_remotely(
    backend: str, session_name: str, state_dir: Path, open_tracker: Any
) -> None:
    port = _free_port()
    env = {**os.environ, "CONTAINERTRACKER_STATE_DIR": str(state_dir)}
    base = [sys.executable, "-m", "containertracker", "--session", session_name]
    refused = subprocess.run(
        [*base, "--backend", backend, "serve", "--host", "0.0.0.0"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert refused.returncode == 2 and "token" in refused.stderr
    assert "serving" not in refused.stderr  # nothing announced before the refusal
    token_file = state_dir / f"{session_name}.tokens"
    token_file.write_text("a-token-long-enough-0001\n")
    server = subprocess.Popen(
        [*base, "--backend", backend, "--engine-url", ENGINE_URLS[backend], "serve",
         "--port", str(port), "--token-file", str(token_file)],
        env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                httpx.get(url + "/openapi.json")
                break
            except httpx.TransportError:
                time.sleep(0.1)
        remote = [*base, "--backend", "remote", "--url", url]
        denied = subprocess.run([*remote, "list"], capture_output=True, text=True, env=env)
        assert denied.returncode == 6 and "token" in denied.stderr
        env["CONTAINERTRACKER_REMOTE_TOKEN"] = "a-token-long-enough-0001"
        submitted = subprocess.run(
            [*remote, "submit", TEST_IMAGE, "true"], capture_output=True, text=True, env=env
        )
        assert submitted.returncode == 0, submitted.stderr
        waited = subprocess.run(
            [*remote, "wait", submitted.stdout.strip()], capture_output=True, text=True, env=env
        )
        assert waited.returncode == 0 and "1 done" in waited.stdout
    finally:
        token_file.unlink()
        server.send_signal(signal.SIGINT)
        # Ctrl-C: a graceful shutdown, then the conventional 128+SIGINT exit status.
        assert server.wait(30) == 130
        assert server.stderr is not None and "Traceback" not in server.stderr.read()
