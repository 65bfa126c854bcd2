"""The demo's results: what was measured, as JSON, as a plot, and as a few lines of text."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..measure.analysis import Drift, SyncReport, estimate_drift

__all__ = ["DemoResult", "InterruptFigures", "TurnFigures", "offset_summary"]

BAND_MS = 20.0  # the plot's "in sync" band: within +-20 ms nobody sees a lip-sync error
STARTUP_S = 1.0  # the first second: the synchronizer starting up


@dataclass(slots=True)
class TurnFigures:
    """One spoken turn; times are seconds since the run started."""

    text: str
    sent_s: float  # speech handed to the session
    said_at: float  # when session.say() was called
    heard_from: float | None = None  # when its first sample played (from the marker clock)
    heard_s: float | None = None  # how much of it played, measured on the loopback
    reported_s: float | None = None  # playback position the AgentSession was told
    interrupted: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "sent_s": self.sent_s,
            "said_at": self.said_at,
            "heard_from": self.heard_from,
            "heard_s": self.heard_s,
            "reported_s": self.reported_s,
            "interrupted": self.interrupted,
        }


@dataclass(slots=True)
class InterruptFigures:
    """What happened at the barge-in (``at``: seconds since the run started)."""

    at: float
    into_turn_s: float | None  # how far into the turn's audio the interrupt came
    audio_tail_ms: float  # speech heard after the interrupt
    video_tail_ms: float  # an open mouth still on screen after the interrupt
    stale_frames: int  # frames of the interrupted turn first shown after it
    video_resumed_ms: float | None  # until the first frame made after the interrupt was shown
    recovered_after_s: float | None  # until the next marker was in sync again

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "into_turn_s": self.into_turn_s,
            "audio_tail_ms": self.audio_tail_ms,
            "video_tail_ms": self.video_tail_ms,
            "stale_frames": self.stale_frames,
            "video_resumed_ms": self.video_resumed_ms,
            "recovered_after_s": self.recovered_after_s,
        }


_SUMMARY_KEYS = (
    "markers",
    "p50_abs_ms",
    "p95_abs_ms",
    "max_abs_ms",
    "mean_ms",
    "drift_ms_per_min",
    "drift_ci95_ms_per_min",
)


def offset_summary(markers: list[tuple[float, float]]) -> dict[str, Any]:
    """Count, p50/p95/max of |offset|, the mean offset (ms) and the drift with its 95 % interval
    (ms/min; None on runs under a minute, see :func:`estimate_drift`) of ``(time s, offset ms)``."""
    if not markers:
        return dict.fromkeys(_SUMMARY_KEYS, None) | {"markers": 0}
    times = np.asarray([t for t, _ in markers], dtype=np.float64)
    values = np.asarray([o for _, o in markers], dtype=np.float64)
    magnitude = np.abs(values)
    drift = estimate_drift(times, values)
    return {
        "markers": int(values.size),
        "p50_abs_ms": float(np.percentile(magnitude, 50)),
        "p95_abs_ms": float(np.percentile(magnitude, 95)),
        "max_abs_ms": float(magnitude.max()),
        "mean_ms": float(values.mean()),
        "drift_ms_per_min": None if drift is None else drift.ms_per_min,
        "drift_ci95_ms_per_min": None if drift is None else drift.ci95_ms_per_min,
    }


@dataclass(slots=True)
class DemoResult:
    """Everything the demo measured. ``report`` holds times on the capture's clock; ``t0`` is
    that clock's reading when the run started (every other time here is relative to it)."""

    options: dict[str, Any]
    t0: float
    report: SyncReport
    marker_period_s: float
    turns: list[TurnFigures]
    interrupt: InterruptFigures | None
    sync_stats: dict[str, Any]
    viewer: dict[str, Any]  # what the loopback saw: frames, repeats, missing, audio seconds
    files: dict[str, str] = field(default_factory=dict)
    mp4: dict[str, Any] = field(default_factory=dict)  # the file measured on its own

    # -- derived -------------------------------------------------------------------------------

    def _speaking(self, t: float) -> bool:
        return any(
            turn.heard_from is not None
            and turn.heard_s is not None
            and turn.heard_from <= t <= turn.heard_from + turn.heard_s
            for turn in self.turns
        )

    def segments(self) -> dict[str, dict[str, Any]]:
        """Offset summaries: all markers, after the first second (start-up), while speaking,
        while idle, after the interrupt."""
        rel = [(m.audio_time - self.t0, m.offset_ms) for m in self.report.offsets]
        after = self.interrupt.at if self.interrupt is not None else math.inf
        return {
            "all": offset_summary(rel),
            "after_startup": offset_summary([(t, o) for t, o in rel if t >= STARTUP_S]),
            "speaking": offset_summary([(t, o) for t, o in rel if self._speaking(t)]),
            "idle": offset_summary([(t, o) for t, o in rel if not self._speaking(t)]),
            "after_interrupt": offset_summary([(t, o) for t, o in rel if t >= after]),
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the sync report (times relative to the run's start) and the figures."""
        sync = self.report.to_dict()
        for entry in sync["offsets"]:
            entry["video_time"] -= self.t0
            entry["audio_time"] -= self.t0
        sync["unpaired_audio"] = [t - self.t0 for t in sync["unpaired_audio"]]
        return {
            "options": self.options,
            "marker_period_s": self.marker_period_s,
            "sync": sync,
            "segments": self.segments(),
            "turns": [turn.to_dict() for turn in self.turns],
            "interrupt": None if self.interrupt is None else self.interrupt.to_dict(),
            "synchronizer": self.sync_stats,
            "viewer": self.viewer,
            "mp4": self.mp4,
            "files": self.files,
        }

    # -- text ----------------------------------------------------------------------------------

    def summary_lines(self) -> list[str]:
        """A few lines that say what was measured."""
        o = self.options
        r = self.report
        lines = [
            f"LocalAvatar {o['width']}x{o['height']} @ {o['fps']:g} fps (latency "
            f"{o['latency'] * 1000:.0f} ms, jitter {o['jitter'] * 1000:.0f} ms) -> AgentSession "
            f"-> AVSynchronizer -> rtc sources -> loopback, {o['duration']:.1f} s"
        ]
        if r.offsets:
            seg = self.segments()
            speaking, steady = seg["speaking"], seg["after_startup"]
            first = r.offsets[0]
            lines.append(
                f"lip sync (video - audio): {r.paired} markers, |skew| p50 {r.p50_abs_ms:.1f} ms, "
                f"p95 {r.p95_abs_ms:.1f} ms, max {r.max_abs_ms:.1f} ms, mean {r.mean_ms:+.1f} ms; "
                f"first marker {first.offset_ms:+.1f} ms at {first.audio_time - self.t0:.2f} s"
            )
            if steady["markers"]:
                lines.append(
                    f"after the first second: p95 {_ms(steady['p95_abs_ms'])}, max "
                    f"{_ms(steady['max_abs_ms'])}, drift {_drift(steady)}; "
                    f"while speaking p95 {_ms(speaking.get('p95_abs_ms'))} "
                    f"({speaking['markers']} markers)"
                )
        else:
            lines.append("lip sync: no markers paired")
        lines += self._interrupt_lines()
        s, v = self.sync_stats, self.viewer
        lines.append(
            f"frames: {s['video_frames_out']} out, {s['video_repeated']} repeated, "
            f"{s['video_dropped_late']} dropped late, {s['video_dropped_stale']} stale dropped, "
            f"{s['video_cleared']} cleared by interrupts "
            f"(+{s['audio_dropped_stale']} audio); viewer saw {v['distinct_frames']} distinct "
            f"frames, {v['repeated_frames']} repeats; {s['audio_underruns']} audio underruns"
        )
        if self.mp4:
            lines.append(
                f"wrote {self.files['mp4']} ({self.mp4['seconds']:.1f} s, H.264 + AAC; measured "
                f"from the file: p95 {_ms(self.mp4['p95_abs_ms'])}, mean {_ms(self.mp4['mean_ms'])}"
                f"), {self.files['json']}, {self.files['png']}"
            )
        return lines

    def _interrupt_lines(self) -> list[str]:
        turns = " / ".join(
            f"reported {_s(t.reported_s)}, heard {_s(t.heard_s)} of {t.sent_s:.2f} s"
            + (" (interrupted)" if t.interrupted else "")
            for t in self.turns
        )
        i = self.interrupt
        if i is None:
            return [f"no interrupt; playback position {turns}"]
        resumed = "n/a" if i.video_resumed_ms is None else f"{i.video_resumed_ms:.0f} ms"
        recovered = "n/a" if i.recovered_after_s is None else f"{i.recovered_after_s:.2f} s"
        return [
            f"interrupt {_s(i.into_turn_s)} into the turn: speech went on {i.audio_tail_ms:.0f} "
            f"ms, an open mouth {i.video_tail_ms:.0f} ms, {i.stale_frames} stale frames shown; "
            f"new frames after {resumed}, next marker in sync after {recovered}",
            f"playback position {turns}",
        ]

    # -- plot ----------------------------------------------------------------------------------

    def _title(self) -> str:
        r = self.report
        if not r.offsets:
            return "no markers paired"
        steady = self.segments()["after_startup"]
        return (
            f"{r.paired} markers: |skew| p50 {r.p50_abs_ms:.1f} ms, p95 {r.p95_abs_ms:.1f} ms, "
            f"max {r.max_abs_ms:.1f} ms, mean {r.mean_ms:+.1f} ms; after the first second: "
            f"p95 {_ms(steady['p95_abs_ms'])}, max {_ms(steady['max_abs_ms'])}"
        )

    def plot(self, path: Path) -> None:
        """Skew per marker over time, the speech turns shaded, the interrupt marked (PNG)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        times = np.array([m.audio_time - self.t0 for m in self.report.offsets])
        skew = np.array([m.offset_ms for m in self.report.offsets])
        fig, ax = plt.subplots(figsize=(10, 4.2))
        try:
            ax.axhspan(-BAND_MS, BAND_MS, color="tab:green", alpha=0.12, label=f"±{BAND_MS:g} ms")
            ax.axhline(0.0, color="grey", linewidth=0.8)
            for index, turn in enumerate(self.turns):
                if turn.heard_from is not None and turn.heard_s is not None:
                    ax.axvspan(
                        turn.heard_from,
                        turn.heard_from + turn.heard_s,
                        color="tab:blue",
                        alpha=0.08,
                        label="speech playing" if index == 0 else None,
                    )
            i = self.interrupt
            if i is not None:
                ax.axvline(i.at, color="tab:red", linestyle="--", label="interrupt")
                ax.annotate(
                    f" speech stopped +{i.audio_tail_ms:.0f} ms\n"
                    f" mouth shut +{i.video_tail_ms:.0f} ms",
                    xy=(i.at, 0.04),
                    xycoords=("data", "axes fraction"),
                    fontsize=8,
                    color="tab:red",
                )
            if times.size:
                ax.plot(times, skew, "o-", markersize=3.5, linewidth=1, label="video - audio")
            limit = max(2 * BAND_MS, float(np.abs(skew).max()) * 1.15 if skew.size else 0.0)
            ax.set_ylim(-limit, limit)
            ax.set_xlim(0.0, self.options["duration"])
            ax.set_xlabel("time since start (s)")
            ax.set_ylabel("skew (ms, + = video late)")
            ax.set_title(
                f"livekit-avsync demo: lip sync of a LocalAvatar\n{self._title()}", fontsize=9
            )
            ax.legend(loc="upper right", fontsize=8)
            fig.tight_layout()
            fig.savefig(path, dpi=100)
        finally:
            plt.close(fig)


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} ms"


def _drift(summary: dict[str, Any]) -> str:
    value = summary["drift_ms_per_min"]
    if value is None:
        return "n/a (run under a minute)"
    return str(Drift(value, summary["drift_ci95_ms_per_min"], 0.0))


def _s(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} s"
