"""The offline demo behind ``livekit-avsync demo``: a LocalAvatar speaks a bundled clip through a
real AgentSession and the AVSynchronizer into LiveKit sources, is interrupted, replies, and the
lip-sync a viewer got is measured from loopback streams and written out (MP4, JSON, PNG)."""

from .options import DemoOptions, DemoStatus
from .report import DemoResult, InterruptFigures, TurnFigures
from .runner import run_demo

__all__ = ["DemoOptions", "DemoResult", "DemoStatus", "InterruptFigures", "TurnFigures", "run_demo"]
