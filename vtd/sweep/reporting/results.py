"""A study read back as tables: one row per trial (Optuna), one row per trial epoch (MLflow).

For the plots and the report (`vtd-sweep status` reads `trials.trial_rows`, without pandas):

- `trials_frame(sweep)`, those rows as a table: number, state, value, the searched settings
  by name (batch_size, chunk_size, initial_weights ...), cell, repeat, seed, hashes, reason,
  `out_of_memory` (ran out, or dominated by a trial that did), `ran` (False: pruned or
  copied without running), best / last validation and test metrics, duration, MLflow run id;
- `epochs_frame(sweep)`: number, run_id, epoch and every per-epoch metric (val_auc, val_dist,
  val_ap, val_loss, test_..., train_loss, epoch_seconds, peak_host_mb, peak_device_mb).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import pandas as pd

from vtd.sweep.plan.config import Sweep
from vtd.sweep.reporting.trials import trial_rows
from vtd.sweep.store.study import SweepStudy

if TYPE_CHECKING:  # imported where used: `status` reads Optuna only, and mlflow takes a second
    from mlflow import MlflowClient


def trials_frame(sweep: Sweep, sweep_study: SweepStudy | None = None) -> pd.DataFrame:
    """`trial_rows` as a table (with its number, state, value and setting columns when the
    study has no trials yet); `sweep_study`: the study already opened."""
    rows = trial_rows(sweep, sweep_study)
    if not rows:
        return pd.DataFrame(columns=["number", "state", "value", *sweep.space.names])
    return pd.DataFrame(rows)


def _study_runs(client: MlflowClient, experiment_id: str, study: str) -> list[Any]:
    runs: list[Any] = []
    token = None
    while True:
        page = client.search_runs(
            [experiment_id],
            filter_string=f"tags.optuna_study = '{study}'",
            max_results=1000,
            page_token=token,
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def epochs_frame(sweep: Sweep, numbers: Iterable[int] | None = None) -> pd.DataFrame:
    """Every per-epoch metric of the study's trials, from MLflow (step = epoch)."""
    from mlflow import MlflowClient

    columns = ["number", "run_id", "epoch"]
    client = MlflowClient(tracking_uri=sweep.tracking_uri)
    experiment = client.get_experiment_by_name(sweep.study_name)
    if experiment is None:
        return pd.DataFrame(columns=columns)
    wanted = None if numbers is None else set(numbers)
    records = []
    for run in _study_runs(client, experiment.experiment_id, sweep.study_name):
        number = int(run.data.tags["optuna_trial"])
        if wanted is not None and number not in wanted:
            continue
        for key in run.data.metrics:
            for metric in client.get_metric_history(run.info.run_id, key):
                records.append((number, run.info.run_id, metric.step, key, metric.value))
    if not records:
        return pd.DataFrame(columns=columns)
    long = pd.DataFrame(records, columns=[*columns, "metric", "value"])
    wide = long.pivot_table(index=columns, columns="metric", values="value", aggfunc="last")
    wide.columns.name = None
    return wide.reset_index().sort_values(["number", "epoch"], ignore_index=True)
