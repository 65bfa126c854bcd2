"""The AgentSession's audio output chain: the avatar's output goes in at its tail.

RoomIO builds ``TranscriptSynchronizer -> [recorder] -> proxy -> RoomIO's output``; livekit-agents'
``replace_audio_tail`` swaps what the proxy points at, so the wrappers stay, in either start
order (before ``session.start`` the avatar's output is the whole chain, and RoomIO wraps it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from livekit.agents.voice.io import AudioOutput

if TYPE_CHECKING:
    from livekit.agents import AgentSession

__all__ = ["install_tail", "roomio_subscribed"]


def install_tail(
    session: AgentSession, sink: AudioOutput
) -> tuple[bool, AudioOutput | None, AudioOutput | None]:
    """Put ``sink`` at the tail of ``session``'s audio chain.

    Returns ``(whole, previous, displaced)``: whether ``sink`` is now the whole chain (nothing in
    front: it replaced ``previous``, the former ``session.output.audio``), and the output it
    displaced (the former tail, or the former whole chain).
    """
    output = session.output
    previous = output.audio
    tail = previous
    while tail is not None and tail.next_in_chain is not None:
        tail = tail.next_in_chain
    output.replace_audio_tail(sink)
    whole = output.audio is sink
    return whole, previous, previous if whole else tail


def roomio_subscribed(session: AgentSession) -> Any:
    """RoomIO's "the agent's audio track is subscribed" future, or None without RoomIO."""
    try:
        return session.room_io.subscribed_fut
    except RuntimeError:
        return None
