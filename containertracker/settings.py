"""Configuration from the environment (``CONTAINERTRACKER_*``), read only at the edges.

Library classes take explicit arguments; :func:`containertracker.new_job_tracker` builds a
:class:`Settings` from the environment and overrides it with the ``params`` mapping the
caller passes, so ``new_job_tracker("docker", "s", {"stop_grace": 2})`` wins over
``CONTAINERTRACKER_STOP_GRACE``.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any, Self

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from containertracker.errors import InvalidArgumentError

__all__ = [
    "DEFAULT_REMOTE_URL",
    "MIN_TOKEN_LENGTH",
    "PullPolicy",
    "ServerSettings",
    "Settings",
    "default_state_dir",
]

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
    host_path_roots: list[Path] | None = Field(
        default=None,
        description=(
            "Directories below which every host path of a job must resolve (input, output "
            "and error files, stage-in sources, stage-out destinations; symlinks and '..' "
            "resolved per task); unset: any host path; []: none (/dev/null always works)."
        ),
    )
    log_level: str = Field(
        default="WARNING", description="Log level for the CLI and server (the library is silent)."
    )
    monitor_all_containers: bool = Field(
        default=True,
        description=(
            "Monitoring (get_all_job_ids, job_info_from_monitor) sees every container on the "
            "engine; false: only containers of trackers (a server's default)."
        ),
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

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None) -> Self:
        """The ``CONTAINERTRACKER_*`` settings overridden by ``params`` (keys are field
        names), as :func:`containertracker.new_job_tracker` takes them.

        Raises:
            InvalidArgumentError: a param is unknown, or a param or variable has a wrong value.
        """
        try:
            return cls(**dict(params or {}))
        except ValidationError as exc:
            raise InvalidArgumentError(f"invalid tracker params: {exc}") from None


MIN_TOKEN_LENGTH = 16
"""Shortest bearer token the server accepts (guessing must be hopeless)."""


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
        default=None,
        description=(
            f"Require 'Authorization: Bearer <token>' on every request (any session; at "
            f"least {MIN_TOKEN_LENGTH} characters). Prefer "
            "token_file or the environment: a command-line argument is visible in ps."
        ),
    )
    token_file: Path | None = Field(
        default=None,
        description=(
            "File of bearer tokens, one per line: 'TOKEN' (every session) or 'TOKEN SESSION "
            "...' (only these sessions; shell-style patterns like team-a-* allowed). Blank "
            "lines and lines starting with # are ignored."
        ),
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
        description=(
            "Longest a /wait or /changes long-poll holds a request; clients poll again after it."
        ),
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
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description=(
            "Host header names accepted besides the bound address (and, bound to loopback, "
            "localhost/127.0.0.1/[::1]); '*.example.org' patterns allowed. Bound to a wildcard "
            "address (0.0.0.0, ::) with none given: any Host (credentials are required there)."
        ),
    )
    allowed_origins: list[str] = Field(
        default_factory=list,
        description=(
            "Browser origins (scheme://host[:port]) whose cross-site requests are accepted; "
            "empty: any request carrying a foreign Origin or Sec-Fetch-Site is refused."
        ),
    )
    allow_host_ports: bool = Field(
        default=False, description="Let jobs publish ports on the host (extension exposedPorts)."
    )
    allow_networks: bool = Field(
        default=False,
        description="Let jobs join networks other than bridge/none/default (extension net).",
    )
    monitor_all_containers: bool = Field(
        default=False,
        description=(
            "Let the /monitor endpoints show every container on the engine, not only those "
            "a tracker created."
        ),
    )
    default_pids_limit: int | None = Field(
        default=1024,
        gt=0,
        description="pids-limit of jobs whose template sets none (None: no default).",
    )
    max_pids_limit: int | None = Field(
        default=8192,
        gt=0,
        description="Largest pids-limit a template may ask for (None: no maximum).",
    )
    default_memory: int | None = Field(
        default=2 << 30,
        gt=0,
        description=(
            "Memory limit (bytes) of jobs whose template sets no VIRTUAL_MEMORY (None: no default)."
        ),
    )
    max_memory: int | None = Field(
        default=16 << 30,
        gt=0,
        description="Largest VIRTUAL_MEMORY a template may ask for (None: no maximum).",
    )
    max_shm_size: int | None = Field(
        default=1 << 30,
        gt=0,
        description="Largest shm-size (bytes) a template may ask for (None: no maximum).",
    )
    max_restarts: int = Field(
        default=10,
        ge=0,
        description="Largest N of restart=on-failure:N (restarting forever is never allowed).",
    )
    max_array_bytes: int = Field(
        default=64 << 20,
        gt=0,
        description=(
            "Largest template size times task count of one array submission (each task "
            "stores its template)."
        ),
    )
    max_waiters: int = Field(
        default=64,
        gt=0,
        description=(
            "Concurrent /wait long polls; beyond, they answer TryLaterError at once (the "
            "client then polls /jobstate)."
        ),
    )
    max_feed_polls: int = Field(
        default=32,
        gt=0,
        description=(
            "Concurrent /changes long polls (each open JobSession of a remote client keeps "
            "one); beyond, they answer TryLaterError at once (the client asks again every "
            "200 ms). Below the 64 sessions a server keeps open, and a session only polled "
            "stays evictable, so feed polls never lock other sessions out."
        ),
    )
    max_ui_streams: int = Field(
        default=16,
        gt=0,
        description=(
            "Concurrent live streams of the web dashboard (one per open dashboard page); "
            "beyond, a page is told to try later (503)."
        ),
    )
    worker_threads: int = Field(
        default=32,
        gt=0,
        description="Threads serving all other requests (a reserve long polls cannot take).",
    )
    max_connections: int = Field(
        default=512,
        gt=0,
        description="Open connections and requests in flight; beyond, requests answer 503.",
    )
    header_timeout: float = Field(
        default=10.0,
        gt=0,
        description=(
            "Seconds a connection may take to send a request's headers (from its opening, "
            "or the end of its previous request), and the rest of a body the server answered "
            "without reading (from the answer); then it is closed."
        ),
    )
    body_timeout: float = Field(
        default=30.0, gt=0, description="Seconds a request may take to send its body (408)."
    )
    keep_alive: int = Field(
        default=30, gt=0, description="Seconds an idle kept-alive connection stays open."
    )
