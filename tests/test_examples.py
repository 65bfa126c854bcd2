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
