"""`write_report(sweep)`: the study's tables, plots, CSV files and report.md, then MLflow."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from vtd.sweep.plan.config import Sweep
from vtd.sweep.reporting._published import published_table
from vtd.sweep.reporting._tables import StudyTables, load_tables
from vtd.sweep.reporting.plots.grid import classify_cells, grid_figure
from vtd.sweep.reporting.plots.heatmap import heatmap_figure
from vtd.sweep.reporting.plots.shared import GridLayout, save
from vtd.sweep.reporting.plots.views import optuna_views, optuna_views_for
from vtd.sweep.reporting.report.compute import configurations, pairs, state_text, weights_by_data
from vtd.sweep.reporting.report.files import PLOTS_DIR, REPORT_NAME, ReportFiles
from vtd.sweep.reporting.report.markdown import render
from vtd.sweep.reporting.report.publish import log_report
from vtd.sweep.store.study import StudyError, open_sweep_study, study_exists

logger = logging.getLogger(__name__)


def draw_plots(tables: StudyTables, folder: Path) -> dict[str, Path]:
    """Every figure of the study as PNG under `folder` (old PNGs there are removed first)."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    plots: dict[str, Path] = {}
    if tables.trials.empty:
        return plots
    layout = GridLayout.of(tables)
    cells = classify_cells(tables, layout)
    for prefix in tables.splits:
        for metric in ("auc", "dist"):
            name = f"grid_{prefix}_{metric}"
            figure = grid_figure(tables, layout, cells, split=prefix, metric=metric)
            plots[name] = save(figure, folder / f"{name}.png")
    for prefix in tables.splits if len(tables.epochs) else ():
        name = f"heatmap_{prefix}"
        plots[name] = save(heatmap_figure(tables, layout, split=prefix), folder / f"{name}.png")
    which = optuna_views_for(tables)
    if not which:  # a grid without pruner: the study need not be opened again
        return plots
    sweep_study = open_sweep_study(tables.sweep, create=False)
    try:
        views = optuna_views(tables, sweep_study.study, folder, which)
    finally:
        sweep_study.storage.remove_session()
    plots.update({f"optuna_{name}": path for name, path in views.items()})
    return plots


def write_report(
    sweep: Sweep, *, parent_run_id: str | None = None, log_to_mlflow: bool = True
) -> ReportFiles:
    """Write the report, tables and plots of the sweep's study; log them to MLflow."""
    if not study_exists(sweep):
        raise StudyError(
            f"study {sweep.study_name} does not exist yet; start it with "
            f"`vtd-sweep run {sweep.path.name}`"
        )
    folder = sweep.study_dir
    folder.mkdir(parents=True, exist_ok=True)
    tables = load_tables(sweep)
    plots = draw_plots(tables, folder / PLOTS_DIR)
    configurations_table = configurations(tables) if len(tables.trials) else pd.DataFrame()
    weights_table, weights_split = weights_by_data(tables)
    verdicts = pairs(configurations_table, weights_split)
    published = published_table(tables, state_text)
    files = ReportFiles(report=folder / REPORT_NAME, plots=plots)
    named_tables = [
        ("configurations", configurations_table),
        ("weights_by_data", weights_table),
        ("pairs", verdicts),
    ]
    if sweep.file.report.published is not None:
        named_tables.append(("published", published))
    for name, table in named_tables:
        path = folder / f"{name}.csv"
        table.to_csv(path, index=False)
        files.tables[name] = path
    text = render(
        tables,
        plots,
        folder,
        configurations_table=configurations_table,
        weights_table=weights_table,
        weights_split=weights_split,
        verdicts=verdicts,
        published=published,
    )
    files.report.write_text(text, encoding="utf-8")
    logger.info("report written to %s", files.report)
    if log_to_mlflow:
        files.run_id = log_report(sweep, files, parent_run_id)
    return files
