"""A package the command line needs but the installation lacks: the ``containertracker``
console script, run in a fresh interpreter in which that package cannot be imported, prints
one line saying what to install (never a traceback) and exits with MISSING_PART."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from containertracker.cli.missing import MISSING_PART, missing_part

SCRIPT = Path(sys.executable).with_name("containertracker")


def _run_without(module: str, args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """The console script with ``module`` unimportable: a sitecustomize (run at start-up,
    before the script imports anything) puts None in its sys.modules entry, which makes
    ``import module`` raise ModuleNotFoundError as if it were not installed."""
    (tmp_path / "sitecustomize.py").write_text(f"import sys\nsys.modules[{module!r}] = None\n")
    path = os.pathsep.join([str(tmp_path), *sys.path])  # ours first; then this checkout
    env = {**os.environ, "PYTHONPATH": path, "CONTAINERTRACKER_STATE_DIR": str(tmp_path)}
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=60)


@pytest.mark.parametrize(
    ("module", "args", "says"),
    [
        ("starlette", ["serve"], "pip install 'containertracker[server]'"),
        ("httpx", ["list", "--backend", "remote"], "'httpx', a dependency of containertracker"),
        ("docker", ["list"], "the docker backend needs the docker SDK (pip install docker)"),
        ("typer", ["--help"], "pip install typer (or reinstall containertracker)"),
    ],
)
def test_a_missing_package_is_one_line_saying_what_to_install(
    module: str, args: list[str], says: str, tmp_path: Path
) -> None:
    done = _run_without(module, args, tmp_path)
    assert (done.returncode, done.stdout) == (MISSING_PART, ""), done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith("error: ") and says in line


def test_the_server_stack_is_not_needed_to_use_an_engine(tmp_path: Path) -> None:
    """Without the server extra every other command still runs (here: to the point of
    connecting to a Docker engine that is not there)."""
    args = ["--engine-url", "unix:///nonexistent.sock", "list"]
    done = _run_without("starlette", args, tmp_path)
    assert done.returncode == 5 and "error:" in done.stderr and "Traceback" not in done.stderr


def test_only_missing_third_party_packages_are_reported() -> None:
    """A module of our own that cannot be imported is a bug: it keeps its traceback."""
    ours = ModuleNotFoundError("No module named 'containertracker.nope'")
    ours.name = "containertracker.nope"
    assert missing_part(ours) is None
    assert missing_part(ImportError("cannot import name 'x' from 'y'")) is None
    theirs = ModuleNotFoundError("No module named 'uvicorn.protocols'")
    theirs.name = "uvicorn.protocols"
    assert missing_part(theirs) == (
        "this needs uvicorn, part of the optional 'server' extra, which is not installed: "
        "pip install 'containertracker[server]'"
    )
    theirs.name = "yaml"
    assert "this needs PyYAML, part of the optional 'server' extra" in str(missing_part(theirs))
