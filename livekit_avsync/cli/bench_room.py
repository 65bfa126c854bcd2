"""``livekit-avsync bench --room``: the bench's scenarios through a real LiveKit room.

With ``LIVEKIT_URL`` / ``LIVEKIT_API_KEY`` / ``LIVEKIT_API_SECRET`` set it uses that server;
otherwise it runs its own livekit-server (built with ``go install``, cached) in a private network
namespace, as the end-to-end tests do (root only).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

from ..devserver import IsolationError, LocalServer, ServerUnavailable, enter_private_network
from ..devserver.worker import EXAMPLES
from ..measure.room_bench import (
    DIRECT,
    ROOM_SCENARIOS,
    RoomServer,
    format_barge_in_table,
    format_room_table,
    run_barge_in_bench,
    run_room_bench,
)
from ..measure.scenarios import IMPLEMENTATIONS, SCENARIOS
from . import CLIError

__all__ = ["bench_server", "run_room_bench_cli"]


def _names(value: str | None, default: tuple[str, ...], known: tuple[str, ...]) -> tuple[str, ...]:
    if value is None:
        return default
    names = tuple(n.strip() for n in value.split(",") if n.strip())
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise CLIError(f"unknown {', '.join(unknown) or 'names'}; known: {', '.join(known)}")
    return names


@contextlib.contextmanager
def bench_server(option: str) -> Iterator[RoomServer]:
    """The server a real-room bench runs on: ``LIVEKIT_URL`` and keys, else a local
    livekit-server in a private network namespace (stopped on exit)."""
    if os.environ.get("LIVEKIT_URL"):
        key, secret = os.environ.get("LIVEKIT_API_KEY"), os.environ.get("LIVEKIT_API_SECRET")
        if not (key and secret):
            raise CLIError("LIVEKIT_URL is set but LIVEKIT_API_KEY / LIVEKIT_API_SECRET are not")
        yield RoomServer(os.environ["LIVEKIT_URL"], key, secret)
        return
    try:
        enter_private_network()  # before any connection: nothing leaves this machine
        local = LocalServer().start()
    except (ServerUnavailable, IsolationError) as exc:
        raise CLIError(f"{option} needs LIVEKIT_URL or a local livekit-server: {exc}") from None
    try:
        yield RoomServer(local.url, local.api_key, local.api_secret)
    finally:
        local.stop()


def run_room_bench_cli(args: argparse.Namespace) -> int:
    """Run the real-room section; print its table; return 1 if any run failed."""
    scenarios = _names(args.scenarios, ROOM_SCENARIOS, tuple(SCENARIOS))
    impls = _names(args.implementations, (*IMPLEMENTATIONS, DIRECT), (*IMPLEMENTATIONS, DIRECT))
    barge_ins = None
    with bench_server("--room") as server:
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
    if barge_ins is not None:
        sys.stdout.write(
            "\nBarge-in by the user's voice (example worker, markers, 640x360; at the subscriber)\n"
        )
        sys.stdout.write(format_barge_in_table(barge_ins))
    else:
        sys.stdout.write(
            "\n(barge-in section skipped: examples/ is not here; run from a checkout)\n"
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
