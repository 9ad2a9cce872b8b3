"""The pure parts of the remote tracker: error classes on the wire, state names, the
admission policy and the exposure check (no server, no engine)."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import threading
from pathlib import Path

import anyio
import httpx
import pytest

from containertracker import errors, registry
from containertracker.errors import DeniedByDrmsError, InvalidArgumentError
from containertracker.models import JobState, JobTemplate
from containertracker.remote import Credentials, Policy, TrackerPool, check_exposure
from containertracker.remote.app import (
    PATHS,
    _check_array_size,
    _stored_bytes,
    allowed_hosts,
    create_app,
    openapi_document,
)
from containertracker.remote.tokens import Grant, parse_tokens
from containertracker.remote.wire import error_class_name, error_from_wire, parse_states
from containertracker.settings import ServerSettings


@pytest.mark.parametrize(
    "cls",
    [
        getattr(errors, name)
        for name in errors.__all__
        if isinstance(getattr(errors, name), type)
        and issubclass(getattr(errors, name), errors.ContainerTrackerError)
    ],
)
def test_every_error_class_survives_the_wire(cls: type[errors.ContainerTrackerError]) -> None:
    exc = cls("the message")
    back = error_from_wire(error_class_name(exc), str(exc))
    assert type(back) is cls and str(back) == "the message"


def test_a_private_subclass_travels_as_its_public_parent() -> None:
    class Mine(errors.InvalidStateError):
        pass

    assert error_class_name(Mine("x")) == "InvalidStateError"


def test_text_without_a_class_is_an_internal_error() -> None:
    """A Go server sends only text: it becomes an InternalError quoting it."""
    exc = error_from_wire(None, "job does not exist")
    assert isinstance(exc, errors.InternalError) and "job does not exist" in str(exc)
    assert isinstance(error_from_wire("NoSuchClass", "x"), errors.InternalError)


def test_parse_states() -> None:
    assert parse_states(["done", "queuedHeld"]) == (JobState.DONE, JobState.QUEUED_HELD)
    assert parse_states([]) == ()
    with pytest.raises(ValueError, match="Done"):
        parse_states(["Done"])  # remote names are lower camel


# -- policy -----------------------------------------------------------------------------------


def tpl(**fields: object) -> JobTemplate:
    return JobTemplate(remote_command="true", job_category="img", **fields)  # type: ignore[arg-type]


def test_default_policy_accepts_a_plain_job() -> None:
    Policy().check(tpl(job_environment={"A": "1"}, extension={"user": "nobody"}))
    Policy().check(tpl(extension={"privileged": "false", "net": "none", "pid": "private"}))
    Policy().check(tpl(output_path=os.devnull))


@pytest.mark.parametrize(
    ("template", "fix"),
    [
        (tpl(extension={"privileged": "true"}), "--allow-privileged"),
        (tpl(extension={"privileged": "maybe"}), "--allow-privileged"),
        (tpl(extension={"net": "host"}), "--allow-host-namespaces"),
        (tpl(extension={"pid": "container:abc"}), "--allow-host-namespaces"),
        (tpl(output_path="/tmp/out"), "--allow-host-path"),
        (tpl(input_path="in.txt"), "--allow-host-path"),
        (tpl(stage_in_files={"/etc/passwd": "/p"}), "--allow-host-path"),
        (tpl(stage_out_files={"/o": "/root/.ssh/x"}), "--allow-host-path"),
    ],
)
def test_default_policy_refuses_what_reaches_the_host(template: JobTemplate, fix: str) -> None:
    with pytest.raises(DeniedByDrmsError, match=fix):
        Policy().check(template)


def test_a_joined_error_path_is_refused_like_any_host_path() -> None:
    """Issue 12 review: with ``join_files`` the core's tracker ignores the error path, but a
    server allowing no host paths still refuses a template naming one (it serves any
    registered tracker)."""
    joined = tpl(output_path=os.devnull, error_path="/etc/shadow", join_files=True)
    with pytest.raises(DeniedByDrmsError, match=r"error_path.*--allow-host-path"):
        Policy().check(joined)


def test_operator_can_allow_each_feature() -> None:
    Policy(allow_privileged=True).check(tpl(extension={"privileged": "true"}))
    Policy(allow_host_namespaces=True).check(tpl(extension={"net": "host", "ipc": "host"}))
    Policy(allow_host_ports=True).check(tpl(extension={"exposedPorts": "8080:80"}))
    Policy(allow_networks=True).check(tpl(extension={"net": "backend"}))


@pytest.mark.parametrize(
    ("extension", "limits", "says"),
    [
        ({"exposedPorts": "80"}, {}, "--allow-host-ports"),
        ({"exposedPorts": "127.0.0.1:8080:80/udp"}, {}, "--allow-host-ports"),
        ({"net": "some-other-net"}, {}, "--allow-networks"),
        ({"restart": "always"}, {}, "forever"),
        ({"restart": "unless-stopped"}, {}, "forever"),
        ({"restart": "on-failure"}, {}, "on-failure:N"),
        ({"restart": "on-failure:0"}, {}, "on-failure:N"),
        ({"restart": "on-failure:11"}, {}, "on-failure:N"),
        ({"shm-size": "2g"}, {}, "maximum"),
        ({"pids-limit": "8193"}, {}, "maximum"),
        ({}, {"VIRTUAL_MEMORY": "17g"}, "maximum"),
        ({}, {"virtual_memory": "17g"}, "maximum"),
        ({"ulimit": "nofile=-1"}, {}, "unlimited"),
        ({"ulimit": "nofile=1024:99999999999"}, {}, "hard limit"),
    ],
)
def test_default_policy_refuses_unbounded_resources_and_exposure(
    extension: dict[str, str], limits: dict[str, str], says: str
) -> None:
    with pytest.raises(DeniedByDrmsError, match=says):
        Policy().check(tpl(extension=extension, resource_limits=limits))


@pytest.mark.parametrize(
    "limits",
    [
        {"VIRTUAL_MEMORY": "1M", "virtual_memory": "1T"},  # read 1M, ran with 1T
        {"virtual_memory": "1T", "VIRTUAL_MEMORY": "1M"},
        {"VIRTUAL_MEMORY": "0"},  # no default added, and 0 is unlimited to the engine
        {"VIRTUAL_MEMORY": "0.1"},
    ],
)
def test_the_memory_limit_cannot_be_spelled_past_the_policy(limits: dict[str, str]) -> None:
    with pytest.raises(InvalidArgumentError):
        Policy().check(tpl(resource_limits=limits))


def test_resource_limits_that_are_ulimits_meet_the_same_bounds() -> None:
    """OPEN_FILES & co. become ulimits like the ulimit extension: the same check."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert hard != resource.RLIM_INFINITY  # Linux: nofile is always bounded
    for template in (
        tpl(resource_limits={"OPEN_FILES": str(hard + 1)}),
        tpl(resource_limits={"open_files": "100000000000", "FILE_SIZE": "1p"}),
        tpl(extension={"ulimit": f"nofile={hard + 1}"}),
    ):
        with pytest.raises(DeniedByDrmsError, match="hard limit"):
            Policy().check(template)
    Policy().check(tpl(resource_limits={"OPEN_FILES": str(hard)}))


_LOWERED_HARD_LIMITS = """
import resource, sys
from containertracker.errors import DeniedByDrmsError
from containertracker.models import JobTemplate
from containertracker.remote import Policy

for name in ("CORE", "CPU", "DATA", "FSIZE", "STACK"):
    which = getattr(resource, "RLIMIT_" + name)
    soft = resource.getrlimit(which)[0]
    soft = 1 << 30 if soft == resource.RLIM_INFINITY else min(soft, 1 << 30)
    resource.setrlimit(which, (soft, 1 << 30))
refused = []
for key, value in [("CORE_FILE_SIZE", "1025m"), ("CPU_TIME", str((1 << 30) + 1)),
                   ("DATA_SIZE", "1025m"), ("FILE_SIZE", "1025m"), ("STACK_SIZE", "1025m")]:
    jt = JobTemplate(remote_command="true", job_category="i", resource_limits={key: value})
    try:
        Policy().check(jt)
    except DeniedByDrmsError as exc:
        refused.append(key if "hard limit" in str(exc) else str(exc))
    Policy().check(jt.model_copy(update={"resource_limits": {key: "1024"}}))
print(" ".join(refused))
"""


def test_every_ulimit_resource_limit_is_bounded_by_the_servers_own() -> None:
    """In a process whose hard limits are 1 GiB (1 Gi seconds), asking for more through any
    resource limit that is a ulimit is refused."""
    done = subprocess.run(
        [sys.executable, "-c", _LOWERED_HARD_LIMITS], capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == [
        "CORE_FILE_SIZE",
        "CPU_TIME",
        "DATA_SIZE",
        "FILE_SIZE",
        "STACK_SIZE",
    ]


def test_policy_fills_in_default_limits_a_template_may_lower() -> None:
    policy = Policy(default_pids_limit=100, default_memory=1 << 30)
    given = tpl(job_environment={"A": "1"})
    used = policy.check(given)
    assert used.extension["pids-limit"] == "100"
    assert used.resource_limits["VIRTUAL_MEMORY"] == str(1 << 30)
    assert used.job_environment == given.job_environment and "pids-limit" not in given.extension
    lowered = tpl(extension={"pids-limit": "5"}, resource_limits={"virtual_memory": "64m"})
    assert policy.check(lowered) == lowered  # nothing added: the template's limits hold
    assert Policy(default_pids_limit=None, default_memory=None).check(given) == given
    Policy().check(tpl(extension={"restart": "on-failure:3", "net": "bridge", "shm-size": "64m"}))


def test_tokens_bound_to_sessions() -> None:
    grants = parse_tokens(
        "# ops\n\nall-sessions-token-0001\nteam-a-token-00000001 team-a team-a-*\n", "f"
    )
    assert grants[0] == Grant("all-sessions-token-0001") and grants[0].every_session
    team = grants[1]
    assert team.allows("team-a") and team.allows("team-a-ci") and not team.allows("team-b")
    assert not team.every_session
    with pytest.raises(InvalidArgumentError, match="16 characters"):
        parse_tokens("short a", "f")
    with pytest.raises(InvalidArgumentError, match="twice"):
        parse_tokens("same-token-0000001\nsame-token-0000001 b", "f")
    with pytest.raises(InvalidArgumentError, match="no token"):
        parse_tokens("# nothing\n", "f")


def test_a_short_server_token_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="16 characters"):
        check_exposure(ServerSettings(token="s3cret"))


def test_allowed_hosts_are_the_bound_names() -> None:
    assert set(allowed_hosts(ServerSettings())) == {"127.0.0.1", "localhost", "[::1]"}
    assert "[::1]" in allowed_hosts(ServerSettings(host="::1"))
    assert allowed_hosts(ServerSettings(host="10.0.0.5")) == ["10.0.0.5"]
    assert allowed_hosts(ServerSettings(host="10.0.0.5", allowed_hosts=["jobs.example.org"])) == [
        "10.0.0.5",
        "jobs.example.org",
    ]
    assert allowed_hosts(ServerSettings(host="0.0.0.0")) == ["*"]
    assert allowed_hosts(ServerSettings(host="0.0.0.0", allowed_hosts=["a.org"])) == ["a.org"]


def test_array_size_is_bounded_before_any_work() -> None:
    _check_array_size(1000, 1, 1000, 1, 1 << 20)
    _check_array_size(1 << 20, 1, 1, 1, 1 << 20)
    with pytest.raises(InvalidArgumentError, match="limit"):
        _check_array_size(900_000, 1, 1000, 1, 64 << 20)
    _check_array_size(900_000, 1, 1000, 1000, 64 << 20)  # step: 1 task


def test_array_size_counts_what_each_task_stores() -> None:
    """100 kB of ``<`` is 100 kB of body but 800 kB of label (Go escapes it, base64 grows
    it), and the environment is stored again as the container's."""
    escaped = tpl(job_environment={"A": "<" * 100_000})
    assert _stored_bytes(escaped) >= 800_000 + 100_000
    plain = tpl(job_environment={"A": "x" * 100_000})
    assert _stored_bytes(plain) >= len(plain.to_label()) + 100_000
    with pytest.raises(InvalidArgumentError, match="limit"):
        _check_array_size(_stored_bytes(escaped), 1, 20, 1, 8 << 20)


def test_host_paths_are_left_to_the_trackers_when_some_are_allowed(tmp_path: Path) -> None:
    """With allowed directories the policy does not look at paths: it cannot know the path
    each task will use. The server's trackers check them, resolved per task (their
    host_path_roots; tests/unit/test_hostfs.py, tests/security/test_host_paths.py)."""
    policy = Policy(allowed_host_paths=(tmp_path,))
    for path in (str(tmp_path / "out.$DRMAA2_INDEX$"), "/etc/shadow", "$DRMAA2_HOME_DIR$/x"):
        policy.check(tpl(error_path=path))
    with pytest.raises(DeniedByDrmsError, match="--allow-host-path"):
        Policy().check(tpl(stage_in_files={str(tmp_path / "a"): "/a"}))
    Policy().check(tpl(output_path="/dev/null"))


# -- exposure ---------------------------------------------------------------------------------


def test_loopback_needs_no_auth() -> None:
    check_exposure(ServerSettings())
    check_exposure(ServerSettings(host="::1"))
    check_exposure(ServerSettings(host="localhost"))


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "::", "example.org"])
def test_other_addresses_need_auth(host: str) -> None:
    with pytest.raises(InvalidArgumentError, match="token"):
        check_exposure(ServerSettings(host=host))
    check_exposure(ServerSettings(host=host, token="a-long-enough-s3cret"))
    check_exposure(ServerSettings(host=host, user="u", password="p"))


TOKEN = "a-long-enough-s3cret"


def _token_file(tmp_path: Path) -> Path:
    path = tmp_path / "tokens"
    path.write_text(f"{TOKEN}\n")
    return path


def test_credentials_read_from_other_settings_are_refused(tmp_path: Path) -> None:
    """Issue 12 review: credentials of settings without a token cannot stand in for those of
    settings naming a token file: neither the exposure check nor the app accepts them."""
    settings = ServerSettings(host="0.0.0.0", token_file=_token_file(tmp_path))
    none = Credentials(ServerSettings(host="0.0.0.0"))
    assert not none.required
    with pytest.raises(InvalidArgumentError, match="other server settings"):
        check_exposure(settings, credentials=none)
    pool = TrackerPool(lambda session: _Opened(), "s")  # type: ignore[arg-type,return-value]
    with pytest.raises(InvalidArgumentError, match="other server settings"):
        create_app(pool, settings, credentials=none)


def test_an_app_enforces_the_credentials_read_once(tmp_path: Path) -> None:
    """The token file is read once, when the credentials are built (as serve() does), and
    the app given them requires its tokens."""
    token_file = _token_file(tmp_path)
    settings = ServerSettings(token_file=token_file)
    credentials = Credentials(settings)
    token_file.unlink()  # not read again below
    check_exposure(settings, credentials=credentials)
    pool = TrackerPool(lambda session: _NoJobs(), "s")  # type: ignore[arg-type,return-value]
    app = create_app(pool, settings, credentials=credentials)

    async def statuses() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            bearer = {"Authorization": f"Bearer {TOKEN}"}
            return [(await http.get("/listjobs", headers=h)).status_code for h in ({}, bearer)]

    assert anyio.run(statuses) == [401, 200]
    assert TOKEN not in repr(credentials)
    pool.close()


def test_inconsistent_security_settings() -> None:
    with pytest.raises(InvalidArgumentError, match="password"):
        check_exposure(ServerSettings(user="u"))
    with pytest.raises(InvalidArgumentError, match="key"):
        check_exposure(ServerSettings(tls_certfile=Path("/c.pem")))


def test_openapi_document_describes_every_path() -> None:
    document = openapi_document()
    assert document["openapi"].startswith("3.")
    assert set(document["paths"]) == set(PATHS)


# -- tracker pool -----------------------------------------------------------------------------


class _Opened:
    """Stands for a tracker: the pool only keeps and closes it."""

    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_a_session_opened_twice_keeps_one_tracker_and_closes_the_other() -> None:
    """Item 13: after an eviction discarded a session's opening lock, two requests can each
    open the session; the pool must keep one tracker and close the second (its threads)."""
    first, second = _Opened(), _Opened()
    pool = TrackerPool(lambda session: first, "s")  # type: ignore[arg-type,return-value]
    assert pool._add("s", first) is first  # type: ignore[arg-type]
    assert pool._add("s", second) is first  # type: ignore[arg-type]
    assert second.closed and not first.closed
    pool.close()
    assert first.closed


def test_failed_opens_leave_nothing_behind() -> None:
    """Item 13 follow-up: a session whose opening failed (engine down, every session busy)
    leaves no lock or name in the pool, and a pool full of busy sessions refuses before
    building a tracker only to close it again."""
    built: list[str] = []

    def down(session: str) -> _Opened:
        built.append(session)
        raise errors.DrmCommunicationError("engine down")

    pool = TrackerPool(down, "s")  # type: ignore[arg-type]
    for n in range(100):
        with pytest.raises(errors.DrmCommunicationError), pool.using(f"random-{n}"):
            pass
    assert pool._opening == {} and len(built) == 100

    opened: list[_Opened] = []

    def works(session: str) -> _Opened:
        opened.append(_Opened())
        return opened[-1]

    full = TrackerPool(works, "s", max_sessions=1)  # type: ignore[arg-type]
    with full.using("busy"):
        for n in range(100):
            with pytest.raises(errors.TryLaterError), full.using(f"random-{n}"):
                pass
    assert len(opened) == 1 and full._opening == {}
    with full.using("next"):  # "busy" is idle now: evicted, closed
        assert opened[0].closed and len(opened) == 2
    full.close()


def test_concurrent_openers_of_a_session_share_one_tracker() -> None:
    """Requests for one session wait for the one opening it, and get its tracker; the
    opening lock lives as long as someone holds or waits for it."""
    release = threading.Event()
    opened: list[_Opened] = []

    def slow(session: str) -> _Opened:
        release.wait(60)
        opened.append(_Opened())
        return opened[-1]

    pool = TrackerPool(slow, "s")  # type: ignore[arg-type]
    got: list[object] = []

    def request() -> None:
        with pool.using("s") as tracker:
            got.append(tracker)

    threads = [threading.Thread(target=request) for _ in range(3)]
    for thread in threads:
        thread.start()
    for _ in range(6000):  # all three hold or wait for the lock (a test bound only)
        if pool._opening.get("s", (None, 0))[1] == 3:
            break
        threading.Event().wait(0.01)
    assert pool._opening["s"][1] == 3
    release.set()
    for thread in threads:
        thread.join(60)
    assert len(opened) == 1 and got == [opened[0]] * 3 and pool._opening == {}
    pool.close()


class _Monitoring(_Opened):
    """Stands for a tracker that says what its monitoring shows."""

    host_path_roots: tuple[str, ...] = ()

    def __init__(self, shows_all: bool) -> None:
        super().__init__()
        self.monitor_all_containers = shows_all


class _NoJobs(_Monitoring):
    """Stands for a confined tracker of a session without jobs."""

    def __init__(self) -> None:
        super().__init__(shows_all=False)

    def list_jobs(self) -> list[str]:
        return []


def test_a_pool_confined_to_trackers_containers_refuses_trackers_that_show_all() -> None:
    """Item 7 follow-up: however the pool was built, create_app confines it (unless the
    server allows all): a tracker showing every container is closed, never served."""
    shows_all = _Monitoring(True)
    pool = TrackerPool(lambda session: shows_all, "s")  # type: ignore[arg-type,return-value]
    create_app(pool, ServerSettings())
    with pytest.raises(DeniedByDrmsError, match="monitoring"), pool.using("s"):
        pass
    assert shows_all.closed
    hidden = _Monitoring(False)
    pool = TrackerPool(lambda session: hidden, "s")  # type: ignore[arg-type,return-value]
    create_app(pool, ServerSettings())
    with pool.using("s") as tracker:
        assert tracker is hidden
    allowed = _Monitoring(True)
    pool = TrackerPool(lambda session: allowed, "s")  # type: ignore[arg-type,return-value]
    create_app(pool, ServerSettings(monitor_all_containers=True))
    with pool.using("s") as tracker:
        assert tracker is allowed


@pytest.fixture
def confined_backend(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, object]]:
    """Backend ``unit-test-confined``, registered for the test only: it opens a
    :class:`_Monitoring` showing all containers as its params say, and keeps each params
    it was given in the list returned."""
    params_seen: list[dict[str, object]] = []

    def allocator(session: str, params: dict[str, object]) -> _Monitoring:
        params_seen.append(params)
        return _Monitoring(bool(params["monitor_all_containers"]))

    monkeypatch.setitem(registry._allocators, "unit-test-confined", allocator)
    return params_seen


def test_a_backend_pool_opens_trackers_as_confined_as_its_server_requires(
    tmp_path: Path, confined_backend: list[dict[str, object]]
) -> None:
    """The one way a server confines its trackers: create_app confines the pool, and a pool
    for a backend opens each tracker with the server's host path roots and monitoring
    choice, over the caller's params."""
    params_seen = confined_backend
    given = {"engine_url": "unix:///x", "monitor_all_containers": True}
    for allow_all in (False, True):
        pool = TrackerPool.for_backend("unit-test-confined", "s", given)
        create_app(
            pool, ServerSettings(allowed_host_paths=[tmp_path], monitor_all_containers=allow_all)
        )
        with pool.using("s"):
            pass
        pool.close()
        assert params_seen.pop() == {
            "engine_url": "unix:///x",
            "host_path_roots": [os.path.realpath(tmp_path)],
            "monitor_all_containers": allow_all,
        }


def test_a_second_app_on_a_pool_cannot_loosen_its_confinement(
    tmp_path: Path, confined_backend: list[dict[str, object]]
) -> None:
    """Issue 12 review: confinements only tighten. An app allowing more (every host path
    below a parent directory, monitoring of all containers) on a pool another app confined
    leaves the pool as confined as the first asked; a stricter one tightens it further."""
    inner, other = tmp_path / "inner", tmp_path / "other"
    pool = TrackerPool.for_backend("unit-test-confined", "s", {"monitor_all_containers": True})
    create_app(pool, ServerSettings(allowed_host_paths=[inner, other]))
    create_app(pool, ServerSettings(allowed_host_paths=[tmp_path], monitor_all_containers=True))
    with pool.using("s"):
        pass
    assert confined_backend.pop() == {
        "host_path_roots": [os.path.realpath(inner), os.path.realpath(other)],
        "monitor_all_containers": False,
    }
    create_app(pool, ServerSettings(allowed_host_paths=[inner / "deeper", tmp_path / "x"]))
    with pool.using("t"):
        pass
    assert confined_backend.pop()["host_path_roots"] == [os.path.realpath(inner / "deeper")]
    pool.close()


def test_confining_again_closes_trackers_the_tighter_confinement_refuses(tmp_path: Path) -> None:
    """A tracker admitted under the first confinement is closed when a second, stricter one
    no longer admits it, and so is any tracker the pool opens later."""
    wide = _Monitoring(False)
    wide.host_path_roots = (os.path.realpath(tmp_path),)
    pool = TrackerPool(lambda session: wide, "s")  # type: ignore[arg-type,return-value]
    create_app(pool, ServerSettings(allowed_host_paths=[tmp_path]))
    with pool.using("s"):
        assert not wide.closed
    create_app(pool, ServerSettings(allowed_host_paths=[tmp_path / "inner"]))
    assert wide.closed
    with pytest.raises(DeniedByDrmsError, match="host paths"), pool.using("s"):
        pass
    pool.close()
