"""Marker media in files: write an MP4 of marker video + audio, and measure any recording of it.

Written files are H.264 (libx264, yuv420p) + AAC in MP4, with the marker spec stored as JSON in
the container's ``comment`` tag. The video can be shifted against the audio (``video_offset``) to
make files with a known offset. Measuring uses each video frame's pts and the position of each
audio sample, so a file's own timeline is measured, independent of how fast it is decoded.
"""

from __future__ import annotations

import json
import logging
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ..media.convert import audio_to_rtc, av_frame_time
from .analysis import SyncReport, VideoObservation, analyze_sync
from .bursts import BurstDetector, marker_audio_samples
from .markers import MAX_FRAME_NUMBER, marker_av_frame, read_marker
from .spec import MarkerSpec

__all__ = ["AUDIO_CODECS", "VIDEO_CODECS", "generate_marker_file", "measure_file"]

VIDEO_CODECS = ("libx264", "libopenh264", "mpeg4")  # first one this PyAV can encode is used
AUDIO_CODECS = ("aac", "libfdk_aac", "mp3")
logger = logging.getLogger("livekit_avsync.measure")

_META_KEY = "comment"
_META_TAG = "livekit-avsync-markers"
_VIDEO_TIME_BASE = Fraction(1, 90000)


def _encoder(candidates: tuple[str, ...], kind: str) -> str:
    for name in candidates:
        try:
            av.Codec(name, "w")
        except (av.FFmpegError, ValueError):
            continue
        return name
    raise RuntimeError(f"this PyAV build has no {kind} encoder among {', '.join(candidates)}")


def _blank_frame(width: int, height: int) -> av.VideoFrame:
    """A mid-grey frame with no marker code."""
    planes = np.full((height * 3 // 2, width), 128, dtype=np.uint8)
    planes[:height] = 96
    return av.VideoFrame.from_ndarray(planes, format="yuv420p")


def _timed(frame: av.VideoFrame, pts: int) -> av.VideoFrame:
    frame.pts = pts
    frame.time_base = _VIDEO_TIME_BASE
    return frame


def generate_marker_file(
    path: str | os.PathLike[str],
    duration: float,
    *,
    fps: float = 30.0,
    width: int = 640,
    height: int = 360,
    sample_rate: int = 48000,
    num_channels: int = 1,
    video_offset: float = 0.0,
    spec: MarkerSpec | None = None,
) -> tuple[str, str]:
    """Write ``duration`` seconds of marker media to an MP4 at ``path``; return the codecs used.

    Video frame ``n`` is shown at ``n / fps + video_offset`` (positive: video late); frames that
    would fall before 0 are left out. ``spec`` defaults to ``MarkerSpec(fps=fps)``; if given,
    its ``fps`` must equal ``fps``. libx264 + AAC are used when this PyAV build has them (the
    first available of ``VIDEO_CODECS`` / ``AUDIO_CODECS`` otherwise, with a warning). A file
    left half-written by an error is removed.
    """
    spec = spec or MarkerSpec(fps=fps)
    if spec.fps != fps:
        raise ValueError(f"spec.fps={spec.fps} does not match fps={fps}")
    if not 0 < duration:
        raise ValueError(f"duration must be positive, got {duration}")
    frames = int(np.ceil(duration * fps - 1e-9))
    if frames - 1 > MAX_FRAME_NUMBER:
        raise ValueError(f"{duration} s at {fps} fps exceeds {MAX_FRAME_NUMBER + 1} marker frames")
    if abs(video_offset) >= duration:
        raise ValueError(f"video_offset {video_offset} s must be shorter than the duration")
    if num_channels not in (1, 2):
        raise ValueError(f"num_channels must be 1 or 2, got {num_channels}")
    marker_av_frame(0, width, height, spec=spec)  # validates the frame size
    marker_audio_samples(0, 1, sample_rate=sample_rate, spec=spec)  # validates the rate
    codecs = _encoder(VIDEO_CODECS, "video"), _encoder(AUDIO_CODECS, "audio")
    if codecs != (VIDEO_CODECS[0], AUDIO_CODECS[0]):
        logger.warning("libx264/aac missing in this PyAV build; writing %s + %s", *codecs)
    try:
        with av.open(os.fspath(path), "w", format="mp4") as out:
            out.metadata[_META_KEY] = json.dumps(
                {"tag": _META_TAG, "fps": fps, "burst_every": spec.burst_every}
            )
            video = out.add_stream(codecs[0], rate=Fraction(fps).limit_denominator(1001))
            audio = out.add_stream(codecs[1], rate=sample_rate)
            audio.layout = "mono" if num_channels == 1 else "stereo"
            _write_video(out, video, frames, width, height, duration, video_offset, spec)
            _write_audio(out, audio, round(duration * sample_rate), num_channels, spec)
    except BaseException:
        Path(path).unlink(missing_ok=True)
        raise
    return codecs


def _write_video(
    out: av.container.OutputContainer,
    stream: av.VideoStream,
    frames: int,
    width: int,
    height: int,
    duration: float,
    video_offset: float,
    spec: MarkerSpec,
) -> None:
    """Encode marker frames 0..frames-1, frame n at n / fps + video_offset (within the file)."""
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.time_base = _VIDEO_TIME_BASE
    stream.codec_context.time_base = _VIDEO_TIME_BASE  # else pts are rounded to 1 / fps
    if stream.codec_context.name == "libx264":
        stream.options = {"preset": "veryfast", "crf": "20"}
    # the track starts at 0 with a frame without a code, so that a shifted first marker
    # frame is not moved by the muxer's edit list (which is rounded to milliseconds)
    first = max(0, int(np.ceil(-video_offset * spec.fps - 1e-9)))
    if first / spec.fps + video_offset > 0:
        out.mux(stream.encode(_timed(_blank_frame(width, height), 0)))
    for n in range(first, frames):
        t = n / spec.fps + video_offset
        if t >= duration:
            break
        frame = marker_av_frame(n, width, height, spec=spec)
        out.mux(stream.encode(_timed(frame, round(t / _VIDEO_TIME_BASE))))
    out.mux(stream.encode(None))


def _write_audio(
    out: av.container.OutputContainer,
    stream: av.AudioStream,
    total: int,
    num_channels: int,
    spec: MarkerSpec,
) -> None:
    """Encode ``total`` samples of marker audio in encoder-sized frames."""
    sample_rate = stream.codec_context.sample_rate
    chunk = stream.codec_context.frame_size or 1024
    layout = stream.layout.name
    for pos in range(0, total, chunk):
        count = min(chunk, total - pos)
        samples = marker_audio_samples(
            pos, count, sample_rate=sample_rate, num_channels=num_channels, spec=spec
        )
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout=layout)
        frame.sample_rate = sample_rate
        frame.pts = pos
        frame.time_base = Fraction(1, sample_rate)
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))


def _spec_of(container: av.container.InputContainer, stream: av.VideoStream) -> MarkerSpec:
    """The spec a file was written with (from its tag), else one at the stream's frame rate."""
    try:
        meta = json.loads(container.metadata.get(_META_KEY, ""))
        if meta.get("tag") == _META_TAG:
            return MarkerSpec(fps=float(meta["fps"]), burst_every=int(meta["burst_every"]))
    except (ValueError, TypeError, KeyError):
        pass
    rate = stream.average_rate or stream.guessed_rate or 30
    return MarkerSpec(fps=float(rate))


def measure_file(
    path: str | os.PathLike[str],
    *,
    spec: MarkerSpec | None = None,
    max_offset: float | None = None,
) -> SyncReport:
    """Measure the audio/video offset of each marker in a media file (e.g. a recording).

    Raises ``FileNotFoundError`` if ``path`` does not exist and ``ValueError`` if it is not a
    media file with both a video and an audio stream. A file without markers gives a report with
    no pairs.
    """
    file = Path(path)
    if not file.exists():
        raise FileNotFoundError(f"{file}: no such file")
    if not file.is_file():
        raise ValueError(f"{file}: not a file")
    try:
        container = av.open(os.fspath(file))
    except av.FFmpegError as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ValueError(f"{file}: not a media file PyAV can read ({reason})") from exc
    with container:
        if not container.streams.video or not container.streams.audio:
            raise ValueError(f"{file}: needs both a video and an audio stream")
        video_stream = container.streams.video[0]
        audio_stream = container.streams.audio[0]
        spec = spec or _spec_of(container, video_stream)
        detector: BurstDetector | None = None
        video: list[VideoObservation] = []
        audio_next: float | None = None  # time of the next sample, from sample positions
        try:
            for frame in container.decode(video_stream, audio_stream):
                t = av_frame_time(frame)
                if isinstance(frame, av.VideoFrame):
                    code = read_marker(frame)
                    if code is not None and t is not None:
                        video.append(VideoObservation(t, code.frame, code.turn))
                    continue
                rtc_frame = audio_to_rtc(frame)
                if detector is None:
                    detector = BurstDetector(rtc_frame.sample_rate, spec=spec)
                duration = rtc_frame.samples_per_channel / rtc_frame.sample_rate
                if audio_next is None or (t is not None and abs(t - audio_next) > duration):
                    audio_next = t if t is not None else 0.0  # start, or a gap in the audio
                samples = np.frombuffer(rtc_frame.data, dtype=np.int16)
                detector.feed(samples.reshape(-1, rtc_frame.num_channels), audio_next)
                audio_next += duration
        except av.FFmpegError as exc:
            raise ValueError(f"{file}: cannot decode ({exc})") from exc
        if detector is not None:
            detector.flush()
        bursts = detector.bursts if detector is not None else []
    return analyze_sync(video, bursts, spec=spec, max_offset=max_offset)
