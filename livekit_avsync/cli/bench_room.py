"""``livekit-avsync bench --room``: the bench's scenarios through a real LiveKit room.

The server is ``LIVEKIT_URL``'s or a local one (:func:`.room_server.room_server`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..devserver.worker import EXAMPLES
from ..measure.room_bench import (
    DIRECT,
    ROOM_SCENARIOS,
    format_barge_in_table,
    format_room_table,
    run_barge_in_bench,
    run_room_bench,
)
from ..measure.scenarios import IMPLEMENTATIONS, SCENARIOS
from . import CLIError
from .room_server import room_server

__all__ = ["run_room_bench_cli", "write_barge_ins"]


def _names(value: str | None, default: tuple[str, ...], known: tuple[str, ...]) -> tuple[str, ...]:
    if value is None:
        return default
    names = tuple(n.strip() for n in value.split(",") if n.strip())
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise CLIError(f"unknown {', '.join(unknown) or 'names'}; known: {', '.join(known)}")
    return names


def write_barge_ins(title: str, barge_ins: list[Any] | None) -> None:
    """The barge-in table under ``title``, or the line saying why it was not run."""
    if barge_ins is None:
        sys.stdout.write(
            "\n(barge-in section skipped: examples/ is not here; run from a checkout)\n"
        )
        return
    sys.stdout.write(f"\n{title}\n")
    sys.stdout.write(format_barge_in_table(barge_ins))


def run_room_bench_cli(args: argparse.Namespace) -> int:
    """Run the real-room section; print its table; return 1 if any run failed."""
    scenarios = _names(args.scenarios, ROOM_SCENARIOS, tuple(SCENARIOS))
    impls = _names(args.implementations, (*IMPLEMENTATIONS, DIRECT), (*IMPLEMENTATIONS, DIRECT))
    barge_ins = None
    with room_server("--room") as server:
        rows = asyncio.run(
            run_room_bench(
                server,
                scenarios,
                impls,
                quick=args.quick,
                duration=args.duration,
                seed=args.seed,
                progress=lambda label: print(f"room: {label}", file=sys.stderr, flush=True),
            )
        )
        if (EXAMPLES / "local_avatar_agent.py").is_file():
            print("room: barge-in through examples/local_avatar_agent.py", file=sys.stderr)
            barge_ins = asyncio.run(run_barge_in_bench(server, 1 if args.quick else 5))
    sys.stdout.write(
        "Real room (livekit-server, one publisher, one subscriber; skew as a lip-syncing "
        "receiver shows it, raw = the Python SDK's subscriber as it plays)\n"
    )
    sys.stdout.write(format_room_table(rows))
    write_barge_ins(
        "Barge-in by the user's voice (example worker, markers, 640x360; at the subscriber)",
        barge_ins,
    )
    if args.json:
        data = [
            {
                "scenario": r.scenario,
                "implementation": r.implementation,
                "error": r.error,
                "loopback": asdict(r.loopback) if r.loopback else None,
                "room": asdict(r.room) if r.room else None,
                "raw": r.raw.to_dict() if r.raw else None,
            }
            for r in rows
        ]
        Path(args.json).write_text(json.dumps(data, indent=2, default=str) + "\n")
    return 1 if any(r.error for r in rows) else 0
