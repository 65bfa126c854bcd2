"""``livekit-avsync bench``: our AVSynchronizer and ``rtc.AVSynchronizer`` side by side."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import TextIO

from ..measure.bench import BENCH_ITEMS, BenchConfig, Progress, format_tables, run_bench
from ..measure.scenarios import IMPLEMENTATIONS, SCENARIOS
from . import CLIError

__all__ = ["add_parser", "run"]

_DESCRIPTION = f"""\
Benchmark lip-sync on real LiveKit sources read back through local tracks (no server needed).

Every scenario pushes marker media (numbered video frames, tone bursts) into a synchronizer the
way a kind of avatar provider would, through fresh rtc.AudioSource / rtc.VideoSource, and
measures what comes out: A/V offset (p50/p95/max, drift), dropped and repeated frames and,
for interrupts, how much of the cut turn still plays. "cpu" measures process CPU per 1280x720
frame, "memory" runs the interleaved scenario for --long-seconds under tracemalloc.

Items: {", ".join(BENCH_ITEMS)}.
Scenarios: {"; ".join(f"{s.name}: {s.description}" for s in SCENARIOS.values())}.

  livekit-avsync bench --quick
  livekit-avsync bench --json bench.json            # full run, about 30 minutes
  livekit-avsync bench --scenarios interrupt,separate --duration 10
  livekit-avsync bench --quick --busy 1               # the same beside one busy core
  livekit-avsync bench --scale --plot scale.png       # sessions per worker (real server)
  livekit-avsync bench --browser --quick              # as headless Chromium shows it
"""


class _StderrProgress(Progress):
    """One line per run on stderr: the label when it starts, the summary when it ends."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def begin(self, index: int, total: int, label: str) -> None:
        self._stream.write(f"[{index}/{total}] {label} ... ")
        self._stream.flush()

    def end(self, summary: str) -> None:
        self._stream.write(summary + "\n")
        self._stream.flush()


def _names(value: str, known: tuple[str, ...], what: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in value.split(",") if n.strip())
    if not names:
        raise CLIError(f"--{what} needs at least one name (known: {', '.join(known)})")
    unknown = [n for n in names if n not in known]
    if unknown:
        raise CLIError(f"unknown {what} {', '.join(unknown)}; known: {', '.join(known)}")
    return tuple(dict.fromkeys(names))


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (value > 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def _cores(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more cores, got {value}")
    return value


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``bench`` subcommand to ``subparsers`` and return its parser."""
    parser = subparsers.add_parser(
        "bench",
        help="benchmark livekit_avsync.AVSynchronizer against rtc.AVSynchronizer",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick", action="store_true", help="short runs (seconds each), e.g. for CI"
    )
    parser.add_argument("--json", metavar="PATH", help="also write all results as JSON to PATH")
    parser.add_argument(
        "--scenarios",
        metavar="LIST",
        help=f"comma-separated items to run (default: all of {', '.join(BENCH_ITEMS)})",
    )
    parser.add_argument(
        "--implementations",
        metavar="LIST",
        help=f"comma-separated synchronizers (default: {','.join(IMPLEMENTATIONS)})",
    )
    parser.add_argument(
        "--duration", type=_seconds, metavar="S", help="media seconds per scenario run"
    )
    parser.add_argument(
        "--long-seconds",
        type=_seconds,
        metavar="S",
        help="length of the memory run (default 600, 10 with --quick)",
    )
    parser.add_argument(
        "--cpu-seconds",
        type=_seconds,
        metavar="S",
        help="length of each CPU run (default 20, 3 with --quick)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the jitter (default 0)")
    parser.add_argument(
        "--room",
        action="store_true",
        help="run the scenarios through a real LiveKit room to a real subscriber (LIVEKIT_URL "
        "and keys, or a local livekit-server built with Go)",
    )
    parser.add_argument(
        "--scale",
        action="store_true",
        help="how many avatars one example worker carries: 1..N sessions on a real server, "
        "CPU per session by part, quality at the subscribers (LIVEKIT_URL or a local server)",
    )
    parser.add_argument(
        "--sizes", metavar="LIST", help="with --scale: 360p25,720p25,720p30 (default all)"
    )
    parser.add_argument(
        "--counts", metavar="LIST", help="with --scale: session counts (default 1,2,3,4,6)"
    )
    parser.add_argument(
        "--providers", metavar="LIST", help="with --scale: local,replay (default local)"
    )
    parser.add_argument("--plot", metavar="PNG", help="with --scale: plot cost and quality")
    parser.add_argument(
        "--browser",
        action="store_true",
        help="run the scenarios through a real room into the viewer page in headless Chromium, "
        "measured in the page (needs Chromium and npm; server as for --room)",
    )
    parser.add_argument(
        "--screenshot",
        metavar="PNG",
        help="with --browser: save a picture of the viewer page showing the example avatar",
    )
    parser.add_argument(
        "--busy",
        type=_cores,
        default=0,
        metavar="N",
        help="keep N cores busy with spinning processes beside every run (a busy machine)",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    """Run ``bench`` with parsed ``args``; print the tables; return 1 if any run failed."""
    if args.browser:
        from .bench_browser import run_browser_bench_cli

        return run_browser_bench_cli(args)
    if args.room:
        from .bench_room import run_room_bench_cli

        return run_room_bench_cli(args)
    if args.scale:
        from .bench_scale import run_scale_bench_cli

        return run_scale_bench_cli(args)
    items = (
        BENCH_ITEMS if args.scenarios is None else _names(args.scenarios, BENCH_ITEMS, "scenarios")
    )
    impls = (
        tuple(IMPLEMENTATIONS)
        if args.implementations is None
        else _names(args.implementations, tuple(IMPLEMENTATIONS), "implementations")
    )
    json_path = Path(args.json) if args.json else None
    if json_path is not None and not json_path.parent.is_dir():
        raise CLIError(f"{json_path.parent}: no such directory")
    config = BenchConfig(
        quick=args.quick,
        items=items,
        implementations=impls,
        duration=args.duration,
        long_seconds=args.long_seconds,
        cpu_seconds=args.cpu_seconds,
        seed=args.seed,
        busy=args.busy,
    )
    if not args.verbose:
        # rtc.AVSynchronizer warns on every late frame of a 25 fps input; keep progress readable
        logging.getLogger("livekit.rtc.synchronizer").setLevel(logging.ERROR)
    results = asyncio.run(run_bench(config, _StderrProgress(sys.stderr)))
    sys.stdout.write(format_tables(results))
    sys.stdout.flush()
    if json_path is not None:
        json_path.write_text(json.dumps(results.to_dict(), indent=2, default=str) + "\n")
    return 1 if results.errors else 0
