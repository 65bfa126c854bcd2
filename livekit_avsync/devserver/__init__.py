"""A real LiveKit server on this machine, for the end-to-end tests and the real-room benchmark.

- :mod:`.build`: ``livekit-server`` built from its published Go module with ``go install`` into a
  cache folder that later runs reuse (or an existing binary named by ``LIVEKIT_SERVER_BIN``).
- :mod:`.netns`: moves this process into a private network namespace with only loopback and an
  in-namespace test link, so no media can ever leave the machine.
- :mod:`.server`: :class:`LocalServer` starts it bound to 127.0.0.1, advertising only 127.0.0.1
  (no external IP, no public STUN), waits until it answers and stops it.
- :mod:`.worker`: :class:`WorkerProcess` runs an example worker as a user does, and reads its log.
"""

from .build import SERVER_MODULE, SERVER_VERSION, ServerUnavailable, server_binary
from .netns import IsolationError, enter_private_network, is_private_network
from .server import LocalServer
from .worker import WorkerProcess

__all__ = [
    "SERVER_MODULE",
    "SERVER_VERSION",
    "IsolationError",
    "LocalServer",
    "ServerUnavailable",
    "WorkerProcess",
    "enter_private_network",
    "is_private_network",
    "server_binary",
]
