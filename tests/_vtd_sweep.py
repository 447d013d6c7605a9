"""`vtd-sweep` as a user runs it: a fresh interpreter, its output captured as text."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def run_vtd_sweep(*argv: str | Path, timeout: float) -> subprocess.CompletedProcess[str]:
    """`vtd-sweep ARGV` in a new process of this interpreter; waits at most `timeout` s."""
    return subprocess.run(
        [sys.executable, "-m", "vtd.cli", *map(str, argv)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
