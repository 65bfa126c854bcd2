"""LemonSlice through livekit-agents' AvatarRunner, measured at a real user: the bench row.

``python -m livekit_avsync.devserver.lemonslice_bench [TURNS]`` (from a checkout, root, or with
``LIVEKIT_URL`` / ``LIVEKIT_API_KEY`` / ``LIVEKIT_API_SECRET`` set) starts livekit-server in a
private network namespace, the :class:`~.lemonslice.LemonSliceStandIn` (its avatars are
``AvatarRunner`` + ``DataStreamAudioReceiver`` + a marker face) and
``examples/local_avatar_agent.py`` with ``AVSYNC_AVATAR=lemonslice``; then per turn a user joins a
fresh room, speaks over the greeting and measures the cut and the reply's lip-sync at the user
(the same table as the local avatar's barge-in bench), plus what the runtime reported.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid

from livekit import rtc

from ..demo.clip import REPLY, load_clip
from ..measure.barge_in import BargeInTurn, barge_in_turn
from ..measure.room_bench import RoomServer, format_barge_in_table
from ..providers.face import FaceRenderer
from .lemonslice import LemonSliceStandIn
from .netns import enter_private_network
from .server import LocalServer
from .worker import WorkerProcess

__all__ = ["run_lemonslice_bench"]

_KEY = "ls-bench-key"
_W, _H = 640, 360


async def run_lemonslice_bench(server: RoomServer, turns: int = 3) -> list[BargeInTurn]:
    """``turns`` barge-ins on the example worker with a LemonSlice avatar played by the runtime."""
    service = LemonSliceStandIn(_KEY, avatars=True, width=_W, height=_H)
    await service.start()
    env = {
        "LIVEKIT_URL": server.url,
        "LIVEKIT_API_KEY": server.api_key,
        "LIVEKIT_API_SECRET": server.api_secret,
    }
    worker = WorkerProcess(
        env,
        "local_avatar_agent.py",
        AVSYNC_AVATAR="lemonslice",
        AVSYNC_MARKERS="1",
        AVSYNC_VIDEO_SIZE=f"{_W}x{_H}",
        LEMONSLICE_API_KEY=_KEY,
        LEMONSLICE_API_URL=service.url,
        LEMONSLICE_AGENT_ID="agent_bench",
    )
    voice = load_clip(REPLY, sample_rate=48000)
    results = []
    try:
        await asyncio.to_thread(worker.wait_for, "registered worker", 90)
        for i in range(turns):
            room = rtc.Room()
            name = f"ls-bench-{uuid.uuid4().hex[:8]}"
            await room.connect(server.url, server.token(name, "user"))
            try:
                results.append(
                    await barge_in_turn(
                        room,
                        voice.samples,
                        voice.sample_rate,
                        interrupt_times=lambda: worker.record_times("avatar interrupted"),
                        face=FaceRenderer(_W, _H),
                        barge_after=4.0 + 0.6 * (i % 5),
                    )
                )
            finally:
                await room.disconnect()
    finally:
        worker.close()
        await service.close()
    return results


def main() -> int:
    turns = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    local: LocalServer | None = None
    if os.environ.get("LIVEKIT_URL"):
        server = RoomServer(
            os.environ["LIVEKIT_URL"],
            os.environ.get("LIVEKIT_API_KEY", ""),
            os.environ.get("LIVEKIT_API_SECRET", ""),
        )
    else:
        enter_private_network()  # before any connection: nothing leaves this machine
        local = LocalServer().start()
        server = RoomServer(local.url, local.api_key, local.api_secret)
    try:
        results = asyncio.run(run_lemonslice_bench(server, turns))
    finally:
        if local is not None:
            local.stop()
    sys.stdout.write(
        "LemonSlice through livekit-agents' AvatarRunner (stand-in service, example worker, "
        f"markers, {_W}x{_H}; at the user)\n"
    )
    sys.stdout.write(format_barge_in_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
