"""Where a worker's CPU goes: per-thread CPU of its processes, and a profile of their Python.

A job process of livekit-agents runs the avatar's Python (the session, the synchronizer, frame
conversion, and livekit-agents itself) on its main thread, while libwebrtc encodes video on its
``VideoEncoderQue...`` threads and audio, the network and the Rust runtime on others. Reading
``/proc/PID/task/*`` splits the process's CPU time by those threads; :func:`profile_python` then
splits the Python share with py-spy (from PyPI, sampling without stopping the process) into
livekit_avsync's own code, the stand-in provider's rendering, the LiveKit SDK's frame handover,
livekit-agents, and the rest (the event loop itself among it); see :func:`classify_stack`.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

__all__ = [
    "CpuSplit",
    "PythonProfile",
    "classify_stack",
    "profile_python",
    "py_spy",
    "thread_group",
    "tree_cpu",
]

PROVIDER_MODULES = (
    "livekit_avsync/providers/local.py",
    "livekit_avsync/providers/face.py",
    "livekit_avsync/measure/",  # the markers it stamps into its output
)
"""The LocalAvatar's rendering: on a real deployment the provider's side, not ours."""


def thread_group(name: str, *, main: bool) -> str:
    """The kind of work a thread does, from its kernel name (``/proc/.../comm``)."""
    if main:
        return "python"
    if name.startswith("VideoEncoder"):
        return "video encoding"
    if name.startswith(("AudioEncoder", "livekit-audio", "AudioSource", "SyntheticAudio")):
        return "audio"
    return "other"


@dataclass
class CpuSplit:
    """CPU seconds by thread group (see :func:`thread_group`), and resident memory (bytes)."""

    seconds: dict[str, float] = field(default_factory=dict)
    uss: int = 0  # memory unique to the processes (what ending them would free)
    processes: int = 0

    @property
    def total(self) -> float:
        return sum(self.seconds.values())

    def __sub__(self, before: CpuSplit) -> CpuSplit:
        keys = set(self.seconds) | set(before.seconds)
        return CpuSplit(
            {k: self.seconds.get(k, 0.0) - before.seconds.get(k, 0.0) for k in keys},
            self.uss,
            self.processes,
        )


def _threads(process: psutil.Process) -> Iterable[tuple[str, float]]:
    for thread in process.threads():
        try:
            name = Path(f"/proc/{process.pid}/task/{thread.id}/comm").read_text().strip()
        except OSError:
            continue  # ended while we looked
        group = thread_group(name, main=thread.id == process.pid)
        yield group, thread.user_time + thread.system_time


def tree_cpu(pids: Iterable[int]) -> CpuSplit:
    """CPU seconds so far of these processes, by thread group; processes gone are skipped."""
    split = CpuSplit()
    for pid in pids:
        try:
            process = psutil.Process(pid)
            for group, seconds in _threads(process):
                split.seconds[group] = split.seconds.get(group, 0.0) + seconds
            split.uss += process.memory_full_info().uss
            split.processes += 1
        except psutil.Error:
            continue
    return split


_IDLE_MODULES = ("(selectors.py:", "(threading.py:", "(queue.py:", "multiprocessing/connection.py:")
"""Where a thread waits (py-spy's ``--nonblocking`` samples cannot tell idle threads apart)."""


def classify_stack(frames: list[str]) -> str:
    """The kind of work one sampled Python stack (outermost first) was doing.

    ``"idle"``: waiting in the event loop's selector or on a lock. Otherwise the innermost frame
    of a known package decides (numpy or PyAV called from our code count as ours):
    ``"sdk"`` (livekit.rtc handing frames to the native side), ``"provider"`` (the stand-in
    provider's rendering), ``"ours"`` (the rest of livekit_avsync), ``"agents"``
    (livekit-agents), else ``"other"``.
    """
    if not frames or any(m in frames[-1] for m in _IDLE_MODULES):
        return "idle"
    for frame in reversed(frames):
        path = frame.rpartition(" (")[2]  # py-spy shortens paths: "rtc/_ffi_client.py:1)"
        if path.startswith(("rtc/", "livekit/rtc/")):
            return "sdk"
        if path.startswith("livekit_avsync/"):
            return "provider" if path.startswith(PROVIDER_MODULES) else "ours"
        if path.startswith(("agents/", "livekit/agents/")):
            return "agents"
    return "other"


@dataclass(frozen=True)
class PythonProfile:
    """Sample counts of a process's Python stacks by :func:`classify_stack` kind."""

    samples: dict[str, int]

    def share(self, kind: str) -> float:
        """Fraction of the busy (not idle) samples that were of ``kind``."""
        busy = sum(n for k, n in self.samples.items() if k != "idle")
        return self.samples.get(kind, 0) / busy if busy and kind != "idle" else 0.0


def py_spy() -> str:
    """The py-spy executable (on PATH or beside this Python); RuntimeError says how to get it."""
    found = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if found is None:
        raise RuntimeError("py-spy is not installed: pip install 'livekit-avsync[bench]'")
    return found


def profile_python(pid: int, seconds: float, *, rate: int = 100) -> PythonProfile:
    """Sample ``pid``'s Python stacks for ``seconds`` with py-spy (idle stacks left out).

    Raises RuntimeError naming the cause when py-spy is missing or cannot attach (it needs
    ptrace rights on the process: root, or the same user with ptrace allowed).
    """
    exe = py_spy()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "stacks.txt"
        result = subprocess.run(
            [
                exe,
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(max(1, round(seconds))),
                "--rate",
                str(rate),
                "--format",
                "raw",
                "--nonblocking",
                "--output",
                str(out),
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 30,
        )
        if result.returncode != 0 or not out.exists():
            raise RuntimeError(
                f"py-spy could not profile pid {pid}: {result.stderr.strip()[-300:]}"
            )
        samples: dict[str, int] = {}
        for line in out.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            kind = classify_stack(stack.split(";"))
            samples[kind] = samples.get(kind, 0) + int(count)
    return PythonProfile(samples)
