"""``livekit-avsync demo``: the offline demo, with progress on stderr and a summary on stdout."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import re
import sys
from pathlib import Path
from typing import TextIO

from ..demo import DemoOptions, DemoStatus, run_demo
from . import CLIError

__all__ = ["add_parser", "run"]

_DESCRIPTION = """\
Run a talking avatar offline (no keys, no server) and measure its lip sync.

A LocalAvatar speaks a bundled speech clip through a real livekit-agents AgentSession and the
AVSynchronizer into LiveKit audio/video sources. Both are read back through local loopback
streams, the way a viewer would get them; the user barges in at 60% of the clip, and the avatar
replies. Every video frame carries its number, and every 15th frame (0.6 s at 25 fps) the
sound a short beep, so the skew between picture and sound is measured at each beep.

Writes DIR/demo.mp4 (what the viewer saw and heard), DIR/sync-report.json and
DIR/sync-report.png (skew over time, the interrupt marked).

  livekit-avsync demo
  livekit-avsync demo --resolution 1280x720 --latency 0.3 --jitter 0.05 --out /tmp/demo
"""

_RESOLUTION = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def _resolution(text: str) -> tuple[int, int]:
    match = _RESOLUTION.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 640x360, got {text!r}")
    return int(match.group(1)), int(match.group(2))


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``demo`` subcommand to ``subparsers`` and return its parser."""
    parser = subparsers.add_parser(
        "demo",
        help="run a local avatar offline, interrupt it, and measure its lip sync",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--duration",
        type=_number,
        metavar="S",
        help="total run time in seconds (default 12, longer if the turns need it)",
    )
    parser.add_argument("--fps", type=_number, default=25.0, help="video frame rate (default 25)")
    parser.add_argument(
        "--resolution", type=_resolution, metavar="WxH", help="video size (default 640x360)"
    )
    parser.add_argument("--width", type=int, metavar="PX", help="video width (default 640)")
    parser.add_argument("--height", type=int, metavar="PX", help="video height (default 360)")
    parser.add_argument(
        "--latency",
        type=_number,
        default=0.1,
        metavar="S",
        help="provider latency: speech in to face out, seconds (default 0.1)",
    )
    parser.add_argument(
        "--jitter",
        type=_number,
        default=0.02,
        metavar="S",
        help="random extra delay per provider frame, up to S seconds (default 0.02)",
    )
    when = parser.add_mutually_exclusive_group()
    when.add_argument(
        "--interrupt-at",
        type=_number,
        metavar="S",
        help="barge in S seconds into the first turn (default: at 60%% of the clip)",
    )
    when.add_argument(
        "--no-interrupt", action="store_true", help="let the first turn play to the end"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("out"),
        metavar="DIR",
        help="output directory (default out/)",
    )
    parser.add_argument(
        "--seed", type=int, default=1, help="seed of the simulated jitter (default 1)"
    )
    return parser


def run(args: argparse.Namespace) -> int:
    """Run ``demo`` with parsed ``args``; return the exit code."""
    if importlib.util.find_spec("matplotlib") is None:
        raise CLIError("the demo plots with matplotlib: pip install 'livekit-avsync[demo]'")
    width, height = 640, 360
    if args.resolution is not None:
        if args.width is not None or args.height is not None:
            raise CLIError("give --resolution or --width/--height, not both")
        width, height = args.resolution
    width = width if args.width is None else args.width
    height = height if args.height is None else args.height
    try:
        options = DemoOptions(
            out_dir=args.out,
            duration=args.duration,
            fps=args.fps,
            width=width,
            height=height,
            latency=args.latency,
            jitter=args.jitter,
            interrupt_at=args.interrupt_at,
            interrupt=not args.no_interrupt,
            seed=args.seed,
        )
    except ValueError as exc:
        raise CLIError(f"--{exc}") from None
    line = ProgressLine(sys.stderr)
    try:
        result = asyncio.run(run_demo(options, line.update))
    except ValueError as exc:
        raise CLIError(f"--{exc}" if str(exc).startswith(_OPTION_NAMES) else str(exc)) from None
    finally:
        line.done()
    for text in result.summary_lines():
        print(text)
    return 0


_OPTION_NAMES = ("duration ", "interrupt-at ")


class ProgressLine:
    """One line on ``stream`` updated in place on a terminal; a plain line per phase otherwise."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self._phase: str | None = None
        self._open = False

    def update(self, status: DemoStatus) -> None:
        skew = "" if status.skew_p95_ms is None else f"  skew p95 {status.skew_p95_ms:.0f} ms"
        text = f"[demo] {status.elapsed:4.1f}/{status.duration:.1f} s  {status.phase}{skew}"
        if self._tty:
            self._stream.write("\r" + text + "\x1b[K")
            self._open = True
        elif status.phase != self._phase:
            self._stream.write(text + "\n")
        self._phase = status.phase
        self._stream.flush()

    def done(self) -> None:
        if self._open:
            self._stream.write("\n")
            self._stream.flush()
            self._open = False
