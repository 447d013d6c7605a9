"""A study's queue: what to run, which out-of-memory results stand, and copies of a trial.

Queue (`plan_queue`, run by `vtd-sweep run` before any worker starts):
- grid: every (cell x repeat) whose configuration has no COMPLETE, PRUNED, WAITING or RUNNING
  trial is queued (WAITING, fixed parameters); FAILED and interrupted ones are thus queued
  again, finished ones never. Optuna's GridSampler is not used: it picks cells per worker
  and runs a cell twice when workers finish together.
- tpe / random: configurations sampled so far are completed to `repeats` seeds and failed
  ones queued again; new configurations are sampled by workers while fewer than `n_trials`
  have been sampled (`queue_repeats` queues a new one's other seeds).

Out-of-memory results of other hardware (`current_device`) are run again
(`out_of_memory_to_retry`), with the trials they dominated. A worker asks, before training,
whether another trial makes its own unnecessary (`find_original`, `wait_for_original`) or
would run out of memory for it (`find_dominating_oom`).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import subprocess
import threading
from collections.abc import Iterable, Mapping
from typing import Any

import optuna
import psutil
from optuna.trial import FrozenTrial, TrialState

from vtd.sweep.plan.config import Sweep
from vtd.sweep.store.record import MB, Device, DuplicateOf, OutOfMemory, read_outcome
from vtd.sweep.store.study import Claim, QueuedTrial, ResolvedTrial, SweepStudy, resolve

logger = logging.getLogger(__name__)

LIVE_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.WAITING, TrialState.RUNNING)
DONE_STATES = (TrialState.COMPLETE, TrialState.PRUNED)


def _by_config(trials: Iterable[FrozenTrial]) -> dict[str, list[FrozenTrial]]:
    grouped: dict[str, list[FrozenTrial]] = {}
    for trial in trials:
        config_hash = trial.user_attrs.get("config_hash")
        if config_hash is not None:
            grouped.setdefault(config_hash, []).append(trial)
    return grouped


def superseded(trials: Iterable[FrozenTrial]) -> set[int]:
    """Trials that another trial retries (`retry_of`): no longer the word on their cell."""
    return {int(number) for trial in trials for number in trial.user_attrs.get("retry_of", [])}


def current_device(sweep: Sweep) -> Device:
    """The hardware trials of this sweep would run on here (see `record.Device`): the first
    GPU `nvidia-smi` lists (unless training is on the CPU), the host's memory, the cap. The
    worker itself never touches CUDA, hence `nvidia-smi`."""
    cap = sweep.file.memory_cap_mb
    gpu_name, gpu_total = None, None
    if sweep.base.device != "cpu" and shutil.which("nvidia-smi"):
        query = ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"]
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            lines = subprocess.run(
                query, capture_output=True, text=True, timeout=20, check=True
            ).stdout.splitlines()
            if lines:
                name, _, total_mib = lines[0].rpartition(",")
                gpu_name, gpu_total = name.strip(), int(float(total_mib)) * MB
    return Device(
        gpu_name=gpu_name,
        gpu_total_bytes=gpu_total,
        host_total_bytes=psutil.virtual_memory().total,
        cap_bytes=None if cap is None else cap * MB,
    )


def out_of_memory_to_retry(
    trials: list[FrozenTrial], device: Device, *, retry: bool = False
) -> list[FrozenTrial]:
    """Out-of-memory trials whose result does not hold on `device` (other hardware, a larger
    cap, or `retry` asked for), and the trials they dominated; not those already retried."""
    done = superseded(trials)
    stale: set[int] = set()
    for trial in trials:
        outcome = read_outcome(trial.user_attrs)
        if (
            trial.state == TrialState.PRUNED
            and trial.number not in done
            and isinstance(outcome, OutOfMemory)
            and outcome.ran_out
            and not outcome.final_on(device, retry=retry)
        ):
            stale.add(trial.number)
    for trial in trials:
        outcome = read_outcome(trial.user_attrs)
        if (
            trial.number not in done
            and isinstance(outcome, OutOfMemory)
            and outcome.dominated_by in stale
        ):
            stale.add(trial.number)
    return [trial for trial in trials if trial.number in stale]


def plan_queue(
    sweep: Sweep,
    trials: list[FrozenTrial],
    *,
    device: Device | None = None,
    retry_out_of_memory: bool = False,
) -> list[QueuedTrial]:
    """The trials to queue so that every configuration (x repeat) runs once. Out-of-memory
    results of other hardware (`device`: this machine's) are run again, and with
    `retry_out_of_memory` all of them; a copy of another trial keeps no configuration live
    (its original, or the configuration run again, does)."""
    grouped = _by_config(trials)
    stale = {
        trial.number
        for trial in out_of_memory_to_retry(
            trials, device or current_device(sweep), retry=retry_out_of_memory
        )
    }
    live = {
        config_hash
        for config_hash, group in grouped.items()
        if any(
            trial.state in LIVE_STATES
            and trial.number not in stale
            and not isinstance(read_outcome(trial.user_attrs), DuplicateOf)
            for trial in group
        )
    }
    queued: list[QueuedTrial] = []

    def want(params: Mapping[str, Any], repeat: int, origin: str) -> None:
        resolved = resolve(sweep, params, repeat)
        config_hash = resolved.identity.config_hash
        if config_hash in live:
            return
        live.add(config_hash)
        failed = tuple(trial.number for trial in grouped.get(config_hash, []))
        queued.append(QueuedTrial(resolved, "retry" if failed else origin, failed))

    repeats = range(sweep.file.repeats)
    if sweep.file.sampler.name == "grid":
        cells = sweep.space.grid_cells()
        for repeat in repeats:  # all cells once before any second seed
            for params in cells:
                want(params, repeat, "grid")
    else:
        sampled: dict[str, dict[str, Any]] = {}
        for trial in sorted(trials, key=lambda t: t.number):
            cell_hash = trial.user_attrs.get("cell_hash")
            if cell_hash and trial.params and "duplicate_of" not in trial.user_attrs:
                sampled.setdefault(cell_hash, dict(trial.params))
        for repeat in repeats:
            for params in sampled.values():
                want(params, repeat, "repeat")
    return queued


def enqueue(sweep_study: SweepStudy, queued: list[QueuedTrial]) -> None:
    for item in queued:
        attrs = {**item.resolved.user_attrs(), "origin": item.origin}
        if item.retry_of:
            attrs["retry_of"] = list(item.retry_of)
        sweep_study.study.enqueue_trial(dict(item.resolved.params), user_attrs=attrs)
    if queued:
        logger.info("queued %d trial(s) in study %s", len(queued), sweep_study.sweep.study_name)


def queue_repeats(sweep_study: SweepStudy, claim: Claim) -> None:
    """A newly sampled configuration: queue its other seeds for any worker to take."""
    queued = [
        QueuedTrial(resolve(sweep_study.sweep, claim.resolved.params, repeat), "repeat")
        for repeat in range(1, sweep_study.sweep.file.repeats)
    ]
    enqueue(sweep_study, queued)


def find_original(study: optuna.Study, number: int, config_hash: str) -> FrozenTrial | None:
    """Another trial of the same configuration that makes this one unnecessary: a finished
    one (COMPLETE / PRUNED), or an unfinished one with a lower number (the first one runs)."""
    trials = study.get_trials(deepcopy=False)
    retried = superseded(trials)
    for other in trials:
        if other.state not in LIVE_STATES or other.number in retried:
            continue
        if other.number == number or other.user_attrs.get("config_hash") != config_hash:
            continue
        if other.state in DONE_STATES or other.number < number:
            return other
    return None


def wait_for_original(
    study: optuna.Study,
    number: int,
    config_hash: str,
    halt: threading.Event,
    poll_s: float,
) -> FrozenTrial | None:
    """The trial that makes trial `number` unnecessary (see `find_original`), once it has
    ended: an original still RUNNING is waited for, so that its copy takes its outcome, or,
    if it failed or was lost, finds none and runs the configuration itself. None at once
    when `halt` is set."""
    while True:
        original = find_original(study, number, config_hash)
        if original is None or original.state != TrialState.RUNNING:
            return original
        logger.info(
            "trial %d: same configuration as running trial %d; waiting for its outcome",
            number,
            original.number,
        )
        if halt.wait(poll_s):
            return None


def find_dominating_oom(study: optuna.Study, resolved: ResolvedTrial) -> FrozenTrial | None:
    """A trial that ran out of memory with everything else equal and batch and chunk size
    both at most this one's: this one would run out of memory too."""
    trials = study.get_trials(deepcopy=False)
    retried = superseded(trials)  # run again (other hardware, or asked): not the word any more
    for other in trials:
        attrs = other.user_attrs
        if (
            other.state == TrialState.PRUNED
            and other.number not in retried
            and attrs.get("out_of_memory")
            and attrs.get("context_hash") == resolved.identity.context_hash
            and int(attrs.get("batch_size", 0)) <= resolved.batch_size
            and int(attrs.get("chunk_size", 0)) <= resolved.chunk_size
        ):
            return other
    return None
