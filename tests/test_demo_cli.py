"""``livekit-avsync demo``: a real run writes a playable MP4 that the meter finds in sync, a JSON
report and a PNG plot; bad arguments get one clear line; the MP4 writer places audio that
arrived in a clump where it really played."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import pytest

from livekit_avsync.cli.main import main
from livekit_avsync.demo.writer import Mp4Writer
from livekit_avsync.measure import (
    MarkerSpec,
    marker_audio_frame,
    marker_video_frame,
    measure_file,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_demo_writes_a_playable_mp4_in_sync_and_its_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    args = ["demo", "--out", str(out), "--resolution", "320x240", "--duration", "8"]
    assert main([*args, "--interrupt-at", "3", "--jitter", "0.01", "--seed", "3"]) == 0
    captured = capsys.readouterr()
    summary = captured.out
    assert "lip sync (video - audio)" in summary and " s into the turn: " in summary
    assert "Traceback" not in captured.err
    progress = captured.err.splitlines()  # not a terminal: one plain line per phase
    assert [line.split()[3] for line in progress] == [
        "warming",
        "speaking",
        "interrupted",
        "replying",
        "idle",
        "writing",
    ]

    # the MP4 plays: H.264 yuv420p video and AAC audio, both decodable, about 8 s long
    mp4 = out / "demo.mp4"
    with av.open(str(mp4)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert (video.codec_context.name, video.codec_context.pix_fmt) == ("h264", "yuv420p")
        assert (video.width, video.height) == (320, 240)
        assert audio.codec_context.name == "aac"
        frames = sum(1 for _ in container.decode(video))
    with av.open(str(mp4)) as container:
        samples = sum(f.samples for f in container.decode(audio=0))
        rate = container.streams.audio[0].rate
    assert 170 <= frames <= 205
    assert 7.5 <= samples / rate <= 8.1

    # the meter's own measurement of the file: in sync, many markers
    from_file = measure_file(mp4)
    assert from_file.paired >= 10
    assert from_file.p95_abs_ms is not None and from_file.p95_abs_ms <= 40

    # the JSON has the live measurement, the interrupt, the turns, the stats, the options
    data = json.loads((out / "sync-report.json").read_text())
    sync = data["sync"]
    assert sync["paired"] >= 10 and sync["p95_abs_ms"] <= 40
    assert {"offsets", "p50_abs_ms", "max_abs_ms", "mean_ms", "drift_ms_per_min"} <= set(sync)
    assert all(0 <= m["audio_time"] <= 8.5 for m in sync["offsets"])
    # the file's A/V offset is the one the viewer had
    assert from_file.mean_ms == pytest.approx(sync["mean_ms"], abs=5)
    interrupt = data["interrupt"]
    assert interrupt["at"] == pytest.approx(1.0 + 3.0, abs=0.4)
    assert interrupt["into_turn_s"] == pytest.approx(3.0, abs=0.05)
    for key in ("audio_tail_ms", "video_tail_ms"):
        assert 0 <= interrupt[key] < 500
    assert interrupt["stale_frames"] >= 0
    first, reply = data["turns"]
    assert first["interrupted"] and not reply["interrupted"]
    assert first["reported_s"] == pytest.approx(3.0, abs=0.1)
    assert first["heard_s"] == pytest.approx(first["reported_s"], abs=0.1)
    assert reply["heard_s"] == pytest.approx(reply["sent_s"], abs=0.1)
    assert data["synchronizer"]["video_frames_out"] >= 170
    assert data["options"] == {
        "out_dir": str(out),
        "duration": 8.0,
        "fps": 25.0,
        "width": 320,
        "height": 240,
        "latency": 0.1,
        "jitter": 0.01,
        "interrupt_at": 3.0,
        "interrupt": True,
        "seed": 3,
    }
    assert set(data["segments"]) == {
        "all",
        "after_startup",
        "speaking",
        "idle",
        "after_interrupt",
    }
    assert data["segments"]["speaking"]["markers"] >= 3
    assert data["mp4"]["paired"] == from_file.paired

    png = (out / "sync-report.png").read_bytes()
    assert png.startswith(PNG_MAGIC) and len(png) > 10_000


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--fps", "0"], "fps must be 10 to 60"),
        (["--resolution", "foo"], "expected WIDTHxHEIGHT"),
        (["--width", "641"], "width must be an even number"),
        (["--resolution", "640x360", "--height", "240"], "not both"),
        (["--latency", "-1"], "latency must be 0 to 2"),
        (["--duration", "3"], "needs at least"),
        (["--no-interrupt", "--duration", "8"], "needs at least"),
        (["--interrupt-at", "20"], "past the end"),
        (["--interrupt-at", "2", "--no-interrupt"], "not allowed with"),
    ],
)
def test_bad_arguments_get_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    out = tmp_path / "out"
    assert main(["demo", "--out", str(out), *args]) != 0
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("livekit-avsync") and expected in lines[0]
    assert "Traceback" not in err
    assert not out.exists(), "nothing is written for bad arguments"


def test_writer_spreads_a_clump_of_audio_back_over_when_it_played(tmp_path: Path) -> None:
    """A reader held up for 150 ms gets 15 audio frames at once: the file must still be in sync,
    also after the clump (audio stamped at the clump's arrival would be late ever after)."""
    fps, sr, w, h = 25.0, 48000, 320, 240
    spec = MarkerSpec(fps=fps)  # what measure_file assumes for a file without a spec tag
    path = tmp_path / "clump.mp4"
    writer = Mp4Writer(path, width=w, height=h, fps=fps, sample_rate=sr)
    t0, chunk = 100.0, sr // 100
    events: list[tuple[float, int, object]] = []
    for n in range(int(4 * fps)):
        events.append((t0 + n / fps, 0, marker_video_frame(n, w, h, spec=spec)))
    for i in range(400):  # 4 s of 10 ms audio frames; frames 100..114 arrive with frame 115
        arrival = t0 + i / 100 if not 100 <= i < 115 else t0 + 1.15
        frame = marker_audio_frame(i * chunk, chunk, sample_rate=sr, spec=spec)
        events.append((arrival, 1, frame))
    for t, kind, frame in sorted(events, key=lambda e: (e[0], e[1])):
        if kind == 0:
            writer.add_video(frame, t)  # type: ignore[arg-type]
        else:
            writer.add_audio(frame, t)  # type: ignore[arg-type]
    writer.close()
    report = measure_file(path)
    assert report.paired >= 7
    assert report.max_abs_ms is not None and report.max_abs_ms <= 3
    assert writer.duration == pytest.approx(4.0, abs=0.01)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.time_base == Fraction(1, 90000)
