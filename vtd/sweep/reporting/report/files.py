"""The report's files: their names under `studies/<study>/` and in MLflow, what was written."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

REPORT_NAME = "report.md"
PLOTS_DIR = "plots"
ARTIFACT_DIR = "report"


@dataclass
class ReportFiles:
    """What `write_report` wrote, and the MLflow run that holds it."""

    report: Path
    plots: dict[str, Path] = field(default_factory=dict)
    tables: dict[str, Path] = field(default_factory=dict)
    run_id: str | None = None

    def paths(self) -> list[Path]:
        return [self.report, *self.tables.values(), *self.plots.values()]
