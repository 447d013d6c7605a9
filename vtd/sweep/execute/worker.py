"""The worker loop: claim a trial, run it in its own process, report it; until none is left.

`run_worker` is what every worker runs, one per process, on one machine or many, against one
Optuna storage and one MLflow tracking store; it needs no other coordination (see
`vtd.sweep.store.study` for how trials are claimed exactly once). How a trial ended is one
typed outcome (`vtd.sweep.store.outcome`: decided from what the trial process reported, or
without training for a copy or a dominated trial); a worker that dies leaves a stale trial
that another process fails and queues again (`vtd.sweep.store.heartbeat`). It reaches Optuna
first, then MLflow (a failing tracker is warned about once and skipped; `vtd-sweep sync`
catches up from Optuna and each trial's `epochs.jsonl`). A copy of a configuration another
worker is running waits for its outcome.

Before each claim a worker recovers lost trials; when the queue is empty but other workers
still run trials, it waits (one of them may die and its trial come back) and stops when none
is running.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from vtd.sweep.execute.child import TrainingRequest
from vtd.sweep.execute.events import EpochEnded, EventSink, TrialEnded, TrialStarted, ignore
from vtd.sweep.execute.oom_evidence import evidence_sources
from vtd.sweep.execute.runner import ProcessOutcome, TrialLauncher
from vtd.sweep.plan.config import Sweep
from vtd.sweep.plan.faults import FaultConfig
from vtd.sweep.plan.identity import portable_path
from vtd.sweep.store import record
from vtd.sweep.store.heartbeat import TrialHeartbeat, recover_lost_trials, running_elsewhere
from vtd.sweep.store.outcome import (
    TrialFacts,
    decide_outcome,
    dominated_outcome,
    duplicate_outcome,
    log_tail,
    mlflow_status,
    objective_value,
    outcome_tags,
    run_artifacts,
    selected_metrics,
    summary_attrs,
)
from vtd.sweep.store.queue import find_dominating_oom, queue_repeats, wait_for_original
from vtd.sweep.store.record import DuplicateOf, Failed, Interrupted, Lost, Outcome
from vtd.sweep.store.study import Claim, SweepStudy, claim_next, open_sweep_study, worker_name
from vtd.sweep.store.tracking import (
    Tracker,
    append_epoch,
    epoch_metrics,
    trial_run_params,
    trial_run_tags,
    trial_settings,
)
from vtd.sweep.store.words import describe

logger = logging.getLogger(__name__)

WAIT_POLL_S = 5.0
T = TypeVar("T")


class TrialExecution:
    """One claimed trial, from its checks to its last report."""

    def __init__(
        self,
        sweep_study: SweepStudy,
        claim: Claim,
        tracker: Tracker,
        launcher: TrialLauncher,
        *,
        parent_run_id: str | None,
        events: EventSink,
        torch_threads: int | None,
        heartbeat: TrialHeartbeat,
    ) -> None:
        self.sweep: Sweep = sweep_study.sweep
        self.study = sweep_study.study
        self.sweep_study = sweep_study
        self.claim = claim
        self.trial = claim.trial
        self.resolved = claim.resolved
        self.tracker = tracker
        self.launcher = launcher
        self.parent_run_id = parent_run_id
        self.events = events
        self.torch_threads = torch_threads
        self.heartbeat = heartbeat
        self.trial_dir = self.sweep.trials_dir / str(self.trial.number)
        self.run_id: str | None = None
        self.tracking_ok = True
        self.started = time.perf_counter()

    # --- the steps ------------------------------------------------------------------------
    def execute(self) -> TrialEnded:
        original = self._original()
        if original is not None:
            return self._finish(duplicate_outcome(original), ran=False)
        if self.claim.origin == "sampled" and self.sweep.file.repeats > 1:
            queue_repeats(self.sweep_study, self.claim)
        self._start_run()
        if self.sweep.file.prune_dominated:
            dominating = find_dominating_oom(self.study, self.resolved)
            if dominating is not None:
                return self._finish(dominated_outcome(dominating), ran=False)
        try:
            reported = self._train()
            outcome, value = decide_outcome(reported, self._facts())
        except KeyboardInterrupt:
            self._finish(Interrupted(), ran=True)
            raise
        except BaseException as error:
            # Our own bookkeeping broke (storage, tracking): never leave the trial RUNNING.
            self._finish(
                Failed(error_type=f"worker error: {type(error).__name__}", message=str(error)),
                ran=True,
            )
            raise
        return self._finish(outcome, ran=True, reported=reported, value=value)

    def _original(self) -> FrozenTrial | None:
        """A trial that makes this one unnecessary; a running one is waited for (a
        configuration is never lost to a copy of a trial that then fails)."""
        return wait_for_original(
            self.study,
            self.trial.number,
            self.resolved.identity.config_hash,
            self.heartbeat.halt,
            min(WAIT_POLL_S, self.sweep.file.heartbeat.interval_s),
        )

    def _facts(self) -> TrialFacts:
        return TrialFacts(
            batch_size=self.resolved.batch_size,
            chunk_size=self.resolved.chunk_size,
            memory_cap_mb=self.sweep.file.memory_cap_mb,
            pruner=self.sweep.file.pruner.name,
            objective=self.sweep.file.objective,
            faults=self._faults(),
            log_tail=log_tail(self.trial_dir / "trial.log"),
        )

    def _faults(self) -> tuple[FaultConfig, ...]:
        settings = trial_settings(self.sweep, self.resolved)
        return tuple(fault for fault in self.sweep.file.faults if fault.matches(settings))

    def _tracked(self, what: str, call: Callable[[], T]) -> T | None:
        """An MLflow call that may fail without stopping the study: the first failure is
        warned about (once per worker), the trial's later calls are skipped, and
        `vtd-sweep sync` brings MLflow up to date from Optuna and the trial folder."""
        if not self.tracking_ok:
            return None
        try:
            return call()
        except Exception as error:  # noqa: BLE001 - any tracker failure: the study goes on
            self.tracking_ok = False
            if not self.tracker.offline_warned:
                self.tracker.offline_warned = True
                logger.warning(
                    "MLflow failed (%s: %s: %s); the study goes on, and `vtd-sweep sync %s` "
                    "brings MLflow up to date",
                    what,
                    type(error).__name__,
                    str(error).splitlines()[0][:200] if str(error) else "",
                    self.sweep.path.name,
                )
            return None

    def _start_run(self) -> None:
        objective = self.sweep.file.objective
        tags = trial_run_tags(
            self.trial.number,
            self.sweep.study_name,
            self.resolved.user_attrs(),
            self.claim.origin,
            objective=f"{objective.split} {objective.metric}",
            worker=worker_name(),
        )
        lost_run_id = self.trial.user_attrs.get("retry_of_run")
        if lost_run_id is not None:  # a retry of a trial whose worker died: linked both ways
            tags["retry_of"] = lost_run_id
            tags["retry_of_trial"] = self.trial.user_attrs["retry_of"][-1]
        params = trial_run_params(self.sweep, self.resolved)
        self.trial.set_user_attr("trial_dir", portable_path(self.trial_dir, self.sweep.folder))
        self.run_id = self._tracked(
            "starting the trial's run",
            lambda: self.tracker.start_trial_run(self.parent_run_id, tags, params),
        )
        if self.run_id is None:
            return
        run_id = self.run_id
        self.trial.set_user_attr("mlflow_run_id", run_id)
        if lost_run_id is not None:
            # Closed by whoever failed the lost trial, unless that process died too.
            self._tracked(
                "closing a lost trial's run",
                lambda: self.tracker.close_lost_run(
                    lost_run_id, {"state": "FAIL", "reason": "failed: worker lost"}
                ),
            )
            self._tracked(
                "linking a retry",
                lambda: self.tracker.link_retry(lost_run_id, run_id, self.trial.number),
            )

    def _train(self) -> ProcessOutcome:
        config = self.resolved.config.model_copy(update={"output_dir": self.trial_dir})
        self.trial_dir.mkdir(parents=True, exist_ok=True)
        description = {
            "trial": self.trial.number,
            "params": self.resolved.params,
            **self.resolved.user_attrs(),
            "config": config.model_dump(mode="json"),
        }
        (self.trial_dir / "trial.json").write_text(json.dumps(description, indent=2, default=str))
        request = TrainingRequest(
            config=config,
            log_path=self.trial_dir / "trial.log",
            faults=self._faults(),
            memory_cap_mb=self.sweep.file.memory_cap_mb,
            torch_threads=self.torch_threads,
        )
        self.events(
            TrialStarted(self.trial.number, self.resolved.cell, self.resolved.seed, config.epochs)
        )
        # The heartbeat's halt: Ctrl-C, or the trial found stale and taken over elsewhere.
        return self.launcher.run(
            request,
            self._on_epoch,
            stop=self.heartbeat.halt,
            evidence=evidence_sources(self.sweep),
        )

    def _on_epoch(self, record: dict[str, Any]) -> bool:
        epoch = int(record["epoch"])
        metrics = epoch_metrics(record)
        # Kept beside the trial first: `vtd-sweep sync` fills MLflow from it if MLflow fails.
        append_epoch(self.trial_dir, record)
        run_id = self.run_id
        if run_id is not None:
            self._tracked(
                f"logging epoch {epoch}", lambda: self.tracker.log_epoch(run_id, epoch, metrics)
            )
        objective = self.sweep.file.objective
        # Epoch 0 (the initial weights, not trained) is logged but never the objective: the
        # pruner and the best / last epoch see training epochs only.
        value = objective_value(record, objective.split, objective.metric) if epoch else None
        prune = False
        if value is not None:
            self.trial.report(value, step=epoch)
            prune = self.sweep.file.pruner.name != "none" and self.trial.should_prune()
        self.events(
            EpochEnded(self.trial.number, epoch, self.resolved.config.epochs, metrics, value)
        )
        return prune

    # --- the end --------------------------------------------------------------------------
    def _finish(
        self,
        outcome: Outcome,
        *,
        ran: bool,
        reported: ProcessOutcome | None = None,
        value: float | None = None,
    ) -> TrialEnded:
        seconds = time.perf_counter() - self.started
        # No beat from here on: one that read the state this worker is about to write would
        # take the trial for another process's and call it lost.
        self.heartbeat.finish()
        if self.heartbeat.lost:
            outcome = Lost(str(self.trial.user_attrs.get("worker", worker_name())))
        state = record.state_of(outcome)
        if isinstance(outcome, DuplicateOf) and state == "COMPLETE":
            original = self.study.trials[outcome.trial]  # its value, not run again
            value = original.value
        reason = describe(outcome)
        attrs = {
            **summary_attrs(reported),
            **record.outcome_attrs(outcome, reason),
            "duration_s": round(seconds, 2),
        }
        if reported is not None and "best_epoch" in attrs:
            attrs.update(selected_metrics(reported.records, attrs["best_epoch"]))
        if reported is not None:
            attrs["peak_host_mb"] = round(reported.peak_rss_mb, 1)
            if reported.result and "train_seconds" in reported.result:
                attrs["train_seconds"] = round(float(reported.result["train_seconds"]), 3)
        # Optuna first: a tracker that fails below never loses a finished trial.
        try:
            for key, attr in attrs.items():
                self.trial.set_user_attr(key, attr)
            if state == "COMPLETE":
                self.study.tell(self.trial, value)
            else:
                self.study.tell(self.trial, state=TrialState[state])
        except UpdateFinishedTrialError:
            # Found stale a moment ago: its retry is queued; what ran here stays in MLflow.
            logger.warning(
                "trial %d was failed by a stale-trial sweep; not recorded", self.trial.number
            )
        if self.run_id is not None:
            run_id = self.run_id
            self._tracked(
                "ending the trial's run",
                lambda: self.tracker.end_trial_run(
                    run_id,
                    status=mlflow_status(outcome),
                    tags=outcome_tags(outcome, reason, attrs),
                    artifacts=run_artifacts(self.trial_dir, reported) if ran else (),
                ),
            )
        logger.info("trial %d %s", self.trial.number, reason or "complete")
        ended = TrialEnded(
            number=self.trial.number,
            cell=self.resolved.cell,
            seed=self.resolved.seed,
            state=state,
            value=value if state == "COMPLETE" else None,
            reason=reason,
            seconds=seconds,
            ran=ran,
            interrupted=isinstance(outcome, Interrupted | Lost),
        )
        self.events(ended)
        return ended


def run_worker(
    sweep: Sweep,
    *,
    parent_run_id: str | None = None,
    events: EventSink | None = None,
    stop: threading.Event | None = None,
    torch_threads: int | None = None,
    launcher: TrialLauncher | None = None,
) -> list[TrialEnded]:
    """Run trials of the sweep's study until none is left (or `stop` is set).

    The study must exist (`vtd-sweep run` creates it and queues its trials before starting
    workers). Safe to run in several processes and on several machines at once.
    """
    stop = stop or threading.Event()
    events = events or ignore
    launcher = launcher or TrialLauncher()
    launcher.warm_up()
    sweep_study = open_sweep_study(sweep, create=False)
    tracker = Tracker(sweep)
    ended: list[TrialEnded] = []
    waiting = False
    try:
        while not stop.is_set():
            recover_lost_trials(sweep_study, tracker)
            claim = claim_next(sweep_study)
            if claim is None:
                others = running_elsewhere(sweep_study)
                if not others:
                    break
                if not waiting:
                    logger.info(
                        "queue empty; waiting for %d trial(s) of other workers (a dead "
                        "worker's trial is queued again after %d s)",
                        others,
                        sweep.file.heartbeat.grace_s,
                    )
                waiting = True
                stop.wait(min(WAIT_POLL_S, sweep.file.heartbeat.interval_s))
                continue
            waiting = False
            with TrialHeartbeat(
                sweep_study.storage, claim.trial_id, claim.trial.number, stop
            ) as heartbeat:
                execution = TrialExecution(
                    sweep_study,
                    claim,
                    tracker,
                    launcher,
                    parent_run_id=parent_run_id,
                    events=events,
                    torch_threads=torch_threads,
                    heartbeat=heartbeat,
                )
                ended.append(execution.execute())
    finally:
        sweep_study.storage.remove_session()
    return ended
