"""The real LiveKit server the end-to-end tests run against, prepared once per test session.

``LIVEKIT_URL`` (with ``LIVEKIT_API_KEY`` / ``LIVEKIT_API_SECRET``) names a server to use as it
is. Otherwise :func:`prepare` gets livekit-server (``go install``, cached) and moves the test
process into a private network namespace before any thread starts, so the server and every client
stay on loopback; the fixture then starts the server. Where neither can be had the e2e tests skip
with one line saying why, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import pytest

from livekit_avsync.devserver import (
    SERVER_VERSION,
    IsolationError,
    LocalServer,
    ServerUnavailable,
    enter_private_network,
    server_binary,
)
from livekit_avsync.devserver.build import cache_dir
from livekit_avsync.web.chromium import BrowserUnavailable, find_chromium
from livekit_avsync.web.modules import WebModulesUnavailable, client_module

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@dataclass(frozen=True)
class ServerInfo:
    """Where the e2e tests connect: URL and keys, the same for a local or an external server."""

    url: str
    api_key: str
    api_secret: str
    local: LocalServer | None = None

    @property
    def http_url(self) -> str:
        return self.url.replace("ws://", "http://", 1).replace("wss://", "https://", 1)

    def env(self) -> dict[str, str]:
        return {
            "LIVEKIT_URL": self.url,
            "LIVEKIT_API_KEY": self.api_key,
            "LIVEKIT_API_SECRET": self.api_secret,
        }


_unavailable: str | None = "not prepared"
_external: ServerInfo | None = None
_web_unavailable: str | None = "not prepared"


def prepare() -> None:
    """Decide, once and before any thread starts, which server the e2e tests will use."""
    global _unavailable, _external
    url = os.environ.get("LIVEKIT_URL")
    if url:
        key, secret = os.environ.get("LIVEKIT_API_KEY"), os.environ.get("LIVEKIT_API_SECRET")
        if not (key and secret):
            _unavailable = "LIVEKIT_URL is set but LIVEKIT_API_KEY / LIVEKIT_API_SECRET are not"
            return
        _external, _unavailable = ServerInfo(url, key, secret), None
        return
    try:
        if not (cache_dir() / f"livekit-server-{SERVER_VERSION}").is_file():
            print(
                f"e2e: building livekit-server {SERVER_VERSION} (go install, cached for reuse)",
                file=sys.stderr,
                flush=True,
            )
        server_binary()
        _prepare_web()  # npm needs the network, which the private namespace does not have
        enter_private_network()
    except (ServerUnavailable, IsolationError) as exc:
        _unavailable = str(exc)
        return
    _unavailable = None


def _web_reason() -> str | None:
    """Why the browser tests cannot run (no Chromium, livekit-client not installable), or None;
    installs livekit-client (once, cached) on the way."""
    try:
        find_chromium()
        client_module()
    except (BrowserUnavailable, WebModulesUnavailable) as exc:
        return str(exc)
    return None


def _prepare_web() -> None:
    """Install the browser tests' livekit-client now, while the network is there."""
    global _web_unavailable
    _web_unavailable = _web_reason()


def web_unavailable() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if _external is not None:  # no private namespace: the fixture may still install it
        return _web_reason()
    return _web_unavailable


def unavailable() -> str | None:
    """Why the e2e tests cannot run here, or None."""
    return _unavailable


def start() -> ServerInfo:
    """The server for this session (starts the local one); skips or, under CI, fails."""
    if _unavailable is not None:
        message = f"e2e: no LiveKit server: {_unavailable}"
        if CI:
            pytest.fail(message + " (CI=true: end-to-end tests never skip)", pytrace=False)
        pytest.skip(message)
    if _external is not None:
        return _external
    server = LocalServer().start()
    return ServerInfo(server.url, server.api_key, server.api_secret, server)
