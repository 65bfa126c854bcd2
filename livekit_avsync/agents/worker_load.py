"""A livekit-agents load function that counts the worker's own avatars, not the whole machine.

livekit-agents reports machine-wide CPU as a worker's load by default, and both the worker
(``load_threshold``) and the LiveKit server (its agent ``target_load``, 0.7) stop giving it jobs
above the threshold. On a machine that also runs other work, that marks an idle avatar worker
full; on a dedicated machine it is the same figure. :class:`ProcessTreeLoad` measures the CPU
time of this worker process and all its children (the job processes, where the avatars decode,
synchronize and encode) as a fraction of the machine's cores::

    server = AgentServer(load_fnc=ProcessTreeLoad(), load_threshold=0.7)
"""

from __future__ import annotations

import os
import threading
import time

import psutil

__all__ = ["ProcessTreeLoad"]


class ProcessTreeLoad:
    """Callable load: CPU of this process tree since the previous call / (wall time x cores).

    Thread-safe (livekit-agents calls it from an executor). Processes that ended between two
    calls take the CPU they used since the previous call with them (it is not counted), so a
    reading errs low by at most one job's last interval.
    """

    def __init__(self, *, root_pid: int | None = None, cpu_count: int | None = None) -> None:
        self._root = psutil.Process(root_pid if root_pid is not None else os.getpid())
        self._cores = cpu_count or psutil.cpu_count() or 1
        self._lock = threading.Lock()
        self._seen: dict[int, float] = {}  # pid -> CPU seconds at the previous reading
        self._last = time.monotonic()
        self._cpu_delta()  # baseline: what ran before now is not this interval's

    def __call__(self) -> float:
        with self._lock:
            now = time.monotonic()
            used = self._cpu_delta()
            elapsed, self._last = now - self._last, now
            if elapsed <= 0:
                return 0.0
            return min(1.0, max(0.0, used / (elapsed * self._cores)))

    def _cpu_delta(self) -> float:
        """CPU seconds the tree used since the previous reading (new processes: since start)."""
        try:
            processes = [self._root, *self._root.children(recursive=True)]
        except psutil.Error:
            processes = [self._root]
        seen: dict[int, float] = {}
        used = 0.0
        for process in processes:
            try:
                times = process.cpu_times()
            except psutil.Error:
                continue  # ended while we looked
            total = times.user + times.system
            seen[process.pid] = total
            used += total - self._seen.get(process.pid, 0.0)
        self._seen = seen
        return used
