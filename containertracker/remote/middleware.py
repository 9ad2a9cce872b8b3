"""ASGI middleware of the server: cross-site refusal, request body limit, bearer-token or
basic authentication, headers for the paths of a web page. (The Host check is Starlette's
TrustedHostMiddleware.)"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Collection, Mapping, Sequence

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from containertracker.remote.tokens import Grant, find_grant

__all__ = [
    "GRANT_KEY",
    "BearerOrBasicAuth",
    "BodyLimit",
    "BodyTooLarge",
    "CrossSiteGuard",
    "PathHeaders",
]

GRANT_KEY = "containertracker.grant"
"""Scope key of the :class:`Grant` a request authenticated with; absent: every session."""

_CROSS_SITE = ("cross-site", "same-site")
"""``Sec-Fetch-Site`` values of requests a page of another site (or subdomain) sent."""


class CrossSiteGuard:
    """Refuse what a web page the operator happens to open could send (CSRF): a request
    with a foreign ``Origin``, one a browser marks ``Sec-Fetch-Site: cross-site``/``same-site``
    (an ``<img>`` GET carries no Origin but does carry this), and a body that is not JSON
    (``text/plain`` and form posts need no CORS preflight; ``application/json`` does).

    ``allowed_origins`` (``scheme://host[:port]``) lift the first two for those pages. A
    same-origin request (Origin equal to the request's own scheme and Host) is not foreign.
    Non-browser clients (the Go and Python clients, curl) send none of these headers.
    """

    def __init__(self, app: ASGIApp, allowed_origins: Sequence[str] = ()) -> None:
        self.app = app
        self._origins = {origin.rstrip("/").lower() for origin in allowed_origins}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            status, text = refusal
            await PlainTextResponse(text, status_code=status)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope, headers: Headers) -> tuple[int, str] | None:
        origin = headers.get("origin")
        allowed = origin is not None and origin.rstrip("/").lower() in self._origins
        if origin is not None and not allowed:
            own = f"{scope.get('scheme', 'http')}://{headers.get('host', '')}".lower()
            if origin.rstrip("/").lower() != own:
                return 403, (
                    f"cross-site request refused (Origin {origin}); the operator can allow "
                    "a web origin with --allowed-origin"
                )
        site = headers.get("sec-fetch-site", "").lower()
        if site in _CROSS_SITE and not allowed:
            return 403, (
                f"cross-site request refused (Sec-Fetch-Site: {site}); the operator can allow "
                "a web origin with --allowed-origin"
            )
        has_body = headers.get("content-length", "0") != "0" or "transfer-encoding" in headers
        if has_body and not _is_json(headers.get("content-type", "")):
            return 415, "request bodies must be JSON (Content-Type: application/json)"
        return None


def _is_json(content_type: str) -> bool:
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


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

    A request that authenticates with a token gets its :class:`Grant` in ``scope[GRANT_KEY]``
    (the app refuses sessions the grant does not cover); basic auth covers every session.
    ``/openapi.json`` stays public: it describes the API and holds no data; so do the
    ``public_paths`` (exact paths: a web page's own files, which ask for the credentials).
    """

    def __init__(
        self,
        app: ASGIApp,
        grants: Sequence[Grant],
        user: str | None,
        password: str | None,
        public_paths: Collection[str] = (),
    ) -> None:
        self.app = app
        self._grants = tuple(grants)
        self._basic = f"{user}:{password or ''}".encode() if user else None
        self._public = frozenset(public_paths)

    def _authenticate(self, authorization: bytes) -> Grant | bool:
        """The token's grant, True for valid basic credentials, False if refused."""
        scheme, _, value = authorization.partition(b" ")
        scheme = scheme.lower()
        if scheme == b"bearer" and self._grants:
            return find_grant(self._grants, value.strip()) or False
        if scheme == b"basic" and self._basic is not None:
            try:
                decoded = base64.b64decode(value.strip(), validate=True)
            except (binascii.Error, ValueError):
                return False
            return hmac.compare_digest(decoded, self._basic)
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] != "http" or path.endswith("/openapi.json") or path in self._public:
            await self.app(scope, receive, send)
            return
        grant = self._authenticate(dict(scope["headers"]).get(b"authorization", b""))
        if isinstance(grant, Grant):
            scope[GRANT_KEY] = grant
        if grant is not False:
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


class PathHeaders:
    """Add ``headers`` to every answer for ``prefix`` or a path below it (``prefix/...``),
    whoever answers: the endpoint, or a refusal of the middleware inside this one."""

    def __init__(self, app: ASGIApp, prefix: str, headers: Mapping[str, str]) -> None:
        self.app = app
        self._prefix = prefix
        self._headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] != "http" or not (
            path == self._prefix or path.startswith(self._prefix + "/")
        ):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                ours = {name for name, _ in self._headers}
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in ours]
                message = {**message, "headers": kept + self._headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
