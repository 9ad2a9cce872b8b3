"""What every engine backend shares: building a tracker from settings, parsing engine times."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from containertracker.core.engine import Engine
from containertracker.core.tracker import ContainerTracker
from containertracker.errors import InvalidArgumentError
from containertracker.settings import Settings

__all__ = ["parse_time", "tracker_from_params"]

_FRACTION = re.compile(r"\.(\d+)")


def parse_time(value: str | None) -> datetime | None:
    """An engine timestamp (RFC 3339, up to nanoseconds); Go's zero time and "" are None."""
    if not value or value.startswith("0001-01-01"):
        return None
    text = _FRACTION.sub(lambda m: "." + m.group(1)[:6].ljust(6, "0"), value.replace("Z", "+00:00"))
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def tracker_from_params(
    make_engine: Callable[[Settings], Engine], session: str, params: Mapping[str, Any] | None
) -> ContainerTracker:
    """A ContainerTracker from ``CONTAINERTRACKER_*`` settings overridden by ``params``.

    Raises:
        InvalidArgumentError: a param is unknown or has a wrong value.
        DrmCommunicationError: the engine cannot be reached.
    """
    try:
        settings = Settings(**dict(params or {}))
    except ValidationError as exc:
        raise InvalidArgumentError(f"invalid tracker params: {exc}") from None
    engine = make_engine(settings)
    return ContainerTracker(
        engine,
        session,
        state_dir=settings.state_dir,
        stop_grace=settings.stop_grace,
        pull_policy=settings.pull_policy,
        resync_interval=settings.resync_interval,
    )
