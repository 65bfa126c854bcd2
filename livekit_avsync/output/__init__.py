"""LiveKit output: the AVSynchronizer drives real rtc.AudioSource / rtc.VideoSource."""

from .synchronizer import AVSynchronizer

__all__ = ["AVSynchronizer"]
