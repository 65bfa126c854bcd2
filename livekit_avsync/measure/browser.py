"""Lip-sync as a browser shows it: the project's viewer page in headless Chromium, measured there.

:class:`BrowserViewer` opens the viewer page (:mod:`livekit_avsync.web`) in a
:class:`~livekit_avsync.web.chromium.Chromium` tab; the page joins the room with livekit-client
and plays the participant's camera and microphone as a LiveKit web app does. Its probe reports
when each video frame is presented (``requestVideoFrameCallback``'s expected display time) with
the marker band of the picture, and the received audio as the room's Web Audio graph plays it,
each batch stamped with the time it reaches the output (the audio context's output timestamp).
Everything is recorded into a :class:`~.loopback.MediaCapture` on ``time.monotonic()``, so the
reports, the analysis and the scenario bench are the loopback's own::

    async with Chromium() as browser:
        viewer = BrowserViewer(browser, url, token, room_name)
        await viewer.start()
        await viewer.capture.wait_for_bursts(20, timeout=30)
        print(viewer.capture.analyze().summary())  # as this browser showed and played it
        await viewer.aclose()

The page's clock (``performance.now()``) is mapped onto ``time.monotonic()`` by the quickest of a
few DevTools round trips (both are the system's monotonic clock, so only the origin differs).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from livekit import rtc

from ..web.chromium import Chromium, Page
from ..web.server import ViewerConfig, ViewerServer
from .analysis import SyncReport
from .loopback import AudioHook, MediaCapture
from .markers import MarkerCode, read_marker
from .spec import DEFAULT_SPEC, MarkerSpec

__all__ = ["BAND_SHAPE", "BrowserViewer", "MouthHook", "page_clock"]

BINDING = "avsyncReport"
BAND_SHAPE = (18, 128)  # the page's marker band: the top quarter of the picture at 128x72
_PICTURE_ROWS = 72
_CLOCK_PROBES = 7
ENCODER_FRAME_SLACK = 2  # as for a room's Python subscriber: a busy encoder drops frames

MouthHook = Callable[[np.ndarray, float, MarkerCode | None], None]


async def page_clock(page: Page) -> float:
    """Seconds to add to ``performance.now() / 1000`` in ``page`` to get ``time.monotonic()``."""
    best: tuple[float, float] | None = None  # (round trip, offset)
    for _ in range(_CLOCK_PROBES):
        before = time.monotonic()
        now_ms = await page.evaluate("performance.now()")
        after = time.monotonic()
        trip = after - before
        if best is None or trip < best[0]:
            best = (trip, (before + after) / 2 - float(now_ms) / 1000)
    assert best is not None
    return best[1]


def _even_box(box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """The smallest box with even corners around ``box`` (I420 frames copy in 2x2 blocks)."""
    x0, y0, x1, y1 = box
    return x0 - x0 % 2, y0 - y0 % 2, x1 + x1 % 2, y1 + y1 % 2


class BrowserViewer:
    """One viewer page in a tab of ``browser``, joined to ``room`` on the server at ``url``.

    ``token`` must allow joining ``room`` (a hidden viewer's keeps the page out of the agent's
    sight). ``participant`` picks the identity to watch (None: the first that publishes).
    ``mouth`` (a ``(x0, y0, x1, y1)`` box in video pixels) asks the page for the decoded luma of
    that box in every frame, passed to ``on_mouth(luma, time, code)``; ``on_audio(frame, time)``
    sees every played audio batch. ``audio_path``: how the page plays audio (see
    :class:`~livekit_avsync.web.server.ViewerConfig`).
    """

    def __init__(
        self,
        browser: Chromium,
        url: str,
        token: str,
        room: str,
        *,
        participant: str | None = None,
        spec: MarkerSpec = DEFAULT_SPEC,
        mouth: tuple[int, int, int, int] | None = None,
        on_mouth: MouthHook | None = None,
        on_audio: AudioHook | None = None,
        audio_path: str = "mix",
    ) -> None:
        self._browser = browser
        self._mouth = mouth
        self._spec = spec
        self._on_mouth = on_mouth
        self._on_audio = on_audio
        measure: dict[str, Any] = {}
        if mouth is not None:
            measure["mouth"] = list(_even_box(mouth))
        self._config = ViewerConfig(
            url,
            token,
            room,
            participant=participant,
            can_publish=False,
            measure=measure,
            audio_path=audio_path,
        )
        self._server: ViewerServer | None = None
        self._capture: MediaCapture | None = None
        self._offset = 0.0
        self._changed = asyncio.Event()
        self._failure: Exception | None = None
        self._closed = False
        self.page: Page | None = None
        self.tracks: dict[str, dict[str, Any]] = {}  # "audio"/"video" -> what the page said
        self.state = "starting"
        self.video_reports = 0
        self.audio_reports = 0

    @property
    def capture(self) -> MediaCapture:
        if self._capture is None:
            raise RuntimeError("BrowserViewer is not started")
        return self._capture

    @property
    def errors(self) -> list[str]:
        """Script errors of the page so far."""
        return [] if self.page is None else list(self.page.errors)

    async def start(self, timeout: float = 30.0) -> None:
        """Open the page and wait up to ``timeout`` s until it presents video and plays audio."""
        if self.page is not None:
            return
        self._server = ViewerServer(self._config)
        address = await self._server.start()
        self.page = await self._browser.new_page()
        await self.page.bind(BINDING, self._report)
        await self.page.goto(address)
        self._offset = await page_clock(self.page)
        try:
            await asyncio.wait_for(self._playing(), timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(
                f"the viewer page did not play audio and video within {timeout:g} s "
                f"(state {self.state}, tracks {sorted(self.tracks)}, {self.video_reports} "
                f"frames, {self.audio_reports} audio batches; page errors: {self.errors})"
            ) from None

    async def _playing(self) -> None:
        while not (self.video_reports and self.audio_reports):
            if self._failure is not None:
                raise RuntimeError(f"the viewer page's report failed: {self._failure!r}")
            if self._capture is not None:
                self._capture.check()
            self._changed.clear()
            await self._changed.wait()

    def _report(self, payload: str) -> None:
        """One report of the page's probe (called by the DevTools reader, in order)."""
        try:
            report = json.loads(payload)
            kind = report.get("kind")
            if kind == "ready":
                self._capture = MediaCapture(
                    sample_rate=int(report["rate"]), spec=self._spec, on_audio=self._on_audio
                )
                self._capture.frame_slack = ENCODER_FRAME_SLACK
            elif kind == "audio" and self._capture is not None:
                self._audio(report)
            elif kind == "video" and self._capture is not None:
                self._video(report)
            elif kind == "track":
                self.tracks[str(report["media"])] = report
            elif kind == "state":
                self.state = str(report["state"])
        except Exception as exc:  # a malformed report must not vanish in the reader task
            if self._capture is None:
                self._failure = exc
            else:
                self._capture._fail(exc, "browser")
        self._changed.set()

    def _time(self, page_ms: float) -> float:
        return float(page_ms) / 1000 + self._offset

    def _audio(self, report: dict[str, Any]) -> None:
        pcm = base64.b64decode(report["pcm"])
        count = len(pcm) // 2
        frame = rtc.AudioFrame(pcm, int(report["rate"]), 1, count)
        assert self._capture is not None
        self._capture.record_audio(frame, self._time(report["t"]))
        self.audio_reports += 1

    def _video(self, report: dict[str, Any]) -> None:
        band = np.frombuffer(base64.b64decode(report["band"]), np.uint8).reshape(BAND_SHAPE)
        picture = np.zeros((_PICTURE_ROWS, BAND_SHAPE[1]), np.uint8)
        picture[: BAND_SHAPE[0]] = band
        code = read_marker(picture)
        t = self._time(report["t"])
        assert self._capture is not None
        self._capture.record_video(t, code)
        mouth = report.get("mouth")
        if mouth is not None and self._mouth is not None and self._on_mouth is not None:
            self._on_mouth(self._mouth_luma(mouth["data"]), t, code)
        self.video_reports += 1

    def _mouth_luma(self, data: str) -> np.ndarray:
        assert self._mouth is not None
        x0, y0, x1, y1 = self._mouth
        ex0, ey0, ex1, ey1 = _even_box(self._mouth)
        luma = np.frombuffer(base64.b64decode(data), np.uint8).reshape(ey1 - ey0, ex1 - ex0)
        return luma[y0 - ey0 : y1 - ey0, x0 - ex0 : x1 - ex0]

    def synced_report(self, since: float | None = None, until: float | None = None) -> SyncReport:
        """Markers presented and played in [since, until]: the browser is the receiver that
        lip-syncs (or not), so this is what it showed."""
        return self.capture.analyze(since=since, until=until)

    async def show(self, text: str) -> None:
        """Show ``text`` in the page's figures box (e.g. before a screenshot)."""
        if self.page is not None:
            await self.page.evaluate(f"window.avsync.showFigures({json.dumps(text)})")

    async def screenshot(self, path: Path) -> Path:
        if self.page is None:
            raise RuntimeError("BrowserViewer is not started")
        return await self.page.screenshot(path)

    async def aclose(self) -> None:
        """Close the page (it leaves the room) and its server; the capture stays readable."""
        if self._closed:
            return
        self._closed = True
        if self.page is not None:
            await self.page.close()
        if self._server is not None:
            await self._server.aclose()
        if self._capture is not None:
            self._capture.finish()
            self._capture.check()
