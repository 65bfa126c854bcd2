"""LocalServer: a livekit-server process bound to and advertising only 127.0.0.1."""

from __future__ import annotations

import secrets
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from .build import server_binary

__all__ = ["LocalServer"]

_READY_TIMEOUT_S = 30.0
_STOP_TIMEOUT_S = 10.0

# ICE runs over TCP on 127.0.0.1 only: `force_tcp` leaves no UDP socket, `node_ip` and the
# interface/IP filters keep every server candidate on loopback, `use_external_ip: false` and a
# loopback `stun_servers` entry stop the server (and the clients it configures) from asking any
# public STUN server, which it would otherwise hand to every client.
_CONFIG = """\
port: {http_port}
bind_addresses: ["127.0.0.1"]
rtc:
  tcp_port: {tcp_port}
  force_tcp: true
  node_ip: 127.0.0.1
  use_external_ip: false
  enable_loopback_candidate: true
  stun_servers: ["127.0.0.1:{tcp_port}"]
  interfaces:
    includes: ["lo"]
  ips:
    includes: ["127.0.0.0/8"]
turn:
  enabled: false
keys:
  {api_key}: {api_secret}
logging:
  level: info
"""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalServer:
    """Runs livekit-server on loopback with fresh keys; ``url``/``api_key``/``api_secret`` are
    what clients need. Use as a context manager, or :meth:`start` / :meth:`stop`.

    The keys are random per server and only ever written to its private config file.
    """

    def __init__(self, binary: Path | None = None, *, log_path: Path | None = None) -> None:
        self._binary = binary
        self._dir = tempfile.TemporaryDirectory(prefix="livekit-avsync-server-")
        self.log_path = log_path or Path(self._dir.name) / "server.log"
        self.api_key = "avsync-" + secrets.token_hex(4)
        self.api_secret = secrets.token_urlsafe(32)
        self.http_port = _free_port()
        self.tcp_port = _free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.http_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def env(self) -> dict[str, str]:
        """``LIVEKIT_URL`` / ``LIVEKIT_API_KEY`` / ``LIVEKIT_API_SECRET`` for a client process."""
        return {
            "LIVEKIT_URL": self.url,
            "LIVEKIT_API_KEY": self.api_key,
            "LIVEKIT_API_SECRET": self.api_secret,
        }

    def start(self) -> LocalServer:
        """Start the server and wait until its HTTP endpoint answers."""
        if self._process is not None:
            return self
        binary = self._binary or server_binary()
        config = Path(self._dir.name) / "livekit.yaml"
        config.write_text(
            _CONFIG.format(
                http_port=self.http_port,
                tcp_port=self.tcp_port,
                api_key=self.api_key,
                api_secret=self.api_secret,
            )
        )
        config.chmod(0o600)
        log = open(self.log_path, "wb")
        self._process = subprocess.Popen(
            [str(binary), "--config", str(config)], stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + _READY_TIMEOUT_S
        assert self._process is not None
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"livekit-server exited with {self._process.returncode}: {self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(self.http_url, timeout=1.0) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"livekit-server did not answer within {_READY_TIMEOUT_S:g} s")

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the server's log (for failure messages)."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after a bound) and remove its files."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._dir.cleanup()

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
