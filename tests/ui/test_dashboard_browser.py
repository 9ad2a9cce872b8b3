"""The web dashboard in a real browser: headless Chromium (Debian's chromium and
chromium-driver, driven by Selenium) against a real ``containertracker serve`` process with
a token, on the real Docker engine, jobs submitted with the CLI through that server.

Each view is saved as a screenshot under ``CT_UI_ARTIFACTS`` (default
``.containertracker/artifacts/ui``). A missing browser fails the run where
``CONTAINERTRACKER_REQUIRE_ENGINES`` names ``chromium`` (CI), as a missing engine does.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

import containertracker
from containertracker.core.tracker import ContainerTracker
from tests.conftest import ENGINE_URLS, SESSION_PREFIX, TEST_IMAGE, check_engine, engine_params

pytestmark = [pytest.mark.ui, pytest.mark.docker, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
TOKEN = f"ui-test-token-{uuid.uuid4().hex}"
GUARD = 120
"""Seconds any wait for the page may take before the test fails (a guard against a hang,
not an assertion about speed)."""


def _artifacts() -> Path:
    path = Path(os.environ.get("CT_UI_ARTIFACTS", ROOT / ".containertracker" / "artifacts" / "ui"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _require_browser() -> tuple[str, str]:
    """Chromium and its driver, or a skip (a failure where CI requires them)."""
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    try:
        import selenium  # noqa: F401
    except ImportError:
        browser = None
    if browser is None or driver is None:
        problem = "chromium, chromium-driver (apt) and selenium (pip) are needed"
        if "chromium" in os.environ.get("CONTAINERTRACKER_REQUIRE_ENGINES", "").split(","):
            pytest.fail(f"browser required but missing: {problem}")
        pytest.skip(f"no browser: {problem}")
    return browser, driver


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """The ``containertracker serve`` process under test."""

    url: str
    session: str
    jobs_dir: Path
    env: dict[str, str]
    opened: Path
    """Where the BROWSER stand-in wrote the address ``serve --open`` opened."""

    def cli(self, *args: str, extra: dict[str, str] | None = None) -> str:
        """Run the CLI as a client of this server (with the token); its stdout."""
        command = [sys.executable, "-m", "containertracker", "--backend", "remote"]
        command += ["--url", self.url, "--session", self.session, *args]
        env = {**self.env, "CONTAINERTRACKER_REMOTE_TOKEN": TOKEN, **(extra or {})}
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=180)
        assert done.returncode == 0, f"{args}: exit {done.returncode}\n{done.stderr}"
        return done.stdout.strip()


@pytest.fixture(scope="module")
def server(state_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``containertracker serve --open`` with a token on Docker, host paths allowed below a
    directory of its own, a BROWSER stand-in recording what it was asked to open; stopped
    with Ctrl-C at the end, its session's jobs removed."""
    check_engine("docker", state_dir)
    home = tmp_path_factory.mktemp("ui")
    jobs_dir = home / "jobs"
    jobs_dir.mkdir()
    opened = home / "opened"
    recorder = home / "browser"
    recorder.write_text(f'#!/bin/sh\nprintf "%s" "$1" > {opened}\n')
    recorder.chmod(0o755)
    session = f"{SESSION_PREFIX}ui-{uuid.uuid4().hex[:8]}"
    port = _free_port()
    env = {
        **os.environ,
        "CONTAINERTRACKER_STATE_DIR": str(state_dir),
        "CONTAINERTRACKER_STOP_GRACE": "1",
        "BROWSER": str(recorder),
    }
    log = (home / "server.log").open("w+")
    process = subprocess.Popen(
        [sys.executable, "-m", "containertracker", "--backend", "docker",
         "--engine-url", ENGINE_URLS["docker"], "--session", session, "serve",
         "--port", str(port), "--allow-host-path", str(jobs_dir), "--open"],
        env={**env, "CONTAINERTRACKER_SERVER_TOKEN": TOKEN},
        stderr=log, stdout=log, cwd=ROOT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(GUARD * 10):
            try:
                httpx.get(f"{url}/ui", timeout=5)
                break
            except httpx.TransportError:
                assert process.poll() is None, _read(log)
                time.sleep(0.1)
        yield Server(url, session, jobs_dir, env, opened)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            exit_code = process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
        finally:
            # The session's jobs go whatever the checks below say (a failed check must not
            # leave containers for the next run to trip over).
            with containertracker.new_job_tracker(
                "docker", session, engine_params("docker", state_dir)
            ) as tracker:
                assert isinstance(tracker, ContainerTracker)
                for job_id in tracker.list_jobs():
                    tracker._engine.remove(job_id)
        server_log = _read(log)
        log.close()
        assert exit_code == 130, server_log  # a graceful shutdown after Ctrl-C
        assert "Traceback" not in server_log, server_log


def _read(log: Any) -> str:
    log.flush()
    log.seek(0)
    text: str = log.read()
    return text


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium (one for the module), its console log kept."""
    chromium, chromedriver = _require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1440,900", "--disable-gpu", "--no-first-run"):  # fmt: skip
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(chromedriver))
    try:
        yield driver
    finally:
        driver.quit()


def _until(driver: Any, condition: Callable[[Any], Any], what: str) -> Any:
    """Wait (up to the GUARD) until ``condition(driver)`` is truthy; its value."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, GUARD, poll_frequency=0.1).until(condition, what)


def _shot(driver: Any, name: str, *, page_only: bool = False) -> None:
    """Save the window as ``<name>.png`` (``page_only``: just the page's content, as the
    README shows it)."""
    path = str(_artifacts() / f"{name}.png")
    if page_only:
        driver.find_element("tag name", "body").screenshot(path)
    else:
        driver.save_screenshot(path)


def _visible(driver: Any, element_id: str) -> bool:
    return bool(driver.find_element("id", element_id).is_displayed())


def _sign_in(driver: Any, server: Server) -> None:
    driver.get(f"{server.url}/ui")
    driver.execute_script("sessionStorage.clear()")
    driver.get(f"{server.url}/ui")
    _until(driver, lambda d: _visible(d, "login"), "the login form")
    driver.find_element("id", "login-secret").send_keys(TOKEN)
    driver.find_element("id", "login-submit").click()
    _until(driver, lambda d: "live" in d.find_element("id", "live").text, "the live stream")


def _states(driver: Any) -> dict[str, str]:
    """Job id -> the state text of its row, as the page shows them now."""
    script = """
      return Object.fromEntries([...document.querySelectorAll('#jobs tbody tr')].map(
        (tr) => [tr.dataset.id, tr.querySelector('[data-field="state"]').textContent]));
    """
    states: dict[str, str] = driver.execute_script(script)
    return states


def _no_console_errors(driver: Any) -> None:
    """Nothing the page did was refused (a CSP violation, a failed script)."""
    errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    # 401s of the deliberate sign-in without a token are expected; nothing else is.
    assert [m for m in errors if "401" not in m] == []


def test_serve_open_and_ui_open_the_dashboard_in_a_browser(server: Server) -> None:
    """``serve --open`` opened the dashboard's address once the server listened; ``ui``
    prints and opens the address of the server ``--url`` names."""
    for _ in range(GUARD * 10):
        if server.opened.exists():
            break
        time.sleep(0.1)
    assert server.opened.read_text() == f"{server.url}/ui"
    server.opened.unlink()
    assert server.cli("ui") == f"{server.url}/ui"
    assert server.opened.read_text() == f"{server.url}/ui"


def test_without_the_token_only_the_login_shows(server: Server, browser: Any) -> None:
    """A page without the token shows the login and nothing else; a wrong token is refused
    and shows nothing more; the API answers 401 without it."""
    job_id = server.cli("submit", TEST_IMAGE, "-n", "secret-job", "--", "true")
    browser.get(f"{server.url}/ui")
    browser.execute_script("sessionStorage.clear()")
    browser.get(f"{server.url}/ui")
    _until(browser, lambda d: _visible(d, "login"), "the login form")
    for hidden in ("tabs", "jobs-view", "arrays-view", "machines-view", "session-picker"):
        assert not _visible(browser, hidden)
    browser.find_element("id", "login-secret").send_keys("not-the-token-at-all")
    browser.find_element("id", "login-submit").click()
    _until(browser, lambda d: "refused" in d.find_element("id", "login-error").text, "refusal")
    assert job_id[:12] not in browser.page_source and "secret-job" not in browser.page_source
    assert not _visible(browser, "jobs-view")
    _shot(browser, "login")
    for path in ("sessions", "jobs", "machines", "stream"):
        assert httpx.get(f"{server.url}/ui/api/{path}", timeout=30).status_code == 401
    headers = httpx.get(f"{server.url}/ui", timeout=30).headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"


def test_an_array_runs_live_on_the_page_and_a_task_shows_its_output(
    server: Server, browser: Any
) -> None:
    """An array submitted with the CLI appears, runs (two at a time, the rest waiting for a
    slot) and ends on the page without a reload; its progress shows in the arrays view, the
    machine running it in the machines view, and a task's page shows its output."""
    _sign_in(browser, server)
    browser.execute_script("window.notReloaded = true")
    output = server.jobs_dir / "task.$DRMAA2_INDEX$.out"
    array_id = server.cli(
        "submit", "--array", "1-4", "--max-parallel", "2", "-n", "crunch", "-o", str(output),
        TEST_IMAGE, "--", "sh", "-c", "echo hello from task $TASK_ID; sleep 3",
    )  # fmt: skip
    task_ids = [row["id"] for row in json.loads(server.cli("list", "--array", array_id, "--json"))]
    assert len(task_ids) == 4

    def some_running_and_some_waiting(driver: Any) -> bool:
        states = _states(driver)
        shown = [states.get(task, "") for task in task_ids]
        return any(s.startswith("running") for s in shown) and any(
            "waiting for a free slot (max_parallel 2)" in s for s in shown
        )

    _until(browser, some_running_and_some_waiting, "tasks running and queued for a slot")
    _shot(browser, "jobs-running")
    _shot(browser, "dashboard", page_only=True)  # docs/dashboard.png
    browser.find_element("css selector", '[data-tab="arrays"]').click()
    array_row = f'tr[data-array="{array_id}"]'
    _until(browser, lambda d: d.find_elements("css selector", array_row), "the array's row")
    _shot(browser, "arrays-running")
    browser.find_element("css selector", '[data-tab="machines"]').click()
    _until(
        browser,
        lambda d: any(t[:12] in d.find_element("id", "machines").text for t in task_ids),
        "a task on a machine",
    )
    _shot(browser, "machines")
    browser.find_element("css selector", '[data-tab="jobs"]').click()
    _until(
        browser,
        lambda d: all(_states(d).get(task) == "done" for task in task_ids),
        "every task done",
    )
    assert browser.execute_script("return window.notReloaded") is True
    browser.find_element("css selector", '[data-tab="arrays"]').click()
    row = browser.find_element("css selector", array_row)
    cells = [cell.text for cell in row.find_elements("tag name", "td")]
    # done, failed, running, queued, held, tasks
    assert cells[4:10] == ["4", "0", "0", "0", "0", "4"]
    _shot(browser, "arrays-done")
    browser.find_element("css selector", '[data-tab="jobs"]').click()
    browser.find_element("css selector", f'button[data-job="{task_ids[0]}"]').click()
    _until(browser, lambda d: "hello from task 1" in d.find_element("id", "job-output").text, "")
    assert browser.find_element("id", "job-dialog").is_displayed()
    assert "task 1" in browser.find_element("id", "job-title").text
    assert "crunch" in browser.find_element("id", "job-template").get_attribute("textContent")
    _shot(browser, "job-output")
    browser.find_element("id", "job-close").click()
    _no_console_errors(browser)


def test_terminating_a_job_from_the_page_fails_it(server: Server, browser: Any) -> None:
    """A running job's page shows its output live (from the engine's log, before the file
    is written) and offers suspend and terminate; terminate, once confirmed, goes through
    the tracker: the job reads FAILED (SIGTERM) on the page and for the CLI."""
    _sign_in(browser, server)
    output = server.jobs_dir / "long-one.out"
    job_id = server.cli(
        "submit", "-n", "long-one", "-o", str(output), TEST_IMAGE,
        "--", "sh", "-c", "echo working on it; exec sleep 300",
    )  # fmt: skip
    _until(browser, lambda d: _states(d).get(job_id, "").startswith("running"), "running")
    browser.find_element("css selector", f'button[data-job="{job_id}"]').click()
    _until(browser, lambda d: "working on it" in d.find_element("id", "job-output").text, "")
    assert "Live" in browser.find_element("id", "job-output-note").text
    _until(browser, lambda d: d.find_elements("css selector", "#job-actions [data-action]"), "")
    actions = [
        b.get_attribute("data-action")
        for b in browser.find_elements("css selector", "#job-actions [data-action]")
    ]
    assert actions == ["suspend", "terminate"]
    browser.find_element("css selector", '#job-actions [data-action="terminate"]').click()
    _until(browser, lambda d: d.find_element("id", "confirm-dialog").is_displayed(), "confirm")
    _shot(browser, "job-terminate-confirm")
    browser.find_element("id", "confirm-yes").click()
    # FAILED once terminate returns; the exit status once the container has stopped (its
    # die event reaches the page through the stream).
    _until(browser, lambda d: "failed" in d.find_element("id", "job-state").text, "failed")
    _until(browser, lambda d: "143 (SIGTERM)" in d.find_element("id", "job-state").text, "")
    from selenium.webdriver.common.keys import Keys

    browser.find_element("id", "job-dialog").send_keys(Keys.ESCAPE)  # Escape closes it
    _until(browser, lambda d: not d.find_element("id", "job-dialog").is_displayed(), "closed")
    _until(browser, lambda d: _states(d).get(job_id, "").startswith("failed"), "row failed")
    _shot(browser, "jobs")
    (row,) = json.loads(server.cli("list", job_id, "--json"))
    assert (row["state"], row["exit_status"]) == ("failed", 143)
    _no_console_errors(browser)
