"""What importing a part of containertracker loads, each checked in a fresh interpreter: the
package loads no core, no server stack and no engine SDK, and the HTTP client runs without
the core or the server stack (so on Windows, where the core's POSIX file locks do not
exist)."""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys

import pytest

import containertracker.remote

_POSIX_ONLY = frozenset({"fcntl", "grp", "pwd", "resource", "termios"})
"""Standard modules Windows lacks. (The standard library itself may load ``fcntl`` on
POSIX, e.g. through ``subprocess``: what matters is that no module of ours needs one.)"""

_SERVER_STACK = ("starlette", "uvicorn")

_SERVER_SIDE = tuple(
    f"containertracker.remote.{name}"
    for name in (
        "app",
        "connections",
        "dashboard",
        "dashboard_view",
        "middleware",
        "policy",
        "pool",
        "server",
        "tokens",
    )
)


def _loaded_by(code: str) -> set[str]:
    """The modules loaded after running ``code`` in a fresh interpreter."""
    report = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", report], capture_output=True, text=True, check=True
    )
    loaded: list[str] = json.loads(done.stdout.splitlines()[-1])
    return set(loaded)


def _under(loaded: set[str], *packages: str) -> list[str]:
    """The modules of ``loaded`` that are one of ``packages`` or lie inside one."""
    return sorted(m for m in loaded if any(m == p or m.startswith(p + ".") for p in packages))


def _posix_only_imports(module: str) -> set[str]:
    """The POSIX-only modules our ``module``'s source imports anywhere in it (one imported
    in a function would fail at its first call instead of at import)."""
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None
    with open(spec.origin, encoding="utf-8") as source:
        tree = ast.parse(source.read())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names & _POSIX_ONLY


def test_the_package_loads_no_core_server_cli_or_engine_sdk() -> None:
    """``import containertracker`` loads the contract, not what implements it: backends,
    the core (threads, state store), the server stack and the CLI load when first used."""
    loaded = _loaded_by("import containertracker")
    ours = ("containertracker.core", "containertracker.backends", "containertracker.cli")
    assert _under(loaded, *ours, "containertracker.remote") == []
    assert _under(loaded, *_SERVER_STACK, "docker", "podman", "typer") == []


def test_the_console_script_loads_no_cli_framework_before_it_runs() -> None:
    """The ``containertracker`` entry point's module loads neither typer nor rich (the app
    loads when ``main`` runs), so that a broken installation gets one line saying what to
    install (tests/unit/test_cli_missing_parts.py), not a traceback."""
    loaded = _loaded_by("from containertracker.cli import main")
    assert _under(loaded, "typer", "rich", "click", "containertracker.cli.app") == []


@pytest.mark.parametrize(
    "code",
    [
        "import containertracker.remote.client",
        "from containertracker.remote import RemoteTracker, new_remote_tracker",
        "import containertracker\n"
        "containertracker.new_job_tracker('remote', 's', {'remote_url': 'http://127.0.0.1:9'})",
    ],
)
def test_the_http_client_loads_without_the_core_or_the_server_stack(code: str) -> None:
    """Issue 12 review: the client (imported directly, from the package, or built by the
    registry) loads no core module, no server-side module and no module of ours needing a
    POSIX-only one, and neither starlette nor uvicorn."""
    loaded = _loaded_by(code)
    assert "containertracker.remote.client" in loaded
    assert _under(loaded, "containertracker.core", *_SERVER_SIDE) == []
    assert _under(loaded, *_SERVER_STACK) == []
    ours = _under(loaded, "containertracker")
    assert {m: _posix_only_imports(m) for m in ours if _posix_only_imports(m)} == {}


def test_the_remote_package_exports_every_name_it_lists() -> None:
    """Each name of ``containertracker.remote.__all__`` imports (from its module, on first
    use), and any other name is an AttributeError."""
    for name in containertracker.remote.__all__:
        assert getattr(containertracker.remote, name).__name__ == name
    assert set(containertracker.remote.__all__) <= set(dir(containertracker.remote))
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = containertracker.remote.no_such_name  # type: ignore[attr-defined]
