"""How a trial ended, decided from what its process reported; its MLflow status and tags.

`decide_outcome` is a pure function of a trial process's report (`ProcessOutcome`) and what
the worker knows besides (`TrialFacts`): it returns one typed outcome of `record` and the
trial's value. COMPLETE: training ran all epochs (the objective's best or last epoch); PRUNED:
the pruner stopped it, or it ran out of memory (CUDA, host, over the per-trial cap, or killed
by the kernel); FAILED: any other error, the trial process dying, or Ctrl-C (`Interrupted`).
An injected fault's outcome says so. `duplicate_outcome` and `dominated_outcome` are the
outcomes of trials not run. `summary_attrs` are a trial's initial, best and last metrics;
`mlflow_status`, `outcome_tags` and `run_artifacts` what its MLflow run ends with (by the
worker, or by `sync` catching up).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from optuna.trial import FrozenTrial, TrialState

from vtd.evaluate.names import SPLIT_PREFIXES
from vtd.sweep.plan.faults import FaultConfig
from vtd.sweep.plan.sections import ObjectiveConfig
from vtd.sweep.store import record
from vtd.sweep.store.record import (
    MB,
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
from vtd.sweep.store.words import words

if TYPE_CHECKING:  # an annotation only: what a trial process reported
    from vtd.sweep.execute.runner import ProcessOutcome

MLFLOW_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}
LOG_TAIL_LINES = 40
_TEXT_LIMIT = 4000


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


def _metrics_at(records: list[dict[str, Any]], epoch: int, name: str) -> dict[str, float]:
    """Every split's metrics at `epoch`, as `<name>_<split>_<metric>`."""
    attrs: dict[str, float] = {}
    for item in records:
        if int(item["epoch"]) != epoch:
            continue
        for split, prefix in SPLIT_PREFIXES.items():
            for metric in ("auc", "dist", "ap"):
                value = objective_value(item, split, metric)
                if value is not None:
                    attrs[f"{name}_{prefix}_{metric}"] = value
    return attrs


def selected_metrics(records: list[dict[str, Any]], epoch: int) -> dict[str, float]:
    """Every split's metrics at the epoch the objective selected (`selected_<split>_<metric>`):
    what `status` shows, by the definition the report uses (test read at that epoch)."""
    return _metrics_at(records, epoch, "selected")


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
        cap_bytes=None if cap_mb is None else cap_mb * MB,
    )


def decide_outcome(reported: ProcessOutcome, facts: TrialFacts) -> tuple[Outcome, float | None]:
    """How a trial ended (and its value), from what its process reported: a pure function."""
    fired = _fired_fault(facts.faults, reported.records)
    expected = _FAULT_OUTCOMES.get(fired or "")
    peak_bytes = round(reported.peak_rss_mb * MB) if reported.peak_rss_mb else None
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
                limit_bytes=facts.memory_cap_mb * MB,
                injected=injected,
                **sizes,
            ), None
        peak_device = error.get("peak_device_mb")
        return OutOfMemory(
            "cuda" if kind == "cuda" else "host",
            device,
            requested_bytes=error.get("requested_bytes"),
            peak_bytes=round(peak_device * MB) if peak_device else peak_bytes,
            limit_bytes=round(error["device_total_mb"] * MB)
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
            peak_bytes=round(last * MB) if last else None,
            limit_bytes=round(limit * MB) if limit else None,
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


def summary_attrs(outcome: ProcessOutcome | None) -> dict[str, Any]:
    """A trial's initial (epoch 0), best and last metrics, and its number of trained epochs.

    No "best" on the test split: each metric's best test epoch would be chosen on test itself
    (these attributes become the trial's MLflow tags); the tables read test at the epoch the
    objective's split selects."""
    if outcome is None:
        return {}
    # the zero-shot baseline, apart from best and last
    attrs: dict[str, Any] = dict(_metrics_at(outcome.records, 0, "initial"))
    records = trained_epochs(outcome.records)
    if not records:
        return attrs
    attrs["epochs_done"] = len(records)
    for split, prefix in SPLIT_PREFIXES.items():
        for metric, pick in (("auc", max), ("dist", min), ("ap", max)):
            values = [objective_value(record, split, metric) for record in records]
            finite = [value for value in values if value is not None]
            if finite:
                if split != "test":
                    attrs[f"best_{prefix}_{metric}"] = pick(finite)
                attrs[f"last_{prefix}_{metric}"] = finite[-1]
    return attrs


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


def run_artifacts(trial_dir: Path, outcome: ProcessOutcome | None) -> list[tuple[Path, str | None]]:
    """The files a trial's MLflow run keeps: its log and description, its best checkpoint."""
    artifacts: list[tuple[Path, str | None]] = [
        (trial_dir / "trial.log", None),
        (trial_dir / "trial.json", None),
    ]
    best = (outcome.result or {}).get("best_checkpoint") if outcome is not None else None
    if best:
        artifacts += [
            (Path(best), "checkpoints"),
            (Path(best).with_suffix(".json"), "checkpoints"),
        ]
    return artifacts


def duplicate_outcome(original: FrozenTrial) -> Outcome:
    """A copy of `original`'s configuration, not run: COMPLETE with its value, or PRUNED."""
    if original.state == TrialState.COMPLETE:
        return DuplicateOf(original.number, "COMPLETE")
    if original.state == TrialState.PRUNED:
        its_outcome = record.read_outcome(original.user_attrs)
        return DuplicateOf(
            original.number,
            "PRUNED",
            words(its_outcome) if its_outcome is not None else "pruned",
        )
    # Queued before this one and not started: the plan queues the configuration again
    # if that original fails (a copy never keeps a configuration "done").
    return DuplicateOf(original.number, "PRUNED", "queued, not run yet")


def dominated_outcome(oom: FrozenTrial) -> Outcome:
    """Not run: `oom` ran out of memory with everything else equal and sizes at most this one's."""
    ran_out = record.read_outcome(oom.user_attrs)
    return OutOfMemory(
        "dominated_by",
        ran_out.device if isinstance(ran_out, OutOfMemory) else None,
        dominated_by=oom.number,
        batch_size=oom.user_attrs.get("batch_size"),
        chunk_size=oom.user_attrs.get("chunk_size"),
        injected=isinstance(ran_out, OutOfMemory) and ran_out.injected,
    )
