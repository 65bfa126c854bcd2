"""``livekit-avsync measure --room NAME``: the live A/V offset of a participant's marker media.

Joins the room as a hidden viewer (an agent never takes it for its user), subscribes to the
participant's microphone and camera, waits 2 s for the new subscription's jitter buffers to
settle, prints every marker's offset as it is measured, and ends
with the file meter's summary: as a receiver that lip-syncs the stream plays it (browsers do),
and raw at this subscriber (see :mod:`livekit_avsync.measure.room`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import time
from pathlib import Path

from livekit import api, rtc

from ..measure.analysis import SyncReport
from ..measure.room import RoomViewer
from . import CLIError

__all__ = ["run_room"]

_TICK_S = 0.5
SETTLE_S = 2.0  # a new subscription's jitter buffers settle in its first second or so


def _token(room: str, identity: str) -> str:
    key, secret = os.environ.get("LIVEKIT_API_KEY"), os.environ.get("LIVEKIT_API_SECRET")
    if not (key and secret):
        raise CLIError("--room needs LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET")
    grants = api.VideoGrants(room_join=True, room=room, hidden=True, can_publish=False)
    return api.AccessToken(key, secret).with_identity(identity).with_grants(grants).to_jwt()


def run_room(args: argparse.Namespace) -> int:
    """Measure the room named by ``args.room`` for ``args.seconds`` (Ctrl-C ends it early)."""
    url = os.environ.get("LIVEKIT_URL")
    if not url:
        raise CLIError("--room needs LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET")
    seconds = 30.0 if args.seconds is None else args.seconds
    if not seconds > 0:
        raise CLIError(f"--seconds must be positive, got {seconds}")
    token = _token(args.room, f"avsync-meter-{secrets.token_hex(3)}")
    try:
        synced, raw = asyncio.run(_measure(url, token, args.room, args.identity, seconds))
    except TimeoutError as exc:
        raise CLIError(str(exc)) from None
    if not synced.offsets:
        raise CLIError(
            f"no marker pairs in {seconds:g} s ({synced.video_markers} marker frames, "
            f"{synced.audio_bursts} tone bursts): is the participant sending livekit-avsync "
            "markers (examples/local_avatar_agent.py --markers)?"
        )
    print(f"as a lip-syncing receiver plays it: {synced.summary()}")
    print(f"raw at this subscriber:             {raw.summary()}")
    if args.json:
        data = {"room": args.room, "synced": synced.to_dict(), "raw": raw.to_dict()}
        Path(args.json).write_text(json.dumps(data, indent=2) + "\n")
    return 0


async def _measure(
    url: str, token: str, room_name: str, identity: str | None, seconds: float
) -> tuple[SyncReport, SyncReport]:
    room = rtc.Room()
    await room.connect(url, token)
    viewer = RoomViewer(room, identity=identity)
    try:
        await viewer.start(timeout=30)
        assert viewer.participant is not None
        print(
            f"measuring {viewer.participant.identity} in {room_name} for {seconds:g} s",
            flush=True,
        )
        print(f"{'marker':>6} {'audio s':>9} {'offset ms':>10}  (synced; + = video late)")
        await asyncio.sleep(SETTLE_S)
        start, shown = time.monotonic(), 0
        with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
            while time.monotonic() - start < seconds:
                await asyncio.sleep(_TICK_S)
                offsets = viewer.synced_report(since=start).offsets
                for m in offsets[shown:]:
                    print(f"{m.marker:>6} {m.audio_time - start:>9.3f} {m.offset_ms:>+10.1f}")
                shown = max(shown, len(offsets))
        return viewer.synced_report(since=start), viewer.raw_report(since=start)
    finally:
        await viewer.aclose()
        await room.disconnect()
