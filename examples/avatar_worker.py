"""What every example worker shares: its settings, the avatar, the agent, and the entrypoint.

livekit-agents pickles the entrypoint for its job processes, so it is a module-level function
here and reads its choices from the environment (which the job processes inherit):

- ``AVSYNC_AVATAR`` (or ``--avatar``): ``local`` (the in-process LocalAvatar), ``replay:PATH``
  (a recording made with ``ProviderRecorder``, looped), ``anam`` or ``lemonslice``.
- ``AVSYNC_AGENT``: ``bundled`` (no model keys: VAD only; greets on join and answers every user
  turn with a bundled speech clip) or ``inference`` (STT, LLM and TTS through LiveKit Inference).
- ``AVSYNC_MARKERS=1`` (or ``--markers``): the LocalAvatar stamps measurement markers into its
  output, so ``livekit-avsync measure --room ROOM`` can measure lip-sync at a viewer.
- ``AVSYNC_VIDEO_SIZE``: the published video size, ``WIDTHxHEIGHT`` (default 1280x720);
  ``AVSYNC_FPS``: its frame rate (default 25; 30 with markers).
- ``AVSYNC_LOAD_THRESHOLD``: the load (0-1) above which the worker takes no new jobs
  (livekit-agents' ``load_threshold``, default 0.7). The load is the CPU of this worker's own
  processes, its avatars (:class:`~livekit_avsync.agents.ProcessTreeLoad`), not the machine's.
- ``AVSYNC_WORKER_PORT``: the worker's HTTP (health) port, livekit-agents' ``port`` (default
  8081); give each worker on one machine its own, or 0 for any free one.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from dotenv import load_dotenv
from livekit.agents import (
    Agent,
    AgentServer,
    AgentSession,
    JobContext,
    JobProcess,
    StopResponse,
    cli,
    llm,
    room_io,
)

from livekit_avsync import AvatarSession, LocalAvatar
from livekit_avsync.agents import ProcessTreeLoad
from livekit_avsync.demo.clip import REPLY, SPEECH, SpeechClip, load_clip, stream_frames
from livekit_avsync.measure import AVATAR_SPEC, avatar_spec
from livekit_avsync.providers.base import AvatarProvider

logger = logging.getLogger("avatar-worker")

LIVEKIT_SETTINGS = ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET")
AVATAR_SETTINGS = {
    "anam": ("ANAM_API_KEY", "ANAM_AVATAR_ID"),
    "lemonslice": ("LEMONSLICE_API_KEY",),
}
_SERVER_MODES = ("dev", "start", "connect")  # modes that join a LiveKit server
_RUN_MODES = (*_SERVER_MODES, "console")
# Speech stays under a fifth of the marker bursts, so bursts under speech are still detected.
_SPEECH_PEAK_WITH_MARKERS = AVATAR_SPEC.burst_level * 0.14
_RATE = 24000


def _flag(name: str, variable: str, *, takes_value: bool) -> None:
    """Move ``--name [VALUE]`` from argv (livekit-agents' CLI would reject it) into the env."""
    if name not in sys.argv:
        return
    i = sys.argv.index(name)
    if takes_value:
        if i + 1 >= len(sys.argv):
            sys.exit(f"{name} needs a value")
        os.environ[variable] = sys.argv.pop(i + 1)
    else:
        os.environ[variable] = "1"
    sys.argv.pop(i)


def _on(variable: str) -> bool:
    return os.environ.get(variable, "").lower() in ("1", "true", "yes")


def _video_size() -> tuple[int, int]:
    value = os.environ.get("AVSYNC_VIDEO_SIZE", "1280x720")
    try:
        width, height = (int(part) for part in value.lower().split("x"))
    except ValueError:
        sys.exit(f"AVSYNC_VIDEO_SIZE must be WIDTHxHEIGHT, got {value!r}")
    return width, height


def check_settings() -> None:
    """Exit with one clear line when a setting the chosen mode needs is missing."""
    load_dotenv()
    avatar = os.environ.get("AVSYNC_AVATAR", "local")
    needed: list[str] = []
    if any(mode in sys.argv for mode in _SERVER_MODES):
        needed += LIVEKIT_SETTINGS
    if any(mode in sys.argv for mode in _RUN_MODES):
        needed += AVATAR_SETTINGS.get(avatar, ())
        if avatar == "lemonslice":
            needed += [name for name in LIVEKIT_SETTINGS if name not in needed]  # its side room
    missing = [name for name in dict.fromkeys(needed) if not os.environ.get(name)]
    if missing:
        sys.exit(f"missing settings: {', '.join(missing)} (set them in .env; see .env.example)")


def _number(name: str, default: str, kind: type[float] | type[int]) -> Any:
    """A numeric setting, or exit with one line naming it."""
    text = os.environ.get(name, default)
    try:
        return kind(text)
    except ValueError:
        sys.exit(f"{name} must be a {kind.__name__}, got {text!r}")


def _fps() -> float:
    """The published frame rate, ``AVSYNC_FPS``: default 25, or the markers' own 30 with
    ``AVSYNC_MARKERS`` (the avatar then renders at that rate, so no conversion drops a marker)."""
    fps = _number("AVSYNC_FPS", str(AVATAR_SPEC.fps) if _on("AVSYNC_MARKERS") else "25", float)
    if not 1 <= fps <= 60:
        sys.exit(f"AVSYNC_FPS must be between 1 and 60, got {fps:g}")
    return fps


def make_avatar() -> AvatarProvider:
    """The provider ``AVSYNC_AVATAR`` names."""
    choice = os.environ.get("AVSYNC_AVATAR", "local")
    width, height = _video_size()
    if choice == "local":
        markers = avatar_spec(_fps()) if _on("AVSYNC_MARKERS") else None
        return LocalAvatar(width=width, height=height, fps=_fps(), markers=markers)
    if choice.startswith("replay:"):
        from livekit_avsync import RecordedProvider

        return RecordedProvider(choice.removeprefix("replay:"), loop=True)
    if choice == "anam":
        from livekit_avsync.providers.anam import AnamAvatar

        return AnamAvatar()
    if choice == "lemonslice":
        from livekit_avsync.providers.lemonslice import LemonSliceAvatar

        return LemonSliceAvatar()
    raise ValueError(f"AVSYNC_AVATAR={choice!r}: use local, replay:PATH, anam or lemonslice")


class BundledSpeechAgent(Agent):
    """Speaks without any model: greets with one bundled clip, answers each user turn with
    another. The user's own speech (heard by VAD) interrupts it, like any agent."""

    def __init__(self) -> None:
        super().__init__(instructions="Speaks bundled clips; needs no model keys.")
        peak = _SPEECH_PEAK_WITH_MARKERS if _on("AVSYNC_MARKERS") else 0.9
        self._greeting = load_clip(SPEECH, sample_rate=_RATE).scaled_to_peak(peak)
        self._reply = load_clip(REPLY, sample_rate=_RATE).scaled_to_peak(peak)

    async def on_enter(self) -> None:
        self._speak(self._greeting)

    async def on_user_turn_completed(
        self, turn_ctx: llm.ChatContext, new_message: llm.ChatMessage
    ) -> None:
        """The user's turn ended (VAD): answer with the reply clip instead of an LLM's."""
        self._speak(self._reply)
        raise StopResponse()

    def _speak(self, clip: SpeechClip) -> None:
        logger.info("saying %r", clip.text[:40])
        self.session.say(clip.text, audio=stream_frames(clip.frames()))


class Assistant(Agent):
    def __init__(self) -> None:
        super().__init__(
            instructions="You are a friendly assistant with a face. Keep answers short and spoken."
        )


def prewarm(proc: JobProcess) -> None:
    """Load the VAD once per job process, before any job needs it."""
    if os.environ.get("AVSYNC_AGENT", "bundled") == "bundled":
        from livekit.plugins import silero

        proc.userdata["vad"] = silero.VAD.load()


def _session(ctx: JobContext) -> tuple[AgentSession, Agent]:
    if os.environ.get("AVSYNC_AGENT", "bundled") == "bundled":
        # No STT: a pause on speech could never be confirmed by a transcript and would resume
        # the cut turn after `false_interruption_timeout`, so the user's voice interrupts outright.
        session: AgentSession = AgentSession(
            vad=ctx.proc.userdata["vad"],
            turn_handling={
                "turn_detection": "vad",
                "interruption": {"mode": "vad", "resume_false_interruption": False},
            },
        )
        return session, BundledSpeechAgent()
    session = AgentSession(stt="deepgram/nova-3", llm="openai/gpt-4.1-mini", tts="cartesia/sonic-2")
    return session, Assistant()


async def entrypoint(ctx: JobContext) -> None:
    """One job: the agent speaks through the avatar in the job's room (no ``ctx.connect()``:
    ``session.start`` connects the room; the avatar publishes as soon as it is connected)."""
    session, agent = _session(ctx)
    width, height = _video_size()
    avatar = AvatarSession(
        provider=make_avatar(), video_width=width, video_height=height, video_fps=_fps()
    )
    await avatar.start(session, room=ctx.room)
    # one user, one agent: when the user leaves (the session closes), the room and the job end
    # at once instead of lingering until the server's departure timeout
    await session.start(
        agent=agent, room=ctx.room, room_options=room_io.RoomOptions(delete_room_on_close=True)
    )
    if isinstance(agent, Assistant):
        session.generate_reply(instructions="Greet the user.")


def run(*, avatar: str, agent: str) -> None:
    """Run the worker CLI with these defaults for ``AVSYNC_AVATAR`` and ``AVSYNC_AGENT``."""
    _flag("--avatar", "AVSYNC_AVATAR", takes_value=True)
    _flag("--markers", "AVSYNC_MARKERS", takes_value=False)
    os.environ.setdefault("AVSYNC_AVATAR", avatar)
    os.environ.setdefault("AVSYNC_AGENT", agent)
    check_settings()
    threshold = _number("AVSYNC_LOAD_THRESHOLD", "0.7", float)
    port = _number("AVSYNC_WORKER_PORT", "8081", int)
    # the worker's load is its avatars' CPU, not the machine's (ProcessTreeLoad's docstring)
    server = AgentServer(
        setup_fnc=prewarm, load_fnc=ProcessTreeLoad(), load_threshold=threshold, port=port
    )
    server.rtc_session()(entrypoint)
    cli.run_app(server)
