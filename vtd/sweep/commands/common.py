"""What the commands share: bad input (`UsageError`), Ctrl-C, writing the report."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from rich.console import Console


class UsageError(Exception):
    """Bad input from the command line: one line, exit code 2."""


class CtrlC:
    """First Ctrl-C: stop cleanly (the running trial is marked interrupted); second: abort."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.stop = threading.Event()
        self._previous: Callable | int | None = None

    def __enter__(self) -> CtrlC:
        self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *_exc: object) -> None:
        signal.signal(signal.SIGINT, self._previous or signal.SIG_DFL)

    def _handle(self, _signum: int, _frame: FrameType | None) -> None:
        if self.stop.is_set():
            raise KeyboardInterrupt
        self.stop.set()
        self.console.print(
            "[bold]stopping[/]: the running trial is marked interrupted and runs again next "
            "time (Ctrl-C again to abort at once)"
        )


def write_report(console: Console, file: Path, parent_run_id: str | None) -> None:
    from vtd.sweep.plan.config import load_sweep
    from vtd.sweep.reporting.report.write import write_report as write

    files = write(load_sweep(file), parent_run_id=parent_run_id)
    console.print(
        f"report: {files.report} ({len(files.plots)} plots; MLflow run {files.run_id})",
        soft_wrap=True,
        markup=False,
    )
