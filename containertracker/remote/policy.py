"""The server's admission policy: what remote clients may ask the server's host to do.

A remote client runs containers on someone else's machine, so by default the server refuses
anything that reaches past the container: privileged mode, the host's (or another
container's) namespaces, and host paths (stdin/stdout/stderr files and stage-in/out files are
read and written by the server on its own file system). An operator lifts each refusal
explicitly. Pure: the checks look only at the template.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from containertracker.core.convert import HOME_DIR, INDEX, WORKING_DIR
from containertracker.core.extensions import parse_bool
from containertracker.errors import DeniedByDrmsError
from containertracker.models import JobTemplate

__all__ = ["Policy"]

_NAMESPACE_KEYS = ("net", "ipc", "uts", "pid")


@dataclass(frozen=True)
class Policy:
    """Which risky template features the server accepts; the defaults accept none.

    Attributes:
        allow_privileged: the ``privileged`` extension may be true.
        allow_host_namespaces: ``net``/``ipc``/``uts``/``pid`` may be ``host`` or
            ``container:<id>``.
        allowed_host_paths: directories under which host paths may lie (after resolving
            ``..`` and symlinks); empty means no host path is accepted.
    """

    allow_privileged: bool = False
    allow_host_namespaces: bool = False
    allowed_host_paths: Sequence[Path] = field(default_factory=tuple)

    def check(self, jt: JobTemplate) -> None:
        """Refuse ``jt`` if it uses a feature this policy does not allow.

        Raises:
            DeniedByDrmsError: the message names the field and the server option that
                would allow it.
        """
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
        for what, path in _host_paths(jt):
            self._check_host_path(what, path)

    def _check_host_path(self, what: str, path: str) -> None:
        roots = [Path(os.path.realpath(root)) for root in self.allowed_host_paths]
        if not roots and path != os.devnull:
            raise DeniedByDrmsError(
                f"{what} names a path on the server's host ({path!r}), which this server does "
                "not allow; the operator can allow a directory with --allow-host-path DIR"
            )
        if path == os.devnull:
            return
        # Resolved as the tracker will: placeholders, then relative to the server's cwd.
        # The index only ever becomes digits, so it cannot leave a directory.
        expanded = (
            path.replace(INDEX, "0")
            .replace(HOME_DIR, str(Path.home()))
            .replace(WORKING_DIR, os.getcwd())
        )
        resolved = Path(os.path.realpath(expanded))
        if not any(resolved.is_relative_to(root) for root in roots):
            raise DeniedByDrmsError(
                f"{what} {path!r} is outside the host directories this server allows "
                f"({', '.join(str(r) for r in roots)})"
            )


def _host_paths(jt: JobTemplate) -> list[tuple[str, str]]:
    paths = [
        ("input_path", jt.input_path),
        ("output_path", jt.output_path),
        ("error_path", jt.error_path),
    ]
    paths += [(f"stage_in_files[{host}]", host) for host in jt.stage_in_files]
    paths += [(f"stage_out_files[{c}]", host) for c, host in jt.stage_out_files.items()]
    return [(what, path) for what, path in paths if path]
