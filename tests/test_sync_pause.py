"""pause()/resume() lossless to the sample: a counter ramp through the synchronizer and the
loopback (the source's local track read back in real time, 10 ms ticks) comes out exactly once,
in order, through single pauses, spaced pauses and storms. Before the fix 8 spaced pauses lost
3,360 of 96,000 samples and a storm of 25 lost 7,680 and replayed 3,840."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from livekit import rtc

from livekit_avsync.measure.ramp import compare_ramp, ramp_samples, run_pause_ramp
from livekit_avsync.output import AVSynchronizer
from livekit_avsync.sync.ledger import PlayedLedger


def test_compare_ramp_counts_losses_and_replays() -> None:
    ramp = ramp_samples(0, 4800)
    assert compare_ramp(ramp, 4800).exact
    lost = compare_ramp(np.concatenate((ramp[:1000], ramp[1480:])), 4800)
    assert (lost.lost, lost.replayed, lost.jumps) == (480, 0, 1)
    again = compare_ramp(np.concatenate((ramp[:1000], ramp[520:])), 4800)
    assert (again.lost, again.replayed, again.heard) == (0, 480, 5280)
    silent = np.concatenate((ramp[:100], np.zeros(480, np.int16), ramp[100:]))
    assert compare_ramp(silent, 4800).exact  # silence between is not media


def test_ledger_takes_back_exactly_what_was_not_reported() -> None:
    led: PlayedLedger[str] = PlayedLedger(48000, 1)
    ramp = ramp_samples(0, 2880)
    led.hand("a", ramp[:960])
    led.hand("b", ramp[960:1920])
    led.hand("c", ramp[1920:])
    led.report(np.zeros(480, np.int16))  # a silence tick before the capture landed
    led.report(ramp[:480])
    led.report(ramp[480:960])
    led.report(ramp[960:1440])
    led.pause()
    led.report(np.zeros(480, np.int16))  # the source is empty after the clear
    back = led.take_back()
    assert back is not None
    assert [(u.tag, u.offset) for u in back] == [("b", 480), ("c", 0)]


def test_ledger_is_settled_once_the_silence_after_a_pause_is_read() -> None:
    led: PlayedLedger[str] = PlayedLedger(48000, 1)
    ramp = ramp_samples(0, 1920)
    led.hand("a", ramp)
    led.report(ramp[:480])
    led.pause()
    assert not led.settled()
    led.report(ramp[480:960])  # a late report of what played before the pause
    assert not led.settled()
    for _ in range(3):
        led.report(np.zeros(480, np.int16))  # the emptied source ticks silence
    assert led.settled()
    led.recleared()  # cleared again: wait for the silence after that clear too
    assert not led.settled()
    back = led.take_back()
    assert back is not None and [(u.tag, u.offset) for u in back] == [("a", 960)]


def test_ledger_after_a_clear_skips_the_cleared_run_and_follows_the_next() -> None:
    led: PlayedLedger[str] = PlayedLedger(48000, 1)
    ramp = ramp_samples(0, 9600)
    led.hand("old", ramp[:1920])
    led.report(ramp[:480])
    led.clear()
    led.hand("new", ramp[4800:5760])
    led.report(ramp[480:960])  # a late report of the old run: it did play before the clear
    led.report(ramp[4800:5280])  # the new run
    led.pause()
    back = led.take_back()
    assert back is not None and [(u.tag, u.offset) for u in back] == [("new", 480)]
    assert led.unmatched == 0


def test_ledger_gives_up_on_a_run_the_source_did_not_play() -> None:
    led: PlayedLedger[str] = PlayedLedger(48000, 1)
    led.hand("a", ramp_samples(0, 960))
    led.report(ramp_samples(5000, 480))  # not what was handed: cannot be followed
    led.pause()
    assert led.take_back() is None
    assert led.unmatched == 1


@pytest.mark.parametrize(
    ("name", "pauses"),
    [
        ("single", [(0.7, 0.3)]),
        ("spaced", [(0.2 + 0.23 * k + 0.004 * k, 0.1) for k in range(8)]),
        # a storm: pauses shorter than the probe's settle time, every ~50 ms, varying phase
        (
            "storm",
            [(0.3 + 0.05 * k + 0.0037 * (k % 7), 0.005 + 0.003 * (k % 5)) for k in range(25)],
        ),
    ],
)
async def test_a_counter_ramp_plays_every_sample_once_in_order_through_pauses(
    name: str, pauses: list[tuple[float, float]]
) -> None:
    r = await run_pause_ramp(seconds=2.0, pauses=pauses)
    assert r.exact, r.row()


async def test_pause_holds_audio_and_a_clear_while_paused_drops_the_rest() -> None:
    rate = 48000
    audio = rtc.AudioSource(rate, 1, queue_size_ms=100)
    video = rtc.VideoSource(32, 32)
    heard: list[np.ndarray] = []
    track = rtc.LocalAudioTrack.create_audio_track("t", audio)
    stream = rtc.AudioStream(track, sample_rate=rate, num_channels=1)

    async def read() -> None:
        async for ev in stream:
            heard.append(np.frombuffer(ev.frame.data, dtype=np.int16).copy())

    reader = asyncio.create_task(read())
    s = AVSynchronizer(audio_source=audio, video_source=video, video_fps=30)
    try:
        for i in range(0, 48000, 480):  # 1 s of ramp
            await s.push(rtc.AudioFrame(ramp_samples(i, 480).tobytes(), rate, 1, 480))
        await asyncio.sleep(0.2)
        s.pause()
        await asyncio.sleep(0.02)
        at_pause = sum(int(np.count_nonzero(h)) for h in heard)
        await asyncio.sleep(0.2)
        assert sum(int(np.count_nonzero(h)) for h in heard) == at_pause  # nothing while paused
        assert s.stats.pauses_exact == 1
        await s.clear_queue()  # an interrupt while paused: what had not played is gone
        s.resume()
        await asyncio.wait_for(s.wait_for_playout(), 5)
        await asyncio.sleep(0.1)
        after = sum(int(np.count_nonzero(h)) for h in heard)
        assert after == at_pause
        r = compare_ramp(np.concatenate(heard), at_pause)
        assert r.exact, r.row()  # what played before the pause played once, in order
        # the stats report what the source was seen to emit: exactly what was heard
        emitted = s.stats.audio_emitted
        assert emitted is not None and round(emitted * rate) == at_pause
    finally:
        await s.aclose()
        reader.cancel()
        await stream.aclose()
        await audio.aclose()
        await video.aclose()
