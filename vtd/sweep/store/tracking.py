"""MLflow: one experiment per study, a parent run per `vtd-sweep run`, a child run per trial.

Written on `MlflowClient` (not optuna's deprecated MLflowCallback, which logs no per-epoch
values): each epoch's metrics go in one `log_batch` call with `step` = epoch, validation and
test apart (`val_auc`, `test_auc`, ...). A child run carries the trial's resolved settings as
params, tags for the Optuna trial number, state, configuration hash, cell, seed and the
reason of a PRUNED / FAILED end, and the trial's log and best checkpoint as artifacts (the
checkpoint hard-linked where the artifact store is a local folder: no second copy). Its
status follows the trial: COMPLETE -> FINISHED, PRUNED or interrupted -> KILLED,
FAILED -> FAILED. The tracking store is a SQLite database (or a server), never MLflow's
`./mlruns` file store. With SQLite, connections wait up to a minute for a lock, every call is
retried with backoff while the database is locked, and a new database is created under a
file lock (workers started together never race to create it). The run of a trial whose worker
died ends KILLED, tagged `retried_by` the run of its retry, which is tagged `retry_of`.

The experiment is made as a model-training experiment with a saved view of the MLflow UI,
`trials` (`trials_view_url`): every trial's run, flat, with its validation AUC, distance and
AP, state, cell, seed and reason, sorted by the objective.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlparse
from urllib.request import url2pathname

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.entities.lifecycle_stage import LifecycleStage
from mlflow.exceptions import MlflowException

from vtd.evaluate.names import SPLIT_PREFIXES
from vtd.file_links import link_or_copy
from vtd.sweep.plan.config import Sweep
from vtd.sweep.plan.weights import WEIGHTS_FRESH
from vtd.sweep.store.storage import (
    file_lock,
    hide_password,
    retry_when_locked,
    sqlite_busy_timeout_uri,
    sqlite_file,
)

if TYPE_CHECKING:  # an annotation only: the study loads optuna
    from vtd.sweep.store.study import ResolvedTrial

logger = logging.getLogger(__name__)

PARENT_TAG = "mlflow.parentRunId"
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
_SQLITE_BUSY_TIMEOUT_S = 60.0
# The MLflow UI's saved views: an experiment tag holding the view's state as JSON.
VIEW_TAG_PREFIX = "mlflow.sharedViewState."
TRIALS_VIEW = "trials"
_VIEW_METRICS = ("val_auc", "val_dist", "val_ap")
_VIEW_TAGS = ("state", "cell", "seed", "reason")
T = TypeVar("T")
# Each epoch's record, kept beside the trial (`append_epoch`): `sync` fills MLflow from it.
EPOCHS_FILE = "epochs.jsonl"
HTTP_BOUNDS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}


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


def trials_view(sweep: Sweep) -> dict[str, Any]:
    """The MLflow UI's state for the `trials` view (the UI's own format, kept as JSON)."""
    objective = sweep.file.objective
    prefix = SPLIT_PREFIXES[objective.split]
    metrics = dict.fromkeys((f"{prefix}_{objective.metric}", *_VIEW_METRICS))
    return {
        "searchFilter": "tags.optuna_trial LIKE '%'",
        "orderByKey": f"metrics.`{prefix}_{objective.metric}`",
        "orderByAsc": objective.resolved_direction == "minimize",
        "selectedColumns": [f"metrics.`{name}`" for name in metrics]
        + [f"tags.`{name}`" for name in _VIEW_TAGS],
    }


def trials_view_url(ui_url: str, experiment_id: str) -> str:
    """The link to the `trials` view of the study's experiment in the MLflow UI at `ui_url`."""
    return (
        f"{ui_url.rstrip('/')}/#/experiments/{experiment_id}/runs?viewStateShareKey={TRIALS_VIEW}"
    )


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
        # MLflow prints two links per ended run to stdout when it talks to a server.
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        # A tracking server that is gone must not hold the study for minutes (MLflow's own
        # defaults retry each call 7 times with exponential backoff, 120 s timeout each):
        # a failed call is skipped and `vtd-sweep sync` catches up later.
        for name, value in HTTP_BOUNDS.items():
            os.environ.setdefault(name, value)
        self.offline_warned = False  # the worker warns once that MLflow failed
        uri = sqlite_busy_timeout_uri(sweep.tracking_uri, _SQLITE_BUSY_TIMEOUT_S)
        self.client = MlflowClient(tracking_uri=uri)
        self._experiment_id: str | None = None
        path = sqlite_file(sweep.tracking_uri)
        if path is not None and not path.is_file():
            # MLflow creates its tables on first use: one process at a time.
            with file_lock(path.with_name(f".{path.name}.create.lock")):
                self._call(lambda: self.client.search_experiments(max_results=1))

    def _call(self, call: Callable[[], T]) -> T:
        return retry_when_locked(call, store=self.sweep.tracking_uri)

    def ensure_experiment(self) -> str:
        """The study's experiment id; the experiment is created (or restored from deletion) on
        the first call."""
        if self._experiment_id is None:
            name = self.sweep.study_name
            experiment = self._call(lambda: self.client.get_experiment_by_name(name))
            if experiment is None:
                try:
                    self._experiment_id = self._call(self._create_experiment)
                    return self._experiment_id
                except MlflowException as error:
                    if error.error_code != "RESOURCE_ALREADY_EXISTS":
                        raise
                experiment = self._call(lambda: self.client.get_experiment_by_name(name))
                assert experiment is not None  # another worker made it a moment ago
            if experiment.lifecycle_stage == LifecycleStage.DELETED:
                self._call(lambda: self.client.restore_experiment(experiment.experiment_id))
            self._experiment_id = experiment.experiment_id
        return self._experiment_id

    def _create_experiment(self) -> str:
        name = self.sweep.study_name
        return self.client.create_experiment(
            name,
            artifact_location=self.sweep.artifact_location,
            tags={
                "optuna_study": name,
                "optuna_storage": hide_password(self.sweep.storage_url),
                # Opens on the runs, not on the GenAI overview.
                "mlflow.experimentKind": "custom_model_development",
                VIEW_TAG_PREFIX + TRIALS_VIEW: json.dumps(trials_view(self.sweep)),
            },
        )

    def set_aside_experiment(self) -> str | None:
        """Rename the study's experiment out of the way (for a study made anew); its runs stay."""
        experiment = self._call(lambda: self.client.get_experiment_by_name(self.sweep.study_name))
        if experiment is None:
            return None
        new_name = f"{self.sweep.study_name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}"
        experiment_id = experiment.experiment_id
        self._call(lambda: self.client.rename_experiment(experiment_id, new_name))
        self._experiment_id = None
        return new_name

    # --- the sweep's parent run -----------------------------------------------------------
    def start_sweep_run(self, tags: Mapping[str, Any]) -> str:
        run = self._call(
            lambda: self.client.create_run(
                self.ensure_experiment(),
                tags={key: str(value) for key, value in tags.items()},
                run_name=f"{tags.get('vtd.command', 'run')} {time.strftime('%Y-%m-%d %H:%M:%S')}",
            )
        )
        self._call(lambda: self.client.log_artifact(run.info.run_id, str(self.sweep.path)))
        return run.info.run_id

    def end_sweep_run(self, run_id: str, status: str, tags: Mapping[str, Any]) -> None:
        self.set_tags(run_id, tags)
        self._call(lambda: self.client.set_terminated(run_id, status))

    # --- one run per trial ----------------------------------------------------------------
    def start_trial_run(
        self, parent_run_id: str | None, tags: Mapping[str, Any], params: Mapping[str, Any]
    ) -> str:
        all_tags = {key: str(value) for key, value in tags.items()}
        if parent_run_id is not None:
            all_tags[PARENT_TAG] = parent_run_id
        name = f"trial {tags.get('optuna_trial')}: {tags.get('cell')} seed {tags.get('seed')}"
        run = self._call(
            lambda: self.client.create_run(self.ensure_experiment(), tags=all_tags, run_name=name)
        )
        run_id = run.info.run_id
        items = [Param(key, _param_value(value)) for key, value in params.items()]
        for start in range(0, len(items), _MAX_PARAMS_PER_BATCH):
            batch = items[start : start + _MAX_PARAMS_PER_BATCH]
            self._call(lambda batch=batch: self.client.log_batch(run_id, params=batch))
        return run_id

    def log_epoch(self, run_id: str, epoch: int, metrics: Mapping[str, float]) -> None:
        """One call per epoch, every metric at step = epoch."""
        timestamp = _now_ms()
        batch = [Metric(key, value, timestamp, epoch) for key, value in metrics.items()]
        self._call(lambda: self.client.log_batch(run_id, metrics=batch))

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        batch = [RunTag(key, str(value)[:5000]) for key, value in tags.items()]
        self._call(lambda: self.client.log_batch(run_id, tags=batch))

    def end_trial_run(
        self,
        run_id: str,
        *,
        status: str,
        tags: Mapping[str, Any],
        artifacts: Iterable[tuple[Path, str | None]] = (),
    ) -> None:
        for path, folder in artifacts:
            if path.is_file() and not (path.suffix == ".pt" and self._place(run_id, path, folder)):
                self._call(
                    lambda path=path, folder=folder: self.client.log_artifact(
                        run_id, str(path), artifact_path=folder
                    )
                )
        self.set_tags(run_id, tags)
        self._call(lambda: self.client.set_terminated(run_id, status))

    def _place(self, run_id: str, checkpoint: Path, folder: str | None) -> bool:
        """`checkpoint` among the run's artifacts, a hard link to it where the artifact store
        is a local folder on the same file system (`link_or_copy`: not a second copy of 400 MB
        per trial); False where the store is not local (MLflow then uploads it)."""
        run = self._call(lambda: self.client.get_run(run_id))
        location = urlparse(run.info.artifact_uri)
        if location.scheme not in ("", "file") or location.netloc not in ("", "localhost"):
            return False
        artifacts = Path(url2pathname(location.path)) / (folder or "")
        link_or_copy(checkpoint, artifacts / checkpoint.name)
        return True

    def close_lost_run(self, run_id: str, tags: Mapping[str, Any]) -> bool:
        """End the run of a trial whose worker died as KILLED (if it is still RUNNING)."""
        try:
            run = self._call(lambda: self.client.get_run(run_id))
        except MlflowException as error:
            logger.warning("run %s of a lost trial cannot be read: %s", run_id, error)
            return False
        if run.info.status != RunStatus.to_string(RunStatus.RUNNING):
            return False
        self.set_tags(run_id, tags)
        self._call(lambda: self.client.set_terminated(run_id, "KILLED"))
        return True

    def link_retry(self, lost_run_id: str, retry_run_id: str, retry_trial: int) -> None:
        """Tag the run of a lost attempt with the run (and trial) that retries it."""
        try:
            self.set_tags(
                lost_run_id, {"retried_by": retry_run_id, "retried_by_trial": retry_trial}
            )
        except MlflowException as error:
            logger.warning("run %s of a lost trial cannot be tagged: %s", lost_run_id, error)


def trial_settings(sweep: Sweep, resolved: ResolvedTrial) -> dict[str, Any]:
    """A trial's training settings by field path, its initial weights by name."""
    settings = flatten(
        resolved.config.model_dump(mode="json", exclude={"output_dir", "eval_cache_dir"})
    )
    label = resolved.params.get("initial_weights", sweep.base_weights)
    settings["initial_weights"] = WEIGHTS_FRESH if label is None else str(label)
    return settings


def trial_run_tags(
    number: int, study_name: str, attrs: Mapping[str, Any], origin: str, **more: Any
) -> dict[str, Any]:
    """The tags a trial's MLflow run starts with: its Optuna trial and study, RUNNING, its
    identity (from its user attributes), its origin, and `more`."""
    return {
        "optuna_trial": number,
        "optuna_study": study_name,
        "state": "RUNNING",
        **{key: attrs[key] for key in ("config_hash", "cell_hash", "cell", "seed", "repeat")},
        "origin": origin,
        **more,
    }


def trial_run_params(sweep: Sweep, resolved: ResolvedTrial) -> dict[str, Any]:
    """The params of a trial's MLflow run: the data section as one JSON param, every other
    setting its own param."""
    params = {
        key: value
        for key, value in trial_settings(sweep, resolved).items()
        if not key.startswith("data.")
    }
    params["data"] = resolved.config.data.model_dump(mode="json")
    return params


def append_epoch(trial_dir: Path, epoch_record: dict[str, Any]) -> None:
    """Append one epoch's record to the trial folder's `epochs.jsonl`."""
    trial_dir.mkdir(parents=True, exist_ok=True)
    with (trial_dir / EPOCHS_FILE).open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(epoch_record, default=float) + "\n")


def read_epochs(trial_dir: Path) -> list[dict[str, Any]]:
    """The per-epoch records a trial appended to its folder (none: an empty list)."""
    path = trial_dir / EPOCHS_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
