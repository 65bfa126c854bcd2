"""ProcessTreeLoad: a worker's load is the CPU of its own process tree (its job processes), so
other programs on the machine do not mark it full, and its avatars' work does."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil
import pytest

from livekit_avsync.agents import ProcessTreeLoad

# burns 0.6 s of its own CPU, says so, then idles until its stdin closes
_CHILD = """
import sys, time
while time.process_time() < 0.6:
    pass
print("burned", flush=True)
sys.stdin.read()
"""


def test_counts_a_child_processs_cpu_and_not_its_idle_time() -> None:
    load = ProcessTreeLoad(window=0.2)
    start = time.monotonic()
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "burned"
        busy = load()
        elapsed = time.monotonic() - start
        cores = psutil.cpu_count() or 1
        # at least the child's 0.6 CPU-seconds over the elapsed wall time, as a machine share
        assert busy >= 0.6 / (elapsed * cores) * 0.95, (busy, elapsed)
        time.sleep(0.5)
        idle = load()  # the child sleeps in read(): nearly nothing in the last window
        assert idle < busy / 2, (idle, busy)
    finally:
        if child.stdin is not None:
            child.stdin.close()
        child.wait(10)


def test_an_unrelated_busy_process_is_not_counted() -> None:
    """A CPU-bound process outside the tree leaves the tree's reading near zero (the default
    livekit-agents load, machine-wide CPU, would report it)."""
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        load = ProcessTreeLoad(root_pid=idle.pid)  # a tree of one sleeping process
        time.sleep(0.6)
        assert psutil.Process(busy.pid).cpu_times().user > 0.1  # it did run meanwhile
        assert load() < 0.05
    finally:
        for process in (idle, busy):
            process.kill()
            process.wait(10)


def test_a_reading_moments_after_another_spans_the_window_not_the_moments() -> None:
    """livekit-agents reads the load again on each job offer, right after its periodic reading:
    the second reading still covers the window (the burn), it does not drop to tick noise."""
    load = ProcessTreeLoad(window=30.0)
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "burned"
        busy = load()
        time.sleep(0.2)
        again = load()  # 0.2 s of idle after the burn; the window still holds the burn
        assert again >= busy * 0.5, (again, busy)
        assert again > 0.0
    finally:
        if child.stdin is not None:
            child.stdin.close()
        child.wait(10)


def test_a_window_must_be_positive() -> None:
    with pytest.raises(ValueError, match="window"):
        ProcessTreeLoad(window=0)
