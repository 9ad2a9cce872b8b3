"""The job session names a host knows, kept in the state directory across processes.

One small JSON file per session under ``<state_dir>/job-sessions/``: its name, the scope it
belongs to (the backend and the engine or server it talks to) and its contact. A file is
made whole under a temporary name and then hard-linked into place, which fails if the name
exists: two processes creating the same session cannot both succeed, and a reader never sees
half a file. No file locks (so the remote backend works where ``fcntl`` does not exist).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from loguru import logger

from containertracker.errors import InvalidArgumentError

__all__ = ["SessionEntry", "SessionNames", "check_session_name"]

_NAME: Final = re.compile(r"[!-~](?:[ -~]{0,198}[!-~])?")
"""Printable ASCII, 1 to 200 characters, no space at either end: a label value, an HTTP
header value and a file's content alike."""


def check_session_name(name: str) -> str:
    """``name`` if it may name a job session.

    Raises:
        InvalidArgumentError: empty, longer than 200 characters, or not printable ASCII
            without a space at either end.
    """
    if not _NAME.fullmatch(name):
        raise InvalidArgumentError(
            f"job session name {name!r} must be 1 to 200 printable ASCII characters "
            "without a space at either end"
        )
    return name


def _valid(name: object) -> bool:
    return isinstance(name, str) and _NAME.fullmatch(name) is not None


@dataclass(frozen=True)
class SessionEntry:
    """What is kept of a session: its name, and the contact it was created with ("" for the
    manager's own engine or server)."""

    name: str
    contact: str


class SessionNames:
    """The sessions of one scope (a backend and its engine or server) under ``state_dir``."""

    def __init__(self, state_dir: Path, scope: str) -> None:
        self._dir = state_dir / "job-sessions"
        self._scope = scope

    def get(self, name: str) -> SessionEntry | None:
        """The session ``name`` of this scope, if known."""
        data = self._read(self._path(name))
        if data is None or data.get("scope") != self._scope or data.get("name") != name:
            return None
        return SessionEntry(name, str(data.get("contact", "")))

    def add(self, name: str, contact: str) -> bool:
        """Record session ``name``; False if it is known already (nothing changed)."""
        self._dir.mkdir(parents=True, exist_ok=True)
        path = self._path(name)
        record = {
            "name": name,
            "scope": self._scope,
            "contact": contact,
            "created": datetime.now(UTC).isoformat(),
        }
        temporary = self._dir / f".{path.name}.{uuid.uuid4().hex}.tmp"
        temporary.write_text(json.dumps(record))
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
        finally:
            temporary.unlink()
        return True

    def remove(self, name: str) -> None:
        """Forget session ``name`` (nothing if unknown)."""
        with contextlib.suppress(FileNotFoundError):
            self._path(name).unlink()

    def names(self) -> list[str]:
        """Every session name of this scope, sorted."""
        if not self._dir.is_dir():
            return []
        found = []
        for path in self._dir.glob("*.json"):
            data = self._read(path)
            name = None if data is None else data.get("name")
            # A record without a valid name (damaged, hand-made) names no session.
            if data is not None and data.get("scope") == self._scope and _valid(name):
                found.append(str(name))
        return sorted(found)

    def _path(self, name: str) -> Path:
        digest = hashlib.sha256(f"{self._scope}\0{name}".encode()).hexdigest()[:40]
        return self._dir / f"{digest}.json"

    @staticmethod
    def _read(path: Path) -> dict[str, object] | None:
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            logger.warning("ignoring unreadable job session record {}: {}", path, exc)
            return None
        return data if isinstance(data, dict) else None
