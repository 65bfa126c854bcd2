"""Push described frames through the public API in a child process, so a native crash is a result.

``run_probe(cases, via=...)`` starts ``python frame_probe.py``, which builds each case's frame,
pushes it through an ``AVSynchronizer`` (``via="sync"``) or an ``AvatarSession``'s provider
pumps (``via="session"``) whose sources are read back by local ``rtc.VideoStream`` and
``rtc.AudioStream``, and prints one JSON report. A SIGSEGV or native abort shows up as a
non-zero exit code in :class:`ProbeResult`, instead of killing the test runner.

A case is a dict: ``{"kind": "video", "width", "height", "type", "nbytes", "luma"}``,
``{"kind": "audio", "rate", "channels", "samples", "nbytes"}``, ``{"kind": "av_video",
"format", "width", "height"}`` or ``{"kind": "av_audio", "format", "layout", "samples",
"rate"}``, each with an optional ``"timestamp"``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SRC_W, SRC_H, FPS, RATE = 64, 48, 25, 24000


@dataclass
class ProbeResult:
    returncode: int
    outcomes: list[str] = field(default_factory=list)
    """Per case: ``"ok"`` or ``"InvalidFrame:<field>"`` / ``"<ExceptionType>:<message>"``."""
    read_sizes: list[list[int]] = field(default_factory=list)
    """Distinct (width, height) the local VideoStream read from the VideoSource."""
    read_luma: list[float] = field(default_factory=list)
    """Mean luma of each distinct frame read back (first 64 bytes of Y), in read order."""
    audio_admitted: float = 0.0
    rejected: dict[str, int] = field(default_factory=dict)
    session_alive: bool = True
    stderr: str = ""


def run_probe(
    cases: list[dict[str, Any]], *, via: str = "sync", pace: float = 2 / FPS, timeout: float = 120
) -> ProbeResult:
    """Run ``cases`` in a fresh interpreter; the timeout is generous: the machine may be busy."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).parent), *sys.path]))
    proc = subprocess.run(
        [sys.executable, __file__, via, str(pace)],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    report = next((ln for ln in proc.stdout.splitlines() if ln.startswith("{")), None)
    result = ProbeResult(proc.returncode, stderr=proc.stderr[-3000:])
    if report is not None:
        for key, value in json.loads(report).items():
            setattr(result, key, value)
    return result


# -- child side --------------------------------------------------------------------------------


def _make(case: dict[str, Any]) -> Any:
    import av
    import numpy as np
    from livekit import rtc

    kind = case["kind"]
    if kind == "video":
        data = bytearray([case.get("luma", 128)]) * case["nbytes"]
        return rtc.VideoFrame(case["width"], case["height"], case["type"], data)
    if kind == "audio":
        samples = (np.arange(case["nbytes"] // 2) % 2000 - 1000).astype(np.int16)
        return rtc.AudioFrame(samples.tobytes(), case["rate"], case["channels"], case["samples"])
    if kind == "av_video":
        return av.VideoFrame(case["width"], case["height"], case["format"])
    if kind == "av_audio":
        frame = av.AudioFrame(format=case["format"], layout=case["layout"], samples=case["samples"])
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        frame.sample_rate = case["rate"]
        return frame
    raise ValueError(f"unknown case kind {kind!r}")


def _outcome(exc: BaseException | None) -> str:
    if exc is None:
        return "ok"
    field_name = getattr(exc, "field", None)
    if field_name is not None:
        return f"{type(exc).__name__}:{field_name}"
    return f"{type(exc).__name__}:{exc}"


def _build(case: dict[str, Any]) -> Any:
    """The case's frame, or None when even its constructor refuses it (rtc.AudioFrame checks
    the buffer length itself)."""
    try:
        return _make(case)
    except ValueError:
        return None


async def _child(via: str, pace: float, cases: list[dict[str, Any]]) -> dict[str, Any]:
    import numpy as np
    from livekit import rtc

    from livekit_avsync import AvatarSession, AVSynchronizer
    from livekit_avsync.providers.base import AvatarProvider, OutputFrame

    report: dict[str, Any] = {"outcomes": [], "read_sizes": [], "read_luma": []}
    sizes: set[tuple[int, int]] = set()
    streams: list[Any] = []

    async def read_video(source: rtc.VideoSource) -> None:
        track = rtc.LocalVideoTrack.create_video_track("probe", source)
        stream = rtc.VideoStream(track, format=rtc.VideoBufferType.I420)
        streams.append(stream)
        last: bytes | None = None
        async for event in stream:
            frame = event.frame
            sizes.add((frame.width, frame.height))
            head = bytes(frame.data[:64])
            if head != last:
                report["read_luma"].append(float(np.frombuffer(head, np.uint8).mean()))
                last = head

    readers: list[asyncio.Task[None]] = []

    async def close_readers() -> None:
        for task in readers:
            task.cancel()
        for stream in streams:
            await stream.aclose()

    if via == "sync":
        audio_source = rtc.AudioSource(RATE, 1, queue_size_ms=100)
        video_source = rtc.VideoSource(SRC_W, SRC_H)
        readers.append(asyncio.create_task(read_video(video_source)))
        sync = AVSynchronizer(audio_source=audio_source, video_source=video_source, video_fps=FPS)
        for case in cases:
            frame = _build(case)
            if frame is None:
                report["outcomes"].append("unbuildable")
                continue
            error: BaseException | None = None
            try:
                await asyncio.wait_for(sync.push(frame, case.get("timestamp")), 10)
            except (ValueError, TypeError, RuntimeError) as exc:
                error = exc
            report["outcomes"].append(_outcome(error))
            await asyncio.sleep(pace if "video" in case["kind"] else 0.002)  # each one shown
        await asyncio.sleep(0.5)  # the video loop sends what it queued
        report["audio_admitted"] = sync.audio_admitted
        sync.clear_queue_nowait()  # no need to play the queued audio out
        await sync.aclose()
        await close_readers()  # before the sources: libwebrtc may abort at exit otherwise
        for source in (audio_source, video_source):
            await source.aclose()
    else:
        frames = [_build(case) for case in cases]

        class ListProvider(AvatarProvider):
            """Yields the cases' frames: audio ones from audio_frames, video ones from
            video_frames, and ``"wrong_iterator"`` cases from the other one."""

            label = "probe"
            sync_mode = "arrival"

            async def start(self, *, room: rtc.Room | None = None) -> None:
                self.emit("ready")

            async def push_audio(self, frame: rtc.AudioFrame) -> None:
                pass

            async def end_turn(self) -> None:
                pass

            async def interrupt(self) -> None:
                self._bump_generation()

            async def _frames(self, audio: bool) -> AsyncIterator[OutputFrame]:
                for case, frame in zip(cases, frames, strict=True):
                    is_audio = case["kind"] in ("audio", "av_audio")
                    if (
                        frame is not None
                        and (is_audio != case.get("wrong_iterator", False)) == audio
                    ):
                        yield OutputFrame(frame, case.get("timestamp"))
                        await asyncio.sleep(0.002)
                await asyncio.sleep(3600)  # the provider stays up: the session must too

            def audio_frames(self) -> AsyncIterator[OutputFrame]:
                return self._frames(True)

            def video_frames(self) -> AsyncIterator[OutputFrame]:
                return self._frames(False)

            async def aclose(self) -> None:
                pass

        from livekit.agents import AgentSession

        avatar = AvatarSession(
            provider=ListProvider(),
            video_width=SRC_W,
            video_height=SRC_H,
            video_fps=FPS,
            audio_sample_rate=RATE,
        )
        await avatar.start(AgentSession(), None)
        readers.append(asyncio.create_task(read_video(avatar.video_source)))
        await asyncio.sleep(0.5 + 0.01 * len(cases))
        report["rejected"] = avatar.rejected_frames
        report["audio_admitted"] = avatar.synchronizer.audio_admitted
        try:
            avatar.synchronizer.clear_queue_nowait()  # raises once the session has closed
        except RuntimeError:
            report["session_alive"] = False
        else:
            report["session_alive"] = True
        await close_readers()
        await avatar.aclose()
    await asyncio.sleep(0.05)
    report["read_sizes"] = sorted([list(s) for s in sizes])
    return report


if __name__ == "__main__":
    report = asyncio.run(_child(sys.argv[1], float(sys.argv[2]), json.loads(sys.stdin.read())))
    print(json.dumps(report), flush=True)
    # everything is closed and reported: skip the interpreter's teardown, where livekit-rtc's
    # tokio threads can still abort the process ("panic in a function that cannot unwind", seen
    # once in CI after the report was printed); a crash while the frames are pushed still fails
    sys.stderr.flush()
    os._exit(0)
