"""MLflow: one experiment per study, a parent run per `vtd-sweep run`, a child run per trial.

Written on `MlflowClient` (not optuna's deprecated MLflowCallback, which logs no per-epoch
values): each epoch's metrics go in one `log_batch` call with `step` = epoch, validation and
test apart (`val_auc`, `test_auc`, ...). A child run carries the trial's resolved settings as
params, tags for the Optuna trial number, state, configuration hash, cell, seed and the
reason of a PRUNED / FAILED end, and the trial's log and best checkpoint as artifacts. Its
status follows the trial: COMPLETE -> FINISHED, PRUNED or interrupted -> KILLED,
FAILED -> FAILED. The tracking store is a SQLite database (or a server), never MLflow's
`./mlruns` file store.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.entities.lifecycle_stage import LifecycleStage

from vtd.sweep.config import Sweep

logger = logging.getLogger(__name__)

PARENT_TAG = "mlflow.parentRunId"
SPLIT_PREFIXES = {"validation": "val", "test": "test"}
SPLIT_METRICS = ("auc", "dist", "ap", "loss")
# EpochRecord fields logged as they are, under these names.
RECORD_METRICS = {
    "train_loss": "train_loss",
    "train_l2": "train_l2",
    "train_xent": "train_xent",
    "seconds": "epoch_seconds",
    "peak_host_mb": "peak_host_mb",
    "peak_device_mb": "peak_device_mb",
}
_MAX_PARAM_LENGTH = 6000
_MAX_PARAMS_PER_BATCH = 100


def epoch_metrics(record: Mapping[str, Any]) -> dict[str, float]:
    """An EpochRecord (as a dict) as flat metric names: val_auc, test_dist, train_loss ..."""
    metrics = {
        name: float(record[key])
        for key, name in RECORD_METRICS.items()
        if record.get(key) is not None
    }
    for split, prefix in SPLIT_PREFIXES.items():
        values = record.get(split)
        if values:
            for metric in SPLIT_METRICS:
                if values.get(metric) is not None:
                    metrics[f"{prefix}_{metric}"] = float(values[metric])
    return metrics


def flatten(content: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in content.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _param_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= _MAX_PARAM_LENGTH else text[: _MAX_PARAM_LENGTH - 3] + "..."


def _now_ms() -> int:
    return int(time.time() * 1000)


class Tracker:
    """The study's MLflow experiment and the runs in it."""

    def __init__(self, sweep: Sweep) -> None:
        self.sweep = sweep
        self.client = MlflowClient(tracking_uri=sweep.tracking_uri)
        self._experiment_id: str | None = None

    @property
    def experiment_id(self) -> str:
        """The study's experiment, created (or restored from deletion) on first use."""
        if self._experiment_id is None:
            name = self.sweep.study_name
            experiment = self.client.get_experiment_by_name(name)
            if experiment is None:
                self._experiment_id = self.client.create_experiment(
                    name,
                    artifact_location=self.sweep.artifact_location,
                    tags={"optuna_study": name, "optuna_storage": self.sweep.storage_url},
                )
            else:
                if experiment.lifecycle_stage == LifecycleStage.DELETED:
                    self.client.restore_experiment(experiment.experiment_id)
                self._experiment_id = experiment.experiment_id
        return self._experiment_id

    def set_aside_experiment(self) -> str | None:
        """Rename the study's experiment out of the way (for a study made anew); its runs stay."""
        experiment = self.client.get_experiment_by_name(self.sweep.study_name)
        if experiment is None:
            return None
        new_name = f"{self.sweep.study_name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}"
        self.client.rename_experiment(experiment.experiment_id, new_name)
        self._experiment_id = None
        return new_name

    # --- the sweep's parent run -----------------------------------------------------------
    def start_sweep_run(self, tags: Mapping[str, Any]) -> str:
        run = self.client.create_run(
            self.experiment_id,
            tags={key: str(value) for key, value in tags.items()},
            run_name=f"{tags.get('vtd.command', 'run')} {time.strftime('%Y-%m-%d %H:%M:%S')}",
        )
        self.client.log_artifact(run.info.run_id, str(self.sweep.path))
        return run.info.run_id

    def end_sweep_run(self, run_id: str, status: str, tags: Mapping[str, Any]) -> None:
        self.client.log_batch(run_id, tags=[RunTag(key, str(value)) for key, value in tags.items()])
        self.client.set_terminated(run_id, status)

    # --- one run per trial ----------------------------------------------------------------
    def start_trial_run(
        self, parent_run_id: str | None, tags: Mapping[str, Any], params: Mapping[str, Any]
    ) -> str:
        all_tags = {key: str(value) for key, value in tags.items()}
        if parent_run_id is not None:
            all_tags[PARENT_TAG] = parent_run_id
        name = f"trial {tags.get('optuna_trial')}: {tags.get('cell')} seed {tags.get('seed')}"
        run = self.client.create_run(self.experiment_id, tags=all_tags, run_name=name)
        run_id = run.info.run_id
        items = [Param(key, _param_value(value)) for key, value in params.items()]
        for start in range(0, len(items), _MAX_PARAMS_PER_BATCH):
            self.client.log_batch(run_id, params=items[start : start + _MAX_PARAMS_PER_BATCH])
        return run_id

    def log_epoch(self, run_id: str, epoch: int, metrics: Mapping[str, float]) -> None:
        """One call per epoch, every metric at step = epoch."""
        timestamp = _now_ms()
        batch = [Metric(key, value, timestamp, epoch) for key, value in metrics.items()]
        self.client.log_batch(run_id, metrics=batch)

    def end_trial_run(
        self,
        run_id: str,
        *,
        status: str,
        tags: Mapping[str, Any],
        artifacts: Iterable[tuple[Path, str | None]] = (),
    ) -> None:
        for path, folder in artifacts:
            if path.is_file():
                self.client.log_artifact(run_id, str(path), artifact_path=folder)
        self.client.log_batch(
            run_id, tags=[RunTag(key, str(value)[:5000]) for key, value in tags.items()]
        )
        self.client.set_terminated(run_id, status)
