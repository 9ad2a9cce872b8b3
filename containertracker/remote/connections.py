"""Connection hygiene uvicorn lacks: a deadline for a request's headers.

uvicorn (0.54, h11) closes a kept-alive connection idle for ``timeout_keep_alive`` seconds, but
only between requests, and only until the first byte of the next one arrives; a connection
that never sends anything, or sends its headers a byte at a time, is held forever, before any
authentication. :class:`HeaderDeadlineProtocol` closes a connection whose request headers are
not complete ``header_timeout`` seconds after it opened, or after the first byte of a later
request on a kept-alive connection (between requests, uvicorn's keep-alive timeout applies).
Bodies have their own deadline in the app; connection counts are bounded by uvicorn's
``limit_concurrency``; a TLS handshake by asyncio's handshake timeout (60 s).
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["HeaderDeadlineConfig", "HeaderDeadlineProtocol"]


class HeaderDeadlineConfig(uvicorn.Config):
    """uvicorn's Config plus ``header_timeout`` (seconds), served with the h11 protocol."""

    def __init__(self, app: Any, *, header_timeout: float, **kwargs: Any) -> None:
        kwargs["http"] = HeaderDeadlineProtocol
        super().__init__(app, **kwargs)
        self.header_timeout = header_timeout


class HeaderDeadlineProtocol(H11Protocol):
    """h11 with a deadline for each request's headers (see the module docstring)."""

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self._header_timeout: float = getattr(config, "header_timeout", 10.0)
        self._header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._disarm()  # the headers are in (or the connection is ending)
        elif self._header_deadline is None and not self.transport.is_closing():
            self._arm()  # a kept-alive connection began its next request

    def _arm(self) -> None:
        self._disarm()
        self._header_deadline = self.loop.call_later(self._header_timeout, self._expire)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _expire(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self.transport.close()
