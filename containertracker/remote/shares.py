"""Slots of a bounded resource shared among credentials, so that no one credential can take
them all: pure bookkeeping, no I/O, used from one event loop (no lock)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable

__all__ = ["SharedSlots"]


class SharedSlots:
    """``total`` slots; each credential may hold at most ``share`` of them at once, and
    (of two or more) the last slot is kept for credentials with full access (the
    operator's), which so always get one while they hold fewer than their share, whatever
    the others hold.

    A credential is any hashable key (a token's grant), or None: requests without a token
    (basic auth, no auth), all one credential with full access and no share limit (there
    is no other credential for them to lock out).
    """

    def __init__(self, total: int, share: int) -> None:
        if total < 1 or share < 1:
            raise ValueError(f"slots and share must be at least 1, not {total} and {share}")
        self.total = total
        self.share = min(share, total)
        self._held: Counter[Hashable] = Counter()

    @property
    def in_use(self) -> int:
        """Slots held now."""
        return sum(self._held.values())

    def take(self, credential: Hashable, *, full_access: bool) -> str | None:
        """Take a slot for ``credential``; None if taken, else why not (a sentence)."""
        if credential is not None and self._held[credential] >= self.share:
            return f"this credential holds {self.share} of them already, its share"
        # The reserve: a credential without full access leaves the last slot free.
        reserve = 0 if full_access or self.total == 1 else 1
        free = self.total - self.in_use - reserve
        if free < 1:
            return f"all {self.total} are in use"
        self._held[credential] += 1
        return None

    def give_back(self, credential: Hashable) -> None:
        """Give back a slot :meth:`take` gave ``credential``."""
        self._held[credential] -= 1
        if self._held[credential] <= 0:
            del self._held[credential]
