"""Surviving killed workers: a heartbeat on every running trial, and recovering lost trials.

Optuna's own heartbeat thread runs only inside `Study.optimize`; our workers claim queued
trials themselves, so each running trial gets a `TrialHeartbeat` here: a thread that records
the trial's heartbeat in the storage every `interval_s` (the first one before the claim, see
`vtd.sweep.store.study`). A worker killed with SIGKILL stops beating; once its trial's heartbeat is
older than the grace period, the next process that calls `recover_lost_trials` (`vtd-sweep
run`, `worker` before each claim and while it waits, `status`) marks it FAILED and queues it
again with the same parameters (`vtd.sweep.store.storage.RequeueStaleTrial`), records why on the
trial (`reason`, `worker_lost`) and ends its MLflow run as KILLED. The retry's run is linked
to it when it starts (`retry_of` / `retried_by` tags).

A worker on this machine needs no grace period: each claimed trial records its worker as
`host:pid`, and when the host is this one and that process is gone (or the pid now belongs to
a process started after the trial), the trial is lost at once (`dead_here`).

A worker that is alive but whose trial was found stale all the same (its storage unreachable
for longer than the grace period) notices it at its next heartbeat, stops the trial and
leaves the trial and its runs to the retry.
"""

from __future__ import annotations

import logging
import platform
import threading
import time
import warnings
from types import TracebackType
from typing import TYPE_CHECKING

import optuna
import psutil
from optuna.trial import FrozenTrial, TrialState

from vtd.sweep.store.storage import RequeueStaleTrial
from vtd.sweep.store.study import SweepStudy

if TYPE_CHECKING:  # imports mlflow: only when a lost trial has a run to close
    from vtd.sweep.store.tracking import Tracker

logger = logging.getLogger(__name__)

_TICK_S = 0.2


class TrialHeartbeat:
    """Beats for one running trial while the `with` block runs.

    `halt` is the trial's stop signal: set when the worker's `stop` is set (Ctrl-C) or when
    the trial is no longer this worker's (`lost`)."""

    def __init__(
        self,
        storage: optuna.storages.RDBStorage,
        trial_id: int,
        number: int,
        stop: threading.Event,
    ) -> None:
        self.storage = storage
        self.trial_id = trial_id
        self.number = number
        self.stop = stop
        self.interval_s = storage.get_heartbeat_interval()
        self.halt = threading.Event()
        self.lost = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{number}", daemon=True)

    def __enter__(self) -> TrialHeartbeat:
        self._thread.start()
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _error: BaseException | None,
        _trace: TracebackType | None,
    ) -> None:
        self.finish()

    def finish(self) -> None:
        """Stop beating (the trial is about to end here); `lost` and `halt` stay as they are."""
        self._done.set()
        if self._thread.is_alive():
            self._thread.join()

    def _beat(self) -> None:
        try:
            self.storage.record_heartbeat(self.trial_id)
            state = self.storage.get_trial(self.trial_id).state
        except Exception as error:  # noqa: BLE001 - a missed beat is retried; the grace covers it
            logger.warning("trial %d: heartbeat not recorded: %s", self.number, error)
            return
        if state != TrialState.RUNNING and not self._done.is_set():
            logger.warning(
                "trial %d is %s in the storage: another process found its heartbeat stale "
                "and queued it again; stopping it here",
                self.number,
                state.name,
            )
            self.lost = True
            self.halt.set()

    def _run(self) -> None:
        next_beat = 0.0
        while not self._done.is_set():
            if self.stop.is_set():
                self.halt.set()
            if self.interval_s is not None and time.monotonic() >= next_beat:
                self._beat()
                next_beat = time.monotonic() + self.interval_s
            self._done.wait(_TICK_S)


def _grace_s(storage: optuna.storages.RDBStorage) -> int | None:
    interval = storage.get_heartbeat_interval()
    if interval is None:
        return None
    return storage.grace_period or 2 * interval


def _stale_trial_ids(sweep_study: SweepStudy) -> list[int] | None:
    # What `optuna.storages.fail_stale_trials` asks the storage; asked here too, so that the
    # reason is written while the trial is still RUNNING (a finished trial is read-only).
    query = getattr(sweep_study.storage, "_get_stale_trial_ids", None)
    return None if query is None else list(query(sweep_study.study_id))


def _process_gone(pid: int, since: float | None) -> bool:
    """Whether process `pid` has ended; a pid reused by a process younger than `since`
    (a POSIX time) counts as ended."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return True
        return since is not None and process.create_time() > since + 1.0
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:  # not ours to inspect (another user): it exists
        return False


def dead_here(trial: FrozenTrial) -> bool:
    """A running trial whose worker (`host:pid`) ran on this machine and is gone now."""
    host, _, pid = str(trial.user_attrs.get("worker", "")).rpartition(":")
    if host != platform.node() or not pid.isdigit():
        return False
    started = trial.datetime_start.timestamp() if trial.datetime_start is not None else None
    return _process_gone(int(pid), started)


def _dead_here_trial_ids(sweep_study: SweepStudy) -> list[int]:
    trials = sweep_study.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    trial_id = sweep_study.storage.get_trial_id_from_study_id_trial_number
    return [trial_id(sweep_study.study_id, trial.number) for trial in trials if dead_here(trial)]


def recover_lost_trials(sweep_study: SweepStudy, tracker: Tracker | None = None) -> list[int]:
    """FAIL and queue again every running trial whose heartbeat is stale, with the reason on
    the trial; close their MLflow runs as KILLED. Returns the numbers of the trials failed
    here. Safe in any number of processes at once: each stale trial is failed (and queued
    again) by exactly one of them. A trial whose worker ran on this machine and is gone is
    lost at once, without waiting for its heartbeat to go stale."""
    storage, study = sweep_study.storage, sweep_study.study
    grace = _grace_s(storage)
    if grace is None:
        return []
    stale = _stale_trial_ids(sweep_study)
    if stale is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        return []
    requeue = storage.get_heartbeat_stale_trial_callback()
    gone_here = [
        trial_id for trial_id in _dead_here_trial_ids(sweep_study) if trial_id not in stale
    ]
    failed: list[FrozenTrial] = []
    for trial_id in [*stale, *gone_here]:
        try:
            trial = storage.get_trial(trial_id)
            worker = trial.user_attrs.get("worker", "(unknown)")
            why = (
                "its process is gone"
                if trial_id in gone_here
                else f"no heartbeat for over {grace} s"
            )
            again = (
                "queued again with the same parameters"
                if not isinstance(requeue, RequeueStaleTrial) or requeue.will_retry(trial)
                else "retried too often: not queued again"
            )
            reason = f"failed: worker {worker} lost ({why}); {again}"
            storage.set_trial_user_attr(trial_id, "worker_lost", True)
            storage.set_trial_user_attr(trial_id, "reason", reason)
            if storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
                failed.append(storage.get_trial(trial_id))
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another process failed it first, or its worker finished it after all
    for trial in failed:
        if requeue is not None:
            requeue(study, trial)  # RequeueStaleTrial queues a copy; `trial` is left as it is
        logger.warning("trial %d %s", trial.number, trial.user_attrs["reason"])
        run_id = trial.user_attrs.get("mlflow_run_id")
        if run_id is not None:
            from vtd.sweep.store.tracking import Tracker

            tracker = tracker or Tracker(sweep_study.sweep)
            tracker.close_lost_run(run_id, {"state": "FAIL", "reason": trial.user_attrs["reason"]})
    return [trial.number for trial in failed]


def running_elsewhere(sweep_study: SweepStudy) -> int:
    """Trials other workers are running now (claimed by a worker that beats for them)."""
    trials = sweep_study.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    return sum(1 for trial in trials if "worker" in trial.user_attrs)
