"""The async stream of a session's state changes (:meth:`JobSession.events`)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import weakref
from collections import deque
from types import TracebackType
from typing import Final, Self

from containertracker.errors import InvalidStateError
from containertracker.sessions._delivery import JobEvent
from containertracker.sessions._dispatch import Dispatcher

__all__ = ["DEFAULT_LIMIT", "EventStream"]

DEFAULT_LIMIT: Final = 10_000
"""Events a stream buffers for a consumer that falls behind, by default."""


class EventStream:
    """An async iterator (and async context manager) of :class:`JobEvent`; see
    :meth:`JobSession.events`.

    Subscribed at creation, fed through ``loop.call_soon_threadsafe``. The subscription
    holds the stream weakly: a stream nobody references any more (a consumer that broke out
    of its ``async for``) is unsubscribed when it is collected, at once in CPython;
    ``aclose()`` or leaving ``async with`` unsubscribes explicitly.
    """

    def __init__(self, dispatcher: Dispatcher, limit: int = DEFAULT_LIMIT) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise InvalidStateError(
                "events() hands events to a running asyncio loop: call it from a coroutine"
            ) from None
        self._loop = loop
        self._limit = limit
        self._buffer: deque[JobEvent] = deque()
        self._overflowed = False
        self._ended = False
        self._ready = asyncio.Event()
        ref = weakref.ref(self)

        def push(event: JobEvent | None) -> None:  # on the session's delivery thread
            stream = ref()
            if stream is None:
                return  # collected; the finalizer unsubscribes
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody listens
                loop.call_soon_threadsafe(stream._receive, event)

        # Holds the dispatcher, never the stream: the stream can be collected.
        self._unsubscribe = weakref.finalize(self, dispatcher.subscribe(push))
        self._dispatcher = dispatcher
        self._push = push

    def end(self) -> None:
        """End the stream (from any thread) after the events queued for it: the consumer
        reads them, then the iteration stops."""
        self._unsubscribe()
        self._dispatcher.after_queued(functools.partial(self._push, None))

    def _receive(self, event: JobEvent | None) -> None:
        """On the loop: buffer ``event`` (None: the end); past the limit, count it lost and
        stop receiving."""
        if self._ended or self._overflowed:
            return
        if event is None:
            self._ended = True
        elif len(self._buffer) >= self._limit:
            self._overflowed = True
            self._unsubscribe()
        else:
            self._buffer.append(event)
        self._ready.set()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> JobEvent:
        while not self._buffer:
            if self._overflowed:
                raise InvalidStateError(
                    f"the event stream fell more than {self._limit} events behind and was "
                    "ended; open a new one and read the jobs' states (get_jobs) to catch up"
                )
            if self._ended:
                raise StopAsyncIteration
            self._ready.clear()
            await self._ready.wait()
        return self._buffer.popleft()

    async def aclose(self) -> None:
        """Stop receiving events; the iteration stops."""
        self._ended = True
        self._buffer.clear()
        self._unsubscribe()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
