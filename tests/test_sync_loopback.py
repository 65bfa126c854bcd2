"""Our AVSynchronizer end to end on real ``rtc.AudioSource`` / ``rtc.VideoSource``, measured through
the loopback with marker media: lip-sync in each provider scenario, interrupts, frame accounting
and memory. The same checks are run against ``rtc.AVSynchronizer`` to show they can fail.

Bounds are loose for a busy 2-core machine (|skew| p95 <= 40 ms where the benchmark target is 20)
yet well inside what a synchronizer without timestamps or a stale-tail gate produces (~90 ms
video lag, ~200 ms of the interrupted turn still playing).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from livekit_avsync.measure.bench import measure_memory
from livekit_avsync.measure.scenarios import (
    IDLE_TURN,
    SCENARIOS,
    InterruptMeasurement,
    Scenario,
    ScenarioResult,
    ours_with,
    produce_interrupt,
    run_scenario,
)

SKEW_P95_MS = 40.0
PERIOD_S = 1 / 30
AUDIO_TAIL_MS = 30.0


def sync_violations(r: ScenarioResult) -> list[str]:
    """What is wrong with a run's lip-sync (empty: in sync)."""
    expected = int(r.media_seconds / SCENARIOS[r.scenario].spec.period) - 1
    problems = []
    if r.report.paired < expected:
        problems.append(f"only {r.report.paired} of ~{expected + 1} markers paired")
    if r.skew_p95_ms is None or r.skew_p95_ms > SKEW_P95_MS:
        problems.append(f"|skew| p95 {r.skew_p95_ms} ms > {SKEW_P95_MS} ms")
    return problems


def interrupt_violations(r: ScenarioResult) -> list[str]:
    """What of the interrupted turn came out after clear_queue(), and whether the next turn is in
    sync. (The face shown after the clear is checked separately.)"""
    problems = []
    assert r.interrupts, "the scenario made no interrupt"
    for i, m in enumerate(r.interrupts):
        if m.audio_tail_ms > AUDIO_TAIL_MS:
            problems.append(f"#{i}: audio went on {m.audio_tail_ms:.0f} ms after the clear")
        if m.stale_audio_ms > 0:
            problems.append(f"#{i}: {m.stale_audio_ms:.0f} ms of old audio after clear + 30 ms")
        if m.in_flight_video_frames:
            problems.append(f"#{i}: {m.in_flight_video_frames} in-flight frames were shown")
        if m.new_turn_paired < 1 or m.new_turn_p95_ms is None or m.new_turn_p95_ms > SKEW_P95_MS:
            problems.append(
                f"#{i}: new turn {m.new_turn_paired} markers, p95 {m.new_turn_p95_ms} ms"
            )
    return problems


def assert_frames_accounted(r: ScenarioResult) -> None:
    """Every frame pushed comes out once, in order, unless the stats say it was dropped."""
    st = r.stats
    assert st is not None
    c = r.continuity
    assert st.video_frames_in == r.video_frames_pushed
    assert c.reordered == 0
    dropped = st.video_dropped_late + st.video_dropped_stale + st.video_cleared
    assert c.distinct == st.video_frames_in - dropped, (c, st)
    assert len(c.missing) <= dropped
    # every frame handed to the VideoSource came back; repeats are exactly the counted ones
    assert r.video_arrivals == st.video_frames_out, (r.video_arrivals, st)
    assert r.video_arrivals - c.distinct == st.video_repeated


@pytest.mark.parametrize("scenario", ["interleaved", "separate", "fps_mismatch", "bursts"])
async def test_lip_sync_in_provider_scenarios(scenario: str) -> None:
    r = await run_scenario(scenario, "livekit_avsync", quick=True)
    assert sync_violations(r) == [], r.report.summary()
    assert_frames_accounted(r)


async def test_lip_sync_with_unrelated_stream_clocks() -> None:
    r = await run_scenario("separate_arrival", "livekit_avsync", quick=True)
    assert sync_violations(r) == [], r.report.summary()
    assert r.skew_mean_ms is not None and abs(r.skew_mean_ms) <= 15.0, r.report.summary()


async def test_video_follows_the_audio_when_the_provider_clock_runs_fast() -> None:
    r = await run_scenario("drift", "livekit_avsync", quick=True)
    assert sync_violations(r) == [], r.report.summary()
    offsets = [m.offset_ms for m in r.report.offsets]
    # a 1 % fast clock moves 60 ms in 6 s if video followed the provider's clock
    assert abs(np.mean(offsets[-3:]) - np.mean(offsets[:3])) <= 20.0, offsets
    assert_frames_accounted(r)


# ours, told the source plays 150 ms after a hand-off (it plays within a 10 ms tick)
_MISJUDGING = ours_with(audio_latency_ms=150)


async def test_the_clock_follows_what_the_source_emits_not_a_wrong_estimate() -> None:
    # a playout model 150 ms off would show every frame ~145 ms late; the source's own track
    # read back moves it onto what is really emitted
    r = await run_scenario(
        "interleaved", "misjudging", quick=True, factories={"misjudging": _MISJUDGING}
    )
    assert sync_violations(r) == [], r.report.summary()
    assert r.stats is not None and r.stats.playout_corrections >= 1, r.stats


_INTERRUPTS = dataclasses.replace(
    SCENARIOS["interrupt"],
    produce=lambda sync, media, d, seed: produce_interrupt(sync, media, d, speech=1.2, idle=0.8),
)
_cached: dict[str, ScenarioResult] = {}


async def _interrupt_run() -> ScenarioResult:
    """Three interrupts (cycles of 1.2 s speech, 0.2 s in flight, 0.8 s idle), run once per
    module: the result is plain data, shared by the interrupt tests."""
    if "ours" not in _cached:
        _cached["ours"] = await run_scenario(
            _INTERRUPTS, "livekit_avsync", duration=6.6, stale_video_grace=2 * PERIOD_S
        )
    return _cached["ours"]


async def test_interrupt_cuts_audio_drops_the_in_flight_tail_and_next_turn_is_in_sync() -> None:
    r = await _interrupt_run()
    assert len(r.interrupts) == 3
    assert interrupt_violations(r) == [], r.interrupts
    assert r.continuity.reordered == 0
    st = r.stats
    assert st is not None and st.epoch == 3
    assert st.audio_dropped_stale > 0 and st.video_dropped_stale > 0  # the gate did the dropping
    assert st.video_cleared > 0 and st.audio_cleared_ms > 0  # and clear_queue() itself
    assert_frames_accounted(r)


async def test_interrupt_shows_a_non_speaking_frame_at_once() -> None:
    # regression: the cut turn's first frame became the rest frame in 2-3 of 7 interrupts of the
    # full benchmark; a second run (only when the first was clean) keeps a fluke from passing
    runs = [await _interrupt_run()]
    if all(face_after_interrupt_ok(m) for m in runs[0].interrupts):
        runs.append(
            await run_scenario(
                _INTERRUPTS, "livekit_avsync", duration=6.6, stale_video_grace=2 * PERIOD_S
            )
        )
    for r in runs:
        for m in r.interrupts:
            assert face_after_interrupt_ok(m), m


def face_after_interrupt_ok(m: InterruptMeasurement) -> bool:
    """A non-speaking frame replaced the cut turn's face within 2 frames, and stayed."""
    return (
        m.first_turn == IDLE_TURN
        and m.stale_video_frames == 0  # no frame of the cut turn after clear + 2 frames
        and m.video_tail_ms is not None
        and m.video_tail_ms <= 2000 * PERIOD_S
    )


async def test_the_checks_fail_for_rtc_avsynchronizer() -> None:
    """rtc.AVSynchronizer shows video on arrival and has no stale-tail gate: the same bounds
    catch it (so they are not bounds everything passes)."""
    separate = await run_scenario("separate", "rtc", quick=True)
    assert any("p95" in p for p in sync_violations(separate)), separate.report.summary()
    interrupt = await run_scenario("interrupt", "rtc", quick=True)
    problems = interrupt_violations(interrupt)
    # the cut turn's audio plays on: straight after the clear, or after a short gap
    assert any("audio went on" in p or "old audio" in p for p in problems), problems
    assert any("in-flight frames were shown" in p for p in problems), problems


async def test_memory_stays_flat() -> None:
    mem = await measure_memory("livekit_avsync", 6.0, warmup=2.0, interval=1.0)
    # Loose: the queues may fill towards their bounds (0.5 s of audio, 0.75 s of 86 KB frames:
    # ~2 MB) after a hiccup, while keeping one 320x180 frame per frame would add ~10 MB here.
    assert mem.traced_growth_kb < 3072, mem.top_growth
    assert mem.traced_peak_kb < 6144, mem.top_growth
    assert mem.queue_ms_end is not None and mem.queue_ms_end <= 600, mem.samples
    assert mem.sync is not None and mem.sync.skew_p95_ms is not None


def test_scenario_registry_is_complete() -> None:
    assert {"interleaved", "separate", "bursts", "fps_mismatch", "drift", "interrupt"} <= set(
        SCENARIOS
    )
    for s in SCENARIOS.values():
        assert isinstance(s, Scenario) and 0 < s.quick_duration <= s.duration
