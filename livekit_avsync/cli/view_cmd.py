"""``livekit-avsync view --room NAME``: a local web viewer of a room's avatar.

Serves the viewer page (livekit-client from npm, installed into a cache on first use) on
127.0.0.1 with a token made from ``LIVEKIT_URL`` / ``LIVEKIT_API_KEY`` / ``LIVEKIT_API_SECRET``
and prints its address: open it in a browser to see and hear the avatar as a LiveKit web app
plays it, and talk to it with the page's microphone button.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys

from ..web.modules import WebModulesUnavailable
from ..web.server import ViewerConfig, ViewerServer, viewer_token
from . import CLIError

__all__ = ["add_parser", "run"]

_DESCRIPTION = """\
Serve a local web viewer of a LiveKit room: it joins ROOM and plays the audio and video of the
first participant that publishes both (or --identity), the way a LiveKit web app does.

  export LIVEKIT_URL=ws://127.0.0.1:7880 LIVEKIT_API_KEY=devkey LIVEKIT_API_SECRET=secret
  python examples/local_avatar_agent.py dev &       # an avatar worker (any)
  livekit-avsync view --room demo                     # prints http://127.0.0.1:PORT/.../

Joining ROOM dispatches the worker's agent to it, as any user joining would. The page's
microphone button lets you talk to the agent (--listen-only: a hidden viewer the agent never
sees, which cannot talk). livekit-client is installed from npm on first use into the cache
(~/.cache/livekit-avsync; LIVEKIT_AVSYNC_NODE_MODULES names another node_modules).
"""


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0-65535, got {value}")
    return value


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``view`` subcommand to ``subparsers`` and return its parser."""
    parser = subparsers.add_parser(
        "view",
        help="serve a local web viewer of a room's avatar (livekit-client in your browser)",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--room", required=True, help="the room to join")
    parser.add_argument("--identity", help="the participant to show (default: the first)")
    parser.add_argument(
        "--port", type=_port, default=0, help="port on 127.0.0.1 (default: a free one)"
    )
    parser.add_argument(
        "--listen-only",
        action="store_true",
        help="join hidden, without a microphone (the agent does not see the viewer)",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    """Serve the page until interrupted (Ctrl-C)."""
    url = os.environ.get("LIVEKIT_URL")
    key, secret = os.environ.get("LIVEKIT_API_KEY"), os.environ.get("LIVEKIT_API_SECRET")
    if not (url and key and secret):
        raise CLIError("view needs LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET")
    identity = f"viewer-{secrets.token_hex(3)}"
    token = viewer_token(
        key,
        secret,
        args.room,
        identity,
        hidden=args.listen_only,
        can_publish=not args.listen_only,
    )
    config = ViewerConfig(
        url, token, args.room, participant=args.identity, can_publish=not args.listen_only
    )
    try:
        server = ViewerServer(config, port=args.port)
    except WebModulesUnavailable as exc:
        raise CLIError(str(exc)) from None
    try:
        asyncio.run(_serve(server, identity))
    except KeyboardInterrupt:
        pass
    return 0


async def _serve(server: ViewerServer, identity: str) -> None:
    address = await server.start()
    print(
        f"viewer of room {server.config.room} (as {identity}): {address}\n(Ctrl-C to stop)",
        flush=True,
    )
    try:
        await asyncio.Event().wait()  # until interrupted
    finally:
        await server.aclose()
        print("viewer stopped", file=sys.stderr)
