"""Configuration from the environment (``CONTAINERTRACKER_*``), read only at the edges.

Library classes take explicit arguments; :func:`containertracker.new_job_tracker` builds a
:class:`Settings` from the environment and overrides it with the ``params`` mapping the
caller passes, so ``new_job_tracker("docker", "s", {"stop_grace": 2})`` wins over
``CONTAINERTRACKER_STOP_GRACE``.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["PullPolicy", "Settings", "default_state_dir"]


class PullPolicy(StrEnum):
    """When a job's image (its JobCategory) may be pulled from a registry."""

    NEVER = "never"
    """Only local images are used; a missing image is an InvalidArgumentError."""
    MISSING = "missing"
    """Pull an image that is not present locally."""
    ALWAYS = "always"
    """Pull before every submission."""


def default_state_dir() -> Path:
    """``$XDG_STATE_HOME/containertracker``, else ``~/.local/state/containertracker``."""
    import os

    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "containertracker"


class Settings(BaseSettings):
    """Every setting containertracker reads; each maps to ``CONTAINERTRACKER_<NAME>``."""

    model_config = SettingsConfigDict(
        env_prefix="CONTAINERTRACKER_", extra="forbid", validate_default=True
    )

    engine_url: str | None = Field(
        default=None,
        description=(
            "URL of the engine's API socket, e.g. unix:///var/run/docker.sock. Unset: Docker "
            "uses DOCKER_HOST or its default socket; Podman uses CONTAINER_HOST, then the "
            "rootful /run/podman/podman.sock, then the rootless socket."
        ),
    )
    pull_policy: PullPolicy = Field(
        default=PullPolicy.NEVER, description="When job images may be pulled."
    )
    stop_grace: float = Field(
        default=10.0,
        ge=0,
        description="Seconds between the stop signal and SIGKILL when a job is terminated.",
    )
    state_dir: Path = Field(
        default_factory=default_state_dir,
        description=(
            "Directory for the little state containers cannot carry: hold/cancel marks and "
            "the locks that let several trackers of a session share work."
        ),
    )
    request_timeout: float = Field(
        default=60.0, gt=0, description="Seconds before one engine API request is abandoned."
    )
    resync_interval: float = Field(
        default=2.0,
        gt=0,
        description=(
            "Seconds between safety re-checks while waiting or scheduling, in case an engine "
            "event was missed (the engine's event stream drives everything else)."
        ),
    )
    log_level: str = Field(
        default="WARNING", description="Log level for the CLI and server (the library is silent)."
    )
