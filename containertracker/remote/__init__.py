"""The remote JobTracker: a server exposing any tracker over HTTP, and a client that is one.

Needs the ``remote`` extra (starlette, uvicorn, httpx, pyyaml). The wire format is that of
drmaa2os' remote tracker (v1 paths), so Go clients and servers interoperate.
"""

from containertracker.remote.app import create_app
from containertracker.remote.client import RemoteTracker, new_remote_tracker
from containertracker.remote.policy import Policy
from containertracker.remote.pool import TrackerPool
from containertracker.remote.server import ServerThread, check_exposure, serve

__all__ = [
    "Policy",
    "RemoteTracker",
    "ServerThread",
    "TrackerPool",
    "check_exposure",
    "create_app",
    "new_remote_tracker",
    "serve",
]
