"""``livekit-avsync measure``: write marker media, or measure the A/V offset of a recording."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from ..measure.analysis import SyncReport
from ..measure.files import generate_marker_file, measure_file
from . import CLIError

__all__ = ["add_parser", "run"]

_DESCRIPTION = """\
Measure audio/video sync with marker media.

Marker media numbers every video frame with large black/white blocks and plays a short tone
burst every 15 frames (0.5 s at 30 fps), in step with a white flash. Play it through the
pipeline under test, record the result, and measure the recording: each marker's video
frame is paired with its tone burst and the offset is video time minus audio time
(positive = video late).

  livekit-avsync measure --generate marker.mp4 --duration 60
  livekit-avsync measure recording.mp4 --json offsets.json --plot offsets.png
  livekit-avsync measure --room my-room --seconds 30     # live, in a room (LIVEKIT_* env)
"""

_GENERATE_DEFAULTS = {
    "duration": 10.0,
    "fps": 30.0,
    "width": 640,
    "height": 360,
    "sample_rate": 48000,
    "offset_ms": 0.0,
}


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``measure`` subcommand to ``subparsers`` and return its parser."""
    parser = subparsers.add_parser(
        "measure",
        help="write marker media, or measure the A/V offset of a recording of it",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "file", nargs="?", metavar="FILE", help="media file to measure (a recording of markers)"
    )
    out = parser.add_argument_group("measuring FILE")
    out.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    out.add_argument(
        "--plot", metavar="PATH", help="also plot offset over time to PATH (PNG, needs matplotlib)"
    )
    out.add_argument(
        "--max-offset-ms",
        type=float,
        metavar="MS",
        help="largest offset to pair a frame with a burst (default: 2000 at 30 fps)",
    )
    live = parser.add_argument_group(
        "measuring a room live (--room; LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET)"
    )
    live.add_argument("--room", metavar="NAME", help="join room NAME as a hidden viewer")
    live.add_argument(
        "--identity",
        metavar="ID",
        help="the participant to measure (default: the first "
        "one publishing a microphone and a camera)",
    )
    live.add_argument("--seconds", type=float, metavar="S", help="how long (default 30)")
    gen = parser.add_argument_group("writing marker media (--generate)")
    gen.add_argument(
        "--generate", metavar="OUT", help="write marker media to OUT (MP4: H.264 + AAC)"
    )
    gen.add_argument("--duration", type=float, metavar="S", help="length in seconds (default 10)")
    gen.add_argument("--fps", type=float, help="video frame rate (default 30)")
    gen.add_argument("--width", type=int, help="video width, even (default 640)")
    gen.add_argument("--height", type=int, help="video height, even (default 360)")
    gen.add_argument("--sample-rate", type=int, metavar="HZ", help="audio rate (default 48000)")
    gen.add_argument(
        "--offset-ms",
        type=float,
        metavar="MS",
        help="shift the video against the audio by MS (positive = video late; default 0), "
        "to make a file with a known offset",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    """Run ``measure`` with parsed ``args``; return the exit code."""
    generate_opts = [key for key in _GENERATE_DEFAULTS if getattr(args, key) is not None]
    if args.room is not None:
        if args.file is not None or args.generate is not None or generate_opts or args.plot:
            raise CLIError("--room measures a room live: give no FILE, --generate or --plot")
        from .measure_room import run_room

        return run_room(args)
    if args.identity is not None or args.seconds is not None:
        raise CLIError("--identity and --seconds apply to --room")
    if args.generate is not None:
        if args.file is not None:
            raise CLIError("give either FILE to measure or --generate OUT, not both")
        if args.json or args.plot or args.max_offset_ms is not None:
            raise CLIError("--json, --plot and --max-offset-ms apply to measuring FILE")
        return _generate(args)
    if args.file is None:
        raise CLIError("give a FILE to measure, or --generate OUT to write marker media")
    if generate_opts:
        flags = ", ".join("--" + key.replace("_", "-") for key in generate_opts)
        raise CLIError(f"{flags} can only be used with --generate")
    return _measure(args)


def _generate(args: argparse.Namespace) -> int:
    opts = {key: getattr(args, key) for key in _GENERATE_DEFAULTS}
    opts = {key: _GENERATE_DEFAULTS[key] if v is None else v for key, v in opts.items()}
    for key in ("duration", "fps"):
        if not (math.isfinite(opts[key]) and opts[key] > 0):
            raise CLIError(f"--{key} must be a positive number, got {opts[key]}")
    if not math.isfinite(opts["offset_ms"]):
        raise CLIError(f"--offset-ms must be a number, got {opts['offset_ms']}")
    out = Path(args.generate)
    if not out.parent.is_dir():
        raise CLIError(f"{out.parent}: no such directory")
    video_codec, audio_codec = generate_marker_file(
        out,
        opts["duration"],
        fps=opts["fps"],
        width=opts["width"],
        height=opts["height"],
        sample_rate=opts["sample_rate"],
        video_offset=opts["offset_ms"] / 1000,
    )
    print(
        f"wrote {out}: {opts['duration']:g} s, {opts['width']}x{opts['height']} "
        f"@ {opts['fps']:g} fps, {opts['sample_rate']} Hz, video offset "
        f"{opts['offset_ms']:+g} ms ({video_codec} + {audio_codec})"
    )
    return 0


def _measure(args: argparse.Namespace) -> int:
    max_offset = None if args.max_offset_ms is None else args.max_offset_ms / 1000
    if max_offset is not None and not max_offset > 0:
        raise CLIError(f"--max-offset-ms must be positive, got {args.max_offset_ms}")
    report = measure_file(args.file, max_offset=max_offset)
    if not report.offsets:
        raise CLIError(
            f"{args.file}: no marker pairs found ({report.video_markers} marker frames, "
            f"{report.audio_bursts} tone bursts); is it a recording of livekit-avsync markers?"
        )
    _print_report(report)
    if args.json:
        data = {"file": str(args.file), **report.to_dict()}
        Path(args.json).write_text(json.dumps(data, indent=2) + "\n")
    if args.plot:
        _plot(report, Path(args.plot), str(args.file))
    return 0


def _print_report(report: SyncReport) -> None:
    print(f"{'marker':>6} {'turn':>4} {'audio s':>9} {'video s':>9} {'offset ms':>10}")
    for m in report.offsets:
        print(
            f"{m.marker:>6} {m.turn:>4} {m.audio_time:>9.3f} {m.video_time:>9.3f} "
            f"{m.offset_ms:>+10.1f}"
        )
    if report.unpaired_video or report.unpaired_audio:
        print(
            f"unpaired: {len(report.unpaired_video)} marker frames, "
            f"{len(report.unpaired_audio)} tone bursts"
        )
    print(report.summary())


def _plot(report: SyncReport, path: Path, title: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise CLIError("--plot needs matplotlib: pip install 'livekit-avsync[demo]'") from exc
    times = [m.audio_time for m in report.offsets]
    offsets = [m.offset_ms for m in report.offsets]
    fig, ax = plt.subplots(figsize=(9, 4))
    try:
        ax.axhline(0.0, color="grey", linewidth=0.8)
        ax.plot(times, offsets, marker="o", markersize=3, linewidth=1, label="video - audio")
        if report.mean_ms is not None:
            ax.axhline(report.mean_ms, color="tab:red", linestyle="--", linewidth=1, label="mean")
        ax.set_xlabel("audio time (s)")
        ax.set_ylabel("offset (ms, + = video late)")
        ax.set_title(f"{title}\n{report.summary()}", fontsize=9)
        ax.legend(loc="best", fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
