"""Bearer tokens and the sessions each may use (the server's token file), and the credentials
a server's settings accept. Pure: no I/O but reading the token file.

A session on the server is a namespace of jobs, not a security boundary by itself: whoever may
use a session sees and controls all of its jobs. Tokens bound to sessions make it one: a request
with such a token is refused for any other session, and for the monitoring endpoints (which
look across sessions).
"""

from __future__ import annotations

import fnmatch
import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from containertracker.errors import InvalidArgumentError
from containertracker.settings import MIN_TOKEN_LENGTH, ServerSettings

__all__ = [
    "ALL_SESSIONS",
    "Credentials",
    "Grant",
    "check_token",
    "find_grant",
    "load_token_file",
    "parse_tokens",
]

ALL_SESSIONS = "*"


@dataclass(frozen=True)
class Grant:
    """A token and the session patterns it may use (shell-style; ``*`` is every session)."""

    token: str
    sessions: tuple[str, ...] = (ALL_SESSIONS,)

    @property
    def every_session(self) -> bool:
        """True if the token may use any session (and so the cross-session endpoints)."""
        return ALL_SESSIONS in self.sessions

    def allows(self, session: str) -> bool:
        """True if the token may use ``session``."""
        return any(fnmatch.fnmatchcase(session, pattern) for pattern in self.sessions)


def check_token(token: str, where: str) -> None:
    """Refuse a token too short to resist guessing.

    Raises:
        InvalidArgumentError: shorter than MIN_TOKEN_LENGTH or containing whitespace.
    """
    if len(token) < MIN_TOKEN_LENGTH or any(c.isspace() for c in token):
        raise InvalidArgumentError(
            f"{where}: a token must have at least {MIN_TOKEN_LENGTH} characters and no spaces "
            "(e.g. from: python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )


def parse_tokens(text: str, where: str) -> list[Grant]:
    """The grants of a token file's ``text``: one ``TOKEN [SESSION ...]`` per line.

    Raises:
        InvalidArgumentError: a short token, a token listed twice, or no token at all.
    """
    grants: dict[str, Grant] = {}
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        token, sessions = words[0], tuple(words[1:]) or (ALL_SESSIONS,)
        check_token(token, f"{where}, line {number}")
        if token in grants:
            raise InvalidArgumentError(f"{where}, line {number}: this token is listed twice")
        grants[token] = Grant(token, sessions)
    if not grants:
        raise InvalidArgumentError(f"{where} holds no token")
    return list(grants.values())


def load_token_file(path: Path) -> list[Grant]:
    """:func:`parse_tokens` of the file at ``path``.

    Raises:
        InvalidArgumentError: the file cannot be read, or its content is invalid.
    """
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidArgumentError(f"cannot read the token file {path}: {exc}") from None
    return parse_tokens(text, f"token file {path}")


def find_grant(grants: Sequence[Grant], presented: bytes) -> Grant | None:
    """The grant whose token equals ``presented`` (each compared in constant time)."""
    found = None
    for grant in grants:
        if hmac.compare_digest(presented, grant.token.encode()):
            found = grant
    return found


@dataclass(frozen=True)
class Credentials:
    """The credentials ``settings`` accept: the server token and the token file's grants
    (read when this is built), and basic auth.

    Built from the settings alone, and carrying them: an exposure check and an app that
    share one Credentials read the token file once, and neither can be handed fewer tokens
    than its settings name (each refuses Credentials of other settings).

    Raises:
        InvalidArgumentError: a short server token, or an unreadable or invalid token file.
    """

    settings: ServerSettings
    grants: tuple[Grant, ...] = field(init=False, repr=False)
    """The bearer tokens accepted: ``settings.token`` (every session), then the file's."""

    def __post_init__(self) -> None:
        # Derived from the settings, never given: set once on the frozen instance.
        object.__setattr__(self, "grants", tuple(_read_grants(self.settings)))

    @property
    def required(self) -> bool:
        """Whether every request must present a token or the basic-auth user."""
        return bool(self.grants or self.settings.user)

    @property
    def password(self) -> str | None:
        """The basic-auth password, if the settings have one."""
        password = self.settings.password
        return password.get_secret_value() if password is not None else None

    @classmethod
    def of(cls, settings: ServerSettings, *, read: Credentials | None = None) -> Credentials:
        """The credentials of ``settings``: ``read`` (when the caller has read them
        already), else read now.

        Raises:
            InvalidArgumentError: ``read`` was read from other settings; a short server
                token, or an unreadable or invalid token file.
        """
        if read is None:
            return cls(settings)
        if read.settings != settings:
            raise InvalidArgumentError(
                "these credentials were read from other server settings than the ones "
                "given; read them from the server's own (Credentials(settings))"
            )
        return read


def _read_grants(settings: ServerSettings) -> list[Grant]:
    """``settings.token`` (every session) and the grants of ``settings.token_file``.

    Raises:
        InvalidArgumentError: a short token, or an unreadable or invalid token file.
    """
    grants = []
    if settings.token is not None:
        token = settings.token.get_secret_value()
        check_token(token, "the server token")
        grants.append(Grant(token))
    if settings.token_file is not None:
        grants += load_token_file(settings.token_file)
    return grants
