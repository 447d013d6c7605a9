"""The bounded-memory benchmark runs end to end (its `--quick` smoke mode)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARK = Path(__file__).parents[1] / "benchmarks" / "bench_loader_memory.py"


def test_loader_memory_benchmark_quick_run():
    done = subprocess.run(
        [sys.executable, str(BENCHMARK), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith(("| 2x", "| 4x"))]
    assert [row.split("|")[1].strip() for row in rows] == ["2x16", "2x2", "4x16"]
    frames = [int(row.split("|")[2]) for row in rows]
    assert frames == [32, 4, 64], "every frame of every clip was loaded"
    assert "all acceptance figures met" in done.stdout
