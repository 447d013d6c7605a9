"""`vtd-sweep sync`: bring MLflow up to date from Optuna and the trial folders.

Optuna is the record of a study (a worker tells Optuna first, MLflow second); MLflow can fall
behind when the tracking server or database failed while trials ran. For every finished trial
this makes sure that it has exactly one MLflow run: the run it names (`mlflow_run_id`), else a
run of the study tagged with its number, else a new one; that the run has every epoch of the
trial folder's `epochs.jsonl` at its step; and that it ended with the trial's status and
outcome tags. Trials copied from another (`DuplicateOf`) never had a run and get none.
`vtd-sweep run` and `vtd-sweep report` sync first; a sync that cannot reach MLflow warns.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mlflow.entities import RunStatus
from optuna.trial import FrozenTrial, TrialState

from vtd.sweep.plan.config import Sweep
from vtd.sweep.plan.identity import portable_path
from vtd.sweep.store import record
from vtd.sweep.store.outcome import MLFLOW_STATUS, mlflow_status, outcome_tags
from vtd.sweep.store.study import existing_study, resolve
from vtd.sweep.store.tracking import (
    Tracker,
    epoch_metrics,
    read_epochs,
    trial_run_params,
    trial_run_tags,
)
from vtd.sweep.store.words import describe

logger = logging.getLogger(__name__)
_RUNNING = RunStatus.to_string(RunStatus.RUNNING)


@dataclass
class SyncSummary:
    """What a sync did, trial numbers per kind of change."""

    created: list[int] = field(default_factory=list)
    epochs_logged: dict[int, int] = field(default_factory=dict)
    ended: list[int] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.epochs_logged or self.ended)

    def words(self) -> str:
        if not self.changed:
            return "MLflow is up to date"
        parts = []
        if self.created:
            parts.append(f"{len(self.created)} run(s) created")
        if self.epochs_logged:
            parts.append(f"{sum(self.epochs_logged.values())} epoch(s) logged")
        if self.ended:
            parts.append(f"{len(self.ended)} run(s) ended")
        return "MLflow brought up to date: " + ", ".join(parts)


def _runs_by_trial(tracker: Tracker, study: str) -> dict[int, list[Any]]:
    client = tracker.client
    runs: dict[int, list[Any]] = {}
    token = None
    while True:
        page = tracker._call(
            lambda token=token: client.search_runs(
                [tracker.ensure_experiment()],
                filter_string=f"tags.optuna_study = '{study}'",
                max_results=1000,
                page_token=token,
            )
        )
        for run in page:
            number = run.data.tags.get("optuna_trial")
            if number is not None:
                runs.setdefault(int(number), []).append(run)
        token = page.token
        if not token:
            return runs


def _status_and_tags(trial: FrozenTrial) -> tuple[str, dict[str, Any]]:
    outcome = record.read_outcome(trial.user_attrs)
    if outcome is None:  # failed as lost by the heartbeat, or recorded before outcomes
        reason = str(trial.user_attrs.get("reason", ""))
        lost = trial.user_attrs.get("worker_lost")
        status = "KILLED" if lost else MLFLOW_STATUS[trial.state.name]
        return status, {"state": trial.state.name, "reason": reason}
    reason = str(trial.user_attrs.get("reason", describe(outcome)))
    return mlflow_status(outcome), outcome_tags(outcome, reason, dict(trial.user_attrs))


def _create_run(tracker: Tracker, sweep: Sweep, trial: FrozenTrial) -> str:
    attrs = trial.user_attrs
    params = trial.params or trial.system_attrs.get("fixed_params", {})
    resolved = resolve(sweep, params, int(attrs.get("repeat", 0)))
    # synced: made by `vtd-sweep sync`, not by the worker that ran the trial
    tags = trial_run_tags(
        trial.number, sweep.study_name, attrs, attrs.get("origin", ""), synced="true"
    )
    return tracker.start_trial_run(None, tags, trial_run_params(sweep, resolved))


def _log_missing_epochs(
    tracker: Tracker, run_id: str, epochs: list[Mapping[str, Any]], logged: set[int]
) -> int:
    count = 0
    for epoch_record in epochs:
        epoch = int(epoch_record["epoch"])
        if epoch in logged:
            continue
        tracker.log_epoch(run_id, epoch, epoch_metrics(epoch_record))
        count += 1
    return count


def _logged_steps(tracker: Tracker, run: Any) -> set[int]:
    if run is None or not run.data.metrics:
        return set()
    # Every epoch is one log_batch of all its metrics: one metric's history has every step.
    key = next(iter(run.data.metrics))
    history = tracker._call(lambda: tracker.client.get_metric_history(run.info.run_id, key))
    return {int(metric.step) for metric in history}


def sync_tracking(sweep: Sweep) -> SyncSummary:
    """Bring the study's MLflow runs up to date with its finished Optuna trials."""
    summary = SyncSummary()
    sweep_study = existing_study(sweep)
    if sweep_study is None:
        return summary
    try:
        trials = sweep_study.study.get_trials(deepcopy=False)
    finally:
        sweep_study.storage.remove_session()
    tracker = Tracker(sweep)
    runs = _runs_by_trial(tracker, sweep.study_name)
    finished = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    for trial in trials:
        if trial.state not in finished or "config_hash" not in trial.user_attrs:
            continue
        if isinstance(record.read_outcome(trial.user_attrs), record.DuplicateOf):
            continue
        mine = {run.info.run_id: run for run in runs.get(trial.number, [])}
        run_id = trial.user_attrs.get("mlflow_run_id")
        run = mine.get(run_id) if run_id else None
        if run is None and mine:
            run = next(iter(mine.values()))
        if run is None:
            run_id = _create_run(tracker, sweep, trial)
            summary.created.append(trial.number)
        else:
            run_id = run.info.run_id
        trial_dir = sweep.trials_dir / str(trial.number)
        logged = _log_missing_epochs(
            tracker, run_id, read_epochs(trial_dir), _logged_steps(tracker, run)
        )
        if logged:
            summary.epochs_logged[trial.number] = logged
        status, tags = _status_and_tags(trial)
        stale = run is None or run.info.status == _RUNNING
        stale = stale or run.data.tags.get("state") != trial.state.name
        if stale:
            artifacts = [(trial_dir / "trial.log", None), (trial_dir / "trial.json", None)]
            tracker.end_trial_run(run_id, status=status, tags=tags, artifacts=artifacts)
            summary.ended.append(trial.number)
            logger.info(
                "trial %d: MLflow run %s ended %s (%s)",
                trial.number,
                run_id,
                status,
                portable_path(trial_dir, sweep.folder),
            )
    return summary


def sync_or_say(sweep: Sweep, say: Callable[[str], None]) -> None:
    """What `run` and `report` do first: bring MLflow up to date, saying what changed; one
    that cannot says so and goes on (a tracker that is down must not stop the study; a run
    then fails with one line where it needs MLflow)."""
    try:
        summary = sync_tracking(sweep)
    except Exception as error:  # noqa: BLE001 - any tracker failure: the study goes on
        first = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        say(f"MLflow not synced: {first}")
        return
    if summary.changed:
        say(summary.words())
