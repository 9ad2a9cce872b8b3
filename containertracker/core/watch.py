"""Follows the engine's event stream and wakes whoever waits for a container to change.

One background thread per tracker reads the session's container events. Each event bumps a
per-container generation and wakes waiters; a waiter re-checks the job only when its
container's generation moved (or after the resync interval, in case an event was lost while
the stream reconnected after an engine restart).

Generations are numbers drawn from one ever-growing sequence, so that a container's entry may
be dropped (its container removed, or many seen since) without a waiter ever mistaking a later
generation for one it saw: a long-running tracker remembers a bounded number of containers.

The same sequence answers "which containers changed after sequence N" (:meth:`changes`), from
a second bounded record kept in order of the containers' last events, so that an answer costs
only the containers it names. A cursor is the sequence with a random 64-bit tag above it, so
that a cursor of another watcher (another process, a tracker reopened) is told apart (but for
a chance of 2**-64) and answered as "incomplete", never as "nothing changed".
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping

from loguru import logger

from containertracker.core.engine import Engine, EngineEvent, EventStream
from containertracker.errors import ContainerTrackerError

__all__ = ["CURSOR_LIMIT", "EventWatcher", "FeedAnswer"]

_ANY = ""
_REMEMBERED = 4096
"""At most this many containers' generations are kept; beyond, those that changed least
recently and that nobody waits for are dropped (reading as :data:`_ANY`'s generation).
The change feed remembers as many containers, removed ones included."""
_TAG_SHIFT = 64
"""A cursor is ``tag << _TAG_SHIFT`` plus the sequence, with a random tag of 1 to 2**64 - 1:
cursors are below :data:`CURSOR_LIMIT`. The sequence never reaches the tag's bits (2**64
events), so a cursor names its watcher however many events it saw. Python ints hold cursors
exactly; over HTTP they travel as decimal strings (``remote.wire.cursor_from_wire``), never as
JSON numbers, which many clients read as doubles."""
CURSOR_LIMIT = 1 << (2 * _TAG_SHIFT)
"""Every cursor is below it (2**128): the HTTP server accepts no larger one."""

FeedAnswer = tuple[int, list[str], bool]
"""What :meth:`EventWatcher.changes` answers: the cursor, the containers changed after the
one asked about (least recently changed first), and whether that list is complete."""


class EventWatcher:
    """Runs the event-reading thread and lets threads wait for changes."""

    def __init__(
        self,
        engine: Engine,
        labels: Mapping[str, str],
        on_event: Callable[[EngineEvent], None] | None = None,
        on_reconnect: Callable[[], None] | None = None,
    ) -> None:
        """Open the stream of events of containers with ``labels``: each is passed to
        ``on_event`` (in the event thread), and ``on_reconnect`` is called whenever the stream
        is open again after it broke (events may have been missed meanwhile)."""
        self._engine = engine
        self._labels = dict(labels)
        self._on_event = on_event
        self._on_reconnect = on_reconnect
        self._cond = threading.Condition()
        self._generations: dict[str, int] = {}
        """Container id -> the sequence number of its last event, least recent first."""
        self._sequence = 0
        self._waiters: dict[str, int] = {}
        """How many threads are in :meth:`wait_for_change` per container (kept remembered)."""
        self._feed_waiters = 0
        """How many threads block in :meth:`changes`."""
        self._base = (secrets.randbelow((1 << _TAG_SHIFT) - 1) + 1) << _TAG_SHIFT
        """The cursor of sequence 0: this watcher's random tag."""
        self._recent: OrderedDict[str, int] = OrderedDict()
        """The feed's record: container id -> sequence of its last event, least recent first,
        at most :data:`_REMEMBERED` (removed containers too: their removal is a change)."""
        self._forgotten = 0
        """The latest sequence dropped from ``_recent``: a cursor before it may miss one."""
        self._gap = 0
        """The sequence of the stream's last (re)connection: events may be lost before it."""
        self._closed = threading.Event()
        self._stream: EventStream | None = None
        self._connected = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="containertracker-events", daemon=True
        )
        self._thread.start()
        # Events before the stream is open would be lost; callers rely on "subscribe first".
        self._connected.wait(timeout=10)

    def generation(self, container_id: str) -> int:
        """A number that changes whenever an event about the container arrives (and never
        comes back; it may also change without an event, now and then, when the container's
        entry is dropped: a waiter then merely looks once more).

        ``container_id`` must be the full id (events carry that, never a prefix or a name).
        """
        with self._cond:
            return max(self._generations.get(container_id, 0), self._generations.get(_ANY, 0))

    def wait_for_change(self, container_id: str, seen: int, timeout: float) -> None:
        """Block until ``generation(container_id) != seen`` or ``timeout`` seconds passed."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._waiters[container_id] = self._waiters.get(container_id, 0) + 1
            try:
                while self.generation(container_id) == seen and not self._closed.is_set():
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return
                    self._cond.wait(remaining)
            finally:
                self._waiters[container_id] -= 1
                if not self._waiters[container_id]:
                    del self._waiters[container_id]

    def remembered(self) -> int:
        """How many containers' generations are kept (bounded by :data:`_REMEMBERED`)."""
        with self._cond:
            return len(self._generations)

    def cursor(self) -> int:
        """The cursor of now: :meth:`changes` after it names only containers changed later."""
        with self._cond:
            return self._base + self._sequence

    def changes(self, since: int, timeout: float) -> FeedAnswer:
        """The containers with an event after cursor ``since``, waiting up to ``timeout``
        seconds (``inf``: no limit) for one if there is none yet.

        Returns at once when some container changed after ``since``, or when the list cannot
        be complete: ``since`` is not this watcher's (another watcher's, or from the future),
        the stream (re)connected after it (events may have been lost while it was down), or
        a container's entry changed after it was dropped from the bounded record. At the
        timeout, or when the watcher is closed, returns what there is (maybe nothing).
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                answer = self._changes_after(since)
                if answer[1] or not answer[2] or self._closed.is_set():
                    return answer
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return answer
                self._feed_waiters += 1
                try:
                    self._cond.wait(min(remaining, threading.TIMEOUT_MAX))
                finally:
                    self._feed_waiters -= 1

    def feed_waiters(self) -> int:
        """How many threads block in :meth:`changes` right now (waiting for a change)."""
        with self._cond:
            return self._feed_waiters

    def _changes_after(self, since: int) -> FeedAnswer:
        """:meth:`changes` without waiting. Hold ``_cond``."""
        cursor = self._base + self._sequence
        seen = since - self._base
        if not 0 <= seen <= self._sequence:
            return cursor, [], False
        changed: list[str] = []
        # Newest first, stopping at the first entry not after ``seen``: costs what it returns.
        for container_id, sequence in reversed(self._recent.items()):
            if sequence <= seen:
                break
            changed.append(container_id)
        changed.reverse()
        return cursor, changed, seen >= self._gap and seen >= self._forgotten

    def _bump(self, container_id: str, *, removed: bool = False, gap: bool = False) -> None:
        """Record an event about the container (``removed``: it is gone, and its entry is
        dropped unless a thread waits on it), or about any (:data:`_ANY`; ``gap``: events may
        have been lost before it), and wake the waiters."""
        with self._cond:
            self._sequence += 1
            # Re-inserted, so that the dict is ordered from the least recently changed.
            self._generations.pop(container_id, None)
            # A removed container nobody waits for is forgotten: it reads as _ANY's generation
            # from now on (a thread about to wait may then miss the removal, and look again
            # at its resync, as after a lost event).
            if not removed or container_id in self._waiters:
                self._generations[container_id] = self._sequence
            self._forget_beyond(_REMEMBERED)
            if container_id == _ANY:
                if gap:
                    self._gap = self._sequence
            else:
                self._recent[container_id] = self._sequence
                self._recent.move_to_end(container_id)
                if len(self._recent) > _REMEMBERED:
                    self._forgotten = self._recent.popitem(last=False)[1]
            self._cond.notify_all()

    def _forget_beyond(self, limit: int) -> None:
        """Drop the least recently changed entries nobody waits for until ``limit`` remain.
        Hold ``_cond``."""
        excess = len(self._generations) - limit
        if excess <= 0:
            return
        victims: list[str] = []
        for container_id in self._generations:  # least recently changed first
            if len(victims) == excess:
                break
            if container_id != _ANY and container_id not in self._waiters:
                victims.append(container_id)
        for container_id in victims:
            del self._generations[container_id]

    def _run(self) -> None:
        since = time.time()
        backoff = 0.1
        reconnecting = False
        first_attempt = True
        while not self._closed.is_set():
            try:
                self._stream = self._engine.events(self._labels, since)
                self._connected.set()
                if self._closed.is_set():
                    break
                # After a reconnect, something may have happened unseen: wake everybody. (A
                # first attempt that succeeds replays from the watcher's start: no gap.)
                self._bump(_ANY, gap=not first_attempt)
                if reconnecting and self._on_reconnect is not None:
                    self._on_reconnect()
                reconnecting = True
                for event in self._stream:
                    since = max(since, event.time)
                    backoff = 0.1
                    self._bump(event.container_id, removed=event.action == "destroy")
                    if self._on_event is not None:
                        try:
                            self._on_event(event)
                        except Exception as exc:  # the stream must go on whatever it was
                            logger.opt(exception=exc).warning("handling {} failed", event)
            except ContainerTrackerError as exc:
                logger.debug("event stream broke: {}", exc)
            except Exception as exc:  # the thread must survive anything the SDK throws
                logger.opt(exception=exc).debug("event stream failed")
            finally:
                self._connected.set()
                first_attempt = False
            if self._closed.wait(backoff):
                break
            backoff = min(backoff * 2, 2.0)
        with self._cond:
            self._cond.notify_all()

    def close(self) -> None:
        """Stop the thread and wake all waiters (at once, not when the thread has ended)."""
        self._closed.set()
        with self._cond:
            self._cond.notify_all()
        stream = self._stream
        if stream is not None:
            stream.close()
        self._thread.join(timeout=5)
