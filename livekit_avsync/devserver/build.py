"""Get a ``livekit-server`` binary: ``go install`` of the published module, cached for reuse."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

__all__ = ["SERVER_MODULE", "SERVER_VERSION", "ServerUnavailable", "cache_dir", "server_binary"]

SERVER_MODULE = "github.com/livekit/livekit-server/cmd/server"
SERVER_VERSION = "v1.13.5"
_BUILD_TIMEOUT_S = 1200.0


class ServerUnavailable(RuntimeError):
    """No livekit-server can be had here; the message says why in one line."""


def cache_dir() -> Path:
    """``$LIVEKIT_AVSYNC_CACHE``, else ``$XDG_CACHE_HOME/livekit-avsync`` (``~/.cache``)."""
    explicit = os.environ.get("LIVEKIT_AVSYNC_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "livekit-avsync"


def server_binary(*, build: bool = True) -> Path:
    """The livekit-server to run: ``$LIVEKIT_SERVER_BIN``, else the cached build of
    :data:`SERVER_VERSION`, built now with ``go install`` if missing and ``build`` is true.

    Raises :class:`ServerUnavailable` when there is no binary and no Go, or the build fails
    (with ``go``'s own error text, e.g. a module proxy that refused).
    """
    explicit = os.environ.get("LIVEKIT_SERVER_BIN")
    if explicit:
        path = Path(explicit)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise ServerUnavailable(f"LIVEKIT_SERVER_BIN={explicit} is not an executable file")
        return path
    target = cache_dir() / f"livekit-server-{SERVER_VERSION}"
    if target.is_file():
        return target
    if not build:
        raise ServerUnavailable(f"livekit-server {SERVER_VERSION} is not built yet ({target})")
    go = shutil.which("go")
    if go is None:
        raise ServerUnavailable("neither LIVEKIT_URL nor Go is available to get a LiveKit server")
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time; the others reuse it
        if not target.is_file():
            _go_install(go, target)
    return target


def _go_install(go: str, target: Path) -> None:
    """``go install MODULE@VERSION`` into a scratch GOBIN, then move the binary into place."""
    with tempfile.TemporaryDirectory(dir=target.parent) as gobin:
        env = {**os.environ, "CGO_ENABLED": "0", "GOBIN": gobin}
        try:
            result = subprocess.run(
                [go, "install", f"{SERVER_MODULE}@{SERVER_VERSION}"],
                env=env,
                capture_output=True,
                text=True,
                timeout=_BUILD_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired:
            raise ServerUnavailable(
                f"go install {SERVER_MODULE}@{SERVER_VERSION} took over {_BUILD_TIMEOUT_S:g} s"
            ) from None
        built = Path(gobin) / "server"
        if result.returncode != 0 or not built.is_file():
            detail = (result.stderr or result.stdout).strip().splitlines()[-5:]
            raise ServerUnavailable(
                f"go install {SERVER_MODULE}@{SERVER_VERSION} failed: " + " | ".join(detail)
            )
        os.replace(built, target)
