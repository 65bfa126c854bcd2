"""What every example worker shares: settings check, the agent, and the AvatarSession wiring.

Each example only chooses its avatar provider; everything else is one livekit-agents worker.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from dotenv import load_dotenv
from livekit.agents import Agent, AgentServer, AgentSession, JobContext, cli

from livekit_avsync import AvatarSession
from livekit_avsync.providers.base import AvatarProvider

REQUIRED = ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET")


class Assistant(Agent):
    def __init__(self) -> None:
        super().__init__(
            instructions="You are a friendly assistant with a face. Keep answers short and spoken."
        )


def check_settings(extra: tuple[str, ...] = ()) -> None:
    """Exit with one clear line when a setting the worker needs is missing."""
    load_dotenv()
    missing = [name for name in (*REQUIRED, *extra) if not os.environ.get(name)]
    if missing and any(arg in sys.argv for arg in ("dev", "start", "connect", "console")):
        sys.exit(f"missing settings: {', '.join(missing)} (set them in .env; see .env.example)")


def run(
    make_provider: Callable[[], AvatarProvider], *, extra_settings: tuple[str, ...] = ()
) -> None:
    """Run a worker whose agent speaks through the avatar ``make_provider()`` returns."""
    check_settings(extra_settings)
    server = AgentServer()

    @server.rtc_session()
    async def entrypoint(ctx: JobContext) -> None:
        await ctx.connect()
        session = AgentSession(
            stt="deepgram/nova-3", llm="openai/gpt-4.1-mini", tts="cartesia/sonic-2"
        )
        avatar = AvatarSession(provider=make_provider())
        await avatar.start(session, room=ctx.room)
        await session.start(agent=Assistant(), room=ctx.room)
        session.generate_reply(instructions="Greet the user.")

    cli.run_app(server)
