"""RecordedProvider: replays a :class:`ProviderRecorder` recording as if it were the provider.

Every frame comes out at its recorded arrival offset (divided by ``speed``) from the moment
:meth:`RecordedProvider.start` returns, audio and video paced independently, with its recorded
timestamp, generation and speech flag and its exact content (int16 samples, I420 planes); the
recorded events are emitted at their times too. Each iterator is meant for one consumer; frames
wait in a small queue (64 per stream) for it, and the replay pauses while that queue is full. See
:mod:`livekit_avsync.providers.recorder` for the file format.

A recording cannot react to the agent: ``push_audio()`` and ``end_turn()`` are accepted and only
counted (:attr:`~RecordedProvider.pushed_frames`, :attr:`~RecordedProvider.turns_ended`).
``interrupt()`` bumps the generation and, when the recording is speaking at that moment (its audio
carries ``speech=True``), skips forward to the point where the recorded provider went idle (the
next audio frame whose speech flag is not True): the skipped frames are never delivered, the rest
comes out at the original pace from there. The interrupted turn's recorded ``playback_finished``
(the first one after the interrupt, before the next speech starts) is reported with
``interrupted=True`` and the position where the turn was cut. Recorded events inside the skipped
span are still emitted, at once. Frames delivered after an interrupt carry their recorded
generation plus the number of interrupts so far, so the session sees them as the new turn.
Recordings without speech flags are never skipped.

With ``loop=True`` the recording repeats; pass ``k`` is shifted by ``k`` recording durations in
time and timestamps, and its generations by ``k`` times the recording's generation span.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import logging
import math
import os
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import av
from livekit import rtc

from ..media.convert import video_to_i420
from .base import AvatarProvider, OutputFrame, PlaybackFinished, ProviderError
from .recorder import FORMAT_NAME, FORMAT_VERSION, RECORDED_EVENTS, sidecar_path

__all__ = ["RecordedProvider"]

logger = logging.getLogger(__name__)

_QUEUE_FRAMES = 64  # frames delivered but not yet read, per stream, before replay waits
_SYNC_MODES = ("auto", "timestamps", "arrival")
_PTS_TOLERANCE_US = 1000  # media pts are arrival times rounded to ms
_MIN_LOOP_US = 10_000
_UNREAD: dict[str, Any] = {}  # marker: the next record has not been read yet

Kind = Literal["audio", "video", "event"]


@dataclass(slots=True)
class _End:
    """Marks the end of a stream in an output queue (``error`` set when replay failed)."""

    error: ProviderError | None = None


@dataclass(slots=True)
class _Info:
    """What a full check of a recording found: formats, length, and where speech starts/stops."""

    duration_us: int
    audio: dict[str, int] | None
    video: dict[str, int] | None
    min_gen: int = 0
    max_gen: int = 0
    speech_changes: list[tuple[int, bool]] = field(default_factory=list)
    """(t_us, speaking) at every change of the audio's speech state; silent at t=0."""


@dataclass(slots=True)
class _Cut:
    """An interrupted turn: its recorded playback_finished inside the window is reported cut."""

    start_us: float
    end_us: float
    position: float


class RecordedProvider(AvatarProvider):
    """An :class:`AvatarProvider` that replays a recording made by :class:`ProviderRecorder`.

    ``path`` is the recording's media file (its sidecar is next to it). ``sync_mode``,
    ``video_lag`` and the original ``label`` (as :attr:`recorded_label`) come from the recording.
    Raises :class:`ProviderError` naming the file when it is missing or not a recording; the full
    check of its contents runs in :meth:`start`.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, loop: bool = False, speed: float = 1.0
    ) -> None:
        super().__init__()
        if not (isinstance(speed, (int, float)) and math.isfinite(speed) and speed > 0):
            raise ValueError(f"speed must be a finite number > 0, got {speed!r}")
        self._path = Path(path)
        self._loop_replay = loop
        self._speed = float(speed)
        header = _read_header(self._path)
        self.recorded_label: str = header["label"]
        self.label = f"recorded:{header['label']}"
        self.sync_mode = header["sync_mode"]
        self.video_lag = float(header["video_lag"])
        self.pushed_frames = 0
        """Frames of agent speech received by :meth:`push_audio` (counted, not used)."""
        self.turns_ended = 0
        """Calls of :meth:`end_turn` (counted, not used)."""
        self._info: _Info | None = None
        self._queues: dict[str, asyncio.Queue[OutputFrame | _End]] = {
            "audio": asyncio.Queue(_QUEUE_FRAMES),
            "video": asyncio.Queue(_QUEUE_FRAMES),
        }
        self._tasks: list[asyncio.Task[None]] = []
        self._executors: dict[str, ThreadPoolExecutor] = {}
        self._timeline: _Timeline | None = None
        self._gen_offset = 0
        self._cut: _Cut | None = None
        self._error: ProviderError | None = None
        self._done = asyncio.Event()
        self._started = False
        self._closed = False

    @property
    def path(self) -> Path:
        """The recording's media file."""
        return self._path

    @property
    def position(self) -> float:
        """Seconds into the recording the replay has reached (grows past the end when looping)."""
        return 0.0 if self._timeline is None else self._timeline.position_us() / 1e6

    async def start(self, *, room: rtc.Room | None = None) -> None:
        """Check the whole recording, then start replaying it; emits ``ready``."""
        if self._closed:
            raise ProviderError("RecordedProvider is closed")
        if self._started:
            raise ProviderError("RecordedProvider already started")
        self._started = True
        info = self._info = await asyncio.to_thread(_scan, self._path)
        if self._loop_replay and info.duration_us < _MIN_LOOP_US:
            raise ProviderError(
                f"recording {self._path} lasts {info.duration_us / 1e6:.3f} s: too short to loop"
            )
        kinds: list[Kind] = ["event"]
        kinds += [kind for kind in ("audio", "video") if getattr(info, kind) is not None]
        for kind in ("audio", "video"):
            if kind not in kinds:
                self._queues[kind].put_nowait(_End())
        # Open every stream and read its first record before the clock starts, so that even
        # the first frames come out on time.
        loop = asyncio.get_running_loop()
        readers = {kind: _TrackReader(self._path, kind) for kind in kinds}
        for kind in kinds:
            self._executors[kind] = ThreadPoolExecutor(
                1, thread_name_prefix=f"avsync-replay-{kind}"
            )
        try:
            firsts = await asyncio.gather(
                *(loop.run_in_executor(self._executors[k], readers[k].next, 0) for k in kinds)
            )
        except BaseException:
            for kind in kinds:
                self._executors[kind].submit(readers[kind].close)
            await self.aclose()
            raise
        self._timeline = _Timeline(self._speed)
        for kind, first in zip(kinds, firsts, strict=True):
            self._tasks.append(
                asyncio.create_task(
                    self._play(kind, readers[kind], first), name=f"avsync-replay-{kind}"
                )
            )
        self.emit("ready")

    async def push_audio(self, frame: rtc.AudioFrame) -> None:
        """Accepted and counted; a recording cannot speak new words."""
        self.pushed_frames += 1

    async def end_turn(self) -> None:
        """Accepted and counted."""
        self.turns_ended += 1

    async def interrupt(self) -> None:
        """Bump the generation and, if the recording is speaking, skip to where it went idle."""
        self._bump_generation()
        self._gen_offset += 1
        if self._timeline is None or self._info is None or self._done.is_set():
            return
        info, timeline = self._info, self._timeline
        now_us = timeline.position_us()
        duration = max(info.duration_us, 1)
        loop_pass, at_us = divmod(now_us, duration) if self._loop_replay else (0.0, now_us)
        times = [t for t, _ in info.speech_changes]
        index = bisect.bisect_right(times, at_us) - 1
        if index < 0 or not info.speech_changes[index][1]:
            return  # idle already: nothing to cut
        base = loop_pass * duration
        idle_us = times[index + 1] if index + 1 < len(times) else duration
        next_speech = [t for t, speaking in info.speech_changes[index + 1 :] if speaking]
        if next_speech:
            window_end = base + next_speech[0]
        elif self._loop_replay:
            first = [t for t, speaking in info.speech_changes if speaking]
            window_end = base + duration + first[0]
        else:
            window_end = math.inf
        self._cut = _Cut(base + at_us, window_end, (at_us - times[index]) / 1e6)
        timeline.jump_to(base + idle_us)

    def audio_frames(self) -> AsyncIterator[OutputFrame]:
        """Recorded audio as int16 ``rtc.AudioFrame``; ends when the replay ends or closes."""
        return self._read("audio")

    def video_frames(self) -> AsyncIterator[OutputFrame]:
        """Recorded video as I420 ``rtc.VideoFrame``; ends when the replay ends or closes."""
        return self._read("video")

    async def _read(self, kind: str) -> AsyncIterator[OutputFrame]:
        queue = self._queues[kind]
        while True:
            item = await queue.get()
            if isinstance(item, _End):
                queue.put_nowait(item)  # every later reader ends too
                if item.error is not None:
                    raise item.error
                return
            yield item

    async def wait_done(self) -> None:
        """Wait until the whole recording has been delivered (or the replay failed or closed);
        a looping replay is done only when closed.

        Raises the :class:`ProviderError` that stopped the replay, if one did.
        """
        await self._done.wait()
        if self._error is not None:
            raise self._error

    async def _play(self, kind: Kind, reader: _TrackReader, first: dict[str, Any] | None) -> None:
        """Deliver one stream's records at their recorded times, pass after pass."""
        assert self._info is not None
        try:
            loop_pass = 0
            while True:
                await self._play_pass(kind, reader, first, loop_pass)
                loop_pass += 1
                if not self._loop_replay:
                    break
                reader, first = _TrackReader(self._path, kind), _UNREAD
            if kind != "event":
                await self._queues[kind].put(_End())
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._fail(exc, kind)
        finally:
            if all(task.done() or task is asyncio.current_task() for task in self._tasks):
                self._done.set()

    async def _play_pass(
        self, kind: Kind, reader: _TrackReader, record: dict[str, Any] | None, loop_pass: int
    ) -> None:
        """One pass over the recording; ``record`` is the first one if already read."""
        assert self._info is not None and self._timeline is not None
        timeline, executor = self._timeline, self._executors[kind]
        base = loop_pass * self._info.duration_us
        loop = asyncio.get_running_loop()
        try:
            while True:
                if record is _UNREAD:
                    skip_before = timeline.skip_before_us - base
                    record = await loop.run_in_executor(executor, reader.next, skip_before)
                if record is None:
                    # a pass lasts the recording's duration even when its last record is early
                    # (events): a looping track must not start the next pass, and re-read the
                    # whole sidecar, at once and again, as fast as a thread can
                    await timeline.wait_until(base + self._info.duration_us, skippable=False)
                    return
                at = base + record["t_us"]
                if await timeline.wait_until(at, skippable=kind != "event"):
                    await self._deliver(kind, record, loop_pass, at)
                record = _UNREAD
        finally:
            executor.submit(reader.close)  # runs after any read still in flight

    async def _deliver(self, kind: Kind, record: dict[str, Any], loop_pass: int, at: float) -> None:
        assert self._info is not None
        if kind == "event":
            self._emit_recorded(record, at)
            return
        shift_s = loop_pass * self._info.duration_us / 1e6
        timestamp = record["ts"]
        if timestamp is not None and loop_pass:
            timestamp += shift_s
        generation = record["gen"]
        if generation is not None:
            generation += self._gen_offset + loop_pass * (self._info.max_gen - self._info.min_gen)
            self._generation = max(self._generation, generation)
        payload = record["payload"]
        if kind == "audio":
            assert self._info.audio is not None
            channels = self._info.audio["channels"]
            frame: rtc.AudioFrame | rtc.VideoFrame = rtc.AudioFrame(
                payload, self._info.audio["sample_rate"], channels, len(payload) // (2 * channels)
            )
            out = OutputFrame(frame, timestamp, generation, record["speech"])
        else:
            out = OutputFrame(payload, timestamp, generation)
        await self._queues[kind].put(out)

    def _emit_recorded(self, record: dict[str, Any], at: float) -> None:
        event = record["event"]
        if event == "playback_finished":
            cut = self._cut
            if cut is not None and cut.start_us <= at < cut.end_us:
                self._cut = None
                self.emit("playback_finished", PlaybackFinished(cut.position, True))
            else:
                finished = PlaybackFinished(record["playback_position"], record["interrupted"])
                self.emit("playback_finished", finished)
        elif event == "disconnected":
            self.emit("disconnected", record["reason"])
        else:
            self.emit("playback_started")

    def _fail(self, exc: Exception, kind: str) -> None:
        if self._error is not None:
            return
        if isinstance(exc, ProviderError):
            error = exc
        else:
            error = ProviderError(f"recording {self._path}: replay of {kind} failed: {exc}")
            error.__cause__ = exc
        self._error = error
        logger.error("%s", error, exc_info=exc)
        for task in self._tasks:
            if task is not asyncio.current_task():
                task.cancel()
        for queue in self._queues.values():
            _force_put(queue, _End(error))
        self.emit("disconnected", str(error))

    async def aclose(self) -> None:
        """Stop replaying: cancel the pacing tasks, end both iterators. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for executor in self._executors.values():
            executor.shutdown(wait=True)
        for queue in self._queues.values():
            while not queue.empty():  # undelivered frames are dropped: the iterators end now
                queue.get_nowait()
            queue.put_nowait(_End(self._error))
        self._done.set()


class _Timeline:
    """Maps recording positions (µs) to event-loop times; an interrupt moves it forward."""

    def __init__(self, speed: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._speed = speed
        self._origin = self._loop.time()
        self._waiters: set[asyncio.Future[None]] = set()
        self.skip_before_us = 0.0
        """Records before this position are skipped (media) or delivered at once (events)."""

    def position_us(self) -> float:
        return (self._loop.time() - self._origin) * self._speed * 1e6

    async def wait_until(self, at_us: float, *, skippable: bool) -> bool:
        """Sleep until position ``at_us``; False if a jump skipped it (for skippable records)."""
        while True:
            if skippable and at_us < self.skip_before_us:
                return False
            delay = self._origin + at_us / 1e6 / self._speed - self._loop.time()
            if delay <= 0:
                return True
            waiter = self._loop.create_future()
            self._waiters.add(waiter)
            timer = self._loop.call_later(delay, _resolve, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiters.discard(waiter)

    def jump_to(self, at_us: float) -> None:
        """Make position ``at_us`` now, skipping everything before it; wake the sleepers."""
        self._origin = self._loop.time() - at_us / 1e6 / self._speed
        self.skip_before_us = max(self.skip_before_us, at_us)
        for waiter in self._waiters:
            _resolve(waiter)


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _force_put(queue: asyncio.Queue[Any], item: Any) -> None:
    """Append ``item``, dropping the oldest undelivered frames if the queue is full."""
    while queue.full():
        queue.get_nowait()
    queue.put_nowait(item)


class _TrackReader:
    """Pairs one kind's sidecar records with its media packets, in order. One thread only."""

    def __init__(self, path: Path, kind: Kind) -> None:
        self._path = path
        self._kind = kind
        self._lines: IO[str] | None = None
        self._container: av.container.InputContainer | None = None
        self._packets: Iterator[av.Packet] | None = None
        self._count = 0

    def _open(self) -> IO[str]:
        self._lines = _open_sidecar(self._path)
        next(self._lines)  # the header, checked by _scan
        if self._kind != "event":
            self._container = _open_media(self._path)
            streams = self._container.streams
            stream = streams.audio[0] if self._kind == "audio" else streams.video[0]
            self._packets = self._container.demux(stream)
        return self._lines

    def next(self, skip_before_us: float) -> dict[str, Any] | None:
        """The next record (media in ``"payload"``; None for skipped video), or None at the end."""
        for line in self._lines or self._open():
            record = json.loads(line)
            if record["kind"] == "end":
                if self._packets is not None and self._next_packet() is not None:
                    raise self._error(f"media file has more {self._kind} frames than the sidecar")
                return None
            if record["kind"] != self._kind:
                continue
            self._count += 1
            if self._packets is not None:
                packet = self._next_packet()
                if packet is None:
                    raise self._error(f"media file ends before {self._kind} frame {self._count}")
                pts_us = 0 if packet.pts is None else int(packet.pts * packet.time_base * 1e6)
                if abs(pts_us - record["t_us"]) > _PTS_TOLERANCE_US:
                    raise self._error(
                        f"{self._kind} frame {self._count} is at {pts_us / 1e6:.3f} s in the "
                        f"media file but {record['t_us'] / 1e6:.3f} s in the sidecar: they do "
                        "not belong together"
                    )
                if self._kind == "audio":
                    record["payload"] = bytes(packet)
                elif record["t_us"] < skip_before_us:
                    record["payload"] = None  # skipped: every frame is a keyframe, no decode
                else:
                    record["payload"] = self._decode(packet)
            return record
        raise self._error("sidecar ends without its end line")

    def _next_packet(self) -> av.Packet | None:
        assert self._packets is not None
        for packet in self._packets:
            if packet.size:
                return packet
        return None

    def _decode(self, packet: av.Packet) -> rtc.VideoFrame:
        try:
            frames = packet.decode()
        except av.FFmpegError as exc:
            raise self._error(f"video frame {self._count} does not decode: {exc}") from exc
        if len(frames) != 1:
            raise self._error(f"video frame {self._count} decoded to {len(frames)} frames")
        return video_to_i420(frames[0])  # type: ignore[arg-type]  # the recorded size

    def _error(self, what: str) -> ProviderError:
        return ProviderError(f"recording {self._path}: {what}")

    def close(self) -> None:
        if self._lines is not None:
            self._lines.close()
        if self._container is not None:
            self._container.close()
            self._container = None


def _open_sidecar(path: Path) -> IO[str]:
    """The sidecar, open for reading line by line."""
    sidecar = sidecar_path(path)
    try:
        return open(sidecar, encoding="utf-8")
    except FileNotFoundError:
        raise ProviderError(
            f"recording {path}: its sidecar {sidecar.name} is missing (both files are needed)"
        ) from None
    except OSError as exc:
        raise ProviderError(f"recording {path}: cannot open {sidecar.name}: {exc}") from exc


def _open_media(path: Path) -> av.container.InputContainer:
    try:
        return av.open(str(path))
    except FileNotFoundError:
        raise ProviderError(f"recording {path}: the media file is missing") from None
    except (OSError, av.FFmpegError) as exc:
        raise ProviderError(f"recording {path}: the media file is not readable: {exc}") from exc


def _read_header(path: Path) -> dict[str, Any]:
    """The sidecar's first line, checked; ProviderError naming the file otherwise."""
    lines = _open_sidecar(path)
    try:
        first = next(lines, "")
    except UnicodeDecodeError:
        raise ProviderError(f"recording {path}: the sidecar is not UTF-8 text") from None
    finally:
        lines.close()
    try:
        header = json.loads(first)
    except ValueError:
        header = None
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise ProviderError(
            f"recording {path}: {sidecar_path(path).name} is not a {FORMAT_NAME} sidecar"
        )
    if header.get("version") != FORMAT_VERSION:
        raise ProviderError(
            f"recording {path}: format version {header.get('version')!r} is not supported "
            f"(this library reads version {FORMAT_VERSION})"
        )
    if not isinstance(header.get("label"), str) or header.get("sync_mode") not in _SYNC_MODES:
        raise ProviderError(f"recording {path}: header has no valid label/sync_mode")
    if not isinstance(header.get("video_lag"), (int, float)):
        raise ProviderError(f"recording {path}: header has no valid video_lag")
    return header


def _scan(path: Path) -> _Info:
    """Check the whole sidecar and the media file's streams; ProviderError on any defect."""
    _read_header(path)
    counts = {"audio": 0, "video": 0, "event": 0}
    last = {"audio": -1, "video": -1, "event": -1}
    gens: list[int] = []  # [lowest, highest]
    changes: list[tuple[int, bool]] = []
    speaking = False
    end: dict[str, Any] | None = None
    lines = _open_sidecar(path)
    try:
        next(lines)
        for number, line in enumerate(lines, start=2):

            def bad(what: str, number: int = number) -> ProviderError:
                return ProviderError(f"recording {path}: sidecar line {number}: {what}")

            if end is not None:
                raise bad("records after the end line")
            try:
                record = json.loads(line)
            except ValueError:
                raise bad("not JSON (the file is damaged or truncated)") from None
            kind = record.get("kind") if isinstance(record, dict) else None
            if kind == "end":
                end = record
                continue
            if kind not in counts:
                raise bad(f"unknown record kind {kind!r}")
            t_us = record.get("t_us")
            if not isinstance(t_us, int) or t_us < last[kind]:
                raise bad(f"t_us {t_us!r} is not an integer at or after the previous {kind}")
            last[kind] = t_us
            counts[kind] += 1
            if kind == "event":
                _check_event(record, bad)
                continue
            if not (record.get("ts") is None or isinstance(record["ts"], (int, float))):
                raise bad("ts must be a number or null")
            gen = record.get("gen")
            if gen is not None:
                if not isinstance(gen, int):
                    raise bad("gen must be an integer or null")
                gens[:] = [min(gens[0], gen), max(gens[1], gen)] if gens else [gen, gen]
            if kind == "audio":
                speech = record.get("speech")
                if speech not in (True, False, None):
                    raise bad("speech must be true, false or null")
                if (speech is True) != speaking:
                    speaking = speech is True
                    changes.append((t_us, speaking))
    finally:
        lines.close()
    if end is None:
        raise ProviderError(
            f"recording {path}: the sidecar has no end line: the recording was not finished "
            "(ProviderRecorder.aclose() was never called)"
        )
    if end.get("error"):
        raise ProviderError(f"recording {path} is incomplete: recording failed: {end['error']}")
    info = _Info(
        duration_us=int(end.get("duration_us", -1)),
        audio=end.get("audio"),
        video=end.get("video"),
        speech_changes=changes,
    )
    if info.duration_us < 0:
        raise ProviderError(f"recording {path}: the end line has no duration_us")
    if gens:
        info.min_gen, info.max_gen = gens
    for kind in ("audio", "video"):
        declared = getattr(info, kind)
        frames = 0 if declared is None else declared.get("frames")
        if frames != counts[kind]:
            raise ProviderError(
                f"recording {path}: the end line declares {frames} {kind} frames but the "
                f"sidecar holds {counts[kind]}"
            )
    if info.audio is not None or info.video is not None:
        _check_media(path, info)
    return info


def _check_event(record: dict[str, Any], bad: Any) -> None:
    event = record.get("event")
    if event not in RECORDED_EVENTS:
        raise bad(f"unknown event {event!r}")
    if event == "playback_finished" and not (
        isinstance(record.get("playback_position"), (int, float))
        and isinstance(record.get("interrupted"), bool)
    ):
        raise bad("playback_finished needs playback_position and interrupted")
    if event == "disconnected" and not isinstance(record.get("reason"), str):
        raise bad("disconnected needs a reason")


def _check_media(path: Path, info: _Info) -> None:
    """The media file must hold the streams the sidecar's end line declares."""
    with _open_media(path) as container:
        if info.audio is not None:
            streams = container.streams.audio
            if len(streams) != 1 or streams[0].codec_context.name != "pcm_s16le":
                raise ProviderError(f"recording {path}: the media file has no pcm_s16le audio")
            ctx = streams[0].codec_context
            if (ctx.sample_rate, ctx.channels) != (
                info.audio["sample_rate"],
                info.audio["channels"],
            ):
                raise ProviderError(
                    f"recording {path}: media audio is {ctx.sample_rate} Hz/{ctx.channels} ch, "
                    f"the sidecar says {info.audio['sample_rate']} Hz/{info.audio['channels']} ch"
                )
        if info.video is not None:
            streams = container.streams.video
            if len(streams) != 1 or streams[0].codec_context.name != "ffv1":
                raise ProviderError(f"recording {path}: the media file has no ffv1 video")
            ctx = streams[0].codec_context
            if (ctx.width, ctx.height) != (info.video["width"], info.video["height"]):
                raise ProviderError(
                    f"recording {path}: media video is {ctx.width}x{ctx.height}, the sidecar "
                    f"says {info.video['width']}x{info.video['height']}"
                )
