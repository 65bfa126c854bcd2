"""An example worker run as a user runs it (``python examples/NAME.py start``), for the e2e tests
and the real-room bench: the subprocess, its JSON log records, and its shutdown."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

__all__ = ["EXAMPLES", "WorkerProcess"]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"  # in a checkout of the project


def _framework_room_gone(record: dict[str, Any]) -> bool:
    """livekit-agents' warning that a session event met a room that is gone (see problems())."""
    return (
        record.get("name") == "livekit.agents"
        and record.get("level") == "WARNING"
        and str(record.get("message", "")).startswith("failed to send session event")
    )


class WorkerProcess:
    """The worker subprocess, its log (JSON lines in ``start`` mode) and its shutdown."""

    def __init__(self, server_env: Mapping[str, str], script: str, *args: str, **env: str) -> None:
        """Start ``examples/<script> start ARGS`` with the server's ``LIVEKIT_*`` settings and
        ``env`` (other ``LIVEKIT_*`` / ``AVSYNC_*`` variables of this process are left out)."""
        if not (EXAMPLES / script).is_file():
            raise FileNotFoundError(f"{EXAMPLES / script}: the examples come with a checkout")
        self._log = tempfile.NamedTemporaryFile(prefix="worker-", suffix=".log", delete=False)
        self.log_path = Path(self._log.name)
        environment = {
            k: v for k, v in os.environ.items() if not k.startswith(("LIVEKIT_", "AVSYNC_"))
        }
        environment.update(server_env)
        environment.update(env)
        self.process = subprocess.Popen(
            [sys.executable, str(EXAMPLES / script), "start", *args],
            cwd=EXAMPLES,
            env=environment,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def records(self) -> list[dict[str, Any]]:
        """Every JSON log record so far."""
        out = []
        for line in self.text().splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
        return out

    def record_times(self, message: str) -> list[float]:
        """Wall times (``time.time()``) of the records whose message starts with ``message``."""
        return [
            datetime.fromisoformat(r["timestamp"]).timestamp()
            for r in self.records()
            if str(r.get("message", "")).startswith(message)
        ]

    def job_rooms(self) -> list[str]:
        """Rooms of the job requests this worker took (livekit-agents logs only those it can)."""
        return [
            str(r.get("room"))
            for r in self.records()
            if str(r.get("message", "")).startswith("received job request")
        ]

    def capacity(self) -> tuple[str, float] | None:
        """The worker's latest capacity report: ``("full" | "available", load)``, or None yet.

        livekit-agents logs it only when its status changes; the load is ``load_fnc``'s figure
        plus the jobs it has accepted but not yet started. A registered worker that has logged no
        change is still in its initial status, available (its load then unknown: NaN).
        """
        records = self.records()
        for record in reversed(records):
            message = str(record.get("message", ""))
            if message.startswith(("worker is at full capacity", "worker is below capacity")):
                status = "full" if "full" in message else "available"
                return status, float(record.get("load", float("nan")))
        if any(record.get("message") == "registered worker" for record in records):
            return "available", float("nan")
        return None

    def http_port(self) -> int | None:
        """The worker's HTTP (health) port, from its log (it may be any free one: port 0)."""
        for record in self.records():
            match = re.fullmatch(r"HTTP server listening on :(\d+)", str(record.get("message")))
            if match:
                return int(match.group(1))
        return None

    async def status(self) -> dict[str, Any]:
        """The worker's own report (livekit-agents' ``/worker`` page): load, active jobs..."""
        port = self.http_port()
        if port is None:
            raise AssertionError(f"the worker has not logged its HTTP port:\n{self.tail()}")
        # it listens on all interfaces; with port 0, IPv4 and IPv6 get different ports and the
        # log names one of them: ask both loopbacks
        timeout = aiohttp.ClientTimeout(total=5)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            for host in ("127.0.0.1", "[::1]"):
                try:
                    async with http.get(f"http://{host}:{port}/worker") as response:
                        response.raise_for_status()
                        return dict(await response.json())
                except aiohttp.ClientConnectorError as exc:
                    refused = exc
        raise AssertionError(f"the worker's HTTP port {port} refused on both loopbacks: {refused}")

    async def load(self) -> float:
        """The load of the worker's latest periodic reading."""
        return float((await self.status()).get("worker_load", 0.0))

    async def active_jobs(self) -> int:
        """How many jobs the worker is running now (assigned and not yet ended)."""
        return int((await self.status()).get("active_jobs", 0))

    def wait_for(self, message: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited ({self.process.returncode}):\n{self.tail()}")
            if message in self.text():
                return
            time.sleep(0.1)
        raise AssertionError(f"worker did not log {message!r} within {timeout:g} s:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.text().splitlines()[-lines:])

    def mark(self) -> int:
        """A place in the log: :meth:`problems` ``(since=mark)`` looks only after it."""
        return len(self.text().splitlines())

    def problems(self, since: int = 0) -> list[str]:
        """Tracebacks and error records (of the agent and of livekit_avsync) after line ``since``.

        Two reports are not failures of ours: the Rust SDK's own ``livekit`` logger reports a
        room the server deleted as an error, and livekit-agents' session-event writer warns,
        by design instead of raising, when an event it queued meets a room that is gone
        (``remote_session.py``: "failed to send session event", with its traceback).
        """
        found = []
        for line in self.text().splitlines()[since:]:
            record: dict[str, Any] | None = None
            if line.startswith("{"):
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    record = None
            if record is None:
                if "Traceback" in line:
                    found.append(line)
                continue
            if _framework_room_gone(record):
                continue
            if record.get("level") in ("ERROR", "CRITICAL") and record.get("name") != "livekit":
                found.append(str(record.get("message")))
            elif "Traceback" in line:
                found.append(str(record.get("message")))
        return found

    def terminate(self, timeout: float) -> float:
        """SIGTERM; seconds until it exited (kills it and raises if longer than ``timeout``)."""
        start = time.monotonic()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
                raise AssertionError(f"worker still running {timeout:g} s after SIGTERM") from None
        return time.monotonic() - start

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self._log.close()
        self.log_path.unlink(missing_ok=True)
