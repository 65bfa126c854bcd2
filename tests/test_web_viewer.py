"""The viewer page's server, its token and livekit-client's cache, without a browser."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from livekit import api

from livekit_avsync.cli.main import main
from livekit_avsync.web.modules import CLIENT_MODULE, WebModulesUnavailable, client_module
from livekit_avsync.web.server import ViewerConfig, ViewerServer, viewer_token

KEY, SECRET = "test-key", "test-secret-that-is-long-enough-for-hs256"


@pytest.fixture
def node_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A node_modules with a stand-in livekit-client module, named by the env override."""
    module = tmp_path / "node_modules" / CLIENT_MODULE
    module.parent.mkdir(parents=True)
    module.write_text("export const Room = class {};\n")
    monkeypatch.setenv("LIVEKIT_AVSYNC_NODE_MODULES", str(tmp_path / "node_modules"))
    return module


def test_the_node_modules_override_must_hold_livekit_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIVEKIT_AVSYNC_NODE_MODULES", str(tmp_path))
    with pytest.raises(WebModulesUnavailable, match="LIVEKIT_AVSYNC_NODE_MODULES"):
        client_module()


def test_a_hidden_viewer_token_joins_one_room_unseen_and_cannot_publish() -> None:
    token = viewer_token(KEY, SECRET, "demo", "viewer-1", hidden=True)
    claims = api.TokenVerifier(KEY, SECRET).verify(token)
    assert claims.identity == "viewer-1"
    assert claims.video.room == "demo" and claims.video.room_join
    assert claims.video.hidden and not claims.video.can_publish
    talking = api.TokenVerifier(KEY, SECRET).verify(viewer_token(KEY, SECRET, "demo", "v2"))
    assert talking.video.can_publish and not talking.video.hidden


def test_bad_viewer_settings_are_named() -> None:
    with pytest.raises(ValueError, match="API_KEY"):
        viewer_token("", SECRET, "demo", "v")
    with pytest.raises(ValueError, match="room"):
        viewer_token(KEY, SECRET, "", "v")
    with pytest.raises(ValueError, match="audio_path"):
        ViewerConfig("ws://127.0.0.1:7880", "t", "demo", audio_path="speakers")


async def test_the_server_serves_the_page_the_module_and_the_config(node_modules: Path) -> None:
    config = ViewerConfig("ws://127.0.0.1:7880", "the-token", "demo", participant="agent-1")
    async with ViewerServer(config) as server, aiohttp.ClientSession() as http:
        assert server.address.startswith("http://127.0.0.1:")
        async with http.get(server.address) as page:
            assert page.status == 200 and "viewer.js" in await page.text()
        async with http.get(server.address + "livekit-client.esm.mjs") as module:
            assert module.headers["Content-Type"].startswith("text/javascript")
            assert await module.text() == "export const Room = class {};\n"
        async with http.get(server.address + "config.json") as answer:
            data = await answer.json()
        assert data["url"] == "ws://127.0.0.1:7880" and data["token"] == "the-token"
        assert (data["room"], data["participant"], data["audio"]) == ("demo", "agent-1", "mix")
        async with http.get(server.address + "../etc/passwd") as other:
            assert other.status == 404
        root = server.address.split("/", 3)
        async with http.get(f"{root[0]}//{root[2]}/config.json") as unguessed:
            assert unguessed.status == 404  # only under the page's own random path


def test_view_needs_the_server_settings(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"):
        monkeypatch.delenv(name, raising=False)
    assert main(["view", "--room", "demo"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "livekit-avsync view: error: view needs LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET"
    ]
