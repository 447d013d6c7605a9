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
How a trial ended is one typed outcome (`vtd.sweep.store.record`), decided by `decide_outcome` from
what the trial process reported; it reaches Optuna first, then MLflow (a failing tracker is
warned about once and skipped; `vtd-sweep sync` catches up, from Optuna and each trial's
`epochs.jsonl`). A copy of a configuration another worker is running waits for its outcome.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from vtd.evaluate.names import SPLIT_PREFIXES
from vtd.sweep.execute.child import TrainingRequest
from vtd.sweep.execute.oom_evidence import EvidenceSources
from vtd.sweep.execute.runner import ProcessOutcome, TrialLauncher
from vtd.sweep.plan.config import Sweep
from vtd.sweep.plan.faults import FaultConfig
from vtd.sweep.plan.identity import portable_path
from vtd.sweep.plan.sections import ObjectiveConfig
from vtd.sweep.plan.weights import WEIGHTS_FRESH
from vtd.sweep.store import record
from vtd.sweep.store.heartbeat import TrialHeartbeat, recover_lost_trials, running_elsewhere
from vtd.sweep.store.record import (
    Complete,
    Device,
    DuplicateOf,
    Failed,
    Interrupted,
    Lost,
    Outcome,
    OutOfMemory,
    StoppedByPruner,
)
from vtd.sweep.store.study import (
    Claim,
    ResolvedTrial,
    SweepStudy,
    claim_next,
    find_dominating_oom,
    open_sweep_study,
    queue_repeats,
    wait_for_original,
    worker_name,
)
from vtd.sweep.store.tracking import Tracker, epoch_metrics, flatten

logger = logging.getLogger(__name__)

MLFLOW_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}
LOG_TAIL_LINES = 40
WAIT_POLL_S = 5.0
_TEXT_LIMIT = 4000
_MB = 2**20
EPOCHS_FILE = "epochs.jsonl"
T = TypeVar("T")


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


def trained_epochs(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records of training epochs (1..N), without epoch 0 (the initial weights)."""
    return [record for record in records if int(record["epoch"]) > 0]


def selected_metrics(records: list[dict[str, Any]], epoch: int) -> dict[str, float]:
    """Every split's metrics at the epoch the objective selected (`selected_<split>_<metric>`):
    what `status` shows, by the definition the report uses (test read at that epoch)."""
    attrs: dict[str, float] = {}
    for item in records:
        if int(item["epoch"]) != epoch:
            continue
        for split, prefix in SPLIT_PREFIXES.items():
            for metric in ("auc", "dist", "ap"):
                value = objective_value(item, split, metric)
                if value is not None:
                    attrs[f"selected_{prefix}_{metric}"] = value
    return attrs


@dataclass(frozen=True)
class TrialFacts:
    """What a worker knows of a trial besides what its process reported."""

    batch_size: int
    chunk_size: int
    memory_cap_mb: int | None
    pruner: str
    objective: ObjectiveConfig
    faults: tuple[FaultConfig, ...] = ()
    log_tail: str = ""


# The outcome each fault kind produces, to say "(injected)" of exactly those.
_FAULT_OUTCOMES = {
    "cuda_oom": ("out_of_memory", "cuda"),
    "host_oom": ("out_of_memory", "host"),
    "memory_cap": ("out_of_memory", "cap"),
    "exception": ("failed", "error"),
    "sigkill": ("failed", "signal"),
    "exit": ("failed", "exit"),
}


def _fired_fault(faults: tuple[FaultConfig, ...], records: list[dict[str, Any]]) -> str | None:
    """The kind of the injected fault that fired, if one did: a fault at epoch E fires before
    epoch E is reported, so the first one after the last reported epoch."""
    last = max((int(item["epoch"]) for item in records), default=-1)
    pending = [fault for fault in faults if fault.epoch > last]
    return min(pending, key=lambda fault: fault.epoch).kind if pending else None


def _objective_series(
    records: list[dict[str, Any]], objective: ObjectiveConfig
) -> list[tuple[int, float]]:
    return [
        (int(item["epoch"]), value)
        for item in records
        if (value := objective_value(item, objective.split, objective.metric)) is not None
    ]


def _device(reported: ProcessOutcome, cap_mb: int | None) -> Device:
    device = reported.device or {}
    return Device(
        gpu_name=device.get("gpu_name"),
        gpu_total_bytes=device.get("gpu_total_bytes"),
        host_total_bytes=device.get("host_total_bytes"),
        cap_bytes=None if cap_mb is None else cap_mb * _MB,
    )


def decide_outcome(reported: ProcessOutcome, facts: TrialFacts) -> tuple[Outcome, float | None]:
    """How a trial ended (and its value), from what its process reported: a pure function."""
    fired = _fired_fault(facts.faults, reported.records)
    expected = _FAULT_OUTCOMES.get(fired or "")
    peak_bytes = round(reported.peak_rss_mb * _MB) if reported.peak_rss_mb else None
    device = _device(reported, facts.memory_cap_mb)
    sizes = {"batch_size": facts.batch_size, "chunk_size": facts.chunk_size}
    if reported.status == "completed":
        # epoch 0 (the initial weights, not trained) is never the objective
        series = _objective_series(trained_epochs(reported.records), facts.objective)
        if not series:
            objective = facts.objective
            return Failed(message=f"no {objective.split} {objective.metric} in any epoch"), None
        if facts.objective.reduce == "last":
            best_epoch, value = series[-1]
        else:
            pick = max if facts.objective.resolved_direction == "maximize" else min
            best_epoch, value = pick(series, key=lambda item: item[1])
        if reported.stopped_by_worker:  # the pruner said stop: training ended after that epoch
            epoch = int(reported.records[-1]["epoch"])
            pruner = f"{facts.pruner.replace('_', ' ')} pruner"
            return StoppedByPruner(epoch, pruner, best_epoch), value
        return Complete(best_epoch), value
    if reported.status == "interrupted":
        return Interrupted(), None
    if reported.out_of_memory:
        kind = {"cuda_oom": "cuda", "host_oom": "host", "memory_cap": "cap"}[reported.status]
        error = reported.error or {}
        injected = expected == ("out_of_memory", kind)
        if kind == "cap":
            assert facts.memory_cap_mb is not None
            return OutOfMemory(
                "cap",
                device,
                peak_bytes=peak_bytes,
                limit_bytes=facts.memory_cap_mb * _MB,
                injected=injected,
                **sizes,
            ), None
        peak_device = error.get("peak_device_mb")
        return OutOfMemory(
            "cuda" if kind == "cuda" else "host",
            device,
            requested_bytes=error.get("requested_bytes"),
            peak_bytes=round(peak_device * _MB) if peak_device else peak_bytes,
            limit_bytes=round(error["device_total_mb"] * _MB)
            if error.get("device_total_mb")
            else None,
            message=str(error.get("message", ""))[:_TEXT_LIMIT],
            injected=injected,
            **sizes,
        ), None
    if reported.status == "error":
        error = reported.error or {}
        return Failed(
            error_type=str(error.get("type", "Error")),
            message=str(error.get("message", ""))[:_TEXT_LIMIT],
            log_tail=facts.log_tail,
            peak_bytes=peak_bytes,
            injected=expected == ("failed", "error"),
        ), None
    if reported.signal_name == "SIGKILL" and reported.oom_kill_evidence is not None:
        last = reported.last_rss_mb or reported.peak_rss_mb
        limit = reported.memory_limit_mb
        return OutOfMemory(
            "kernel_killed",
            device,
            peak_bytes=round(last * _MB) if last else None,
            limit_bytes=round(limit * _MB) if limit else None,
            message=reported.oom_kill_evidence,
            injected=expected == ("failed", "signal"),  # the kill itself was injected
            **sizes,
        ), None
    if reported.signal_name is not None:
        return Failed(
            signal=reported.signal_name,
            exit_code=reported.exit_code,
            log_tail=facts.log_tail,
            peak_bytes=peak_bytes,
            injected=expected == ("failed", "signal") and reported.signal_name == "SIGKILL",
        ), None
    return Failed(
        exit_code=reported.exit_code,
        log_tail=facts.log_tail,
        peak_bytes=peak_bytes,
        injected=expected == ("failed", "exit"),
    ), None


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
            return self._finish(self._duplicate(original), ran=False)
        if self.claim.origin == "sampled" and self.sweep.file.repeats > 1:
            queue_repeats(self.sweep_study, self.claim)
        self._start_run()
        if self.sweep.file.prune_dominated:
            dominating = find_dominating_oom(self.study, self.resolved)
            if dominating is not None:
                return self._finish(self._dominated(dominating), ran=False)
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
        settings = self._settings()
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

    def _settings(self) -> dict[str, Any]:
        return trial_settings(self.sweep, self.resolved)

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

    # --- outcomes without training ---------------------------------------------------------
    def _duplicate(self, original: FrozenTrial) -> Outcome:
        if original.state == TrialState.COMPLETE:
            return DuplicateOf(original.number, "COMPLETE")
        if original.state == TrialState.PRUNED:
            its_outcome = record.read_outcome(original.user_attrs)
            return DuplicateOf(
                original.number,
                "PRUNED",
                record.words(its_outcome) if its_outcome is not None else "pruned",
            )
        # Queued before this one and not started: the plan queues the configuration again
        # if that original fails (a copy never keeps a configuration "done").
        return DuplicateOf(original.number, "PRUNED", "queued, not run yet")

    def _dominated(self, oom: FrozenTrial) -> Outcome:
        ran_out = record.read_outcome(oom.user_attrs)
        return OutOfMemory(
            "dominated_by",
            ran_out.device if isinstance(ran_out, OutOfMemory) else None,
            dominated_by=oom.number,
            batch_size=oom.user_attrs.get("batch_size"),
            chunk_size=oom.user_attrs.get("chunk_size"),
            injected=isinstance(ran_out, OutOfMemory) and ran_out.injected,
        )

    # --- the end --------------------------------------------------------------------------
    def _summary_attrs(self, outcome: ProcessOutcome | None) -> dict[str, Any]:
        attrs: dict[str, Any] = {}
        if outcome is None:
            return attrs
        for item in outcome.records:
            if int(item["epoch"]) == 0:  # the zero-shot baseline, apart from best and last
                for split, prefix in SPLIT_PREFIXES.items():
                    for metric in ("auc", "dist", "ap"):
                        value = objective_value(item, split, metric)
                        if value is not None:
                            attrs[f"initial_{prefix}_{metric}"] = value
        records = trained_epochs(outcome.records)
        if not records:
            return attrs
        attrs["epochs_done"] = len(records)
        for split, prefix in SPLIT_PREFIXES.items():
            for metric, pick in (("auc", max), ("dist", min), ("ap", max)):
                values = [objective_value(record, split, metric) for record in records]
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
        self,
        outcome: Outcome,
        *,
        ran: bool,
        reported: ProcessOutcome | None = None,
        value: float | None = None,
    ) -> TrialEnded:
        seconds = time.perf_counter() - self.started
        if self.heartbeat.lost:
            outcome = Lost(str(self.trial.user_attrs.get("worker", worker_name())))
        state = record.state_of(outcome)
        if isinstance(outcome, DuplicateOf) and state == "COMPLETE":
            original = self.study.trials[outcome.trial]  # its value, not run again
            value = original.value
        reason = record.describe(outcome)
        attrs = {
            **self._summary_attrs(reported),
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
                    artifacts=self._artifacts(reported) if ran else (),
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


def trial_settings(sweep: Sweep, resolved: ResolvedTrial) -> dict[str, Any]:
    """A trial's training settings by field path, its initial weights by name."""
    settings = flatten(
        resolved.config.model_dump(mode="json", exclude={"output_dir", "eval_cache_dir"})
    )
    label = resolved.params.get("initial_weights", sweep.base_weights)
    settings["initial_weights"] = WEIGHTS_FRESH if label is None else str(label)
    return settings


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


def evidence_sources(sweep: Sweep) -> EvidenceSources | None:
    """The sweep file's `oom_evidence` (fields left out are not consulted); None: this
    machine's own cgroup, kernel log and memory."""
    config = sweep.file.oom_evidence
    if config is None:
        return None

    def beside_file(path: Path | None) -> Path | None:
        return None if path is None else sweep.folder / path

    return EvidenceSources(
        memory_events=beside_file(config.memory_events),
        kernel_log=beside_file(config.kernel_log),
        memory_limit_bytes=None if config.memory_limit_mb is None else config.memory_limit_mb * _MB,
    )


def mlflow_status(outcome: Outcome) -> str:
    """The status of a trial's MLflow run: COMPLETE -> FINISHED, PRUNED or interrupted ->
    KILLED, FAILED -> FAILED."""
    if isinstance(outcome, Interrupted | Lost):
        return "KILLED"
    return MLFLOW_STATUS[record.state_of(outcome)]


def outcome_tags(outcome: Outcome, reason: str, attrs: dict[str, Any]) -> dict[str, Any]:
    """The MLflow tags of an ended trial's run, read from its outcome's fields."""
    tags: dict[str, Any] = {
        "state": record.state_of(outcome),
        "reason": reason,
        "outcome": outcome.type,
    }
    if isinstance(outcome, OutOfMemory):
        tags["oom_kind"] = outcome.kind
        if outcome.device is not None:
            tags["oom_device"] = outcome.device.words()
    if getattr(outcome, "injected", False):
        tags["injected"] = "true"
    tags.update({key: value for key, value in attrs.items() if key.startswith("best_")})
    return tags


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
