"""Measure lip-sync: marker media, a loopback capture of local tracks, and offset analysis.

Marker media (:mod:`.spec`, :mod:`.markers`, :mod:`.bursts`): video frame ``n`` carries ``n``
(and a 4-bit turn id) as large luma blocks, ``marker_video_frame(n, w, h)``; every
``spec.burst_every`` frames the audio has a tone burst whose onset is that frame's media time,
``marker_audio_frame(start_sample, count)``. Frame ``n`` belongs at media time ``n / spec.fps``.

Measuring live output (:mod:`.loopback`)::

    async with LoopbackCapture.from_sources(audio_source, video_source) as capture:
        ...  # drive the sources (e.g. through an AVSynchronizer)
        await capture.wait_for_bursts(10)
        report = capture.analyze()  # report.mean_ms > 0: video late
        tail = capture.audio_tail(t_clear)  # seconds of sound after a clear

Measuring files (:mod:`.files`): ``generate_marker_file(path, duration, video_offset=0.08)``
and ``measure_file(path) -> SyncReport``; the CLI is ``livekit-avsync measure``.
"""

from .analysis import (
    DRIFT_MIN_SPAN_S,
    Drift,
    FrameContinuity,
    MarkerOffset,
    SyncReport,
    VideoObservation,
    analyze_sync,
    estimate_drift,
    first_appearances,
    frame_continuity,
)
from .bursts import (
    AudioBurst,
    BurstDetector,
    detect_bursts,
    is_silent,
    loud_mask,
    marker_audio,
    marker_audio_frame,
    marker_audio_frames,
    marker_audio_samples,
    rms_dbfs,
)
from .files import generate_marker_file, measure_file
from .loopback import CaptureError, LoopbackCapture, VideoArrival
from .markers import (
    MAX_FRAME_NUMBER,
    MAX_TURN,
    MarkerCode,
    decode_marker,
    marker_av_frame,
    marker_planes,
    marker_video_frame,
    read_marker,
    stamp_marker,
)
from .spec import AVATAR_SPEC, DEFAULT_SPEC, MarkerSpec, avatar_spec

__all__ = [
    "AVATAR_SPEC",
    "DEFAULT_SPEC",
    "DRIFT_MIN_SPAN_S",
    "MAX_FRAME_NUMBER",
    "MAX_TURN",
    "AudioBurst",
    "BurstDetector",
    "CaptureError",
    "Drift",
    "FrameContinuity",
    "LoopbackCapture",
    "MarkerCode",
    "MarkerOffset",
    "MarkerSpec",
    "SyncReport",
    "VideoArrival",
    "VideoObservation",
    "analyze_sync",
    "avatar_spec",
    "decode_marker",
    "detect_bursts",
    "estimate_drift",
    "first_appearances",
    "frame_continuity",
    "generate_marker_file",
    "is_silent",
    "loud_mask",
    "marker_audio",
    "marker_audio_frame",
    "marker_audio_frames",
    "marker_audio_samples",
    "marker_av_frame",
    "marker_planes",
    "marker_video_frame",
    "measure_file",
    "read_marker",
    "rms_dbfs",
    "stamp_marker",
]
