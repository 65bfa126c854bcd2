"""Headless Chromium (Debian's package) with a fresh profile, driven over the DevTools protocol.

:class:`Chromium` starts the browser with flags that keep it from reaching anything but the
pages it is sent to (no background networking, component updates, sync, QUIC, first-run
fetches; every host name but ``localhost`` fails to resolve), and with autoplay allowed without
a user gesture, as a viewer that has clicked "join" would have. Its DevTools endpoint listens on
127.0.0.1 only. :class:`Page` evaluates script, receives calls of page bindings, and takes
screenshots. The protocol is spoken over aiohttp's WebSocket client; no driver library needed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import logging
import os
import re
import shutil
import tempfile
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

logger = logging.getLogger("livekit_avsync.web")

__all__ = ["CHROMIUM_FLAGS", "BrowserUnavailable", "Chromium", "Page", "PageError", "find_chromium"]

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--autoplay-policy=no-user-gesture-required",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-breakpad",
    "--disable-dev-shm-usage",
    "--no-pings",
    "--disable-features=Translate,OptimizationHints,MediaRouter,DialMediaRouteProvider,"
    "AutofillServerCommunication,CertificateTransparencyComponentUpdater",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)
_DEVTOOLS = re.compile(r"DevTools listening on (ws://\S+)")
_START_TIMEOUT_S = 30.0
_CALL_TIMEOUT_S = 30.0
_MAX_MESSAGE = 64 * 1024 * 1024  # screenshots arrive in one message


class BrowserUnavailable(RuntimeError):
    """No Chromium to run here; the message says why in one line."""


class PageError(RuntimeError):
    """The browser reported an error (a failed call, or an exception in page script)."""


def find_chromium() -> Path:
    """``$CHROMIUM`` if set, else Debian's ``/usr/bin/chromium`` (or ``chromium`` on PATH)."""
    explicit = os.environ.get("CHROMIUM")
    candidates = [explicit] if explicit else ["/usr/bin/chromium", shutil.which("chromium")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    if explicit:
        raise BrowserUnavailable(f"CHROMIUM={explicit} is not an executable file")
    raise BrowserUnavailable("Chromium is not installed (apt-get install chromium)")


class Chromium:
    """One headless browser process and its DevTools connection; use ``async with``.

    ``window`` is the viewport size of new pages. ``extra_flags`` are appended to
    :data:`CHROMIUM_FLAGS`.
    """

    def __init__(
        self,
        executable: Path | None = None,
        *,
        window: tuple[int, int] = (1280, 800),
        extra_flags: tuple[str, ...] = (),
    ) -> None:
        self._executable = executable
        self._window = window
        self._extra = extra_flags
        self._process: asyncio.subprocess.Process | None = None
        self._profile: str | None = None
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._stderr_task: asyncio.Task[None] | None = None
        self._stderr: deque[str] = deque(maxlen=40)
        self._ids = itertools.count(1)
        self._calls: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._sessions: dict[str, Page] = {}
        self._closed = False

    async def start(self) -> Chromium:
        """Start the browser and connect to it."""
        if self._process is not None:
            return self
        executable = self._executable or find_chromium()
        self._profile = tempfile.mkdtemp(prefix="avsync-chromium-")
        width, height = self._window
        self._process = await asyncio.create_subprocess_exec(
            str(executable),
            *CHROMIUM_FLAGS,
            *self._extra,
            f"--user-data-dir={self._profile}",
            f"--window-size={width},{height}",
            "about:blank",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            endpoint = await asyncio.wait_for(self._endpoint(), _START_TIMEOUT_S)
            self._stderr_task = asyncio.create_task(self._drain_stderr(), name="chromium-stderr")
            self._http = aiohttp.ClientSession()
            self._ws = await self._http.ws_connect(endpoint, max_msg_size=_MAX_MESSAGE)
            self._reader = asyncio.create_task(self._read(), name="chromium-devtools")
        except BaseException as exc:
            await self.aclose()
            if isinstance(exc, asyncio.TimeoutError):
                raise BrowserUnavailable(
                    f"Chromium did not open its DevTools endpoint in {_START_TIMEOUT_S:g} s: "
                    + self.log_tail()
                ) from None
            raise
        return self

    async def _endpoint(self) -> str:
        assert self._process is not None and self._process.stderr is not None
        while True:
            line = await self._process.stderr.readline()
            if not line:
                raise BrowserUnavailable(f"Chromium exited at start: {self.log_tail()}")
            text = line.decode(errors="replace").rstrip()
            self._stderr.append(text)
            found = _DEVTOOLS.search(text)
            if found:
                return found.group(1)

    async def _drain_stderr(self) -> None:
        assert self._process is not None and self._process.stderr is not None
        while line := await self._process.stderr.readline():
            self._stderr.append(line.decode(errors="replace").rstrip())

    def log_tail(self) -> str:
        """Chromium's last lines on stderr (for error messages)."""
        return " | ".join(self._stderr) or "(no output)"

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for message in self._ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    break
                data = json.loads(message.data)
                if "id" in data:
                    future = self._calls.pop(data["id"], None)
                    if future is not None and not future.done():
                        future.set_result(data)
                    continue
                page = self._sessions.get(data.get("sessionId", ""))
                if page is None:
                    continue
                try:
                    page._event(data["method"], data.get("params", {}))
                except Exception as exc:  # a page's handler must not end the reader
                    logger.exception("handling %s failed", data["method"])
                    page.errors.append(f"handling {data['method']} failed: {exc!r}")
        finally:
            for future in self._calls.values():
                if not future.done():
                    future.set_exception(PageError(f"the browser went away: {self.log_tail()}"))
            self._calls.clear()

    async def call(
        self, method: str, params: dict[str, Any] | None = None, *, session: str | None = None
    ) -> dict[str, Any]:
        """Send one DevTools command and return its result; raises :class:`PageError`."""
        if self._ws is None or self._ws.closed:
            raise PageError(f"{method}: the browser is not connected")
        call_id = next(self._ids)
        message: dict[str, Any] = {"id": call_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._calls[call_id] = future
        await self._ws.send_str(json.dumps(message))
        try:
            reply = await asyncio.wait_for(future, _CALL_TIMEOUT_S)
        finally:
            self._calls.pop(call_id, None)
        if "error" in reply:
            raise PageError(f"{method}: {reply['error'].get('message', reply['error'])}")
        return reply.get("result", {})

    async def new_page(self) -> Page:
        """A fresh tab (blank) with its own DevTools session."""
        width, height = self._window
        target = await self.call("Target.createTarget", {"url": "about:blank"})
        attached = await self.call(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        page = Page(self, attached["sessionId"], target["targetId"])
        self._sessions[page.session] = page
        await page.call("Runtime.enable")
        await page.call("Page.enable")
        await page.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
        return page

    def forget(self, page: Page) -> None:
        """Stop routing events to a closed page."""
        self._sessions.pop(page.session, None)

    async def aclose(self) -> None:
        """Close the browser (politely, then by force), its connection and its profile."""
        if self._closed:
            return
        self._closed = True
        if self._ws is not None and not self._ws.closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.call("Browser.close"), 5.0)
        process = self._process
        if process is not None and process.returncode is None:
            try:
                await asyncio.wait_for(process.wait(), 5.0)
            except asyncio.TimeoutError:
                process.kill()
                await process.wait()
        for task in (self._reader, self._stderr_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._ws is not None:
            await self._ws.close()
        if self._http is not None:
            await self._http.close()
        if self._profile is not None:
            shutil.rmtree(self._profile, ignore_errors=True)

    async def __aenter__(self) -> Chromium:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class Page:
    """One tab: navigate, evaluate script, receive binding calls, console errors, screenshots."""

    def __init__(self, browser: Chromium, session: str, target: str) -> None:
        self._browser = browser
        self.session = session
        self._target = target
        self._bindings: dict[str, Callable[[str], None]] = {}
        self._loads: list[asyncio.Future[None]] = []
        self.errors: list[str] = []  # uncaught exceptions and console errors of the page

    async def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self._browser.call(method, params, session=self.session)

    def _event(self, method: str, params: dict[str, Any]) -> None:
        if method == "Page.loadEventFired":
            for future in self._loads:
                if not future.done():
                    future.set_result(None)
        elif method == "Runtime.bindingCalled":
            handler = self._bindings.get(params.get("name", ""))
            if handler is not None:
                handler(params.get("payload", ""))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            exc = details.get("exception", {})
            where = f"{details.get('url', '')}:{details.get('lineNumber', 0) + 1}"
            self.errors.append(f"{exc.get('description') or details.get('text')} ({where})")
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            args = params.get("args", [])
            self.errors.append(" ".join(str(a.get("value", a.get("description"))) for a in args))

    async def bind(self, name: str, handler: Callable[[str], None]) -> None:
        """Make ``window.<name>(string)`` in the page call ``handler(string)`` here."""
        self._bindings[name] = handler
        await self.call("Runtime.addBinding", {"name": name})

    async def goto(self, url: str) -> None:
        """Navigate and wait for the load event."""
        loaded: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._loads.append(loaded)
        try:
            result = await self.call("Page.navigate", {"url": url})
            if result.get("errorText"):
                raise PageError(f"{url}: {result['errorText']}")
            await asyncio.wait_for(loaded, _CALL_TIMEOUT_S)
        finally:
            self._loads.remove(loaded)

    async def close(self) -> None:
        """Close the tab (its page leaves any room it joined)."""
        self._bindings.clear()
        with contextlib.suppress(PageError):
            await self._browser.call("Target.closeTarget", {"targetId": self._target})
        self._browser.forget(self)

    async def evaluate(self, expression: str, *, await_promise: bool = True) -> Any:
        """The value of a script expression (awaited if it is a promise)."""
        result = await self.call(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": await_promise, "returnByValue": True},
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            description = details.get("exception", {}).get("description") or details.get("text")
            raise PageError(f"{expression[:60]}: {description}")
        return result.get("result", {}).get("value")

    async def screenshot(self, path: Path) -> Path:
        """Save the visible page as a PNG."""
        shot = await self.call("Page.captureScreenshot", {"format": "png"})
        await asyncio.to_thread(path.write_bytes, base64.b64decode(shot["data"]))
        return path
