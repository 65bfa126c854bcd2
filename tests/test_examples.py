"""The example workers: they import, and missing settings give one clear line, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _run(script: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        cwd=EXAMPLES,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "script", ["local_avatar_agent.py", "anam_agent.py", "lemonslice_agent.py"]
)
def test_missing_settings_give_one_clear_line(script: str, tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LIVEKIT_", "ANAM_", "LEMONSLICE_"))
    }
    result = _run(script, "dev", env=env)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "LIVEKIT_URL" in lines[0] and "Traceback" not in result.stderr


def test_env_example_lists_every_variable_the_code_reads() -> None:
    """Every ``setting(..., "NAME")`` / ``REQUIRED`` name in the package and examples has a line
    in ``.env.example``, so a user filling it in misses nothing."""
    import re

    root = EXAMPLES.parent
    sources = [*(root / "livekit_avsync").rglob("*.py"), *EXAMPLES.glob("*.py")]
    text = "\n".join(p.read_text() for p in sources)
    names = set(re.findall(r'"((?:LIVEKIT|ANAM|LEMONSLICE)_[A-Z_]+)"', text))
    assert {"LIVEKIT_URL", "ANAM_API_KEY", "LEMONSLICE_API_KEY"} <= names  # the scan works
    listed = set(re.findall(r"^([A-Z_]+)=", (root / ".env.example").read_text(), re.M))
    assert names - listed == set(), f"missing from .env.example: {sorted(names - listed)}"


@pytest.mark.parametrize(
    ("argv", "env", "missing"),
    [
        (["console"], {}, None),  # console runs locally: no LiveKit server settings needed
        (["download-files"], {}, None),
        (["dev"], {}, "LIVEKIT_URL"),
        (["console"], {"AVSYNC_AVATAR": "anam"}, "ANAM_API_KEY"),  # the avatar still needs keys
    ],
)
def test_settings_are_demanded_only_where_the_mode_needs_them(
    argv: list[str], env: dict[str, str], missing: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib

    for name in [k for k in os.environ if k.startswith(("LIVEKIT_", "ANAM_", "AVSYNC_"))]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(EXAMPLES.parent / "tests")  # no .env file here to load
    monkeypatch.syspath_prepend(str(EXAMPLES))
    monkeypatch.setattr(sys, "argv", ["local_avatar_agent.py", *argv])
    worker = importlib.import_module("avatar_worker")
    if missing is None:
        worker.check_settings()
    else:
        with pytest.raises(SystemExit, match=missing):
            worker.check_settings()
