"""``livekit-avsync bench --scale``: how many avatars one worker carries (measure.scale_bench)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path

from ..devserver.worker import EXAMPLES
from ..measure.process_cpu import py_spy
from ..measure.scale_bench import (
    SCALE_SIZES,
    breaking_points,
    format_scale_table,
    plot_scale,
    record_marker_avatar,
    rows_to_json,
    run_scale_bench,
)
from . import CLIError

__all__ = ["run_scale_bench_cli"]

_PROVIDERS = ("local", "replay")
_RECORD_S = 12.0


def _list(
    value: str | None, default: tuple[str, ...], known: tuple[str, ...], what: str
) -> list[str]:
    names = list(default) if value is None else [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise CLIError(
            f"unknown {what} {', '.join(unknown) or '(none)'}; known: {', '.join(known)}"
        )
    return names


def _counts(value: str | None) -> list[int]:
    if value is None:
        return [1, 2, 3, 4, 6]
    try:
        counts = [int(n) for n in value.split(",") if n.strip()]
    except ValueError:
        raise CLIError(f"--counts must be whole numbers, got {value!r}") from None
    if not counts or counts != sorted(set(counts)) or counts[0] < 1:
        raise CLIError(f"--counts must be ascending positive numbers, got {value!r}")
    return counts


def run_scale_bench_cli(args: argparse.Namespace) -> int:
    """Run the scale bench; print its table (and plot); return 1 if any step failed."""
    if not (EXAMPLES / "local_avatar_agent.py").is_file():
        raise CLIError("--scale runs examples/local_avatar_agent.py: run it from a checkout")
    try:
        py_spy()  # the CPU split needs its profile: say so before any server starts
    except RuntimeError as exc:
        raise CLIError(str(exc)) from None
    sizes = _list(args.sizes, tuple(SCALE_SIZES), tuple(SCALE_SIZES), "sizes")
    providers = _list(args.providers, ("local",), _PROVIDERS, "providers")
    counts = _counts(args.counts)
    seconds = args.duration or (5.0 if args.quick else 10.0)
    from .room_server import room_server

    rows = []
    with (
        tempfile.TemporaryDirectory(prefix="avsync-scale-") as tmp,
        room_server("--scale") as server,
    ):
        for size in sizes:
            chosen = []
            for provider in providers:
                if provider == "replay":
                    width, height, fps = SCALE_SIZES[size]
                    path = Path(tmp) / f"{size}.mkv"
                    print(f"scale: recording {size} provider output", file=sys.stderr, flush=True)
                    asyncio.run(record_marker_avatar(path, width, height, fps, _RECORD_S))
                    provider = f"replay:{path}"
                chosen.append(provider)
            rows += asyncio.run(
                run_scale_bench(
                    server,
                    sizes=[size],
                    providers=chosen,
                    counts=counts,
                    seconds=seconds,
                    progress=lambda label: print(f"scale: {label}", file=sys.stderr, flush=True),
                )
            )
    sys.stdout.write(
        "Sessions on one worker (real server; % of one core per session; p95 = |skew| at the "
        "subscribers as a syncing receiver shows it; conceal = audio the receiver made up)\n"
    )
    sys.stdout.write(format_scale_table(rows))
    for (size, provider), n in breaking_points(rows).items():
        where = "not within the counts run" if n is None else f"at {n} sessions"
        sys.stdout.write(f"{size} {provider.split(':')[0]}: breaks {where}\n")
    if args.plot:
        print(f"plot: {plot_scale(rows, args.plot)}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows_to_json(rows), indent=2, default=str) + "\n")
    return 1 if any(r.error for r in rows) else 0
