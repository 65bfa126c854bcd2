"""livekit-client for the viewer page: installed from npm into a cache folder on first use.

The page imports livekit-client's own ES module build; that code is never copied into this
project. :func:`client_module` runs ``npm ci`` on the committed ``npm/package.json`` and
``npm/package-lock.json`` (one pinned version, integrity-checked) into
``<cache>/web-<lock digest>/`` and returns the module's path; later runs reuse it.
``LIVEKIT_AVSYNC_NODE_MODULES`` names an existing ``node_modules`` folder to use instead.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..devserver.build import cache_dir

__all__ = ["CLIENT_MODULE", "CLIENT_VERSION", "WebModulesUnavailable", "client_module"]

_NPM = Path(__file__).with_name("npm")
CLIENT_MODULE = Path("livekit-client") / "dist" / "livekit-client.esm.mjs"
CLIENT_VERSION: str = json.loads((_NPM / "package.json").read_text())["dependencies"][
    "livekit-client"
]
_INSTALL_TIMEOUT_S = 600.0


class WebModulesUnavailable(RuntimeError):
    """livekit-client could not be had (no npm, or npm failed); the message says why."""


def _install_dir() -> Path:
    digest = hashlib.sha256((_NPM / "package-lock.json").read_bytes()).hexdigest()[:12]
    return cache_dir() / f"web-{digest}"


def client_module(*, install: bool = True) -> Path:
    """The path of livekit-client's ES module (``livekit-client.esm.mjs``), installing it with
    ``npm ci`` first if it is not cached and ``install`` is true.

    Raises :class:`WebModulesUnavailable` when npm is missing or the install fails.
    """
    explicit = os.environ.get("LIVEKIT_AVSYNC_NODE_MODULES")
    if explicit:
        path = Path(explicit) / CLIENT_MODULE
        if not path.is_file():
            raise WebModulesUnavailable(
                f"LIVEKIT_AVSYNC_NODE_MODULES={explicit} has no {CLIENT_MODULE}"
            )
        return path
    target = _install_dir()
    path = target / "node_modules" / CLIENT_MODULE
    if path.is_file():
        return path
    if not install:
        raise WebModulesUnavailable(f"livekit-client {CLIENT_VERSION} is not installed ({target})")
    npm = shutil.which("npm")
    if npm is None:
        raise WebModulesUnavailable(
            f"npm is needed once to install livekit-client {CLIENT_VERSION} for the viewer page "
            "(apt-get install npm), or set LIVEKIT_AVSYNC_NODE_MODULES"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / ".web.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one install at a time; the others reuse it
        if not path.is_file():
            _npm_ci(npm, target)
    return path


def _npm_ci(npm: str, target: Path) -> None:
    """``npm ci`` of the committed lock file in a scratch folder, then move it into place."""
    scratch = Path(tempfile.mkdtemp(prefix=".web-", dir=target.parent))
    try:
        for name in ("package.json", "package-lock.json"):
            shutil.copy(_NPM / name, scratch / name)
        command = [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"]
        try:
            result = subprocess.run(
                command, cwd=scratch, capture_output=True, text=True, timeout=_INSTALL_TIMEOUT_S
            )
        except subprocess.TimeoutExpired:
            raise WebModulesUnavailable(
                f"npm ci (livekit-client {CLIENT_VERSION}) took over {_INSTALL_TIMEOUT_S:g} s"
            ) from None
        if result.returncode != 0 or not (scratch / "node_modules" / CLIENT_MODULE).is_file():
            detail = (result.stderr or result.stdout).strip().splitlines()[-5:]
            raise WebModulesUnavailable(
                f"npm ci (livekit-client {CLIENT_VERSION}) failed: " + " | ".join(detail)
            )
        shutil.rmtree(target, ignore_errors=True)
        os.replace(scratch, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
