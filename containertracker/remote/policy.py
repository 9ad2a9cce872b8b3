"""The server's admission policy: what remote clients may ask the server's host to do.

A remote client runs containers on someone else's machine, so by default the server refuses
anything that reaches past the container: privileged mode, the host's (or another
container's) namespaces, other networks, ports published on the host, restarting forever,
and host paths (stdin/stdout/stderr files and stage-in/out files are read and written by the
server on its own file system). An operator lifts each refusal explicitly. Resources are
bounded: a template without a pids or memory limit gets the server's default, and one asking
for more than the server's maximum (pids, memory, shm, ulimits) is refused. The checks look
only at the template (and, for ulimits, the server's own limits), and read its limits as the
tracker will use them: through the core's own parsers (``resource_limits``,
``template_ulimits``), so no spelling of a limit can mean one thing here and another there.
Host paths below allowed directories are checked by the server's trackers (their
``host_path_roots``), per task, on the resolved paths they then use; here they are only
refused outright when none are allowed.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from containertracker.core import extensions
from containertracker.core.convert import (
    parse_pids_limit,
    resource_limits,
    template_host_paths,
    template_ulimits,
)
from containertracker.core.extensions import parse_bool
from containertracker.errors import DeniedByDrmsError
from containertracker.models import JobTemplate

__all__ = ["Policy"]

_NAMESPACE_KEYS = ("net", "ipc", "uts", "pid")
_DEFAULT_NETWORKS = ("", "bridge", "default", "none")
_MEMORY = "VIRTUAL_MEMORY"
_PIDS = "pids-limit"


@dataclass(frozen=True)
class Policy:
    """Which risky template features the server accepts; the defaults accept none.

    Attributes:
        allow_privileged: the ``privileged`` extension may be true.
        allow_host_namespaces: ``net``/``ipc``/``uts``/``pid`` may be ``host`` or
            ``container:<id>``.
        allowed_host_paths: directories under which host paths may lie (after resolving
            ``..`` and symlinks); empty means no host path is accepted. Only the empty case
            is checked here; the server's trackers check each resolved path against these
            (their ``host_path_roots``).
    """

    allow_privileged: bool = False
    allow_host_namespaces: bool = False
    allowed_host_paths: Sequence[Path] = field(default_factory=tuple)
    allow_host_ports: bool = False
    allow_networks: bool = False
    default_pids_limit: int | None = 1024
    max_pids_limit: int | None = 8192
    default_memory: int | None = 2 << 30
    max_memory: int | None = 16 << 30
    max_shm_size: int | None = 1 << 30
    max_restarts: int = 10

    def check(self, jt: JobTemplate) -> JobTemplate:
        """Refuse ``jt`` if it uses a feature this policy does not allow; else return the
        template to run: ``jt`` with the default pids and memory limits filled in.

        Raises:
            DeniedByDrmsError: the message names the field and the server option that
                would allow it (or the server's maximum).
            InvalidArgumentError: a malformed value the policy must read, or a limit set
                twice (as the tracker would raise it).
            UnsupportedAttributeError: an unknown resource limit (as the tracker would).
        """
        self._check_access(jt)
        self._check_resources(jt)
        return self._with_defaults(jt)

    def _check_access(self, jt: JobTemplate) -> None:
        privileged = jt.extension.get("privileged")
        if not self.allow_privileged and privileged is not None:
            try:
                wanted = parse_bool("privileged", privileged)
            except ValueError:
                wanted = True  # the tracker would reject it anyway; refuse here first
            if wanted:
                raise DeniedByDrmsError(
                    "this server does not run privileged containers (extension privileged); "
                    "the operator can allow them with --allow-privileged"
                )
        if not self.allow_host_namespaces:
            for key in _NAMESPACE_KEYS:
                value = jt.extension.get(key, "")
                if value == "host" or value.startswith("container:"):
                    raise DeniedByDrmsError(
                        f"this server does not let jobs join another namespace (extension "
                        f"{key}={value!r}); the operator can allow it with "
                        "--allow-host-namespaces"
                    )
        net = jt.extension.get("net", "")
        if not self.allow_networks and not (
            net in _DEFAULT_NETWORKS or net == "host" or net.startswith("container:")
        ):
            raise DeniedByDrmsError(
                f"this server does not let jobs join other networks (extension net={net!r}; "
                f"allowed: {', '.join(repr(n) for n in _DEFAULT_NETWORKS[1:])}); the operator "
                "can allow it with --allow-networks"
            )
        if not self.allow_host_ports and jt.extension.get("exposedPorts", "").strip():
            raise DeniedByDrmsError(
                "this server does not publish job ports on its host (extension exposedPorts); "
                "the operator can allow it with --allow-host-ports"
            )
        restart = jt.extension.get("restart", "").strip()
        if restart:
            self._check_restart(extensions.parse_restart(restart))
        for what, path in _named_host_paths(jt):
            self._check_host_path(what, path)

    def _check_restart(self, restart: str) -> None:
        name, _, count = restart.partition(":")
        if name in ("no", ""):
            return
        if name == "on-failure" and count and 0 < int(count) <= self.max_restarts:
            return
        raise DeniedByDrmsError(
            f"this server does not restart jobs forever (extension restart={restart!r}); use "
            f"on-failure:N with N from 1 to {self.max_restarts}"
        )

    def _check_resources(self, jt: JobTemplate) -> None:
        pids = jt.extension.get(_PIDS)
        if pids is not None:
            _at_most(f"extension {_PIDS}", parse_pids_limit(pids), self.max_pids_limit, "")
        memory = resource_limits(jt.resource_limits).memory
        if memory is not None:
            _at_most(f"resource limit {_MEMORY}", memory, self.max_memory, " bytes")
        shm = jt.extension.get("shm-size")
        if shm is not None:
            _at_most(
                "extension shm-size", extensions.parse_size("shm-size", shm), self.max_shm_size, ""
            )
        # Every ulimit the container would get, whichever field asks for it.
        for what, limit in template_ulimits(jt):
            ceiling = _host_hard_limit(limit.name)
            for value in (limit.soft, limit.hard):
                if value == -1:
                    raise DeniedByDrmsError(
                        f"{what} (ulimit {limit.name}) = unlimited is not allowed on this "
                        "server; give a number"
                    )
                if ceiling is not None and value > ceiling:
                    raise DeniedByDrmsError(
                        f"{what} (ulimit {limit.name}) = {value} is beyond this server's own "
                        f"hard limit ({ceiling}); a job may not raise a limit the server "
                        "does not have"
                    )

    def _with_defaults(self, jt: JobTemplate) -> JobTemplate:
        extension, limits = dict(jt.extension), dict(jt.resource_limits)
        if self.default_pids_limit is not None and _PIDS not in extension:
            extension[_PIDS] = str(self.default_pids_limit)
        # The limits are checked: no other spelling of VIRTUAL_MEMORY is among them.
        if self.default_memory is not None and resource_limits(limits).memory is None:
            limits[_MEMORY] = str(self.default_memory)
        if extension == jt.extension and limits == jt.resource_limits:
            return jt
        return jt.model_copy(update={"extension": extension, "resource_limits": limits})

    def _check_host_path(self, what: str, path: str) -> None:
        """Refuse any host path at once when the server allows none (no file system access).

        Otherwise the server's trackers check each path themselves (``host_path_roots``):
        resolved once per task, with every placeholder substituted, and then used without
        following symlinks. A check here could only look at another path than the one used.
        """
        if not self.allowed_host_paths and path != os.devnull:
            raise DeniedByDrmsError(
                f"{what} names a path on the server's host ({path!r}), which this server does "
                "not allow; the operator can allow a directory with --allow-host-path DIR"
            )


def _named_host_paths(jt: JobTemplate) -> list[tuple[str, str]]:
    """Every host path ``jt`` names, with the field naming it: the error path too when
    stderr is joined into the output file (``join_files``).

    Why the joined error path too: a server serves any registered tracker, so its policy
    judges what a template asks for, not what the core's tracker happens to use of it.
    """
    return template_host_paths(jt.model_copy(update={"join_files": False})).named()


def _at_most(what: str, value: int, maximum: int | None, unit: str) -> None:
    if maximum is not None and value > maximum:
        raise DeniedByDrmsError(
            f"{what} {value}{unit} is beyond this server's maximum of {maximum}{unit}"
        )


def _host_hard_limit(name: str) -> int | None:
    """This process's hard limit for Docker's ulimit ``name``; None: unlimited or unknown."""
    which = getattr(resource, f"RLIMIT_{name.upper()}", None)
    if which is None:
        return None
    hard = resource.getrlimit(which)[1]
    return None if hard == resource.RLIM_INFINITY else hard
