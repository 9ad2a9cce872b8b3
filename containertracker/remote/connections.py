"""Connection hygiene uvicorn lacks: deadlines for a request's headers and for the rest of a
body the app answered without reading.

uvicorn (0.54, h11) closes a kept-alive connection idle for ``timeout_keep_alive`` seconds, but
only between requests, and only until the first byte of the next one arrives; a connection
that never sends anything, or sends its headers a byte at a time, is held forever, before any
authentication. :class:`HeaderDeadlineProtocol` closes a connection whose request headers are
not complete ``header_timeout`` seconds after it opened, or after the first byte of a later
request on a kept-alive connection (between requests, uvicorn's keep-alive timeout applies).

A request answered before its body arrived (every refusal: 401, 403, 413, 415, 400, 404, 503
reads no body) leaves uvicorn discarding the rest of the body, and every byte of it cancels
uvicorn's keep-alive timer; one byte now and then would hold the connection forever. So the
rest of such a body must arrive within ``header_timeout`` of the answer, however it trickles
in, or the connection is closed. (Not at once: closing with unread data makes the kernel
reset the connection, which can destroy the answer before the client reads it.)

Bodies an endpoint reads have their own deadline in the app; connection counts are bounded by
uvicorn's ``limit_concurrency``; a TLS handshake by asyncio's handshake timeout (60 s).
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
    """h11 with a deadline for each request's headers, and for the rest of a body answered
    before it arrived (see the module docstring)."""

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self._header_timeout: float = getattr(config, "header_timeout", 10.0)
        self._header_deadline: asyncio.TimerHandle | None = None
        self._drain_deadline: asyncio.TimerHandle | None = None
        """Set while discarding the body of an answered request; body data never cancels
        it, only the end of that request (or of the connection) does."""
        self._draining: object = None
        """The request/response cycle whose body is being discarded."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_deadline()
        self._cancel_drain_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._drain_deadline is not None and (
            self.conn.their_state is not h11.SEND_BODY or self.cycle is not self._draining
        ):
            # That body is complete (and maybe the next request began).
            self._cancel_drain_deadline()
        if self.conn.their_state is not h11.IDLE:
            self._cancel_header_deadline()  # the headers are in (or the connection is ending)
        elif self._header_deadline is None and not self.transport.is_closing():
            self._start_header_deadline()  # a kept-alive connection began its next request

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.conn.their_state is h11.SEND_BODY and not self.transport.is_closing():
            # Answered before the body was in: uvicorn discards the rest as it comes, and
            # each byte cancels its keep-alive timer. This deadline only the end of the
            # body cancels.
            self._cancel_drain_deadline()
            self._draining = self.cycle
            late = self._on_drain_deadline
            self._drain_deadline = self.loop.call_later(self._header_timeout, late)

    def _start_header_deadline(self) -> None:
        self._cancel_header_deadline()
        self._header_deadline = self.loop.call_later(self._header_timeout, self._on_header_deadline)

    def _cancel_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _on_header_deadline(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self.transport.close()

    def _cancel_drain_deadline(self) -> None:
        if self._drain_deadline is not None:
            self._drain_deadline.cancel()
            self._drain_deadline = None

    def _on_drain_deadline(self) -> None:
        self._drain_deadline = None
        if not self.transport.is_closing():
            self.transport.close()
