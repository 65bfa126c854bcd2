"""Run the benchmark: ``python bench/run_bench.py [--quick] [--json out.json] [--scenarios a,b]``.

A thin wrapper around ``livekit-avsync bench`` (see ``--help`` and docs/benchmarks.md).
"""

from __future__ import annotations

import sys

from livekit_avsync.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
