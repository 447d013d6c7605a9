"""Where the report is published: the `report/` artifacts of the study's MLflow parent run."""

from __future__ import annotations

import time

from mlflow import MlflowClient

from vtd.sweep.plan.config import Sweep
from vtd.sweep.reporting.report.files import ARTIFACT_DIR, PLOTS_DIR, REPORT_NAME, ReportFiles
from vtd.sweep.store.tracking import Tracker


def latest_parent_run(client: MlflowClient, experiment_id: str) -> str | None:
    """The study's latest `vtd-sweep run` parent run, if any."""
    runs = client.search_runs(
        [experiment_id],
        filter_string="tags.`vtd.command` = 'run'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


def log_report(sweep: Sweep, files: ReportFiles, parent_run_id: str | None = None) -> str:
    """Log the report's files under `report/` of the parent run (see the module docstring)."""
    tracker = Tracker(sweep)
    client = tracker.client
    run_id = parent_run_id or latest_parent_run(client, tracker.ensure_experiment())
    if run_id is None:
        run = client.create_run(
            tracker.ensure_experiment(),
            tags={"vtd.command": "report", "sweep_file": sweep.path.name},
            run_name="report",
        )
        run_id = run.info.run_id
        client.set_terminated(run_id, "FINISHED")
    client.log_artifact(run_id, str(files.report), artifact_path=ARTIFACT_DIR)
    for path in files.tables.values():
        client.log_artifact(run_id, str(path), artifact_path=ARTIFACT_DIR)
    for path in files.plots.values():
        client.log_artifact(run_id, str(path), artifact_path=f"{ARTIFACT_DIR}/{PLOTS_DIR}")
    client.set_tag(run_id, "report", f"{ARTIFACT_DIR}/{REPORT_NAME}")
    client.set_tag(run_id, "report_written", time.strftime("%Y-%m-%d %H:%M:%S"))
    return run_id
