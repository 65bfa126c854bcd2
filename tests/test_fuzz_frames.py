"""Fuzz: random frames (types, formats, sizes, buffer lengths, rates, channels, timestamps)
through AVSynchronizer.push and through an AvatarSession's provider pumps.

Each Hypothesis example runs in a child process (``frame_probe``): a native crash is a failed
example, not a dead test runner. The oracle is independent of our validator: buffer sizes come
from ``livekit.rtc``'s own plane-length helper, the rest from the documented ranges. CI runs a
few derandomized (fixed-seed) examples; the bench runs more: ``AVSYNC_FUZZ_EXAMPLES=200``.
"""

from __future__ import annotations

import math
import os
from typing import Any

from frame_probe import run_probe
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from livekit.rtc.video_frame import _get_plane_length

from livekit_avsync.media.convert import MIN_VIDEO_SIDE

EXAMPLES = int(os.environ.get("AVSYNC_FUZZ_EXAMPLES", "3"))
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=os.environ.get("AVSYNC_FUZZ_RANDOM") != "1",  # CI: one fixed sequence
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
    # each example is a child process: CI reports the failing example as found, unshrunk
    phases=(Phase.explicit, Phase.generate)
    if os.environ.get("AVSYNC_FUZZ_SHRINK") != "1"
    else tuple(Phase),
)

sides = st.one_of(st.sampled_from([-1, 0, 1, 2, 3, 4, 5, 16, 17, 64]), st.integers(1, 200))
timestamps = st.one_of(
    st.none(), st.floats(-5, 5), st.sampled_from([math.nan, math.inf, -math.inf, 1e12])
)


@st.composite
def rtc_video(draw: st.DrawFn) -> dict[str, Any]:
    w, h = draw(sides), draw(sides)
    t = draw(st.sampled_from([*range(11), 11, 99, -1]))
    try:
        need = _get_plane_length(t, max(w, 0), max(h, 0))
    except Exception:
        need = max(w, 0) * max(h, 0) * 4
    nbytes = draw(st.sampled_from([0, 1, need - 1, need, need + 7, 100]))
    luma = draw(st.integers(0, 255))
    case = {"kind": "video", "width": w, "height": h, "type": t, "nbytes": max(nbytes, 0)}
    return case | {"luma": luma}


@st.composite
def rtc_audio(draw: st.DrawFn) -> dict[str, Any]:
    rate = draw(st.sampled_from([0, -8000, 1, 999, 8000, 16000, 24000, 48000, 384001]))
    channels = draw(st.sampled_from([0, 1, 2, 3, 9]))
    samples = draw(st.sampled_from([0, 1, 17, 240, 480]))
    need = max(channels * samples * 2, 0)
    nbytes = draw(st.sampled_from([need, need + 2, need * 4, need - 2, need + 1]))
    return {"kind": "audio", "rate": rate, "channels": channels, "samples": samples} | {
        "nbytes": max(nbytes, 0)
    }


av_video = st.fixed_dictionaries(
    {
        "kind": st.just("av_video"),
        "format": st.sampled_from(["yuv420p", "rgb24", "rgba", "nv12", "yuv444p", "gray"]),
        "width": st.integers(1, 40),
        "height": st.integers(1, 40),
    }
)
av_audio = st.fixed_dictionaries(
    {
        "kind": st.just("av_audio"),
        "format": st.sampled_from(["s16", "fltp", "s32", "dbl", "u8"]),
        "layout": st.sampled_from(["mono", "stereo"]),
        "samples": st.sampled_from([0, 1, 160, 480]),
        "rate": st.sampled_from([0, 8000, 24000, 48000]),
    }
)


@st.composite
def frame_cases(draw: st.DrawFn) -> dict[str, Any]:
    case = draw(st.one_of(rtc_video(), rtc_audio(), av_video, av_audio))
    return case | {"timestamp": draw(timestamps)}


def expected(case: dict[str, Any]) -> str:
    """'ok', 'invalid' or 'unbuildable', from the case alone."""
    kind = case["kind"]
    if kind == "audio":
        have = case["nbytes"] - case["nbytes"] % 2  # the probe fills whole int16 samples
        if have < case["channels"] * case["samples"] * 2:
            return "unbuildable"  # rtc.AudioFrame's own constructor refuses it
        ok = 1000 <= case["rate"] <= 384000 and 1 <= case["channels"] <= 8 and case["samples"] > 0
    elif kind == "video":
        ok = (
            1 <= case["width"] <= 16384
            and 1 <= case["height"] <= 16384
            and 0 <= case["type"] <= 10
            and case["nbytes"] >= _get_plane_length(case["type"], case["width"], case["height"])
        )
    elif kind == "av_audio":
        ok = case["samples"] > 0 and 1000 <= case["rate"] <= 384000
    else:
        ok = True
    ts = case["timestamp"]
    return "ok" if ok and (ts is None or math.isfinite(ts)) else "invalid"


@FUZZ
@given(st.lists(frame_cases(), min_size=5, max_size=25))
def test_fuzz_synchronizer_push(cases: list[dict[str, Any]]) -> None:
    result = run_probe(cases, via="sync", pace=0.01)
    assert result.returncode == 0, result.stderr
    for case, outcome in zip(cases, result.outcomes, strict=True):
        want = expected(case)
        if want == "ok":
            assert outcome == "ok", (case, outcome)
        elif want == "unbuildable":
            assert outcome == "unbuildable", (case, outcome)
        else:  # a clear error naming the field (or the timestamp), never anything else
            assert outcome.startswith(("InvalidFrame:", "ValueError:timestamp")), (case, outcome)
    assert all(w % 2 == 0 and h % 2 == 0 for w, h in result.read_sizes), result.read_sizes
    assert all(min(w, h) >= MIN_VIDEO_SIDE for w, h in result.read_sizes), result.read_sizes


@FUZZ
@given(st.lists(frame_cases(), min_size=5, max_size=25))
def test_fuzz_avatar_session_pumps(cases: list[dict[str, Any]]) -> None:
    result = run_probe(cases, via="session")
    assert result.returncode == 0, result.stderr
    assert result.session_alive, result.stderr
    invalid = sum(expected(case) == "invalid" for case in cases)
    assert sum(result.rejected.values()) == invalid, (result.rejected, cases)
