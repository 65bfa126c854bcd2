"""Move this process into a private network namespace: loopback plus a link that leads nowhere.

libwebrtc never offers a loopback ICE candidate, so a client on a loopback-only host has no
candidate at all, and on a normal host it pairs the machine's other addresses with the server's
127.0.0.1. In a private namespace with ``lo`` and one veth pair whose both ends stay inside (a
test-host address from the benchmarking range, 198.18.0.0/15), every candidate is in the
namespace and nothing can leave it. Child processes (server, workers, browser) inherit it; the
namespace disappears with the last of them.
"""

from __future__ import annotations

import ctypes
import os
import socket
import subprocess

__all__ = ["TEST_HOST_ADDRESS", "IsolationError", "enter_private_network", "is_private_network"]

TEST_HOST_ADDRESS = "198.18.0.1"
_LINK, _PEER = "avsync0", "avsync1"
_CLONE_NEWNET = 0x40000000


class IsolationError(RuntimeError):
    """The process could not be moved into a private network namespace; says why."""


def _links() -> set[str]:
    """Interfaces of this thread's namespace (sysfs would show the namespace it was mounted in)."""
    return {name for _, name in socket.if_nameindex()}


def is_private_network() -> bool:
    """Whether this process already sees only loopback and the test link (nothing routes out)."""
    try:
        return _links() <= {"lo", _LINK, _PEER}
    except OSError:
        return False


def enter_private_network() -> None:
    """Unshare this process's network namespace and set it up (idempotent).

    The change applies to the calling thread and to every thread and process it starts later, so
    call it from the main thread before anything opens a connection (a thread already running,
    like an idle BLAS worker, keeps the old namespace). Needs CAP_SYS_ADMIN (root) and iproute2's
    ``ip``. Raises :class:`IsolationError`.
    """
    if is_private_network() and _LINK in _links():
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(_CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise IsolationError(f"unshare(CLONE_NEWNET) failed: {os.strerror(err)} (needs root)")
    commands = (
        ("link", "set", "lo", "up"),
        ("link", "add", _LINK, "type", "veth", "peer", "name", _PEER),
        ("addr", "add", f"{TEST_HOST_ADDRESS}/32", "dev", _LINK),
        ("link", "set", _LINK, "up"),
        ("link", "set", _PEER, "up"),
    )
    for args in commands:
        try:
            subprocess.run(["ip", *args], check=True, capture_output=True, text=True)
        except FileNotFoundError:
            raise IsolationError("iproute2's 'ip' command is missing") from None
        except subprocess.CalledProcessError as exc:
            raise IsolationError(f"ip {' '.join(args)} failed: {exc.stderr.strip()}") from None
