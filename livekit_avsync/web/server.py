"""The viewer page's HTTP server: our page, livekit-client's module from the npm cache, and a
``config.json`` with the server URL and a token made from the API keys. Loopback only."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from livekit import api

from .modules import client_module

__all__ = ["AUDIO_PATHS", "PAGE_DIR", "ViewerConfig", "ViewerServer", "viewer_token"]

PAGE_DIR = Path(__file__).with_name("page")
AUDIO_PATHS = ("mix", "element")
_PAGE_FILES = ("index.html", "viewer.js", "viewer.css", "probe.js", "recorder.worklet.js")
_NO_STORE = {"Cache-Control": "no-store"}
_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
}


def viewer_token(
    api_key: str,
    api_secret: str,
    room: str,
    identity: str,
    *,
    hidden: bool = False,
    can_publish: bool = True,
) -> str:
    """A join token for the viewer: ``hidden`` viewers are invisible to the other participants
    (an agent never takes one for its user); ``can_publish`` lets the page's microphone talk."""
    if not (api_key and api_secret):
        raise ValueError("a viewer token needs LIVEKIT_API_KEY and LIVEKIT_API_SECRET")
    if not room:
        raise ValueError("a viewer token needs a room name")
    grants = api.VideoGrants(
        room_join=True, room=room, hidden=hidden, can_publish=can_publish and not hidden
    )
    return api.AccessToken(api_key, api_secret).with_identity(identity).with_grants(grants).to_jwt()


@dataclass
class ViewerConfig:
    """What the page is told: where to connect, with which token, and what to watch.

    ``participant`` picks the identity to show (None: the first that publishes); ``measure``
    (a dict of probe options, e.g. ``{"mouth": [x0, y0, x1, y1]}``) loads the page's probe.
    ``audio_path``: ``"mix"`` plays the room's audio through the page's Web Audio graph
    (livekit-client's ``webAudioMix``; the probe times what the graph outputs), ``"element"``
    through an ``<audio>`` element per track (livekit-client's default; the probe times a silent
    Web Audio copy of the track).
    """

    url: str
    token: str
    room: str
    participant: str | None = None
    can_publish: bool = True
    measure: dict[str, Any] | None = field(default=None)
    audio_path: str = "mix"

    def __post_init__(self) -> None:
        if self.audio_path not in AUDIO_PATHS:
            raise ValueError(f"audio_path must be one of {AUDIO_PATHS}, got {self.audio_path!r}")

    def to_json(self) -> str:
        return json.dumps(
            {
                "url": self.url,
                "token": self.token,
                "room": self.room,
                "participant": self.participant,
                "can_publish": self.can_publish,
                "measure": self.measure,
                "audio": self.audio_path,
            }
        )


class ViewerServer:
    """Serves the viewer page on ``127.0.0.1`` (``port`` 0: a free one). ``address`` is the
    page's URL once :meth:`start` returned."""

    def __init__(self, config: ViewerConfig, *, port: int = 0) -> None:
        self.config = config
        self._port = port
        self._module = client_module()  # installs livekit-client on first use (or raises)
        self._runner: web.AppRunner | None = None
        self.address = ""
        self._secret_path = secrets.token_urlsafe(8)  # other local users cannot guess the page

    async def start(self) -> str:
        """Start serving; returns the page's address."""
        if self._runner is not None:
            return self.address
        app = web.Application()
        prefix = f"/{self._secret_path}"
        app.router.add_get(prefix, self._redirect)
        app.router.add_get(prefix + "/", self._file("index.html"))
        for name in _PAGE_FILES:
            app.router.add_get(f"{prefix}/{name}", self._file(name))
        app.router.add_get(f"{prefix}/livekit-client.esm.mjs", self._client)
        app.router.add_get(f"{prefix}/config.json", self._config)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self._port)
        await site.start()
        self._runner = runner
        port = runner.addresses[0][1]
        self.address = f"http://127.0.0.1:{port}{prefix}/"
        return self.address

    async def aclose(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> ViewerServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _redirect(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(request.path + "/")

    def _file(self, name: str) -> Any:
        path = PAGE_DIR / name

        async def handler(request: web.Request) -> web.StreamResponse:
            return _serve(path)

        return handler

    async def _client(self, request: web.Request) -> web.StreamResponse:
        return _serve(self._module)

    async def _config(self, request: web.Request) -> web.StreamResponse:
        return web.Response(
            text=self.config.to_json(), content_type="application/json", headers=_NO_STORE
        )


def _serve(path: Path) -> web.FileResponse:
    """A file with its content type set (module scripts need a JavaScript one) and no caching."""
    headers = {**_NO_STORE, "Content-Type": _TYPES[path.suffix]}
    return web.FileResponse(path, headers=headers)
