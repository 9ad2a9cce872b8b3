"""A job's plan: what must happen around its container besides running it (pure).

Stored in the container's ``containertracker.plan`` label, so that any tracker of the
session, in any process, can carry it out; and the one description of which template fields
name host paths (:class:`HostPaths`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from containertracker.core.labels import PLAN

__all__ = ["HostPaths", "Plan"]

_STAGE_IN_FIELD = "stage_in_files[{}]"
_STAGE_OUT_FIELD = "stage_out_files[{}]"
"""How a stage-in/out host path is named in messages: its field and key in the template."""


@dataclass(frozen=True)
class HostPaths:
    """The host paths of a job, each under the JobTemplate field that names it: the one
    description of which fields name host paths, whether as a template gives them or as
    resolved for a task (see ``convert.template_host_paths`` and :attr:`Plan.host_paths`).

    None (or a missing key) is a path not set. ``error_path`` is None when stderr is joined
    into the output file (``join_files``): the error path is then never used.
    """

    input_path: str | None = None
    output_path: str | None = None
    error_path: str | None = None
    stage_in: Mapping[str, str] = field(default_factory=dict)
    """Key of ``stage_in_files`` (as the template gives the host path) -> its host path."""
    stage_out: Mapping[str, str] = field(default_factory=dict)
    """Key of ``stage_out_files`` (the container path) -> its host path."""

    def named(self) -> list[tuple[str, str]]:
        """Every path set, with the field that names it (``input_path``, ``output_path``,
        ``error_path``, ``stage_in_files[key]``, ``stage_out_files[key]``), in that order."""
        paths = [
            ("input_path", self.input_path),
            ("output_path", self.output_path),
            ("error_path", self.error_path),
        ]
        paths += [(_STAGE_IN_FIELD.format(key), path) for key, path in self.stage_in.items()]
        paths += [(_STAGE_OUT_FIELD.format(key), path) for key, path in self.stage_out.items()]
        return [(what, path) for what, path in paths if path]

    def replaced(self, replace: Callable[[str, str], str]) -> HostPaths:
        """These paths, each replaced by ``replace(path, what)`` (``what``: its field, as
        :meth:`named` gives it): called once for every stage-in and stage-out entry and for
        each of the input, output and error paths that is set."""

        def one(path: str | None, what: str) -> str | None:
            return replace(path, what) if path else None

        return HostPaths(
            input_path=one(self.input_path, "input_path"),
            output_path=one(self.output_path, "output_path"),
            error_path=one(self.error_path, "error_path"),
            stage_in={k: replace(p, _STAGE_IN_FIELD.format(k)) for k, p in self.stage_in.items()},
            stage_out={
                k: replace(p, _STAGE_OUT_FIELD.format(k)) for k, p in self.stage_out.items()
            },
        )


@dataclass(frozen=True)
class Plan:
    """What must happen around a job's container besides running it.

    Stored as JSON in the ``containertracker.plan`` label so that any tracker of the session,
    in any process, can carry it out. Times are epoch seconds; paths are host paths.
    """

    hold: bool = False
    start_at: float | None = None
    deadline: float | None = None
    wallclock_limit: float | None = None
    stdin_path: str | None = None
    stdout_path: str | None = None
    stderr_path: str | None = None
    join_files: bool = False
    stage_out: dict[str, str] = field(default_factory=dict)
    """Container path -> host path, copied after the job ends."""
    stage_in: list[str] = field(default_factory=list)
    """Host paths bind-mounted read-only (checked again right before the job starts)."""
    restart_policy: str | None = None
    """The engine's restart policy of the container (the ``restart`` extension): when it
    may restart the job after an exit, that exit is not the job's end."""
    created_started: bool = False
    """The submission created the container already started (``Engine.create`` with
    ``start``), as it does for a plain job nothing could hold back
    (:attr:`may_start_at_creation`): no scheduler ever starts it, and it cannot be held, not
    even while the engine is still starting it."""

    def may_restart_after(self, exit_code: int | None) -> bool:
        """Whether the engine may run the job again after an exit with ``exit_code`` (None:
        not known), by its restart policy (its restarts so far are not counted here: only
        the engine's word on the container tells whether one is still to come)."""
        name = (self.restart_policy or "no").partition(":")[0]
        if name == "no":
            return False
        return name != "on-failure" or exit_code != 0

    @property
    def may_start_at_creation(self) -> bool:
        """Whether the job may be created already started, its start being nothing but a
        formality: nothing in the plan defers it (``submit_as_hold``, a start time), and
        nothing must happen between the container's creation and its start (an input file
        opened for it, output files created: they are made once the container exists, so
        that a template the engine refuses touches no file, and before the job runs, so
        that its end does not race their creation). Whether it is throttled (a task of an
        array with ``max_parallel``) is not in the plan: the caller knows.
        """
        return not (
            self.hold
            or self.start_at is not None
            or self.stdin_path
            or self.stdout_path
            or self.stderr_path
        )

    @property
    def host_paths(self) -> list[tuple[str, str]]:
        """Every host path of the plan, with the template field that named it (see
        :meth:`HostPaths.named`; a stage-in source is named by its resolved path, which is
        all the plan keeps of it)."""
        return HostPaths(
            input_path=self.stdin_path,
            output_path=self.stdout_path,
            error_path=self.stderr_path,
            stage_in={path: path for path in self.stage_in},
            stage_out=self.stage_out,
        ).named()

    @property
    def needs_finalizing(self) -> bool:
        """Whether output files or stage-out copies must be written after the job ends."""
        return bool(self.stdout_path or self.stderr_path or self.stage_out)

    def to_label(self) -> str:
        """Compact JSON without the defaults."""
        defaults = Plan()
        data = {k: v for k, v in asdict(self).items() if v != getattr(defaults, k)}
        return json.dumps(data, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_labels(cls, labels: Mapping[str, str]) -> Plan:
        """The plan of a container; containers made by other tools, and a label that is not
        a plan (edited by hand, say), give the empty plan: one bad container must not stop
        the scheduling of its session."""
        raw = labels.get(PLAN)
        return _plan_of_label(raw) if raw else cls()


@functools.lru_cache(maxsize=1024)
def _plan_of_label(raw: str) -> Plan:
    """The plan a label's text says (see :meth:`Plan.from_labels`). Cached: a scheduling pass
    reads the plan of every queued or ended job of the session, and the tasks of an array
    mostly carry the same text (plans are frozen, and nobody changes their fields)."""
    try:
        data: dict[str, Any] = json.loads(raw)
        return Plan(**{k: v for k, v in data.items() if k in Plan.__dataclass_fields__})
    except (ValueError, TypeError, AttributeError):
        return Plan()
