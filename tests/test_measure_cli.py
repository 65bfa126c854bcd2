"""``livekit-avsync measure``: marker files with a known offset are measured back; bad input
gets one clear line on stderr and a non-zero exit code."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from livekit_avsync.cli.main import main
from livekit_avsync.measure.files import generate_marker_file, measure_file


def _one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("livekit-avsync")
    return lines[0]


@pytest.mark.parametrize("offset_ms", [80.0, -40.0, 0.0])
def test_measure_recovers_a_known_offset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], offset_ms: float
) -> None:
    media, report = tmp_path / "marker.mp4", tmp_path / "report.json"
    args = ["measure", "--generate", str(media), "--duration", "4", "--offset-ms", str(offset_ms)]
    assert main(args) == 0
    assert "libx264 + aac" in capsys.readouterr().out
    assert main(["measure", str(media), "--json", str(report)]) == 0
    out = capsys.readouterr().out
    assert "p50" in out and "drift" in out
    data = json.loads(report.read_text())
    # markers every 0.5 s; with video 40 ms early, marker 0's frame would be before the start
    assert data["paired"] == (7 if offset_ms < 0 else 8)
    assert data["mean_ms"] == pytest.approx(offset_ms, abs=5)
    for marker in data["offsets"]:
        assert marker["offset_ms"] == pytest.approx(offset_ms, abs=5)
    assert data["max_abs_ms"] == pytest.approx(abs(offset_ms), abs=5)
    assert data["drift_ms_per_min"] is None  # 4 s: no drift figure (it would be noise)
    assert "drift n/a (run under a minute)" in out


def test_measure_plots_and_files_of_other_formats(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    media, plot = tmp_path / "m.mp4", tmp_path / "offsets.png"
    generate_marker_file(
        media,
        3.0,
        fps=25,
        width=320,
        height=240,
        sample_rate=24000,
        num_channels=2,
        video_offset=0.120,
    )
    assert main(["measure", str(media), "--plot", str(plot)]) == 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = measure_file(media)
    assert report.paired == 5  # every 15 frames at 25 fps: 0.6 s apart
    assert report.mean_ms == pytest.approx(120, abs=5)
    assert "+120." in capsys.readouterr().out


def test_measure_a_media_file_without_markers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    media = tmp_path / "plain.mp4"
    with av.open(str(media), "w") as out:
        video = out.add_stream("libx264", rate=30)
        video.width, video.height, video.pix_fmt = 160, 120, "yuv420p"
        audio = out.add_stream("aac", rate=48000)
        audio.layout = "mono"
        for n in range(30):
            frame = av.VideoFrame.from_ndarray(np.full((180, 160), 128, np.uint8), "yuv420p")
            frame.pts = n
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        for n in range(47):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.int16), "s16", "mono")
            frame.sample_rate, frame.pts, frame.time_base = 48000, n * 1024, Fraction(1, 48000)
            out.mux(audio.encode(frame))
        out.mux(audio.encode(None))
    assert main(["measure", str(media)]) == 1
    line = _one_line_error(capsys.readouterr().err)
    assert "no marker pairs found (0 marker frames, 0 tone bursts)" in line


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["measure", "{tmp}/missing.mp4"], "missing.mp4: no such file"),
        (["measure", "{tmp}/notes.txt"], "notes.txt: not a media file"),
        (["measure", "{tmp}"], "not a file"),
        (["measure"], "give a FILE to measure"),
        (["measure", "x.mp4", "--generate", "y.mp4"], "not both"),
        (["measure", "x.mp4", "--fps", "25"], "--fps can only be used with --generate"),
        (["measure", "--generate", "{tmp}/g.mp4", "--json", "j"], "apply to measuring FILE"),
        (["measure", "--generate", "{tmp}/g.mp4", "--width", "641"], "even size"),
        (["measure", "--generate", "{tmp}/g.mp4", "--duration", "-1"], "--duration must be"),
        (["measure", "--generate", "{tmp}/nodir/g.mp4"], "no such directory"),
        (["measure", "--width", "wide"], "invalid int value: 'wide'"),
        (["measure", "--nope"], "unrecognized arguments: --nope"),
        (["demo", "--fps", "0"], "fps must be"),
        ([], "choose a command ("),
    ],
)
def test_bad_input_gives_one_line_and_a_non_zero_exit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    (tmp_path / "notes.txt").write_text("not a video\n")
    code = main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    assert code != 0
    assert expected in _one_line_error(capsys.readouterr().err)
    assert not (tmp_path / "g.mp4").exists()


def test_help_explains_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["measure", "--help"]) == 0
    out = capsys.readouterr().out
    for text in ("--generate OUT", "--offset-ms", "positive = video late", "--json", "--plot"):
        assert text in out


def test_module_entry_point_in_a_subprocess(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "livekit_avsync.cli.main", "measure", str(tmp_path / "x.mp4")]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert result.stdout == ""
    assert _one_line_error(result.stderr) == (
        f"livekit-avsync measure: error: {tmp_path / 'x.mp4'}: no such file"
    )
