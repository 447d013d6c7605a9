"""The worker loop: claim a trial, run it in its own process, report it; until none is left.

`run_worker` is what every worker runs, one per process, on one machine or many, against one
Optuna storage and one MLflow tracking store; it needs no other coordination (see
`vtd.sweep.store.study` for how trials are claimed exactly once). How a trial ends:

- COMPLETE: training ran all epochs (value: the objective's best or last epoch);
- PRUNED: the pruner stopped it; or it ran out of memory (CUDA, host, or over the per-trial
  cap); or an out-of-memory trial dominates it (not run); or it duplicates a finished
  configuration (not run, the original's state and value copied);
- FAILED: any other error, the trial process dying, or Ctrl-C (marked `interrupted`; the
  next `vtd-sweep run` queues it again); or the worker itself dying (its trial's heartbeat
  goes stale, and another process fails it and queues it again: `vtd.sweep.store.heartbeat`).
The reason is stored on the Optuna trial (user attribute `reason`) and on its MLflow run.

Before each claim a worker recovers lost trials; when the queue is empty but other workers
still run trials, it waits (one of them may die and its trial come back) and stops when none
is running.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from vtd.sweep.execute.child import TrainingRequest
from vtd.sweep.execute.runner import ProcessOutcome, TrialLauncher
from vtd.sweep.plan.config import Sweep
from vtd.sweep.plan.identity import portable_path
from vtd.sweep.plan.weights import WEIGHTS_FRESH
from vtd.sweep.store.heartbeat import TrialHeartbeat, recover_lost_trials, running_elsewhere
from vtd.sweep.store.study import (
    Claim,
    SweepStudy,
    claim_next,
    find_dominating_oom,
    find_original,
    open_sweep_study,
    queue_repeats,
    worker_name,
)
from vtd.sweep.store.tracking import SPLIT_PREFIXES, Tracker, epoch_metrics, flatten

logger = logging.getLogger(__name__)

MLFLOW_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}
LOG_TAIL_LINES = 40
WAIT_POLL_S = 5.0
_TEXT_LIMIT = 4000


@dataclass(frozen=True)
class TrialStarted:
    number: int
    cell: str
    seed: int
    epochs: int


@dataclass(frozen=True)
class EpochEnded:
    number: int
    epoch: int
    epochs: int
    metrics: dict[str, float]
    objective: float | None


@dataclass(frozen=True)
class TrialEnded:
    number: int
    cell: str
    seed: int
    state: str  # COMPLETE | PRUNED | FAIL (Optuna's names)
    value: float | None
    reason: str
    seconds: float
    ran: bool
    interrupted: bool = False


Event = TrialStarted | EpochEnded | TrialEnded
EventSink = Callable[[Event], None]


def _ignore(_event: Event) -> None:
    return None


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    if not path.is_file():
        return ""
    text = "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    return text[-_TEXT_LIMIT:]


def objective_value(record: dict[str, Any], split: str, metric: str) -> float | None:
    values = record.get(split)
    if not values or values.get(metric) is None:
        return None
    value = float(values[metric])
    return value if math.isfinite(value) else None


@dataclass
class _Verdict:
    state: TrialState
    reason: str
    value: float | None = None
    attrs: dict[str, Any] = field(default_factory=dict)


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
        self.started = time.perf_counter()

    # --- the steps ------------------------------------------------------------------------
    def execute(self) -> TrialEnded:
        original = find_original(self.study, self.trial.number, self.resolved.identity.config_hash)
        if original is not None:
            return self._finish(self._duplicate(original), ran=False)
        if self.claim.origin == "sampled" and self.sweep.file.repeats > 1:
            queue_repeats(self.sweep_study, self.claim)
        self._start_run()
        if self.sweep.file.prune_dominated:
            dominating = find_dominating_oom(self.study, self.resolved)
            if dominating is not None:
                return self._finish(self._dominated(dominating), ran=False)
        try:
            outcome = self._train()
            verdict = self._judge(outcome)
        except KeyboardInterrupt:
            self._finish(
                _Verdict(
                    TrialState.FAIL,
                    "interrupted: queued again by the next run",
                    attrs={"interrupted": True},
                ),
                ran=True,
            )
            raise
        except BaseException as error:
            # Our own bookkeeping broke (storage, tracking): never leave the trial RUNNING.
            self._finish(
                _Verdict(TrialState.FAIL, f"worker error: {type(error).__name__}: {error}"),
                ran=True,
            )
            raise
        return self._finish(verdict, ran=True, outcome=outcome)

    def _weights_label(self) -> str:
        label = self.resolved.params.get("initial_weights", self.sweep.base_weights)
        return WEIGHTS_FRESH if label is None else str(label)

    def _settings(self) -> dict[str, Any]:
        settings = flatten(self.resolved.config.model_dump(mode="json", exclude={"output_dir"}))
        settings["initial_weights"] = self._weights_label()
        return settings

    def _start_run(self) -> None:
        attrs = self.resolved.user_attrs()
        tags = {
            "optuna_trial": self.trial.number,
            "optuna_study": self.sweep.study_name,
            "state": "RUNNING",
            **{key: attrs[key] for key in ("config_hash", "cell_hash", "cell", "seed", "repeat")},
            "origin": self.claim.origin,
            "objective": f"{self.sweep.file.objective.split} {self.sweep.file.objective.metric}",
            "worker": worker_name(),
        }
        lost_run_id = self.trial.user_attrs.get("retry_of_run")
        if lost_run_id is not None:  # a retry of a trial whose worker died: linked both ways
            tags["retry_of"] = lost_run_id
            tags["retry_of_trial"] = self.trial.user_attrs["retry_of"][-1]
        # The data section is one JSON param; every other setting its own param.
        params = {
            key: value for key, value in self._settings().items() if not key.startswith("data.")
        }
        params["data"] = self.resolved.config.data.model_dump(mode="json")
        self.run_id = self.tracker.start_trial_run(self.parent_run_id, tags, params)
        self.trial.set_user_attr("mlflow_run_id", self.run_id)
        self.trial.set_user_attr("trial_dir", portable_path(self.trial_dir, self.sweep.folder))
        if lost_run_id is not None:
            # Closed by whoever failed the lost trial, unless that process died too.
            self.tracker.close_lost_run(
                lost_run_id, {"state": "FAIL", "reason": "failed: worker lost"}
            )
            self.tracker.link_retry(lost_run_id, self.run_id, self.trial.number)

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
        settings = self._settings()
        faults = tuple(fault for fault in self.sweep.file.faults if fault.matches(settings))
        request = TrainingRequest(
            config=config,
            log_path=self.trial_dir / "trial.log",
            faults=faults,
            memory_cap_mb=self.sweep.file.memory_cap_mb,
            torch_threads=self.torch_threads,
        )
        self.events(
            TrialStarted(self.trial.number, self.resolved.cell, self.resolved.seed, config.epochs)
        )
        # The heartbeat's halt: Ctrl-C, or the trial found stale and taken over elsewhere.
        return self.launcher.run(request, self._on_epoch, stop=self.heartbeat.halt)

    def _on_epoch(self, record: dict[str, Any]) -> bool:
        epoch = int(record["epoch"])
        metrics = epoch_metrics(record)
        assert self.run_id is not None
        self.tracker.log_epoch(self.run_id, epoch, metrics)
        objective = self.sweep.file.objective
        value = objective_value(record, objective.split, objective.metric)
        prune = False
        if value is not None:
            self.trial.report(value, step=epoch)
            prune = self.sweep.file.pruner.name != "none" and self.trial.should_prune()
        self.events(
            EpochEnded(self.trial.number, epoch, self.resolved.config.epochs, metrics, value)
        )
        return prune

    # --- verdicts -------------------------------------------------------------------------
    def _where(self) -> str:
        return f"batch {self.resolved.batch_size}, chunk {self.resolved.chunk_size}"

    def _judge(self, outcome: ProcessOutcome) -> _Verdict:
        attrs: dict[str, Any] = {"peak_host_mb": round(outcome.peak_rss_mb, 1)}
        if outcome.result and "train_seconds" in outcome.result:
            attrs["train_seconds"] = round(float(outcome.result["train_seconds"]), 3)
        if outcome.status == "completed":
            return self._completed(outcome, attrs)
        if outcome.out_of_memory:
            attrs["out_of_memory"] = True
            attrs["memory_cap_mb"] = self.sweep.file.memory_cap_mb
            if outcome.status == "memory_cap":
                reason = (
                    f"out-of-memory (host): {outcome.peak_rss_mb:.0f} MB over the "
                    f"{self.sweep.file.memory_cap_mb} MB cap at {self._where()}"
                )
            else:
                assert outcome.error is not None
                where = "CUDA" if outcome.status == "cuda_oom" else "host"
                first_line = outcome.error["message"].strip().splitlines()[0][:300]
                reason = f"out-of-memory ({where}) at {self._where()}: {first_line}"
                for key in ("peak_device_mb", "device_total_mb"):
                    if key in outcome.error:
                        attrs[key] = round(float(outcome.error[key]), 1)
            return _Verdict(TrialState.PRUNED, reason, attrs=attrs)
        attrs["log_tail"] = log_tail(self.trial_dir / "trial.log")
        if outcome.status == "interrupted":
            attrs["interrupted"] = True
            return _Verdict(
                TrialState.FAIL, "interrupted: queued again by the next run", attrs=attrs
            )
        if outcome.status == "error":
            assert outcome.error is not None
            attrs["error_type"] = outcome.error["type"]
            attrs["error_message"] = outcome.error["message"][:_TEXT_LIMIT]
            first_line = (outcome.error["message"].strip().splitlines() or [""])[0][:300]
            return _Verdict(TrialState.FAIL, f"{outcome.error['type']}: {first_line}", attrs=attrs)
        attrs["exit_code"] = outcome.exit_code
        if outcome.signal_name is not None:
            attrs["signal"] = outcome.signal_name
            reason = f"trial process killed by {outcome.signal_name}"
        else:
            reason = f"trial process exited with code {outcome.exit_code} without a result"
        return _Verdict(TrialState.FAIL, reason, attrs=attrs)

    def _completed(self, outcome: ProcessOutcome, attrs: dict[str, Any]) -> _Verdict:
        objective = self.sweep.file.objective
        # The objective per epoch, as reported to Optuna while the trial ran.
        series = [
            (int(record["epoch"]), value)
            for record in outcome.records
            if (value := objective_value(record, objective.split, objective.metric)) is not None
        ]
        if not series:
            return _Verdict(
                TrialState.FAIL,
                f"no {objective.split} {objective.metric} in any epoch",
                attrs=attrs,
            )
        if objective.reduce == "last":
            best_epoch, value = series[-1]
        else:
            pick = max if objective.resolved_direction == "maximize" else min
            best_epoch, value = pick(series, key=lambda item: item[1])
        attrs["best_epoch"] = best_epoch
        if outcome.stopped_by_worker:  # the pruner said stop: training ended after that epoch
            name = self.sweep.file.pruner.name.replace("_", " ")
            pruned_at = int(outcome.records[-1]["epoch"])
            attrs["pruned_at_epoch"] = pruned_at
            return _Verdict(
                TrialState.PRUNED,
                f"stopped by the {name} pruner at epoch {pruned_at}",
                value,
                attrs,
            )
        return _Verdict(TrialState.COMPLETE, "", value, attrs)

    def _duplicate(self, original: FrozenTrial) -> _Verdict:
        attrs = {"duplicate_of": original.number}
        if original.state == TrialState.COMPLETE:
            return _Verdict(
                TrialState.COMPLETE,
                f"same configuration and seed as trial {original.number}: its value, not run again",
                original.value,
                attrs,
            )
        if original.state == TrialState.PRUNED:
            reason = original.user_attrs.get("reason", "pruned")
            return _Verdict(
                TrialState.PRUNED,
                f"as trial {original.number}, not run again: {reason}",
                attrs=attrs,
            )
        return _Verdict(
            TrialState.PRUNED,
            f"same configuration and seed as trial {original.number}, not finished yet: not run",
            attrs=attrs,
        )

    def _dominated(self, oom: FrozenTrial) -> _Verdict:
        batch, chunk = oom.user_attrs.get("batch_size"), oom.user_attrs.get("chunk_size")
        return _Verdict(
            TrialState.PRUNED,
            f"dominated by out-of-memory at batch {batch}, chunk {chunk}",
            attrs={"dominated_by": oom.number, "oom_dominated": True},
        )

    # --- the end --------------------------------------------------------------------------
    def _summary_attrs(self, outcome: ProcessOutcome | None) -> dict[str, Any]:
        attrs: dict[str, Any] = {}
        if outcome is None or not outcome.records:
            return attrs
        attrs["epochs_done"] = len(outcome.records)
        for split, prefix in SPLIT_PREFIXES.items():
            for metric, pick in (("auc", max), ("dist", min), ("ap", max)):
                values = [objective_value(record, split, metric) for record in outcome.records]
                finite = [value for value in values if value is not None]
                if finite:
                    attrs[f"best_{prefix}_{metric}"] = pick(finite)
                    attrs[f"last_{prefix}_{metric}"] = finite[-1]
        return attrs

    def _artifacts(self, outcome: ProcessOutcome | None) -> list[tuple[Path, str | None]]:
        artifacts: list[tuple[Path, str | None]] = [
            (self.trial_dir / "trial.log", None),
            (self.trial_dir / "trial.json", None),
        ]
        best = (outcome.result or {}).get("best_checkpoint") if outcome is not None else None
        if best:
            artifacts += [
                (Path(best), "checkpoints"),
                (Path(best).with_suffix(".json"), "checkpoints"),
            ]
        return artifacts

    def _finish(
        self, verdict: _Verdict, *, ran: bool, outcome: ProcessOutcome | None = None
    ) -> TrialEnded:
        seconds = time.perf_counter() - self.started
        if self.heartbeat.lost:
            verdict = _Verdict(
                TrialState.FAIL,
                "lost: another process found its heartbeat stale and queued it again",
                attrs={"interrupted": True},
            )
        state_word = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed"}[
            verdict.state.name
        ]
        reason = f"{state_word}: {verdict.reason}" if verdict.reason else ""
        attrs = {
            **self._summary_attrs(outcome),
            **verdict.attrs,
            "reason": reason,
            "duration_s": round(seconds, 2),
        }
        if self.run_id is not None:
            tags = {"state": verdict.state.name, "reason": reason}
            tags.update({key: value for key, value in attrs.items() if key.startswith("best_")})
            self.tracker.end_trial_run(
                self.run_id,
                status="KILLED" if attrs.get("interrupted") else MLFLOW_STATUS[verdict.state.name],
                tags=tags,
                artifacts=self._artifacts(outcome) if ran else (),
            )
        try:
            for key, value in attrs.items():
                self.trial.set_user_attr(key, value)
            if verdict.state == TrialState.COMPLETE:
                self.study.tell(self.trial, verdict.value)
            else:
                self.study.tell(self.trial, state=verdict.state)
        except UpdateFinishedTrialError:
            # Found stale a moment ago: its retry is queued; what ran here stays in MLflow.
            logger.warning(
                "trial %d was failed by a stale-trial sweep; not recorded", self.trial.number
            )
        logger.info("trial %d %s", self.trial.number, reason or "complete")
        ended = TrialEnded(
            number=self.trial.number,
            cell=self.resolved.cell,
            seed=self.resolved.seed,
            state=verdict.state.name,
            value=verdict.value if verdict.state == TrialState.COMPLETE else None,
            reason=reason,
            seconds=seconds,
            ran=ran,
            interrupted=bool(attrs.get("interrupted")),
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
    events = events or _ignore
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
