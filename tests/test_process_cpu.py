"""The scale bench's CPU accounting: thread groups, per-thread CPU of real processes, and the
classification of sampled Python stacks."""

from __future__ import annotations

import threading
import time

import pytest

from livekit_avsync.measure.process_cpu import (
    PythonProfile,
    classify_stack,
    thread_group,
    tree_cpu,
)
from livekit_avsync.measure.table import text_table

LOOP = "BaseEventLoop._run_once (asyncio/base_events.py:1922)"


def test_threads_are_grouped_by_the_work_their_names_show() -> None:
    assert thread_group("anything", main=True) == "python"
    assert thread_group("VideoEncoderQue", main=False) == "video encoding"
    assert thread_group("AudioEncoderQue", main=False) == "audio"
    assert thread_group("tokio-rt-worker", main=False) == "other"


def test_stacks_are_ours_the_providers_idle_or_other_by_their_innermost_frames() -> None:
    ours = [
        LOOP,
        "AVSynchronizer.push (livekit_avsync/output/synchronizer.py:10)",
        "f (numpy/x.py:3)",
    ]
    provider = [LOOP, "LocalAvatar._run (livekit_avsync/providers/local.py:400)", "draw (x.py:1)"]
    nested = [*provider, "push (livekit_avsync/output/synchronizer.py:10)"]  # called from there
    idle = [LOOP, "EpollSelector.select (selectors.py:468)"]
    agents = [LOOP, "AgentActivity._run (agents/voice/agent_activity.py:5)"]
    sdk = [*ours[:2], "FfiClient.request (rtc/_ffi_client.py:120)"]  # as py-spy names it
    stacks = (ours, provider, nested, idle, agents, sdk, [LOOP], [])
    assert [classify_stack(s) for s in stacks] == [
        "ours",
        "provider",
        "ours",
        "idle",
        "agents",
        "sdk",
        "other",
        "idle",
    ]
    profile = PythonProfile({"ours": 30, "provider": 10, "other": 60, "idle": 900})
    assert profile.share("ours") == pytest.approx(0.3)  # of the busy samples only
    assert profile.share("idle") == 0.0
    assert PythonProfile({}).share("ours") == 0.0


def test_tree_cpu_counts_a_busy_thread_and_splits_main_from_the_rest() -> None:
    spun, done = threading.Event(), threading.Event()

    def spin() -> None:
        while time.thread_time() < 0.3:  # its own CPU, however busy the machine is
            pass
        spun.set()
        done.wait()  # alive (and idle) while it is read: a thread's CPU ends with it

    before = tree_cpu([threading.get_native_id()])  # this process (main thread id == pid)
    worker = threading.Thread(target=spin, name="spinner")
    worker.start()
    assert spun.wait(timeout=60)
    used = tree_cpu([threading.get_native_id()]) - before
    done.set()
    worker.join()
    assert used.processes == 1 and used.uss > 0
    assert used.seconds.get("other", 0.0) >= 0.25  # the spinner's CPU, not the main thread's
    assert used.seconds.get("python", 0.0) < used.seconds["other"]
    assert tree_cpu([2**22 + 12345]).processes == 0  # a pid that is not there is skipped


def test_text_table_aligns_labels_left_and_figures_right() -> None:
    out = text_table(["size", "N", "p95"], [["360p", "1", "4.5"], ["720p", "10"]])
    assert out.splitlines() == [
        "size  N   p95",
        "----  --  ---",
        "360p  1   4.5",
        "720p  10",
    ]
