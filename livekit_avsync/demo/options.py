"""What the demo runs: its options (checked), its progress reports, and its timeline."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .clip import SpeechClip

__all__ = [
    "DEFAULT_DURATION",
    "END_S",
    "GAP_S",
    "WARMUP_S",
    "DemoOptions",
    "DemoStatus",
    "Plan",
    "Progress",
    "plan_run",
]

DEFAULT_DURATION = 12.0
WARMUP_S = 1.0  # idle before the first turn: markers flow, the synchronizer settles
GAP_S = 1.0  # after the interrupt (or the first turn), before the reply
END_S = 0.5  # idle after the reply, at least


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """What to run. ``duration`` None: 12 s, or longer if the turns need it. ``interrupt_at``:
    seconds into the first turn's audio (None: 60 % of the clip); ``interrupt=False`` lets the
    turn finish. ``seed`` makes the simulated jitter repeatable."""

    out_dir: Path = Path("out")
    duration: float | None = None
    fps: float = 25.0
    width: int = 640
    height: int = 360
    latency: float = 0.1
    jitter: float = 0.02
    interrupt_at: float | None = None
    interrupt: bool = True
    seed: int | None = 1

    def __post_init__(self) -> None:
        if self.duration is not None:
            _require("duration", self.duration, 1.0, 600.0, "s")
        _require("fps", self.fps, 10.0, 60.0, "")
        for name, value, top in (("width", self.width, 1920), ("height", self.height, 1080)):
            if not (isinstance(value, int) and 64 <= value <= top and value % 2 == 0):
                raise ValueError(
                    f"{name} must be an even number of pixels, 64 to {top}, got {value}"
                )
        _require("latency", self.latency, 0.0, 2.0, "s")
        _require("jitter", self.jitter, 0.0, 0.5, "s")
        if self.interrupt_at is not None:
            _require("interrupt-at", self.interrupt_at, 0.0, math.inf, "s")
            if self.interrupt_at == 0:
                raise ValueError("interrupt-at must be a positive number of seconds")


def _require(name: str, value: float, low: float, high: float, unit: str) -> None:
    """Raise ValueError naming ``name`` unless ``value`` is a number in [low, high]."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not (ok and low <= value <= high):
        span = f"at least {low:g}" if math.isinf(high) else f"{low:g} to {high:g}"
        raise ValueError(f"{name} must be {span}{' ' + unit if unit else ''}, got {value!r}")


@dataclass(frozen=True, slots=True)
class DemoStatus:
    """Progress: seconds run of ``duration``, the phase, the p95 |skew| so far (ms)."""

    elapsed: float
    duration: float
    phase: str
    skew_p95_ms: float | None


Progress = Callable[[DemoStatus], None]


@dataclass(frozen=True, slots=True)
class Plan:
    """How long the run lasts and when (seconds into the first turn) to interrupt."""

    duration: float
    interrupt_at: float | None


def plan_run(options: DemoOptions, speech: SpeechClip, reply: SpeechClip) -> Plan:
    """Check the options against the clips; the run's length and when to interrupt."""
    interrupt_at = None
    first = speech.duration
    if options.interrupt:
        interrupt_at = (
            0.6 * speech.duration if options.interrupt_at is None else options.interrupt_at
        )
        if interrupt_at >= speech.duration:
            raise ValueError(
                f"interrupt-at {interrupt_at:g} s is past the end of the {speech.duration:.1f} s "
                "clip"
            )
        first = interrupt_at
    needed = WARMUP_S + first + GAP_S + reply.duration + END_S + 2 * options.latency + 0.2
    if options.duration is None:
        return Plan(max(DEFAULT_DURATION, math.ceil(needed)), interrupt_at)
    if options.duration < needed:
        raise ValueError(
            f"duration {options.duration:g} s is too short for this run: it needs at least "
            f"{math.ceil(needed * 10) / 10:g} s"
        )
    return Plan(options.duration, interrupt_at)
