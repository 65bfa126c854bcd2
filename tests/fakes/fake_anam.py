"""A fake Anam service behind the real ``anam`` SDK objects: only the network is faked.

How it plugs into the SDK (0.12):

- :class:`FakeAnamClient` *is* an ``anam.AnamClient`` (its constructor checks, listeners, events,
  ``close()`` and the ``Session`` it returns are the SDK's own code); only ``connect_async`` is
  replaced. The REST call that starts a session is answered by :class:`FakeAnamService` (API key
  check, failure modes); the WebRTC connection is a :class:`FakeStreamingClient`, which offers the
  private surface the SDK's ``Session`` and ``AgentAudioInputStream`` call. So
  ``session.create_agent_audio_input_stream()``, ``send_audio_chunk()`` (base64 encoding and
  sequence numbers), ``end_sequence()``, ``interrupt()`` (data channel), ``video_frames()``,
  ``audio_frames()`` and ``close()`` all run the SDK's real code.
- :class:`FakeAvatar` is the server: it checks every speech message (encoding, rate, channels,
  base64, sample alignment, sequence numbers, ``end_sequence``), records it, and plays the speech
  back in real time like the passthrough avatar: 48 kHz stereo ``av.AudioFrame`` every 20 ms
  (silence while idle, or nothing with ``idle_audio=False``) and yuv420p ``av.VideoFrame`` at
  ``fps``, with ``pts`` from 0 like aiortc. Frames reach the SDK's iterators after a network delay
  with jitter; video arrives ``video_lag`` later than the audio it belongs to. After an interrupt
  the avatar still plays ``in_flight`` seconds of the interrupted speech, so a tail arrives.
- Video frames while speaking carry a marker code (:func:`livekit_avsync.measure.markers.
  stamp_marker`): frame number ``round(p * fps)`` where ``p`` is the position in the turn's speech
  (seconds) that plays at that moment, and turn id ``(sequence index + 1) % 16``. Idle frames are
  flat (no code). With marker audio made with ``MarkerSpec(fps=<this fps>)`` as the agent's speech,
  ``analyze_sync`` therefore measures lip-sync end to end.

Use::

    service = FakeAnamService(api_key="anam-test-key", timing=FakeTiming(video_lag=(0.08, 0.12)))
    monkeypatch.setattr(anam, "AnamClient", service.client_factory)
    # or AnamAvatar(api_key=..., avatar_id=..., client_factory=service.client_factory)
    ...
    service.avatar.sequences[0].pcm    # what the adapter sent: int16 bytes (24 kHz mono)
    service.avatar.violations          # protocol mistakes noticed (must stay empty)
    await service.avatar.end_session("time limit reached")   # server closes the session

Failure modes: ``auth="reject"`` (HTTP 401 -> ``AuthenticationError``), ``"busy"`` (503 ->
``SessionError``), ``"reject_echo"`` (adversarial: a 401 whose message quotes the key, to prove
callers mask it); ``hang_connect=True`` (WebRTC never connects; ``connect_async`` never returns);
``timing.ready_delay=None`` (no ``sessionready``); ``ice_fails=True`` (connects, gets ready, no
media ever, no event); ``end_after`` (server ends the session);
:meth:`FakeAvatar.fail_webrtc`, :meth:`FakeAvatar.end_tracks` (media die, with or without the
SDK's CONNECTION_CLOSED), :meth:`FakeAvatar.fail_ice` (media stop, iterators block, no event) and
:meth:`FakeAvatar.close_signalling` (CONNECTION_CLOSED ``"signalling_closed"``).

What comes from the real SDK (0.12, read in its source) or Anam's docs: every object the adapter
touches except the network (the SDK's own classes run), the event names and their arguments,
``connect_async`` returning even when ICE fails (its 30 s wait for the connection "proceeds
anyway"), ICE failure only logged, ``signalling_closed`` and ``webrtc_failure`` close codes,
iterators raising ``RuntimeError`` before a track exists, aiortc's unbounded track queue (frames
from the moment media flow, before ``sessionready``), the passthrough input format. Assumed: the
REST error bodies, every timing (latencies, lag, jitter, in-flight tail, ready delay), that the
idle avatar keeps sending video (and silent audio unless ``idle_audio=False``), how the speech
sounds and looks when played back (the markers are ours).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import random
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import av
import numpy as np
from anam import AgentAudioInputConfig, AgentAudioInputStream, AnamClient, Session
from anam.errors import AuthenticationError, ErrorCode, SessionError
from anam.types import (
    AgentAudioInputPayload,
    ClientOptions,
    ConnectionClosedCode,
    PersonaConfig,
    SessionInfo,
    SessionOptions,
)

from livekit_avsync.measure.markers import stamp_marker

__all__ = [
    "FakeAnamClient",
    "FakeAnamService",
    "FakeAvatar",
    "FakeStreamingClient",
    "FakeTiming",
    "ReceivedSequence",
    "SessionRequest",
]

OUTPUT_RATE = 48000
OUTPUT_FRAME = 960  # 20 ms at 48 kHz, as WebRTC Opus delivers it
_VIDEO_CLOCK = 90000
_IDLE_LUMA, _SPEAKING_LUMA = 80, 96
_VALID_RATES = range(8000, 48001)


@dataclass
class FakeTiming:
    """Timing of the fake service (seconds)."""

    api_delay: float = 0.01  # REST round trip of starting a session
    connect_delay: float = 0.05  # WebRTC set-up until connect_async() returns
    ready_delay: float | None = 0.08  # from WebRTC set-up start to "sessionready"; None: never
    tracks_delay: float = 0.0  # until the media tracks exist (SDK iterators raise before)
    data_channel_delay: float = 0.0  # after connecting, until the data channel opens
    send_delay: float = 0.0  # each signalling message blocks this long (slow WebSocket)
    audio_latency: float = 0.03  # network + jitter buffer of the audio
    audio_jitter: float = 0.01  # extra audio delay, uniform in [0, audio_jitter]
    video_lag: tuple[float, float] = (0.08, 0.12)  # extra video delay over audio, uniform
    video_jitter: float = 0.01  # extra video delay, uniform in [0, video_jitter]
    speech_latency: float = 0.1  # first speech chunk received -> first sample spoken
    in_flight: float = 0.15  # speech still played after an interrupt arrives
    fps: float = 25.0
    width: int = 320
    height: int = 240
    idle_audio: bool = True  # silent frames while idle (False: none, like Opus DTX)
    seed: int = 0


@dataclass
class SessionRequest:
    """What a client asked for when starting a session (the key itself is not kept)."""

    key_ok: bool
    persona_config: PersonaConfig | None
    session_options: SessionOptions
    client_options: ClientOptions


@dataclass
class ReceivedSequence:
    """One speech sequence (turn) as the server received it."""

    index: int
    encoding: str
    sample_rate: int
    channels: int
    chunks: list[bytes] = field(default_factory=list)
    chunk_times: list[float] = field(default_factory=list)
    ended: bool = False
    interrupted: bool = False
    late: list[bytes] = field(default_factory=list)  # chunks received after its interrupt

    @property
    def turn(self) -> int:
        """Turn id stamped into this sequence's video frames."""
        return (self.index + 1) % 16

    @property
    def pcm(self) -> bytes:
        return b"".join(self.chunks)

    @property
    def samples(self) -> np.ndarray:
        """The received int16 samples, shape (n, channels)."""
        return np.frombuffer(self.pcm, dtype=np.int16).reshape(-1, self.channels)

    @property
    def duration(self) -> float:
        return self.samples.shape[0] / self.sample_rate

    @property
    def chunk_sizes(self) -> list[int]:
        """Bytes per chunk, in order."""
        return [len(c) for c in self.chunks]


@dataclass
class _Playback:
    """A sequence being turned into avatar audio (48 kHz stereo) and played."""

    seq: ReceivedSequence
    start_at: float
    resampler: av.AudioResampler
    pending: deque[np.ndarray] = field(default_factory=deque)
    available: int = 0
    played: int = 0
    ended: bool = False
    cut_at: float | None = None

    def feed(self, pcm: bytes) -> None:
        samples = np.frombuffer(pcm, dtype=np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(
            samples, format="s16", layout="mono" if self.seq.channels == 1 else "stereo"
        )
        frame.sample_rate = self.seq.sample_rate
        self._add(self.resampler.resample(frame))

    def finish(self) -> None:
        self._add(self.resampler.resample(None))
        self.ended = True

    def _add(self, frames: list[av.AudioFrame]) -> None:
        for out in frames:
            block = out.to_ndarray().reshape(-1, 2)
            self.pending.append(block)
            self.available += block.shape[0]

    def take(self, n: int) -> np.ndarray:
        parts, need = [], n
        while need:
            block = self.pending[0]
            if block.shape[0] <= need:
                parts.append(self.pending.popleft())
                need -= block.shape[0]
            else:
                parts.append(block[:need])
                self.pending[0] = block[need:]
                need = 0
        self.available -= n
        self.played += n
        return np.concatenate(parts)


@dataclass
class _Spoken:
    """What the last audio frame played: the turn and the speech position at sample ``offset``."""

    turn: int
    position: float
    offset: int
    filled: int


class FakeAvatar:
    """The server side of one fake session: speech in, avatar audio and video out."""

    def __init__(self, timing: FakeTiming, index: int) -> None:
        self.timing = timing
        self.index = index
        self.sequences: list[ReceivedSequence] = []
        self.events: list[tuple[float, str, Any]] = []  # (loop time, "chunk"|"end"|..., detail)
        self.interrupts: list[float] = []
        self.violations: list[str] = []
        self.data_messages: list[dict[str, Any]] = []
        self.frames_sent = {"audio": 0, "video": 0}
        self.connection: FakeStreamingClient | None = None
        self._rng = random.Random(timing.seed + index)
        self._receiving: _Playback | None = None
        self._playing: deque[_Playback] = deque()
        self._spoken: tuple[float, _Spoken | None] = (0.0, None)
        self._tracks: dict[str, asyncio.Queue[av.AudioFrame | av.VideoFrame | None]] = {
            "audio": asyncio.Queue(),
            "video": asyncio.Queue(),
        }
        self._ended = {"audio": False, "video": False}
        self._last_due = {"audio": 0.0, "video": 0.0}
        self._timers: list[asyncio.TimerHandle] = []
        self._media: asyncio.Task[None] | None = None

    # -- what tests look at --------------------------------------------------------------------

    @property
    def late_chunks(self) -> int:
        """Speech chunks that arrived for a sequence after it was interrupted."""
        return sum(len(s.late) for s in self.sequences)

    def event_kinds(self) -> list[str]:
        return [kind for _, kind, _ in self.events]

    # -- server-side actions (tests trigger them) ----------------------------------------------

    async def end_session(self, reason: str = "Session ended by server") -> None:
        """The server ends the session (signalling ``endsession``), as the SDK handles it."""
        assert self.connection is not None
        await self.connection.server_end(reason)

    def fail_webrtc(self) -> None:
        """The peer connection dies: tracks end and the SDK reports WEBRTC_FAILURE."""
        assert self.connection is not None
        self.connection.webrtc_failed()

    def end_tracks(self) -> None:
        """Both media tracks end, without any connection event."""
        self.stop_media()

    def fail_ice(self) -> None:
        """ICE fails as SDK 0.12 handles it: media stop arriving, the tracks stay open (their
        iterators block for ever) and no CONNECTION_CLOSED is emitted (the SDK only logs)."""
        if self._media is not None:
            self._media.cancel()
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()

    def close_signalling(self, reason: str = "going away") -> None:
        """The signalling WebSocket closes: the SDK reports CONNECTION_CLOSED with the code
        ``"signalling_closed"`` (a string outside ``ConnectionClosedCode``); media keep flowing."""
        assert self.connection is not None
        self.connection.signalling_closed(reason)

    # -- speech in (called through the SDK's AgentAudioInputStream) ----------------------------

    def on_chunk(self, payload: AgentAudioInputPayload) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        pcm = self._check_chunk(payload)
        self.events.append((now, "chunk", payload.sequence_number))
        if pcm is None:
            return
        playback = self._receiving
        number = payload.sequence_number
        if playback is not None and number == 0 and playback.seq.chunks:
            self.violations.append(
                f"sequence {playback.seq.index} restarted at 0 without end_sequence()"
            )
            playback = None
        if playback is None:
            if number != 0:
                self.violations.append(f"a new sequence started at chunk number {number}")
            seq = ReceivedSequence(
                len(self.sequences), payload.encoding, payload.sample_rate, payload.channels
            )
            self.sequences.append(seq)
            playback = _Playback(
                seq,
                now + self.timing.speech_latency,
                av.AudioResampler(format="s16", layout="stereo", rate=OUTPUT_RATE),
            )
            self._receiving = playback
            self._playing.append(playback)
        seq = playback.seq
        expected = len(seq.chunks) + len(seq.late)
        if number != expected:
            self.violations.append(
                f"sequence {seq.index}: chunk number {number}, expected {expected}"
            )
        if (payload.encoding, payload.sample_rate, payload.channels) != (
            seq.encoding,
            seq.sample_rate,
            seq.channels,
        ):
            self.violations.append(f"sequence {seq.index}: format changed mid-sequence")
            return
        if seq.interrupted:
            seq.late.append(pcm)
            return
        seq.chunks.append(pcm)
        seq.chunk_times.append(now)
        playback.feed(pcm)

    def on_end(self) -> None:
        self.events.append((asyncio.get_running_loop().time(), "end", None))
        playback, self._receiving = self._receiving, None
        if playback is None:
            self.violations.append("end_sequence() without an open sequence")
            return
        playback.seq.ended = True
        playback.finish()

    def on_interrupt(self) -> None:
        now = asyncio.get_running_loop().time()
        self.interrupts.append(now)
        self.events.append((now, "interrupt", None))
        cut = now + self.timing.in_flight
        for playback in self._playing:
            if playback.cut_at is None:
                playback.cut_at = cut
                playback.seq.interrupted = True
        if self._receiving is not None:
            self._receiving.seq.interrupted = True

    def _check_chunk(self, payload: AgentAudioInputPayload) -> bytes | None:
        problems = []
        if payload.encoding != "pcm_s16le":
            problems.append(f"encoding {payload.encoding!r} (only 'pcm_s16le' exists)")
        if payload.sample_rate not in _VALID_RATES:
            problems.append(f"sample rate {payload.sample_rate}")
        if payload.channels not in (1, 2):
            problems.append(f"{payload.channels} channels")
        try:
            pcm = base64.b64decode(payload.audio_data, validate=True)
        except (binascii.Error, ValueError, TypeError):
            problems.append("audio_data is not base64")
            pcm = b""
        if not pcm and not problems:
            problems.append("empty chunk")
        elif pcm and len(pcm) % (2 * max(1, payload.channels)):
            problems.append(f"{len(pcm)} bytes is not a whole number of samples")
        if problems:
            self.violations.append("bad chunk: " + ", ".join(problems))
            return None
        return pcm

    # -- media out -----------------------------------------------------------------------------

    def start_media(self) -> None:
        if self._media is None:
            self._media = asyncio.create_task(self._produce(), name=f"fake-anam-media-{self.index}")

    def stop_media(self) -> None:
        """Stop producing, drop undelivered frames, end both tracks (their iterators finish)."""
        if self._media is not None:
            self._media.cancel()
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        for kind, track in self._tracks.items():
            if not self._ended[kind]:
                self._ended[kind] = True
                track.put_nowait(None)

    async def frames(self, kind: str) -> AsyncIterator[av.AudioFrame | av.VideoFrame]:
        """A track's frames until it ends (aiortc ``recv()`` raising MediaStreamError)."""
        track = self._tracks[kind]
        while not self._ended[kind] or not track.empty():
            frame = await track.get()
            if frame is None:
                return
            yield frame

    async def _produce(self) -> None:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        audio_n = video_n = 0
        while True:
            audio_t = t0 + audio_n * OUTPUT_FRAME / OUTPUT_RATE
            video_t = t0 + video_n / self.timing.fps
            due = min(audio_t, video_t)
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
            if audio_t <= video_t:
                self._audio_tick(audio_t, audio_n)
                audio_n += 1
            else:
                self._video_tick(video_t, video_n)
                video_n += 1
            now = loop.time()
            self._timers = [t for t in self._timers if not t.cancelled() and t.when() > now]

    def _audio_tick(self, now: float, n: int) -> None:
        out = np.zeros((OUTPUT_FRAME, 2), dtype=np.int16)
        filled, spoken = 0, None
        while filled < OUTPUT_FRAME and self._playing:
            playback = self._playing[0]
            if playback.cut_at is not None and now >= playback.cut_at:
                self._playing.popleft()
                continue
            if now < playback.start_at:
                break
            if playback.available == 0:
                if playback.ended:
                    self._playing.popleft()
                    continue
                break  # underrun: the rest of this frame stays silent
            take = min(OUTPUT_FRAME - filled, playback.available)
            if spoken is None:
                position = playback.played / OUTPUT_RATE
                spoken = _Spoken(playback.seq.turn, position, filled, 0)
            out[filled : filled + take] = playback.take(take)
            filled += take
        if spoken is not None:
            spoken.filled = filled
        self._spoken = (now, spoken)
        if spoken is None and not self.timing.idle_audio:
            return
        frame = av.AudioFrame.from_ndarray(out.reshape(1, -1), format="s16", layout="stereo")
        frame.sample_rate = OUTPUT_RATE
        frame.pts = n * OUTPUT_FRAME
        frame.time_base = Fraction(1, OUTPUT_RATE)
        delay = self.timing.audio_latency + self._rng.uniform(0.0, self.timing.audio_jitter)
        self._deliver("audio", frame, now + delay)

    def _video_tick(self, now: float, n: int) -> None:
        timing = self.timing
        y = np.full((timing.height, timing.width), _IDLE_LUMA, dtype=np.uint8)
        audio_t, spoken = self._spoken
        sample = round((now - audio_t) * OUTPUT_RATE)
        if spoken is not None and spoken.offset <= sample < spoken.filled:
            position = spoken.position + (sample - spoken.offset) / OUTPUT_RATE
            y[:] = _SPEAKING_LUMA
            stamp_marker(y, round(position * timing.fps) & 0xFFFF, turn=spoken.turn)
        chroma = np.full(((timing.height + 1) // 2, (timing.width + 1) // 2), 128, np.uint8)
        packed = np.concatenate((y.ravel(), chroma.ravel(), chroma.ravel()))
        frame = av.VideoFrame.from_ndarray(packed.reshape(-1, timing.width), format="yuv420p")
        frame.pts = round(n * _VIDEO_CLOCK / timing.fps)
        frame.time_base = Fraction(1, _VIDEO_CLOCK)
        lag = self._rng.uniform(*timing.video_lag) + self._rng.uniform(0.0, timing.video_jitter)
        self._deliver("video", frame, now + timing.audio_latency + lag)

    def _deliver(self, kind: str, frame: av.AudioFrame | av.VideoFrame, due: float) -> None:
        due = max(due, self._last_due[kind])  # a jitter buffer delivers in order
        self._last_due[kind] = due
        loop = asyncio.get_running_loop()
        self._timers.append(loop.call_at(due, self._arrive, kind, frame))

    def _arrive(self, kind: str, frame: av.AudioFrame | av.VideoFrame) -> None:
        if not self._ended[kind]:
            self.frames_sent[kind] += 1
            self._tracks[kind].put_nowait(frame)


class FakeSignallingClient:
    """The WebSocket side the SDK's ``AgentAudioInputStream`` sends through."""

    def __init__(self, avatar: FakeAvatar, send_delay: float) -> None:
        self._avatar = avatar
        self._send_delay = send_delay
        self.messages: list[dict[str, Any]] = []
        self.closed = False

    async def send_agent_audio_input(self, payload: AgentAudioInputPayload) -> None:
        self._avatar.on_chunk(payload)
        await self._wire()

    async def send_agent_audio_input_end(self) -> None:
        self._avatar.on_end()
        await self._wire()

    async def send_message(self, message: dict[str, Any]) -> None:
        self.messages.append(message)
        await self._wire()

    async def send_end_session(self) -> None:
        self.messages.append({"actionType": "endsession"})

    async def close(self) -> None:
        self.closed = True

    async def _wire(self) -> None:
        if self._send_delay:
            await asyncio.sleep(self._send_delay)


class FakeStreamingClient:
    """Stands in for the SDK's ``StreamingClient`` (WebRTC + signalling) with the same surface."""

    def __init__(
        self,
        service: FakeAnamService,
        avatar: FakeAvatar,
        *,
        on_connection_established: Callable[[], Awaitable[None]],
        on_connection_closed: Callable[[str, str | None], Awaitable[None]],
        on_session_ready: Callable[[], Awaitable[None]],
    ) -> None:
        self.avatar = avatar
        avatar.connection = self
        self.closed = False
        self.close_calls = 0
        self._service = service
        self._timing = avatar.timing
        self._on_connection_established = on_connection_established
        self._on_connection_closed = on_connection_closed
        self._on_session_ready = on_session_ready
        self._signalling_client: FakeSignallingClient | None = None
        self._data_channel_open = False
        self._is_connected = False
        self._server_ended = False
        self._tracks_at: float | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def is_connected(self) -> bool:
        return self._is_connected

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        timing = self._timing
        self._signalling_client = FakeSignallingClient(self.avatar, timing.send_delay)
        self._tracks_at = loop.time() + timing.tracks_delay
        if self._service.hang_connect:
            await asyncio.Event().wait()  # ICE never completes
        if timing.ready_delay is not None:
            self._spawn(self._ready_after(timing.ready_delay))
        await asyncio.sleep(timing.connect_delay)
        self._is_connected = True
        if not self._service.ice_fails:  # else: the SDK logs "ICE connection failed", no event
            self.avatar.start_media()
        if timing.data_channel_delay > 0:
            self._spawn(self._open_data_channel_after(timing.data_channel_delay))
        else:
            self._data_channel_open = True
        self._spawn(self._on_connection_established())
        if self._service.end_after is not None:
            self._spawn(self._end_after(self._service.end_after))

    def create_agent_audio_input_stream(
        self, config: AgentAudioInputConfig
    ) -> AgentAudioInputStream:
        if not self._signalling_client:
            raise RuntimeError(
                "Failed to create agent audio input stream: signalling client is not available"
            )
        return AgentAudioInputStream(config, self._signalling_client)  # type: ignore[arg-type]

    async def video_frames(self) -> AsyncIterator[av.VideoFrame]:
        self._check_track("Video")
        async for frame in self.avatar.frames("video"):
            yield frame  # type: ignore[misc]

    async def audio_frames(self) -> AsyncIterator[av.AudioFrame]:
        self._check_track("Audio")
        async for frame in self.avatar.frames("audio"):
            yield frame  # type: ignore[misc]

    def send_data_message(self, message: str) -> bool:
        if not self._data_channel_open:
            return False
        data = json.loads(message)
        self.avatar.data_messages.append(data)
        if data.get("message_type") == "interrupt":
            self.avatar.on_interrupt()
        return True

    async def wait_for_data_channel(self, timeout: float = 10.0) -> bool:
        loop = asyncio.get_running_loop()
        start = loop.time()
        while not self._data_channel_open:
            if loop.time() - start > timeout:
                return False
            await asyncio.sleep(0.1)
        return True

    def send_interrupt(self) -> None:
        message = {"message_type": "interrupt", "session_id": f"fake-session-{self.avatar.index}"}
        self.send_data_message(json.dumps(message))

    async def close(self) -> None:
        self.close_calls += 1
        if self.closed:
            return
        self.closed = True
        signalling, self._signalling_client = self._signalling_client, None
        if signalling is not None:
            if not self._server_ended:
                await signalling.send_end_session()
            await signalling.close()
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        self.avatar.stop_media()
        self._data_channel_open = False
        self._is_connected = False

    # -- server-driven endings -----------------------------------------------------------------

    async def server_end(self, reason: str) -> None:
        """As the SDK handles a signalling ``endsession``: report the close, then close."""
        self._server_ended = True
        await self._on_connection_closed(ConnectionClosedCode.SERVER_CLOSED.value, reason)
        await self.close()

    def signalling_closed(self, reason: str) -> None:
        """As the SDK's ``_on_signalling_close``: only the close callback, nothing closed."""
        self._spawn(self._on_connection_closed("signalling_closed", reason))

    def webrtc_failed(self) -> None:
        """As the SDK handles the peer connection closing under it."""
        self.avatar.stop_media()
        self._spawn(self._on_connection_closed(ConnectionClosedCode.WEBRTC_FAILURE.value, None))

    # -- internals -----------------------------------------------------------------------------

    def _check_track(self, kind: str) -> None:
        loop = asyncio.get_running_loop()
        if self._tracks_at is None or loop.time() < self._tracks_at:
            raise RuntimeError(
                f"{kind} track not available. Wait for connection to be established."
            )

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _ready_after(self, delay: float) -> None:
        await asyncio.sleep(delay)
        await self._on_session_ready()

    async def _open_data_channel_after(self, delay: float) -> None:
        await asyncio.sleep(delay)
        self._data_channel_open = True

    async def _end_after(self, delay: float) -> None:
        await asyncio.sleep(delay)
        await self.server_end("session time limit reached")


class FakeAnamClient(AnamClient):
    """The SDK's ``AnamClient`` with only ``connect_async`` (the network) replaced."""

    def __init__(self, service: FakeAnamService, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._service = service

    async def connect_async(
        self,
        session_options: SessionOptions = SessionOptions(),  # noqa: B008  (the SDK's signature)
    ) -> Session:
        if self.is_streaming:
            raise SessionError("Already connected. Call close() first.")
        await self._service.start_session(self, session_options)
        avatar = self._service.new_avatar()
        self._session_info = SessionInfo(
            session_id=f"fake-session-{avatar.index}",
            engine_host="engine.fake-anam.test",
            engine_protocol="https",
            signalling_endpoint="/ws",
            heartbeat_interval_seconds=5,
            max_reconnection_attempts=5,
        )
        self._streaming_client = FakeStreamingClient(  # type: ignore[assignment]
            self._service,
            avatar,
            on_connection_established=self._handle_connection_established,
            on_connection_closed=self._handle_connection_closed,
            on_session_ready=self._handle_session_ready,
        )
        await self._streaming_client.connect()  # type: ignore[union-attr]
        self._is_streaming = True
        return Session(self)


class FakeAnamService:
    """The Anam cloud for one test: checks keys, starts fake sessions, keeps their avatars."""

    def __init__(
        self,
        api_key: str,
        *,
        timing: FakeTiming | None = None,
        auth: str = "ok",
        hang_connect: bool = False,
        end_after: float | None = None,
        ice_fails: bool = False,
    ) -> None:
        if auth not in ("ok", "reject", "busy", "reject_echo"):
            raise ValueError(f"unknown auth mode {auth!r}")
        self.api_key = api_key
        self.timing = timing or FakeTiming()
        self.auth = auth
        self.hang_connect = hang_connect
        self.end_after = end_after
        self.ice_fails = ice_fails
        """ICE fails at connect: connect_async returns anyway, ready comes, media never do."""
        self.clients: list[FakeAnamClient] = []
        self.requests: list[SessionRequest] = []
        self.avatars: list[FakeAvatar] = []

    def client_factory(self, *args: Any, **kwargs: Any) -> FakeAnamClient:
        """Use in place of ``anam.AnamClient`` (same arguments)."""
        client = FakeAnamClient(self, *args, **kwargs)
        self.clients.append(client)
        return client

    @property
    def avatar(self) -> FakeAvatar:
        """The server side of the newest session."""
        return self.avatars[-1]

    @property
    def connection(self) -> FakeStreamingClient | None:
        """The newest client's streaming connection (also while it is still connecting)."""
        if not self.clients:
            return None
        return self.clients[-1]._streaming_client  # type: ignore[return-value]

    def new_avatar(self) -> FakeAvatar:
        avatar = FakeAvatar(self.timing, len(self.avatars))
        self.avatars.append(avatar)
        return avatar

    async def start_session(self, client: AnamClient, session_options: SessionOptions) -> None:
        """The ``POST /v1/engine/session`` answer: raises what the SDK raises for each status."""
        await asyncio.sleep(self.timing.api_delay)
        key = client._api_key or ""
        key_ok = key == self.api_key
        self.requests.append(
            SessionRequest(key_ok, client._persona_config, session_options, client._options)
        )
        if self.auth == "reject_echo":
            raise AuthenticationError(f"Invalid API key {key}")
        if self.auth == "reject" or not key_ok:
            raise AuthenticationError("Invalid API key")
        if self.auth == "busy":
            raise SessionError(
                "Service is busy, please try again later", ErrorCode.SERVICE_BUSY, 503
            )
        persona = client._persona_config
        if persona is None or not (persona.avatar_id or persona.persona_id):
            raise SessionError(
                "Invalid request: avatarId or personaId is required",
                ErrorCode.VALIDATION_ERROR,
                400,
            )
