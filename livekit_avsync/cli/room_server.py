"""The LiveKit server a room command uses: ``LIVEKIT_URL`` with its keys, or a local one.

Without ``LIVEKIT_URL`` the command runs its own livekit-server (built with ``go install``, cached)
in a private network namespace, as the end-to-end tests do (root only), so nothing it sends
leaves this machine.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from ..devserver import IsolationError, LocalServer, ServerUnavailable, enter_private_network
from ..measure.room_bench import RoomServer
from . import CLIError

__all__ = ["room_server"]


@contextlib.contextmanager
def room_server(what: str) -> Iterator[RoomServer]:
    """The server for ``what`` (named in errors); a local one is stopped on exit."""
    if os.environ.get("LIVEKIT_URL"):
        key, secret = os.environ.get("LIVEKIT_API_KEY"), os.environ.get("LIVEKIT_API_SECRET")
        if not (key and secret):
            raise CLIError("LIVEKIT_URL is set but LIVEKIT_API_KEY / LIVEKIT_API_SECRET are not")
        yield RoomServer(os.environ["LIVEKIT_URL"], key, secret)
        return
    try:
        enter_private_network()  # before any connection: nothing leaves this machine
        local = LocalServer().start()
    except (ServerUnavailable, IsolationError) as exc:
        raise CLIError(f"{what} needs LIVEKIT_URL or a local livekit-server: {exc}") from None
    try:
        yield RoomServer(local.url, local.api_key, local.api_secret)
    finally:
        local.stop()
