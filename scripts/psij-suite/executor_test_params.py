"""``ExecutorTestParams``: what psij-python's executor tests are parametrized by.

Written for containertracker (scripts/test-psij copies it next to psij-python's tests, which
import it; the sdist does not ship psij's own). One instance per ``--executors`` entry.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ExecutorTestParams:
    """``executor`` (a psij executor name), ``url`` (passed to ``get_instance``) and
    ``launcher`` (the JobSpec launcher the tests ask for)."""

    executor: str
    url: str | None = None
    launcher: str = "single"

    def __str__(self) -> str:
        return self.executor if self.url is None else f"{self.executor}:{self.url}"
