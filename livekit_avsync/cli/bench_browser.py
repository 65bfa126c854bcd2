"""``livekit-avsync bench --browser``: the bench's scenarios as headless Chromium shows them.

Each scenario runs through a real room into the viewer page (livekit-client) in Debian's
Chromium, measured in the page: ours and ``rtc.AVSynchronizer``, published in one stream, in
two, and in one stream in a room without ``sync_streams``; then barge-ins on the keyless example
worker. The server is ``LIVEKIT_URL`` and keys, else a local livekit-server (as ``--room``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import asdict
from pathlib import Path

from ..devserver.worker import EXAMPLES
from ..measure.browser_bench import (
    BROWSER_IMPLEMENTATIONS,
    BROWSER_SCENARIOS,
    format_browser_table,
    run_browser_barge_in,
    run_browser_bench,
)
from ..measure.scenarios import IMPLEMENTATIONS, SCENARIOS
from ..web.chromium import BrowserUnavailable, find_chromium
from ..web.modules import WebModulesUnavailable, client_module
from . import CLIError
from .bench_room import _names, write_barge_ins
from .room_server import room_server

__all__ = ["run_browser_bench_cli"]


def run_browser_bench_cli(args: argparse.Namespace) -> int:
    """Run the browser section; print its tables; return 1 if any run failed."""
    scenarios = _names(args.scenarios, BROWSER_SCENARIOS, tuple(SCENARIOS))
    impls = _names(args.implementations, BROWSER_IMPLEMENTATIONS, tuple(IMPLEMENTATIONS))
    try:
        find_chromium()
        client_module()
    except (BrowserUnavailable, WebModulesUnavailable) as exc:
        raise CLIError(f"--browser: {exc}") from None
    screenshot = Path(args.screenshot) if args.screenshot else None
    barge_ins = None
    with room_server("--browser") as server:
        rows = asyncio.run(
            run_browser_bench(
                server,
                scenarios,
                impls,
                quick=args.quick,
                duration=args.duration,
                seed=args.seed,
                progress=lambda label: print(f"browser: {label}", file=sys.stderr, flush=True),
            )
        )
        sys.stdout.write(
            "In the browser (headless Chromium, livekit-client viewer page; frames as "
            "presented, audio as its Web Audio output plays it)\n"
        )
        sys.stdout.write(format_browser_table(rows))
        sys.stdout.flush()
        if (EXAMPLES / "local_avatar_agent.py").is_file():
            print("browser: barge-in through examples/local_avatar_agent.py", file=sys.stderr)
            barge_ins = asyncio.run(
                run_browser_barge_in(server, 1 if args.quick else 5, screenshot=screenshot)
            )
    write_barge_ins(
        "Barge-in by the user's voice, in the browser (example worker, markers, 640x360)",
        barge_ins,
    )
    if args.json:
        data = [
            {
                "scenario": r.scenario,
                "implementation": r.implementation,
                "publishing": r.publishing,
                "error": r.error,
                "result": r.result.to_dict() if r.result else None,
            }
            for r in rows
        ]
        turns = [asdict(t.figures) for t in barge_ins or []]
        Path(args.json).write_text(
            json.dumps({"scenarios": data, "barge_in": turns}, indent=2, default=str) + "\n"
        )
    return 1 if any(r.error for r in rows) else 0
