"""A study read back as tables: one row per trial (Optuna), one row per trial epoch (MLflow).

For `vtd-sweep status`, the plots and the report:

- `trials_frame(sweep)`: number, state, value, the searched settings by name (batch_size,
  chunk_size, initial_weights ...), cell, repeat, seed, hashes, reason, `out_of_memory`
  (ran out, or dominated by a trial that did), `ran` (False: pruned or copied without
  running), best / last validation and test metrics, duration, MLflow run id;
- `epochs_frame(sweep)`: number, run_id, epoch and every per-epoch metric (val_auc, val_dist,
  val_ap, val_loss, test_..., train_loss, epoch_seconds, peak_host_mb, peak_device_mb).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import pandas as pd

from vtd.sweep.plan.config import Sweep
from vtd.sweep.store.record import read_outcome
from vtd.sweep.store.study import SweepStudy, existing_study

if TYPE_CHECKING:  # imported where used: `status` reads Optuna only, and mlflow takes a second
    from mlflow import MlflowClient

TRIAL_ATTRS = (
    "cell",
    "repeat",
    "seed",
    "config_hash",
    "cell_hash",
    "origin",
    "reason",
    "best_epoch",
    "epochs_done",
    "duplicate_of",
    "dominated_by",
    "peak_host_mb",
    "peak_device_mb",
    "memory_cap_mb",
    "error_type",
    "signal",
    "exit_code",
    "interrupted",
    "injected",
    "duration_s",
    "train_seconds",
    "mlflow_run_id",
    "trial_dir",
)


def trials_frame(sweep: Sweep, sweep_study: SweepStudy | None = None) -> pd.DataFrame:
    """One row per Optuna trial of the sweep's study (empty when there is no study yet);
    `sweep_study`: the study already opened."""
    if sweep_study is None:
        sweep_study = existing_study(sweep)
    if sweep_study is None:
        return pd.DataFrame(columns=["number", "state", "value", *sweep.space.names])
    rows = []
    for trial in sweep_study.study.get_trials(deepcopy=False):
        attrs = trial.user_attrs
        params = trial.params or trial.system_attrs.get("fixed_params", {})
        row: dict[str, Any] = {
            "number": trial.number,
            "state": trial.state.name,
            "value": trial.value,
            **{name: params.get(name) for name in sweep.space.names},
            **{key: attrs.get(key) for key in TRIAL_ATTRS},
            "out_of_memory": bool(attrs.get("out_of_memory") or attrs.get("oom_dominated")),
            # The typed outcome (vtd.sweep.store.record): tables and figures read its fields.
            "outcome_record": read_outcome(attrs),
            "ran": trial.state.is_finished()
            and "duplicate_of" not in attrs
            and "dominated_by" not in attrs,
            "started": trial.datetime_start,
            "completed": trial.datetime_complete,
        }
        row.update(
            {
                k: v
                for k, v in attrs.items()
                if k.startswith(("best_", "last_", "initial_", "selected_"))
            }
        )
        rows.append(row)
    sweep_study.storage.remove_session()
    return pd.DataFrame(rows).sort_values("number", ignore_index=True)


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
