"""`vtd-sweep probe`: which grid cells fit in memory, shown; 130 after Ctrl-C."""

from __future__ import annotations

from pathlib import Path

from vtd.sweep.commands.common import CtrlC


def probe(file: Path, gpu: str | None = None) -> int:
    from vtd.sweep.execute.probe import probe_and_show
    from vtd.sweep.plan.config import load_sweep
    from vtd.sweep.reporting.console import terminal

    console = terminal()
    with CtrlC(console) as ctrl_c:
        probe_and_show(load_sweep(file), console, stop=ctrl_c.stop, gpu=gpu)
    return 130 if ctrl_c.stop.is_set() else 0
