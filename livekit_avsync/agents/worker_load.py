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
from collections import deque

import psutil

__all__ = ["ProcessTreeLoad"]


class ProcessTreeLoad:
    """Callable load: CPU of this process tree over the last ``window`` seconds / (wall x cores).

    livekit-agents calls it every 2.5 s and again on each job offer, moments after; a reading
    over those few milliseconds would be clock-tick noise (CPU times count in 10 ms ticks), so
    every reading spans at least ``window`` seconds (since creation, while younger). Thread-safe
    (livekit-agents calls it from an executor). Processes that ended between two calls take the
    CPU they used since the previous call with them (it is not counted), so a reading errs low
    by at most one job's last interval.
    """

    def __init__(
        self, *, root_pid: int | None = None, cpu_count: int | None = None, window: float = 2.5
    ) -> None:
        if window <= 0:
            raise ValueError(f"window must be positive seconds, got {window!r}")
        self._root = psutil.Process(root_pid if root_pid is not None else os.getpid())
        self._cores = cpu_count or psutil.cpu_count() or 1
        self._window = window
        self._lock = threading.Lock()
        self._seen: dict[int, float] = {}  # pid -> CPU seconds at the previous reading
        self._cpu_delta()  # baseline: what ran before now is not counted
        self._used = 0.0  # CPU seconds counted since creation
        self._samples: deque[tuple[float, float]] = deque([(time.monotonic(), 0.0)])

    def __call__(self) -> float:
        with self._lock:
            now = time.monotonic()
            self._used += self._cpu_delta()
            # keep the newest sample at least a window old as the reading's start
            while len(self._samples) > 1 and now - self._samples[1][0] >= self._window:
                self._samples.popleft()
            since, used_then = self._samples[0]
            self._samples.append((now, self._used))
            elapsed = now - since
            if elapsed <= 0:
                return 0.0
            return min(1.0, max(0.0, (self._used - used_then) / (elapsed * self._cores)))

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
