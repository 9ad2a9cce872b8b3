"""ASGI middleware of the server: request body limit, bearer-token or basic authentication."""

from __future__ import annotations

import base64
import binascii
import hmac

from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BearerOrBasicAuth", "BodyLimit", "BodyTooLarge"]


class BodyTooLarge(Exception):
    """A streamed request body went beyond the limit (the app answers HTTP 413)."""


class BodyLimit:
    """Answer 413 to requests whose body exceeds ``limit`` bytes (declared or streamed)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._too_large(scope, receive, send)
            return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise BodyTooLarge(_too_large_text(self.limit))
            return message

        await self.app(scope, counting_receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = PlainTextResponse(_too_large_text(self.limit), status_code=413)
        await response(scope, receive, send)


def _too_large_text(limit: int) -> str:
    return f"request body larger than the server's limit of {limit} bytes"


class BearerOrBasicAuth:
    """Require a bearer token or HTTP basic credentials (constant-time comparison).

    ``/openapi.json`` stays public: it describes the API and holds no data.
    """

    def __init__(
        self, app: ASGIApp, token: str | None, user: str | None, password: str | None
    ) -> None:
        self.app = app
        self._token = token.encode() if token else None
        self._basic = f"{user}:{password or ''}".encode() if user else None

    def _allowed(self, authorization: bytes) -> bool:
        scheme, _, value = authorization.partition(b" ")
        scheme = scheme.lower()
        if scheme == b"bearer" and self._token is not None:
            return hmac.compare_digest(value.strip(), self._token)
        if scheme == b"basic" and self._basic is not None:
            try:
                decoded = base64.b64decode(value.strip(), validate=True)
            except (binascii.Error, ValueError):
                return False
            return hmac.compare_digest(decoded, self._basic)
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or str(scope["path"]).endswith("/openapi.json"):
            await self.app(scope, receive, send)
            return
        if self._allowed(dict(scope["headers"]).get(b"authorization", b"")):
            await self.app(scope, receive, send)
            return
        challenge = 'Bearer realm="remotetracker"'
        if self._basic is not None:
            challenge = 'Basic realm="remotetracker"'
        response = PlainTextResponse(
            "Unauthorized: this server requires "
            + ("basic auth" if self._basic is not None else "a bearer token"),
            status_code=401,
            headers={"WWW-Authenticate": challenge},
        )
        await response(scope, receive, send)
