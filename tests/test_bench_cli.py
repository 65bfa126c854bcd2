"""``livekit-avsync bench``: a quick run prints both implementations side by side and valid JSON;
bad options end in one clear line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from livekit_avsync.cli.main import main


def test_quick_bench_prints_both_implementations_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench.json"
    code = main(["bench", "--quick", "--scenarios", "interleaved,interrupt", "--json", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    # progress: one line per run on stderr
    progress = [line for line in captured.err.splitlines() if line.startswith("[")]
    assert len(progress) == 4, captured.err
    assert all(" ... " in line and "failed" not in line for line in progress)

    table = captured.out
    sync_rows = [line.split() for line in table.splitlines() if line.startswith("interleaved")]
    assert {row[1] for row in sync_rows} == {"livekit_avsync", "rtc"}
    assert "Interrupts" in table and "Targets (livekit_avsync)" in table
    after = table.split("Interrupts")[1].splitlines()
    interrupt_rows = [line.split() for line in after if line.startswith("interrupt ")]
    assert {row[1] for row in interrupt_rows} == {"livekit_avsync", "rtc"}

    data = json.loads(out.read_text())
    assert data["errors"] == []
    runs = {(r["scenario"], r["implementation"]) for r in data["scenarios"]}
    assert runs == {(s, i) for s in ("interleaved", "interrupt") for i in ("livekit_avsync", "rtc")}
    for r in data["scenarios"]:
        assert r["report"]["paired"] > 0
        assert r["skew_p95_ms"] is not None
    interrupts = [r for r in data["scenarios"] if r["scenario"] == "interrupt"]
    assert all(len(r["interrupts"]) == 1 for r in interrupts)
    assert data["cpu"] == [] and data["memory"] == []


@pytest.mark.parametrize(
    ("argv", "message", "exit_code"),
    [
        (["--scenarios", "interleaved,nope"], "unknown scenarios nope", 1),
        (["--implementations", "mine"], "unknown implementations mine", 1),
        (["--scenarios", ","], "needs at least one name", 1),
        (["--duration", "-3"], "must be a positive number", 2),
        (["--json", "/no/such/dir/out.json"], "no such directory", 1),
    ],
)
def test_bad_options_end_in_one_line(
    argv: list[str], message: str, exit_code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["bench", *argv])
    err = capsys.readouterr().err.strip()
    assert code == exit_code
    assert message in err
    assert len(err.splitlines()) == 1
