"""Configuration from the environment (``CONTAINERTRACKER_*``), read only at the edges.

Library classes take explicit arguments; :func:`containertracker.new_job_tracker` builds a
:class:`Settings` from the environment and overrides it with the ``params`` mapping the
caller passes, so ``new_job_tracker("docker", "s", {"stop_grace": 2})`` wins over
``CONTAINERTRACKER_STOP_GRACE``.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DEFAULT_REMOTE_URL", "PullPolicy", "ServerSettings", "Settings", "default_state_dir"]

DEFAULT_REMOTE_URL = "http://localhost:32321"
"""Where the remote client looks for a server by default (the Go project's HTTP port)."""


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
    remote_url: str = Field(
        default=DEFAULT_REMOTE_URL,
        description="Remote backend: the server's URL, base path included (http or https).",
    )
    remote_token: SecretStr | None = Field(
        default=None, description="Remote backend: bearer token the server requires."
    )
    remote_user: str | None = Field(
        default=None, description="Remote backend: user name for HTTP basic auth."
    )
    remote_password: SecretStr | None = Field(
        default=None, description="Remote backend: password for HTTP basic auth."
    )
    remote_ca_file: Path | None = Field(
        default=None,
        description="Remote backend: CA bundle that signs the server's TLS certificate.",
    )


class ServerSettings(BaseSettings):
    """How ``containertracker serve`` listens and what it lets clients run.

    Each field maps to ``CONTAINERTRACKER_SERVER_<NAME>``. The defaults are safe: loopback only,
    no privileged containers, no host namespaces, no host paths.
    """

    model_config = SettingsConfigDict(
        env_prefix="CONTAINERTRACKER_SERVER_", extra="forbid", validate_default=True
    )

    host: str = Field(
        default="127.0.0.1",
        description="Address to bind. Anything but loopback requires a token or basic auth.",
    )
    port: int = Field(default=32321, ge=0, le=65535, description="TCP port (0: pick a free one).")
    base_path: str = Field(
        default="", description="Path prefix of every endpoint, e.g. /jobserver/jobmanagement."
    )
    backend: str = Field(default="docker", description="Tracker backend that runs the jobs.")
    session: str = Field(
        default="default",
        description="Session served to clients that name none (the Go client never does).",
    )
    token: SecretStr | None = Field(
        default=None, description="Require 'Authorization: Bearer <token>' on every request."
    )
    user: str | None = Field(default=None, description="Require HTTP basic auth as this user.")
    password: SecretStr | None = Field(default=None, description="Password for basic auth.")
    tls_certfile: Path | None = Field(default=None, description="PEM certificate: serve HTTPS.")
    tls_keyfile: Path | None = Field(
        default=None, description="PEM private key of the certificate."
    )
    max_body_bytes: int = Field(
        default=1 << 20, gt=0, description="Largest request body accepted (413 beyond)."
    )
    max_wait: float = Field(
        default=25.0,
        gt=0,
        description="Longest a /wait long-poll holds a request; clients poll again after it.",
    )
    allow_privileged: bool = Field(
        default=False, description="Let jobs use the 'privileged' extension."
    )
    allow_host_namespaces: bool = Field(
        default=False,
        description="Let jobs join the host's (or another container's) net/ipc/uts/pid namespace.",
    )
    allowed_host_paths: list[Path] = Field(
        default_factory=list,
        description=(
            "Host directories under which jobs may read and write input/output/error paths "
            "and stage files; empty: no host paths at all."
        ),
    )
